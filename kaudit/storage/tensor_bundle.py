"""TensorFlow tensor bundles read without TensorFlow: TF2 checkpoints (``PREFIX.index`` +
``PREFIX.data-NNNNN-of-MMMMM``) and a SavedModel's ``variables/variables.*``.

Format (tensorflow/core/util/tensor_bundle/tensor_bundle.cc, core/lib/io/table*.cc, format.cc,
block.cc):

* ``.index`` is a sorted string table (LevelDB's table format): data blocks of prefix-compressed
  ``(key, value)`` entries with an array of restart points, a metaindex block, an index block
  (one ``(separator key, block handle)`` entry per data block) and a 48-byte footer (two block
  handles as varints, padding, magic ``57fb808b247547db``). Every block is followed by a type
  byte (0: stored, 1: snappy, which some TensorFlow releases wrote; decoded here, bounded) and the
  masked CRC32C of block + type byte.
* The entry of key ``""`` is a ``BundleHeaderProto`` (num_shards, endianness, version); every other
  value is a ``BundleEntryProto`` (dtype, shape, shard_id, offset, size, masked crc32c, slices)
  that locates a tensor's bytes in shard ``shard_id``: raw little-endian values for numeric types;
  for strings, varint64 lengths, a masked CRC32C of the lengths, then the bytes.

Every number read from a file is checked before it is used: block handles lie inside the file
(and before its footer), varints have at most 5/10 bytes, restart arrays fit their block and
point at entries with no shared prefix, shared prefixes are no longer than the previous key,
keys increase strictly (and agree with the index separators), shapes are valid TensorShapes
whose byte size equals the entry's size, and every tensor lies inside its shard. Every block's
and every tensor's CRC32C is verified (tensors while they are streamed: the last block of a
tensor raises when the sum does not match). Broken files raise :class:`CorruptFileError`;
valid bundles that use something this reader does not implement (big-endian bundles,
partitioned variables, 4-bit and newer types, newer format versions) raise
:class:`NotNative`, an :class:`UnsupportedFormatError`, so a caller can hand them to TensorFlow.
Memory is bounded by the file sizes: blocks and tensors are read by their checked sizes.

Protocol buffers are decoded with the ``protobuf`` runtime from message classes built here at
run time from a small ``FileDescriptorProto`` (no protoc, no generated code): the parser is the
one TensorFlow's own generated classes use, so its rules (proto3 UTF-8 checks, last value wins,
repeated embedded messages merge, ``oneof`` members clear each other) hold without being
re-implemented. The descriptors declare only the fields kaudit reads (TensorFlow's field numbers
and wire types); other fields are skipped as unknown fields, unparsed, so a large
``saved_model.pb`` costs little more than its reading.
"""

from __future__ import annotations

import functools
import math
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import crc32c as _crc32c
import numpy as np

from ..errors import CorruptFileError, UnsupportedFormatError

MAGIC = bytes.fromhex("57fb808b247547db")
FOOTER_SIZE = 48
_TRAILER = 5  # block type byte + masked crc32c
_NO_COMPRESSION, _SNAPPY = 0, 1
_MAX_DIMS = 254  # TensorShape::MaxDimensions()
_INT64_MAX = (1 << 63) - 1
_HEADER_KEY = b""
#: The bundle format version this reader understands (kTensorBundleVersion).
BUNDLE_VERSION = 1

DT_STRING = 7
DT_BFLOAT16 = 14


@dataclass(frozen=True)
class DType:
    """A TensorFlow dtype as stored: its name (numpy's, for the numeric ones), the numpy dtype of
    its stored bytes (None: variable-size elements), and whether kaudit reads its values."""

    code: int
    name: str
    stored: np.dtype | None
    numeric: bool


def _dtypes() -> dict[int, DType]:
    numeric = {
        1: "<f4",
        2: "<f8",
        3: "<i4",
        4: "u1",
        5: "<i2",
        6: "i1",
        8: "<c8",
        9: "<i8",
        10: "?",
        14: "<u2",
        17: "<u2",
        18: "<c16",
        19: "<f2",
        22: "<u4",
        23: "<u8",
    }
    # listed, not read (the TensorFlow-based reader does not read them either)
    other = {
        7: ("string", None),
        11: ("qint8", "i1"),
        12: ("quint8", "u1"),
        13: ("qint32", "<i4"),
        15: ("qint16", "<i2"),
        16: ("quint16", "<u2"),
        20: ("resource", None),
        21: ("variant", None),
        24: ("float8_e5m2", "u1"),
        25: ("float8_e4m3fn", "u1"),
        26: ("float8_e4m3fnuz", "u1"),
        27: ("float8_e4m3b11fnuz", "u1"),
        28: ("float8_e5m2fnuz", "u1"),
    }
    out = {
        c: DType(c, "bfloat16" if c == DT_BFLOAT16 else np.dtype(s).name, np.dtype(s), True) for c, s in numeric.items()
    }
    out.update({c: DType(c, n, None if s is None else np.dtype(s), False) for c, (n, s) in other.items()})
    return out


#: TensorFlow ``DataType`` codes this reader knows (types.proto). Others (4-bit and 2-bit integers,
#: float4, reference types, future types) are :class:`NotNative`.
DTYPES = _dtypes()


class NotNative(UnsupportedFormatError):
    """A bundle that uses something the native reader does not implement (TensorFlow reads it)."""


# -- CRC32C (tsl/lib/hash/crc32c.h) -------------------------------------------------------------------

_MASK_DELTA = 0xA282EAD8


def unmask(masked: int) -> int:
    """The CRC a masked one stands for (TensorFlow stores CRCs rotated right by 15 bits plus a
    constant)."""
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def crc32c(data, crc: int = 0) -> int:
    """CRC32C of ``data`` (any buffer) continuing from ``crc``. The ``crc32c`` package uses the
    CPU's CRC32C instruction where there is one and releases the GIL on large buffers, so the
    diff's two worker threads checksum in parallel."""
    return _crc32c.crc32c(data, value=crc)


# -- protocol buffers ----------------------------------------------------------------------------------

# message: [(field, number, type, repeated, oneof)]; a type is a scalar type name or a message name
_SCHEMA: dict[str, list[tuple]] = {
    "VersionDef": [("producer", 1, "int32"), ("min_consumer", 2, "int32"), ("bad_consumers", 3, "int32", True)],
    "BundleHeaderProto": [("num_shards", 1, "int32"), ("endianness", 2, "int32"), ("version", 3, "VersionDef")],
    "Dim": [("size", 1, "int64"), ("name", 2, "string")],
    "TensorShapeProto": [("dim", 2, "Dim", True), ("unknown_rank", 3, "bool")],
    "Extent": [("start", 1, "int64"), ("length", 2, "int64", False, "has_length")],
    "TensorSliceProto": [("extent", 1, "Extent", True)],
    "BundleEntryProto": [
        ("dtype", 1, "int32"),
        ("shape", 2, "TensorShapeProto"),
        ("shard_id", 3, "int32"),
        ("offset", 4, "int64"),
        ("size", 5, "int64"),
        ("crc32c", 6, "fixed32"),
        ("slices", 7, "TensorSliceProto", True),
    ],
    # trackable_object_graph.proto
    "ObjectReference": [("node_id", 1, "int32"), ("local_name", 2, "string")],
    "SerializedTensor": [("name", 1, "string"), ("full_name", 2, "string"), ("checkpoint_key", 3, "string")],
    "TrackableObject": [("children", 1, "ObjectReference", True), ("attributes", 2, "SerializedTensor", True)],
    "TrackableObjectGraph": [("nodes", 1, "TrackableObject", True)],
    # saved_model.proto, meta_graph.proto, saved_object_graph.proto: the Keras metadata of TF <= 2.4
    "SavedUserObject": [("identifier", 1, "string"), ("metadata", 3, "string")],
    "SavedObject": [("children", 1, "ObjectReference", True), ("user_object", 4, "SavedUserObject", False, "kind")]
    + [(f"kind_{n}", n, "bytes", False, "kind") for n in (5, 6, 7, 8, 9, 10, 12)],  # the other kinds
    "SavedObjectGraph": [("nodes", 1, "SavedObject", True)],
    "MetaGraphDef": [("object_graph_def", 7, "SavedObjectGraph")],
    "SavedModel": [("meta_graphs", 2, "MetaGraphDef", True)],
}


@functools.cache
def messages() -> dict[str, type]:
    """Message classes for the names of ``_SCHEMA`` (proto3, TensorFlow's field numbers)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="kaudit_tensor_bundle.proto", package="kaudit_tf", syntax="proto3")
    for name, fields in _SCHEMA.items():
        m = fdp.message_type.add(name=name)
        oneofs: list[str] = []
        for spec in fields:
            fname, number, ftype = spec[:3]
            repeated = len(spec) > 3 and spec[3]
            f = m.field.add(name=fname, number=number, label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if ftype in _SCHEMA:
                f.type, f.type_name = F.TYPE_MESSAGE, f".kaudit_tf.{ftype}"
            else:
                f.type = getattr(F, f"TYPE_{ftype.upper()}")
            if len(spec) > 4:
                if spec[4] not in oneofs:
                    oneofs.append(spec[4])
                    m.oneof_decl.add(name=spec[4])
                f.oneof_index = oneofs.index(spec[4])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"kaudit_tf.{name}")) for name in _SCHEMA}


def parse(name: str, data: bytes):
    """``data`` parsed as message ``name``; ValueError when it is not one."""
    from google.protobuf.message import DecodeError

    msg = messages()[name]()
    try:
        msg.ParseFromString(data)
    except (DecodeError, RecursionError) as exc:
        raise ValueError(str(exc) or "not a valid protocol buffer") from None
    return msg


# -- the sorted string table -------------------------------------------------------------------------


def _varint(buf: bytes, i: int, end: int, max_bytes: int) -> tuple[int, int]:
    """(value, next index) of the varint at ``buf[i:end]``: a varint32 (``max_bytes`` 5) or a
    varint64 (10); ValueError when truncated, longer, or out of range."""
    result = shift = 0
    for k in range(i, min(end, i + max_bytes)):
        b = buf[k]
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            if result >> (32 if max_bytes == 5 else 64):
                raise ValueError("varint out of range")
            return result, k + 1
        shift += 7
    raise ValueError("truncated varint" if end < i + max_bytes else "varint too long")


def unsnappy(src: bytes) -> bytes:
    """Decompress a raw snappy block (the table blocks of some TensorFlow releases): a varint
    length, then literals and back-references. The declared length is bounded by what the input
    can expand to (32 bytes per input byte, more than snappy's densest copy), every reference
    by what is already out."""
    n, i = _varint(src, 0, len(src), 5)
    if n > 32 * len(src):
        raise ValueError("declared length larger than the block can hold")
    out = bytearray()
    end = len(src)
    while i < end:
        tag = src[i]
        i += 1
        kind = tag & 3
        if kind == 0:  # literal
            length = tag >> 2
            if length >= 60:
                nb = length - 59
                if i + nb > end:
                    raise ValueError("truncated literal length")
                length = int.from_bytes(src[i : i + nb], "little")
                i += nb
            length += 1
            if i + length > end:
                raise ValueError("literal runs past the block")
            out += src[i : i + length]
            i += length
        else:  # copy: (length, offset) of 1, 2 or 4 offset bytes
            nb = (1, 2, 4)[kind - 1]
            if i + nb > end:
                raise ValueError("truncated copy")
            if kind == 1:
                length, offset = ((tag >> 2) & 7) + 4, ((tag >> 5) << 8) | src[i]
            else:
                length, offset = (tag >> 2) + 1, int.from_bytes(src[i : i + nb], "little")
            i += nb
            if not 0 < offset <= len(out):
                raise ValueError("copy from before the start")
            start = len(out) - offset
            if offset >= length:
                out += out[start : start + length]
            else:  # overlapping: the copy repeats its last ``offset`` bytes
                out += (out[start:] * (length // offset + 1))[:length]
        if len(out) > n:
            raise ValueError("more data than the declared length")
    if len(out) != n:
        raise ValueError("less data than the declared length")
    return bytes(out)


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one table block (block.cc), checked; ValueError if broken."""
    n = len(block)
    if n < 4:
        raise ValueError("block shorter than its restart count")
    (num_restarts,) = struct.unpack_from("<I", block, n - 4)
    if num_restarts > (n - 4) // 4:
        raise ValueError("restart array larger than the block")
    limit = n - 4 - 4 * num_restarts
    restarts = struct.unpack_from(f"<{num_restarts}I", block, limit)
    out: list[tuple[bytes, bytes]] = []
    starts: dict[int, int] = {}  # entry offset -> shared prefix length
    prev = b""
    i = 0
    while i < limit:
        start = i
        shared, i = _varint(block, i, limit, 5)
        non_shared, i = _varint(block, i, limit, 5)
        vlen, i = _varint(block, i, limit, 5)
        if shared > len(prev):
            raise ValueError("shared key prefix longer than the previous key")
        if non_shared + vlen > limit - i:
            raise ValueError("entry runs past the end of its block")
        key = prev[:shared] + block[i : i + non_shared]
        i += non_shared
        if out and key <= prev:
            raise ValueError("keys are not in strictly increasing order")
        starts[start] = shared
        out.append((key, block[i : i + vlen]))
        i += vlen
        prev = key
    if out and (not restarts or restarts[0] != 0):
        raise ValueError("the first restart point is not the first entry")
    last = -1
    for r in restarts:
        if (out and (r <= last or starts.get(r) != 0)) or (not out and r != 0):
            raise ValueError("a restart point does not start an entry")
        last = r
    return out


class _File:
    """A read-only file read at offsets (``os.pread``, or seek + read where there is none)."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            self.size = os.fstat(self.fd).st_size
        except OSError:
            os.close(self.fd)
            raise
        self._lock = None if hasattr(os, "pread") else threading.Lock()

    def read(self, offset: int, n: int) -> bytes:
        """Exactly n bytes at ``offset`` (fewer only at the end of the file)."""
        chunks = []
        while n > 0:
            if self._lock is None:
                data = os.pread(self.fd, min(n, 1 << 30), offset)
            else:
                with self._lock:
                    os.lseek(self.fd, offset, os.SEEK_SET)
                    data = os.read(self.fd, min(n, 1 << 30))
            if not data:
                break
            chunks.append(data)
            offset += len(data)
            n -= len(data)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def read_into(self, offset: int, view: memoryview) -> int:
        """Fill ``view`` from ``offset``; the number of bytes read (fewer only at the end)."""
        done = 0
        while done < len(view):
            if hasattr(os, "preadv"):
                got = os.preadv(self.fd, [view[done:]], offset + done)
            else:
                data = self.read(offset + done, min(len(view) - done, 1 << 30))
                got = len(data)
                view[done : done + got] = data
            if got <= 0:
                break
            done += got
        return done

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


def read_table(path: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of the table file at ``path``, in order, every block checked."""
    f = _File(path)
    try:
        return _Table(f).entries()
    finally:
        f.close()


class _Table:
    def __init__(self, f: _File):
        self.f = f
        self.end = f.size - FOOTER_SIZE  # blocks lie before the footer

    def corrupt(self, what: str) -> CorruptFileError:
        return CorruptFileError(what, path=self.f.path, hint="the checkpoint index is corrupted or truncated")

    def block(self, handle: bytes, what: str) -> bytes:
        try:
            offset, i = _varint(handle, 0, len(handle), 10)
            size, _ = _varint(handle, i, len(handle), 10)
        except ValueError as exc:
            raise self.corrupt(f"bad block handle of the {what} ({exc})") from None
        if offset + size + _TRAILER > self.end:
            raise self.corrupt(f"the {what} block handle ({offset}, {size}) points outside the file")
        data = self.f.read(offset, size + _TRAILER)
        if len(data) != size + _TRAILER:
            raise self.corrupt(f"the {what} block is truncated")
        (stored,) = struct.unpack_from("<I", data, size + 1)
        if crc32c(data[: size + 1]) != unmask(stored):
            raise self.corrupt(f"{what} block checksum mismatch")
        if data[size] == _SNAPPY:
            try:
                return unsnappy(data[:size])
            except ValueError as exc:
                raise self.corrupt(f"the {what} block's snappy compression is broken ({exc})") from None
        if data[size] != _NO_COMPRESSION:
            raise self.corrupt(f"bad block type {data[size]} ({what})")
        return data[:size]

    def entries_of(self, handle: bytes, what: str) -> list[tuple[bytes, bytes]]:
        try:
            return _block_entries(self.block(handle, what))
        except ValueError as exc:
            raise self.corrupt(f"{what} block: {exc}") from None

    def entries(self) -> list[tuple[bytes, bytes]]:
        if self.f.size < FOOTER_SIZE:
            raise self.corrupt("too short to be a TensorFlow table (no 48-byte footer)")
        footer = self.f.read(self.end, FOOTER_SIZE)
        if len(footer) != FOOTER_SIZE or footer[-8:] != MAGIC:
            raise self.corrupt("not a TensorFlow table (bad magic number)")
        try:
            _, i = _varint(footer, 0, 40, 10)
            _, i = _varint(footer, i, 40, 10)  # the metaindex handle: its end is where the index handle starts
        except ValueError as exc:
            raise self.corrupt(f"bad metaindex handle in the footer ({exc})") from None
        self.entries_of(footer[:i], "metaindex")  # checked, not used (TensorFlow writes it empty)
        index = self.entries_of(footer[i:40], "index")
        out: list[tuple[bytes, bytes]] = []
        for n, (separator, handle) in enumerate(index):
            block = self.entries_of(handle, f"data block {n}")
            if not block:
                raise self.corrupt(f"data block {n} is empty")
            if out and block[0][0] <= out[-1][0]:
                raise self.corrupt(f"data block {n}: keys are not in strictly increasing order")
            if block[-1][0] > separator:
                raise self.corrupt(f"data block {n} holds keys past its index entry")
            out += block
        return out


# -- the bundle ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One tensor of a bundle, as its index describes it (checked)."""

    key: str
    dtype: DType
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc: int  # unmasked CRC32C of the stored bytes

    @property
    def count(self) -> int:
        return math.prod(self.shape)


def data_filename(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


class Bundle:
    """A tensor bundle: ``entries`` (key -> :class:`Entry`, in key order) and their values.

    The table is read and every entry checked on opening; values are read on demand, in blocks,
    each tensor's CRC32C verified. ``close()`` releases the files."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.index_path = prefix + ".index"
        self.entries: dict[str, Entry] = {}
        self._shards: dict[int, _File] = {}
        self._lock = threading.Lock()
        self.num_shards = 0
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _corrupt(self, what: str, path: str | None = None) -> CorruptFileError:
        return CorruptFileError(
            what,
            path=path or self.index_path,
            hint="the checkpoint's index or data files are corrupted, truncated or mismatched",
        )

    def _open(self) -> None:
        try:
            table = read_table(self.index_path)
        except FileNotFoundError:
            raise self._corrupt("the checkpoint index file is missing") from None
        except OSError as exc:
            raise self._corrupt(f"cannot read the checkpoint index ({exc.strerror})") from None
        if not table or table[0][0] != _HEADER_KEY:
            raise self._corrupt("the index has no bundle header (no entry with the empty key first)")
        try:
            header = parse("BundleHeaderProto", table[0][1])
        except ValueError as exc:
            raise self._corrupt(f"the bundle header cannot be parsed ({exc})") from None
        v = header.version
        if v.producer < 0:
            raise self._corrupt(f"the bundle header names a negative producer version ({v.producer})")
        if v.min_consumer > BUNDLE_VERSION or BUNDLE_VERSION in v.bad_consumers:
            raise NotNative(
                f"written in tensor bundle format version {v.producer} (needs a reader of version "
                f">= {v.min_consumer}); kaudit reads version {BUNDLE_VERSION} natively",
                path=self.index_path,
            )
        if header.endianness == 1:
            raise NotNative("a big-endian tensor bundle, which kaudit does not read natively", path=self.index_path)
        if header.endianness != 0:
            raise self._corrupt(f"unknown endianness {header.endianness} in the bundle header")
        self.num_shards = header.num_shards
        parsed = []
        for raw_key, value in table[1:]:
            name = raw_key.decode("utf-8", errors="backslashreplace")
            try:
                p = parse("BundleEntryProto", value)
            except ValueError as exc:
                raise self._corrupt(f"the entry of tensor {name!r} cannot be parsed ({exc})") from None
            if p.slices:  # before the keys are checked: the slices' own keys are binary
                raise NotNative(
                    f"tensor {name!r} is a partitioned (sliced) variable, which kaudit does not assemble natively",
                    path=self.index_path,
                )
            parsed.append((raw_key, p))
        sizes: dict[int, int] = {}
        for raw_key, p in parsed:
            e = self._entry(raw_key, p)
            if e.shard not in sizes:
                sizes[e.shard] = self._shard(e.shard).size
            if e.offset + e.size > sizes[e.shard]:
                raise self._corrupt(
                    f"tensor {e.key!r} lies past the end of its data file (bytes {e.offset} to "
                    f"{e.offset + e.size} of {sizes[e.shard]}): truncated or mismatched",
                    data_filename(self.prefix, e.shard, self.num_shards),
                )
            self.entries[e.key] = e

    def _entry(self, raw_key: bytes, p) -> Entry:
        try:
            key = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            raise self._corrupt(f"a tensor name is not UTF-8 ({raw_key[:40]!r})") from None
        dt = DTYPES.get(p.dtype)
        if dt is None:
            raise NotNative(
                f"tensor {key!r} has TensorFlow dtype {p.dtype}, which kaudit does not read natively",
                path=self.index_path,
            )
        shape = tuple(d.size for d in p.shape.dim)
        if p.shape.unknown_rank or len(shape) > _MAX_DIMS or any(d < 0 for d in shape):
            raise self._corrupt(f"tensor {key!r} has an invalid shape {list(shape)}")
        count = 1
        for d in shape:
            count *= d
            if count > _INT64_MAX:
                raise self._corrupt(f"tensor {key!r} declares a shape too large to exist {list(shape)}")
        if not 0 <= p.shard_id < self.num_shards:
            raise self._corrupt(
                f"tensor {key!r} is in data file {p.shard_id}, the header says there are {self.num_shards}"
            )
        if p.offset < 0 or p.size < 0:
            raise self._corrupt(f"tensor {key!r} has a negative offset or size")
        if dt.stored is not None and p.size != count * dt.stored.itemsize:
            raise self._corrupt(
                f"tensor {key!r}: the index says {p.size} bytes, its shape {list(shape)} of "
                f"{dt.name} needs {count * dt.stored.itemsize}"
            )
        if dt.code == DT_STRING and count and p.size < count + 4:
            raise self._corrupt(f"tensor {key!r}: {p.size} bytes cannot hold {count} strings")
        return Entry(key, dt, shape, p.shard_id, p.offset, p.size, unmask(p.crc32c))

    def _shard(self, shard: int) -> _File:
        f = self._shards.get(shard)
        if f is None:
            path = data_filename(self.prefix, shard, self.num_shards)
            try:
                f = _File(path)
            except FileNotFoundError:
                raise self._corrupt("the data file is missing", path) from None
            except OSError as exc:
                raise self._corrupt(f"cannot open the data file ({exc.strerror})", path) from None
            with self._lock:
                f = self._shards.setdefault(shard, f)
        return f

    # values --------------------------------------------------------------------------------------
    def _bad_crc(self, e: Entry) -> CorruptFileError:
        return self._corrupt(
            f"tensor {e.key!r}: checksum mismatch (CRC32C of its bytes does not match the index)",
            data_filename(self.prefix, e.shard, self.num_shards),
        )

    def _fill(self, e: Entry, offset: int, out: np.ndarray) -> None:
        view = out.view(np.uint8).data
        f = self._shards.get(e.shard) or self._shard(e.shard)
        try:
            got = f.read_into(offset, view)
        except OSError as exc:
            raise self._corrupt(f"cannot read tensor {e.key!r} ({exc.strerror})", f.path) from None
        if got != len(view):
            raise self._corrupt(f"the data file ends inside tensor {e.key!r} (truncated since it was opened?)", f.path)

    def iter_arrays(self, e: Entry, block_elems: int) -> Iterator[np.ndarray]:
        """The stored values of a numeric tensor, flat, in blocks of at most ``block_elems``
        (bfloat16 as its raw uint16). Raises on the last block when the CRC32C does not match."""
        dt = self._numeric(e)
        total = e.count
        step = max(1, int(block_elems))
        crc = 0
        for start in range(0, total, step):
            out = np.empty(min(step, total - start), dt)
            self._fill(e, e.offset + start * dt.itemsize, out)
            crc = crc32c(out.view(np.uint8), crc)
            if start + step >= total and crc != e.crc:
                raise self._bad_crc(e)
            yield out
        if total == 0 and e.crc != 0:
            raise self._bad_crc(e)

    def read_array(self, e: Entry) -> np.ndarray:
        """The whole numeric tensor, shaped (bfloat16 as its raw uint16), CRC32C verified."""
        out = np.empty(e.count, self._numeric(e))
        self._fill(e, e.offset, out)
        if crc32c(out.view(np.uint8)) != e.crc:
            raise self._bad_crc(e)
        return out.reshape(e.shape)

    def read_bytes(self, e: Entry) -> bytes:
        """The stored bytes of a tensor, CRC32C verified (numeric tensors)."""
        self._numeric(e)
        f = self._shards.get(e.shard) or self._shard(e.shard)
        data = f.read(e.offset, e.size)
        if len(data) != e.size:
            raise self._corrupt(f"the data file ends inside tensor {e.key!r}", f.path)
        if crc32c(data) != e.crc:
            raise self._bad_crc(e)
        return data

    def read_strings(self, e: Entry) -> list[bytes]:
        """A DT_STRING tensor's elements (flat), every checksum verified."""
        if e.dtype.code != DT_STRING:
            raise ValueError(f"{e.key!r} is not a string tensor")
        n = e.count
        if n == 0:
            return []
        f = self._shards.get(e.shard) or self._shard(e.shard)
        data = f.read(e.offset, e.size)
        if len(data) != e.size:
            raise self._corrupt(f"the data file ends inside tensor {e.key!r}", f.path)
        lengths = []
        crc = 0
        i = 0
        try:
            for _ in range(n):
                length, i = _varint(data, i, len(data), 10)
                lengths.append(length)
                crc = crc32c(struct.pack("<I", length) if length <= 0xFFFFFFFF else struct.pack("<Q", length), crc)
        except ValueError as exc:
            raise self._corrupt(f"tensor {e.key!r}: bad string lengths ({exc})", f.path) from None
        if i + 4 > len(data) or unmask(struct.unpack_from("<I", data, i)[0]) != crc:
            raise self._bad_crc(e)
        crc = crc32c(data[i : i + 4], crc)
        i += 4
        if i + sum(lengths) != len(data):
            raise self._corrupt(f"tensor {e.key!r}: its string lengths do not add up to its size", f.path)
        if crc32c(data[i:], crc) != e.crc:
            raise self._bad_crc(e)
        out = []
        for length in lengths:
            out.append(data[i : i + length])
            i += length
        return out

    def _numeric(self, e: Entry) -> np.dtype:
        if not e.dtype.numeric:
            raise ValueError(f"{e.key!r} holds {e.dtype.name} values, not numbers")
        stored = e.dtype.stored
        if stored is None:
            raise ValueError(f"{e.key!r} holds {e.dtype.name} values, which have no numpy type")
        return stored

    def close(self) -> None:
        with self._lock:
            shards, self._shards = self._shards, {}
        for f in shards.values():
            try:
                f.close()
            except OSError:
                pass
