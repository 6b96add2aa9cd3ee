"""Number and cell formatting shared by the text renderers."""

from __future__ import annotations

import math

from ..schema import STATUSES


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
    s = result.summary

    parts = [f"{s[k]} {k}" for k in STATUSES if s.get(k)]
    if s.get("trainable_changed"):
        parts.append(f"{s['trainable_changed']} trainable_changed")
    text = f"{s['pairs']} pair{'' if s['pairs'] == 1 else 's'}: " + (", ".join(parts) if parts else "nothing to compare")
    text += f"; {s['params_changed']:,} params changed"
    if s.get("structural"):
        text += f"; {s['structural']} matched by structure"
    if s.get("ignored"):
        text += f"; {s['ignored']} ignored"
    return f"{text}. {result.verdict}"
