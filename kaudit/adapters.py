"""LoRA adapters and preset assets, for inspect and diff (core: reads values through the
Checkpoint, knows Keras only through ``kaudit.keras.lora`` and ``kaudit.keras.hub_blocks``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from .checkpoint import Checkpoint, Variable
from .errors import InputError
from .keras import hub_blocks
from .keras import lora as LORA

#: The format of a KerasHub adapter file (``kaudit.readers``), and of a checkpoint with one applied.
HUB_LORA = LORA.HUB_FORMAT
APPLIED = "+lora"


def adapter_deltas(ckpt: Checkpoint) -> list[tuple[str, LORA.LoraInfo, float, float]]:
    """(layer, info, ‖ΔW‖_F, max |ΔW|) of every adapter (A and B) in ``ckpt``: ΔW = scale · A·B,
    never formed whole."""
    by_layer: dict[str, dict[str, Variable]] = {}
    for v in ckpt.all_variables:
        if v.lora is not None and v.lora.role in ("a", "b"):
            by_layer.setdefault(v.layer, {})[v.lora.role] = v
    out = []
    for layer, f in by_layer.items():
        if "a" in f and "b" in f:
            info = f["a"].lora
            if info is None:
                continue
            fro, mx = LORA.delta_norms(ckpt.read(f["a"]), ckpt.read(f["b"]), info.scale)
            out.append((layer, info, fro, mx))
    return out


def delta_notes(ckpt: Checkpoint) -> list[str]:
    return [
        f"{layer}: LoRA rank {info.rank}, scale {info.scale:g}: ΔW = scale·A·B has Frobenius norm {fro:.4g}, "
        f"max |ΔW| {mx:.4g}"
        for layer, info, fro, mx in adapter_deltas(ckpt)
    ]


def asset_failures(ca: Checkpoint, cb: Checkpoint) -> list[str]:
    """The preset files (tokenizer, preprocessor, config) that differ between two presets, by
    sha256; nothing unless both are presets."""
    a, b = ca.assets, cb.assets
    if a is None or b is None:
        return []
    out = []
    for rel in sorted(set(a) | set(b)):
        if rel not in b:
            out.append(f"asset: {rel} only in a")
        elif rel not in a:
            out.append(f"asset: {rel} only in b")
        elif a[rel] != b[rel]:
            out.append(f"asset: {rel} differs (sha256 {a[rel][:12]} -> {b[rel][:12]})")
    return out


def relative_change(fro: float, norm_w: float) -> float:
    return fro / norm_w if norm_w > 0 else (0.0 if fro == 0 else math.inf)


# -- a base with KerasHub adapters applied -------------------------------------------------------


class AdapterMismatch(InputError):
    """KerasHub adapters that cannot be placed on this base (exit 2: could not compare)."""


@dataclass(frozen=True)
class _Delta:
    """ΔW = scale · A·B of one kernel: A's leading axes flattened to rows (float64)."""

    a: np.ndarray  # (rows, r)
    b: np.ndarray  # (r, out)
    scale: float

    def rows(self, r0: int, r1: int) -> np.ndarray:
        return (self.a[r0:r1] @ self.b) * self.scale

    def flat(self, start: int, n: int) -> np.ndarray:
        """ΔW's elements start..start+n in C order."""
        out = self.b.shape[1]
        r0, r1 = start // out, (start + n - 1) // out + 1
        return self.rows(r0, r1).reshape(-1)[start - r0 * out : start - r0 * out + n]


class _AppliedStore:
    """The base's store, with ΔW added to the values of the adapted kernels (float64: the exact
    effective change, not Keras's float32 rounding of it). Everything else is the base's, bytes
    included, so unadapted weights are identical by their bytes."""

    def __init__(self, base, deltas: dict[str, _Delta]):
        self.base = base
        self.deltas = deltas

    def read(self, var: Variable, selection: tuple = ()) -> np.ndarray:
        d = self.deltas.get(var.path)
        if d is None:
            return self.base.read(var, selection)
        x = np.asarray(self.base.read(var), np.float64)
        x = x + d.flat(0, x.size).reshape(x.shape)
        return x[selection] if selection else x

    def iter_blocks(self, var: Variable, block_elems: int) -> Iterator[np.ndarray]:
        d = self.deltas.get(var.path)
        if d is None:
            yield from self.base.iter_blocks(var, block_elems)
            return
        start = 0
        for block in self.base.iter_blocks(var, block_elems):
            flat = np.asarray(block, np.float64).reshape(-1)
            yield flat + d.flat(start, flat.size)
            start += flat.size

    def iter_stored_blocks(self, var: Variable, block_elems: int) -> Iterator[np.ndarray]:
        """The base's stored blocks, or its values where its store has no stored form (the other
        side of the diff is that same store then, and compares values too); an adapted kernel's
        float64 values are never the base's bytes."""
        get = None if var.path in self.deltas else getattr(self.base, "iter_stored_blocks", None)
        return (get or self.iter_blocks)(var, block_elems)

    def raw_bytes(self, var: Variable, limit: int):
        if var.path in self.deltas:
            return None
        get = getattr(self.base, "raw_bytes", None)
        return get(var, limit) if get is not None else None

    def close(self) -> None:  # the base and the adapter file are closed by whoever opened them
        pass


def apply_lora(base: Checkpoint, adapters: Checkpoint, side: str = "b") -> tuple[Checkpoint, list[str]]:
    """``base`` with the adapters of a KerasHub ``.lora.h5`` (``adapters``) applied, as
    ``backbone.load_lora_weights`` would: adapter ``<i>`` goes to the i-th layer with weights of
    ``backbone._flatten_layers(include_self=False)`` (:func:`kaudit.keras.hub_blocks.flatten_order`),
    whose kernel becomes W + scale·A·B. Returns the checkpoint and notes naming each placement
    (``side``: which side of a diff it is, for the notes).

    :class:`AdapterMismatch` (exit 2) where the placement cannot be proven: a base without values,
    layer order the file does not state, a composite layer kaudit does not know, an index past
    the base's layers, a layer without a kernel, or factors whose shapes do not fit the kernel."""
    where = f"{adapters.file} on {base.file}"
    if not getattr(base.store, "has_values", True):
        raise AdapterMismatch("the base is a snapshot without values; adapters need its kernels", path=where)
    if any(n.startswith(hub_blocks.ORDER_UNKNOWN) for n in base.notes):
        raise AdapterMismatch(
            "the base file does not state Keras's order of its layers, which numbers the adapters",
            path=where,
            hint="use the preset or the weights file as Keras wrote it",
        )
    factors: dict[int, dict[str, Variable]] = {}
    for v in adapters.all_variables:
        if v.lora is None or v.lora.role not in ("a", "b"):
            continue
        number = v.layer.rpartition("/")[2]
        if not number.isdigit() or number != str(int(number)):
            raise AdapterMismatch(f"adapter group {v.layer!r} is not a layer number", path=where)
        factors.setdefault(int(number), {})[v.lora.role] = v
    if not factors:
        raise AdapterMismatch("the adapter file holds no adapters", path=where)
    model = base.model_variables
    layers = list(dict.fromkeys(v.layer for v in model))
    root = hub_blocks.backbone_root(layers)  # a task model (GemmaCausalLM...) holds its backbone
    try:
        order = hub_blocks.flatten_order(layers, root)
    except hub_blocks.UnknownBlock as exc:
        raise AdapterMismatch(
            str(exc), path=where, hint="kaudit places KerasHub adapters on the backbones of docs/formats.md"
        ) from None
    by_layer: dict[str, list[Variable]] = {}
    for v in model:
        by_layer.setdefault(v.layer, []).append(v)
    deltas: dict[str, _Delta] = {}
    notes: list[str] = []
    info_of: dict[str, LORA.LoraInfo] = {}
    for index in sorted(factors):
        f = factors[index]
        if index >= len(order):
            raise AdapterMismatch(
                f"adapter {index}: the base has {len(order)} layers with weights (0..{len(order) - 1})", path=where
            )
        layer = order[index]
        kernel = _kernel(by_layer.get(layer, []))
        va, vb = f["a"], f["b"]
        info = va.lora
        assert info is not None
        if kernel is None:
            raise AdapterMismatch(f"adapter {index} belongs to layer {layer!r}, which has no kernel", path=where)
        if kernel.lora is not None:
            raise AdapterMismatch(
                f"adapter {index}: kernel {kernel.path} was saved with a LoRA adapter merged into it "
                "(Keras would load these adapters in place of that one, from a kernel the file no longer holds)",
                path=where,
                hint="diff against the base saved before enable_lora",
            )
        if kernel.quant is not None or not kernel.dtype.startswith(("float", "bfloat")):
            raise AdapterMismatch(
                f"adapter {index}: kernel {kernel.path} is {kernel.dtype}"
                + (" (quantized)" if kernel.quant is not None else "")
                + "; kaudit applies adapters to float kernels only",
                path=where,
            )
        if va.shape[:-1] != kernel.shape[:-1] or vb.shape != (info.rank, kernel.shape[-1]):
            raise AdapterMismatch(
                f"adapter {index} does not fit layer {layer!r}: factors {list(va.shape)} x {list(vb.shape)} "
                f"against kernel {list(kernel.shape)}",
                path=where,
                hint="is this the base the adapters were trained on?",
            )
        a = np.asarray(adapters.read(va), np.float64).reshape(-1, info.rank)
        b = np.asarray(adapters.read(vb), np.float64).reshape(info.rank, -1)
        d = _Delta(a, b, info.scale)
        fro, mx = LORA.delta_norms(a, b, info.scale)
        notes.append(
            f"adapter {index} -> {kernel.path} (rank {info.rank}, scale {info.scale:g}): "
            f"‖ΔW‖ {fro:.4g}, max |ΔW| {mx:.4g}"
        )
        if mx == 0.0:  # W + 0 is W: the base's bytes, reported identical
            continue
        deltas[kernel.path] = d
        info_of[kernel.path] = LORA.LoraInfo(info.rank, info.alpha, "merged")
    variables = tuple(replace(v, lora=info_of[v.path]) if v.path in info_of else v for v in base.all_variables)
    notes.insert(
        0,
        f"{side} is {'b' if side == 'a' else 'a'} with the {len(factors)} KerasHub adapters of {adapters.file} applied "
        "(W + scale·A·B, in float64), placed by Keras's _flatten_layers() numbering"
        + (f" of the task model's backbone {root!r}" if root else ""),
    )
    applied = replace(
        base,
        file=adapters.file,
        format=base.format + APPLIED,
        all_variables=variables,
        store=_AppliedStore(base.store, deltas),
        notes=tuple(base.notes) + tuple(adapters.notes),
        files=tuple(base.files) + tuple(adapters.files),
        assets=base.assets,
    )
    return applied, notes


def _kernel(variables: list[Variable]) -> Variable | None:
    """The kernel of a Dense or EinsumDense layer: named, or its first variable where the layer's
    class is unknown (``vars/0``: Keras saves the kernel first)."""
    for v in variables:
        if v.name == "kernel":
            return v
    if variables and not variables[0].named and variables[0].ndim >= 2:
        return variables[0]
    return None
