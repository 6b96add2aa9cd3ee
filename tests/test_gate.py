"""The CI gate: policy files and their precedence, baselines, JUnit, the pytest helper, audit."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest

import kaudit
from kaudit.errors import PolicyError
from kaudit.policy import Policy, Rule, load_policy, policy_from_mapping
from kaudit.testing import assert_checkpoints_match

from .conftest import fixture

BEFORE, AFTER = fixture("finetune/before_k2.h5"), fixture("finetune/after_k2.h5")
FINETUNE_POLICY = """
[tool.kaudit]
atol = 0
[[tool.kaudit.rules]]
path = "backbone/**"
frozen = true
[[tool.kaudit.rules]]
path = "head_*/**"
must_change = true
trainable = true
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def moved_bn(tmp_path):
    """after_k2.h5 whose frozen backbone's BatchNormalization statistics moved."""
    dst = tmp_path / "moved_bn.h5"
    shutil.copy(AFTER, dst)
    with h5py.File(dst, "r+") as f:
        grp = f["model_weights/backbone"]
        name = next(n for n in grp.attrs["weight_names"] if "moving_mean" in str(n))
        ds = grp[name if isinstance(name, str) else name.decode()]
        ds[0] += 0.031
    return str(dst)


# -- policy ----------------------------------------------------------------------------------------


def test_finetune_policy_passes(tmp_path, cli):
    cfg = write(tmp_path, "pyproject.toml", FINETUNE_POLICY)
    res = kaudit.diff(BEFORE, AFTER, policy=load_policy(cfg))
    assert res.passed
    code, _out, _ = cli("diff", BEFORE, AFTER, "--config", str(cfg))
    assert code == 0


def test_policy_discovered_from_working_directory(tmp_path, monkeypatch, cli):
    write(tmp_path, "kaudit.toml", FINETUNE_POLICY.replace("[tool.kaudit]", "").replace("tool.kaudit.", ""))
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    assert cli("diff", BEFORE, AFTER)[0] == 0
    assert cli("diff", BEFORE, AFTER, "--no-config")[0] == 1


def test_frozen_rule_catches_moved_batchnorm_statistics(tmp_path):
    pol = load_policy(write(tmp_path, "kaudit.toml", FINETUNE_POLICY))
    res = kaudit.diff(BEFORE, moved_bn(tmp_path), policy=pol)
    assert not res.passed
    bad = [f for f in res.failures if f.startswith("backbone/** frozen:")]
    assert len(bad) == 1 and "moving_mean changed, max_abs 0.031" in bad[0]


def test_frozen_means_bit_identical_even_within_tolerance(tmp_path):
    pol = load_policy(write(tmp_path, "kaudit.toml", FINETUNE_POLICY))
    res = kaudit.diff(BEFORE, moved_bn(tmp_path), policy=pol, atol=1.0)
    assert not res.passed and any("frozen" in f for f in res.failures)


def test_must_change_catches_untouched_head():
    pol = policy_from_mapping({"rules": [{"path": "head_*/**", "must_change": True}]})
    res = kaudit.diff(BEFORE, BEFORE, policy=pol)
    assert not res.passed
    assert len(res.failures) == 4 and all("did not change" in f for f in res.failures)
    thresh = policy_from_mapping({"atol": 1.0, "rules": [{"path": "head_*/**", "must_change": 0.04}]})
    res = kaudit.diff(BEFORE, AFTER, policy=thresh)
    failed = {f.split(": ")[1].split(" ")[0] for f in res.failures}
    with kaudit.load(BEFORE) as a, kaudit.load(AFTER) as b:
        expect = {
            p
            for p in ("head_dense/kernel", "head_dense/bias", "head_out/kernel", "head_out/bias")
            if np.abs(a[p].astype(float) - b[p]).max() <= 0.04
        }
    assert failed == expect


def test_trainable_rule():
    pol = policy_from_mapping({"rules": [{"path": "backbone/**", "trainable": True}]})
    res = kaudit.diff(BEFORE, AFTER, policy=pol, atol=1)
    assert not res.passed and all("trainable=false in b" in f for f in res.failures)
    pol = policy_from_mapping({"rules": [{"path": "head_*/**", "trainable": True}]})
    res = kaudit.diff(
        fixture("tutorial/k2_full.h5"),
        fixture("tutorial/k2_weights.h5"),
        policy=policy_from_mapping({"rules": [{"path": "**", "trainable": True}]}),
    )
    assert not res.passed and all("unknown" in f for f in res.failures)


def test_precedence_last_tolerance_rule_wins_and_ignore_removes():
    pol = Policy(rules=(Rule("**", atol=1.0), Rule("head_out/**", frozen=True)))
    assert pol.tolerance_for("head_out/bias")[:2] == (0.0, 0.0)
    assert pol.tolerance_for("head_dense/bias")[:2] == (1.0, 0.0)
    pol = Policy(rules=(Rule("head_out/**", frozen=True), Rule("**", atol=1.0)))
    assert pol.tolerance_for("head_out/bias")[:2] == (1.0, 0.0)
    res = kaudit.diff(BEFORE, AFTER, policy=Policy(rules=(Rule("head_*/**", ignore=True),)))
    assert res.passed and res.summary["ignored"] == 4  # 4 paths, each in a and in b


def test_command_line_overrides_file_defaults(tmp_path, cli):
    cfg = write(tmp_path, "kaudit.toml", "atol = 1.0\n")
    assert cli("diff", BEFORE, AFTER, "--config", str(cfg))[0] == 0
    assert cli("diff", BEFORE, AFTER, "--config", str(cfg), "--atol", "0")[0] == 1


@pytest.mark.parametrize(
    "text,words",
    [
        ("atoll = 1\n", "unknown key(s) ['atoll']"),
        ("atol = -1\n", "atol must be a finite number >= 0"),
        ("atol = 'big'\n", "atol must be a number"),
        ("[[rules]]\nfrozen = true\n", "'path' (a glob on variable paths) is required"),
        ("[[rules]]\npath = 'a/[b'\nfrozen = true\n", "bad glob"),
        ("[[rules]]\npath = 'a'\nfrozn = true\n", "unknown key(s) ['frozn']"),
        ("[[rules]]\npath = 'a'\nfrozen = 'yes'\n", "frozen must be true or false"),
        ("[[rules]]\npath = 'a'\nfrozen = true\nmust_change = true\n", "cannot be both frozen and must_change"),
        ("fail_on = ['nonsense']\n", "fail_on must be a list of audit checks"),
        ("this is not toml\n", "is not valid TOML"),
    ],
)
def test_bad_policy_files_exit_2(tmp_path, cli, text, words):
    cfg = write(tmp_path, "kaudit.toml", text)
    with pytest.raises(PolicyError, match=r"kaudit\.toml"):
        load_policy(cfg)
    code, out, err = cli("diff", BEFORE, AFTER, "--config", str(cfg))
    assert code == 2 and out == ""
    line = err.strip()
    assert "\n" not in line and str(cfg) in line and words in line


def test_pyproject_without_table(tmp_path):
    cfg = write(tmp_path, "pyproject.toml", "[project]\nname='x'\n")
    with pytest.raises(PolicyError, match=r"no \[tool.kaudit\] table"):
        load_policy(cfg)


# -- baselines ---------------------------------------------------------------------------------------


def test_snapshot_round_trip(tmp_path, cli):
    base = tmp_path / "baseline.json"
    assert cli("snapshot", BEFORE, "-o", str(base))[0] == 0
    doc = json.loads(base.read_text())
    assert doc["format"] == "kaudit-snapshot" and len(doc["variables"]) == 16
    assert base.stat().st_size < 16 * 1024  # a few KB, fit for git
    v = doc["variables"][0]
    assert set(v) >= {"path", "shape", "dtype", "trainable", "sha256", "min", "max", "mean", "std", "l2"}
    # against the same file: identical by hash
    res = kaudit.diff(str(base), BEFORE)
    assert res.passed and set(res.table["status"]) == {"identical"}
    # against the fine-tuned file: exactly the changed variables fail
    res = kaudit.diff(str(base), AFTER)
    full = kaudit.diff(BEFORE, AFTER)
    assert set(res.table.loc[~res.table["passed"], "path"]) == set(full.table.loc[~full.table["passed"], "path"])
    assert any("snapshot" in n or "values" in n for n in res.notes) or res.table["max_abs"].isna().any()
    # frozen rules work exactly through hashes
    pol = load_policy(write(tmp_path, "kaudit.toml", FINETUNE_POLICY))
    assert kaudit.diff(str(base), AFTER, policy=pol).passed
    assert not kaudit.diff(str(base), moved_bn(tmp_path), policy=pol).passed


def test_snapshot_inspect_shows_statistics(tmp_path, cli):
    base = tmp_path / "b.json"
    cli("snapshot", BEFORE, "-o", str(base))
    code, out, _ = cli("inspect", str(base))
    assert code == 0 and "backbone/bb_conv1/kernel" in out and "Total params: 1,033" in out


def test_snapshot_drift_within_tolerance_needs_values(tmp_path):
    """Statistics within the tolerance prove nothing (a permutation keeps them all): against a
    snapshot without values a changed variable fails; with --values it is compared like the file."""
    base = tmp_path / "b.json"
    base.write_text(json.dumps(kaudit.snapshot(BEFORE)))
    res = kaudit.diff(str(base), AFTER, atol=1.0)
    assert not res.passed and set(res.table["status"]) == {"identical", "changed"}
    assert all("closeness unverifiable" in f for f in res.failures)
    base.write_text(json.dumps(kaudit.snapshot(BEFORE, values=True)))
    res = kaudit.diff(str(base), AFTER, atol=1.0)
    assert res.passed and set(res.table["status"]) == {"identical", "close"}


# -- reports -----------------------------------------------------------------------------------------


def test_junit_xml(tmp_path, cli):
    out = tmp_path / "kaudit.xml"
    code, _, _ = cli("diff", BEFORE, AFTER, "--junit", str(out))
    assert code == 1
    suite = ET.parse(out).getroot()
    cases = suite.findall("testcase")
    failed = [c for c in cases if c.find("failure") is not None]
    assert int(suite.get("tests")) == len(cases) == 16
    assert int(suite.get("failures")) == len(failed) == 4
    assert {c.get("name") for c in failed} == {
        "head_dense/kernel",
        "head_dense/bias",
        "head_out/kernel",
        "head_out/bias",
    }
    assert "max_abs=" in failed[0].find("failure").text


# -- pytest helper -----------------------------------------------------------------------------------


def test_assert_checkpoints_match(tmp_path):
    policy = {"rules": [{"path": "backbone/**", "frozen": True}, {"path": "head_*/**", "must_change": True}]}
    res = assert_checkpoints_match(BEFORE, AFTER, policy=policy)
    assert res.passed
    with pytest.raises(AssertionError, match="backbone/\\*\\* frozen"):
        assert_checkpoints_match(BEFORE, moved_bn(tmp_path), policy=policy)
    with pytest.raises(AssertionError, match="head_dense/kernel"):
        assert_checkpoints_match(BEFORE, AFTER)


# -- audit -------------------------------------------------------------------------------------------


def _with(tmp_path, name, edit):
    dst = tmp_path / name
    shutil.copy(fixture("tutorial/k2_full.h5"), dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return str(dst)


def test_audit_clean_file_passes(cli):
    code, out, _ = cli("audit", fixture("tutorial/k2_full.h5"))
    assert code == 0 and "PASS" in out and "optimizer_state" in out


def test_audit_findings(tmp_path, cli):
    def nan(f):
        f["model_weights/L2_dense/L2_dense/kernel:0"][0, 0] = np.nan

    def dead(f):
        f["model_weights/L2_dense/L2_dense/kernel:0"][:, 3] = 0

    def badvar(f):
        f["model_weights/L4_bn/L4_bn/moving_variance:0"][0] = -1.0

    code, out, _ = cli("audit", _with(tmp_path, "nan.h5", nan), "--format", "json")
    doc = json.loads(out)
    assert code == 1 and [f["check"] for f in doc["findings"] if f["severity"] == "error"] == ["nan_inf"]
    code, out, _ = cli("audit", _with(tmp_path, "dead.h5", dead), "--format", "json")
    doc = json.loads(out)
    dead_f = [f for f in doc["findings"] if f["check"] == "dead_units"]
    assert code == 0 and dead_f and dead_f[0]["path"] == "L2_dense/kernel" and "1 of 10" in dead_f[0]["message"]
    assert cli("audit", _with(tmp_path, "dead2.h5", dead), "--strict")[0] == 1
    cfg = write(tmp_path, "kaudit.toml", "fail_on = ['dead_units']\n")
    assert cli("audit", _with(tmp_path, "dead3.h5", dead), "--config", str(cfg))[0] == 1
    code, out, _ = cli("audit", _with(tmp_path, "var.h5", badvar))
    assert code == 1 and "bn_variance" in out


def test_audit_unknown_trainability_and_mixed_dtypes(cli):
    code, out, _ = cli("audit", fixture("tutorial/k2_weights.h5"))
    assert code == 0 and "trainable_unknown" in out
    code, out, _ = cli("audit", fixture("dtypes/k3.keras"))
    assert "mixed_dtypes" in out
