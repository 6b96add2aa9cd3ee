"""A stall watchdog for the command line: no input can hang kaudit.

Some damaged HDF5 files make the HDF5 library itself loop forever (a corrupted global heap is
enough; docs/security.md). That loop runs in C while holding Python's global lock, so nothing
inside the process can stop it. ``supervise(work)`` therefore runs the command in a forked
worker process and watches it from a small supervisor:

* the worker reports progress (``beat()`` from every block of values read, ``status()`` when it
  starts reading a file) through a pipe, at most a few times a second;
* when no progress arrives for ``KAUDIT_STALL_TIMEOUT`` seconds (default 120; 0 turns the
  watchdog off), the supervisor kills the worker and exits 2 with one line naming the file;
* Ctrl-C (SIGINT) and SIGTERM are passed on to the worker, which stops cleanly (exit 130); a
  worker that does not stop within a few seconds is killed;
* the worker's exit code is the command's exit code;
* the worker dies with its supervisor: on Linux the kernel sends it SIGKILL when the supervisor
  ends for any reason (``prctl(PR_SET_PDEATHSIG)``; a CI job's timeout SIGKILLs the supervisor,
  and a worker stuck in the HDF5 library would otherwise spin on, orphaned). Elsewhere the
  worker checks at each beat whether its supervisor is still there.

Only the console script / ``python -m kaudit`` use it; ``kaudit.cli.main()`` in-process does not.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from collections.abc import Callable

from . import progress
from .errors import printable

STALL_ENV = "KAUDIT_STALL_TIMEOUT"
DEFAULT_STALL_SECONDS = 120.0
#: Seconds a worker gets to stop after Ctrl-C/SIGTERM before it is killed.
GRACE_SECONDS = 10.0
_BEAT_EVERY = 0.25

_fd: int | None = None  # the worker's end of the pipe; None outside a supervised worker
_last = 0.0
_supervisor: int | None = None  # the supervisor's pid, seen from its worker


def beat() -> None:
    """Progress: called from hot loops, so it costs one clock read almost always."""
    global _last
    if _fd is None:
        return
    now = time.monotonic()
    if now - _last >= _BEAT_EVERY:
        _last = now
        if os.getppid() != _supervisor:  # orphaned (where the kernel does not kill us itself)
            os._exit(2)
        _send(b".\n")


def status(text: str) -> None:
    """What the worker is doing now (named in the stall message)."""
    if _fd is not None:
        _send(b"S" + " ".join(text.split())[:500].encode("utf-8", "replace") + b"\n")


def _send(data: bytes) -> None:
    try:
        os.write(_fd, data)  # type: ignore[arg-type]
    except OSError:
        pass


def stall_seconds() -> float:
    try:
        return float(os.environ.get(STALL_ENV, DEFAULT_STALL_SECONDS))
    except ValueError:
        return DEFAULT_STALL_SECONDS


def supervise(work: Callable[[], int]) -> int:
    """Run ``work()`` (returning an exit code) under the watchdog; return its exit code."""
    timeout = stall_seconds()
    if timeout <= 0 or not hasattr(os, "fork"):
        return work()
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker
        global _fd, _supervisor
        _die_with_parent()
        if os.getppid() != parent:  # the supervisor ended before the line above took effect
            os._exit(2)
        os.close(r)
        _fd, _supervisor = w, parent
        progress.install(beat, status)
        code = 2
        try:
            code = work()
        except SystemExit as exc:  # --help, --version
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    os.close(w)
    return _watch(pid, r, timeout)


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent ends (Linux); elsewhere a no-op
    (``beat()`` then notices the orphaning, unless the worker is stuck inside C)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _watch(pid: int, r: int, timeout: float) -> int:
    interrupted: list[int] = []

    def forward(signum, _frame):
        if not interrupted:
            interrupted.append(signum)
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    last_status = "working"
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            now = time.monotonic()
            wait = deadline - now
            if interrupted:
                wait = min(wait, GRACE_SECONDS)
            if wait <= 0:
                return _kill(pid, last_status, timeout, interrupted)
            try:
                ready, _, _ = select.select([r], [], [], wait)
            except InterruptedError:
                continue
            if not ready:
                if interrupted or time.monotonic() >= deadline:
                    return _kill(pid, last_status, timeout, interrupted)
                continue
            data = os.read(r, 65536)
            if not data:  # the worker closed its end: it is exiting
                return _reap(pid)
            deadline = time.monotonic() + timeout
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.startswith(b"S"):
                    last_status = line[1:].decode("utf-8", "replace")
    finally:
        os.close(r)
        for s, h in old.items():
            signal.signal(s, h)


def _reap(pid: int) -> int:
    while True:
        try:
            _, st = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFEXITED(st):
        return os.WEXITSTATUS(st)
    sig = os.WTERMSIG(st)
    if sig in (signal.SIGINT, signal.SIGTERM):
        return 130
    print(
        f"kaudit: error: the worker process was killed by signal {sig} ({signal.Signals(sig).name}; out of memory?)",
        file=sys.stderr,
    )
    return 2


def _kill(pid: int, what: str, timeout: float, interrupted: list[int]) -> int:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    if interrupted:
        print("kaudit: interrupted", file=sys.stderr)
        return 130
    print(
        f"kaudit: error: {printable(what)}: no progress for {timeout:g} s while reading it, stopped (HDF5 loops "
        f"forever on some corrupted files; set {STALL_ENV} to wait longer)",
        file=sys.stderr,
    )
    return 2
