"""Run a function in a forked child process and get its result back as plain data.

Reading the variable table of a model with thousands of small variables is Python work, so
threads would take turns on the GIL; a forked child starts with everything already imported and
works on the second core. Used by ``readers/pair.py`` to read the second file of a diff, and by
``readers/_split.py`` to read the second half of one file's layers. (Handing
half of many small pairs' comparisons to a child was measured too: slower, 57 against 49 ms for
4,000 pairs, as forking a process that holds both tables costs more than it saves.)

The child's result crosses a private pipe in ``marshal`` format: plain lists, tuples, dicts, str,
int, float, bool, None that kaudit built, never bytes of a model file, and never pickle (which
could run code). Whatever goes wrong in the child (an error, a result marshal cannot carry, a
signal) reaches the parent as "no result", and the caller then does the work itself, where errors
are reported as usual. A child never outlives the :func:`forked` block: it is waited for, or
killed when the block is left by an exception.

Forking is used only where it is safe: a POSIX system and no other thread running (forking a
multi-threaded process can deadlock the child).
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import os
import signal
import threading
from collections.abc import Callable, Iterator

_MISSING = object()


def available() -> bool:
    return hasattr(os, "fork") and threading.active_count() == 1


class Child:
    """A forked child's result, once: :meth:`result` waits for it (None when there is none)."""

    def __init__(self, pid: int, fd: int):
        self.pid = pid
        self._fd = fd
        self._value = _MISSING

    def result(self):
        if self._value is _MISSING:
            chunks = []
            with contextlib.suppress(OSError):
                while True:
                    chunk = os.read(self._fd, 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
            self._value = None
            if chunks:
                try:
                    self._value = marshal.loads(b"".join(chunks))
                except (ValueError, EOFError, TypeError):  # cut short: no result
                    self._value = None
            self._close()
        return self._value

    def _close(self, kill: bool = False) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.pid:
            if kill:
                with contextlib.suppress(OSError):
                    os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(self.pid, 0)
            self.pid = 0


@contextlib.contextmanager
def forked(fn: Callable[[], object]) -> Iterator[Child]:
    """Start ``fn()`` in a forked child; yield a :class:`Child` whose ``result()`` is its return
    value (marshalled) or None. Call only where :func:`available` is true."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run, send, exit without running any clean-up of the parent's
        os.close(r)
        # what the parent built is the child's to read, never to collect: out of the cycle
        # collector's passes (which would also copy every page it touches, ~20 ms for a big model)
        gc.freeze()
        data = b""
        try:
            data = marshal.dumps(fn())
        except BaseException:  # noqa: BLE001 - the parent does the work itself and reports it
            data = b""
        finally:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(w, view):]
            finally:
                os._exit(0)
    os.close(w)
    child = Child(pid, r)
    try:
        yield child
    except BaseException:
        child._close(kill=True)
        raise
    child.result()  # waited for, whether the caller asked or not
