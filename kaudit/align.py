"""Pair the variables of two checkpoints.

Order of evidence, each step only among what the previous steps left unpaired:

1. ``rule``: a user ``--rename OLD=NEW`` rule maps a's path onto a path of b;
2. ``path``: the same canonical path (Keras 2 and Keras 3 spellings of the same variable, such
   as DepthwiseConv2D's ``depthwise_kernel``/``kernel``, count as the same);
3. ``structure`` (unless ``structural=False``): a sequence alignment of the remaining variables
   in Keras order on (variable name, shape, layer class), so an inserted or removed layer does
   not shift everything after it; then unique (name, shape) pairs regardless of order;
4. ``values`` (with ``structural``): variables whose values are bit-identical and unique on both
   sides (a TF checkpoint of the same weights under other layer names).

What is left is ``only_in_a`` / ``only_in_b``.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from . import paths
from .checkpoint import Checkpoint, Variable
from .stats import digest

MATCHED_BY = ("path", "rule", "structure", "values")


@dataclass(frozen=True)
class Pair:
    a: Variable | None
    b: Variable | None
    matched_by: str | None  # None for only_in_a / only_in_b
    via_content: bool = False

    @property
    def path(self) -> str:
        return self.a.path if self.a is not None else self.b.path  # type: ignore[union-attr]


def _alias_path(path: str) -> str:
    head, _, last = path.rpartition("/")
    return paths.join(head, paths.alias_name(last))


def _token(v: Variable) -> tuple:
    return (paths.alias_name(v.name), v.shape, v.layer_class or "?")


def _token_loose(v: Variable) -> tuple:
    return (paths.alias_name(v.name), v.shape)


def align(
    a: list[Variable],
    b: list[Variable],
    *,
    rename: tuple[tuple[str, str], ...] = (),
    structural: bool = True,
    ckpt_a: Checkpoint | None = None,
    ckpt_b: Checkpoint | None = None,
    content: bool = True,
) -> tuple[list[Pair], list[str]]:
    """Pairs in a's order (b-only variables placed after their predecessor in b), and notes."""
    notes: list[str] = []
    pair_of_a: dict[int, tuple[int, str, bool]] = {}  # index in a -> (index in b, matched_by, via_content)
    used_b: set[int] = set()
    b_by_path = {v.path: j for j, v in enumerate(b)}
    alias_map: list[dict[str, int]] = []  # built on first use: most pairs match by path

    def b_by_alias(path: str) -> int | None:
        if not alias_map:
            m: dict[str, int] = {}
            for j, v in enumerate(b):
                m.setdefault(_alias_path(v.path), j)
            alias_map.append(m)
        return alias_map[0].get(_alias_path(path))

    if rename:
        for i, v in enumerate(a):
            target = paths.apply_rename(rename, v.path)
            if target != v.path:
                j = b_by_path.get(target)
                if j is None:
                    j = b_by_alias(target)
                if j is not None and j not in used_b:
                    pair_of_a[i] = (j, "rule", False)
                    used_b.add(j)
    for i, v in enumerate(a):
        if i in pair_of_a:
            continue
        j = b_by_path.get(v.path)
        if j is None or j in used_b:
            j = b_by_alias(v.path)
        if j is not None and j not in used_b:
            pair_of_a[i] = (j, "path", False)
            used_b.add(j)

    left_a = [i for i in range(len(a)) if i not in pair_of_a]
    left_b = [j for j in range(len(b)) if j not in used_b]
    if structural and left_a and left_b:
        n_before = len(pair_of_a)
        # (1) sequence alignment in Keras order; the layer class must agree, so a side whose
        #     class and order are unknown (TF1 checkpoints list names alphabetically) is not
        #     paired by position but by the steps below
        ta = [_token(a[i]) for i in left_a]
        tb = [_token(b[j]) for j in left_b]
        sm = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
        for blk in sm.get_matching_blocks():
            for k in range(blk.size):
                i, j = left_a[blk.a + k], left_b[blk.b + k]
                pair_of_a[i] = (j, "structure", False)
                used_b.add(j)
        # (2) unique (name, shape) regardless of order
        left_a = [i for i in left_a if i not in pair_of_a]
        left_b = [j for j in left_b if j not in used_b]
        ca = Counter(_token_loose(a[i]) for i in left_a)
        cb = Counter(_token_loose(b[j]) for j in left_b)
        first_b: dict = {}
        for j in left_b:
            first_b.setdefault(_token_loose(b[j]), j)
        for i in left_a:
            t = _token_loose(a[i])
            if ca[t] == 1 and cb.get(t) == 1:
                j = first_b[t]
                pair_of_a[i] = (j, "structure", False)
                used_b.add(j)
        # (3) identical content, unique on both sides: matched_by "values"
        left_a = [i for i in left_a if i not in pair_of_a]
        left_b = [j for j in left_b if j not in used_b]
        n_c = 0
        if content and left_a and left_b and ckpt_a is not None and ckpt_b is not None:
            n_c = _by_content(a, b, left_a, left_b, ckpt_a, ckpt_b, pair_of_a, used_b)
            if n_c:
                notes.append(
                    f"{n_c} variable(s) paired by identical values (same shape, unique on both sides), see matched_by"
                )
        n_struct = len(pair_of_a) - n_before - n_c
        if n_struct:
            notes.append(
                f"names differ: {n_struct} variable(s) were paired by structure (layer order, class, variable "
                "name and shape), see matched_by; use --no-structural to forbid, --rename OLD=NEW to pin"
            )

    # order: a's order, b-only inserted after the pair holding their predecessor in b
    pairs: list[Pair] = []
    slot_of_b: dict[int, int] = {}
    for i, v in enumerate(a):
        if i in pair_of_a:
            j, how, via = pair_of_a[i]
            slot_of_b[j] = len(pairs)
            pairs.append(Pair(v, b[j], how, via))
        else:
            pairs.append(Pair(v, None, None))
    inserts: dict[int, list[Pair]] = {}
    last_slot = -1
    for j, v in enumerate(b):
        if j in slot_of_b:
            last_slot = slot_of_b[j]
        elif j not in used_b:
            inserts.setdefault(last_slot, []).append(Pair(None, v, None))
    ordered: list[Pair] = list(inserts.get(-1, []))
    for k, p in enumerate(pairs):
        ordered.append(p)
        ordered.extend(inserts.get(k, []))
    return ordered, notes


def _by_content(a, b, left_a, left_b, ckpt_a, ckpt_b, pair_of_a, used_b) -> int:
    shapes_b = Counter(b[j].shape for j in left_b)
    cand_a = [i for i in left_a if shapes_b.get(a[i].shape)]
    shapes_a = {a[i].shape for i in cand_a}
    cand_b = [j for j in left_b if b[j].shape in shapes_a]
    key: Callable[[Variable, str], tuple] = lambda v, d: (v.shape, v.dtype, d)  # noqa: E731
    ha = [(i, key(a[i], digest(ckpt_a, a[i]))) for i in cand_a]
    hb = [(j, key(b[j], digest(ckpt_b, b[j]))) for j in cand_b]
    ca = Counter(k for _, k in ha)
    cb = Counter(k for _, k in hb)
    jb = {k: j for j, k in hb}
    n = 0
    for i, k in ha:
        if ca[k] == 1 and cb.get(k) == 1:
            j = jb[k]
            pair_of_a[i] = (j, "values", True)
            used_b.add(j)
            n += 1
    return n
