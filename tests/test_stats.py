"""kaudit.stats against straight numpy: every metric of compare_pair/accumulate/summarize over
random arrays with NaN/inf/-0.0 placements, in any block and chunk size (docs/metrics.md).

The reference implementations below work on whole arrays with plain numpy, following the
definitions in the stats.py docstring; the streamed code must agree exactly on counts, maxima and
argmax, and to rounding on sums (summation order differs with the block size)."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaudit import stats
from kaudit.checkpoint import Checkpoint, Variable
from kaudit.storage import hdf5 as H

# -- a fake in-memory store --------------------------------------------------------------------


class MemStore:
    """Store protocol over numpy arrays keyed by location."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def read(self, var, selection=()):
        return np.array(self.arrays[var.location][selection])

    def iter_blocks(self, var, block_elems):
        flat = self.arrays[var.location].reshape(-1)
        for s in range(0, flat.size, block_elems):
            yield flat[s : s + block_elems]

    def close(self):
        pass


def ckpt_of(arr: np.ndarray, dtype: str | None = None) -> tuple[Checkpoint, Variable]:
    var = Variable(
        path="l/w",
        layer="l",
        layer_class="Dense",
        name="w",
        shape=tuple(arr.shape),
        dtype=dtype or arr.dtype.name,
        trainable=True,
        location="w",
    )
    return Checkpoint(file="mem", format="test", all_variables=(var,), store=MemStore({"w": arr})), var


# -- references: whole arrays, plain numpy -------------------------------------------------------


def f64(x: np.ndarray) -> np.ndarray:
    x = x.reshape(-1)
    return (x.astype(np.uint8) if x.dtype.kind == "b" else x).astype(np.float64)


def reference_pair(a, b, atol, rtol, equal_nan) -> dict:
    a64, b64 = f64(a), f64(b)
    n = a64.size
    nan_a, nan_b = np.isnan(a64), np.isnan(b64)
    inf_a, inf_b = np.isinf(a64), np.isinf(b64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        eq = (a64 == b64) | (equal_nan & nan_a & nan_b)
        absd = np.abs(a64 - b64)
        absd[eq] = 0.0
        absd[np.isnan(absd)] = np.inf
        finite = ~(nan_a | nan_b | inf_a | inf_b)
        close = np.isclose(a64, b64, rtol=rtol, atol=atol, equal_nan=equal_nan)
        mask = absd > 0
        rel = absd[mask] / np.abs(b64[mask])
    fd = absd[finite]
    inf_diff = bool((absd[~finite] == np.inf).any())
    out = {
        "size": n,
        "max_abs": float(absd.max()) if n else 0.0,
        "argmax": int(np.argmax(absd)) if n and absd.max() > 0 else None,
        "sum_abs": math.inf if inf_diff else float(fd.sum()),
        "sum_sq": math.inf if inf_diff else float((fd * fd).sum()),
        "max_rel": float(np.nanmax(rel)) if rel.size and not np.isnan(rel).all() else 0.0,  # undefined ratios skipped
        "n_exceed": int(n - np.count_nonzero(close)),
        "n_unequal": int(n - np.count_nonzero(eq)),
        "nan_a": int(nan_a.sum()),
        "nan_b": int(nan_b.sum()),
        "inf_a": int(inf_a.sum()),
        "inf_b": int(inf_b.sum()),
        "norm_a2": float((a64[finite] ** 2).sum()),
        "norm_b2": float((b64[finite] ** 2).sum()),
        "dot": float((a64[finite] * b64[finite]).sum()),
    }
    return out


EXACT = ("size", "max_abs", "argmax", "max_rel", "n_exceed", "n_unequal", "nan_a", "nan_b", "inf_a", "inf_b")
APPROX = ("sum_abs", "sum_sq", "norm_a2", "norm_b2", "dot")


def close_enough(x: float, y: float) -> bool:
    if math.isinf(x) or math.isinf(y) or math.isnan(x) or math.isnan(y):
        return x == y or (math.isnan(x) and math.isnan(y))
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-300)


def check_pair(st: stats.PairStats, ref: dict) -> None:
    got = st.__dict__
    for k in EXACT:
        assert got[k] == ref[k], (k, got[k], ref[k])
    for k in APPROX:
        assert close_enough(got[k], ref[k]), (k, got[k], ref[k])


def bytes_identical(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


def run_pair(
    a, b, atol=0.0, rtol=0.0, equal_nan=True, block_elems=stats.DEFAULT_BLOCK_ELEMS, dtype=None, compiled=False
):
    ca, va = ckpt_of(a, dtype)
    cb, vb = ckpt_of(b, dtype)
    return stats.compare_pair(
        ca, va, cb, vb, atol=atol, rtol=rtol, equal_nan=equal_nan, block_elems=block_elems, compiled=compiled
    )


# -- strategies --------------------------------------------------------------------------------

SPECIALS = [np.nan, np.inf, -np.inf, -0.0, 0.0]
FLOAT_DTYPES = ["float16", "float32", "float64", "bfloat16"]


def bf16(x: np.ndarray) -> np.ndarray:
    """float32 values that are exactly bfloat16 (what readers hand out after widening)."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
    return u.view(np.float32)


@st.composite
def float_pairs(draw):
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    n = draw(st.integers(1, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    a = rng.standard_normal(n) * scale
    mode = draw(st.sampled_from(["noise", "few", "same", "zeros"]))
    if mode == "noise":
        b = a + rng.standard_normal(n) * scale * draw(st.sampled_from([1e-6, 1e-3, 1.0]))
    elif mode == "few":
        b = a.copy()
        idx = rng.choice(n, size=max(1, n // 5), replace=False)
        b[idx] += rng.standard_normal(idx.size) * scale
    elif mode == "same":
        b = a.copy()
    else:
        a[rng.random(n) < 0.5] = 0.0
        b = a.copy()
        b[rng.random(n) < 0.3] = 0.0
    for arr, k in ((a, draw(st.integers(0, 4))), (b, draw(st.integers(0, 4)))):
        for _ in range(k):
            arr[draw(st.integers(0, n - 1))] = draw(st.sampled_from(SPECIALS))
    if draw(st.booleans()):  # same specials at the same places
        i = draw(st.integers(0, n - 1))
        a[i] = b[i] = draw(st.sampled_from(SPECIALS))
    if dtype == "bfloat16":
        return bf16(a), bf16(b), "bfloat16"
    with np.errstate(over="ignore"):
        return a.astype(dtype), b.astype(dtype), dtype


tolerances = st.tuples(st.sampled_from([0.0, 1e-8, 1e-4, 0.5]), st.sampled_from([0.0, 1e-5, 1e-2, 1.0]))

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- compare_pair -------------------------------------------------------------------------------


@SETTINGS
@given(float_pairs(), tolerances, st.booleans())
def test_compare_pair_matches_numpy(pair, tol, equal_nan):
    a, b, dtype = pair
    atol, rtol = tol
    st_one = run_pair(a, b, atol, rtol, equal_nan, dtype=dtype)
    if bytes_identical(a, b) and (equal_nan or not np.isnan(f64(a)).any()):  # NaN != NaN is one rule
        assert st_one.identical
        assert st_one.size == a.size and st_one.max_abs == 0.0 and st_one.n_exceed == 0
        return
    assert not st_one.identical
    check_pair(st_one, reference_pair(a, b, atol, rtol, equal_nan))


@SETTINGS
@given(float_pairs(), tolerances, st.booleans(), st.sampled_from([1, 2, 7]), st.sampled_from([1, 3, 16]))
def test_block_and_chunk_sizes_agree(pair, tol, equal_nan, block_elems, chunk):
    a, b, dtype = pair
    atol, rtol = tol
    one = run_pair(a, b, atol, rtol, equal_nan, dtype=dtype)
    old = stats.CHUNK_ELEMS
    stats.CHUNK_ELEMS = chunk
    try:
        small = run_pair(a, b, atol, rtol, equal_nan, block_elems=block_elems, dtype=dtype)
        chunked_only = run_pair(a, b, atol, rtol, equal_nan, dtype=dtype)
    finally:
        stats.CHUNK_ELEMS = old
    for other in (small, chunked_only):
        assert other.identical == one.identical
        for k in EXACT:
            assert getattr(other, k) == getattr(one, k), k
        for k in APPROX:
            assert close_enough(getattr(other, k), getattr(one, k)), k


@given(
    st.integers(1, 50),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["int8", "int32", "int64", "uint16", "bool"]),
    tolerances,
)
@settings(max_examples=60, deadline=None)
def test_integer_and_bool_pairs(n, seed, dtype, tol):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        a = rng.random(n) < 0.5
        b = a.copy()
        b[rng.random(n) < 0.3] ^= True
    else:
        info = np.iinfo(dtype)
        a = rng.integers(max(info.min, -1000), min(info.max, 1000), n).astype(dtype)
        b = a.copy()
        b[rng.random(n) < 0.3] += 1
    st1 = run_pair(a, b, *tol, block_elems=3)
    if bytes_identical(a, b):
        assert st1.identical
    else:
        check_pair(st1, reference_pair(a, b, *tol, True))


INT_RANGES = {
    "int8": (-128, 127),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
    "uint32": (0, 2**32 - 1),
    "bool": (0, 1),
}


@given(
    st.sampled_from(sorted(INT_RANGES)),
    st.sampled_from(sorted(INT_RANGES)),
    st.integers(1, 30),
    st.integers(0, 2**32 - 1),
    tolerances,
    st.sampled_from([1, 4, 1 << 20]),
)
@settings(max_examples=150, deadline=None)
def test_integer_pairs_exactly(dta, dtb, n, seed, tol, block_elems):
    """Integers against an exact Python-int reference over their whole range (near 2**53, 2**63,
    2**64 too), also across dtypes (int64 against uint64): max_abs, argmax and counts exactly."""
    rng = np.random.default_rng(seed)

    def draw(dt):
        lo, hi = INT_RANGES[dt]
        picks = [lo, hi, 0, 1, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1]
        vals = [
            int(rng.integers(-(2**63), 2**63 - 1)) if rng.random() < 0.5 else picks[rng.integers(len(picks))]
            for _ in range(n)
        ]
        vals = [min(max(v, lo), hi) for v in vals]
        return np.array(vals, dtype=object).astype(dt)

    a, b = draw(dta), draw(dtb)
    if rng.random() < 0.5 and dta == dtb:  # a few elements changed
        mask = rng.random(n) < 0.3
        b = a.copy()
        b[mask] = draw(dtb)[mask]
    atol, rtol = tol
    pa, pb = [int(x) for x in a], [int(x) for x in b]
    d = [abs(x - y) for x, y in zip(pa, pb, strict=True)]
    exceed = sum(di > math.floor(atol + rtol * abs(float(y))) for di, y in zip(d, pb, strict=True))
    st1 = run_pair(a, b, atol, rtol, block_elems=block_elems)
    if bytes_identical(a, b):
        assert st1.identical
        return
    assert st1.max_abs == max(d) and isinstance(st1.max_abs, (int, float))
    assert st1.argmax == (d.index(max(d)) if max(d) else None)
    assert st1.n_unequal == sum(di != 0 for di in d)
    assert st1.n_exceed == exceed


def test_isclose_edges_exactly():
    """The threshold is |a - b| <= atol + rtol * |b|, with b from the second file: not symmetric."""
    a = np.array([1.0, 2.0, 0.0, 100.0, -1.0], np.float64)
    b = np.array([1.5, 1.0, 0.25, 101.0, -1.25], np.float64)
    for atol, rtol in [(0.5, 0.0), (0.0, 0.5), (0.25, 0.0), (0.0, 0.01), (1e-12, 0.25)]:
        st1 = run_pair(a, b, atol, rtol)
        assert st1.n_exceed == int((~np.isclose(a, b, rtol=rtol, atol=atol)).sum()), (atol, rtol)
        st_rev = run_pair(b, a, atol, rtol)
        assert st_rev.n_exceed == int((~np.isclose(b, a, rtol=rtol, atol=atol)).sum()), (atol, rtol)


def test_special_values():
    a = np.array([np.nan, np.inf, -0.0, 1.0, np.inf, np.nan, 2.0], np.float32)
    b = np.array([np.nan, np.inf, 0.0, 1.0, -np.inf, 3.0, 2.0], np.float32)
    st1 = run_pair(a, b, 0.0, 0.0, equal_nan=True)
    assert not st1.identical  # -0.0 and 0.0 differ in bits...
    assert st1.n_unequal == 2  # ...but are equal: only inf/-inf and nan/3 differ
    assert st1.n_exceed == 2
    assert (st1.nan_a, st1.nan_b, st1.inf_a, st1.inf_b) == (2, 1, 2, 2)
    assert st1.max_abs == math.inf and st1.argmax == 4
    st2 = run_pair(a, b, 0.0, 0.0, equal_nan=False)
    assert st2.n_exceed == 3 and st2.n_unequal == 3
    # -0.0 against 0.0 alone: equal, close, nothing exceeds, but not bit-identical
    z = run_pair(np.array([-0.0, 1.0], np.float32), np.array([0.0, 1.0], np.float32))
    assert not z.identical and z.n_exceed == 0 and z.n_unequal == 0 and z.max_abs == 0.0 and z.argmax is None


def test_argmax_is_first_maximum_across_blocks():
    a = np.zeros(20, np.float32)
    b = np.zeros(20, np.float32)
    b[[5, 12, 17]] = [1.0, 2.0, 2.0]
    for be in (1, 4, 7, 20):
        assert run_pair(a, b, block_elems=be).argmax == 12


def test_max_rel_inf_where_b_is_zero():
    st1 = run_pair(np.array([1.0, 2.0]), np.array([0.0, 4.0]))
    assert st1.max_rel == math.inf
    st2 = run_pair(np.array([0.0, 2.0]), np.array([0.0, 4.0]))  # 0 vs 0 is left out
    assert st2.max_rel == 0.5


def test_large_float64_values_take_the_careful_path():
    a = np.array([1e200, -1e308, 1.0])
    b = np.array([1e200, 1e308, 2.0])
    st1 = run_pair(a, b)
    check_pair(st1, reference_pair(a, b, 0.0, 0.0, True))
    assert st1.max_abs == math.inf and st1.argmax == 1


def test_empty_and_scalar():
    st0 = run_pair(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))
    assert st0.identical and st0.size == 0
    st1 = run_pair(np.array(1.5, np.float32), np.array(2.0, np.float32))
    assert st1.max_abs == 0.5 and st1.argmax == 0 and st1.n_exceed == 1


def test_accumulate_directly_matches_blocks():
    rng = np.random.default_rng(1)
    a = rng.standard_normal(1000)
    b = a + rng.standard_normal(1000) * 1e-3
    whole = stats.PairStats(identical=False)
    stats.accumulate(whole, a, b, 0, 1e-4, 1e-3, True)
    parts = stats.PairStats(identical=False)
    for s in range(0, 1000, 33):
        stats.accumulate(parts, a[s : s + 33], b[s : s + 33], s, 1e-4, 1e-3, True)
    for k in EXACT:
        assert getattr(whole, k) == getattr(parts, k)
    for k in APPROX:
        assert close_enough(getattr(whole, k), getattr(parts, k))
    check_pair(whole, reference_pair(a, b, 1e-4, 1e-3, True))


# -- summarize ----------------------------------------------------------------------------------


def reference_summary(x: np.ndarray) -> dict:
    x64 = f64(x)
    fin = x64[np.isfinite(x64)]
    out = {"nan": int(np.isnan(x64).sum()), "inf": int(np.isinf(x64).sum()), "zeros": int((x64 == 0).sum())}
    if fin.size:
        out.update(
            min=float(fin.min()),
            max=float(fin.max()),
            mean=float(fin.mean()),
            std=float(fin.std()),
            l2=float(np.sqrt((fin * fin).sum())),
        )
    else:
        out.update(min=None, max=None, mean=None, std=None, l2=None)
    return out


@SETTINGS
@given(float_pairs(), st.sampled_from([1, 7, 1 << 20]), st.sampled_from([2, 5, 1 << 16]))
def test_summarize_matches_numpy(pair, block_elems, chunk):
    x, _, dtype = pair
    ck, var = ckpt_of(x, dtype)
    old = stats.CHUNK_ELEMS
    stats.CHUNK_ELEMS = chunk
    try:
        s = stats.summarize(ck, var, block_elems).as_dict()
    finally:
        stats.CHUNK_ELEMS = old
    ref = reference_summary(x)
    for k in ("nan", "inf", "zeros", "min", "max"):
        assert s[k] == ref[k], k
    for k in ("mean", "std", "l2"):
        if ref[k] is None:
            assert s[k] is None
        else:
            assert math.isclose(s[k], ref[k], rel_tol=1e-9, abs_tol=1e-12), (k, s[k], ref[k])


@given(st.integers(1, 40), st.integers(0, 2**32 - 1), st.sampled_from(["int16", "uint8", "bool"]))
@settings(max_examples=40, deadline=None)
def test_summarize_integers(n, seed, dtype):
    rng = np.random.default_rng(seed)
    x = (rng.random(n) < 0.5) if dtype == "bool" else rng.integers(0, 100, n).astype(dtype)
    ck, var = ckpt_of(x)
    s = stats.summarize(ck, var, 3).as_dict()
    ref = reference_summary(x)
    for k in ("zeros", "min", "max"):
        assert s[k] == ref[k]
    assert math.isclose(s["mean"], ref["mean"], rel_tol=1e-12)
    assert math.isclose(s["std"], ref["std"], rel_tol=1e-9, abs_tol=1e-12)


# -- the HDF5 store: direct reads and the h5py path agree ----------------------------------------


def _write(path, arrays: dict[str, tuple[np.ndarray, dict]]):
    with h5py.File(path, "w") as f:
        for name, (arr, kw) in arrays.items():
            f.create_dataset(name, data=arr, **kw)


LAYOUTS = {
    "contiguous": {},
    "chunked_gzip": {"chunks": (3, 5), "compression": "gzip"},
    "big_endian": {"dtype": ">f4"},
    "little_endian": {"dtype": "<f4"},
}


@pytest.mark.parametrize("no_direct", [False, True])
def test_h5store_paths_agree(tmp_path, monkeypatch, no_direct):
    if no_direct:
        monkeypatch.setenv("KAUDIT_NO_DIRECT_READ", "1")
    rng = np.random.default_rng(3)
    base = rng.standard_normal((17, 10)).astype(np.float32)
    other = base.copy()
    other[4, 7] += 0.5
    other[11, 2] = np.nan
    pa, pb = tmp_path / "a.h5", tmp_path / "b.h5"
    _write(pa, {f"g/{k}/w": (base, kw) for k, kw in LAYOUTS.items()})
    _write(pb, {f"g/{k}/w": (other, kw) for k, kw in LAYOUTS.items()})

    def open_store(p):
        f = H.open_h5(p, str(p))
        store = H.H5Store([f], [str(p)], [(str(p), 0)])
        variables = []
        for k in LAYOUTS:
            store.register(f"g/{k}/w", 0, f"g/{k}/w", "float32")
            variables.append(
                Variable(
                    path=k,
                    layer=k,
                    layer_class=None,
                    name="w",
                    shape=(17, 10),
                    dtype="float32",
                    trainable=None,
                    location=f"g/{k}/w",
                )
            )
        return Checkpoint(file=str(p), format="test", all_variables=tuple(variables), store=store)

    ca, cb = open_store(pa), open_store(pb)
    try:
        for va in ca.all_variables:
            vb = cb.variable(va.path)
            np.testing.assert_array_equal(ca.read(va), base)
            blocks = list(ca.iter_blocks(va, 7))  # blocks stay valid after the next one is read
            np.testing.assert_array_equal(np.concatenate(blocks), base.reshape(-1))
            assert all(b_.size <= 7 for b_ in blocks)
            for be in (1, 7, 1000):
                st1 = stats.compare_pair(ca, va, cb, vb, atol=0.0, rtol=0.0, block_elems=be)
                check_pair(st1, reference_pair(base, other, 0.0, 0.0, True))
                assert stats.compare_pair(ca, va, ca, va, atol=0.0, rtol=0.0, block_elems=be).identical
    finally:
        ca.close()
        cb.close()


def test_h5store_bfloat16_widened(tmp_path):
    vals = np.array([1.0, -2.5, 3.140625, 0.0], np.float32)
    raw = (vals.view(np.uint32) >> 16).astype(np.uint16)
    p = tmp_path / "bf.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("w", data=raw.view(np.dtype("V2")))
    f = H.open_h5(p, str(p))
    store = H.H5Store([f], [str(p)], [(str(p), 0)])
    store.register("w", 0, "w", H.BFLOAT16)
    var = Variable(
        path="w", layer="w", layer_class=None, name="w", shape=(4,), dtype=H.BFLOAT16, trainable=None, location="w"
    )
    try:
        np.testing.assert_array_equal(store.read(var), vals)
        np.testing.assert_array_equal(np.concatenate(list(store.iter_blocks(var, 3))), vals)
    finally:
        store.close()


def test_h5store_truncated_file_is_an_error(tmp_path):
    p = tmp_path / "t.h5"
    _write(p, {"w": (np.arange(100000, dtype=np.float32), {})})
    f = H.open_h5(p, str(p))
    store = H.H5Store([f], [str(p)], [(str(p), 0)])
    store.register("w", 0, "w", "float32")
    var = Variable(
        path="w", layer="w", layer_class=None, name="w", shape=(100000,), dtype="float32", trainable=None, location="w"
    )
    store._sizes[0] = 1000  # as if the file were cut short after h5py opened it
    from kaudit.errors import CorruptFileError

    try:
        with pytest.raises(CorruptFileError):
            list(store.iter_blocks(var, 1 << 20))
    finally:
        store.close()


INT8_KINDS = ["random", "plus-minus-one", "zeros", "extremes", "equal"]


def int8_pair(kind: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two int8 arrays of one of the INT8_KINDS."""
    a = rng.integers(-128, 128, n, dtype=np.int8)
    if kind == "random":
        b = rng.integers(-128, 128, n, dtype=np.int8)
    elif kind == "plus-minus-one":
        b = np.clip(a.astype(np.int16) + rng.integers(-1, 2, n), -128, 127).astype(np.int8)
    elif kind == "zeros":  # b == 0 where a != 0 (max_rel inf), a == b == 0 (undefined ratios)
        a = np.where(rng.random(n) < 0.5, a, np.int8(0)).astype(np.int8)
        b = np.where(rng.random(n) < 0.5, a, np.int8(0)).astype(np.int8)
    elif kind == "extremes":
        a = rng.choice(np.array([-128, 127, 0, 1, -1], np.int8), n)
        b = rng.choice(np.array([-128, 127, 0, 3, -1], np.int8), n)
    else:
        b = a.copy()
    return a, b


@given(
    st.sampled_from([1, 2, 7, 1000, stats.CHUNK_ELEMS, stats.CHUNK_ELEMS + 3, 3 * stats.CHUNK_ELEMS - 1]),
    st.integers(0, 2**32 - 1),
    st.sampled_from(INT8_KINDS),
    st.sampled_from([(0.0, 0.0), (1e-6, 0.0), (1.0, 0.0), (2.5, 0.0), (0.0, 0.01), (0.5, 0.25), (-1.0, 0.0)]),
)
@settings(max_examples=80, deadline=None)
def test_int8_path_is_the_float_path_bit_for_bit(n, seed, kind, tol):
    """int8 pairs (quantized kernels) are computed in small integers: every field, floats included,
    is the one the float64 path gives for the same values (as int16, which takes that path)."""
    a, b = int8_pair(kind, n, np.random.default_rng(seed))
    atol, rtol = tol
    fast = stats.PairStats(identical=False)
    stats.accumulate(fast, a, b, 5, atol, rtol, True)
    ref = stats.PairStats(identical=False)
    stats.accumulate(ref, a.astype(np.int16), b.astype(np.int16), 5, atol, rtol, True)
    assert fast.__dict__ == ref.__dict__
    assert type(fast.max_abs) is type(ref.max_abs) is int


def _bf16_file(path, words: np.ndarray) -> None:
    """A bare Keras 3 ``.weights.h5`` with one bfloat16 variable of these 16-bit words."""
    with h5py.File(path, "w") as f:
        ds = f.create_group("layers/dense/vars").create_dataset("0", data=words.view("V2"))
        ds.attrs["dtype"] = "bfloat16"


@pytest.mark.parametrize("no_direct", [False, True], ids=["direct", "h5py"])
def test_bfloat16_identity_on_stored_words_agrees_with_values(tmp_path, monkeypatch, no_direct):
    """Large bfloat16 pairs are first compared on their stored 16-bit words (not widened to
    float32): the verdicts and statistics are those of the values, NaN rules included."""
    import kaudit

    if no_direct:
        monkeypatch.setenv("KAUDIT_NO_DIRECT_READ", "1")
    rng = np.random.default_rng(5)
    words = (rng.standard_normal(3000).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    changed = words.copy()
    changed[2500] ^= 0x0040  # one value changed, in the last block
    nan = words.copy()
    nan[10] = 0x7FC0  # a quiet NaN
    files = {}
    for name, w in (("a", words), ("same", words.copy()), ("changed", changed), ("nan", nan), ("nan2", nan.copy())):
        files[name] = tmp_path / f"{name}.weights.h5"
        _bf16_file(files[name], w)

    def pair(x, y, **kw):
        with kaudit.load(str(files[x])) as ca, kaudit.load(str(files[y])) as cb:
            [va], [vb] = ca.all_variables, cb.all_variables
            assert va.dtype == "bfloat16"
            stored = ca.iter_stored_blocks(va, 256)
            assert stored is not None and next(stored).dtype.itemsize == 2  # words, not float32
            return (
                stats.compare_pair(ca, va, cb, vb, atol=0.0, rtol=0.0, block_elems=256, **kw),
                ca.read(va),
                cb.read(vb),
            )

    st, xa, xb = pair("a", "same")
    assert st.identical
    st, xa, xb = pair("a", "changed")
    assert not st.identical and st.n_exceed == 1
    assert st.max_abs == float(np.max(np.abs(xa.astype(np.float64) - xb.astype(np.float64))))
    st, _xa, _xb = pair("nan", "nan2")
    assert st.identical  # NaN == NaN at the same place by default
    st, _xa, _xb = pair("nan", "nan2", equal_nan=False)
    assert not st.identical and st.n_exceed == 1  # --nan-unequal: the values decide, not the words


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_bfloat16_widening_is_exact_for_every_word(layout):
    """Every one of the 65,536 bfloat16 words widens to the float32 with those 16 high bits (NaN
    payloads and signs kept), from a contiguous block or a strided view of one."""
    from kaudit.storage.hdf5_store import BFLOAT16, widen

    words = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    raw = words if layout == "contiguous" else np.repeat(words, 2)[::2]
    got = widen(raw.view("V2"), BFLOAT16)
    assert got.dtype == np.float32 and got.shape == words.shape
    assert np.array_equal(got.view(np.uint32), words.astype(np.uint32) << 16)
    assert got[0x3F80] == 1.0 and got[0xC000] == -2.0 and got[0x7F80] == np.inf and np.isnan(got[0x7FC1])
