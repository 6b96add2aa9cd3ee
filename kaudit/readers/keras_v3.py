"""Keras 3 weights: ``.weights.h5``, the ``model.weights.h5`` inside ``.keras`` archives, and
sharded ``.weights.json`` + ``*_NNNNN.weights.h5``.

Layout (keras/src/saving/saving_lib.py): ``layers/<snake class name>[_<n>]/vars/<i>``, the
``vars`` group carrying attr ``name`` (the user's layer name) in recent Keras 3. Variables have
no names: ``vars/<i>`` follows the layer's ``_trainable_variables + _non_trainable_variables``;
the layer class (from the config) tells the names (``keras_layers``). Nested models:
``layers/<model>/layers/...``; sub-layers: ``layers/<layer>/<attribute>/vars``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import replace

from .. import paths
from ..checkpoint import Variable
from ..errors import CorruptFileError
from ..keras import hub_blocks, naming
from ..keras import layers as keras_layers
from ..keras.config import LayerNode, parse_model_config, shared
from ..keras.naming import is_cell
from ..storage import hdf5 as H
from . import _annotate as annotated


@functools.lru_cache(maxsize=4096)
def to_snake_case(name: str) -> str:
    """keras.src.utils.naming.to_snake_case, the name of a layer's group in a weights file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _group_names(children: list[LayerNode]):
    """(layer, its group name) for the layers of a model, in order: Keras loads a layer from the
    group its class and rank give it (``dense``, ``dense_1``: saving_lib ``_load_container_state``
    over ``model.layers``), never from the group whose ``vars`` attribute ``name`` says so."""
    counters: dict[str, int] = {}
    for ch in children:
        snake = to_snake_case(ch.class_name)
        if snake in counters:
            counters[snake] += 1
            yield ch, f"{snake}_{counters[snake]}"
        else:
            counters[snake] = 0
            yield ch, snake


_UNSET = object()


def _layer_spec(node: LayerNode):
    """``keras_layers.layer_spec`` of a Keras 3 layer, kept on its node: a pure function of its
    class and config, and immutable (a frozen LayerSpec). Asked again for b's table when a diff's
    two files share one layer tree (``keras.config.shared``)."""
    found = node.__dict__.get("_layer_spec3", _UNSET)
    if found is _UNSET:
        found = node.__dict__["_layer_spec3"] = keras_layers.layer_spec(node.class_name, node.config, 3)
    return found


def _natural(s: str):
    if s.isdigit() and s.isascii():  # "0", "1", ...: what the split below gives, without it
        return ["", int(s), ""]
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


class Tree:
    """A read-only view of one or more HDF5 files (shards) as a single tree of groups."""

    def __init__(self, files: list[H.Group], displays: list[str], written: list[str] | None = None):
        self.files = files
        self.displays = displays
        # a sharded index's weight_map keys ("/layers/dense/vars"), in the order Keras wrote them
        self.written = _first_seen(written) if written is not None else None
        # the groups used last, per file: the reader asks for a layer's group, its vars, its
        # sub-groups... one after the other (see H.walk)
        self._groups = [H.GroupCache() for _ in files]
        # the layers groups whose order the file does not state (listed by name)
        self.unordered: list[str] = []

    def _objs(self, path: str):
        for i, f in enumerate(self.files):
            obj = H.walk(f, path, self.displays[i], self._groups[i])
            if obj is not None:
                yield i, obj

    def _child(self, i: int, obj: H.Group, path: str, key: str):
        """``H.child(obj, key)`` for ``obj`` at ``path`` in file i, through the same cache as
        :meth:`_objs` (a layer's ``vars`` group is met by both)."""
        if "/" in key or obj.caches_lookups:  # (the parser keeps the objects met lately itself)
            return H.child(obj, key, self.displays[i])
        cache = self._groups[i]
        cache_key = (*(p for p in path.split("/") if p), key)
        found = cache.get(cache_key)
        if found is not None:
            return found
        found = H.child(obj, key, self.displays[i])
        if isinstance(found, H.GROUPS):
            cache[cache_key] = found
        return found

    def groups(self, path: str) -> list[str]:
        names: dict[str, None] = {}  # first seen first (a dict: a layers group has thousands)
        for i, obj in self._objs(path):
            if isinstance(obj, H.GROUPS):
                for k in H.keys(obj, self.displays[i]):
                    if k not in names and isinstance(self._child(i, obj, path, k), H.GROUPS):
                        names[k] = None
        out = sorted(names, key=_natural)
        if len(out) > 1 and path.rpartition("/")[2] == "layers":
            return self._keras_order(path, out)
        return out

    def _keras_order(self, path: str, names: list[str]) -> list[str]:
        """The layers of a model (``.../layers/<group>``) in Keras's order (``model.layers``, the
        order saving walks them): the index's weight_map order for shards, else the order the
        groups were written in (``H.write_order``), accepted only when it agrees with Keras's own
        numbering of same-class groups (``dense`` before ``dense_1``...); else by name."""
        if self.written is not None:
            prefix = path.strip("/") + "/" if path.strip("/") else ""
            written, big = self.written, len(self.written)
            order = sorted(names, key=lambda g: written.get(prefix + g, big))
        else:
            order = None
            for i, obj in self._objs(path):
                if isinstance(obj, H.GROUPS) and set(names) <= set(H.keys(obj, self.displays[i])):
                    order = H.write_order(obj, names)
                    break
        if order is None or not keras_layers.numbered_in_order(order):
            self.unordered.append(path)
            return names
        return order

    def has(self, path: str) -> bool:
        return any(True for _ in self._objs(path))

    def name_attr(self, path: str) -> str | None:
        for i, obj in self._objs(path):
            v = H.attr(obj, "name", self.displays[i])
            if isinstance(v, str):
                return v
        return None

    def datasets(self, path: str) -> list[tuple[str, int, H.Dataset]]:
        """(key, file index, dataset) of the datasets directly in group ``path``, by index."""
        out: dict[str, tuple[int, H.Dataset]] = {}
        for i, obj in self._objs(path):
            if isinstance(obj, H.GROUPS):
                for k in H.keys(obj, self.displays[i]):
                    ds = H.child(obj, k, self.displays[i])
                    if isinstance(ds, H.DATASETS) and k not in out:
                        out[k] = (i, ds)
        return [(k, *out[k]) for k in sorted(out, key=_natural)]


def _first_seen(keys: list[str]) -> dict[str, int]:
    """Every group path in ``keys`` (weight_map keys such as ``/layers/dense/vars``) -> the
    index of the first key at or below it."""
    rank: dict[str, int] = {}
    for i, key in enumerate(keys):
        parts = [p for p in str(key).split("/") if p]
        for n in range(1, len(parts) + 1):
            rank.setdefault("/".join(parts[:n]), i)
    return rank


class _Reader:
    def __init__(self, tree: Tree, store: H.H5Store, display: str, member: str = ""):
        self.tree = tree
        self.store = store
        self.display = display
        self.member = member  # "model.weights.h5" inside a .keras archive, for locations
        self.out: list[Variable] = []
        self.notes: list[str] = []
        self.has_config = False

    # -- emit ------------------------------------------------------------------------------
    def add(
        self,
        path: str,
        layer: str,
        cls: str | None,
        name: str,
        fi: int,
        ds: H.Dataset,
        trainable: bool | None,
        hint: str | None,
        kind: str = "model",
        named: bool = True,
    ) -> None:
        shape, dt = H.check_dataset(ds, self.tree.displays[fi])
        dtype = H.logical_dtype(ds, hint, self.tree.displays[fi], dt)
        ds_path = ds.name.lstrip("/")
        prefix = self.member or (self.tree.displays[fi] if len(self.tree.files) > 1 else "")
        location = f"{prefix}:{ds_path}" if prefix else ds_path
        self.store.register(location, fi, ds_path, dtype, ds=ds, shape=shape, raw_dtype=dt)
        self.out.append(
            Variable.from_fields(
                (path, layer, cls, name, tuple(map(int, shape)), dtype, trainable, kind, location, named)
            )
        )

    # -- models ----------------------------------------------------------------------------
    def model(self, node: LayerNode | None, gpath: str, prefix: str, eff: bool | None) -> None:
        own = self.tree.datasets(paths.join(gpath, "vars"))
        for key, fi, ds in own:  # a model's own variables (rare: subclassed models)
            self.add(
                paths.join(prefix, key),
                prefix.rstrip("/"),
                node.class_name if node else None,
                f"vars/{key}",
                fi,
                ds,
                None if eff is None else eff,
                node.var_dtype if node else None,
                named=False,
            )
        lpath = paths.join(gpath, "layers")
        groups = self.tree.groups(lpath)
        used: set[str] = set()
        if node is not None and node.children is not None:
            present = set(groups)
            plan: list[tuple[LayerNode, str]] = []  # (layer, its group), in the config's order
            for ch, snake in _group_names(node.children):
                gp = paths.join(lpath, snake)
                if snake not in present:
                    self._no_group(ch, gp, prefix + ch.name)
                    continue
                said = self.tree.name_attr(paths.join(gp, "vars"))
                if said is not None and said != ch.name:
                    raise CorruptFileError(
                        f"the file's layer names disagree with its group paths: Keras would load group {gp!r} "
                        f"into layer {prefix + ch.name!r}, the group's 'name' says it holds {said!r}",
                        path=self.display,
                        hint="the file was edited; kaudit does not pick one of the two",
                    )
                used.add(snake)
                plan.append((ch, snake))

            def one(i: int) -> None:
                ch, g = plan[i]
                ceff = None if eff is None else (eff and ch.loaded_trainable(3))
                if ch.is_model:
                    self.model(ch, paths.join(lpath, g), prefix + ch.name + "/", ceff)
                else:
                    self.layer(ch, paths.join(lpath, g), prefix + ch.name, ceff)

            for i in range(len(plan)):
                one(i)
        for g in groups:  # groups the config does not explain (or no config at all)
            if g in used:
                continue
            gp = paths.join(lpath, g)
            name = self.tree.name_attr(paths.join(gp, "vars")) or g
            if node is not None:
                self.notes.append(f"group {gp!r} matches no layer in the config; variables named by position")
            if self.tree.has(paths.join(gp, "layers")):
                self.model(None, gp, prefix + name + "/", None)
            else:
                guess = self._infer(g, gp, name) or self._infer(name, gp, name) if node is None else None
                hub = (hub_blocks.HUB_LEAVES, g) if guess is None else None  # a KerasHub layer (PositionEmbedding...)
                self.layer(guess, gp, prefix + name, None, names_from=hub)

    def _no_group(self, node: LayerNode, gpath: str, layer_path: str) -> None:
        """A layer of the config has no group at ``gpath``: Keras loads nothing into it, and
        fails when the layer has variables (``Layer._check_load_own_variables``)."""
        if node.is_model:  # its layers' groups would be below this one: none is there
            for ch, snake in _group_names(node.children or []):
                self._no_group(ch, paths.join(gpath, "layers", snake), paths.join(layer_path, ch.name))
            return
        flat = naming.spec_flat(node, 3)
        if flat is not None and not flat:
            return  # no variables: nothing to load, Keras does not look
        if node.built and flat:
            raise CorruptFileError(
                f"layer {layer_path!r} ({node.class_name}) has variables but the file has no "
                f"group {gpath!r} for them: Keras refuses to load it",
                path=self.display,
                hint="the file is truncated or was edited",
            )
        self.notes.append(
            f"{layer_path}: no group {gpath!r} in the file; Keras loads no values into this layer "
            "(and fails if it has variables)"
        )

    def layer(
        self,
        node: LayerNode | None,
        gpath: str,
        layer_path: str,
        eff: bool | None,
        hint: str | None = None,
        names_from: tuple[dict, str] | None = None,
    ) -> None:
        """``names_from``: (table, key) of :mod:`kaudit.keras.hub_blocks` naming the variables of a
        KerasHub layer whose class no config states (``hub_blocks.variable_names``)."""
        cls = node.class_name if node is not None else None
        hint = node.var_dtype if node is not None and node.var_dtype else hint
        own = self.tree.datasets(paths.join(gpath, "vars"))
        spec = _layer_spec(node) if node is not None else None
        if spec is not None and len(spec.variables) != len(own):
            self.notes.append(
                f"{layer_path}: {cls} should have {len(spec.variables)} variables, the file has "
                f"{len(own)}; named by position"
            )
            spec = None
        elif spec is None and node is not None and own:
            self.notes.append(
                f"{layer_path}: layer class {cls} is unknown to kaudit (custom layer?); "
                "its variables are named by position (vars/<i>)"
            )
        start = len(self.out)
        for i, (key, fi, ds) in enumerate(own):
            if spec is not None:
                vs = spec.variables[i]
                tr = None if eff is None else (eff and vs.trainable)
                self.add(paths.join(layer_path, vs.name), layer_path, cls, vs.name, fi, ds, tr, hint)
            else:
                tr = None if eff is None or eff else False
                self.add(
                    paths.join(layer_path, "vars", key), layer_path, cls, f"vars/{key}", fi, ds, tr, hint, named=False
                )
        if spec is not None:
            annotated.layer(
                self.out, start, cls, node.config if node is not None else {}, [vs.trainable for vs in spec.variables]
            )
        elif names_from is not None and len(self.out) > start:
            names = hub_blocks.variable_names(*names_from, [v.dtype for v in self.out[start:]])
            for i, name in enumerate(names or ()):
                v = self.out[start + i]
                self.out[start + i] = replace(v, path=paths.join(layer_path, name), name=name, named=True)
        done = {"vars"}
        if spec is not None:
            for ch in spec.children:
                cp = paths.join(gpath, ch.attr)
                done.add(ch.attr)
                if not self.tree.has(cp):
                    continue
                cname = self.tree.name_attr(paths.join(cp, "vars")) or str(ch.config.get("name", ch.attr))
                sub = LayerNode(
                    name=cname,
                    class_name=ch.class_name,
                    config=ch.config,
                    trainable=bool(ch.config.get("trainable", True)),
                )
                ceff = None if eff is None else (eff and sub.trainable)
                self.layer(sub, cp, layer_path if ch.collapse else paths.join(layer_path, cname), ceff, hint)
        subs: list[tuple[str, str, str]] = []  # (group, its path, the layer's name)
        for g in self.tree.groups(gpath):
            if g in done:
                continue
            cp = paths.join(gpath, g)
            if not self._has_datasets(cp):
                continue
            subs.append((g, cp, self.tree.name_attr(paths.join(cp, "vars")) or g))
        # a KerasHub composite layer (TransformerEncoder...): its sublayers in the order it assigned
        # them (Keras's model.weights order; the file lists them by attribute name), their
        # variables named as Keras names them
        block = hub_blocks.known_block([c for _g, _cp, c in subs])
        if block is not None:
            subs.sort(key=lambda sub: block.index(sub[2]))
        for g, cp, cname in subs:
            sub_path = layer_path if is_cell(g) else paths.join(layer_path, cname)
            guess = self._infer(g, cp, cname) or self._infer(cname, cp, cname) if node is None else None
            sub_names = (hub_blocks.SUBLAYER_VARS, cname) if block is not None and guess is None else None
            self.layer(guess, cp, sub_path, None if eff is None else (False if not eff else None), hint, sub_names)

    def _infer(self, group: str, gpath: str, name: str) -> LayerNode | None:
        """Without a config, the group name still tells the class: Keras names it after the
        class in snake case (``batch_normalization_2``). Pick the class and the option set
        (use_bias, center, scale...) whose variable count matches what the file holds; None
        when that is not unique."""
        base = re.sub(r"_\d+$", "", group)
        n_own = len(self.tree.datasets(paths.join(gpath, "vars")))
        found: dict[tuple, LayerNode] = {}
        for cls in keras_layers.known_classes(3):
            if to_snake_case(cls) != base:
                continue
            for cfg in naming.OPTION_SETS:
                spec = keras_layers.layer_spec(cls, dict(cfg, name=name), 3)
                if spec is None or len(spec.variables) != n_own:
                    continue
                if any(not self.tree.has(paths.join(gpath, ch.attr)) for ch in spec.children):
                    continue
                key = (cls, tuple(v.name for v in spec.variables), tuple(ch.attr for ch in spec.children))
                found.setdefault(key, LayerNode(name=name, class_name=cls, config=dict(cfg, name=name)))
        return next(iter(found.values())) if len(found) == 1 else None

    def _has_datasets(self, gpath: str, depth: int = 0) -> bool:
        if depth > 16:
            return False
        if self.tree.datasets(paths.join(gpath, "vars")):
            return True
        return any(self._has_datasets(paths.join(gpath, g), depth + 1) for g in self.tree.groups(gpath))

    # -- optimizer and metrics -------------------------------------------------------------
    def extras(self) -> None:
        for g in self.tree.groups(""):
            if g in ("layers", "vars"):
                continue
            kind = "optimizer" if g == "optimizer" else "metric"
            self._positional(g, g, kind, 0)

    def _positional(self, gpath: str, prefix: str, kind: str, depth: int) -> None:
        if depth > 16:
            return
        for key, fi, ds in self.tree.datasets(paths.join(gpath, "vars")):
            try:
                self.add(paths.join(prefix, key), prefix, None, key, fi, ds, None, None, kind=kind, named=False)
            except CorruptFileError as exc:
                self.notes.append(f"{kind} variable {gpath}/vars/{key} skipped: {exc.message}")
        for g in self.tree.groups(gpath):
            if g != "vars":
                self._positional(paths.join(gpath, g), paths.join(prefix, g), kind, depth + 1)


def looks_like(f: H.Group) -> bool:
    try:
        return "layers" in f or ("vars" in f and "layer_names" not in f.attrs)
    except Exception:
        return False


def read(
    files: list[H.Group],
    displays: list[str],
    store: H.H5Store,
    display: str,
    config,
    member: str = "",
    written: list[str] | None = None,
) -> tuple[list[Variable], list[str], bool]:
    """Variables of a Keras 3 weights file (or its shards), named with the help of ``config``
    (``config.json`` of a .keras archive; None for a bare .weights.h5). ``written``: a sharded
    index's weight_map keys, in its order (Keras's)."""
    tree = Tree(files, displays, written)
    r = _Reader(tree, store, display, member)
    root = shared(parse_model_config, config) if config is not None else None
    if config is not None and root is None:
        r.notes.append("config.json could not be understood; variables named by position")
    eff = root.loaded_trainable(3, top=True) if root is not None else None
    with H.steady_metadata_cache(files):
        r.model(root, "", "", eff)
        r.extras()
    if root is None and tree.unordered:
        where = ", ".join(sorted({p.strip("/") or "layers" for p in tree.unordered}))
        r.notes.append(
            f"{hub_blocks.ORDER_UNKNOWN}: the file does not state the order Keras saved the layers of "
            f"{where} in; they are listed by name"
        )
    return r.out, r.notes, root is not None
