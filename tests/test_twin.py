"""Twins: a second file checked byte for byte against the metadata read from the first one.

``readers._load(a, Twin(b))`` compares, on the way, every byte of ``b`` at every address the
parser read from ``a`` (and for a ``.keras`` archive its members, ``config.json`` and the version
in ``metadata.json``). When ``twin.same`` stays True, readers/pair.py takes ``b``'s table from
``a``'s instead of reading it. That is sound only if reading ``b`` really gives the same table,
which is what these tests check:

1. copies that differ in stored values only (a fine-tuned model saved again) are twins, and
   the checkpoint built for them is the one ``load(b)`` gives, values included;
2. soundness, by mutation: for each one-byte change of a fixture, either the twin check says
   "differs", or loading the changed file gives exactly the original table. The bytes tried are
   those at and just past the ends of every range the parser reads (where a read a caller
   extends without saying so would hide) and a seeded sample of all the others;
3. the diff of a pair of twins, and of same-size pairs that are not twins (differing in the model
   config, found before the layers; or in one dataset's type, found among them), equals the
   diff read one file after the other.
"""

from __future__ import annotations

import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kaudit import compare, readers
from kaudit.errors import KauditError
from kaudit.readers import _h5parse as P
from kaudit.readers import _hdf5 as H
from kaudit.readers import pair

from .conftest import REAL, fixture, message_offset, same_layout_copy
from .conftest import reaped as _gone
from .test_h5parse import REAL_FILES, _params
from .test_split import assert_same

pytestmark = pytest.mark.skipif(not H._HAVE_PREADV, reason="the fast path is taken only where os.preadv exists")

SOURCES = ["tutorial/k2_full.h5", "nested/k3.weights.h5", "finetune/after.keras", "dtypes/k3_legacy.h5"]


def _perturbed(src: str, dst: Path) -> str:
    """``src`` with every stored value nudged (the lowest bit of each little-endian value flipped:
    no NaN or Inf appears), metadata untouched: a fine-tuned copy."""

    def nudge(v, raw: bytes) -> bytes:
        step = 2 if v.dtype == "bfloat16" else np.dtype(v.dtype).itemsize
        out = bytearray(raw)
        out[::step] = bytes(b ^ 1 for b in out[::step])
        return bytes(out)

    return same_layout_copy(src, dst, nudge)


def _twin_check(a: str, b: str) -> bool:
    twin = readers.Twin(b)
    with readers._load(a, twin):
        pass
    return twin.same


@pytest.mark.parametrize("src", SOURCES)
def test_a_fine_tuned_copy_is_a_twin_and_its_checkpoint_is_the_one_load_gives(src, tmp_path):
    a = fixture(src)
    b = _perturbed(a, tmp_path / ("b" + Path(a).suffix))
    twin = readers.Twin(b)
    with readers._load(a, twin) as ca:
        assert twin.same
        cb = pair._twin_checkpoint(ca, twin)
        assert cb is not None
        with cb, readers.load(b) as plain:
            assert_same(cb, plain)
            assert (cb.file, cb.files, cb.store.displays) == (plain.file, plain.files, plain.store.displays)
            assert any(not np.array_equal(ca.read(v), cb.read(v)) for v in ca.all_variables if ca.read(v).size)


def test_the_twin_check_stops_at_the_first_difference(tmp_path):
    a = fixture("tutorial/k2_full.h5")
    data = bytearray(Path(a).read_bytes())
    at = message_offset(a, "model_weights/L3_dense/L3_dense/kernel:0", 0x01) + 8  # its first dimension
    data[at] ^= 1
    b = tmp_path / "b.h5"
    b.write_bytes(bytes(data))
    assert not _twin_check(a, str(b))
    assert _twin_check(a, a)
    other_size = tmp_path / "longer.h5"
    other_size.write_bytes(Path(a).read_bytes() + b"\0")
    assert not _twin_check(a, str(other_size))
    assert not _twin_check(a, fixture("tutorial/k3.keras"))  # another kind of file


def rebuilt(src: str, dst: Path, **changes: bytes) -> str:
    """The archive ``src`` written again member by member (as stored or deflated as they were),
    with the members named in ``changes`` replaced."""
    with zipfile.ZipFile(src) as z:
        members = {i.filename: (z.read(i), i.compress_type) for i in z.infolist()}
    with zipfile.ZipFile(dst, "w") as z:
        for member, (data, ctype) in members.items():
            z.writestr(member, changes.get(member, data), compress_type=ctype)
    return str(dst)


def _member(src: str, name: str) -> bytes:
    with zipfile.ZipFile(src) as z:
        return z.read(name)


def test_the_archive_members_decide_too(tmp_path):
    """config.json must be the same bytes; metadata.json only the same Keras version (its
    date_saved differs between two saves); the weights stored, as large."""
    a = fixture("finetune/after.keras")
    assert _twin_check(a, rebuilt(a, tmp_path / "same.keras"))
    meta = _member(a, "metadata.json")
    assert b"date_saved" in meta
    later = meta.replace(b"date_saved\": \"", b"date_saved\": \"1")
    assert _twin_check(a, rebuilt(a, tmp_path / "later.keras", **{"metadata.json": later}))
    version = meta.replace(b"keras_version\": \"", b"keras_version\": \"9")
    assert not _twin_check(a, rebuilt(a, tmp_path / "version.keras", **{"metadata.json": version}))
    config = _member(a, "config.json").replace(b"true", b"True", 1)
    assert not _twin_check(a, rebuilt(a, tmp_path / "config.keras", **{"config.json": config}))


# -- soundness, by mutation -------------------------------------------------------------------------


def _ranges_read(path: str, monkeypatch) -> list[tuple[int, int]]:
    """(image address, length) of every read the parser makes loading ``path``."""
    seen: list[tuple[int, int]] = []
    real_at = P._Image.at

    def at(self, addr, n):
        seen.append((addr, n))
        return real_at(self, addr, n)

    monkeypatch.setattr(P._Image, "at", at)
    with readers.load(path):
        pass
    monkeypatch.setattr(P._Image, "at", real_at)
    return seen


def _table(path: str):
    with readers.load(path) as c:
        return (c.all_variables, c.notes, c.format, c.keras_version, c.has_config,
                c.store._entries, {k: v[1:] for k, v in c.store._direct_layouts.items()})


def _image_base(path: str) -> int:
    with readers.load(path) as c:
        return c.store.files[0].file.image.base


@pytest.mark.slow
@pytest.mark.parametrize("src", SOURCES)
def test_a_one_byte_change_is_seen_or_changes_nothing(src, tmp_path, monkeypatch):
    a = fixture(src)
    data = Path(a).read_bytes()
    base = _image_base(a)
    edges: set[int] = set()
    past: set[int] = set()  # a read's caller may use the bytes after it (then it must say so)
    for addr, n in _ranges_read(a, monkeypatch):
        edges.update(base + p for p in (addr - 1, addr, addr + n - 1, addr + n))
        past.update(base + addr + n + k for k in range(1, 96))
    rng = random.Random(20240607)

    def some(found: set[int], k: int) -> list[int]:
        found = sorted(p for p in found if 0 <= p < len(data))
        return rng.sample(found, min(len(found), k))

    positions = some(edges, 400) + some(past - edges, 600) + rng.sample(range(len(data)), 150)
    original = _table(a)
    b = tmp_path / ("b" + Path(a).suffix)
    seen = unseen = 0
    for pos in positions:
        changed = bytearray(data)
        changed[pos] ^= 0xFF
        b.write_bytes(bytes(changed))
        if not _twin_check(a, str(b)):
            seen += 1
            continue
        unseen += 1
        assert _table(str(b)) == original, f"byte {pos} changes the table but the twin check missed it"
    assert seen and unseen  # both kinds met: metadata bytes, and bytes no reading depends on


# -- diffs ---------------------------------------------------------------------------------------


def _same_diff(a: str, b: str, monkeypatch) -> None:
    fast = compare.diff(a, b)
    monkeypatch.setenv("KAUDIT_PARALLEL_LOAD", "0")
    try:
        serial = compare.diff(a, b)
    finally:
        monkeypatch.delenv("KAUDIT_PARALLEL_LOAD")
    assert fast.records == serial.records
    assert (fast.summary, fast.passed, fast.notes) == (serial.summary, serial.passed, serial.notes)


def _loads_of(path: str, monkeypatch) -> list[str]:
    calls: list[str] = []
    real = readers._load

    def spy(p, twin=None):
        calls.append(str(p))
        return real(p, twin)

    monkeypatch.setattr(readers, "_load", spy)
    return calls


@pytest.mark.parametrize("src", ["tutorial/k2_full.h5", "finetune/after.keras"])
def test_twins_are_read_once(src, tmp_path, forks, monkeypatch):
    a = fixture(src)
    b = _perturbed(a, tmp_path / ("b" + Path(a).suffix))
    calls = _loads_of(b, monkeypatch)
    with pair.opened_pair(a, b) as (_ca, cb):
        assert calls == [a]  # b was never read: its table is a's
        with readers.load(b) as plain:
            assert_same(cb, plain)
    assert len(forks) == 1 == forks.everywhere() and _gone(forks[0])  # a's layers on two cores
    _same_diff(a, b, monkeypatch)


@pytest.mark.parametrize("src", ["tutorial/k2_full.h5", "tutorial/k3.keras"])
def test_not_twins_after_all_in_the_config(src, tmp_path, forks, monkeypatch):
    """The model config differs (another activation name, as long): found before a's layers, in
    the HDF5 attribute or in config.json; b is read in a child (which splits nothing) while a's
    layers are read here, as for files of other sizes."""
    a = fixture(src)
    old, new = b'"activation": "linear"', b'"activation": "lineax"'
    b = tmp_path / ("b" + Path(a).suffix)
    if a.endswith(".keras"):
        config = _member(a, "config.json")
        assert old in config
        rebuilt(a, b, **{"config.json": config.replace(old, new, 1)})
    else:
        data = Path(a).read_bytes()
        assert old in data
        b.write_bytes(data.replace(old, new, 1))
    assert os.path.getsize(a) == os.path.getsize(b)
    with pair.opened_pair(a, str(b)) as (ca, cb):
        assert len(forks) == 1 and forks.everywhere() == 1  # the child read b, whole
        assert type(cb.store.files[0]) is P.Group
        with readers.load(a) as pa, readers.load(str(b)) as pb:
            assert_same(ca, pa)
            assert_same(cb, pb)
    assert _gone(forks[0])
    _same_diff(a, str(b), monkeypatch)


def test_not_twins_after_all_in_a_layer(tmp_path, forks, monkeypatch):
    """One dataset's type differs (big-endian: the same stored bytes are other values), found in
    the layer loop: b is read after a, on two cores as well, and is not taken for a twin."""
    a = fixture("tutorial/k2_full.h5")
    data = bytearray(Path(a).read_bytes())
    data[message_offset(a, "model_weights/L4_bn/L4_bn/gamma:0", 0x03) + 1] |= 1
    b = tmp_path / "b.h5"
    b.write_bytes(bytes(data))
    calls = _loads_of(str(b), monkeypatch)
    with pair.opened_pair(a, str(b)) as (ca, cb):
        assert calls == [a, str(b)] and len(forks) == 2 == forks.everywhere()  # a's layers, then b's, here
        with readers.load(str(b)) as pb:
            assert_same(cb, pb)
            assert cb.store._direct_layouts != ca.store._direct_layouts
    assert all(_gone(pid) for pid in forks)
    _same_diff(a, str(b), monkeypatch)
    result = compare.diff(a, str(b))
    assert {r.path for r in result.records if r.status == "changed"} == {"L4_bn/gamma"}


def test_an_unreadable_file_is_reported_as_without_twins(tmp_path, forks):
    from kaudit.errors import KauditError

    a = fixture("tutorial/k2_full.h5")
    data = bytearray(Path(a).read_bytes())
    data[len(data) // 3:] = b"\0" * (len(data) - len(data) // 3)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(bytes(data))
    for x, y in ((a, str(bad)), (str(bad), a)):
        with pytest.raises(KauditError) as fast, pair.opened_pair(x, y):
            pass
        with pytest.raises(KauditError) as plain:
            readers.load(str(bad))
        assert str(fast.value) == str(plain.value)
    assert all(_gone(pid) for pid in forks)


@pytest.mark.real
@pytest.mark.parametrize("path", _params(REAL, REAL_FILES) or [pytest.param(None, id="corpus-absent")])
def test_fine_tuned_copies_of_real_models(path, tmp_path):
    """A copy of a public model with every value nudged is its twin whenever the parser reads
    it, and the checkpoint built for the copy is the one ``load`` gives."""
    if path is None:
        pytest.skip(f"shared real-model corpus not available: {REAL}")
    path = str(path)
    try:
        b = _perturbed(path, tmp_path / ("b" + Path(path).suffix))
    except KauditError:
        pytest.skip("kaudit does not read this file (its own tests say why)")
    twin = readers.Twin(b)
    with readers._load(path, twin) as ca:
        if not all(type(f) is P.Group for f in ca.store.files):
            assert not twin.same  # read by h5py: never taken for a twin
            return
        assert twin.same
        cb = pair._twin_checkpoint(ca, twin)
        assert cb is not None
        with cb, readers.load(b) as plain:
            assert_same(cb, plain, values=False)
            for v in (plain.all_variables[:3] + plain.all_variables[-3:]):
                assert np.array_equal(cb.read(v), plain.read(v), equal_nan=True)
