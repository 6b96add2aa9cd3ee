"""HDF5 through h5py, behind one guard per threat (the way Keras's ``saving_lib`` keeps
``safe_get_h5_group``/``safe_get_h5_dataset``): the files the metadata parser leaves to the HDF5
library are read through :class:`GuardedGroup` and :class:`GuardedDataset`, which offer what the
parser's ``Group``/``Dataset`` offer (``keys``, ``child``, ``attr``, ``checked``...), so the
adapter (``storage/hdf5.py``) and the readers never ask which one they hold.

The guards (docs/security.md), each a function named for what it refuses:

* :func:`refuse_external_link`, :func:`refuse_soft_link`: links are looked at, never followed;
* :func:`refuse_shared_group`: a group linked under more than one name (a hard-link cycle);
* :func:`refuse_virtual_or_external_storage`: values kept in other files;
* :func:`refuse_huge_chunks`: a chunk HDF5 would inflate whole in memory;
* :func:`refuse_overdeclared`: a dataset declaring far more than the file stores;
* attributes too large to read are refused (out of memory), undecodable ones reported.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CorruptFileError, UnsafeInputError

if TYPE_CHECKING:
    import h5py
else:

    class _Lazy:
        """``h5py``, imported when first used: files the fast parser reads never need it (~16 ms
        of start-up saved for every such command)."""

        def __getattr__(self, name: str):
            return getattr(importlib.import_module("h5py"), name)

    h5py = _Lazy()

#: A dataset may declare at most this many times the bytes it stores (plus 1 MiB) before it is
#: refused: HDF5 would otherwise "read" fill values for terabytes of unallocated space.
MAX_DECLARED_RATIO = 1024

#: A chunked dataset whose single chunk is larger than this is refused: HDF5 inflates a whole
#: chunk in memory to read any part of it (a chunk may declare up to 4 GiB).
MAX_CHUNK_BYTES = 256 << 20

_LOOKUP_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError)


def short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] if text else type(exc).__name__


def join(a: str, b: str) -> str:
    return (a.rstrip("/") + "/" + b) if a else b


def open_file(source, display: str) -> GuardedGroup:
    """An HDF5 file (path or seekable binary file object) opened read-only: its root group."""
    try:
        return GuardedGroup(h5py.File(source, "r"), display)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CorruptFileError(
            f"cannot be read as HDF5 ({short(exc)})",
            path=display,
            hint="the file is truncated or corrupted; re-download or re-save it",
        ) from None


# -- the guards ------------------------------------------------------------------------------------


def refuse_external_link(group, name: str, display: str) -> None:
    try:
        filename = group.get(name, getlink=True).filename
    except Exception:
        filename = "?"
    raise UnsafeInputError(
        f"entry {join(group.name, name)!r} is an external link to {filename!r}; kaudit never follows links out of a file",
        path=display,
        hint="re-save the checkpoint without external links",
    )


def refuse_soft_link(group, name: str, display: str) -> None:
    target = group.get(name, getlink=True)
    raise UnsafeInputError(
        f"entry {join(group.name, name)!r} is a soft link to {getattr(target, 'path', '?')!r}; "
        "Keras never writes links, kaudit does not follow them",
        path=display,
        hint="re-save the checkpoint with Keras",
    )


def refuse_shared_group(name: str, links: int, display: str) -> None:
    if links > 1:
        raise UnsafeInputError(
            f"group {name!r} is linked {links} times in the file (a hard-link cycle?); "
            "Keras writes every group once; refused",
            path=display,
            hint="re-save the checkpoint with Keras",
        )


def refuse_virtual_or_external_storage(ds, dcpl, layout, display: str) -> None:
    if layout == h5py.h5d.VIRTUAL:
        raise UnsafeInputError(f"dataset {ds.name!r} is a virtual dataset mapping other files; refused", path=display)
    if dcpl.get_external_count() > 0:
        raise UnsafeInputError(
            f"dataset {ds.name!r} keeps its data in external file(s) {[e[0] for e in ds.external]!r}; refused",
            path=display,
        )


def refuse_huge_chunks(name: str, chunks, itemsize: int, display: str) -> None:
    if chunks is not None and math.prod(chunks) * itemsize > MAX_CHUNK_BYTES:
        raise UnsafeInputError(
            f"dataset {name!r} is stored in chunks of {math.prod(chunks) * itemsize:,} bytes (over "
            f"{MAX_CHUNK_BYTES:,}); reading any value would inflate a whole chunk in memory; refused",
            path=display,
            hint="re-save the checkpoint with Keras (it writes contiguous datasets)",
        )


def refuse_overdeclared(name: str, shape, declared: int, dsid, display: str) -> None:
    if declared > (1 << 20):
        try:
            stored = dsid.get_storage_size()
        except Exception:
            stored = 0
        if declared > stored * MAX_DECLARED_RATIO + (1 << 20):
            raise UnsafeInputError(
                f"dataset {name!r} declares shape {tuple(shape)} ({declared:,} bytes) but the file "
                f"stores only {stored:,} bytes for it; refused",
                path=display,
                hint="the file is truncated or crafted",
            )


# -- objects -----------------------------------------------------------------------------------------


class _AttrNames:
    """Enough of h5py's AttributeManager for ``name in obj.attrs``."""

    __slots__ = ("node",)

    def __init__(self, node: _Guarded):
        self.node = node

    def __contains__(self, name: str) -> bool:
        try:
            return bool(h5py.h5a.exists(self.node.raw.id, name.encode("utf-8")))
        except _LOOKUP_ERRORS as exc:
            raise CorruptFileError(
                f"cannot read the attributes of {self.node.name!r} ({short(exc)})", path=self.node.display
            ) from None


class _Guarded:
    __slots__ = ("display", "name", "raw")

    def __init__(self, raw, display: str):
        self.raw = raw
        self.display = display
        self.name = raw.name

    @property
    def attrs(self) -> _AttrNames:
        return _AttrNames(self)

    def attr(self, name: str, default=None):
        """An attribute, decoded (bytes -> str, arrays of bytes -> list of str), or ``default``."""
        raw = self.raw
        try:
            attrs = raw.attrs  # h5py builds an AttributeManager per access: once here
            if not h5py.h5a.exists(raw.id, name.encode("utf-8")):  # what ``name in attrs`` calls
                return default
            value = attrs[name]
        except _LOOKUP_ERRORS as exc:
            raise CorruptFileError(
                f"cannot read attribute {name!r} of {self.name!r} ({short(exc)})", path=self.display
            ) from None
        except MemoryError:  # a huge (or corrupted) variable-length attribute
            raise UnsafeInputError(
                f"attribute {name!r} of {self.name!r} is too large to read (out of memory); refused",
                path=self.display,
            ) from None
        return decode(value)


class GuardedGroup(_Guarded):
    """An h5py group (or file) read through the guards."""

    __slots__ = ()

    #: The parser keeps the objects it met lately; h5py objects are cached by the caller (walk).
    caches_lookups = False

    def child(self, name: str) -> GuardedGroup | GuardedDataset | None:
        """The entry ``name`` (one path component) without following external or soft links; a
        group linked under more than one name is refused; None when absent."""
        group = self.raw
        display = self.display
        bname = name.encode("utf-8", "surrogateescape")
        # Fast path, the common case: the name is a hard link (H5Lget_info looks at the link
        # itself, never follows it) to a dataset, or to a group linked once. The same HDF5 calls
        # as below, minus H5Lexists (H5Lget_info fails for an absent name, and for '.' and ''),
        # so the same answer; anything else (absent, soft or external link, a group linked twice,
        # an odd object, any error) goes to the careful path below, which refuses or reports it.
        gid = group.id
        with contextlib.suppress(Exception):  # the careful path says what is wrong
            if gid.links.get_info(bname).type == h5py.h5l.TYPE_HARD:
                oid = h5py.h5o.open(gid, bname)
                if isinstance(oid, h5py.h5d.DatasetID):
                    return GuardedDataset(h5py.Dataset(oid), display)
                if isinstance(oid, h5py.h5g.GroupID) and _link_count(oid) <= 1:
                    return GuardedGroup(h5py.Group(oid), display)
        try:  # low-level h5py: the same checks at a third of the cost of Group.get/__getitem__
            if not gid.links.exists(bname):
                return None
            ltype = gid.links.get_info(bname).type
        except _LOOKUP_ERRORS as exc:
            raise CorruptFileError(f"cannot read entry {name!r} ({short(exc)})", path=display) from None
        if ltype == h5py.h5l.TYPE_EXTERNAL:
            refuse_external_link(group, name, display)
        if ltype != h5py.h5l.TYPE_HARD:
            refuse_soft_link(group, name, display)
        try:
            oid = h5py.h5o.open(gid, bname)
            if isinstance(oid, h5py.h5g.GroupID):
                links = h5py.h5o.get_info(oid).rc
                refuse_shared_group(join(group.name, name), links, display)
                return GuardedGroup(h5py.Group(oid), display)
            if isinstance(oid, h5py.h5d.DatasetID):
                return GuardedDataset(h5py.Dataset(oid), display)
            return None  # a committed datatype: not something Keras writes where a group or dataset belongs
        except UnsafeInputError:
            raise
        except _LOOKUP_ERRORS as exc:
            raise CorruptFileError(
                f"cannot open entry {join(group.name, name)!r} ({short(exc)})", path=display
            ) from None

    def __contains__(self, name: str) -> bool:
        return "/" not in name and self.child(name) is not None

    def __getitem__(self, name: str):
        obj = self.child(name) if "/" not in name else None
        if obj is None:
            raise KeyError(name)
        return obj

    def keys(self) -> list[str]:
        """Entry names, by name (h5py's order)."""
        group = self.raw
        names = _link_names(group)
        if names is None:
            try:
                names = list(group.keys())
            except (OSError, RuntimeError, ValueError) as exc:
                raise CorruptFileError(f"cannot list {self.name!r} ({short(exc)})", path=self.display) from None
        for n in names:
            if not isinstance(n, str):  # h5py hands back bytes for a name that is not UTF-8
                raise CorruptFileError(
                    f"group {self.name!r} has an entry whose name is not UTF-8 ({n[:40]!r})",
                    path=self.display,
                    hint="the file is corrupted or crafted",
                )
        return names

    def creation_order(self, names: list[str]) -> dict[str, int]:
        """A key per name that sorts them in the order they were written: the link creation order
        where the group tracks it, else their object header addresses. Raises on any error."""
        gid = self.raw.id
        if gid.get_create_plist().get_link_creation_order() & h5py.h5p.CRT_ORDER_TRACKED:
            raw: list[bytes] = []
            gid.links.iterate(raw.append, idx_type=h5py.h5.INDEX_CRT_ORDER, order=h5py.h5.ITER_INC)
            rank = {b.decode("utf8"): i for i, b in enumerate(raw)}
            return {n: rank[n] for n in names}
        return {n: h5py.h5g.get_objinfo(gid, n.encode("utf8"), follow_link=False).objno[0] for n in names}

    @contextlib.contextmanager
    def steady_metadata_cache(self):
        """While a reader walks the file's metadata, HDF5's metadata cache keeps its initial size
        (2 MiB) instead of growing towards 32 MiB. HDF5 grows it when fewer than 90% of lookups
        hit, and the readers look each object up about once; growing saves nothing there
        (measured) but costs ~14 MiB of RSS per file at 4,000 variables. The configuration is
        restored afterwards (reading values may use the cache, e.g. for chunk indexes).
        Performance only: any error is ignored."""
        saved = None
        with contextlib.suppress(Exception):
            fid = self.raw.file.id
            cfg = fid.get_mdc_config()
            saved = (fid, fid.get_mdc_config())
            if cfg.initial_size >= cfg.min_size:
                cfg.max_size = cfg.initial_size
                fid.set_mdc_config(cfg)
        try:
            yield
        finally:
            if saved is not None:
                with contextlib.suppress(Exception):
                    saved[0].set_mdc_config(saved[1])

    def close(self) -> None:
        self.raw.close()


class GuardedDataset(_Guarded):
    """An h5py dataset read through the guards."""

    __slots__ = ("_checked",)

    def __init__(self, raw, display: str):
        super().__init__(raw, display)
        self._checked: tuple[tuple[int, ...], np.dtype] | None = None

    def checked(self) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype), once the dataset passed the guards: not virtual, no external storage,
        no huge chunks, not declaring far more than the file stores. The creation property list
        is fetched once, with h5py's low-level calls: the same HDF5 calls as ``ds.is_virtual``,
        ``ds.external`` and ``ds.chunks``, in that order."""
        if self._checked is not None:
            return self._checked
        ds, display = self.raw, self.display
        dsid = ds.id
        try:
            dcpl = dsid.get_create_plist()
            layout = dcpl.get_layout()
            refuse_virtual_or_external_storage(ds, dcpl, layout, display)
            shape = dsid.shape
        except UnsafeInputError:
            raise
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            raise CorruptFileError(f"cannot read dataset {self.name!r} ({short(exc)})", path=display) from None
        if shape is None:  # null dataspace
            raise CorruptFileError(f"dataset {self.name!r} has no dataspace", path=display)
        dt = _dataset_dtype(dsid)
        if dt is None:
            dt = self.dtype
        try:
            chunks = dcpl.get_chunk() if layout == h5py.h5d.CHUNKED else None
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            raise CorruptFileError(f"cannot read dataset {self.name!r} ({short(exc)})", path=display) from None
        refuse_huge_chunks(self.name, chunks, dt.itemsize, display)
        refuse_overdeclared(self.name, shape, math.prod(shape) * dt.itemsize, dsid, display)
        self._checked = (shape, dt)
        return self._checked

    @property
    def shape(self) -> tuple[int, ...]:
        return self.raw.shape

    @property
    def dtype(self) -> np.dtype:
        try:
            return self.raw.dtype
        except (OSError, RuntimeError, ValueError, TypeError) as exc:  # e.g. a corrupted float layout
            raise CorruptFileError(
                f"dataset {self.name!r} has an unreadable dtype ({short(exc)})", path=self.display
            ) from None

    @property
    def stored_dtype(self) -> np.dtype:
        """The dtype of the bytes on disk (h5py's ``id.dtype``, no conversion)."""
        return self.raw.id.dtype

    def image_offset(self, shape: tuple[int, ...] | None = None, raw_dtype: np.dtype | None = None) -> int | None:
        """Byte offset of the values in the HDF5 image when they can be read from there directly
        (uncompressed, contiguous, allocated, not empty), else None."""
        try:  # low-level calls: h5py's ds.chunks/.compression/.size build property lists each time
            dsid = self.raw.id
            # H5Dget_offset: the file address for contiguous storage; undefined (None) for chunked
            # (so also for any filter/compression), compact or unallocated datasets
            offset = dsid.get_offset()
            if offset is None:
                return None
            if shape is None:
                shape = dsid.shape
            if not shape or math.prod(shape) == 0:
                return None
        except Exception:
            return None
        return offset

    def __getitem__(self, selection):
        return self.raw[selection]


# -- helpers -------------------------------------------------------------------------------------------


def _link_count(gid) -> int:
    """The group's reference count, as ``H5Oget_info(gid).rc``: H5Gget_objinfo reads the same
    count (``H5O_get_info(BASIC)``) without the B-tree and heap sizes of H5Oget_info1, at a third
    of the cost (when HDF5 was built with its deprecated functions)."""
    get_objinfo = getattr(h5py.h5g, "get_objinfo", None)
    if get_objinfo is not None:
        return get_objinfo(gid).nlink
    return h5py.h5o.get_info(gid).rc


def _link_names(group) -> list | None:
    """``list(group.keys())`` in one H5Literate pass (h5py asks H5Lget_name_by_idx for each
    index in turn: 3x the cost): the same names in the same order (by name, increasing),
    decoded as h5py does (UTF-8, else the bytes). None on any error: h5py then says what it is."""
    raw: list[bytes] = []
    try:
        group.id.links.iterate(raw.append, idx_type=h5py.h5.INDEX_NAME, order=h5py.h5.ITER_INC)
    except Exception:
        return None
    names: list = []
    for b in raw:
        try:
            names.append(b.decode("utf8"))
        except UnicodeDecodeError:
            names.append(b)
    return names


def decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in ("S", "O", "U"):
            return [decode(v) for v in value.tolist()]
        if value.size == 0:
            return []
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


#: (HDF5 type, numpy dtype) pairs of the integer and float types met lately. H5Tequal compares
#: size, byte order, precision, offset, padding, sign and the exponent and mantissa layout:
#: everything h5py's conversion of an integer or float type looks at, so an equal type converts
#: to the same dtype. Kept as transient copies (never a committed type of some file).
_RECENT_TYPES: list = []


def _dataset_dtype(dsid) -> np.dtype | None:
    """``ds.dtype`` for integer and float datasets, at half the cost of h5py's conversion
    (~3 us); None for anything else or on any error (the caller then asks h5py)."""
    try:
        tid = dsid.get_type()
        if tid.get_class() not in (h5py.h5t.INTEGER, h5py.h5t.FLOAT):
            return None
        for known, dt in _RECENT_TYPES:
            if tid.equal(known):
                return dt
        dt = tid.dtype
        if len(_RECENT_TYPES) >= 8:
            del _RECENT_TYPES[0]
        _RECENT_TYPES.append((tid.copy(), dt))
        return dt
    except Exception:
        return None
