"""Legacy Keras HDF5: full models (``model_weights`` + ``model_config``) and weights-only files
(``layer_names`` at the root), as written by Keras 1, Keras 2 / tf_keras and Keras 3.

File layout (docs/formats.md): ``<weights group>/<layer name>`` has attr ``weight_names``, each a
dataset path relative to the layer group (``L3_dense/kernel:0``, Keras 3:
``sequential/L3_dense/kernel``). Nested models keep one group holding all their weights,
trainable ones first; the config tells which inner layer each belongs to, and the canonical
order is Keras's ``model.weights`` order.
"""

from __future__ import annotations

import re

from .. import paths
from ..checkpoint import Variable
from ..errors import CorruptFileError, UnsupportedFormatError
from ..keras.config import LayerNode, ModelInfo, loads, shared
from ..keras.naming import Named, name_legacy_layer, spec_flat, strip_uniquifier
from ..storage import hdf5 as H


def looks_like(f: H.Group) -> bool:
    try:
        return "layer_names" in f.attrs or ("model_weights" in f and "layer_names" in f["model_weights"].attrs)
    except Exception:
        return False


def keras_major(version: str | None) -> int:
    """2 for '2.21.0', 3 for '3.15.1'; 2 when the text does not start with a number ('3rc1' is 3).
    Keras 1 files count as 2 (named like Keras 2 ones where they can be named at all)."""
    m = re.match(r"[0-9]+", version or "")
    return min(3, max(2, int(m.group()))) if m and len(m.group()) < 6 else 2


class _Builder:
    def __init__(self, f: H.Group, store: H.H5Store, display: str):
        self.f = f
        self.store = store
        self.display = display
        self.out: list[Variable] = []
        self.notes: list[str] = []

    def add(
        self,
        path: str,
        layer: str,
        node: LayerNode | None,
        name: str,
        ds: H.Dataset,
        trainable: bool | None,
        kind: str = "model",
        named: bool = True,
    ) -> None:
        shape, dt = H.check_dataset(ds, self.display)
        dtype = H.logical_dtype(ds, node.var_dtype if node is not None else None, self.display, dt)
        location = ds.name.lstrip("/")
        self.store.register(location, 0, location, dtype, ds=ds, shape=shape, raw_dtype=dt)
        self.out.append(
            Variable.from_fields(
                (
                    path,
                    layer,
                    node.class_name if node is not None else None,
                    name,
                    tuple(map(int, shape)),
                    dtype,
                    trainable,
                    kind,
                    location,
                    named,
                )
            )
        )


def read(f: H.Group, store: H.H5Store, display: str) -> tuple[list[Variable], list[str], str | None, bool]:
    """Variables (model, then optimizer), notes, keras_version, has_config."""
    with H.steady_metadata_cache([f]):
        return _read(f, store, display)


def _read(f: H.Group, store: H.H5Store, display: str) -> tuple[list[Variable], list[str], str | None, bool]:
    b = _Builder(f, store, display)
    mw = H.child(f, "model_weights", display)
    if isinstance(mw, H.GROUPS):
        wgroup = mw
        config = H.json_attr(f, "model_config", display, loads=loads)
    else:
        wgroup = f
        config = None
    version = _text(H.attr(wgroup, "keras_version", display)) or _text(H.attr(f, "keras_version", display))
    major = keras_major(version)
    layer_names = H.attr(wgroup, "layer_names", display)
    if layer_names is None:
        raise UnsupportedFormatError("is HDF5 but not a Keras weights file (no 'layer_names')", path=display)
    if not isinstance(layer_names, list):
        layer_names = [str(layer_names)]
    info = shared(ModelInfo.from_config, config)
    if config is not None and info.root is None:
        b.notes.append("model_config could not be understood; trainable flags are unknown")
    root = info.root
    # the model's own flag, as Keras reloads it (Keras 3's Functional keeps it: then no weight is trainable)
    top_eff = root.loaded_trainable(major, top=True) if root is not None else True

    names = [str(n) for n in layer_names]
    weighted: list[str] = []  # the layers that list weights, in file order: Keras loads them by position
    repeated: set[int] = set()  # positions of a name listed before
    first: dict[str, int] = {}
    for i, lname in enumerate(names):
        if first.setdefault(lname, i) != i:
            repeated.add(i)

    def layer(i: int) -> None:
        lname = names[i]
        if i in repeated:
            raise CorruptFileError(
                f"'layer_names' lists {lname!r} twice",
                path=display,
                hint="Keras layer names are unique; the file was edited",
            )
        g = H.child(wgroup, lname, display)
        if not isinstance(g, H.GROUPS):
            raise CorruptFileError(
                f"'layer_names' lists {lname!r} but the file has no such group",
                path=display,
                hint="the file is truncated or was edited",
            )
        wnames = _names(H.attr(g, "weight_names", display))
        if not wnames:
            return
        weighted.append(lname)
        datasets = []
        groups: dict = {}  # the layer's sub-groups, resolved once for all its weights
        for w in wnames:
            ds = H.walk(g, w, display, groups)
            if not isinstance(ds, H.DATASETS):
                raise CorruptFileError(
                    f"layer {lname!r} lists weight {w!r} but the file has no such dataset", path=display
                )
            datasets.append(ds)
        node = root.find(lname) if root is not None else None
        if node is not None and node.is_model:
            _nested(b, node, lname, wnames, datasets, major, top_eff)
        else:
            eff = top_eff and node.loaded_trainable(major) if node is not None else None
            named, known = _name_layer(node, lname, wnames, major, display)
            if node is not None and not known and node.class_name:
                b.notes.append(
                    f"{lname}: layer class {node.class_name} is not a Keras built-in; names taken from the file"
                )
            for n, ds in zip(named, datasets, strict=True):
                b.add(
                    paths.join(lname, n.rel),
                    paths.join(lname, n.subpath),
                    node,
                    n.name,
                    ds,
                    _trainable(eff, n, root is not None),
                )

    for i in range(len(names)):
        layer(i)
    note = _check_layer_order(root, weighted, major, display) if root is not None else None
    if note:
        b.notes.append(note)

    top = H.child(wgroup, "top_level_model_weights", display)
    if isinstance(top, H.GROUPS):
        for w in _names(H.attr(top, "weight_names", display)):
            ds = H.walk(top, w, display)
            if isinstance(ds, H.DATASETS):
                short = paths.strip_device_suffix(w)
                b.add(
                    short,
                    paths.layer_of(short),
                    None,
                    paths.short_name(short),
                    ds,
                    top_eff if root is not None else None,
                )

    _optimizer(b, f)
    return b.out, b.notes, version, config is not None and root is not None


def _name_layer(node: LayerNode | None, lname: str, wnames: list[str], major: int, display: str):
    """:func:`name_legacy_layer`, its refusals (weights listed in another order than Keras loads
    them) naming the file."""
    try:
        return name_legacy_layer(node, lname, wnames, major)
    except CorruptFileError as exc:
        raise CorruptFileError(exc.message, path=display, hint=exc.hint) from None


def _has_weights(node: LayerNode, major: int) -> bool | None:
    """Whether Keras's rebuilt layer has weights (``_legacy_weights`` not empty); None when the
    class is unknown."""
    if node.is_model:
        found = [_has_weights(leaf, major) for _p, leaf, _e in node.leaves()]
        return True if any(found) else (None if None in found else False)
    flat = spec_flat(node, major)
    return None if flat is None else bool(flat)


def _check_layer_order(root: LayerNode, weighted: list[str], major: int, display: str) -> str | None:
    """Keras loads the i-th group that lists weights into the i-th layer of ``model.layers`` that
    has weights, whatever the group's name (``load_weights_from_hdf5_group``), and kaudit names
    values by the group's name: the two must pick the same layer for every group, or the file is
    refused. Layers whose class kaudit does not know count as having weights when the file lists
    some under their name. When the counts differ Keras refuses the file without loading anything:
    the values keep the file's names, and the returned note says so."""
    listed = set(weighted)
    expected = []
    for c in root.children or []:
        has = _has_weights(c, major)
        if has or (has is None and c.name in listed):
            expected.append(c.name)
    if expected == weighted:
        return None
    if len(expected) != len(weighted):
        return (
            f"Keras would refuse this file: its config has {len(expected)} layers with weights, 'layer_names' "
            f"lists {len(weighted)}; values are named by the file's layer names"
        )
    k, got, want = next((k, g, w) for k, (g, w) in enumerate(zip(weighted, expected, strict=False)) if g != w)
    raise CorruptFileError(
        f"the file's layer order disagrees with its config: Keras would load group {got!r} (the layer #{k} "
        f"with weights in 'layer_names') into layer {want!r}",
        path=display,
        hint="the file was edited; kaudit does not pick one of the two",
    )


def _names(value) -> list[str]:
    """A ``weight_names`` attribute as a list of str, whatever shape a file gives it."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if hasattr(value, "tolist"):
        v = value.tolist()
        return [str(x) for x in v] if isinstance(v, list) else [str(v)]
    return [str(value)]


def _text(value) -> str | None:
    """A text attribute (``keras_version``) as str, or None when absent or empty."""
    if value is None:
        return None
    if isinstance(value, list):
        value = "".join(str(v) for v in value)
    elif hasattr(value, "tolist"):
        value = str(value.tolist())
    return str(value) or None


def _trainable(enclosing: bool | None, n: Named, has_config: bool) -> bool | None:
    """Keras's rule: trainable iff every enclosing layer/model is trainable and the variable is
    trainable by design. A frozen layer makes it False even when the class is unknown."""
    if not has_config:
        return None
    if enclosing is False:
        return False
    return None if n.trainable is None else bool(enclosing) and n.trainable


def _nested(
    b: _Builder, node: LayerNode, lname: str, wnames: list[str], datasets: list, major: int, top_eff: bool
) -> None:
    """Weights of a nested model saved in one group: assign each to its inner layer, then emit
    them in Keras's walk order (the file lists trainable weights first)."""
    leaves = list(node.leaves(prefix=lname + "/", enclosing_trainable=top_eff and node.loaded_trainable(major)))
    by_name: dict[str, list[int]] = {}
    for i, (_path, leaf, _eff) in enumerate(leaves):
        by_name.setdefault(leaf.name, []).append(i)
        by_name.setdefault(strip_uniquifier(leaf.name), []).append(i)
    assigned: dict[int, list[tuple[str, H.Dataset]]] = {}
    unassigned = []
    got: dict[str, tuple[int, str]] = {}  # weight name -> (leaf, variable name) as kaudit names it
    for w, ds in zip(wnames, datasets, strict=True):
        parts = paths.split(paths.strip_device_suffix(w))
        idx = None
        for j in range(len(parts) - 2, -1, -1):  # the innermost component naming a leaf layer
            cands = by_name.get(parts[j]) or []
            if cands:
                idx = _pick(cands, leaves, parts[:j])
                break
        if idx is None:
            unassigned.append((w, ds))
        else:
            assigned.setdefault(idx, []).append((w, ds))
    for i, (path, leaf, eff) in enumerate(leaves):
        items = assigned.get(i)
        if not items:
            continue
        names, known = _name_layer(leaf, leaf.name, [w for w, _ in items], major, b.display)
        if not known:
            b.notes.append(f"{path}: layer class {leaf.class_name} is not a Keras built-in; names taken from the file")
        for n, (w, ds) in zip(names, items, strict=True):
            got[w] = (i, n.name)
            b.add(paths.join(path, n.rel), paths.join(path, n.subpath), leaf, n.name, ds, _trainable(eff, n, True))
    expected = _nested_order(node, major)
    if expected is not None and not unassigned:
        if len(expected) != len(wnames):
            b.notes.append(
                f"{lname}: Keras would refuse this file: the nested model has {len(expected)} weights, "
                f"the file lists {len(wnames)}"
            )
        else:
            for k, (w, want) in enumerate(zip(wnames, expected, strict=False)):
                if got.get(w) != want:
                    raise CorruptFileError(
                        f"the file's weight names disagree with their order: 'weight_names' of nested model {lname!r} "
                        f"lists {w!r} at position {k}, where Keras loads the value into "
                        f"{leaves[want[0]][0] + '/' + want[1]!r}",
                        path=b.display,
                        hint="the file was edited; kaudit does not pick one of the two",
                    )
    for w, ds in unassigned:
        short = paths.strip_device_suffix(w)
        b.notes.append(f"{lname}: weight {w!r} matches no layer of the nested model's config; kept under its file name")
        b.add(
            paths.join(lname, short), paths.join(lname, paths.layer_of(short)), None, paths.short_name(short), ds, None
        )


def _nested_order(node: LayerNode, major: int) -> list[tuple[int, str]] | None:
    """(leaf index, variable name) in the order Keras loads a nested model's group: its
    ``trainable_weights + non_trainable_weights`` (``_legacy_weights``), leaves in
    ``model.layers`` order; None when a leaf's class is unknown. The nested model's own flag
    counts here where Keras keeps it on the object (Keras 3 Functional: then every weight comes
    in walk order)."""
    own = node.loaded_trainable(major, top=True)
    first: list[tuple[int, str]] = []
    rest: list[tuple[int, str]] = []
    for i, (_path, leaf, eff) in enumerate(node.leaves()):
        flat = spec_flat(leaf, major)
        if flat is None:
            return None
        for n in flat:
            (first if own and eff and n.trainable else rest).append((i, n.name))
    return first + rest


def _pick(cands: list[int], leaves: list, before: list[str]) -> int:
    if len(cands) == 1:
        return cands[0]
    for c in cands:  # prefer the leaf whose path contains the enclosing names of the weight name
        if all(p in paths.split(leaves[c][0]) for p in before[-1:]):
            return c
    return cands[0]


def _optimizer(b: _Builder, f: H.Group) -> None:
    og = H.child(f, "optimizer_weights", b.display)
    if not isinstance(og, H.GROUPS):
        return
    names = H.attr(og, "weight_names", b.display)
    if names is None:
        names = []
        _collect(og, "", names, b.display, depth=0)
    for w in _names(names):
        ds = H.walk(og, w, b.display)
        if not isinstance(ds, H.DATASETS):
            b.notes.append(f"optimizer weight {w!r} is listed but missing; skipped")
            continue
        short = paths.strip_device_suffix(w)
        try:
            b.add(
                paths.join("optimizer", short), "optimizer", None, paths.short_name(short), ds, None, kind="optimizer"
            )
        except CorruptFileError as exc:
            b.notes.append(f"optimizer weight {w!r} skipped: {exc.message}")


def _collect(group: H.Group, prefix: str, out: list[str], display: str, depth: int) -> None:
    if depth > 32:
        return
    for k in H.keys(group, display):
        obj = H.child(group, k, display)
        if isinstance(obj, H.DATASETS):
            out.append(prefix + k)
        elif isinstance(obj, H.GROUPS):
            _collect(obj, prefix + k + "/", out, display, depth + 1)
