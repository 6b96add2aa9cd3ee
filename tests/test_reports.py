"""Reports a person reads at a glance: the verdict per row, the order (failures first, then the
largest relative change), tables that fit the terminal, the summary on stderr with -o, the
drift chart's data (against numpy), its PNG and Mermaid forms, and the small CLI fixes."""

from __future__ import annotations

import csv
import io
import math
import re
import shutil

import h5py
import numpy as np
import pytest
from PIL import Image

import kaudit
from kaudit.inspection import inspect
from kaudit.paths import layer_of
from kaudit.policy import policy_from_mapping
from kaudit.report import _fmt as F
from kaudit.report.drift import COLOURS, drift_marks, drift_mermaid, drift_png, drift_svg, scale_floor
from kaudit.result import RULES

from .conftest import AFTER, BEFORE, real, run_cli

OARRIAGA = "oarriaga/oarriaga_fer2013_mini_XCEPTION.{}.hdf5"


def edited(tmp_path, src: str, name: str, edits: dict) -> str:
    """A copy of a legacy HDF5 fixture with datasets replaced: {dataset path: f(old) -> new}."""
    dst = tmp_path / name
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        for key, fn in edits.items():
            f[key][...] = fn(f[key][...])
    return str(dst)


def backbone_moved(tmp_path) -> str:
    """AFTER with the frozen backbone's first conv kernel nudged (a frozen violation)."""
    return edited(tmp_path, AFTER, "moved.h5", {"model_weights/backbone/bb_conv1/kernel:0": lambda k: k + 1e-3})


def table_paths(text: str) -> list[str]:
    """The path cells of a rendered text table (between the dashes and the first blank line)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("----")) + 1
    out = []
    for line in lines[start:]:
        if not line.strip() or line.startswith("..."):
            break
        out.append(line.split("  ")[0].strip())
    return out


# -- the verdict per row -------------------------------------------------------------------------


def test_rule_column_names_the_rule_each_row_failed(tmp_path):
    b = backbone_moved(tmp_path)
    pol = policy_from_mapping(
        {
            "rules": [
                {"path": "backbone/**", "frozen": True},
                {"path": "head_dense/**", "must_change": True, "atol": 1},
                {"path": "head_out/**", "trainable": False},
            ]
        }
    )
    res = kaudit.diff(BEFORE, b, policy=pol)
    rule = {r.path: r.rule for r in res.records}
    assert rule["backbone/bb_conv1/kernel"] == "frozen"
    assert rule["backbone/bb_conv1/bias"] is None  # identical: passes
    assert rule["head_dense/kernel"] is None  # it changed, as it must
    assert rule["head_out/kernel"] == "tolerance,trainable"  # over atol=0 and trainable in b
    assert all(r.passed == (r.rule is None) for r in res.records)
    assert set(",".join(r.rule for r in res.records if r.rule).split(",")) <= set(RULES)
    # structure: a variable only in b
    res2 = kaudit.diff(BEFORE, AFTER, ignore=["head_out/bias"])
    assert all(r.rule in (None, "tolerance") for r in res2.records)


def test_rule_for_added_and_must_change(tmp_path):
    pol = policy_from_mapping({"rules": [{"path": "backbone/**", "must_change": True}]})
    res = kaudit.diff(BEFORE, AFTER, policy=pol)
    assert {r.rule for r in res.records if r.path.startswith("backbone/")} == {"must_change"}
    a = weights_only(tmp_path, "a.h5", 1.0)
    b = weights_only(tmp_path, "b.h5", 1.0, layers=("dense", "extra"))
    res = kaudit.diff(a, b)
    assert [(r.path, r.status, r.rule) for r in res.records if r.rule] == [
        ("extra/kernel", "only_in_b", "structure"),
        ("extra/bias", "only_in_b", "structure"),
    ]
    assert kaudit.diff(a, b, allow_added=True).passed


def test_verdict_in_every_format(tmp_path):
    b = backbone_moved(tmp_path)
    pol = policy_from_mapping({"rules": [{"path": "backbone/**", "frozen": True}, {"path": "head*/**", "atol": 1}]})
    res = kaudit.diff(BEFORE, b, policy=pol)
    assert not res.passed
    text = res.render("table")
    assert re.search(r"backbone/bb_conv1/kernel\s+changed\s+FAIL frozen", text)
    assert re.search(r"head_dense/kernel\s+close\s+ok", text)
    md = res.render("markdown")
    assert re.search(r"\| backbone/bb\\_conv1/kernel +\| changed +\| FAIL frozen", md)  # (Markdown escapes _)
    rows = list(csv.DictReader(io.StringIO(res.render("csv"))))
    assert {r["path"]: r["rule"] for r in rows}["backbone/bb_conv1/kernel"] == "frozen"
    assert {r["path"]: r["rule"] for r in rows}["head_dense/kernel"] == ""
    html = res.render("html")
    assert re.search(r'<td class="vd" data-v="FAIL frozen">FAIL frozen</td>', html)
    junit = res.render("junit")
    assert 'type="frozen"' in junit


# -- order ------------------------------------------------------------------------------------------


def test_order_failures_first_then_largest_change(tmp_path):
    b = backbone_moved(tmp_path)
    pol = policy_from_mapping({"rules": [{"path": "head_dense/**", "atol": 1}]})
    res = kaudit.diff(BEFORE, b, policy=pol)
    shown = table_paths(res.render("table"))
    rows = {r.path: r for r in res.records}
    assert set(shown) == {r.path for r in res.rows(False)}
    verdicts = [rows[p].passed for p in shown]
    assert verdicts == sorted(verdicts)  # every failure before every pass
    for passed in (False, True):
        sizes = [rows[p].rel_change for p in shown if rows[p].passed is passed]
        assert sizes == sorted(sizes, reverse=True) and sizes  # largest change first
    assert shown[0] == "head_out/bias"  # rel_change 0.93: the top
    # --sort model: the file's order; path: alphabetical
    assert table_paths(res.render("table", sort="model")) == [r.path for r in res.rows(False)]
    assert table_paths(res.render("table", sort="path")) == sorted(shown)
    status = table_paths(res.render("table", sort="status", all_rows=True))
    assert [rows[p].status for p in status][-1] == "identical"


def test_top_says_how_many_more():
    res = kaudit.diff(BEFORE, AFTER)
    text = res.render("table", top=2)
    assert len(table_paths(text)) == 2
    assert "... and 2 more rows (--top 0 shows all)" in text
    assert len(table_paths(res.render("table", top=0))) == 4


def test_cli_sort_and_top():
    proc = run_cli("diff", BEFORE, AFTER, "--sort", "path", "--top", "3", "--wide")
    assert proc.returncode == 1
    assert table_paths(proc.stdout) == ["head_dense/bias", "head_dense/kernel", "head_out/bias"]
    assert "and 1 more rows" in proc.stdout


# -- width ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", ["80", "100", "132"])
def test_table_fits_columns(columns):
    a, b = real(OARRIAGA.format("00-0.47")), real(OARRIAGA.format("02-0.52"))
    proc = run_cli("diff", a, b, env={"COLUMNS": columns})
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= int(columns)
    paths = table_paths(proc.stdout)
    assert len(paths) == 80
    # a cut path keeps its start and its end (the variable's own name)
    full = {r.path for r in kaudit.diff(a, b).records}
    for p in paths:
        if "…" in p:
            head, tail = p.split("…")
            assert any(f.startswith(head) and f.endswith(tail) for f in full), p
        else:
            assert p in full
    header = next(line for line in lines if line.startswith("path"))
    assert header.split()[:4] == ["path", "status", "verdict", "rel_change"]


def test_table_fits_80_on_a_fixture_and_wide_shows_everything():
    narrow = run_cli("diff", BEFORE, AFTER, env={"COLUMNS": "80"})
    assert max(len(x) for x in narrow.stdout.splitlines()) <= 80
    wide = run_cli("diff", BEFORE, AFTER, "--wide", env={"COLUMNS": "80"})
    header = next(x for x in wide.stdout.splitlines() if x.startswith("path"))
    assert header.split() == [
        "path",
        "status",
        "verdict",
        "rel_change",
        "max_abs",
        "shape",
        "trainable",
        "n_exceed",
        "dtype",
        "mean_abs",
        "rel_l2",
        "cosine",
    ]
    assert max(len(x) for x in wide.stdout.splitlines()) > 80


def test_elide_keeps_both_ends():
    assert F.elide("backbone/block_12/conv/kernel", 16) == "backb…onv/kernel"
    assert len(F.elide("x" * 100, 30)) == 30
    assert F.elide("short", 30) == "short"


# -- stderr, messages -------------------------------------------------------------------------------


def test_summary_on_stderr_with_output(tmp_path):
    out = tmp_path / "report.md"
    proc = run_cli("diff", BEFORE, AFTER, "--format", "markdown", "-o", str(out))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == "16 pairs: 12 identical, 4 changed; 61 element(s) over tolerance. FAIL"
    assert "❌ FAIL" in out.read_text()
    proc = run_cli("diff", BEFORE, AFTER, "--atol", "1", "-o", str(tmp_path / "r.txt"))
    assert proc.returncode == 0 and proc.stderr.strip().endswith("0 element(s) over tolerance. PASS")
    quiet = run_cli("diff", BEFORE, AFTER, "-q")
    assert quiet.stdout == "" and quiet.stderr == ""


def test_pass_line_says_within_policy():
    """The head must change: its elements over tolerance are what the policy wants, and the PASS
    line says so instead of reading as a contradiction."""
    res = kaudit.diff(BEFORE, AFTER, policy={"rules": [{"path": "head_*/**", "must_change": True}]})
    assert res.passed and res.summary["elements_over_tolerance"] == 61
    assert F.verdict_summary(res) == (
        "16 pairs: 12 identical, 4 changed; 61 element(s) over tolerance, within policy. PASS"
    )
    assert res.render("table").rstrip().endswith("within policy. PASS")
    strict = kaudit.diff(BEFORE, AFTER, atol=1)
    assert strict.passed and F.verdict_summary(strict).endswith("0 element(s) over tolerance. PASS")


def test_misspelled_option_names_the_command():
    proc = run_cli("diff", BEFORE, AFTER, "--atoll", "1")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (
        "kaudit: error: kaudit diff: unrecognized arguments: --atoll 1 (did you mean --atol? see 'kaudit diff --help')"
    )
    proc = run_cli("inspect", BEFORE, "--optimiser")
    assert "kaudit inspect: unrecognized arguments: --optimiser" in proc.stderr
    assert "did you mean --optimizer?" in proc.stderr
    proc = run_cli("dif", BEFORE, AFTER)
    assert proc.returncode == 2 and "did you mean diff?" in proc.stderr


def weights_only(tmp_path, name: str, value: float, layers=("dense",)) -> str:
    """A weights-only legacy file (no model config: trainability unknown): Dense layers with a
    (3, 2) kernel of ``value`` and a bias of ``value - 1``."""
    path = tmp_path / name
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.21.0"
        f.attrs["layer_names"] = np.array([n.encode() for n in layers])
        for n in layers:
            g = f.create_group(n)
            g.attrs["weight_names"] = np.array([f"{n}/kernel:0".encode(), f"{n}/bias:0".encode()])
            g.create_dataset(f"{n}/kernel:0", data=np.full((3, 2), value, np.float32))
            g.create_dataset(f"{n}/bias:0", data=np.zeros(2, np.float32) + (value - 1))
    return str(path)


def test_unknown_trainable_is_question_mark_everywhere(tmp_path):
    a, b = weights_only(tmp_path, "a.h5", 1.0), weights_only(tmp_path, "b.h5", 2.0)
    res = kaudit.diff(a, b)
    assert all(r.trainable_a is None for r in res.records)
    text = res.render("table", width=None)
    assert re.search(r"dense/kernel\s+changed\s+FAIL tolerance\s+\S+\s+\S+\s+\(3, 2\)\s+\?\s", text)
    insp = inspect(a).render("table")
    assert re.search(r"dense/kernel\s+\S+\s+\(3, 2\)\s+float32\s+\?", insp)
    # the bias starts at zero: rel_l2 is inf, rel_change is 1 (all of it is new)
    bias = next(r for r in res.records if r.path == "dense/bias")
    assert bias.rel_l2 == math.inf and bias.rel_change == 1.0


def test_progress_on_small_files():
    proc = run_cli("diff", BEFORE, AFTER, "--progress", "-q")
    assert proc.returncode == 1
    assert f"kaudit diff: reading {BEFORE} and {AFTER}" in proc.stderr
    assert re.search(r"kaudit diff: compared 16 pairs in [0-9.]+ s\n$", proc.stderr)
    assert "100.0% head_out/bias" in proc.stderr
    silent = run_cli("diff", BEFORE, AFTER, "-q")
    assert silent.stderr == ""


def test_markdown_cut_says_how_to_see_the_rest():
    a, b = real(OARRIAGA.format("00-0.47")), real(OARRIAGA.format("02-0.52"))
    md = kaudit.diff(a, b).render("markdown")
    assert len(re.findall(r"^\| \S", md, re.MULTILINE)) == 51  # the header and 50 rows
    assert "… and 30 more rows: `kaudit diff A B --format markdown --top 0` shows all" in md
    assert "… and 70 more" in md  # failure lines: the first 10
    full = kaudit.diff(a, b).render("markdown", top=0)
    assert len(re.findall(r"^\| \S", full, re.MULTILINE)) == 81


# -- the drift chart: its numbers against numpy ----------------------------------------------------


def numpy_rel_change(ca, cb, path_a: str, path_b: str) -> float:
    x = np.asarray(ca[path_a], np.float64).ravel()
    y = np.asarray(cb[path_b], np.float64).ravel()
    d = np.linalg.norm(y - x)
    return 0.0 if d == 0 else d / max(np.linalg.norm(x), np.linalg.norm(y))


@pytest.mark.parametrize("pair", ["fixture", "real"])
def test_drift_marks_match_numpy(pair):
    if pair == "fixture":
        a, b = BEFORE, AFTER
    else:
        a, b = real(OARRIAGA.format("51-0.63")), real(OARRIAGA.format("110-0.65"))
    res = kaudit.diff(a, b)
    ca, cb = kaudit.load(a), kaudit.load(b)
    want: dict[str, float] = {}
    for r in res.records:
        v = numpy_rel_change(ca, cb, r.path, r.path_b)
        assert r.rel_change == pytest.approx(v, rel=1e-9, abs=1e-15), r.path
        layer = layer_of(r.path)
        want[layer] = max(want.get(layer, 0.0), v)
    marks = drift_marks(res)
    assert [m.name for m in marks] == list(want)  # model order, one per layer
    for m in marks:
        assert m.value == pytest.approx(want[m.name], rel=1e-9, abs=1e-15)
        assert m.verdict == ("identical" if want[m.name] == 0 else "fail")
    per_var = drift_marks(res, by="variable")
    assert [m.name for m in per_var] == [r.path for r in res.records]
    # the SVG carries the same figures, one mark each, coloured by verdict
    svg = drift_svg(res)
    found = re.findall(
        r'<g class="mark" data-verdict="(\w+)" data-name="([^"]*)" data-value="([^"]*)">'
        r'<title>[^<]*</title><rect class="hit"[^>]*/><rect class="bar"[^>]*fill="(#\w+)"',
        svg,
    )
    assert len(found) == len(marks)
    for (verdict, name, value, fill), m in zip(found, marks, strict=True):
        assert (verdict, name, float(value), fill) == (m.verdict, m.name, m.value, COLOURS[m.verdict])


def test_drift_heights_are_log_scaled():
    res = kaudit.diff(BEFORE, AFTER)
    marks = drift_marks(res)
    floor = scale_floor(marks)
    assert floor == 10.0 ** (math.floor(math.log10(min(m.value for m in marks if m.value))) - 1)
    svg = drift_svg(res)
    bars = {
        name: float(h)
        for name, h in re.findall(r'data-name="([^"]*)"[^>]*>.*?<rect class="bar" [^>]*height="([0-9.]+)"', svg)
    }
    from kaudit.report.drift import PLOT_H, STUB, TOP

    for m in marks:
        if m.verdict == "identical":
            assert bars[m.name] == STUB
        else:
            frac = (math.log10(m.value) - math.log10(floor)) / (math.log10(TOP) - math.log10(floor))
            assert bars[m.name] == pytest.approx(frac * PLOT_H, abs=0.01)


def test_drift_png_and_cli_plot(tmp_path):
    res = kaudit.diff(BEFORE, AFTER)
    with Image.open(io.BytesIO(drift_png(res))) as im:
        px = np.asarray(im.convert("RGB"))
    red = np.all(px == (0xCF, 0x22, 0x2E), axis=-1)
    grey = np.all(px == (0x8C, 0x95, 0x9F), axis=-1)
    assert red.sum() > 1000 and grey.sum() > 100
    # two failing layers: the red columns form two separate runs
    cols = red.any(axis=0)
    runs = np.count_nonzero(cols[1:] & ~cols[:-1]) + int(cols[0])
    assert runs == 2 + 1  # and the legend's red square
    out = tmp_path / "drift.png"
    proc = run_cli("diff", BEFORE, AFTER, "--plot", str(out), "-q")
    assert proc.returncode == 1 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_drift_mermaid():
    res = kaudit.diff(BEFORE, AFTER)
    marks = drift_marks(res)
    text = drift_mermaid(res)
    assert text.startswith("```mermaid") and "xychart-beta" in text and text.endswith("```")
    series = [[float(v) for v in s.split(", ")] for s in re.findall(r"^\s+bar \[(.*)\]$", text, re.MULTILINE)]
    assert len(series) == 3 and all(len(s) == len(marks) for s in series)
    within, failing, same = series
    for m, w, f, s in zip(marks, within, failing, same, strict=True):
        if m.verdict == "fail":
            assert f == pytest.approx(math.log10(m.value), abs=0.006)
        if m.verdict == "identical":
            assert s > min(same) - 1e-9 and w == f == math.log10(scale_floor(marks))
    assert text in res.render("markdown")


def test_output_to_a_pipe_or_device_is_written_not_replaced(tmp_path):
    """-o /dev/null (or a FIFO) is written to: the atomic rename must never replace a device or a
    pipe with a regular file (as root, `-o /dev/null` replaced the machine's /dev/null)."""
    import os
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    proc = run_cli("diff", BEFORE, AFTER, "-f", "json", "-o", str(fifo))
    reader.join(30)
    assert proc.returncode == 1
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert b'"verdict": "FAIL"' in got[0]
