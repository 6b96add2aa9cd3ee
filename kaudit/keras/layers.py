"""Names of the variables that built-in Keras layers store in checkpoints.

Pure standard library: nothing here imports Keras, TensorFlow, h5py or numpy.

Keras 3 (``.weights.h5`` / ``.keras``) stores each layer's *own* variables as
``<layer group>/vars/0..n`` without names, in the order of the layer's
``save_own_variables`` (by default ``_trainable_variables +
_non_trainable_variables``; Dense, EinsumDense, Embedding, ReversibleEmbedding
and the Conv layers override it).  Nested saveables (sub-layers held in
attributes) get their own groups named after the attribute, e.g.
``layers/lstm/cell/vars/0..2``.  :func:`layer_spec` predicts both from the
layer's class name and config.

Keras 2 (tf_keras, legacy HDF5) stores names; ``keras_major=2`` returns the
tf_keras short names.  For Keras 2, ``ChildSpec.attr`` is the name-scope
segment the child adds to the weight names (``"forward_lstm"``,
``"lstm_cell"``, ``"query"``), or ``""`` when the child adds none
(TimeDistributed, ConvLSTM cells).  The flat tf_keras order (``layer.weights``,
which is also the legacy HDF5 order) is all trainable variables of the tree
followed by all non-trainable ones; :func:`flat_variables` computes it.

Everything in this module was checked against keras 3.15.1 and tf_keras 2.21
by ``tests/test_keras_layers.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "NAMED_STORE_KEYS",
    "NON_TRAINABLE_BY_DESIGN",
    "ChildSpec",
    "LayerSpec",
    "VarSpec",
    "flat_variables",
    "known_classes",
    "layer_spec",
    "to_snake_case",
]


@dataclass(frozen=True)
class VarSpec:
    name: str  # Keras short variable name, e.g. "kernel", "moving_mean"
    trainable: bool  # False for variables that are non-trainable by design


@dataclass(frozen=True)
class ChildSpec:
    attr: str  # Keras 3: group name under the layer group; Keras 2: name-scope segment
    class_name: str
    config: dict
    collapse: bool  # implementation detail (RNN cells): canonical path drops it


@dataclass(frozen=True)
class LayerSpec:
    variables: tuple[VarSpec, ...]  # the layer's OWN variables, in stored order
    children: tuple[ChildSpec, ...]  # nested saveables, in `layer.weights` order


class _Unnamed(Exception):
    """Raised inside rules when the config uses something we cannot name."""


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def to_snake_case(name: str) -> str:
    """Same as keras.src.utils.naming.to_snake_case (group names in files)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


_KERAS_MODULES = ("keras", "tf_keras", "tensorflow.keras", "tf.keras", "tensorflow.python.keras")

# Export aliases -> the class name Keras writes in configs.
_ALIASES = {
    "Convolution1D": "Conv1D",
    "Convolution2D": "Conv2D",
    "Convolution3D": "Conv3D",
    "Convolution1DTranspose": "Conv1DTranspose",
    "Convolution2DTranspose": "Conv2DTranspose",
    "Convolution3DTranspose": "Conv3DTranspose",
    "SeparableConvolution1D": "SeparableConv1D",
    "SeparableConvolution2D": "SeparableConv2D",
    "GroupQueryAttention": "GroupedQueryAttention",
    "AvgPool1D": "AveragePooling1D",
    "AvgPool2D": "AveragePooling2D",
    "AvgPool3D": "AveragePooling3D",
    "MaxPool1D": "MaxPooling1D",
    "MaxPool2D": "MaxPooling2D",
    "MaxPool3D": "MaxPooling3D",
    "GlobalAvgPool1D": "GlobalAveragePooling1D",
    "GlobalAvgPool2D": "GlobalAveragePooling2D",
    "GlobalAvgPool3D": "GlobalAveragePooling3D",
    "GlobalMaxPool1D": "GlobalMaxPooling1D",
    "GlobalMaxPool2D": "GlobalMaxPooling2D",
    "GlobalMaxPool3D": "GlobalMaxPooling3D",
}


def _canonical_class(class_name) -> str | None:
    """Plain Keras class name, or None for custom/registered classes."""
    if not isinstance(class_name, str) or not class_name:
        return None
    if ">" in class_name:  # "Package>Name": a registered custom object
        return None
    if "." in class_name:
        module, _, class_name = class_name.rpartition(".")
        if not any(module == m or module.startswith(m + ".") for m in _KERAS_MODULES):
            return None
    return _ALIASES.get(class_name, class_name)


def _unwrap(obj) -> tuple[str, dict]:
    """(class_name, config) of a nested serialized layer (Keras 2 or 3 form).

    Custom classes keep a marker ("Pkg>Name" or "module.Name") so that
    layer_spec() refuses them.
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("class_name"), str):
        raise _Unnamed
    class_name = obj["class_name"]
    config = obj.get("config")
    config = config if isinstance(config, dict) else {}
    registered = obj.get("registered_name")
    module = obj.get("module")
    if isinstance(registered, str) and ">" in registered:
        class_name = registered
    elif (
        isinstance(module, str)
        and module
        and not any(module == m or module.startswith(m + ".") for m in _KERAS_MODULES)
    ):
        class_name = f"{module}.{class_name}"
    return class_name, config


def _short_class(class_name: str) -> str:
    """Python class name of a (possibly marked) class, for container groups."""
    return re.split(r"[>.]", class_name)[-1]


def _unique_names(names: Iterable[str]) -> list[str]:
    """keras saving_lib._get_unique_name applied in order: a, a_1, a_2 ..."""
    used: dict[str, int] = {}
    out = []
    for name in names:
        if name in used:
            used[name] += 1
            out.append(f"{name}_{used[name]}")
        else:
            used[name] = 0
            out.append(name)
    return out


# Config predicates ---------------------------------------------------------

Pred = Callable[[dict], bool]


def _always(cfg: dict) -> bool:
    return True


def _flag(key: str, default=True) -> Pred:
    """config[key] is truthy (Keras default `default` when absent)."""
    return lambda cfg: bool(cfg.get(key, default))


def _unset(key: str) -> Pred:
    """config[key] is absent or None (e.g. Normalization without `mean`)."""
    return lambda cfg: cfg.get(key) is None


def _equals(key: str, value, default=None) -> Pred:
    return lambda cfg: cfg.get(key, default) == value


def _not_equals(key: str, value, default=None) -> Pred:
    return lambda cfg: cfg.get(key, default) != value


def _all(*preds: Pred) -> Pred:
    return lambda cfg: all(p(cfg) for p in preds)


def _any(*preds: Pred) -> Pred:
    return lambda cfg: any(p(cfg) for p in preds)


# --------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _V:
    """A variable in creation order; present when `when(config)`."""

    name: str
    when: Pred = _always
    trainable: bool = True


@dataclass(frozen=True)
class _Rule:
    # Either static variables in creation order (stored order is then
    # trainable-first, as Layer.save_own_variables and tf_keras
    # `layer.weights` do), or a function returning the stored order.
    own: tuple[_V, ...] | Callable[[dict], tuple[VarSpec, ...]] = ()
    children: Callable[[dict], tuple[ChildSpec, ...]] | None = None

    def __call__(self, cfg: dict) -> LayerSpec:
        if callable(self.own):
            variables = tuple(self.own(cfg))
        else:
            present = [VarSpec(v.name, v.trainable) for v in self.own if v.when(cfg)]
            variables = tuple([v for v in present if v.trainable] + [v for v in present if not v.trainable])
        children = tuple(self.children(cfg)) if self.children else ()
        return LayerSpec(variables, children)


_NONE = _Rule()
_USE_BIAS = _flag("use_bias")


def _own(*variables: _V) -> _Rule:
    return _Rule(own=variables)


# Quantization (Keras 3 only) ----------------------------------------------

_QUANT_MODES = ("int8", "float8", "int4", "gptq", "awq")
_QUANT_POLICY_CLASSES = (
    "QuantizedDTypePolicy",
    "QuantizedFloat8DTypePolicy",
    "Int4DTypePolicy",
    "GPTQDTypePolicy",
    "AWQDTypePolicy",
)


def _policy_mode(policy) -> str | None:
    """Quantization mode string of a serialized dtype policy (None = float)."""
    if policy is None:
        return None
    if isinstance(policy, str):
        if not policy.startswith(_QUANT_MODES):
            return None
        parts = policy.split("_from_")
        if len(parts) != 2:
            raise _Unnamed
        return parts[0]
    if isinstance(policy, dict):
        class_name = policy.get("class_name")
        cfg = policy.get("config")
        cfg = cfg if isinstance(cfg, dict) else {}
        if class_name in _QUANT_POLICY_CLASSES:
            mode = cfg.get("mode")
            if not isinstance(mode, str):
                raise _Unnamed
            return mode
        if class_name == "DTypePolicyMap":
            # Per-path policies: we cannot tell which sub-layer gets which.
            inner = cfg.get("policy_map")
            if _mentions_quantization(inner):
                raise _Unnamed
            return _policy_mode(cfg.get("default_policy"))
        if class_name in ("DTypePolicy", "FloatDTypePolicy", "Policy"):
            return _policy_mode(cfg.get("name"))
        if _mentions_quantization(policy):
            raise _Unnamed
        return None
    return None


def _mentions_quantization(obj) -> bool:
    if isinstance(obj, str):
        return obj.startswith(_QUANT_MODES) or obj in _QUANT_POLICY_CLASSES
    if isinstance(obj, dict):
        return any(_mentions_quantization(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_mentions_quantization(v) for v in obj)
    return False


def _quantization(cfg: dict) -> tuple[str | None, bool]:
    """(mode, sub_channel) of a quantizable layer; raises for modes we skip.

    int4 stores `*_zero` and `g_idx` only for sub-channel quantization
    (block_size > 0), see keras quantizers.get_block_size_for_layer.
    """
    mode = _policy_mode(cfg.get("dtype"))
    if mode is None:
        return None, False
    base, _, rest = mode.partition("/")
    if base in ("int8", "float8") and not rest:
        return base, False
    if base != "int4":
        raise _Unnamed  # gptq / awq / unknown: not handled
    block = None
    qconfig = cfg.get("quantization_config")
    if isinstance(qconfig, dict) and qconfig.get("class_name") == "Int4QuantizationConfig":
        inner = qconfig.get("config") or {}
        block = inner.get("block_size", 128)
    elif rest:
        try:
            block = int(rest)
        except ValueError:
            raise _Unnamed from None
    if block is not None and not isinstance(block, int):
        raise _Unnamed
    return "int4", bool(block is not None and block > 0)


# `variable_serialization_spec` of Dense / EinsumDense; "?" marks variables
# that only exist for sub-channel int4 quantization.
_DENSE_SERIALIZATION = {
    None: ("kernel", "bias"),
    "int8": ("kernel", "bias", "kernel_scale"),
    "int4": ("kernel", "bias", "kernel_scale", "kernel_zero?", "g_idx?"),
    "float8": (
        "kernel",
        "bias",
        "inputs_scale",
        "inputs_amax_history",
        "kernel_scale",
        "kernel_amax_history",
        "outputs_grad_scale",
        "outputs_grad_amax_history",
    ),
}
_EMBEDDING_SERIALIZATION = {
    None: ("embeddings",),
    "int8": ("embeddings", "embeddings_scale"),
    "int4": ("embeddings", "embeddings_scale", "embeddings_zero?", "g_idx?"),
}
_REVERSE_SERIALIZATION = {  # appended by ReversibleEmbedding if not tied
    None: ("reverse_embeddings",),
    "int8": ("reverse_embeddings", "reverse_embeddings_scale"),
    "int4": ("reverse_embeddings", "reverse_embeddings_scale", "reverse_embeddings_zero?"),
}


def _serialized_own(table: dict, main: str, has: dict[str, Pred] | None = None, extra: tuple[dict, Pred] | None = None):
    """Own-variable rule of a layer whose save_own_variables follows a
    per-quantization-mode list (Dense, EinsumDense, Embedding, ...).

    `main` is the LoRA/quantized weight (kernel or embeddings): frozen when
    LoRA is on (the merged value is saved), int8/int4 copies are frozen too.
    Float8 scales and histories are trainable (updated through gradients).
    """

    def own(cfg: dict) -> tuple[VarSpec, ...]:
        mode, sub_channel = _quantization(cfg)
        names = list(_table_names(table, mode, sub_channel))
        if extra is not None and extra[1](cfg):
            names += _table_names(extra[0], mode, sub_channel)
        out = []
        for name in names:
            if has and name in has and not has[name](cfg):
                continue
            if name == "bias" or mode == "float8" or mode is None:
                trainable = not (name == main and cfg.get("lora_rank"))
            else:
                trainable = False
            out.append(VarSpec(name, trainable))
        return tuple(out)

    return own


def _table_names(table: dict, mode, sub_channel: bool) -> list[str]:
    if mode not in table:
        raise _Unnamed
    return [n.rstrip("?") for n in table[mode] if not n.endswith("?") or sub_channel]


def _lora_kernel(cfg: dict) -> tuple[VarSpec, ...]:
    """BaseConv: saves [kernel (LoRA-merged), bias]; no quantization."""
    if _policy_mode(cfg.get("dtype")) is not None:
        raise _Unnamed
    out = [VarSpec("kernel", not cfg.get("lora_rank"))]
    if cfg.get("use_bias", True):
        out.append(VarSpec("bias", True))
    return tuple(out)


# Children ------------------------------------------------------------------


def _named(cfg: dict, name) -> dict:
    """Child config: the parent's (or given) config with the child's name."""
    out = dict(cfg)
    if name is None:
        out.pop("name", None)
    else:
        out["name"] = name
    return out


def _cell_child(cell_class: str, cell_name: str, keras_major: int, segment: str | None = None, **extra):
    """Built-in recurrent layers create their cell from their own config."""

    def children(cfg: dict) -> tuple[ChildSpec, ...]:
        attr = "cell" if keras_major == 3 else (cell_name if segment is None else segment)
        child_cfg = dict(_named(cfg, cell_name), **{k: (v(cfg) if callable(v) else v) for k, v in extra.items()})
        return (ChildSpec(attr, cell_class, child_cfg, True),)

    return children


def _rnn_children(keras_major: int):
    """keras.layers.RNN(cell=...): the cell comes from the config."""

    def children(cfg: dict) -> tuple[ChildSpec, ...]:
        cell = cfg.get("cell")
        cell_cfg: dict
        if isinstance(cell, list):  # very old configs: list of cells
            class_name, cell_cfg = "StackedRNNCells", {"cells": cell}
        else:
            class_name, cell_cfg = _unwrap(cell)
        if keras_major == 3:
            attr = "cell"
        else:
            attr = cell_cfg.get("name") or to_snake_case(_short_class(class_name))
        return (ChildSpec(attr, class_name, cell_cfg, True),)

    return children


def _stacked_children(keras_major: int):
    def children(cfg: dict) -> tuple[ChildSpec, ...]:
        cells = [_unwrap(c) for c in cfg.get("cells") or ()]
        if keras_major == 3:  # a list attribute: container groups
            attrs = ["cells/" + n for n in _unique_names(to_snake_case(_short_class(c)) for c, _ in cells)]
        else:
            attrs = [c_cfg.get("name") or to_snake_case(_short_class(c)) for c, c_cfg in cells]
        return tuple(ChildSpec(a, c, c_cfg, False) for a, (c, c_cfg) in zip(attrs, cells, strict=True))

    return children


def _wrapped_child(keras_major: int):
    """TimeDistributed / Wrapper: `self.layer`.  tf_keras builds the inner
    layer without its name scope, hence segment "".  The wrapped layer is
    collapsed into the wrapper's path (``td/kernel``, as tf_keras names it)."""

    def children(cfg: dict) -> tuple[ChildSpec, ...]:
        class_name, child_cfg = _unwrap(cfg.get("layer"))
        attr = "layer" if keras_major == 3 else ""
        return (ChildSpec(attr, class_name, child_cfg, True),)

    return children


def _removeprefix(text: str, prefix: str) -> str:
    return text[len(prefix) :] if text.startswith(prefix) else text


def _bidirectional_children(keras_major: int):
    def children(cfg: dict) -> tuple[ChildSpec, ...]:
        f_class, f_cfg = _unwrap(cfg.get("layer"))
        f_name = f_cfg.get("name")
        if not isinstance(f_name, str):
            raise _Unnamed
        derived = cfg.get("backward_layer") is None
        if derived:  # backward copy of the forward layer
            b_class = f_class
            b_cfg = dict(f_cfg, go_backwards=not f_cfg.get("go_backwards", False))
            b_name = f_name
        else:
            b_class, b_cfg = _unwrap(cfg["backward_layer"])
            given = b_cfg.get("name")
            if not isinstance(given, str):
                raise _Unnamed
            b_name = given
        if keras_major == 3:
            # Keras 3 configs hold the final names: the forward copy is
            # renamed forward_<name> (idempotent), a user-given backward
            # layer keeps its name, a derived one is named backward_<name>.
            f_name = "forward_" + _removeprefix(f_name, "forward_")
            if derived:
                b_name = "backward_" + _removeprefix(b_name, "backward_")
            attrs = ("forward_layer", "backward_layer")
        else:  # tf_keras prefixes the names of both layers
            f_name = "forward_" + f_name
            b_name = "backward_" + b_name
            attrs = (f_name, b_name)
        return (
            ChildSpec(attrs[0], f_class, _named(f_cfg, f_name), False),
            ChildSpec(attrs[1], b_class, _named(b_cfg, b_name), False),
        )

    return children


def _mha_children(keras_major: int):
    """MultiHeadAttention builds EinsumDense sub-layers named query, key,
    (gate,) value and attention_output.  Keras 3 reaches them through the
    public properties query_dense/key_dense/value_dense/output_dense; the gate
    has no property, so its group is the private attribute `_gate_dense`.
    `bias_axes` below are those of rank-3 inputs (only their truthiness
    matters for naming); `dtype` is inherited from the parent."""

    def children(cfg: dict) -> tuple[ChildSpec, ...]:
        use_bias = cfg.get("use_bias", True)
        parts = [("query_dense", "query", "de"), ("key_dense", "key", "de")]
        if cfg.get("use_gate", False):
            if keras_major == 2:
                raise _Unnamed  # tf_keras has no gate
            parts.append(("_gate_dense", "gate", "de"))
        parts += [("value_dense", "value", "de"), ("output_dense", "attention_output", "e")]
        return tuple(
            ChildSpec(
                attr if keras_major == 3 else name,
                "EinsumDense",
                {"name": name, "bias_axes": axes if use_bias else None, "dtype": cfg.get("dtype")},
                False,
            )
            for attr, name, axes in parts
        )

    return children


def _gqa_children(cfg: dict) -> tuple[ChildSpec, ...]:
    """GroupedQueryAttention (Keras 3): no public properties, so the groups
    are the private attributes."""
    use_bias = cfg.get("use_bias", True)
    parts = [("_query_dense", "query", "uh"), ("_key_dense", "key", "vh")]
    if cfg.get("use_gate", False):
        parts.append(("_gate_dense", "gate", "uh"))
    parts += [("_value_dense", "value", "vh"), ("_output_dense", "attention_output", "m")]
    return tuple(
        ChildSpec(
            attr,
            "EinsumDense",
            {"name": name, "bias_axes": axes if use_bias else None, "dtype": cfg.get("dtype")},
            False,
        )
        for attr, name, axes in parts
    )


def _pipeline_children(cfg: dict) -> tuple[ChildSpec, ...]:
    """Pipeline (Keras 3): the list property `layers` -> container groups."""
    layers = [_unwrap(item) for item in cfg.get("layers") or ()]
    attrs = _unique_names(to_snake_case(_short_class(c)) for c, _ in layers)
    return tuple(ChildSpec("layers/" + a, c, c_cfg, False) for a, (c, c_cfg) in zip(attrs, layers, strict=True))


def _text_vectorization_children(cfg: dict) -> tuple[ChildSpec, ...]:
    """TextVectorization (Keras 3) delegates save_own_variables to its
    `_lookup_layer` (a StringLookup), whose group is written as well.  Its
    auto-generated name is not in the config."""
    if cfg.get("output_mode") != "tf_idf":
        return ()
    return (ChildSpec("_lookup_layer", "StringLookup", {"output_mode": "tf_idf"}, False),)


# Layers that SpectralNormalization can wrap, and the variable it aliases.
_SPECTRAL_ALIAS = {
    **dict.fromkeys(
        (
            "Dense",
            "EinsumDense",
            "Conv1D",
            "Conv2D",
            "Conv3D",
            "Conv1DTranspose",
            "Conv2DTranspose",
            "Conv3DTranspose",
            "DepthwiseConv1D",
            "DepthwiseConv2D",
            "LocallyConnected1D",
            "LocallyConnected2D",
        ),
        "kernel",
    ),
    "Embedding": "embeddings",
    "ReversibleEmbedding": "embeddings",
}


def _spectral_inner(cfg: dict) -> tuple[str, dict, str]:
    class_name, inner_cfg = _unwrap(cfg.get("layer"))
    alias = _SPECTRAL_ALIAS.get(_canonical_class(class_name) or "")
    if alias is None or inner_cfg.get("lora_rank"):
        raise _Unnamed  # LoRA: `layer.kernel` is a tensor, nothing tracked
    if _policy_mode(inner_cfg.get("dtype")) is not None:
        raise _Unnamed
    return class_name, inner_cfg, alias


def _spectral_own(cfg: dict) -> tuple[VarSpec, ...]:
    """SpectralNormalization does `self.kernel = self.layer.kernel`, which
    tracks the wrapped layer's kernel (or embeddings) as the wrapper's own
    trainable variable.  Keras 3 therefore stores a duplicate of it at index
    0 of the wrapper's group, then vector_u; tf_keras lists it once in
    `layer.weights` (flat_variables de-duplicates it)."""
    _, _, alias = _spectral_inner(cfg)
    return (VarSpec(alias, True), VarSpec("vector_u", False))


def _spectral_children(keras_major: int):
    def children(cfg: dict) -> tuple[ChildSpec, ...]:
        class_name, inner_cfg, _ = _spectral_inner(cfg)
        attr = "layer" if keras_major == 3 else ""
        return (ChildSpec(attr, class_name, inner_cfg, False),)

    return children


def _refuse(cfg: dict):
    raise _Unnamed


# --------------------------------------------------------------------------
# The tables
# --------------------------------------------------------------------------

_CELL = _own(_V("kernel"), _V("recurrent_kernel"), _V("bias", _USE_BIAS))
_BATCH_NORM = _own(
    _V("gamma", _flag("scale")),
    _V("beta", _flag("center")),
    _V("moving_mean", trainable=False),
    _V("moving_variance", trainable=False),
    _V("moving_stddev", _flag("renorm", False), trainable=False),
    _V("renorm_mean", _flag("renorm", False), trainable=False),
    _V("renorm_stddev", _flag("renorm", False), trainable=False),
)
_SCALE_CENTER = _own(_V("gamma", _flag("scale")), _V("beta", _flag("center")))
_BIASED = _own(_V("kernel"), _V("bias", _USE_BIAS))
_SEPARABLE = _own(_V("depthwise_kernel"), _V("pointwise_kernel"), _V("bias", _USE_BIAS))
_ATTENTION = _own(
    _V("scale", _flag("use_scale", False)), _V("concat_score_weight", _equals("score_mode", "concat", "dot"))
)
_ADDITIVE_ATTENTION = _own(_V("scale", _flag("use_scale", True)))
_NORMALIZATION = _own(*(_V(n, _unset("mean"), trainable=False) for n in ("mean", "variance", "count")))

# Classes (both versions) that never own variables.
_WEIGHTLESS_COMMON = [
    "Activation",
    "ActivityRegularization",
    "Add",
    "AlphaDropout",
    "Average",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "CategoryEncoding",
    "CenterCrop",
    "Concatenate",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "Dot",
    "Dropout",
    "ELU",
    "Flatten",
    "GaussianDropout",
    "GaussianNoise",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "HashedCrossing",
    "Hashing",
    "Identity",
    "InputLayer",
    "Lambda",
    "Layer",
    "LeakyReLU",
    "Masking",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "Maximum",
    "Minimum",
    "Multiply",
    "Permute",
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
    "ReLU",
    "RepeatVector",
    "Rescaling",
    "Reshape",
    "Resizing",
    "Softmax",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "Subtract",
    "UnitNormalization",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
]

_WEIGHTLESS_K3 = [
    "AdaptiveAveragePooling1D",
    "AdaptiveAveragePooling2D",
    "AdaptiveAveragePooling3D",
    "AdaptiveMaxPooling1D",
    "AdaptiveMaxPooling2D",
    "AdaptiveMaxPooling3D",
    "AugMix",
    "AutoContrast",
    "ContrastLimitedAdaptiveHistogramEqualization",
    "CutMix",
    "Discretization",
    "Equalization",
    "MaxNumBoundingBoxes",
    "MelSpectrogram",
    "MixUp",
    "RandAugment",
    "RandomColorDegeneration",
    "RandomColorJitter",
    "RandomElasticTransform",
    "RandomErasing",
    "RandomGaussianBlur",
    "RandomGrayscale",
    "RandomHue",
    "RandomInvert",
    "RandomPerspective",
    "RandomPosterization",
    "RandomSaturation",
    "RandomSharpness",
    "RandomShear",
    "Solarization",
]

_WEIGHTLESS_K2 = ["AbstractRNNCell", "RandomHeight", "RandomWidth", "ThresholdedReLU", "TFOpLambda", "SlicingOpLambda"]

_K3: dict[str, _Rule] = {
    **dict.fromkeys(_WEIGHTLESS_COMMON + _WEIGHTLESS_K3, _NONE),
    # core
    "Dense": _Rule(own=_serialized_own(_DENSE_SERIALIZATION, "kernel", has={"bias": _USE_BIAS})),
    "EinsumDense": _Rule(own=_serialized_own(_DENSE_SERIALIZATION, "kernel", has={"bias": _flag("bias_axes", None)})),
    "Embedding": _Rule(own=_serialized_own(_EMBEDDING_SERIALIZATION, "embeddings")),
    "ReversibleEmbedding": _Rule(
        own=_serialized_own(
            _EMBEDDING_SERIALIZATION,
            "embeddings",
            extra=(_REVERSE_SERIALIZATION, lambda cfg: not cfg.get("tie_weights", True)),
        )
    ),
    # convolutions (BaseConv overrides save_own_variables for LoRA)
    **{c: _Rule(own=_lora_kernel) for c in ("Conv1D", "Conv2D", "Conv3D")},
    **dict.fromkeys(
        ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D"), _BIASED
    ),
    "SeparableConv1D": _SEPARABLE,
    "SeparableConv2D": _SEPARABLE,
    # normalization
    "BatchNormalization": _BATCH_NORM,
    "LayerNormalization": _own(
        _V("gamma", _any(_flag("scale"), _flag("rms_scaling", False))),
        _V("beta", _all(_flag("center"), lambda cfg: not cfg.get("rms_scaling", False))),
    ),
    "GroupNormalization": _SCALE_CENTER,
    "RMSNormalization": _own(_V("scale")),
    "SpectralNormalization": _Rule(own=_spectral_own, children=_spectral_children(3)),
    "Normalization": _NORMALIZATION,
    # activations
    "PReLU": _own(_V("alpha")),
    # attention
    "Attention": _ATTENTION,
    "AdditiveAttention": _ADDITIVE_ATTENTION,
    "MultiHeadAttention": _Rule(children=_mha_children(3)),
    "GroupedQueryAttention": _Rule(children=_gqa_children),
    # recurrent
    "SimpleRNNCell": _CELL,
    "LSTMCell": _CELL,
    "GRUCell": _CELL,
    "ConvLSTMCell": _CELL,  # internal class, cell of ConvLSTM1D/2D/3D
    "SimpleRNN": _Rule(children=_cell_child("SimpleRNNCell", "simple_rnn_cell", 3)),
    "LSTM": _Rule(children=_cell_child("LSTMCell", "lstm_cell", 3)),
    "GRU": _Rule(children=_cell_child("GRUCell", "gru_cell", 3)),
    **{f"ConvLSTM{n}D": _Rule(children=_cell_child("ConvLSTMCell", "conv_lstm_cell", 3, rank=n)) for n in (1, 2, 3)},
    "RNN": _Rule(children=_rnn_children(3)),
    "StackedRNNCells": _Rule(children=_stacked_children(3)),
    "Bidirectional": _Rule(children=_bidirectional_children(3)),
    # wrappers
    "TimeDistributed": _Rule(children=_wrapped_child(3)),
    "Wrapper": _Rule(children=_wrapped_child(3)),
    "Pipeline": _Rule(children=_pipeline_children),
    # preprocessing: IndexLookup.save_own_variables writes vars/idf_weights
    # (a named key, not "0") in tf_idf mode only.
    "StringLookup": _own(_V("idf_weights", _equals("output_mode", "tf_idf"), trainable=False)),
    "IntegerLookup": _own(_V("idf_weights", _equals("output_mode", "tf_idf"), trainable=False)),
    "TextVectorization": _Rule(
        own=(_V("idf_weights", _equals("output_mode", "tf_idf"), trainable=False),),
        children=_text_vectorization_children,
    ),
    "STFTSpectrogram": _own(
        _V("real_kernel", _not_equals("mode", "imag", "log")), _V("imag_kernel", _not_equals("mode", "real", "log"))
    ),
    # Backend-bridge layers hold foreign state: refuse to name it.
    "JaxLayer": _Rule(own=_refuse),
    "FlaxLayer": _Rule(own=_refuse),
    "TorchModuleWrapper": _Rule(own=_refuse),
    "TFSMLayer": _Rule(own=_refuse),
}

_K2: dict[str, _Rule] = {
    **dict.fromkeys(_WEIGHTLESS_COMMON + _WEIGHTLESS_K2, _NONE),
    "Dense": _BIASED,
    "EinsumDense": _own(_V("kernel"), _V("bias", _flag("bias_axes", None))),
    "Embedding": _own(_V("embeddings")),
    **dict.fromkeys(
        (
            "Conv1D",
            "Conv2D",
            "Conv3D",
            "Conv1DTranspose",
            "Conv2DTranspose",
            "Conv3DTranspose",
            "LocallyConnected1D",
            "LocallyConnected2D",
        ),
        _BIASED,
    ),
    # tf_keras names the depthwise kernel differently from Keras 3
    **{c: _own(_V("depthwise_kernel"), _V("bias", _USE_BIAS)) for c in ("DepthwiseConv1D", "DepthwiseConv2D")},
    "SeparableConv1D": _SEPARABLE,
    "SeparableConv2D": _SEPARABLE,
    "BatchNormalization": _BATCH_NORM,
    "SyncBatchNormalization": _BATCH_NORM,
    "LayerNormalization": _SCALE_CENTER,
    "GroupNormalization": _SCALE_CENTER,
    "SpectralNormalization": _Rule(own=_spectral_own, children=_spectral_children(2)),
    "Normalization": _NORMALIZATION,
    # adapt()-able Discretization keeps its quantile summary as a weight
    "Discretization": _own(_V("summary", _unset("bin_boundaries"), trainable=False)),
    "PReLU": _own(_V("alpha")),
    "Attention": _ATTENTION,
    "AdditiveAttention": _ADDITIVE_ATTENTION,
    "MultiHeadAttention": _Rule(children=_mha_children(2)),
    "SimpleRNNCell": _CELL,
    "LSTMCell": _CELL,
    "GRUCell": _CELL,
    "ConvLSTMCell": _CELL,
    "CuDNNLSTM": _own(_V("kernel"), _V("recurrent_kernel"), _V("bias")),
    "CuDNNGRU": _own(_V("kernel"), _V("recurrent_kernel"), _V("bias")),
    "SimpleRNN": _Rule(children=_cell_child("SimpleRNNCell", "simple_rnn_cell", 2)),
    "LSTM": _Rule(children=_cell_child("LSTMCell", "lstm_cell", 2)),
    "GRU": _Rule(children=_cell_child("GRUCell", "gru_cell", 2)),
    # tf_keras builds the ConvLSTM cell without its name scope
    **{
        f"ConvLSTM{n}D": _Rule(children=_cell_child("ConvLSTMCell", "conv_lstm_cell", 2, segment="", rank=n))
        for n in (1, 2, 3)
    },
    "RNN": _Rule(children=_rnn_children(2)),
    "StackedRNNCells": _Rule(children=_stacked_children(2)),
    "Bidirectional": _Rule(children=_bidirectional_children(2)),
    "TimeDistributed": _Rule(children=_wrapped_child(2)),
    "Wrapper": _Rule(children=_wrapped_child(2)),
    "RandomFourierFeatures": _own(
        _V("unscaled_kernel", trainable=False), _V("bias", trainable=False), _V("kernel_scale")
    ),
    # tf_idf lookups keep an unnamed tf.Variable ("Variable:0") or a
    # VocabWeightHandler: refuse; the other modes have no weights.
    **{
        c: _Rule(own=lambda cfg: _refuse(cfg) if cfg.get("output_mode") == "tf_idf" else ())
        for c in ("StringLookup", "IntegerLookup", "TextVectorization")
    },
    # feature columns / dynamic vocabularies: not nameable from the config
    "DenseFeatures": _Rule(own=_refuse),
    "DynamicEmbedding": _Rule(own=_refuse),
    "DynamicLookup": _Rule(own=_refuse),
}

_TABLES = {2: _K2, 3: _K3}


def _static_non_trainable() -> frozenset[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for table in _TABLES.values():
        for class_name, rule in table.items():
            if not callable(rule.own):
                pairs.update((class_name, v.name) for v in rule.own if not v.trainable)
    pairs.add(("SpectralNormalization", "vector_u"))
    aliases = {(a, n) for a, c in _ALIASES.items() for k, n in pairs if k == c}
    return frozenset(pairs | aliases)


NON_TRAINABLE_BY_DESIGN: frozenset[tuple[str, str]] = _static_non_trainable()
"""(class_name, variable name) pairs that are non-trainable whatever the
config.  Config-dependent cases are not listed (quantized int8/int4 kernels
and scales, LoRA-frozen kernels): use VarSpec.trainable for those."""

NAMED_STORE_KEYS: frozenset[str] = frozenset({"StringLookup", "IntegerLookup", "TextVectorization"})
"""Keras 3 classes whose `vars` group keys are variable names
(`vars/idf_weights`) instead of indices."""


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def layer_spec(class_name: str, config: dict, keras_major: int = 3) -> LayerSpec | None:
    """Variables and nested saveables of a built-in Keras layer.

    None when the class is unknown (custom layer) or the config uses a
    feature we cannot name (gptq/awq quantization, per-path dtype maps with
    quantized entries, tf_idf lookups in tf_keras, ...) -- never a wrong name.

    Children are only the nested saveables that can hold variables (Keras 3
    also writes empty groups for e.g. MultiHeadAttention's `_softmax`).
    Children synthesized from the parent config (RNN cells, attention
    projections) inherit the parent's dtype: a quantized MultiHeadAttention
    whose own config says float32 cannot be detected, so callers should still
    compare the number of stored variables with the spec.
    """
    if keras_major not in _TABLES:
        raise ValueError(f"keras_major must be 2 or 3, got {keras_major!r}")
    name = _canonical_class(class_name)
    if name is None:
        return None
    rule = _TABLES[keras_major].get(name)
    if rule is None:
        return None
    try:
        return rule(config if isinstance(config, dict) else {})
    except (_Unnamed, TypeError, ValueError, KeyError, AttributeError):
        return None


def numbered_in_order(groups: list[str]) -> bool:
    """True when Keras's numbering of same-named groups (``dense``, ``dense_1``, ``dense_2``:
    saving_lib._get_unique_name, in the order the layers are saved) increases along ``groups``."""
    last: dict[str, int] = {}
    for g in groups:
        m = re.fullmatch(r"(.*?)(?:_(\d+))?", g)
        assert m is not None  # the pattern matches every string
        base, n = m.group(1), int(m.group(2) or 0)
        if n <= last.get(base, -1):
            return False
        last[base] = n
    return True


def known_classes(keras_major: int = 3) -> frozenset[str]:
    """Class names (as written in configs, aliases excluded) that
    layer_spec() knows for this Keras major version, weightless ones
    included.  Some of them may still give None for particular configs."""
    if keras_major not in _TABLES:
        raise ValueError(f"keras_major must be 2 or 3, got {keras_major!r}")
    return frozenset(_TABLES[keras_major])


def flat_variables(
    class_name: str, config: dict, keras_major: int = 3
) -> tuple[tuple[tuple[str, ...], VarSpec], ...] | None:
    """All variables of a layer and its children as (path, VarSpec).

    `path` is the tuple of ChildSpec.attr leading to the owner.

    Keras 3: the group path below the layer group, in storage order (own
    `vars`, then each child in turn) -- every stored entry, so
    SpectralNormalization's aliased kernel appears twice, as in the file.

    Keras 2: the name-scope segments (empty ones dropped), in tf_keras
    `layer.weights` order, which is also the legacy HDF5 `weight_names`
    order: trainable variables of the whole tree first, then non-trainable
    ones -- except below a layer whose config has `trainable: false`, where
    tf_keras lists each layer's own variables then its children's.
    Duplicates (SpectralNormalization's alias) are listed once.

    None if any part of the tree is unknown.
    """
    if keras_major not in _TABLES:
        raise ValueError(f"keras_major must be 2 or 3, got {keras_major!r}")
    Entry = tuple[tuple[str, ...], VarSpec]

    class _Node:
        def __init__(self, cls: str, cfg: dict, path: tuple[str, ...]):
            spec = layer_spec(cls, cfg, keras_major)
            if spec is None:
                raise _Unnamed
            self.trainable = bool(cfg.get("trainable", True))
            self.own = [(path, v) for v in spec.variables]
            self.children = []
            for child in spec.children:
                if keras_major == 3 or child.attr:
                    sub = path + (child.attr,)
                else:
                    sub = path
                self.children.append(_Node(child.class_name, child.config, sub))

        # tf_keras Layer.trainable_weights / non_trainable_weights / weights
        def trainable_weights(self) -> list[Entry]:
            if not self.trainable:
                return []
            out = [e for e in self.own if e[1].trainable]
            for c in self.children:
                out += c.trainable_weights()
            return out

        def non_trainable_weights(self) -> list[Entry]:
            if self.trainable:
                out = [e for e in self.own if not e[1].trainable]
                for c in self.children:
                    out += c.non_trainable_weights()
                return out
            out = [e for e in self.own if e[1].trainable] + [e for e in self.own if not e[1].trainable]
            for c in self.children:
                out += c.weights()
            return out

        def weights(self) -> list[Entry]:
            return self.trainable_weights() + self.non_trainable_weights()

        def stored(self) -> list[Entry]:
            out = list(self.own)
            for c in self.children:
                out += c.stored()
            return out

    try:
        root = _Node(class_name, config if isinstance(config, dict) else {}, ())
    except _Unnamed:
        return None
    if keras_major == 3:
        return tuple(root.stored())
    seen: set[tuple[tuple[str, ...], str]] = set()
    out: list[Entry] = []
    for path, var in root.weights():
        if (path, var.name) not in seen:
            seen.add((path, var.name))
            out.append((path, var))
    return tuple(out)
