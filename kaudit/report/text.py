"""Terminal tables (tabulate)."""

from __future__ import annotations

from tabulate import tabulate

from . import _fmt as F

#: At most this many failure lines are printed under the table (all are in JSON/JUnit).
MAX_FAILURES = 20


def _diff_rows(result, all_rows: bool):
    rows = []
    for r in result.rows(all_rows):
        path = r.path if (F.missing(r.path_b) or r.path_b == r.path or F.missing(r.path)) else f"{r.path} ↔ {r.path_b}"
        rows.append([
            F.text(path),
            r.status + (f" ({r.matched_by})" if r.matched_by in ("structure", "rule", "values") else ""),
            F.arrow(r.shape_a, r.shape_b, F.shape),
            F.text(F.arrow(r.dtype_a, r.dtype_b)),
            F.arrow(r.trainable_a, r.trainable_b, F.tri) + (" !" if not F.missing(r.trainable_changed) and bool(r.trainable_changed) else ""),
            F.num(r.max_abs),
            F.num(r.mean_abs),
            F.num(r.rel_l2),
            F.num(r.cosine, 6),
            F.num(r.n_exceed),
        ])
    return rows


DIFF_HEADERS = ["path", "status", "shape", "dtype", "trainable", "max_abs", "mean_abs", "rel_l2", "cosine", "n_exceed"]


def diff_table(result, all_rows: bool = False, **_kw) -> str:
    out = [f"a: {F.text(result.file_a)} ({result.format_a})", f"b: {F.text(result.file_b)} ({result.format_b})", ""]
    rows = _diff_rows(result, all_rows)
    if rows:
        out.append(tabulate(rows, headers=DIFF_HEADERS, tablefmt="simple", disable_numparse=True))
    else:
        out.append("all variables identical" if result.summary["pairs"] else "no variables to compare")
    out.append("")
    if result.failures:
        out.append("Failures:")
        for f in result.failures[:MAX_FAILURES]:
            out.append(f"  - {F.text(f)}")
        if len(result.failures) > MAX_FAILURES:
            out.append(f"  ... and {len(result.failures) - MAX_FAILURES} more (see --format json or --junit)")
    for n in result.notes:
        out.append(f"note: {F.text(n)}")
    for m in result.montages:
        out.append(f"montage: {F.text(m)}")
    out.append(F.text(F.policy_line(result)))
    out.append(F.summary_line(result))
    return "\n".join(out) + "\n"


def inspect_table(result, **_kw) -> str:
    show_stats = "min" in result.columns
    rows = []
    for r in result.rows():
        row = [F.text(r.path), F.text(r.layer_class or "?"), F.shape(r.shape), F.text(r.dtype), F.tri(r.trainable),
               F.num(int(r.params))]
        if show_stats:
            row += [F.num(r.min), F.num(r.max), F.num(r.mean), F.num(r.std)]
            if r.nan or r.inf:
                row[-1] += f" ({r.nan} nan, {r.inf} inf)"
        rows.append(row)
    headers = ["path", "class", "shape", "dtype", "trainable", "params"] + (["min", "max", "mean", "std"] if show_stats else [])
    out = [f"{F.text(result.file)} ({result.format}"
           + (f", Keras {F.text(result.keras_version)}" if result.keras_version else "") + ")", ""]
    out.append(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True) if rows else "no variables")
    out.append("")
    out += result.totals.summary_lines()
    for n in result.notes:
        out.append(f"note: {F.text(n)}")
    return "\n".join(out) + "\n"
