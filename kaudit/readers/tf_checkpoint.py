"""TensorFlow checkpoints (V2 index + data, V1 single table files) and SavedModel variables.

Finding the checkpoint (prefix, ``checkpoint`` state file, SavedModel layout) is plain Python.
TF2 tensor bundles (``.index`` + ``.data-*``: TF2 checkpoints, TF1 checkpoints written in the V2
format, a SavedModel's ``variables/``) are read natively (``kaudit/storage/tensor_bundle.py``):
no TensorFlow, values streamed in blocks, every checksum verified. TF1 checkpoint V1 files (one
table holding names and values) and the bundles the native reader declines (big-endian,
partitioned variables, 4-bit types, newer format versions: ``NotNative``) are read by
TensorFlow's checkpoint reader (``kaudit[tf]``; this is the only module of kaudit that imports
TensorFlow, and only inside functions). A bundle found corrupt is an error, never handed to
TensorFlow. ``KAUDIT_TF_READER=tensorflow`` forces TensorFlow's reader, ``=native`` the native
one (an error when it declines); both give the same table and values (tests/test_tensor_bundle.py).

Names (docs/formats.md, "TensorFlow checkpoints and SavedModels"):

* TF2 object-based checkpoints (``layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE``): the
  object graph stored in the checkpoint is walked. Layer names come from the SavedModel's Keras
  metadata (``keras_metadata.pb``, or the object graph of ``saved_model.pb`` for TF <= 2.4), else
  from the variables' own names recorded in the object graph (``L0_conv2d/kernel``), else they are
  positional (``layer_with_weights-0/kernel``). Inside a layer the rules of the legacy HDF5 reader
  apply (RNN cells collapsed: ``lstm/kernel``; sub-layers keep their name: ``mha/query/kernel``),
  so a checkpoint aligns by path with the ``.h5`` of the same model.
* TF1 name-based checkpoints keep their variable names (``conv1/weights``).
* Optimizer state (slots, ``optimizer/...``, ``<var>/Adam``, ``beta1_power``, ``global_step``,
  ``save_counter``...) is ``kind="optimizer"``; ``keras_api/metrics/...`` is ``kind="metric"``.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .. import paths
from ..checkpoint import Checkpoint, Variable
from ..errors import (
    CorruptFileError,
    FileMissingError,
    KauditError,
    MissingDependencyError,
    UnsafeInputError,
    UnsupportedFormatError,
    UsageError,
)
from ..storage.hdf5 import widen
from ..storage.tensor_bundle import DT_STRING, Bundle, NotNative, parse

#: Last 8 bytes of a TensorFlow table file (checkpoint V1 files and V2 ``.index`` files).
TABLE_MAGIC = bytes.fromhex("57fb808b247547db")
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
ATTRIBUTES = ".ATTRIBUTES"
SLOT_MARK = ".OPTIMIZER_SLOT"
VALUE_ATTR = "VARIABLE_VALUE"
INSTALL_HINT = "pip install 'kaudit[tf]'"
#: Environment switch of the reader: unset (native, TensorFlow for what it declines), native, tensorflow.
READER_ENV = "KAUDIT_TF_READER"

_DATA_RE = re.compile(r"\.data-\d{5}-of-\d{5}$")
_V1_SHARD_RE = re.compile(r"^(.*)-(\d{5})-of-(\d{5})$")
_LAYER_EDGE = re.compile(r"^layer(?:_with_weights)?-(\d+)$")
_STATE_RE = re.compile(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"', re.MULTILINE)
_STATE_LIMIT = 1 << 20
_SAVED_MODEL_PB_LIMIT = 512 << 20
_MAX_DIR_ENTRIES = 10_000
#: Levels of the object graph walked for structure (Keras models nest a few levels deep); objects
#: below are named by their checkpoint keys, so a hostile graph costs linear time.
_MAX_GRAPH_DEPTH = 64

# edges of the object graph that are views (lists of the same variables, traced functions,
# Keras bookkeeping) rather than the structure of the model
_VIEW_EDGES = frozenset(
    {
        "variables",
        "trainable_variables",
        "non_trainable_variables",
        "trainable_weights",
        "non_trainable_weights",
        "weights",
        "regularization_losses",
        "layer_regularization_losses",
        "keras_api",
        "layer_metrics",
        "signatures",
        "_default_save_signature",
        "__call__",
        "call_and_return_all_conditional_losses",
        "call_and_return_conditional_losses",
        "train_function",
        "train_tf_function",
        "test_function",
        "predict_function",
        "_all_variables",
    }
)
_MODEL_IDS = frozenset({"_tf_keras_network", "_tf_keras_sequential", "_tf_keras_model"})
_LAYER_IDS = frozenset({"_tf_keras_layer", "_tf_keras_rnn_layer", "_tf_keras_input_layer"}) | _MODEL_IDS

# optimizer state
_OPTIMIZER_COMPONENTS = frozenset({"optimizer", "_optimizer", "optimizers"})
_METRIC_COMPONENTS = frozenset(
    {"metrics", "_metrics", "compiled_metrics", "_compiled_metrics", "compiled_loss", "_compiled_loss"}
)
_BOOKKEEPING = frozenset(
    {"save_counter", "global_step", "step", "iter", "iteration", "iterations", "epoch", "learning_rate", "lr"}
)
_POWER_RE = re.compile(r"^beta[12]_power(?:_\d+)?$")
_SLOT_NAME_RE = re.compile(
    r"^(?:Adam|AdamW|Nadam|LazyAdam|Adamax|Momentum|RMSProp|RMSprop|Adagrad|AdagradDA|Adadelta|"
    r"Ftrl|ProximalAdagrad|ProximalGradientDescent|LARS|LAMB|Lamb|ExponentialMovingAverage)(?:_\d+)?$"
)
_CAMEL_RE = re.compile(r"^[A-Z][A-Za-z0-9]*(?:_\d+)?$")
_OPTIMIZER_SCOPES = frozenset(
    {"training", "Adam", "Nadam", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Ftrl", "AdamW"}
)


# -- finding the checkpoint --------------------------------------------------------------------------


@dataclass
class Target:
    """What to read: a prefix (or V1 file) for TensorFlow's reader, and what it came from."""

    prefix: str | None  # None: a SavedModel without variables
    fmt: str
    savedmodel: str | None = None
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _is_table(path: str) -> bool:
    """True when the file ends with the TensorFlow table magic (checkpoint V1, V2 index)."""
    try:
        size = os.path.getsize(path)
        if size < 48:
            return False
        with open(path, "rb") as fh:
            fh.seek(size - 8)
            return fh.read(8) == TABLE_MAGIC
    except OSError:
        return False


def _prefix_exists(prefix: str) -> bool:
    return os.path.isfile(prefix + ".index") or (os.path.isfile(prefix) and _is_table(prefix))


def _candidates(directory: str) -> list[str]:
    """Checkpoint prefixes (V2) and V1 table files directly inside ``directory``."""
    try:
        with os.scandir(directory) as it:
            entries = sorted((e.name for _, e in zip(range(_MAX_DIR_ENTRIES), it, strict=False)))
    except OSError:
        return []
    out: list[str] = []
    v1_groups: dict[str, list[str]] = {}
    for name in entries:
        full = os.path.join(directory, name)
        if not os.path.isfile(full):
            continue
        if name.endswith(".index"):
            out.append(os.path.join(directory, name[: -len(".index")]))
        elif name == "checkpoint" or name.endswith((".meta", ".pb")) or _DATA_RE.search(name):
            continue
        elif _is_table(full):
            m = _V1_SHARD_RE.match(name)
            if m and int(m.group(3)) > 1:
                v1_groups.setdefault(f"{m.group(1)}-?????-of-{m.group(3)}", []).append(name)
            else:
                out.append(full)
    out += [os.path.join(directory, pattern) for pattern in sorted(v1_groups)]
    return out


def _rel(path: str, directory: str) -> str:
    name = os.path.relpath(path, directory)
    return name if name != "." else os.path.basename(path.rstrip(os.sep)) or path


def _unescape_text_proto(value: str) -> str:
    """A text-format protobuf string literal's content (``\\"``, ``\\\\``, octal bytes...)."""
    import codecs

    try:
        return codecs.escape_decode(value.encode("utf-8"))[0].decode("utf-8", errors="replace")
    except (ValueError, UnicodeError):
        return value


def _from_state_file(directory: str, display: str, notes: list[str]) -> str:
    """The prefix a ``checkpoint`` state file names, resolved relative to its directory and never
    outside it."""
    state = os.path.join(directory, "checkpoint")
    try:
        with open(state, "rb") as fh:
            text = fh.read(_STATE_LIMIT).decode("utf-8", errors="replace")
    except OSError as exc:
        raise FileMissingError(f"cannot read the 'checkpoint' state file ({exc.strerror})", path=display) from None
    m = _STATE_RE.search(text)
    named = _unescape_text_proto(m.group(1)) if m else None
    cands = _candidates(directory)
    if named:
        target = named if os.path.isabs(named) else os.path.join(directory, named)
        real_dir = os.path.realpath(directory)
        real_parent = os.path.realpath(os.path.dirname(target) or directory)
        inside = real_parent == real_dir or real_parent.startswith(real_dir + os.sep)
        if inside and _prefix_exists(target):
            return target
        why = (
            f"names {named!r}, outside the directory (not followed)"
            if not inside
            else f"names {named!r}, which does not exist"
        )
        base = os.path.basename(named.rstrip("/\\"))
        same = [c for c in cands if os.path.basename(c) == base]
        pick = same[0] if len(same) == 1 else (cands[0] if len(cands) == 1 else None)
        if pick is None:
            found = ", ".join(repr(_rel(c, directory)) for c in cands[:5]) or "none"
            raise UnsafeInputError(
                f"its 'checkpoint' state file {why}, and the directory holds no single checkpoint to use "
                f"instead (found: {found})",
                path=display,
                hint="give the checkpoint prefix itself, e.g. DIR/model.ckpt",
            )
        notes.append(f"the 'checkpoint' state file {why}; read {_rel(pick, directory)!r} found in the directory")
        return pick
    if len(cands) == 1:
        notes.append(
            "the 'checkpoint' state file names no model_checkpoint_path; read the only checkpoint "
            f"in the directory, {_rel(cands[0], directory)!r}"
        )
        return cands[0]
    raise CorruptFileError(
        "its 'checkpoint' state file names no model_checkpoint_path",
        path=display,
        hint="give the checkpoint prefix itself, e.g. DIR/model.ckpt",
    )


def _single(directory: str, display: str) -> str:
    cands = _candidates(directory)
    if len(cands) == 1:
        return cands[0]
    if not cands:
        raise UnsupportedFormatError(
            "holds no TensorFlow checkpoint (no .index file, no SavedModel)",
            path=display,
            hint="give a checkpoint prefix, a SavedModel directory or a model file",
        )
    names = ", ".join(repr(_rel(c, directory)) for c in cands[:6])
    raise UnsupportedFormatError(
        f"holds {len(cands)} checkpoints ({names}) and no 'checkpoint' state file says which is the latest",
        path=display,
        hint="give one checkpoint prefix, e.g. DIR/model.ckpt",
    )


def _shard_files(prefix: str) -> list[str]:
    directory, base = os.path.split(prefix)
    directory = directory or "."
    out: list[str] = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for name in names:
        if name.startswith(base + ".data-") and _DATA_RE.search(name):
            out.append(os.path.join(directory, name))
    return out


def resolve(path: str, display: str) -> Target:
    """Where the values are: the prefix TensorFlow's reader needs for ``path`` (no TensorFlow)."""
    notes: list[str] = []
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")) or os.path.isfile(
            os.path.join(path, "saved_model.pbtxt")
        ):
            prefix = os.path.join(path, "variables", "variables")
            pb = [
                os.path.join(path, n)
                for n in ("saved_model.pb", "saved_model.pbtxt", "keras_metadata.pb")
                if os.path.isfile(os.path.join(path, n))
            ]
            if not os.path.isfile(prefix + ".index"):
                note = "the SavedModel has no variables/variables.index: it holds no variables"
                return Target(None, "tf-savedmodel", path, pb, [note])
            return Target(prefix, "tf-savedmodel", path, pb + [prefix + ".index"] + _shard_files(prefix), notes)
        if os.path.isfile(os.path.join(path, "checkpoint")):
            prefix = _from_state_file(path, display, notes)
        else:
            prefix = _single(path, display)
    elif os.path.isfile(path):
        name = os.path.basename(path)
        if name.endswith(".index"):
            prefix = path[: -len(".index")]
        elif _DATA_RE.search(name):
            prefix = path[: path.rindex(".data-")]
        elif _is_table(path):
            prefix = path  # checkpoint V1: one table file holds names and values
        else:
            raise UnsupportedFormatError(
                "is not a TensorFlow checkpoint file (.index, .data-*, or a V1 checkpoint)", path=display
            )
    elif os.path.isfile(path + ".index"):
        prefix = path
    else:
        raise FileMissingError("no such file or directory", path=display, hint="check the path")
    if os.path.isfile(prefix + ".index"):
        files = [prefix + ".index"] + _shard_files(prefix)
    else:
        files = [prefix]
    return Target(prefix, "tf-checkpoint", None, files, notes)


# -- TensorFlow -------------------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__


def _import_tf(display: str, why: str | None = None):
    """TensorFlow, or MissingDependencyError (one line, exit 2) saying ``why`` it is needed."""
    import sys

    loaded = sys.modules.get("tensorflow") is not None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if loaded:
            import tensorflow as tf
        else:
            with _quiet_stderr():
                import tensorflow as tf
    except ImportError:
        raise MissingDependencyError(
            f"{why}: reading it needs TensorFlow, which is not installed"
            if why
            else "reading TensorFlow checkpoints and SavedModels needs TensorFlow, which is not installed",
            path=display,
            hint=INSTALL_HINT,
        ) from None
    except Exception as exc:
        raise MissingDependencyError(
            f"TensorFlow is installed but cannot be imported ({_short(exc)})",
            path=display,
            hint=f"reinstall it: {INSTALL_HINT}",
        ) from None
    return tf


class _quiet_stderr:
    """Silence the C++ start-up chatter TensorFlow writes to file descriptor 2 while importing."""

    def __enter__(self):
        self.saved = None
        if os.environ.get("KAUDIT_TF_VERBOSE"):
            return self
        try:
            import sys

            sys.stderr.flush()
            self.saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:
            self.saved = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            try:
                os.dup2(self.saved, 2)
                os.close(self.saved)
            except OSError:
                pass
        return False


def _open_reader(tf, prefix: str, display: str):
    try:
        with _quiet_stderr():
            return tf.compat.v1.train.NewCheckpointReader(prefix)
    except Exception as exc:
        raise CorruptFileError(
            f"cannot be read as a TensorFlow checkpoint ({_short(exc)})",
            path=display,
            hint="the index or data files are missing, truncated or corrupted",
        ) from None


def _dtype_name(dt) -> str | None:
    """numpy's name for a TensorFlow dtype ('bfloat16' for bf16), None when not numeric."""
    try:
        name = dt.name
        if name == "bfloat16":
            return "bfloat16"
        if name in ("string", "resource", "variant") or name.startswith(("q", "float8")) or not dt.is_numpy_compatible:
            return None
        return np.dtype(dt.as_numpy_dtype).name
    except Exception:
        return None


# -- the store --------------------------------------------------------------------------------------


class TFStore:
    """Reads tensors with TensorFlow's checkpoint reader. The reader has no partial reads: a
    variable is loaded whole, then cut into blocks."""

    has_values = True

    def __init__(self, reader, display: str):
        self._reader = reader
        self.display = display
        self._lock = threading.Lock()

    def _tensor(self, var: Variable) -> np.ndarray:
        with self._lock:
            reader = self._reader
            if reader is None:
                raise KauditError("the checkpoint is closed", path=self.display)
            try:
                value = reader.get_tensor(var.location)
            except Exception as exc:
                raise CorruptFileError(
                    f"cannot read {var.path!r} ({_short(exc)})",
                    path=self.display,
                    hint="the data file is missing, truncated or corrupted",
                ) from None
        arr = np.asarray(value)
        if tuple(arr.shape) != var.shape:
            raise CorruptFileError(
                f"{var.path!r} has shape {list(arr.shape)}, the index says {list(var.shape)}", path=self.display
            )
        if var.dtype == "bfloat16" or arr.dtype.name == "bfloat16":
            arr = arr.astype(np.float32)
        return arr

    def read(self, var: Variable, selection: tuple = ()) -> np.ndarray:
        arr = self._tensor(var)
        return arr[selection] if selection != () else arr

    def iter_blocks(self, var: Variable, block_elems: int) -> Iterator[np.ndarray]:
        flat = self._tensor(var).reshape(-1)
        step = max(1, int(block_elems))
        for start in range(0, flat.size, step):
            yield flat[start : start + step]

    def close(self) -> None:
        with self._lock:
            self._reader = None


class BundleStore:
    """Reads tensors of a tensor bundle natively (``storage/tensor_bundle.py``): blocks straight
    from the data files, each tensor's CRC32C verified (``iter_blocks`` raises on the last block of
    a tensor whose sum does not match, so no verdict is given on unverified bytes)."""

    has_values = True

    def __init__(self, bundle: Bundle, display: str):
        self._bundle: Bundle | None = bundle
        self.display = display

    def _entry(self, var: Variable):
        bundle = self._bundle
        if bundle is None:
            raise KauditError("the checkpoint is closed", path=self.display)
        return bundle, bundle.entries[var.location]

    def read(self, var: Variable, selection: tuple = ()) -> np.ndarray:
        bundle, e = self._entry(var)
        arr = widen(bundle.read_array(e), var.dtype)
        return arr[selection] if selection != () else arr

    def iter_blocks(self, var: Variable, block_elems: int) -> Iterator[np.ndarray]:
        bundle, e = self._entry(var)
        for raw in bundle.iter_arrays(e, block_elems):
            yield widen(raw, var.dtype)

    def raw_bytes(self, var: Variable, limit: int) -> tuple[np.dtype, bytes] | None:
        """(stored dtype, stored bytes, checksum verified) of a tensor of at most ``limit`` bytes,
        else None (``stats.compare_pair``'s cheap identity test)."""
        bundle, e = self._entry(var)
        if e.size > limit:
            return None
        return e.dtype.stored, bundle.read_bytes(e)

    def close(self) -> None:
        bundle, self._bundle = self._bundle, None
        if bundle is not None:
            bundle.close()


class _EmptyStore:
    has_values = True

    def read(self, var, selection=()):
        raise KauditError(f"no variable {var.path!r}")

    def iter_blocks(self, var, block_elems):
        raise KauditError(f"no variable {var.path!r}")

    def close(self) -> None:
        pass


# -- loading ----------------------------------------------------------------------------------------


def _reader_choice() -> str:
    value = os.environ.get(READER_ENV, "").strip().lower()
    if value in ("", "auto"):
        return "auto"
    if value in ("native", "tensorflow"):
        return value
    raise UsageError(
        f"{READER_ENV}={value!r} is not a reader",
        hint="use 'native' or 'tensorflow', or leave it unset (native, TensorFlow for what it declines)",
    )


def load(path: str, display: str) -> Checkpoint:
    """Read the variable table of a TF checkpoint or SavedModel (values stay on disk)."""
    target = resolve(path, display)
    if target.prefix is None:
        return Checkpoint(display, target.fmt, (), _EmptyStore(), None, False, tuple(target.notes), tuple(target.files))
    choice = _reader_choice()
    why = None
    if choice != "tensorflow":
        if os.path.isfile(target.prefix + ".index"):
            try:
                return _load_native(target, display)
            except NotNative as exc:
                if choice == "native":
                    raise
                why = exc.message
        else:
            why = "a TF1 checkpoint V1 file (one table of names and values), which kaudit reads with TensorFlow"
            if choice == "native":
                raise UnsupportedFormatError(why, path=display, hint=f"unset {READER_ENV}; {INSTALL_HINT}")
    return _load_tf(target, display, why)


def _load_native(target: Target, display: str) -> Checkpoint:
    assert target.prefix is not None  # a SavedModel without variables is read without a bundle
    bundle = Bundle(target.prefix)
    try:
        tensors: dict[str, _Tensor] = {}
        skipped = []
        for key, e in bundle.entries.items():
            if key == OBJECT_GRAPH_KEY:
                continue
            if e.dtype.numeric:
                tensors[key] = _Tensor(key, e.shape, e.dtype.name)
            else:
                skipped.append(key)

        def graph_bytes() -> bytes:
            e = bundle.entries[OBJECT_GRAPH_KEY]
            if e.dtype.code != DT_STRING or e.count != 1:
                raise ValueError(f"a {e.dtype.name} tensor of shape {list(e.shape)}, not a string")
            return bundle.read_strings(e)[0]

        has_graph = OBJECT_GRAPH_KEY in bundle.entries
        variables, notes, version, has_config = _build(
            tensors,
            skipped,
            graph_bytes if has_graph else None,
            lambda key: bundle.read_array(bundle.entries[key]),
            target,
            display,
        )
    except BaseException:
        bundle.close()
        raise
    return Checkpoint(
        display,
        target.fmt,
        tuple(variables),
        BundleStore(bundle, display),
        version,
        has_config,
        tuple(target.notes + notes),
        tuple(target.files),
    )


def _load_tf(target: Target, display: str, why: str | None) -> Checkpoint:
    tf = _import_tf(display, why)
    assert target.prefix is not None  # a SavedModel without variables is read without a reader
    reader = _open_reader(tf, target.prefix, display)
    store = TFStore(reader, display)
    try:
        try:
            shapes = reader.get_variable_to_shape_map()
            dtypes = reader.get_variable_to_dtype_map()
        except Exception as exc:
            raise CorruptFileError(f"cannot list the checkpoint's tensors ({_short(exc)})", path=display) from None
        tensors: dict[str, _Tensor] = {}
        skipped = []
        for key, shape in shapes.items():
            if key == OBJECT_GRAPH_KEY:
                continue
            dt = _dtype_name(dtypes.get(key))
            if dt is None:
                skipped.append(key)
                continue
            tensors[key] = _Tensor(key, tuple(int(d) for d in shape), dt)

        def graph_bytes() -> bytes:
            try:
                raw = reader.get_tensor(OBJECT_GRAPH_KEY)
                return raw if isinstance(raw, bytes) else bytes(raw)
            except Exception as exc:
                raise ValueError(_short(exc)) from None

        variables, notes, version, has_config = _build(
            tensors, skipped, graph_bytes if OBJECT_GRAPH_KEY in shapes else None, reader.get_tensor, target, display
        )
    except BaseException:
        store.close()
        raise
    return Checkpoint(
        display,
        target.fmt,
        tuple(variables),
        store,
        version,
        has_config,
        tuple(target.notes + notes),
        tuple(target.files),
    )


@dataclass
class _Tensor:
    key: str
    shape: tuple[int, ...]
    dtype: str


def _build(
    tensors: dict[str, _Tensor], skipped: list[str], graph_bytes, read, target: Target, display: str
) -> tuple[list[Variable], list[str], str | None, bool]:
    """The variable table from a reader's listing: numeric ``tensors``, the keys of the ``skipped``
    others, ``graph_bytes()`` (the serialized object graph; None when there is none) and
    ``read(key)`` (values, to find duplicates)."""
    notes: list[str] = []
    if skipped:
        notes.append(f"{len(skipped)} non-numeric tensor(s) not listed (e.g. {min(skipped)!r})")
    graph = None
    if graph_bytes is not None:
        graph = _object_graph(graph_bytes, notes)
    if graph is not None:
        meta, version = _keras_metadata(target, display, notes)
        named = _ObjectNamer(graph, tensors, meta, notes, read).run()
        has_config = bool(meta) and named.used_metadata
        variables = named.variables
    else:
        version, has_config = None, False
        variables = _name_based(tensors, notes)
    return _unique_paths(variables), notes, version, has_config


def _object_graph(graph_bytes, notes: list[str]):
    """The checkpoint's ``TrackableObjectGraph``, or None with a note when it cannot be parsed."""
    try:
        graph = parse("TrackableObjectGraph", graph_bytes())
        if not graph.nodes:
            raise ValueError("empty")
        return graph
    except ValueError as exc:
        notes.append(f"the checkpoint's object graph cannot be read ({_short(exc)}); names are the raw keys")
        return None


# -- TF1 name-based checkpoints ---------------------------------------------------------------------


def _natural(s: str):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s)]


def _name_based_kind(key: str, t: _Tensor, tensors: dict[str, _Tensor]) -> str:
    parts = paths.split(key)
    last = parts[-1] if parts else key
    head = "/".join(parts[:-1])
    if _POWER_RE.match(last) or (last in _BOOKKEEPING and len(parts) <= 2):
        return "optimizer"
    if head and head in tensors:
        parent = tensors[head]
        if _SLOT_NAME_RE.match(last) or (_CAMEL_RE.match(last) and parent.shape == t.shape):
            return "optimizer"
    if len(parts) > 1 and parts[0] in _OPTIMIZER_SCOPES:
        return "optimizer"
    if len(parts) > 1 and parts[0] in _OPTIMIZER_COMPONENTS:
        return "optimizer"
    return "model"


def _name_based(tensors: dict[str, _Tensor], notes: list[str]) -> list[Variable]:
    rows = []
    for key in sorted(tensors, key=_natural):
        t = tensors[key]
        kind = _name_based_kind(key, t, tensors)
        path = _readable_key(key)
        rows.append(
            Variable(
                path=path,
                layer=paths.layer_of(path),
                layer_class=None,
                name=paths.short_name(path),
                shape=t.shape,
                dtype=t.dtype,
                trainable=None,
                kind=kind,
                location=key,
                named=True,
            )
        )
    if rows:
        notes.append(
            "TensorFlow name-based (TF1) checkpoint: names are the graph's variable names; layer classes "
            "and trainable flags are unknown"
        )
    return _ordered(rows)


def _ordered(rows: list[Variable]) -> list[Variable]:
    rank = {"model": 0, "optimizer": 1, "metric": 2}
    return sorted(rows, key=lambda v: rank.get(v.kind, 3))  # stable


def _unescape(component: str) -> str:
    return re.sub(
        r"\.(.)", lambda m: "/" if m.group(1) == "S" else ("." if m.group(1) == "." else m.group(0)), component
    )


def _key_parts(key: str) -> tuple[list[str], str | None]:
    """(object path components, attribute name) of an object-based key; attribute None for TF1 keys."""
    raw = key.split("/")
    if ATTRIBUTES in raw:
        i = raw.index(ATTRIBUTES)
        return [_unescape(c) for c in raw[:i]], "/".join(raw[i + 1 :])
    return [_unescape(c) for c in raw], None


def _readable_key(key: str) -> str:
    comps, attr = _key_parts(key)
    if attr is None:
        return key
    if SLOT_MARK in comps:
        i = comps.index(SLOT_MARK)
        comps = comps[:i] + comps[i + 1 :]
    if attr and attr != VALUE_ATTR:
        comps = comps + [attr]
    return paths.join(*comps) or key


def _unique_paths(rows: list[Variable]) -> list[Variable]:
    """Make paths unique: a clash falls back to the raw checkpoint key."""
    seen: dict[str, int] = {}
    for v in rows:
        seen[v.path] = seen.get(v.path, 0) + 1
    out = []
    used: set[str] = set()
    for v in rows:
        if seen[v.path] > 1 or v.path in used:
            p = _readable_key(v.location)
            if p in used or p == v.path:
                p = v.location
            v = Variable(
                path=p,
                layer=paths.layer_of(p),
                layer_class=v.layer_class,
                name=paths.short_name(p),
                shape=v.shape,
                dtype=v.dtype,
                trainable=v.trainable,
                kind=v.kind,
                location=v.location,
                named=False,
            )
        used.add(v.path)
        out.append(v)
    return out


# -- Keras metadata ---------------------------------------------------------------------------------


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of a protobuf message; enough for keras_metadata.pb."""
    i = 0
    while i < len(buf):
        tag, i = _varint(buf, i)
        num, wt = tag >> 3, tag & 7
        val: int | bytes
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 1:
            val, i = buf[i : i + 8], i + 8
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated field")
            val, i = buf[i : i + n], i + n
        elif wt == 5:
            val, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        yield num, wt, val


def parse_keras_metadata(data: bytes) -> list[tuple[str, str, str]]:
    """(node_path, identifier, metadata JSON) of a ``keras_metadata.pb`` (SavedMetadata proto:
    ``repeated SavedObject nodes = 1``; SavedObject: node_path 3, identifier 4, metadata 5)."""
    out = []
    for num, wt, val in _fields(data):
        if num != 1 or wt != 2:
            continue
        node = {3: "", 4: "", 5: ""}
        for n2, w2, v2 in _fields(val):  # type: ignore[arg-type]
            if n2 in node and w2 == 2:
                node[n2] = bytes(v2).decode("utf-8", errors="replace")  # type: ignore[call-overload]
        out.append((node[3], node[4], node[5]))
    return out


def _keras_metadata(target: Target, display: str, notes: list[str]) -> tuple[dict[tuple[str, ...], dict], str | None]:
    """{object path (tuple of edge names below the root): metadata dict}, keras_version."""
    if target.savedmodel is None:
        return {}, None
    entries: list[tuple[tuple[str, ...], str, str]] = []
    km = os.path.join(target.savedmodel, "keras_metadata.pb")
    try:
        if os.path.isfile(km):
            with open(km, "rb") as fh:
                data = fh.read(_SAVED_MODEL_PB_LIMIT)
            for node_path, ident, md in parse_keras_metadata(data):
                parts = node_path.split(".")
                if not parts or parts[0] != "root":
                    continue
                entries.append((tuple(parts[1:]), ident, md))
        else:
            entries = _saved_model_user_objects(target.savedmodel, notes)
    except (ValueError, OSError) as exc:
        notes.append(f"keras_metadata.pb cannot be read ({_short(exc)}); layer names from the object graph")
        return {}, None
    meta: dict[tuple[str, ...], dict] = {}
    version = None
    for path, ident, md in entries:
        if not ident.startswith("_tf_keras_") or not md:
            continue
        try:
            d = json.loads(md)
        except (ValueError, RecursionError):
            continue
        if not isinstance(d, dict):
            continue
        d["_identifier"] = ident
        meta[path] = d
        if path == () and isinstance(d.get("keras_version"), str):
            version = d["keras_version"]
    return meta, version


def _saved_model_user_objects(directory: str, notes: list[str]) -> list[tuple[tuple[str, ...], str, str]]:
    """Keras metadata kept in saved_model.pb's object graph (SavedModels written by TF <= 2.4)."""
    pb = os.path.join(directory, "saved_model.pb")
    if not os.path.isfile(pb):
        return []
    if os.path.getsize(pb) > _SAVED_MODEL_PB_LIMIT:
        notes.append(
            "saved_model.pb is too large to look for Keras metadata in it; layer names from the "
            "checkpoint's object graph"
        )
        return []
    with open(pb, "rb") as fh:
        try:
            sm = parse("SavedModel", fh.read(_SAVED_MODEL_PB_LIMIT))
        except ValueError as exc:
            raise ValueError(f"saved_model.pb: {_short(exc)}") from None
    if not sm.meta_graphs:
        return []
    og = sm.meta_graphs[0].object_graph_def
    nodes = og.nodes
    if not nodes:
        return []
    out: list[tuple[tuple[str, ...], str, str]] = []
    seen: dict[int, tuple[str, ...]] = {0: ()}
    queue = [0]
    while queue:
        nxt = []
        for u in queue:
            for ch in nodes[u].children:
                v = ch.node_id
                if v in seen or not 0 <= v < len(nodes):
                    continue
                seen[v] = seen[u] + (ch.local_name,)
                nxt.append(v)
        queue = nxt
    for i, path in seen.items():
        n = nodes[i]
        if n.WhichOneof("kind") == "user_object" and n.user_object.metadata:
            out.append((path, n.user_object.identifier, n.user_object.metadata))
    return out


# -- TF2 object-based checkpoints -------------------------------------------------------------------


@dataclass
class _Var:
    node: int
    key: str
    attr: str
    full_name: str
    tensor: _Tensor
    chain: list[tuple[int, str]] | None  # structural path: (node, edge name) from the root
    kind: str = "model"
    order: int = 0


@dataclass
class _Leaf:
    node: int
    containers: list[int]  # model nodes between the root and this layer
    edge: str
    pre: tuple[str, ...] = ()
    vars: list[_Var] = field(default_factory=list)


class _ObjectNamer:
    def __init__(
        self, graph, tensors: dict[str, _Tensor], meta: dict[tuple[str, ...], dict], notes: list[str], read=None
    ):
        self.read = read
        self.g = graph
        self.n = len(graph.nodes)
        self.tensors = tensors
        self.notes = notes
        self.children: list[list[tuple[int, str]]] = []
        for node in graph.nodes:
            self.children.append([(c.node_id, c.local_name) for c in node.children if 0 <= c.node_id < self.n])
        self.meta = self._meta_by_node(meta)
        self._models: dict[int, bool] = {}
        self.used_metadata = False
        self.variables: list[Variable] = []

    # graph helpers -----------------------------------------------------------------------------
    def _edges(self, u: int) -> list[tuple[int, str]]:
        """Structural edges of node u, one per target, preferring 'layer_with_weights-N' names."""
        best: dict[int, str] = {}
        order: list[int] = []
        for v, name in self.children[u]:
            if (
                name in _VIEW_EDGES
                or name in _OPTIMIZER_COMPONENTS
                or name in _METRIC_COMPONENTS
                or name.startswith("__")
                or name.startswith("trace_")
            ):
                continue
            if v not in best:
                best[v] = name
                order.append(v)
            elif name.startswith("layer_with_weights-") and not best[v].startswith("layer_with_weights-"):
                best[v] = name
        return [(v, best[v]) for v in order]

    def _meta_by_node(self, meta: dict[tuple[str, ...], dict]) -> dict[int, dict]:
        out: dict[int, dict] = {}
        by_name: dict[int, dict[str, int]] = {}  # node -> {edge name: its first target}
        for path, d in meta.items():
            u = 0
            for name in path:
                if u not in by_name:
                    by_name[u] = {}
                    for v, nm in self.children[u]:
                        by_name[u].setdefault(nm, v)
                u = by_name[u].get(name, -1)
                if u < 0:
                    break
            if u >= 0:
                out.setdefault(u, d)
        return out

    def _is_model(self, u: int) -> bool:
        known = self._models.get(u)
        if known is None:
            m = self.meta.get(u)
            if m is not None:
                known = m.get("_identifier") in _MODEL_IDS
            else:
                known = any(_LAYER_EDGE.match(name) for _v, name in self.children[u])
            self._models[u] = known
        return known

    def _is_layer(self, u: int, edge: str, parent: int) -> bool:
        m = self.meta.get(u)
        if m is not None and m.get("_identifier") in _LAYER_IDS:
            return True
        return bool(_LAYER_EDGE.match(edge)) and self._is_model(parent)

    # the walk ----------------------------------------------------------------------------------
    def run(self) -> _ObjectNamer:
        parent: dict[int, tuple[int, str]] = {}
        seen = {0}
        queue = [0]
        depth = 0
        # breadth first: the shortest structural path, as TensorFlow names keys
        while queue and depth < _MAX_GRAPH_DEPTH:
            depth += 1
            nxt = []
            for u in queue:
                for v, name in self._edges(u):
                    if v not in seen:
                        seen.add(v)
                        parent[v] = (u, name)
                        nxt.append(v)
            queue = nxt
        dfs_rank: dict[int, int] = {}
        stack = [0]
        visited = set()
        while stack:  # depth first: Keras's model.weights order (layers in order, then inside)
            u = stack.pop()
            if u in visited:
                continue
            visited.add(u)
            dfs_rank[u] = len(dfs_rank)
            stack.extend(v for v, _ in reversed(self._edges(u)) if v not in visited)

        vars_: list[_Var] = []
        described: set[str] = set()
        for i, node in enumerate(self.g.nodes):
            for a in node.attributes:
                key = a.checkpoint_key
                t = self.tensors.get(key)
                if t is None:
                    continue
                described.add(key)
                chain = None
                if i in parent:
                    chain = []
                    u = i
                    while u != 0:
                        p, name = parent[u]
                        chain.append((u, name))
                        u = p
                    chain.reverse()
                vars_.append(_Var(i, key, a.name, a.full_name, t, chain, order=dfs_rank.get(i, self.n + len(vars_))))
        if queue and any(v.chain is None for v in vars_):
            self.notes.append(
                f"the checkpoint's object graph is deeper than {_MAX_GRAPH_DEPTH} levels; variables "
                "below that are named by their checkpoint keys"
            )
        for var in vars_:
            var.kind = self._kind(var)
        vars_ = self._dedupe(vars_)
        model_vars = [v for v in vars_ if v.kind == "model"]
        rows = self._name_model(model_vars)
        rows += self._name_other([v for v in vars_ if v.kind != "model"])
        extra = sorted((k for k in self.tensors if k not in described), key=_natural)
        for key in extra:  # tensors the object graph does not describe
            t = self.tensors[key]
            comps, _attr = _key_parts(key)
            kind = self._kind_from_parts(key, comps)
            readable = _readable_key(key)
            rows.append(
                Variable(
                    readable,
                    paths.layer_of(readable),
                    None,
                    paths.short_name(readable),
                    t.shape,
                    t.dtype,
                    None,
                    kind,
                    key,
                    True,
                )
            )
        self.variables = _ordered(rows)
        return self

    @staticmethod
    def _kind_from_parts(key: str, comps: list[str]) -> str:
        if SLOT_MARK in comps:
            return "optimizer"
        if any(c in _OPTIMIZER_COMPONENTS for c in comps):
            return "optimizer"
        if len(comps) == 1 and comps[0] in _BOOKKEEPING:
            return "optimizer"
        if any(c in _METRIC_COMPONENTS for c in comps):
            return "metric"
        return "model"

    def _kind(self, v: _Var) -> str:
        """A variable reachable through the model's own structure (optimizer and metric subtrees
        excluded) is a model variable, even when its checkpoint key runs through the optimizer
        (Keras 3 optimizers track the model's trainable variables); the others go by their key."""
        comps, _attr = _key_parts(v.key)
        if SLOT_MARK in comps:
            return "optimizer"
        if v.chain is not None:
            if len(v.chain) == 1 and v.chain[0][1] in _BOOKKEEPING:
                return "optimizer"
            return "model"
        return self._kind_from_parts(v.key, comps)

    # model variables ---------------------------------------------------------------------------
    def _name_model(self, vars_: list[_Var]) -> list[Variable]:
        leaves: dict[int, _Leaf] = {}
        loose: list[_Var] = []
        for v in vars_:
            where = self._leaf_of(v)
            if where is None:
                loose.append(v)
                continue
            node, containers, edge, pre = where
            leaves.setdefault(node, _Leaf(node, containers, edge, pre)).vars.append(v)
        names = self._layer_names(leaves)
        pres = {leaf.pre for leaf in leaves.values()}
        keep_pre = len(pres) > 1
        if len(pres) == 1 and () not in pres:
            self.notes.append(
                f"the Keras model sits below {'/'.join(next(iter(pres)))!r} in the checkpoint; paths start at the model"
            )
        out: list[tuple[int, int, Variable]] = []
        guessed = positional = 0
        for leaf in leaves.values():
            prefix = ([*leaf.pre] if keep_pre else []) + [names[c] for c in leaf.containers]
            lname, how = names[leaf.node], names.get(("how", leaf.node), "meta")
            if how == "guess":
                guessed += 1
            elif how == "positional":
                positional += 1
            rows = self._leaf_rows(leaf, prefix, lname, how)
            first = min(v.order for v in leaf.vars)
            for k, r in enumerate(rows):
                out.append((first, k, r))
        by_name = self._loose_names(loose)
        for v in loose:
            if v.node in by_name:
                p = by_name[v.node]
            else:
                comps = [name for _u, name in v.chain] if v.chain else _key_parts(v.key)[0]
                comps = [c for c in comps if c != SLOT_MARK]
                if v.attr and v.attr != VALUE_ATTR:
                    comps = comps + [v.attr]
                p = paths.join(*comps) or v.key
            out.append(
                (
                    v.order,
                    0,
                    Variable(
                        p,
                        paths.layer_of(p),
                        None,
                        paths.short_name(p),
                        v.tensor.shape,
                        v.tensor.dtype,
                        None,
                        "model",
                        v.key,
                        True,
                    ),
                )
            )
        out.sort(key=lambda x: (x[0], x[1]))
        if guessed or positional:
            what = []
            if guessed:
                what.append(f"{guessed} layer name(s) taken from the variables' own names")
            if positional:
                what.append(f"{positional} layer(s) named by position (layer_with_weights-N)")
            self.notes.append(
                "no Keras metadata for these layers: "
                + ", ".join(what)
                + "; layer classes and trainable flags are unknown"
            )
        return [r for _a, _b, r in out]

    def _loose_names(self, loose: list[_Var]) -> dict[int, str]:
        """Paths from the variables' own names for model variables outside any Keras layer the
        object graph shows (Keras 3 models, subclassed models, exports), when every one of them
        has a unique scoped name (``seq/d1/kernel``): the model's own name is dropped when all
        share it, RNN cells are collapsed. Empty when the names cannot be used."""
        if not loose or any(v.attr and v.attr != VALUE_ATTR for v in loose):
            return {}
        parts = [paths.split(paths.strip_device_suffix(v.full_name or "")) for v in loose]
        if any(len(p) < 2 for p in parts) or len({"/".join(p) for p in parts}) != len(parts):
            return {}
        if all(len(p) >= 3 for p in parts) and len({p[0] for p in parts}) == 1:
            parts = [p[1:] for p in parts]
        names = ["/".join([c for c in p[:-1] if not _is_cell(c)] + p[-1:]) for p in parts]
        if len(set(names)) != len(names):
            return {}
        return {v.node: n for v, n in zip(loose, names, strict=True)}

    def _dedupe(self, vars_: list[_Var]) -> list[_Var]:
        """Drop exact duplicates that are reachable only through lists of variables (a Keras 3
        export saves each variable under ``variables/N`` and again under ``_all_variables/N``):
        same variable name, shape, dtype and bit-identical values."""
        groups: dict[tuple, list[_Var]] = {}
        for v in vars_:
            if v.chain is None and v.kind == "model" and v.full_name:
                groups.setdefault((v.full_name, v.tensor.shape, v.tensor.dtype), []).append(v)
        drop: set[str] = set()
        for group in groups.values():
            if len(group) < 2 or self.read is None:
                continue
            group.sort(key=lambda v: (0 if v.key.startswith("variables/") else 1, _natural(v.key)))
            try:
                first = self.read(group[0].key)
                for other in group[1:]:
                    if _same_bits(first, self.read(other.key)):
                        drop.add(other.key)
            except Exception:
                continue
        if drop:
            self.notes.append(
                f"{len(drop)} tensor(s) are stored twice under the same variable name with identical "
                "values (e.g. a Keras 3 export's '_all_variables'); each is listed once"
            )
        return [v for v in vars_ if v.key not in drop]

    def _leaf_of(self, v: _Var) -> tuple[int, list[int], str, tuple[str, ...]] | None:
        """(leaf layer node, enclosing model nodes, edge name, attribute edges before the first
        model) of a variable, or None when it is not inside a Keras layer."""
        if not v.chain:
            return None
        containers: list[int] = []
        pre: list[str] = []
        prev = 0
        for u, edge in v.chain[:-1]:
            if self._is_layer(u, edge, prev):
                if not self._is_model(u):
                    return u, containers, edge, tuple(pre)
                containers.append(u)
            elif containers or self._is_model(prev) or prev in self.meta:
                return None  # an attribute of a model or layer that is not one of its layers
            else:
                pre.append(edge)  # tf.train.Checkpoint(model=...): the model sits below 'model'
            prev = u
        return None

    def _layer_names(self, leaves: dict[int, _Leaf]) -> dict:
        names: dict = {}
        # containers first (outer to inner), then leaves
        below: dict[int, list[_Var]] = {}
        for leaf in leaves.values():
            for c in leaf.containers:
                below.setdefault(c, []).extend(leaf.vars)
        edge_of: dict[int, str] = {}
        for leaf in leaves.values():
            for v in leaf.vars:
                for u, e in v.chain or []:
                    edge_of.setdefault(u, e)
        outer_of: dict[int, list[int]] = {}  # container -> the containers around it
        for leaf in leaves.values():
            for k, c in enumerate(leaf.containers):
                outer_of.setdefault(c, leaf.containers[:k])
        for c in sorted(below, key=lambda c: len(outer_of[c])):
            outer = outer_of[c]
            m = self.meta.get(c)
            pre = [names[o] for o in outer]
            if m is not None and isinstance(m.get("name"), str) and m["name"]:
                names[c] = m["name"]
                names[("how", c)] = "meta"
                self.used_metadata = True
                continue
            fulls = [self._full_parts(v, pre) for v in below[c]]
            first = {f[0] for f in fulls if f}
            if len(first) == 1 and all(len(f) >= 3 for f in fulls):
                names[c] = first.pop()
                names[("how", c)] = "guess"
            else:
                names[c] = edge_of.get(c, f"node-{c}")
                names[("how", c)] = "positional"
        by_parent: dict[tuple, list[_Leaf]] = {}
        for leaf in leaves.values():
            m = self.meta.get(leaf.node)
            if m is not None and isinstance(m.get("name"), str) and m["name"]:
                names[leaf.node] = m["name"]
                names[("how", leaf.node)] = "meta"
                self.used_metadata = True
                continue
            pre = [names[o] for o in leaf.containers]
            guess = None
            cands = set()
            for v in leaf.vars:
                f = self._full_parts(v, pre)
                d = [p for p in f[:-1] if not _is_cell(p)]
                cands.add(d[0] if d else None)
            if len(cands) == 1:
                guess = cands.pop()
            if guess and not _LAYER_EDGE.match(guess):
                names[leaf.node] = guess
                names[("how", leaf.node)] = "guess"
                by_parent.setdefault(tuple(leaf.containers), []).append(leaf)
            else:
                names[leaf.node] = leaf.edge
                names[("how", leaf.node)] = "positional"
        for sibs in by_parent.values():  # guessed names must be unique among siblings
            count: dict[str, int] = {}
            for leaf in sibs:
                count[names[leaf.node]] = count.get(names[leaf.node], 0) + 1
            for leaf in sibs:
                if count[names[leaf.node]] > 1:
                    names[leaf.node] = leaf.edge
                    names[("how", leaf.node)] = "positional"
        return names

    @staticmethod
    def _full_parts(v: _Var, prefix: list[str]) -> list[str]:
        f = paths.split(paths.strip_device_suffix(v.full_name or ""))
        if prefix and f[: len(prefix)] == prefix:
            f = f[len(prefix) :]
        return f

    def _leaf_rows(self, leaf: _Leaf, prefix: list[str], lname: str, how: str) -> list[Variable]:
        from ..keras.config import LayerNode, plain_class_name, policy_var_dtype
        from ..keras.naming import from_file_name, name_legacy_layer

        layer_path = paths.join(*prefix, lname)
        vars_ = sorted(leaf.vars, key=lambda v: v.order)
        m = self.meta.get(leaf.node) if how == "meta" else None
        rows: list[Variable] = []
        if m is not None:
            cls = plain_class_name(str(m.get("class_name") or ""))
            cfg: dict = m["config"] if isinstance(m.get("config"), dict) else {}
            node = LayerNode(
                name=lname,
                class_name=cls,
                config=cfg,
                trainable=m.get("trainable") is not False,
                var_dtype=policy_var_dtype(cfg.get("dtype")),
            )
            weight_names = [v.full_name or "/".join(self._rest(v, leaf)) for v in vars_]
            named, known = name_legacy_layer(node, lname, weight_names, 2)
            if not known:
                self.notes.append(
                    f"{layer_path}: layer class {cls} is not a Keras built-in; names taken from the checkpoint"
                )
            enclosing = all(self.meta.get(c, {}).get("trainable") is not False for c in [0, *leaf.containers])
            enclosing = enclosing and node.trainable
            items = []
            for n, v in zip(named, vars_, strict=True):
                tr: bool | None
                if not enclosing:
                    tr = False
                else:
                    tr = None if n.trainable is None else bool(n.trainable)
                items.append((n, v, tr))
            # tf_keras layer.weights: trainable variables (by design) first, then the others
            items.sort(key=lambda x: 1 if x[0].trainable is False else 0)
            for n, v, tr in items:
                rows.append(
                    self._row(
                        paths.join(layer_path, n.rel), paths.join(layer_path, n.subpath), cls, n.name, v, tr, True
                    )
                )
            return rows
        for v in vars_:
            if how == "guess":
                full = "/".join(self._full_parts(v, prefix))
                sub, short = from_file_name(full, lname)
            else:
                rest = [c for c in self._rest(v, leaf) if not _is_cell(c)]
                sub, short = "/".join(rest[:-1]), rest[-1] if rest else v.key
            if v.attr and v.attr != VALUE_ATTR:
                sub, short = paths.join(sub, short), v.attr
            rows.append(
                self._row(
                    paths.join(layer_path, sub, short),
                    paths.join(layer_path, sub),
                    None,
                    short,
                    v,
                    None,
                    how != "positional",
                )
            )
        return rows

    @staticmethod
    def _rest(v: _Var, leaf: _Leaf) -> list[str]:
        names = [name for _u, name in v.chain or []]
        nodes = [u for u, _n in v.chain or []]
        if leaf.node in nodes:
            return names[nodes.index(leaf.node) + 1 :]
        return names

    @staticmethod
    def _row(path: str, layer: str, cls: str | None, name: str, v: _Var, trainable, named: bool) -> Variable:
        return Variable(
            path=path,
            layer=layer,
            layer_class=cls,
            name=name,
            shape=v.tensor.shape,
            dtype=v.tensor.dtype,
            trainable=trainable,
            kind="model",
            location=v.key,
            named=named,
        )

    # optimizer and metric variables ------------------------------------------------------------
    def _name_other(self, vars_: list[_Var]) -> list[Variable]:
        out = []
        fulls: dict[str, int] = {}
        for v in vars_:
            if v.full_name:
                fulls[v.full_name] = fulls.get(v.full_name, 0) + 1
        for v in sorted(vars_, key=lambda v: (v.order, _natural(v.key))):
            under_optimizer = any(c in _OPTIMIZER_COMPONENTS for c in _key_parts(v.key)[0])
            if (
                v.kind == "optimizer"
                and under_optimizer
                and v.full_name
                and fulls[v.full_name] == 1
                and (not v.attr or v.attr == VALUE_ATTR)
            ):
                # the variable's own name, as Keras writes optimizer weights into HDF5 files
                p = paths.join("optimizer", paths.strip_device_suffix(v.full_name))
            else:
                p = _readable_key(v.key)
            layer = "optimizer" if p.startswith("optimizer/") else paths.layer_of(p)
            out.append(
                Variable(p, layer, None, paths.short_name(p), v.tensor.shape, v.tensor.dtype, None, v.kind, v.key, True)
            )
        return out


def _same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "OSU":
        return bool(np.array_equal(a, b))
    return a.tobytes() == b.tobytes()


def _is_cell(component: str) -> bool:
    return component == "cell" or component.endswith("_cell")
