"""Readers: recognise a checkpoint by its content and turn it into a :class:`Checkpoint`.

=====================  ==========================================  ====================
format id              what                                        module
=====================  ==========================================  ====================
``keras2-h5``          legacy HDF5 by Keras 1/2 (tf_keras)         ``legacy_h5``
``keras3-h5``          legacy HDF5 written by Keras 3              ``legacy_h5``
``keras3-weights``     Keras 3 ``.weights.h5``                     ``keras_v3``
``keras3-sharded``     Keras 3 ``.weights.json`` + shards          ``keras_v3``
``keras3-archive``     Keras 3 ``.keras`` zip                      ``archive``+``keras_v3``
``tf-checkpoint``      TensorFlow checkpoint (index + data)        ``tf_checkpoint``
``tf-savedmodel``      SavedModel directory (its variables)        ``tf_checkpoint``
``kaudit-snapshot``    a ``kaudit snapshot`` baseline JSON         ``snapshot``
=====================  ==========================================  ====================

Files are recognised by their first bytes (HDF5 and zip signatures), not by their extension:
real projects ship legacy HDF5 files named ``.keras``. Only ``tf_checkpoint`` imports TensorFlow,
and only when such an input is given.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .._gc import collector_paused
from ..checkpoint import Checkpoint
from ..errors import CorruptFileError, FileMissingError, KauditError, UnsupportedFormatError, UsageError
from ..progress import status
from ..storage import hdf5 as H

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"


def sniff(path: str | os.PathLike) -> str:
    """The kind of input at ``path``: 'hdf5', 'zip', 'json', 'tf', or raise."""
    p = Path(path)
    display = str(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        if Path(str(path) + ".index").is_file():
            return "tf"
        raise FileMissingError("no such file or directory", path=display, hint="check the path") from None
    except OSError as exc:
        raise FileMissingError(f"cannot access ({exc.strerror})", path=display) from None
    if stat.S_ISDIR(st.st_mode):
        from .keras_hub import is_preset

        if is_preset(p):
            return "preset"
        if (
            (p / "saved_model.pb").is_file()
            or (p / "saved_model.pbtxt").is_file()
            or (p / "checkpoint").is_file()
            or (p / ".index").is_file()
            or any(p.glob("*.index"))
            or any(p.glob("*.meta"))
        ):
            return "tf"
        raise UnsupportedFormatError(
            "is a directory, not a checkpoint",
            path=display,
            hint="give a model file, a TF checkpoint prefix or a SavedModel directory",
        )
    if not stat.S_ISREG(st.st_mode):
        raise UnsupportedFormatError("is not a regular file (FIFO, socket or device); refused", path=display)
    if st.st_size == 0:
        raise CorruptFileError("is empty (0 bytes)", path=display, hint="the download or save did not finish")
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
            if head == HDF5_MAGIC:
                return "hdf5"
            if head[:4] == ZIP_MAGIC:
                return "zip"
            for off in (512, 1024, 2048):  # HDF5 allows a user block before the superblock
                fh.seek(off)
                if fh.read(8) == HDF5_MAGIC:
                    return "hdf5"
            if st.st_size >= 48:  # a TensorFlow table (checkpoint V1 file, V2 .index) ends with its magic
                fh.seek(st.st_size - 8)
                if fh.read(8) == b"\x57\xfb\x80\x8b\x24\x75\x47\xdb":
                    return "tf"
    except PermissionError:
        raise FileMissingError("permission denied", path=display, hint="make the file readable") from None
    except OSError as exc:
        raise FileMissingError(f"cannot read ({exc.strerror})", path=display) from None
    if p.suffix == ".index" or ".data-" in p.name:
        return "tf"
    if head[:1] in (b"{", b"[", b" ", b"\n", b"\t", b"\r"):
        return "json"
    raise UnsupportedFormatError(
        "is not a Keras or TensorFlow checkpoint (neither HDF5 nor a zip archive)",
        path=display,
        hint="kaudit reads .h5/.hdf5, .keras, .weights.h5, .weights.json, TF checkpoints and SavedModels",
    )


def load(path: str | os.PathLike, verify: bool = True) -> Checkpoint:
    """Read a checkpoint's variable table (values stay on disk until asked for). ``verify``: wait
    for the checksums of what was read in place (a ``.keras`` member's CRC-32) before returning;
    without it the caller calls ``Checkpoint.verify()`` before it trusts a result."""
    ckpt = _load(path)
    if verify:
        try:
            ckpt.verify()
        except BaseException:
            ckpt.close()
            raise
    return ckpt


def _load(path: str | os.PathLike) -> Checkpoint:
    with collector_paused():
        return _read_table(path)


def _read_table(path: str | os.PathLike) -> Checkpoint:
    display = str(path)
    status(display)  # named by the stall watchdog if the HDF5 library never returns
    kind = sniff(path)
    if kind == "hdf5":
        return _load_hdf5(str(path), display)
    if kind == "zip":
        return _load_archive(str(path), display)
    if kind == "json":
        return _load_json(str(path), display)
    if kind == "preset":
        return _load_preset(Path(path), display)
    from . import tf_checkpoint  # the only place TensorFlow may be imported

    return tf_checkpoint.load(str(path), display)


@contextlib.contextmanager
def opened(source) -> Iterator[Checkpoint]:
    """A Checkpoint for ``source`` (a path, or a Checkpoint passed through untouched); one this
    function opened is verified (``Checkpoint.verify``: checksums computed while it was read) when
    the block ends without error, so a result computed inside never leaves it from a damaged
    file, and closed."""
    if isinstance(source, Checkpoint):
        yield source
        return
    if not isinstance(source, (str, os.PathLike)):
        raise UsageError(f"expected a path or a kaudit Checkpoint, got {type(source).__name__}")
    ckpt = load(source, verify=False)
    try:
        yield ckpt
        ckpt.verify()
    finally:
        ckpt.close()


def _fast_parser_enabled() -> bool:
    """The pure-Python metadata parser (``_h5parse``) is used when values can be read directly
    (``os.preadv``); ``KAUDIT_H5_PARSER=h5py`` turns it off (tests compare the two)."""
    return (
        H._HAVE_PREADV
        and os.environ.get("KAUDIT_NO_DIRECT_READ", "") == ""
        and os.environ.get("KAUDIT_H5_PARSER", "") != "h5py"
    )


def _read_hdf5(
    images: list[tuple[str, int, int | None]], displays: list[str], build, open_h5py, owned: list | None = None
) -> Checkpoint:
    """``build(files, store)`` over HDF5 images given as (path, byte offset, size or None).

    First on files parsed by ``hdf5_parse`` (fast); when that parser meets anything it does not
    handle (or the reader fails other than with a kaudit error), once more on the same files
    opened with h5py, whose guards read, refuse or report them exactly as the h5py path always
    has. A kaudit error of the reader over what the parser read stands. A file the parser
    finds damaged (``Damaged``: what HDF5 refuses or loops on) is refused here, exit 2: h5py
    might read other values from it, or never return. ``open_h5py()``
    returns the h5py files (the caller's way: a path, a zip member)."""
    direct: list[tuple[str, int] | None] = [(path, base) for path, base, _size in images]
    if _fast_parser_enabled():
        from ..storage import hdf5_parse as P

        parsed: list = []
        try:
            for path, base, size in images:
                parsed.append(P.File(path, base, size).root)
            return build(parsed, H.H5Store(parsed, displays, direct, owned=owned))
        except P.Damaged as exc:  # HDF5 refuses it too, or loops on it: never handed to h5py
            for root in parsed:
                root.close()
            where = {path: display for (path, _b, _s), display in zip(images, displays, strict=True)}
            raise CorruptFileError(
                f"cannot be read as HDF5: it is damaged ({exc.why})",
                path=where.get(exc.path or "", displays[0]),
                hint="the file is truncated or corrupted; re-download or re-save it",
            ) from None
        except KauditError:  # the reader refused what the parser read soundly: h5py would say the
            for root in parsed:  # same, or never return (libhdf5 loops on some damaged files)
                root.close()
            raise
        except Exception:
            for root in parsed:
                root.close()
        except BaseException:  # Ctrl-C
            for root in parsed:
                root.close()
            raise
    files = open_h5py()
    store = H.H5Store(files, displays, direct, owned=owned)
    try:
        return build(files, store)
    except BaseException:
        store.close()
        raise


def _load_hdf5(path: str, display: str) -> Checkpoint:
    from . import keras_hub, keras_v3, legacy_h5

    def build(files, store) -> Checkpoint:
        f = files[0]
        if legacy_h5.looks_like(f):
            variables, notes, version, has_config = legacy_h5.read(f, store, display)
            fmt = "keras3-h5" if legacy_h5.keras_major(version) >= 3 else "keras2-h5"
        elif keras_hub.looks_like_lora(f):
            variables, notes = keras_hub.read_lora(f, store, display)
            version, fmt, has_config = None, keras_hub.LORA.HUB_FORMAT, False
        elif keras_v3.looks_like(f):
            variables, notes, has_config = keras_v3.read([f], [display], store, display, None)
            version, fmt = None, "keras3-weights"
            notes = [
                "no model config in a bare .weights.h5: trainable flags are unknown; layers in the order "
                "Keras wrote them"
            ] + notes
        else:
            raise UnsupportedFormatError(
                "is HDF5 but not a Keras checkpoint (no 'model_weights', 'layer_names' or 'layers')",
                path=display,
                hint="kaudit reads files written by Keras model.save()/save_weights()",
            )
        return Checkpoint(display, fmt, tuple(variables), store, version, has_config, tuple(notes), (display,))

    return _read_hdf5([(path, 0, None)], [display], build, lambda: [H.open_h5(path, display)])


def _load_archive(path: str, display: str) -> Checkpoint:
    from ..keras import config as keras_config
    from ..storage import ziparchive as archive
    from . import keras_v3

    arc = archive.KerasArchive(path, display)
    try:
        missing = [m for m in (archive.CONFIG, archive.WEIGHTS) if not arc.has(m)]
        if missing:
            raise CorruptFileError(
                f"the .keras archive has no {' and no '.join(repr(m) for m in missing)}",
                path=display,
                hint="a .keras file holds config.json, metadata.json and model.weights.h5; re-save it with model.save()",
            )
        config = arc.json(archive.CONFIG, loads=keras_config.loads)
        metadata = arc.json(archive.METADATA) or {}
        fobj, (src_path, src_base, src_size) = arc.open_member(archive.WEIGHTS)
        arc.forget()
    except BaseException:
        arc.close()
        raise
    member_display = f"{display}!{archive.WEIGHTS}"
    version = metadata.get("keras_version") if isinstance(metadata, dict) else None

    def build(files, store) -> Checkpoint:
        variables, notes, has_config = keras_v3.read(
            files, [member_display], store, display, config, member=archive.WEIGHTS
        )
        return Checkpoint(
            display, "keras3-archive", tuple(variables), store, version, has_config, tuple(notes), (display,)
        )

    try:
        return _read_hdf5(
            [(src_path, src_base, src_size)],
            [member_display],
            build,
            lambda: [H.open_h5(fobj, member_display)],
            owned=[fobj, arc],
        )
    except KauditError:  # a member whose CRC-32 fails is the cause to name, if it fails
        try:
            arc.verify()
        finally:
            fobj.close()
            arc.close()
        raise
    except BaseException:
        fobj.close()
        arc.close()
        raise


def _load_json(path: str, display: str) -> Checkpoint:
    try:
        with open(path, "rb") as fh:
            data = fh.read(64 << 20)
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise UnsupportedFormatError(
            f"is neither HDF5, a zip archive nor valid JSON ({str(exc)[:100]})", path=display
        ) from None
    if isinstance(doc, dict) and "weight_map" in doc:
        return _load_sharded(path, display, doc)
    if isinstance(doc, dict) and doc.get("format") == "kaudit-snapshot":
        from . import snapshot

        return snapshot.load(path, display, doc)
    raise UnsupportedFormatError(
        "is JSON but neither a Keras sharded-weights index nor a kaudit snapshot", path=display
    )


def _load_preset(p: Path, display: str) -> Checkpoint:
    """A KerasHub preset directory: its weights (``model.weights.h5`` or sharded), named by the
    backbone's layer names, and the sha256 of every other file (``Checkpoint.assets``)."""
    from dataclasses import replace

    from . import keras_hub

    weights = keras_hub.weights_file(p)
    wdisplay = os.path.join(display, weights.name)
    inner = _load(weights)
    try:
        skip = set(inner.files) | {weights.name}
        skip = {
            os.path.relpath(f, str(p)).replace(os.sep, "/") if os.path.isabs(f) or os.sep in f else f for f in skip
        } | {os.path.basename(f) for f in inner.files}
        assets = keras_hub.asset_hashes(p, display, skip)
        meta = keras_hub.metadata(p)
    except BaseException:
        inner.close()
        raise
    version = meta.get("keras_version") if isinstance(meta.get("keras_version"), str) else None
    notes = [n for n in inner.notes if not n.startswith("no model config")]
    notes.insert(
        0,
        f"KerasHub preset ({wdisplay}): config.json describes the backbone, not its layers; "
        "trainable flags are unknown; layers in the order Keras wrote them",
    )
    return replace(
        inner,
        file=display,
        format="keras-hub-preset",
        keras_version=version,
        notes=tuple(notes),
        files=(display, *inner.files),
        assets=assets,
    )


def _load_sharded(path: str, display: str, doc: dict) -> Checkpoint:
    from ..errors import UnsafeInputError
    from . import keras_v3

    wmap = doc.get("weight_map")
    if not isinstance(wmap, dict):
        raise CorruptFileError("'weight_map' is not an object", path=display)
    shards: list[str] = []
    for value in wmap.values():
        for name in value if isinstance(value, list) else [value]:
            if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", ".."):
                raise UnsafeInputError(
                    f"shard name {name!r} is not a plain file name beside the index; refused", path=display
                )
            if name not in shards:
                shards.append(name)
    base = os.path.dirname(os.path.abspath(path))
    # a shard may be a symlink (Hugging Face caches link into blobs/), but not to a file outside
    # the index's directory (real or as given): a pull request could link one to any file
    roots = {os.path.realpath(base), os.path.dirname(os.path.realpath(path))}
    displays, sources = [], []
    for name in shards:
        sp = os.path.join(base, name)
        sdisplay = os.path.join(os.path.dirname(display), name)
        if os.path.dirname(os.path.realpath(sp)) not in roots:
            raise UnsafeInputError(
                "shard is a symbolic link to a file outside the index's directory; refused",
                path=sdisplay,
                hint="copy the shard beside the index",
            )
        if sniff(sp) != "hdf5":
            raise UnsupportedFormatError("shard is not HDF5", path=sdisplay)
        displays.append(sdisplay)
        sources.append(sp)

    def open_all() -> list:
        files = []
        try:
            for sp, sdisplay in zip(sources, displays, strict=True):
                files.append(H.open_h5(sp, sdisplay))
        except BaseException:
            for f in files:
                f.close()
            raise
        return files

    def build(files, store) -> Checkpoint:
        variables, notes, has_config = keras_v3.read(files, displays, store, display, None, written=list(wmap))
        notes = [
            "no model config beside sharded weights: trainable flags are unknown; layers in the index's "
            "weight_map order (Keras's)"
        ] + notes
        return Checkpoint(
            display, "keras3-sharded", tuple(variables), store, None, has_config, tuple(notes), (display, *displays)
        )

    return _read_hdf5([(sp, 0, None) for sp in sources], displays, build, open_all)
