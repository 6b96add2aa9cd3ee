"""Renderers: each turns a computed result into text (or bytes). They never compute.

``render_diff(result, fmt)`` and ``render_inspect(result, fmt)`` dispatch on
``table | markdown | csv | json | junit | html``; ``render_audit(result, fmt)`` on
``table | markdown | json``. Text from a file is escaped by the helper of each target (``_fmt``).
"""

from __future__ import annotations

from ..errors import UsageError

DIFF_FORMATS = ("table", "markdown", "csv", "json", "junit", "html")
INSPECT_FORMATS = ("table", "markdown", "csv", "json", "html")
AUDIT_FORMATS = ("table", "markdown", "json")


def render_diff(result, fmt: str = "table", **kw) -> str:
    if fmt == "table":
        from .text import diff_table

        return diff_table(result, **kw)
    if fmt == "markdown":
        from .markdown import diff_markdown

        return diff_markdown(result, **kw)
    if fmt == "csv":
        from ..result import DIFF_COLUMNS

        return to_csv(DIFF_COLUMNS, [r._asdict() for r in result.records])
    if fmt == "json":
        from .json import diff_json

        return diff_json(result)
    if fmt == "junit":
        from .junit import diff_junit

        return diff_junit(result)
    if fmt == "html":
        from .html import diff_html

        return diff_html(result, **kw)
    raise UsageError(f"unknown format {fmt!r}", hint=f"choose one of {', '.join(DIFF_FORMATS)}")


def render_inspect(result, fmt: str = "table", **kw) -> str:
    if fmt == "table":
        from .text import inspect_table

        return inspect_table(result, **kw)
    if fmt == "markdown":
        from .markdown import inspect_markdown

        return inspect_markdown(result)
    if fmt == "csv":
        return to_csv(result.columns, result.records)
    if fmt == "json":
        from .json import inspect_json

        return inspect_json(result)
    if fmt == "html":
        from .html import inspect_html

        return inspect_html(result)
    raise UsageError(f"unknown format {fmt!r}", hint=f"choose one of {', '.join(INSPECT_FORMATS)}")


def render_audit(result, fmt: str = "table") -> str:
    from . import audit

    if fmt == "table":
        return audit.audit_text(result)
    if fmt == "markdown":
        return audit.audit_markdown(result)
    if fmt == "json":
        return audit.audit_json(result)
    raise UsageError(f"unknown format {fmt!r}", hint=f"choose one of {', '.join(AUDIT_FORMATS)}")


def to_csv(columns, records) -> str:
    """CSV with a header row; missing values empty, sequences as text (``(3, 3, 1, 8)``), text
    cells with non-printable characters escaped (``_fmt.text``)."""
    import csv
    import io
    import math

    from ._fmt import text

    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, (list, tuple)):
            return "(" + ", ".join(str(x) for x in v) + ("," if len(v) == 1 else "") + ")"
        if isinstance(v, str):
            return text(v)
        return v

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in records:
        w.writerow([cell(r.get(c)) for c in columns])
    return buf.getvalue()
