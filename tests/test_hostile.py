"""Issue #8: hostile and broken files never run code, never read outside, never crash.

Every case of ``tests/hostile/corpus.py`` goes through ``kaudit inspect`` and ``kaudit diff`` as a
subprocess (``python -m kaudit``) under a 2 GiB address-space limit and a 60 s timeout, with a
private TMPDIR and ``-o`` to a private directory. Refused inputs must exit 2 with one stderr line
naming the file and the problem, no traceback, no output file, no temporary file left; readable
ones must be read. No case may write the Lambda marker or leak /etc/passwd. A subset runs again
in-process (``kaudit.cli.main``); Ctrl-C is tested on files large enough to be interrupted.
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from .conftest import ROOT, fixture
from .hostile import corpus as C

MEM_LIMIT = 2 << 30  # RLIMIT_AS of every kaudit child
TIMEOUT = 60.0
RSS_BOUND_KB = 1536 * 1024  # peak resident memory of any child
MiB = C.MiB

try:
    PASSWD_LINE = Path("/etc/passwd").read_text().splitlines()[0]
except (OSError, IndexError):
    PASSWD_LINE = None


# -- the corpus, built once per session (collection needs the case names) -------------------------

_CORPUS_DIR = Path(tempfile.mkdtemp(prefix="kaudit-hostile-"))


def _cleanup_corpus() -> None:
    for dirpath, _dirs, files in os.walk(_CORPUS_DIR):
        for f in files:
            try:
                os.chmod(os.path.join(dirpath, f), 0o600)
            except OSError:
                pass
    shutil.rmtree(_CORPUS_DIR, ignore_errors=True)


atexit.register(_cleanup_corpus)
CASES = C.build_corpus(_CORPUS_DIR)
BY_NAME = {c.name: c for c in CASES}
RUNNABLE = [c for c in CASES if c.expect != C.HANG]


def _param(c: C.Case):
    marks = [pytest.mark.slow] if c.slow else []
    return pytest.param(c.name, id=c.name, marks=marks)


# -- running kaudit as a child -----------------------------------------------------------------------


@dataclass
class Run:
    rc: int | None
    out: str
    err: str
    seconds: float
    maxrss_kb: int
    timed_out: bool


_libc = ctypes.CDLL(None, use_errno=True)


def _drop_read_override() -> None:
    """In the child, as root: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding
    set, so that a chmod 000 file is unreadable to it as it would be to any user."""
    for cap in (1, 2):
        if _libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _can_drop_caps() -> bool:
    try:
        r = subprocess.run([sys.executable, "-c", "pass"], preexec_fn=_drop_read_override, timeout=30)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def spawn(
    args: list[str],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
    unprivileged: bool = False,
    mem_limit: int | None = MEM_LIMIT,
) -> Run:
    """``python -m kaudit ARGS`` with an address-space limit; returns exit code, output and the
    child's own peak RSS (from wait4)."""

    def limits():
        if mem_limit:
            resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if unprivileged:
            _drop_read_override()

    e = {k: v for k, v in os.environ.items() if k not in ("KAUDIT_DEBUG", "KAUDIT_NO_DIRECT_READ")}
    e["PYTHONPATH"] = str(ROOT)
    e.update(env or {})
    t0 = time.monotonic()
    p = subprocess.Popen(
        [sys.executable, "-m", "kaudit", *args],
        cwd=cwd,
        env=e,
        preexec_fn=limits,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    chunks: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda k=k, s=s: chunks.__setitem__(k, s.read()))
        for k, s in (("out", p.stdout), ("err", p.stderr))
    ]
    for t in readers:
        t.start()
    done = threading.Event()
    killed = []

    def kill():
        if not done.is_set():
            killed.append(True)
            p.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    _pid, status, usage = os.wait4(p.pid, 0)
    done.set()
    timer.cancel()
    for t in readers:
        t.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stdout.close()
    p.stderr.close()
    return Run(
        None if killed else p.returncode,
        chunks.get("out", b"").decode("utf-8", "replace"),
        chunks.get("err", b"").decode("utf-8", "replace"),
        time.monotonic() - t0,
        usage.ru_maxrss,
        bool(killed),
    )


def _workdirs(base: Path) -> tuple[Path, Path, Path]:
    work, tmp, mark = base / "work", base / "tmp", base / "marker"
    for d in (work, tmp, mark):
        d.mkdir(parents=True, exist_ok=True)
    return work, tmp, mark / "ran"


def _unprivileged(c: C.Case) -> bool:
    """Whether to drop the read override in the child (skips when that is impossible)."""
    if not (c.as_nobody and os.geteuid() == 0):
        return False
    if not _can_drop_caps():
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE: chmod 000 does not deny reads")
    return True


def run_case(c: C.Case, command: str, base: Path, unprivileged: bool = False) -> tuple[Run, Path, Path, Path]:
    work, tmp, marker = _workdirs(base / command)
    out_file = work / "out.json"
    target = c.path
    if command == "inspect":
        args = ["inspect", str(target), "--format", "json", "-o", str(out_file)]
    else:
        args = [
            "diff",
            str(c.base or fixture("tutorial/k2_full.h5")),
            str(target),
            "--format",
            "json",
            "-o",
            str(out_file),
            "--no-config",
        ]
    run = spawn(args, cwd=work, env={"TMPDIR": str(tmp), C.MARKER_ENV: str(marker)}, unprivileged=unprivileged)
    return run, work, tmp, marker


def check_common(c: C.Case, run: Run, work: Path, tmp: Path, marker: Path) -> None:
    assert not run.timed_out, f"{c.name}: no answer within {TIMEOUT:.0f} s"
    assert "Traceback" not in run.err, run.err
    assert not marker.exists(), f"{c.name}: the model's code ran"
    leftovers = [p.name for p in work.iterdir() if p.name != "out.json"] + [p.name for p in tmp.iterdir()]
    assert not leftovers, f"{c.name}: temporary files left behind: {leftovers}"
    assert run.maxrss_kb < RSS_BOUND_KB, f"{c.name}: peak RSS {run.maxrss_kb / 1024:.0f} MiB"
    if PASSWD_LINE:
        written = (work / "out.json").read_text(errors="replace") if (work / "out.json").exists() else ""
        for text in (run.out, run.err, written):
            assert PASSWD_LINE not in text, f"{c.name}: content of /etc/passwd leaked"


def check_refused(c: C.Case, run: Run, work: Path) -> None:
    lines = [ln for ln in run.err.splitlines() if ln.strip()]
    assert run.rc == 2, f"{c.name}: exit {run.rc}, stderr {run.err!r}"
    assert len(lines) == 1, f"{c.name}: stderr is not one line: {run.err!r}"
    line = lines[0]
    assert line.startswith("kaudit: error: "), line
    assert "internal error" not in line, line
    assert c.named in line, f"{c.name}: the error does not name {c.named!r}: {line}"
    assert re.search(c.message, line, re.I), f"{c.name}: {c.message!r} not in {line!r}"
    assert run.out == ""
    assert not (work / "out.json").exists(), f"{c.name}: an output file was written"


def check_read(c: C.Case, run: Run, work: Path, command: str) -> None:
    expected = (0,) if command == "inspect" else c.diff_rc
    assert run.rc in expected, f"{c.name}: {command} exit {run.rc}, stderr {run.err!r}"
    assert "error" not in run.err, run.err
    json.loads((work / "out.json").read_text())


@pytest.mark.parametrize("name", [_param(c) for c in RUNNABLE])
def test_case_subprocess(name, tmp_path):
    """inspect and diff, each as a child process, concurrently."""
    c = BY_NAME[name]
    unprivileged = _unprivileged(c)
    results: dict[str, tuple] = {}

    def go(cmd):
        results[cmd] = run_case(c, cmd, tmp_path, unprivileged)

    threads = [threading.Thread(target=go, args=(cmd,)) for cmd in ("inspect", "diff")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for cmd in ("inspect", "diff"):
        run, work, tmp, marker = results[cmd]
        check_common(c, run, work, tmp, marker)
        if c.expect == C.REFUSED:
            check_refused(c, run, work)
        else:
            check_read(c, run, work, cmd)


# -- in-process, through kaudit.cli.main ------------------------------------------------------------

IN_PROCESS = [c for c in RUNNABLE if not c.slow and not c.as_nobody]


@pytest.mark.parametrize("name", [_param(c) for c in IN_PROCESS])
def test_case_in_process(name, tmp_path, capsys, monkeypatch):
    from kaudit.cli import main

    c = BY_NAME[name]
    marker = tmp_path / "ran"
    monkeypatch.setenv(C.MARKER_ENV, str(marker))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.delenv("KAUDIT_DEBUG", raising=False)
    out_file = tmp_path / "report.json"
    code = main(["inspect", str(c.path), "--format", "json", "-o", str(out_file)])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    assert not marker.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "report.json"] == []
    if c.expect == C.REFUSED:
        lines = cap.err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("kaudit: error: "), cap.err
        assert c.named in lines[0] and re.search(c.message, lines[0], re.I), lines[0]
        assert not out_file.exists()
    else:
        assert code == 0, cap.err
        json.loads(out_file.read_text())


def test_debug_shows_the_traceback(tmp_path):
    c = BY_NAME["external_link_to_etc_passwd"]
    run = spawn(["--debug", "inspect", str(c.path)], cwd=tmp_path)
    assert run.rc == 2
    assert "Traceback" in run.err and "UnsafeInputError" in run.err
    assert run.err.strip().splitlines()[-1].startswith("kaudit: error: ")


# -- the corpus itself ------------------------------------------------------------------------------


def test_corpus_covers_the_issue():
    groups = {c.group for c in CASES}
    assert len(CASES) >= 30
    assert {"special", "truncated", "structure", "links", "dtypes", "zip", "sharded", "sizes", "code"} <= groups
    for word in (
        "external_link",
        "external_storage",
        "virtual_dataset",
        "soft_link_cycle",
        "hard_link_cycle",
        "zip_bomb",
        "zip_entry_dotdot",
        "declared_1e12",
        "sharded_shard_dotdot",
        "sharded_shard_absolute",
        "model_config_deeply_nested",
        "model_config_110MB",
        "layer_names_absent_group",
        "weight_names_absent_dataset",
        "fifo",
        "unreadable",
        "lambda_tf_keras",
        "lambda_keras3",
    ):
        assert any(word in c.name for c in CASES), word
    for label in ("legacy_h5", "keras", "weights_h5", "sharded"):
        assert sum(c.name.startswith(f"truncated_{label}") for c in CASES) >= 2, label


def test_committed_data_is_small():
    total = sum(p.stat().st_size for p in C.DATA.iterdir())
    assert total < 200_000, total


def test_bombs_are_small_on_disk():
    """The corpus never writes what it declares: gigabytes stay a few MB."""
    for name in ("zip_bomb_declared", "single_4GiB_chunk", "zip_config_110MB"):
        assert BY_NAME[name].path.stat().st_size < 16 << 20


# -- Lambda layers: the model's code never runs -------------------------------------------------------

_AUDIT_CHILD = r"""
import json, sys
watched = {"payload": 0, "pickle": 0}
payload = bytes.fromhex(sys.argv[3])
def hook(event, args):
    data = args[0] if args and isinstance(args[0], (bytes, bytearray)) else b""
    if event in ("marshal.loads", "marshal.load") and payload in data:
        watched["payload"] += 1
    elif event in ("exec", "compile") and args and getattr(args[0], "co_filename", None) == sys.argv[4]:
        watched["payload"] += 1
    elif event.startswith("pickle."):
        watched["pickle"] += 1
sys.addaudithook(hook)
from kaudit.cli import main
code = main(["inspect", sys.argv[1], "--format", "json", "-o", sys.argv[2]])
heavy = sorted(m for m in ("keras", "tensorflow", "tf_keras", "torch", "jax") if m in sys.modules)
print(json.dumps({"code": code, "watched": watched, "heavy": heavy}))
"""


def _payload_code(case: C.Case) -> bytes:
    """The marshalled bytecode of the Lambda, as stored in the file's config."""
    if case.path.suffix == ".keras":
        import zipfile

        with zipfile.ZipFile(case.path) as z:
            text = z.read("config.json").decode()
    else:
        with h5py.File(case.path, "r") as f:
            text = f.attrs["model_config"]
            text = text.decode() if isinstance(text, bytes) else text
    m = re.search(r'"(4wEA[^"]+)"', text)  # base64 of marshal data starts with 0xe3 0x01 ...
    assert m, "no marshalled function in the config"
    return base64.b64decode(m.group(1).encode().decode("unicode_escape"))


@pytest.mark.parametrize("name", ["lambda_tf_keras_legacy_h5", "lambda_keras3_archive"])
def test_lambda_never_deserialised(name, tmp_path):
    """Audit hooks in the child: the payload's bytecode is never unmarshalled or executed, nothing
    is unpickled, and neither Keras nor TensorFlow is imported; the weights are still read."""
    if name not in BY_NAME:
        pytest.skip("Lambda models missing from tests/hostile/data")
    c = BY_NAME[name]
    code = _payload_code(c)
    out = tmp_path / "vars.json"
    marker = tmp_path / "ran"
    e = dict(os.environ, PYTHONPATH=str(ROOT), **{C.MARKER_ENV: str(marker)})
    r = subprocess.run(
        [sys.executable, "-c", _AUDIT_CHILD, str(c.path), str(out), code.hex(), C.PAYLOAD_FILENAME],
        capture_output=True,
        text=True,
        env=e,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res == {"code": 0, "watched": {"payload": 0, "pickle": 0}, "heavy": []}
    assert not marker.exists()
    doc = json.loads(out.read_text())
    assert "dense_out/kernel" in json.dumps(doc)


@pytest.mark.slow
@pytest.mark.keras
def test_lambda_payload_is_live(tmp_path):
    """The committed Lambda models really are hostile: Keras itself runs the payload when it
    loads them (tf_keras for the .h5; Keras 3 with safe_mode=False for the .keras)."""
    pytest.importorskip("tf_keras")
    pytest.importorskip("keras")
    scripts = {
        "lambda_tf_keras.h5": "import os; os.environ['TF_CPP_MIN_LOG_LEVEL']='3'; import sys, numpy, tf_keras; "
        "m = tf_keras.models.load_model(sys.argv[1], compile=False); m(numpy.zeros((1, 4)))",
        "lambda_keras3.keras": "import os; os.environ['KERAS_BACKEND']='tensorflow'; "
        "os.environ['TF_CPP_MIN_LOG_LEVEL']='3'; import sys, numpy, keras; "
        "m = keras.saving.load_model(sys.argv[1], compile=False, safe_mode=False); "
        "m(numpy.zeros((1, 4)))",
    }
    procs = {}
    for fname, script in scripts.items():
        marker = tmp_path / f"{fname}.ran"
        procs[fname] = (
            marker,
            subprocess.Popen(
                [sys.executable, "-c", script, str(C.DATA / fname)],
                env=dict(os.environ, **{C.MARKER_ENV: str(marker)}),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            ),
        )
    for fname, (marker, p) in procs.items():
        _out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode(errors="replace")[-2000:]
        assert marker.exists(), f"{fname}: Keras loaded it without running the Lambda?"


@pytest.mark.slow
@pytest.mark.keras
def test_lambda_models_can_be_rebuilt(tmp_path):
    """``make_lambda_models`` still works with the installed Keras versions, and kaudit reads
    the fresh files without running them."""
    pytest.importorskip("tf_keras")
    pytest.importorskip("keras")
    made = C.make_lambda_models(tmp_path, tmp_path / "scratch-marker")
    marker = tmp_path / "ran"
    for p in made.values():
        run = spawn(["inspect", str(p)], cwd=tmp_path, env={C.MARKER_ENV: str(marker)})
        assert run.rc == 0, run.err
        assert "dense_out/kernel" in run.out
    assert not marker.exists()


# -- a known HDF5 library defect ------------------------------------------------------------------------


@pytest.mark.parametrize("name", [c.name for c in CASES if c.expect == C.HANG])
def test_known_hdf5_hang_is_stopped_by_the_watchdog(name, tmp_path):
    """HDF5 1.14 loops forever on a corrupted global heap collection, in C, holding the GIL.
    The command line's stall watchdog (kaudit/_watchdog.py) stops it: exit 2, one line naming
    the file, nothing left behind. (kaudit's own metadata parser reads this file without HDF5, see
    the next test; the h5py path is forced here, as for any file that parser hands to h5py.)"""
    path = str(BY_NAME[name].path)
    run = spawn(
        ["inspect", path, "-o", str(tmp_path / "out.json"), "--format", "json"],
        cwd=tmp_path,
        env={"KAUDIT_STALL_TIMEOUT": "3", "KAUDIT_H5_PARSER": "h5py"},
        timeout=30,
    )
    assert not run.timed_out and run.rc == 2
    lines = [ln for ln in run.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("kaudit: error: ") and path in lines[0]
    assert "no progress for 3 s" in lines[0] and "Traceback" not in run.err
    assert not (tmp_path / "out.json").exists()


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("name", [c.name for c in CASES if c.expect == C.HANG][:1])
def test_worker_dies_with_its_supervisor(name, tmp_path):
    """A CI job's timeout SIGKILLs kaudit's supervisor (the process it started); the worker,
    stuck in the HDF5 library's endless loop in C, must not live on, orphaned, at full CPU."""
    e = {k: v for k, v in os.environ.items() if k != "KAUDIT_DEBUG"}
    e.update(PYTHONPATH=str(ROOT), KAUDIT_STALL_TIMEOUT="300", KAUDIT_H5_PARSER="h5py")
    sup = subprocess.Popen(
        [sys.executable, "-m", "kaudit", "inspect", str(BY_NAME[name].path)],
        cwd=tmp_path,
        env=e,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        worker, deadline = None, time.monotonic() + 30
        while worker is None and time.monotonic() < deadline:
            with open(f"/proc/{sup.pid}/task/{sup.pid}/children") as fh:
                kids = [int(k) for k in fh.read().split()]
            worker = kids[0] if kids else None
            time.sleep(0.05)
        assert worker is not None, "the supervisor started no worker"
        time.sleep(1.5)  # the worker is in HDF5's loop by now (the watchdog would wait 300 s)
        assert _alive(worker)
        sup.kill()
        sup.wait(timeout=10)
        deadline = time.monotonic() + 1.0
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(worker), "the worker outlived its supervisor"
    finally:
        sup.kill()
        sup.wait()


@pytest.mark.parametrize("name", [c.name for c in CASES if c.expect == C.HANG])
def test_known_hdf5_hang_is_refused_at_once(name, tmp_path):
    """The pure-Python parser walks a global heap collection as HDF5 does and sees where HDF5
    would loop forever (a free-space object of size 0 reached after a changed collection size) or
    read past the collection: the file is reported damaged at once, exit 2, without waiting for
    the watchdog and without handing it to h5py."""
    path = str(BY_NAME[name].path)
    run = spawn(["inspect", path, "--format", "json"], cwd=tmp_path, env={"KAUDIT_STALL_TIMEOUT": "60"}, timeout=30)
    assert not run.timed_out and run.rc == 2 and run.seconds < 10, run
    lines = [ln for ln in run.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and path in lines[0] and "it is damaged (" in lines[0] and "global heap" in lines[0]


# -- Ctrl-C ---------------------------------------------------------------------------------------------


def _big_legacy_pair(d: Path, n: int = 50_000_000) -> tuple[Path, Path]:
    """Two legacy weights-only files of one float32 Dense kernel, ~200 MB each, slightly apart."""
    paths = []
    for name, delta in (("big_a.h5", 0.0), ("big_b.h5", 1e-3)):
        p = d / name
        with h5py.File(p, "w") as f:
            f.attrs["layer_names"] = np.array([b"dense"])
            g = f.create_group("dense")
            g.attrs["weight_names"] = np.array([b"dense/kernel:0"])
            ds = g.create_dataset("dense/kernel:0", shape=(n // 1000, 1000), dtype="<f4")
            block = (np.sin(np.arange(5_000_000, dtype=np.float64)) + delta).astype("<f4").reshape(5000, 1000)
            for i in range(0, n // 1000, 5000):
                ds[i : i + 5000] = block
        paths.append(p)
    return paths[0], paths[1]


def _family(pid: int) -> list[int]:
    """The process and its children: the command line does its work in a worker process
    (kaudit/_watchdog.py)."""
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return out


def _opened(pid: int, name: str) -> bool:
    for p in _family(pid):
        try:
            if any(os.readlink(f"/proc/{p}/fd/{fd}").endswith(name) for fd in os.listdir(f"/proc/{p}/fd")):
                return True
        except OSError:
            continue
    return False


def _interrupt(args: list[str], cwd: Path, env: dict, ready, signals: int = 1) -> tuple[subprocess.Popen, str, bool]:
    e = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    p = subprocess.Popen(
        [sys.executable, "-m", "kaudit", *args],
        cwd=cwd,
        env=e,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not ready(p.pid) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    running = p.poll() is None
    for _i in range(signals):
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            time.sleep(0.01)
    _out, err = p.communicate(timeout=120)
    return p, err, running


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see when the files are open")
@pytest.mark.parametrize("signals", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_ctrl_c_during_diff(tmp_path, signals):
    a, b = _big_legacy_pair(tmp_path)
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    p, err, running = _interrupt(
        ["diff", str(a), str(b), "-o", "out.json"],
        work,
        {"TMPDIR": str(tmp)},
        lambda pid: _opened(pid, "big_b.h5"),
        signals,
    )
    if not running:
        pytest.skip("kaudit finished before it could be interrupted (machine too fast for this file size)")
    assert p.returncode == 130, err
    assert err.strip().splitlines() == ["kaudit: interrupted"], err
    assert list(work.iterdir()) == [] and list(tmp.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see when the files are open")
def test_ctrl_c_while_inflating_keras_member(tmp_path):
    """The inflated copy of a deflated model.weights.h5 lives in a private temporary directory
    that is removed when kaudit is interrupted."""
    members = C._keras_members()
    block = np.sin(np.arange(MiB // 4, dtype=np.float64)).astype("<f4").tobytes()
    stream, _ = C.deflate_repeated(block, 300, raw=True)  # 300 MiB inflated
    p = tmp_path / "slow.keras"
    p.write_bytes(
        C._keras_zip(members, **{"model.weights.h5": {"data": stream, "method": 8, "size": 300 * MiB, "crc": 0}})
    )
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()

    def inflating(pid):
        return any(tmp.glob("kaudit-*/member.h5"))

    proc, err, running = _interrupt(["inspect", str(p), "-o", "out.json"], work, {"TMPDIR": str(tmp)}, inflating)
    if not running:
        pytest.skip("kaudit finished before it could be interrupted")
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["kaudit: interrupted"], err
    assert list(work.iterdir()) == [] and list(tmp.iterdir()) == []


def test_stored_member_has_no_temp_copy(tmp_path):
    """A stored (uncompressed) model.weights.h5 is read in place: nothing is extracted."""
    e = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path))
    code = (
        "import os, sys; from kaudit.readers import load; ck = load(sys.argv[1]); "
        "print(os.listdir(os.environ['TMPDIR'])); ck.close()"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, fixture("tutorial/k3.keras")], env=e, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_zip_bomb_inflates_nothing(tmp_path):
    """The declared-size guard fires before a single byte is inflated."""
    from kaudit.errors import UnsafeInputError
    from kaudit.readers import load

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    old = tempfile.tempdir
    tempfile.tempdir = str(tmp)
    try:
        with pytest.raises(UnsafeInputError, match="zip bomb"):
            load(BY_NAME["zip_bomb_declared"].path)
    finally:
        tempfile.tempdir = old
    assert list(tmp.iterdir()) == []


def test_fifo_does_not_block(tmp_path):
    """Opening a FIFO for reading would block forever with no writer: it is refused from stat()."""
    c = BY_NAME["fifo"]
    t0 = time.monotonic()
    run = spawn(["inspect", str(c.path)], cwd=tmp_path, timeout=30)
    assert run.rc == 2 and time.monotonic() - t0 < 30
    assert stat.S_ISFIFO(os.stat(c.path).st_mode)
