"""HDF5 for the readers: one way to walk groups, read attributes, check datasets and store values,
whoever opened the file.

A file is opened by the metadata parser (``hdf5_parse``: ``Group``, ``Dataset``) or, for what it
leaves to the HDF5 library, by h5py behind its guards (``hdf5_guards``: ``GuardedGroup``,
``GuardedDataset``). Both kinds offer the same operations (``keys``, ``child``, ``attr``,
``checked``, ``creation_order``, ``image_offset``...), and the functions here only call them:
what is refused, and why, is decided in those two modules (docs/security.md):

* links are walked one component at a time; external and soft links are refused, never
  followed; a group linked under more than one name and paths nested absurdly deep are refused;
* datasets with external raw storage or virtual layouts are refused; one declaring far more than
  the file stores, or with chunks too big to inflate in memory, is refused before reading;
* values are read in bounded blocks by the store (``hdf5_store``).
"""

from __future__ import annotations

import contextlib
import json

import numpy as np

from ..errors import CorruptFileError, UnsafeInputError
from . import hdf5_guards as G
from . import hdf5_parse as P
from .hdf5_guards import MAX_CHUNK_BYTES, MAX_DECLARED_RATIO, decode, open_file
from .hdf5_store import _HAVE_PREADV, BFLOAT16, DATASETS, GROUPS, H5Store, Located, block_selections, widen

#: What a reader holds: a group or dataset of the parser, or of h5py behind the guards.
Group = P.Group | G.GuardedGroup
Dataset = P.Dataset | G.GuardedDataset

__all__ = [
    "BFLOAT16",
    "DATASETS",
    "GROUPS",
    "MAX_CHUNK_BYTES",
    "MAX_DECLARED_RATIO",
    "MAX_PATH_DEPTH",
    "_HAVE_PREADV",
    "Dataset",
    "Group",
    "GroupCache",
    "H5Store",
    "Located",
    "attr",
    "block_selections",
    "check_dataset",
    "child",
    "decode",
    "json_attr",
    "keys",
    "logical_dtype",
    "open_h5",
    "steady_metadata_cache",
    "walk",
    "widen",
    "write_order",
]

#: Group paths nested deeper than this are refused (Keras nests a few levels; a crafted file
#: could nest thousands and exhaust the recursion of the readers).
MAX_PATH_DEPTH = 64


def open_h5(source, display: str):
    """An HDF5 file (path or seekable binary file object) opened read-only with h5py, behind the
    guards: its root group."""
    return open_file(source, display)


@contextlib.contextmanager
def steady_metadata_cache(files: list):
    """HDF5's metadata cache kept at its initial size while a reader walks the files (see
    ``GuardedGroup.steady_metadata_cache``); the parser's files let go of the objects they kept
    for lookups when the walk ends (``File.lookups``)."""
    with contextlib.ExitStack() as stack:
        for f in files:
            stack.enter_context(f.steady_metadata_cache())
        yield


def child(group, name: str, display: str):
    """``group[name]`` without following external or soft links; None when absent. A name with
    slashes (from an attribute such as ``layer_names``) is resolved one component at a time:
    HDF5 itself would follow links met on the way."""
    if not isinstance(name, str):
        raise CorruptFileError(f"entry name {name!r} of {group.name!r} is not text", path=display)
    if "/" in name:
        return walk(group, name, display)
    return group.child(name)


def walk(root, path: str, display: str, groups: dict | None = None):
    """Resolve a slash path below ``root`` one component at a time (see :func:`child`).

    ``groups``: a dict (or :class:`GroupCache`) the caller keeps for several paths below the
    same ``root`` (a layer's weights share their sub-groups); groups met on the way are
    remembered there by their component prefix and not resolved (nor checked) again: each was
    checked when first met. The file is opened read-only, so a prefix resolves to the same group
    every time. (The parser keeps the objects it met lately itself: no cache is kept for it.)"""
    if root.caches_lookups and path.count("/") < MAX_PATH_DEPTH:  # the parser's: no cache to keep
        obj = root
        for part in path.split("/"):
            if part:
                if not isinstance(obj, GROUPS):
                    return None
                obj = obj.child(part)
                if obj is None:
                    return None
        return obj
    parts = [p for p in path.split("/") if p]
    if len(parts) > MAX_PATH_DEPTH:
        raise CorruptFileError(
            f"path {path[:200]!r} is nested more than {MAX_PATH_DEPTH} levels deep; refused",
            path=display,
            hint="Keras never nests groups that deep; the file is crafted",
        )
    obj = root
    start = 0
    if groups is not None:
        for k in range(len(parts), 0, -1):  # the longest prefix resolved before
            known = groups.get(tuple(parts[:k]))
            if known is not None:
                obj, start = known, k
                break
    for k in range(start, len(parts)):
        if not isinstance(obj, GROUPS):
            return None
        obj = obj.child(parts[k])
        if obj is None:
            return None
        if groups is not None and isinstance(obj, GROUPS):
            groups[tuple(parts[: k + 1])] = obj
    return obj


class GroupCache(dict):
    """A ``groups`` dict for :func:`walk` that keeps only the ``size`` groups used last (an open
    HDF5 object pins ~12 KiB of metadata, so a whole model's groups are not kept)."""

    def __init__(self, size: int = 32):
        super().__init__()
        self.size = size

    def get(self, key, default=None):
        obj = self.pop(key, None)
        if obj is None:
            return default
        dict.__setitem__(self, key, obj)  # now the most recently used
        return obj

    def __setitem__(self, key, value) -> None:
        if key in self:
            del self[key]
        elif len(self) >= self.size:
            del self[next(iter(self))]  # the least recently used
        dict.__setitem__(self, key, value)


def keys(group, display: str) -> list[str]:
    """Entry names of a group, by name (h5py's order)."""
    return group.keys()


def write_order(group, names: list[str]) -> list[str] | None:
    """``names`` (entries of ``group``) in the order they were written, when the file tells it:
    by link creation order where the group tracks it, else by the addresses of their object
    headers (HDF5 allocates a new file's objects one after the other). None when any address
    cannot be had or two entries share one: the caller keeps its own order then."""
    try:
        addrs = group.creation_order(names)
    except Exception:
        return None
    if len(set(addrs.values())) != len(addrs):
        return None
    return sorted(names, key=addrs.__getitem__)


def attr(obj, name: str, display: str, default=None):
    """An attribute, decoded: bytes -> str, arrays of bytes -> list of str."""
    return obj.attr(name, default)


def json_attr(obj, name: str, display: str, *, limit: int = 64 << 20, loads=json.loads):
    """A JSON attribute (``model_config``) parsed (by ``loads``), or None. Malformed JSON is a
    clear error."""
    text = attr(obj, name, display)
    if text is None:
        return None
    if isinstance(text, list) and all(isinstance(t, str) for t in text):
        text = "".join(text)
    if not isinstance(text, str):
        raise CorruptFileError(f"attribute {name!r} is not text", path=display)
    if len(text) > limit:
        raise UnsafeInputError(
            f"attribute {name!r} is {len(text):,} bytes, over the {limit:,} byte limit", path=display
        )
    try:
        value = loads(text)
    except (ValueError, RecursionError) as exc:
        raise CorruptFileError(
            f"attribute {name!r} is not valid JSON ({' '.join(str(exc).split())[:160]})", path=display
        ) from None
    return value


def check_dataset(ds, display: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of a dataset that passed the checks: values inside the file, no storage
    elsewhere, sizes it can have (the parser checks these as it parses; h5py's datasets are
    checked by the guards)."""
    return ds.checked()


# -- dtypes --------------------------------------------------------------------------------------

_NUMERIC_KINDS = "fiub"
_NUMERIC_NAMES: dict[np.dtype, str] = {}  # numeric dtype -> its name above (equal dtypes, equal names)


def logical_dtype(ds, hint: str | None, display: str, dt: np.dtype | None = None) -> str:
    """The dtype name a user sees: numpy's name, or 'bfloat16' for Keras's opaque 2-byte values.
    ``dt``: ``ds.dtype`` when the caller has it already (from :func:`check_dataset`)."""
    if dt is None:
        dt = ds.dtype
    name = _NUMERIC_NAMES.get(dt)
    if name is not None:
        return name
    if dt.kind in _NUMERIC_KINDS:
        name = dt.name if dt.kind != "b" else "bool"  # numpy computes dt.name in Python (~4 us)
        if len(_NUMERIC_NAMES) < 64:
            _NUMERIC_NAMES[dt] = name
        return name
    if dt.kind == "V" and dt.itemsize == 2 and dt.fields is None:
        tag = attr(ds, "dtype", display)
        if tag is None or (isinstance(tag, str) and tag == BFLOAT16) or hint == BFLOAT16:
            return BFLOAT16
    raise CorruptFileError(
        f"dataset {ds.name!r} has dtype {dt} which is not a tensor dtype Keras writes",
        path=display,
        hint="kaudit reads numeric tensors only",
    )
