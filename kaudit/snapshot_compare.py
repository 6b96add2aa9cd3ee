"""Comparing a pair where at least one side is a snapshot without values (``kaudit snapshot``
without ``--values``): what hashes and summary statistics prove, and nothing more
(docs/metrics.md). Snapshots are written by ``baseline.py`` and read by ``readers/snapshot.py``."""

from __future__ import annotations

import math

from .checkpoint import Checkpoint, Variable
from .readers.snapshot import COUNT_KEYS, STAT_KEYS
from .stats import PairStats, digest, summarize


def compare_without_values(
    ca: Checkpoint, a: Variable, cb: Checkpoint, b: Variable, *, atol: float, rtol: float, equal_nan: bool = True
) -> PairStats:
    """Compare a pair where at least one side is a snapshot without values: hashes and summary
    statistics only. What they prove, and nothing more (docs/metrics.md):

    * the same dtype and sha256: the values are identical (under ``equal_nan=False`` each NaN
      counts over tolerance, as it does between files holding the same bytes);
    * else the values differ, and closeness is unverifiable. The statistics bound ``max_abs``
      from below (:func:`max_abs_at_least`); when the bound exceeds every element's tolerance
      (``atol + rtol * max |b|``), an element over tolerance is proven.

    ``extra`` says which: ``{"no_values": True, "row": {...}, "max_abs_at_least": x, "over": bool}``.
    """
    if a.dtype == b.dtype and digest(ca, a) == digest(cb, b):
        if equal_nan or _integral(a):
            return PairStats(size=a.params, identical=True)
        nan = _stats_of(ca, a).get("nan") or 0
        if not nan:
            return PairStats(size=a.params, identical=True)
        st = PairStats(size=a.params, identical=False, n_exceed=nan, n_unequal=nan, max_abs=math.inf)
        st.extra = {
            "no_values": True,
            "max_abs_at_least": math.inf,
            "over": True,
            "row": {**_counts(ca, a, cb, b), "max_abs": math.inf, "n_exceed": nan, "frac_exceed": nan / a.params},
        }
        return st
    sa, sb = _stats_of(ca, a), _stats_of(cb, b)
    lb = max_abs_at_least(a, sa, sb)
    peak_b = max(abs(sb["min"]), abs(sb["max"])) if sb.get("min") is not None else 0.0
    st = PairStats(size=a.params, identical=False)
    st.extra = {
        "no_values": True,
        "row": _counts(ca, a, cb, b),
        "max_abs_at_least": lb,
        "over": lb > atol + rtol * peak_b,
    }
    return st


def max_abs_at_least(a: Variable, sa: dict, sb: dict) -> float | int:
    """A lower bound on max |a - b|, proven from the statistics of two differing tensors of a's
    shape: inf when their NaN or Inf counts differ (some place holds a non-finite value against
    another value); else the largest of |max a - max b| and |min a - min b| (exact), and of
    |mean a - mean b|, |std a - std b| and |L2 a - L2 b| / sqrt(n) less their float64 rounding
    (each is at most max |a - b|: mean, std and L2 / sqrt(n) are 1-Lipschitz in the max norm);
    for integers at least 1 (their bytes differ, so their values do). Over the finite values: if
    those sit at other places in a and b, some place has a finite value against a non-finite one
    and max |a - b| is inf, so the bound holds either way."""
    if sa.get("nan") != sb.get("nan") or sa.get("inf") != sb.get("inf"):
        return math.inf
    n = a.params - (sa.get("nan") or 0) - (sa.get("inf") or 0)
    ends = [v for v in (sa.get("min"), sa.get("max"), sb.get("min"), sb.get("max")) if v is not None]
    if n <= 0 or len(ends) < 4:
        return 1 if _integral(a) else 0.0
    bound = max(abs(sa["max"] - sb["max"]), abs(sa["min"] - sb["min"]))
    # rounding of a streamed float64 mean, std or L2 / sqrt(n) of n values: below (n + 16) * 2**-52 * max |x|
    # per side (recursive summation's bound, which numpy's pairwise sums and the block merges stay under)
    slack = 4 * (n + 16) * 2.0**-52 * max(abs(v) for v in ends)
    for k, scale in (("mean", 1.0), ("std", 1.0), ("l2", 1.0 / math.sqrt(n))):
        x, y = sa.get(k), sb.get(k)
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y):
            bound = max(bound, abs(x - y) * scale - slack)
    if _integral(a):  # min/max are float64: exact up to 2**53
        return max(int(bound), 1) if all(abs(v) <= 2**53 for v in ends) else 1
    return bound


def _integral(v: Variable) -> bool:
    return v.dtype.startswith(("int", "uint", "bool"))


def _counts(ca: Checkpoint, a: Variable, cb: Checkpoint, b: Variable) -> dict:
    sa, sb = _stats_of(ca, a), _stats_of(cb, b)
    return {"nan_a": sa.get("nan"), "nan_b": sb.get("nan"), "inf_a": sa.get("inf"), "inf_b": sb.get("inf")}


def _stats_of(ckpt: Checkpoint, v: Variable) -> dict:
    known = getattr(ckpt.store, "stats", None)
    if known is not None:
        return known(v)
    cache = ckpt.__dict__.setdefault("_kaudit_stat_cache", {})
    if v.location not in cache:
        s = summarize(ckpt, v)
        cache[v.location] = {k: getattr(s, k) for k in (*STAT_KEYS, *COUNT_KEYS)}
    return cache[v.location]
