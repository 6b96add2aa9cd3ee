"""The canonical variable table: :class:`Variable` rows and the :class:`Checkpoint` that owns them.

A reader (``kaudit.readers``) turns a file into a ``Checkpoint``: an ordered tuple of
``Variable`` descriptions (Keras's ``model.weights`` order) plus a ``Store`` that reads values
lazily, block by block. Nothing here knows about file formats.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from . import paths, views
from .errors import VariableNotFoundError
from .progress import beat
from .schema import VARIABLE_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from .keras.lora import LoraInfo
    from .keras.quantized import QuantInfo

#: Elements per block when streaming a variable (4 MiB of float32).
DEFAULT_BLOCK_ELEMS = 1 << 20

_VARIABLE_FIELDS = ("path", "layer", "layer_class", "name", "shape", "dtype", "trainable", "kind", "location", "named")


@dataclass(frozen=True)
class Variable:
    """One variable of a checkpoint, described from the file alone.

    ``trainable`` is ``True``/``False`` as Keras would decide it from the saved config, or
    ``None`` where the file cannot tell (weights-only files): never a guess shown as fact.
    ``named`` is False when the variable name is positional (``vars/3``) because the layer
    class is unknown (custom layers).
    """

    path: str
    layer: str
    layer_class: str | None
    name: str
    shape: tuple[int, ...]
    dtype: str
    trainable: bool | None
    kind: str = "model"
    location: str = ""
    named: bool = True
    #: What the variable is in a quantized layer (``kaudit.keras.quantized.QuantInfo``) or a LoRA
    #: adapter (``kaudit.keras.lora.LoraInfo``); None for everything else. Readers set them after
    #: building the row (``from_fields`` leaves them at these defaults).
    quant: QuantInfo | None = None
    lora: LoraInfo | None = None

    @classmethod
    def from_fields(cls, fields) -> Variable:
        """``Variable(*fields)`` (fields in declaration order) at a third of the cost: readers
        build one per variable, thousands per model. Variable has no checks to skip."""
        v = object.__new__(cls)
        v.__dict__.update(zip(_VARIABLE_FIELDS, fields, strict=True))
        return v

    @property
    def params(self) -> int:
        return int(math.prod(self.shape))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def as_row(self) -> dict:
        return {
            "path": self.path,
            "layer": self.layer,
            "layer_class": self.layer_class,
            "name": self.name,
            "shape": self.shape,
            "dtype": self.dtype,
            "trainable": self.trainable,
            "params": self.params,
            "kind": self.kind,
            "location": self.location,
        }


class Store(Protocol):
    """Reads the values of a checkpoint's variables. Implemented by each reader."""

    def read(self, var: Variable, selection: tuple = ()) -> np.ndarray:
        """Values of ``var`` (numeric numpy array; bfloat16 widened to float32)."""

    def iter_blocks(self, var: Variable, block_elems: int) -> Iterator[np.ndarray]:
        """Flat blocks covering ``var`` in C order, each at most ``block_elems`` elements."""

    def close(self) -> None: ...


def verify_store(store: Store) -> None:
    """What a store checks while it reads (a zip member's CRC-32), waited for: raises if it failed."""
    check = getattr(store, "verify", None)
    if check is not None:
        check()


@dataclass(frozen=True)
class Totals:
    """Parameter counts as ``model.summary()`` prints them. ``trainable``/``non_trainable`` are
    None when the file cannot tell (no config); ``unknown`` counts params whose trainability is
    unknown when only some are (custom layers)."""

    total: int
    trainable: int | None
    non_trainable: int | None
    unknown: int = 0

    def as_dict(self) -> dict:
        d = {"total": self.total, "trainable": self.trainable, "non_trainable": self.non_trainable}
        if self.unknown:
            d["unknown"] = self.unknown
        return d

    def summary_lines(self) -> list[str]:
        """Keras's own wording (``model.summary()``)."""

        def fmt(n: int | None) -> str:
            return "unknown (no model config in the file)" if n is None else f"{n:,}"

        lines = [
            f"Total params: {fmt(self.total)}",
            f"Trainable params: {fmt(self.trainable)}",
            f"Non-trainable params: {fmt(self.non_trainable)}",
        ]
        if self.unknown:
            lines.append(f"Params of unknown trainability: {self.unknown:,}")
        return lines


class Layer:
    """A Keras-like view of one layer's variables: ``.weights``, ``.get_weights()``,
    ``.kernel``, ``.bias`` (None when the layer has none), ``.trainable_weights``..."""

    def __init__(self, checkpoint: Checkpoint, path: str, variables: list[Variable]):
        self._ckpt = checkpoint
        self.path = path
        self.name = paths.short_name(path)
        self.weights = list(variables)
        self.layer_class = variables[0].layer_class if variables else None

    def __repr__(self) -> str:
        return f"<kaudit.Layer {self.path!r} ({self.layer_class}) {len(self.weights)} weights>"

    def get_weights(self) -> list[np.ndarray]:
        return [self._ckpt.read(v) for v in self.weights]

    @property
    def trainable_weights(self) -> list[Variable]:
        return [v for v in self.weights if v.trainable]

    @property
    def non_trainable_weights(self) -> list[Variable]:
        return [v for v in self.weights if v.trainable is False]

    def _named(self, name: str) -> np.ndarray | None:
        for v in self.weights:
            if v.name == name:
                return self._ckpt.read(v)
        return None

    def __getattr__(self, name: str):
        # kernel, bias, gamma, beta, moving_mean, embeddings, ... like Keras layer attributes
        if name.startswith("_"):
            raise AttributeError(name)
        if any(v.name == name for v in self.weights):
            return self._named(name)
        if name in ("kernel", "bias"):
            return None
        raise AttributeError(f"layer {self.path!r} has no variable {name!r}")


@dataclass
class Checkpoint:
    """A checkpoint read from a file: the canonical variable table and lazy values.

    >>> ckpt = kaudit.load("fixtures/tutorial/k2_full.h5")
    >>> ckpt.variables            # pandas DataFrame, one row per model variable
    >>> ckpt["L3_dense/kernel"]   # numpy array, read on demand
    >>> ckpt.totals.total         # 1025, as model.summary() says
    """

    file: str
    format: str
    all_variables: tuple[Variable, ...]
    store: Store = field(repr=False)
    keras_version: str | None = None
    has_config: bool = False
    notes: tuple[str, ...] = ()
    #: Files that make up the checkpoint (shards, index + data...), for display.
    files: tuple[str, ...] = ()
    #: Other files of a KerasHub preset (tokenizer, preprocessor, config): relative path -> sha256.
    assets: dict[str, str] | None = None

    def __post_init__(self) -> None:
        self._by_path = {v.path: v for v in self.all_variables}

    # -- the table -------------------------------------------------------------------------
    @property
    def model_variables(self) -> tuple[Variable, ...]:
        return tuple(v for v in self.all_variables if v.kind == "model")

    @property
    def optimizer_variables(self) -> tuple[Variable, ...]:
        return tuple(v for v in self.all_variables if v.kind != "model")

    def select(self, optimizer: bool = False) -> tuple[Variable, ...]:
        return self.all_variables if optimizer else self.model_variables

    def table(self, optimizer: bool = False) -> pd.DataFrame:
        import pandas as pd

        rows = [v.as_row() for v in self.select(optimizer)]
        df = pd.DataFrame(rows, columns=list(VARIABLE_COLUMNS))
        df["trainable"] = df["trainable"].astype(object)
        return df

    @property
    def variables(self) -> pd.DataFrame:
        """Model variables as a DataFrame with the fixed ``VARIABLE_COLUMNS``."""
        return self.table(optimizer=False)

    @property
    def totals(self) -> Totals:
        mv = self.model_variables
        total = sum(v.params for v in mv)
        unknown = sum(v.params for v in mv if v.trainable is None)
        if mv and unknown == total:
            return Totals(total, None, None)
        tr = sum(v.params for v in mv if v.trainable)
        return Totals(total, tr, total - tr - unknown, unknown)

    # -- values ------------------------------------------------------------------------------
    def variable(self, path: str) -> Variable:
        try:
            return self._by_path[path]
        except KeyError:
            hint = _closest(path, list(self._by_path))
            raise VariableNotFoundError(
                f"no variable {path!r}",
                path=self.file,
                hint=f"did you mean {hint!r}?" if hint else "see `kaudit inspect` for the paths",
            ) from None

    def __contains__(self, path: object) -> bool:
        return path in self._by_path

    def __getitem__(self, path: str) -> np.ndarray:
        return self.read(self.variable(path))

    def __len__(self) -> int:
        return len(self.model_variables)

    def __iter__(self) -> Iterator[Variable]:
        return iter(self.model_variables)

    def read(self, var: Variable | str) -> np.ndarray:
        if isinstance(var, str):
            var = self.variable(var)
        beat()
        return self.store.read(var)

    def iter_blocks(self, var: Variable, block_elems: int = DEFAULT_BLOCK_ELEMS) -> Iterator[np.ndarray]:
        for block in self.store.iter_blocks(var, block_elems):
            beat()  # progress for the stall watchdog of the command line
            yield block

    def iter_stored_blocks(self, var: Variable, block_elems: int = DEFAULT_BLOCK_ELEMS) -> Iterator[np.ndarray] | None:
        """Flat blocks as the file stores them (bfloat16 as 16-bit words), where the store can give
        them, else None: two variables of one dtype whose stored blocks are equal hold equal values."""
        get = getattr(self.store, "iter_stored_blocks", None)
        if get is None:
            return None
        return self._beating(get(var, block_elems))

    @staticmethod
    def _beating(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            beat()
            yield block

    # -- Keras vocabulary --------------------------------------------------------------------
    @property
    def weights(self) -> list[Variable]:
        return list(self.model_variables)

    def get_weights(self) -> list[np.ndarray]:
        """Arrays in Keras's order, like ``model.get_weights()``."""
        return [self.read(v) for v in self.model_variables]

    @property
    def trainable_weights(self) -> list[Variable]:
        return [v for v in self.model_variables if v.trainable]

    @property
    def non_trainable_weights(self) -> list[Variable]:
        return [v for v in self.model_variables if v.trainable is False]

    @property
    def layers(self) -> list[Layer]:
        order: dict[str, list[Variable]] = {}
        for v in self.model_variables:
            order.setdefault(v.layer, []).append(v)
        return [Layer(self, p, vs) for p, vs in order.items()]

    def layer(self, name: str) -> Layer:
        """A layer by path (``Inner_model/L_in_0``) or, if unique, by its own name (``L_in_0``)."""
        layers = self.layers
        for layer in layers:
            if layer.path == name:
                return layer
        hits = [layer for layer in layers if layer.name == name]
        if len(hits) == 1:
            return hits[0]
        raise VariableNotFoundError(
            f"no layer {name!r}" if not hits else f"layer name {name!r} is ambiguous",
            path=self.file,
            hint="use the full layer path, see `kaudit inspect`",
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def verify(self) -> None:
        """Wait for the checks made while the file is read (the CRC-32 of a ``.keras`` member read
        in place) and raise :class:`~kaudit.errors.CorruptFileError` if one failed. Every command
        calls it before it shows a result; ``kaudit.load`` before it returns."""
        verify_store(self.store)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        t = self.totals
        return (
            f"<kaudit.Checkpoint {self.file!r} format={self.format!r} "
            f"variables={len(self.model_variables)} params={t.total:,}>"
        )

    def _repr_html_(self) -> str:
        return views.render("checkpoint_html", self)


def _closest(name: str, candidates: list[str]) -> str | None:
    import difflib

    hits = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return hits[0] if hits else None
