"""The compiled statistics kernels (kaudit/kernels.py) against the numpy path of kaudit.stats.

Counts, maxima, argmax and max_rel must be the numpy path's bit for bit, int8 sums too (exact
integers); float sums to rounding (another summation order). Blocks the kernels cannot take (NaN,
inf, squares beyond float64) must be refused with the statistics untouched, so that the numpy path
takes them. Skipped where numba is not installed (it is in the test extra, so CI runs these)."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kaudit
from kaudit import kernels, stats

from .test_stats import (
    APPROX,
    EXACT,
    INT8_KINDS,
    SETTINGS,
    check_pair,
    close_enough,
    float_pairs,
    int8_pair,
    reference_pair,
    run_pair,
    tolerances,
)

pytest.importorskip("numba")

K = kernels.load()


@contextlib.contextmanager
def compiled_from(min_elems: int, min_total: int = 0):
    """Pairs of ``min_elems`` values or more take the kernels in diffs of ``min_total`` (16 Mi
    and 1 Gi in production)."""
    old = kernels.MIN_ELEMS, kernels.MIN_TOTAL
    kernels.MIN_ELEMS, kernels.MIN_TOTAL = min_elems, min_total
    try:
        yield
    finally:
        kernels.MIN_ELEMS, kernels.MIN_TOTAL = old


def numpy_stats(a, b, atol, rtol, block=1 << 20, offset=0) -> stats.PairStats:
    st_ = stats.PairStats(identical=False)
    for s in range(0, a.size, block):
        stats.accumulate(st_, a[s : s + block], b[s : s + block], offset + s, atol, rtol, True)
    return st_


def compiled_stats(a, b, atol, rtol, block=1 << 20, offset=0) -> tuple[stats.PairStats, int]:
    st_ = stats.PairStats(identical=False)
    taken = 0
    for s in range(0, a.size, block):
        if stats.accumulate_compiled(st_, K, a[s : s + block], b[s : s + block], offset + s, atol, rtol):
            taken += 1
        else:
            stats.accumulate(st_, a[s : s + block], b[s : s + block], offset + s, atol, rtol, True)
    return st_, taken


def same_stats(got: stats.PairStats, ref: stats.PairStats, exact_sums: bool = False) -> None:
    for k in EXACT:
        assert getattr(got, k) == getattr(ref, k), (k, getattr(got, k), getattr(ref, k))
        assert type(getattr(got, k)) is type(getattr(ref, k)), k
    for k in APPROX:
        if exact_sums:
            assert getattr(got, k) == getattr(ref, k), k
        else:
            assert close_enough(getattr(got, k), getattr(ref, k)), (k, getattr(got, k), getattr(ref, k))


#: Negative ones too: no policy allows them, but the kernels must still be the numpy path.
TOLERANCES = [(0.0, 0.0), (1e-6, 0.0), (1e-3, 1e-2), (0.5, 0.25), (-1.0, 0.0), (0.0, -0.5), (2.5, 0.0)]


def _pair(dtype: str, n: int, seed: int, kind: str):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n)
    if kind == "noise":
        b = a * (1 + 0.01 * rng.standard_normal(n))
    elif kind == "sparse":  # most values equal, zeros in b (max_rel inf), a == b == 0 (undefined ratios)
        b = a.copy()
        b[rng.random(n) < 0.1] += 1e-3
        b[rng.random(n) < 0.01] = 0.0
        a[rng.random(n) < 0.01] = 0.0
        b[a == 0.0] = 0.0
    elif kind == "ties":  # the largest difference reached several times: argmax is the first
        b = a.copy()
        b[[n // 3, n // 2, n - 1]] += 0.25
    else:
        b = a.copy()
    if dtype == "bfloat16":  # float32 holding bfloat16 values, as the stores hand them out
        a = (a.astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
        b = (b.astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
        return a, b
    return a.astype(dtype), b.astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("kind", ["noise", "sparse", "ties", "equal"])
@pytest.mark.parametrize("tol", TOLERANCES)
def test_float_blocks_agree_with_numpy(dtype, kind, tol):
    a, b = _pair(dtype, 300_001, 7, kind)
    ref = numpy_stats(a, b, *tol, block=1 << 16, offset=11)
    got, taken = compiled_stats(a, b, *tol, block=1 << 16, offset=11)
    assert taken == 5  # every block went through the kernels
    same_stats(got, ref)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_argmax_near_ties_and_subnormal_differences(dtype):
    """The first of equal maxima, not a nearly equal one before it; differences of subnormal
    size count as changes (float64 keeps them)."""
    a = np.zeros(300_000, dtype)
    b = a.copy()
    b[[100, 70_000, 250_000]] = 0.25  # equal maxima in the first and later blocks: argmax 100
    b[50] = np.nextafter(np.asarray(0.25, dtype), np.asarray(0, dtype))  # just below, before them
    b[[60, 80_000]] = np.finfo(dtype).smallest_subnormal
    b[90] = -1e-30  # b == 0 against a != 0 elsewhere: a[91]
    a[91] = 1e-3
    for tol in [(0.0, 0.0), (1e-3, 0.5)]:
        ref = numpy_stats(a, b, *tol, block=1 << 16, offset=2)
        got, _ = compiled_stats(a, b, *tol, block=1 << 16, offset=2)
        same_stats(got, ref)
        assert got.argmax == 102 and got.n_unequal == 8 and got.max_rel == np.inf


def test_a_mixed_float_pair_is_compared_in_float64():
    a, b = _pair("float64", 100_000, 3, "noise")
    a32 = a.astype(np.float32)
    ref = numpy_stats(a32, b, 1e-4, 1e-3)
    got, taken = compiled_stats(a32, b, 1e-4, 1e-3)
    assert taken == 1
    same_stats(got, ref)


@pytest.mark.parametrize("kind", INT8_KINDS)
@pytest.mark.parametrize("tol", TOLERANCES)
def test_int8_blocks_are_the_numpy_path_bit_for_bit(kind, tol):
    a, b = int8_pair(kind, 200_003, np.random.default_rng(len(kind)))
    ref = numpy_stats(a, b, *tol, block=1 << 16, offset=3)
    got, taken = compiled_stats(a, b, *tol, block=1 << 16, offset=3)
    assert taken == 4
    same_stats(got, ref, exact_sums=True)
    assert got.__dict__ == ref.__dict__


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf, 1e200], ids=["nan", "inf", "-inf", "square-overflows"])
def test_blocks_with_non_finite_values_are_left_to_numpy(poison):
    a, b = _pair("float64", 10_000, 5, "noise")
    b[1234] = poison
    st_ = stats.PairStats(identical=False)
    before = dict(st_.__dict__)
    assert not stats.accumulate_compiled(st_, K, a, b, 0, 1e-3, 0.0)
    assert st_.__dict__ == before
    got, taken = compiled_stats(a, b, 1e-3, 0.0, block=4096)
    assert taken == 2  # the two blocks without the poisoned value
    same_stats(got, numpy_stats(a, b, 1e-3, 0.0, block=4096))


def test_other_dtypes_are_left_to_numpy():
    st_ = stats.PairStats(identical=False)
    for a in (np.arange(10, dtype=np.int32), np.arange(10, dtype=np.uint8), np.ones(10, bool)):
        assert not stats.accumulate_compiled(st_, K, a, a, 0, 0.0, 0.0)
    assert st_.size == 0


@SETTINGS
@given(float_pairs(), tolerances, st.booleans(), st.sampled_from([1, 4, 16]))
def test_compare_pair_with_kernels_matches_numpy(pair, tol, equal_nan, block_elems):
    """Through compare_pair (large-pair branch: more values than a block), NaN and inf included,
    against whole-array numpy (tolerances >= 0, as policies and the command line require)."""
    a, b, dtype = pair
    atol, rtol = tol
    with compiled_from(0):
        got = run_pair(a, b, atol, rtol, equal_nan, block_elems=block_elems, dtype=dtype, compiled=True)
    if got.identical:
        return
    check_pair(got, reference_pair(a, b, atol, rtol, equal_nan))


def test_compare_pair_takes_the_kernels_only_for_large_pairs(monkeypatch):
    calls = []
    real = stats.accumulate_compiled

    def spy(*args):
        calls.append(args[2].size)
        return real(*args)

    monkeypatch.setattr(stats, "accumulate_compiled", spy)
    a, b = _pair("float32", 5000, 1, "noise")
    ref = run_pair(a, b, 1e-3, 0.0, block_elems=1024, compiled=True)
    assert calls == []  # below kernels.MIN_ELEMS
    with compiled_from(5000):
        assert run_pair(a, b, 1e-3, 0.0, block_elems=1024).__dict__ == ref.__dict__  # not allowed
        assert calls == []
        got = run_pair(a, b, 1e-3, 0.0, block_elems=1024, compiled=True)
    assert sum(calls) == 5000
    same_stats(got, ref)
    check_pair(got, reference_pair(a, b, 1e-3, 0.0, True))


def test_diff_verdicts_and_tables_agree_with_the_numpy_path(tmp_path):
    """A whole diff (two files, the CLI's pipeline) with and without the kernels."""
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    paths = []
    for i, scale in enumerate((0.0, 1e-3)):
        p = tmp_path / f"m{i}.weights.h5"
        with h5py.File(p, "w") as f:
            g = f.create_group("layers/dense/vars")
            base = np.random.default_rng(1).standard_normal((600, 500)).astype(np.float32)
            g.create_dataset("0", data=base + scale * rng.standard_normal(base.shape).astype(np.float32))
            g.create_dataset("1", data=np.zeros(500, np.float32))
        paths.append(str(p))
    ref = kaudit.diff(*paths, atol=1e-4, block_elems=1 << 16, policy=False)
    with compiled_from(1000, 300_500):  # the model's size: the kernels are allowed
        got = kaudit.diff(*paths, atol=1e-4, block_elems=1 << 16, policy=False)
    assert got.exit_code == ref.exit_code == 1 and got.failures == ref.failures
    t_got, t_ref = got.table, ref.table
    cols = ["path", "status", "max_abs", "n_exceed", "max_rel"]
    assert t_got[cols].equals(t_ref[cols])
    np.testing.assert_allclose(t_got["rel_l2"].astype(float), t_ref["rel_l2"].astype(float), rtol=1e-12)


def test_only_diffs_of_large_models_load_the_kernels(tmp_path, monkeypatch):
    """The choice is the diff's, from the tables: a model under kernels.MIN_TOTAL values keeps the
    numpy path even for its large changed pairs (loading the kernels would cost more)."""
    h5py = pytest.importorskip("h5py")
    paths = []
    for i in range(2):
        p = tmp_path / f"m{i}.weights.h5"
        with h5py.File(p, "w") as f:
            f.create_group("layers/dense/vars").create_dataset("0", data=np.full((300, 100), float(i), np.float32))
        paths.append(str(p))
    calls = []
    real = stats.accumulate_compiled
    monkeypatch.setattr(stats, "accumulate_compiled", lambda *a: calls.append(1) or real(*a))
    with compiled_from(1000, 30_001):
        kaudit.diff(*paths, block_elems=1 << 12, policy=False)
    assert calls == []
    with compiled_from(1000, 30_000):
        kaudit.diff(*paths, block_elems=1 << 12, policy=False)
    assert len(calls) == 8  # 30,000 values in blocks of 4,096
    assert kernels.worth_loading(kernels.MIN_TOTAL) and not kernels.worth_loading(kernels.MIN_TOTAL - 1)


def test_kaudit_kernels_numpy_turns_them_off():
    code = "from kaudit import kernels; print(kernels.load(), kernels.for_pair(1 << 30), kernels.status())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**__import__("os").environ, "KAUDIT_KERNELS": "numpy"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("False None numpy (KAUDIT_KERNELS=numpy)"), out
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "None" not in out and "compiled (numba)" in out, out


class _Broken(Exception):
    """What numba raises when it cannot compile (a TypingError, an LLVM error...), simulated."""


def _failing(name: str):
    """The real kernels, with ``name`` raising as a kernel numba cannot compile would."""

    def boom(*args):
        raise _Broken(f"{name}: cannot compile for these types\nsecond line of the report")

    ns = dict(vars(K))
    ns[name] = boom
    return type(K)(**ns)


@pytest.fixture
def fresh_kernels(monkeypatch):
    """kernels.load() runs again (its state restored after the test)."""
    monkeypatch.setattr(kernels, "_loaded", None)
    monkeypatch.setattr(kernels, "_reason", "not loaded yet")
    return monkeypatch


@pytest.mark.parametrize("name", ["float_block", "float_exceed", "float_first", "int8_block"])
def test_a_numba_that_cannot_compile_gives_the_numpy_path_at_load(fresh_kernels, name):
    """Every kernel is compiled (or loaded from the cache) when the kernels load, so a failure is
    found there: the numpy path is taken, with the reason in status(), never an error in a diff."""
    fresh_kernels.setattr(kernels, "_compile", lambda: _failing(name))
    assert kernels.load() is False and kernels.for_pair(1 << 30) is None
    assert (
        kernels.status()
        == f"numpy (numba could not compile the kernels: _Broken: {name}: cannot compile for these types)"
    )


@pytest.mark.parametrize(
    ("name", "dtype"), [("float_block", "float32"), ("float_first", "float64"), ("int8_block", "int8")]
)
def test_a_kernel_failing_during_a_diff_leaves_the_block_to_the_numpy_path(fresh_kernels, name, dtype):
    """A kernel that fails after loading (numba compiling a new block layout) hands its block to
    the numpy path with the statistics untouched, and the rest of the process takes the numpy path:
    the pair's statistics are the numpy path's."""
    fresh_kernels.setattr(kernels, "_compile", lambda: K)
    assert kernels.load() is K
    a, b = int8_pair("random", 6000, np.random.default_rng(3)) if dtype == "int8" else _pair(dtype, 6000, 3, "noise")
    ref = run_pair(a, b, 1e-3, 1e-2, block_elems=1024)
    assert ref.n_exceed > 0
    fresh_kernels.setattr(kernels, "_loaded", _failing(name))
    with compiled_from(0):
        got = run_pair(a, b, 1e-3, 1e-2, block_elems=1024, compiled=True)
    assert got.__dict__ == ref.__dict__
    assert kernels.load() is False
    assert kernels.status().startswith(f"numpy (a kernel failed during a diff: _Broken: {name}: cannot")
