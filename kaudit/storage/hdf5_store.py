"""The value store of HDF5 checkpoints: reads variables from open files (shards), whether the
metadata parser or h5py (behind its guards) opened them.

Uncompressed contiguous datasets in a plain file (or a zip member stored uncompressed) are read
straight from their byte range with ``os.preadv``; everything else goes through the dataset's
own reads (h5py hyperslabs). Values come in bounded blocks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import CorruptFileError
from . import hdf5_guards as G
from . import hdf5_parse as P

BFLOAT16 = "bfloat16"

#: The two kinds of group and dataset a reader may hold: the parser's, or h5py's behind the guards.
GROUPS = (P.Group, G.GuardedGroup)
DATASETS = (P.Dataset, G.GuardedDataset)

_UINT16 = np.dtype(np.uint16)
_HAVE_PREADV = hasattr(os, "preadv")
_SMALL = 8 << 10  # variables up to this many bytes are read through a read-ahead window...
_WINDOW = 64 << 10  # ...of this many bytes
_short = G.short


def widen(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Raw stored values -> numeric numpy values (bfloat16 becomes float32, exactly)."""
    if dtype == BFLOAT16:
        u16 = np.ascontiguousarray(raw).view(np.uint16)
        out = np.empty(u16.shape, np.uint32)  # one pass: 0.24 ns per value against 0.9-1.2 (docs/performance.md)
        np.left_shift(u16, 16, out=out, dtype=np.uint32)
        return out.view(np.float32)
    return raw


# -- the store -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:  # (no __dict__: one object per variable, not two, for the garbage collector to walk)
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
        files: list,
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
        self._groups: dict[tuple[int, str], P.Group | G.GuardedGroup] = {}  # a few recent ones (see _walk)

    def register(
        self,
        location: str,
        file_index: int,
        ds_path: str,
        dtype: str,
        ds=None,
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

    def _dataset(self, var: Located) -> tuple:
        e = self._entries[var.location]
        ds = self._walk(e.file_index, e.ds_path)
        if not isinstance(ds, DATASETS):
            raise CorruptFileError(f"dataset {e.ds_path!r} disappeared", path=self.displays[e.file_index])
        return ds, e

    def _walk(self, file_index: int, path: str):
        """The object at ``path`` of file ``file_index``, keeping the last few groups on the way
        open (a layer's variables share them; more would cost RSS)."""
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
        return group.child(leaf)

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
        self, ds, e: _Entry, shape: tuple[int, ...] | None = None, raw_dtype: np.dtype | None = None
    ) -> int | None:
        """Absolute byte offset of ``ds``'s values in the file on disk, when they can be read
        from there directly (uncompressed, contiguous, allocated), else None."""
        source = self.direct_sources[e.file_index]
        if not (self.use_direct and source):
            return None
        offset = ds.image_offset(shape, raw_dtype)
        if offset is None:
            return None
        if shape is None:
            shape = ds.shape
        itemsize = (raw_dtype if raw_dtype is not None else ds.stored_dtype).itemsize
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
        self, ds, e: _Entry, shape: tuple[int, ...] | None = None, raw_dtype: np.dtype | None = None
    ) -> tuple | None:
        if not _HAVE_PREADV:
            return None
        offset = self._contiguous_offset(ds, e, shape, raw_dtype)
        if offset is None:
            return None
        if e.dtype == BFLOAT16:
            dt = _UINT16
        else:
            dt = raw_dtype if raw_dtype is not None else ds.stored_dtype
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
        return self._blocks(var, block_elems, True)

    def iter_stored_blocks(self, var: Located, block_elems: int) -> Iterator[np.ndarray]:
        """Flat blocks as stored (bfloat16 as its 16-bit words, not widened): equal blocks of two
        variables of one dtype are equal values. For the identity pass of a comparison."""
        return self._blocks(var, block_elems, False)

    def _blocks(self, var: Located, block_elems: int, widened: bool) -> Iterator[np.ndarray]:
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
                yield widen(raw, e.dtype) if widened else raw
            return
        for sel in block_selections(tuple(ds.shape), block_elems):
            try:
                raw = ds[sel]
            except (OSError, RuntimeError, ValueError, TypeError) as exc:
                raise CorruptFileError(f"cannot read {var.path!r} ({_short(exc)})", path=display) from None
            yield (widen(np.asarray(raw), e.dtype) if widened else np.asarray(raw)).reshape(-1)

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
