"""kaudit trend: every checkpoint of a run against the previous one and the first. Each step must
be exactly the pairwise ``kaudit diff`` of its two files (checked on real runs), the norms must be
numpy's, the policy gates every step, and the renderers show the same grid."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import kaudit
from kaudit.errors import UsageError
from kaudit.policy import policy_from_mapping
from kaudit.report.trend import trend_png
from kaudit.trend import TREND_COLUMNS, labels_of, natural_key, run_members, trend

from .conftest import AFTER, BEFORE, REAL, real, run_cli
from .test_reports import backbone_moved

OARRIAGA = [
    f"oarriaga/oarriaga_fer2013_mini_XCEPTION.{e}.hdf5"
    for e in ("00-0.47", "02-0.52", "51-0.63", "110-0.65", "119-0.65")
]
STR_WW = [f"mlperf_tiny/str_ww_model.v2024-{d}.h5" for d in ("06-06", "06-24", "07-29")]
PHASENET = ["phasenet/phasenet_190703_epoch50_tfckpt", "phasenet/phasenet_190703_epoch95_tfckpt"]

#: The DiffRow fields a trend step must reproduce exactly.
FIELDS = ("path", "path_b", "status", "matched_by", "max_abs", "rel_l2", "rel_change", "n_exceed", "passed", "rule")


def same(x, y) -> bool:
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return x == y


def assert_steps_match_pairwise_diff(res, **options):
    for i in range(1, len(res.files)):
        for step, a in ((res.steps[i], res.files[i - 1]), (res.from_first[i], res.files[0])):
            want = kaudit.diff(a, res.files[i], **options)
            assert len(step.records) == len(want.records)
            for got, exp in zip(step.records, want.records, strict=True):
                for f in FIELDS:
                    assert same(getattr(got, f), getattr(exp, f)), (res.labels[i], got.path, f)
            assert step.passed == want.passed and step.summary == want.summary


# -- order and names ------------------------------------------------------------------------------


def test_natural_order_and_labels():
    names = ["m.110-0.65.h5", "m.02-0.52.h5", "m.51-0.63.h5", "m.119-0.65.h5", "m.00-0.47.h5"]
    ordered = sorted(names, key=natural_key)
    assert ordered == ["m.00-0.47.h5", "m.02-0.52.h5", "m.51-0.63.h5", "m.110-0.65.h5", "m.119-0.65.h5"]
    assert labels_of(ordered) == ["00-0.47", "02-0.52", "51-0.63", "110-0.65", "119-0.65"]
    assert labels_of(["run/ep10.h5", "run/ep12.h5"]) == ["10", "12"]  # a number is never cut in two
    assert labels_of(["x/epoch_9.h5", "y/epoch_9.h5"]) == ["x", "y"]  # same names: the folders


def test_run_members_from_files_glob_and_directory(tmp_path):
    for n in ("e10.h5", "e2.h5", "e1.h5"):
        shutil.copy(BEFORE, tmp_path / n)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "e3.h5.truth.json").write_text("{}")
    want = [str(tmp_path / n) for n in ("e1.h5", "e2.h5", "e10.h5")]
    assert run_members([str(tmp_path)]) == want
    assert run_members([str(tmp_path / "e*.h5")]) == want
    given = [str(tmp_path / n) for n in ("e10.h5", "e2.h5")]
    assert run_members(given) == given[::-1]
    assert run_members(given, order="given") == given
    with pytest.raises(UsageError, match="at least two"):
        run_members([str(tmp_path / "e1.h5")])
    with pytest.raises(UsageError, match="no checkpoint matches"):
        run_members([str(tmp_path / "zz*.h5")])


# -- every step is the pairwise diff ---------------------------------------------------------------


@pytest.mark.real
@pytest.mark.parametrize("run", ["oarriaga", "str_ww"])
def test_trend_agrees_with_pairwise_diff_on_real_runs(run):
    files = [real(p) for p in (OARRIAGA if run == "oarriaga" else STR_WW)]
    res = trend(files[::-1])  # put back in order by the names
    assert list(res.files) == files
    assert not res.gated and res.passed and res.exit_code == 0
    assert_steps_match_pairwise_diff(res)
    # and with a policy: the same steps, gated
    gated = trend(files, atol=0.05)
    assert gated.gated and not gated.passed
    assert_steps_match_pairwise_diff(gated, atol=0.05)
    assert gated.failures and all(f.split(" ")[0] in gated.labels for f in gated.failures)


@pytest.mark.real
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs tensorflow (TF checkpoints)")
def test_trend_agrees_with_pairwise_diff_on_phasenet_tf_checkpoints():
    files = [real(p) for p in PHASENET]
    res = trend(files)
    assert res.labels == ("50", "95")
    assert_steps_match_pairwise_diff(res)


@pytest.mark.real
def test_trend_norms_against_numpy():
    files = [real(p) for p in OARRIAGA[:3]]
    res = trend(files)
    for i, f in enumerate(files):
        ck = kaudit.load(f)
        for path, norm in res.norms[i].items():
            assert norm == pytest.approx(float(np.linalg.norm(np.asarray(ck[path], np.float64))), rel=1e-9)
    grid = dict(res.grid("norm"))
    ck = kaudit.load(files[1])
    conv = [v.path for v in ck.select(False) if v.path.startswith("conv2d_1/")]
    want = math.sqrt(sum(float(np.sum(np.asarray(ck[p], np.float64) ** 2)) for p in conv))
    assert grid["conv2d_1"][1] == pytest.approx(want, rel=1e-9)


# -- the policy gates every step -------------------------------------------------------------------


def fixture_run(tmp_path) -> list[str]:
    """BEFORE -> AFTER (head fine-tuned) -> the backbone moved too."""
    ep = tmp_path / "run"
    ep.mkdir()
    shutil.copy(BEFORE, ep / "epoch_1.h5")
    shutil.copy(AFTER, ep / "epoch_2.h5")
    shutil.copy(backbone_moved(tmp_path), ep / "epoch_10.h5")
    return [str(ep / f"epoch_{i}.h5") for i in (1, 2, 10)]


def test_frozen_through_the_run(tmp_path):
    files = fixture_run(tmp_path)
    pol = policy_from_mapping({"rules": [{"path": "backbone/**", "frozen": True}, {"path": "head*/**", "atol": 1}]})
    res = trend(files, policy=pol)
    assert res.gated and not res.passed and res.exit_code == 1 and res.verdict == "FAIL"
    assert res.steps[1].passed and res.from_first[1].passed
    assert not res.steps[2].passed and not res.from_first[2].passed
    assert res.failures == (
        "10 vs previous: backbone/** frozen: backbone/bb_conv1/kernel changed, max_abs 0.001, 216 element(s)",
        "10 vs first: backbone/** frozen: backbone/bb_conv1/kernel changed, max_abs 0.001, 216 element(s)",
    )
    grid = dict(res.grid("rel_change_prev"))
    assert grid["backbone/bb_conv1"][1] == 0.0 and grid["backbone/bb_conv1"][2] > 0
    assert grid["head_out"][1] == pytest.approx(
        kaudit.diff(files[0], files[1])
        .table.set_index("path")
        .loc[["head_out/kernel", "head_out/bias"], "rel_change"]
        .max()
    )
    # within the policy: exit 0
    ok = trend(files[:2], policy=pol)
    assert ok.passed and ok.exit_code == 0 and ok.verdict == "PASS"
    # no policy: measured, exit 0, said so
    measured = trend(files)
    assert measured.exit_code == 0 and measured.verdict == "MEASURED" and measured.notes


def test_cli_trend_exit_codes_and_outputs(tmp_path):
    files = fixture_run(tmp_path)
    conf = tmp_path / "kaudit.toml"
    conf.write_text('[[rules]]\npath = "backbone/**"\nfrozen = true\n')
    proc = run_cli("trend", str(tmp_path / "run"), "--config", str(conf), env={"COLUMNS": "80"})
    assert proc.returncode == 1, proc.stderr
    assert max(len(x) for x in proc.stdout.splitlines()) <= 80
    rows = {
        line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines() if line.startswith(("backbone/", "head"))
    }
    assert rows["backbone/bb_conv1"] == ["0", "0.00217!", "0.00217!"]  # frozen, moved at epoch 10
    assert rows["backbone/bb_bn1"] == ["0", "0", "0"]
    assert rows["head_out"] == ["0.928!", "0", "0.928!"]  # atol 0 by default: a change fails
    assert proc.stdout.rstrip().endswith("FAIL")
    proc = run_cli("trend", *files[:2], "--no-config")
    assert proc.returncode == 0 and "MEASURED" in proc.stdout
    proc = run_cli("trend", files[0])
    assert proc.returncode == 2 and "a trend needs at least two checkpoints" in proc.stderr
    out, plot = tmp_path / "t.csv", tmp_path / "t.png"
    proc = run_cli("trend", *files, "--no-config", "-f", "csv", "-o", str(out), "--plot", str(plot))
    assert proc.returncode == 0 and proc.stderr.strip().endswith("MEASURED")
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == list(TREND_COLUMNS) and len(rows) == 3 * 16
    with Image.open(plot) as im:
        assert im.size[0] > 200 and im.size[1] > 100
    proc = run_cli("trend", *files, "--no-config", "-f", "json")
    doc = json.loads(proc.stdout)
    assert [c["label"] for c in doc["checkpoints"]] == ["1", "2", "10"] and doc["verdict"] == "MEASURED"


def test_trend_html_and_heatmap(tmp_path):
    files = fixture_run(tmp_path)
    pol = policy_from_mapping({"rules": [{"path": "backbone/**", "frozen": True}, {"path": "head*/**", "atol": 1}]})
    res = trend(files, policy=pol)
    page = res.render("html")
    assert page.count('<table class="kd trend"') == 2
    assert page.count('class="num hm bad"') == 2  # bb_conv1 at epoch 10, both tables
    assert "http" not in page.replace("http-equiv", "").replace('"http://www.w3.org/2000/svg"', "")
    with Image.open(io.BytesIO(trend_png(res))) as im:
        px = np.asarray(im.convert("RGB"))
    red = np.all(px == (207, 34, 46), axis=-1)
    assert red.sum() > 20  # the failing cell's frame
    assert res.matrix("rel_change_prev").shape == (6, 3)
    assert res.matrix("norm", by="variable").shape == (16, 3)


@pytest.mark.skipif(not REAL.is_dir(), reason="shared real-model corpus not available")
def test_real_run_directory_is_not_a_checkpoint():
    # a TF checkpoint directory given alone is one checkpoint, not a run
    d = real(PHASENET[0])
    with pytest.raises(UsageError, match="at least two"):
        run_members([d])
    assert os.path.isdir(d)
