"""Markdown for pull-request comments and ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

from tabulate import tabulate

from . import _fmt as F
from .drift import drift_mermaid
from .text import DIFF_HEADERS, _diff_rows

#: Rows (and failure lines) shown by default; ``--top N`` changes it, ``--top 0`` shows all.
MAX_ROWS = 50
#: Failure lines listed above the table (the verdict column names every row's rule).
MAX_FAILURES = 10


def diff_markdown(
    result, all_rows: bool = False, sort: str = "change", top: int | None = None, chart: bool = True, **_kw
) -> str:
    """The diff for a pull-request comment: verdict, summary, failures, the drift chart as a
    Mermaid bar chart (GitHub draws it), then the rows in ``sort`` order, the first ``top`` (default
    MAX_ROWS; 0: all), saying how to see the rest."""
    limit = MAX_ROWS if top is None else top
    out = [
        f"### kaudit: {'✅' if result.passed else '❌'} {result.verdict}",
        "",
        f"a: {F.md(result.file_a)} ({result.format_a}) → b: {F.md(result.file_b)} ({result.format_b})",
        "",
        F.md(F.policy_line(result)),
        "",
        F.verdict_summary(result),
        "",
    ]
    if result.failures:
        failed, messages, _counts = F.failure_report(result, sort)
        out.append(f"**Failures** ({len(messages)} in {len(failed)} row{'' if len(failed) == 1 else 's'})")
        out.append("")
        out += [f"- {F.md(f)}" for f in messages[:MAX_FAILURES]]
        if len(messages) > MAX_FAILURES:
            out.append(
                f"- … and {len(messages) - MAX_FAILURES} more (the verdict column names each row's rule; "
                "every message: `--format json`)"
            )
        out.append("")
    if chart and result.records:
        out.append(drift_mermaid(result))
        out.append("")
    rows = _diff_rows(result, all_rows, sort)
    if rows:
        shown = [[F.md(str(c)) for c in r] for r in (rows[:limit] if limit else rows)]
        out.append(tabulate(shown, headers=DIFF_HEADERS, tablefmt="github", disable_numparse=True))
        if len(shown) < len(rows):
            out.append(
                f"\n… and {len(rows) - len(shown)} more rows: `kaudit diff A B --format markdown --top 0` "
                "shows all, `--format csv` gives every column"
            )
        out.append("")
    for n in result.notes:
        out.append(f"> note: {F.md(n)}")
    return "\n".join(out).rstrip() + "\n"


def inspect_markdown(result) -> str:
    rows = [
        [
            F.md(r.path),
            F.md(r.layer_class or "?"),
            F.md(F.shape(r.shape)),
            F.md(r.dtype),
            F.tri(r.trainable),
            F.num(int(r.params)),
        ]
        for r in result.rows()
    ]
    out = [
        f"### {F.md(result.file)} ({result.format})",
        "",
        tabulate(
            rows,
            headers=["path", "class", "shape", "dtype", "trainable", "params"],
            tablefmt="github",
            disable_numparse=True,
        ),
        "",
    ]
    out += [f"- {line}" for line in result.totals.summary_lines()]
    return "\n".join(out) + "\n"
