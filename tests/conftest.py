"""Shared test helpers: where fixtures and the shared real-model corpus live."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def run_cli(*args: str, cwd: str | os.PathLike | None = None, env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """kaudit as a subprocess (python -m kaudit), text output."""
    e = dict(os.environ)
    e.setdefault("PYTHONPATH", str(ROOT))
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "kaudit", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=e, timeout=timeout)


@pytest.fixture
def cli(capsys):
    """kaudit in-process: returns (exit code, stdout, stderr)."""
    from kaudit.cli import main

    def _run(*args: str):
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run
