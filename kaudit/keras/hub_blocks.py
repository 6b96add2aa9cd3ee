"""KerasHub's composite layers, without I/O: the order of their sublayers, the names of their
variables, and the layer numbering of KerasHub's LoRA adapter files.

A KerasHub weights file (a preset's ``model.weights.h5``, ``save_weights``) keeps the backbone's
layer order (kaudit reads it as Keras's, ``readers/keras_v3``) but lists a composite layer's
sublayers (``TransformerEncoder``: attention, norms, dense layers) by attribute name and numbers
their variables (``vars/0``). Keras's ``backbone.weights`` takes them in the order the layer
assigned them, with their own names: :data:`BLOCKS` and :data:`SUBLAYER_VARS`, recognised by
the names of the sublayers that hold weights.

``backbone.save_lora_weights("x.lora.h5")`` names each adapter by a number, the layer's index in
``backbone._flatten_layers(include_self=False)`` restricted to the layers that have weights.
``Layer._flatten_layers`` walks a deque: the backbone's own layers in ``model.layers`` order, and
under each of them, depth first, its sublayers *in reverse* of the order they were assigned
(``deque.extendleft(layer._layers)``): :func:`flatten_order`.

The tables are checked against keras-hub itself for every backbone family they cover
(``tests/test_presets.py``, ``tests/test_lora_apply.py`` build each one and compare with
``backbone.weights`` and ``_flatten_layers``). A composite layer they do not know keeps the file's
order and numbered names, and stops the adapter numbering (:class:`UnknownBlock`): kaudit never
guesses which layer an adapter belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

#: How a reader's note begins when a file without a config does not state Keras's order of a
#: model's layers (it lists them by name then): adapters cannot be numbered on such a base.
ORDER_UNKNOWN = "layer order unknown"

_ATTENTION = ("query", "key", "value", "attention_output")

#: Composite layers: their sublayers that hold weights, in the order the layer assigns them
#: (``layer._layers``); keras-hub 0.32 / Keras 3.15.
BLOCKS: dict[str, tuple[str, ...]] = {
    # keras MultiHeadAttention and KerasHub's attention layers (CachedMultiHeadAttention,
    # CachedGemmaAttention, LlamaAttention, CachedMistralAttention, QwenAttention, Phi3Attention)
    "attention": _ATTENTION,
    # Gemma 3 attention (CachedGemma3Attention): query and key normalised
    "attention, query/key norms": ("query", "key", "value", "query_norm", "key_norm", "attention_output"),
    # keras_hub.layers.TransformerEncoder (BERT, DistilBERT, RoBERTa...)
    "TransformerEncoder": (
        "self_attention_layer",
        "self_attention_layer_norm",
        "feedforward_layer_norm",
        "feedforward_intermediate_dense",
        "feedforward_output_dense",
    ),
    # keras_hub.layers.TransformerDecoder without cross-attention (GPT-2)
    "TransformerDecoder": (
        "self_attention",
        "self_attention_layer_norm",
        "feedforward_intermediate_dense",
        "feedforward_output_dense",
        "feedforward_layer_norm",
    ),
    # LlamaTransformerDecoder, MistralTransformerDecoder, QwenTransformerDecoder
    "Llama decoder": (
        "self_attention",
        "self_attention_layernorm",
        "feedforward_intermediate_dense",
        "feedforward_gate_dense",
        "feedforward_output_dense",
        "feedforward_layernorm",
    ),
    "Phi3Decoder": (
        "pre_attention_layernorm",
        "attention",
        "post_attention_layernorm",
        "feedforward_intermediate_dense",
        "feedforward_gate_dense",
        "feedforward_output_dense",
    ),
    # GemmaDecoderBlock, Gemma3DecoderBlock
    "Gemma decoder": ("pre_attention_norm", "attention", "pre_ffw_norm", "ffw_gating", "ffw_gating_2", "ffw_linear"),
    # the same with post-norms (Gemma 2, Gemma 3 presets)
    "Gemma decoder, post-norms": (
        "pre_attention_norm",
        "post_attention_norm",
        "attention",
        "pre_ffw_norm",
        "post_ffw_norm",
        "ffw_gating",
        "ffw_gating_2",
        "ffw_linear",
    ),
    # keras_hub.layers.TokenAndPositionEmbedding (DistilBERT, RoBERTa)
    "TokenAndPositionEmbedding": ("token_embedding", "position_embedding"),
}

_Names = dict[int, tuple[str, ...]]
_KB: _Names = {1: ("kernel",), 2: ("kernel", "bias")}  # Dense, EinsumDense (with or without bias)
_GB: _Names = {2: ("gamma", "beta")}  # LayerNormalization (one variable: gamma or beta, not told)
_S: _Names = {1: ("scale",)}  # KerasHub's RMS norms

#: Inside a composite layer of :data:`BLOCKS`, each sublayer's variables in Keras's order, by how
#: many the file holds (the file numbers them ``vars/0``...; Keras names them).
SUBLAYER_VARS: dict[str, _Names] = {
    **dict.fromkeys(("query", "key", "value", "attention_output"), _KB),
    **dict.fromkeys(("feedforward_intermediate_dense", "feedforward_output_dense", "feedforward_gate_dense"), _KB),
    **dict.fromkeys(("ffw_gating", "ffw_gating_2", "ffw_linear"), _KB),
    **dict.fromkeys(("self_attention_layer_norm", "feedforward_layer_norm"), _GB),
    **dict.fromkeys(
        (
            "self_attention_layernorm",
            "feedforward_layernorm",
            "pre_attention_layernorm",
            "post_attention_layernorm",
            "pre_attention_norm",
            "post_attention_norm",
            "pre_ffw_norm",
            "post_ffw_norm",
            "query_norm",
            "key_norm",
        ),
        _S,
    ),
    "token_embedding": {1: ("embeddings",), 2: ("embeddings", "reverse_embeddings")},
    "position_embedding": {1: ("embeddings",)},
}

#: KerasHub's own leaf layers, by the snake-case class name Keras gives their group
#: (``position_embedding``, ``llama_layer_norm_1``): their variables in Keras's order.
HUB_LEAVES: dict[str, _Names] = {
    "position_embedding": {1: ("embeddings",)},
    # untied (tie_weights=False: Llama, Mistral, Phi-3); the tied one kaudit knows as a Keras layer
    "reversible_embedding": {2: ("embeddings", "reverse_embeddings")},
    **dict.fromkeys(
        ("rms_normalization", "llama_layer_norm", "mistral_layer_normalization", "qwen_layer_norm", "phi3_layer_norm"),
        _S,
    ),
}


def variable_names(table: dict[str, _Names], key: str, dtypes: Sequence[str]) -> tuple[str, ...] | None:
    """Keras's names for a layer's ``len(dtypes)`` variables from ``table`` (:data:`SUBLAYER_VARS`
    by sublayer name, :data:`HUB_LEAVES` by group name without its ``_<n>``); None where the table
    does not tell, or a variable is not a float (a quantized layer holds other variables)."""
    names = table.get(re.sub(r"_\d+$", "", key) if table is HUB_LEAVES else key, {}).get(len(dtypes))
    if names is None or not all(d.startswith(("float", "bfloat")) for d in dtypes):
        return None
    return names


def known_block(children: Sequence[str]) -> tuple[str, ...] | None:
    """The order of a composite layer of :data:`BLOCKS` with these sublayers (names), or None."""
    found = _BY_SET.get(frozenset(children)) if len(children) > 1 else None
    return found[1] if found is not None else None


_BACKBONE = re.compile(r"backbone(?:_\d+)?$")
_BY_SET = {frozenset(order): (kind, order) for kind, order in BLOCKS.items()}
assert len(_BY_SET) == len(BLOCKS), "two composite layers with the same sublayers"


class UnknownBlock(ValueError):
    """A composite layer whose sublayers are not in :data:`BLOCKS`: their order is unknown."""

    def __init__(self, path: str, children: tuple[str, ...]):
        self.path = path
        self.children = sorted(children)
        super().__init__(
            f"layer {path!r} has sublayers {self.children}, a composite layer kaudit does not know "
            "the order of (KerasHub's adapter files number layers in that order)"
        )


def block_order(path: str, children: Iterable[str]) -> tuple[str, ...]:
    """The sublayers of composite layer ``path`` (those holding weights) in the order it assigned
    them (a single one needs no table); :class:`UnknownBlock` when the table has no composite
    layer with exactly these."""
    kids = tuple(children)
    if len(kids) == 1:  # one sublayer with weights: one order
        return kids
    order = known_block(kids)
    if order is None:
        raise UnknownBlock(path, kids)
    return order


def backbone_root(layers: Sequence[str]) -> str:
    """The backbone inside a task model (``GemmaCausalLM``, ``BertTextClassifier``: a nested model
    KerasHub names ``<family>_backbone``, or ``..._backbone_1`` when a session built several), whose
    layers the adapters number; "" when ``layers`` (layer paths) are the backbone's own."""
    tops = list(dict.fromkeys(lp.split("/", 1)[0] for lp in layers))
    nested = [t for t in tops if _BACKBONE.search(t) and any(lp.startswith(t + "/") for lp in layers)]
    return nested[0] if len(nested) == 1 else ""


def flatten_order(layers: Sequence[str], root: str = "") -> list[str]:
    """``backbone._flatten_layers(include_self=False)`` restricted to the layers with weights, as
    layer paths (``transformer_layer_0/self_attention_layer/query``).

    ``layers``: the paths of the layers that own variables, in Keras's ``model.weights`` order
    (its first path component in ``model.layers`` order); every prefix of one is a layer too (a
    composite layer has weights through its sublayers). ``root``: the backbone's path where it
    is nested in a task model (:func:`backbone_root`); its layers are numbered, nothing else."""
    prefix = root + "/" if root else ""
    top: list[str] = []
    children: dict[str, list[str]] = {}
    seen: set[str] = set()
    for lp in layers:
        if not lp.startswith(prefix):
            continue
        parts = lp[len(prefix) :].split("/")
        for d in range(len(parts)):
            node = "/".join(parts[: d + 1])
            if node in seen:
                continue
            seen.add(node)
            if d == 0:
                top.append(node)
            else:
                children.setdefault("/".join(parts[:d]), []).append(parts[d])
    out: list[str] = []
    stack = list(reversed(top))  # the backbone's own layers in order...
    while stack:
        node = stack.pop()
        out.append(node)
        kids = children.get(node)
        if kids:  # ...and under each, its sublayers in reverse of their order (extendleft)
            stack.extend(f"{node}/{k}" for k in block_order(prefix + node, kids))
    return [prefix + p for p in out]
