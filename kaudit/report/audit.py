"""``kaudit audit`` reports: table, Markdown, JSON. They show the AuditResult's verdict, never
decide one; names and messages from the file are escaped per target (``_fmt``)."""

from __future__ import annotations

import json

from tabulate import tabulate

from .._version import __version__
from . import _fmt as F
from .json import clean

HEADERS = ["severity", "check", "variable", "finding", "fails"]


def audit_dict(result) -> dict:
    return clean(
        {
            "kaudit_version": __version__,
            "file": result.file,
            "format": result.format,
            "variables": result.n_variables,
            "params": result.total_params,
            "passed": result.passed,
            "verdict": result.verdict,
            "strict": result.strict,
            "fail_on": list(result.fail_on),
            "policy": result.policy,
            "counts": result.counts(),
            "findings": [{**f.as_dict(), "fails": result.fails(f)} for f in result.findings],
        }
    )


def _rows(result, esc) -> list[list[str]]:
    return [
        [f.severity, f.check, esc(f.path or ""), esc(f.message), "yes" if result.fails(f) else "no"]
        for f in result.findings
    ]


def _verdict_line(result) -> str:
    c = result.counts()
    return (
        f"{c['error']} error(s), {c['warning']} warning(s), {c['info']} info; {len(result.failing)} failing"
        f"{' (--strict: warnings fail)' if result.strict else ''}. {result.verdict}"
    )


def audit_text(result) -> str:
    head = f"{F.text(result.file)} ({result.format}): {result.n_variables} variables, {result.total_params:,} params"
    table = tabulate(_rows(result, F.text), headers=HEADERS, tablefmt="simple") if result.findings else "no findings"
    return f"{head}\n{F.text(F.policy_line(result))}\n\n{table}\n\n{_verdict_line(result)}\n"


def audit_markdown(result) -> str:
    head = f"{F.md(result.file)} ({result.format}): {result.n_variables} variables, {result.total_params:,} params"
    table = (
        tabulate(_rows(result, F.md), headers=HEADERS, tablefmt="github", disable_numparse=True)
        if result.findings
        else "no findings"
    )
    mark = "✅" if result.passed else "❌"
    return (
        f"### kaudit audit: {mark} {result.verdict}\n\n{head}\n\n{F.md(F.policy_line(result))}\n\n{table}\n\n"
        f"{_verdict_line(result)}\n"
    )


def audit_json(result) -> str:
    return json.dumps(audit_dict(result), indent=2, allow_nan=False) + "\n"
