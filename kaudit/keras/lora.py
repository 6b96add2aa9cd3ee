"""LoRA in Keras 3 and KerasHub, without I/O.

* Keras 3 ``layer.enable_lora(rank, lora_alpha=None)`` (Dense, EinsumDense, Embedding) adds
  ``lora_kernel_a`` (the kernel's shape with its last axis replaced by ``rank``) and
  ``lora_kernel_b`` ``(rank, kernel.shape[-1])`` (Embedding: ``lora_embeddings_a/_b``); the
  effective kernel is ``kernel + (lora_alpha / rank) * (A @ B)`` (``lora_alpha`` defaults to the
  rank: scale 1). ``save_own_variables`` stores that sum, *merged*, as ``kernel`` and no A/B; the
  config keeps ``lora_rank`` and ``lora_alpha``.
* KerasHub ``backbone.save_lora_weights("x.lora.h5")`` stores only the adapters:
  ``lora/vars/rank`` (a scalar) and ``lora/<i>/vars/lora_kernel_a|b`` where ``<i>`` is the
  layer's index among ``backbone._flatten_layers(include_self=False)`` that have weights.
  KerasHub's ``enable_lora(rank)`` never sets ``lora_alpha``: the scale is 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The weight LoRA adapts, per layer class.
ADAPTED = {"Dense": "kernel", "EinsumDense": "kernel", "Embedding": "embeddings", "ReversibleEmbedding": "embeddings"}
#: Where KerasHub's adapter files keep everything.
HUB_GROUP = "lora"
#: The format name kaudit gives those files.
HUB_FORMAT = "keras-hub-lora"


@dataclass(frozen=True)
class LoraInfo:
    """``role``: ``a`` / ``b`` (an adapter factor) or ``merged`` (a weight saved with its adapter
    added, Keras 3's own ``save``)."""

    rank: int
    alpha: float
    role: str

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def describe(self) -> str:
        what = {"a": "LoRA A", "b": "LoRA B", "merged": "LoRA-merged weight"}[self.role]
        return f"{what}, rank {self.rank}, alpha {self.alpha:g}, scale {self.scale:g}"


def merged(class_name: str | None, config: dict) -> tuple[str, LoraInfo] | None:
    """(weight name, info) for a layer saved with LoRA enabled (``lora_rank`` in its config)."""
    if class_name not in ADAPTED or not isinstance(config, dict):
        return None
    rank = config.get("lora_rank")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0:
        return None
    alpha = config.get("lora_alpha", rank)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not math.isfinite(alpha):
        alpha = rank
    return ADAPTED[class_name], LoraInfo(rank, float(alpha), "merged")


def check_factors(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> int:
    """The rank of an adapter whose factors have these shapes; ValueError if they do not fit."""
    if len(a_shape) < 2 or len(b_shape) != 2 or a_shape[-1] != b_shape[0] or b_shape[0] <= 0:
        raise ValueError(f"LoRA factors of shapes {a_shape} and {b_shape} do not multiply")
    return b_shape[0]


def delta_norms(a: np.ndarray, b: np.ndarray, scale: float, block_elems: int = 1 << 20) -> tuple[float, float]:
    """(Frobenius norm, max |element|) of ΔW = scale · (A @ B), A's leading axes flattened.

    The norm without forming ΔW: ‖AB‖²_F = trace((AᵀA)(BBᵀ)), r×r matrices. The maximum from
    row blocks of A @ B, at most ``block_elems`` elements at a time."""
    r = b.shape[0]
    a2 = np.asarray(a, np.float64).reshape(-1, r)
    b2 = np.asarray(b, np.float64).reshape(r, -1)
    fro2 = float(np.trace((a2.T @ a2) @ (b2 @ b2.T)))
    fro = math.sqrt(max(fro2, 0.0)) * abs(scale)
    rows = max(1, block_elems // max(1, b2.shape[1]))
    m = 0.0
    for s in range(0, a2.shape[0], rows):
        block = a2[s : s + rows] @ b2
        if block.size:
            m = max(m, float(np.max(np.abs(block))))
    return fro, m * abs(scale)
