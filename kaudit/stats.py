"""Streamed statistics: one variable (``summarize``) and one aligned pair (``compare_pair``).

Values arrive in flat blocks (``Checkpoint.iter_blocks``), so memory is bounded by the block,
never by the variable. Accumulators are float64. Definitions (docs/metrics.md):

* ``max_abs`` = max |a - b|; ``mean_abs`` = mean |a - b|; ``rms`` = sqrt(mean (a - b)^2)
* ``max_rel`` = max |a - b| / |b| over elements with b != 0 (inf where b == 0 and a != b)
* ``rel_l2`` = ||a - b|| / ||a||; ``cosine`` = <a, b> / (||a|| ||b||) (over finite elements)
* an element "exceeds" when not isclose(a, b): |a - b| > atol + rtol * |b| (numpy's rule, b from
  the second file); NaN equals NaN at the same place unless ``equal_nan=False``; -0.0 == 0.0;
  +inf == +inf.
* integer and bool pairs compare exactly: ``max_abs`` is an exact Python int (|int64 min - int64
  max| = 2**64 - 1 included) and an element exceeds when |a - b| > floor(atol + rtol * |b|); with
  a 64-bit side in integer arithmetic, else in float64, which holds those values exactly. Their
  sums, norms and ratios are float statistics.
* one NaN rule on every path: with ``equal_nan=False`` a NaN fails even where the two files hold
  the same bytes (the byte-identity shortcut is taken only when no NaN can be at stake).

Floating-point warnings (a signalling NaN widened to float64, overflowing squares) are silenced
here: every such value is counted and reported, never printed by numpy.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from . import kernels
from .checkpoint import DEFAULT_BLOCK_ELEMS, Checkpoint, Variable
from .progress import beat


@dataclass(frozen=True)
class Summary:
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    nan: int
    inf: int
    zeros: int
    l2: float | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _chunks(blocks) -> Iterator[np.ndarray]:
    """Flat blocks cut into cache-sized chunks (bool as uint8)."""
    for block in blocks:
        x = np.asarray(block).reshape(-1)
        if x.dtype.kind == "b":
            x = x.astype(np.uint8)
        if x.size <= CHUNK_ELEMS:
            yield x
        else:
            for start in range(0, x.size, CHUNK_ELEMS):
                yield x[start : start + CHUNK_ELEMS]


def summarize(ckpt: Checkpoint, var: Variable, block_elems: int = DEFAULT_BLOCK_ELEMS) -> Summary:
    """min/max/mean/std over the finite values, with NaN/Inf/zero counts, in one streamed pass."""
    with np.errstate(all="ignore"):
        return _summarize(ckpt, var, block_elems)


def _summarize(ckpt: Checkpoint, var: Variable, block_elems: int) -> Summary:
    n = 0
    mean = 0.0
    m2 = 0.0
    lo, hi = math.inf, -math.inf
    nan = inf = zeros = 0
    sumsq = 0.0
    for x in _chunks(ckpt.iter_blocks(var, block_elems)):
        zeros += int(x.size - np.count_nonzero(x))
        if x.size == 0:
            continue
        x64 = x.astype(np.float64, copy=False)
        total = float(x64.sum())
        if x.dtype.kind == "f" and not math.isfinite(total):  # NaN/inf (or an overflowing sum)
            finite = np.isfinite(x)
            if not finite.all():
                nan += int(np.isnan(x).sum())
                inf += int(np.isinf(x).sum())
                x64 = x64[finite]
            if x64.size == 0:
                continue
            total = float(x64.sum())
        bn = x64.size
        bmean = total / bn  # == x64.mean()
        dev = x64 - bmean
        bm2 = _dot(dev, dev)
        sumsq += _dot(x64, x64)
        lo = min(lo, float(x64.min()))
        hi = max(hi, float(x64.max()))
        # Chan et al. parallel merge of (n, mean, M2)
        delta = bmean - mean
        tot = n + bn
        mean += delta * bn / tot
        m2 += bm2 + delta * delta * n * bn / tot
        n = tot
    if n == 0:
        return Summary(None, None, None, None, nan, inf, zeros, None)
    return Summary(lo, hi, mean, math.sqrt(m2 / n), nan, inf, zeros, math.sqrt(sumsq))


@dataclass
class PairStats:
    """Accumulated comparison of two same-shape tensors."""

    size: int = 0
    identical: bool = True  # bit for bit (same dtype only)
    max_abs: float | int = 0.0  # an exact int for integer and bool pairs
    argmax: int | None = None
    sum_abs: float = 0.0
    sum_sq: float = 0.0
    max_rel: float = 0.0
    n_exceed: int = 0
    n_unequal: int = 0
    nan_a: int = 0
    nan_b: int = 0
    inf_a: int = 0
    inf_b: int = 0
    norm_a2: float = 0.0
    norm_b2: float = 0.0
    dot: float = 0.0
    extra: dict = field(default_factory=dict)

    # derived -----------------------------------------------------------------------------
    @property
    def mean_abs(self) -> float:
        return self.sum_abs / self.size if self.size else 0.0

    @property
    def rms(self) -> float:
        return math.sqrt(self.sum_sq / self.size) if self.size else 0.0

    @property
    def rel_l2(self) -> float:
        if self.sum_sq == 0.0:
            return 0.0
        return math.sqrt(self.sum_sq) / math.sqrt(self.norm_a2) if self.norm_a2 > 0 else math.inf

    @property
    def cosine(self) -> float | None:
        if self.norm_a2 == 0.0 and self.norm_b2 == 0.0:
            return 1.0
        if self.norm_a2 == 0.0 or self.norm_b2 == 0.0:
            return None
        return max(-1.0, min(1.0, self.dot / math.sqrt(self.norm_a2 * self.norm_b2)))

    @property
    def frac_exceed(self) -> float:
        return self.n_exceed / self.size if self.size else 0.0


def _as_f64(x: np.ndarray) -> np.ndarray:
    if x.dtype.kind == "b":
        x = x.astype(np.uint8)
    return x.astype(np.float64, copy=False)


#: Elements processed at a time: the float64 temporaries of a chunk stay in the CPU cache
#: (64 Ki elements = 512 KiB each; measured in docs/performance.md).
CHUNK_ELEMS = 1 << 16


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    """<x, y> in float64 with numpy's own SIMD loop. Not BLAS: OpenBLAS spreads every call over
    its thread pool, which is slower for cache-sized chunks and stalls badly when the cores are
    busy (two diff workers, or another process): 5-50x slower in docs/performance.md."""
    return float(np.einsum("i,i->", x, y))


def accumulate(
    st: PairStats, a: np.ndarray, b: np.ndarray, offset: int, atol: float, rtol: float, equal_nan: bool
) -> None:
    """Fold one pair of flat blocks (same length) into ``st``."""
    with np.errstate(all="ignore"):
        n = a.size
        ints = a.dtype.kind in "biu" and b.dtype.kind in "biu"
        # up to 32 bits, float64 holds every value and difference exactly: the float path is exact
        wide = ints and max(a.dtype.itemsize, b.dtype.itemsize) > 4
        int8 = a.dtype == np.int8 and b.dtype == np.int8  # quantized kernels: exact in small integers
        for s in range(0, n, CHUNK_ELEMS) if n > CHUNK_ELEMS else (0,):
            ca, cb = (a[s : s + CHUNK_ELEMS], b[s : s + CHUNK_ELEMS]) if n > CHUNK_ELEMS else (a, b)
            if wide:
                _accumulate_int(st, ca, cb, offset + s, atol, rtol)
                continue
            if int8 and ca.size:
                _accumulate_int8(st, ca, cb, offset + s, atol, rtol)
                continue
            a64 = _as_f64(ca)
            b64 = _as_f64(cb)
            if ca.size and _accumulate_finite(st, a64, b64, offset + s, atol, rtol):
                continue
            _accumulate_general(st, a64, b64, offset + s, atol, rtol, equal_nan)
        if ints:
            st.max_abs = int(st.max_abs)  # exact: an integer below 2**64 (or 2**33 on the float path)


def _exact_ints(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two integer or bool blocks as arrays whose order and difference are exact: both uint64,
    both int64, or (uint64 against a signed type, whose difference can exceed 64 bits) both
    arrays of Python ints."""
    if a.dtype.kind == "b":
        a = a.view(np.uint8)
    if b.dtype.kind == "b":
        b = b.view(np.uint8)
    if a.dtype.kind == "u" and b.dtype.kind == "u":
        return a.astype(np.uint64, copy=False), b.astype(np.uint64, copy=False)
    if (a.dtype.kind == "u" and a.dtype.itemsize == 8) or (b.dtype.kind == "u" and b.dtype.itemsize == 8):
        return a.astype(object), b.astype(object)
    return a.astype(np.int64, copy=False), b.astype(np.int64, copy=False)


def _accumulate_int(st: PairStats, a: np.ndarray, b: np.ndarray, offset: int, atol: float, rtol: float) -> None:
    """An integer or bool chunk with a 64-bit side, exactly: |a - b| without float rounding or
    integer overflow (float64 would call 2**53 and 2**53 + 1 equal)."""
    a, b = _exact_ints(a, b)
    n = a.size
    st.size += n
    if st.argmax is None:
        st.max_abs = 0  # an int from the start: no difference yet
    if n == 0:
        return
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    st.norm_a2 += _dot(a64, a64)
    st.norm_b2 += _dot(b64, b64)
    st.dot += _dot(a64, b64)
    if a.dtype == object:
        d = np.abs(a - b)
    else:  # |a - b| < 2**64: the difference modulo 2**64 of the larger minus the smaller is exact
        d = np.subtract(a.view(np.uint64), b.view(np.uint64))
        np.negative(d, out=d, where=a < b)  # modulo 2**64: b - a
    n_diff = int(np.count_nonzero(d))
    st.n_unequal += n_diff
    if n_diff == 0:
        return
    i = int(np.argmax(d))
    m = int(d[i])
    if m > st.max_abs or st.argmax is None:
        st.max_abs = m
        st.argmax = offset + i
    df = d.astype(np.float64)
    st.sum_abs += float(df.sum())
    st.sum_sq += _dot(df, df)
    if rtol == 0.0:
        limit = math.floor(atol)  # |a - b| <= atol  <=>  |a - b| <= floor(atol) for integers
        if limit < 2**64:
            st.n_exceed += int(np.count_nonzero(d > (limit if a.dtype == object else np.uint64(limit))))
    else:
        t = np.floor(atol + rtol * np.abs(b64))
        if a.dtype == object:
            over = d > t  # Python compares int and float exactly
        else:
            big = t >= 2.0**64
            over = ~big & (d > np.where(big, 0.0, t).astype(np.uint64))
        st.n_exceed += int(np.count_nonzero(over))
    mask = d != 0
    rel = df[mask] / np.abs(b64[mask])  # inf where b == 0
    st.max_rel = max(st.max_rel, float(np.fmax.reduce(rel)))


def _accumulate_int8(st: PairStats, a: np.ndarray, b: np.ndarray, offset: int, atol: float, rtol: float) -> None:
    """An int8 chunk (at most CHUNK_ELEMS values), with the results of the float64 path bit for bit
    and about 3x faster: every statistic of int8 values is an integer small enough to be computed
    exactly in int16/int32 (|a - b| <= 255; each of sum a^2, sum b^2, |sum ab| <= n * 2**14 < 2**31),
    and the float64 path's sums of such integers are exact too. sum (a - b)^2 is
    sum a^2 + sum b^2 - 2 sum ab, exactly. The largest |a - b| / |b| is found among float32
    quotients and taken in float64 from the elements reaching their maximum (rounding is monotonic:
    the largest exact quotient rounds to that maximum)."""
    n = a.size
    if n > CHUNK_ELEMS:
        raise ValueError("int8 chunk larger than CHUNK_ELEMS")  # the int32 sums could overflow
    na2 = int(np.einsum("i,i->", a, a, dtype=np.int32))
    nb2 = int(np.einsum("i,i->", b, b, dtype=np.int32))
    ab = int(np.einsum("i,i->", a, b, dtype=np.int32))
    d = np.subtract(a, b, dtype=np.int16)
    np.abs(d, out=d)
    st.size += n
    st.norm_a2 += float(na2)
    st.norm_b2 += float(nb2)
    st.dot += float(ab)
    st.n_unequal += n - int(np.count_nonzero(d == 0))
    i = int(np.argmax(d))
    m = float(d[i])
    if m > st.max_abs or (st.argmax is None and m > 0):
        st.max_abs = m
        st.argmax = offset + i
    if m == 0.0 and atol >= 0.0 and rtol >= 0.0:
        return  # equal chunk: no sum, no exceedance, no relative change
    st.sum_abs += float(int(np.add.reduce(d, dtype=np.int32)))
    st.sum_sq += float(na2 + nb2 - 2 * ab)
    if rtol == 0.0:
        st.n_exceed += n - int(np.count_nonzero(d <= atol))  # compared in float64, as on the float path
    else:
        t = np.abs(b.astype(np.float64))
        t *= rtol
        t += atol
        st.n_exceed += n - int(np.count_nonzero(d <= t))
    absb = np.abs(b.astype(np.float32))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.divide(d, absb, dtype=np.float32)  # inf where b == 0 != a; NaN where a == b == 0
    top = float(np.fmax.reduce(q))
    if math.isnan(top):
        return  # every quotient undefined: a == b == 0 throughout (max_rel unchanged, as fmax gives)
    at = np.flatnonzero(q == np.float32(top))  # inf where b == 0 != a: inf again in float64
    r = float(np.max(d[at].astype(np.float64) / np.abs(b[at].astype(np.float64))))
    if r > st.max_rel:
        st.max_rel = r


def _accumulate_finite(st: PairStats, a64: np.ndarray, b64: np.ndarray, offset: int, atol: float, rtol: float) -> bool:
    """The common case, in few passes: every value finite (and no square overflows float64).
    Returns False, having changed nothing, when the chunk needs :func:`_accumulate_general`.
    Same definitions: for finite values a == b exactly when a - b == 0 (IEEE gradual underflow),
    so ``n_unequal`` counts the non-zero differences. ``a64``/``b64`` may alias the caller's
    arrays: they are never written."""
    na2 = _dot(a64, a64)
    nb2 = _dot(b64, b64)
    if not (math.isfinite(na2) and math.isfinite(nb2)):
        return False
    n = a64.size
    d = np.subtract(a64, b64)
    np.abs(d, out=d)
    absb = np.abs(b64)
    st.size += n
    st.norm_a2 += na2
    st.norm_b2 += nb2
    st.dot += _dot(a64, b64)
    st.n_unequal += int(np.count_nonzero(d))
    i = int(np.argmax(d))
    m = float(d[i])
    if m > st.max_abs or (st.argmax is None and m > 0):
        st.max_abs = m
        st.argmax = offset + i
    if m == 0.0 and atol >= 0.0 and rtol >= 0.0:
        return True  # equal chunk: no sum, no exceedance, no relative change
    st.sum_abs += float(d.sum())
    st.sum_sq += _dot(d, d)
    if rtol == 0.0:
        st.n_exceed += n - int(np.count_nonzero(d <= atol))
    else:
        t = np.multiply(absb, rtol)
        t += atol
        st.n_exceed += n - int(np.count_nonzero(d <= t))
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(d, absb, out=absb)  # inf where b == 0 != a; NaN where a == b == 0 (left out)
    r = float(absb.max())
    if math.isnan(r):
        r = float(np.fmax.reduce(absb))
    if r > st.max_rel:
        st.max_rel = r
    return True


def _accumulate_general(
    st: PairStats, a64: np.ndarray, b64: np.ndarray, offset: int, atol: float, rtol: float, equal_nan: bool
) -> None:
    """Any values (NaN, inf, overflow): masks per element."""
    n = a64.size
    st.size += n
    nan_a = np.isnan(a64)
    nan_b = np.isnan(b64)
    any_nonfinite = False
    if nan_a.any() or nan_b.any():
        any_nonfinite = True
        st.nan_a += int(nan_a.sum())
        st.nan_b += int(nan_b.sum())
    inf_a = np.isinf(a64)
    inf_b = np.isinf(b64)
    if inf_a.any() or inf_b.any():
        any_nonfinite = True
        st.inf_a += int(inf_a.sum())
        st.inf_b += int(inf_b.sum())
    with np.errstate(invalid="ignore", over="ignore"):
        eq = a64 == b64  # -0.0 == 0.0, inf == inf
        if any_nonfinite:
            if equal_nan:
                eq |= nan_a & nan_b
            absd = np.abs(a64 - b64)
            absd[eq] = 0.0
            absd[np.isnan(absd)] = np.inf  # NaN against a number, or inf against -inf/number
            finite = ~(nan_a | nan_b | inf_a | inf_b)
        else:
            absd = np.abs(a64 - b64)
            finite = None
        absb = np.abs(b64)
        close = absd <= atol + rtol * absb
        if finite is not None:  # numpy's isclose: non-finite values are close only when equal
            close = eq | (close & finite)
        st.n_exceed += int(n - np.count_nonzero(close))
        st.n_unequal += int(n - np.count_nonzero(eq))
        if n:
            i = int(np.argmax(absd))
            m = float(absd[i])
            if m > st.max_abs or (st.argmax is None and m > 0):
                st.max_abs = m
                st.argmax = offset + i
        diff_mask = absd > 0
        if diff_mask.any():
            with np.errstate(divide="ignore"):
                rel = absd[diff_mask] / absb[diff_mask]
            # fmax skips the undefined ratios (b NaN, inf against inf): a plain max would let one
            # NaN hide the whole block's values, so the result depended on the block size
            r = float(np.fmax.reduce(rel))
            if r > st.max_rel:
                st.max_rel = r
        if finite is None:
            st.sum_abs += float(absd.sum())
            st.sum_sq += _dot(absd, absd)
            st.norm_a2 += _dot(a64, a64)
            st.norm_b2 += _dot(b64, b64)
            st.dot += _dot(a64, b64)
        else:
            fa, fb, fd = a64[finite], b64[finite], absd[finite]
            st.sum_abs += float(fd.sum())
            st.sum_sq += _dot(fd, fd)
            st.norm_a2 += _dot(fa, fa)
            st.norm_b2 += _dot(fb, fb)
            st.dot += _dot(fa, fb)
            if (absd[~finite] == np.inf).any():
                st.sum_abs = math.inf
                st.sum_sq = math.inf


def compare_pair(
    ca: Checkpoint,
    va: Variable,
    cb: Checkpoint,
    vb: Variable,
    *,
    atol: float,
    rtol: float,
    equal_nan: bool = True,
    block_elems: int = DEFAULT_BLOCK_ELEMS,
    compiled: bool = False,
) -> PairStats:
    """Stream two same-shape variables. Bit-identical pairs cost one comparison pass; with
    ``equal_nan=False``, identical bytes holding a NaN are compared element by element (NaN != NaN).
    ``compiled``: a changed pair of :data:`kernels.MIN_ELEMS` values or more may take the compiled
    kernels (:func:`kernels.worth_loading` says when a diff should let them)."""
    same_dtype = va.dtype == vb.dtype
    nan_rule = not equal_nan and may_hold_nan(va.dtype)  # identical bytes alone do not pass
    if va.params <= block_elems and vb.params <= block_elems:
        # one block each: read once, for the identity test and (if needed) the statistics
        if same_dtype and not nan_rule:
            raw_a = _raw(ca, va, block_elems)
            if raw_a is not None:
                raw_b = _raw(cb, vb, block_elems)
                if raw_b is not None and raw_a == raw_b:  # same stored type, same bytes
                    return _identical(len(raw_a[1]) // raw_a[0].itemsize)
        xa = ca.read(va).reshape(-1)
        xb = cb.read(vb).reshape(-1)
        if xa.size != xb.size:
            raise ValueError(f"{va.path}: {xa.size} values against {xb.size}")
        if same_dtype and _bytes_equal(xa, xb) and not (nan_rule and _has_nan(xa)):
            return PairStats(size=va.params, identical=True)
        st = PairStats(identical=False)
        accumulate(st, xa, xb, 0, atol, rtol, equal_nan)
        return st
    if same_dtype:
        identical = True
        # the identity pass on the stored words where both stores give them (bfloat16 not widened:
        # half the bytes to compare); the NaN rule needs values
        sa = None if nan_rule else ca.iter_stored_blocks(va, block_elems)
        sb = None if sa is None else cb.iter_stored_blocks(vb, block_elems)
        if sa is None or sb is None:
            sa, sb = ca.iter_blocks(va, block_elems), cb.iter_blocks(vb, block_elems)
        for xa, xb in paired_blocks(sa, sb):
            if not _bytes_equal(xa, xb) or (nan_rule and _has_nan(xa)):
                identical = False
                break
        if identical:
            st = PairStats(size=va.params, identical=True)
            return st
    st = PairStats(identical=False)
    offset = 0
    k = kernels.for_pair(va.params) if compiled else None  # None below kernels.MIN_ELEMS or without numba
    for xa, xb in paired_blocks(ca.iter_blocks(va, block_elems), cb.iter_blocks(vb, block_elems)):
        if k is None or not accumulate_compiled(st, k, xa, xb, offset, atol, rtol):
            accumulate(st, xa, xb, offset, atol, rtol, equal_nan)
        offset += xa.size
    return st


def accumulate_compiled(st: PairStats, k, a: np.ndarray, b: np.ndarray, offset: int, atol: float, rtol: float) -> bool:
    """Fold one pair of flat blocks into ``st`` with the compiled kernels (:mod:`kaudit.kernels`,
    one pass); False, ``st`` unchanged, where :func:`accumulate` must take the block: other dtypes,
    or a value that is not finite (the NaN and inf rules live in the numpy path only)."""
    n = a.size
    if n == 0 or kernels.load() is not k:  # the kernels were given up since (kernels.give_up)
        return False
    int8 = a.dtype == np.int8 and b.dtype == np.int8
    if not int8:
        if a.dtype.kind != "f" or b.dtype.kind != "f":
            return False
        if a.dtype != b.dtype or a.dtype.itemsize < 4:  # float16, or a mixed pair: compared in float64 (exact)
            a, b = a.astype(np.float64), b.astype(np.float64)
    try:
        if int8:
            na2, nb2, ab, sabs, ssq, m, first, nun, nex, mrel = k.int8_block(a, b, kernels.int8_limits(atol, rtol))
        else:
            finite, na2, nb2, ab, sabs, ssq, m, nun, nex, mrel = k.float_block(a, b, atol)
            if not finite:
                return False
            if rtol != 0.0:
                nex = k.float_exceed(a, b, atol, rtol)
            first = None
        better = m > st.max_abs or (st.argmax is None and m > 0)  # this block holds the first maximum
        if better and first is None:
            first = k.float_first(a, b, m)
    except Exception as e:  # a kernel that failed (numba could not compile this layout...): numpy from here on
        kernels.give_up(e)
        return False
    st.size += n
    st.norm_a2 += float(na2)  # int8: exact integers, as on the numpy path
    st.norm_b2 += float(nb2)
    st.dot += float(ab)
    st.sum_abs += float(sabs)
    st.sum_sq += float(ssq)
    st.n_unequal += int(nun)
    st.n_exceed += int(nex)
    if better:
        st.max_abs = m
        st.argmax = offset + int(first)
    st.max_abs = int(st.max_abs) if int8 else float(st.max_abs)
    st.max_rel = max(st.max_rel, float(mrel))
    return True


def paired_blocks(ita: Iterator[np.ndarray], itb: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs of flat blocks of equal length covering two same-size variables, whatever block sizes
    each side's storage gives (contiguous, chunked, compressed, TF shards): a block is cut where the
    other side's ends, without copying. Blocks already aligned pass through as they are."""
    ra = rb = _EMPTY
    while True:
        while ra.size == 0:
            nxt = next(ita, None)
            if nxt is None:
                break
            ra = nxt.reshape(-1)
        while rb.size == 0:
            nxt = next(itb, None)
            if nxt is None:
                break
            rb = nxt.reshape(-1)
        if ra.size == 0 or rb.size == 0:
            if ra.size or rb.size:
                raise ValueError("the two sides' blocks cover different numbers of elements")
            return
        n = min(ra.size, rb.size)
        yield ra[:n], rb[:n]
        ra, rb = ra[n:], rb[n:]


_EMPTY = np.empty(0)


def may_hold_nan(dtype: str) -> bool:
    """Whether values of this dtype (kaudit's dtype names) can be NaN."""
    return dtype.startswith(("float", "bfloat", "complex"))


def _has_nan(x: np.ndarray) -> bool:
    return x.dtype.kind in "fc" and bool(np.isnan(x).any())


_FRESH = PairStats().__dict__


def _identical(size: int) -> PairStats:
    """``PairStats(size=size, identical=True)`` at a third of the dataclass's cost."""
    st = PairStats.__new__(PairStats)
    st.__dict__.update(_FRESH, size=size, extra={})
    return st


def _raw(ckpt: Checkpoint, var: Variable, block_elems: int):
    get = getattr(ckpt.store, "raw_bytes", None)
    if get is None:
        return None
    beat()  # progress for the stall watchdog, as Checkpoint.read gives
    return get(var, block_elems * 8)


def digest(ckpt: Checkpoint, var: Variable, block_elems: int = DEFAULT_BLOCK_ELEMS) -> str:
    """sha256 of the variable's values in C order, little-endian (bfloat16 widened to float32
    first, so the same values hash the same in every format). Stores that know it already
    (snapshots) say so."""
    known = getattr(ckpt.store, "digest", None)
    if known is not None:
        return known(var)
    h = hashlib.sha256()
    for chunk in value_bytes(ckpt, var, block_elems):
        h.update(chunk)
    return h.hexdigest()


def value_bytes(ckpt: Checkpoint, var: Variable, block_elems: int = DEFAULT_BLOCK_ELEMS) -> Iterator[bytes]:
    """The variable's values as the bytes :func:`digest` hashes: C order, little-endian, bfloat16
    widened to float32 (what ``kaudit snapshot --values`` stores)."""
    for block in ckpt.iter_blocks(var, block_elems):
        if block.dtype.byteorder == ">" or (block.dtype.byteorder == "=" and sys.byteorder == "big"):
            block = block.astype(block.dtype.newbyteorder("<"))
        yield np.ascontiguousarray(block).tobytes()


def _bytes_equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype.itemsize != b.dtype.itemsize:
        return False
    # the same values stored in other byte orders are other bytes: compare them in this machine's
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if not b.dtype.isnative:
        b = b.astype(b.dtype.newbyteorder("="))
    a = np.ascontiguousarray(a).reshape(-1)
    b = np.ascontiguousarray(b).reshape(-1)
    word = _WORDS.get(a.dtype.itemsize, np.uint8)  # compare whole elements: 2x faster than bytes
    return bool(np.array_equal(a.view(word), b.view(word)))


_WORDS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
