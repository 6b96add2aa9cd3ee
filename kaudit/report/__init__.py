"""Renderers: each turns a computed result into text (or bytes). They never compute.

``render_diff(result, fmt)`` and ``render_inspect(result, fmt)`` dispatch on
``table | markdown | csv | json | junit | html``; ``render_audit(result, fmt)`` on
``table | markdown | json``. Text from a file is escaped by the helper of each target (``_fmt``).
"""

from __future__ import annotations

from .. import views
from ..errors import UsageError
from .delimited import to_csv

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
        from ..schema import DIFF_COLUMNS
        from ._fmt import order_rows

        return to_csv(DIFF_COLUMNS, [r._asdict() for r in order_rows(result.records, kw.get("sort") or "model")])
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


def _diff_dict(result) -> dict:
    from .json import diff_dict

    return diff_dict(result)


def render_audit(result, fmt: str = "table") -> str:
    from . import audit

    if fmt == "table":
        return audit.audit_text(result)
    if fmt == "markdown":
        return audit.audit_markdown(result)
    if fmt == "json":
        return audit.audit_json(result)
    raise UsageError(f"unknown format {fmt!r}", hint=f"choose one of {', '.join(AUDIT_FORMATS)}")


def _audit_dict(result) -> dict:
    from .audit import audit_dict

    return audit_dict(result)


def _inspect_dict(result) -> dict:
    from .json import inspect_dict

    return inspect_dict(result)


def _checkpoint_html(ckpt) -> str:
    from .html import checkpoint_html

    return checkpoint_html(ckpt)


def _render_trend(result, fmt: str = "table", **kw) -> str:
    from .trend import render_trend

    return render_trend(result, fmt, **kw)


def _trend_dict(result) -> dict:
    from .trend import trend_dict

    return trend_dict(result)


views.register("diff", render_diff)
views.register("inspect", render_inspect)
views.register("diff_dict", _diff_dict)
views.register("inspect_dict", _inspect_dict)
views.register("checkpoint_html", _checkpoint_html)
views.register("audit", render_audit)
views.register("audit_dict", _audit_dict)
views.register("trend", _render_trend)
views.register("trend_dict", _trend_dict)
