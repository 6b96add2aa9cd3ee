"""Parse a saved Keras model config (Keras 1, 2 and 3) into a tree of layers, without Keras.

Only JSON is read: nothing is deserialised, imported or executed. Layers of classes kaudit
does not know (custom layers) are kept with their class name; their variables are then named
by position.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

_INPUT_CLASSES = {"InputLayer"}
#: Built-in model classes, whose own ``trainable`` flag Keras mostly drops (LayerNode.loaded_trainable).
_BUILTIN_MODELS = frozenset({"Sequential", "Functional", "Model"})
_MAX_DEPTH = 200


@dataclass
class LayerNode:
    name: str
    class_name: str
    config: dict
    trainable: bool = True
    children: list[LayerNode] | None = None  # None for a leaf layer, a list for a nested model
    var_dtype: str | None = None  # the variable dtype its dtype policy implies, when known
    built: bool = False  # the entry has a ``build_config``: Keras 3 builds it (creates its variables) on load

    @property
    def is_model(self) -> bool:
        return self.children is not None

    def loaded_trainable(self, keras_major: int, top: bool = False) -> bool:
        """Whether Keras ``keras_major``, rebuilding the model from this config, lets this layer's
        weights be trainable as far as this node's own ``trainable`` flag goes (what
        ``model.trainable_weights`` says after loading). A layer's flag counts. A built-in model's
        own flag (as opposed to its layers' flags) is dropped: tf_keras's ``Sequential`` and
        ``Functional`` ignore it, Keras 3's ``Sequential.from_config`` too, and Keras 3's
        ``Functional`` keeps it without passing it on to its layers or their variables, so it
        counts for the top-level model only (``trainable_weights`` is then empty). Checked by
        tests/test_keras_loading.py. A model class kaudit does not know keeps its flag."""
        if self.is_model and self.class_name in _BUILTIN_MODELS:
            return self.trainable if top and keras_major >= 3 and self.class_name != "Sequential" else True
        return self.trainable

    def leaves(self, prefix: str = "", enclosing_trainable: bool = True) -> Iterator[tuple[str, LayerNode, bool]]:
        """(layer path, node, effective trainable) for every leaf below this model, in order; a
        nested model's own flag counts as Keras reloads it (:meth:`loaded_trainable`)."""
        for c in self.children or []:
            path = f"{prefix}{c.name}"
            eff = enclosing_trainable and c.loaded_trainable(3)  # (not top: the same in Keras 2 and 3)
            if c.is_model:
                yield from c.leaves(path + "/", eff)
            else:
                yield path, c, eff

    def find(self, name: str) -> LayerNode | None:
        """The direct child layer called ``name`` (the first, if a config repeats a name)."""
        index = self.__dict__.get("_index")
        if index is None:
            index = {}
            for c in self.children or []:
                index.setdefault(c.name, c)
            self.__dict__["_index"] = index
        return index.get(name)


def plain_class_name(class_name: str) -> str:
    """``Custom>QDense`` -> ``QDense``, ``keras.layers.Dense`` -> ``Dense``."""
    name = class_name.split(">")[-1]
    return name.rsplit(".", 1)[-1]


def policy_var_dtype(dtype) -> str | None:
    """The dtype of the variables a layer's dtype (policy) creates."""
    name = None
    if isinstance(dtype, str):
        name = dtype
    elif isinstance(dtype, dict):
        cfg = dtype.get("config")
        if isinstance(cfg, dict):
            name = cfg.get("name")
        if name is None:
            name = dtype.get("name")
    if not isinstance(name, str):
        return None
    if name.startswith("mixed_"):
        return "float32"
    if re.fullmatch(r"(b?float\d+|u?int\d+|bool)", name):
        return name
    return None


class _Shared(threading.local):
    #: [text, its JSON, {function: its result}] of the model config parsed last in this thread's
    #: block of :func:`shared_configs`; None outside such a block.
    last: list | None = None


_shared = _Shared()


@contextlib.contextmanager
def shared_configs() -> Iterator[None]:
    """For the block (a diff reading its two files, one after the other), a model config whose
    text is the one parsed last is not parsed again: :func:`loads` gives the same JSON value, and
    :func:`shared` the same layer tree, pure functions of the text (readers only read them; a
    node's memos, such as the naming key, are functions of its config). Most pairs carry the same
    config. What was kept is let go when the outermost block ends."""
    outer = _shared.last is None
    if outer:
        _shared.last = [None, None, {}]
    try:
        yield
    finally:
        if outer:
            _shared.last = None


def loads(text: str | bytes):
    """``json.loads(text)``; within :func:`shared_configs`, the value it gave for the same text
    (compared in full) last time."""
    last = _shared.last
    if last is not None and type(last[0]) is type(text) and last[0] == text:
        return last[1]
    value = json.loads(text)
    if last is not None:
        last[:] = [text, value, {}]
    return value


def shared(build, config):
    """``build(config)``; within :func:`shared_configs`, for the JSON value :func:`loads` gave
    last, what ``build`` gave for it the first time."""
    last = _shared.last
    if last is None or last[1] is not config:
        return build(config)
    done = last[2]
    if build not in done:
        done[build] = build(config)
    return done[build]


def parse_model_config(entry, _depth: int = 0) -> LayerNode | None:
    """The layer tree of a serialized model (``model_config`` / ``config.json``), or None when
    the entry is not a model (a bare layer saved alone is returned as a one-leaf model)."""
    node = _parse(entry, _depth)
    if node is None:
        return None
    if not node.is_model:  # a single layer saved as a "model": wrap it
        return LayerNode(name="", class_name="Model", config={}, children=[node])
    return node


def _parse(entry, depth: int) -> LayerNode | None:
    if depth > _MAX_DEPTH or not isinstance(entry, dict):
        return None
    class_name = entry.get("class_name")
    if not isinstance(class_name, str):
        return None
    cfg = entry.get("config")
    layers = None
    if isinstance(cfg, list):  # Keras 1 Sequential: config is the list of layers
        layers, cfg = cfg, {}
    elif isinstance(cfg, dict) and isinstance(cfg.get("layers"), list):
        layers = cfg["layers"]
    if not isinstance(cfg, dict):
        cfg = {}
    name = cfg.get("name", entry.get("name", ""))
    trainable = cfg.get("trainable", True)
    node = LayerNode(
        name=str(name),
        class_name=plain_class_name(class_name),
        config=cfg,
        trainable=bool(trainable) if isinstance(trainable, bool) else True,
        var_dtype=policy_var_dtype(cfg.get("dtype")),
        built=isinstance(entry.get("build_config"), dict),
    )
    if layers is not None:
        node.children = []
        is_sequential = node.class_name == "Sequential"
        for sub in layers:
            child = _parse(sub, depth + 1)
            if child is None:
                continue
            if is_sequential and child.class_name in _INPUT_CLASSES:
                continue  # Sequential.layers omits its InputLayer
            node.children.append(child)
    return node


@dataclass
class ModelInfo:
    """What the config says, flattened for the readers."""

    root: LayerNode | None
    by_path: dict[str, LayerNode] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config) -> ModelInfo:
        root = parse_model_config(config) if config is not None else None
        info = cls(root)
        if root is not None:
            for path, node, _eff in root.leaves():
                info.by_path.setdefault(path, node)
        return info
