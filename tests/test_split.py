"""One file's layers read on two cores (kaudit/readers/_split.py).

Inside ``_split.allowed()`` a reader's layer loop runs its second half in a forked child. The
checkpoint must be the very one a plain ``load`` gives (variables, notes, where every value lies,
the values); a child that fails must leave its half to the parent, so that errors are raised as
without the split; and no child may be left behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from kaudit import readers
from kaudit.errors import KauditError
from kaudit.readers import _h5parse as P
from kaudit.readers import _hdf5 as H
from kaudit.readers import _split

from .conftest import FIXTURES, REAL, fixture
from .conftest import reaped as _gone
from .test_h5parse import REAL_FILES, _params

pytestmark = pytest.mark.skipif(not H._HAVE_PREADV, reason="the fast path is taken only where os.preadv exists")

#: every single-file HDF5 model and .keras archive of the fixtures
FILES = sorted(str(p) for p in FIXTURES.rglob("*") if p.suffix in (".h5", ".keras") and "_0000" not in p.name)


def assert_same(x, y, values: bool = True) -> None:
    """Two checkpoints of one file are the same: table, notes, layouts (and values)."""
    assert x.all_variables == y.all_variables
    assert (x.format, x.keras_version, x.has_config, x.notes, x.files) == \
        (y.format, y.keras_version, y.has_config, y.notes, y.files)
    assert x.store._entries == y.store._entries
    assert x.store._direct_layouts == y.store._direct_layouts
    if values:
        for vx, vy in zip(x.all_variables, y.all_variables, strict=True):
            ax, ay = x.read(vx), y.read(vy)
            assert ax.dtype == ay.dtype and np.array_equal(ax, ay, equal_nan=True)


def _split_load(path):
    with _split.allowed():
        return readers.load(path)


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, FIXTURES))
def test_split_reading_is_the_plain_reading(path, forks):
    with readers.load(path) as plain, _split_load(path) as split:
        assert_same(split, plain)
        assert type(split.store.files[0]) is P.Group
    assert all(_gone(pid) for pid in forks)


def test_the_loop_is_really_split(forks):
    """Each file with a layer loop of two or more forks once, no more (nested models run whole)."""
    with _split_load(fixture("nested/k2_full.h5")) as ckpt:
        assert len(forks) == 1
        assert any("/" in v.layer for v in ckpt.all_variables)  # the nested model's layers are there
    with _split_load(fixture("tutorial/k3.keras")):
        assert len(forks) == 2
    with readers.load(fixture("tutorial/k3.keras")):
        assert len(forks) == 2  # not allowed outside the block
    assert all(_gone(pid) for pid in forks)


def test_short_loops_h5py_files_and_threads_run_here(forks, monkeypatch):
    monkeypatch.setattr(_split, "MIN_ITEMS", 64)
    with _split_load(fixture("tutorial/k2_full.h5")):
        assert forks == []  # 5 layers: not worth a fork
    monkeypatch.setattr(_split, "MIN_ITEMS", 2)
    monkeypatch.setenv("KAUDIT_H5_PARSER", "h5py")
    with _split_load(fixture("tutorial/k2_full.h5")) as ckpt:
        assert type(ckpt.store.files[0]) is h5py.File and forks == []  # never the HDF5 library in a child
    monkeypatch.delenv("KAUDIT_H5_PARSER")
    import threading

    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        with _split_load(fixture("tutorial/k2_full.h5")):
            assert forks == []  # forking with another thread running is not safe
    finally:
        stop.set()
        t.join()


def test_a_child_that_fails_leaves_its_half_to_the_parent(forks, monkeypatch):
    def broken(*_args):
        raise RuntimeError("the child fails")

    monkeypatch.setattr(_split, "_encode", broken)  # runs in the child only
    path = fixture("nested/k3.keras")
    with readers.load(path) as plain, _split_load(path) as split:
        assert len(forks) == 1
        assert_same(split, plain)
    assert _gone(forks[0])


def _edited(tmp_path: Path, names) -> str:
    """The tutorial's legacy file with its 'layer_names' replaced."""
    import shutil

    dst = tmp_path / "edited.h5"
    shutil.copy(fixture("tutorial/k2_full.h5"), dst)
    with h5py.File(dst, "r+") as f:
        f["model_weights"].attrs["layer_names"] = np.array([n.encode() for n in names])
    return str(dst)


@pytest.mark.parametrize("case", ["missing group in the second half", "repeated across the halves",
                                  "two errors, one per half"])
def test_errors_are_raised_as_without_the_split(case, forks, tmp_path):
    names = ["L0_conv2d", "L1_flatten", "L2_dense", "L3_dense", "L4_bn"]
    if case == "missing group in the second half":
        names[4] = "L9_none"
    elif case == "repeated across the halves":
        names[4] = "L0_conv2d"
    else:  # the first one (in the first half) is the one reported
        names[1], names[4] = "L8_none", "L9_none"
    path = _edited(tmp_path, names)
    with pytest.raises(KauditError) as plain:
        readers.load(path)
    with pytest.raises(KauditError) as split:
        _split_load(path)
    assert str(split.value) == str(plain.value)
    assert forks and all(_gone(pid) for pid in forks)


@pytest.mark.real
@pytest.mark.parametrize("path", _params(REAL, REAL_FILES) or [pytest.param(None, id="corpus-absent")])
def test_split_reading_of_real_models(path, forks):
    """Public models nobody on the team wrote: the same table, layouts and notes split or not
    (values are where the layouts say), or the same error."""
    if path is None:
        pytest.skip(f"shared real-model corpus not available: {REAL}")
    try:
        plain = readers.load(path)
    except KauditError as exc:
        with pytest.raises(KauditError) as split_error:
            _split_load(path)
        assert str(split_error.value) == str(exc)
        return
    with plain, _split_load(path) as split:
        assert_same(split, plain, values=False)
    assert all(_gone(pid) for pid in forks)


@pytest.mark.parametrize("command", ["inspect", "audit", "snapshot"])
def test_single_file_commands_read_layers_on_two_cores(command, forks, monkeypatch):
    """inspect, audit and snapshot read one file: its layers on two cores, the same result
    (and not with KAUDIT_PARALLEL_LOAD=0)."""
    import kaudit
    from kaudit.inspection import inspect

    run = {"inspect": lambda p: inspect(p).records, "audit": lambda p: kaudit.audit(p).findings,
           "snapshot": lambda p: kaudit.snapshot(p)}[command]
    path = fixture("nested/k3.keras")
    split = run(path)
    assert len(forks) == 1 and _gone(forks[0])
    monkeypatch.setenv("KAUDIT_PARALLEL_LOAD", "0")
    assert run(path) == split
    assert len(forks) == 1
