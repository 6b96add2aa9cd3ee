"""Keras 3 quantized layers: which variables each quantization mode stores, and how Keras turns
them back into the float weight (dequantization), in plain numpy.

No I/O here. What Keras 3.15 writes (``layer.quantize(mode)`` then ``save``; the variable order
is the layer's ``variable_serialization_spec``, see ``layers.py``):

=================  =====================================================================
mode               stored variables of ``Dense`` / ``EinsumDense`` (``Embedding``: ``embeddings_*``)
=================  =====================================================================
``int8``           ``kernel`` int8, same shape as the float kernel; ``kernel_scale`` float32,
                   one per output channel (AbsMax over the contracted axes: Dense ``(units,)``,
                   EinsumDense the kernel's shape with the contracted axes 1, transposed to the
                   output's axis order; Embedding ``(input_dim,)``, one per row).
                   Float value = ``kernel / kernel_scale``.
``int4``           ``kernel`` int8 holding two int4 nibbles per byte along the last axis
                   (low nibble first: ``(rows, ceil(cols/2))``; EinsumDense flattens its kernel
                   to 2-D ``(contracted, other)`` first, by a plain reshape). Per-channel
                   (block_size -1): ``kernel_scale`` ``(cols,)``, float = ``q / scale``.
                   Sub-channel (block_size B > 0, Keras's default 128): ``kernel_scale`` and
                   ``kernel_zero`` (int8) ``(ceil(rows/B), cols)`` and ``g_idx`` float32
                   ``(rows,)`` (the group of each row), float = ``(q - zero[g]) * scale[g]``.
                   Embedding packs and groups along its output (column) axis instead.
``float8``         the float ``kernel`` as it was, plus scalar ``inputs_scale``, ``kernel_scale``,
                   ``outputs_grad_scale`` and their ``*_amax_history`` (delayed scaling state):
                   the stored kernel is the float one.
=================  =====================================================================

GPTQ and AWQ layers (``quantized_kernel``) are not named by kaudit (``layers.layer_spec``
returns None for them), so they are never dequantized: their variables keep positional names.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .layers import _quantization, _Unnamed

#: Layer class -> (quantized weight, its layout). ReversibleEmbedding's reverse_embeddings are
#: packed along another axis: not dequantized (compared as stored).
_WEIGHTS = {
    "Dense": ("kernel", "dense"),
    "EinsumDense": ("kernel", "einsum"),
    "Embedding": ("embeddings", "embedding"),
    "ReversibleEmbedding": ("embeddings", "embedding"),
}
FLOAT8_STATE = (
    "inputs_scale",
    "inputs_amax_history",
    "kernel_scale",
    "kernel_amax_history",
    "outputs_grad_scale",
    "outputs_grad_amax_history",
)
BITS = {"int8": 8, "int4": 4, "float8": 8}


@dataclass(frozen=True)
class QuantInfo:
    """What one variable of a quantized layer is (``Variable.quant``).

    ``role``: ``weight`` (the stored integers, or float8's float kernel), ``scale``, ``zero``,
    ``g_idx``, or ``state`` (float8 scales and amax histories). ``shape`` is the float weight's
    shape as Keras dequantizes it (for EinsumDense int4 the 2-D ``(contracted, other)`` view; the
    float kernel has the same values in C order); None where unknown."""

    mode: str
    role: str
    weight: str
    layout: str
    block_size: int | None = None
    shape: tuple[int, ...] | None = None
    einsum: tuple[str, str] | None = None  # (kernel spec, output spec) of an EinsumDense

    @property
    def bits(self) -> int:
        return BITS[self.mode]

    @property
    def float_shape(self) -> tuple[int, ...]:
        """``shape``, or ValueError where the file does not tell it."""
        if self.shape is None:
            raise ValueError(f"the float shape of this {self.mode} {self.role} is unknown")
        return self.shape

    def describe(self) -> str:
        """One line for tables: ``int4 sub-channel/128 weight -> float (96, 16)``."""
        kind = self.mode
        if self.mode == "int4":
            kind += f" sub-channel/{self.block_size}" if self.block_size else " per-channel"
        if self.role == "weight":
            if self.mode == "float8":
                return f"{kind} weight (stored in float)"
            shape = f" {tuple(self.shape)}" if self.shape is not None else ""
            return f"{kind} weight ({self.bits}-bit) -> float{shape}"
        return f"{kind} {self.role} of {self.weight}"


def annotate(
    class_name: str | None, config: dict, variables: list[tuple[str, tuple[int, ...]]]
) -> list[QuantInfo | None]:
    """QuantInfo (or None) for each (name, stored shape) of one layer, from its class and config
    (the dtype policy ``int8_from_float32``, ``int4/128_from_float32``... and
    ``quantization_config``). All None for a float layer, or when the variables are not what
    Keras writes for that mode (then nothing is dequantized)."""
    none: list[QuantInfo | None] = [None] * len(variables)
    if class_name not in _WEIGHTS or not isinstance(config, dict):
        return none
    try:
        mode, sub_channel = _quantization(config)
    except _Unnamed:
        return none
    if mode is None:
        return none
    weight, layout = _WEIGHTS[class_name]
    shapes = dict(variables)
    if weight not in shapes:
        return none
    block = _block_size(config) if mode == "int4" and sub_channel else None
    einsum = _einsum_specs(config.get("equation")) if layout == "einsum" else None
    if layout == "einsum" and einsum is None:
        return none
    roles = {weight: "weight"}
    if mode == "float8":
        roles.update((n, "state") for n in FLOAT8_STATE if n in shapes)
    else:
        roles[f"{weight}_scale"] = "scale"
        if block:
            roles[f"{weight}_zero"] = "zero"
            roles["g_idx"] = "g_idx"
    if any(n not in shapes for n in roles):
        return none
    shape = _float_shape(mode, layout, config, shapes[weight], shapes.get(f"{weight}_scale"))
    if mode != "float8" and shape is None:
        return none
    out: list[QuantInfo | None] = []
    for name, _shape in variables:
        role = roles.get(name)
        out.append(None if role is None else QuantInfo(mode, role, weight, layout, block, shape, einsum))
    return out


def _block_size(config: dict) -> int | None:
    """The int4 block size: ``quantization_config.config.block_size`` (Keras's default 128), or
    the ``int4/<B>`` of the dtype policy."""
    q = config.get("quantization_config")
    if isinstance(q, dict) and isinstance(q.get("config"), dict) and "block_size" in q["config"]:
        b = q["config"]["block_size"]
    else:
        m = re.search(r"int4/(-?\d+)", str(config.get("dtype")))
        b = int(m.group(1)) if m else 128
    return b if isinstance(b, int) and not isinstance(b, bool) and b > 0 else None


def _einsum_specs(equation) -> tuple[str, str] | None:
    """(kernel spec, output spec) of an EinsumDense equation, ellipses dropped (they never name
    a kernel axis)."""
    if not isinstance(equation, str):
        return None
    m = re.fullmatch(
        r"(?:\.\.\.)?([a-zA-Z]*)(?:\.\.\.)?,([a-zA-Z]+)->(?:\.\.\.)?([a-zA-Z]+)(?:\.\.\.)?", equation.replace(" ", "")
    )
    if m is None or len(set(m.group(2))) != len(m.group(2)):
        return None
    return m.group(2), m.group(3)


def _float_shape(mode, layout, config, stored, scale) -> tuple[int, ...] | None:
    """The float weight's shape, from the stored shapes (and ``units``/``output_dim``)."""
    stored = tuple(stored)
    if mode in ("int8", "float8"):
        return stored
    if len(stored) != 2 or scale is None or not scale:
        return None
    if layout == "embedding":
        cols = config.get("output_dim")
    else:
        cols = scale[-1]
    if not isinstance(cols, int) or (cols + 1) // 2 != stored[1]:
        return None
    return (stored[0], cols)


# -- dequantization ------------------------------------------------------------------------------


def unpack_int4(packed: np.ndarray, orig_len: int) -> np.ndarray:
    """keras.quantizers.unpack_int4 along the last axis: each int8 byte holds two signed 4-bit
    values, the low nibble first; the padding of an odd length is dropped."""
    p = np.asarray(packed).astype(np.uint8, copy=False)
    low = (p & 0x0F).astype(np.int8)
    high = (p >> 4).astype(np.int8)
    low = (low ^ 8) - 8
    high = (high ^ 8) - 8
    out = np.stack([low, high], axis=-1).reshape(*p.shape[:-1], p.shape[-1] * 2)
    return out[..., :orig_len]


def pack_int4(values: np.ndarray) -> np.ndarray:
    """The inverse of :func:`unpack_int4` (keras.quantizers.pack_int4 along the last axis)."""
    v = np.asarray(values, np.int8)
    if v.shape[-1] % 2:
        v = np.concatenate([v, np.zeros((*v.shape[:-1], 1), np.int8)], axis=-1)
    u = v.astype(np.uint8) & 0x0F
    return (u[..., 0::2] | (u[..., 1::2] << 4)).astype(np.int8)


def group_index(g_idx: np.ndarray, n_groups: int) -> np.ndarray:
    """``g_idx`` (float32 in the file) as group numbers; ValueError unless each is an integer in
    [0, n_groups)."""
    g = np.asarray(g_idx)
    gi = g.astype(np.int64)
    if g.ndim != 1 or not np.array_equal(gi, g) or (gi.size and (gi.min() < 0 or gi.max() >= n_groups)):
        raise ValueError(f"g_idx holds values that are not group numbers in [0, {n_groups})")
    return gi


def einsum_scale(scale: np.ndarray, kernel_shape: tuple[int, ...], specs: tuple[str, str]) -> np.ndarray:
    """An int8 EinsumDense ``kernel_scale`` laid out to broadcast against the kernel
    (``EinsumDense._adjust_scale_for_dequant``): its values follow the kernel's non-contracted
    axes in the output's axis order; the contracted axes are 1."""
    wspec, ospec = specs
    if len(wspec) != len(kernel_shape):
        raise ValueError(f"equation kernel spec {wspec!r} does not fit kernel shape {kernel_shape}")
    kept = sorted((ospec.index(c), i) for i, c in enumerate(wspec) if c in ospec)
    axes = [i for _, i in kept]
    s = np.asarray(scale).reshape([kernel_shape[i] for i in axes])
    s = np.transpose(s, np.argsort(axes))  # into the kernel's order of those axes
    return s.reshape([d if i in axes else 1 for i, d in enumerate(kernel_shape)])


def dequantize_rows(info: QuantInfo, q: np.ndarray, row0: int, aux: dict[str, np.ndarray]) -> np.ndarray:
    """Float32 values of rows ``row0 : row0 + len(q)`` of the weight, as Keras computes them, from
    the stored rows ``q`` (for int4 still packed) and the layer's other variables ``aux``
    (``scale``, ``zero``, ``g_idx``; the scale already laid out by :func:`einsum_scale` for an
    int8 EinsumDense). Keras dequantizes in the compute dtype, float32: so does this."""
    scale = np.asarray(aux["scale"], np.float32)
    rows = slice(row0, row0 + q.shape[0])
    if info.mode == "int4":
        q = unpack_int4(q, info.float_shape[1])
    qf = q.astype(np.float32)
    if info.mode == "int8" and info.layout == "einsum":
        return qf / (scale if scale.shape[0] == 1 else scale[rows])
    if info.layout == "embedding":
        if info.mode == "int4" and info.block_size:
            g = aux["g_idx"]  # groups of columns
            return (qf - aux["zero"][rows][:, g].astype(np.float32)) * scale[rows][:, g]
        return qf / scale[rows][:, None]
    # dense, and the 2-D view of an int4 EinsumDense: groups of rows, a scale per column
    if info.mode == "int4" and info.block_size:
        g = aux["g_idx"][rows]
        return (qf - aux["zero"][g].astype(np.float32)) * scale[g]
    return qf / scale


def check_aux(info: QuantInfo, stored: tuple[int, ...], aux_shapes: dict[str, tuple[int, ...]]) -> None:
    """ValueError unless the scale/zero/g_idx shapes are those Keras writes for ``info``."""
    rows, cols = info.float_shape[0], info.float_shape[-1]
    want: dict[str, tuple] = {}
    if info.mode == "int8":
        if info.layout == "dense":
            want["scale"] = (stored[-1],)
        elif info.layout == "embedding":
            want["scale"] = (stored[0],)
    elif info.mode == "int4":
        b = info.block_size
        if info.layout == "embedding":
            want["scale"] = (rows, math.ceil(cols / b)) if b else (rows,)
            if b:
                want["zero"], want["g_idx"] = want["scale"], (cols,)
        else:
            want["scale"] = (math.ceil(rows / b), cols) if b else (cols,)
            if b:
                want["zero"], want["g_idx"] = want["scale"], (rows,)
    for role, shape in want.items():
        if tuple(aux_shapes.get(role, ())) != shape:
            raise ValueError(f"{info.weight} {role} has shape {aux_shapes.get(role)}, Keras writes {shape}")
