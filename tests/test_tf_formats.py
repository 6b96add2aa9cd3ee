"""TensorFlow checkpoints and SavedModels (issue #4): kaudit/readers/tf_checkpoint.py.

Oracles: Keras's own answer (the fixtures' ``.truth.json``, and live tf_keras / Keras 3 models
built in a subprocess), TensorFlow's checkpoint reader (``tf.train.load_checkpoint``) and plain
numpy over the tensors it returns. Nothing here compares kaudit with numbers copied from kaudit.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from .conftest import ROOT, fixture, real, run_cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TF_CKPT = fixture("tfformats/tf_ckpt")
TF_SM = fixture("tfformats/tf_savedmodel")
K2_FULL = fixture("tutorial/k2_full.h5")
INSTALL = "pip install 'kaudit[tf]'"


def _tf():
    return pytest.importorskip("tensorflow")


def _truth(name: str) -> dict:
    return json.loads((ROOT / "fixtures" / "tfformats" / f"{name}.truth.json").read_text())


def _reader(prefix: str):
    """TensorFlow's checkpoint reader (``tf.train.load_checkpoint`` without its directory lookup,
    which cannot open a prefix that is a directory, like TF1's empty-prefix layout)."""
    return _tf().compat.v1.train.NewCheckpointReader(prefix)


def _no_tensorflow(monkeypatch, how: str) -> None:
    if how == "sys.modules":
        monkeypatch.setitem(sys.modules, "tensorflow", None)
        return
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


# -- the fixtures agree with Keras's truth ----------------------------------------------------------


@pytest.mark.parametrize(
    "name, path, fmt", [("tf_ckpt", TF_CKPT, "tf-checkpoint"), ("tf_savedmodel", TF_SM, "tf-savedmodel")]
)
def test_load_agrees_with_truth(name, path, fmt):
    _tf()
    import kaudit

    truth = _truth(name)
    with kaudit.load(path) as ck:
        assert ck.format == fmt
        got = [(v.path, list(v.shape), v.dtype, v.location) for v in ck.model_variables]
        want = [(t["path"], t["shape"], t["dtype"], t["ckpt_key"]) for t in truth["variables"]]
        assert got == want  # paths (names recovered), shapes, dtypes, Keras order, the TF key
        assert ck.totals.total == truth["total"]
        assert ck.has_config == truth["has_config"]
        if truth["has_config"]:  # the SavedModel's keras_metadata.pb gives classes and trainability
            assert [v.trainable for v in ck.model_variables] == [t["trainable"] for t in truth["variables"]]
            assert [v.layer_class for v in ck.model_variables] == [t["layer_class"] for t in truth["variables"]]
            assert (ck.totals.trainable, ck.totals.non_trainable) == (truth["trainable"], truth["non_trainable"])
            assert ck.keras_version == truth["loader"].split()[-1]
        else:  # a bare checkpoint cannot tell: unknown, not guessed
            assert all(v.trainable is None and v.layer_class is None for v in ck.model_variables)
            assert ck.totals.trainable is None and ck.keras_version is None


@pytest.mark.parametrize(
    "path, prefix", [(TF_CKPT, os.path.join(TF_CKPT, "ckpt")), (TF_SM, os.path.join(TF_SM, "variables", "variables"))]
)
def test_values_and_kinds_agree_with_tensorflow(path, prefix):
    import kaudit

    reader = _reader(prefix)
    keys = set(reader.get_variable_to_shape_map())
    with kaudit.load(path) as ck:
        # every tensor but the object graph is listed once, under its key
        assert sorted(v.location for v in ck.all_variables) == sorted(keys - {"_CHECKPOINTABLE_OBJECT_GRAPH"})
        for v in ck.all_variables:
            want = np.asarray(reader.get_tensor(v.location))
            got = ck.read(v)
            assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), v.path
            if v.location.startswith("optimizer/"):
                assert v.kind == "optimizer", v.path
            elif v.location.startswith("keras_api/metrics/"):
                assert v.kind == "metric", v.path
            else:
                assert v.kind == "model", v.path


def test_iter_blocks_are_bounded_flat_and_complete():
    import kaudit

    reader = _reader(os.path.join(TF_CKPT, "ckpt"))
    with kaudit.load(TF_CKPT) as ck:
        for v in ck.all_variables:
            for n in (1, 7, 1000, 1 << 20):
                blocks = list(ck.iter_blocks(v, n))
                assert all(b.ndim == 1 and 0 < b.size <= n for b in blocks)
                flat = np.concatenate(blocks) if blocks else np.empty(0)
                assert np.array_equal(flat, np.asarray(reader.get_tensor(v.location)).reshape(-1))
        kernel = ck.variable("L2_dense/kernel")
        assert np.array_equal(ck.read(kernel)[3:5, 1:4], ck.store.read(kernel, (slice(3, 5), slice(1, 4))))
    with pytest.raises(kaudit.KauditError, match="closed"):  # close() released the reader
        ck.read(kernel)


def test_optimizer_variables_are_named_like_the_hdf5():
    """Keras's HDF5 names the optimizer weights by the variables' own names: so does the reader."""
    import kaudit

    res = kaudit.diff(K2_FULL, TF_CKPT, optimizer=True, allow_added=True)
    t = res.table
    opt = t[t["kind"] == "optimizer"]
    assert len(opt[opt["status"] == "identical"]) == len(kaudit.load(K2_FULL).optimizer_variables)
    # only the learning rate is not in the HDF5 file
    assert list(t.loc[t["status"] == "only_in_b", "path"]) == ["optimizer/learning_rate"]


# -- diffs against the Keras files of the same model ------------------------------------------------


@pytest.mark.parametrize("other", [TF_CKPT, TF_SM])
@pytest.mark.parametrize("h5", ["tutorial/k2_full.h5", "tutorial/k2_weights.h5", "tutorial/k3.keras"])
def test_diff_with_hdf5_pairs_every_variable_by_path(h5, other):
    _tf()
    import kaudit

    res = kaudit.diff(fixture(h5), other)
    s = res.summary
    assert res.passed and res.exit_code == 0
    assert s["only_in_a"] == s["only_in_b"] == 0 and s["pairs"] == s["identical"] == 9
    assert set(res.table["matched_by"]) == {"path"}


def test_cli_diff_in_process(cli):
    _tf()
    code, out, err = cli("diff", K2_FULL, TF_CKPT)
    assert code == 0, err
    code, out, err = cli("diff", K2_FULL, TF_SM, "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["passed"] and doc["summary"]["identical"] == 9 and doc["b"]["format"] == "tf-savedmodel"


def test_cli_inspect_in_process(cli):
    _tf()
    truth = _truth("tf_savedmodel")
    code, out, err = cli("inspect", TF_SM, "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert [v["path"] for v in doc["variables"]] == [t["path"] for t in truth["variables"]]
    assert doc["totals"] == {
        "total": truth["total"],
        "trainable": truth["trainable"],
        "non_trainable": truth["non_trainable"],
    }
    code, out, err = cli("inspect", TF_CKPT)
    assert code == 0 and f"Total params: {truth['total']:,}" in out


def test_cli_subprocess_diff_exit_0_and_quiet_stderr():
    _tf()
    proc = run_cli("diff", "fixtures/tutorial/k2_full.h5", "fixtures/tfformats/tf_ckpt")
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout
    assert "oneDNN" not in proc.stderr and "cuda" not in proc.stderr.lower()  # TensorFlow's start-up chatter


# -- TensorFlow missing -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["sys.modules", "__import__"])
def test_missing_tensorflow_is_one_clear_error(monkeypatch, capsys, how):
    import kaudit
    from kaudit.cli import main
    from kaudit.errors import MissingDependencyError

    _no_tensorflow(monkeypatch, how)
    # TF2 bundles are read natively: no TensorFlow needed
    assert main(["diff", K2_FULL, TF_CKPT]) == 0
    capsys.readouterr()
    # the TensorFlow reader, forced, needs it
    monkeypatch.setenv("KAUDIT_TF_READER", "tensorflow")
    with pytest.raises(MissingDependencyError) as ei:
        kaudit.load(TF_CKPT)
    assert INSTALL in str(ei.value) and "\n" not in str(ei.value)
    assert main(["diff", K2_FULL, TF_CKPT]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and INSTALL in err
    # Keras files do not need TensorFlow
    assert main(["diff", K2_FULL, fixture("tutorial/k3.keras")]) == 0


def test_reading_keras_files_never_imports_tensorflow():
    code = (
        "import sys, kaudit; r = kaudit.diff('fixtures/tutorial/k2_full.h5', 'fixtures/tutorial/k3.keras'); "
        "assert r.passed; print('tensorflow' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# -- ways of naming the checkpoint ---------------------------------------------------------------------


def _paths(p) -> list[str]:
    import kaudit

    with kaudit.load(p) as ck:
        return [v.path for v in ck.model_variables]


def test_every_way_of_naming_a_checkpoint(tmp_path, monkeypatch):
    _tf()
    want = [t["path"] for t in _truth("tf_ckpt")["variables"]]
    for p in (
        TF_CKPT,
        os.path.join(TF_CKPT, "ckpt"),
        os.path.join(TF_CKPT, "ckpt.index"),
        os.path.join(TF_CKPT, "ckpt.data-00000-of-00001"),
    ):
        assert _paths(p) == want, p
    # the state file's path is resolved relative to its directory, not to the working directory
    copy = tmp_path / "copy"
    shutil.copytree(TF_CKPT, copy)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert _paths(str(copy)) == want
    assert _paths("../copy") == want
    # TF1 layout with an empty prefix: files named '.index' and '.data-00000-of-00001'
    empty = tmp_path / "empty_prefix"
    empty.mkdir()
    shutil.copy(os.path.join(TF_CKPT, "ckpt.index"), empty / ".index")
    shutil.copy(os.path.join(TF_CKPT, "ckpt.data-00000-of-00001"), empty / ".data-00000-of-00001")
    assert _paths(str(empty)) == want
    assert _paths(str(empty / ".index")) == want


def _write_ckpt(tf, prefix: str, value: float) -> None:
    tf.train.Checkpoint(w=tf.Variable(np.full((2, 3), value, np.float32))).write(prefix)


def test_state_file_outside_the_directory_is_not_followed(tmp_path):
    tf = _tf()
    import kaudit
    from kaudit.errors import KauditError

    outside = tmp_path / "outside"
    _write_ckpt(tf, str(outside / "model"), 7.0)  # a real checkpoint the state file points at
    inside = tmp_path / "inside"
    _write_ckpt(tf, str(inside / "model"), 1.0)
    for named in (str(outside / "model"), "../outside/model"):
        (inside / "checkpoint").write_text(f'model_checkpoint_path: "{named}"\n')
        with kaudit.load(str(inside)) as ck:
            assert np.all(ck["w"] == 1.0)  # read the directory's own checkpoint
            assert any("not followed" in n for n in ck.notes)
    # nothing to fall back on: refuse, one line, exit 2
    _write_ckpt(tf, str(inside / "other"), 2.0)
    (inside / "checkpoint").write_text(f'model_checkpoint_path: "{outside / "elsewhere"}"\n')
    with pytest.raises(KauditError, match="outside the directory") as ei:
        kaudit.load(str(inside))
    assert ei.value.exit_code == 2
    # several checkpoints and no state file: refuse and say which
    (inside / "checkpoint").unlink()
    with pytest.raises(KauditError, match="2 checkpoints"):
        kaudit.load(str(inside))
    assert _paths(str(inside / "other")) == ["w"]


def test_errors_are_kaudit_errors(tmp_path, cli):
    _tf()
    from kaudit.errors import KauditError

    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(os.path.join(TF_CKPT, "ckpt.index"), broken / "ckpt.index")  # no data file
    import kaudit

    with pytest.raises(KauditError), kaudit.load(str(broken / "ckpt")) as ck:
        for v in ck.model_variables:
            ck.read(v)
    code, _out, err = cli("diff", K2_FULL, str(broken / "ckpt"))
    assert code == 2 and err.count("\n") == 1
    code, _out, err = cli("inspect", str(tmp_path / "nothing_here"))
    assert code == 2 and err.count("\n") == 1


def test_dtypes(tmp_path):
    tf = _tf()
    import kaudit

    class M(tf.Module):
        def __init__(self):
            self.a = tf.Variable(tf.cast(tf.reshape(tf.range(15, dtype=tf.float32) / 7, (3, 5)), tf.bfloat16))
            self.b = tf.Variable(tf.constant([1.5, -2.25], tf.float16))
            self.c = tf.Variable(tf.range(7, dtype=tf.int64))
            self.s = tf.Variable("a string")

    prefix = str(tmp_path / "dt" / "ckpt")
    tf.train.Checkpoint(mod=M()).write(prefix)
    reader = tf.train.load_checkpoint(prefix)
    with kaudit.load(prefix) as ck:
        assert {v.path: v.dtype for v in ck.model_variables} == {
            "mod/a": "bfloat16",
            "mod/b": "float16",
            "mod/c": "int64",
        }
        assert any("non-numeric" in n for n in ck.notes)  # the string variable
        a = ck["mod/a"]
        assert a.dtype == np.float32  # bfloat16 widened exactly
        assert np.array_equal(a, np.asarray(reader.get_tensor(ck.variable("mod/a").location)).astype(np.float32))
        assert ck["mod/b"].dtype == np.float16 and np.array_equal(ck["mod/c"], np.arange(7))


# -- live models: tf_keras (nested, RNN, attention), Keras 3, TF1 checkpoints V1 and V2 ----------------

_K2_SCRIPT = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tf_keras as K
out = sys.argv[1]
L = K.layers
inner = K.Sequential([L.Dense(4, name="L_in_0", input_shape=(5, 3)), L.BatchNormalization(name="bn_in")],
                     name="Inner_model")
x = K.Input((5, 3))
h = L.LSTM(3, return_sequences=True, name="lstm")(x)
h = L.Bidirectional(L.GRU(2, return_sequences=True), name="bi")(h)
h = L.MultiHeadAttention(2, 2, name="mha")(h, h)
h = L.TimeDistributed(L.Dense(3), name="td")(h)
h = inner(h)
frozen = L.Dense(2, name="frozen")
h = frozen(h)
h = L.Dense(2, name="out")(h)
m = K.Model(x, h, name="nest")
frozen.trainable = False
m.compile("adam", "mse")
m.train_on_batch(np.ones((2, 5, 3)), np.ones((2, 5, 2)))
m.save(os.path.join(out, "m.h5"))
m.save_weights(os.path.join(out, "ck", "ckpt"))
m.save(os.path.join(out, "sm"), save_format="tf")
trainable = {id(w) for w in m.trainable_weights}
def short(w, layer):
    parts = w.name[:-2].split("/")
    rest = parts[parts.index(layer.name) + 1:]
    rest = [p for p in rest[:-1] if not (p == "cell" or p.endswith("_cell"))] + rest[-1:]
    return "/".join(rest)
rows = []
def walk(model, prefix=""):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.weights:
            walk(layer, prefix + layer.name + "/")
        else:
            for w in layer.weights:
                rows.append({"path": prefix + layer.name + "/" + short(w, layer), "shape": list(w.shape),
                             "trainable": id(w) in trainable})
walk(m)
json.dump({"variables": rows, "weights": [list(w.shape) for w in m.weights]}, open(os.path.join(out, "truth.json"), "w"))
"""

_K3_SCRIPT = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"; os.environ["KERAS_BACKEND"] = "tensorflow"
import numpy as np, keras, tensorflow as tf
out = sys.argv[1]
m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d1"), keras.layers.BatchNormalization(name="bn"),
                      keras.layers.Dense(2, name="d2")], name="seq")
m.compile("adam", "mse")
m.train_on_batch(np.ones((2, 4)), np.ones((2, 2)))
m.save_weights(os.path.join(out, "k3.weights.h5"))
tf.train.Checkpoint(model=m, optimizer=m.optimizer, step=tf.Variable(3)).write(os.path.join(out, "k3ck", "ckpt"))
m.export(os.path.join(out, "k3export"))
rows = [{"path": l.name + "/" + w.name, "shape": list(w.shape)} for l in m.layers for w in l.weights]
json.dump({"variables": rows}, open(os.path.join(out, "truth.json"), "w"))
"""

_TF1_SCRIPT = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
out = sys.argv[1]
os.makedirs(os.path.join(out, "v1")); os.makedirs(os.path.join(out, "v2"))
tf.compat.v1.disable_eager_execution()
with tf.Graph().as_default():
    step = tf.compat.v1.train.get_or_create_global_step()
    w = tf.compat.v1.get_variable("conv1/weights", initializer=np.arange(6, dtype=np.float32).reshape(2, 3))
    b = tf.compat.v1.get_variable("conv1/biases", initializer=np.ones(3, np.float32))
    loss = tf.reduce_sum(tf.matmul(tf.ones((1, 2)), w) + b)
    train = tf.compat.v1.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
    with tf.compat.v1.Session() as s:
        s.run(tf.compat.v1.global_variables_initializer())
        s.run(train)
        tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V1).save(s, os.path.join(out, "v1", "model.ckpt"))
        tf.compat.v1.train.Saver().save(s, os.path.join(out, "v2", "model.ckpt"))
"""


def _generate(tmp_path_factory, name: str, script: str, needs: str) -> Path:
    pytest.importorskip("tensorflow")
    pytest.importorskip(needs)
    out = tmp_path_factory.mktemp(name)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"{name} generation failed:\n{proc.stderr[-3000:]}")
    return out


@pytest.fixture(scope="module")
def k2_models(tmp_path_factory):
    return _generate(tmp_path_factory, "k2", _K2_SCRIPT, "tf_keras")


@pytest.fixture(scope="module")
def k3_models(tmp_path_factory):
    return _generate(tmp_path_factory, "k3", _K3_SCRIPT, "keras")


@pytest.fixture(scope="module")
def tf1_models(tmp_path_factory):
    return _generate(tmp_path_factory, "tf1", _TF1_SCRIPT, "tensorflow")


@pytest.mark.keras
@pytest.mark.slow
def test_tf_keras_savedmodel_names_nested_rnn_attention_like_keras(k2_models):
    import kaudit

    truth = json.loads((k2_models / "truth.json").read_text())["variables"]
    with kaudit.load(str(k2_models / "sm")) as ck:
        assert ck.has_config
        assert [(v.path, list(v.shape), v.trainable) for v in ck.model_variables] == [
            (t["path"], t["shape"], t["trainable"]) for t in truth
        ]
    assert "Inner_model/L_in_0/kernel" in {t["path"] for t in truth} and "lstm/kernel" in {t["path"] for t in truth}
    res = kaudit.diff(str(k2_models / "m.h5"), str(k2_models / "sm"))
    assert res.passed and set(res.table["matched_by"]) == {"path"} and res.summary["identical"] == len(truth)


@pytest.mark.keras
@pytest.mark.slow
def test_tf_keras_checkpoint_without_metadata(k2_models):
    import kaudit

    truth = json.loads((k2_models / "truth.json").read_text())["variables"]
    with kaudit.load(str(k2_models / "ck")) as ck:
        got = [v.path for v in ck.model_variables]
        assert not ck.has_config and all(v.trainable is None for v in ck.model_variables)
    assert [list(v) for v in [kaudit.load(str(k2_models / "ck")).variable(p).shape for p in got]] == [
        t["shape"] for t in truth
    ]  # Keras's model.weights order
    # names come from the variables' own names; the nested model's own name is not in them
    outer = {t["path"] for t in truth if not t["path"].startswith("Inner_model/")}
    assert outer <= set(got)
    assert {p for p in got if p.startswith("layer_with_weights-")} == {
        "layer_with_weights-4/" + t["path"].split("/", 1)[1] for t in truth if t["path"].startswith("Inner_model/")
    }
    res = kaudit.diff(str(k2_models / "m.h5"), str(k2_models / "ck"))
    s = res.summary
    assert res.passed and s["only_in_a"] == s["only_in_b"] == 0 and s["identical"] == len(truth)


@pytest.mark.keras
@pytest.mark.slow
def test_keras3_checkpoint_and_export(k3_models):
    import kaudit

    truth = [t["path"] for t in json.loads((k3_models / "truth.json").read_text())["variables"]]
    for name in ("k3ck", "k3export"):
        with kaudit.load(str(k3_models / name)) as ck:
            assert sorted(v.path for v in ck.model_variables) == sorted(truth), name
        res = kaudit.diff(str(k3_models / "k3.weights.h5"), str(k3_models / name))
        assert res.passed and set(res.table["matched_by"]) == {"path"}, name
    with kaudit.load(str(k3_models / "k3ck")) as ck:
        kinds = {v.path: v.kind for v in ck.all_variables}
        assert kinds["step"] == "optimizer"  # tf.train.Checkpoint(step=...) bookkeeping
        assert sum(k == "optimizer" for k in kinds.values()) == 1 + 2 + 2 * 6  # step, iteration, lr, m/v


def test_tf1_checkpoints_v1_and_v2(tf1_models):
    import kaudit
    from kaudit.readers import sniff

    v1 = str(tf1_models / "v1" / "model.ckpt")
    assert sniff(v1) == "tf"
    reader = _reader(str(tf1_models / "v2" / "model.ckpt"))
    keys = reader.get_variable_to_shape_map()
    for p in (v1, str(tf1_models / "v1"), str(tf1_models / "v2")):
        with kaudit.load(p) as ck:
            assert sorted(v.location for v in ck.all_variables) == sorted(keys)
            assert [v.path for v in ck.model_variables] == ["conv1/biases", "conv1/weights"]
            assert {v.path for v in ck.optimizer_variables} == {
                "conv1/weights/Adam",
                "conv1/weights/Adam_1",
                "conv1/biases/Adam",
                "conv1/biases/Adam_1",
                "beta1_power",
                "beta2_power",
                "global_step",
            }
            for v in ck.all_variables:
                assert np.array_equal(ck.read(v), reader.get_tensor(v.location)), v.path
    res = kaudit.diff(v1, str(tf1_models / "v2"), optimizer=True)
    assert res.passed and res.summary["identical"] == len(keys)


# -- the real-model corpus ---------------------------------------------------------------------------


def _h5_value(path: str, location: str) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        return np.asarray(f[location])


def _content_pairs(h5: str, ckpt: str, ckpt_prefix: str):
    """The oracle: for each HDF5 model variable, the checkpoint model tensors bit-identical to it."""
    import kaudit

    reader = _reader(ckpt_prefix)
    with kaudit.load(h5) as a, kaudit.load(ckpt) as b:
        tb = {v.location: np.asarray(reader.get_tensor(v.location)) for v in b.model_variables}
        out = {}
        for v in a.model_variables:
            x = _h5_value(h5, v.location)
            out[v.location] = [k for k, y in tb.items() if y.shape == x.shape and y.tobytes() == x.tobytes()]
    return out


@pytest.mark.real
@pytest.mark.parametrize("model, n", [("MTT_musicnn", 64), ("MTT_vgg", 36)])
def test_musicnn_keras_vs_tf1_checkpoint(model, n):
    _tf()
    import kaudit

    h5 = real(f"musicnn/musicnn_keras_{model}.h5")
    ck = real(f"musicnn/musicnn_tfckpt_{model}")
    oracle = _content_pairs(h5, ck, ck + "/")
    assert len(oracle) == n and all(len(m) == 1 for m in oracle.values())  # unambiguous by content
    res = kaudit.diff(h5, ck)
    s = res.summary
    assert res.exit_code == 0 and res.passed
    assert s["pairs"] == s["identical"] == n and s["only_in_a"] == s["only_in_b"] == 0
    with kaudit.load(h5) as a, kaudit.load(ck) as b:
        loc_a = {v.path: v.location for v in a.model_variables}
        loc_b = {v.path: v.location for v in b.model_variables}
        assert len(b.model_variables) == n
        assert all(v.kind == "optimizer" for v in b.optimizer_variables)
    for _, row in res.table.iterrows():  # kaudit paired each variable with its bit-identical twin
        assert oracle[loc_a[row["path"]]] == [loc_b[row["path_b"]]], row["path"]
    assert res.exit_code == 0
    proc = run_cli("diff", h5, ck, "-q")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.real
def test_phasenet_epochs_every_tensor_changes():
    _tf()
    import kaudit

    a = real("phasenet/phasenet_190703_epoch50_tfckpt/model_50.ckpt.index")[: -len(".index")]  # prefixes
    b = real("phasenet/phasenet_190703_epoch95_tfckpt/model_95.ckpt.index")[: -len(".index")]
    ra, rb = _reader(a), _reader(b)
    for optimizer in (False, True):
        res = kaudit.diff(a, b, optimizer=optimizer)
        assert res.exit_code == 1 and not res.passed
        t = res.table
        assert (t["matched_by"] == "path").all() and (t["path"] == t["path_b"]).all()
        with kaudit.load(a) as ck:
            loc = {v.path: v.location for v in ck.all_variables}
            assert len(ck.model_variables) == 93
        for _, row in t.iterrows():
            x = np.asarray(ra.get_tensor(loc[row["path"]])).astype(np.float64)
            y = np.asarray(rb.get_tensor(loc[row["path"]])).astype(np.float64)
            want = "identical" if np.array_equal(x, y) else "changed"
            assert row["status"] == want, row["path"]
            assert row["max_abs"] == float(np.max(np.abs(x - y))), row["path"]
        if not optimizer:
            assert len(t) == 93 and (t["status"] == "changed").all()
    proc = run_cli("diff", a, b, "-q")
    assert proc.returncode == 1, proc.stderr


@pytest.mark.real
def test_tfserving_savedmodels():
    _tf()
    import kaudit

    v123 = real("tfserving/tfserving_saved_model_half_plus_two_2_versions/00000123")
    v124 = real("tfserving/tfserving_saved_model_half_plus_two_2_versions/00000124")
    res = kaudit.diff(v123, v124)
    assert res.exit_code == 0 and res.summary["identical"] == res.summary["pairs"] == 3

    two = real("tfserving/tfserving_saved_model_half_plus_two_cpu/00000123")
    three = real("tfserving/tfserving_saved_model_half_plus_three/00000123")
    r2, r3 = _reader(two + "/variables/variables"), _reader(three + "/variables/variables")
    res = kaudit.diff(two, three)
    assert res.exit_code == 1
    status = dict(zip(res.table["path"], res.table["status"], strict=True))
    shared = set(r2.get_variable_to_shape_map()) & set(r3.get_variable_to_shape_map())
    for k in shared:
        same = np.array_equal(r2.get_tensor(k), r3.get_tensor(k))
        assert status[k] == ("identical" if same else "changed"), k
    for k in set(r2.get_variable_to_shape_map()) - shared:
        assert status[k] == "only_in_a", k
    assert status == {"a": "identical", "c": "identical", "b": "changed", "a2": "only_in_a", "c2": "only_in_a"}


@pytest.mark.real
def test_checkpoint_v1_files():
    _tf()
    import kaudit

    good_file = real("tfserving/tfserving_session_bundle_half_plus_two/00000123/export-00000-of-00001")
    good_dir = real("tfserving/tfserving_session_bundle_half_plus_two/00000123")
    bad_dir = real("tfserving/tfserving_bad_half_plus_two/00000123")
    bad_file = bad_dir + "/export"
    rg, rb = _reader(good_file), _reader(bad_file)
    with kaudit.load(bad_dir) as ck:  # its state file names /tmp/...: not followed
        assert any("not followed" in n for n in ck.notes)
        assert sorted(v.path for v in ck.model_variables) == sorted(rb.get_variable_to_shape_map())
    for a, b in ((good_file, bad_dir), (good_dir, bad_file)):
        res = kaudit.diff(a, b)
        assert res.exit_code == 0 and res.summary["identical"] == res.summary["pairs"] == 2
        t = res.table
        assert (t["matched_by"] == "values").all()  # paired by identical values
        for _, row in t.iterrows():  # paired by value: a <-> Variable (0.5), b <-> Variable_1 (2.0)
            assert np.array_equal(rg.get_tensor(row["path"]), rb.get_tensor(row["path_b"]))
        assert dict(zip(t["path"], t["path_b"], strict=True)) == {"a": "Variable", "b": "Variable_1"}
    # pair 19: checkpoint V1 vs SavedModel (V2)
    sm = real("tfserving/tfserving_saved_model_half_plus_two_cpu/00000123")
    res = kaudit.diff(good_file, sm)
    status = dict(zip(res.table["path"], res.table["status"], strict=True))
    assert status == {"a": "identical", "b": "identical", "a2": "only_in_b", "c": "only_in_b", "c2": "only_in_b"}


@pytest.mark.real
def test_keras_savedmodel_from_tf23_uses_object_graph_metadata():
    _tf()
    import kaudit

    a = real("mlperf_tiny/aww_pretrained_model_savedmodel.v2020-11-09")
    b = real("mlperf_tiny/kws_ref_model_savedmodel.v2021-02-11-HEAD")
    for p in (a, b):
        with kaudit.load(p) as ck:
            assert ck.has_config and len(ck.model_variables) == 56
            assert ck.totals.trainable + ck.totals.non_trainable == ck.totals.total
            # Keras's rule: BatchNormalization moving statistics are the non-trainable variables
            assert {v.name for v in ck.model_variables if v.trainable is False} == {"moving_mean", "moving_variance"}
    res = kaudit.diff(a, b)
    s = res.summary
    assert res.exit_code == 1 and s["pairs"] == 56 and s["shape_changed"] == 1 and s["changed"] == 55
