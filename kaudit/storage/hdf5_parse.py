"""A small read-only HDF5 metadata parser in pure Python, for the layouts Keras writes.

h5py costs ~70 us of library calls per dataset to open it, check its links, read its shape,
dtype and layout (docs/performance.md); this module reads the same facts straight from the file
format (https://docs.hdfgroup.org/hdf5/develop/_f_m_t3.html) at a fraction of that, so a model
with thousands of small variables loads fast. It is a *fast path*, not a second HDF5 library:

* It understands exactly what Keras, tf_keras and h5py write by default: superblock version 0 or
  1 with 8-byte offsets and lengths, version 1 object headers, old-style groups (symbol table,
  v1 B-tree, local heap), hard links only, contiguous uncompressed datasets of integer, float or
  2-byte opaque (bfloat16) type, and attributes holding strings (fixed or variable length,
  the latter in the global heap) or numbers.
* Anything else (a soft, external or second hard link to a group, a shared message, a chunked,
  compressed, compact, virtual or external dataset) raises :class:`Unsupported`. The caller then
  reads the file with h5py and its guards (``hdf5.py``), which read, refuse or report it exactly
  as before: this module never has the last word on a file it does not fully understand.
* It is at least as strict as libhdf5 where it reads: what libhdf5 refuses (a signature, version,
  flag or size it checks, an address past the end the superblock declares), what would make its
  lookups find other objects (B-tree keys, unsorted symbol table nodes, names with a NUL) and what
  makes it loop (a global heap free-space object of size 0) raise :class:`Damaged`: the file is
  refused as damaged, never handed to h5py (tests/test_h5_strictness.py).
* It is bounded: every read is checked against the size of the HDF5 image, every loop against
  a count, every walk against the addresses already visited; no allocation follows a size the
  file declares without a limit. Being pure Python it cannot crash the process.

Metadata is read with ``os.pread`` in 64 KiB pages (a few kept); values are never read here.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections import OrderedDict
from typing import NoReturn

import numpy as np

#: An HDF5 "undefined address".
UNDEF = 0xFFFFFFFFFFFFFFFF
_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_PAGE = 1 << 16
_KEEP_PAGES = 64
_MAX_TREE_NODES = 1 << 16  # B-tree nodes (and symbol table nodes) of one group
_MAX_HEADER = 4 << 20  # an object header, all its blocks (bounds the messages parsed: 8 bytes each at least)
_MAX_CONTINUATIONS = 256
_MAX_TREE_DEPTH = 32
_MAX_HEAP = 64 << 20  # a local heap (names of a group's entries) or global heap collection
_MAX_ATTR = 64 << 20  # an attribute's value (json_attr refuses > 64 MiB of model_config anyway)
_MAX_ELEMENTS = 1 << 24  # elements of an attribute
#: Objects kept parsed, per generation (two): a Keras 3 reader visits each layer's groups twice, a
#: model's worth of them (~1 KiB each) is kept for models of up to ~4,000 layers.
_RECENT = 4096
_MAX_BLOCK = 1 << 20  # an object header block (HDF5 keeps attributes in headers under 64 KiB)
_MAX_GHEAP_READ = 256 << 20  # global heap bytes read per file (where variable-length strings live)
_GHEAP_KEPT = 32  # global heap collections kept read, per generation (two)
_MAX_K = 1 << 10  # B-tree "K" (HDF5 writes 4 and 16); bounds the entries per node
_MAX_ENTRIES = 1 << 20  # entries of one group (symbol table entries parsed, duplicates included)
_MAX_DIM = 1 << 62  # a dimension HDF5 itself could allocate

_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from
_u64 = struct.Struct("<Q").unpack_from
_msg_v1 = struct.Struct("<HHB").unpack_from
_entry = struct.Struct("<QQI").unpack_from  # symbol table entry: name offset, header address, cache type
_two64 = struct.Struct("<QQ").unpack_from
_three16 = struct.Struct("<HHH").unpack_from
_three64 = struct.Struct("<QQQ").unpack_from
_prefix = struct.Struct("<HII").unpack_from

# standard IEEE layouts: size -> (bit offset, precision, exponent location, exponent size,
# mantissa location, mantissa size, exponent bias)
_IEEE = {
    2: (0, 16, 10, 5, 0, 10, 15),
    4: (0, 32, 23, 8, 0, 23, 127),
    8: (0, 64, 52, 11, 0, 52, 1023),
}
_FLOAT_PROPS = struct.Struct("<HHBBBBI").unpack_from


class Unsupported(Exception):
    """The fast path does not handle this file (or this part of it): read it with h5py."""


class Damaged(Unsupported):
    """The file's metadata contradicts itself or the format: a signature, version or flag HDF5
    refuses, an address past the end of the file, a heap or B-tree that does not add up. The file
    is reported as damaged (exit 2) and never handed to h5py, whose reading of such bytes may
    disagree or never end. ``path`` is the file (or archive) whose image it is."""

    def __init__(self, why: str, path: str | None = None):
        super().__init__(why)
        self.why = why
        self.path = path


def _no(why: str) -> NoReturn:
    raise Unsupported(why)


def _bad(why: str) -> NoReturn:
    raise Damaged(why)


#: What a parse of damaged bytes may raise on the way (a field past the end of its buffer, a
#: value out of range...): turned into Unsupported at each entry point, so a caller sees one kind
#: of failure.
_DAMAGE = (struct.error, IndexError, ValueError, TypeError, KeyError, OverflowError, MemoryError, RecursionError)


def _damaged(exc: BaseException) -> Damaged:
    return Damaged(f"metadata that does not parse ({type(exc).__name__})")


def _tag(exc: Damaged, path: str) -> Damaged:
    if exc.path is None:
        exc.path = path
    return exc


class _Image:
    """The bytes of one HDF5 image: a file, or a stretch of one (a zip member stored as is),
    read in 64 KiB pages, the last few kept. Every read goes through :meth:`at`."""

    __slots__ = ("_pages", "base", "fd", "size")

    def __init__(self, path: str, base: int, size: int):
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self.base = base
        self.size = size
        self._pages: OrderedDict[int, bytes] = OrderedDict()

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def at(self, addr: int, n: int) -> tuple[bytes, int]:
        """(buffer, offset) such that buffer[offset:offset + n] are the n bytes at ``addr``."""
        off = addr & 0xFFFF
        if off + n <= 0x10000:  # within one page: the common case, kept short
            buf = self._pages.get(addr >> 16)
            if buf is not None and off + n <= len(buf):  # a page holds no byte past the image
                return buf, off
        return self._at(addr, n)

    def _at(self, addr: int, n: int) -> tuple[bytes, int]:
        if addr < 0 or n < 0 or addr + n > self.size:
            _bad("an address past the end of the file")
        page = addr >> 16
        off = addr & (_PAGE - 1)
        if off + n <= _PAGE:
            buf = self._pages.get(page)
            if buf is None:
                if len(self._pages) >= _KEEP_PAGES:
                    self._pages.popitem(last=False)  # the oldest
                start = page << 16
                size = min(_PAGE, self.size - start)
                buf = self._pages[page] = os.pread(self.fd, size, self.base + start)
            if off + n > len(buf):
                _bad("a short read (truncated?)")
            return buf, off
        buf = os.pread(self.fd, n, self.base + addr)
        if len(buf) != n:
            _bad("a short read (truncated?)")
        return buf, 0

    def read(self, addr: int, n: int) -> bytes:
        buf, off = self.at(addr, n)
        return buf[off : off + n]


class File:
    """An HDF5 image opened for metadata. ``root`` is its root group."""

    def __init__(self, path: str, base: int = 0, size: int | None = None):
        if size is None:
            size = os.path.getsize(path) - base
        self.image = _Image(path, base, size)
        self.path = path
        self._groups_seen: dict[int, str] = {}  # group header address -> its path (one name per group)
        # global heap collections read (their objects by index), in two generations as _recent and
        # _older: a model's variable-length strings come from a few dozen collections, met in
        # the order of its layers rather than of the file
        self._gheap: dict[int, dict[int, bytes]] = {}
        self._gheap_older: dict[int, dict[int, bytes]] = {}
        self._gheap_read = 0
        # the objects used last (readers ask for a group's entries, then for its datasets...; a
        # big group's entries are parsed once)
        self._recent: dict[tuple[int, str], Group | Dataset] = {}
        self._older: dict[tuple[int, str], Group | Dataset] = {}
        try:
            self.root = self._superblock()
        except _DAMAGE as exc:
            self.image.close()
            raise _tag(_damaged(exc), path) from None
        except Damaged as exc:
            self.image.close()
            raise _tag(exc, path) from None
        except BaseException:
            self.image.close()
            raise

    @property
    def base(self) -> int:
        return self.image.base

    def close(self) -> None:
        self.image.close()

    @contextlib.contextmanager
    def lookups(self):
        """A reader's walk of the file: the objects met are kept for it (see :meth:`_object`), and
        so are the global heap collections read; both are forgotten when it ends (a later lookup
        parses its object or reads its collection again, with the same checks)."""
        try:
            yield
        finally:
            self._recent = {}
            self._older = {}
            self._gheap = {}
            self._gheap_older = {}

    def _superblock(self) -> Group:
        img = self.image
        buf, o = img.at(0, min(img.size, 96))
        if buf[o : o + 8] != _SIGNATURE:
            _no("no HDF5 signature at the start")
        version = buf[o + 8]
        if version not in (0, 1):
            _no(f"superblock version {version}")
        if buf[o + 13] not in (2, 4, 8, 16, 32) or buf[o + 14] not in (2, 4, 8, 16, 32):
            _bad("a superblock with impossible address or length sizes")
        if buf[o + 13] != 8 or buf[o + 14] != 8:
            _no("offsets or lengths are not 8 bytes")
        # what HDF5 checks of a version 0/1 superblock (H5Fsuper_cache.c): the versions of the
        # free-space, root group entry and shared header formats, the B-tree ranks, the flags
        if buf[o + 9] != 0 or buf[o + 10] != 0 or buf[o + 12] != 0:
            _bad("a superblock with unknown format versions")
        # B-tree node sizes: a symbol table node holds at most 2 * leaf K entries, a group B-tree
        # node at most 2 * internal K children (HDF5's defaults: 4 and 16)
        self.leaf_k, self.node_k = struct.unpack_from("<HH", buf, o + 16)
        if self.leaf_k == 0 or self.node_k == 0:
            _bad("a superblock with a B-tree rank of 0")
        if self.leaf_k > _MAX_K or self.node_k > _MAX_K:
            _no("B-tree node sizes out of range")
        if _u32(buf, o + 20)[0] & ~0x07:
            _bad("a superblock with unknown flags")
        if version == 1 and _u16(buf, o + 24)[0] == 0:
            _bad("a superblock with a B-tree rank of 0")
        p = o + 24 + (4 if version == 1 else 0)
        base, extension, eof, driver = struct.unpack_from("<QQQQ", buf, p)
        if base != 0:
            _no("a base address other than 0")
        if extension != UNDEF or driver != UNDEF:
            _no("a superblock extension or driver information block")
        if eof == UNDEF:
            _no("no end-of-file address")
        if eof > img.size:
            _bad("the file is shorter than its superblock says (truncated?)")
        img.size = eof  # HDF5 reads nothing past the end its superblock gives
        img._pages.clear()  # (the superblock's page may hold bytes past it)
        p += 32  # the root group's symbol table entry
        _name, header, cache = _entry(buf, p)
        if cache > 2:
            _bad("a symbol table entry of unknown cache type")
        root = self._object(header, "/")
        if not isinstance(root, Group):
            _no("a root object that is not a group")
        return root

    # -- object headers ------------------------------------------------------------------------

    def _messages(self, addr: int) -> tuple[list[tuple[int, int, bytes, int, int]], int]:
        """([(type, flags, buffer, offset, size)], reference count) of the object header at addr."""
        img = self.image
        buf, o = img.at(addr, 16)
        if buf[o] != 1:
            if buf[o : o + 4] == b"OHDR":
                _no("an object header other than version 1")
            _bad("an object header of unknown version")
        nmsg, refcount, size = _prefix(buf, o + 2)
        if size > _MAX_BLOCK:
            _no("an object header block over 1 MiB")
        # each block is copied: a page must not stay alive with the objects parsed from it
        if o + 16 + size <= len(buf):  # the first block follows the prefix, in the same page
            blk = buf[o + 16 : o + 16 + size]
        else:
            buf, o = img.at(addr + 16, size)
            blk = buf[o : o + size]
        out: list = []
        pending: list[tuple[int, int]] | None = None  # continuation blocks still to read (most headers: none)
        seen: set[int] | None = None
        total = size
        count = 0  # every message, NIL and continuation messages included
        while True:
            o = 0
            while o + 8 <= size:
                count += 1
                mtype, msize, mflags = _msg_v1(blk, o)
                body = o + 8
                o = body + msize
                if o > size:
                    _bad("an object header message overruns its block")
                if msize & 7 or (mflags & 0xE4 and _bad_flags(mtype, mflags)):  # (no refusal without these bits)
                    _bad("an object header message HDF5 refuses (misaligned, or a bad flag combination)")
                if mtype == 0x16:
                    _bad("a reference count message in a version 1 object header")
                if mtype == 0x10:  # continuation
                    if pending is None:
                        pending = []
                    pending.append(_two64(blk, body))
                elif mtype:  # (0: a NIL message, padding)
                    out.append((mtype, mflags, blk, body, msize))
            if o != size:
                _bad("an object header block that its messages do not fill")
            if not pending:
                break
            if seen is None:
                seen = {addr}
            caddr, size = pending.pop(0)
            total += size
            if caddr in seen:
                _bad("object header continuations that loop")
            if len(seen) > _MAX_CONTINUATIONS or size > _MAX_BLOCK or total > _MAX_HEADER:
                _no("object header continuations that are too large")
            seen.add(caddr)
            buf, o = img.at(caddr, size)
            blk = buf[o : o + size]
        if count != nmsg:  # HDF5: "bad object header message count"
            _bad("an object header with another number of messages than it declares")
        return out, refcount

    def _object(self, addr: int, name: str) -> Group | Dataset:
        key = (addr, name)
        obj = self._recent.get(key)
        if obj is None:
            obj = self._older.get(key)
            if obj is None:
                try:
                    obj = self._parse_object(addr, name)
                except _DAMAGE as exc:
                    raise _tag(_damaged(exc), self.path) from None
                except Damaged as exc:
                    raise _tag(exc, self.path) from None
            if len(self._recent) >= _RECENT:  # two generations: the last _RECENT to 2 * _RECENT used
                self._older = self._recent
                self._recent = {}
            self._recent[key] = obj
        return obj

    def _parse_object(self, addr: int, name: str) -> Group | Dataset:
        if addr == UNDEF or addr >= self.image.size:
            _bad("a link to an address past the end of the file")
        msgs, refcount = self._messages(addr)
        group = dataset = False
        for mtype, mflags, _b, _o, _s in msgs:
            if mflags & 0x02:  # a shared message (e.g. a committed datatype)
                _no("a shared object header message")
            if mtype == 0x08:
                dataset = True
            elif mtype == 0x11 or mtype == 0x02 or mtype == 0x06:
                group = True
        if group:
            if refcount > 1:
                _no("a group linked more than once")
            if self._groups_seen.setdefault(addr, name) != name:
                _no("a group reached under two names")
            return Group(self, addr, name, msgs)
        if dataset:
            return Dataset(self, addr, name, msgs)
        _no("an object that is neither a group nor a dataset")

    # -- global heap (variable-length strings) ---------------------------------------------------

    def _keep_gheap(self, addr: int, coll: dict[int, bytes]) -> None:
        if len(self._gheap) >= _GHEAP_KEPT:
            self._gheap_older = self._gheap
            self._gheap = {}
        self._gheap[addr] = coll

    def gheap(self, addr: int, index: int) -> bytes:
        coll = self._gheap.get(addr)
        if coll is None:
            coll = self._gheap_older.get(addr)
            if coll is not None:
                self._keep_gheap(addr, coll)
        if coll is None:
            buf, o = self.image.at(addr, 16)
            if buf[o : o + 4] != b"GCOL" or buf[o + 4] != 1:
                _bad("a broken global heap collection")
            size = _u64(buf, o + 8)[0]
            if size < 16:
                _bad("a global heap collection of impossible size")
            if size > _MAX_HEAP:
                _no("a global heap collection of odd size")
            self._gheap_read += size
            if self._gheap_read > _MAX_GHEAP_READ:  # many overlapping collections: h5py's job
                _no("too much global heap")
            data, base = self.image.at(addr, size)  # in place: only the objects are copied
            coll = {}
            p = base + 16
            end = base + size
            # the walk HDF5 makes over the whole collection when it loads it (H5HGcache.c): every
            # object, then the free space (index 0), whose size includes its header
            while p < end:
                if p + 16 > end:  # too small for an object header: free space
                    break
                idx = _u16(data, p)[0]
                osize = _u64(data, p + 8)[0]
                if idx == 0:
                    if osize == 0:
                        _bad("a global heap collection HDF5 would read forever")
                    p += osize
                    continue
                if p + 16 + osize > end:
                    _bad("a global heap object overruns its collection")
                coll[idx] = data[p + 16 : p + 16 + osize]
                p += 16 + ((osize + 7) & ~7)
            if p > end:
                _bad("a global heap collection whose objects overrun it")
            self._keep_gheap(addr, coll)
        value = coll.get(index)
        if value is None:
            _bad("a missing global heap object")
        return value


#: Message classes HDF5 may share (dataspace, datatype, fill values, filters, attributes); the
#: others it refuses when flagged shareable. Unknown classes: 9 (debugging only) and 0x19 on.
_SHAREABLE = frozenset((0x01, 0x03, 0x04, 0x05, 0x0B, 0x0C))
_KNOWN = frozenset(range(0x19)) - {0x09}


def _bad_flags(mtype: int, flags: int) -> bool:
    """Whether HDF5 refuses a message with these flags (H5Ocache.c): shared and not shareable at
    once, "was unknown" without "mark if unknown" or with "fail if unknown", an unshareable class
    flagged shareable, an unknown class flagged "fail if unknown"."""
    return bool(
        (flags & 0x02 and flags & 0x04)
        or (flags & 0x20 and (flags & 0x08 or not flags & 0x10))
        or (flags & 0x40 and mtype in _KNOWN and mtype not in _SHAREABLE)
        or (flags & 0x80 and mtype not in _KNOWN)
    )


class _Node:
    __slots__ = ("_attrs", "_msgs", "addr", "file", "name")

    def __init__(self, file: File, addr: int, name: str, msgs: list):
        self.file = file
        self.addr = addr
        self.name = name
        self._msgs = msgs
        self._attrs: dict | None = None

    def _attr_table(self) -> dict:
        table = self._attrs
        if table is None:
            try:
                table = self._attrs = self._parse_attrs()
            except _DAMAGE as exc:
                raise _tag(_damaged(exc), self.file.path) from None
            except Damaged as exc:
                raise _tag(exc, self.file.path) from None
        return table

    def _parse_attrs(self) -> dict:
        table = {}
        for mtype, _flags, buf, o, size in self._msgs:
            if mtype == 0x0C:
                name, parsed = _attribute(buf, o, size)
                if name in table:
                    _no("an attribute name given twice")
                table[name] = parsed
            elif mtype == 0x15:
                _compact_only(buf, o, 2, "attributes")
        return table

    def attr(self, name: str, default=None):
        """The attribute decoded as ``_hdf5.decode(h5py's value)`` would be, or ``default``."""
        spec = self._attr_table().get(name)
        if spec is None:
            return default
        try:
            return _attr_value(self.file, spec)
        except _DAMAGE as exc:
            raise _tag(_damaged(exc), self.file.path) from None
        except Damaged as exc:
            raise _tag(exc, self.file.path) from None

    @property
    def attrs(self) -> _Attrs:
        return _Attrs(self)


class _Attrs:
    """Enough of h5py's AttributeManager for ``name in obj.attrs``."""

    __slots__ = ("node",)

    def __init__(self, node: _Node):
        self.node = node

    def __contains__(self, name: str) -> bool:
        return name in self.node._attr_table()


class Group(_Node):
    __slots__ = ("_links",)

    #: Objects met lately are kept by the file: a caller needs no cache of its own.
    caches_lookups = True

    def __init__(self, file: File, addr: int, name: str, msgs: list):
        super().__init__(file, addr, name, msgs)
        self._links: dict[str, int] | None = None

    def _table(self) -> dict[str, int]:
        links = self._links
        if links is None:
            try:
                links = self._links = _links(self.file, self._msgs)
            except _DAMAGE as exc:
                raise _tag(_damaged(exc), self.file.path) from None
            except Damaged as exc:
                raise _tag(exc, self.file.path) from None
        return links

    def keys(self) -> list[str]:
        """Entry names in h5py's order (by name, as bytes)."""
        return sorted(self._table())  # UTF-8 byte order is code point order: str order

    def child(self, name: str) -> Group | Dataset | None:
        addr = self._table().get(name)
        if addr is None:
            if "\0" in name:  # HDF5 (so h5py, so Keras) would look up the name up to its NUL
                raise Damaged("a name with a NUL inside (HDF5 would look up another one)", self.file.path)
            return None
        base = self.name.rstrip("/")
        return self.file._object(addr, f"{base}/{name}")

    def __contains__(self, name: str) -> bool:
        if "\0" in name and name not in self._table():
            raise Damaged("a name with a NUL inside (HDF5 would look up another one)", self.file.path)
        return "/" not in name and name in self._table()

    def __getitem__(self, name: str):
        obj = self.child(name) if "/" not in name else None
        if obj is None:
            raise KeyError(name)
        return obj

    def creation_order(self, names: list[str]) -> dict[str, int]:
        """A key per name that sorts them in the order they were written: their object header
        addresses (h5py allocates a new file's objects one after the other)."""
        table = self._table()
        return {n: table[n] for n in names}

    def steady_metadata_cache(self):
        """(No HDF5 metadata cache here.) The objects the file keeps for lookups (``File._object``)
        are let go when the reader is done: the table it built holds none of them, and thousands
        of parsed headers kept alive would only be walked by every collection of the garbage
        collector (and paid in RSS) while the checkpoint stays open."""
        return self.file.lookups()

    def close(self) -> None:  # the root group stands for the file (H5Store closes its files)
        self.file.close()


class Dataset(_Node):
    __slots__ = ("dtype", "nbytes", "offset", "shape")

    def __init__(self, file: File, addr: int, name: str, msgs: list):
        super().__init__(file, addr, name, msgs)
        shape = dtype = layout = None
        for mtype, _flags, buf, o, size in msgs:
            if mtype == 0x01:
                if shape is not None:
                    _bad("a dataset with two dataspace messages")
                shape = _dataspace(buf, o, size)
            elif mtype == 0x03:
                if dtype is not None:
                    _bad("a dataset with two datatype messages")
                dtype = _numeric_dtype(buf, o)
            elif mtype == 0x08:
                if layout is not None:
                    _bad("a dataset with two layout messages")
                layout = _layout(buf, o, size)
            elif mtype == 0x04 or mtype == 0x05:  # HDF5 decodes the fill value when it opens a dataset
                _fill_value(buf, o, size, mtype)
            elif mtype == 0x07:
                _no("external raw storage")
            elif mtype == 0x0B:
                _no("a filter pipeline")
        if shape is None or dtype is None or layout is None:
            _no("a dataset without dataspace, datatype or layout")
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dtype.itemsize
        addr, stored = layout
        if nbytes == 0:
            offset = None
        else:
            if addr == UNDEF or stored != nbytes:
                _no("storage that is unallocated or of another size than the shape says")
            if addr + nbytes > file.image.size:
                _bad("values past the end of the file")
            offset = file.image.base + addr
        self.shape = shape
        self.dtype = dtype
        self.offset = offset
        self.nbytes = nbytes

    def checked(self) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype): checked as the dataset was parsed (contiguous, inside the file)."""
        return self.shape, self.dtype

    @property
    def stored_dtype(self) -> np.dtype:
        return self.dtype

    def image_offset(self, shape: tuple[int, ...] | None = None, raw_dtype: np.dtype | None = None) -> int | None:
        """Byte offset of the values in the HDF5 image (None for an empty dataset)."""
        return None if self.offset is None else self.offset - self.file.image.base

    def read_all(self) -> np.ndarray:
        try:
            if self.offset is None:
                return np.zeros(self.shape, self.dtype)  # HDF5's fill value for unwritten storage
            img = self.file.image
            raw = os.pread(img.fd, self.nbytes, self.offset)
            if len(raw) != self.nbytes:
                _no("short read")
            return np.frombuffer(raw, self.dtype).reshape(self.shape).copy()
        except _DAMAGE as exc:
            raise _tag(_damaged(exc), self.file.path) from None
        except Damaged as exc:
            raise _tag(exc, self.file.path) from None

    def __getitem__(self, selection):
        return self.read_all()[selection]


# -- groups ----------------------------------------------------------------------------------------


def _links(file: File, msgs: list) -> dict[str, int]:
    """name -> object header address of a group's entries (hard links only)."""
    links: dict[str, int] = {}
    for mtype, _flags, buf, o, _size in msgs:
        if mtype == 0x11:
            btree, heap = _two64(buf, o)
            _symbol_table(file, btree, heap, links)
        elif mtype == 0x06:
            name, addr = _link_message(buf, o)
            if name in links:
                _no("a link name given twice")
            links[name] = addr
        elif mtype == 0x02:
            _compact_only(buf, o, 8, "links")
    return links


def _compact_only(buf: bytes, o: int, optional: int, what: str) -> None:
    """An attribute info (0x15) or link info (0x02) message at ``o``, whose flag bit 0 adds an
    ``optional``-byte field before the fractal heap address: entries kept in a fractal heap
    ("dense storage") are h5py's job."""
    if buf[o] != 0:
        _no(f"an info message for {what} of another version")
    if _u64(buf, o + 2 + (optional if buf[o + 1] & 1 else 0))[0] != UNDEF:
        _no(f"{what} in dense storage")


def _symbol_table(file: File, btree: int, heap: int, links: dict[str, int]) -> None:
    """The entries of an old-style group into ``links``, checked as HDF5 checks them when it
    looks a name up (H5HLcache.c, H5Bcache.c, H5Gnode.c): the local heap and its free list, the
    B-tree's node types, sizes and keys, and symbol table nodes whose entries are sorted and lie
    between the keys HDF5's binary searches follow. A group Keras could not look a name up in is
    damaged, however its entries read one by one."""
    img = file.image
    buf, o = img.at(heap, 32)
    if buf[o : o + 4] != b"HEAP" or buf[o + 4] != 0:
        _bad("a broken local heap")
    hsize, free, haddr = _three64(buf, o + 8)
    if hsize > _MAX_HEAP:
        _no("a huge local heap")
    if haddr == heap + 32 and o + 32 + hsize <= len(buf):  # the usual place: right after the header
        names, nbase = buf, o + 32
    else:
        names, nbase = img.at(haddr, hsize)  # the names: [nbase, nbase + hsize) of names
    nend = nbase + hsize
    if free != 1:  # the free list (1: its end)
        seen_free: set[int] = set()
        while free != 1:
            if free in seen_free or free + 16 > hsize:
                _bad("a local heap whose free list is broken")
            seen_free.add(free)
            nxt, fsize = _two64(names, nbase + free)
            if nxt == 0 or free + fsize > hsize:
                _bad("a local heap whose free list is broken")
            free = nxt

    def name_at(noff: int) -> bytes:
        if noff >= hsize:
            _bad("a name outside the local heap")
        end = names.find(b"\0", nbase + noff, nend)
        if end < 0:
            _bad("a name outside the local heap")
        return names[nbase + noff : end]

    visited: set[int] = set()
    snods: list[tuple[int, bytes, bytes | None]] = []
    _tree_node(img, btree, 0, visited, snods, 2 * file.node_k, name_at, b"", None)
    if len(snods) * 2 * file.leaf_k > _MAX_ENTRIES:
        _no("a group of more entries than kaudit reads itself")
    previous = b""
    for addr, low, high in snods:  # in key order, so entries come in name order
        if addr in visited:
            _bad("a symbol table node listed twice")
        visited.add(addr)
        b, p = img.at(addr, 8)
        if b[p : p + 4] != b"SNOD" or b[p + 4] != 1:
            _bad("a broken symbol table node")
        count = _u16(b, p + 6)[0]
        if count > 2 * file.leaf_k:
            _bad("a symbol table node with more entries than the file's B-tree allows")
        if p + 8 + count * 40 <= len(b):
            p += 8
        else:
            b, p = img.at(addr + 8, count * 40)
        for k in range(count):
            noff, header, cache = _entry(b, p + 40 * k)
            if cache > 2:
                _bad("a symbol table entry of unknown cache type")
            if noff >= hsize:  # (name_at, inline: the entries are most of the names read)
                _bad("a name outside the local heap")
            start = nbase + noff
            end = names.find(b"\0", start, nend)
            if end < 0:
                _bad("a name outside the local heap")
            raw = names[start:end]
            # HDF5 finds a name by binary search: the entries sorted, each above the node's left
            # key and at most its right key
            if not raw or raw <= previous or raw <= low or (high is not None and raw > high):
                _bad("a group whose entries are out of order (HDF5 would not find them by name)")
            previous = raw
            if cache == 2:
                _no("a soft link")
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                _no("an entry name that is not UTF-8")
            links[name] = header


def _tree_node(
    img: _Image,
    addr: int,
    depth: int,
    visited: set[int],
    snods: list[tuple[int, bytes, bytes | None]],
    fanout: int,
    name_at,
    low: bytes,
    high: bytes | None,
) -> None:
    """The symbol table nodes below a group B-tree node, in order, each with the keys that bound
    its names (``low`` < name <= ``high``; None: no bound above)."""
    if addr in visited or depth > _MAX_TREE_DEPTH:
        _bad("a group B-tree that loops")
    if len(visited) + len(snods) > _MAX_TREE_NODES:
        _no("a group B-tree that is too large")
    visited.add(addr)
    b, p = img.at(addr, 24)
    if b[p : p + 4] != b"TREE" or b[p + 4] != 0:
        _bad("a broken group B-tree node")
    level = b[p + 5]
    used = _u16(b, p + 6)[0]
    if used > fanout:
        _bad("a group B-tree node with more children than the file's B-tree allows")
    if p + 32 + used * 16 <= len(b):
        p += 24
    else:
        b, p = img.at(addr + 24, 8 + used * 16)
    left = name_at(_u64(b, p)[0])
    for k in range(used):
        child, right_off = _two64(b, p + 8 + 16 * k)
        right = name_at(right_off)
        if right < left:
            _bad("a group B-tree whose keys are out of order")
        lo = max(low, left)
        hi = right if high is None else min(high, right)
        if level > 0:
            _tree_node(img, child, depth + 1, visited, snods, fanout, name_at, lo, hi)
        else:
            snods.append((child, lo, hi))
        left = right


def _link_message(buf: bytes, o: int) -> tuple[str, int]:
    if buf[o] != 1:
        _no("a link message of another version")
    flags = buf[o + 1]
    p = o + 2
    ltype = 0
    if flags & 0x08:
        ltype = buf[p]
        p += 1
    if flags & 0x04:
        p += 8
    if flags & 0x10:
        p += 1
    width = 1 << (flags & 3)
    nlen = int.from_bytes(buf[p : p + width], "little")
    p += width
    if ltype != 0:
        _no("a soft or external link")
    try:
        name = buf[p : p + nlen].decode("utf-8")
    except UnicodeDecodeError:
        _no("a link name that is not UTF-8")
    if len(name.encode("utf-8")) != nlen or not name:
        _no("a broken link message")
    return name, _u64(buf, p + nlen)[0]


# -- dataspaces, datatypes, layouts ------------------------------------------------------------------


def _dataspace(buf: bytes, o: int, size: int) -> tuple[int, ...]:
    """The dims of a dataspace message of ``size`` bytes at ``o``: decoded and checked once per
    distinct message (a model's datasets share a few dozen shapes). A message that decodes reads
    no byte outside its ``size``, so its bytes are the whole key; one that fails is not kept."""
    key = buf[o : o + size]
    dims = _SPACES.get(key)
    if dims is None:
        dims = _decode_dataspace(buf, o, size)
        if len(_SPACES) >= 1024:
            _SPACES.clear()
        _SPACES[key] = dims
    return dims


_SPACES: dict[bytes, tuple[int, ...]] = {}


def _decode_dataspace(buf: bytes, o: int, size: int) -> tuple[int, ...]:
    version, rank, flags = buf[o], buf[o + 1], buf[o + 2]
    if version == 1:
        head = 8
        arrays = 1 + (flags & 1) + ((flags >> 1) & 1)  # dims, max dims, permutation
    elif version == 2:
        if buf[o + 3] == 2:
            _no("a null dataspace")
        if buf[o + 3] > 2:
            _bad("a dataspace of unknown type")
        head = 4
        arrays = 1 + (flags & 1)
    else:
        _bad("a dataspace of unknown version")
    if rank > 32 or head + arrays * 8 * rank > size:
        _bad("a dataspace larger than its message")
    if not rank:
        return ()
    fmt = _DIMS[rank]
    dims = fmt(buf, o + head)
    if max(dims) > _MAX_DIM:
        _no("a dimension beyond what HDF5 can address")
    if flags & 1:  # max dims: each at least its dim (or unlimited), as HDF5 checks
        maxes = fmt(buf, o + head + 8 * rank)
        if maxes != dims:  # (h5py writes them equal)
            for d, m in zip(dims, maxes, strict=True):
                if m != UNDEF and m < d:
                    _bad("a dimension above its maximum")
    return dims


_DIMS = [struct.Struct(f"<{rank}Q").unpack_from for rank in range(33)]


_DTYPES: dict[bytes, np.dtype] = {}


def _type_class(buf: bytes, o: int) -> int:
    """The class of the datatype message at ``o``: a version or class HDF5 does not know is damage
    (H5Odtype.c), another version than h5py writes for these classes is left to h5py."""
    version, cls = buf[o] >> 4, buf[o] & 0x0F
    if not 1 <= version <= 4 or cls > 10:
        _bad("a datatype of unknown version or class")
    if version != 1:
        _no("a datatype message of another version")
    return cls


def _numeric_dtype(buf: bytes, o: int) -> np.dtype:
    """The numpy dtype h5py gives an integer, float or 2-byte opaque HDF5 type; else Unsupported."""
    key = bytes(buf[o : o + 20])
    dt = _DTYPES.get(key)
    if dt is not None:
        return dt
    cls = _type_class(buf, o)
    bits = buf[o + 1] | (buf[o + 2] << 8) | (buf[o + 3] << 16)
    size = _u32(buf, o + 4)[0]
    order = ">" if bits & 1 else "<"
    if cls == 0:  # fixed point
        offset, precision = struct.unpack_from("<HH", buf, o + 8)
        if size not in (1, 2, 4, 8) or offset != 0 or precision != 8 * size or bits & 0x06:
            _no("an integer type with padding")
        dt = np.dtype(f"{order}{'i' if bits & 0x08 else 'u'}{size}")
    elif cls == 1:  # floating point
        if bits & 0x40 or bits & 0x0E or ((bits >> 4) & 3) != 2 or ((bits >> 8) & 0xFF) != 8 * size - 1:
            _no("a float type of unusual layout")
        if _IEEE.get(size) != _FLOAT_PROPS(buf, o + 8):
            _no("a float type of unusual layout")
        dt = np.dtype(f"{order}f{size}")
    elif cls == 5 and size == 2:  # opaque: Keras 3's bfloat16
        dt = np.dtype("V2")
    else:
        _no(f"a datatype of class {cls}")
    if len(_DTYPES) < 64:
        _DTYPES[key] = dt
    return dt


def _fill_value(buf: bytes, o: int, size: int, mtype: int) -> None:
    """Check a fill value message (0x05; 0x04, the old kind) as HDF5 decodes it (H5Ofill.c): once
    per distinct message of 8 bytes or more (the check reads none past its first 8 bytes and its
    size; a model's datasets share one or two); one that fails is not kept."""
    if size < 8:
        _check_fill_value(buf, o, size, mtype)
        return
    key = (mtype, size, buf[o : o + size])
    if key not in _FILLS:
        _check_fill_value(buf, o, size, mtype)
        if len(_FILLS) >= 256:
            _FILLS.clear()
        _FILLS.add(key)


_FILLS: set[tuple[int, int, bytes]] = set()


def _check_fill_value(buf: bytes, o: int, size: int, mtype: int) -> None:
    if mtype == 0x04:
        if 4 + _u32(buf, o)[0] > size:
            _bad("a fill value overrunning its message")
        return
    version = buf[o]
    if version in (1, 2):
        if not 1 <= buf[o + 1] <= 3 or buf[o + 2] > 2 or buf[o + 3] > 1:
            _bad("a fill value message of unknown settings")
        defined = version == 1 or buf[o + 3]
        p = o + 4
    elif version == 3:
        flags = buf[o + 1]
        if flags & ~0x3F or flags & 0x0C == 0x0C or (flags & 0x10 and flags & 0x20):
            _bad("a fill value message of unknown settings")
        defined = flags & 0x20
        p = o + 2
    else:
        _bad("a fill value message of unknown version")
    if defined and p + 4 + _u32(buf, p)[0] > o + size:
        _bad("a fill value overrunning its message")


def _layout(buf: bytes, o: int, size: int) -> tuple[int, int]:
    """(address, size) of contiguous storage; anything else is Unsupported."""
    version = buf[o]
    if version in (3, 4):
        if buf[o + 1] != 1:
            _no("a dataset layout other than contiguous")
        return _two64(buf, o + 2)
    if version in (1, 2):
        rank, cls = buf[o + 1], buf[o + 2]
        if cls != 1:
            _no("a dataset layout other than contiguous")
        addr = _u64(buf, o + 8)[0]
        dims = struct.unpack_from(f"<{rank}I", buf, o + 16)
        n = 1
        for d in dims:
            n *= d
        return addr, n
    _no("a layout message of another version")


# -- attributes --------------------------------------------------------------------------------------


def _attribute(buf: bytes, o: int, size: int) -> tuple[str, tuple]:
    """(name, (datatype buffer, offset, dataspace shape, data buffer, data offset, data size)),
    decoded and checked once per distinct message head (``_ATTRS``): what the decoding reads is
    the message's size and its bytes up to its value (name, datatype, dataspace; with the 20
    bytes a variable-length type is checked on and the dataspace's first 4), all in the key. A
    model's layers repeat a few (``weight_names`` of two weights...). One that fails is not kept."""
    version = buf[o]
    nsize, tsize, ssize = _three16(buf, o + 2)
    if version == 1:  # as _decode_attribute lays the message out
        tpos = o + 8 + ((nsize + 7) & ~7)
        spos = tpos + ((tsize + 7) & ~7)
        data = spos + ((ssize + 7) & ~7)
    elif version in (2, 3):
        tpos = o + 8 + (1 if version == 3 else 0) + nsize
        spos = tpos + tsize
        data = spos + ssize
    else:
        return _decode_attribute(buf, o, size)  # (refused there)
    key = (size, buf[o : max(data, tpos + 20, spos + 4)])
    found = _ATTRS.get(key)
    if found is not None:
        name, shape = found
        return name, (buf, tpos, shape, data, o + size - data)
    name, spec = _decode_attribute(buf, o, size)
    if len(_ATTRS) >= 1024:
        _ATTRS.clear()
    _ATTRS[key] = (name, spec[2])
    return name, spec


_ATTRS: dict[tuple[int, bytes], tuple[str, tuple[int, ...]]] = {}


def _decode_attribute(buf: bytes, o: int, size: int) -> tuple[str, tuple]:
    version = buf[o]
    nsize, tsize, ssize = struct.unpack_from("<HHH", buf, o + 2)
    if version == 1:  # name, datatype and dataspace each padded to 8 bytes
        p = o + 8
        nlen, tlen, slen = (nsize + 7) & ~7, (tsize + 7) & ~7, (ssize + 7) & ~7
    elif version in (2, 3):
        if buf[o + 1] & 0x03:
            _no("a shared attribute datatype or dataspace")
        p = o + 8 + (1 if version == 3 else 0)
        nlen, tlen, slen = nsize, tsize, ssize
    else:
        _no("an attribute message of another version")
    end = o + size
    if nsize == 0 or p + nlen + tlen + slen > end:
        _no("a broken attribute message")
    raw = buf[p : p + nsize]
    if raw[-1:] != b"\0":
        _no("an attribute name without its terminator")
    if b"\0" in raw[:-1]:  # HDF5: "attribute name has different length than stored length"
        _bad("an attribute name shorter than its stored length")
    try:
        name = raw[:-1].decode("utf-8")
    except UnicodeDecodeError:
        _no("an attribute name that is not UTF-8")
    p += nlen
    tpos = p
    p += tlen
    spos = p
    p += slen
    space_version = buf[spos]
    if space_version == 2 and buf[spos + 3] == 2:
        _no("an empty attribute")
    shape = _dataspace(buf, spos, ssize)
    # HDF5 decodes every attribute message it passes when it looks one up by name: each must be
    # sound, read or not
    cls = _type_class(buf, tpos)
    esize = _u32(buf, tpos + 4)[0]
    if cls == 9:
        if buf[tpos + 1] & 0x0F > 1 or buf[tpos + 1] >> 4 > 2:
            _bad("a variable-length type of unknown kind or padding")  # (HDF5 loops on some)
        if buf[tpos + 1] & 0x0F != 1:
            _no("a variable-length sequence attribute")
        if esize != 16 or bytes(buf[tpos + 8 : tpos + 20]) != _VLEN_CHAR:
            _no("a variable-length string attribute of another base type")
    count = 1
    for d in shape:
        count *= d
    if count * esize > end - p:
        _bad("an attribute whose value overruns its message")
    return name, (buf, tpos, shape, p, end - p)


#: The base type of a variable-length string as HDF5 writes it: 1-byte unsigned integer, no padding.
_VLEN_CHAR = bytes((0x10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 8, 0))


def _attr_value(file: File, spec: tuple):
    buf, t, shape, data, avail = spec
    cls = _type_class(buf, t)
    bits = buf[t + 1] | (buf[t + 2] << 8)
    size = _u32(buf, t + 4)[0]
    count = 1
    for d in shape:
        count *= d
    if len(shape) > 1 or count > _MAX_ELEMENTS:
        _no("an attribute of rank > 1")
    # the character set: bits 4-7 of a fixed-length string's type, bits 8-11 of a variable-length one's
    if (cls == 3 and (bits >> 4) & 0x0F > 1) or (cls in (3, 9) and (bits >> 8) & 0x0F > 1):
        _bad("a string of unknown character set")  # (h5py knows ASCII and UTF-8 only)
    if cls == 3:  # fixed-length string
        pad = bits & 0x0F
        if pad not in (0, 1) or size * count > min(avail, _MAX_ATTR):
            _no("a space-padded or broken string attribute")
        items = []
        for k in range(count):
            raw = buf[data + k * size : data + (k + 1) * size]
            raw = raw.split(b"\0", 1)[0] if pad == 0 else raw.rstrip(b"\0")
            items.append(raw.decode("utf-8", errors="replace"))
        return items[0] if not shape else items
    if cls == 9:  # variable-length
        if bits & 0x0F != 1:
            _no("a variable-length sequence attribute")
        if 16 * count > avail:
            _no("a broken variable-length attribute")
        items = []
        total = 0
        for k in range(count):
            length, gaddr, index = struct.unpack_from("<IQI", buf, data + 16 * k)
            if length == 0:
                items.append("")
                continue
            raw = file.gheap(gaddr, index)
            if length != len(raw):  # HDF5 reads it only when the two sizes agree
                _bad("a variable-length string of another length than its heap object")
            total += length
            if total > _MAX_ATTR:
                _no("a huge attribute")
            try:
                items.append(raw[:length].decode("utf-8"))
            except UnicodeDecodeError:
                _no("a variable-length string that is not UTF-8")
        return items[0] if not shape else items
    if cls in (0, 1):
        dt = _numeric_dtype(buf, t)
        if dt.itemsize * count > avail:
            _no("a broken numeric attribute")
        value = np.frombuffer(buf, dt, count, data).copy()
        if not shape:
            return value[0].item()
        return value if count else []
    _no(f"an attribute of datatype class {cls}")
