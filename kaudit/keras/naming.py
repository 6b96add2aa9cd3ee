"""Turn what a file says about one layer's weights into canonical (sub-path, name) pairs.

Shared by the legacy-HDF5 and Keras 3 readers. The rules (docs/formats.md):

* a variable's canonical path is ``<layer path>/<sub-layer path>/<short name>``;
* RNN cells are an implementation detail: ``lstm/lstm_cell/kernel`` is ``lstm/kernel``;
* other sub-layers keep their own name: ``mha/query/kernel``, ``bi/forward_gru/kernel``;
* the short name is Keras's own name for the variable (``kernel``, ``moving_mean``); uniquifying
  suffixes some writers add (``kernel_1:0``) are dropped when the layer class says which name is
  meant;
* for a layer class kaudit does not know, names come from the file (legacy HDF5) or, where the
  file has none (Keras 3 ``vars/<i>``), are positional ``vars/<i>`` and flagged as such.
"""

from __future__ import annotations

import marshal
import re
from dataclasses import dataclass

from .. import paths
from ..errors import CorruptFileError
from . import layers as keras_layers
from .config import LayerNode

_UNIQ_RE = re.compile(r"^(.*?)(?:_\d+)+$")


@dataclass(frozen=True)
class Named:
    subpath: str  # "" or "query" or "forward_gru"
    name: str
    trainable: bool | None  # trainable by design (False: moving statistics...); None: unknown class

    @property
    def rel(self) -> str:
        return paths.join(self.subpath, self.name)


def is_cell(component: str) -> bool:
    return component == "cell" or component.endswith("_cell")


#: spec_flat results by :func:`_spec_key`, and name_legacy_layer results by (that key, the names
#: read from the file): a model repeats a few layer configs that differ only in their name.
#: Bounded: cleared when full.
_SPEC_MEMO: dict[tuple, tuple[Named, ...] | None] = {}
_NAMES_MEMO: dict[tuple, tuple[tuple[Named, ...], bool]] = {}
_MEMO_MAX = 4096


def _spec_key(node: LayerNode, keras_major: int) -> tuple | None:
    """What :func:`spec_flat` depends on: the Keras major version, the class, ``trainable`` and
    the config without its top-level ``name``. No rule of ``keras_layers`` reads a layer's own
    ``name`` (a sub-layer's config gets its own name, see ``keras_layers._named``), just as
    Keras's variable names do not depend on it. The rest of the config is keyed exactly, by its
    ``marshal`` serialization, format version 2 (configs here come from ``json.loads``: plain
    dicts, lists, str, int, float, bool and None; marshal writes each with its type, so it tells
    ``True`` from ``1`` and ``1`` from ``1.0``, and ``marshal.loads`` gives the value back, so
    two configs that differ never share a key; version 2 writes no back-references, so the bytes
    depend on the value alone, not on which objects are shared; equal configs written in another
    key order merely miss the memo). It costs a third of the ``repr`` it replaces. None (not
    memoised) for a config that cannot be serialized. Kept on the node: a read asks twice per
    layer (naming, layer order)."""
    keys = node.__dict__.setdefault("_spec_keys", {})
    try:
        return keys[keras_major]
    except KeyError:
        key = keys[keras_major] = _spec_key_of(node, keras_major)
        return key


def _spec_key_of(node: LayerNode, keras_major: int) -> tuple | None:
    cfg = node.config
    try:
        text = marshal.dumps(cfg, 2)
        if isinstance(cfg, dict):
            # Keras writes ``name`` first: a dict is marshalled as b"{", its (key, value) pairs, b"0",
            # so the bytes without that first pair are those of a copy without ``name``
            name = cfg.get("name")
            head = b"{" + marshal.dumps("name", 2) + marshal.dumps(name, 2) if isinstance(name, str) else None
            if head is not None and text.startswith(head) and next(iter(cfg)) == "name":
                text = b"{" + text[len(head) :]
            else:
                text = marshal.dumps({k: v for k, v in cfg.items() if k != "name"}, 2)
        return keras_major, node.class_name, bool(node.trainable), text
    except (TypeError, ValueError, RecursionError):
        return None


def _remember(memo: dict, key, value) -> None:
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo[key] = value


def spec_flat(node: LayerNode, keras_major: int, key: tuple | None = None) -> list[Named] | None:
    """The layer's variables in the order its legacy HDF5 ``weight_names`` list them, with
    sub-layer paths (RNN cells and wrapped layers collapsed), or None if the class is unknown.

    tf_keras lists ``layer.weights`` (trainable variables of the whole tree first); Keras 3
    lists ``trainable_weights + non_trainable_weights`` (all of them, in order, when frozen).
    Memoised on :func:`_spec_key` (``key``, when the caller has it)."""
    if key is None:
        key = _spec_key(node, keras_major)
        if key is None:
            return _spec_flat(node, keras_major)
    try:
        found = _SPEC_MEMO[key]
    except KeyError:
        out = _spec_flat(node, keras_major)
        _remember(_SPEC_MEMO, key, None if out is None else tuple(out))
        return out
    return None if found is None else list(found)


def _spec_flat(node: LayerNode, keras_major: int) -> list[Named] | None:
    if keras_major >= 3:
        tree = _k3_tree(node.class_name, node.config, 0)
        if tree is None:
            return None
        if not node.trainable:
            return tree
        return [n for n in tree if n.trainable] + [n for n in tree if not n.trainable]
    flat = keras_layers.flat_variables(node.class_name, node.config, keras_major)
    if flat is None:
        return None
    return [Named("/".join(a for a in attrs if a and not is_cell(a)), v.name, v.trainable) for attrs, v in flat]


def _k3_tree(class_name: str, config: dict, depth: int) -> list[Named] | None:
    """Keras 3 ``layer.weights`` order: own variables, then each sub-layer's."""
    spec = keras_layers.layer_spec(class_name, config, 3)
    if spec is None or depth > 16:
        return None
    out = [Named("", v.name, v.trainable) for v in spec.variables]
    for ch in spec.children:
        sub = _k3_tree(ch.class_name, ch.config, depth + 1)
        if sub is None:
            return None
        prefix = "" if ch.collapse else str(ch.config.get("name", ch.attr))
        out += [Named(paths.join(prefix, n.subpath), n.name, n.trainable) for n in sub]
    return out


def strip_uniquifier(name: str) -> str:
    m = _UNIQ_RE.match(name)
    return m.group(1) if m else name


def from_file_name(weight_name: str, layer_name: str) -> tuple[str, str]:
    """(sub-path, short name) from a legacy weight name such as ``sequential/L0_conv2d/kernel``,
    ``L3_dense/kernel:0``, ``conv2d_1_1/kernel:0`` or ``bi/forward_gru/gru_cell/kernel:0``."""
    parts = paths.split(paths.strip_device_suffix(weight_name))
    if not parts:
        return "", weight_name
    if len(parts) == 2 and parts[0] == layer_name:  # the common ``L3_dense/kernel:0``: what the loop below finds
        return "", parts[1]
    rest = parts  # no layer name in the weight name: every component is below the layer
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == layer_name and i < len(parts) - 1:
            rest = parts[i + 1 :]
            break
    else:
        # the layer name may carry a uniquifying suffix (conv2d_1_1 for conv2d_1)
        for i in range(len(parts) - 2, -1, -1):
            if strip_uniquifier(parts[i]) == strip_uniquifier(layer_name):
                rest = parts[i + 1 :]
                break
        else:
            if len(parts) == 1 and parts[0].startswith(layer_name + "_"):  # Keras 1: dense_1_W
                rest = [parts[0][len(layer_name) + 1 :]]
    rest = [p for p in rest[:-1] if not is_cell(p)] + rest[-1:]
    return "/".join(rest[:-1]), rest[-1]


def name_legacy_layer(
    node: LayerNode | None, layer_name: str, weight_names: list[str], keras_major: int
) -> tuple[list[Named], bool]:
    """Canonical names for the weights of one leaf layer of a legacy HDF5 file, in file order.

    Returns (names, known): known is False when the layer class is unknown and the names are
    the file's own.
    """
    from_file = [from_file_name(w, layer_name) for w in weight_names]
    key = _spec_key(node, keras_major) if node is not None else None
    if key is None:
        if node is None:
            _check_builtin_order(layer_name, [short for _sub, short in from_file], keras_major)
        return _name_legacy_layer(node, from_file, keras_major, None, layer_name)
    # the answer depends on nothing else: on the layer name only through from_file
    memo_key = (key, tuple(from_file))
    found = _NAMES_MEMO.get(memo_key)
    if found is None:
        names, known = _name_legacy_layer(node, from_file, keras_major, key, layer_name)
        _remember(_NAMES_MEMO, memo_key, (tuple(names), known))
        return names, known
    return list(found[0]), found[1]


def _name_legacy_layer(
    node: LayerNode | None, from_file: list[tuple[str, str]], keras_major: int, key: tuple | None, layer_name: str
) -> tuple[list[Named], bool]:
    spec = spec_flat(node, keras_major, key) if node is not None else None
    if spec is not None and len(spec) == len(from_file):
        if all(_compatible(f, s) for f, s in zip(from_file, spec, strict=True)):
            if any(s.subpath for s in spec):  # sub-layers: their names are the file's own
                return [Named(f[0], s.name, s.trainable) for f, s in zip(from_file, spec, strict=True)], True
            return list(spec), True
        # same count, other names: the file's names in another order? Keras loads the values by
        # position (the i-th listed into the layer's i-th weight), whatever their names say
        by_name: dict[str, Named] = {}
        for s in spec:
            by_name.setdefault(s.name, s)
        picked = [by_name.get(short) or by_name.get(strip_uniquifier(short)) for _sub, short in from_file]
        if all(picked) and len({id(p) for p in picked}) == len(picked):
            k = next(i for i, (p, s) in enumerate(zip(picked, spec, strict=True)) if p is not s)
            raise CorruptFileError(
                f"the file's weight names disagree with their order: 'weight_names' of layer {layer_name!r} lists "
                f"{from_file[k][1]!r} at position {k}, where Keras loads the value into {spec[k].rel!r}",
                hint="the file was edited; kaudit does not pick one of the two",
            )
    # a class kaudit does not know: the names are the file's, and whether a variable is
    # trainable by design (a custom layer's moving statistics?) is unknown, not guessed
    return [Named(sub, short, None) for sub, short in from_file], spec is not None


#: Option sets tried for a layer whose config the file does not have (weights-only files).
OPTION_SETS: tuple[dict[str, bool], ...] = (
    {},
    {"use_bias": False},
    {"center": False},
    {"scale": False},
    {"center": False, "scale": False},
    {"use_scale": True},
)

#: Per Keras major version: sorted variable names -> the orders built-in layers list them in.
_BUILTIN_ORDERS: dict[int, dict[tuple[str, ...], frozenset[tuple[str, ...]]]] = {}


def _builtin_orders(keras_major: int) -> dict[tuple[str, ...], frozenset[tuple[str, ...]]]:
    found = _BUILTIN_ORDERS.get(keras_major)
    if found is None:
        orders: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        for cls in sorted(keras_layers.known_classes(keras_major)):
            for cfg in OPTION_SETS:
                for trainable in (True, False):
                    node = LayerNode(
                        name="x", class_name=cls, config=dict(cfg, name="x", trainable=trainable), trainable=trainable
                    )
                    flat = _spec_flat(node, keras_major)
                    if flat:
                        order = tuple(n.name for n in flat)
                        orders.setdefault(tuple(sorted(order)), set()).add(order)
        found = _BUILTIN_ORDERS[keras_major] = {k: frozenset(v) for k, v in orders.items()}
    return found


def _check_builtin_order(layer_name: str, shorts: list[str], keras_major: int) -> None:
    """A weights-only file does not say a layer's class, and Keras loads the values by position
    into whatever model it is given. When the names the file lists are exactly those of a
    built-in layer class, they must stand in that class's order, or the file's names and the
    values Keras loads disagree: refused."""
    names = tuple(strip_uniquifier(s) for s in shorts)
    orders = _builtin_orders(keras_major).get(tuple(sorted(names)))
    if orders and names not in orders:
        want = min(orders)
        k = next(i for i, (a, b) in enumerate(zip(names, want, strict=False)) if a != b)
        raise CorruptFileError(
            f"the file's weight names disagree with their order: 'weight_names' of layer {layer_name!r} lists "
            f"{shorts[k]!r} at position {k}, where every Keras layer with these weights has {want[k]!r} "
            "(Keras loads the values by position)",
            hint="the file was edited; kaudit does not pick one of the two",
        )


def _compatible(from_file: tuple[str, str], spec: Named) -> bool:
    short = from_file[1]
    return short == spec.name or strip_uniquifier(short) == spec.name or _alias(short) == _alias(spec.name)


def _alias(name: str) -> str:
    return paths.alias_name(strip_uniquifier(name))
