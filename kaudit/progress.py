"""Progress from deep inside reading, through a hook the command line installs.

``beat()`` is called from every block of values read and ``status(text)`` when a file is
opened. Both do nothing until :func:`install` gives them somewhere to report to: the command
line's stall watchdog does (``_watchdog.supervise``). A leaf module, so that storage, readers and
the core report progress without knowing who listens.
"""

from __future__ import annotations

from collections.abc import Callable

_beat: Callable[[], None] | None = None
_status: Callable[[str], None] | None = None


def install(beat_hook: Callable[[], None] | None, status_hook: Callable[[str], None] | None) -> None:
    """Send progress to ``beat_hook()`` and ``status_hook(text)`` from now on (None: nowhere)."""
    global _beat, _status
    _beat, _status = beat_hook, status_hook


def beat() -> None:
    """Progress: called from hot loops, so it costs a global lookup when nobody listens."""
    if _beat is not None:
        _beat()


def status(text: str) -> None:
    """What is being done now (the stall watchdog names it if nothing moves)."""
    if _status is not None:
        _status(text)
