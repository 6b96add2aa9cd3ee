"""Baselines without storing the checkpoint: ``kaudit snapshot FILE -o baseline.json``.

A snapshot keeps, per variable, the path, shape, dtype, trainable flag, a sha256 of the values
and summary statistics (min, max, mean, std, L2 norm): a few KB per hundred variables, small
enough for git. ``kaudit diff baseline.json new.h5`` then compares what can be compared:

* identity, exactly, by hash (so ``frozen`` rules work bit for bit);
* drift of the summary statistics within the tolerance (|s_a - s_b| <= atol + rtol * |s_b| for
  each of min, max, mean, std and L2 norm);
* structure and trainability as usual.

Element-wise figures (max_abs, rel_l2, cosine, n_exceed...) need the full tensors; they are
left empty and the result says so.
"""

from __future__ import annotations

import os

from ._version import __version__
from .checkpoint import Checkpoint, Variable
from .schema import SNAPSHOT_VERSION
from .stats import PairStats, digest, summarize

SNAPSHOT_FORMAT = "kaudit-snapshot"
STAT_KEYS = ("min", "max", "mean", "std", "l2")


def snapshot(source, *, optimizer: bool = False) -> dict:
    """The snapshot document of a checkpoint (path or Checkpoint) as a JSON-ready dict."""
    from .readers import opened

    with opened(source) as ckpt:
        rows = []
        for v in ckpt.select(optimizer):
            s = summarize(ckpt, v)
            rows.append({
                "path": v.path, "layer": v.layer, "layer_class": v.layer_class, "name": v.name,
                "shape": list(v.shape), "dtype": v.dtype, "trainable": v.trainable, "kind": v.kind,
                "named": v.named, "sha256": digest(ckpt, v),
                "min": s.min, "max": s.max, "mean": s.mean, "std": s.std, "l2": s.l2, "nan": s.nan, "inf": s.inf,
            })
        t = ckpt.totals
        return {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "kaudit_version": __version__,
            "file": os.path.basename(ckpt.file),
            "source_format": ckpt.format,
            "keras_version": ckpt.keras_version,
            "has_config": ckpt.has_config,
            "totals": t.as_dict(),
            "variables": rows,
        }


def compare_without_values(ca: Checkpoint, a: Variable, cb: Checkpoint, b: Variable, *, atol: float,
                           rtol: float) -> PairStats:
    """Compare a pair where at least one side is a snapshot (hash and summary statistics only)."""
    st = PairStats(size=a.params)
    same = a.dtype == b.dtype and digest(ca, a) == digest(cb, b)
    st.identical = same
    row: dict = {}
    if same:
        row.update(max_abs=0.0, mean_abs=0.0, rms=0.0, max_rel=0.0, rel_l2=0.0, cosine=1.0, n_exceed=0,
                   frac_exceed=0.0)
    else:
        sa, sb = _stats_of(ca, a), _stats_of(cb, b)
        over = 0
        for k in STAT_KEYS:
            x, y = sa.get(k), sb.get(k)
            if x is None or y is None:
                continue
            if not abs(x - y) <= atol + rtol * abs(y):
                over += 1
        st.n_exceed = over  # statistics over tolerance: decides close vs changed
        row.update(n_exceed=None, frac_exceed=None)  # element counts need the full tensors
    for k in ("nan", "inf"):
        row[f"{k}_a"] = _stats_of(ca, a).get(k)
        row[f"{k}_b"] = _stats_of(cb, b).get(k)
    st.extra = {"no_values": True, "row": row}
    return st


def _stats_of(ckpt: Checkpoint, v: Variable) -> dict:
    known = getattr(ckpt.store, "stats", None)
    if known is not None:
        return known(v)
    cache = ckpt.__dict__.setdefault("_kaudit_stat_cache", {})
    if v.location not in cache:
        s = summarize(ckpt, v)
        cache[v.location] = {"min": s.min, "max": s.max, "mean": s.mean, "std": s.std, "l2": s.l2,
                             "nan": s.nan, "inf": s.inf}
    return cache[v.location]
