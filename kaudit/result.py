"""The immutable outcome of a diff. Renderers (``kaudit.report``) only read it."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from . import views
from .schema import ANNOTATION_COLUMNS, DIFF_COLUMNS, INSPECT_STAT_COLUMNS, RULES, STATUSES

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ANNOTATION_COLUMNS",
    "DIFF_COLUMNS",
    "INSPECT_STAT_COLUMNS",
    "RULES",
    "STATUSES",
    "DiffResult",
    "DiffRow",
    "InspectResult",
    "Picture",
]

#: One aligned pair: an immutable row with the ``DIFF_COLUMNS`` as attributes (built from the
#: column list at run time, so a type checker sees any row).
if TYPE_CHECKING:
    DiffRow = Any
else:
    DiffRow = namedtuple("DiffRow", DIFF_COLUMNS)


@dataclass(frozen=True)
class Picture:
    """An A | B | B - A montage of one changed conv kernel, drawn while the diff had both files
    open (``kaudit.diff(..., pictures=N)``): reports embed it without reopening any file."""

    path: str
    path_b: str
    png: bytes = field(repr=False)
    width: int
    height: int


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
    #: Montages of the first changed conv kernels (``pictures`` of :func:`kaudit.diff`), and how
    #: many conv kernels changed in all.
    pictures: tuple[Picture, ...] = field(default=(), repr=False)
    pictures_total: int = 0

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
        return views.render("diff_dict", self)

    def render(self, fmt: str = "table", **kw) -> str:
        return views.render("diff", self, fmt, **kw)

    def __str__(self) -> str:
        return self.render("table")

    def _repr_html_(self) -> str:
        return self.render("html")


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
        row = namedtuple("InspectRow", self.columns)  # type: ignore[misc]
        return [row(**r) for r in self.records]

    def to_dict(self) -> dict:
        return views.render("inspect_dict", self)

    def render(self, fmt: str = "table", **kw) -> str:
        return views.render("inspect", self, fmt, **kw)

    def __str__(self) -> str:
        return self.render("table")
