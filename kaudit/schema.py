"""The vocabulary that producers and renderers share: the columns of every table kaudit
computes, the closed set of pair statuses, the snapshot format's version. A leaf module: it
imports nothing of kaudit, so the core that fills these tables and the reports that print them
both depend on it and never on each other (docs/api.md documents each column)."""

from __future__ import annotations

#: Columns of ``Checkpoint.variables``, in this order (documented in docs/api.md).
VARIABLE_COLUMNS = (
    "path",
    "layer",
    "layer_class",
    "name",
    "shape",
    "dtype",
    "trainable",
    "params",
    "kind",
    "location",
)

KINDS = ("model", "optimizer", "metric")

#: The closed vocabulary of pair statuses (docs/metrics.md).
STATUSES = ("identical", "close", "changed", "shape_changed", "dtype_changed", "only_in_a", "only_in_b")

#: The short names of the rules a pair can fail (``DiffRow.rule`` holds those it failed, in this
#: order, comma-separated): ``structure`` (added, removed, shape or dtype), ``frozen`` (a policy
#: rule: must stay bit-identical), ``tolerance`` (values over atol/rtol), ``must_change`` (a policy
#: rule: did not move), ``trainability`` (the flag changed), ``trainable`` (a policy rule on b's flag),
#: ``adapters_only`` (a weight without a LoRA adapter changed), ``max_adapter_change`` (an adapted
#: weight moved more than the policy allows).
RULES = (
    "structure",
    "frozen",
    "tolerance",
    "must_change",
    "trainability",
    "trainable",
    "adapters_only",
    "max_adapter_change",
)

#: Columns of ``DiffResult.table``, in this order (docs/api.md documents each).
DIFF_COLUMNS = (
    "path",
    "path_b",
    "status",
    "matched_by",
    "kind",
    "layer_class",
    "shape_a",
    "shape_b",
    "dtype_a",
    "dtype_b",
    "trainable_a",
    "trainable_b",
    "trainable_changed",
    "params",
    "atol",
    "rtol",
    "max_abs",
    "mean_abs",
    "rms",
    "max_rel",
    "rel_l2",
    "rel_change",
    "cosine",
    "n_exceed",
    "frac_exceed",
    "nan_a",
    "nan_b",
    "inf_a",
    "inf_b",
    "argmax",
    "passed",
    "rule",
    "failures",
    "quant",
    "sqnr_db",
    "lora",
)

#: Columns of ``InspectResult.table`` (the variable table plus streamed statistics).
INSPECT_STAT_COLUMNS = ("min", "max", "mean", "std", "nan", "inf")

#: Columns ``InspectResult.table`` has after ``VARIABLE_COLUMNS`` only when some variable is part
#: of a quantized layer (``quant``) or a LoRA adapter (``lora``): one line saying what it is.
ANNOTATION_COLUMNS = ("quant", "lora")

#: Version of the ``kaudit snapshot`` JSON format (readers/snapshot.py reads it, baseline.py writes it).
SNAPSHOT_VERSION = 1

#: Columns of ``TrendResult.table`` (one row per variable and checkpoint), docs/api.md.
TREND_COLUMNS = (
    "step",
    "checkpoint",
    "file",
    "path",
    "layer",
    "norm",
    "rel_change_prev",
    "rel_change_first",
    "max_abs_prev",
    "max_abs_first",
    "status_prev",
    "status_first",
    "passed",
)

#: The checks of ``kaudit audit`` (docs/audit.md) and the severities of their findings.
AUDIT_CHECKS = (
    "nan_inf",
    "bn_variance",
    "dead_units",
    "extreme",
    "mixed_dtypes",
    "optimizer_state",
    "trainable_unknown",
    "positional_names",
)
AUDIT_SEVERITIES = ("error", "warning", "info")
