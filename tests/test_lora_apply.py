"""A base against a KerasHub adapter file: ``kaudit diff base x.lora.h5`` places each adapter
where ``backbone.load_lora_weights`` would (kaudit/keras/hub_blocks.py) and reports W + scale·A·B
against W. Keras is the oracle: every backbone family of the table is built with keras-hub, LoRA
enabled and trained (random factors), and kaudit's placement and effective kernels are checked
against ``_flatten_layers`` and the layers' own merged ``kernel``."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

import kaudit
from kaudit import adapters
from kaudit.keras import hub_blocks

from .conftest import FIXTURES, run_cli
from .hub_models import FAMILIES, backbone

BASE = FIXTURES / "presets" / "bert_base"
LORA_FILE = FIXTURES / "lora" / "bert.lora.h5"
TRUTH = json.loads((FIXTURES / "lora" / "bert.lora.h5.truth.json").read_text())


def _changed(result):
    return {r.path: r for r in result.records if r.status != "identical"}


# -- the committed fixture (keras-hub 0.32's own adapter file and its base preset) ---------------


def test_adapters_land_where_keras_put_them_with_keras_delta():
    r = kaudit.diff(str(BASE), str(LORA_FILE), policy=False)
    want = {d["layer"]: d for d in TRUTH["adapters"].values()}
    changed = _changed(r)
    assert {p.rsplit("/", 1)[0] for p in changed} == set(want)
    assert all(p.endswith("/kernel") for p in changed)
    for path, row in changed.items():
        d = want[path.rsplit("/", 1)[0]]
        assert row.max_abs == pytest.approx(d["max_abs"], rel=1e-5)
        assert row.rms * np.sqrt(row.params) == pytest.approx(d["frobenius"], rel=1e-5)
        assert row.lora.startswith("LoRA-merged weight, rank 2, alpha 2, scale 1")
    assert r.format_b == "keras-hub-preset+lora" and r.exit_code == 1  # changed, at atol 0
    assert sum(n.startswith("adapter ") for n in r.notes) == len(want)
    # the same as diffing the base against the merged save Keras writes (to float32 rounding)
    merged = _changed(kaudit.diff(str(BASE), str(FIXTURES / "presets" / "bert_lora_merged"), policy=False))
    assert set(merged) == set(changed)
    for p in changed:
        assert changed[p].max_abs == pytest.approx(merged[p].max_abs, rel=1e-5)


def test_adapter_values_are_the_base_plus_scale_a_b():
    with kaudit.load(str(BASE)) as base, kaudit.load(str(LORA_FILE)) as lo:
        applied, _notes = adapters.apply_lora(base, lo)
        for i, d in TRUTH["adapters"].items():
            kernel = base.variable(d["layer"] + "/kernel")
            a, b = lo[f"lora/{i}/lora_kernel_a"], lo[f"lora/{i}/lora_kernel_b"]
            want = base.read(kernel).astype(np.float64) + d["scale"] * (a.astype(np.float64) @ b.astype(np.float64))
            np.testing.assert_allclose(applied.read(kernel), want, rtol=1e-12, atol=1e-15)
            blocks = np.concatenate(list(applied.iter_blocks(kernel, block_elems=7)))  # rows cut anywhere
            np.testing.assert_array_equal(blocks, applied.read(kernel).reshape(-1))
        other = base.variable("pooled_dense/kernel")
        np.testing.assert_array_equal(applied.read(other), base.read(other))


def test_the_lora_gates_hold_the_adapters_and_the_rest_of_the_base():
    rel = max(r.rel_l2 for r in _changed(kaudit.diff(str(BASE), str(LORA_FILE), policy=False)).values())
    ok = kaudit.diff(str(BASE), str(LORA_FILE), adapters_only=True, max_adapter_change=rel * 1.01, policy=False)
    assert ok.exit_code == 0, ok.failures
    over = kaudit.diff(str(BASE), str(LORA_FILE), adapters_only=True, max_adapter_change=rel * 0.99, policy=False)
    assert over.exit_code == 1 and len(over.failures) == 1


def test_the_adapter_file_first_is_applied_to_b():
    r = kaudit.diff(str(LORA_FILE), str(BASE), policy=False)
    assert r.format_a == "keras-hub-preset+lora"
    assert {p.rsplit("/", 1)[0] for p in _changed(r)} == {d["layer"] for d in TRUTH["adapters"].values()}
    assert r.notes[0].startswith("a is b with the 2 KerasHub adapters")


@pytest.mark.parametrize("first", ["adapters", "base"])
def test_a_snapshot_with_values_is_a_base_too(tmp_path, first):
    """A base whose store has no stored form (a snapshot with values), with blocks small enough
    that every pair streams: the same rows as the preset itself."""
    snap = tmp_path / "base.json"
    snap.write_text(json.dumps(kaudit.snapshot(str(BASE), values=True)))
    sides = (str(LORA_FILE), str(snap)) if first == "adapters" else (str(snap), str(LORA_FILE))
    want = (str(LORA_FILE), str(BASE)) if first == "adapters" else (str(BASE), str(LORA_FILE))
    got = kaudit.diff(*sides, block_elems=7, policy=False)
    ref = kaudit.diff(*want, block_elems=7, policy=False)
    assert got.summary == ref.summary and set(_changed(got)) == set(_changed(ref)) != set()


def test_the_command_line_gate_in_process_and_as_a_subprocess(cli):
    code, out, _err = cli("diff", str(BASE), str(LORA_FILE), "--adapters-only", "--max-adapter-change", "0.25")
    assert code == 0 and "PASS" in out and "adapter 11 -> transformer_layer_0/self_attention_layer/value" in out
    p = run_cli("diff", str(BASE), str(LORA_FILE), "--adapters-only", "--max-adapter-change", "0.1")
    assert p.returncode == 1 and "FAIL" in p.stdout


# -- what cannot be proven is an error (exit 2) ---------------------------------------------------


def _adapter_file(path, entries: dict[int, tuple[tuple[int, ...], tuple[int, ...]]], rank: int = 2):
    """A KerasHub-shaped adapter file: lora/vars/rank and lora/<i>/vars/lora_kernel_a|b."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_group("lora/vars").create_dataset("rank", data=np.int64(rank))
        for i, (sa, sb) in entries.items():
            g = f.create_group(f"lora/{i}/vars")
            g.create_dataset("lora_kernel_a", data=rng.normal(size=sa).astype("float32"))
            g.create_dataset("lora_kernel_b", data=rng.normal(size=sb).astype("float32"))
    return str(path)


@pytest.mark.parametrize(
    ("entries", "said"),
    [
        ({99: ((16, 2, 2), (2, 8))}, "adapter 99: the base has 15 layers with weights (0..14)"),
        ({11: ((16, 2, 2), (2, 4))}, "adapter 11 does not fit layer 'transformer_layer_0/self_attention_layer/value'"),
        (
            {8: ((16, 2), (2, 16))},
            "adapter 8 belongs to layer 'transformer_layer_0/self_attention_layer_norm', which has no kernel",
        ),
    ],
)
def test_an_adapter_that_does_not_fit_the_base_is_an_error(tmp_path, cli, entries, said):
    bad = _adapter_file(tmp_path / "x.lora.h5", entries)
    code, out, err = cli("diff", str(BASE), bad)
    assert code == 2 and out == "" and said in err and len(err.strip().splitlines()) <= 2, err
    p = run_cli("diff", str(BASE), bad)
    assert p.returncode == 2 and said in p.stderr and "Traceback" not in p.stderr


def test_a_base_whose_layer_order_the_file_does_not_state_is_an_error(tmp_path):
    """Layers written dense_1 before dense: the file's order is not Keras's numbering, kaudit lists
    them by name and says so, and will not number adapters on it."""
    base = tmp_path / "base.weights.h5"
    with h5py.File(base, "w") as f:
        for name in ("dense_1", "dense"):
            f.create_group(f"layers/{name}/vars").create_dataset("0", data=np.ones((4, 3), "float32"))
    with kaudit.load(str(base)) as c:
        assert any(n.startswith(hub_blocks.ORDER_UNKNOWN) for n in c.notes)
    lo = _adapter_file(tmp_path / "x.lora.h5", {0: ((4, 2), (2, 3))})
    with pytest.raises(adapters.AdapterMismatch, match="does not state Keras's order"):
        kaudit.diff(str(base), lo, policy=False)
    with h5py.File(tmp_path / "ordered.weights.h5", "w") as f:  # the same layers, written in Keras's order
        for name in ("dense", "dense_1"):
            f.create_group(f"layers/{name}/vars").create_dataset("0", data=np.ones((4, 3), "float32"))
    r = kaudit.diff(str(tmp_path / "ordered.weights.h5"), lo, policy=False)
    assert set(_changed(r)) == {"dense/kernel"}  # adapter 0: the first layer


def test_zero_adapters_leave_the_base_identical(tmp_path):
    lo = tmp_path / "zero.lora.h5"
    shutil.copy(LORA_FILE, lo)
    with h5py.File(lo, "a") as f:
        for i in TRUTH["adapters"]:
            f[f"lora/{i}/vars/lora_kernel_b"][...] = 0
    r = kaudit.diff(str(BASE), str(lo), policy=False)
    assert r.exit_code == 0 and _changed(r) == {}


def test_flatten_order_walks_sublayers_in_reverse_and_refuses_unknown_blocks():
    layers = [
        "emb",
        "block/attention/query",
        "block/attention/key",
        "block/attention/value",
        "block/attention/attention_output",
        "block/pre_attention_norm",
        "block/pre_ffw_norm",
        "block/ffw_gating",
        "block/ffw_gating_2",
        "block/ffw_linear",
        "final",
    ]
    assert hub_blocks.flatten_order(layers) == [
        "emb",
        "block",
        "block/ffw_linear",
        "block/ffw_gating_2",
        "block/ffw_gating",
        "block/pre_ffw_norm",
        "block/attention",
        "block/attention/attention_output",
        "block/attention/value",
        "block/attention/key",
        "block/attention/query",
        "block/pre_attention_norm",
        "final",
    ]
    with pytest.raises(hub_blocks.UnknownBlock, match="'block/attention' has sublayers \\['key', 'query'\\]"):
        hub_blocks.flatten_order(["block/attention/query", "block/attention/key"])


# -- Keras as the oracle, for every family of the table --------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_placement_and_effective_kernels_are_keras_own(keras_hub_models, tmp_path, family):
    keras, keras_hub = keras_hub_models
    keras.utils.set_random_seed(7)
    bb = backbone(keras_hub, family)
    base = tmp_path / "base.weights.h5"
    bb.save_weights(str(base))
    with_weights = [lyr for lyr in bb._flatten_layers(include_self=False) if lyr.weights]
    with kaudit.load(str(base)) as c:  # the numbering, from the file alone
        order = hub_blocks.flatten_order(list(dict.fromkeys(c.variables["layer"])))
    assert order == [lyr.path for lyr in with_weights]
    bb.enable_lora(2)
    rng = np.random.default_rng(1)
    want = {}
    for i in bb._lora_enabled_layers:
        lyr = with_weights[i]
        for w in (lyr.lora_kernel_a, lyr.lora_kernel_b):
            w.assign(rng.normal(scale=0.1, size=w.shape).astype("float32"))
        want[lyr.path] = keras.ops.convert_to_numpy(lyr.kernel)  # Keras's merged kernel W + scale·A·B
    lo = tmp_path / "x.lora.h5"
    bb.save_lora_weights(str(lo))
    with kaudit.load(str(base)) as b0, kaudit.load(str(lo)) as a0:
        applied, _ = adapters.apply_lora(b0, a0)
        adapted = {v.layer: v for v in applied.all_variables if v.lora is not None}
        assert set(adapted) == set(want)
        for layer, v in adapted.items():
            np.testing.assert_allclose(applied.read(v), want[layer], rtol=1e-5, atol=1e-6)
    r = kaudit.diff(str(base), str(lo), adapters_only=True, policy=False)
    assert r.exit_code == 0 and {p.rsplit("/", 1)[0] for p in _changed(r)} == set(want)


def test_a_base_saved_with_an_adapter_merged_is_an_error(keras_hub_models, tmp_path):
    """Keras saves a LoRA-enabled kernel merged (W + ΔW) and loading adapters replaces ΔW: the W
    they would go on is not in the file."""
    keras, _ = keras_hub_models
    inp = keras.Input((6,))
    model = keras.Model(inp, keras.layers.Dense(3, name="head")(keras.layers.Dense(5, name="body")(inp)))
    model.get_layer("head").enable_lora(2)
    model.save(tmp_path / "tuned.keras")
    lo = _adapter_file(tmp_path / "x.lora.h5", {1: ((5, 2), (2, 3))})
    with pytest.raises(adapters.AdapterMismatch, match="was saved with a LoRA adapter merged into it"):
        kaudit.diff(str(tmp_path / "tuned.keras"), lo, policy=False)
    model.get_layer("body").enable_lora(2)  # body saved merged as well: an adapter on it (layer 0) is refused too
    lo0 = _adapter_file(tmp_path / "y.lora.h5", {0: ((6, 2), (2, 5))})
    model.save(tmp_path / "both.keras")
    with pytest.raises(adapters.AdapterMismatch, match="body/kernel was saved with a LoRA adapter"):
        kaudit.diff(str(tmp_path / "both.keras"), lo0, policy=False)


@pytest.mark.parametrize(("family", "task"), [("gemma", "GemmaCausalLM"), ("bert", "BertTextClassifier")])
@pytest.mark.parametrize("save", ["keras", "weights"])
def test_a_task_model_numbers_the_adapters_in_its_backbone(keras_hub_models, tmp_path, family, task, save):
    """``GemmaCausalLM.save`` / ``save_weights`` hold the backbone as a nested model (and a
    classifier its head beside it): the adapters of ``backbone.save_lora_weights`` are numbered in
    the backbone."""
    keras, keras_hub = keras_hub_models
    keras.utils.set_random_seed(3)
    bb = backbone(keras_hub, family)
    extra = {"num_classes": 2} if task == "BertTextClassifier" else {}
    model = getattr(keras_hub.models, task)(backbone=bb, preprocessor=None, **extra)
    base = tmp_path / ("base.keras" if save == "keras" else "base.weights.h5")
    model.save(str(base)) if save == "keras" else model.save_weights(str(base))
    with_weights = [lyr for lyr in bb._flatten_layers(include_self=False) if lyr.weights]
    bb.enable_lora(2)
    want = {}
    for i in bb._lora_enabled_layers:
        lyr = with_weights[i]
        lyr.lora_kernel_b.assign(np.full(lyr.lora_kernel_b.shape, 0.05, "float32"))
        want[f"{bb.name}/{lyr.path}"] = keras.ops.convert_to_numpy(lyr.kernel)
    lo = tmp_path / "x.lora.h5"
    bb.save_lora_weights(str(lo))
    with kaudit.load(str(base)) as b0, kaudit.load(str(lo)) as a0:
        applied, notes = adapters.apply_lora(b0, a0)
        adapted = {v.layer: v for v in applied.all_variables if v.lora is not None}
        assert set(adapted) == set(want) and f"backbone '{bb.name}'" in notes[0]
        for layer, v in adapted.items():
            np.testing.assert_allclose(applied.read(v), want[layer], rtol=1e-5, atol=1e-6)
