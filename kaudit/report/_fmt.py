"""Number and cell formatting shared by the renderers, and the one escaping helper per target.

Names, paths, layer classes and messages come from untrusted files. Every human-readable output
passes them through the helper of its target (docs/security.md):

* :func:`text`: terminals, CSV cells, JUnit XML (``ElementTree`` escapes XML's own syntax):
  non-printable characters shown as escapes (``\\x1b``);
* :func:`md`: Markdown (PR comments, step summaries): :func:`text`, Markdown's syntax
  backslash-escaped (so ``|`` cannot end a table cell nor ``[x](y)`` make a link), and
  ``<``, ``>``, ``&`` as HTML entities (so no tag reaches the page);
* :func:`html`: HTML text and attribute values: :func:`text`, then ``html.escape``.

JSON keeps names exactly (``json.dumps`` escapes what JSON needs).
"""

from __future__ import annotations

import html as _html
import math
import re

from ..errors import printable as text

#: Markdown syntax an inline text can hold: emphasis, code, links and images (``[``), table cells
#: (``|``), strikethrough, headings, mentions, and the escape character itself. ``<``, ``>`` and
#: ``&`` become entities instead (no tag, no blockquote).
_MD_SYNTAX = re.compile(r"([\\`*_\[\]#|~@])")


def md(x) -> str:
    """Untrusted text as Markdown inline text (table cells, list items, headings)."""
    return _html.escape(_MD_SYNTAX.sub(r"\\\1", text("" if x is None else x)), quote=False)


def html(x) -> str:
    """Untrusted text as HTML text or a quoted attribute value."""
    return _html.escape(text("" if x is None else x), quote=True)


def missing(x) -> bool:
    """None, or pandas' NaN standing for a missing value."""
    return x is None or (isinstance(x, float) and math.isnan(x))


def num(x, digits: int = 4) -> str:
    if missing(x):
        return ""
    try:
        if isinstance(x, float) and math.isnan(x):
            return "nan"
    except TypeError:
        return str(x)
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x == 0:
            return "0"
        return f"{x:.{digits}g}"
    return str(x)


def shape(s) -> str:
    if missing(s):
        return ""
    return "(" + ", ".join(str(int(d)) for d in s) + ("," if len(s) == 1 else "") + ")"


def arrow(a, b, fmt=str) -> str:
    if missing(a) and missing(b):
        return ""
    if missing(a):
        return f"- → {fmt(b)}"
    if missing(b):
        return f"{fmt(a)} → -"
    fa, fb = fmt(a), fmt(b)
    return fa if fa == fb else f"{fa} → {fb}"


def tri(x) -> str:
    return "?" if missing(x) else ("yes" if x else "no")


def summary_line(result) -> str:
    """The diff's last line: what each summary figure counts (docs/metrics.md), then the verdict."""
    s = result.summary
    from ..result import STATUSES

    parts = [f"{s[k]} {k}" for k in STATUSES if s.get(k)]
    if s.get("trainable_changed"):
        parts.append(f"{s['trainable_changed']} trainable_changed")
    line = f"{s['pairs']} pair{'' if s['pairs'] == 1 else 's'}: " + (", ".join(parts) if parts else "nothing to compare")
    line += f"; {s['elements_over_tolerance']:,} element(s) over tolerance"
    if s.get("unverified"):
        line += (f" where values were compared; {s['unverified']} pair(s) differ from a snapshot without values "
                 "(closeness unverifiable)")
    if s.get("structural"):
        line += f"; {s['structural']} matched by structure"
    if s.get("by_values"):
        line += f"; {s['by_values']} paired by identical values"
    if s.get("renamed"):
        line += f"; {s['renamed']} paired by --rename"
    if s.get("ignored"):
        line += f"; {s['ignored']} path(s) ignored"
    return f"{line}. {result.verdict}"


def policy_line(result) -> str:
    """``policy: <file> (<n> rules); atol=... rtol=...`` or ``policy: none; ...`` (an audit's: the
    file and its ``fail_on``): which policy decided the verdict (docs/policy.md). Unescaped."""
    return f"policy: {(result.policy or {}).get('description') or 'none'}"
