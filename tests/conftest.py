"""Shared test helpers: where fixtures and the shared real-model corpus live."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
REAL = Path(os.environ.get("KAUDIT_REAL_MODELS", ROOT.parent / "shared" / "real-models"))


def fixture(rel: str) -> str:
    return str(FIXTURES / rel)


#: Fixtures many tests use: a conv net (first layer 7x7x3) and the fine-tuning pair.
CONVNET, CONVNET_K3 = fixture("convnet/k2_full.h5"), fixture("convnet/k3.keras")
BEFORE, AFTER = fixture("finetune/before_k2.h5"), fixture("finetune/after_k2.h5")


def real(rel: str) -> str:
    """Path of a file of the shared corpus; skips the test when it is absent."""
    p = REAL / rel
    if not p.exists():
        pytest.skip(f"shared real-model corpus not available: {p}")
    return str(p)


def reaped(pid: int) -> bool:
    """A child process of ours was waited for: no such process, not even a zombie, is left."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def truth_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.truth.json")) if root.is_dir() else []


def load_truth(path: Path) -> dict:
    return json.loads(path.read_text())


def run_cli(
    *args: str, cwd: str | os.PathLike | None = None, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """kaudit as a subprocess (python -m kaudit), text output."""
    e = dict(os.environ)
    e.setdefault("PYTHONPATH", str(ROOT))
    if env:
        e.update(env)
    return subprocess.run(
        [sys.executable, "-m", "kaudit", *args], capture_output=True, text=True, cwd=cwd or ROOT, env=e, timeout=timeout
    )


@pytest.fixture
def cli(capsys):
    """kaudit in-process: returns (exit code, stdout, stderr)."""
    from kaudit.cli import main

    def _run(*args: str):
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run


# -- copies edited byte by byte (metadata untouched, or one message changed) ----------------------


def same_layout_copy(src: str, dst: str | os.PathLike, edit) -> str:
    """A byte copy of ``src`` whose stored values are ``edit(variable, stored bytes)`` (bytes of the
    same length): the metadata stays byte for byte the same, as when a model is fine-tuned and
    saved again by the same Keras. Returns ``dst``."""
    from kaudit.readers import load

    data = bytearray(Path(src).read_bytes())
    with load(src) as ckpt:
        for v in ckpt.all_variables:
            layout = ckpt.store._direct_layouts.get(v.location)
            if layout is None:
                continue
            _fi, offset, dtype, shape = layout
            n = dtype.itemsize * int(np.prod(shape))
            new = edit(v, bytes(data[offset : offset + n]))
            assert len(new) == n
            data[offset : offset + n] = new
    Path(dst).write_bytes(bytes(data))
    return str(dst)


def message_offset(path: str, dataset: str, mtype: int) -> int:
    """File offset of the body of the first message of type ``mtype`` in the object header of
    ``dataset`` (a path in an HDF5 file kaudit's parser reads)."""
    from kaudit.storage import hdf5_parse as P

    f = P.File(path)
    try:
        obj = f.root
        for part in dataset.strip("/").split("/"):
            obj = obj.child(part)
        msgs, _refcount = f._messages(obj.addr)
        data = Path(path).read_bytes()
        for kind, _flags, blk, body, _size in msgs:
            if kind == mtype:
                start = obj.addr + 16  # the first block follows the 16-byte prefix (h5py writes one block)
                assert data[start : start + len(blk)] == blk
                return start + body
        raise AssertionError(f"no message of type {mtype} in {dataset}")
    finally:
        f.close()


@pytest.fixture(scope="module")
def keras_hub_models():
    """(keras, keras_hub), or the test is skipped where keras-hub is not installed."""
    pytest.importorskip("keras_hub")
    import keras
    import keras_hub

    return keras, keras_hub
