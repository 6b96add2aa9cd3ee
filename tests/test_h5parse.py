"""The pure-Python HDF5 metadata parser (``kaudit/readers/_h5parse.py``) against h5py.

The parser is a fast path: on what it reads it must give exactly what the h5py path gives, and on
anything else it must raise :class:`~kaudit.readers._h5parse.Unsupported` (the loader then reads
the file with h5py). Covered here:

1. Parity on every HDF5 / ``.keras`` file (found by content) of ``fixtures/``, the sharded-weights
   indexes of ``fixtures/`` (several HDF5 files parsed together) and, when present, of the shared
   real-model corpus: the fast path and ``KAUDIT_H5_PARSER=h5py`` give the same variables, notes,
   format, Keras version and config flag, and the same values (all of them for fixtures; the first
   and last three variables for real files); the fast path is really taken (for every fixture,
   for at least 90 % of the real files). Files neither path can load must fail with the same error.
2. Attribute decoding equals ``_hdf5.decode(h5py's value)`` for every kind Keras and h5py write, on
   the root, a group and a dataset; the kinds the parser leaves to h5py raise ``Unsupported``
   (listed by name: a kind moving from one list to the other is a visible change).
3. Datasets: shape, dtype, byte offset, size and values of every dtype and shape kind Keras writes;
   group listings (order, non-ASCII names, groups big enough for a multi-level B-tree).
4. Constructs the parser does not handle (links, chunked/compressed/compact layouts, new file
   format, creation-order tracking, hard-linked groups, committed datatypes): ``Unsupported`` while
   walking, and ``kaudit.readers.load`` of a Keras-like file holding them gives what the h5py path
   gives (result or error).
5. Damage: random bytes overwritten in a small fixture (Hypothesis, derandomized); walking the
   parsed file either works or raises ``Unsupported``, never another exception, never a hang.
   Deterministic cases too: dataspace messages the HDF5 library refuses (the parser must refuse
   them, and kaudit must fail as the h5py path does), and hostile structures whose walks the parser
   bounds (a group containing itself, continuation and B-tree loops, a node listed twice).
"""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaudit import readers
from kaudit.errors import CorruptFileError
from kaudit.storage import hdf5 as H
from kaudit.storage import hdf5_parse as P

from .conftest import FIXTURES, REAL

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"

#: tests that load files through kaudit's fast path (the parser itself runs anywhere)
needs_fast_path = pytest.mark.skipif(not H._HAVE_PREADV, reason="the fast path is taken only where os.preadv exists")


# -- helpers -----------------------------------------------------------------------------------------


def _model_files(root: Path) -> list[Path]:
    """HDF5 files and zip archives below ``root``, recognised by their first bytes."""
    found = []
    if root.is_dir():
        for p in sorted(root.rglob("*")):
            if p.is_file():
                with open(p, "rb") as fh:
                    head = fh.read(8)
                if head == HDF5_MAGIC or head[:4] == ZIP_MAGIC:
                    found.append(p)
    return found


def _params(root: Path, files: list[Path]) -> list:
    return [pytest.param(p, id=str(p.relative_to(root))) for p in files]


FIXTURE_FILES = _model_files(FIXTURES) + sorted(FIXTURES.rglob("*.weights.json"))
REAL_FILES = _model_files(REAL)


def _load(path, monkeypatch, fast: bool):
    """(checkpoint, None) or (None, the exception), read by the fast path or by h5py."""
    monkeypatch.delenv("KAUDIT_NO_DIRECT_READ", raising=False)
    if fast:
        monkeypatch.delenv("KAUDIT_H5_PARSER", raising=False)
    else:
        monkeypatch.setenv("KAUDIT_H5_PARSER", "h5py")
    try:
        return readers.load(str(path)), None
    except Exception as exc:
        return None, exc


def _meta(ck) -> tuple:
    return ck.all_variables, ck.notes, ck.format, ck.keras_version, ck.has_config, ck.files


def _assert_same_array(a, b, what: str) -> None:
    assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), what
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), what


def _assert_parity(path, monkeypatch, all_values: bool) -> bool | None:
    """Load ``path`` both ways and compare. Returns whether the fast path read every HDF5 file of
    it, or None when neither path could load it (both must then fail alike)."""
    fast, fast_exc = _load(path, monkeypatch, fast=True)
    ref, ref_exc = _load(path, monkeypatch, fast=False)
    try:
        if fast_exc is not None or ref_exc is not None:
            assert fast_exc is not None and ref_exc is not None, (
                f"only one path failed: fast path {fast_exc!r}, h5py path {ref_exc!r}"
            )
            if "it is damaged (" in str(fast_exc):  # the parser refused it at once: h5py refuses it too
                assert type(fast_exc) is CorruptFileError and ref_exc.exit_code == fast_exc.exit_code == 2
            else:
                assert (type(fast_exc), str(fast_exc)) == (type(ref_exc), str(ref_exc))
            return None
        assert not any(isinstance(f, P.Group) for f in ref.store.files), "KAUDIT_H5_PARSER=h5py was ignored"
        assert _meta(fast) == _meta(ref)
        variables = fast.all_variables
        picked = variables if all_values else variables[:3] + variables[-3:]
        for v in picked:
            _assert_same_array(fast.read(v), ref.read(v), v.path)
        return all(isinstance(f, P.Group) for f in fast.store.files)
    finally:
        for ck in (fast, ref):
            if ck is not None:
                ck.close()


def _same_value(got, want) -> bool:
    """``got`` (the parser's attribute) is ``want`` (h5py's, decoded): same type, same value."""
    if type(got) is not type(want):
        return False
    if isinstance(want, np.ndarray):
        return (
            got.dtype == want.dtype
            and got.shape == want.shape
            and np.array_equal(got, want, equal_nan=want.dtype.kind in "fc")
        )
    if isinstance(want, list):
        return len(got) == len(want) and all(_same_value(g, w) for g, w in zip(got, want, strict=True))
    return got == want


def _walk(root: P.Group, attr_names, max_nodes: int = 2000, max_depth: int = 40) -> int:
    """Touch everything the readers may touch below ``root``: attributes (by name), listings,
    children, values. Bounded. Returns the number of objects visited."""
    stack: list = [(root, 0)]
    seen = 0
    while stack and seen < max_nodes:
        node, depth = stack.pop()
        seen += 1
        for name in attr_names:
            _ = name in node.attrs
            node.attr(name)
        if isinstance(node, P.Group):
            if depth >= max_depth:
                continue
            keys = node.keys()  # a parsed Group lists its entries with keys() only (no __iter__)
            for key in keys:
                child = node.child(key)
                assert child is not None, f"{node.name!r} lists {key!r} but has no such child"
                stack.append((child, depth + 1))
        else:
            values = node.read_all()
            assert values.shape == tuple(node.shape) and values.dtype == node.dtype
    return seen


# -- 1. parity on fixtures and real models -----------------------------------------------------------


def test_fixture_files_were_found():
    names = {p.name for p in FIXTURE_FILES}
    assert {"k2_full.h5", "k3.keras", "k3.weights.h5", "k3_legacy.h5", "k2_weights.h5"} <= names
    assert any(p.suffix == ".json" for p in FIXTURE_FILES)


@needs_fast_path
@pytest.mark.parametrize("path", _params(FIXTURES, FIXTURE_FILES))
def test_fixture_parity(path, monkeypatch):
    fast_used = _assert_parity(path, monkeypatch, all_values=True)
    assert fast_used in (True, None), "the fast parser gave up on a fixture (it fell back to h5py)"


@needs_fast_path
@pytest.mark.real
@pytest.mark.parametrize("path", _params(REAL, REAL_FILES) or [pytest.param(None, id="corpus-absent")])
def test_real_model_parity(path, monkeypatch):
    if path is None:
        pytest.skip(f"shared real-model corpus not available: {REAL}")
    _assert_parity(path, monkeypatch, all_values=False)


@needs_fast_path
@pytest.mark.real
def test_real_models_mostly_take_the_fast_path(monkeypatch):
    if not REAL_FILES:
        pytest.skip(f"shared real-model corpus not available: {REAL}")
    loaded, fast, fell_back = 0, 0, []
    for path in REAL_FILES:
        ck, _exc = _load(path, monkeypatch, fast=True)
        if ck is None:
            continue
        try:
            loaded += 1
            if all(isinstance(f, P.Group) for f in ck.store.files):
                fast += 1
            else:
                fell_back.append(str(path.relative_to(REAL)))
        finally:
            ck.close()
    assert loaded > 0
    assert fast >= 0.9 * loaded, f"{len(fell_back)} of {loaded} real files fell back to h5py: {fell_back}"


# -- 2. attributes -----------------------------------------------------------------------------------


def _fixed_string(obj, name: str, data: np.ndarray, pad: int) -> None:
    """A fixed-length ASCII string attribute with the given padding (h5py itself writes NULLPAD)."""
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(data.dtype.itemsize)
    tid.set_strpad(pad)
    space = h5py.h5s.create(h5py.h5s.SCALAR) if data.shape == () else h5py.h5s.create_simple(data.shape)
    h5py.h5a.create(obj.id, name.encode(), tid, space).write(data, mtype=tid)


def _vlen_int_sequences() -> np.ndarray:
    a = np.empty(2, dtype=object)
    a[0], a[1] = np.arange(3, dtype="i4"), np.arange(1, dtype="i4")
    return a


def _put(value):
    """A writer of ``value`` as h5py stores it (``obj.attrs[name] = value``)."""
    return lambda obj, name: obj.attrs.__setitem__(name, value)


def _create(value, dtype=None):
    """A writer of ``value`` with an explicit h5py dtype (``obj.attrs.create``)."""
    return lambda obj, name: obj.attrs.create(name, value, dtype=dtype)


def _padded(value: np.ndarray, pad: int):
    return lambda obj, name: _fixed_string(obj, name, value, pad)


#: name -> writer. All decoded by the parser.
SUPPORTED_ATTRS = {
    "fixed_bytes": _put(np.bytes_(b"tensorflow")),
    "fixed_bytes_array": _put(np.array([b"a", b"bc"])),
    "fixed_bytes_one": _put(np.array([b"only"])),
    "fixed_bytes_embedded_nul": _put(np.bytes_(b"ab\x00cd")),
    "fixed_bytes_not_utf8": _put(np.bytes_(b"\xff\xfeab")),
    "fixed_bytes_big": _put(np.bytes_(b"y" * 30_000)),
    "fixed_utf8": _create(np.array(["é✓".encode()], dtype=h5py.string_dtype("utf-8", 8))),
    "fixed_nullterm_embedded_nul": _padded(np.array(b"ab\0cd", "S5"), h5py.h5t.STR_NULLTERM),
    "fixed_nullterm_full": _padded(np.array(b"abcde", "S5"), h5py.h5t.STR_NULLTERM),
    "fixed_nullterm_array": _padded(np.array([b"a\0b", b"xyz"], "S3"), h5py.h5t.STR_NULLTERM),
    "vlen_str": _put("hello world"),
    "vlen_str_empty": _put(""),
    "vlen_str_utf8": _put("héllo ✓ 日本"),
    "vlen_str_array": _put(np.array(["x", "yz", "", "é日本"], dtype=h5py.string_dtype())),
    "vlen_str_one": _put(np.array(["solo"], dtype=h5py.string_dtype())),
    "vlen_str_big": _put('{"config": "' + "x" * 70_000 + '"}'),
    "vlen_ascii_array": _create(np.array([b"ab", b"c"], dtype=h5py.string_dtype("ascii"))),
    "int": _put(42),
    "int_negative": _put(-7),
    "int8": _put(np.int8(-3)),
    "uint8": _put(np.uint8(200)),
    "uint64_max": _put(np.uint64(2**64 - 1)),
    "float": _put(1.5),
    "float16": _put(np.float16(0.5)),
    "int_array": _put(np.arange(5, dtype="i8")),
    "int32_array": _put(np.arange(3, dtype="i4")),
    "float_array": _put(np.linspace(0, 1, 4)),
    "float32_array": _put(np.linspace(0, 1, 4).astype("f4")),
    "float_array_nan_inf": _put(np.array([np.nan, np.inf, -0.0])),
    "big_endian_float_array": _put(np.array([1.0, 2.5], dtype=">f4")),
    "empty_float_array": _put(np.zeros((0,), "f8")),
    "one_element_array": _put(np.array([3.0])),
}

#: name -> (writer, what the parser says): kinds left to h5py. Each is written alone on its own
#: group (an attribute that cannot be parsed may make the whole attribute table Unsupported).
UNSUPPORTED_ATTRS = {
    "bool (enum)": (_put(True), "class 8"),
    "complex (compound)": (_put(1 + 2j), "class 6"),
    "object reference": (lambda obj, name: obj.attrs.__setitem__(name, obj.file["/"].ref), "class 7"),
    "2-D array": (_put(np.ones((2, 2))), "rank > 1"),
    "null dataspace (h5py.Empty)": (_put(h5py.Empty("f4")), "empty attribute"),
    "space-padded string": (_padded(np.array(b"ab   ", "S5"), h5py.h5t.STR_SPACEPAD), "space-padded"),
    "vlen string not UTF-8": (_create(b"\xff\xfe", h5py.string_dtype("utf-8")), "not UTF-8"),
    "vlen sequence of ints": (_create(_vlen_int_sequences(), h5py.vlen_dtype("i4")), "sequence"),
}


def test_h5py_refuses_a_vlen_string_with_an_embedded_nul(tmp_path):
    """So the parser never meets one written by h5py (fixed-length ones are covered above)."""
    with h5py.File(tmp_path / "nul.h5", "w") as f, pytest.raises(ValueError, match="NUL"):
        f.attrs["s"] = "ab\x00cd"


def test_attributes_decode_like_h5py(tmp_path):
    path = tmp_path / "attrs.h5"
    with h5py.File(path, "w") as f:
        targets = [f, f.create_group("g"), f.create_dataset("d", data=np.arange(3.0))]
        for obj in targets:
            for name, write in SUPPORTED_ATTRS.items():
                write(obj, name)
    pf = P.File(str(path))
    try:
        with h5py.File(path, "r") as hf:
            for hobj, node in ((hf, pf.root), (hf["g"], pf.root.child("g")), (hf["d"], pf.root.child("d"))):
                assert node is not None
                for name in SUPPORTED_ATTRS:
                    want = H.decode(hobj.attrs[name])
                    got = node.attr(name)
                    assert _same_value(got, want), f"{hobj.name} {name}: parser {got!r:.80} != h5py {want!r:.80}"
                    assert name in node.attrs
                sentinel = object()
                assert "absent" not in node.attrs
                assert node.attr("absent", sentinel) is sentinel
    finally:
        pf.close()


@pytest.mark.parametrize("kind", list(UNSUPPORTED_ATTRS))
def test_attribute_kinds_left_to_h5py(kind, tmp_path):
    write, why = UNSUPPORTED_ATTRS[kind]
    path = tmp_path / "attr.h5"
    with h5py.File(path, "w") as f:
        write(f.create_group("g"), "v")
    with h5py.File(path, "r") as hf:
        H.decode(hf["g"].attrs["v"])  # h5py reads it: the fallback has something to read
    pf = P.File(str(path))
    try:
        group = pf.root.child("g")
        with pytest.raises(P.Unsupported, match=why):
            group.attr("v")
    finally:
        pf.close()


# -- 3. datasets and groups --------------------------------------------------------------------------

_rng = np.random.default_rng(0)
DATASETS = {
    "float16": _rng.standard_normal(7).astype("f2"),
    "float32": _rng.standard_normal((3, 4)).astype("f4"),
    "float64": _rng.standard_normal(5),
    "int8": np.arange(-5, 5, dtype="i1"),
    "int16": np.arange(-5, 5, dtype="i2"),
    "int32": np.arange(-5, 5, dtype="i4"),
    "int64": np.arange(-5, 5, dtype="i8") * 10**12,
    "uint8": np.arange(250, 256, dtype="u1"),
    "uint16": np.array([0, 65535], dtype="u2"),
    "uint64": np.array([2**64 - 1], dtype="u8"),
    "big_endian_f4": np.arange(6, dtype=">f4"),
    "big_endian_i8": np.arange(6, dtype=">i8"),
    "bfloat16_opaque": np.arange(4, dtype="u2").view("V2"),
    "scalar": np.float32(3.5),
    "empty": np.zeros((0,), "f4"),
    "empty_0x3": np.zeros((0, 3), "f4"),
    "4d": _rng.standard_normal((2, 3, 4, 5)).astype("f4"),
}


@pytest.fixture(scope="module")
def datasets_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("h5parse") / "datasets.h5"
    with h5py.File(path, "w") as f:
        for name, data in DATASETS.items():
            f.create_dataset(name, data=data)
    return path


@pytest.mark.parametrize("name", list(DATASETS))
def test_dataset_matches_h5py(name, datasets_file):
    pf = P.File(str(datasets_file))
    try:
        node = pf.root.child(name)
        assert isinstance(node, P.Dataset)
        with h5py.File(datasets_file, "r") as hf:
            ds = hf[name]
            assert tuple(node.shape) == ds.shape
            assert node.dtype == ds.dtype
            assert node.offset == ds.id.get_offset()
            assert node.nbytes == ds.id.get_storage_size() == ds.size * ds.dtype.itemsize
            values, want = node.read_all(), ds[()]
            assert isinstance(values, np.ndarray) and values.shape == ds.shape and values.dtype == want.dtype
            if want.dtype.kind == "V":
                assert values.tobytes() == want.tobytes()
            else:
                assert np.array_equal(values, want)
    finally:
        pf.close()


def test_group_listing_matches_h5py(tmp_path):
    """Names in h5py's order (non-ASCII included), in a group big enough for its B-tree to have
    more than one level and its local heap to move; nested groups named by their path."""
    path = tmp_path / "groups.h5"
    names = ["b", "a", "Z", "a_1", "é", "ä", "日本", "z" * 200] + [f"layer_{i:04d}" for i in range(1000)]
    with h5py.File(path, "w") as f:
        big = f.create_group("big")
        for i, n in enumerate(names):
            big.create_dataset(n, data=np.array([i], "i4"))
        f.create_group("x").create_group("y").create_group("é").create_dataset("w", data=np.ones(2, "f4"))
        header = _header_address(big)
    data = path.read_bytes()
    [body] = [b for t, b, _s in _messages(data, header) if t == 0x0011]  # symbol table message
    btree, heap = struct.unpack_from("<QQ", data, body)
    assert data[btree + 5] >= 1  # the B-tree root is an internal node
    assert struct.unpack_from("<Q", data, heap + 24)[0] != heap + 32  # the names are not beside the heap header
    pf = P.File(str(path))
    try:
        with h5py.File(path, "r") as hf:
            assert pf.root.keys() == list(hf.keys())
            big = pf.root.child("big")
            assert big.keys() == list(hf["big"].keys())
            for i, n in enumerate(names):
                assert n in big
                ds = big.child(n)
                assert ds.name == hf["big"][n].name
                assert ds.read_all().tolist() == [i]
            assert big.child("absent") is None and "absent" not in big
            inner = pf.root.child("x").child("y").child("é")
            assert inner.name == hf["x/y/é"].name
            assert inner.keys() == ["w"] and inner.child("w").read_all().tolist() == [1.0, 1.0]
    finally:
        pf.close()


# -- 4. constructs the parser leaves to h5py ---------------------------------------------------------

KERNEL = np.arange(12, dtype="<f4").reshape(3, 4)
BIAS = np.array([0.5, -1.0, 2.0, 0.0], dtype="<f4")
KERAS_ATTRS = ("layer_names", "weight_names", "keras_version", "backend", "absent")


def _plain_kernel(group: h5py.Group) -> None:
    group.create_dataset("kernel:0", data=KERNEL)


def _write_keras_like(path: Path, *, kernel=_plain_kernel, edit=None, libver=None, layer_track_order=None) -> None:
    """A minimal legacy Keras 2 weights file, as ``model.save_weights('x.h5')`` writes it: root
    attrs ``layer_names``/``backend``/``keras_version``, one group per layer with attr
    ``weight_names`` (paths relative to it), the datasets below (a Dense layer and a Dropout)."""
    with h5py.File(path, "w", libver=libver) as f:
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["layer_names"] = np.array([b"dense", b"dropout"])
        layer = f.create_group("dense", track_order=layer_track_order)
        layer.attrs["weight_names"] = np.array([b"dense/kernel:0", b"dense/bias:0"])
        inner = layer.create_group("dense")
        kernel(inner)
        inner.create_dataset("bias:0", data=BIAS)
        f.create_group("dropout").attrs["weight_names"] = np.asarray([])
        if edit is not None:
            edit(f)


def _chunked(g):
    g.create_dataset("kernel:0", data=KERNEL, chunks=(1, 4))


def _gzip(g):
    g.create_dataset("kernel:0", data=KERNEL, compression="gzip")


def _compact(g):
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.COMPACT)
    space = h5py.h5s.create_simple(KERNEL.shape)
    h5py.h5d.create(g.id, b"kernel:0", h5py.h5t.IEEE_F32LE, space, dcpl=dcpl).write(h5py.h5s.ALL, h5py.h5s.ALL, KERNEL)


def _committed(g):
    g.file["float32_type"] = np.dtype("<f4")
    g.create_dataset("kernel:0", data=KERNEL, dtype=g.file["float32_type"])


def _soft_link(f):
    f["dense/dense/alias"] = h5py.SoftLink("/dense/dense/kernel:0")


def _external_link(f, target: Path):
    with h5py.File(target, "w") as other:
        other.create_dataset("x", data=BIAS)
    del f["dense/dense/bias:0"]
    f["dense/dense/bias:0"] = h5py.ExternalLink(str(target), "/x")


def _hard_link(f):
    f["dense/again"] = f["dense/dense"]


#: name -> (keyword arguments of _write_keras_like, given tmp_path), what the parser says
CONSTRUCTS = {
    "soft link": (lambda d: {"edit": _soft_link}, "soft link"),
    "external link": (lambda d: {"edit": lambda f: _external_link(f, d / "other.h5")}, "external link"),
    "chunked dataset": (lambda d: {"kernel": _chunked}, "layout other than contiguous"),
    "gzip dataset": (lambda d: {"kernel": _gzip}, "filter pipeline|layout other than contiguous"),
    "compact dataset": (lambda d: {"kernel": _compact}, "layout other than contiguous"),
    "libver latest": (lambda d: {"libver": "latest"}, "superblock version"),
    "track_order group": (lambda d: {"layer_track_order": True}, "object header other than version 1"),
    "group hard-linked twice": (lambda d: {"edit": _hard_link}, "linked more than once|two names"),
    # the named type itself is no group nor dataset; the dataset using it has a shared message
    "committed datatype": (lambda d: {"kernel": _committed}, "neither a group nor a dataset|shared"),
}


def _parse_all(path: Path, attr_names=KERAS_ATTRS) -> int:
    pf = P.File(str(path))
    try:
        return _walk(pf.root, attr_names)
    finally:
        pf.close()


@needs_fast_path
def test_keras_like_file_takes_the_fast_path(tmp_path, monkeypatch):
    """The control for the constructs below: without them, the same file is parsed and loaded
    by the fast path."""
    path = tmp_path / "plain.h5"
    _write_keras_like(path)
    assert _parse_all(path) == 6  # root, dense, dense/dense, its kernel and bias, dropout
    assert _assert_parity(path, monkeypatch, all_values=True) is True


@needs_fast_path
def test_parsed_objects_are_let_go_after_the_read(tmp_path, monkeypatch):
    """The objects a file keeps for lookups (``File._object``) are dropped when the reader is done
    (the table holds none of them); values still read, and a later lookup parses its object again
    with the same result."""
    path = tmp_path / "plain.h5"
    _write_keras_like(path)
    with readers.load(str(path)) as ckpt:
        pf = ckpt.store.files[0].file
        assert isinstance(pf, P.File)
        assert not pf._recent and not pf._older
        assert all(np.asarray(ckpt.read(v)).shape == v.shape for v in ckpt.all_variables)
        assert _walk(pf.root, KERAS_ATTRS) == 6
    assert _assert_parity(path, monkeypatch, all_values=True) is True


@needs_fast_path
def test_global_heap_collections_are_let_go_after_the_read(tmp_path):
    """The global heap collections a file keeps while a reader walks it (variable-length strings)
    are dropped with the objects when it is done; a later read of the attribute reads its
    collection again, to the same value."""
    path = tmp_path / "strings.h5"

    def strings(f):
        f.attrs["keras_version"] = "2.15.0"  # a str: variable-length, in the global heap
        f["dense"].attrs["weight_names"] = np.array(["dense/kernel:0", "dense/bias:0"], dtype=h5py.string_dtype())

    _write_keras_like(path, edit=strings)
    with readers.load(str(path)) as ckpt:
        pf = ckpt.store.files[0].file
        assert isinstance(pf, P.File) and pf._gheap_read > 0
        assert not pf._gheap and not pf._gheap_older
        before = pf._gheap_read
        assert pf.root.attr("keras_version") == "2.15.0"
        assert pf._gheap_read > before  # read again (and counted again)
        assert [v.path for v in ckpt.all_variables] == ["dense/kernel", "dense/bias"]


@needs_fast_path
@pytest.mark.parametrize("construct", list(CONSTRUCTS))
def test_construct_is_left_to_h5py(construct, tmp_path, monkeypatch):
    kwargs, why = CONSTRUCTS[construct]
    path = tmp_path / "model.h5"
    _write_keras_like(path, **kwargs(tmp_path))
    with pytest.raises(P.Unsupported, match=why):
        _parse_all(path)
    # same variables, notes and values as h5py's path (which the fast path fell back to), or the
    # same error
    assert _assert_parity(path, monkeypatch, all_values=True) in (False, None), (
        "the fast path kept a file it does not support"
    )


def test_dataset_of_a_committed_datatype_is_unsupported(tmp_path):
    path = tmp_path / "model.h5"
    _write_keras_like(path, kernel=_committed)
    pf = P.File(str(path))
    try:
        inner = pf.root.child("dense").child("dense")
        assert isinstance(inner.child("bias:0"), P.Dataset)
        with pytest.raises(P.Unsupported, match="shared"):
            inner.child("kernel:0")
    finally:
        pf.close()


# -- 5. damaged bytes --------------------------------------------------------------------------------


def _smallest_fixture_hdf5() -> Path:
    hdf5 = [p for p in _model_files(FIXTURES) if p.read_bytes()[:8] == HDF5_MAGIC]
    return min(hdf5, key=lambda p: (p.stat().st_size, str(p)))


def _find_all(data: bytes, sig: bytes) -> list[int]:
    out, start = [], 0
    while (i := data.find(sig, start)) >= 0:
        out.append(i)
        start = i + 1
    return out


def _messages(data: bytes, header: int) -> list[tuple[int, int, int]]:
    """(type, body offset, body size) of the messages of the version 1 object header at
    ``header``, continuation blocks included (HDF5 format spec, "Version 1 Object Header")."""
    blocks = [(header + 16, struct.unpack_from("<I", data, header + 8)[0])]
    out = []
    for start, size in blocks:
        p, end = start, start + size
        while p + 8 <= end:
            mtype, msize = struct.unpack_from("<HH", data, p)
            out.append((mtype, p + 8, msize))
            if mtype == 0x10 and len(blocks) < 16:
                blocks.append(struct.unpack_from("<QQ", data, p + 8))
            p += 8 + msize
    return out


def _header_address(obj) -> int:
    return h5py.h5o.get_info(obj.id).addr


class _Hung(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hung("the parser did not finish within 10 s")


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs SIGALRM")
def test_damaged_bytes_raise_only_unsupported(tmp_path):
    base = _smallest_fixture_hdf5()
    data = base.read_bytes()
    attr_names, bodies = {"absent"}, []
    with h5py.File(base, "r") as hf:
        objects = [hf]
        hf.visititems(lambda _name, obj: objects.append(obj))
        for obj in objects:
            attr_names.update(obj.attrs)
            bodies += [(body - 8, size + 8) for _t, body, size in _messages(data, _header_address(obj))]
    attr_names = sorted(attr_names)
    assert _parse_all(base, attr_names) == len(objects)  # the intact file parses: damage is what fails

    # edits land in object header messages (dataspace, datatype, layout, attributes, links...),
    # on or just after another structure the parser reads (superblock, group B-tree, local heap,
    # symbol table node, global heap), or anywhere; a byte is random or a small number (a rank,
    # a version, a class, a flag)
    marks = [0] + [i for sig in (b"TREE", b"HEAP", b"SNOD", b"GCOL") for i in _find_all(data, sig)]
    in_message = st.sampled_from(bodies).flatmap(lambda b: st.integers(b[0], min(len(data), b[0] + b[1]) - 1))
    near = st.sampled_from(marks).flatmap(lambda o: st.integers(o, min(len(data) - 1, o + 96)))
    offset = st.one_of(in_message, near, st.integers(0, len(data) - 1))
    byte = st.one_of(st.integers(0, 255), st.integers(0, 40))
    damaged = tmp_path / "damaged.h5"
    old = signal.signal(signal.SIGALRM, _on_alarm)

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(edits=st.lists(st.tuples(offset, byte), min_size=1, max_size=8))
    def check(edits):
        buf = bytearray(data)
        for pos, value in edits:
            buf[pos] = value
        damaged.write_bytes(bytes(buf))
        signal.alarm(10)
        try:
            _parse_all(damaged, attr_names)
        except P.Unsupported:
            pass
        finally:
            signal.alarm(0)

    try:
        check()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _rank_past_its_message(data: bytearray, body: int) -> None:
    data[body + 1] = 17  # rank 17 in a message sized for rank 1: the dims would be the next messages


def _rank_past_its_block(data: bytearray, body: int) -> None:
    data[body + 1] = 32  # the dims would run past the end of the object header block


def _absurd_dimension(data: bytearray, body: int) -> None:
    for field in (body + 16, body + 32):  # dimension 1 and its maximum: (0, 2**64 - 2)
        struct.pack_into("<Q", data, field, 2**64 - 2)


#: name -> (kernel shape, edit of the kernel's dataspace message body)
DAMAGED_DATASPACES = {
    "rank past the end of the message": ((3,), _rank_past_its_message),
    "rank past the end of the header block": ((3,), _rank_past_its_block),
    "absurd dimension of an empty dataset": ((0, 3), _absurd_dimension),
}


@needs_fast_path
@pytest.mark.parametrize("case", list(DAMAGED_DATASPACES))
def test_damaged_dataspace(case, tmp_path, monkeypatch):
    """Dataspace messages the HDF5 library refuses when opening the dataset ("ran off end of input
    buffer", "unable to get the next power of 2"): the parser must not make up a shape from them
    (nor fail with anything but Unsupported), and kaudit must refuse the file as the h5py path does."""
    shape, edit = DAMAGED_DATASPACES[case]
    path = tmp_path / "model.h5"
    _write_keras_like(path, kernel=lambda g: g.create_dataset("kernel:0", data=np.zeros(shape, "<f4")))
    with h5py.File(path, "r") as hf:
        header = _header_address(hf["dense/dense/kernel:0"])
    data = bytearray(path.read_bytes())
    [body] = [b for t, b, _s in _messages(data, header) if t == 0x0001]
    assert data[body] == 1 and data[body + 1] == len(shape) and data[body + 2] & 1  # version 1, max dims
    edit(data, body)
    path.write_bytes(bytes(data))
    with h5py.File(path, "r") as hf, pytest.raises((KeyError, OSError), match="Unable to synchronously open object"):
        hf["dense/dense/kernel:0"]
    with pytest.raises(P.Unsupported):
        _parse_all(path)
    assert _assert_parity(path, monkeypatch, all_values=True) is None  # both refuse the file, alike


# Hostile structures: the walks the parser bounds by the addresses it has visited. Each case is a
# valid file with one address rewritten; the parser must stop with Unsupported (saying why), within
# the alarm. The h5py path is not run on them (HDF5 itself loops on some, docs/security.md).


def _snod_entries(data: bytes, snod: int) -> list[int]:
    """Offsets of the entries of the symbol table node at ``snod`` (40 bytes each)."""
    assert data[snod : snod + 4] == b"SNOD"
    return [snod + 8 + 40 * k for k in range(struct.unpack_from("<H", data, snod + 6)[0])]


def _tree_children(data: bytes, node: int) -> list[int]:
    """Offsets of the child pointers of the group B-tree node at ``node``."""
    assert data[node : node + 4] == b"TREE"
    return [node + 24 + 8 + 16 * k for k in range(struct.unpack_from("<H", data, node + 6)[0])]


def _btree_of(data: bytes, header: int) -> int:
    [body] = [b for t, b, _s in _messages(data, header) if t == 0x0011]  # symbol table message
    return struct.unpack_from("<Q", data, body)[0]


def _group_cycle(data: bytearray, addrs: dict) -> None:
    """Root entry 'dense' points back at the root group."""
    snod = struct.unpack_from("<Q", data, _tree_children(data, _btree_of(data, addrs["/"]))[0])[0]
    [entry] = [e for e in _snod_entries(data, snod) if struct.unpack_from("<Q", data, e + 8)[0] == addrs["/dense"]]
    struct.pack_into("<Q", data, entry + 8, addrs["/"])


def _continuation_loop(data: bytearray, addrs: dict) -> None:
    """The root header's continuation points back at the header's first block."""
    root = addrs["/"]
    first = (root + 16, struct.unpack_from("<I", data, root + 8)[0])
    [body] = [b for t, b, _s in _messages(data, root) if t == 0x0010 and first[0] <= b < first[0] + first[1]]
    struct.pack_into("<QQ", data, body, *first)


def _btree_loop(data: bytearray, addrs: dict) -> None:
    """A child of the (two-level) B-tree of group 'big' is the root node itself."""
    node = _btree_of(data, addrs["/big"])
    assert data[node + 5] >= 1  # an internal node
    struct.pack_into("<Q", data, _tree_children(data, node)[-1], node)


def _snod_twice(data: bytearray, addrs: dict) -> None:
    """Two children of the B-tree of group 'big' are the same symbol table node."""
    leaf = _btree_of(data, addrs["/big"])
    while data[leaf + 5] > 0:
        leaf = struct.unpack_from("<Q", data, _tree_children(data, leaf)[0])[0]
    first, second = _tree_children(data, leaf)[:2]
    data[second : second + 8] = data[first : first + 8]


def _btree_fanout(data: bytearray, addrs: dict) -> None:
    """The internal node of group 'big' claims 65,535 children (the file's B-tree allows 32): with
    overlapping leaves a ~1 MB file could make a walk parse billions of entries."""
    node = _btree_of(data, addrs["/big"])
    assert data[node + 5] >= 1
    struct.pack_into("<H", data, node + 6, 65535)


def _snod_overfull(data: bytearray, addrs: dict) -> None:
    """A symbol table node of group 'big' claims 65,535 entries (the file allows 8)."""
    leaf = _btree_of(data, addrs["/big"])
    while data[leaf + 5] > 0:
        leaf = struct.unpack_from("<Q", data, _tree_children(data, leaf)[0])[0]
    snod = struct.unpack_from("<Q", data, _tree_children(data, leaf)[0])[0]
    struct.pack_into("<H", data, snod + 6, 65535)


#: name -> (edit, what the parser says, what it raises: Damaged for what HDF5 refuses or loops on,
#: Unsupported for a legal structure it leaves to h5py)
HOSTILE = {
    "group B-tree node over its fan-out": (_btree_fanout, "more children than", P.Damaged),
    "symbol table node over its size": (_snod_overfull, "more entries than", P.Damaged),
    "group that contains itself": (_group_cycle, "two names|linked more than once", P.Unsupported),
    "object header continuation loop": (_continuation_loop, "continuations that loop", P.Damaged),
    "group B-tree loop": (_btree_loop, "B-tree that loops", P.Damaged),
    "symbol table node listed twice": (_snod_twice, "listed twice", P.Damaged),
}


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs SIGALRM")
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_structure_is_unsupported(case, tmp_path):
    def extras(f):
        for k in range(40):  # enough attributes for the root header to need a continuation block
            f.attrs[f"extra_{k:02d}"] = np.bytes_(b"x" * 40)
        big = f.create_group("big")
        for k in range(400):  # enough entries for a B-tree of two levels
            big.create_group(f"g{k:03d}")

    edit, why, kind = HOSTILE[case]
    path = tmp_path / "model.h5"
    _write_keras_like(path, edit=extras)
    with h5py.File(path, "r") as hf:
        addrs = {name: _header_address(hf[name]) for name in ("/", "/dense", "/big")}
    assert _parse_all(path) > 400  # intact, it parses
    data = bytearray(path.read_bytes())
    edit(data, addrs)
    path.write_bytes(bytes(data))
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(10)
    try:
        with pytest.raises(P.Unsupported, match=why) as raised:
            _parse_all(path)
        assert type(raised.value) is kind
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# A dataset whose object header describes it twice (issue 13, item 7): libhdf5 (so Keras) takes the
# first layout, dataspace or datatype message; the parser once took the last. Such a file is
# refused as damaged: neither description is picked silently.


@needs_fast_path
@pytest.mark.parametrize("mtype", [0x08, 0x01, 0x03], ids=["layout", "dataspace", "datatype"])
def test_a_dataset_described_twice_is_damaged(mtype, tmp_path, monkeypatch):
    def kernel(g):
        ds = g.create_dataset("kernel:0", data=np.arange(12, dtype="<f4").reshape(3, 4))
        ds.attrs["pad"] = np.zeros(16)  # an attribute message to overwrite with a second copy

    path = tmp_path / "model.h5"
    _write_keras_like(path, kernel=kernel)
    with h5py.File(path, "r") as hf:
        header = _header_address(hf["dense/dense/kernel:0"])
        other = hf["dense/dense/bias:0"].id.get_offset()  # the second layout points at the bias
    data = bytearray(path.read_bytes())
    msgs = _messages(data, header)
    [(_t, first, first_size)] = [m for m in msgs if m[0] == mtype]
    [(_t, slot, slot_size)] = [m for m in msgs if m[0] == 0x0C]
    assert slot > first and slot_size >= first_size
    data[slot : slot + first_size] = data[first : first + first_size]  # the same message again...
    struct.pack_into("<H", data, slot - 8, mtype)
    if mtype == 0x08:  # ... a contiguous layout (version 3) whose address is the bias's values
        assert data[slot] == 3 and data[slot + 1] == 1
        struct.pack_into("<Q", data, slot + 2, other)
    path.write_bytes(bytes(data))
    with h5py.File(path, "r") as hf:  # libhdf5 reads the first description
        np.testing.assert_array_equal(hf["dense/dense/kernel:0"][()], np.arange(12).reshape(3, 4))
    with pytest.raises(P.Damaged, match=r"two .* messages"):
        _parse_all(path)
    with pytest.raises(CorruptFileError, match=r"it is damaged \(a dataset with two"):
        readers.load(str(path))


@pytest.mark.parametrize("charset", [0, 1, 2, 15])
def test_fixed_length_string_of_unknown_character_set_is_damaged(charset, tmp_path):
    """A fixed-length string keeps its character set in bits 4-7 of its type (a variable-length one
    in bits 8-11): a set other than ASCII (0) or UTF-8 (1) is refused as h5py refuses it. The
    parser read such an attribute (found by 400 damaged copies of a corpus file)."""
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f.attrs["x"] = np.array([b"abc", b"de"], dtype="S3")
    raw = bytearray(path.read_bytes())
    at = raw.index(b"\x13\x01\x00\x00\x03\x00\x00\x00")  # class 3, version 1, null-padded; size 3
    raw[at + 1] = 0x01 | charset << 4
    path.write_bytes(bytes(raw))
    h5py_reads = True
    try:
        with h5py.File(path, "r") as f:
            f.attrs["x"]
    except (TypeError, ValueError, OSError):
        h5py_reads = False
    assert h5py_reads == (charset <= 1)
    if charset <= 1:
        assert P.File(str(path)).root.attr("x") == ["abc", "de"]
    else:
        with pytest.raises(P.Damaged, match="character set"):
            P.File(str(path)).root.attr("x")


# Continuation blocks of length 0 and global heap budgets (two suspected strictness gaps, checked
# against libhdf5 1.14 here): the same bytes read by the parser and by h5py in a child process
# (killed if libhdf5 hangs).

_H5PY_ATTRS = r"""
import json, sys, h5py
try:
    with h5py.File(sys.argv[1], "r") as f:
        g = f[sys.argv[2]]
        out = {}
        for name in sorted(g.attrs):
            v = g.attrs[name]
            out[name] = v.decode() if isinstance(v, bytes) else v if isinstance(v, str) else [
                x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
        f.visititems(lambda n, o: None)
    print(json.dumps({"outcome": "ok", "attrs": out}))
except Exception as exc:
    print(json.dumps({"outcome": "refused", "why": f"{type(exc).__name__}: {exc}"[:300]}))
"""


def _h5py_attrs(path: Path, group: str) -> dict:
    """libhdf5's reading of every attribute of ``group`` (and a walk of the file), in a child."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _H5PY_ATTRS, str(path), group], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return {"outcome": "hang"}
    return json.loads(done.stdout)


def _parser_attrs(path: Path, group: str) -> dict:
    try:
        pf = P.File(str(path))
        try:
            g = pf.root.child(group)
            attrs = {name: g.attr(name) for name in sorted(g._attr_table())}
            _walk(pf.root, KERAS_ATTRS)
            return {"outcome": "ok", "attrs": attrs}
        finally:
            pf.close()
    except P.Damaged as exc:
        return {"outcome": "damaged", "why": str(exc)}
    except P.Unsupported as exc:
        return {"outcome": "h5py", "why": str(exc)}


def _extra_group(f):
    g = f.create_group("extra")
    for k in range(40):  # enough attributes for the header to need a continuation block
        g.attrs[f"extra_{k:02d}"] = np.bytes_(b"x" * 40)


#: name -> (continuation address (None: the attribute message's own), its length, libhdf5 reads it)
ZERO_CONTINUATIONS = {
    "length 0": (0x800, 0, True),
    "length 0 at the end of the file": ("eof", 0, True),
    "length 0 onto its own message": (None, 0, True),
    "length 4 (no room for a message)": (0x800, 4, False),
}


@pytest.mark.parametrize("case", list(ZERO_CONTINUATIONS))
def test_continuation_block_too_small_for_a_message(case, tmp_path):
    """An object header continuation whose block is of length 0 (or too short for one message's
    8-byte head): libhdf5 reads no message from a block of 0 bytes and refuses a block its messages
    do not fill ("message not aligned"). The parser agrees on both: what it reads, libhdf5 reads
    alike; what libhdf5 refuses, it refuses as damaged. (Built by turning the group's first
    attribute message into the continuation: the message count stays right.)"""
    addr, length, libhdf5_reads = ZERO_CONTINUATIONS[case]
    path = tmp_path / "model.h5"
    _write_keras_like(path, edit=_extra_group)
    with h5py.File(path, "r") as hf:
        header = _header_address(hf["extra"])
    data = bytearray(path.read_bytes())
    body, size = next((b, s) for t, b, s in _messages(data, header) if t == 0x0C)
    struct.pack_into("<H", data, body - 8, 0x10)
    data[body : body + size] = bytes(size)
    addr = {"eof": len(data), None: body - 8}.get(addr, addr)
    struct.pack_into("<QQ", data, body, addr, length)
    path.write_bytes(bytes(data))
    ref = _h5py_attrs(path, "extra")
    fast = _parser_attrs(path, "extra")
    assert ref["outcome"] == ("ok" if libhdf5_reads else "refused"), ref
    if libhdf5_reads:
        assert fast == ref
        assert sorted(fast["attrs"]) == [f"extra_{k:02d}" for k in range(1, 40)]
    else:
        assert fast["outcome"] == "damaged", fast


def test_global_heap_budget_counts_each_collection_once(tmp_path, monkeypatch):
    """A thousand and more variable-length strings in a few global heap collections, each read
    several times: only the collections read from the file count toward ``_MAX_GHEAP_READ`` (a
    re-read from the parser's cache is free), so a budget of exactly their bytes suffices; the
    values are libhdf5's. (The cache keeps 32 to 64 collections, ``_GHEAP_KEPT``: one read again
    from the file once forgotten counts again, bytes read, bounded as the rest.)"""
    path = tmp_path / "strings.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("strings")
        for k in range(600):
            g.attrs[f"s{k:04d}"] = f"value {k} " * 3
        g.attrs["array"] = np.array([f"item {k}" for k in range(800)], dtype=h5py.string_dtype())
    pf = P.File(str(path))
    try:
        g = pf.root.child("strings")
        names = sorted(g._attr_table())
        for name in names:
            g.attr(name)
        collections = sorted(pf._gheap)
        once = pf._gheap_read
    finally:
        pf.close()
    assert 1 < len(collections) < P._GHEAP_KEPT and once < 1 << 20  # a few, all kept by the cache
    data = path.read_bytes()
    assert once == sum(struct.unpack_from("<Q", data, a + 8)[0] for a in collections)
    monkeypatch.setattr(P, "_MAX_GHEAP_READ", once)
    pf = P.File(str(path))
    try:
        g = pf.root.child("strings")
        for _ in range(5):  # read again and again: within the budget of one read of each
            values = {name: g.attr(name) for name in names}
        assert pf._gheap_read == once
    finally:
        pf.close()
    ref = _h5py_attrs(path, "strings")
    assert ref["outcome"] == "ok" and values == ref["attrs"]
    monkeypatch.setattr(P, "_MAX_GHEAP_READ", once - 1)  # the budget does bind
    pf = P.File(str(path))
    try:
        with pytest.raises(P.Unsupported, match="too much global heap"):
            for name in names:
                pf.root.child("strings").attr(name)
    finally:
        pf.close()


def test_dataspace_memo_is_keyed_by_the_whole_message(tmp_path):
    """Dataspaces are decoded once per distinct message bytes (``_SPACES``): a message that differs
    in any byte it is decoded from is decoded (and checked) on its own; one that fails is never
    kept, so the same bytes fail again."""
    P._SPACES.clear()
    one = struct.pack("<BBBx4xQQ", 1, 1, 1, 5, 5)  # version 1, rank 1, max dims: (5,), max 5
    assert P._dataspace(one, 0, len(one)) == (5,)
    assert P._dataspace(b"xx" + one, 2, len(one)) == (5,)  # the same message elsewhere
    above = struct.pack("<BBBx4xQQ", 1, 1, 1, 5, 4)  # a dimension above its maximum
    for _ in range(2):
        with pytest.raises(P.Damaged, match="above its maximum"):
            P._dataspace(above, 0, len(above))
    assert above not in P._SPACES
    two = struct.pack("<BBBx4xQQQQ", 1, 2, 1, 5, 3, 5, 3)
    assert P._dataspace(two, 0, len(two)) == (5, 3)
    with pytest.raises(P.Damaged, match="larger than its message"):
        P._dataspace(two, 0, len(two) - 8)  # the max dims past the message: its bytes are another key


def test_flag_checks_need_the_bits_they_test():
    """``_messages`` calls ``_bad_flags`` only for flags with a bit of 0xE4: no other flags can be
    refused, whatever the message type."""
    for mtype in [*range(0x1A), 0x30, 0xFFFF]:
        for flags in range(256):
            if not flags & 0xE4:
                assert not P._bad_flags(mtype, flags), (mtype, flags)


def test_fill_value_memo_is_keyed_by_the_whole_message():
    """Fill value messages are checked once per distinct (type, size, bytes) of 8 bytes or more
    (``_FILLS``); a failing one is never kept, shorter ones are checked every time."""
    P._FILLS.clear()
    good = bytes((2, 1, 0, 1)) + struct.pack("<I", 4) + b"\0" * 4  # version 2, defined, 4 bytes
    P._fill_value(good, 0, len(good), 0x05)
    assert (0x05, len(good), good) in P._FILLS
    P._fill_value(b"pad" + good, 3, len(good), 0x05)
    over = bytes((2, 1, 0, 1)) + struct.pack("<I", 5) + b"\0" * 4  # 5 bytes in a 12-byte message
    for _ in range(2):
        with pytest.raises(P.Damaged, match="overrunning"):
            P._fill_value(over, 0, len(over), 0x05)
    with pytest.raises(P.Damaged, match="overrunning"):
        P._fill_value(good, 0, len(good) - 1, 0x05)  # the same bytes as a shorter message
    with pytest.raises(P.Damaged, match="unknown version"):
        P._fill_value(bytes((9, 1, 0, 0)), 0, 4, 0x05)
    assert len(P._FILLS) == 1


def _leaf_root(data: bytearray, addrs: dict) -> int:
    """The B-tree root of the group 'dense/dense' (two entries): a leaf node."""
    node = _btree_of(data, addrs["/dense/dense"])
    assert data[node + 5] == 0 and struct.unpack_from("<H", data, node + 6)[0] == 1
    return node


@pytest.mark.parametrize(
    "case, why", [("child is the node", "listed twice"), ("keys out of order", "keys are out of order")]
)
def test_a_group_b_tree_of_one_leaf_is_checked_as_any(case, tmp_path, why):
    """A group whose B-tree root is a leaf (the small groups of a Keras file, read without the
    general walk): the same checks as at any level of a larger tree."""
    path = tmp_path / "model.h5"
    _write_keras_like(path)
    with h5py.File(path, "r") as hf:
        addrs = {"/dense/dense": _header_address(hf["/dense/dense"])}
    assert _parse_all(path) == 6
    data = bytearray(path.read_bytes())
    node = _leaf_root(data, addrs)
    if case == "child is the node":
        struct.pack_into("<Q", data, node + 24 + 8, node)
    else:  # the left key names the last entry, the right key the first ("" sorts first)
        snod = struct.unpack_from("<Q", data, node + 24 + 8)[0]
        first, last = _snod_entries(data, snod)[0], _snod_entries(data, snod)[-1]
        struct.pack_into("<Q", data, node + 24, struct.unpack_from("<Q", data, last)[0])
        struct.pack_into("<Q", data, node + 24 + 16, struct.unpack_from("<Q", data, first)[0])
    path.write_bytes(bytes(data))
    with pytest.raises(P.Damaged, match=why):
        _parse_all(path)


def test_attribute_memo_is_keyed_by_the_head_it_decodes(tmp_path):
    """Attribute messages are decoded once per distinct head (``_ATTRS``: size, name, datatype,
    dataspace): the same head with other values reads those values; a change in the bytes the
    checks read (the variable-length base type) is decoded anew and refused; a refusal is not kept."""
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.attrs["names"] = np.array(["a/kernel:0", "a/bias:0"], dtype=h5py.string_dtype())
    pf = P.File(str(path))
    try:
        [(_t, _f, blk, o, size)] = [m for m in pf.root._msgs if m[0] == 0x0C]
        P._ATTRS.clear()
        name, (_tbuf, tpos, shape, data, avail) = P._attribute(blk, o, size)
        assert (name, shape) == ("names", (2,)) and len(P._ATTRS) == 1
        other = bytearray(blk)
        other[data : data + 4] = struct.pack("<I", 7)  # another value, the same head
        got = P._attribute(bytes(other), o, size)
        assert got[0] == "names" and got[1][2:] == (shape, data, avail) and len(P._ATTRS) == 1
        base = bytearray(blk)
        base[tpos + 12] ^= 0x08  # the base type's size: 1 -> 9 bytes
        for _ in range(2):
            with pytest.raises(P.Unsupported, match="another base type"):
                P._attribute(bytes(base), o, size)
        assert len(P._ATTRS) == 1
        assert pf.root.attr("names") == ["a/kernel:0", "a/bias:0"]
    finally:
        pf.close()
