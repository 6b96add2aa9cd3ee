"""The canonical variable table agrees with Keras's own answer (the .truth.json files written by
fixtures/make_fixtures.py from the live models, and by the shared corpus's maintainers)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

import kaudit
from kaudit.errors import KauditError, VariableNotFoundError

from .conftest import FIXTURES, REAL, ROOT, fixture, load_truth, real, truth_files

TF_DIRS = ("tf_ckpt", "tf_savedmodel", "tfckpt", "savedmodel", "tfserving", "phasenet")


def _keras_files(root):
    out = []
    for t in truth_files(root):
        target = t.with_name(t.name[: -len(".truth.json")])
        if any(d in str(target) for d in TF_DIRS) or target.is_dir():
            continue
        out.append(pytest.param(t, id=str(t.relative_to(root))))
    return out


def assert_agrees_with_keras(path: str, truth: dict) -> None:
    ckpt = kaudit.load(path)
    try:
        mine = [(v.path, list(v.shape), v.dtype) for v in ckpt.model_variables]
        theirs = [(v["path"], list(v["shape"]), v["dtype"]) for v in truth["variables"]]
        if truth.get("has_config", True) and ckpt.has_config:
            assert mine == theirs  # same paths, same order (Keras's model.weights order)
            assert [v.trainable for v in ckpt.model_variables] == [v["trainable"] for v in truth["variables"]]
            t = ckpt.totals
            assert (t.total, t.trainable, t.non_trainable) == (
                truth["total"],
                truth["trainable"],
                truth["non_trainable"],
            )
        else:
            # no config in the file: same variables; trainability cannot be known; the order is
            # Keras's for Keras 3 weights files (the order the layers were written, the index's
            # weight_map), unknown for others
            if ckpt.format in ("keras3-weights", "keras3-sharded"):
                assert mine == theirs
            assert sorted(mine) == sorted(theirs)
            assert all(v.trainable is None for v in ckpt.model_variables)
            assert ckpt.totals.total == truth["total"]
            assert ckpt.totals.trainable is None
    finally:
        ckpt.close()


@pytest.mark.parametrize("truth_path", _keras_files(FIXTURES))
def test_fixture_agrees_with_keras(truth_path):
    target = truth_path.with_name(truth_path.name[: -len(".truth.json")])
    assert_agrees_with_keras(str(target), load_truth(truth_path))


@pytest.mark.real
@pytest.mark.parametrize("truth_path", _keras_files(REAL) or [pytest.param(None, id="corpus-absent")])
def test_real_model_agrees_with_keras(truth_path):
    if truth_path is None:
        pytest.skip("shared real-model corpus not available")
    target = truth_path.with_name(truth_path.name[: -len(".truth.json")])
    assert_agrees_with_keras(str(target), load_truth(truth_path))


@pytest.mark.real
@pytest.mark.parametrize(
    "rel,total,n",
    [
        ("hls4ml/QKERAS_3layer_fullmodel.h5", 4389, 8),
        ("hls4ml/example-prjs_fashion_FashionMNIST.h5", 257, 7),
        ("hls4ml/example-prjs_fashion_qkeras_FashionMNIST.h5", 257, 7),
        ("hls4ml/gru_weights.h5", 2145, 7),
        ("hls4ml/lstm_weights.h5", 1557, 5),
        ("hls4ml/model_10P_pruned_model_weights.h5", 669706, 6),
        ("hls4ml/model_def_KERAS_check_best_model_weights.h5", 669706, 6),
        ("snake/riyadkt_snake_model.weights.h5", 23812, 8),
    ],
)
def test_real_files_without_truth_read(rel, total, n):
    """Custom layers and weights-only files: read with what can be known, counts from h5py."""
    path = real(rel)
    ckpt = kaudit.load(path)
    assert len(ckpt) == n
    assert ckpt.totals.total == total
    # whatever the names, every value is the file's dataset
    with h5py.File(path, "r") as f:
        for v in ckpt.model_variables:
            root = f.get("model_weights", f)
            np.testing.assert_array_equal(ckpt.read(v), root[v.location.split("model_weights/", 1)[-1]][()])
    ckpt.close()


def test_custom_layer_trainability_is_unknown_not_guessed():
    ckpt = kaudit.load(real("hls4ml/example-prjs_fashion_FashionMNIST.h5"))
    assert {v.layer_class for v in ckpt.model_variables} == {"QConv2DBatchnorm"}
    assert all(v.trainable is None for v in ckpt.model_variables)
    assert any("not a Keras built-in" in n for n in ckpt.notes)
    iteration = [v for v in ckpt.model_variables if v.name == "iteration"]
    assert iteration and iteration[0].dtype == "int64"


# -- the tutorial's API ---------------------------------------------------------------------------

TUTORIAL_FORMATS = [
    "k2_full.h5",
    "k2_weights.h5",
    "k3.keras",
    "k3.weights.h5",
    "k3_legacy.h5",
    "k3_sharded.weights.json",
]


@pytest.fixture
def tutorial():
    with kaudit.load(fixture("tutorial/k2_full.h5")) as c:
        yield c


def test_tutorial_totals_and_listing(tutorial):
    t = tutorial.totals
    assert (t.total, t.trainable, t.non_trainable) == (1025, 1023, 2)
    assert tutorial.totals.summary_lines() == [
        "Total params: 1,025",
        "Trainable params: 1,023",
        "Non-trainable params: 2",
    ]
    assert [v.path for v in tutorial.weights] == [
        "L0_conv2d/kernel",
        "L0_conv2d/bias",
        "L2_dense/kernel",
        "L3_dense/kernel",
        "L3_dense/bias",
        "L4_bn/gamma",
        "L4_bn/beta",
        "L4_bn/moving_mean",
        "L4_bn/moving_variance",
    ]
    assert [w.shape for w in tutorial.get_weights()] == [
        (3, 3, 1, 1),
        (1,),
        (100, 10),
        (10, 1),
        (1,),
        (1,),
        (1,),
        (1,),
        (1,),
    ]
    assert list(tutorial.variables.columns) == [
        "path",
        "layer",
        "layer_class",
        "name",
        "shape",
        "dtype",
        "trainable",
        "params",
        "kind",
        "location",
    ]


def test_tutorial_layer_view_like_keras(tutorial):
    l3 = tutorial.layer("L3_dense")
    assert [w.name for w in l3.weights] == ["kernel", "bias"]
    with h5py.File(fixture("tutorial/k2_full.h5")) as f:
        np.testing.assert_array_equal(l3.kernel, f["model_weights/L3_dense/L3_dense/kernel:0"][()])
        np.testing.assert_array_equal(tutorial["L3_dense/bias"], f["model_weights/L3_dense/L3_dense/bias:0"][()])
    assert tutorial.layer("L2_dense").bias is None  # use_bias=False
    bn = tutorial.layer("L4_bn")
    assert [w.name for w in bn.trainable_weights] == ["gamma", "beta"]
    assert [w.name for w in bn.non_trainable_weights] == ["moving_mean", "moving_variance"]
    assert len(tutorial.trainable_weights) == 7 and len(tutorial.non_trainable_weights) == 2
    with pytest.raises(VariableNotFoundError, match="did you mean"):
        tutorial["L3_dense/kernal"]


def test_nested_paths_like_the_tutorial():
    with kaudit.load(fixture("nested/k2_full.h5")) as c:
        assert [v.path for v in c.weights] == [
            "Inner_model/L_in_0/kernel",
            "Inner_model/L_in_0/bias",
            "Inner_model/L_in_1/kernel",
            "Inner_model/L_in_1/bias",
            "L_out_1/kernel",
            "L_out_1/bias",
        ]
        assert c.totals.total == 101121
        assert c.layer("L_in_0").kernel.shape == (1000, 100)


@pytest.mark.parametrize("name", TUTORIAL_FORMATS)
def test_every_format_same_values(name, tutorial):
    """The same model saved in every format: same paths and bit-identical values."""
    with kaudit.load(fixture(f"tutorial/{name}")) as other:
        assert sorted(v.path for v in other.weights) == sorted(v.path for v in tutorial.weights)
        for v in tutorial.weights:
            np.testing.assert_array_equal(other[v.path], tutorial[v.path])


def test_optimizer_state_kept_apart(tutorial):
    opt = tutorial.optimizer_variables
    assert opt and all(v.kind == "optimizer" for v in opt)
    assert all(v.path.startswith("optimizer/") for v in opt)
    assert not any(v.kind != "model" for v in tutorial.weights)
    assert len(tutorial.table(optimizer=True)) == len(tutorial.weights) + len(opt)


def test_recognised_by_content_not_extension(tmp_path):
    dst = tmp_path / "misnamed.keras"
    shutil.copy(fixture("tutorial/k2_full.h5"), dst)
    with kaudit.load(dst) as c:
        assert c.format == "keras2-h5" and c.totals.total == 1025
    dst2 = tmp_path / "archive.h5"
    shutil.copy(fixture("tutorial/k3.keras"), dst2)
    with kaudit.load(dst2) as c:
        assert c.format == "keras3-archive" and c.totals.total == 1025


@pytest.mark.parametrize("name", ["k3.keras", "k3.weights.h5", "k3_legacy.h5"])
def test_bfloat16_and_float16(name):
    truth = load_truth(FIXTURES / "dtypes" / f"{name}.truth.json")
    with kaudit.load(fixture(f"dtypes/{name}")) as c:
        dtypes = {v.path: v.dtype for v in c.weights}
        assert dtypes == {v["path"]: v["dtype"] for v in truth["variables"]}
        assert "bfloat16" in dtypes.values() and "float16" in dtypes.values()
        bf = next(v for v in c.weights if v.dtype == "bfloat16")
        values = c.read(bf)
        assert values.dtype == np.float32  # widened exactly
        # exactness: every widened value has its low 16 bits zero
        assert not (values.view(np.uint32) & 0xFFFF).any()


def test_bfloat16_values_match_keras(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with kaudit.load(fixture("dtypes/k3.weights.h5")) as c, h5py.File(fixture("dtypes/k3.weights.h5")) as f:
        for v in c.weights:
            if v.dtype == "bfloat16":
                raw = f[v.location][()]
                expect = np.frombuffer(raw.tobytes(), dtype=ml_dtypes.bfloat16).reshape(raw.shape).astype(np.float32)
                np.testing.assert_array_equal(c.read(v), expect)


def test_trainable_from_config_frozen_backbone():
    for name in ("before_k2.h5", "before.keras"):
        with kaudit.load(fixture(f"finetune/{name}")) as c:
            backbone = [v for v in c.weights if v.path.startswith("backbone/")]
            head = [v for v in c.weights if v.path.startswith("head_")]
            assert backbone and all(v.trainable is False for v in backbone)
            assert head and all(v.trainable is True for v in head)


def test_weights_only_file_says_trainability_unknown():
    with kaudit.load(fixture("tutorial/k2_weights.h5")) as c:
        assert all(v.trainable is None for v in c.weights)
        assert c.totals.trainable is None and c.totals.total == 1025
        assert not c.has_config


def test_hdf5_path_never_imports_tensorflow():
    code = (
        "import sys, kaudit\n"
        "from kaudit.inspection import inspect\n"
        f"for f in {[fixture('tutorial/' + n) for n in TUTORIAL_FORMATS]!r}:\n"
        "    inspect(f)\n"
        f"kaudit.diff({fixture('tutorial/k2_full.h5')!r}, {fixture('tutorial/k3.keras')!r})\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(not hasattr(os, "preadv"), reason="the fast path is taken only where os.preadv exists")
def test_files_the_fast_parser_reads_never_import_h5py():
    """h5py (~16 ms to import) loads only when a file needs it: not for files the metadata parser
    reads, values included; and it does load for one the parser leaves to it."""
    code = (
        "import os, sys, kaudit\n"
        "from kaudit.inspection import inspect\n"
        f"for f in {[fixture('tutorial/' + n) for n in TUTORIAL_FORMATS]!r}:\n"
        "    inspect(f)\n"
        f"kaudit.diff({fixture('tutorial/k2_full.h5')!r}, {fixture('tutorial/k3.keras')!r})\n"
        "print('h5py' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("KAUDIT_H5_PARSER", "KAUDIT_NO_DIRECT_READ")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0 and r.stdout.split() == ["False"], r.stderr
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=dict(env, KAUDIT_H5_PARSER="h5py")
    )
    assert r.returncode == 0 and r.stdout.split() == ["True"], r.stderr


def test_sharded_index_with_one_shard_missing_is_an_error(tmp_path):
    for p in (FIXTURES / "tutorial").glob("k3_sharded*"):
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "k3_sharded_00001.weights.h5").unlink()
    with pytest.raises(KauditError, match="no such file"):
        kaudit.load(tmp_path / "k3_sharded.weights.json")


def test_keras1_layout_reads_with_what_can_be_known(tmp_path):
    """Keras 1 files: Sequential config is a list, weight names like dense_1_W."""
    import json

    path = tmp_path / "keras1.h5"
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "1.2.2"
        f.attrs["model_config"] = json.dumps(
            {
                "class_name": "Sequential",
                "config": [
                    {"class_name": "Dense", "config": {"name": "dense_1", "output_dim": 4, "trainable": True}},
                    {"class_name": "Dropout", "config": {"name": "dropout_1"}},
                ],
            }
        )
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = np.array([b"dense_1", b"dropout_1"])
        d = g.create_group("dense_1")
        d.attrs["weight_names"] = np.array([b"dense_1_W", b"dense_1_b"])
        d["dense_1_W"] = w
        d["dense_1_b"] = np.zeros(4, np.float32)
        g.create_group("dropout_1").attrs["weight_names"] = np.array([], dtype="S1")
    with kaudit.load(path) as c:
        assert c.format == "keras2-h5" and c.keras_version == "1.2.2"
        assert [v.path for v in c.weights] == ["dense_1/W", "dense_1/b"]
        np.testing.assert_array_equal(c["dense_1/W"], w)
        assert c.totals.total == 16


def test_the_collector_is_paused_while_a_table_is_read_and_restored_after(tmp_path, monkeypatch):
    """The cyclic garbage collector is off while a table is read (a reader's objects are never
    cyclic garbage: collections would walk them for nothing) and on again afterwards, after a
    refused file too; a caller who had it off keeps it off."""
    import gc

    import kaudit.readers as R

    seen = []
    real_status = R.status
    monkeypatch.setattr(R, "status", lambda display: (seen.append(gc.isenabled()), real_status(display)))
    good = FIXTURES / "tutorial" / "k2_full.h5"
    bad = tmp_path / "bad.h5"
    bad.write_bytes(good.read_bytes()[:4096])
    assert gc.isenabled()
    kaudit.load(good)
    assert seen == [False] and gc.isenabled()
    with pytest.raises(kaudit.KauditError):
        kaudit.load(bad)
    assert gc.isenabled()
    kaudit.diff(good, good, policy=False)
    assert gc.isenabled() and seen[-2:] == [False, False]
    gc.disable()
    try:
        kaudit.load(good)
        assert not gc.isenabled()
    finally:
        gc.enable()
