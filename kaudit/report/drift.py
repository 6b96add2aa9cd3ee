"""The drift chart: where the model moved, in one picture.

One mark per layer (or per variable) in model order; its height is the largest relative change
``rel_change = ||b - a|| / max(||a||, ||b||)`` among the layer's variables, on a log scale; its
colour is the verdict: failed (red), changed within policy (blue), identical (a grey stub on the
base line). So "only the head changed" is a row of grey stubs and a few blue bars at the end.

:func:`drift_marks` computes the data from a :class:`~kaudit.result.DiffResult` (nothing is
read from the model files); :func:`drift_svg` (inline in the HTML report), :func:`drift_png`
(``kaudit diff --plot``, Pillow) and :func:`drift_mermaid` (a Mermaid ``xychart-beta`` bar chart
GitHub renders in the Markdown report) draw it.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from ..paths import layer_of
from . import _fmt as F

#: Colours by verdict (the HTML report's status palette).
COLOURS = {"fail": "#cf222e", "changed": "#0969da", "identical": "#8c959f"}
#: What each colour means, for legends.
LEGEND = (("fail", "fails the policy"), ("changed", "changed, within policy"), ("identical", "identical"))
#: The top of the scale: rel_change never exceeds 2 for finite values (docs/metrics.md).
TOP = 2.0
#: The lowest floor of the scale (smaller changes are drawn at it).
MIN_FLOOR = 1e-12
#: The floor when nothing moved at all.
DEFAULT_FLOOR = 1e-6
#: Plot geometry (pixels of the SVG's user space and of the PNG).
PLOT_H = 150
LEFT = 52
RIGHT = 12
TOP_PAD = 40
MIN_WIDTH = 560
BOTTOM = 34


@dataclass(frozen=True)
class Mark:
    """One mark of the chart: a layer (its variables' paths) or a single variable."""

    name: str
    paths: tuple[str, ...]
    #: The largest rel_change among the variables; None when a variable has none (added,
    #: removed, reshaped, or a snapshot that differs): drawn full height.
    value: float | None
    #: ``fail``, ``changed`` (differs, within policy) or ``identical`` (every variable bit-identical).
    verdict: str
    #: The rules its variables failed (``frozen``, ``tolerance``, ...), comma-separated.
    rules: str
    params: int
    #: The statuses of its variables, most severe first, each once.
    statuses: tuple[str, ...]

    @property
    def colour(self) -> str:
        return COLOURS[self.verdict]

    def describe(self) -> str:
        """The hover text: name, figure, verdict, variables."""
        fig = "no figure" if self.value is None else f"rel_change {F.num(self.value)}"
        verdict = (
            "FAIL " + self.rules
            if self.verdict == "fail"
            else ("identical" if self.verdict == "identical" else "changed within policy")
        )
        n = len(self.paths)
        what = f"{n} variable{'' if n == 1 else 's'}, {self.params:,} params"
        return f"{self.name}: {fig}; {verdict.strip()}; {', '.join(self.statuses)}; {what}"


_SEVERITY = ("only_in_a", "only_in_b", "shape_changed", "dtype_changed", "changed", "close", "identical")


def drift_marks(result, by: str = "layer") -> list[Mark]:
    """The chart's data: one :class:`Mark` per layer (``by="layer"``) or per variable
    (``by="variable"``), in the model order of ``result.records`` (a layer sits where its first
    variable does)."""
    groups: dict[str, list] = {}
    for r in result.records:
        key = str(r.path) if by == "variable" else (layer_of(str(r.path)) or str(r.path))
        groups.setdefault(key, []).append(r)
    marks = []
    for name, rows in groups.items():
        values = [
            None
            if F.missing(r.rel_change) or r.status in ("only_in_a", "only_in_b", "shape_changed")
            else float(r.rel_change)
            for r in rows
        ]
        known = [v for v in values if v is not None]
        value = max(known) if len(known) == len(values) else None
        failed = [r for r in rows if not r.passed]
        rules = []
        for r in failed:
            for rule in (r.rule or "").split(","):
                if rule and rule not in rules:
                    rules.append(rule)
        if failed:
            verdict = "fail"
        elif all(r.status == "identical" for r in rows):
            verdict = "identical"
        else:
            verdict = "changed"
        statuses = tuple(s for s in _SEVERITY if any(r.status == s for r in rows))
        marks.append(
            Mark(
                name=name,
                paths=tuple(str(r.path) for r in rows),
                value=value,
                verdict=verdict,
                rules=",".join(rules),
                params=sum(int(r.params or 0) for r in rows),
                statuses=statuses,
            )
        )
    return marks


def scale_floor(marks: list[Mark]) -> float:
    """The bottom of the log scale: a decade below the decade of the smallest non-zero change
    (so the smallest bar still shows)."""
    small = [m.value for m in marks if m.value is not None and 0 < m.value < math.inf]
    if not small:
        return DEFAULT_FLOOR
    return max(MIN_FLOOR, 10.0 ** (math.floor(math.log10(min(small))) - 1))


def height_fraction(value: float | None, floor: float) -> float:
    """Where a mark's top sits, 0 (the floor, or identical) to 1 (the top: 2, inf, or no figure)."""
    if value is None or value == math.inf:
        return 1.0
    if value <= 0:
        return 0.0
    lo, hi = math.log10(floor), math.log10(TOP)
    return min(1.0, max(0.0, (math.log10(max(value, floor)) - lo) / (hi - lo)))


@dataclass(frozen=True)
class _Geometry:
    width: int
    height: int
    slot: float
    bar: float

    def x(self, i: int) -> float:
        return LEFT + i * self.slot + (self.slot - self.bar) / 2


def _geometry(n: int) -> _Geometry:
    n = max(n, 1)
    slot = max(3.0, min(22.0, 1100.0 / n))
    width = max(MIN_WIDTH, math.ceil(LEFT + n * slot + RIGHT))
    slot = (width - LEFT - RIGHT) / n  # a few marks spread over the minimum width
    bar = max(2.0, min(28.0, slot * 0.78))
    return _Geometry(width=width, height=TOP_PAD + PLOT_H + BOTTOM, slot=slot, bar=bar)


def _decades(floor: float) -> list[int]:
    lo = round(math.log10(floor))
    step = 1 if -lo <= 6 else 2
    return list(range(lo, 1, step))


def _tick_label(d: int) -> str:
    return "1" if d == 0 else f"1e{d}"


#: A stub this high (pixels) stands for an identical layer on the base line.
STUB = 3


def _bar(value: float | None, floor: float, verdict: str) -> tuple[float, float]:
    """(top y, height) of a mark's bar."""
    h = height_fraction(value, floor) * PLOT_H
    if verdict == "identical" or h < STUB:
        h = STUB
    return TOP_PAD + PLOT_H - h, h


def drift_svg(result, by: str = "layer") -> str:
    """The chart as inline SVG (no script, no external resource): one ``<g class="mark">`` per
    mark with ``data-verdict``, ``data-name`` and ``data-value`` and a ``<title>`` for hover."""
    marks = drift_marks(result, by)
    floor = scale_floor(marks)
    g = _geometry(len(marks))
    e = F.html  # untrusted names: non-printable characters shown as escapes, then HTML-escaped
    out = [
        f'<svg class="drift" xmlns="http://www.w3.org/2000/svg" role="img" width="{g.width}" '
        f'height="{g.height}" viewBox="0 0 {g.width} {g.height}" '
        f'aria-label="relative change per {e(by)}, log scale, coloured by verdict">'
    ]
    out.append('<g class="axis" font-family="system-ui,sans-serif" font-size="10" fill="#57606a">')
    for d in _decades(floor):
        y = TOP_PAD + PLOT_H - height_fraction(10.0**d, floor) * PLOT_H
        out.append(
            f'<line x1="{LEFT - 4}" x2="{g.width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>'
            f'<text x="{LEFT - 7}" y="{y + 3.5:.1f}" text-anchor="end">{_tick_label(d)}</text>'
        )
    base = TOP_PAD + PLOT_H
    out.append(f'<line x1="{LEFT - 4}" x2="{g.width - RIGHT}" y1="{base}" y2="{base}" stroke="#8c959f"/>')
    every = max(1, math.ceil(len(marks) / 12))
    for i in range(0, len(marks), every):
        x = LEFT + (i + 0.5) * g.slot
        out.append(f'<text x="{x:.1f}" y="{base + 13}" text-anchor="middle">{i + 1}</text>')
    out.append(f'<text x="{LEFT}" y="{base + 27}">{e(by)} 1 … {len(marks)}, in model order</text>')
    out.append(f'<text x="{LEFT}" y="12">relative change ‖b−a‖ / max(‖a‖, ‖b‖), log scale</text>')
    out.append("</g>")
    lx = g.width - RIGHT
    for key, text in reversed(LEGEND):
        w = 10 + 6 * len(text)
        lx -= w + 12
        out.append(
            f'<g class="legend" font-family="system-ui,sans-serif" font-size="10" fill="#57606a">'
            f'<rect x="{lx}" y="19" width="9" height="9" fill="{COLOURS[key]}"/>'
            f'<text x="{lx + 12}" y="27">{e(text)}</text></g>'
        )
    for i, m in enumerate(marks):
        y, h = _bar(m.value, floor, m.verdict)
        x = g.x(i)
        value = "" if m.value is None else repr(m.value)
        out.append(
            f'<g class="mark" data-verdict="{m.verdict}" data-name="{e(m.name)}" data-value="{value}">'
            f"<title>{e(m.describe())}</title>"
            f'<rect class="hit" x="{LEFT + i * g.slot:.2f}" y="{TOP_PAD}" width="{g.slot:.2f}" '
            f'height="{PLOT_H}" fill="transparent"/>'
            f'<rect class="bar" x="{x:.2f}" y="{y:.2f}" width="{g.bar:.2f}" height="{h:.2f}" '
            f'fill="{m.colour}"/></g>'
        )
    out.append("</svg>")
    return "".join(out)


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def drift_png(result, by: str = "layer", scale: int = 2) -> bytes:
    """The chart as a PNG (Pillow), the same geometry as :func:`drift_svg` drawn ``scale`` times
    larger, with the files and the verdict in a title line."""
    from PIL import Image, ImageDraw, ImageFont

    marks = drift_marks(result, by)
    floor = scale_floor(marks)
    g = _geometry(len(marks))
    title_h = 16
    img = Image.new("RGB", (g.width * scale, (g.height + title_h) * scale), (255, 255, 255))
    d = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=10 * scale)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        font = ImageFont.load_default()
    grey, light = _rgb("#57606a"), _rgb("#eaeef2")

    def s(*v):
        return [x * scale for x in v]

    def text(x, y, t, anchor="la"):
        d.text((x * scale, y * scale), t, fill=grey, font=font, anchor=anchor)

    text(LEFT, 2, f"{F.elide(result.file_a, 60)}  ->  {F.elide(result.file_b, 60)}: {result.verdict}")
    top = title_h
    for dec in _decades(floor):
        y = top + TOP_PAD + PLOT_H - height_fraction(10.0**dec, floor) * PLOT_H
        d.line(s(LEFT - 4, y, g.width - RIGHT, y), fill=light, width=1)
        text(LEFT - 7, y, _tick_label(dec), "rm")
    base = top + TOP_PAD + PLOT_H
    d.line(s(LEFT - 4, base, g.width - RIGHT, base), fill=_rgb("#8c959f"), width=1)
    every = max(1, math.ceil(len(marks) / 12))
    for i in range(0, len(marks), every):
        text(LEFT + (i + 0.5) * g.slot, base + 8, str(i + 1), "mm")
    text(LEFT, base + 20, f"{by} 1 ... {len(marks)}, in model order")
    text(LEFT, top + 5, "relative change |b-a| / max(|a|, |b|), log scale")
    lx = g.width - RIGHT
    for key, label in reversed(LEGEND):
        lx -= 10 + 6 * len(label) + 12
        d.rectangle(s(lx, top + 19, lx + 9, top + 28), fill=_rgb(COLOURS[key]))
        text(lx + 12, top + 19, label)
    for i, m in enumerate(marks):
        y, h = _bar(m.value, floor, m.verdict)
        x = g.x(i)
        d.rectangle(s(x, top + y, x + g.bar, top + y + h - 1 / scale), fill=_rgb(m.colour))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


#: Marks named on the Mermaid chart's x axis up to this count (beyond it: numbers).
MERMAID_NAMES = 30


def drift_mermaid(result, by: str = "layer") -> str:
    """The chart as a Mermaid ``xychart-beta`` bar chart (GitHub renders it in Markdown): log10 of
    each mark's relative change (the floor for identical marks, 0.3 = log10 2 for marks without a
    figure); three series, one per verdict (blue within policy, red failing, grey identical: a
    stub just above the floor)."""
    marks = drift_marks(result, by)
    if not marks:
        return ""
    floor = scale_floor(marks)
    lo = math.log10(floor)

    def level(m: Mark) -> float:
        if m.value is None or m.value == math.inf:
            return round(math.log10(TOP), 2)
        if m.value <= 0:
            return lo
        return round(max(lo, math.log10(m.value)), 2)

    if len(marks) <= MERMAID_NAMES:
        names = [m.name.rsplit("/", 1)[-1][:18] for m in marks]
    else:
        names = [str(i + 1) for i in range(len(marks))]
    labels = ", ".join('"' + n.replace('"', "'").replace("\\", "/") + '"' for n in names)
    stub = round(lo + 0.03 * (math.log10(TOP) - lo), 2)  # identical: a stub, as in the other drawings
    within = [level(m) if m.verdict == "changed" else lo for m in marks]
    failing = [level(m) if m.verdict == "fail" else lo for m in marks]
    same = [stub if m.verdict == "identical" else lo for m in marks]
    palette = f"{COLOURS['changed']}, {COLOURS['fail']}, {COLOURS['identical']}"
    lines = [
        "```mermaid",
        '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "' + palette + '"}}}}%%',
        "xychart-beta",
        f'    title "log10 relative change per {by} (red: fails the policy, grey: identical)"',
        f"    x-axis [{labels}]",
        f'    y-axis "log10 rel_change" {lo:g} --> {math.log10(TOP):.2f}',
        "    bar [" + ", ".join(f"{v:g}" for v in within) + "]",
        "    bar [" + ", ".join(f"{v:g}" for v in failing) + "]",
        "    bar [" + ", ".join(f"{v:g}" for v in same) + "]",
        "```",
    ]
    return "\n".join(lines)
