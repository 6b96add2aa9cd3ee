"""``kaudit inspect``: the variable table of one checkpoint, with streamed statistics."""

from __future__ import annotations

from .result import INSPECT_STAT_COLUMNS, InspectResult
from .stats import summarize


def inspect(source, *, optimizer: bool = False, stats: bool = True) -> InspectResult:
    """Describe a checkpoint (path or Checkpoint): variables, totals and, unless ``stats=False``,
    min/max/mean/std and NaN/Inf counts per variable (one streamed pass each)."""
    from .readers import opened

    with opened(source) as ckpt:
        table = ckpt.table(optimizer)
        has_values = getattr(ckpt.store, "has_values", True)
        if stats:
            cols: dict[str, list] = {c: [] for c in INSPECT_STAT_COLUMNS}
            for v in ckpt.select(optimizer):
                if has_values:
                    s = summarize(ckpt, v).as_dict()
                else:
                    s = ckpt.store.stats(v)
                for c in INSPECT_STAT_COLUMNS:
                    cols[c].append(s.get(c))
            for c in INSPECT_STAT_COLUMNS:
                table[c] = cols[c]
        return InspectResult(ckpt.file, ckpt.format, ckpt.keras_version, ckpt.has_config, ckpt.totals, table,
                             ckpt.notes)
