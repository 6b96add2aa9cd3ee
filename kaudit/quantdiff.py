"""Quantization-aware comparison: a float weight against its quantized counterpart, compared on
the values Keras computes from the stored integers and scales (``kaudit.keras.quantized``).

Which pairs (decided before alignment, :func:`prepare`):

* a layer quantized (int8/int4) on one side whose weight path holds a float weight on the other:
  the quantized side is dequantized, its scale/zero/g_idx are folded into the weight's row (they
  are no ``only_in`` variables: every one of them is used by the comparison);
* float8 against float: the stored float kernels are compared as they are; the float8 scales and
  amax histories (runtime state with no float counterpart) are folded, and a note says so;
* two quantized layers: compared as stored (integers and scales exactly) unless ``dequantize``,
  then both sides dequantized (any modes and block sizes).

Values are streamed in blocks of whole rows: memory stays at a block plus the scales.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .checkpoint import DEFAULT_BLOCK_ELEMS, Checkpoint, Variable
from .errors import CorruptFileError
from .keras import quantized as Q
from .stats import PairStats, accumulate


@dataclass
class Plan:
    """Per side (0 = a, 1 = b): weight path -> the auxiliary variables of its layer by role."""

    dequant: tuple[dict[str, dict[str, Variable]], dict[str, dict[str, Variable]]] = field(
        default_factory=lambda: ({}, {})
    )
    notes: list[str] = field(default_factory=list)

    def applies(self, a: Variable | None, b: Variable | None) -> bool:
        return a is not None and b is not None and (a.path in self.dequant[0] or b.path in self.dequant[1])


def _q(v: Variable) -> Q.QuantInfo:
    """``v.quant`` of a variable known to be quantized."""
    if v.quant is None:
        raise ValueError(f"{v.path} is not part of a quantized layer")
    return v.quant


def _weights(vs: list[Variable]) -> dict[str, Variable]:
    return {v.path: v for v in vs if v.quant is not None and v.quant.role == "weight"}


def prepare(va: list[Variable], vb: list[Variable], dequantize: bool) -> tuple[list[Variable], list[Variable], Plan]:
    """The variables to align (auxiliaries of the weights compared dequantized taken out) and the
    plan."""
    plan = Plan()
    wa, wb = _weights(va), _weights(vb)
    if not wa and not wb:
        return va, vb, plan
    by_path = ({v.path: v for v in va}, {v.path: v for v in vb})
    folded: list[set[str]] = [set(), set()]  # layers whose auxiliaries leave the alignment
    n_state = 0
    for side, weights in ((0, wa), (1, wb)):
        other = by_path[1 - side]
        for path, w in weights.items():
            o = other.get(path)
            if o is None:
                continue
            oq = o.quant if o.quant is not None and o.quant.role == "weight" else None
            if _q(w).mode == "float8":
                if oq is None:  # float8 state has no float counterpart
                    folded[side].add(w.layer)
                    n_state += 1
                continue
            if oq is None or (dequantize and oq.mode != "float8"):
                plan.dequant[side][path] = {}
                folded[side].add(w.layer)
    out = []
    for side, vs in ((0, va), (1, vb)):
        keep = []
        weight_of = {w.layer: p for p, w in (wa, wb)[side].items()}
        for v in vs:
            q = v.quant
            if q is not None and q.role != "weight" and v.layer in folded[side]:
                wp = weight_of.get(v.layer)
                if wp in plan.dequant[side]:
                    plan.dequant[side][wp][q.role] = v
                continue
            keep.append(v)
        out.append(keep)
    for side, name in ((0, "a"), (1, "b")):
        n = len(plan.dequant[side])
        if n:
            modes = sorted({_q((wa, wb)[side][p]).mode for p in plan.dequant[side]})
            plan.notes.append(
                f"{n} quantized weight(s) of {name} ({', '.join(modes)}) compared dequantized, as "
                "Keras computes them; their scales, zero points and group indices are part of that "
                "comparison"
            )
    if n_state:
        plan.notes.append(
            f"{n_state} float8 layer(s) compared on their stored float kernels; their scales and amax "
            "histories (runtime state, no float counterpart) are not compared"
        )
    return out[0], out[1], plan


def describe(plan: Plan, a: Variable, b: Variable) -> str:
    parts = []
    for side, v, name in ((0, a, "a"), (1, b, "b")):
        if v.path in plan.dequant[side]:
            parts.append(f"{name}: {_q(v).describe()}")
    return "dequantized " + "; ".join(parts)


def float_shape(v: Variable, plan: Plan, side: int) -> tuple[int, ...]:
    return _q(v).float_shape if v.path in plan.dequant[side] else v.shape


def same_shape(plan: Plan, a: Variable, b: Variable) -> bool:
    """The float weights have the same shape; an int4 EinsumDense, dequantized in its 2-D view
    of the kernel (a plain reshape), the same number of values."""
    sa, sb = float_shape(a, plan, 0), float_shape(b, plan, 1)
    if sa == sb:
        return True
    flat = any(
        v.path in plan.dequant[i] and _q(v).layout == "einsum" and _q(v).mode == "int4" for i, v in ((0, a), (1, b))
    )
    return flat and math.prod(sa) == math.prod(sb)


def compare(
    ca: Checkpoint,
    a: Variable,
    cb: Checkpoint,
    b: Variable,
    plan: Plan,
    *,
    atol: float,
    rtol: float,
    equal_nan: bool,
    block_elems: int = DEFAULT_BLOCK_ELEMS,
) -> tuple[PairStats, float | None]:
    """Stream the float values of ``a`` and ``b`` (dequantized where the plan says) and compare
    them. Returns the statistics and the signal-to-quantization-noise ratio in dB (the float
    side's energy over the difference's; a's when both are dequantized): inf when equal."""
    sa, sb = float_shape(a, plan, 0), float_shape(b, plan, 1)
    # blocks of whole rows on both sides (an int4 EinsumDense is dequantized in its 2-D view)
    row = math.lcm(max(1, math.prod(sa[1:])), max(1, math.prod(sb[1:])))
    chunk = max(1, block_elems // row) * row
    st = PairStats(identical=False)
    offset = 0
    for xa, xb in zip(_values(ca, a, plan, 0, chunk), _values(cb, b, plan, 1, chunk), strict=True):
        accumulate(st, xa, xb, offset, atol, rtol, equal_nan)
        offset += xa.size
    st.identical = st.n_unequal == 0 and st.nan_a == st.nan_b == 0
    ref = st.norm_a2 if (a.path not in plan.dequant[0] or b.path in plan.dequant[1]) else st.norm_b2
    if st.sum_sq == 0:
        sqnr = math.inf
    elif ref == 0 or not math.isfinite(st.sum_sq):
        sqnr = None
    else:
        sqnr = 10.0 * math.log10(ref / st.sum_sq)
    return st, sqnr


def _rechunk(blocks: Iterator[np.ndarray], n: int) -> Iterator[np.ndarray]:
    """Flat blocks of exactly ``n`` elements (the last one shorter) out of any flat blocks."""
    buf: list[np.ndarray] = []
    have = 0
    for b in blocks:
        b = b.reshape(-1)
        while b.size:
            take = min(n - have, b.size)
            buf.append(b[:take])
            have += take
            b = b[take:]
            if have == n:
                yield buf[0] if len(buf) == 1 else np.concatenate(buf)
                buf, have = [], 0
    if have:
        yield np.concatenate(buf)


def _values(ckpt: Checkpoint, v: Variable, plan: Plan, side: int, chunk: int) -> Iterator[np.ndarray]:
    """Flat float blocks of ``chunk`` elements (whole rows of the float weight)."""
    aux = plan.dequant[side].get(v.path)
    if aux is None:
        yield from _rechunk(ckpt.iter_blocks(v), chunk)
        return
    where = ckpt.file
    try:
        info = _q(v)
        Q.check_aux(info, v.shape, {role: var.shape for role, var in aux.items()})
        params = {role: ckpt.read(var) for role, var in aux.items()}
        if "g_idx" in params:
            n_groups = params["scale"].shape[0 if info.layout != "embedding" else -1]
            params["g_idx"] = Q.group_index(params["g_idx"], n_groups)
        if info.mode == "int8" and info.layout == "einsum":
            if info.einsum is None:
                raise ValueError("an int8 EinsumDense without its equation")
            params["scale"] = Q.einsum_scale(params["scale"], v.shape, info.einsum)
    except ValueError as exc:
        raise CorruptFileError(f"{v.path}: cannot dequantize ({exc})", path=where) from None
    fshape = info.float_shape
    float_row = int(math.prod(fshape[1:])) if len(fshape) > 1 else 1
    stored_row = int(math.prod(v.shape[1:])) if len(v.shape) > 1 else 1
    rows = max(1, chunk // max(float_row, 1))
    r0 = 0
    for block in _rechunk(ckpt.iter_blocks(v), rows * stored_row):
        q = block.reshape(-1, *v.shape[1:])
        yield Q.dequantize_rows(info, q, r0, params).reshape(-1)
        r0 += q.shape[0]


def dequantized(ckpt: Checkpoint, path: str) -> np.ndarray:
    """The float32 values Keras computes from the quantized weight at ``path`` (its layer's scale,
    zero points and group indices), whole, in the weight's float shape."""
    v = ckpt.variable(path)
    if v.quant is None or v.quant.role != "weight" or v.quant.mode == "float8":
        raise ValueError(f"{path} is not a quantized weight")
    plan = Plan()
    plan.dequant[0][path] = {
        x.quant.role: x
        for x in ckpt.all_variables
        if x.layer == v.layer and x.quant is not None and x.quant.role != "weight"
    }
    shape = _q(v).float_shape
    return np.concatenate(list(_values(ckpt, v, plan, 0, max(1, math.prod(shape))))).reshape(shape)
