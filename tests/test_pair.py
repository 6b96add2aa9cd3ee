"""Reading the two checkpoints of a diff at the same time (kaudit/readers/pair.py).

``b`` is read in a forked child while ``a`` is read here. What the parent gets back must be the
very checkpoint a plain ``load(b)`` gives (variables, notes, values, results of a diff); whenever
the child cannot take the fast path the parent must read ``b`` itself, errors included; and no
child process may be left behind.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from kaudit import compare
from kaudit.readers import _h5parse as P
from kaudit.readers import load, pair

from .conftest import AFTER, BEFORE, fixture
from .conftest import reaped as _gone

PAIRS = [
    (BEFORE, AFTER),
    (fixture("finetune/before.keras"), fixture("finetune/after.keras")),
    (fixture("convnet/k2_full.h5"), fixture("convnet/k3.keras")),
    (fixture("dtypes/k3_legacy.h5"), fixture("dtypes/k3.weights.h5")),
]


def _same_checkpoint(x, y) -> None:
    assert x.all_variables == y.all_variables
    assert (x.file, x.format, x.keras_version, x.has_config, x.notes, x.files) == \
        (y.file, y.format, y.keras_version, y.has_config, y.notes, y.files)
    for vx, vy in zip(x.all_variables, y.all_variables, strict=True):
        ax, ay = x.read(vx), y.read(vy)
        assert ax.dtype == ay.dtype and ax.shape == ay.shape and np.array_equal(ax, ay, equal_nan=True)


@pytest.mark.parametrize("a,b", PAIRS, ids=lambda p: os.path.relpath(p, fixture("")))
def test_b_read_in_the_child_is_the_checkpoint_load_gives(a, b, forks):
    with pair.opened_pair(a, b) as (ca, cb):
        assert len(forks) == 1  # the parallel path was taken...
        assert type(cb.store.files[0]) is P.Group  # ...and b came back from the child, read by the fast parser
        plain_a, plain_b = load(a), load(b)
        try:
            _same_checkpoint(ca, plain_a)
            _same_checkpoint(cb, plain_b)
        finally:
            plain_a.close()
            plain_b.close()
    assert _gone(forks[0])


@pytest.mark.parametrize("a,b", PAIRS[:2], ids=["h5", "keras"])
def test_diff_result_is_the_same_either_way(a, b, forks, monkeypatch):
    parallel = compare.diff(a, b)
    assert len(forks) == 1
    monkeypatch.setenv("KAUDIT_PARALLEL_LOAD", "0")
    serial = compare.diff(a, b)
    assert len(forks) == 1  # no fork the second time
    assert parallel.records == serial.records
    assert parallel.summary == serial.summary and parallel.passed == serial.passed


def test_child_that_cannot_take_the_fast_path_leaves_b_to_the_parent(forks, monkeypatch, tmp_path):
    """With the fast parser off in the child (as for a file it does not handle), the child sends
    nothing, without ever entering the HDF5 library (no watchdog watches it: a file that makes HDF5
    loop must loop, if at all, in the parent), and the parent reads b itself: same checkpoint."""
    from kaudit.readers import _hdf5 as H

    real_encode, real_open = pair._encode, H.open_h5
    marker = tmp_path / "h5py-opened"

    def h5py_only(path):
        os.environ["KAUDIT_H5_PARSER"] = "h5py"  # in the child only: it exits right after
        return real_encode(path)

    def watched_open(source, display):
        marker.write_text(str(os.getpid()))
        return real_open(source, display)

    monkeypatch.setattr(pair, "_encode", h5py_only)
    monkeypatch.setattr(H, "open_h5", watched_open)
    with pair.opened_pair(BEFORE, AFTER) as (_ca, cb):
        assert len(forks) == 1
        assert type(cb.store.files[0]) is P.Group  # read again here, by the parent's own fast path
        plain = load(AFTER)
        try:
            _same_checkpoint(cb, plain)
        finally:
            plain.close()
    assert "KAUDIT_H5_PARSER" not in os.environ
    assert not marker.exists()  # neither the child nor (fast path) the parent opened h5py
    assert _gone(forks[0])


def test_unreadable_b_is_reported_by_the_parent_as_without_the_child(forks, tmp_path):
    from kaudit.errors import KauditError

    bad = tmp_path / "bad.h5"
    data = bytearray(open(AFTER, "rb").read())
    data[len(data) // 2:] = b"\0" * (len(data) - len(data) // 2)  # metadata and values destroyed
    bad.write_bytes(bytes(data))
    with pytest.raises(KauditError) as parallel:
        with pair.opened_pair(BEFORE, str(bad)):
            pass
    assert len(forks) == 1 and _gone(forks[0])
    with pytest.raises(KauditError) as serial:
        load(str(bad))
    assert str(parallel.value) == str(serial.value)


def test_an_error_reading_a_still_reaps_the_child(forks, tmp_path):
    from kaudit.errors import KauditError

    missing = str(tmp_path / "missing.h5")
    with pytest.raises(KauditError):
        with pair.opened_pair(missing, AFTER):
            pass
    # a does not exist: the pair is not worth forking for (nothing to read in parallel)
    assert forks == []
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\xff" * 4096)
    with pytest.raises(KauditError):
        with pair.opened_pair(str(corrupt), AFTER):
            pass
    assert len(forks) == 1 and _gone(forks[0])


def test_not_used_when_it_cannot_pay_or_is_not_safe(monkeypatch):
    """Small files, other formats, a second thread, or the switch: read one after the other."""
    import threading

    assert not pair._worth_it(BEFORE, AFTER)  # fixtures are far below MIN_BYTES
    monkeypatch.setattr(pair, "MIN_BYTES", 0)
    assert pair._worth_it(BEFORE, AFTER)
    assert not pair._worth_it(BEFORE, fixture("tfformats"))  # not HDF5 or zip
    monkeypatch.setenv("KAUDIT_PARALLEL_LOAD", "0")
    assert not pair._worth_it(BEFORE, AFTER)
    monkeypatch.delenv("KAUDIT_PARALLEL_LOAD")
    monkeypatch.setenv("KAUDIT_H5_PARSER", "h5py")
    assert not pair._worth_it(BEFORE, AFTER)
    monkeypatch.delenv("KAUDIT_H5_PARSER")
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not pair._worth_it(BEFORE, AFTER)  # forking with another thread running is not safe
    finally:
        stop.set()
        t.join()
    assert pair._worth_it(BEFORE, AFTER)


def test_variable_fields_are_the_dataclass_fields():
    """Variable.from_fields (the readers' and this module's fast constructor) relies on this list."""
    import dataclasses

    from kaudit.checkpoint import _VARIABLE_FIELDS, Variable

    assert tuple(f.name for f in dataclasses.fields(Variable)) == _VARIABLE_FIELDS
    fields = ("d/kernel", "d", "Dense", "kernel", (3, 4), "float32", True, "model", "d/d/kernel:0", True)
    assert Variable.from_fields(fields) == Variable(*fields)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Variable.from_fields(fields).path = "x"


def test_prefetched_bytes_are_the_bytes_raw_bytes_reads():
    """What the parent reads while it waits (H5Store.prefetch_small) is handed out once per
    variable, byte for byte what raw_bytes reads without it; the budget bounds it."""
    plain, warm = load(AFTER), load(AFTER)
    try:
        warm.store.prefetch_small()
        assert warm.store._prefetched and len(warm.store._prefetched) == len(warm.all_variables)
        for v in warm.all_variables:
            expect = plain.store.raw_bytes(v, 1 << 30)
            assert warm.store.raw_bytes(v, 1 << 30) == expect
            assert v.location not in warm.store._prefetched  # handed out once
        assert warm.store._prefetched == {}
        warm.store.prefetch_small(budget=1)
        assert len(warm.store._prefetched) == 1
    finally:
        plain.close()
        warm.close()
