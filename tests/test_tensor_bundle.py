"""TF2 tensor bundles read without TensorFlow (issue 15): kaudit/storage/tensor_bundle.py and its
use by kaudit/readers/tf_checkpoint.py.

Oracles: TensorFlow itself (its checkpoint reader on the same files, in this process or in a
subprocess when a broken file might crash it; its generated protocol buffer classes) and the
tensors a test wrote. The bundles built here come from a small writer below whose output
TensorFlow reads back (test_the_test_writer_is_read_by_tensorflow).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import crc32c
import numpy as np
import pytest

from .conftest import REAL, ROOT, fixture, run_cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TF_CKPT = fixture("tfformats/tf_ckpt")
TF_SM = fixture("tfformats/tf_savedmodel")
GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
MAGIC = bytes.fromhex("57fb808b247547db")
CODES = {
    "float32": 1,
    "float64": 2,
    "int32": 3,
    "uint8": 4,
    "int16": 5,
    "int8": 6,
    "complex64": 8,
    "int64": 9,
    "bool": 10,
    "uint16": 17,
    "complex128": 18,
    "float16": 19,
    "uint32": 22,
    "uint64": 23,
}


def _tf():
    return pytest.importorskip("tensorflow")


def _have_tf() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _reader_env(value: str | None):
    old = os.environ.get("KAUDIT_TF_READER")
    if value is None:
        os.environ.pop("KAUDIT_TF_READER", None)
    else:
        os.environ["KAUDIT_TF_READER"] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("KAUDIT_TF_READER", None)
        else:
            os.environ["KAUDIT_TF_READER"] = old


def _snapshot(path: str, reader: str = "native") -> tuple:
    """Everything kaudit says about a checkpoint: the table, notes, and every value read whole
    and in blocks."""
    import kaudit

    with _reader_env(reader), kaudit.load(path) as ck:
        rows = tuple(tuple(v.__dict__.values()) for v in ck.all_variables)
        values = []
        for v in ck.all_variables:
            whole = ck.read(v)
            blocks = list(ck.iter_blocks(v, 5))
            flat = np.concatenate(blocks) if blocks else np.empty(0, whole.dtype)
            assert flat.dtype == whole.dtype and flat.tobytes() == whole.tobytes(), v.path
            values.append((whole.dtype.str, whole.shape, whole.tobytes()))
        return rows, tuple(values), ck.notes, ck.format, ck.keras_version, ck.has_config, ck.files


# -- a small bundle writer (TensorFlow reads what it writes) ------------------------------------------


def _v(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _crc(data: bytes, crc: int = 0) -> int:
    return crc32c.crc32c(bytes(data), value=crc)


def _block(entries: list[tuple[bytes, bytes]], interval: int = 2) -> bytes:
    buf, restarts, prev = bytearray(), [], b""
    for i, (k, v) in enumerate(entries):
        shared = 0
        if i % interval == 0:
            restarts.append(len(buf))
        else:
            while shared < min(len(prev), len(k)) and prev[shared] == k[shared]:
                shared += 1
        buf += _v(shared) + _v(len(k) - shared) + _v(len(v)) + k[shared:] + v
        prev = k
    restarts = restarts or [0]
    return bytes(buf) + struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))


def _table(entries: list[tuple[bytes, bytes]], per_block: int = 3) -> bytes:
    """A TensorFlow table: data blocks of ``per_block`` prefix-compressed entries, an empty
    metaindex block, the index block, the footer."""
    out = bytearray()

    def put(block: bytes) -> bytes:
        handle = _v(len(out)) + _v(len(block))
        out.extend(block + b"\0" + struct.pack("<I", _mask(_crc(block + b"\0"))))
        return handle

    index = [
        (chunk[-1][0], put(_block(chunk)))
        for chunk in (entries[i : i + per_block] for i in range(0, len(entries), per_block))
    ]
    meta = put(_block([]))
    idx = put(_block(index, 1))
    return bytes(out) + (meta + idx).ljust(40, b"\0") + MAGIC


def _msg(name: str, **fields):
    from kaudit.storage.tensor_bundle import messages

    return messages()[name](**fields)


def write_bundle(
    prefix: str | Path, tensors: dict, *, edit=None, num_shards: int = 1, header: dict | None = None, per_block: int = 3
) -> str:
    """A tensor bundle of ``tensors`` (key -> numeric array, bytes (a string scalar) or a list of
    bytes (a string vector)) in shard 0. ``edit(key, entry)`` may change an entry's fields."""
    prefix = str(prefix)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    data = bytearray()
    table = []
    for key in sorted(tensors):
        v = tensors[key]
        if isinstance(v, (bytes, list)):
            elems = [v] if isinstance(v, bytes) else v
            shape = () if isinstance(v, bytes) else (len(v),)
            crc = 0
            for x in elems:
                crc = _crc(struct.pack("<I", len(x)), crc)
            lc = struct.pack("<I", _mask(crc))
            body = b"".join(elems)
            raw = b"".join(_v(len(x)) for x in elems) + lc + body
            crc = _crc(body, _crc(lc, crc))
            dtype = 7
        else:
            a = np.asarray(v)
            dtype, shape, raw = CODES[a.dtype.name], a.shape, a.astype(a.dtype.newbyteorder("<")).tobytes()
            crc = _crc(raw)
        e = _msg("BundleEntryProto", dtype=dtype, shard_id=0, offset=len(data), size=len(raw), crc32c=_mask(crc))
        for d in shape:
            e.shape.dim.add(size=d)
        if edit:
            edit(key, e)
        table.append((key.encode(), e.SerializeToString()))
        data += raw
    h = _msg("BundleHeaderProto", num_shards=num_shards)
    h.version.producer = 1
    for k, val in (header or {}).items():
        if k in ("producer", "min_consumer"):
            setattr(h.version, k, val)
        elif k == "bad_consumers":
            h.version.bad_consumers.extend(val)
        else:
            setattr(h, k, val)
    Path(prefix + ".index").write_bytes(_table([(b"", h.SerializeToString())] + table, per_block))
    Path(f"{prefix}.data-00000-of-{num_shards:05d}").write_bytes(bytes(data))
    return prefix


def _graph(nodes: list[tuple[list[tuple[int, str]], list[tuple[str, str, str]]]]) -> bytes:
    """A serialized TrackableObjectGraph: per node, (children (node_id, name), attributes
    (name, full_name, checkpoint_key))."""
    g = _msg("TrackableObjectGraph")
    for children, attrs in nodes:
        n = g.nodes.add()
        for node_id, name in children:
            n.children.add(node_id=node_id, local_name=name)
        for name, full, key in attrs:
            n.attributes.add(name=name, full_name=full, checkpoint_key=key)
    return g.SerializeToString()


SMALL = {
    "dense/kernel": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "dense/bias": np.array([1.5, -2], np.float64),
    "emb/table": np.arange(-5, 5, dtype=np.int16).reshape(2, 5),
    "flag": np.array([True, False]),
    "half": np.array([0.5, 65504, -0.0], np.float16),
    "cplx": np.array([1 + 2j], np.complex64),
    "step": np.array(7, np.int64),
    "u": np.array([1, 2**32 - 1], np.uint32),
    "empty": np.zeros((0, 3), np.float32),
    "names": [b"alpha", b"", b"\xff\x00 bytes"],
}


# -- TensorFlow is the oracle ------------------------------------------------------------------------


def test_the_test_writer_is_read_by_tensorflow(tmp_path):
    tf = _tf()
    from kaudit.storage.tensor_bundle import Bundle

    prefix = write_bundle(tmp_path / "w" / "ckpt", SMALL)
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    assert set(reader.get_variable_to_shape_map()) == set(SMALL)
    b = Bundle(prefix)
    try:
        for key, want in SMALL.items():
            got = reader.get_tensor(key)
            if isinstance(want, list):
                assert list(got) == want and b.read_strings(b.entries[key]) == want
            else:
                assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes(), key
                mine = b.read_array(b.entries[key])
                assert mine.dtype == want.dtype and mine.tobytes() == want.tobytes(), key
    finally:
        b.close()


def _corpus_bundles() -> list[str]:
    """Every TF2 bundle of the fixtures and of the shared corpus (its manifest's TF entries)."""
    out = [TF_CKPT, TF_SM]
    manifest = REAL / "manifest.json"
    if manifest.is_file():
        for e in json.loads(manifest.read_text()):
            if e["format"] not in ("TF checkpoint", "SavedModel"):
                continue
            p = REAL / e["path"]
            prefix = (p / "variables" / "variables") if (p / "saved_model.pb").is_file() else p
            if (p / ".index").is_file() or Path(str(prefix) + ".index").is_file():
                out.append(str(p))
    return out


def _prefix(path: str) -> str:
    p = Path(path)
    if (p / "saved_model.pb").is_file():
        return str(p / "variables" / "variables")
    if p.is_dir():
        from kaudit.readers.tf_checkpoint import resolve

        return resolve(path, path).prefix
    return path


@pytest.mark.parametrize("path", _corpus_bundles(), ids=lambda p: os.path.relpath(p, ROOT.parent))
def test_native_reader_equals_tensorflow_reader(path):
    """The whole table (paths, layers, classes, shapes, dtypes, trainability, kinds, keys, order),
    notes and every value bit for bit: native against TensorFlow's reader."""
    tf = _tf()
    from kaudit.storage.tensor_bundle import Bundle

    native = _snapshot(path, "native")
    assert native == _snapshot(path, "tensorflow")
    assert native[0], "no variables read"
    # and the storage layer alone against TensorFlow's reader: every entry, the strings too
    prefix = _prefix(path)
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    b = Bundle(prefix)
    try:
        assert list(b.entries) == sorted(shapes)  # the table's order, every key
        for key, e in b.entries.items():
            assert list(e.shape) == shapes[key] and e.dtype.code == dtypes[key].as_datatype_enum, key
            if e.dtype.code == 7:
                want = reader.get_tensor(key)
                got = b.read_strings(e)
                assert (got[0] if e.shape == () else got) == (want if e.shape == () else list(want.reshape(-1)))
    finally:
        b.close()


def test_runtime_descriptors_match_tensorflows_protos():
    _tf()
    from tensorflow.core.framework import tensor_shape_pb2, tensor_slice_pb2, versions_pb2
    from tensorflow.core.protobuf import (
        meta_graph_pb2,
        saved_model_pb2,
        saved_object_graph_pb2,
        tensor_bundle_pb2,
        trackable_object_graph_pb2,
    )

    from kaudit.storage.tensor_bundle import messages

    T = trackable_object_graph_pb2.TrackableObjectGraph.TrackableObject
    theirs = {
        "VersionDef": versions_pb2.VersionDef,
        "BundleHeaderProto": tensor_bundle_pb2.BundleHeaderProto,
        "Dim": tensor_shape_pb2.TensorShapeProto.Dim,
        "TensorShapeProto": tensor_shape_pb2.TensorShapeProto,
        "Extent": tensor_slice_pb2.TensorSliceProto.Extent,
        "TensorSliceProto": tensor_slice_pb2.TensorSliceProto,
        "BundleEntryProto": tensor_bundle_pb2.BundleEntryProto,
        "ObjectReference": T.ObjectReference,
        "SerializedTensor": T.SerializedTensor,
        "TrackableObject": T,
        "TrackableObjectGraph": trackable_object_graph_pb2.TrackableObjectGraph,
        "SavedUserObject": saved_object_graph_pb2.SavedUserObject,
        "SavedObject": saved_object_graph_pb2.SavedObject,
        "SavedObjectGraph": saved_object_graph_pb2.SavedObjectGraph,
        "MetaGraphDef": meta_graph_pb2.MetaGraphDef,
        "SavedModel": saved_model_pb2.SavedModel,
    }
    wire = {
        1: 1,
        2: 1,
        3: 0,
        4: 0,
        5: 0,
        6: 1,
        7: 5,
        8: 0,
        9: 2,
        11: 2,
        12: 2,
        13: 0,
        14: 0,
        15: 5,
        16: 1,
        17: 0,
        18: 0,
    }
    mine = messages()
    assert set(mine) == set(theirs)
    for name, cls in mine.items():
        ref = theirs[name].DESCRIPTOR
        for f in cls.DESCRIPTOR.fields:
            g = ref.fields_by_number[f.number]
            assert f.name == g.name or f.name == f"kind_{f.number}", (name, f.name)
            assert wire[f.type] == wire[g.type] and f.is_repeated == g.is_repeated, (name, f.name)
            if f.message_type is not None:
                assert mine[f.message_type.name].DESCRIPTOR.full_name.split(".")[-1] == f.message_type.name
                assert g.message_type.name == f.message_type.name, (name, f.name)
            assert (f.containing_oneof is None) == (g.containing_oneof is None), (name, f.name)
        if name == "SavedObject":  # every member of the 'kind' oneof is declared, so they clear each other
            assert {f.number for f in cls.DESCRIPTOR.oneofs_by_name["kind"].fields} == {
                f.number for f in ref.oneofs_by_name["kind"].fields
            }


def test_diffing_tf2_checkpoints_imports_no_tensorflow():
    real_pair = [
        REAL / "phasenet/phasenet_190703_epoch50_tfckpt/model_50.ckpt",
        REAL / "phasenet/phasenet_190703_epoch95_tfckpt/model_95.ckpt",
    ]
    pairs = [(TF_CKPT, TF_SM)]
    if all(Path(str(p) + ".index").is_file() for p in real_pair):
        pairs.append(tuple(map(str, real_pair)))
    code = textwrap.dedent("""
        import json, sys, kaudit
        out = []
        for a, b in json.loads(sys.argv[1]):
            r = kaudit.diff(a, b)
            out.append([r.exit_code, r.summary["pairs"]])
        out.append(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras")))
        print(json.dumps(out))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(pairs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    *results, modules = json.loads(proc.stdout)
    assert modules == []
    assert results[0] == [0, 9]  # the fixture's checkpoint and SavedModel of the same model: identical
    if len(results) > 1:
        assert results[1] == [1, 93]  # PhaseNet epochs 50 and 95: every variable changed


# -- declined: TensorFlow reads them ----------------------------------------------------------------

_PARTITIONED = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
tf.compat.v1.disable_eager_execution()
with tf.Graph().as_default():
    w = tf.compat.v1.get_variable("part/w", shape=[10, 4], partitioner=tf.compat.v1.fixed_size_partitioner(2),
                                  initializer=tf.compat.v1.random_normal_initializer(seed=1))
    b = tf.compat.v1.get_variable("b", initializer=np.ones(3, np.float32))
    with tf.compat.v1.Session() as s:
        s.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().save(s, os.path.join(sys.argv[1], "model.ckpt"))
"""


def test_partitioned_variables_are_declined_and_read_by_tensorflow(tmp_path, monkeypatch):
    tf = _tf()
    import kaudit
    from kaudit.errors import MissingDependencyError, UnsupportedFormatError

    out = tmp_path / "part"
    proc = subprocess.run(
        [sys.executable, "-c", _PARTITIONED, str(out)], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    prefix = str(out / "model.ckpt")
    with _reader_env("native"), pytest.raises(UnsupportedFormatError, match="partitioned"):
        kaudit.load(prefix)
    rows, values, *_ = _snapshot(prefix, None)  # default: handed to TensorFlow, which assembles the slices
    assert _snapshot(prefix, "tensorflow")[:2] == (rows, values)
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    with kaudit.load(prefix) as ck:
        assert np.array_equal(ck["part/w"], reader.get_tensor("part/w")) and ck["part/w"].shape == (10, 4)
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(MissingDependencyError, match=r"partitioned .*needs TensorFlow"):
        kaudit.load(prefix)


@pytest.mark.parametrize(
    "header, what",
    [({"endianness": 1}, "big-endian"), ({"min_consumer": 2}, "version"), ({"bad_consumers": [1]}, "version")],
)
def test_declined_headers(tmp_path, monkeypatch, header, what):
    import kaudit
    from kaudit.errors import MissingDependencyError, UnsupportedFormatError

    prefix = write_bundle(tmp_path / "b" / "ckpt", {"w": np.ones(3, np.float32)}, header=header)
    with _reader_env("native"), pytest.raises(UnsupportedFormatError, match=what) as ei:
        kaudit.load(prefix)
    assert ei.value.exit_code == 2
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(MissingDependencyError, match=what):  # default: TensorFlow would be asked, and is missing
        kaudit.load(prefix)


def test_unknown_dtype_is_declined(tmp_path):
    import kaudit
    from kaudit.errors import UnsupportedFormatError

    def edit(key, e):
        e.dtype = 29 if key == "w" else e.dtype  # DT_INT4

    prefix = write_bundle(tmp_path / "b" / "ckpt", {"w": np.ones(3, np.int8), "x": np.ones(2, np.float32)}, edit=edit)
    with _reader_env("native"), pytest.raises(UnsupportedFormatError, match="dtype 29"):
        kaudit.load(prefix)


def test_non_numeric_tensors_are_listed_in_a_note(tmp_path):
    import kaudit

    def edit(key, e):
        if key == "q":
            e.dtype = 11  # DT_QINT8: one byte per element, not read by either reader

    prefix = write_bundle(
        tmp_path / "b" / "ckpt", {"w": np.ones(3, np.float32), "q": np.ones(4, np.int8), "s": [b"x", b"yz"]}, edit=edit
    )
    with _reader_env("native"), kaudit.load(prefix) as ck:
        assert [v.path for v in ck.all_variables] == ["w"]
        assert any("2 non-numeric tensor(s) not listed (e.g. 'q')" in n for n in ck.notes)


def test_reader_switch_is_checked():
    import kaudit
    from kaudit.errors import UsageError

    with _reader_env("tensorfow"), pytest.raises(UsageError, match="KAUDIT_TF_READER"):
        kaudit.load(TF_CKPT)


# -- hostile bundles ---------------------------------------------------------------------------------


def _load_all(prefix: str, reader: str = "native") -> None:
    _snapshot(prefix, reader)


def _edit_entry(field: str, value, key: str = "dense/kernel"):
    def edit(k, e):
        if k == key:
            if field == "shape":
                e.shape.Clear()
                for d in value:
                    e.shape.dim.add(size=d)
            elif field == "slices":
                e.slices.add()
            else:
                setattr(e, field, value)

    return edit


HOSTILE_ENTRIES = {
    "offset past the shard": (_edit_entry("offset", 1 << 20), "past the end"),
    "offset shifted inside the shard": (_edit_entry("offset", 4, "dense/bias"), "checksum mismatch"),
    "size that lies": (_edit_entry("size", 44), "needs 48"),
    "negative offset": (_edit_entry("offset", -8), "negative"),
    "huge shape": (_edit_entry("shape", [1 << 20, 1 << 20, 4]), "needs 17592186044416"),
    "shape overflowing int64": (_edit_entry("shape", [1 << 62, 1 << 3]), "too large"),
    "negative dimension": (_edit_entry("shape", [-3, 4]), "invalid shape"),
    "too many dimensions": (_edit_entry("shape", [1] * 255), "invalid shape"),
    "shard id out of range": (_edit_entry("shard_id", 3), "data file 3"),
    "bad tensor CRC": (_edit_entry("crc32c", 12345), "checksum mismatch"),
    "strings shorter than their count": (_edit_entry("size", 2, "names"), "cannot hold"),
}


@pytest.mark.parametrize("case", list(HOSTILE_ENTRIES))
def test_hostile_entries(tmp_path, case):
    from kaudit.errors import CorruptFileError

    edit, match = HOSTILE_ENTRIES[case]
    prefix = write_bundle(tmp_path / "h" / "ckpt", SMALL, edit=edit)
    with pytest.raises(CorruptFileError, match=match) as ei:
        _load_all(prefix)
    assert "\n" not in str(ei.value) and ei.value.exit_code == 2


def _bytes_edit(prefix: str, suffix: str, fn) -> None:
    p = Path(prefix + suffix)
    p.write_bytes(fn(bytearray(p.read_bytes())))


def _flip(pos: int):
    def fn(b):
        b[pos] ^= 0x41
        return bytes(b)

    return fn


def _footer_handles(meta=None, index=None):
    def fn(b):
        foot = bytes(b[-48:-8])
        from kaudit.storage.tensor_bundle import _varint

        mo, i = _varint(foot, 0, 40, 10)
        ms, i = _varint(foot, i, 40, 10)
        io_, j = _varint(foot, i, 40, 10)
        is_, _ = _varint(foot, j, 40, 10)
        mo, ms = meta or (mo, ms)
        io_, is_ = index or (io_, is_)
        return bytes(b[:-48]) + (_v(mo) + _v(ms) + _v(io_) + _v(is_)).ljust(40, b"\0") + MAGIC

    return fn


HOSTILE_FILES = {
    "data file missing": (lambda p: os.remove(p + ".data-00000-of-00001"), "data file is missing"),
    "data file short": (lambda p: _bytes_edit(p, ".data-00000-of-00001", lambda b: bytes(b[:-3])), "past the end"),
    "tensor bytes changed": (lambda p: _bytes_edit(p, ".data-00000-of-00001", _flip(5)), "checksum mismatch"),
    "data block byte changed": (lambda p: _bytes_edit(p, ".index", _flip(20)), "block checksum mismatch"),
    "block trailer changed": (lambda p: _bytes_edit(p, ".index", _flip(-60)), "checksum mismatch"),
    "bad magic": (lambda p: _bytes_edit(p, ".index", _flip(-1)), "bad magic"),
    "index handle outside the file": (
        lambda p: _bytes_edit(p, ".index", _footer_handles(index=(1 << 40, 10))),
        "outside the file",
    ),
    "index handle into the footer": (
        lambda p: _bytes_edit(p, ".index", _footer_handles(index=(os.path.getsize(p + ".index") - 50, 10))),
        "outside the file",
    ),
    "metaindex handle with a 11-byte varint": (
        lambda p: _bytes_edit(
            p, ".index", lambda b: bytes(b[:-48]) + (b"\xff" * 10 + b"\x01").ljust(40, b"\0") + MAGIC
        ),
        "varint too long",
    ),
    "index truncated to its footer": (lambda p: _bytes_edit(p, ".index", lambda b: bytes(b[-48:])), "outside the file"),
    "index shorter than a footer": (lambda p: _bytes_edit(p, ".index", lambda b: bytes(b[:30])), "too short"),
    "index missing": (lambda p: os.remove(p + ".index"), "index"),
}


@pytest.mark.parametrize("case", list(HOSTILE_FILES))
def test_hostile_files(tmp_path, case):
    from kaudit.errors import KauditError

    damage, match = HOSTILE_FILES[case]
    prefix = write_bundle(tmp_path / "h" / "ckpt", SMALL)
    damage(prefix)
    with pytest.raises(KauditError, match=match) as ei:
        _load_all(prefix)
    assert "\n" not in str(ei.value) and ei.value.exit_code == 2


def _raw_table(tmp_path, block: bytes, block_type: int = 0) -> str:
    """A bundle whose index holds one hand-made data block."""
    prefix = write_bundle(tmp_path / "t" / "ckpt", {"w": np.ones(2, np.float32)})
    out = block + bytes([block_type]) + struct.pack("<I", _mask(_crc(block + bytes([block_type]))))
    handle = _v(0) + _v(len(block))
    meta = _block([])
    mh = _v(len(out)) + _v(len(meta))
    out += meta + b"\0" + struct.pack("<I", _mask(_crc(meta + b"\0")))
    index = _block([(b"\xff" * 8, handle)], 1)
    ih = _v(len(out)) + _v(len(index))
    out += index + b"\0" + struct.pack("<I", _mask(_crc(index + b"\0")))
    Path(prefix + ".index").write_bytes(out + (mh + ih).ljust(40, b"\0") + MAGIC)
    return prefix


def _entry(shared: int, key: bytes, value: bytes) -> bytes:
    return _v(shared) + _v(len(key)) + _v(len(value)) + key + value


def _header() -> bytes:
    h = _msg("BundleHeaderProto", num_shards=1)
    h.version.producer = 1
    return h.SerializeToString()


HOSTILE_BLOCKS = {
    "shared prefix longer than the previous key": (_entry(0, b"", _header()) + _entry(3, b"w", b""), [0], "shared"),
    "keys not increasing": (_entry(0, b"", _header()) + _entry(0, b"b", b"") + _entry(0, b"a", b""), [0], "increasing"),
    "duplicate keys": (_entry(0, b"", _header()) + _entry(0, b"a", b"") + _entry(0, b"a", b""), [0], "increasing"),
    "restart array larger than the block": (_entry(0, b"", _header()), [0] * 1000, "restart"),
    "restart point inside an entry": (_entry(0, b"", _header()) + _entry(0, b"w", b""), [0, 3], "restart"),
    "no restart point": (_entry(0, b"", _header()), [], "restart"),
    "entry past its block": (_entry(0, b"", _header()) + _v(0) + _v(1) + _v(200) + b"w", [0], "past the end"),
    "truncated varint": (_entry(0, b"", _header()) + b"\x80\x80", [0], "varint"),
    "no header": (_entry(0, b"w", b""), [0], "header"),
    "header not a protocol buffer": (_entry(0, b"", b"\xff\xff\xff"), [0], "header"),
    "entry not a protocol buffer": (_entry(0, b"", _header()) + _entry(0, b"w", b"\x0a\xff"), [0], "cannot be parsed"),
    "key not UTF-8": (_entry(0, b"", _header()) + _entry(0, b"\xff\xfe", b""), [0], "UTF-8"),
}


@pytest.mark.parametrize("case", list(HOSTILE_BLOCKS))
def test_hostile_table_blocks(tmp_path, case):
    from kaudit.errors import CorruptFileError

    body, restarts, match = HOSTILE_BLOCKS[case]
    block = body + struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))
    with pytest.raises(CorruptFileError, match=match):
        _load_all(_raw_table(tmp_path, block))


def test_snappy_blocks(tmp_path):
    from kaudit.errors import CorruptFileError
    from kaudit.storage.tensor_bundle import unsnappy

    body = _entry(0, b"", _header())
    block = body + struct.pack("<II", 0, 1)
    literal = _v(len(block)) + bytes([(len(block) - 1) << 2]) + block if len(block) <= 60 else None
    assert literal is not None
    _load_all(_raw_table(tmp_path / "ok", literal, 1))  # a stored-as-literal snappy block reads
    # back-references, overlapping ones included
    assert unsnappy(_v(9) + bytes([2 << 2]) + b"abc" + bytes([(6 - 4) << 2 | 1, 3])) == b"abcabcabc"
    assert unsnappy(_v(7) + bytes([0]) + b"x" + bytes([(6 - 1) << 2 | 2]) + struct.pack("<H", 1)) == b"x" * 7
    for bad in (
        _v(5) + bytes([4 << 2]) + b"ab",  # literal past the block
        _v(5) + bytes([(4 - 4) << 2 | 1, 1]),  # copy before the start
        _v(2) + bytes([2 << 2]) + b"abc",  # more than declared
        _v(9) + bytes([0]) + b"a",  # less than declared
        _v(1 << 30) + b"\0a",
    ):  # a declared length the block cannot hold
        with pytest.raises(ValueError):
            unsnappy(bad)
    with pytest.raises(CorruptFileError, match="snappy"):
        _load_all(_raw_table(tmp_path / "bad", _v(len(block) + 5) + literal[1:], 1))
    with pytest.raises(CorruptFileError, match="block type"):
        _load_all(_raw_table(tmp_path / "type", block, 7))


# -- object graphs -------------------------------------------------------------------------------------


def test_cyclic_object_graph(tmp_path):
    """Children that point back, at themselves and out of range: read once each, no hang."""
    key = "model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    graph = _graph(
        [
            ([(1, "model")], []),
            ([(0, "back"), (1, "self"), (2, "layer_with_weights-0"), (99, "out"), (-4, "neg")], []),
            ([(1, "up"), (2, "self")], [("VARIABLE_VALUE", "dense/kernel", key)]),
        ]
    )
    prefix = write_bundle(tmp_path / "c" / "ckpt", {key: np.ones((2, 3), np.float32), GRAPH_KEY: graph})
    native = _snapshot(prefix)
    assert len(native[0]) == 1 and native[1][0][1] == (2, 3)
    if _have_tf():
        assert native == _snapshot(prefix, "tensorflow")


def test_deep_object_graph(tmp_path):
    """A chain 3,000 objects deep with a variable at every level: no recursion, no hang (the walk
    stops at 64 levels, the rest is named by key, and says so)."""
    n = 3000
    nodes = [([(i + 1, f"c{i}")], [("VARIABLE_VALUE", f"v{i}", f"k{i:05d}")]) for i in range(n)]
    nodes.append(([], []))
    tensors = {f"k{i:05d}": np.array([i], np.float32) for i in range(n)}
    prefix = write_bundle(tmp_path / "d" / "ckpt", {**tensors, GRAPH_KEY: _graph(nodes)}, per_block=64)
    import kaudit

    with _reader_env("native"), kaudit.load(prefix) as ck:
        assert len(ck.all_variables) == n
        assert sorted(ck.read(v).item() for v in ck.all_variables) == list(range(n))
        assert any("deeper than 64 levels" in note for note in ck.notes)
    if _have_tf():
        assert _snapshot(prefix) == _snapshot(prefix, "tensorflow")


def test_object_graph_that_is_not_a_graph(tmp_path):
    """Intact bytes that do not parse: named by their keys, with a note (as TensorFlow's path does)."""
    import kaudit

    prefix = write_bundle(
        tmp_path / "g" / "ckpt", {"w/.ATTRIBUTES/VARIABLE_VALUE": np.ones(2, np.float32), GRAPH_KEY: b"\x0a\x05\xff"}
    )
    with _reader_env("native"), kaudit.load(prefix) as ck:
        assert [v.path for v in ck.all_variables] == ["w"]
        assert any("object graph cannot be read" in n for n in ck.notes)


def test_object_graph_with_a_bad_checksum_is_corrupt(tmp_path):
    from kaudit.errors import CorruptFileError

    prefix = write_bundle(
        tmp_path / "g" / "ckpt",
        {"k": np.ones(2, np.float32), GRAPH_KEY: _graph([([], [])])},
        edit=lambda k, e: setattr(e, "crc32c", e.crc32c ^ 1) if k == GRAPH_KEY else None,
    )
    with pytest.raises(CorruptFileError, match="checksum"):
        _load_all(prefix)


# -- the command line --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["bad tensor CRC", "huge shape", "data file short", "bad magic", "index handle outside the file"]
)
def test_cli_exit_2_one_line(tmp_path, case):
    if case in HOSTILE_ENTRIES:
        prefix = write_bundle(tmp_path / "h" / "ckpt", SMALL, edit=HOSTILE_ENTRIES[case][0])
    else:
        prefix = write_bundle(tmp_path / "h" / "ckpt", SMALL)
        HOSTILE_FILES[case][0](prefix)
    good = write_bundle(tmp_path / "g" / "ckpt", SMALL)
    proc = run_cli("diff", good, prefix)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""


# -- random byte mutations of a real bundle ---------------------------------------------------------

_TF_ORACLE = r"""
import hashlib, json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
for prefix in sys.argv[1:]:
    try:
        r = tf.compat.v1.train.NewCheckpointReader(prefix)
        h = hashlib.sha256()
        for k in sorted(r.get_variable_to_shape_map()):
            v = r.get_tensor(k)
            h.update(k.encode() + (v if isinstance(v, bytes) else np.ascontiguousarray(v).tobytes()))
        res = h.hexdigest()
    except Exception as exc:
        res = None
    print(json.dumps([prefix, res]), flush=True)
"""


def _tf_oracle(prefixes: list[str]) -> dict[str, str | None]:
    """TensorFlow's reading of each prefix: a digest of every tensor, or None when it refuses (or
    crashes: a crash ends that subprocess, the next one goes on after the culprit)."""
    out: dict[str, str | None] = {}
    todo = list(prefixes)
    while todo:
        proc = subprocess.run(
            [sys.executable, "-c", _TF_ORACLE, *todo], capture_output=True, text=True, timeout=600, check=False
        )
        for line in proc.stdout.splitlines():
            prefix, res = json.loads(line)
            out[prefix] = res
        todo = [p for p in todo if p not in out]
        if todo and proc.returncode != 0:
            out[todo.pop(0)] = None  # it died on this one
        elif todo:
            pytest.fail(f"the TensorFlow oracle stopped early: {proc.stderr[-2000:]}")
    return out


def test_random_byte_mutations(tmp_path):
    """Seeded single-byte mutations of the fixture bundle (index and data): each one reads exactly
    as the original or raises a KauditError; never another exception. TensorFlow, given the same
    files, refuses every one kaudit refuses... or kaudit is the stricter: where both read, they
    read the same values, and every mutation TensorFlow refuses kaudit refuses too."""
    from kaudit.errors import KauditError

    files = {n: (Path(TF_CKPT) / n).read_bytes() for n in ("ckpt.index", "ckpt.data-00000-of-00001")}
    original = _snapshot(TF_CKPT)
    rng = random.Random(15)
    read_ok: dict[str, bool] = {}
    for n in range(300):
        name = "ckpt.index" if n % 2 == 0 else "ckpt.data-00000-of-00001"
        buf = bytearray(files[name])
        pos = rng.randrange(len(buf))
        buf[pos] ^= rng.randrange(1, 256)
        d = tmp_path / f"m{n:03d}"
        d.mkdir()
        for fname, data in files.items():
            (d / fname).write_bytes(bytes(buf) if fname == name else data)
        prefix = str(d / "ckpt")
        try:
            got = _snapshot(prefix)
        except KauditError:
            read_ok[prefix] = False
            continue
        # mutations of unused bytes (footer padding, alignment): the same checkpoint
        assert got[:3] == original[:3], f"{name} byte {pos} changed what kaudit reads"
        read_ok[prefix] = True
    refused = sum(not ok for ok in read_ok.values())
    assert 250 <= refused < 300  # nearly every byte is checked; a few are padding
    if not _have_tf():
        return
    tf_says = _tf_oracle(list(read_ok) + [os.path.join(TF_CKPT, "ckpt")])
    tf_original = tf_says.pop(os.path.join(TF_CKPT, "ckpt"))
    assert tf_original is not None
    for prefix, ok in read_ok.items():
        if tf_says[prefix] is None:
            assert not ok, f"{prefix}: TensorFlow refuses it, kaudit read it"
        elif ok:
            assert tf_says[prefix] == tf_original, f"{prefix}: TensorFlow reads other values"


def test_mutations_of_a_string_tensor_and_restarts(tmp_path):
    """The same property on a bundle with string tensors, shared key prefixes and several data
    blocks (the test writer's), every byte of its index mutated once."""
    from kaudit.errors import KauditError

    prefix = write_bundle(tmp_path / "o" / "ckpt", SMALL)
    original = _snapshot(prefix)
    index = Path(prefix + ".index").read_bytes()
    readable = 0
    for pos in range(len(index)):
        buf = bytearray(index)
        buf[pos] ^= 0x10
        Path(prefix + ".index").write_bytes(bytes(buf))
        try:
            got = _snapshot(prefix)
        except KauditError:
            continue
        readable += 1
        assert got[:3] == original[:3], pos
    assert readable < 40  # only the footer's padding and the unused bits are free
