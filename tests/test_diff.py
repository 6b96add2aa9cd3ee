"""The diff engine: alignment, statuses, statistics and the gate, with Keras and numpy as oracles."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import kaudit
from kaudit.result import DIFF_COLUMNS, STATUSES

from .conftest import fixture, message_offset, real

TUT = "tutorial/k2_full.h5"


def mutated(tmp_path, src: str, name: str, edit) -> str:
    """A copy of a fixture whose datasets are changed in place with h5py by ``edit(f)``."""
    dst = tmp_path / name
    shutil.copy(fixture(src), dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return str(dst)


def row(result, path):
    t = result.table
    return t[t["path"] == path].iloc[0]


# -- same weights, any format ------------------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        "tutorial/k3.keras",
        "tutorial/k3.weights.h5",
        "tutorial/k3_legacy.h5",
        "tutorial/k2_weights.h5",
        "tutorial/k3_sharded.weights.json",
        "tutorial/k2_full.h5",
    ],
)
def test_same_weights_every_format_pass(other):
    res = kaudit.diff(fixture(TUT), fixture(other))
    assert res.passed and res.exit_code == 0
    assert res.summary["identical"] == 9 == res.summary["pairs"]
    assert set(res.table["matched_by"]) == {"path"}
    assert list(res.table.columns) == list(DIFF_COLUMNS)


def test_nested_model_k2_vs_k3():
    res = kaudit.diff(fixture("nested/k2_full.h5"), fixture("nested/k3.keras"))
    assert res.passed and res.summary["identical"] == 6
    assert list(res.table["path"])[:2] == ["Inner_model/L_in_0/kernel", "Inner_model/L_in_0/bias"]


def test_byte_different_files_with_identical_weights(tmp_path):
    # the same weights, another file: different optimizer state and attributes
    b = mutated(tmp_path, TUT, "b.h5", lambda f: f.attrs.modify("training_config", "{}"))
    assert open(b, "rb").read() != open(fixture(TUT), "rb").read()
    assert kaudit.diff(fixture(TUT), b).passed


# -- fine-tuning regression ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "before,after",
    [
        ("finetune/before_k2.h5", "finetune/after_k2.h5"),
        ("finetune/before.keras", "finetune/after.keras"),
        ("finetune/before_k2.h5", "finetune/after.keras"),
    ],
)
def test_frozen_backbone_only_head_changed(before, after):
    res = kaudit.diff(fixture(before), fixture(after))
    t = res.table
    changed = set(t.loc[t["status"] != "identical", "path"])
    with kaudit.load(fixture(after)) as c:
        trainable = {v.path for v in c.weights if v.trainable}
    assert changed == trainable and changed and all(p.startswith("head_") for p in changed)
    assert set(t.loc[t["status"] != "identical", "status"]) == {"changed"}
    assert not res.passed and res.exit_code == 1
    # numpy oracle for every statistic of every changed pair
    with kaudit.load(fixture(before)) as ca, kaudit.load(fixture(after)) as cb:
        for p in changed:
            a, b = ca[p].astype(np.float64), cb[p].astype(np.float64)
            r = row(res, p)
            d = np.abs(a - b)
            assert r.max_abs == pytest.approx(d.max(), rel=1e-12)
            assert r.mean_abs == pytest.approx(d.mean(), rel=1e-12)
            assert r.rms == pytest.approx(np.sqrt((d**2).mean()), rel=1e-12)
            assert r.rel_l2 == pytest.approx(np.linalg.norm(a - b) / np.linalg.norm(a), rel=1e-9)
            assert r.cosine == pytest.approx(a.ravel() @ b.ravel() / np.linalg.norm(a) / np.linalg.norm(b), rel=1e-9)
            assert r.n_exceed == int((d > 0).sum())
            assert tuple(r["argmax"]) == np.unravel_index(np.argmax(d), a.shape)


def test_tolerance_semantics_are_numpys_isclose(tmp_path):
    ca = kaudit.load(fixture("finetune/before_k2.h5"))
    cb = kaudit.load(fixture("finetune/after_k2.h5"))
    a = ca["head_dense/kernel"].astype(np.float64)
    b = cb["head_dense/kernel"].astype(np.float64)
    for atol, rtol in [(0.0, 0.0), (0.01, 0.0), (0.0, 0.1), (0.02, 0.05), (1.0, 0.0)]:
        res = kaudit.diff(ca, cb, atol=atol, rtol=rtol)
        r = row(res, "head_dense/kernel")
        expect = int((~np.isclose(a, b, atol=atol, rtol=rtol)).sum())
        assert r.n_exceed == expect
        assert r.status == ("changed" if expect else "close")
    ca.close()
    cb.close()


def test_per_pattern_tolerance_last_match_wins():
    a, b = fixture("finetune/before_k2.h5"), fixture("finetune/after_k2.h5")
    res = kaudit.diff(a, b, tol=["head_*/**=1e-9", "head_out/**=1"])
    assert row(res, "head_out/kernel").status == "close"
    assert row(res, "head_out/kernel").atol == 1
    assert row(res, "head_dense/kernel").status == "changed"
    res = kaudit.diff(a, b, tol=["head_out/**=1", "head_*/**=1e-9"])
    assert row(res, "head_out/kernel").status == "changed"
    res = kaudit.diff(a, b, tol=["head_*/**=1"])
    assert res.passed


# -- structural alignment ------------------------------------------------------------------------


def test_renamed_layers_matched_by_structure():
    a, b = fixture("renamed/renamed_a.h5"), fixture("renamed/renamed_b.h5")
    res = kaudit.diff(a, b)
    assert res.passed
    assert set(res.table["matched_by"]) == {"structure"}
    assert any("structure" in n for n in res.notes)
    pairs = dict(zip(res.table["path"], res.table["path_b"], strict=True))
    with kaudit.load(a) as ca, kaudit.load(b) as cb:  # the mapping is Keras order, position by position
        assert pairs == {va.path: vb.path for va, vb in zip(ca.weights, cb.weights, strict=True)}
    strict = kaudit.diff(a, b, structural=False)
    assert not strict.passed
    assert strict.summary["only_in_a"] == 9 and strict.summary["only_in_b"] == 9


def test_rename_rule_pins_pairs():
    a, b = fixture("renamed/renamed_a.h5"), fixture("renamed/renamed_b.h5")
    rules = [
        ("conv2d", "conv2d_3"),
        ("dense", "dense_3"),
        ("dense_1", "dense_4"),
        ("batch_normalization", "batch_normalization_3"),
    ]
    res = kaudit.diff(a, b, rename=rules, structural=False)
    assert res.passed and set(res.table["matched_by"]) == {"rule"}


def test_inserted_layer_does_not_shift_the_rest(tmp_path):
    """b = a with one extra layer in the middle: only that layer is only_in_b."""

    def add_layer(f):
        g = f["model_weights"]
        names = list(g.attrs["layer_names"])
        new = g.create_group("extra_dense")
        new.attrs["weight_names"] = [b"extra_dense/kernel:0", b"extra_dense/bias:0"]
        new.create_dataset("extra_dense/kernel:0", data=np.ones((10, 10), np.float32))
        new.create_dataset("extra_dense/bias:0", data=np.zeros(10, np.float32))
        names.insert(3, "extra_dense")
        g.attrs["layer_names"] = np.array([str(n).encode() for n in names], dtype="S")

    b = mutated(tmp_path, "renamed/renamed_b.h5", "inserted.h5", add_layer)
    res = kaudit.diff(fixture("renamed/renamed_a.h5"), b)
    assert res.summary["only_in_b"] == 2 and res.summary["identical"] == 9
    assert set(res.table.loc[res.table["status"] == "only_in_b", "path"]) == {"extra_dense/kernel", "extra_dense/bias"}
    assert not res.passed
    assert kaudit.diff(fixture("renamed/renamed_a.h5"), b, allow_added=True).passed


# -- statuses ------------------------------------------------------------------------------------


def test_shape_change(tmp_path):
    def edit(f):
        del f["model_weights/L3_dense/L3_dense/bias:0"]
        f["model_weights/L3_dense/L3_dense"].create_dataset("bias:0", data=np.zeros(2, np.float32))

    res = kaudit.diff(fixture(TUT), mutated(tmp_path, TUT, "s.h5", edit))
    r = row(res, "L3_dense/bias")
    assert r.status == "shape_changed" and list(r.shape_b) == [2] and not res.passed
    assert any("shape [1] -> [2]" in f for f in res.failures)


def test_dtype_change_compares_upcast_values(tmp_path):
    def edit(f):
        ds = f["model_weights/L2_dense/L2_dense/kernel:0"]
        v = ds[()]
        del f["model_weights/L2_dense/L2_dense/kernel:0"]
        f["model_weights/L2_dense/L2_dense"].create_dataset("kernel:0", data=v.astype(np.float64))

    res = kaudit.diff(fixture(TUT), mutated(tmp_path, TUT, "d.h5", edit))
    r = row(res, "L2_dense/kernel")
    assert r.status == "dtype_changed" and (r.dtype_a, r.dtype_b) == ("float32", "float64")
    assert r.max_abs == 0.0 and r.n_exceed == 0  # exact upcast
    assert not res.passed


def test_nan_negative_zero_and_inf(tmp_path):
    def put(values):
        def edit(f):
            f["model_weights/L2_dense/L2_dense/kernel:0"][0, :4] = values

        return edit

    a = mutated(tmp_path, TUT, "a.h5", put([np.nan, 0.0, np.inf, 1.0]))
    same_nan = mutated(tmp_path, TUT, "b.h5", put([np.nan, -0.0, np.inf, 1.0]))
    res = kaudit.diff(a, same_nan)
    r = row(res, "L2_dense/kernel")
    assert r.status == "close" and r.n_exceed == 0 and r.max_abs == 0  # -0.0 == 0.0 numerically, not bitwise
    assert r.nan_a == 1 and r.nan_b == 1 and r.inf_a == 1
    assert res.passed
    res = kaudit.diff(a, same_nan, equal_nan=False)
    assert row(res, "L2_dense/kernel").status == "changed" and not res.passed
    one_sided = mutated(tmp_path, TUT, "c.h5", put([1.0, 0.0, np.inf, 1.0]))
    r = row(kaudit.diff(a, one_sided), "L2_dense/kernel")
    assert r.status == "changed" and r.n_exceed == 1 and r.max_abs == np.inf and list(r["argmax"]) == [0, 0]


def test_trainability_flip(tmp_path):
    import json

    def edit(f):
        cfg = json.loads(f.attrs["model_config"])
        for layer in cfg["config"]["layers"]:
            if layer["config"].get("name") == "L3_dense":
                layer["config"]["trainable"] = False
        f.attrs["model_config"] = json.dumps(cfg)

    b = mutated(tmp_path, TUT, "t.h5", edit)
    res = kaudit.diff(fixture(TUT), b)
    t = res.table
    flipped = set(t.loc[t["trainable_changed"] == True, "path"])  # noqa: E712
    assert flipped == {"L3_dense/kernel", "L3_dense/bias"}
    assert set(t["status"]) == {"identical"} and not res.passed
    assert kaudit.diff(fixture(TUT), b, allow_trainable_change=True).passed


def test_removed_layer(tmp_path):
    def edit(f):
        g = f["model_weights"]
        g.attrs["layer_names"] = np.array(
            [str(n).encode() for n in g.attrs["layer_names"] if str(n) != "L4_bn"], dtype="S"
        )

    b = mutated(tmp_path, TUT, "r.h5", edit)
    res = kaudit.diff(fixture(TUT), b)
    assert res.summary["only_in_a"] == 4 and not res.passed
    assert kaudit.diff(fixture(TUT), b, allow_removed=True).passed
    assert kaudit.diff(fixture(TUT), b, ignore=["L4_bn/*"]).passed


def test_optimizer_left_out_unless_asked():
    res = kaudit.diff(fixture(TUT), fixture("tutorial/k3_legacy.h5"))
    assert res.passed and "optimizer" not in set(res.table["kind"])
    res = kaudit.diff(fixture(TUT), fixture("tutorial/k3_legacy.h5"), optimizer=True)
    assert "optimizer" in set(res.table["kind"])


# -- properties ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [TUT, "nested/k3.keras", "finetune/after_k2.h5", "dtypes/k3_legacy.h5", "tutorial/k3_sharded.weights.json"]
)
def test_self_diff_all_identical(path):
    res = kaudit.diff(fixture(path), fixture(path), optimizer=True)
    assert res.passed and set(res.table["status"]) == {"identical"}


def test_swap_sides(tmp_path):
    def edit(f):
        g = f["model_weights"]
        g.attrs["layer_names"] = np.array(
            [str(n).encode() for n in g.attrs["layer_names"] if str(n) != "L4_bn"], dtype="S"
        )
        f["model_weights/L2_dense/L2_dense/kernel:0"][0, 0] += 1.0

    b = mutated(tmp_path, TUT, "x.h5", edit)
    ab, ba = kaudit.diff(fixture(TUT), b), kaudit.diff(b, fixture(TUT))
    assert ab.summary["only_in_a"] == ba.summary["only_in_b"] == 4
    assert ab.summary["only_in_b"] == ba.summary["only_in_a"] == 0
    assert row(ab, "L2_dense/kernel").max_abs == row(ba, "L2_dense/kernel").max_abs > 0


def test_loosening_tolerance_never_adds_failures():
    a, b = fixture("finetune/before_k2.h5"), fixture("finetune/after_k2.h5")
    prev_failed = None
    for atol in [0.0, 1e-4, 1e-3, 1e-2, 0.03, 0.05, 0.1]:
        res = kaudit.diff(a, b, atol=atol)
        failed = set(res.table.loc[~res.table["passed"], "path"])
        if prev_failed is not None:
            assert failed <= prev_failed
        prev_failed = failed
    assert prev_failed == set()


def test_statuses_are_a_closed_set():
    res = kaudit.diff(fixture("finetune/before_k2.h5"), fixture("finetune/after.keras"))
    assert set(res.table["status"]) <= set(STATUSES)


# -- real pairs (shared corpus) --------------------------------------------------------------------


def _numpy_oracle(pa, pb, pairs):
    with kaudit.load(pa) as ca, kaudit.load(pb) as cb:
        out = {}
        for p, q in pairs:
            a, b = ca[p].astype(np.float64), cb[q].astype(np.float64)
            out[p] = float(np.abs(a - b).max()) if a.shape == b.shape else None
        return out


@pytest.mark.real
@pytest.mark.parametrize(
    "a,b,n,structural",
    [
        (
            "oarriaga/oarriaga_fer2013_mini_XCEPTION.00-0.47.hdf5",
            "oarriaga/oarriaga_fer2013_mini_XCEPTION.02-0.52.hdf5",
            80,
            False,
        ),
        ("mlperf_tiny/model_ToyCar.v2020-11-30.hdf5", "mlperf_tiny/model_ToyCar.v2021-02-19-HEAD.hdf5", 56, False),
        (
            "mlperf_tiny/person_detection_vww_96.v2020-09-17.h5",
            "mlperf_tiny/person_detection_vww_96.v2020-11-11.h5",
            137,
            False,
        ),
        ("mlperf_tiny/str_ww_model.v2024-06-06.h5", "mlperf_tiny/str_ww_model.v2024-06-24.h5", 26, False),
        ("mlperf_tiny/trainedResnet_20201214_1120.h5", "mlperf_tiny/trainedResnet_20201216_945.h5", 48, True),
        (
            "mlperf_tiny/pretrainedResnet.HEAD_same_bytes_as_trainedResnet_20201218_1119.h5",
            "mlperf_tiny/trainedResnet.v2025-01-07-keras3.7.h5",
            48,
            False,
        ),
        (
            "oarriaga/oarriaga_fer2013_mini_XCEPTION.110-0.65.hdf5",
            "oarriaga/oarriaga_mini_XCEPTION_KDEF.hdf5",
            80,
            False,
        ),
    ],
)
def test_real_pairs_every_value_changes(a, b, n, structural):
    pa, pb = real(a), real(b)
    res = kaudit.diff(pa, pb)
    t = res.table
    assert len(t) == n and set(t["status"]) == {"changed"} and not res.passed
    assert (t["matched_by"] == "structure").all() == structural
    oracle = _numpy_oracle(pa, pb, zip(t["path"], t["path_b"], strict=True))
    for p, m in zip(t["path"], t["max_abs"], strict=True):
        assert m == pytest.approx(oracle[p], rel=1e-12)


@pytest.mark.real
def test_real_pair_shapes_change_by_path():
    res = kaudit.diff(
        real("oarriaga/oarriaga_fer2013_mini_XCEPTION.110-0.65.hdf5"),
        real("oarriaga/oarriaga_fer2013_mini_XCEPTION.119-0.65.hdf5"),
    )
    assert res.summary["shape_changed"] == 6 and res.summary["changed"] == 74
    assert set(res.table["matched_by"]) == {"path"}  # Keras paths shared: no mispairing by position


@pytest.mark.real
def test_real_pair_partly_identical():
    res = kaudit.diff(real("hls4ml/example-prjs_conv1d_1layer.vA.h5"), real("hls4ml/example-prjs_conv1d_1layer.vB.h5"))
    assert dict(zip(res.table["path"], res.table["status"], strict=True)) == {
        "conv1d/kernel": "changed",
        "conv1d/bias": "identical",
    }


@pytest.mark.real
def test_real_pair_identical_weights_different_bytes():
    a, b = real("nlf/nlf_model.keras"), real("nlf/nlf_best_model.keras")
    assert open(a, "rb").read() != open(b, "rb").read()
    res = kaudit.diff(a, b, optimizer=True)
    assert res.passed and set(res.table["status"]) == {"identical"}
    assert res.summary["pairs"] == 6 + 13 + 4


@pytest.mark.real
def test_real_pair_dense_vs_pruned_zero_fraction():
    pa = real("hls4ml/model_def_KERAS_check_best_model_weights.h5")
    pb = real("hls4ml/model_10P_pruned_model_weights.h5")
    res = kaudit.diff(pa, pb)
    assert res.summary["changed"] == 6
    oracle = _numpy_oracle(pa, pb, zip(res.table["path"], res.table["path_b"], strict=True))
    assert max(oracle.values()) == pytest.approx(res.table["max_abs"].max(), rel=1e-12)


REAL_PAIRS = [  # ../shared/real-models/README.md, "Related pairs", with its counts (identical, changed, shape_changed)
    (
        "oarriaga/oarriaga_fer2013_mini_XCEPTION.02-0.52.hdf5",
        "oarriaga/oarriaga_fer2013_mini_XCEPTION.51-0.63.hdf5",
        (0, 80, 0),
    ),
    (
        "oarriaga/oarriaga_fer2013_mini_XCEPTION.51-0.63.hdf5",
        "oarriaga/oarriaga_fer2013_mini_XCEPTION.110-0.65.hdf5",
        (0, 80, 0),
    ),
    (
        "oarriaga/oarriaga_fer2013_mini_XCEPTION.00-0.47.hdf5",
        "oarriaga/oarriaga_fer2013_mini_XCEPTION.110-0.65.hdf5",
        (0, 80, 0),
    ),
    ("oarriaga/oarriaga_mini_XCEPTION_KDEF.hdf5", "oarriaga/oarriaga_tiny_XCEPTION_KDEF.hdf5", (0, 1, 79)),
    (
        "mlperf_tiny/pretrainedResnet.HEAD_same_bytes_as_trainedResnet_20201218_1119.h5",
        "mlperf_tiny/pretrainedResnet.v2026-04-27.h5",
        (0, 1, 47),
    ),
    (
        "mlperf_tiny/trainedResnet_20201216_945.h5",
        "mlperf_tiny/pretrainedResnet.HEAD_same_bytes_as_trainedResnet_20201218_1119.h5",
        (0, 48, 0),
    ),
    (
        "mlperf_tiny/trainedResnet_20201214_1120.h5",
        "mlperf_tiny/pretrainedResnet.HEAD_same_bytes_as_trainedResnet_20201218_1119.h5",
        (0, 48, 0),
    ),
    ("mlperf_tiny/trainedResnet_20201216_945.h5", "mlperf_tiny/trainedResnet.v2025-01-07-keras3.7.h5", (0, 48, 0)),
    ("mlperf_tiny/str_ww_model.v2024-06-24.h5", "mlperf_tiny/str_ww_model.v2024-07-29.h5", (0, 26, 0)),
    ("mlperf_tiny/str_ww_model.v2024-07-29.h5", "mlperf_tiny/str_ww_ref_model.v2024-08-05.h5", (0, 26, 0)),
    ("mlperf_tiny/str_ww_ref_model.v2024-08-05.h5", "mlperf_tiny/str_ww_model_ref.v2024-11-27.h5", (0, 26, 0)),
    ("mlperf_tiny/str_ww_model_ref.v2024-11-27.h5", "mlperf_tiny/str_ww_ref_model.v2025-05-19-HEAD.h5", (0, 26, 0)),
    ("mlperf_tiny/str_ww_ref_model.v2024-08-05.h5", "mlperf_tiny/str_ww_ref_model.v2025-05-19-HEAD.h5", (0, 26, 0)),
    (
        "hls4ml/experiments_dense_streaming_keras_model.keras",
        "hls4ml/experiments_mlp_streaming_keras_model.keras",
        (2, 2, 0),
    ),
    ("hls4ml/example-prjs_fashion_qkeras_FashionMNIST.h5", "hls4ml/example-prjs_fashion_FashionMNIST.h5", (1, 6, 0)),
    ("hls4ml/model_def_KERAS_check_best_model_weights.h5", "hls4ml/model_10P_pruned_model_weights.h5", (0, 6, 0)),
]


@pytest.mark.real
@pytest.mark.parametrize(
    "a,b,counts", REAL_PAIRS, ids=[f"{a.split('/')[-1]}~{b.split('/')[-1]}" for a, b, _ in REAL_PAIRS]
)
def test_real_pairs_against_numpy(a, b, counts):
    """Every status and max_abs agrees with a straight numpy computation over the same tensors
    (read with h5py), and the counts with the corpus README."""
    pa, pb = real(a), real(b)
    res = kaudit.diff(pa, pb)
    s = res.summary
    assert (s["identical"], s["changed"], s["shape_changed"]) == counts
    assert s["only_in_a"] == s["only_in_b"] == 0 and not res.passed
    with kaudit.load(pa) as ca, kaudit.load(pb) as cb, h5py.File(pa) as fa, h5py.File(pb) as fb:
        for r in res.records:
            va, vb = ca.variable(r.path), cb.variable(r.path_b)
            x = fa[va.location][()] if "model_weights" in va.location or va.location in fa else ca[r.path]
            y = fb[vb.location][()] if "model_weights" in vb.location or vb.location in fb else cb[r.path_b]
            if x.shape != y.shape:
                assert r.status == "shape_changed"
                continue
            if x.dtype == y.dtype and x.tobytes() == y.tobytes():
                assert r.status == "identical" and r.max_abs == 0
            else:
                assert r.status == "changed"
                d = np.abs(x.astype(np.float64) - y.astype(np.float64))
                assert r.max_abs == pytest.approx(float(d.max()), rel=1e-12)
                assert r.n_exceed == int((d > 0).sum())


@pytest.mark.parametrize("parser", ["fast", "h5py"])
def test_big_endian_values_are_compared_as_values(tmp_path, monkeypatch, parser):
    """Identity is about values: the same bytes declared big-endian are other values (a diff
    once called them identical, comparing bytes), and the same values stored big-endian are the
    same values. Structural matching (value digests) agrees."""
    if parser == "h5py":
        monkeypatch.setenv("KAUDIT_H5_PARSER", "h5py")
    src = fixture(TUT)
    ds = "model_weights/L3_dense/L3_dense/kernel:0"
    at = message_offset(src, ds, 0x03) + 1  # the datatype's class bit field: bit 0 is the byte order
    with open(src, "rb") as fh:
        data = bytearray(fh.read())
    assert data[at] & 1 == 0  # little-endian, as Keras writes
    data[at] |= 1
    same_bytes = tmp_path / "same_bytes_other_order.h5"
    same_bytes.write_bytes(bytes(data))
    with h5py.File(src) as f:
        kernel = f[ds][()]
        start, n = f[ds].id.get_offset(), kernel.nbytes
    data[start : start + n] = kernel.astype(">f4").tobytes()
    same_values = tmp_path / "same_values_other_order.h5"
    same_values.write_bytes(bytes(data))

    r = kaudit.diff(src, str(same_bytes))
    assert row(r, "L3_dense/kernel")["status"] == "changed" and not r.passed
    assert r.summary["changed"] == 1
    with kaudit.load(str(same_bytes)) as b:
        assert np.array_equal(b["L3_dense/kernel"], kernel.view(">f4"), equal_nan=True)  # the bytes, read big-endian
    r = kaudit.diff(src, str(same_values))
    assert row(r, "L3_dense/kernel")["status"] == "identical" and r.passed
    from kaudit.stats import digest

    with kaudit.load(src) as a, kaudit.load(str(same_values)) as b:
        va, vb = a.variable("L3_dense/kernel"), b.variable("L3_dense/kernel")
        assert digest(a, va) == digest(b, vb)


# -- a model config both files share is parsed once (docs/performance.md, issue 14) ---------------


def _json_calls(monkeypatch) -> list:
    from kaudit.keras import config as keras_config

    texts: list = []
    real = keras_config.json.loads

    def counted(text, *args, **kwargs):
        texts.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(keras_config.json, "loads", counted)
    return texts


def _unshared_diff(monkeypatch, a: str, b: str):
    import contextlib

    import kaudit.compare as compare_module

    with monkeypatch.context() as m:
        m.setattr(compare_module, "shared_configs", contextlib.nullcontext)
        return kaudit.diff(a, b)


@pytest.mark.parametrize(
    "a, b, shared",
    [
        ("finetune/before_k2.h5", "finetune/after_k2.h5", True),
        ("finetune/before.keras", "finetune/after.keras", True),
        ("renamed/renamed_a.h5", "renamed/renamed_b.h5", False),
        ("finetune/before_k2.h5", "convnet/k2_full.h5", False),
    ],
)
def test_a_config_both_files_carry_is_parsed_once(a, b, shared, monkeypatch):
    """Within a diff, b's model config is not parsed again when its text is a's (compared in full):
    the same JSON value and layer tree serve both files; the result is the one each file's own
    parse gives."""
    a, b = fixture(a), fixture(b)
    want = _unshared_diff(monkeypatch, a, b)
    texts = _json_calls(monkeypatch)
    got = kaudit.diff(a, b)
    configs = [t for t in texts if "class_name" in t]  # (not metadata.json)
    assert len(configs) == (1 if shared else 2)
    assert got.table.equals(want.table)
    assert got.summary == want.summary


def test_shared_configs_compares_the_whole_text():
    from kaudit.keras import config as keras_config

    text = '{"class_name": "Sequential", "config": {"name": "m", "layers": []}}'
    other = text.replace('"m"', '"n"')  # the same length, another text
    assert keras_config.loads(text) is not keras_config.loads(text)  # no block: nothing kept
    with keras_config.shared_configs():
        first = keras_config.loads(text)
        assert keras_config.loads(text) is first
        tree = keras_config.shared(keras_config.parse_model_config, first)
        assert keras_config.shared(keras_config.parse_model_config, first) is tree
        assert keras_config.shared(keras_config.parse_model_config, dict(first)) is not tree  # another value
        with keras_config.shared_configs():  # nested: the outer block's
            assert keras_config.loads(text) is first
        assert keras_config.loads(other) == dict(first, config={"name": "n", "layers": []})
        assert keras_config.loads(text.encode()) is not first  # bytes are not that str
    assert keras_config._shared.last is None  # let go


def test_layer_specs_of_a_shared_layer_tree_are_worked_out_once(monkeypatch):
    """With one layer tree for both files (a config both carry), a Keras 3 layer's variable spec is
    worked out once (kept on the node: a pure function of its class and config)."""
    from kaudit.readers import keras_v3

    calls: list[str] = []
    real = keras_v3.keras_layers.layer_spec

    def counted(class_name, config, keras_major=3):
        calls.append(class_name)
        return real(class_name, config, keras_major)

    monkeypatch.setattr(keras_v3.keras_layers, "layer_spec", counted)
    a, b = fixture("finetune/before.keras"), fixture("finetune/after.keras")
    kaudit.load(a).close()
    one = len(calls)
    assert one > 0
    calls.clear()
    kaudit.diff(a, b)
    assert len(calls) == one  # b's layers: none again
