"""Read the two checkpoints of a diff at the same time, on two cores.

Reading a model's variable table is Python work (``_h5parse`` and the readers): thousands of
small variables cost tens of microseconds each, and threads would take turns on the GIL. So
``b`` is read in a forked child process (``kaudit/_fork.py``) while ``a`` is read here; the
child sends back the table as plain data (``marshal``: 10x faster than JSON here) and exits.
The parent then reads values itself, straight from the files, as for any checkpoint read by the
fast parser.

The child only takes the fast path. Whenever it cannot (h5py needed, a format other than HDF5
or a ``.keras`` archive stored in place, anything unexpected) it sends nothing and the parent
reads ``b`` itself as usual, with all of h5py's guards and the command's stall watchdog. Used
only where forking is safe (``_fork.available``) and the fast parser is enabled.
``KAUDIT_PARALLEL_LOAD=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from .. import _fork, readers
from ..checkpoint import _VARIABLE_FIELDS, Checkpoint, Variable
from . import _h5parse as P
from . import _hdf5 as H

#: Below this size ``b`` is read here: forking costs ~2 ms, a small file reads faster than that.
MIN_BYTES = 1 << 20


def _worth_it(a, b) -> bool:
    from . import _fast_parser_enabled, sniff

    if not (_fork.available() and _fast_parser_enabled()) or os.environ.get("KAUDIT_PARALLEL_LOAD", "1") == "0":
        return False
    try:
        if not (isinstance(a, (str, os.PathLike)) and isinstance(b, (str, os.PathLike))):
            return False
        if os.path.getsize(b) < MIN_BYTES or not os.path.isfile(a):
            return False
        return sniff(b) in ("hdf5", "zip")
    except Exception:  # noqa: BLE001 - the usual path reports whatever is wrong
        return False


@contextlib.contextmanager
def opened_pair(a, b) -> Iterator[tuple[Checkpoint, Checkpoint]]:
    """``(opened(a), opened(b))``, with ``b`` read in parallel when that pays (see above)."""
    from . import opened

    if not _worth_it(a, b):
        with opened(a) as ca, opened(b) as cb:
            yield ca, cb
        return

    def read_b():
        readers.H5PY_FALLBACK = False  # never the HDF5 library in the child: no watchdog watches it
        return _encode(b)

    with _fork.forked(read_b) as child, opened(a) as ca:
        prefetch = getattr(ca.store, "prefetch_small", None)
        if prefetch is not None:  # the child is most likely still at work: use the wait
            prefetch()
        cb = _decode_or_none(child.result())
        if cb is None:  # the child could not take the fast path: read b here, as usual
            with opened(b) as cb:
                yield ca, cb
        else:
            try:
                yield ca, cb
            finally:
                cb.close()


def _decode_or_none(doc) -> Checkpoint | None:
    if not doc:
        return None
    try:
        return _decode(doc)
    except Exception:  # noqa: BLE001 - should not happen; read b here instead
        return None


# -- the table as plain data ---------------------------------------------------------------------


def _encode(path) -> dict | None:
    """The checkpoint at ``path`` read by the fast parser, as plain data; None when it took another path.
    (In the child, where it runs, ``readers.H5PY_FALLBACK`` is off: a file the parser declines
    raises ``readers.FastPathDeclined`` instead of entering the HDF5 library.)"""
    from . import load

    ckpt = load(path)
    try:
        store = ckpt.store
        if not isinstance(store, H.H5Store) or not all(type(f) is P.Group for f in store.files):
            return None
        images = []
        for root, src in zip(store.files, store.direct_sources, strict=True):
            img = root.file.image
            if src is None or src[0] != root.file.path or src[1] != img.base:
                return None
            if os.path.realpath(root.file.path) != os.path.realpath(path):
                return None  # e.g. a temporary file of the child's (an inflated .keras member): gone with it
            images.append([root.file.path, img.base, img.size])
        doc = {
            "file": ckpt.file, "format": ckpt.format, "keras_version": ckpt.keras_version,
            "has_config": ckpt.has_config, "notes": list(ckpt.notes), "files": list(ckpt.files),
            "displays": list(store.displays), "images": images,
            "variables": [tuple(getattr(v, f) for f in _VARIABLE_FIELDS) for v in ckpt.all_variables],
            "entries": {loc: (e.file_index, e.ds_path, e.dtype) for loc, e in store._entries.items()},
            "direct": {loc: (fi, off, dt.str, shape) for loc, (fi, off, dt, shape) in store._direct_layouts.items()},
        }
        return doc
    finally:
        ckpt.close()


def _decode(doc: dict) -> Checkpoint:
    roots = []
    try:
        for path, base, size in doc["images"]:
            roots.append(P.File(path, base, size).root)  # the superblock only: for empty datasets
    except BaseException:
        for root in roots:
            root.close()
        raise
    store = H.H5Store(roots, doc["displays"], [(p, base) for p, base, _size in doc["images"]])
    for loc, (fi, ds_path, dtype) in doc["entries"].items():
        store._entries[loc] = H._Entry(fi, ds_path, dtype)
    dtypes: dict[str, np.dtype] = {}
    for loc, (fi, off, dt, shape) in doc["direct"].items():
        npdt = dtypes.get(dt)
        if npdt is None:
            npdt = dtypes[dt] = np.dtype(dt)
        store._direct_layouts[loc] = (fi, off, npdt, shape)
    variables = tuple(map(Variable.from_fields, doc["variables"]))
    return Checkpoint(doc["file"], doc["format"], variables, store, doc["keras_version"], doc["has_config"],
                      tuple(doc["notes"]), tuple(doc["files"]))
