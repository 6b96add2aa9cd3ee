"""Tests for kaudit/keras/layers.py.

The pure tests run everywhere.  The empirical tests build real layers with
Keras 3 (``model.save_weights(...weights.h5)`` read back with h5py) and with
tf_keras (``layer.weights``), and compare them with layer_spec(); they are
skipped when keras / tf_keras / h5py are not installed.
"""

from __future__ import annotations

import inspect
import json
import os
import pathlib
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from kaudit.keras import layers as kl

layer_spec = kl.layer_spec
VarSpec = kl.VarSpec


def names(spec):
    return [(v.name, v.trainable) for v in spec.variables]


# ==========================================================================
# Pure tests (no Keras needed)
# ==========================================================================


def test_module_imports_only_the_standard_library():
    import ast

    tree = ast.parse(pathlib.Path(kl.__file__).read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add((node.module or "").split(".")[0])
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}


def test_class_name_forms():
    plain = layer_spec("Dense", {})
    assert names(plain) == [("kernel", True), ("bias", True)]
    assert layer_spec("keras.layers.Dense", {}) == plain
    assert layer_spec("keras.src.layers.core.dense.Dense", {}) == plain
    assert layer_spec("tf_keras.layers.Dense", {}, 2) == plain
    assert layer_spec("Convolution2D", {}) == layer_spec("Conv2D", {})
    assert layer_spec("GroupQueryAttention", {}) == layer_spec("GroupedQueryAttention", {})
    # custom / registered / foreign classes are never guessed
    assert layer_spec("Custom>Dense", {}) is None
    assert layer_spec("mypackage.layers.Dense", {}) is None
    assert layer_spec("MyLayer", {}) is None
    assert layer_spec("", {}) is None
    assert layer_spec(None, {}) is None
    with pytest.raises(ValueError):
        layer_spec("Dense", {}, keras_major=1)


def test_known_weightless_is_empty_not_none():
    for major in (2, 3):
        spec = layer_spec("Dropout", {"rate": 0.5}, major)
        assert spec == kl.LayerSpec((), ())
    assert layer_spec("RandomFlip", {}, 3) == kl.LayerSpec((), ())


def test_quantization_handling():
    int8 = layer_spec("Dense", {"dtype": "int8_from_float32"})
    assert names(int8) == [("kernel", False), ("bias", True), ("kernel_scale", False)]
    map_dtype = {
        "class_name": "DTypePolicyMap",
        "config": {
            "default_policy": None,
            "policy_map": {
                "a/query": {"class_name": "QuantizedDTypePolicy", "config": {"mode": "int8", "source_name": None}}
            },
        },
    }
    for dtype in (
        "gptq/4/128_from_float32",
        "awq/4/128_from_float32",
        map_dtype,
        {"class_name": "GPTQDTypePolicy", "config": {"mode": "gptq/4/128", "source_name": "float32"}},
    ):
        assert layer_spec("Dense", {"dtype": dtype}) is None, dtype
    assert layer_spec("MultiHeadAttention", {"dtype": map_dtype}) is not None
    # ...but its EinsumDense children refuse the map:
    child = layer_spec("MultiHeadAttention", {"dtype": map_dtype}).children[0]
    assert layer_spec(child.class_name, child.config) is None
    assert layer_spec("Embedding", {"dtype": "float8_from_float32"}) is None
    float_map = {"class_name": "DTypePolicyMap", "config": {"default_policy": "float32", "policy_map": {}}}
    assert names(layer_spec("Dense", {"dtype": float_map})) == [("kernel", True), ("bias", True)]
    # mixed precision is not quantization
    assert layer_spec("Dense", {"dtype": "mixed_bfloat16"}) == layer_spec("Dense", {})
    # Conv layers cannot be quantized: refuse rather than guess
    assert layer_spec("Conv2D", {"dtype": "int8_from_float32"}) is None


def test_malformed_nested_configs_give_none():
    assert layer_spec("Bidirectional", {}) is None
    assert layer_spec("TimeDistributed", {"layer": "dense"}) is None
    assert layer_spec("RNN", {"cell": None}) is None
    assert layer_spec("SpectralNormalization", {"layer": {"class_name": "LSTM", "config": {}}}) is None


def test_custom_child_is_reported_not_guessed():
    spec = layer_spec("TimeDistributed", {"layer": {"module": "my_models", "class_name": "Dense", "config": {}}})
    (child,) = spec.children
    assert child.class_name == "my_models.Dense"
    assert layer_spec(child.class_name, child.config) is None
    assert (
        kl.flat_variables(
            "TimeDistributed", {"layer": {"class_name": "Dense", "registered_name": "Custom>Dense", "config": {}}}
        )
        is None
    )


def test_non_trainable_by_design():
    pairs = kl.NON_TRAINABLE_BY_DESIGN
    for pair in [
        ("BatchNormalization", "moving_mean"),
        ("BatchNormalization", "moving_variance"),
        ("Normalization", "count"),
        ("SpectralNormalization", "vector_u"),
    ]:
        assert pair in pairs
    assert ("BatchNormalization", "gamma") not in pairs
    assert ("Dense", "kernel") not in pairs


def test_known_classes():
    k3, k2 = kl.known_classes(3), kl.known_classes(2)
    assert {"Dense", "LSTM", "GroupedQueryAttention", "Dropout"} <= k3
    assert "LocallyConnected2D" in k2 and "LocallyConnected2D" not in k3
    assert "Convolution2D" not in k3  # aliases are not config class names
    for major, _classes in ((2, k2), (3, k3)):
        for name in ("Dense", "BatchNormalization", "Dropout"):
            assert layer_spec(name, {}, major) is not None


def test_snake_case_matches_keras():
    assert kl.to_snake_case("LSTMCell") == "lstm_cell"
    assert kl.to_snake_case("SimpleRNNCell") == "simple_rnn_cell"
    assert kl.to_snake_case("PReLU") == "p_re_lu"
    assert kl.to_snake_case("Conv2DTranspose") == "conv2d_transpose"


# ==========================================================================
# Keras 3: compare with what model.save_weights() writes
# ==========================================================================


@pytest.fixture(scope="module")
def k3():
    keras = pytest.importorskip("keras")
    if not keras.__version__.startswith("3."):
        pytest.skip("Keras 3 required")
    h5py = pytest.importorskip("h5py")
    import numpy as np

    return keras, h5py, np


def _jsonable(obj):
    """What a .keras config.json would hold (tuples -> lists, etc.)."""
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _variants_k3(L, keras):
    """(id, factory, inputs, call, after_build).

    inputs: list of (shape without batch, dtype); call: how the layer is
    applied; after_build: optional hook (e.g. quantize) run on the built
    layer before saving.
    """
    f = "float32"
    v2 = [((4,), f)]
    seq = [((5, 4), f)]
    img = [((6, 6, 3), f)]
    vol = [((4, 4, 4, 2), f)]
    ids = [((3,), "int32")]
    pair = [((5, 8), f), ((5, 8), f)]
    video1 = [((3, 5, 2), f)]
    video2 = [((3, 5, 5, 2), f)]
    video3 = [((3, 4, 4, 4, 2), f)]

    def quant(mode, **kw):
        def hook(layer):
            config = None
            if "block_size" in kw:
                config = keras.quantizers.Int4QuantizationConfig(block_size=kw["block_size"])
            layer.quantize(mode, config=config)

        return hook

    class PlainWrapper(L.Wrapper):  # Wrapper has no call()
        def call(self, x):
            return self.layer(x)

    lookup_kw = {"output_mode": "tf_idf"}
    V = []

    def add(id_, make, inputs, call="single", hook=None, as_class=None):
        V.append((id_, make, inputs, call, hook, as_class))

    # core
    add("Dense", lambda: L.Dense(3), v2)
    add("Dense-nobias", lambda: L.Dense(3, use_bias=False), v2)
    add("Dense-lora", lambda: L.Dense(3, lora_rank=2), v2)
    add("Dense-lora-nobias", lambda: L.Dense(3, use_bias=False, lora_rank=2), v2)
    add("Dense-int8", lambda: L.Dense(3), v2, hook=quant("int8"))
    add("Dense-int8-nobias", lambda: L.Dense(3, use_bias=False), v2, hook=quant("int8"))
    add("Dense-float8", lambda: L.Dense(3), v2, hook=quant("float8"))
    add("Dense-int4", lambda: L.Dense(3), v2, hook=quant("int4"))
    add("Dense-int4-perchannel", lambda: L.Dense(3), v2, hook=quant("int4", block_size=-1))
    add("EinsumDense", lambda: L.EinsumDense("ab,bc->ac", 3, bias_axes="c"), v2)
    add("EinsumDense-nobias", lambda: L.EinsumDense("ab,bc->ac", 3), v2)
    add("EinsumDense-lora", lambda: L.EinsumDense("ab,bc->ac", 3, bias_axes="c", lora_rank=2), v2)
    add("EinsumDense-int8", lambda: L.EinsumDense("ab,bc->ac", 3, bias_axes="c"), v2, hook=quant("int8"))
    add("EinsumDense-float8", lambda: L.EinsumDense("ab,bc->ac", 3, bias_axes="c"), v2, hook=quant("float8"))
    add("EinsumDense-int4", lambda: L.EinsumDense("ab,bc->ac", 3), v2, hook=quant("int4"))
    add("Embedding", lambda: L.Embedding(10, 3), ids)
    add("Embedding-lora", lambda: L.Embedding(10, 3, lora_rank=2), ids)
    add("Embedding-int8", lambda: L.Embedding(10, 4), ids, hook=quant("int8"))
    add("Embedding-int4", lambda: L.Embedding(10, 4), ids, hook=quant("int4"))
    add("Embedding-int4-perchannel", lambda: L.Embedding(10, 4), ids, hook=quant("int4", block_size=-1))
    add("ReversibleEmbedding", lambda: L.ReversibleEmbedding(10, 4), ids)
    add("ReversibleEmbedding-untied", lambda: L.ReversibleEmbedding(10, 4, tie_weights=False), ids)
    add(
        "ReversibleEmbedding-untied-int8",
        lambda: L.ReversibleEmbedding(10, 4, tie_weights=False),
        ids,
        hook=quant("int8"),
    )
    add(
        "ReversibleEmbedding-untied-int4",
        lambda: L.ReversibleEmbedding(10, 4, tie_weights=False),
        ids,
        hook=quant("int4"),
    )
    add(
        "ReversibleEmbedding-untied-int4-pc",
        lambda: L.ReversibleEmbedding(10, 4, tie_weights=False),
        ids,
        hook=quant("int4", block_size=-1),
    )
    # convolutions
    for n, x in ((1, seq), (2, img), (3, vol)):
        add(f"Conv{n}D", lambda n=n: getattr(L, f"Conv{n}D")(2, 3), x)
        add(f"Conv{n}D-nobias", lambda n=n: getattr(L, f"Conv{n}D")(2, 3, use_bias=False), x)
        add(f"Conv{n}DTranspose", lambda n=n: getattr(L, f"Conv{n}DTranspose")(2, 3), x)
        add(f"Conv{n}DTranspose-nobias", lambda n=n: getattr(L, f"Conv{n}DTranspose")(2, 3, use_bias=False), x)
    add("Conv2D-lora", lambda: L.Conv2D(2, 3, lora_rank=2), img)
    for n, x in ((1, seq), (2, img)):
        add(f"DepthwiseConv{n}D", lambda n=n: getattr(L, f"DepthwiseConv{n}D")(3), x)
        add(f"DepthwiseConv{n}D-nobias", lambda n=n: getattr(L, f"DepthwiseConv{n}D")(3, use_bias=False), x)
        add(f"SeparableConv{n}D", lambda n=n: getattr(L, f"SeparableConv{n}D")(2, 3), x)
        add(f"SeparableConv{n}D-nobias", lambda n=n: getattr(L, f"SeparableConv{n}D")(2, 3, use_bias=False), x)
    # normalization
    add("BatchNormalization", lambda: L.BatchNormalization(), v2)
    add("BatchNormalization-nocenter", lambda: L.BatchNormalization(center=False), v2)
    add("BatchNormalization-noscale", lambda: L.BatchNormalization(scale=False), v2)
    add("BatchNormalization-bare", lambda: L.BatchNormalization(center=False, scale=False), v2)
    add("BatchNormalization-renorm", lambda: L.BatchNormalization(renorm=True), v2)
    add("BatchNormalization-frozen", lambda: L.BatchNormalization(trainable=False), v2)
    add("LayerNormalization", lambda: L.LayerNormalization(), v2)
    add("LayerNormalization-nocenter", lambda: L.LayerNormalization(center=False), v2)
    add("LayerNormalization-noscale", lambda: L.LayerNormalization(scale=False), v2)
    add("LayerNormalization-rms", lambda: L.LayerNormalization(rms_scaling=True), v2)
    add("LayerNormalization-rms-noscale", lambda: L.LayerNormalization(rms_scaling=True, scale=False), v2)
    add("GroupNormalization", lambda: L.GroupNormalization(2), v2)
    add("GroupNormalization-nocenter", lambda: L.GroupNormalization(2, center=False), v2)
    add("GroupNormalization-noscale", lambda: L.GroupNormalization(2, scale=False), v2)
    add("RMSNormalization", lambda: L.RMSNormalization(), v2)
    add("UnitNormalization", lambda: L.UnitNormalization(), v2)
    add("Normalization", lambda: L.Normalization(), v2)
    add("Normalization-given", lambda: L.Normalization(mean=1.0, variance=2.0), v2)
    add("SpectralNormalization-Dense", lambda: L.SpectralNormalization(L.Dense(3)), v2)
    add("SpectralNormalization-Conv2D", lambda: L.SpectralNormalization(L.Conv2D(2, 3)), img)
    add("SpectralNormalization-Embedding", lambda: L.SpectralNormalization(L.Embedding(10, 3)), ids)
    add("PReLU", lambda: L.PReLU(), v2)
    add("PReLU-shared", lambda: L.PReLU(shared_axes=[1, 2]), img)
    # attention
    add("Attention", lambda: L.Attention(), pair, "list")
    add("Attention-scale", lambda: L.Attention(use_scale=True), pair, "list")
    add("Attention-concat", lambda: L.Attention(score_mode="concat"), pair, "list")
    add("Attention-scale-concat", lambda: L.Attention(use_scale=True, score_mode="concat"), pair, "list")
    add("AdditiveAttention", lambda: L.AdditiveAttention(), pair, "list")
    add("AdditiveAttention-noscale", lambda: L.AdditiveAttention(use_scale=False), pair, "list")
    add("MultiHeadAttention", lambda: L.MultiHeadAttention(2, 4), pair, "pair")
    add("MultiHeadAttention-nobias", lambda: L.MultiHeadAttention(2, 4, use_bias=False), pair, "pair")
    add("MultiHeadAttention-gate", lambda: L.MultiHeadAttention(2, 4, use_gate=True), pair, "pair")
    add(
        "MultiHeadAttention-4d",
        lambda: L.MultiHeadAttention(2, 4, output_shape=(6,), attention_axes=(1, 2)),
        [((3, 5, 8), f), ((3, 5, 8), f)],
        "pair",
    )
    add("GroupedQueryAttention", lambda: L.GroupQueryAttention(4, 4, 2), pair, "pair")
    add(
        "GroupedQueryAttention-gate-nobias",
        lambda: L.GroupQueryAttention(4, 4, 2, use_gate=True, use_bias=False),
        pair,
        "pair",
    )
    # recurrent
    add("SimpleRNN", lambda: L.SimpleRNN(3), seq)
    add("LSTM", lambda: L.LSTM(3), seq)
    add("LSTM-nobias", lambda: L.LSTM(3, use_bias=False), seq)
    add("LSTM-stateful", lambda: L.LSTM(3, stateful=True), seq)
    add("GRU", lambda: L.GRU(3), seq)
    add("GRU-v1", lambda: L.GRU(3, reset_after=False), seq)
    add("ConvLSTM1D", lambda: L.ConvLSTM1D(2, 3), video1)
    add("ConvLSTM2D", lambda: L.ConvLSTM2D(2, 3, use_bias=False), video2)
    add("ConvLSTM3D", lambda: L.ConvLSTM3D(2, 3), video3)
    add("RNN-SimpleRNNCell", lambda: L.RNN(L.SimpleRNNCell(3)), seq)
    add("RNN-LSTMCell-nobias", lambda: L.RNN(L.LSTMCell(3, use_bias=False)), seq)
    add("RNN-GRUCell", lambda: L.RNN(L.GRUCell(3)), seq)
    add("RNN-stacked", lambda: L.RNN([L.LSTMCell(3), L.GRUCell(2), L.LSTMCell(3)]), seq)
    add("Bidirectional-LSTM", lambda: L.Bidirectional(L.LSTM(3)), seq)
    add(
        "Bidirectional-GRU-backward",
        lambda: L.Bidirectional(L.GRU(3), backward_layer=L.GRU(3, go_backwards=True, use_bias=False)),
        seq,
    )
    add("Bidirectional-RNN-stacked", lambda: L.Bidirectional(L.RNN([L.SimpleRNNCell(2), L.SimpleRNNCell(2)])), seq)
    # wrappers
    add("TimeDistributed-Dense", lambda: L.TimeDistributed(L.Dense(3)), seq)
    add("TimeDistributed-BatchNormalization", lambda: L.TimeDistributed(L.BatchNormalization()), seq)
    add("TimeDistributed-Conv2D", lambda: L.TimeDistributed(L.Conv2D(2, 3)), video2)
    add("Wrapper", lambda: PlainWrapper(L.Dense(3)), v2, as_class="Wrapper")
    add("Pipeline", lambda: L.Pipeline([L.Normalization(), L.Dense(3), L.Dense(2)]), v2)
    # preprocessing
    add(
        "StringLookup-tfidf",
        lambda: L.StringLookup(vocabulary=["a", "b"], idf_weights=[1.0, 2.0], **lookup_kw),
        [((1,), "string")],
    )
    add("StringLookup-int", lambda: L.StringLookup(vocabulary=["a", "b"]), [((1,), "string")])
    add(
        "IntegerLookup-tfidf",
        lambda: L.IntegerLookup(vocabulary=[1, 2], idf_weights=[1.0, 2.0], **lookup_kw),
        [((1,), "int64")],
    )
    add(
        "TextVectorization-tfidf",
        lambda: L.TextVectorization(vocabulary=["a", "b"], idf_weights=[1.0, 2.0], **lookup_kw),
        [((), "string")],
    )
    add("TextVectorization-int", lambda: L.TextVectorization(vocabulary=["a", "b"]), [((), "string")])
    add("STFTSpectrogram", lambda: L.STFTSpectrogram(frame_length=8, frame_step=4), [((32, 1), f)])
    add("STFTSpectrogram-real", lambda: L.STFTSpectrogram(mode="real", frame_length=8, frame_step=4), [((32, 1), f)])
    add("STFTSpectrogram-imag", lambda: L.STFTSpectrogram(mode="imag", frame_length=8, frame_step=4), [((32, 1), f)])
    return V


def _k3_resolve(obj, attr, keras):
    """Follow a ChildSpec.attr ("cell", "cells/lstm_cell_1", ...)."""
    for part in attr.split("/"):
        if isinstance(obj, (list, tuple)):
            group_names = kl._unique_names(kl.to_snake_case(type(x).__name__) for x in obj)
            obj = obj[group_names.index(part)]
        else:
            obj = getattr(obj, part)
    return obj


def _k3_check_node(obj, class_name, config, group, keras, np, visited, as_class=None):
    spec = layer_spec(as_class or class_name, config, 3)
    assert spec is not None, f"no spec for {class_name}"
    if as_class is None:
        assert kl._canonical_class(type(obj).__name__) == kl._canonical_class(class_name)
    visited.add(group.name)

    store = {}
    obj.save_own_variables(store)
    if class_name in kl.NAMED_STORE_KEYS:
        expected_keys = [v.name for v in spec.variables]
    else:
        expected_keys = [str(i) for i in range(len(spec.variables))]
    assert list(store) == expected_keys, (class_name, names(spec))

    vars_group = group["vars"]
    assert sorted(vars_group.keys()) == sorted(expected_keys)
    assert vars_group.attrs["name"] == obj.name
    own = list(obj._trainable_variables) + list(obj._non_trainable_variables)

    def by_design(var):
        # A frozen layer (trainable=False) flips `variable.trainable` but
        # keeps its variables in `_trainable_variables`: that is the design.
        if obj.trainable:
            return bool(var.trainable)
        return any(var is v for v in obj._trainable_variables)

    for key, var_spec in zip(expected_keys, spec.variables):
        value = store[key]
        if isinstance(value, keras.Variable):
            assert (value.name, by_design(value)) == (var_spec.name, var_spec.trainable), (class_name, key)
        else:
            # A computed value: LoRA-merged kernel / embeddings, or the
            # numpy idf weights of lookups.  Identify the variable by name.
            matches = [v for v in own if v.name == var_spec.name]
            holder = getattr(obj, "_lookup_layer", obj)  # TextVectorization
            if not matches and hasattr(getattr(holder, var_spec.name, None), "trainable"):
                matches = [getattr(holder, var_spec.name)]
            assert len(matches) == 1, (class_name, var_spec)
            assert bool(matches[0].trainable) == var_spec.trainable
            assert tuple(matches[0].shape) == tuple(np.shape(value))
        saved = vars_group[key][()]
        np.testing.assert_array_equal(
            saved, keras.ops.convert_to_numpy(value) if not isinstance(value, np.ndarray) else value
        )
        if isinstance(value, keras.Variable):
            assert saved.dtype == np.dtype(value.dtype)

    # the default save_own_variables order really is trainable + non-trainable
    if type(obj).save_own_variables is keras.layers.Layer.save_own_variables:
        assert [id(v) for v in store.values()] == [id(v) for v in own]

    for child in spec.children:
        child_obj = _k3_resolve(obj, child.attr, keras)
        if "name" in child.config:
            assert child_obj.name == child.config["name"], child
        _k3_check_node(child_obj, child.class_name, child.config, group[child.attr], keras, np, visited)
    return spec


def _k3_inputs(keras, inputs, batch_size=None):
    return [keras.Input(shape=s, dtype=d, batch_size=batch_size) for s, d in inputs]


def _k3_apply(layer, xs, call):
    if call == "single":
        return layer(xs[0])
    if call == "pair":
        return layer(xs[0], xs[1])
    return layer(xs)


def test_keras3_saved_variables_match_spec(k3, tmp_path):
    keras, h5py, np = k3
    L = keras.layers
    failures = []
    covered = set()
    for id_, make, inputs, call, hook, as_class in _variants_k3(L, keras):
        try:
            layer = make()
            batch = 2 if getattr(layer, "stateful", False) else None
            xs = _k3_inputs(keras, inputs, batch)
            model = keras.Model(xs, _k3_apply(layer, xs, call))
            if hook:
                hook(layer)
            path = tmp_path / f"{id_}.weights.h5"
            model.save_weights(str(path))
            ser = _jsonable(keras.saving.serialize_keras_object(layer))
            with h5py.File(path, "r") as f:
                (group,) = [g for g in f["layers"].values() if g["vars"].attrs["name"] == layer.name]
                visited = set()
                _k3_check_node(layer, ser["class_name"], ser["config"], group, keras, np, visited, as_class)
                # every group holding data is explained by the spec tree
                with_data = set()
                group.visititems(
                    lambda n, o: with_data.add(o.parent.parent.name) if isinstance(o, h5py.Dataset) else None
                )
                assert with_data <= visited, with_data - visited
                flat = kl.flat_variables(as_class or ser["class_name"], ser["config"], 3)
                count = []
                group.visititems(lambda n, o: count.append(n) if isinstance(o, h5py.Dataset) else None)
                assert flat is not None and len(flat) == len(count)
            covered.add(kl._canonical_class(as_class or ser["class_name"]))
        except Exception as e:  # collect everything, report once
            failures.append(f"{id_}: {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)
    # every weight-owning Keras 3 rule was exercised
    owning = {c for c, r in kl._K3.items() if r is not kl._NONE} - {
        "JaxLayer",
        "FlaxLayer",
        "TorchModuleWrapper",
        "TFSMLayer",
        "SimpleRNNCell",
        "LSTMCell",
        "GRUCell",
        "ConvLSTMCell",
        "StackedRNNCells",
    }  # cells: exercised as children of RNN layers
    assert owning <= covered, owning - covered


# Public keras.layers classes that cannot be built generically.
_K3_ENUM_SKIP = {
    "FlaxLayer": "needs a flax module (JAX backend)",
    "JaxLayer": "needs a JAX function (JAX backend)",
    "TorchModuleWrapper": "needs a torch module (torch backend)",
    "TFSMLayer": "needs a TF SavedModel on disk",
    "Wrapper": "abstract (no call); covered by a subclass above",
    "Layer": "base class",
    "MaxNumBoundingBoxes": "bounding-box dicts only; weightless by source",
}


def _k3_enum_factory(L, keras):
    """Constructor arguments and inputs for every public layer class."""
    f = "float32"
    img = [((8, 8, 3), f)]
    seq = [((5, 4), f)]
    pair_seq = [((5, 4), f), ((5, 4), f)]
    args = {
        "Activation": (("relu",), {}),
        "AdaptiveAveragePooling1D": ((2,), {}),
        "AdaptiveAveragePooling2D": ((2,), {}),
        "AdaptiveAveragePooling3D": ((2,), {}),
        "AdaptiveMaxPooling1D": ((2,), {}),
        "AdaptiveMaxPooling2D": ((2,), {}),
        "AdaptiveMaxPooling3D": ((2,), {}),
        "AlphaDropout": ((0.1,), {}),
        "AveragePooling1D": ((2,), {}),
        "AveragePooling2D": ((2,), {}),
        "AveragePooling3D": ((2,), {}),
        "Bidirectional": ((L.LSTM(2),), {}),
        "CategoryEncoding": ((), {"num_tokens": 4}),
        "CenterCrop": ((4, 4), {}),
        "Conv1D": ((2, 3), {}),
        "Conv2D": ((2, 3), {}),
        "Conv3D": ((2, 3), {}),
        "Conv1DTranspose": ((2, 3), {}),
        "Conv2DTranspose": ((2, 3), {}),
        "Conv3DTranspose": ((2, 3), {}),
        "ConvLSTM1D": ((2, 3), {}),
        "ConvLSTM2D": ((2, 3), {}),
        "ConvLSTM3D": ((2, 3), {}),
        "Dense": ((2,), {}),
        "DepthwiseConv1D": ((3,), {}),
        "DepthwiseConv2D": ((3,), {}),
        "Discretization": ((), {"bin_boundaries": [0.0, 1.0]}),
        "Dot": ((-1,), {}),
        "Dropout": ((0.5,), {"seed": 1}),
        "EinsumDense": (("...b,bc->...c", 3), {"bias_axes": "c"}),
        "Embedding": ((10, 3), {}),
        "GRU": ((2,), {}),
        "GRUCell": ((2,), {}),
        "GaussianDropout": ((0.1,), {"seed": 1}),
        "GaussianNoise": ((0.1,), {"seed": 1}),
        "GroupNormalization": ((3,), {}),
        "GroupedQueryAttention": ((2, 2, 1), {}),
        "HashedCrossing": ((4,), {}),
        "Hashing": ((4,), {}),
        "InputLayer": ((), {"shape": (4,)}),
        "IntegerLookup": ((), {"vocabulary": [1, 2]}),
        "LSTM": ((2,), {}),
        "LSTMCell": ((2,), {}),
        "Lambda": ((lambda x: x,), {}),
        "MaxPooling1D": ((2,), {}),
        "MaxPooling2D": ((2,), {}),
        "MaxPooling3D": ((2,), {}),
        "MultiHeadAttention": ((2, 2), {}),
        "Permute": (((2, 1),), {}),
        "Pipeline": (([L.Rescaling(2.0)],), {}),
        "RNN": ((L.SimpleRNNCell(2),), {}),
        "RandomBrightness": ((0.1,), {}),
        "RandomColorDegeneration": ((0.1,), {}),
        "RandomContrast": ((0.1,), {}),
        "RandomCrop": ((4, 4), {}),
        "RandomHue": ((0.1,), {}),
        "RandomPosterization": (((1, 8),), {}),
        "RandomRotation": ((0.1,), {}),
        "RandomSaturation": ((0.1,), {}),
        "RandomSharpness": ((0.1,), {}),
        "RandomTranslation": ((0.1, 0.1), {}),
        "RandomZoom": ((0.1,), {}),
        "RepeatVector": ((2,), {}),
        "Rescaling": ((2.0,), {}),
        "Reshape": (((-1,),), {}),
        "Resizing": ((4, 4), {}),
        "ReversibleEmbedding": ((10, 3), {}),
        "SeparableConv1D": ((2, 3), {}),
        "SeparableConv2D": ((2, 3), {}),
        "SimpleRNN": ((2,), {}),
        "SimpleRNNCell": ((2,), {}),
        "SpatialDropout1D": ((0.1,), {}),
        "SpatialDropout2D": ((0.1,), {}),
        "SpatialDropout3D": ((0.1,), {}),
        "SpectralNormalization": ((L.Dense(2),), {}),
        "StackedRNNCells": (([L.SimpleRNNCell(2)],), {}),
        "StringLookup": ((), {"vocabulary": ["a", "b"]}),
        "TextVectorization": ((), {"vocabulary": ["a", "b"]}),
        "TimeDistributed": ((L.Dense(2),), {}),
    }
    inputs = {
        "Add": (pair_seq, "list"),
        "Average": (pair_seq, "list"),
        "Concatenate": (pair_seq, "list"),
        "Dot": (pair_seq, "list"),
        "Maximum": (pair_seq, "list"),
        "Minimum": (pair_seq, "list"),
        "Multiply": (pair_seq, "list"),
        "Subtract": (pair_seq, "list"),
        "Attention": (pair_seq, "list"),
        "AdditiveAttention": (pair_seq, "list"),
        "MultiHeadAttention": (pair_seq, "pair"),
        "GroupedQueryAttention": (pair_seq, "pair"),
        "Embedding": ([((3,), "int32")], "single"),
        "ReversibleEmbedding": ([((3,), "int32")], "single"),
        "CategoryEncoding": ([((3,), "int32")], "single"),
        "HashedCrossing": ([((1,), "int32"), ((1,), "int32")], "tuple"),
        "Hashing": ([((1,), "int32")], "single"),
        "IntegerLookup": ([((1,), "int64")], "single"),
        "StringLookup": ([((1,), "string")], "single"),
        "TextVectorization": ([((), "string")], "single"),
        "Normalization": (seq, "single"),
        "Discretization": (seq, "single"),
        "STFTSpectrogram": ([((512, 1), f)], "single"),
        "Permute": (seq, "single"),
        "MelSpectrogram": ([((512,), f)], "single"),
        "Cropping1D": (seq, "single"),
        "UpSampling1D": (seq, "single"),
        "ZeroPadding1D": (seq, "single"),
        "RepeatVector": ([((4,), f)], "single"),
        "Conv1D": (seq, "single"),
        "Conv1DTranspose": (seq, "single"),
        "DepthwiseConv1D": (seq, "single"),
        "SeparableConv1D": (seq, "single"),
        "AveragePooling1D": (seq, "single"),
        "MaxPooling1D": (seq, "single"),
        "GlobalAveragePooling1D": (seq, "single"),
        "GlobalMaxPooling1D": (seq, "single"),
        "AdaptiveAveragePooling1D": (seq, "single"),
        "AdaptiveMaxPooling1D": (seq, "single"),
        "SpatialDropout1D": (seq, "single"),
        "SimpleRNN": (seq, "single"),
        "LSTM": (seq, "single"),
        "GRU": (seq, "single"),
        "RNN": (seq, "single"),
        "Bidirectional": (seq, "single"),
        "TimeDistributed": (seq, "single"),
        "ConvLSTM1D": ([((3, 5, 2), f)], "single"),
        "ConvLSTM2D": ([((3, 5, 5, 2), f)], "single"),
        "ConvLSTM3D": ([((3, 4, 4, 4, 2), f)], "single"),
        "Conv3D": ([((4, 4, 4, 2), f)], "single"),
        "Conv3DTranspose": ([((4, 4, 4, 2), f)], "single"),
        "AveragePooling3D": ([((4, 4, 4, 2), f)], "single"),
        "MaxPooling3D": ([((4, 4, 4, 2), f)], "single"),
        "GlobalAveragePooling3D": ([((4, 4, 4, 2), f)], "single"),
        "GlobalMaxPooling3D": ([((4, 4, 4, 2), f)], "single"),
        "AdaptiveAveragePooling3D": ([((4, 4, 4, 2), f)], "single"),
        "AdaptiveMaxPooling3D": ([((4, 4, 4, 2), f)], "single"),
        "Cropping3D": ([((4, 4, 4, 2), f)], "single"),
        "UpSampling3D": ([((4, 4, 4, 2), f)], "single"),
        "ZeroPadding3D": ([((4, 4, 4, 2), f)], "single"),
        "SpatialDropout3D": ([((4, 4, 4, 2), f)], "single"),
        "Dense": ([((4,), f)], "single"),
        "EinsumDense": ([((4,), f)], "single"),
        "SpectralNormalization": ([((4,), f)], "single"),
        "InputLayer": (None, None),
        "SimpleRNNCell": (None, None),
        "LSTMCell": (None, None),
        "GRUCell": (None, None),
        "StackedRNNCells": (None, None),
    }

    def build(name, cls):
        a, kw = args.get(name, ((), {}))
        layer = cls(*a, **kw)
        spec_inputs, call = inputs.get(name, (img, "single"))
        if name in ("SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells"):
            layer.build((None, 4))  # cells are not called on a sequence
        elif spec_inputs is not None:
            xs = _k3_inputs(keras, spec_inputs)
            if call == "tuple":
                layer(tuple(xs))
            else:
                _k3_apply(layer, xs, call)
        return layer

    return build


def test_keras3_every_public_layer_class_is_known(k3):
    keras, _h5py, _np = k3
    L = keras.layers
    build = _k3_enum_factory(L, keras)
    failures, checked = [], []
    for name in sorted(dir(L)):
        cls = getattr(L, name)
        if not (inspect.isclass(cls) and issubclass(cls, L.Layer)):
            continue
        if name in _K3_ENUM_SKIP or cls.__name__ in _K3_ENUM_SKIP:
            continue
        try:
            layer = build(cls.__name__, cls)  # aliases: use the real name
        except Exception as e:
            failures.append(f"{name}: cannot build: {type(e).__name__}: {e}")
            continue
        checked.append(name)
        ser = _jsonable(keras.saving.serialize_keras_object(layer))
        spec = layer_spec(ser["class_name"], ser["config"], 3)
        weights = layer.weights
        if spec is None:
            failures.append(f"{name}: not in the table")
            continue
        flat = kl.flat_variables(ser["class_name"], ser["config"], 3)
        if flat is None or bool(flat) != bool(weights):
            failures.append(f"{name}: table says {flat}, layer has {[w.path for w in weights]}")
        elif not weights:
            store = {}
            layer.save_own_variables(store)
            if store:
                failures.append(f"{name}: weightless but stores {list(store)}")
    assert not failures, "\n".join(failures)
    assert len(checked) > 140


# ==========================================================================
# Keras 2 (tf_keras): compare with layer.weights (= legacy HDF5 order)
# ==========================================================================


@pytest.fixture(scope="module")
def k2():
    tf_keras = pytest.importorskip("tf_keras")
    return tf_keras


def _k2_variants(L, tf_keras):
    f = "float32"
    v2 = (4,)
    seq = (5, 4)
    img = (6, 6, 3)
    vol = (4, 4, 4, 2)
    V = []

    def add(id_, make, shape=v2, call="single", dtype=f):
        V.append((id_, make, shape, call, dtype))

    add("Dense", lambda: L.Dense(3))
    add("Dense-nobias", lambda: L.Dense(3, use_bias=False))
    add("EinsumDense", lambda: L.EinsumDense("ab,bc->ac", 3, bias_axes="c"))
    add("EinsumDense-nobias", lambda: L.EinsumDense("ab,bc->ac", 3))
    add("Embedding", lambda: L.Embedding(10, 3), (3,), dtype="int32")
    for n, x in ((1, seq), (2, img), (3, vol)):
        add(f"Conv{n}D", lambda n=n: getattr(L, f"Conv{n}D")(2, 3), x)
        add(f"Conv{n}D-nobias", lambda n=n: getattr(L, f"Conv{n}D")(2, 3, use_bias=False), x)
        add(f"Conv{n}DTranspose", lambda n=n: getattr(L, f"Conv{n}DTranspose")(2, 3), x)
    for n, x in ((1, seq), (2, img)):
        add(f"DepthwiseConv{n}D", lambda n=n: getattr(L, f"DepthwiseConv{n}D")(3), x)
        add(f"DepthwiseConv{n}D-nobias", lambda n=n: getattr(L, f"DepthwiseConv{n}D")(3, use_bias=False), x)
        add(f"SeparableConv{n}D", lambda n=n: getattr(L, f"SeparableConv{n}D")(2, 3), x)
        add(f"SeparableConv{n}D-nobias", lambda n=n: getattr(L, f"SeparableConv{n}D")(2, 3, use_bias=False), x)
        add(f"LocallyConnected{n}D", lambda n=n: getattr(L, f"LocallyConnected{n}D")(2, 3), x)
        add(
            f"LocallyConnected{n}D-impl2-nobias",
            lambda n=n: getattr(L, f"LocallyConnected{n}D")(2, 3, implementation=2, use_bias=False),
            x,
        )
        add(f"LocallyConnected{n}D-impl3", lambda n=n: getattr(L, f"LocallyConnected{n}D")(2, 3, implementation=3), x)
    add("BatchNormalization", lambda: L.BatchNormalization())
    add("BatchNormalization-renorm", lambda: L.BatchNormalization(renorm=True))
    add("BatchNormalization-bare", lambda: L.BatchNormalization(center=False, scale=False))
    add("BatchNormalization-frozen", lambda: L.BatchNormalization(trainable=False))
    add("SyncBatchNormalization", lambda: L.experimental.SyncBatchNormalization(scale=False))
    add("LayerNormalization", lambda: L.LayerNormalization())
    add("LayerNormalization-nocenter", lambda: L.LayerNormalization(center=False))
    add("LayerNormalization-noscale", lambda: L.LayerNormalization(scale=False))
    add("GroupNormalization", lambda: L.GroupNormalization(2))
    add("GroupNormalization-noscale", lambda: L.GroupNormalization(2, scale=False))
    add("Normalization", lambda: L.Normalization())
    add("Normalization-given", lambda: L.Normalization(mean=1.0, variance=2.0))
    add("Discretization-adapt", lambda: L.Discretization(num_bins=3))
    add("Discretization-given", lambda: L.Discretization(bin_boundaries=[0.0, 1.0]))
    add("PReLU", lambda: L.PReLU())
    add("UnitNormalization", lambda: L.UnitNormalization())
    add("Attention", lambda: L.Attention(), seq, "list")
    add("Attention-scale-concat", lambda: L.Attention(use_scale=True, score_mode="concat"), seq, "list")
    add("AdditiveAttention", lambda: L.AdditiveAttention(), seq, "list")
    add("AdditiveAttention-noscale", lambda: L.AdditiveAttention(use_scale=False), seq, "list")
    add("MultiHeadAttention", lambda: L.MultiHeadAttention(2, 4), seq, "pair")
    add("MultiHeadAttention-nobias", lambda: L.MultiHeadAttention(2, 4, use_bias=False), seq, "pair")
    add("SimpleRNN", lambda: L.SimpleRNN(3), seq)
    add("LSTM", lambda: L.LSTM(3, use_bias=False), seq)
    add("GRU", lambda: L.GRU(3), seq)
    add("GRU-v1", lambda: L.GRU(3, reset_after=False), seq)
    add("ConvLSTM1D", lambda: L.ConvLSTM1D(2, 3), (3, 5, 2))
    add("ConvLSTM2D", lambda: L.ConvLSTM2D(2, 3, use_bias=False), (3, 5, 5, 2))
    add("ConvLSTM3D", lambda: L.ConvLSTM3D(2, 3), (3, 4, 4, 4, 2))
    add("RNN-SimpleRNNCell", lambda: L.RNN(L.SimpleRNNCell(3)), seq)
    add("RNN-named-cell", lambda: L.RNN(L.LSTMCell(3, name="my_cell")), seq)
    add("RNN-stacked", lambda: L.RNN([L.LSTMCell(3), L.GRUCell(2), L.LSTMCell(3)]), seq)
    add("Bidirectional-LSTM", lambda: L.Bidirectional(L.LSTM(3)), seq)
    add(
        "Bidirectional-backward",
        lambda: L.Bidirectional(L.GRU(3), backward_layer=L.GRU(3, go_backwards=True, name="bw", use_bias=False)),
        seq,
    )
    add("Bidirectional-frozen", lambda: L.Bidirectional(L.LSTM(3), trainable=False), seq)
    add("TimeDistributed-Dense", lambda: L.TimeDistributed(L.Dense(3)), seq)
    add("TimeDistributed-BatchNormalization", lambda: L.TimeDistributed(L.BatchNormalization()), seq)
    add("TimeDistributed-Bidirectional", lambda: L.TimeDistributed(L.Bidirectional(L.LSTM(2))), (3, 5, 4))
    add("RandomFourierFeatures", lambda: L.experimental.RandomFourierFeatures(3))
    add("RandomFourierFeatures-trainable", lambda: L.experimental.RandomFourierFeatures(3, trainable=True))
    add("SpectralNormalization-Dense", lambda: L.SpectralNormalization(L.Dense(3)))
    add("SpectralNormalization-frozen", lambda: L.SpectralNormalization(L.Dense(3), trainable=False))
    add("SpectralNormalization-Embedding", lambda: L.SpectralNormalization(L.Embedding(10, 3)), (3,), dtype="int32")
    add("StringLookup-int", lambda: L.StringLookup(vocabulary=["a", "b"]), (1,), dtype="string")
    add("TextVectorization-int", lambda: L.TextVectorization(vocabulary=["a", "b"]), (), dtype="string")
    return V


def _k2_expected(layer):
    out = []
    for w in layer.weights:
        name = w.name
        if name.endswith(":0"):
            name = name[:-2]
        prefix = layer.name + "/"
        if name.startswith(prefix):
            name = name[len(prefix) :]
        out.append((name, bool(w.trainable)))
    return out


def _k2_flat(class_name, config):
    flat = kl.flat_variables(class_name, config, 2)
    assert flat is not None, class_name
    return [("/".join(path + (v.name,)), v.trainable) for path, v in flat]


def test_tf_keras_weights_match_spec(k2, monkeypatch):
    tf_keras = k2
    import tensorflow as tf

    # tf_keras' SpectralNormalization uses tf.keras.layers.InputSpec, which is
    # Keras 3's when TF_USE_LEGACY_KERAS is unset; point it at tf_keras'.
    monkeypatch.setattr(tf.keras.layers, "InputSpec", tf_keras.layers.InputSpec, raising=False)
    L = tf_keras.layers
    failures, covered = [], set()
    for id_, make, shape, call, dtype in _k2_variants(L, tf_keras):
        try:
            layer = make()
            x = tf_keras.Input(shape=shape, dtype=dtype)
            if call == "single":
                layer(x)
            elif call == "list":
                layer([x, x])
            else:
                layer(x, x)
            ser = _jsonable(tf_keras.layers.serialize(layer))
            spec = layer_spec(ser["class_name"], ser["config"], 2)
            assert spec is not None
            assert _k2_flat(ser["class_name"], ser["config"]) == _k2_expected(layer)
            covered.add(ser["class_name"])
        except Exception as e:
            failures.append(f"{id_}: {type(e).__name__}: {e}")
    # CuDNN layers cannot run on CPU, but build() creates their weights.
    from tf_keras.src.layers.rnn import cudnn_gru, cudnn_lstm

    for cls in (cudnn_lstm.CuDNNLSTM, cudnn_gru.CuDNNGRU):
        layer = cls(3)
        layer.build((None, 5, 4))
        cfg = _jsonable(layer.get_config())
        if _k2_flat(cls.__name__, cfg) != _k2_expected(layer):
            failures.append(f"{cls.__name__}: {_k2_expected(layer)}")
        covered.add(cls.__name__)
    assert not failures, "\n".join(failures)
    owning = {c for c, r in kl._K2.items() if r is not kl._NONE} - {
        "SimpleRNNCell",
        "LSTMCell",
        "GRUCell",
        "ConvLSTMCell",
        "StackedRNNCells",
        "Wrapper",
        "DenseFeatures",
        "DynamicEmbedding",
        "DynamicLookup",
        "StringLookup",
        "IntegerLookup",
        "TextVectorization",
    }
    assert owning <= covered, owning - covered


def test_tf_keras_legacy_h5_uses_layer_weights_order(k2, tmp_path):
    """The legacy HDF5 `weight_names` are `layer.weights` names."""
    h5py = pytest.importorskip("h5py")
    tf_keras = k2
    L = tf_keras.layers
    x = tf_keras.Input((5, 4))
    bidi = L.Bidirectional(L.LSTM(3, return_sequences=True))
    bn = L.BatchNormalization(renorm=True)
    y = bn(L.TimeDistributed(L.Dense(3))(bidi(x)))
    model = tf_keras.Model(x, y)
    path = tmp_path / "legacy.h5"
    model.save_weights(str(path))
    with h5py.File(path, "r") as f:
        for layer in (bidi, bn):
            stored = [n.decode() if isinstance(n, bytes) else n for n in f[layer.name].attrs["weight_names"]]
            assert stored == [w.name for w in layer.weights]


def test_tf_keras_tf_idf_lookups_are_refused(k2):
    cfg = {"output_mode": "tf_idf", "vocabulary": ["a"], "idf_weights": [1.0]}
    for cls in ("StringLookup", "IntegerLookup", "TextVectorization"):
        assert layer_spec(cls, cfg, 2) is None
        assert layer_spec(cls, dict(cfg, output_mode="int"), 2) == kl.LayerSpec((), ())


_K2_ENUM_SKIP = {
    "DenseFeatures": "needs feature columns; refused by the table",
    "Layer": "base class",
    "Wrapper": "abstract",
    "InputSpec": "not a layer",
    "PreprocessingLayer": "abstract base class",
    "AbstractRNNCell": "abstract base class",
    "DynamicEmbedding": "needs a vocabulary table; refused by the table",
    "DynamicLookup": "needs a vocabulary table; refused by the table",
}


def test_tf_keras_every_public_layer_class_is_known(k2, monkeypatch):
    tf_keras = k2
    import tensorflow as tf

    monkeypatch.setattr(tf.keras.layers, "InputSpec", tf_keras.layers.InputSpec, raising=False)
    L = tf_keras.layers
    classes = {}
    for module in (L, L.experimental, L.experimental.preprocessing):
        for name in dir(module):
            cls = getattr(module, name)
            if inspect.isclass(cls) and issubclass(cls, L.Layer):
                classes[cls.__name__] = cls
    args = {
        "Activation": ("relu",),
        "AlphaDropout": (0.1,),
        "AveragePooling1D": (2,),
        "AveragePooling2D": (2,),
        "AveragePooling3D": (2,),
        "Bidirectional": (L.LSTM(2),),
        "CategoryEncoding": (4,),
        "CenterCrop": (4, 4),
        "Conv1D": (2, 3),
        "Conv2D": (2, 3),
        "Conv3D": (2, 3),
        "Conv1DTranspose": (2, 3),
        "Conv2DTranspose": (2, 3),
        "Conv3DTranspose": (2, 3),
        "ConvLSTM1D": (2, 3),
        "ConvLSTM2D": (2, 3),
        "ConvLSTM3D": (2, 3),
        "Dense": (2,),
        "DepthwiseConv1D": (3,),
        "DepthwiseConv2D": (3,),
        "Dot": (-1,),
        "Dropout": (0.5,),
        "EinsumDense": ("...b,bc->...c", 3),
        "Embedding": (10, 3),
        "GRU": (2,),
        "GRUCell": (2,),
        "GaussianDropout": (0.1,),
        "GaussianNoise": (0.1,),
        "GroupNormalization": (3,),
        "HashedCrossing": (4,),
        "Hashing": (4,),
        "LSTM": (2,),
        "LSTMCell": (2,),
        "Lambda": (lambda x: x,),
        "LocallyConnected1D": (2, 3),
        "LocallyConnected2D": (2, 3),
        "MaxPooling1D": (2,),
        "MaxPooling2D": (2,),
        "MaxPooling3D": (2,),
        "MultiHeadAttention": (2, 2),
        "Permute": ((2, 1),),
        "RNN": (L.SimpleRNNCell(2),),
        "RandomBrightness": (0.1,),
        "RandomContrast": (0.1,),
        "RandomCrop": (4, 4),
        "RandomFourierFeatures": (3,),
        "RandomHeight": (0.1,),
        "RandomRotation": (0.1,),
        "RandomTranslation": (0.1, 0.1),
        "RandomWidth": (0.1,),
        "RandomZoom": (0.1,),
        "RepeatVector": (2,),
        "Rescaling": (2.0,),
        "Reshape": ((-1,),),
        "Resizing": (4, 4),
        "SeparableConv1D": (2, 3),
        "SeparableConv2D": (2, 3),
        "SimpleRNN": (2,),
        "SimpleRNNCell": (2,),
        "SpatialDropout1D": (0.1,),
        "SpatialDropout2D": (0.1,),
        "SpatialDropout3D": (0.1,),
        "StackedRNNCells": ([L.SimpleRNNCell(2)],),
        "TimeDistributed": (L.Dense(2),),
        "SpectralNormalization": (L.Dense(2),),
    }
    kwargs = {
        "Discretization": {"num_bins": 3},
        "StringLookup": {"vocabulary": ["a"]},
        "IntegerLookup": {"vocabulary": [1]},
        "TextVectorization": {"vocabulary": ["a"]},
        "InputLayer": {"input_shape": (4,)},
    }
    f = "float32"
    seq1d = {
        "Conv1D",
        "Conv1DTranspose",
        "DepthwiseConv1D",
        "SeparableConv1D",
        "LocallyConnected1D",
        "AveragePooling1D",
        "MaxPooling1D",
        "GlobalAveragePooling1D",
        "GlobalMaxPooling1D",
        "Cropping1D",
        "UpSampling1D",
        "ZeroPadding1D",
        "SpatialDropout1D",
        "GRU",
        "LSTM",
        "SimpleRNN",
        "RNN",
        "Bidirectional",
        "TimeDistributed",
        "Normalization",
        "Discretization",
        "Attention",
        "AdditiveAttention",
        "MultiHeadAttention",
        "Add",
        "Average",
        "Concatenate",
        "Dot",
        "Maximum",
        "Minimum",
        "Multiply",
        "Subtract",
        "Permute",
    }
    vol = {
        "Conv3D",
        "Conv3DTranspose",
        "AveragePooling3D",
        "MaxPooling3D",
        "GlobalAveragePooling3D",
        "GlobalMaxPooling3D",
        "Cropping3D",
        "UpSampling3D",
        "ZeroPadding3D",
        "SpatialDropout3D",
    }
    flat = {
        "Dense",
        "EinsumDense",
        "RandomFourierFeatures",
        "RepeatVector",
        "SpectralNormalization",
        "CuDNNLSTM",
        "CuDNNGRU",
    }
    pairs = {
        "Add",
        "Average",
        "Concatenate",
        "Dot",
        "Maximum",
        "Minimum",
        "Multiply",
        "Subtract",
        "Attention",
        "AdditiveAttention",
    }
    special_inputs = {
        "Embedding": ((3,), "int32"),
        "CategoryEncoding": ((3,), "int32"),
        "Hashing": ((1,), "int32"),
        "IntegerLookup": ((1,), "int64"),
        "StringLookup": ((1,), "string"),
        "TextVectorization": ((), "string"),
        "ConvLSTM1D": ((3, 5, 2), f),
        "ConvLSTM2D": ((3, 5, 5, 2), f),
        "ConvLSTM3D": ((3, 4, 4, 4, 2), f),
    }
    import tensorflow as tf

    failures, checked = [], []
    for name, cls in sorted(classes.items()):
        if name in _K2_ENUM_SKIP:
            continue
        try:
            layer = cls(*args.get(name, ()), **kwargs.get(name, {}))
            if name in ("SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells", "CuDNNLSTM", "CuDNNGRU"):
                layer.build((None, 4))
            elif name == "InputLayer":
                pass
            elif name == "HashedCrossing":
                layer((tf.constant([[1]]), tf.constant([[2]])))
            elif name in ("TFOpLambda", "SlicingOpLambda"):
                continue  # created by the functional API around tf ops
            else:
                shape, dtype = special_inputs.get(
                    name,
                    (
                        (5, 4)
                        if name in seq1d
                        else (4, 4, 4, 2)
                        if name in vol
                        else (4,)
                        if name in flat
                        else (8, 8, 3),
                        f,
                    ),
                )
                x = tf_keras.Input(shape, dtype=dtype)
                if name in pairs:
                    layer([x, x])
                elif name == "MultiHeadAttention":
                    layer(x, x)
                else:
                    layer(x)
        except Exception as e:
            failures.append(f"{name}: cannot build: {type(e).__name__}: {e}")
            continue
        checked.append(name)
        ser = _jsonable(tf_keras.layers.serialize(layer))
        spec = layer_spec(ser["class_name"], ser["config"], 2)
        if spec is None:
            failures.append(f"{name}: not in the table")
            continue
        flat_spec = kl.flat_variables(ser["class_name"], ser["config"], 2)
        got = [("/".join(p + (v.name,)), v.trainable) for p, v in flat_spec]
        if got != _k2_expected(layer):
            failures.append(f"{name}: {got} != {_k2_expected(layer)}")
    assert not failures, "\n".join(failures)
    assert len(checked) > 100


def test_spec_memo_key_tells_configs_apart():
    """The naming memo's key (``naming._spec_key_of``) drops only the layer's own ``name``: configs
    differing in a value, or only in its type (True, 1, 1.0), or in a nested value never share a
    key; shared objects inside a config do not change it."""
    from kaudit.keras import naming
    from kaudit.keras.config import LayerNode

    def key(cfg):
        return naming._spec_key_of(LayerNode(name="x", class_name="Dense", config=cfg), 2)

    base = key({"name": "a", "units": 1, "init": {"seed": None}})
    assert base == key({"name": "other", "units": 1, "init": {"seed": None}})
    assert base == key({"units": 1, "init": {"seed": None}})
    differing = [
        {"name": "a", "units": True, "init": {"seed": None}},
        {"name": "a", "units": 1.0, "init": {"seed": None}},
        {"name": "a", "units": 2, "init": {"seed": None}},
        {"name": "a", "units": 1, "init": {"seed": 0}},
        {"name": "a", "units": 1, "init": {"seed": None}, "extra": []},
        {"name": "a", "units": [1], "init": {"seed": None}},
    ]
    keys = [key(c) for c in differing]
    assert base not in keys and len(set(keys)) == len(keys)
    shared = "".join(["z", "z"])
    p, q = "".join(["z", "z"]), "".join(["z", "z"])
    assert p is not q
    assert key({"name": "a", "p": shared, "q": shared}) == key({"name": "b", "p": p, "q": q})
    assert key({"name": "a", "bad": object()}) is None  # not memoised
