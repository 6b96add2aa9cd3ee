"""The metadata parser is at least as strict as libhdf5 (issue 13, item 2): a differential test.

Every HDF5 file kaudit ships as a fixture and every HDF5 file of the shared real-model corpus is
damaged many times over with seeded random byte changes (1 to 16 bytes; half anywhere, half in
and after the structures HDF5 walks: superblock, object headers' neighbourhood, B-trees, heaps,
symbol table nodes). Each damaged copy is read twice:

* by the parser alone (``fast``: in this process, h5py forbidden), which must finish at once;
* by kaudit's h5py path (``KAUDIT_H5_PARSER=h5py``, the libhdf5 that Keras loads with), in a
  worker process that is killed when libhdf5 hangs (it does, on some damaged global heaps).

The rule: whenever the parser reads a damaged copy as a model, h5py reads it too, to the same
table and the same values. A copy h5py refuses or hangs on is refused by the parser: as damaged
(exit 2 at once) or as something it leaves to h5py, whose refusal then stands. And the default
path (parser, then h5py) gives the parser's refusal of a damaged file, never h5py's reading.

``KAUDIT_MUTATIONS`` sets the copies per file (default 200); the seed is the file's name, so a
failure names a reproducible copy. About 12,600 copies take about four minutes on two cores
(marked slow; CI runs them).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kaudit import readers
from kaudit.errors import CorruptFileError, KauditError
from kaudit.storage import hdf5 as H
from kaudit.storage import hdf5_parse as P

from .conftest import FIXTURES, REAL, ROOT

MUTATIONS = int(os.environ.get("KAUDIT_MUTATIONS", "200"))
HANG_SECONDS = 6.0
SIGNATURES = (b"TREE", b"HEAP", b"SNOD", b"GCOL", b"\x89HDF")


def _hdf5_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in (".h5", ".hdf5", ".keras") and p.stat().st_size < 64 << 20:
            with open(p, "rb") as fh:
                if fh.read(8) == b"\x89HDF\r\n\x1a\n":
                    out.append(p)
    return out


FIXTURE_FILES = _hdf5_files(FIXTURES)
REAL_FILES = _hdf5_files(REAL)


def table(ckpt) -> list:
    """The checkpoint as the test compares it: every variable's facts and a digest of its values."""
    rows = []
    for v in ckpt.select(True):
        a = np.ascontiguousarray(ckpt.read(v))
        rows.append(
            [v.path, list(v.shape or ()), str(v.dtype), v.trainable, v.kind, hashlib.sha1(a.tobytes()).hexdigest()]
        )
    return rows


_WORKER = r"""
import hashlib, json, sys
import numpy as np
from kaudit import readers
from kaudit.errors import KauditError
sys.path.insert(0, sys.argv[1])
from tests.test_h5_strictness import table
print("ready", flush=True)
for line in sys.stdin:
    try:
        with readers.opened(line.strip()) as ckpt:
            out = {"outcome": "ok", "table": table(ckpt)}
    except KauditError as exc:
        out = {"outcome": "refused", "why": str(exc)[-300:]}
    except BaseException as exc:
        out = {"outcome": "bug", "why": repr(exc)[-300:]}
    print(json.dumps(out), flush=True)
"""


class H5pyWorker:
    """kaudit's h5py path in a process of its own, restarted when libhdf5 hangs or crashes."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def _start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), KAUDIT_H5_PARSER="h5py")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(ROOT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def read(self, path: Path) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        p = self.proc
        assert p is not None and p.stdin is not None and p.stdout is not None
        p.stdin.write(f"{path}\n")
        p.stdin.flush()
        ready, _, _ = select.select([p.stdout], [], [], HANG_SECONDS)
        line = p.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        p.kill()
        p.wait()
        self.proc = None
        return {"outcome": "hang or crash"}

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="module")
def h5py_worker():
    w = H5pyWorker()
    yield w
    w.close()


class _Fallback(Exception):
    pass


def _no_h5py(*_a, **_k):
    raise _Fallback


def fast_read(path: Path, monkeypatch) -> dict:
    """The parser alone: a table, a refusal (``damaged`` or another kaudit error), or ``h5py``
    when it would hand the file to h5py (with the parser's last reason). Bounded: an alarm stops
    a walk that would not end."""
    why = [""]
    real_no = P._no

    def no(reason: str):
        why[0] = reason
        real_no(reason)

    with monkeypatch.context() as m:
        m.setattr(H, "open_h5", _no_h5py)
        m.setattr(P, "_no", no)
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(20)
        try:
            with readers.opened(str(path)) as ckpt:
                return {"outcome": "ok", "table": table(ckpt)}
        except _Fallback:
            return {"outcome": "h5py", "why": why[0]}
        except CorruptFileError as exc:
            return {"outcome": "damaged" if "it is damaged (" in str(exc) else "refused", "why": str(exc)}
        except KauditError as exc:
            return {"outcome": "refused", "why": str(exc)}
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)


def _alarm(*_a):
    raise AssertionError("the parser took more than 20 s over one damaged file")


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, list[int]]:
    hot = [i for sig in SIGNATURES for i in _find_all(data, sig)]
    b = bytearray(data)
    where = []
    for _ in range(rng.randint(1, 16)):
        if hot and rng.random() < 0.5:
            pos = min(len(b) - 1, rng.choice(hot) + rng.randrange(1024))
        else:
            pos = rng.randrange(len(b))
        b[pos] = rng.randrange(256)
        where.append(pos)
    return bytes(b), sorted(where)


def _find_all(data: bytes, sig: bytes) -> list[int]:
    out, start = [], 0
    while (i := data.find(sig, start)) >= 0 and len(out) < 4096:
        out.append(i)
        start = i + 1
    return out


def _check_file(src: Path, count: int, tmp_path: Path, worker: H5pyWorker, monkeypatch) -> dict:
    data = src.read_bytes()
    rng = random.Random(src.name)
    target = tmp_path / src.name
    seen: dict[str, int] = {}
    for k in range(count):
        damaged, where = mutate(data, rng)
        target.write_bytes(damaged)
        fast = fast_read(target, monkeypatch)
        ref = worker.read(target)
        key = f"{fast['outcome']}/{ref['outcome']}"
        seen[key] = seen.get(key, 0) + 1
        context = f"{src} copy {k} (bytes changed at {where}): parser {fast.get('why', fast['outcome'])}; h5py {ref}"
        assert ref["outcome"] != "bug" and fast["outcome"] != "bug", context
        if fast["outcome"] == "ok":  # what the parser reads, libhdf5 reads alike
            assert ref["outcome"] == "ok", "the parser read a file libhdf5 refuses: " + context
            assert fast["table"] == ref["table"], "the parser read other values than libhdf5: " + context
        # what the parser leaves to h5py must not be what libhdf5 hangs on (the command line
        # would wait for its watchdog)
        assert not (fast["outcome"] == "h5py" and ref["outcome"] == "hang or crash"), (
            "the parser left to h5py a file libhdf5 hangs on: " + context
        )
        if fast["outcome"] == "damaged":  # ... and the default path says so, without h5py
            with pytest.raises(CorruptFileError, match=r"it is damaged \("):
                readers.load(str(target)).close()
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("src", FIXTURE_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_parser_is_as_strict_as_libhdf5_on_fixtures(src, tmp_path, h5py_worker, monkeypatch):
    seen = _check_file(src, MUTATIONS, tmp_path, h5py_worker, monkeypatch)
    assert sum(seen.values()) == MUTATIONS
    print(src.name, seen)


@pytest.mark.slow
@pytest.mark.real
@pytest.mark.parametrize("src", REAL_FILES, ids=lambda p: str(p.relative_to(REAL)))
def test_parser_is_as_strict_as_libhdf5_on_real_models(src, tmp_path, h5py_worker, monkeypatch):
    count = MUTATIONS
    seen = _check_file(src, count, tmp_path, h5py_worker, monkeypatch)
    assert sum(seen.values()) == count
    print(src.name, seen)


def test_fixtures_were_found():
    assert len(FIXTURE_FILES) >= 10, FIXTURE_FILES
