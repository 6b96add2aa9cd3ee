"""The command line as a contract: exit codes, one-line errors, formats, files written.
Each behaviour is checked in-process (``main([...])``) and the key ones as a subprocess."""

from __future__ import annotations

import inspect as pyinspect
import json
import shutil
import subprocess
import sys
import zipfile

import pytest

import kaudit
from kaudit.cli import build_parser, main

from .conftest import FIXTURES, ROOT, fixture, run_cli

TUT = fixture("tutorial/k2_full.h5")
K3 = fixture("tutorial/k3.keras")
BEFORE, AFTER = fixture("finetune/before_k2.h5"), fixture("finetune/after_k2.h5")


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("kaudit: error: ")
    return lines[0]


# -- exit 0 / 1 ------------------------------------------------------------------------------------


def test_diff_exit_0_same_weights(cli):
    code, out, err = cli("diff", TUT, K3)
    assert code == 0 and "PASS" in out and "9 identical" in out and err == ""


def test_diff_exit_1_values_changed(cli):
    code, out, _ = cli("diff", BEFORE, AFTER)
    assert code == 1 and "FAIL" in out and "head_dense/kernel" in out
    assert "backbone" not in out  # identical pairs hidden by default
    code, out, _ = cli("diff", BEFORE, AFTER, "--all")
    assert "backbone/bb_conv1/kernel" in out


def test_diff_exit_1_then_0_with_tolerance(cli):
    assert cli("diff", BEFORE, AFTER, "--atol", "1")[0] == 0
    assert cli("diff", BEFORE, AFTER, "--tol", "head_*/**=1")[0] == 0
    assert cli("diff", BEFORE, AFTER, "--ignore", "head_*/**")[0] == 0


def test_diff_quiet(cli):
    code, out, err = cli("diff", BEFORE, AFTER, "-q")
    assert (code, out, err) == (1, "", "")


def test_subprocess_exit_codes_and_streams(tmp_path):
    r = run_cli("diff", TUT, K3)
    assert r.returncode == 0 and "PASS" in r.stdout and r.stderr == ""
    r = run_cli("diff", BEFORE, AFTER)
    assert r.returncode == 1 and "FAIL" in r.stdout
    r = run_cli("diff", TUT, str(tmp_path / "missing.h5"))
    assert r.returncode == 2 and r.stdout == ""
    assert "missing.h5" in one_line_error(r.stderr)


# -- exit 2 ----------------------------------------------------------------------------------------


def _bad_inputs(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a model\n")
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    import h5py

    other = tmp_path / "data.h5"
    with h5py.File(other, "w") as f:
        f["x"] = [1, 2, 3]
    trunc = tmp_path / "truncated.h5"
    trunc.write_bytes(open(TUT, "rb").read()[:3000])
    nozip = tmp_path / "noweights.keras"
    with zipfile.ZipFile(K3) as src, zipfile.ZipFile(nozip, "w") as dst:
        for name in ("config.json", "metadata.json"):
            dst.writestr(name, src.read(name))
    return {
        "missing": (str(tmp_path / "nope.h5"), "no such file"),
        "directory": (str(tmp_path), "directory"),
        "text": (str(text), "not a Keras or TensorFlow checkpoint"),
        "empty": (str(empty), "empty"),
        "hdf5-not-keras": (str(other), "not a Keras checkpoint"),
        "truncated": (str(trunc), "truncated"),
        "keras-zip-missing-weights": (str(nozip), "model.weights.h5"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "directory", "text", "empty", "hdf5-not-keras", "truncated", "keras-zip-missing-weights"]
)
@pytest.mark.parametrize("command", ["inspect", "diff"])
def test_bad_input_exit_2_one_line(cli, tmp_path, case, command):
    path, words = _bad_inputs(tmp_path)[case]
    args = ["inspect", path] if command == "inspect" else ["diff", TUT, path]
    out_file = tmp_path / "report.json"
    code, out, err = cli(*args, "-o", str(out_file), "--format", "json")
    assert code == 2 and out == ""
    line = one_line_error(err)
    assert path in line and words in line
    assert not out_file.exists()  # nothing written half-way


def test_bad_input_subprocess_no_traceback(tmp_path):
    for path, _ in _bad_inputs(tmp_path).values():
        r = run_cli("inspect", path)
        assert r.returncode == 2
        one_line_error(r.stderr)


@pytest.mark.parametrize(
    "args,words",
    [
        (["diff", TUT], "the following arguments are required"),
        (["diff", TUT, K3, "--atol", "-1"], "--atol"),
        (["diff", TUT, K3, "--atol", "abc"], "not a number"),
        (["diff", TUT, K3, "--tol", "nonsense"], "PATTERN=ATOL"),
        (["diff", TUT, K3, "--tol", "x=abc"], "must be a number"),
        (["diff", TUT, K3, "--rename", "nonsense"], "OLD=NEW"),
        (["diff", TUT, K3, "--format", "yaml"], "invalid choice"),
        (["diff", TUT, K3, "-q", "--format", "json"], "quiet"),
        (["frobnicate"], "invalid choice"),
        (["inspect", TUT, "-o", "/nonexistent-dir/x.txt"], "does not exist"),
    ],
)
def test_usage_errors_exit_2(cli, args, words):
    code, _out, err = cli(*args)
    assert code == 2
    assert words in one_line_error(err)


def test_no_command_prints_help_and_exits_2(cli):
    code, _out, err = cli()
    assert code == 2 and "usage:" in err


def test_debug_shows_traceback(cli, tmp_path):
    code, _, err = cli("--debug", "inspect", str(tmp_path / "nope.h5"))
    assert code == 2 and "Traceback" in err and "kaudit: error:" in err


# -- output formats --------------------------------------------------------------------------------


def test_json_report_schema(cli, tmp_path):
    out = tmp_path / "r.json"
    code, stdout, _ = cli("diff", BEFORE, AFTER, "--format", "json", "-o", str(out))
    assert code == 1 and stdout == ""
    doc = json.loads(out.read_text())
    assert doc["passed"] is False
    assert set(doc["summary"]) >= {
        "identical",
        "close",
        "changed",
        "shape_changed",
        "dtype_changed",
        "only_in_a",
        "only_in_b",
    }
    v = doc["variables"][0]
    for key in (
        "path",
        "path_b",
        "status",
        "matched_by",
        "shape_a",
        "shape_b",
        "dtype_a",
        "dtype_b",
        "trainable_a",
        "trainable_b",
        "trainable_changed",
        "max_abs",
        "mean_abs",
        "rel_l2",
        "cosine",
        "n_exceed",
    ):
        assert key in v
    assert isinstance(v["shape_a"], list) and isinstance(v["trainable_a"], bool)
    assert {x["status"] for x in doc["variables"]} == {"identical", "changed"}


def test_inspect_formats(cli, tmp_path):
    code, out, _ = cli("inspect", TUT)
    assert code == 0
    for line in ("Total params: 1,025", "Trainable params: 1,023", "Non-trainable params: 2", "L4_bn/moving_variance"):
        assert line in out
    code, out, _ = cli("inspect", TUT, "--format", "json")
    doc = json.loads(out)
    assert doc["format"] == "keras2-h5" and doc["keras_version"] == "2.21.0"
    assert doc["totals"] == {"total": 1025, "trainable": 1023, "non_trainable": 2}
    assert [v["path"] for v in doc["variables"]][:2] == ["L0_conv2d/kernel", "L0_conv2d/bias"]
    v = doc["variables"][7]
    assert (v["path"], v["shape"], v["dtype"], v["trainable"], v["params"]) == (
        "L4_bn/moving_mean",
        [1],
        "float32",
        False,
        1,
    )
    code, out, _ = cli("inspect", fixture("tutorial/k2_weights.h5"), "--format", "json")
    assert json.loads(out)["variables"][0]["trainable"] is None
    code, out, _ = cli("inspect", TUT, "--format", "csv")
    assert out.splitlines()[0].startswith("path,layer,layer_class,name,shape,dtype,trainable,params")
    code, out, _ = cli("inspect", TUT, "--format", "markdown")
    assert "| L3\\_dense/kernel" in out  # Markdown: _ escaped
    code, out, _ = cli("inspect", TUT, "--optimizer", "--no-stats")
    assert "optimizer/" in out


def test_inspect_stats_match_numpy(cli):
    _code, out, _ = cli("inspect", TUT, "--format", "json")
    doc = json.loads(out)
    with kaudit.load(TUT) as c:
        for v in doc["variables"]:
            a = c[v["path"]].astype("float64")
            assert v["min"] == pytest.approx(a.min()) and v["max"] == pytest.approx(a.max())
            assert v["mean"] == pytest.approx(a.mean()) and v["std"] == pytest.approx(a.std(), abs=1e-12)


def test_markdown_and_step_summary(cli, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, _ = cli("diff", BEFORE, AFTER, "--format", "markdown", "--summary")
    assert code == 1 and out.startswith("### kaudit: ❌ FAIL")
    assert "| head\\_dense/kernel" in out
    text = summary.read_text()
    assert text.startswith("earlier\n") and "kaudit: ❌ FAIL" in text


def test_csv_report(cli):
    _code, out, _ = cli("diff", BEFORE, AFTER, "--format", "csv")
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 16 and {r["status"] for r in rows} == {"identical", "changed"}


# -- help and start-up -----------------------------------------------------------------------------


def test_help_has_examples_for_every_command(cli, capsys):
    for cmd in ([], ["inspect"], ["diff"], ["montage"], ["snapshot"], ["audit"]):
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert "example" in out and "kaudit" in out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"kaudit {kaudit.__version__}"


def test_help_imports_nothing_heavy():
    code = (
        "import sys, kaudit.cli\n"
        "try:\n    kaudit.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pandas', 'h5py', 'tensorflow', 'skimage', 'PIL', 'keras') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_console_script_entry_point():
    exe = shutil.which("kaudit")
    if exe is None:
        pytest.skip("kaudit is not installed as a console script here")
    r = subprocess.run([exe, "diff", TUT, K3], capture_output=True, text=True)
    assert r.returncode == 0 and "PASS" in r.stdout


# -- options and library do not drift apart ----------------------------------------------------------


def test_cli_diff_options_map_to_library_parameters():
    params = set(pyinspect.signature(kaudit.compare.diff).parameters)
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["diff"]
    dests = {a.dest for a in sub._actions} - {"help", "a", "b"}
    cli_only = {
        "config",
        "no_config",
        "format",
        "output",
        "all",
        "quiet",
        "junit",
        "summary",
        "montage_dir",
        "progress",
        "sort",
        "top",
        "wide",
        "plot",
    }
    renamed = {"nan_unequal": "equal_nan", "no_structural": "structural"}
    for d in dests - cli_only:
        assert renamed.get(d, d) in params, f"--{d} has no library parameter"
    # pictures: the command line draws them for --format html and --montage-dir
    for p in params - {"a", "b", "policy", "block_elems", "workers", "progress", "pictures"}:
        assert p in {renamed.get(d, d) for d in dests}, f"library parameter {p} has no option"


def test_python_dash_m(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "kaudit", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0 and r.stdout.startswith("kaudit ")


def test_fixture_dir_is_small():
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    assert total < 10 * 1024 * 1024


def test_structural_mapping_is_shown(cli):
    code, out, _ = cli("diff", fixture("renamed/renamed_a.h5"), fixture("renamed/renamed_b.h5"))
    assert code == 0
    assert "dense/kernel ↔ dense_3/kernel" in out and "identical (structure)" in out
    assert "paired by structure" in out
    code, out, _ = cli("diff", fixture("renamed/renamed_a.h5"), fixture("renamed/renamed_b.h5"), "--no-structural")
    assert code == 1 and "only_in_a" in out


def test_progress_line_only_when_enabled_and_large(capsys):
    from kaudit._io import Progress

    p = Progress("kaudit diff", enabled=True, min_bytes=10)
    p(5, 20, "dense/kernel")
    p.close()
    err = capsys.readouterr().err
    assert "kaudit diff:  25.0% dense/kernel" in err and err.endswith("\r")
    asked = Progress("kaudit diff", enabled=True, min_bytes=1000)  # --progress: small jobs too
    asked(5, 20, "x")
    asked.close("compared 1 pairs")
    assert capsys.readouterr().err.endswith("kaudit diff: compared 1 pairs\n")
    default = Progress("kaudit diff", enabled=None, min_bytes=1000)  # not a terminal here: nothing
    default(5, 20, "x")
    default.close("done")
    off = Progress("kaudit diff", enabled=False, min_bytes=0)
    off(5, 20, "x")
    assert capsys.readouterr().err == ""
    seen = []
    res = kaudit.diff(BEFORE, AFTER, progress=lambda d, t, w: seen.append((d, t, w)), workers=1)
    assert seen and seen[-1][0] == seen[-1][1] and {w for _, _, w in seen} == set(res.table["path"])
