"""Writing outputs: atomically (temporary file in the same directory, then rename), so an
interrupted or failed run never leaves a half-written report or image behind."""

from __future__ import annotations

import os
import sys
import tempfile

from .errors import printable


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` (``-`` is standard output)."""
    if str(path) == "-":
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        sys.stdout.flush()
        return
    target = os.path.abspath(os.fspath(path))
    if os.path.exists(target) and not os.path.isfile(target) and not os.path.isdir(target):
        # a device or a pipe (-o /dev/null, -o /dev/stderr, a FIFO): written to, never replaced
        with open(target, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        return
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        from .errors import UsageError

        raise UsageError("output directory does not exist", path=directory, hint="create it first")
    fd, tmp = tempfile.mkstemp(prefix=".kaudit-", suffix=".tmp", dir=directory)
    try:
        mode = 0o666 & ~_umask()  # mkstemp makes 0600; a report is an ordinary file
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        else:  # Windows: no fchmod (and only the read-only bit to set)
            os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Progress:
    """A one-line progress indicator on stderr: by default only on a terminal and for large jobs;
    asked for (``enabled=True``, ``--progress``) for every job, with :meth:`note` lines (the files
    being read) and a final line from :meth:`close`."""

    def __init__(self, label: str, enabled: bool | None = None, min_bytes: int = 256 << 20):
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.min_bytes = 0 if enabled is True else min_bytes
        self.asked = enabled is True
        self._shown = False

    def note(self, text: str) -> None:
        """A line of its own (``reading FILE``), when progress was asked for."""
        if self.asked:
            self._clear()
            sys.stderr.write(f"{self.label}: {text}\n")
            sys.stderr.flush()

    def __call__(self, done: int, total: int, what: str) -> None:
        if not self.enabled or total < self.min_bytes:
            return
        pct = 100.0 * done / total if total else 100.0
        sys.stderr.write(f"\r{self.label}: {pct:5.1f}% {printable(what)[-50:]:<50}")
        sys.stderr.flush()
        self._shown = True

    def _clear(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * 80 + "\r")
            sys.stderr.flush()
            self._shown = False

    def close(self, final: str | None = None) -> None:
        """Clear the line; when progress was asked for, end with ``final``."""
        self._clear()
        if final and self.asked:
            sys.stderr.write(f"{self.label}: {final}\n")
            sys.stderr.flush()
