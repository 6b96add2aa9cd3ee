"""The cyclic garbage collector paused while tables are built and compared."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block: reading a table and comparing it
    allocate objects by the ten thousand (rows, parsed headers, names) and free few of them, so
    every collection they trigger walks them all to find nothing (13 % of a 4,000-variable load,
    docs/performance.md). Reference counting still frees what it frees; the collector is turned
    back on when the outermost such block ends (nested blocks, or two threads, leave it to it)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
