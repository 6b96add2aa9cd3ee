"""Renderers: each turns a computed result into text (or bytes). They never compute.

``render_diff(result, fmt)`` and ``render_inspect(result, fmt)`` dispatch on
``table | markdown | csv | json | junit | html``.
"""

from __future__ import annotations

from ..errors import UsageError

DIFF_FORMATS = ("table", "markdown", "csv", "json", "junit", "html")
INSPECT_FORMATS = ("table", "markdown", "csv", "json", "html")


def render_diff(result, fmt: str = "table", **kw) -> str:
    if fmt == "table":
        from .text import diff_table

        return diff_table(result, **kw)
    if fmt == "markdown":
        from .markdown import diff_markdown

        return diff_markdown(result, **kw)
    if fmt == "csv":
        return result.table.to_csv(index=False)
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
        return result.table.to_csv(index=False)
    if fmt == "json":
        from .json import inspect_json

        return inspect_json(result)
    if fmt == "html":
        from .html import inspect_html

        return inspect_html(result)
    raise UsageError(f"unknown format {fmt!r}", hint=f"choose one of {', '.join(INSPECT_FORMATS)}")
