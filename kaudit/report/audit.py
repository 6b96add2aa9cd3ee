"""``kaudit audit``'s report: text, Markdown and JSON of a computed ``AuditResult``."""

from __future__ import annotations


def render_audit(result, fmt: str = "table") -> str:
    if fmt == "json":
        import json

        from .json import clean

        return json.dumps(clean({
            "file": result.file, "format": result.format, "variables": result.n_variables,
            "params": result.total_params, "passed": result.passed(), "counts": result.counts(),
            "findings": [f.as_dict() for f in result.findings]}), indent=2) + "\n"
    from tabulate import tabulate

    rows = [[f.severity, f.check, f.path or "", f.message] for f in result.findings]
    c = result.counts()
    head = f"{result.file} ({result.format}): {result.n_variables} variables, {result.total_params:,} params"
    verdict = f"{c['error']} error(s), {c['warning']} warning(s), {c['info']} info. " + (
        "PASS" if result.passed() else "FAIL")
    if fmt == "markdown":
        table = tabulate(rows, headers=["severity", "check", "variable", "finding"], tablefmt="github") if rows else ""
        return f"### kaudit audit: {'PASS' if result.passed() else 'FAIL'}\n\n{head}\n\n{table}\n\n{verdict}\n"
    table = tabulate(rows, headers=["severity", "check", "variable", "finding"], tablefmt="simple") if rows \
        else "no findings"
    return f"{head}\n\n{table}\n\n{verdict}\n"
