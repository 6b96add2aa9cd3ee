"""Compiled statistics kernels: every statistic of a changed pair in one pass over a block.

The numpy path of :mod:`kaudit.stats` makes about 14 passes over each chunk (docs/performance.md);
these kernels make one, in compiled code that releases the GIL, so the diff's two worker threads
keep both cores busy. They are used only where they pay (:func:`for_pair`): numba is optional
(``pip install 'kaudit[fast]'``), and loading the kernels costs about 0.3-0.5 s once per process,
so only pairs of at least :data:`MIN_ELEMS` values in a diff of at least :data:`MIN_TOTAL` use
them. ``KAUDIT_KERNELS=numpy`` turns them off.

What they return is the numpy path's, field by field (``tests/test_kernels.py``): the same
float64 element operations in the same order, so ``max_abs``, ``argmax``, ``max_rel`` and the
counts are bit for bit the same; the int8 kernel's sums are exact integers, as on the numpy
path. Float sums (norms, ``<a, b>``, ``sum |a - b|``, ``sum (a - b)^2``) are summed in another
order than numpy's, so they may differ in the last bits (about 1e-12 relative on 1 Mi-value
blocks; the tests allow 1e-9).
A block holding a non-finite value (or squares too large for float64) is left to the numpy path:
the float kernel says so and the caller discards its result.
"""

from __future__ import annotations

import functools
import os
import threading
from types import SimpleNamespace
from typing import Any

#: Pairs of at least this many values use the kernels (16 Mi: ~0.05 s saved per pair and core)...
MIN_ELEMS = 1 << 24
#: ...in a diff of at least this many value pairs in all (1 Gi: a 2 GB bfloat16 or 4 GB float32
#: checkpoint), where loading them (~0.35 s and ~120 MiB, once per process) is small beside the
#: work. Smaller models keep the numpy path: the 0.5 GB pair of the benchmarks is 0.62 s and
#: 91 MiB with it, 0.67 s and 212 MiB with the kernels.
MIN_TOTAL = 1 << 30

_lock = threading.Lock()
_loaded: Any = None  # None: not tried yet; False: unavailable; else the kernels
_reason = "not loaded yet"


def worth_loading(total: int) -> bool:
    """Whether a diff of ``total`` value pairs lets its large changed pairs use the kernels
    (decided from the tables alone: the same files always take the same path)."""
    return total >= MIN_TOTAL


def for_pair(params: int) -> Any:
    """The kernels for a pair of ``params`` values, or None for the numpy path."""
    if params < MIN_ELEMS:
        return None
    k = load()
    return k or None


def load() -> Any:
    """The compiled kernels (a namespace of functions), or False when numba is not installed or
    ``KAUDIT_KERNELS=numpy``. Loaded once per process, under a lock (two diff threads may ask)."""
    global _loaded, _reason
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is None:
            if os.environ.get("KAUDIT_KERNELS", "").strip().lower() == "numpy":
                _loaded, _reason = False, "KAUDIT_KERNELS=numpy"
            else:
                try:
                    k = _compile()
                except ImportError:
                    _loaded, _reason = False, "numba is not installed (pip install 'kaudit[fast]')"
                else:
                    try:
                        _warm_up(k)
                    except Exception as e:  # numba imports but cannot compile here: the numpy path
                        _loaded, _reason = False, f"numba could not compile the kernels: {_why(e)}"
                    else:
                        _loaded, _reason = k, "numba"
    return _loaded


def give_up(e: BaseException) -> None:
    """A kernel failed during a diff (numba could not compile a new block layout, ...): the rest
    of this process takes the numpy path, which computes the same statistics (the block that
    failed included: the caller hands it to the numpy path with its statistics untouched)."""
    global _loaded, _reason
    with _lock:
        _loaded, _reason = False, f"a kernel failed during a diff: {_why(e)}"


def _why(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0][:200]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _warm_up(k: SimpleNamespace) -> None:
    """Compile (or load from numba's cache) every kernel for the block types the diff passes, so
    that a numba that imports but cannot compile is found here, not inside a diff."""
    import numpy as np

    for dt in (np.float32, np.float64):
        a, b = np.arange(4, dtype=dt), np.arange(4, dtype=dt)[::-1].copy()
        k.float_block(a, b, 0.0)
        k.float_exceed(a, b, 0.0, 1e-3)
        k.float_first(a, b, 3.0)
    a8 = np.arange(-2, 2, dtype=np.int8)
    k.int8_block(a8, a8[::-1].copy(), int8_limits(0.0, 0.0))


@functools.lru_cache(maxsize=16)
def int8_limits(atol: float, rtol: float):
    """For |b| = 0..128, the largest integer |a - b| (0..255) with |a - b| <= atol + rtol * |b| in
    float64, numpy's order; -1 where none is (the tolerance test of the numpy path, tabulated:
    it is monotonic in |a - b|). Cached: one table per tolerance, never written to."""
    import numpy as np

    t = np.arange(129, dtype=np.float64) * rtol
    t += atol
    within = np.arange(256, dtype=np.float64)[None, :] <= t[:, None]
    return within.sum(axis=1).astype(np.int64) - 1


def status() -> str:
    """Which path large changed pairs take (the benchmarks print it). Loads the kernels."""
    k = load()
    if not k:
        return f"numpy ({_reason})"
    return f"compiled (numba), pairs of {MIN_ELEMS:,}+ values in diffs of {MIN_TOTAL:,}+"


def _compile() -> SimpleNamespace:
    import numba
    import numpy as np

    def njit(fastmath=False):
        def wrap(fn):
            opts = {"nogil": True, "error_model": "numpy", "fastmath": fastmath}
            try:  # cached in __pycache__ beside this file, or numba's user cache when that is read-only
                return numba.njit(cache=True, **opts)(fn)
            except RuntimeError:  # no writable cache anywhere: compile once per process
                return numba.njit(**opts)(fn)

        return wrap

    # Sums may be reassociated and their multiply-adds fused (they are sums in another order
    # anyway); nothing else may be: no "nnan"/"ninf" (the finiteness test below must stay), no
    # "arcp" (d / |b| is the numpy path's quotient). The tolerance test |a - b| <= atol + rtol * |b|
    # with rtol != 0 is a separate function without fast math, so that no fused multiply-add
    # changes its rounding.
    sums = {"reassoc", "contract"}

    @njit(fastmath=sums)
    def float_block(a, b, atol):  # pragma: no cover - compiled; tested through kaudit.stats
        """Same-dtype float32 or float64 blocks. Returns (finite, na2, nb2, ab, sum_abs, sum_sq,
        max_abs, n_unequal, n_exceed at rtol 0, max_rel); finite is False when a value or a square
        is not finite (the rest is then meaningless)."""
        na2 = nb2 = ab = sabs = ssq = 0.0
        m = 0.0
        mrel = 0.0
        nun = 0
        nex = 0
        for i in range(a.size):
            x = np.float64(a[i])
            y = np.float64(b[i])
            na2 += x * x
            nb2 += y * y
            ab += x * y
            d = abs(x - y)
            sabs += d
            ssq += d * d
            m = max(m, d)
            nun += d != 0.0
            nex += not d <= atol
            r = d / abs(y)  # inf where b == 0 != a; NaN where a == b == 0, which never wins
            mrel = r if r > mrel else mrel
        finite = np.isfinite(na2) and np.isfinite(nb2)
        return finite, na2, nb2, ab, sabs, ssq, m, nun, nex, mrel

    @njit()
    def float_exceed(a, b, atol, rtol):  # pragma: no cover - compiled
        """How many |a - b| > atol + rtol * |b|, in float64, in numpy's order: (|b| * rtol) + atol."""
        nex = 0
        for i in range(a.size):
            x = np.float64(a[i])
            y = np.float64(b[i])
            t = abs(y) * rtol
            t += atol
            nex += not abs(x - y) <= t
        return nex

    @njit()
    def float_first(a, b, m):  # pragma: no cover - compiled
        """The first index where |a - b| == m (the numpy path's argmax)."""
        for i in range(a.size):
            if abs(np.float64(a[i]) - np.float64(b[i])) == m:
                return i
        return -1

    @njit()
    def int8_block(a, b, limit):  # pragma: no cover - compiled
        """int8 blocks: exact integer sums (int64). ``limit[|b|]`` is the largest |a - b| within
        tolerance at that |b| (:func:`int8_limits`). Returns (na2, nb2, ab, sum_abs, sum_sq,
        max_abs, first argmax, n_unequal, n_exceed, max_rel)."""
        na2 = nb2 = ab = sabs = ssq = 0
        m = 0
        nun = 0
        for i in range(a.size):  # integer sums: vectorized
            x = np.int64(a[i])
            y = np.int64(b[i])
            na2 += x * x
            nb2 += y * y
            ab += x * y
            d = abs(x - y)
            sabs += d
            ssq += d * d
            m = max(m, d)
            nun += d != 0
        im = 0
        nex = 0
        mrel = 0.0
        if m == 0 and limit.min() >= 0:
            return na2, nb2, ab, sabs, ssq, m, im, nun, nex, mrel  # equal block, every value within tolerance
        top = np.zeros(129, np.int64)  # the largest |a - b| at each |b| (0..128)
        for i in range(a.size):
            y = np.int64(b[i])
            ay = abs(y)
            d = abs(np.int64(a[i]) - y)
            top[ay] = max(top[ay], d)
            nex += d > limit[ay]
        for ay in range(129):  # d / |b| grows with d: the largest quotient is among these
            if top[ay] > 0:
                r = np.float64(top[ay]) / np.float64(ay)  # inf where b == 0 != a
                mrel = max(mrel, r)
        for i in range(a.size):
            if abs(np.int64(a[i]) - np.int64(b[i])) == m:
                im = i
                break
        return na2, nb2, ab, sabs, ssq, m, im, nun, nex, mrel

    return SimpleNamespace(
        float_block=float_block, float_exceed=float_exceed, float_first=float_first, int8_block=int8_block
    )
