"""A corpus of malformed and hostile checkpoints, built from the valid fixtures.

``build_corpus(directory)`` writes every case into ``directory`` and returns a list of
:class:`Case` (name, path(s), expected outcome). Everything is generated at test time from
``fixtures/`` with h5py, zipfile and hand-written bytes, except the two Lambda models in
``data/`` (they need Keras to make; ``python -m tests.hostile.corpus --make-lambda-data``
rebuilds them).

Expected outcomes:

* ``REFUSED``: exit 2, one stderr line ``kaudit: error: <file>: <problem>`` matching
  ``Case.message``, nothing written;
* ``READ``: the file is read (``inspect`` exits 0; ``diff`` against ``Case.base`` exits with
  one of ``Case.diff_rc``);
* ``HANG``: a known HDF5 library defect that kaudit cannot interrupt (see docs/security.md);
  tested as an expected failure with a short timeout.

Big cases (gigabytes declared) are built cleverly: a deflate block of a repeated 1 MiB
pattern written after a full flush is the same bytes every time, so a stream that inflates
to gigabytes is a few thousand copies of one ~1 KiB block, and no gigabyte is ever written.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
DATA = Path(__file__).resolve().parent / "data"

#: The Lambda payload writes the file named by this environment variable (if it ever runs).
MARKER_ENV = "KAUDIT_HOSTILE_MARKER"
PAYLOAD_SRC = (
    "lambda x: (open(__import__('os').environ.get('KAUDIT_HOSTILE_MARKER', "
    "'/tmp/kaudit-hostile-marker'), 'w').close(), x)[1]"
)
PAYLOAD_FILENAME = "<kaudit-hostile-payload>"

REFUSED = "refused"
READ = "read"
HANG = "hang"

MiB = 1 << 20


@dataclass(frozen=True)
class Case:
    """One hostile input. ``paths[0]`` is what kaudit is given; the rest belong to it (shards)."""

    name: str
    group: str
    paths: tuple[Path, ...]
    expect: str
    #: regex the single stderr line must match (case-insensitive) when REFUSED
    message: str = ""
    #: the valid file this case was made from: ``diff`` partner
    base: Path | None = None
    #: accepted exit codes of ``kaudit diff base case`` when READ
    diff_rc: tuple[int, ...] = (0, 1)
    #: a Lambda payload that would write the marker file if it ran
    marker: bool = False
    slow: bool = False
    #: an unreadable file: when the tests run as root, run kaudit as nobody
    as_nobody: bool = False
    #: the error line names this (default: the file name of paths[0])
    names: str | None = None

    @property
    def path(self) -> Path:
        return self.paths[0]

    @property
    def named(self) -> str:
        return self.names if self.names is not None else self.path.name


def fixture(rel: str) -> Path:
    return FIXTURES / rel


# -- helpers -----------------------------------------------------------------------------------


def _copy(rel: str, dst: Path) -> Path:
    shutil.copyfile(fixture(rel), dst)
    return dst


def _ascii_list(names) -> np.ndarray:
    return np.array([n.encode() if isinstance(n, str) else n for n in names])


def _replace_dataset(group: h5py.Group, name: str, **kwargs) -> None:
    del group[name]
    group.create_dataset(name, **kwargs)


def _keras_members(rel: str = "tutorial/k3.keras") -> dict[str, bytes]:
    with zipfile.ZipFile(fixture(rel)) as z:
        return {i.filename: z.read(i.filename) for i in z.infolist()}


def _edit_member_h5(data: bytes, edit) -> bytes:
    """Apply ``edit(h5py.File)`` to an HDF5 image and return the new bytes."""
    with tempfile.TemporaryDirectory(prefix="kaudit-corpus-") as d:
        p = Path(d) / "m.h5"
        p.write_bytes(data)
        with h5py.File(p, "a") as f:
            edit(f)
        return p.read_bytes()


def zip_bytes(entries: list[dict]) -> bytes:
    """A zip archive written by hand, so that anything can be declared: duplicate names,
    ``..`` names, sizes that lie, flags, methods. Entry keys: name, data (stored bytes),
    method (0 stored, 8 deflated), crc, size (declared uncompressed size), flags, mode."""
    out = bytearray()
    cd = bytearray()
    for e in entries:
        name = e["name"].encode("utf-8")
        data = e["data"]
        method = e.get("method", 0)
        size = e.get("size", len(data))
        crc = e.get("crc", zlib.crc32(data) if method == 0 else 0)
        flags = e.get("flags", 0)
        ext_attr = (e.get("mode", 0o100644) & 0xFFFF) << 16
        offset = len(out)
        out += (
            struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, len(data), size, len(name), 0)
            + name
            + data
        )
        cd += (
            struct.pack(
                "<4sHHHHHHIIIHHHHHII",
                b"PK\x01\x02",
                0x0314,
                20,
                flags,
                method,
                0,
                0x21,
                crc,
                len(data),
                size,
                len(name),
                0,
                0,
                0,
                0,
                ext_attr,
                offset,
            )
            + name
        )
    n = len(entries)
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, len(cd), len(out), 0)
    return bytes(out + cd + eocd)


def _keras_zip(members: dict[str, bytes], extra: list[dict] | None = None, **overrides) -> bytes:
    entries = []
    for name in ("metadata.json", "config.json", "model.weights.h5"):
        if name in members:
            e = {"name": name, "data": members[name]}
            e.update(overrides.get(name, {}))
            entries.append(e)
    return zip_bytes(entries + (extra or []))


def deflate_repeated(block: bytes, count: int, *, raw: bool) -> tuple[bytes, int]:
    """A deflate stream inflating to ``block * count`` in O(len(block)) time and memory:
    after a full flush a block of identical input compresses to identical bytes. Returns
    (stream, checksum): adler32 for zlib streams (``raw=False``), crc32 of one block for
    raw ones (the caller decides what to declare)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15 if raw else 15)
    first = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    body = again if raw else first[2:]
    assert (first if raw else first[2:]) == body == c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    stream = (b"" if raw else first[:2]) + body * count + b"\x03\x00"  # final empty fixed block
    if raw:
        return stream, zlib.crc32(block)
    one = zlib.adler32(block)
    total = one
    for _ in range(count - 1):
        total = _adler32_combine(total, one, len(block))
    return stream + struct.pack(">I", total), total


def _adler32_combine(a1: int, a2: int, len2: int) -> int:  # zlib's adler32_combine
    base = 65521
    rem = len2 % base
    s1 = a1 & 0xFFFF
    s2 = (rem * s1) % base
    s1 += (a2 & 0xFFFF) + base - 1
    s2 += ((a1 >> 16) & 0xFFFF) + ((a2 >> 16) & 0xFFFF) + base - rem
    s1 %= base
    s2 %= base
    return s1 | (s2 << 16)


# -- the cases ---------------------------------------------------------------------------------


def _special(out: Path) -> list[Case]:
    g = "special"
    cases = []
    p = out / "empty.h5"
    p.write_bytes(b"")
    cases.append(Case("empty_file", g, (p,), REFUSED, r"empty \(0 bytes\)"))
    p = out / "a_directory.h5"
    p.mkdir()
    cases.append(Case("directory", g, (p,), REFUSED, r"is a directory"))
    p = out / "fifo.h5"
    os.mkfifo(p)
    cases.append(Case("fifo", g, (p,), REFUSED, r"not a regular file"))
    cases.append(Case("char_device_dev_zero", g, (Path("/dev/zero"),), REFUSED, r"not a regular file"))
    p = out / "sock.h5"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(p))
    finally:
        s.close()
    cases.append(Case("unix_socket", g, (p,), REFUSED, r"not a regular file"))
    cases.append(Case("missing_path", g, (out / "no_such_model.h5",), REFUSED, r"no such file"))
    # unreadable: a world-traversable directory, so that a non-root user reaches the file
    d = Path(tempfile.mkdtemp(prefix="kaudit-unreadable-", dir=out))
    d.chmod(0o755)
    p = _copy("tutorial/k2_full.h5", d / "unreadable.h5")
    p.chmod(0o000)
    cases.append(Case("unreadable_chmod_000", g, (p,), REFUSED, r"permission denied", as_nobody=True))
    p = out / "random.bin"
    p.write_bytes(np.random.default_rng(8).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    cases.append(Case("random_bytes", g, (p,), REFUSED, r"not a Keras or TensorFlow checkpoint"))
    p = out / "notes.txt"
    p.write_text("this is not a model\n")
    cases.append(Case("text_file", g, (p,), REFUSED, r"not a Keras or TensorFlow checkpoint"))
    p = out / "magic_then_garbage.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\xa5" * 4000)
    cases.append(Case("hdf5_magic_then_garbage", g, (p,), REFUSED, r"cannot be read as HDF5"))
    p = out / "garbage.json"
    p.write_bytes(b'{"weight_map": ' + b"\xff\xfe" * 100)
    cases.append(Case("json_not_utf8", g, (p,), REFUSED, r"nor valid JSON"))
    p = out / "hdf5_not_keras.h5"
    with h5py.File(p, "w") as f:
        f.create_group("something")
        f["something/x"] = np.arange(4.0)
    cases.append(Case("hdf5_not_keras", g, (p,), REFUSED, r"not a Keras checkpoint"))
    return cases


def _truncations(out: Path) -> list[Case]:
    g = "truncated"
    cases = []
    for label, rel in (
        ("legacy_h5", "tutorial/k2_full.h5"),
        ("keras", "tutorial/k3.keras"),
        ("weights_h5", "tutorial/k3.weights.h5"),
    ):
        data = fixture(rel).read_bytes()
        suffix = ".keras" if rel.endswith(".keras") else ".h5"
        for where, n in (("magic", 8), ("superblock", 96), ("half", len(data) // 2), ("last_byte", len(data) - 1)):
            p = out / f"trunc_{label}_{where}{suffix}"
            p.write_bytes(data[:n])
            msg = r"not a readable zip archive" if suffix == ".keras" else r"cannot be read as HDF5"
            cases.append(Case(f"truncated_{label}_{where}", g, (p,), REFUSED, msg, base=fixture(rel)))
    # sharded: a shard cut in half, and the index cut in half
    for where in ("shard_half", "shard_magic", "index_half"):
        d = _sharded_copy(out, f"trunc_{where}")
        if where.startswith("shard"):
            s = d / "k3_sharded_00001.weights.h5"
            data = s.read_bytes()
            s.write_bytes(data[: len(data) // 2] if where == "shard_half" else data[:8])
            cases.append(
                Case(
                    f"truncated_sharded_{where}",
                    g,
                    _sharded_paths(d),
                    REFUSED,
                    r"cannot be read as HDF5",
                    base=fixture("tutorial/k3_sharded.weights.json"),
                    names=s.name,
                )
            )
        else:
            idx = d / "k3_sharded.weights.json"
            text = idx.read_bytes()
            idx.write_bytes(text[: len(text) // 2])
            cases.append(
                Case(
                    "truncated_sharded_index",
                    g,
                    _sharded_paths(d),
                    REFUSED,
                    r"nor valid JSON",
                    base=fixture("tutorial/k3_sharded.weights.json"),
                )
            )
    return cases


def _sharded_copy(out: Path, name: str) -> Path:
    d = out / name
    d.mkdir()
    for p in fixture("tutorial").glob("k3_sharded*"):
        if not p.name.endswith(".truth.json"):
            shutil.copyfile(p, d / p.name)
    return d


def _sharded_paths(d: Path) -> tuple[Path, ...]:
    return (d / "k3_sharded.weights.json", *sorted(d.glob("k3_sharded_*.weights.h5")))


def _structure(out: Path) -> list[Case]:
    """Broken attributes, missing entries and odd config JSON in legacy HDF5."""
    g = "structure"
    base = fixture("tutorial/k2_full.h5")
    cases = []

    def legacy(name: str, edit, expect=REFUSED, message="", diff_rc=(0, 1), slow=False):
        p = _copy("tutorial/k2_full.h5", out / f"{name}.h5")
        with h5py.File(p, "a") as f:
            edit(f)
        cases.append(Case(name, g, (p,), expect, message, base=base, diff_rc=diff_rc, slow=slow))

    def add_layer(f):
        mw = f["model_weights"]
        mw.attrs["layer_names"] = _ascii_list(list(mw.attrs["layer_names"]) + [b"ghost_layer"])

    legacy(
        "layer_names_absent_group",
        add_layer,
        message=r"'layer_names' lists 'ghost_layer' but the file has no such group",
    )

    def ghost_weight(f):
        f["model_weights/L2_dense"].attrs["weight_names"] = _ascii_list(["L2_dense/ghost:0"])

    legacy(
        "weight_names_absent_dataset",
        ghost_weight,
        message=r"lists weight 'L2_dense/ghost:0' but the file has no such dataset",
    )

    def weight_is_group(f):
        f["model_weights/L2_dense"].attrs["weight_names"] = _ascii_list(["L2_dense"])

    legacy("weight_names_point_at_group", weight_is_group, message=r"no such dataset")

    def dup_layers(f):
        mw = f["model_weights"]
        names = list(mw.attrs["layer_names"])
        mw.attrs["layer_names"] = _ascii_list(names + names[:1])

    legacy("layer_names_duplicate", dup_layers, message=r"lists 'L0_conv2d' twice")

    def numeric_layer_names(f):
        f["model_weights"].attrs["layer_names"] = np.arange(3)

    legacy("layer_names_not_text", numeric_layer_names, message=r"no such group")

    def scalar_weight_names(f):
        f["model_weights/L2_dense"].attrs["weight_names"] = "L2_dense/kernel:0"

    legacy("weight_names_scalar_string", scalar_weight_names, READ, diff_rc=(0,))

    def odd_version(f):
        f.attrs["keras_version"] = "2rc1"
        f["model_weights"].attrs["keras_version"] = "2rc1"

    legacy("keras_version_not_a_number", odd_version, READ, diff_rc=(0,))

    def version_array(f):
        f.attrs["keras_version"] = np.arange(3)
        f["model_weights"].attrs["keras_version"] = np.arange(3)

    legacy("keras_version_numeric_array", version_array, READ)

    def numeric_weight_names(f):
        f["model_weights/L2_dense"].attrs["weight_names"] = np.arange(3)

    legacy(
        "weight_names_numeric_array", numeric_weight_names, message=r"lists weight '0' but the file has no such dataset"
    )

    def bad_json(f):
        f.attrs["model_config"] = '{"class_name": "Sequential", "config": {"layers": [}'

    legacy("model_config_invalid_json", bad_json, message=r"'model_config' is not valid JSON")

    def config_2d(f):
        f.attrs["model_config"] = np.array([[b"{", b"}"]])

    legacy("model_config_2d_array", config_2d, message=r"'model_config' is not text")

    def deep_json(f):
        f.attrs["model_config"] = "[" * 100_000 + "]" * 100_000

    legacy("model_config_deeply_nested_json", deep_json, message=r"'model_config' is not valid JSON")

    def deep_models(f):
        cfg = json.loads(f.attrs["model_config"])
        for i in range(300):
            cfg = {"class_name": "Sequential", "config": {"name": f"wrap_{i}", "layers": [cfg]}}
        f.attrs["model_config"] = json.dumps(cfg)

    legacy("model_config_300_nested_models", deep_models, READ)

    def not_object(f):
        f.attrs["model_config"] = "[1, 2, 3]"

    legacy("model_config_not_an_object", not_object, READ)

    def huge_config(f):
        f.attrs["model_config"] = '{"class_name": "Sequential", "junk": "' + "x" * (110 * MiB) + '"}'

    legacy(
        "model_config_110MB_string",
        huge_config,
        message=r"'model_config' is .* bytes, over the .* byte limit",
        slow=True,
    )

    # a 512-byte user block before the superblock: valid HDF5, must read the same values
    p = out / "userblock.h5"
    with h5py.File(base, "r") as src, h5py.File(p, "w", userblock_size=512) as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        for k in src:
            src.copy(src[k], dst, name=k)
    with open(p, "r+b") as fh:
        fh.write(b"kaudit user block: not part of the HDF5 data\n")
    cases.append(Case("hdf5_user_block_512", g, (p,), READ, base=base, diff_rc=(0,)))
    return cases


def _links(out: Path) -> list[Case]:
    """External links, soft links and cycles, external storage, virtual datasets."""
    g = "links"
    cases = []
    k2w = fixture("tutorial/k2_weights.h5")
    v3 = fixture("tutorial/k3.weights.h5")

    def weights_only(name: str, edit, message: str, rel="tutorial/k2_weights.h5", expect=REFUSED):
        p = _copy(rel, out / f"{name}.h5")
        with h5py.File(p, "a") as f:
            edit(f)
        cases.append(Case(name, g, (p,), expect, message, base=fixture(rel)))

    def add_layer_name(f, name):
        f.attrs["layer_names"] = _ascii_list(list(f.attrs["layer_names"]) + [name.encode()])

    def ext_passwd(f):
        f["evil"] = h5py.ExternalLink("/etc/passwd", "/")
        add_layer_name(f, "evil")

    weights_only("external_link_to_etc_passwd", ext_passwd, r"external link to '/etc/passwd'")

    def ext_h5(f):
        del f["L2_dense"]
        f["L2_dense"] = h5py.ExternalLink(str(fixture("tutorial/k2_weights.h5")), "/L2_dense")

    weights_only("external_link_to_other_h5", ext_h5, r"external link")

    def ext_in_path(f):
        f["elsewhere"] = h5py.ExternalLink(str(fixture("tutorial/k2_weights.h5")), "/")
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
        f.attrs["layer_names"] = _ascii_list(["elsewhere/" + names[0]] + names[1:])

    weights_only("external_link_inside_layer_name", ext_in_path, r"external link")

    def ext_in_weight(f):
        g2 = f["L2_dense"]
        g2["far"] = h5py.ExternalLink(str(fixture("tutorial/k2_weights.h5")), "/L2_dense/L2_dense")
        g2.attrs["weight_names"] = _ascii_list(["far/kernel:0"])

    weights_only("external_link_inside_weight_name", ext_in_weight, r"external link")

    def soft_layer(f):
        f["alias"] = h5py.SoftLink("/L2_dense")
        add_layer_name(f, "alias")

    weights_only("soft_link_layer_group", soft_layer, r"soft link")

    def soft_cycle(f):
        f["loop"] = h5py.SoftLink("/loop")
        add_layer_name(f, "loop")

    weights_only("soft_link_cycle_self", soft_cycle, r"soft link")

    def soft_cycle_pair(f):
        f["L2_dense/ping"] = h5py.SoftLink("/L2_dense/pong")
        f["L2_dense/pong"] = h5py.SoftLink("/L2_dense/ping")
        f["L2_dense"].attrs["weight_names"] = _ascii_list(["ping/kernel:0"])

    weights_only("soft_link_cycle_pair", soft_cycle_pair, r"soft link")

    def soft_cycle_v3(f):
        f["layers/dense/vars/7"] = h5py.SoftLink("/layers/dense/vars/7")

    weights_only("soft_link_cycle_v3", soft_cycle_v3, r"soft link", rel="tutorial/k3.weights.h5")

    def hard_cycle_v3(f):
        grp = f["layers/dense"]
        grp["again"] = grp
        grp["and_again"] = grp

    weights_only("hard_link_cycle_v3_layer", hard_cycle_v3, r"cycle|more than once", rel="tutorial/k3.weights.h5")

    def hard_cycle_v3_model(f):
        f["layers/zz_model"] = f["/"]

    weights_only("hard_link_cycle_v3_model", hard_cycle_v3_model, r"cycle|more than once", rel="tutorial/k3.weights.h5")

    def hard_cycle_v3_optimizer(f):
        grp = f["optimizer"]
        for i in range(4):
            grp[f"again_{i}"] = grp

    def deep_groups_v3(f):
        grp = f["layers/dense"]
        for _ in range(300):
            grp = grp.create_group("sub")
            grp.create_dataset("vars/0", data=np.zeros(2, dtype="<f4"))

    weights_only(
        "deeply_nested_groups_v3", deep_groups_v3, r"nested more than \d+ levels deep", rel="tutorial/k3.weights.h5"
    )

    weights_only(
        "hard_link_cycle_v3_optimizer", hard_cycle_v3_optimizer, r"cycle|more than once", rel="tutorial/k3.weights.h5"
    )

    def hard_cycle_legacy_opt(f):
        og = f["optimizer_weights"]
        del og.attrs["weight_names"]
        for i in range(4):
            og[f"again_{i}"] = og

    p = _copy("tutorial/k2_full.h5", out / "hard_link_cycle_legacy_optimizer.h5")
    with h5py.File(p, "a") as f:
        hard_cycle_legacy_opt(f)
    cases.append(
        Case(
            "hard_link_cycle_legacy_optimizer",
            g,
            (p,),
            REFUSED,
            r"cycle|more than once",
            base=fixture("tutorial/k2_full.h5"),
        )
    )

    def ext_storage(target):
        def edit(f):
            _replace_dataset(
                f["L2_dense/L2_dense"], "kernel:0", shape=(100, 10), dtype="<f4", external=[(target, 0, 4000)]
            )

        return edit

    weights_only("external_storage_etc_passwd", ext_storage("/etc/passwd"), r"external file")
    weights_only(
        "external_storage_relative_escape", ext_storage("../../../../../../../../etc/passwd"), r"external file"
    )

    def ext_storage_v3(f):
        _replace_dataset(f["layers/dense/vars"], "0", shape=(100, 10), dtype="<f4", external=[("/etc/passwd", 0, 4000)])

    weights_only("external_storage_v3", ext_storage_v3, r"external file", rel="tutorial/k3.weights.h5")

    def vds(source_file, source_name):
        def edit(f):
            layout = h5py.VirtualLayout(shape=(100, 10), dtype="<f4")
            layout[:] = h5py.VirtualSource(source_file, source_name, shape=(100, 10))
            del f["L2_dense/L2_dense/kernel:0"]
            f["L2_dense/L2_dense"].create_virtual_dataset("kernel:0", layout, fillvalue=0)

        return edit

    weights_only("virtual_dataset_other_file", vds(str(k2w), "/L2_dense/L2_dense/kernel:0"), r"virtual dataset")
    weights_only("virtual_dataset_etc_passwd", vds("/etc/passwd", "/x"), r"virtual dataset")

    # the same attacks inside a .keras archive
    members = _keras_members()

    def member_case(name: str, edit, message: str):
        m = dict(members)
        m["model.weights.h5"] = _edit_member_h5(m["model.weights.h5"], edit)
        p = out / f"{name}.keras"
        p.write_bytes(_keras_zip(m))
        cases.append(
            Case(name, g, (p,), REFUSED, message, base=fixture("tutorial/k3.keras"), names=f"{p.name}!model.weights.h5")
        )

    member_case("keras_member_external_storage", ext_storage_v3, r"external file")

    def ext_link_v3(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.ExternalLink(str(v3), "/layers/dense/vars/0")

    member_case("keras_member_external_link", ext_link_v3, r"external link")
    return cases


def _sizes(out: Path, slow: bool) -> list[Case]:
    """Declared sizes far beyond what the file stores, a 4 GiB chunk, and a big compressed
    dataset that is genuinely stored (it must stream with bounded memory)."""
    g = "sizes"
    cases = []

    def no_storage(f, grp, name):
        _replace_dataset(grp, name, shape=(10**6, 10**6), dtype="<f4", chunks=(1000, 1000))

    p = _copy("tutorial/k2_weights.h5", out / "declared_1e12_legacy.h5")
    with h5py.File(p, "a") as f:
        no_storage(f, f["L2_dense/L2_dense"], "kernel:0")
    cases.append(
        Case(
            "declared_1e12_elements_legacy",
            g,
            (p,),
            REFUSED,
            r"declares shape \(1000000, 1000000\)",
            base=fixture("tutorial/k2_weights.h5"),
        )
    )
    p = _copy("tutorial/k3.weights.h5", out / "declared_1e12_v3.h5")
    with h5py.File(p, "a") as f:
        no_storage(f, f["layers/dense/vars"], "0")
    cases.append(
        Case("declared_1e12_elements_v3", g, (p,), REFUSED, r"declares shape", base=fixture("tutorial/k3.weights.h5"))
    )
    p = _copy("tutorial/k2_full.h5", out / "declared_huge_optimizer.h5")
    with h5py.File(p, "a") as f:
        no_storage(f, f["optimizer_weights/Adam/m/L2_dense"], "kernel:0")
    cases.append(
        Case(
            "declared_1e12_elements_optimizer", g, (p,), REFUSED, r"declares shape", base=fixture("tutorial/k2_full.h5")
        )
    )

    # one 4 GiB chunk (the largest HDF5 allows): reading any element inflates all of it
    p = _copy("tutorial/k2_weights.h5", out / "giant_chunk.h5")
    pattern = np.zeros(MiB // 4, dtype="<f4")
    pattern[:512] = np.random.default_rng(1).standard_normal(512)
    rows = 4095  # 4095 x 1 MiB < 2**32 bytes
    stream, _ = deflate_repeated(pattern.tobytes(), rows, raw=False)
    with h5py.File(p, "a") as f:
        grp = f["L2_dense/L2_dense"]
        del grp["kernel:0"]
        ds = grp.create_dataset(
            "kernel:0", shape=(rows, MiB // 4), dtype="<f4", chunks=(rows, MiB // 4), compression="gzip"
        )
        ds.id.write_direct_chunk((0, 0), stream)
    cases.append(Case("single_4GiB_chunk", g, (p,), REFUSED, r"chunk", base=fixture("tutorial/k2_weights.h5")))

    if slow:
        # 2 GiB declared, stored as gzip chunks (~1/250): must stream in bounded memory
        p = _copy("tutorial/k2_weights.h5", out / "big_compressed.h5")
        rows, cols, crow = 65536, 8192, 128  # float32: 2 GiB; chunks of 4 MiB
        chunk = np.zeros((crow, cols), dtype="<f4")
        chunk.flat[:4096] = np.random.default_rng(2).standard_normal(4096)
        comp = zlib.compress(chunk.tobytes(), 6)
        with h5py.File(p, "a") as f:
            grp = f["L2_dense/L2_dense"]
            del grp["kernel:0"]
            ds = grp.create_dataset(
                "kernel:0", shape=(rows, cols), dtype="<f4", chunks=(crow, cols), compression="gzip"
            )
            for r in range(0, rows, crow):
                ds.id.write_direct_chunk((r, 0), comp)
        cases.append(Case("big_compressed_2GiB_streams", g, (p,), READ, base=p, diff_rc=(0,), slow=True))
    return cases


def _dtypes(out: Path) -> list[Case]:
    """Odd dtypes and shapes in place of a Dense bias (legacy) or kernel."""
    g = "dtypes"
    base = fixture("tutorial/k2_weights.h5")
    cases = []

    def bias(name: str, expect: str, message: str = "", diff_rc=(0, 1), **kwargs):
        p = _copy("tutorial/k2_weights.h5", out / f"{name}.h5")
        with h5py.File(p, "a") as f:
            _replace_dataset(f["L3_dense/L3_dense"], "bias:0", **kwargs)
        cases.append(Case(name, g, (p,), expect, message, base=base, diff_rc=diff_rc))

    bias(
        "dtype_vlen_string_object",
        REFUSED,
        r"not a tensor dtype",
        data=np.array(["a"], dtype=object),
        dtype=h5py.string_dtype(),
    )
    bias("dtype_fixed_string", REFUSED, r"not a tensor dtype", data=np.array([b"abcdefgh"]))
    bias("dtype_compound", REFUSED, r"not a tensor dtype", data=np.zeros(1, dtype=[("re", "<f4"), ("im", "<f4")]))
    bias("dtype_opaque_8_bytes", REFUSED, r"not a tensor dtype", data=np.zeros(1, dtype="V8"))
    bias("dtype_complex64", REFUSED, r"not a tensor dtype", data=np.zeros(1, dtype=np.complex64))
    bias("dtype_vlen_float_sequences", REFUSED, r"not a tensor dtype", shape=(1,), dtype=h5py.vlen_dtype(np.float32))
    bias("dtype_reference", REFUSED, r"not a tensor dtype", shape=(1,), dtype=h5py.ref_dtype)
    bias("dtype_bool", READ, data=np.array([True]))
    bias("dtype_float16", READ, data=np.array([0.5], dtype=np.float16))
    bias("scalar_0d_dataset", READ, data=np.float32(0.25))
    bias("null_dataspace", REFUSED, r"no dataspace", data=h5py.Empty("<f4"))

    p = _copy("dtypes/k3.weights.h5", out / "bfloat16_tag_not_text.h5")
    with h5py.File(p, "a") as f:
        f["layers/batch_normalization/vars/0"].attrs["dtype"] = np.arange(3)
    cases.append(
        Case(
            "bfloat16_tag_not_text",
            g,
            (p,),
            REFUSED,
            r"\|V2 which is not a tensor dtype",
            base=fixture("dtypes/k3.weights.h5"),
        )
    )

    p = _copy("tutorial/k2_weights.h5", out / "zero_size_dataset.h5")
    with h5py.File(p, "a") as f:
        _replace_dataset(f["L2_dense/L2_dense"], "kernel:0", shape=(0, 10), dtype="<f4")
    cases.append(Case("zero_size_dataset", g, (p,), READ, base=base))
    return cases


def _zips(out: Path) -> list[Case]:
    g = "zip"
    base = fixture("tutorial/k3.keras")
    members = _keras_members()
    cases = []

    def keras(name: str, data: bytes, expect=REFUSED, message="", **kw):
        p = out / f"{name}.keras"
        p.write_bytes(data)
        cases.append(Case(name, g, (p,), expect, message, base=base, **kw))

    evil = {"data": b"pwned\n"}
    outside = r"points outside the archive"
    keras("zip_entry_dotdot", _keras_zip(members, [dict(evil, name="../../evil")]), message=outside)
    keras("zip_entry_absolute", _keras_zip(members, [dict(evil, name="/etc/evil")]), message=outside)
    keras(
        "zip_entry_backslash",
        _keras_zip(members, [dict(evil, name="..\\..\\evil")]),
        message=r"points outside the archive",
    )
    keras(
        "zip_entry_drive_letter",
        _keras_zip(members, [dict(evil, name="C:/evil")]),
        message=r"points outside the archive",
    )
    weights = members["model.weights.h5"]
    keras(
        "zip_duplicate_weights",
        _keras_zip(members, [{"name": "model.weights.h5", "data": weights}]),
        message=r"duplicate entries named 'model.weights.h5'",
    )
    keras(
        "zip_duplicate_config",
        _keras_zip(members, [{"name": "config.json", "data": b"{}"}]),
        message=r"duplicate entries named 'config.json'",
    )
    keras(
        "zip_missing_weights",
        _keras_zip({k: v for k, v in members.items() if k != "model.weights.h5"}),
        message=r"has no 'model.weights.h5'",
    )
    keras(
        "zip_missing_config",
        _keras_zip({k: v for k, v in members.items() if k != "config.json"}),
        message=r"has no 'config.json'",
    )
    keras(
        "zip_config_invalid_json",
        _keras_zip(dict(members, **{"config.json": b'{"class_name": '})),
        message=r"'config.json' is not valid JSON",
    )
    keras(
        "zip_config_deeply_nested",
        _keras_zip(dict(members, **{"config.json": b"[" * 100_000 + b"]" * 100_000})),
        message=r"'config.json' is not valid JSON",
    )
    keras(
        "zip_config_not_utf8",
        _keras_zip(dict(members, **{"config.json": b'{"a": "\xff\xfe"}'})),
        message=r"'config.json' is not valid JSON",
    )
    keras("zip_config_not_an_object", _keras_zip(dict(members, **{"config.json": b"[1, 2]"})), READ)
    keras("zip_metadata_not_an_object", _keras_zip(dict(members, **{"metadata.json": b'"3.0"'})), READ, diff_rc=(0,))

    # config.json declaring 110 MB of spaces (deflated: ~110 KB)
    stream, _crc1 = deflate_repeated(b" " * MiB, 110, raw=True)
    keras(
        "zip_config_110MB",
        _keras_zip(members, **{"config.json": {"data": stream, "method": 8, "size": 110 * MiB}}),
        message=r"'config.json' declares .* bytes",
    )
    # the same, lying: declares 100 bytes
    keras(
        "zip_config_lying_size",
        _keras_zip(members, **{"config.json": {"data": stream, "method": 8, "size": 100}}),
        message=r"config.json",
    )

    # zip bombs: model.weights.h5 inflating to 3.9 GiB from ~4 MiB of deflate blocks
    bomb, _ = deflate_repeated(b"\x00" * MiB, 3900, raw=True)
    keras(
        "zip_bomb_declared",
        _keras_zip(members, **{"model.weights.h5": {"data": bomb, "method": 8, "size": 3900 * MiB}}),
        message=r"zip bomb",
    )
    keras(
        "zip_bomb_lying_size",
        _keras_zip(
            members, **{"model.weights.h5": {"data": bomb, "method": 8, "size": MiB, "crc": zlib.crc32(b"\x00" * MiB)}}
        ),
        message=r"model\.weights\.h5",
    )
    small = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = small.compress(members["model.weights.h5"]) + small.flush()
    keras(
        "zip_weights_deflated_ok",
        _keras_zip(
            members,
            **{
                "model.weights.h5": {
                    "data": deflated,
                    "method": 8,
                    "size": len(members["model.weights.h5"]),
                    "crc": zlib.crc32(members["model.weights.h5"]),
                }
            },
        ),
        READ,
        diff_rc=(0,),
    )

    keras("zip_encrypted_weights", _keras_zip(members, **{"model.weights.h5": {"flags": 0x1}}), message=r"encrypted")
    keras("zip_encrypted_config", _keras_zip(members, **{"config.json": {"flags": 0x1}}), message=r"encrypted")
    keras(
        "zip_unknown_method_weights",
        _keras_zip(members, **{"model.weights.h5": {"method": 99}}),
        message=r"model\.weights\.h5",
    )
    keras("zip_unknown_method_config", _keras_zip(members, **{"config.json": {"method": 99}}), message=r"config\.json")
    keras(
        "zip_weights_not_hdf5",
        _keras_zip(dict(members, **{"model.weights.h5": b"not hdf5 at all"})),
        message=r"cannot be read as HDF5",
        names="zip_weights_not_hdf5.keras!model.weights.h5",
    )
    keras(
        "zip_weights_past_end",
        _keras_zip(members, **{"model.weights.h5": {"size": len(weights) * 4}}),
        message=r"model\.weights\.h5",
    )
    keras(
        "zip_config_symlink_to_etc_passwd",
        _keras_zip(members, **{"config.json": {"data": b"/etc/passwd", "mode": 0o120777}}),
        message=r"'config.json' is not valid JSON",
    )
    keras("zip_pk_magic_then_garbage", b"PK\x03\x04" + b"\x00" * 200, message=r"not a readable zip archive")
    # a .keras that is really a legacy HDF5 file: read by content, not by name
    p = _copy("tutorial/k2_full.h5", out / "legacy_named.keras")
    cases.append(Case("legacy_h5_named_keras", g, (p,), READ, base=fixture("tutorial/k2_full.h5"), diff_rc=(0,)))
    return cases


def _sharded(out: Path) -> list[Case]:
    g = "sharded"
    base = fixture("tutorial/k3_sharded.weights.json")
    cases = []

    def sharded(name: str, edit_index=None, edit_dir=None, expect=REFUSED, message="", names=None):
        d = _sharded_copy(out, name)
        idx = d / "k3_sharded.weights.json"
        if edit_index is not None:
            doc = json.loads(idx.read_text())
            res = edit_index(doc)
            idx.write_text(res if isinstance(res, str) else json.dumps(doc))
        if edit_dir is not None:
            edit_dir(d)
        cases.append(Case(name, g, _sharded_paths(d), expect, message, base=base, names=names))

    def shard_name(new):
        def edit(doc):
            doc["weight_map"]["/layers/dense/vars"] = new

        return edit

    sharded("sharded_shard_dotdot", shard_name("../k3_sharded_00000.weights.h5"), message=r"not a plain file name")
    sharded("sharded_shard_absolute", shard_name("/etc/passwd"), message=r"not a plain file name")
    sharded("sharded_shard_backslash", shard_name("..\\..\\etc\\passwd"), message=r"not a plain file name")
    sharded("sharded_shard_dot", shard_name(".."), message=r"not a plain file name")
    sharded("sharded_shard_not_a_string", shard_name({"$ref": "x"}), message=r"not a plain file name")
    sharded(
        "sharded_missing_shard",
        shard_name("k3_sharded_00009.weights.h5"),
        message=r"no such file",
        names="k3_sharded_00009.weights.h5",
    )
    sharded(
        "sharded_weight_map_not_object",
        lambda doc: doc.__setitem__("weight_map", ["a"]),
        message=r"'weight_map' is not an object",
    )
    sharded("sharded_index_deeply_nested", lambda doc: "[" * 100_000 + "]" * 100_000, message=r"nor valid JSON")

    def link_passwd(d):
        (d / "k3_sharded_00003.weights.h5").unlink()
        (d / "k3_sharded_00003.weights.h5").symlink_to("/etc/passwd")

    sharded(
        "sharded_shard_symlink_etc_passwd",
        edit_dir=link_passwd,
        message=r"outside the index's directory",
        names="k3_sharded_00003.weights.h5",
    )

    def link_outside_h5(d):
        (d / "k3_sharded_00003.weights.h5").unlink()
        (d / "k3_sharded_00003.weights.h5").symlink_to(fixture("tutorial/k3_sharded_00003.weights.h5"))

    sharded(
        "sharded_shard_symlink_outside",
        edit_dir=link_outside_h5,
        message=r"outside the index's directory",
        names="k3_sharded_00003.weights.h5",
    )

    def shard_dir(d):
        (d / "k3_sharded_00003.weights.h5").unlink()
        (d / "k3_sharded_00003.weights.h5").mkdir()

    sharded("sharded_shard_is_directory", edit_dir=shard_dir, message=r"directory", names="k3_sharded_00003.weights.h5")

    def shard_fifo(d):
        (d / "k3_sharded_00003.weights.h5").unlink()
        os.mkfifo(d / "k3_sharded_00003.weights.h5")

    sharded(
        "sharded_shard_fifo", edit_dir=shard_fifo, message=r"not a regular file", names="k3_sharded_00003.weights.h5"
    )

    def ext_link_in_shard(d):
        with h5py.File(d / "k3_sharded_00000.weights.h5", "a") as f:
            del f["layers/dense/vars/0"]
            f["layers/dense/vars/0"] = h5py.ExternalLink(str(fixture("tutorial/k3.weights.h5")), "/layers/dense/vars/0")

    sharded(
        "sharded_shard_external_link",
        edit_dir=ext_link_in_shard,
        message=r"external link",
        names="k3_sharded_00000.weights.h5",
    )
    return cases


def _code(out: Path) -> list[Case]:
    """Models whose config holds a Lambda that would write the marker file if it ran."""
    g = "code"
    cases = []
    for name, fname in (
        ("lambda_tf_keras_legacy_h5", "lambda_tf_keras.h5"),
        ("lambda_keras3_archive", "lambda_keras3.keras"),
    ):
        src = DATA / fname
        if not src.is_file():
            continue
        p = out / fname
        shutil.copyfile(src, p)
        cases.append(Case(name, g, (p,), READ, base=p, diff_rc=(0,), marker=True))
    return cases


def deflated_keras_bytes(rel: str = "tutorial/k3.keras") -> bytes:
    """The fixture's members re-zipped deflated (Keras stores them): exercises the inflate path.
    Deterministic (fixed dates), so fuzz offsets stay valid."""
    members = _keras_members(rel)
    overrides = {}
    for name, data in members.items():
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        overrides[name] = {
            "data": c.compress(data) + c.flush(),
            "method": 8,
            "size": len(data),
            "crc": zlib.crc32(data),
        }
    return _keras_zip(members, **overrides)


#: The valid files the fuzzer mutates (and the regressions below start from): name -> (suffix, bytes).
def fuzz_bases() -> dict[str, tuple[str, bytes]]:
    return {
        "legacy_h5": (".h5", fixture("tutorial/k2_full.h5").read_bytes()),
        "keras": (".keras", fixture("tutorial/k3.keras").read_bytes()),
        "keras_deflated": (".keras", deflated_keras_bytes()),
        "weights_h5": (".h5", fixture("tutorial/k3.weights.h5").read_bytes()),
    }


def apply_mutations(data: bytes, mutations) -> bytes:
    """Mutations as the fuzzer draws them: ("flip", offset, bit), ("set", offset, hex bytes),
    ("zero", offset, length), ("truncate", offset). Offsets past the end are clamped."""
    b = bytearray(data)
    for m in mutations:
        kind, off = m[0], min(int(m[1]), max(len(b) - 1, 0))
        if kind == "flip" and b:
            b[off] ^= 1 << int(m[2])
        elif kind == "set":
            new = bytes.fromhex(m[2])
            b[off : off + len(new)] = new
        elif kind == "zero":
            b[off : off + int(m[2])] = bytes(len(b[off : off + int(m[2])]))
        elif kind == "truncate":
            del b[max(off, 1) :]
    return bytes(b)


#: Inputs found by fuzzing (tests/test_fuzz.py and a longer campaign) that once escaped as
#: non-kaudit errors or hang: (name, fuzz base, mutations, expect, message). They run here as
#: corpus cases and in tests/test_fuzz.py as explicit examples.
REGRESSIONS: list[tuple[str, str, list[tuple], str, str]] = [
    # h5py raised ValueError("Insufficient precision ...") for a corrupted float type
    ("fuzz_unreadable_float_dtype_legacy", "legacy_h5", [("flip", 24490, 1)], REFUSED, r"unreadable dtype"),
    ("fuzz_unreadable_float_dtype_v3", "weights_h5", [("set", 21994, "7decf1bdfc63")], REFUSED, r"unreadable dtype"),
    # zipfile let zlib.error escape for a corrupted deflate stream (config.json, then the weights)
    (
        "fuzz_corrupt_deflate_config",
        "keras_deflated",
        [("set", 248, "dd01e4887534a2")],
        REFUSED,
        r"cannot read archive entry 'config\.json'",
    ),
    (
        "fuzz_corrupt_deflate_weights",
        "keras_deflated",
        [("set", 1305, "dd01e4887534a2")],
        REFUSED,
        r"model\.weights\.h5",
    ),
    # HDF5 1.14.6 loops forever decoding a global heap collection whose size, or an object size
    # in it, was changed: kaudit cannot interrupt C code (docs/security.md, known limits)
    ("fuzz_global_heap_size_hang", "legacy_h5", [("set", 2057, "cd")], HANG, ""),
    ("fuzz_global_heap_object_size_hang", "weights_h5", [("set", 2065, "ffffffffffffffff")], HANG, ""),
]


def _regressions(out: Path) -> list[Case]:
    bases = fuzz_bases()
    cases = []
    for name, base, mutations, expect, message in REGRESSIONS:
        suffix, data = bases[base]
        p = out / f"{name}{suffix}"
        p.write_bytes(apply_mutations(data, mutations))
        orig = out / f"fuzz_base_{base}{suffix}"
        if not orig.exists():
            orig.write_bytes(data)
        cases.append(Case(name, "fuzz", (p,), expect, message, base=orig))
    return cases


def build_corpus(directory: str | os.PathLike, *, slow: bool = True) -> list[Case]:
    """Write every case into ``directory`` (which must exist and be empty); return the cases.
    ``slow=False`` leaves out the cases that take seconds to read (gigabytes to stream)."""
    out = Path(directory)
    cases: list[Case] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for build in (_special, _truncations, _structure, _links, _dtypes, _zips, _sharded, _code, _regressions):
            cases += build(out)
        cases += _sizes(out, slow)
    if not slow:
        cases = [c for c in cases if not c.slow]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


# -- the Lambda models (need Keras; run once, results kept in data/) ---------------------------------

_TF_KERAS_SCRIPT = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tf_keras as k
k.utils.set_random_seed(0)
payload = eval(compile(sys.argv[2], sys.argv[3], "eval"))
inp = k.Input(shape=(4,), name="x")
h = k.layers.Lambda(payload, name="evil_lambda")(inp)
out = k.layers.Dense(2, name="dense_out")(h)
k.Model(inp, out, name="lambda_model").save(sys.argv[1])
"""

_KERAS3_SCRIPT = """
import os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
keras.utils.set_random_seed(0)
payload = eval(compile(sys.argv[2], sys.argv[3], "eval"))
inp = keras.Input(shape=(4,), name="x")
h = keras.layers.Lambda(payload, output_shape=(4,), name="evil_lambda")(inp)
out = keras.layers.Dense(2, name="dense_out")(h)
keras.Model(inp, out, name="lambda_model").save(sys.argv[1])
"""


def make_lambda_models(directory: str | os.PathLike, scratch_marker: str | os.PathLike) -> dict[str, Path]:
    """Build the two Lambda models with tf_keras and Keras 3 (each in its own subprocess, in
    parallel). Building a Lambda calls it, so the payload runs here: it writes
    ``scratch_marker``, never the test's marker."""
    d = Path(directory)
    env = dict(os.environ, **{MARKER_ENV: str(scratch_marker)})
    jobs = {
        "lambda_tf_keras.h5": _TF_KERAS_SCRIPT,
        "lambda_keras3.keras": _KERAS3_SCRIPT,
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", script, str(d / name), PAYLOAD_SRC, PAYLOAD_FILENAME],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name, script in jobs.items()
    }
    for name, p in procs.items():
        _out, err = p.communicate(timeout=300)
        if p.returncode != 0:
            raise RuntimeError(f"building {name} failed:\n{err.decode(errors='replace')[-2000:]}")
    return {name: d / name for name in jobs}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--make-lambda-data", action="store_true", help=f"rebuild the Lambda models in {DATA}")
    ap.add_argument("--out", help="build the corpus into this (empty) directory and list it")
    args = ap.parse_args()
    if args.make_lambda_data:
        DATA.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            for p in make_lambda_models(DATA, Path(tmp) / "marker").values():
                print(p, p.stat().st_size)
    if args.out:
        for c in build_corpus(args.out):
            print(f"{c.group:10} {c.name:42} {c.expect:8} {c.path}")
