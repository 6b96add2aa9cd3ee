"""Self-contained HTML: ``kaudit diff --format html``, ``kaudit inspect --format html`` and the
notebook displays of a Checkpoint and a DiffResult.

One file, nothing fetched: the CSS and a small script (click a header to sort, type to filter
rows) are inline, the kernel montages are PNGs in ``data:`` URIs. Every text that comes from a
checkpoint file (paths, layer classes, dtypes, failure messages) is escaped: the files are
untrusted input. All CSS is scoped under ``.kaudit`` so the fragment can sit inside a notebook.
"""

from __future__ import annotations

import base64
import math

from . import _fmt as F
from .drift import drift_marks, drift_svg

#: At most this many montages are embedded in one report (the rest: ``--montage-dir``).
MAX_MONTAGES = 24
#: At most this many failure lines are listed (all are in JSON/JUnit).
MAX_FAILURES = 200
#: Failure lines shown before the rest fold into a <details> (the verdict column names each row's rule).
FAILURES_OPEN = 10
#: Rows of a notebook checkpoint table before it is cut.
MAX_CHECKPOINT_ROWS = 2000

CSS = """
.kaudit{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1b1f24;
 max-width:1600px;margin:0 auto;padding:12px 20px}
.kaudit h1{font-size:22px;margin:4px 0 10px}
.kaudit h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.kaudit code,.kaudit .mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.kaudit .verdict{display:inline-block;font-weight:700;font-size:15px;padding:3px 12px;border-radius:14px;
 color:#fff;vertical-align:middle;margin-right:10px}
.kaudit .verdict.pass{background:#1a7f37}.kaudit .verdict.fail{background:#cf222e}
.kaudit .files td{padding:1px 10px 1px 0}
.kaudit .summary{margin:8px 0}
.kaudit ul.failures{margin:4px 0;padding-left:22px;max-height:40vh;overflow:auto}.kaudit ul.failures li{color:#a40e26}
.kaudit ul.notes{padding-left:22px;margin:6px 0}.kaudit ul.notes li{color:#57606a}
.kaudit .controls{margin:6px 0;display:flex;gap:16px;align-items:center;flex-wrap:wrap}
.kaudit .controls input[type=search]{padding:4px 8px;width:320px;border:1px solid #8c959f;border-radius:6px}
.kaudit .count{color:#57606a}
.kaudit .tablebox{overflow:auto;max-height:75vh;border:1px solid #eaeef2}
.kaudit table.kd{border-collapse:collapse;font-size:12.5px}
.kaudit table.kd th,.kaudit table.kd td{border-bottom:1px solid #eaeef2;padding:3px 8px;text-align:left;
 vertical-align:top;white-space:nowrap}
.kaudit table.kd td.num,.kaudit table.kd th.num{text-align:right;font-variant-numeric:tabular-nums}
.kaudit table.kd td.wrap{white-space:normal;min-width:260px;max-width:520px}
.kaudit table.kd thead th{position:sticky;top:0;background:#f6f8fa;cursor:pointer;user-select:none;
 border-bottom:2px solid #d0d7de}
.kaudit table.kd thead th:hover{background:#eaeef2}
.kaudit table.kd th[aria-sort=ascending]::after{content:" \\25B2";font-size:10px}
.kaudit table.kd th[aria-sort=descending]::after{content:" \\25BC";font-size:10px}
.kaudit table.kd tbody tr:hover{background:#f6f8fa}
.kaudit table.kd tr.failed td:first-child{box-shadow:inset 3px 0 #cf222e}
.kaudit table.kd tr.failed td.vd{color:#a40e26;font-weight:600}
.kaudit .driftbox{overflow-x:auto;margin:4px 0 2px}.kaudit svg.drift{display:block;max-width:none}
.kaudit svg.drift g.mark:hover rect.hit{fill:#f6f8fa}
.kaudit table.kd .x{display:none}.kaudit table.kd.allcols .x{display:table-cell}
.kaudit table.kd.hide-identical tr.st-identical{display:none}
.kaudit table.kd tr.nomatch{display:none}
.kaudit .st{display:inline-block;padding:0 7px;border-radius:9px;font-size:11.5px;font-weight:600}
.kaudit .st-identical .st{background:#eaeef2;color:#57606a}
.kaudit .st-close .st{background:#dafbe1;color:#116329}
.kaudit .st-changed .st{background:#ffebe9;color:#a40e26}
.kaudit .st-shape_changed .st,.kaudit .st-dtype_changed .st{background:#fff1e5;color:#953800}
.kaudit .st-only_in_a .st,.kaudit .st-only_in_b .st{background:#ddf4ff;color:#0550ae}
.kaudit .montages{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.kaudit .montages img{max-width:100%;height:auto}
.kaudit figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:8px;background:#fff}
.kaudit figure img{display:block;max-width:100%;height:auto;image-rendering:pixelated}
.kaudit figcaption{font-size:12px;color:#57606a;margin-top:4px}
.kaudit .totals{margin:6px 0 0;padding-left:0;list-style:none}
.kaudit .muted{color:#57606a}
"""

# Sort (click a header; numbers by data-v, then text; empty cells last), filter (all words must
# occur in the row), show identical rows / all columns, and a count of loaded images written to
# #kaudit-status[data-loaded] (what the browser test reads).
JS = r"""
(function () {
  var root = (document.currentScript && document.currentScript.parentElement) || document.body;
  function key(td) {
    var v = td.getAttribute('data-v');
    if (v === null) v = td.textContent.trim();
    if (v === '') return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function cmp(x, y) {
    if (x === null) return y === null ? 0 : 1;
    if (y === null) return -1;
    var nx = typeof x === 'number', ny = typeof y === 'number';
    if (nx !== ny) return nx ? -1 : 1;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  Array.prototype.forEach.call(root.querySelectorAll('.tablewrap'), function (box) {
    var table = box.querySelector('table.kd');
    if (!table) return;
    var body = table.tBodies[0], heads = table.tHead.rows[0].cells;
    var filter = box.querySelector('input.filter'), ident = box.querySelector('input.identical');
    var allcols = box.querySelector('input.allcols'), count = box.querySelector('.count');
    function update() {
      var words = filter ? filter.value.toLowerCase().split(/\s+/).filter(Boolean) : [];
      var hideIdent = table.classList.contains('hide-identical'), shown = 0;
      Array.prototype.forEach.call(body.rows, function (tr) {
        var text = tr.textContent.toLowerCase();
        var ok = words.every(function (w) { return text.indexOf(w) >= 0; });
        tr.classList.toggle('nomatch', !ok);
        if (ok && !(hideIdent && tr.classList.contains('st-identical'))) shown++;
      });
      if (count) count.textContent = shown + ' of ' + body.rows.length + ' rows shown';
    }
    Array.prototype.forEach.call(heads, function (th, i) {
      th.title = 'click to sort';
      th.addEventListener('click', function () {
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[i]), y = key(b.cells[i]);
          if (x === null || y === null) return cmp(x, y);
          return asc ? cmp(x, y) : cmp(y, x);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
    if (filter) filter.addEventListener('input', update);
    if (ident) ident.addEventListener('change', function () {
      table.classList.toggle('hide-identical', !ident.checked); update();
    });
    if (allcols) allcols.addEventListener('change', function () {
      table.classList.toggle('allcols', allcols.checked);
    });
    update();
  });
  var status = root.querySelector('#kaudit-status');
  function countImages() {
    var imgs = root.querySelectorAll('img'), ok = 0;
    Array.prototype.forEach.call(imgs, function (im) { if (im.complete && im.naturalWidth > 0) ok++; });
    if (status) status.setAttribute('data-loaded', String(ok));
    return ok;
  }
  Array.prototype.forEach.call(root.querySelectorAll('img'), function (im) {
    im.addEventListener('load', countImages);
  });
  if (document.readyState === 'complete') countImages();
  else window.addEventListener('load', countImages);
  countImages();
})();
"""


_e = F.html  # untrusted text: non-printable characters shown as escapes, then HTML-escaped


def _missing(x) -> bool:
    if x is None:
        return True
    try:
        return isinstance(x, float) and math.isnan(x)
    except TypeError:
        return False


def _numv(x) -> str:
    """The sort key of a numeric cell (data-v)."""
    if _missing(x) or isinstance(x, (list, tuple, str)):
        return ""
    if isinstance(x, bool):
        return "1" if x else "0"
    try:
        return repr(float(x))
    except (TypeError, ValueError):
        return ""


def _count(x) -> str:
    return "" if _missing(x) else f"{int(x):,}"


def _real(x, digits: int = 4) -> str:
    return "" if _missing(x) else F.num(float(x), digits)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="kaudit">\n<title>{_e(title)}</title>\n'
        f'<style>{CSS}</style>\n</head>\n<body>\n<div class="kaudit">\n{body}\n'
        f"<script>{JS}</script>\n</div>\n</body>\n</html>\n"
    )


NUM_CLASS = ' class="num"'


def _controls(identical: bool | None, allcols: bool, n_rows: int) -> str:
    parts = [
        (
            '<input type="search" class="filter" placeholder="filter rows (words, e.g. conv changed)" '
            'aria-label="filter rows">'
        )
    ]
    if identical is not None:
        parts.append(
            f'<label><input type="checkbox" class="identical"{" checked" if identical else ""}> show identical</label>'
        )
    if allcols:
        parts.append('<label><input type="checkbox" class="allcols"> all columns</label>')
    parts.append(f'<span class="count">{n_rows} rows</span>')
    return '<div class="controls">' + " ".join(parts) + "</div>"


# -- diff ------------------------------------------------------------------------------------------

#: (header, extra?) of the diff table; "extra" columns show with "all columns".
_DIFF_HEADS = [
    ("path", False),
    ("status", False),
    ("verdict", False),
    ("matched by", True),
    ("class", False),
    ("shape", False),
    ("dtype", False),
    ("trainable", False),
    ("params", False),
    ("rel_change", False),
    ("max_abs", False),
    ("mean_abs", False),
    ("rms", True),
    ("max_rel", True),
    ("rel_l2", False),
    ("cosine", False),
    ("n_exceed", False),
    ("frac_exceed", True),
    ("atol", True),
    ("rtol", True),
    ("nan a/b", True),
    ("inf a/b", True),
    ("argmax", True),
    ("kind", True),
    ("passed", True),
    ("failures", True),
]
_NUM_HEADS = {
    "params",
    "rel_change",
    "max_abs",
    "mean_abs",
    "rms",
    "max_rel",
    "rel_l2",
    "cosine",
    "n_exceed",
    "frac_exceed",
    "atol",
    "rtol",
}


def _td(text: str, *, v: str | None = None, cls: str = "") -> str:
    attrs = f' class="{cls}"' if cls else ""
    if v is not None:
        attrs += f' data-v="{_e(v)}"'
    return f"<td{attrs}>{text}</td>"


def _diff_row(r) -> str:
    path = _e(r.path)
    if r.path_b is not None and r.path_b != r.path:
        path += f' <span class="muted">&harr; {_e(r.path_b)}</span>'
    tr_cls = f"st-{_e(r.status)}" + ("" if r.passed else " failed")
    shape_a = None if _missing(r.shape_a) else r.shape_a
    shape_b = None if _missing(r.shape_b) else r.shape_b
    tri_change = F.trainable_cell(r)
    nan = "" if _missing(r.nan_a) and _missing(r.nan_b) else f"{_count(r.nan_a) or '-'} / {_count(r.nan_b) or '-'}"
    inf = "" if _missing(r.inf_a) and _missing(r.inf_b) else f"{_count(r.inf_a) or '-'} / {_count(r.inf_b) or '-'}"
    argmax = "" if _missing(r.argmax) else "[" + ", ".join(str(int(i)) for i in r.argmax) + "]"
    cells = [  # (html, sort key or None, css class), in _DIFF_HEADS order
        (path, r.path, "mono"),
        (f'<span class="st">{_e(r.status)}</span>', r.status, ""),
        (_e(F.verdict_cell(r)), F.verdict_cell(r), "vd"),
        (_e(r.matched_by or ""), None, ""),
        (_e(r.layer_class or ""), None, ""),
        (_e(F.arrow(shape_a, shape_b, F.shape)), _numv(r.params), ""),
        (_e(F.arrow(None if _missing(r.dtype_a) else r.dtype_a, None if _missing(r.dtype_b) else r.dtype_b)), None, ""),
        (_e(tri_change), None, ""),
        (_count(r.params), _numv(r.params), "num"),
        (_real(r.rel_change), _numv(r.rel_change), "num"),
        (_real(r.max_abs), _numv(r.max_abs), "num"),
        (_real(r.mean_abs), _numv(r.mean_abs), "num"),
        (_real(r.rms), _numv(r.rms), "num"),
        (_real(r.max_rel), _numv(r.max_rel), "num"),
        (_real(r.rel_l2), _numv(r.rel_l2), "num"),
        (_real(r.cosine, 6), _numv(r.cosine), "num"),
        (_count(r.n_exceed), _numv(r.n_exceed), "num"),
        (_real(r.frac_exceed), _numv(r.frac_exceed), "num"),
        (_real(r.atol), _numv(r.atol), "num"),
        (_real(r.rtol), _numv(r.rtol), "num"),
        (nan, None, ""),
        (inf, None, ""),
        (argmax, None, ""),
        (_e(r.kind or ""), None, ""),
        ("yes" if r.passed else "no", None, ""),
        (_e(r.failures or ""), None, "wrap"),
    ]
    out = [
        _td(text, v=v, cls=" ".join(c for c in ("x" if extra else "", cls) if c))
        for (_head, extra), (text, v, cls) in zip(_DIFF_HEADS, cells, strict=True)
    ]
    return f'<tr class="{tr_cls}">' + "".join(out) + "</tr>"


def _diff_table(result, all_rows: bool, sort: str = "change") -> str:
    t = F.order_rows(result.records, sort)
    heads = []
    for head, extra in _DIFF_HEADS:
        cls = " ".join(c for c in ("x" if extra else "", "num" if head in _NUM_HEADS else "") if c)
        heads.append(f'<th class="{cls}">{_e(head)}</th>' if cls else f"<th>{_e(head)}</th>")
    rows = [_diff_row(r) for r in t]
    n_ident = sum(r.status == "identical" for r in t)
    table_cls = "kd" + ("" if all_rows else " hide-identical")
    hidden = (
        ""
        if all_rows or not n_ident
        else (f' <span class="muted">({n_ident} identical pair(s) hidden; tick "show identical")</span>')
    )
    return (
        f'<h2>Variables{hidden}</h2>\n<div class="tablewrap">'
        + _controls(all_rows, True, len(rows))
        + f'<div class="tablebox"><table class="{table_cls}" id="kaudit-table"><thead><tr>{"".join(heads)}'
        + "</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table></div></div>"
    )


def _montage_figures(result, limit: int) -> list[str]:
    """The figures of the montages the diff drew (``DiffResult.pictures``), at most ``limit``."""
    figs = []
    for pic in result.pictures[:limit]:
        data = base64.b64encode(pic.png).decode("ascii")
        name = _e(pic.path) if pic.path_b == pic.path else f"{_e(pic.path)} &harr; {_e(pic.path_b)}"
        figs.append(
            f'<figure><img src="data:image/png;base64,{data}" width="{pic.width}" height="{pic.height}" '
            f'alt="A | B | B - A montage of {_e(pic.path)}"><figcaption><code>{name}</code></figcaption></figure>'
        )
    return figs


def diff_html(
    result, all_rows: bool = False, montages: bool = True, max_montages: int = MAX_MONTAGES, sort: str = "change", **_kw
) -> str:
    """The diff as one self-contained HTML page: verdict, summary, failures, the drift chart
    (where the model moved), the sortable and filterable variable table (first in ``sort``
    order), and A | B | B - A montages of the changed conv kernels."""
    title = f"kaudit diff: {result.file_a} vs {result.file_b}"
    verdict = "pass" if result.passed else "fail"
    out = [
        f'<h1><span class="verdict {verdict}">{result.verdict}</span>kaudit diff</h1>',
        (
            '<table class="files">'
            f'<tr><td>a</td><td><code>{_e(result.file_a)}</code></td><td class="muted">{_e(result.format_a)}</td></tr>'
            f'<tr><td>b</td><td><code>{_e(result.file_b)}</code></td><td class="muted">{_e(result.format_b)}</td></tr>'
            "</table>"
        ),
        f'<p class="summary" id="kaudit-summary">{_e(F.verdict_summary(result))}</p>',
        f'<p class="muted" id="kaudit-policy">{_e(F.policy_line(result))}</p>',
    ]
    if result.records:
        n_layers = len(drift_marks(result))
        out.append(
            f'<h2>Where the model moved <span class="muted">({n_layers} layer(s) in model order; '
            "hover a bar for its figures)</span></h2>"
        )
        out.append(f'<div class="driftbox" id="kaudit-drift">{drift_svg(result)}</div>')
    if result.failures:
        failed, messages, counts = F.failure_report(result, sort)
        by_rule = ", ".join(f"{_e(k)} {v}" for k, v in counts.items())
        out.append(
            f'<h2>Failures ({len(result.failures)}) <span class="muted">in {len(failed)} row(s): {by_rule}</span></h2>'
        )
        items = [f"<li>{_e(f)}</li>" for f in messages[:MAX_FAILURES]]
        if len(messages) > MAX_FAILURES:
            items.append(f"<li>… and {len(messages) - MAX_FAILURES} more (see --format json)</li>")
        head, rest = items[:FAILURES_OPEN], items[FAILURES_OPEN:]
        out.append('<ul class="failures">' + "".join(head) + "</ul>")
        if rest:
            out.append(
                f'<details><summary class="muted">{len(rest)} more failure line(s)</summary>'
                '<ul class="failures">' + "".join(rest) + "</ul></details>"
            )
    if result.notes:
        out.append('<ul class="notes">' + "".join(f"<li>note: {_e(n)}</li>" for n in result.notes) + "</ul>")
    out.append(_diff_table(result, all_rows, sort))
    figs = _montage_figures(result, max_montages) if montages else []
    total = max(result.pictures_total, len(figs))
    if figs:
        more = (
            f' <span class="muted">(first {len(figs)} of {total}; all of them with --montage-dir)</span>'
            if total > len(figs)
            else ""
        )
        out.append(f"<h2>Changed conv kernels: A | B | B - A{more}</h2>")
        out.append(
            '<p class="muted">A and B share one min-max scale; B - A is blue below zero, white at zero, '
            "red above, on its own symmetric scale.</p>"
        )
        out.append('<div class="montages">' + "\n".join(figs) + "</div>")
    if result.montages:
        out.append(
            "<h2>Montage files</h2><ul>" + "".join(f"<li><code>{_e(m)}</code></li>" for m in result.montages) + "</ul>"
        )
    if result.policy:
        import json

        out.append(
            '<details><summary class="muted">policy</summary><pre class="mono">'
            f"{_e(json.dumps(result.policy, indent=1, default=str))}</pre></details>"
        )
    out.append(
        f'<p class="muted" id="kaudit-status" data-images="{len(figs)}" data-loaded="0">'
        f"kaudit report · {len(result.records)} pairs · {len(figs)} montage(s)</p>"
    )
    return _page(title, "\n".join(out))


# -- inspect ---------------------------------------------------------------------------------------


def inspect_html(result) -> str:
    """``kaudit inspect --format html``: the variable table (sortable, filterable) and totals."""
    stats = "min" in result.columns
    heads = ["path", "class", "shape", "dtype", "trainable", "params"] + (
        ["min", "max", "mean", "std", "nan", "inf"] if stats else []
    )
    num = {"params", "min", "max", "mean", "std", "nan", "inf"}
    rows = []
    for r in result.rows():
        cells = [
            _td(_e(r.path), v=r.path, cls="mono"),
            _td(_e(r.layer_class or "?")),
            _td(_e(F.shape(r.shape)), v=_numv(r.params)),
            _td(_e(r.dtype)),
            _td(_e(F.tri(None if _missing(r.trainable) else r.trainable))),
            _td(_count(r.params), v=_numv(r.params), cls="num"),
        ]
        if stats:
            cells += [
                _td(_real(getattr(r, c)), v=_numv(getattr(r, c)), cls="num") for c in ("min", "max", "mean", "std")
            ]
            cells += [_td(_count(getattr(r, c)), v=_numv(getattr(r, c)), cls="num") for c in ("nan", "inf")]
        kind = getattr(r, "kind", "model")
        rows.append(f'<tr class="kind-{_e(kind)}">' + "".join(cells) + "</tr>")
    th = "".join(f"<th{NUM_CLASS if h in num else ''}>{_e(h)}</th>" for h in heads)
    version = f", Keras {_e(result.keras_version)}" if result.keras_version else ""
    body = [
        "<h1>kaudit inspect</h1>",
        (
            f'<p><code>{_e(result.file)}</code> <span class="muted">({_e(result.format)}{version}'
            f"{'' if result.has_config else ', no model config'})</span></p>"
        ),
        '<ul class="totals">' + "".join(f"<li>{_e(line)}</li>" for line in result.totals.summary_lines()) + "</ul>",
    ]
    if result.notes:
        body.append('<ul class="notes">' + "".join(f"<li>note: {_e(n)}</li>" for n in result.notes) + "</ul>")
    body.append(
        '<h2>Variables</h2><div class="tablewrap">'
        + _controls(None, False, len(rows))
        + f'<div class="tablebox"><table class="kd" id="kaudit-table"><thead><tr>{th}</tr></thead>\n'
        + "<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table></div></div>"
    )
    body.append(
        f'<p class="muted" id="kaudit-status" data-images="0" data-loaded="0">kaudit report · {len(rows)} variables</p>'
    )
    return _page(f"kaudit inspect: {result.file}", "\n".join(body))


# -- notebooks -------------------------------------------------------------------------------------

_CKPT_CSS = (
    ".kaudit-ckpt{font:13px/1.4 system-ui,sans-serif}.kaudit-ckpt .scroll{max-height:420px;overflow:auto}"
    ".kaudit-ckpt table{border-collapse:collapse}.kaudit-ckpt th,.kaudit-ckpt td{padding:2px 8px;"
    "border-bottom:1px solid #e5e5e5;text-align:left;white-space:nowrap}"
    ".kaudit-ckpt td.num,.kaudit-ckpt th.num{text-align:right}"
    ".kaudit-ckpt code{font-size:12px}.kaudit-ckpt .muted{color:#666}"
)


def checkpoint_html(ckpt) -> str:
    """A compact fragment for notebooks (``Checkpoint._repr_html_``): the model variables with
    class, shape, dtype, trainable and params, then Keras's totals. No script, no values read."""
    mv = ckpt.model_variables
    rows = []
    for v in mv[:MAX_CHECKPOINT_ROWS]:
        rows.append(
            f"<tr><td><code>{_e(v.path)}</code></td><td>{_e(v.layer_class or '?')}</td>"
            f"<td>{_e(F.shape(v.shape))}</td><td>{_e(v.dtype)}</td><td>{_e(F.tri(v.trainable))}</td>"
            f'<td class="num">{v.params:,}</td></tr>'
        )
    if len(mv) > MAX_CHECKPOINT_ROWS:
        rows.append(f'<tr><td colspan="6" class="muted">… and {len(mv) - MAX_CHECKPOINT_ROWS} more variables</td></tr>')
    n_opt = len(ckpt.optimizer_variables)
    version = f", Keras {_e(ckpt.keras_version)}" if ckpt.keras_version else ""
    head = (
        f'<div><b><code>{_e(ckpt.file)}</code></b> <span class="muted">({_e(ckpt.format)}{version}) · '
        f"{len(mv)} variables" + (f" · {n_opt} optimizer/metric variables not shown" if n_opt else "") + "</span></div>"
    )
    table = (
        '<div class="scroll"><table><thead><tr><th>path</th><th>class</th><th>shape</th><th>dtype</th>'
        '<th>trainable</th><th class="num">params</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table></div>"
    )
    totals = '<div class="muted">' + " · ".join(_e(line) for line in ckpt.totals.summary_lines()) + "</div>"
    return f'<div class="kaudit-ckpt"><style>{_CKPT_CSS}</style>{head}{table}{totals}</div>'
