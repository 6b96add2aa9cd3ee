"""Markdown for pull-request comments and ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

from tabulate import tabulate

from . import _fmt as F
from .text import DIFF_HEADERS, _diff_rows

MAX_ROWS = 50


def diff_markdown(result, all_rows: bool = False, **_kw) -> str:
    out = [f"### kaudit: {'✅' if result.passed else '❌'} {result.verdict}", "",
           f"a: {F.md(result.file_a)} ({result.format_a}) → b: {F.md(result.file_b)} ({result.format_b})", "",
           F.md(F.policy_line(result)), "", F.summary_line(result), ""]
    if result.failures:
        out.append("**Failures**")
        out.append("")
        out += [f"- {F.md(f)}" for f in result.failures[:MAX_ROWS]]
        if len(result.failures) > MAX_ROWS:
            out.append(f"- … and {len(result.failures) - MAX_ROWS} more")
        out.append("")
    rows = _diff_rows(result, all_rows)
    if rows:
        shown = [[F.md(c) for c in r] for r in rows[:MAX_ROWS]]
        out.append(tabulate(shown, headers=DIFF_HEADERS, tablefmt="github", disable_numparse=True))
        if len(rows) > MAX_ROWS:
            out.append(f"\n… and {len(rows) - MAX_ROWS} more rows")
        out.append("")
    for n in result.notes:
        out.append(f"> note: {F.md(n)}")
    return "\n".join(out).rstrip() + "\n"


def inspect_markdown(result) -> str:
    rows = [[F.md(r.path), F.md(r.layer_class or "?"), F.md(F.shape(r.shape)), F.md(r.dtype), F.tri(r.trainable),
             F.num(int(r.params))] for r in result.rows()]
    out = [f"### {F.md(result.file)} ({result.format})", "",
           tabulate(rows, headers=["path", "class", "shape", "dtype", "trainable", "params"], tablefmt="github",
                    disable_numparse=True), ""]
    out += [f"- {line}" for line in result.totals.summary_lines()]
    return "\n".join(out) + "\n"
