"""The immutable outcome of a diff. Renderers (``kaudit.report``) only read it."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: The closed vocabulary of pair statuses (docs/metrics.md).
STATUSES = ("identical", "close", "changed", "shape_changed", "dtype_changed", "only_in_a", "only_in_b")

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
)

#: The short names of the rules a pair can fail (``DiffRow.rule`` holds those it failed, in this
#: order, comma-separated): ``structure`` (added, removed, shape or dtype), ``frozen`` (a policy
#: rule: must stay bit-identical), ``tolerance`` (values over atol/rtol), ``must_change`` (a policy
#: rule: did not move), ``trainability`` (the flag changed), ``trainable`` (a policy rule on b's flag).
RULES = ("structure", "frozen", "tolerance", "must_change", "trainability", "trainable")

#: One aligned pair: an immutable row with the ``DIFF_COLUMNS`` as attributes.
DiffRow = namedtuple("DiffRow", DIFF_COLUMNS)


@dataclass(frozen=True)
class DiffResult:
    """What ``kaudit.diff`` found. ``records`` holds one :data:`DiffRow` per aligned pair in Keras
    order and ``table`` the same as a DataFrame with ``DIFF_COLUMNS`` (built when first asked
    for, so a gate that only needs the exit code never imports pandas); ``passed`` is the
    gate's verdict (exit code 0 vs 1)."""

    file_a: str
    file_b: str
    format_a: str
    format_b: str
    records: tuple[DiffRow, ...] = field(repr=False)
    passed: bool
    summary: dict
    failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    policy: dict = field(default_factory=dict)
    montages: tuple[str, ...] = ()

    @cached_property
    def _frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.records, columns=list(DIFF_COLUMNS))

    @property
    def table(self) -> pd.DataFrame:
        return self._frame.copy()

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def with_montages(self, files: list[str]) -> DiffResult:
        return replace(self, montages=tuple(files))

    def rows(self, all_rows: bool = True) -> list[DiffRow]:
        """All pairs, or those worth showing: not identical, failing a rule, or paired other than
        by path (so a structural mapping is always shown)."""
        if all_rows:
            return list(self.records)
        return [r for r in self.records if r.status != "identical" or r.matched_by != "path" or not r.passed]

    def to_dict(self) -> dict:
        from .report.json import diff_dict

        return diff_dict(self)

    def render(self, fmt: str = "table", **kw) -> str:
        from .report import render_diff

        return render_diff(self, fmt, **kw)

    def __str__(self) -> str:
        return self.render("table")

    def _repr_html_(self) -> str:
        return self.render("html")


#: Columns of ``InspectResult.table`` (the variable table plus streamed statistics).
INSPECT_STAT_COLUMNS = ("min", "max", "mean", "std", "nan", "inf")


@dataclass(frozen=True)
class InspectResult:
    """What ``kaudit inspect`` shows: the variable table of one checkpoint with statistics."""

    file: str
    format: str
    keras_version: str | None
    has_config: bool
    totals: object
    #: One dict per variable: ``VARIABLE_COLUMNS`` plus, with statistics, ``INSPECT_STAT_COLUMNS``.
    records: tuple[dict, ...] = field(repr=False)
    columns: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def table(self) -> pd.DataFrame:
        import pandas as pd

        df = pd.DataFrame([dict(r) for r in self.records], columns=list(self.columns))
        df["trainable"] = df["trainable"].astype(object)
        return df

    def rows(self) -> list:
        """The records with attribute access (``r.path``), in Keras order."""
        row = namedtuple("InspectRow", self.columns)
        return [row(**r) for r in self.records]

    def to_dict(self) -> dict:
        from .report.json import inspect_dict

        return inspect_dict(self)

    def render(self, fmt: str = "table", **kw) -> str:
        from .report import render_inspect

        return render_inspect(self, fmt, **kw)

    def __str__(self) -> str:
        return self.render("table")
