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
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        from .errors import UsageError

        raise UsageError("output directory does not exist", path=directory, hint="create it first")
    fd, tmp = tempfile.mkstemp(prefix=".kaudit-", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a report is an ordinary file
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
    """A one-line progress indicator on stderr, shown only on a terminal and for large jobs."""

    def __init__(self, label: str, enabled: bool | None = None, min_bytes: int = 256 << 20):
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.min_bytes = min_bytes
        self._shown = False

    def __call__(self, done: int, total: int, what: str) -> None:
        if not self.enabled or total < self.min_bytes:
            return
        pct = 100.0 * done / total if total else 100.0
        sys.stderr.write(f"\r{self.label}: {pct:5.1f}% {printable(what)[-50:]:<50}")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * 80 + "\r")
            sys.stderr.flush()
