"""Safe, streaming access to HDF5 files with h5py.

Everything a reader touches in an HDF5 file goes through here, so the guarantees of
docs/security.md hold in one place:

* links are walked one component at a time; external links and soft links are refused, never
  followed (so no other file is opened and no link cycle can hang us); a group linked under
  more than one name (a hard-link cycle) and paths nested absurdly deep are refused;
* datasets with external raw storage or virtual layouts are refused;
* a dataset whose declared size is far beyond what the file stores, or whose chunks are too big
  to inflate in memory, is refused before reading;
* values are read in bounded blocks; uncompressed contiguous datasets in a plain file (or a
  zip member stored uncompressed) are read straight from their byte range with ``os.preadv``,
  everything else goes through h5py hyperslabs.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..errors import CorruptFileError, UnsafeInputError
from . import hdf5_parse as P

if TYPE_CHECKING:
    import h5py
else:

    class _Lazy:
        """``h5py``, imported when first used: files the fast parser reads never need it (~16 ms
        of start-up saved for every such command)."""

        def __getattr__(self, name: str):
            return getattr(importlib.import_module("h5py"), name)

    h5py = _Lazy()


class _H5pyType(type):
    """isinstance against an h5py class without importing h5py: nothing is an h5py object
    before h5py is imported."""

    def __instancecheck__(cls, obj) -> bool:
        module = sys.modules.get("h5py")
        return module is not None and isinstance(obj, getattr(module, cls.__name__[4:]))


class H5pyGroup(metaclass=_H5pyType):
    """``isinstance(x, H5pyGroup)``: x is an ``h5py.Group`` (files included)."""


class H5pyDataset(metaclass=_H5pyType):
    """``isinstance(x, H5pyDataset)``: x is an ``h5py.Dataset``."""


#: A dataset may declare at most this many times the bytes it stores (plus 1 MiB) before it is
#: refused: HDF5 would otherwise "read" fill values for terabytes of unallocated space.
MAX_DECLARED_RATIO = 1024

#: A chunked dataset whose single chunk is larger than this is refused: HDF5 inflates a whole
#: chunk in memory to read any part of it (a chunk may declare up to 4 GiB).
MAX_CHUNK_BYTES = 256 << 20

#: Group paths nested deeper than this are refused (Keras nests a few levels; a crafted file
#: could nest thousands and exhaust the recursion of the readers).
MAX_PATH_DEPTH = 64

BFLOAT16 = "bfloat16"


#: What the readers test with isinstance: the fast parser's objects (``_h5parse``), or h5py's.
GROUPS = (P.Group, H5pyGroup)
DATASETS = (P.Dataset, H5pyDataset)

_UINT16 = np.dtype(np.uint16)
_HAVE_PREADV = hasattr(os, "preadv")
_SMALL = 8 << 10  # variables up to this many bytes are read through a read-ahead window...
_WINDOW = 64 << 10  # ...of this many bytes


def open_h5(source, display: str) -> h5py.File:
    """Open an HDF5 file (path or seekable binary file object) read-only."""
    try:
        return h5py.File(source, "r")
    except (OSError, ValueError, RuntimeError) as exc:
        raise CorruptFileError(
            f"cannot be read as HDF5 ({_short(exc)})",
            path=display,
            hint="the file is truncated or corrupted; re-download or re-save it",
        ) from None


@contextlib.contextmanager
def steady_metadata_cache(files: list[h5py.File]):
    """While a reader walks the files' metadata, HDF5's metadata cache keeps its initial size
    (2 MiB) instead of growing towards 32 MiB. HDF5 grows it when fewer than 90% of lookups hit,
    and the readers look each object up about once; growing saves nothing there (measured) but
    costs ~14 MiB of RSS per file at 4,000 variables. The configuration is restored afterwards
    (reading values may use the cache, e.g. for chunk indexes). Performance only: any error is
    ignored."""
    saved = []
    for f in files:
        with contextlib.suppress(Exception):
            fid = f.id
            cfg = fid.get_mdc_config()
            saved.append((fid, fid.get_mdc_config()))
            if cfg.initial_size >= cfg.min_size:
                cfg.max_size = cfg.initial_size
                fid.set_mdc_config(cfg)
    try:
        yield
    finally:
        for fid, cfg in saved:
            with contextlib.suppress(Exception):
                fid.set_mdc_config(cfg)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] if text else type(exc).__name__


def child(group: h5py.Group, name: str, display: str):
    """``group[name]`` without following external or soft links. None when absent.

    A name with slashes (from an attribute such as ``layer_names``) is resolved one component
    at a time: HDF5 itself would follow links met on the way. A group linked under more than
    one name (a hard-link cycle: Keras writes every group once) is refused."""
    if not isinstance(name, str):
        raise CorruptFileError(f"entry name {name!r} of {group.name!r} is not text", path=display)
    if "/" in name:
        return walk(group, name, display)
    if type(group) is P.Group:  # parsed by _h5parse: it checked the links (or raised Unsupported)
        return group.child(name)
    bname = name.encode("utf-8", "surrogateescape")
    # Fast path, the common case: the name is a hard link (H5Lget_info looks at the link itself,
    # never follows it) to a dataset, or to a group linked once. The same HDF5 calls as below,
    # minus H5Lexists (H5Lget_info fails for an absent name, and for '.' and ''), so the same
    # answer; anything else (absent, soft or external link, a group linked twice, an odd object,
    # any error) goes to the careful path below, which refuses or reports it.
    gid = group.id
    with contextlib.suppress(Exception):  # the careful path says what is wrong
        if gid.links.get_info(bname).type == h5py.h5l.TYPE_HARD:
            oid = h5py.h5o.open(gid, bname)
            if isinstance(oid, h5py.h5d.DatasetID):
                return h5py.Dataset(oid)
            if isinstance(oid, h5py.h5g.GroupID) and _link_count(oid) <= 1:
                return h5py.Group(oid)
    try:  # low-level h5py: the same checks at a third of the cost of Group.get/__getitem__
        if not group.id.links.exists(bname):
            return None
        ltype = group.id.links.get_info(bname).type
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise CorruptFileError(f"cannot read entry {name!r} ({_short(exc)})", path=display) from None
    if ltype == h5py.h5l.TYPE_EXTERNAL:
        filename = _external_target(group, name)
        raise UnsafeInputError(
            f"entry {_join(group.name, name)!r} is an external link to {filename!r}; "
            "kaudit never follows links out of a file",
            path=display,
            hint="re-save the checkpoint without external links",
        )
    if ltype != h5py.h5l.TYPE_HARD:
        target = group.get(name, getlink=True)
        raise UnsafeInputError(
            f"entry {_join(group.name, name)!r} is a soft link to {getattr(target, 'path', '?')!r}; "
            "Keras never writes links, kaudit does not follow them",
            path=display,
            hint="re-save the checkpoint with Keras",
        )
    try:
        oid = h5py.h5o.open(group.id, bname)
        if isinstance(oid, h5py.h5g.GroupID):
            obj = h5py.Group(oid)
            links = h5py.h5o.get_info(oid).rc
        elif isinstance(oid, h5py.h5d.DatasetID):
            obj, links = h5py.Dataset(oid), 1
        else:  # a committed datatype: not something Keras writes where a group or dataset belongs
            return None
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise CorruptFileError(f"cannot open entry {_join(group.name, name)!r} ({_short(exc)})", path=display) from None
    if links > 1:
        raise UnsafeInputError(
            f"group {_join(group.name, name)!r} is linked {links} times in the file (a hard-link cycle?); "
            "Keras writes every group once; refused",
            path=display,
            hint="re-save the checkpoint with Keras",
        )
    return obj


def _link_count(gid) -> int:
    """The group's reference count, as ``H5Oget_info(gid).rc`` below: H5Gget_objinfo reads the
    same count (``H5O_get_info(BASIC)``) without the B-tree and heap sizes of H5Oget_info1, at a
    third of the cost (when HDF5 was built with its deprecated functions)."""
    get_objinfo = getattr(h5py.h5g, "get_objinfo", None)
    if get_objinfo is not None:
        return get_objinfo(gid).nlink
    return h5py.h5o.get_info(gid).rc


def _external_target(group: h5py.Group, name: str) -> str:
    try:
        return group.get(name, getlink=True).filename
    except Exception:
        return "?"


def _join(a: str, b: str) -> str:
    return (a.rstrip("/") + "/" + b) if a else b


def walk(root: h5py.Group, path: str, display: str, groups: dict | None = None):
    """Resolve a slash path below ``root`` one component at a time (see :func:`child`).

    ``groups``: a dict (or :class:`GroupCache`) the caller keeps for several paths below the
    same ``root`` (a layer's weights share their sub-groups); groups met on the way are
    remembered there by their component prefix and not resolved (nor checked) again: each was
    checked by :func:`child` when first met. The file is opened read-only, so a prefix resolves
    to the same group every time."""
    if type(root) is P.Group and path.count("/") < MAX_PATH_DEPTH:
        # parsed by _h5parse: every component is checked there, and objects met lately are kept
        # there too (the ``groups`` cache is not needed)
        obj: P.Group | P.Dataset = root
        for part in path.split("/"):
            if part:
                if not isinstance(obj, P.Group):
                    return None
                nxt = obj.child(part)
                if nxt is None:
                    return None
                obj = nxt
        return obj
    obj = root
    parts = [p for p in path.split("/") if p]
    if len(parts) > MAX_PATH_DEPTH:
        raise CorruptFileError(
            f"path {path[:200]!r} is nested more than {MAX_PATH_DEPTH} levels deep; refused",
            path=display,
            hint="Keras never nests groups that deep; the file is crafted",
        )
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
        obj = child(obj, parts[k], display)
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


def keys(group: h5py.Group, display: str) -> list[str]:
    if type(group) is P.Group:
        return group.keys()
    names = _link_names(group)
    if names is None:
        try:
            names = list(group.keys())
        except (OSError, RuntimeError, ValueError) as exc:
            raise CorruptFileError(f"cannot list {group.name!r} ({_short(exc)})", path=display) from None
    for n in names:
        if not isinstance(n, str):  # h5py hands back bytes for a name that is not UTF-8
            raise CorruptFileError(
                f"group {group.name!r} has an entry whose name is not UTF-8 ({n[:40]!r})",
                path=display,
                hint="the file is corrupted or crafted",
            )
    return names


def write_order(group: h5py.Group, names: list[str]) -> list[str] | None:
    """``names`` (entries of ``group``) in the order they were written, when the file tells it:
    by link creation order where the group tracks it, else by the addresses of their object
    headers (HDF5 allocates a new file's objects one after the other). None when any address
    cannot be had or two entries share one: the caller keeps its own order then."""
    try:
        if type(group) is P.Group:
            table = group._table()
            addrs = {n: table[n] for n in names}
        else:
            tracked = group.id.get_create_plist().get_link_creation_order() & h5py.h5p.CRT_ORDER_TRACKED
            if tracked:
                raw: list[bytes] = []
                group.id.links.iterate(raw.append, idx_type=h5py.h5.INDEX_CRT_ORDER, order=h5py.h5.ITER_INC)
                rank = {b.decode("utf8"): i for i, b in enumerate(raw)}
                addrs = {n: rank[n] for n in names}
            else:
                addrs = {n: h5py.h5g.get_objinfo(group.id, n.encode("utf8"), follow_link=False).objno[0] for n in names}
    except Exception:
        return None
    if len(set(addrs.values())) != len(addrs):
        return None
    return sorted(names, key=addrs.__getitem__)


def _link_names(group: h5py.Group) -> list | None:
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


def attr(obj, name: str, display: str, default=None):
    """An attribute, decoded: bytes -> str, arrays of bytes -> list of str."""
    if isinstance(obj, P._Node):
        return obj.attr(name, default)
    try:
        attrs = obj.attrs  # h5py builds an AttributeManager per access: once here
        if not h5py.h5a.exists(obj.id, name.encode("utf-8")):  # what ``name in attrs`` calls
            return default
        value = attrs[name]
    except (OSError, RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise CorruptFileError(
            f"cannot read attribute {name!r} of {obj.name!r} ({_short(exc)})", path=display
        ) from None
    except MemoryError:  # a huge (or corrupted) variable-length attribute
        raise UnsafeInputError(
            f"attribute {name!r} of {obj.name!r} is too large to read (out of memory); refused", path=display
        ) from None
    return decode(value)


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


def json_attr(obj, name: str, display: str, *, limit: int = 64 << 20):
    """A JSON attribute (``model_config``) parsed, or None. Malformed JSON is a clear error."""
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
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CorruptFileError(f"attribute {name!r} is not valid JSON ({_short(exc)})", path=display) from None
    return value


# -- dtypes --------------------------------------------------------------------------------------

_NUMERIC_KINDS = "fiub"
_NUMERIC_NAMES: dict[np.dtype, str] = {}  # numeric dtype -> its name above (equal dtypes, equal names)


def logical_dtype(ds: h5py.Dataset, hint: str | None, display: str, dt: np.dtype | None = None) -> str:
    """The dtype name a user sees: numpy's name, or 'bfloat16' for Keras's opaque 2-byte values.
    ``dt``: ``ds.dtype`` when the caller has it already (from :func:`check_dataset`)."""
    if dt is None:
        dt = _dtype(ds, display)
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


def check_dataset(ds: h5py.Dataset, display: str) -> tuple[tuple[int, ...], np.dtype]:
    """Refuse datasets that would read outside the file or declare impossible sizes.

    Returns (shape, dtype) as read for the checks, for the caller to reuse. The creation
    property list (layout, external files, chunks) is fetched once, with h5py's low-level calls:
    the same HDF5 calls as ``ds.is_virtual``, ``ds.external`` and ``ds.chunks``, in that order."""
    if type(ds) is P.Dataset:  # parsed by _h5parse: contiguous, inside the file (or Unsupported)
        assert ds.shape is not None and ds.dtype is not None  # the parser refuses datasets without them
        return ds.shape, ds.dtype
    dsid = ds.id
    try:
        dcpl = dsid.get_create_plist()
        layout = dcpl.get_layout()
        if layout == h5py.h5d.VIRTUAL:
            raise UnsafeInputError(
                f"dataset {ds.name!r} is a virtual dataset mapping other files; refused", path=display
            )
        if dcpl.get_external_count() > 0:
            raise UnsafeInputError(
                f"dataset {ds.name!r} keeps its data in external file(s) {[e[0] for e in ds.external]!r}; refused",
                path=display,
            )
        shape = dsid.shape
    except UnsafeInputError:
        raise
    except (OSError, RuntimeError, ValueError, TypeError) as exc:
        raise CorruptFileError(f"cannot read dataset {ds.name!r} ({_short(exc)})", path=display) from None
    if shape is None:  # null dataspace
        raise CorruptFileError(f"dataset {ds.name!r} has no dataspace", path=display)
    dt = _dataset_dtype(dsid)
    if dt is None:
        dt = _dtype(ds, display)
    itemsize = dt.itemsize
    declared = math.prod(shape) * itemsize
    try:
        chunks = dcpl.get_chunk() if layout == h5py.h5d.CHUNKED else None
    except (OSError, RuntimeError, ValueError, TypeError) as exc:
        raise CorruptFileError(f"cannot read dataset {ds.name!r} ({_short(exc)})", path=display) from None
    if chunks is not None and math.prod(chunks) * itemsize > MAX_CHUNK_BYTES:
        raise UnsafeInputError(
            f"dataset {ds.name!r} is stored in chunks of {math.prod(chunks) * itemsize:,} bytes (over "
            f"{MAX_CHUNK_BYTES:,}); reading any value would inflate a whole chunk in memory; refused",
            path=display,
            hint="re-save the checkpoint with Keras (it writes contiguous datasets)",
        )
    if declared > (1 << 20):
        try:
            stored = dsid.get_storage_size()
        except Exception:
            stored = 0
        if declared > stored * MAX_DECLARED_RATIO + (1 << 20):
            raise UnsafeInputError(
                f"dataset {ds.name!r} declares shape {tuple(shape)} ({declared:,} bytes) but the file "
                f"stores only {stored:,} bytes for it; refused",
                path=display,
                hint="the file is truncated or crafted",
            )
    return shape, dt


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


def _dtype(ds: h5py.Dataset, display: str) -> np.dtype:
    try:
        return ds.dtype
    except (OSError, RuntimeError, ValueError, TypeError) as exc:  # e.g. a corrupted float layout
        raise CorruptFileError(f"dataset {ds.name!r} has an unreadable dtype ({_short(exc)})", path=display) from None


def widen(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Raw stored values -> numeric numpy values (bfloat16 becomes float32, exactly)."""
    if dtype == BFLOAT16:
        u16 = np.ascontiguousarray(raw).view(np.uint16)
        return (u16.astype(np.uint32) << 16).view(np.float32)
    return raw


# -- the store -----------------------------------------------------------------------------------


@dataclass
class _Entry:
    file_index: int
    ds_path: str
    dtype: str


class Located(Protocol):
    """What the store needs of a variable: where it is (``location``, given to :meth:`H5Store.register`)
    and what to call it in an error (``path``)."""

    location: str
    path: str


def block_selections(shape: tuple[int, ...], block_elems: int) -> Iterator[tuple]:
    """Hyperslab selections that cover ``shape`` in C order, each a contiguous flat range of
    at most ``block_elems`` elements (and at least one innermost row when a row is larger,
    in which case the row itself is split)."""
    if not shape:
        yield ()
        return
    total = math.prod(shape)
    if total == 0:
        return
    if total <= block_elems:
        yield ()
        return
    # the smallest k such that prod(shape[k:]) <= block_elems
    k = len(shape)
    inner = 1
    while k > 0 and inner * shape[k - 1] <= block_elems:
        k -= 1
        inner *= shape[k]
    # slab along axis k-1 (whole sub-blocks of prod(shape[k:]) elements), or split the last
    # axis itself when one innermost row is larger than a block
    axis = k - 1 if k < len(shape) else len(shape) - 1
    if k == len(shape):
        inner = 1
    step = max(1, block_elems // inner)
    for prefix in np.ndindex(*shape[:axis]):
        for start in range(0, shape[axis], step):
            yield tuple(prefix) + (slice(start, min(start + step, shape[axis])),)


class H5Store:
    """Reads variables from one or more open HDF5 files (shards).

    Uncompressed contiguous datasets are read straight from their byte range with ``os.preadv``
    into a fresh array per block (no h5py call after the first, no file pages mapped into the
    process: RSS stays at a few blocks whatever the file size). Everything else goes through
    h5py hyperslabs. The byte layout of a directly readable variable is resolved once, then
    cached as plain numbers: no HDF5 object is kept open (each one pins ~12 KiB of metadata).
    """

    def __init__(
        self,
        files: list[h5py.File],
        displays: list[str],
        direct_sources: list[tuple[str, int] | None] | None = None,
        owned: list | None = None,
    ):
        """``direct_sources[i]`` is (path on disk, byte offset of the HDF5 image in it) when file i
        can be read directly (a plain file, or a zip member stored uncompressed), else None."""
        self.files = files
        self.displays = displays
        self.direct_sources = direct_sources or [None] * len(files)
        self._entries: dict[str, _Entry] = {}
        self._owned = owned or []  # extra resources to close (zip members, temp files)
        self.use_direct = os.environ.get("KAUDIT_NO_DIRECT_READ", "") == ""
        # location -> direct = (file index, absolute offset, raw dtype, shape) for datasets whose
        # values can be read straight from the file
        self._direct_layouts: dict[str, tuple] = {}
        self._fds: dict[int, int] = {}
        self._windows: dict[int, tuple[int, bytes]] = {}  # file index -> (offset, bytes read ahead)
        self._sizes: dict[int, int] = {}
        self._groups: dict[tuple[int, str], h5py.Group] = {}  # a few recent ones (see _walk)

    def register(
        self,
        location: str,
        file_index: int,
        ds_path: str,
        dtype: str,
        ds: h5py.Dataset | None = None,
        shape: tuple[int, ...] | None = None,
        raw_dtype: np.dtype | None = None,
    ) -> None:
        """``ds``: the dataset, when the reader has it open already (reached with :func:`walk`);
        its layout is noted now, which saves opening it again on first read (~30 us/variable).
        ``shape``, ``raw_dtype``: its shape and dtype, when the reader has them already (from
        :func:`check_dataset`)."""
        e = self._entries[location] = _Entry(file_index, ds_path, dtype)
        if ds is not None:
            direct = self._direct(ds, e, shape, raw_dtype)
            if direct is not None:
                self._direct_layouts[location] = direct

    def _dataset(self, var: Located) -> tuple[h5py.Dataset, _Entry]:
        e = self._entries[var.location]
        ds = self._walk(e.file_index, e.ds_path)
        if not isinstance(ds, DATASETS):
            raise CorruptFileError(f"dataset {e.ds_path!r} disappeared", path=self.displays[e.file_index])
        return ds, e

    def _walk(self, file_index: int, path: str):
        """:func:`walk`, keeping the last few groups on the way open (a layer's variables share
        them; more would cost RSS)."""
        parent, _, leaf = path.strip("/").rpartition("/")
        if not leaf:
            return self.files[file_index]
        group = self._groups.get((file_index, parent))
        if group is None:
            group = self._walk(file_index, parent)
            if not isinstance(group, GROUPS):
                return None
            if len(self._groups) >= 16:
                self._groups = {}
            self._groups[(file_index, parent)] = group
        return child(group, leaf, self.displays[file_index])

    def _layout(self, var: Located) -> tuple:
        """(dataset or None, entry, direct or None); the dataset is None when direct is known."""
        e = self._entries[var.location]
        direct = self._direct_layouts.get(var.location)
        if direct is not None:
            return None, e, direct
        ds, e = self._dataset(var)
        direct = self._direct(ds, e)
        if direct is not None:
            self._direct_layouts[var.location] = direct  # a dict store is atomic: safe across workers
        return ds, e, direct

    def _contiguous_offset(
        self, ds: h5py.Dataset, e: _Entry, shape: tuple[int, ...] | None = None, raw_dtype: np.dtype | None = None
    ) -> int | None:
        """Absolute byte offset of ``ds``'s values in the file on disk, when they can be read
        from there directly (uncompressed, contiguous, allocated), else None."""
        source = self.direct_sources[e.file_index]
        if not (self.use_direct and source):
            return None
        if type(ds) is P.Dataset:  # offset checked against the image's size by the parser
            return ds.offset
        try:  # low-level calls: h5py's ds.chunks/.compression/.size build property lists each time
            dsid = ds.id
            # H5Dget_offset: the file address for contiguous storage; undefined (None) for chunked
            # (so also for any filter/compression), compact or unallocated datasets
            offset = dsid.get_offset()
            if offset is None:
                return None
            if shape is None:
                shape = dsid.shape
            if not shape or math.prod(shape) == 0:
                return None
            itemsize = (raw_dtype if raw_dtype is not None else dsid.dtype).itemsize
        except Exception:
            return None
        path, base = source
        offset += base
        nbytes = math.prod(shape) * itemsize
        size = self._sizes.get(e.file_index)
        if size is None:
            size = self._sizes[e.file_index] = os.path.getsize(path)
        if offset + nbytes > size:
            raise CorruptFileError(
                f"dataset {ds.name!r} extends past the end of the file (truncated?)", path=self.displays[e.file_index]
            )
        return offset

    def _direct(
        self, ds: h5py.Dataset, e: _Entry, shape: tuple[int, ...] | None = None, raw_dtype: np.dtype | None = None
    ) -> tuple | None:
        if not _HAVE_PREADV:
            return None
        offset = self._contiguous_offset(ds, e, shape, raw_dtype)
        if offset is None:
            return None
        if e.dtype == BFLOAT16:
            dt = _UINT16
        else:
            dt = raw_dtype if raw_dtype is not None else (ds.dtype if type(ds) is P.Dataset else ds.id.dtype)
        return e.file_index, offset, dt, tuple(shape if shape is not None else ds.shape)

    def _fd(self, file_index: int) -> int:
        fd = self._fds.get(file_index)
        if fd is None:
            source = self.direct_sources[file_index]
            if source is None:  # no direct reads from this file (the layout check said so)
                raise OSError(f"file {file_index} is not read directly")
            fd = os.open(source[0], os.O_RDONLY | getattr(os, "O_BINARY", 0))
            kept = self._fds.setdefault(file_index, fd)  # another worker may have been first
            if kept != fd:
                os.close(fd)
                fd = kept
        return fd

    def _pread(self, file_index: int, offset: int, dtype: np.dtype, count: int) -> np.ndarray:
        """``count`` values of ``dtype`` at byte ``offset``, into a new array."""
        out = np.empty(count, dtype)
        view = out.view(np.uint8).data
        fd = self._fd(file_index)
        done = 0
        while done < view.nbytes:  # a single read returns at most ~2 GiB on Linux
            got = os.preadv(fd, [view[done:]], offset + done)
            if got <= 0:
                raise CorruptFileError(
                    "the file ends before the dataset does (truncated?)", path=self.displays[file_index]
                )
            done += got
        return out

    def raw_bytes(self, var: Located, limit: int) -> tuple[np.dtype, bytes] | None:
        """(raw dtype, the stored bytes) of a directly readable variable of at most ``limit``
        bytes, else None: equal raw dtypes and bytes mean identical values, with no numpy at all
        (the cheap test for the many small variables of a model)."""
        direct = self._direct_layouts.get(var.location)
        if direct is None:
            return None
        fi, offset, dt, shape = direct
        n = dt.itemsize
        for d in shape:
            n *= d
        if n > limit:
            return None
        data = self._small(fi, offset, n) if n <= _SMALL else os.pread(self._fd(fi), n, offset)
        if len(data) != n:
            raise CorruptFileError("the file ends before the dataset does (truncated?)", path=self.displays[fi])
        return dt, data

    def _small(self, fi: int, offset: int, n: int) -> bytes:
        """n bytes at ``offset`` of file fi (fewer at its end). Small variables lie one after the
        other in a Keras file: a 64 KiB window read ahead serves the next ones (one system call for
        dozens of variables)."""
        win = self._windows.get(fi)
        if win is None or not (win[0] <= offset and offset + n <= win[0] + len(win[1])):
            win = self._windows[fi] = (offset, os.pread(self._fd(fi), _WINDOW, offset))
        return win[1][offset - win[0] : offset - win[0] + n]

    def read(self, var: Located, selection: tuple = ()) -> np.ndarray:
        ds, e, direct = self._layout(var)
        try:
            if direct is not None and selection == ():
                fi, offset, dt, shape = direct
                raw = self._pread(fi, offset, dt, math.prod(shape)).reshape(shape)
            else:
                if ds is None:
                    ds, e = self._dataset(var)
                raw = ds[selection]
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            raise CorruptFileError(
                f"cannot read {var.path!r} ({_short(exc)})", path=self.displays[e.file_index]
            ) from None
        return widen(np.asarray(raw), e.dtype)

    def iter_blocks(self, var: Located, block_elems: int) -> Iterator[np.ndarray]:
        ds, e, direct = self._layout(var)
        display = self.displays[e.file_index]
        if direct is not None:
            fi, offset, dt, shape = direct
            total = math.prod(shape)
            step = max(1, int(block_elems))
            for start in range(0, total, step):
                try:
                    raw = self._pread(fi, offset + start * dt.itemsize, dt, min(step, total - start))
                except OSError as exc:
                    raise CorruptFileError(f"cannot read {var.path!r} ({_short(exc)})", path=display) from None
                yield widen(raw, e.dtype)
            return
        for sel in block_selections(tuple(ds.shape), block_elems):
            try:
                raw = ds[sel]
            except (OSError, RuntimeError, ValueError, TypeError) as exc:
                raise CorruptFileError(f"cannot read {var.path!r} ({_short(exc)})", path=display) from None
            yield widen(np.asarray(raw), e.dtype).reshape(-1)

    def verify(self) -> None:
        """The checks of the bytes read that run while they are read (the CRC-32 of a ``.keras``
        member read in place): a CorruptFileError if one failed."""
        for r in self._owned:
            check = getattr(r, "verify", None)
            if check is not None:
                check()

    def close(self) -> None:
        self._direct_layouts = {}
        self._groups = {}
        self._windows = {}
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        for f in self.files:
            try:
                f.close()
            except Exception:
                pass
        for r in self._owned:
            try:
                r.close()
            except Exception:
                pass
        self._owned = []
