"""``kaudit inspect``: the variable table of one checkpoint, with streamed statistics."""

from __future__ import annotations

from . import adapters
from .result import InspectResult
from .schema import ANNOTATION_COLUMNS, INSPECT_STAT_COLUMNS, VARIABLE_COLUMNS
from .stats import summarize


def inspect(source, *, optimizer: bool = False, stats: bool = True, progress=None) -> InspectResult:
    """Describe a checkpoint (path or Checkpoint): variables, totals and, unless ``stats=False``,
    min/max/mean/std and NaN/Inf counts per variable (one streamed pass each). ``progress``, if
    given, is called as ``progress(done_bytes, total_bytes, path)`` after each variable."""
    from .readers import opened

    with opened(source) as ckpt:
        records = [v.as_row() for v in ckpt.select(optimizer)]
        columns = list(VARIABLE_COLUMNS)
        for col in ANNOTATION_COLUMNS:  # only for checkpoints that have such variables
            if any(getattr(v, col) is not None for v in ckpt.select(optimizer)):
                columns.append(col)
                for rec, v in zip(records, ckpt.select(optimizer), strict=True):
                    info = getattr(v, col)
                    rec[col] = info.describe() if info is not None else None
        if stats:
            columns += INSPECT_STAT_COLUMNS
            has_values = getattr(ckpt.store, "has_values", True)
            snapshot_stats = getattr(ckpt.store, "stats", None)  # a snapshot without values: its statistics
            total = sum(v.params * 4 for v in ckpt.select(optimizer))
            done = 0
            for rec, v in zip(records, ckpt.select(optimizer), strict=True):
                s = summarize(ckpt, v).as_dict() if has_values or snapshot_stats is None else snapshot_stats(v)
                rec.update({c: s.get(c) for c in INSPECT_STAT_COLUMNS})
                done += v.params * 4
                if progress is not None:
                    progress(done, total, v.path)
        notes = ckpt.notes + tuple(adapters.delta_notes(ckpt)) if has_adapters(ckpt) else ckpt.notes
        return InspectResult(
            ckpt.file,
            ckpt.format,
            ckpt.keras_version,
            ckpt.has_config,
            ckpt.totals,
            tuple(records),
            tuple(columns),
            notes,
        )


def has_adapters(ckpt) -> bool:
    return any(v.lora is not None and v.lora.role == "a" for v in ckpt.all_variables)
