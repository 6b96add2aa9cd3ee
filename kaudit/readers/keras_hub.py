"""KerasHub: adapter files (``backbone.save_lora_weights("x.lora.h5")``) and preset directories
(``backbone.save_to_preset(dir)``).

A preset directory is one checkpoint: ``config.json`` (the backbone's own config: its class and
arguments, not a layer graph), ``metadata.json``, ``model.weights.h5`` or a sharded
``model.weights.json``, and the tokenizer/preprocessor files (``tokenizer.json``,
``preprocessor.json``, ``assets/**``). The weights are Keras 3 weights (``keras_v3``), named by
the backbone's own layer names (the ``name`` attribute Keras writes on each layer's group); every
other file is an asset, kept as its sha256 so that ``diff`` can say which ones differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..checkpoint import Variable
from ..errors import CorruptFileError, UnsafeInputError
from ..keras import lora as LORA
from ..storage import hdf5 as H
from . import keras_v3

CONFIG, METADATA = "config.json", "metadata.json"
WEIGHTS = ("model.weights.h5", "model.weights.json")
MAX_ASSETS = 10_000
_CHUNK = 1 << 20


def is_preset(p: Path) -> bool:
    return (p / CONFIG).is_file() and (p / METADATA).is_file() and any((p / w).is_file() for w in WEIGHTS)


def weights_file(p: Path) -> Path:
    for w in WEIGHTS:
        if (p / w).is_file():
            return p / w
    raise CorruptFileError("a KerasHub preset without model.weights.h5 or model.weights.json", path=str(p))


def metadata(p: Path) -> dict:
    try:
        with open(p / METADATA, "rb") as fh:
            doc = json.loads(fh.read(1 << 20).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def asset_hashes(p: Path, display: str, skip: set[str]) -> dict[str, str]:
    """relative path -> sha256 of every regular file below ``p`` but the weights (``skip``: their
    names) and metadata.json (its save date changes with every save). A symbolic link out of the
    directory is refused."""
    root = os.path.realpath(p)
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(p, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, p).replace(os.sep, "/")
            if rel in skip or rel == METADATA:
                continue
            real = os.path.realpath(full)
            if os.path.commonpath([root, real]) != root:
                raise UnsafeInputError(f"preset file {rel!r} is a link out of the preset; refused", path=display)
            st = os.stat(real)
            if not stat.S_ISREG(st.st_mode):
                continue
            if len(out) >= MAX_ASSETS:
                raise UnsafeInputError(f"a preset of more than {MAX_ASSETS} files; refused", path=display)
            h = hashlib.sha256()
            with open(real, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    h.update(chunk)
            out[rel] = h.hexdigest()
    return out


# -- adapter files -------------------------------------------------------------------------------


def looks_like_lora(f) -> bool:
    try:
        return LORA.HUB_GROUP in f and "layers" not in f and "layer_names" not in f.attrs
    except Exception:
        return False


def read_lora(f, store: H.H5Store, display: str) -> tuple[list[Variable], list[str]]:
    """The adapters of a ``.lora.h5``: ``lora/<i>/lora_kernel_a|b`` annotated with their rank and
    scale (1: KerasHub never sets lora_alpha)."""
    tree = keras_v3.Tree([f], [display])
    r = keras_v3._Reader(tree, store, display)
    rank_ds = {k: ds for k, _fi, ds in tree.datasets(f"{LORA.HUB_GROUP}/vars")}.get("rank")
    if rank_ds is None:
        raise CorruptFileError("a KerasHub LoRA file without lora/vars/rank", path=display)
    H.check_dataset(rank_ds, display)
    rank_value = np.asarray(rank_ds[()])
    if rank_value.shape != () or rank_value.dtype.kind not in "iu" or int(rank_value) <= 0:
        raise CorruptFileError("lora/vars/rank is not a positive integer", path=display)
    rank = int(rank_value)
    for g in tree.groups(LORA.HUB_GROUP):
        if g == "vars":
            continue
        layer = f"{LORA.HUB_GROUP}/{g}"
        own = {k: ds for k, _fi, ds in tree.datasets(f"{layer}/vars")}
        if set(own) != {"lora_kernel_a", "lora_kernel_b"}:
            raise CorruptFileError(
                f"{layer}: expected lora_kernel_a and lora_kernel_b, found {sorted(own)}", path=display
            )
        start = len(r.out)
        for name in ("lora_kernel_a", "lora_kernel_b"):
            r.add(f"{layer}/{name}", layer, None, name, 0, own[name], None, None)
        a, b = r.out[start], r.out[start + 1]
        try:
            if LORA.check_factors(a.shape, b.shape) != rank:
                raise ValueError(f"rank {b.shape[0]} in the factors, {rank} in lora/vars/rank")
        except ValueError as exc:
            raise CorruptFileError(f"{layer}: {exc}", path=display) from None
        r.out[start : start + 2] = [
            _with_lora(a, LORA.LoraInfo(rank, float(rank), "a")),
            _with_lora(b, LORA.LoraInfo(rank, float(rank), "b")),
        ]
    notes = [
        f"KerasHub LoRA adapters of rank {rank} (scale 1): layers are numbered as in the backbone's "
        "_flatten_layers() with weights, which the file does not name (kaudit diff BASE this-file places them)"
    ]
    return r.out, notes


def _with_lora(v: Variable, info: LORA.LoraInfo) -> Variable:
    return replace(v, lora=info)
