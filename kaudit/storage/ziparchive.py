"""``.keras`` archives read with zipfile, never extracted to where an entry's name points.

* entry names are only looked up, never used as paths: ``..`` or absolute names are refused;
* duplicate entries of a name kaudit reads are refused (which one would Keras take?);
* an entry stored uncompressed is read in place through a window onto the archive file (and
  memory-mapped for values); a compressed one is inflated into a private temporary file with a
  compression-ratio and size guard, so a zip bomb stops before it fills memory or disk;
* the CRC-32 of every entry kaudit uses is checked: zipfile checks it for the entries it reads
  whole (JSON, inflated entries); for an entry read in place, a thread computes it while the
  readers work (``verify()`` waits for it, and every command calls it before a result is shown).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tempfile
import threading
import zipfile
import zlib

from ..errors import CorruptFileError, UnsafeInputError

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"
#: JSON members larger than this are refused.
MAX_JSON_BYTES = 64 << 20
#: An entry inflating to more than this many times its compressed size (once past 16 MiB) is a bomb.
MAX_RATIO = 200
#: Hard cap on what kaudit inflates from one entry.
MAX_INFLATE = 64 << 30

#: What zipfile raises on a broken, encrypted or unsupported entry (zlib.error for bad deflate data).
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError, zlib.error)


class SubFile(io.RawIOBase):
    """A read-only, seekable window [start, start+size) of a file: an uncompressed zip member.
    Read with ``os.pread``, or with seek and read of a file of its own where the system has no
    ``pread`` (Windows)."""

    def __init__(self, path: str, start: int, size: int):
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._file = None if hasattr(os, "pread") else os.fdopen(self._fd, "rb", buffering=0)
        self._start = start
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        elif whence == io.SEEK_END:
            self._pos = self._size + offset
        self._pos = max(0, self._pos)
        return self._pos

    def readinto(self, b) -> int:
        n = max(0, min(len(b), self._size - self._pos))
        if n == 0:
            return 0
        if self._file is None:
            data = os.pread(self._fd, n, self._start + self._pos)
        else:
            self._file.seek(self._start + self._pos)
            data = self._file.read(n)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            if self._file is not None:
                self._file.close()
            else:
                os.close(self._fd)
        super().close()


class _CrcCheck:
    """The CRC-32 of ``size`` bytes at ``start`` of ``path`` (a stored member), computed on a
    thread in blocks of 1 MiB (zlib releases the GIL on them: the second core does it while the
    readers parse and compare on the first)."""

    BLOCK = 1 << 20

    def __init__(self, path: str, start: int, size: int, expected: int, name: str, display: str):
        self.name, self.display, self.expected = name, display, expected
        self.crc: int | None = None
        self.error: OSError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(path, start, size), name="kaudit-crc", daemon=True)
        self._thread.start()

    def _run(self, path: str, start: int, size: int) -> None:
        try:
            with open(path, "rb", buffering=0) as fh:
                crc, done = 0, 0
                fh.seek(start)
                while done < size:
                    if self._stop.is_set():
                        return
                    block = fh.read(min(self.BLOCK, size - done))
                    if not block:
                        raise OSError("the archive ends inside the entry")
                    crc = zlib.crc32(block, crc)
                    done += len(block)
                self.crc = crc
        except OSError as exc:
            self.error = exc

    def verify(self) -> None:
        self._thread.join()
        if self._stop.is_set():  # cancelled (the archive was closed, on an error): nothing to say
            return
        if self.error is not None:
            raise CorruptFileError(f"cannot read archive entry {self.name!r} ({self.error})", path=self.display)
        if self.crc != self.expected:
            raise CorruptFileError(
                f"archive entry {self.name!r} is damaged: its CRC-32 is {self.crc or 0:08x}, the archive "
                f"records {self.expected:08x}",
                path=self.display,
                hint="the file is corrupted; re-download or re-save it",
            )

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join()


class KerasArchive:
    """The members of a ``.keras`` zip that kaudit needs."""

    def __init__(self, path: str, display: str):
        self.path = path
        self.display = display
        self._tmpdir: str | None = None
        self._raw: dict[str, bytes] = {}
        self._checks: list[_CrcCheck] = []
        try:
            self.zf = zipfile.ZipFile(path)
            infos = self.zf.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
            raise CorruptFileError(
                f"is not a readable zip archive ({exc})",
                path=display,
                hint="a .keras file is a zip; the file is truncated or corrupted",
            ) from None
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            if (
                name.startswith("/")
                or "\\" in name
                or any(p == ".." for p in name.split("/"))
                or ":" in name.split("/")[0]
            ):
                raise UnsafeInputError(f"archive entry {name!r} points outside the archive; refused", path=display)
            if name in self.members and name in (CONFIG, METADATA, WEIGHTS):
                raise UnsafeInputError(
                    f"archive has duplicate entries named {name!r}; refused",
                    path=display,
                    hint="re-save the model with Keras",
                )
            self.members.setdefault(name, info)

    def has(self, name: str) -> bool:
        return name in self.members

    def raw(self, name: str) -> bytes | None:
        """The bytes of a JSON member (at most MAX_JSON_BYTES), or None when there is no such member."""
        data = self._raw.get(name)
        if data is not None:
            return data
        info = self.members.get(name)
        if info is None:
            return None
        if info.file_size > MAX_JSON_BYTES:
            raise UnsafeInputError(
                f"archive entry {name!r} declares {info.file_size:,} bytes; refused", path=self.display
            )
        self._refuse_encrypted(info)
        try:
            with self.zf.open(info) as fh:
                data = fh.read(MAX_JSON_BYTES + 1)
        except _ZIP_ERRORS as exc:
            raise CorruptFileError(f"cannot read archive entry {name!r} ({exc})", path=self.display) from None
        if len(data) > MAX_JSON_BYTES:
            raise UnsafeInputError(
                f"archive entry {name!r} inflates past {MAX_JSON_BYTES:,} bytes; refused", path=self.display
            )
        self._raw[name] = data  # (read once; readers/pair.py compares them: see forget())
        return data

    def forget(self) -> None:
        """Drop the member bytes kept by :meth:`raw`."""
        self._raw = {}

    def json(self, name: str, loads=json.loads):
        """A member's JSON, parsed by ``loads``; None when there is no such member."""
        data = self.raw(name)
        if data is None:
            return None
        try:
            return loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise CorruptFileError(
                f"archive entry {name!r} is not valid JSON ({str(exc)[:120]})", path=self.display
            ) from None

    def stored(self, name: str) -> bool:
        """Whether the member is stored uncompressed (and not encrypted): read in place."""
        info = self.members[name]
        return info.compress_type == zipfile.ZIP_STORED and info.flag_bits & 0x1 == 0

    def open_member(self, name: str):
        """(binary file object, (path, byte offset, size) of its bytes on disk) for a member: the
        archive itself when the member is stored uncompressed, else a temporary file of ours (never
        extracted where its name says)."""
        info = self.members[name]
        self._refuse_encrypted(info)
        if self.stored(name):
            start = self._data_offset(info)
            if start + info.file_size > os.path.getsize(self.path):
                raise CorruptFileError(
                    f"archive entry {name!r} extends past the end of the file (truncated?)", path=self.display
                )
            if info.compress_size != info.file_size:
                raise CorruptFileError(
                    f"archive entry {name!r} is stored with two sizes ({info.compress_size:,} and {info.file_size:,})",
                    path=self.display,
                )
            self._checks.append(_CrcCheck(self.path, start, info.file_size, info.CRC, name, self.display))
            return SubFile(self.path, start, info.file_size), (self.path, start, info.file_size)
        fh = self._inflate(info)  # a plain temporary file of ours: read in place like any other
        return fh, (fh.name, 0, os.path.getsize(fh.name))

    def _refuse_encrypted(self, info: zipfile.ZipInfo) -> None:
        if info.flag_bits & 0x1:
            raise CorruptFileError(
                f"archive entry {info.filename!r} is encrypted; kaudit cannot read it",
                path=self.display,
                hint="Keras never encrypts .keras files; re-save the model",
            )

    def _data_offset(self, info: zipfile.ZipInfo) -> int:
        with open(self.path, "rb") as fh:
            fh.seek(info.header_offset)
            header = fh.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise CorruptFileError(f"archive entry {info.filename!r} has a broken local header", path=self.display)
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        return info.header_offset + 30 + name_len + extra_len

    def _inflate(self, info: zipfile.ZipInfo):
        self._tmpdir = self._tmpdir or tempfile.mkdtemp(prefix="kaudit-")
        target = os.path.join(self._tmpdir, "member.h5")  # our name, never the entry's
        limit = min(MAX_INFLATE, max(16 << 20, info.compress_size * MAX_RATIO))
        if info.file_size > limit:  # refused before inflating a byte: the declared size is the bound
            raise UnsafeInputError(
                f"archive entry {info.filename!r} declares {info.file_size:,} bytes from {info.compress_size:,} "
                f"(over {limit:,}: zip bomb?); refused",
                path=self.display,
            )
        written = 0
        try:
            with self.zf.open(info) as src, open(target, "wb") as dst:
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    written += len(chunk)
                    if written > limit or written > info.file_size:
                        raise UnsafeInputError(
                            f"archive entry {info.filename!r} inflates past {min(limit, info.file_size):,} bytes "
                            f"from {info.compress_size:,} (zip bomb?); refused",
                            path=self.display,
                        )
                    dst.write(chunk)
        except _ZIP_ERRORS as exc:
            raise CorruptFileError(
                f"cannot inflate archive entry {info.filename!r} ({exc})", path=self.display
            ) from None
        return open(target, "rb")

    def verify(self) -> None:
        """Wait for the CRC-32 checks of the entries read in place; CorruptFileError on a mismatch."""
        for check in self._checks:
            check.verify()

    def close(self) -> None:
        for check in self._checks:
            check.cancel()
        try:
            self.zf.close()
        finally:
            if self._tmpdir:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None
