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
from ..schema import STATUSES

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

    parts = [f"{s[k]} {k}" for k in STATUSES if s.get(k)]
    if s.get("trainable_changed"):
        parts.append(f"{s['trainable_changed']} trainable_changed")
    line = f"{s['pairs']} pair{'' if s['pairs'] == 1 else 's'}: " + (
        ", ".join(parts) if parts else "nothing to compare"
    )
    line += f"; {s['elements_over_tolerance']:,} element(s) over tolerance"
    if s.get("unverified"):
        line += (
            f" where values were compared; {s['unverified']} pair(s) differ from a snapshot without values "
            "(closeness unverifiable)"
        )
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


# -- row order, verdict cells and widths (diff reports) --------------------------------------------

#: Row orders of the diff reports (``--sort``): ``change`` failures first, then by relative change,
#: largest first; ``status`` failures first, then by status (changed, structural, close,
#: identical), then by change; ``path`` by path; ``model`` the checkpoint's own (Keras) order.
SORTS = ("change", "status", "path", "model")
_STATUS_RANK = {
    s: i
    for i, s in enumerate(("changed", "shape_changed", "dtype_changed", "only_in_a", "only_in_b", "close", "identical"))
}


def change_size(r) -> float:
    """The sort key of a row's size: its ``rel_change``; a pair without one (added, removed,
    reshaped, or a snapshot that differs) ranks as the largest change."""
    x = getattr(r, "rel_change", None)
    return math.inf if x is None or missing(x) else float(x)


def order_rows(rows, sort: str = "change") -> list:
    """The rows in the order ``sort`` names (one of :data:`SORTS`); ties keep the model order."""
    rows = list(rows)
    if sort == "model":
        return rows
    if sort == "path":
        return sorted(rows, key=lambda r: (str(r.path), "" if missing(r.path_b) else str(r.path_b)))
    if sort == "status":
        return sorted(rows, key=lambda r: (bool(r.passed), _STATUS_RANK.get(r.status, 99), -change_size(r)))
    if sort == "change":
        return sorted(rows, key=lambda r: (bool(r.passed), -change_size(r)))
    from ..errors import UsageError

    raise UsageError(f"unknown sort {sort!r}", hint=f"choose one of {', '.join(SORTS)}")


def verdict_cell(r) -> str:
    """``ok``, or ``FAIL`` and the rules the row failed (``FAIL frozen``, ``FAIL structure``)."""
    if r.passed:
        return "ok"
    rule = getattr(r, "rule", None)
    return "FAIL" + ("" if missing(rule) or not rule else f" {rule}")


def trainable_cell(r) -> str:
    """b's trainable flag against a's, ``?`` where a side's flag is unknown (as ``inspect``
    shows it), ``-`` for a side the pair lacks, `` !`` when it changed."""
    ta = None if missing(r.shape_a) else tri(r.trainable_a)
    tb = None if missing(r.shape_b) else tri(r.trainable_b)
    text = arrow(ta, tb)
    return text + (" !" if r.trainable_changed is True else "")


def verdict_summary(result) -> str:
    """:func:`summary_line`, saying that elements over tolerance of a passing diff are within
    policy (its rules allow them: a PASS line that only says "N over tolerance" reads as a
    contradiction)."""
    line = summary_line(result)
    if result.passed and result.summary.get("elements_over_tolerance"):
        line = line.replace(" element(s) over tolerance", " element(s) over tolerance, within policy", 1)
    return line


def elide(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters in the middle (``conv2d_1/…/kernel``): the start
    and, longer, the end (the variable's own name) stay."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width == 1:
        return "…"
    head = (width - 1) // 3
    tail = width - 1 - head
    return text[:head] + "…" + text[len(text) - tail :]


def row_messages(result) -> tuple[list[tuple], list[str]]:
    """((row, its failure messages) for every failing row in the model order, the messages that
    belong to no row): ``result.failures`` cut back into the rows they came from (a row's
    ``failures`` is its messages joined by "; "; the messages about the files as a whole, such as
    a preset's assets, come after the rows')."""
    out = []
    msgs = list(result.failures)
    k = 0
    for r in result.records:
        if r.passed:
            continue
        mine: list[str] = []
        while k < len(msgs) and "; ".join(mine) != r.failures:
            mine.append(msgs[k])
            k += 1
        out.append((r, mine))
    return out, msgs[k:]


def failure_report(result, sort: str) -> tuple[list, list[str], dict[str, int]]:
    """(the failing rows, every failure message: the rows' in ``sort`` order, then those about the
    files as a whole, failing rows per rule) for the failure lists of the reports."""
    by_row, general = row_messages(result)
    rank = {id(r): i for i, r in enumerate(order_rows([r for r, _m in by_row], sort))}
    messages = [m for _r, ms in sorted(by_row, key=lambda rm: rank[id(rm[0])]) for m in ms] + general
    counts: dict[str, int] = {}
    for r, _m in by_row:
        for rule in (r.rule or "?").split(","):
            counts[rule] = counts.get(rule, 0) + 1
    if general:
        counts["files"] = len(general)
    return [r for r, _m in by_row], messages, counts
