"""Read the two checkpoints of a diff on two cores, and a fine-tuned copy only once.

Reading a model's variable table is Python work (``_h5parse`` and the readers): thousands of
small variables cost tens of microseconds each, and threads would take turns on the GIL. Two
plans, both using forked child processes (``kaudit/_fork.py``) that send back plain data
(``marshal``: 10x faster than JSON here):

* **Twins.** When ``a`` and ``b`` are HDF5 files (or ``.keras`` archives) of the same size, ``b``
  is most likely ``a`` saved again with other values: a fine-tuned model, a checkpoint of the
  next epoch. Then ``a`` is read with ``b`` as its :class:`~kaudit.readers.Twin`: every byte of
  metadata read from ``a`` is compared with ``b``'s at the same place, and ``a``'s layers are
  read on two cores (``readers/_split.py``). If nothing differed, reading ``b`` would give the
  very same table, so ``b``'s checkpoint is ``a``'s table over ``b``'s bytes, and ``b`` is never
  parsed. If the files differ before the layers (another config), ``b`` is read in a child while
  ``a``'s layers are read here, as in the next plan; if they differ later, ``b`` is read after
  ``a``, its layers on two cores too.
* **Otherwise** ``b`` is read in a child while ``a`` is read here; the parent then reads values
  itself, straight from the files, as for any checkpoint read by the fast parser.

A child only takes the fast path. Whenever it cannot (h5py needed, a format other than HDF5
or a ``.keras`` archive stored in place, anything unexpected) it sends nothing and the parent
reads ``b`` itself as usual, with all of h5py's guards and the command's stall watchdog. Used
only where forking is safe (``_fork.available``) and the fast parser is enabled.
``KAUDIT_PARALLEL_LOAD=0`` turns both plans off: the files are read one after the other, whole.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .. import _fork, readers
from ..checkpoint import _VARIABLE_FIELDS, Checkpoint, Variable
from . import _h5parse as P
from . import _hdf5 as H
from . import _split

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
    """``(opened(a), opened(b))``, read on two cores when that pays (see above)."""
    from . import opened

    def read_b():
        readers.H5PY_FALLBACK = False  # never the HDF5 library in the child: no watchdog watches it
        _split.disallow()
        return _encode(readers.load(b))

    if _twins_likely(a, b):
        with contextlib.ExitStack() as stack:
            children: list[_fork.Child] = []
            split = []

            def read_b_now() -> None:
                """b is no twin after all, found before a's layers are split: read b in a child from
                now on, as below (and a's layers here, whole: the second core is taken). Found
                later, b is read after a, on two cores as well."""
                if not (children or split) and _fork.available():
                    with contextlib.suppress(OSError):  # (no fork: b is read after a)
                        children.append(stack.enter_context(_fork.forked(read_b)))

            def at_split(_store) -> bool:
                split.append(True)
                return bool(children)

            twin = readers.Twin(b, on_differ=read_b_now)
            with _split.allowed(at_split):
                ca = stack.enter_context(readers._load(a, twin))
            cb = None
            if children:
                prefetch = getattr(ca.store, "prefetch_small", None)
                if prefetch is not None:  # while the child reads b
                    prefetch()
                cb = _decode_or_none(children[0].result())
            elif twin.same:
                cb = _twin_checkpoint(ca, twin)
            if cb is None:  # b read here: no twin (or the child could not), its layers on two cores
                with _split.allowed():
                    cb = readers.load(b)
            stack.enter_context(cb)
            yield ca, cb
        return

    if not _worth_it(a, b):
        with opened(a) as ca, opened(b) as cb:
            yield ca, cb
        return

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


def _twins_likely(a, b) -> bool:
    """Whether ``b`` is likely to be ``a``'s twin (the same metadata, other values: a model and its
    fine-tuned copy): the same kind and size of file. Only a guess, which decides the plan; the
    bytes decide whether ``b`` is one (:class:`readers.Twin`)."""
    from . import sniff

    if not _worth_it(a, b):
        return False
    try:
        return os.path.getsize(a) == os.path.getsize(b) and sniff(a) == sniff(b)
    except Exception:  # noqa: BLE001 - the usual path reports whatever is wrong
        return False


def _twin_checkpoint(ca: Checkpoint, twin: readers.Twin) -> Checkpoint | None:
    """``b``'s checkpoint from ``a``'s, ``b`` being its twin: the same table, read from b's files."""
    store = ca.store
    if not (isinstance(store, H.H5Store) and len(twin.images) == len(store.files)) \
            or any(ca.file in note for note in ca.notes):  # (no reader names the file in a note; if one did)
        return None
    roots = []
    try:
        for path, base, size in twin.images:
            roots.append(P.File(path, base, size).root)  # the superblock only: for empty datasets
    except BaseException:
        for root in roots:
            root.close()
        raise
    bases = [base for _path, base, _size in twin.images]
    shift = [b - a[1] for a, b in zip(store.direct_sources, bases, strict=True)]
    out = H.H5Store(roots, list(twin.displays), [(path, base) for path, base, _size in twin.images])
    out._entries = dict(store._entries)
    out._direct_layouts = {loc: (fi, off + shift[fi], dt, shape)
                           for loc, (fi, off, dt, shape) in store._direct_layouts.items()}
    return Checkpoint(twin.display, ca.format, ca.all_variables, out, ca.keras_version, ca.has_config, ca.notes,
                      (twin.display,))


def _decode_or_none(doc) -> Checkpoint | None:
    if not doc:
        return None
    try:
        return _decode(doc)
    except Exception:  # noqa: BLE001 - should not happen; read b here instead
        return None


# -- the table as plain data ---------------------------------------------------------------------


def _encode(ckpt: Checkpoint) -> dict | None:
    """A checkpoint read by the fast parser, as plain data; None when it took another path. (In
    the child, where it runs, ``readers.H5PY_FALLBACK`` is off: a file the parser declines raises
    ``readers.FastPathDeclined`` instead of entering the HDF5 library.) Closes ``ckpt``."""
    try:
        store = ckpt.store
        if not isinstance(store, H.H5Store) or not all(type(f) is P.Group for f in store.files):
            return None
        images = []
        for root, src in zip(store.files, store.direct_sources, strict=True):
            img = root.file.image
            if src is None or src[0] != root.file.path or src[1] != img.base:
                return None
            if os.path.realpath(root.file.path) != os.path.realpath(ckpt.file):
                return None  # e.g. a temporary file of the child's (an inflated .keras member): gone with it
            images.append([root.file.path, img.base, img.size])
        doc = {
            "file": ckpt.file, "format": ckpt.format, "keras_version": ckpt.keras_version,
            "has_config": ckpt.has_config, "notes": list(ckpt.notes), "files": list(ckpt.files),
            "displays": list(store.displays), "images": images,
            "variables": [tuple(getattr(v, f) for f in _VARIABLE_FIELDS) for v in ckpt.all_variables],
            "layouts": store.export_layouts(),
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
    store.import_layouts(*doc["layouts"])
    variables = tuple(map(Variable.from_fields, doc["variables"]))
    return Checkpoint(doc["file"], doc["format"], variables, store, doc["keras_version"], doc["has_config"],
                      tuple(doc["notes"]), tuple(doc["files"]))
