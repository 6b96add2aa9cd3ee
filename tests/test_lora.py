"""LoRA: KerasHub adapter files and Keras's LoRA-merged weights, against Keras's own ΔW
(fixtures/lora/bert.lora.h5.truth.json, computed with Keras ops on the live layers)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kaudit
from kaudit import adapters
from kaudit.inspection import inspect as kinspect
from kaudit.keras import lora as LORA

from .conftest import FIXTURES, run_cli

LORA_FILE = FIXTURES / "lora" / "bert.lora.h5"
TRUTH = json.loads((FIXTURES / "lora" / "bert.lora.h5.truth.json").read_text())


def test_adapter_file_rank_scale_and_delta_norms_are_keras():
    with kaudit.load(str(LORA_FILE)) as c:
        assert c.format == "keras-hub-lora"
        got = {layer: (info, fro, mx) for layer, info, fro, mx in adapters.adapter_deltas(c)}
        assert set(got) == {f"lora/{i}" for i in TRUTH["adapters"]}
        for i, want in TRUTH["adapters"].items():
            info, fro, mx = got[f"lora/{i}"]
            assert (info.rank, info.scale) == (want["rank"], want["scale"])
            assert fro == pytest.approx(want["frobenius"], rel=1e-6)
            assert mx == pytest.approx(want["max_abs"], rel=1e-6)
    res = kinspect(str(LORA_FILE), stats=False)
    assert "lora" in res.columns and all(r.lora.startswith("LoRA ") for r in res.rows())
    assert sum("Frobenius norm" in n for n in res.notes) == len(TRUTH["adapters"])


def test_delta_norms_without_forming_the_matrix():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(7, 3, 4)), rng.normal(size=(4, 5))
    full = 0.5 * (a.reshape(-1, 4) @ b)
    fro, mx = LORA.delta_norms(a, b, 0.5, block_elems=10)  # row blocks of two rows
    assert fro == pytest.approx(np.linalg.norm(full), rel=1e-12)
    assert mx == np.max(np.abs(full))


def test_merged_lora_diff_is_keras_delta():
    """Keras saves an adapted kernel with its adapter added: the diff of the base preset against
    the merged one is ΔW, layer by layer (only there)."""
    r = kaudit.diff(str(FIXTURES / "presets" / "bert_base"), str(FIXTURES / "presets" / "bert_lora_merged"))
    changed = {x.path: x for x in r.records if x.status != "identical"}
    want = {d["layer"]: d for d in TRUTH["adapters"].values()}
    assert {p.rsplit("/", 1)[0] for p in changed} == set(want)
    for path, row in changed.items():
        d = want[path.rsplit("/", 1)[0]]
        assert row.max_abs == pytest.approx(d["max_abs"], rel=1e-5)
        assert row.rms * np.sqrt(row.params) == pytest.approx(d["frobenius"], rel=1e-5)


def test_corrupt_adapter_rank_is_an_error(tmp_path):
    import shutil

    import h5py

    bad = tmp_path / "bad.lora.h5"
    shutil.copy(LORA_FILE, bad)
    with h5py.File(bad, "r+") as f:
        del f["lora/vars/rank"]
        f["lora/vars/rank"] = 3
    r = run_cli("inspect", str(bad))
    assert r.returncode == 2 and "rank" in r.stderr and "Traceback" not in r.stderr


# -- "only adapters may change", "effective change per layer below X" ------------------------------


@pytest.fixture(scope="module")
def lora_saves(tmp_path_factory):
    """Keras 3 saves: a base model, the same with a LoRA adapter on ``head`` trained (Keras merges
    it into ``head``'s kernel on save), and that tuned model with a base weight moved as well.
    Returns the directory and Keras's own ΔW and W of ``head``."""
    keras = pytest.importorskip("keras")
    d = tmp_path_factory.mktemp("lora_saves")
    keras.utils.set_random_seed(4)
    inp = keras.Input((6,))
    x = keras.layers.Dense(5, name="body")(inp)
    out = keras.layers.Dense(3, name="head")(x)
    model = keras.Model(inp, out)
    model.save(d / "base.keras")
    head = model.get_layer("head")
    w = keras.ops.convert_to_numpy(head.kernel)
    head.enable_lora(2, lora_alpha=4)
    head.lora_kernel_b.assign(np.linspace(-0.2, 0.3, 6, dtype="float32").reshape(2, 3))  # a trained adapter
    delta = keras.ops.convert_to_numpy(keras.ops.matmul(head.lora_kernel_a, head.lora_kernel_b)) * (4 / 2)
    model.save(d / "tuned.keras")
    body = model.get_layer("body")
    body.kernel.assign(keras.ops.convert_to_numpy(body.kernel) + 0.01)
    model.save(d / "leaky.keras")
    return d, delta, w


def _row(result, suffix: str):
    [row] = [r for r in result.records if r.path.endswith(suffix)]
    return row


def test_adapters_only_passes_a_lora_fine_tune(lora_saves):
    d, delta, w = lora_saves
    r = kaudit.diff(str(d / "base.keras"), str(d / "tuned.keras"), adapters_only=True, policy=False)
    assert r.passed, r.failures
    head = _row(r, "head/kernel")
    assert head.status == "changed" and head.lora.startswith("LoRA-merged weight, rank 2, alpha 4, scale 2")
    assert head.max_abs == pytest.approx(np.max(np.abs(delta)), rel=1e-5)  # the adapter's ΔW, as Keras has it
    assert head.rel_l2 == pytest.approx(np.linalg.norm(delta) / np.linalg.norm(w), rel=1e-5)
    assert all(x.status == "identical" for x in r.records if not x.path.endswith("head/kernel"))
    # without the LoRA rule the adapted kernel is held to the tolerance like any weight
    plain = kaudit.diff(str(d / "base.keras"), str(d / "tuned.keras"), policy=False)
    assert not plain.passed and _row(plain, "head/kernel").rule == "tolerance"


def test_adapters_only_fails_a_changed_base_weight(lora_saves):
    d, _delta, _w = lora_saves
    r = kaudit.diff(str(d / "base.keras"), str(d / "leaky.keras"), adapters_only=True, policy=False)
    assert not r.passed
    body = _row(r, "body/kernel")
    assert body.rule == "tolerance,adapters_only" and not body.passed
    assert any(f.startswith("adapters_only: ") and "body/kernel carries no LoRA adapter" in f for f in r.failures)
    assert _row(r, "head/kernel").passed


def test_max_adapter_change_bounds_the_relative_change(lora_saves):
    d, delta, w = lora_saves
    rel = float(np.linalg.norm(delta) / np.linalg.norm(w))
    a, b = str(d / "base.keras"), str(d / "tuned.keras")
    assert kaudit.diff(a, b, max_adapter_change=rel * 1.01, policy=False).passed
    r = kaudit.diff(a, b, max_adapter_change=rel * 0.99, policy=False)
    assert not r.passed and _row(r, "head/kernel").rule == "max_adapter_change"
    [line] = r.failures
    assert line.startswith("max_adapter_change: ") and f"> {rel * 0.99:g}" in line


@pytest.mark.parametrize("in_process", [True, False])
def test_lora_rules_on_the_command_line_and_in_a_policy_file(lora_saves, tmp_path, in_process, capsys):
    d, delta, w = lora_saves
    rel = float(np.linalg.norm(delta) / np.linalg.norm(w))
    base, tuned, leaky = (str(d / f"{n}.keras") for n in ("base", "tuned", "leaky"))
    toml = tmp_path / "kaudit.toml"
    toml.write_text(f"adapters_only = true\nmax_adapter_change = {rel * 1.5}\n")

    def run(*args):
        if in_process:
            from kaudit.cli import main

            code = main(["diff", *args])
            return code, capsys.readouterr().out
        p = run_cli("diff", *args)
        return p.returncode, p.stdout

    assert run(base, tuned, "--adapters-only", "--no-config")[0] == 0
    assert run(base, leaky, "--adapters-only", "--no-config")[0] == 1
    assert run(base, tuned, "--max-adapter-change", str(rel / 2), "--no-config")[0] == 1
    code, out = run(base, tuned, "--config", str(toml), "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["passed"] and doc["policy"]["adapters_only"] is True
    assert doc["policy"]["max_adapter_change"] == pytest.approx(rel * 1.5)
    assert "adapters_only; max_adapter_change=" in doc["policy"]["description"]
    code, out = run(base, leaky, "--config", str(toml), "--format", "json")
    assert code == 1 and any(f.startswith("adapters_only: ") for f in json.loads(out)["failures"])
    assert run(base, tuned, "--max-adapter-change", "-1", "--no-config")[0] == 2  # a usage error
