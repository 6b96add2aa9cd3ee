"""Quantized Keras 3 layers: kaudit's dequantized values are Keras's own (the digests in
fixtures/quantized/*.truth.json, computed by Keras on the reloaded model), and diff compares a
float weight with its quantized counterpart on them."""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile

import h5py
import numpy as np
import pytest

import kaudit
from kaudit import quantdiff
from kaudit.inspection import inspect as kinspect
from kaudit.keras import quantized as Q

from .conftest import FIXTURES, run_cli

QDIR = FIXTURES / "quantized"
VARIANTS = ["int8", "int4", "int4_b4", "int4_pc"]


def _truth(name):
    return json.loads((QDIR / f"{name}.keras.truth.json").read_text())


def _sha(x):
    return hashlib.sha256(np.ascontiguousarray(x).astype("<f4").tobytes()).hexdigest()


@pytest.mark.parametrize("name", VARIANTS)
def test_dequantized_values_are_keras_own(name):
    truth = _truth(name)["dequantized"]
    assert truth  # every fixture has quantized weights (Embedding, Dense, EinsumDense 2-D and 3-D)
    with kaudit.load(str(QDIR / f"{name}.keras")) as c:
        weights = {v.path for v in c.model_variables if v.quant is not None and v.quant.role == "weight"}
        assert weights == set(truth)
        for path, want in truth.items():
            got = quantdiff.dequantized(c, path)
            assert list(got.shape) == want["shape"]
            assert got.dtype == np.float32
            assert _sha(got) == want["sha256"], path


@pytest.mark.parametrize("name", VARIANTS)
def test_diff_float_against_quantized(name):
    truth = _truth(name)["dequantized"]
    r = kaudit.diff(str(QDIR / "float.keras"), str(QDIR / f"{name}.keras"))
    rows = {x.path: x for x in r.records}
    assert not r.passed  # quantization changes values: atol 0 fails
    for path, want in truth.items():
        row = rows[path]
        assert row.status in ("changed", "close") and row.max_abs == want["max_abs_vs_float"], path
        assert row.quant.startswith("dequantized b:")
        assert 0 < row.rel_l2 < 0.5 and row.cosine > 0.9
        assert row.sqnr_db == pytest.approx(-20 * math.log10(row.rel_l2), rel=1e-9)
    # scales, zero points and group indices are part of the weight's row, not "only in b"
    assert {x.status for x in r.records} <= {"identical", "close", "changed"}
    assert not any("trainab" in f for f in r.failures)  # quantized weights are non-trainable by design
    # gated by the usual tolerances: just above the largest error passes
    worst = max(w["max_abs_vs_float"] for w in truth.values())
    assert kaudit.diff(str(QDIR / "float.keras"), str(QDIR / f"{name}.keras"), atol=worst).passed
    assert not kaudit.diff(str(QDIR / "float.keras"), str(QDIR / f"{name}.keras"), atol=worst * 0.999).passed
    # and the other way round
    back = kaudit.diff(str(QDIR / f"{name}.keras"), str(QDIR / "float.keras"), atol=worst)
    assert back.passed and all(x.quant.startswith("dequantized a:") for x in back.records if x.path in truth)


def test_two_quantized_models_compare_stored_values_unless_dequantized():
    same = kaudit.diff(str(QDIR / "int8.keras"), str(QDIR / "int8.keras"))
    assert same.passed and all(x.status == "identical" and x.quant is None for x in same.records)
    assert any(x.path.endswith("kernel_scale") for x in same.records)  # scales compared exactly
    stored = kaudit.diff(str(QDIR / "int8.keras"), str(QDIR / "int4.keras"))
    assert not stored.passed and any(x.status == "shape_changed" for x in stored.records)
    deq = kaudit.diff(str(QDIR / "int8.keras"), str(QDIR / "int4.keras"), dequantize=True, atol=1.0)
    assert deq.passed
    assert all(
        x.quant and "a: int8" in x.quant and "b: int4" in x.quant
        for x in deq.records
        if x.path in _truth("int8")["dequantized"]
    )
    # int8 and int4 against each other: their distance is their two distances to the float at most
    t8, t4 = _truth("int8")["dequantized"], _truth("int4")["dequantized"]
    for x in deq.records:
        if x.path in t8:
            assert x.max_abs <= t8[x.path]["max_abs_vs_float"] + t4[x.path]["max_abs_vs_float"] + 1e-7


def test_float8_compares_stored_float_kernels():
    r = kaudit.diff(str(QDIR / "float.keras"), str(QDIR / "float8.keras"))
    assert r.passed and all(x.status == "identical" for x in r.records)
    assert any("float8" in n for n in r.notes)
    with kaudit.load(str(QDIR / "float8.keras")) as c:
        state = [v for v in c.model_variables if v.quant is not None and v.quant.role == "state"]
        assert len(state) == 6 * 4  # four quantized layers, six scales and histories each


def test_inspect_quant_column_only_when_quantized():
    plain = kinspect(str(QDIR / "float.keras"), stats=False)
    assert "quant" not in plain.columns
    res = kinspect(str(QDIR / "int4_b4.keras"), stats=False)
    rows = {r.path: r for r in res.rows()}
    assert rows["d1/kernel"].quant == "int4 sub-channel/4 weight (4-bit) -> float (96, 16)"
    assert rows["d1/g_idx"].quant == "int4 sub-channel/4 g_idx of kernel"
    assert rows["d1/bias"].quant is None
    assert rows["ed3/kernel"].quant.endswith("-> float (10, 6)")  # the 2-D view Keras packs
    cli = run_cli("inspect", str(QDIR / "int8.keras"))
    assert cli.returncode == 0 and "int8 weight (8-bit) -> float (96, 16)" in cli.stdout


def test_cli_diff_dequantize(tmp_path):
    r = run_cli(
        "diff", str(QDIR / "int8.keras"), str(QDIR / "int4_pc.keras"), "--dequantize", "--atol", "1", "--format", "json"
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    rows = {p["path"]: p for p in doc["variables"]}
    assert rows["d1/kernel"]["quant"].startswith("dequantized a: int8") and rows["d1/kernel"]["sqnr_db"] > 10
    assert "d1/kernel_scale" not in rows


def _edit_weights(src, dst, edit):
    """A copy of the .keras archive ``src`` whose model.weights.h5 ``edit(h5file)`` changed."""
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    buf = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buf, "r+") as f:
        edit(f)
    members["model.weights.h5"] = buf.getvalue()
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


def test_bad_group_index_is_an_error_not_a_verdict(tmp_path):
    bad = tmp_path / "bad.keras"

    def edit(f):
        for name in f["layers"]:
            if name == "dense":  # d1: vars 0 bias, 1 kernel, 2 scale, 3 zero, 4 g_idx (stored order)
                f["layers/dense/vars/4"][0] = 99.0

    _edit_weights(QDIR / "int4_b4.keras", bad, edit)
    r = run_cli("diff", str(QDIR / "float.keras"), str(bad), "--atol", "1")
    assert r.returncode == 2 and "g_idx" in r.stderr and "Traceback" not in r.stderr


def test_int4_packing_matches_keras():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    for cols in (1, 2, 5, 8):
        v = rng.integers(-8, 8, size=(3, cols)).astype(np.int8)
        packed, _, _ = keras.quantizers.pack_int4(v, axis=-1)
        assert np.array_equal(np.asarray(packed), Q.pack_int4(v))
        assert np.array_equal(Q.unpack_int4(np.asarray(packed), cols), v)


def test_einsum_scale_follows_the_output_axis_order():
    # kernel (b, c, d) = (2, 3, 4), equation ab,bcd->adc: the scale is laid out (d, c)
    scale = np.arange(12, dtype=np.float32).reshape(4, 3)
    s = Q.einsum_scale(scale, (2, 3, 4), ("bcd", "adc"))
    assert s.shape == (1, 3, 4) and s[0, 1, 2] == scale[2, 1]
