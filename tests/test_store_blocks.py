"""Issue 13, item 8: the two sides of a pair are read in blocks whose sizes depend on their
storage (contiguous storage in flat runs of ``block_elems``, chunked or compressed storage in
whole rows); the comparison must line them up whatever the pairing.

Every pairing of storage kinds, at shapes whose rows do not divide the block size, with a block
size small enough that each variable spans many blocks. numpy on the arrays written is the oracle.
"""

from __future__ import annotations

import itertools

import h5py
import numpy as np
import pytest

import kaudit
from kaudit.stats import paired_blocks

STORAGE = {
    "contiguous": {},
    "chunked-rows": {"chunks": (7, 13)},
    "chunked-tall": {"chunks": (61, 1)},
    "gzip": {"chunks": (16, 13), "compression": "gzip", "shuffle": True},
    "lzf": {"chunks": (5, 39), "compression": "lzf"},
}
SHAPE = (61, 39)  # 2379 elements; rows of 39 do not divide any block size used below


def _write(path, kernel, storage):
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["layer_names"] = np.array([b"dense"])
        layer = f.create_group("dense")
        layer.attrs["weight_names"] = np.array([b"dense/kernel:0", b"dense/bias:0"])
        inner = layer.create_group("dense")
        inner.create_dataset("kernel:0", data=kernel, **STORAGE[storage])
        inner.create_dataset("bias:0", data=np.zeros(SHAPE[1], np.float32))
    return str(path)


@pytest.fixture(scope="module")
def values():
    rng = np.random.default_rng(8)
    a = rng.standard_normal(SHAPE).astype(np.float32)
    b = a.copy()
    b[3, 5] += 0.5  # early, in the first blocks
    b[60, 38] -= 2.0  # the very last element
    return a, b


@pytest.mark.parametrize("sa,sb", list(itertools.product(STORAGE, repeat=2)))
@pytest.mark.parametrize("block_elems", [64, 1000])
def test_every_storage_pairing_lines_up(tmp_path, values, sa, sb, block_elems):
    a, b = values
    fa = _write(tmp_path / "a.h5", a, sa)
    fb = _write(tmp_path / "b.h5", b, sb)
    same = _write(tmp_path / "same.h5", a, sb)

    row = kaudit.diff(fa, fb, block_elems=block_elems, policy=False).table.set_index("path").loc["dense/kernel"]
    d = np.abs(a.astype(np.float64) - b)
    assert row["status"] == "changed"
    assert row["max_abs"] == pytest.approx(d.max())
    assert row["n_exceed"] == np.count_nonzero(d) == 2  # tolerance 0: every differing element
    assert row["mean_abs"] == pytest.approx(d.mean())
    assert row["cosine"] == pytest.approx(
        float((a.ravel() @ b.ravel().astype(np.float64)) / np.linalg.norm(a) / np.linalg.norm(b))
    )

    ident = kaudit.diff(fa, same, block_elems=block_elems, policy=False)
    assert ident.passed and set(ident.table["status"]) == {"identical"}


@pytest.mark.parametrize("sizes_a,sizes_b", [([5, 5, 5], [3, 7, 5]), ([15], [1] * 15), ([4, 0, 11], [11, 4]), ([], [])])
def test_paired_blocks_cut_where_the_other_side_ends(sizes_a, sizes_b):
    total = sum(sizes_a)
    x = np.arange(total)

    def blocks(sizes):
        start = 0
        for n in sizes:
            yield x[start : start + n]
            start += n

    pairs = list(paired_blocks(blocks(sizes_a), blocks(sizes_b)))
    assert all(p.size == q.size > 0 for p, q in pairs)
    got_a = np.concatenate([p for p, _ in pairs]) if pairs else x[:0]
    got_b = np.concatenate([q for _, q in pairs]) if pairs else x[:0]
    np.testing.assert_array_equal(got_a, x)
    np.testing.assert_array_equal(got_b, x)


def test_paired_blocks_refuse_sides_of_different_lengths():
    with pytest.raises(ValueError, match="different numbers"):
        list(paired_blocks(iter([np.zeros(5)]), iter([np.zeros(4)])))
