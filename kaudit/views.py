"""Where results find their renderers, without importing them.

A result (``DiffResult``, ``InspectResult``, ``Checkpoint``) renders itself through
:func:`render`, which looks the renderer up here; ``kaudit.report`` registers its renderers when
it is imported (the package's front door imports it). So the core never imports a view, and a
view never computes: imports run one way, from ``report`` down to the core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_RENDERERS: dict[str, Callable[..., Any]] = {}


def register(kind: str, renderer: Callable[..., Any]) -> None:
    """``renderer(result, fmt, **options) -> str`` renders results of ``kind`` (``diff``,
    ``inspect``, ``checkpoint``, ``diff_dict``, ``inspect_dict``)."""
    _RENDERERS[kind] = renderer


def render(kind: str, result, *args, **options):
    renderer = _RENDERERS.get(kind)
    if renderer is None:  # kaudit.report was never imported: impossible through the package
        raise LookupError(f"no renderer registered for {kind!r} (import kaudit.report)")
    return renderer(result, *args, **options)
