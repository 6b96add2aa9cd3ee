"""Renderers of a :class:`~kaudit.trend.TrendResult`: a terminal table, CSV, JSON, a
self-contained HTML page and a heatmap PNG, all of the same grid: layers (or variables) down in
model order, checkpoints across, each cell the relative change against the previous checkpoint
(``rel_change = ||b - a|| / max(||a||, ||b||)``, docs/metrics.md). Renderers never open files."""

from __future__ import annotations

import html as _html
import io
import json
import math

from ..errors import UsageError
from . import _fmt as F

TREND_FORMATS = ("table", "csv", "json", "html")

#: Heatmap colours: a cell with no change, the largest change of the scale, a failing cell's frame.
WHITE = (255, 255, 255)
DARK = (8, 48, 107)
FAIL = (207, 34, 46)
EMPTY = (234, 238, 242)


def render_trend(result, fmt: str = "table", **kw) -> str:
    if fmt == "table":
        return trend_table(result, **kw)
    if fmt == "csv":
        from ..schema import TREND_COLUMNS
        from .delimited import to_csv

        return to_csv(TREND_COLUMNS, result.records())
    if fmt == "json":
        return json.dumps(trend_dict(result), indent=2, allow_nan=False) + "\n"
    if fmt == "html":
        return trend_html(result, **kw)
    raise UsageError(f"unknown format {fmt!r}", hint=f"choose one of {', '.join(TREND_FORMATS)}")


def _failed_cells(result, by: str, against: str = "previous") -> set[tuple[str, int]]:
    """(row name, checkpoint index) of every cell where a gated step failed against the
    ``previous`` checkpoint or the ``first``."""
    from ..paths import layer_of

    out: set[tuple[str, int]] = set()
    if not result.gated:
        return out
    for i in range(1, len(result.files)):
        for d in (result.steps[i],) if against == "previous" else (result.from_first[i],):
            for r in d.records:
                if not r.passed:
                    p = str(r.path_b if r.path_b is not None else r.path)
                    out.add((p if by == "variable" else (layer_of(p) or p), i))
    return out


def summary_line(result) -> str:
    """How many checkpoints, the largest step and the largest drift from the first, the verdict."""
    grid = result.grid("rel_change_prev", "layer")
    best = max(((v, name, i) for name, row in grid for i, v in enumerate(row) if v is not None), default=None)
    last = result.grid("rel_change_first", "layer")
    drift = max(((row[-1], name) for name, row in last if row[-1] is not None), default=None)
    n = len(result.files)
    text = f"{n} checkpoints, {n - 1} steps"
    if best is not None:
        text += f"; largest step: {best[1]} at {result.labels[best[2]]} ({F.num(best[0])})"
    if drift is not None:
        text += f"; largest drift from the first: {drift[1]} ({F.num(drift[0])})"
    if result.gated:
        failed = sum(1 for i in range(1, n) if not (result.steps[i].passed and result.from_first[i].passed))
        text += f"; {failed} of {n - 1} steps outside the policy"
    return f"{text}. {result.verdict}"


#: What a cell without a relative change says.
_NO_FIGURE = {"shape_changed": "shape", "only_in_a": "removed", "only_in_b": "added"}


def _cell(v, status) -> str:
    if v is None:
        return _NO_FIGURE.get(status, "-" if status else "")
    return F.num(v, 3)


def trend_table(result, by: str = "layer", width: int | None = None, wrap: bool = True, **_kw) -> str:
    """Checkpoints listed with their labels, then the grid of relative changes against the previous
    checkpoint (and, last, against the first), failing cells marked ``!``; no line wider than
    ``width`` (the names cut in the middle; later columns dropped only if they cannot fit)."""
    from .text import _wrapped

    out = []
    for i, (label, f) in enumerate(zip(result.labels, result.files, strict=True)):
        line = f"{i:>3}  {label}  {f}"
        out.append(line if width is None else F.elide(line, width))
    out.append("")
    grid = result.grid("rel_change_prev", by)
    first = dict(result.grid("rel_change_first", by))
    status = dict(result.grid("status_prev", by))
    status_first = dict(result.grid("status_first", by))
    failed = _failed_cells(result, by)
    failed_first = _failed_cells(result, by, "first")
    heads = [by] + list(result.labels[1:]) + ["vs first"]
    rows = []
    for name, row in grid:
        cells = [name]
        for i in range(1, len(result.files)):
            cells.append(_cell(row[i], status[name][i]) + ("!" if (name, i) in failed else ""))
        last = len(result.files) - 1
        cells.append(_cell(first[name][-1], status_first[name][-1]) + ("!" if (name, last) in failed_first else ""))
        rows.append(cells)
    n_cols = len(heads)
    widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(heads)] if rows else [len(h) for h in heads]
    keep = list(range(n_cols))
    if width is not None:
        # drop the oldest steps first when they cannot fit beside a name column of 24 characters
        while len(keep) > 2 and sum(widths[c] for c in keep[1:]) + 2 * (len(keep) - 1) + 24 > width:
            keep.pop(1)
        widths[0] = max(8, min(widths[0], width - sum(widths[c] for c in keep[1:]) - 2 * (len(keep) - 1)))

    def fmt(cells) -> str:
        parts = []
        for c in keep:
            t = cells[c] if c == 0 or len(cells[c]) <= widths[c] else cells[c][: widths[c]]
            t = F.elide(t, widths[c]) if c == 0 else t
            parts.append(t.ljust(widths[c]) if c == 0 else t.rjust(widths[c]))
        return "  ".join(parts).rstrip()

    out.append(fmt(heads))
    out.append("  ".join("-" * widths[c] for c in keep))
    out += [fmt(r) for r in rows]
    if len(keep) < n_cols:
        out += _wrapped(
            f"({n_cols - len(keep)} earlier step(s) left out to fit; --wide shows all)", width if wrap else None
        )
    out.append("")
    out += _wrapped(
        "cells: rel_change = |b - a| / max(|a|, |b|) against the previous checkpoint (the "
        f"largest of the {by}'s variables); vs first: the last checkpoint against the first"
        + ("; ! outside the policy" if result.gated else ""),
        width if wrap else None,
    )
    failures = result.failures
    if failures:
        out.append("Failures:")
        for f in failures[:10]:
            out += _wrapped(f"- {f}", width if wrap else None, "  ")
        if len(failures) > 10:
            out += _wrapped(f"... and {len(failures) - 10} more (--format json)", width if wrap else None, "  ")
    for n in result.notes:
        out += _wrapped(f"note: {n}", width if wrap else None)
    out += _wrapped(summary_line(result), width if wrap else None)
    return "\n".join(out) + "\n"


def trend_dict(result) -> dict:
    from .._version import __version__
    from .json import clean

    return clean(
        {
            "kaudit_version": __version__,
            "checkpoints": [
                {"step": i, "label": lab, "file": f}
                for i, (lab, f) in enumerate(zip(result.labels, result.files, strict=True))
            ],
            "gated": result.gated,
            "passed": result.passed,
            "verdict": result.verdict,
            "failures": list(result.failures),
            "notes": list(result.notes),
            "steps": [None if d is None else {"passed": d.passed, "summary": d.summary} for d in result.steps],
            "from_first": [
                None if d is None else {"passed": d.passed, "summary": d.summary} for d in result.from_first
            ],
            "variables": result.records(),
        }
    )


# -- colours ---------------------------------------------------------------------------------------


def scale_of(values) -> tuple[float, float]:
    """(low, high) of the heatmap's log scale over the non-zero finite values (decades)."""
    xs = [v for v in values if v is not None and 0 < v < math.inf]
    if not xs:
        return 1e-6, 2.0
    lo = 10.0 ** math.floor(math.log10(min(xs)))
    hi = max(10.0 ** math.ceil(math.log10(max(xs))), lo * 10)
    return lo, min(hi, 2.0) if hi > 2.0 and lo < 2.0 else hi


def colour_of(v: float | None, lo: float, hi: float) -> tuple[int, int, int]:
    """White (no change) to dark blue (``hi`` or more), on a log scale between ``lo`` and ``hi``."""
    if v is None:
        return EMPTY
    if v <= 0:
        return WHITE
    t = 1.0 if v == math.inf else (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    t = 0.12 + 0.88 * min(1.0, max(0.0, t))  # any change at all is visibly not white
    return tuple(round(w + (d - w) * t) for w, d in zip(WHITE, DARK, strict=True))  # type: ignore[return-value]


def _hex(c) -> str:
    return "#{:02x}{:02x}{:02x}".format(*c)


# -- HTML --------------------------------------------------------------------------------------------


def trend_html(result, by: str = "layer", **_kw) -> str:
    """One self-contained page: the checkpoints, then two heatmaps (against the previous checkpoint,
    against the first), layers down, checkpoints across, the figures on hover."""
    from .html import _page

    def e(s: object) -> str:
        return _html.escape(str(s), quote=True)

    norms = dict(result.grid("norm", by))
    parts = [
        f'<h1><span class="verdict {"fail" if not result.passed else "pass"}">{e(result.verdict)}</span>'
        "kaudit trend</h1>",
        f'<p class="summary" id="kaudit-summary">{e(summary_line(result))}</p>',
        '<table class="files">'
        + "".join(
            f"<tr><td>{i}</td><td><b>{e(lab)}</b></td><td><code>{e(f)}</code></td></tr>"
            for i, (lab, f) in enumerate(zip(result.labels, result.files, strict=True))
        )
        + "</table>",
    ]
    for n in result.notes:
        parts.append(f'<p class="muted">note: {e(n)}</p>')
    for value, title in (
        ("rel_change_prev", "against the previous checkpoint"),
        ("rel_change_first", "against the first checkpoint"),
    ):
        grid = result.grid(value, by)
        statuses = dict(result.grid("status_prev" if value == "rel_change_prev" else "status_first", by))
        lo, hi = scale_of(v for _n, row in grid for v in row)
        failed = _failed_cells(result, by, "previous" if value == "rel_change_prev" else "first")
        head = "".join(f'<th class="num">{e(lab)}</th>' for lab in result.labels[1:])
        rows = []
        for name, row in grid:
            cells = []
            for i in range(1, len(result.files)):
                v = row[i]
                bad = (name, i) in failed
                c = colour_of(v, lo, hi)
                fg = "#fff" if sum(c) < 380 else "#1b1f24"
                norm = norms.get(name, [None] * len(result.files))[i]
                tip = f"{name} at {result.labels[i]}: rel_change {F.num(v)}, norm {F.num(norm)}"
                cells.append(
                    f'<td class="num hm{" bad" if bad else ""}" data-v="{"" if v is None else repr(v)}" '
                    f'style="background:{_hex(c)};color:{fg}" title="{e(tip)}">{e(_cell(v, statuses[name][i]))}</td>'
                )
            rows.append(f'<tr><td class="mono">{e(name)}</td>{"".join(cells)}</tr>')
        parts.append(
            f'<h2>Relative change {e(title)} <span class="muted">(‖b−a‖ / max(‖a‖, ‖b‖) per {e(by)}, '
            f"log colour scale {F.num(lo)} … {F.num(hi)}; hover for the norm)</span></h2>"
        )
        parts.append(
            f'<div class="tablebox"><table class="kd trend" data-value="{value}"><thead><tr>'
            f"<th>{e(by)}</th>{head}</tr></thead><tbody>" + "\n".join(rows) + "</tbody></table></div>"
        )
    if result.failures:
        parts.append(
            f'<h2>Failures ({len(result.failures)})</h2><details><summary class="muted">every '
            'failure of every step</summary><ul class="failures">'
            + "".join(f"<li>{e(f)}</li>" for f in result.failures[:500])
            + "</ul></details>"
        )
    parts.append(
        f'<p class="muted" id="kaudit-status" data-images="0" data-loaded="0">kaudit trend · '
        f"{len(result.files)} checkpoints</p>"
    )
    page = _page(f"kaudit trend: {len(result.files)} checkpoints", "\n".join(parts))
    extra = (
        ".kaudit table.trend td.hm{min-width:56px;font-size:11.5px}"
        ".kaudit table.trend td.bad{box-shadow:inset 0 0 0 2px #cf222e}"
    )
    return page.replace("</style>", extra + "</style>", 1)


# -- heatmap PNG -----------------------------------------------------------------------------------


def trend_png(result, by: str = "layer", value: str = "rel_change_prev", max_rows: int = 400) -> bytes:
    """The grid as a heatmap PNG (Pillow): layers down (model order), checkpoints across, white to
    dark blue on a log scale, failing cells framed red, a colour bar. At most ``max_rows`` rows
    (the rest are said to be left out)."""
    from PIL import Image, ImageDraw, ImageFont

    grid = result.grid(value, by)
    failed = _failed_cells(result, by, "previous" if value == "rel_change_prev" else "first")
    cut = len(grid) - max_rows if len(grid) > max_rows else 0
    grid = grid[:max_rows]
    lo, hi = scale_of(v for _n, row in grid for v in row)
    steps = list(range(1, len(result.files)))
    try:
        font = ImageFont.load_default(size=11)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def tw(t: str) -> int:
        return int(probe.textlength(t, font=font))

    names = [F.elide(n, 40) for n, _r in grid]
    cell_w = max(34, max((tw(result.labels[i]) + 8 for i in steps), default=34))
    cell_h = 14 if len(grid) <= 120 else 8
    left = max((tw(n) for n in names), default=40) + 12
    title = (
        f"kaudit trend: rel_change per {by} "
        + ("against the previous checkpoint" if value == "rel_change_prev" else "against the first")
        + f", {result.verdict}"
    )
    top = 40
    bar_h = 74
    legend = "white: identical · grey: no figure (shape changed, added, removed)" + (
        " · red frame: outside the policy" if result.gated else ""
    )
    width = max(left + cell_w * len(steps) + 16, tw(title) + 20, tw(legend) + 20, 360)
    height = top + cell_h * len(grid) + bar_h + (14 if cut else 0)
    img = Image.new("RGB", (width, height), WHITE)
    d = ImageDraw.Draw(img)
    grey = (87, 96, 106)
    d.text((8, 6), title, fill=(27, 31, 36), font=font)
    for k, i in enumerate(steps):
        x = left + k * cell_w
        d.text((x + cell_w / 2, top - 6), result.labels[i], fill=grey, font=font, anchor="ms")
    for r, ((_name, row), label) in enumerate(zip(grid, names, strict=True)):
        y = top + r * cell_h
        if cell_h >= 10:
            d.text((left - 6, y + cell_h / 2), label, fill=grey, font=font, anchor="rm")
        for k, i in enumerate(steps):
            x = left + k * cell_w
            d.rectangle([x, y, x + cell_w - 2, y + cell_h - 2], fill=colour_of(row[i], lo, hi))
            if (grid[r][0], i) in failed:
                d.rectangle([x, y, x + cell_w - 2, y + cell_h - 2], outline=FAIL, width=2)
    y = top + cell_h * len(grid) + 14
    if cut:
        d.text((8, y - 10), f"... {cut} more rows left out", fill=grey, font=font)
        y += 14
    x0, x1 = 8, min(width - 8, 268)
    for x in range(x0, x1):
        t = (x - x0) / max(1, x1 - x0 - 1)
        v = 10 ** (math.log10(lo) + t * (math.log10(hi) - math.log10(lo)))
        d.line([x, y, x, y + 10], fill=colour_of(v, lo, hi))
    d.text((x0, y + 14), F.num(lo), fill=grey, font=font)
    d.text((x1, y + 14), F.num(hi), fill=grey, font=font, anchor="ra")
    d.text((8, y + 32), legend, fill=grey, font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
