"""LoRA adapters and preset assets, for inspect and diff (core: reads values through the
Checkpoint, knows Keras only through ``kaudit.keras.lora``)."""

from __future__ import annotations

import math

from .checkpoint import Checkpoint, Variable
from .keras import lora as LORA


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
