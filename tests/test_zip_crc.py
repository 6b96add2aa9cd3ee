"""Zip CRC-32s are checked (issue 13, item 4): a `.keras` whose member bytes no longer match the
CRC-32 the archive records is refused (exit 2, one line naming the member), as zipfile and Keras
refuse it; never diffed as if sound. The member kaudit reads in place (``model.weights.h5``
stored uncompressed) is checked on a thread while it is read; the others by zipfile."""

from __future__ import annotations

import random
import shutil
import struct
import threading
import time
import zipfile
import zlib
from pathlib import Path

import pytest

import kaudit
from kaudit.cli import main
from kaudit.errors import CorruptFileError, KauditError
from kaudit.storage import ziparchive

from .conftest import FIXTURES, run_cli
from .hostile import corpus as C

K3 = FIXTURES / "tutorial" / "k3.keras"


def _member_span(path: Path, name: str) -> tuple[int, int]:
    """(offset, size) of a stored member's bytes in the archive."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name)
        assert info.compress_type == zipfile.ZIP_STORED
    data = path.read_bytes()
    n, e = struct.unpack_from("<HH", data, info.header_offset + 26)
    return info.header_offset + 30 + n + e, info.file_size


def _flipped(src: Path, dst: Path, where: str, name: str = "model.weights.h5") -> Path:
    """A copy with 8 bytes of ``name`` inverted: its last bytes (values) or bytes 64-71 (HDF5
    metadata: the superblock's addresses)."""
    start, size = _member_span(src, name)
    data = bytearray(src.read_bytes())
    at = start + (size - 8 if where == "values" else 64)
    for i in range(at, at + 8):
        data[i] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def _zipfile_refuses(path: Path, name: str) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            z.read(name)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError, KeyError):
        return True
    return False


@pytest.mark.parametrize("where", ["values", "metadata"])
def test_flipped_member_bytes_are_refused_in_process(where, tmp_path, capsys):
    bad = _flipped(K3, tmp_path / "bad.keras", where)
    assert _zipfile_refuses(bad, "model.weights.h5")  # the oracle: zipfile (and so Keras) refuses it
    for args in (["diff", str(K3), str(bad)], ["inspect", str(bad)], ["audit", str(bad)], ["diff", str(bad), str(K3)]):
        code = main(args)
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert code == 2, (args, out, err)
        assert len(lines) == 1 and "model.weights.h5" in lines[0] and "CRC-32" in lines[0], err
        assert "PASS" not in out and "identical" not in out
    with pytest.raises(CorruptFileError, match=r"'model\.weights\.h5' is damaged: its CRC-32"):
        kaudit.load(str(bad))


def test_flipped_member_bytes_are_refused_as_a_subprocess(tmp_path):
    bad = _flipped(K3, tmp_path / "bad.keras", "values")
    r = run_cli("diff", str(K3), str(bad), "--format", "json", "-o", str(tmp_path / "out.json"))
    assert r.returncode == 2 and "CRC-32" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out.json").exists()  # nothing written half-way


def test_the_check_runs_on_the_h5py_path_too(tmp_path, monkeypatch, capsys):
    bad = _flipped(K3, tmp_path / "bad.keras", "values")
    monkeypatch.setenv("KAUDIT_H5_PARSER", "h5py")
    assert main(["diff", str(K3), str(bad)]) == 2
    assert "CRC-32" in capsys.readouterr().err


def test_a_sound_archive_passes_and_its_check_thread_ends(tmp_path):
    copy = tmp_path / "copy.keras"
    shutil.copy(K3, copy)
    assert main(["diff", str(K3), str(copy)]) == 0
    r = kaudit.diff(str(K3), str(copy), policy=False)
    assert r.passed
    time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name == "kaudit-crc"]


def test_closing_early_stops_the_check(tmp_path):
    arc = ziparchive.KerasArchive(str(K3), "k3.keras")
    fh, _where = arc.open_member("model.weights.h5")
    fh.close()
    arc.close()  # before anything was verified
    assert not [t for t in threading.enumerate() if t.name == "kaudit-crc"]


def test_a_deflated_member_and_a_json_member_are_checked_by_zipfile(tmp_path):
    deflated = tmp_path / "deflated.keras"
    deflated.write_bytes(C.deflated_keras_bytes())
    assert main(["diff", str(K3), str(deflated)]) == 0
    # a wrong CRC recorded for the weights, deflated (zipfile checks it as it inflates) and stored
    # (kaudit's own check), and a stored config.json with flipped bytes
    members = C._keras_members("tutorial/k3.keras")
    weights = members["model.weights.h5"]
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated_bad = {"data": c.compress(weights) + c.flush(), "method": 8, "size": len(weights), "crc": 12345}
    for label, override in (("deflated", deflated_bad), ("stored", {"crc": 12345})):
        bad = tmp_path / f"bad_{label}.keras"
        bad.write_bytes(C._keras_zip(members, **{"model.weights.h5": override}))
        assert _zipfile_refuses(bad, "model.weights.h5"), label
        with pytest.raises(CorruptFileError, match=r"model\.weights\.h5"):
            kaudit.load(str(bad))
    cfg = _flipped(K3, tmp_path / "bad_config.keras", "values", name="config.json")
    assert _zipfile_refuses(cfg, "config.json")
    with pytest.raises(CorruptFileError, match=r"config\.json"):
        kaudit.load(str(cfg))


def _kaudit_reads(path: Path) -> bool:
    try:
        with kaudit.load(str(path)) as ck:
            for v in ck.select(True):
                ck.read(v)
    except KauditError:
        return False
    return True


def test_never_reads_what_zipfile_refuses(tmp_path):
    """Seeded random damage (1 to 16 bytes) of the archive: whenever zipfile refuses a member
    kaudit uses, kaudit reads no model from the file; nothing but a KauditError escapes."""
    data = K3.read_bytes()
    rng = random.Random("zip-crc")
    used = ("config.json", "metadata.json", "model.weights.h5")
    refused = 0
    target = tmp_path / "m.keras"
    for _ in range(150):
        b = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        target.write_bytes(bytes(b))
        if any(_zipfile_refuses(target, name) for name in used):
            refused += 1
            assert not _kaudit_reads(target), "kaudit read a .keras whose members zipfile refuses"
        else:
            _kaudit_reads(target)  # whatever it says, it says it as a KauditError
    assert refused > 100  # most damage lands in a member's bytes


def test_a_cancelled_check_claims_nothing(monkeypatch):
    """A check cut short by closing the archive (on another error) says nothing about the CRC:
    the error that closed it stands. (The check is made slow here: it waits to be cancelled.)"""

    def slow(self, *_args):
        self._stop.wait(10)

    monkeypatch.setattr(ziparchive._CrcCheck, "_run", slow)
    arc = ziparchive.KerasArchive(str(K3), "k3.keras")
    fh, _where = arc.open_member("model.weights.h5")
    fh.close()
    arc.close()
    arc.verify()  # no CorruptFileError made up from a CRC never computed
