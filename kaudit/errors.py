"""kaudit's one exception tree.

Every error a user can cause is a :class:`KauditError`. Each class carries the exit code the
command line returns for it, and every message is one line that names the file and says how
to fix the problem. ``kaudit.cli.main`` is the only place that turns them into exit codes;
anything else that escapes is a bug.

Exit-code contract (see docs/cli.md):

* 0: compared, within policy
* 1: compared, policy violated (values, structure or trainability): not an error, a verdict
* 2: could not compare: usage, unreadable or unsupported input, bad policy file
* 130: interrupted (Ctrl-C)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_POLICY = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def printable(text: object) -> str:
    """``text`` safe for a terminal: every character Python's ``str.isprintable()`` rejects
    (control characters such as ESC, BEL and CR, bidirectional overrides, line separators,
    unpaired surrogates...) is shown as an escape, ``\\x1b``, ``\\u202e``. Names inside files are
    untrusted: printed raw, ``\\x1b[2J`` would clear the screen and an OSC sequence set the window
    title. ``report._fmt.text`` is this function; it lives here so that error messages use it too."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else _escape(c) for c in s)


def _escape(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


class KauditError(Exception):
    """Base class: something kaudit could not do. Exit code 2."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, path: object | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint

    def __str__(self) -> str:  # one line, always, and printable (names come from untrusted files)
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return printable(" ".join(text.split()))


class UsageError(KauditError):
    """The command line or API call was malformed."""


class InputError(KauditError):
    """An input file cannot be read as a checkpoint."""


class FileMissingError(InputError):
    """The path does not exist or is not a readable regular file."""


class UnsupportedFormatError(InputError):
    """The file is readable but is not a format kaudit knows."""


class CorruptFileError(InputError):
    """The file claims a known format but its contents are broken or truncated."""


class UnsafeInputError(InputError):
    """The file asks kaudit to do something it refuses: follow an external link, read outside
    the file, extract a path outside the archive, or inflate a zip bomb."""


class MissingDependencyError(KauditError):
    """An optional back-end (TensorFlow) is needed for this input and is not installed."""


class PolicyError(KauditError):
    """A policy file or tolerance option is invalid."""


class VariableNotFoundError(KauditError, KeyError):
    """A variable path asked for does not exist in the checkpoint."""

    def __str__(self) -> str:  # KeyError would quote the message
        return KauditError.__str__(self)
