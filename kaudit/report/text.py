"""Terminal tables (tabulate)."""

from __future__ import annotations

from tabulate import tabulate

from . import _fmt as F

#: At most this many failure messages are printed under the table (the verdict column names the
#: rule of every row; all messages are in JSON and JUnit).
MAX_FAILURES = 10
#: The narrowest a path column is cut to before columns are dropped instead.
MIN_PATH = 24
#: Space between two columns.
GAP = "  "

#: The diff table's columns: (header, priority, right-aligned). Lower priority numbers are kept
#: first when the table must fit a width; the path, status and verdict are always shown.
DIFF_COLUMNS = (
    ("path", 0, False),
    ("status", 0, False),
    ("verdict", 0, False),
    ("rel_change", 1, True),
    ("max_abs", 2, True),
    ("shape", 3, False),
    ("trainable", 4, False),
    ("n_exceed", 5, True),
    ("dtype", 6, False),
    ("mean_abs", 7, True),
    ("rel_l2", 8, True),
    ("cosine", 9, True),
)
DIFF_HEADERS = [h for h, _p, _r in DIFF_COLUMNS]


def _path_cell(r) -> str:
    if F.missing(r.path_b) or r.path_b == r.path or F.missing(r.path):
        return F.text(str(r.path))
    return F.text(f"{r.path} ↔ {r.path_b}")


def _diff_cells(r) -> list[str]:
    """One row's cells in DIFF_COLUMNS order."""
    return [
        _path_cell(r),
        r.status + (f" ({r.matched_by})" if r.matched_by in ("structure", "rule", "values") else ""),
        F.verdict_cell(r),
        F.num(r.rel_change),
        F.num(r.max_abs),
        F.arrow(r.shape_a, r.shape_b, F.shape),
        F.trainable_cell(r),
        F.num(r.n_exceed),
        F.text(F.arrow(r.dtype_a, r.dtype_b)),
        F.num(r.mean_abs),
        F.num(r.rel_l2),
        F.num(r.cosine, 6),
    ]


def _diff_rows(result, all_rows: bool, sort: str = "change"):
    """The rows worth showing (all with ``all_rows``), ordered, as cells in DIFF_COLUMNS order."""
    return [_diff_cells(r) for r in F.order_rows(result.rows(all_rows), sort)]


def fit_table(columns, rows: list[list[str]], width: int | None) -> str:
    """A plain table (header, dashes, rows; columns two spaces apart) no wider than ``width``.

    ``columns`` are (header, priority, right-aligned) with the path first: columns are added in
    priority order, up to the first that does not fit beside a path column of two fifths of the width (at least
    MIN_PATH characters, at most the longest path); the path
    is then cut in the middle to the room left; a cell is never wrapped. ``width=None``: every
    column at full width."""
    natural = [max([len(h)] + [len(r[i]) for r in rows]) for i, (h, _p, _r) in enumerate(columns)]
    keep = set(range(len(columns)))
    if width is not None:
        keep = {i for i, (_h, p, _r) in enumerate(columns) if p == 0}

        def used(cols) -> int:
            return sum(natural[i] for i in cols if i != 0) + len(GAP) * (len(cols) - 1)

        reserve = min(natural[0], max(MIN_PATH, width * 2 // 5))  # room kept for the path
        for i in sorted((i for i, c in enumerate(columns) if c[1] > 0), key=lambda i: columns[i][1]):
            if used(keep | {i}) + reserve > width:
                break  # the rest are less important: the room goes to the path
            keep.add(i)
    order = sorted(keep)
    widths = {i: natural[i] for i in order}
    if width is not None:
        widths[0] = max(
            1, min(natural[0], width - (sum(widths[i] for i in order if i != 0) + len(GAP) * (len(order) - 1)))
        )
        over = sum(widths.values()) + len(GAP) * (len(order) - 1) - width
        # still too wide (a very narrow width): cut the widest other cells at their end
        while over > 0:
            j = max((i for i in order if i != 0), key=lambda i: widths[i])
            if widths[j] <= 4:
                break
            widths[j] -= 1
            over -= 1

    def line(cells) -> str:
        out = []
        for i in order:
            text = cells[i]
            w = widths[i]
            if len(text) > w:
                text = F.elide(text, w) if i == 0 else text[: w - 1] + "…"
            out.append(text.rjust(w) if columns[i][2] else text.ljust(w))
        return GAP.join(out).rstrip()

    lines = [line([h for h, _p, _r in columns]), GAP.join("-" * widths[i] for i in order)]
    lines += [line(r) for r in rows]
    return "\n".join(lines)


def _wrapped(text: str, width: int | None, indent: str = "") -> list[str]:
    """Prose (a failure message, a note, the summary) wrapped to ``width`` at spaces."""
    if width is None:
        return [indent + text]
    import textwrap

    return textwrap.wrap(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=True,
        break_on_hyphens=False,
    ) or [indent]


def _file_line(label: str, file: str, fmt: str, width: int | None) -> str:
    tail = f" ({fmt})"
    room = None if width is None else max(8, width - len(label) - len(tail))
    file = F.text(file)
    return label + (file if room is None else F.elide(file, room)) + tail


def diff_table(
    result,
    all_rows: bool = False,
    sort: str = "change",
    top: int | None = None,
    width: int | None = None,
    wrap: bool = True,
    **_kw,
) -> str:
    """The diff for a terminal: failures first, then the largest relative changes (``sort``),
    the first ``top`` rows (None or 0: all), the table no wider than ``width`` (None: no limit);
    prose (failure lines, notes, the summary) wrapped to it too with ``wrap`` (a terminal), kept
    on one line each without (a CI log, a file: one line a message, for grep)."""
    prose = width if wrap else None
    out = [
        _file_line("a: ", result.file_a, result.format_a, width),
        _file_line("b: ", result.file_b, result.format_b, width),
        "",
    ]
    rows = F.order_rows(result.rows(all_rows), sort)
    shown = rows[:top] if top else rows
    if shown:
        columns: tuple = DIFF_COLUMNS
        cells = [_diff_cells(r) for r in shown]
        if any(getattr(r, "quant", None) for r in result.records):  # dequantized pairs: their SQNR too
            columns = (*DIFF_COLUMNS, ("sqnr_db", 3, True))
            cells = [c + [F.num(r.sqnr_db)] for c, r in zip(cells, shown, strict=True)]
        out.append(fit_table(columns, cells, width))
        if len(shown) < len(rows):
            out += _wrapped(f"... and {len(rows) - len(shown)} more rows (--top 0 shows all)", prose)
    else:
        out.append("all variables identical" if result.summary["pairs"] else "no variables to compare")
    out.append("")
    if result.failures:
        failed, messages, counts = F.failure_report(result, sort)
        out += _wrapped(
            f"Failures: {len(failed)} row{'' if len(failed) == 1 else 's'} ("
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + "):",
            prose,
        )
        for f in messages[:MAX_FAILURES]:
            out += _wrapped(f"- {F.text(f)}", prose, "  ")
        if len(messages) > MAX_FAILURES:
            out += _wrapped(
                f"... and {len(messages) - MAX_FAILURES} more (the verdict column names the rule "
                "of each row; every message: --format json or --junit)",
                prose,
                "  ",
            )
    for r in shown:
        if getattr(r, "lora", None):  # what a LoRA-adapted weight's row means
            out += _wrapped(f"lora: {F.text(r.path)}: {F.text(r.lora)}", prose)
    for n in result.notes:
        out += _wrapped(f"note: {F.text(n)}", prose)
    for m in result.montages:
        out += _wrapped(f"montage: {F.text(m)}", prose)
    out += _wrapped(F.text(F.policy_line(result)), prose)
    out += _wrapped(F.verdict_summary(result), prose)
    return "\n".join(out) + "\n"


def inspect_table(result, **_kw) -> str:
    show_stats = "min" in result.columns
    notes = [c for c in ("quant", "lora") if c in result.columns]  # what quantized / LoRA variables are
    rows = []
    for r in result.rows():
        row = [
            F.text(r.path),
            F.text(r.layer_class or "?"),
            F.shape(r.shape),
            F.text(r.dtype),
            F.tri(r.trainable),
            F.num(int(r.params)),
        ]
        if show_stats:
            row += [F.num(r.min), F.num(r.max), F.num(r.mean), F.num(r.std)]
            if r.nan or r.inf:
                row[-1] += f" ({r.nan} nan, {r.inf} inf)"
        row += [getattr(r, c) or "" for c in notes]
        rows.append(row)
    headers = ["path", "class", "shape", "dtype", "trainable", "params"] + (
        ["min", "max", "mean", "std"] if show_stats else []
    )
    headers += notes
    out = [
        f"{F.text(result.file)} ({result.format}"
        + (f", Keras {F.text(result.keras_version)}" if result.keras_version else "")
        + ")",
        "",
    ]
    out.append(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True) if rows else "no variables")
    out.append("")
    out += result.totals.summary_lines()
    for n in result.notes:
        out.append(f"note: {F.text(n)}")
    return "\n".join(out) + "\n"
