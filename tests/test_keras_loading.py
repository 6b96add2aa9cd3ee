"""kaudit assigns values and trainable flags as Keras's own loader does, or refuses the file.

Each case builds a small model with Keras 3 or tf_keras, saves it, hand-edits the file with h5py
the way a pull request can (swapped ``name`` attributes or group paths in a Keras 3 weights file,
reordered ``layer_names`` / ``weight_names`` or a reordered config in a legacy HDF5 file, a toggled
``trainable`` flag of a model in the config), then loads the edited file with Keras itself and
records, per canonical path, the value Keras put into that layer's weight and whether it is in
``model.trainable_weights``. kaudit must read the same, or refuse the file where its redundant
descriptions disagree (docs/formats.md, "How values are assigned").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kaudit
from kaudit.errors import CorruptFileError

from .conftest import run_cli

pytestmark = pytest.mark.keras

BUILD = textwrap.dedent(r"""
    import json, os, shutil, sys, tempfile, zipfile
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    flavour, out = sys.argv[1], sys.argv[2]
    if flavour == "k3":
        import keras
    else:
        import tf_keras as keras
    import h5py
    import numpy as np

    L = keras.layers

    def seq(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((4,)), L.Dense(4, name="d01"), L.BatchNormalization(name="bn"),
                                 L.Dense(4, name="d02")], name="seqm")

    def fun(seed):
        keras.utils.set_random_seed(seed)
        i = keras.Input((4,))
        x = L.Dense(4, name="d02")(L.BatchNormalization(name="bn")(L.Dense(4, name="d01")(i)))
        return keras.Model(i, x, name="funm")

    def nested(seed):
        keras.utils.set_random_seed(seed)
        i = keras.Input((4,))
        # a legacy group lists trainable weights first: abn's gamma and beta, a2, then a1, abn's moving statistics
        s = keras.Sequential([keras.Input((4,)), L.Dense(4, name="a1", trainable=False),
                              L.BatchNormalization(name="abn"), L.Dense(4, name="a2")], name="inner_seq")
        fi = keras.Input((4,))
        f = keras.Model(fi, L.Dense(4, name="b1")(fi), name="inner_fun")
        return keras.Model(i, L.Dense(2, name="out")(f(s(i))), name="outer")

    def moments(m):
        # give the BatchNormalization moving statistics distinct values
        for layer in m.layers:
            if isinstance(layer, L.BatchNormalization):
                layer.set_weights([np.arange(4) + 1.0, np.arange(4) - 7.0, np.arange(4) * 0.5, np.arange(4) + 2.0])
        return m

    def nested_moments(m):
        moments(m.get_layer("inner_seq"))
        return m

    def walk(model, prefix, trainable, out):
        for layer in model.layers:
            if hasattr(layer, "layers"):
                walk(layer, prefix + layer.name + "/", trainable, out)
                continue
            for w in layer.weights:
                short = w.name.split("/")[-1].split(":")[0]
                out[prefix + layer.name + "/" + short] = (np.asarray(w.numpy()), id(w) in trainable)

    # -- hand edits ------------------------------------------------------------------------------
    def swap_attr(f, a, b, attr="name"):
        x, y = f[a].attrs[attr], f[b].attrs[attr]
        f[a].attrs[attr], f[b].attrs[attr] = y, x

    def swap_groups(f, a, b):
        f.move(a, a + "_tmp"); f.move(b, a); f.move(a + "_tmp", b)

    def swap_list(obj, attr, x, y):
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in obj.attrs[attr]]
        def at(x):
            return next(k for k, n in enumerate(names) if n.split(":")[0] == x or n.split(":")[0].endswith("/" + x))
        i, j = at(x), at(y)
        names[i], names[j] = names[j], names[i]
        obj.attrs[attr] = np.array([n.encode() for n in names])

    def edit_config(config, how):
        top = config["config"]
        if how == "top_frozen":
            top["trainable"] = False
        elif how == "nested_frozen":
            for entry in top["layers"]:
                if entry.get("class_name") in ("Sequential", "Functional", "Model"):
                    entry["config"]["trainable"] = False
        elif how == "reorder":
            layers = top["layers"]
            i = next(k for k, e in enumerate(layers) if e["config"]["name"] == "d01")
            j = next(k for k, e in enumerate(layers) if e["config"]["name"] == "d02")
            layers[i], layers[j] = layers[j], layers[i]
        return config

    def edited_keras(src, dst, weights_edit=None, config_edit=None):
        with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as o:
            for n in z.namelist():
                data = z.read(n)
                if n == "model.weights.h5" and weights_edit:
                    with tempfile.TemporaryDirectory() as tmp:
                        p = os.path.join(tmp, "w.h5")
                        open(p, "wb").write(data)
                        with h5py.File(p, "r+") as f:
                            weights_edit(f)
                        data = open(p, "rb").read()
                if n == "config.json" and config_edit:
                    data = json.dumps(edit_config(json.loads(data), config_edit)).encode()
                o.writestr(n, data)

    def edited_h5(src, dst, edit=None, config_edit=None):
        shutil.copy(src, dst)
        with h5py.File(dst, "r+") as f:
            if edit:
                edit(f)
            if config_edit:
                f.attrs["model_config"] = json.dumps(edit_config(json.loads(f.attrs["model_config"]), config_edit))

    # -- what Keras loads --------------------------------------------------------------------------
    def keras_loads(path, make=None):
        try:
            if make is not None:  # weights only: into a fresh model of the same architecture
                m = make(99)
                m.load_weights(path)
            elif flavour == "k3":
                m = keras.saving.load_model(path, safe_mode=True, compile=False)
            else:
                m = keras.models.load_model(path, compile=False)
        except Exception as exc:  # noqa: BLE001 -- Keras refusing the file is an answer
            return {"keras_error": f"{type(exc).__name__}: {exc}"[:300]}
        got = {}
        walk(m, "", {id(v) for v in m.trainable_weights}, got)
        np.savez(path + ".npz", **{k: v for k, (v, _t) in got.items()})
        return {"keras_error": None, "trainable": {k: t for k, (_v, t) in got.items()}}

    cases = {}

    def case(name, original, edited, make=None):
        cases[name] = {"original": original, "file": edited, "weights_only": make is not None,
                       "keras": keras_loads(os.path.join(out, edited), make),
                       "keras_original": keras_loads(os.path.join(out, original), make)}

    def p(name):
        return os.path.join(out, name)

    if flavour == "k3":
        moments(seq(1)).save(p("seq.keras")); moments(fun(1)).save(p("fun.keras")); nested_moments(nested(1)).save(p("nested.keras"))
        moments(seq(1)).save(p("seq_k3.h5")); moments(fun(1)).save(p("fun_k3.h5"))
        nested_moments(nested(1)).save(p("nested_k3.h5"))
        # Keras 3 archives: groups are loaded by path, the 'name' attribute is never read
        edited_keras(p("seq.keras"), p("seq_attr_swap.keras"),
                     lambda f: swap_attr(f, "layers/dense/vars", "layers/dense_1/vars"))
        case("k3_keras_seq_name_attrs_swapped", "seq.keras", "seq_attr_swap.keras")
        edited_keras(p("fun.keras"), p("fun_group_swap.keras"), lambda f: swap_groups(f, "layers/dense", "layers/dense_1"))
        case("k3_keras_functional_groups_swapped", "fun.keras", "fun_group_swap.keras")
        edited_keras(p("nested.keras"), p("nested_attr_swap.keras"),
                     lambda f: swap_attr(f, "layers/sequential/layers/dense/vars",
                                         "layers/sequential/layers/dense_1/vars"))
        case("k3_keras_nested_name_attrs_swapped", "nested.keras", "nested_attr_swap.keras")
        edited_keras(p("seq.keras"), p("seq_group_missing.keras"), lambda f: f.move("layers/dense_1", "layers/dense_9"))
        case("k3_keras_seq_group_renamed", "seq.keras", "seq_group_missing.keras")
        # the model's own trainable flag
        edited_keras(p("seq.keras"), p("seq_top_frozen.keras"), config_edit="top_frozen")
        case("k3_keras_seq_top_flag_off", "seq.keras", "seq_top_frozen.keras")
        edited_keras(p("fun.keras"), p("fun_top_frozen.keras"), config_edit="top_frozen")
        case("k3_keras_functional_top_flag_off", "fun.keras", "fun_top_frozen.keras")
        edited_keras(p("nested.keras"), p("nested_frozen.keras"), config_edit="nested_frozen")
        case("k3_keras_nested_model_flags_off", "nested.keras", "nested_frozen.keras")
        # legacy HDF5 written by Keras 3: loaded by position
        edited_h5(p("seq_k3.h5"), p("seq_k3_layer_names.h5"), lambda f: swap_list(f["model_weights"], "layer_names", "d01", "d02"))
        case("k3_h5_layer_names_swapped", "seq_k3.h5", "seq_k3_layer_names.h5")
        edited_h5(p("seq_k3.h5"), p("seq_k3_weight_names.h5"),
                  lambda f: swap_list(f["model_weights/bn"], "weight_names", "gamma", "beta"))
        case("k3_h5_weight_names_swapped", "seq_k3.h5", "seq_k3_weight_names.h5")
        edited_h5(p("nested_k3.h5"), p("nested_k3_weight_names.h5"),
                  lambda f: swap_list(f["model_weights/inner_seq"], "weight_names", "a1/kernel", "a2/kernel"))
        case("k3_h5_nested_weight_names_swapped", "nested_k3.h5", "nested_k3_weight_names.h5")
        edited_h5(p("fun_k3.h5"), p("fun_k3_top_frozen.h5"), config_edit="top_frozen")
        case("k3_h5_functional_top_flag_off", "fun_k3.h5", "fun_k3_top_frozen.h5")
        edited_h5(p("nested_k3.h5"), p("nested_k3_frozen.h5"), config_edit="nested_frozen")
        case("k3_h5_nested_model_flags_off", "nested_k3.h5", "nested_k3_frozen.h5")
    else:
        moments(seq(1)).save(p("seq_k2.h5")); moments(fun(1)).save(p("fun_k2.h5")); nested_moments(nested(1)).save(p("nested_k2.h5"))
        moments(seq(1)).save_weights(p("seq_k2_weights.h5"))
        edited_h5(p("seq_k2.h5"), p("seq_k2_layer_names.h5"), lambda f: swap_list(f["model_weights"], "layer_names", "d01", "d02"))
        case("k2_h5_layer_names_swapped", "seq_k2.h5", "seq_k2_layer_names.h5")
        edited_h5(p("seq_k2.h5"), p("seq_k2_weight_names.h5"),
                  lambda f: swap_list(f["model_weights/bn"], "weight_names", "gamma", "beta"))
        case("k2_h5_weight_names_swapped", "seq_k2.h5", "seq_k2_weight_names.h5")
        edited_h5(p("seq_k2.h5"), p("seq_k2_config_reordered.h5"), config_edit="reorder")
        case("k2_h5_config_layers_reordered", "seq_k2.h5", "seq_k2_config_reordered.h5")
        edited_h5(p("seq_k2_weights.h5"), p("seq_k2_weights_weight_names.h5"),
                  lambda f: swap_list(f["bn"], "weight_names", "gamma", "beta"))
        case("k2_weights_only_weight_names_swapped", "seq_k2_weights.h5", "seq_k2_weights_weight_names.h5",
             make=lambda s: moments(seq(s)))
        edited_h5(p("nested_k2.h5"), p("nested_k2_weight_names.h5"),
                  lambda f: swap_list(f["model_weights/inner_seq"], "weight_names", "a1/kernel", "a2/kernel"))
        case("k2_h5_nested_weight_names_swapped", "nested_k2.h5", "nested_k2_weight_names.h5")
        edited_h5(p("fun_k2.h5"), p("fun_k2_top_frozen.h5"), config_edit="top_frozen")
        case("k2_h5_functional_top_flag_off", "fun_k2.h5", "fun_k2_top_frozen.h5")
        edited_h5(p("nested_k2.h5"), p("nested_k2_frozen.h5"), config_edit="nested_frozen")
        case("k2_h5_nested_model_flags_off", "nested_k2.h5", "nested_k2_frozen.h5")
    json.dump(cases, open(os.path.join(out, flavour + "_cases.json"), "w"), indent=1)
""")

#: What kaudit must do with each edited file: "refuse" (its descriptions disagree: exit 2) or
#: "read" (the values and flags Keras loads). Every edited file here fooled kaudit before.
EXPECT = {
    "k3_keras_seq_name_attrs_swapped": "refuse",
    "k3_keras_functional_groups_swapped": "refuse",
    "k3_keras_nested_name_attrs_swapped": "refuse",
    "k3_keras_seq_group_renamed": "refuse",
    "k3_keras_seq_top_flag_off": "read",
    "k3_keras_functional_top_flag_off": "read",
    "k3_keras_nested_model_flags_off": "read",
    "k3_h5_layer_names_swapped": "refuse",
    "k3_h5_weight_names_swapped": "refuse",
    "k3_h5_nested_weight_names_swapped": "refuse",
    "k3_h5_functional_top_flag_off": "read",
    "k3_h5_nested_model_flags_off": "read",
    "k2_h5_layer_names_swapped": "refuse",
    "k2_h5_weight_names_swapped": "refuse",
    "k2_h5_config_layers_reordered": "refuse",
    "k2_weights_only_weight_names_swapped": "refuse",
    "k2_h5_nested_weight_names_swapped": "refuse",
    "k2_h5_functional_top_flag_off": "read",
    "k2_h5_nested_model_flags_off": "read",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("keras")
    pytest.importorskip("tf_keras")
    pytest.importorskip("h5py")
    out = tmp_path_factory.mktemp("loading")
    script = out / "build.py"
    script.write_text(BUILD)
    cases = {}
    for flavour, legacy in (("k3", "0"), ("k2", "1")):
        r = subprocess.run(
            [sys.executable, str(script), flavour, str(out)],
            capture_output=True,
            text=True,
            env=dict(os.environ, TF_USE_LEGACY_KERAS=legacy),
            timeout=600,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        cases.update(json.loads((out / f"{flavour}_cases.json").read_text()))
    assert set(cases) == set(EXPECT)
    return out, cases


def _kaudit_reads(path) -> dict[str, tuple[np.ndarray, bool | None]]:
    with kaudit.load(path) as c:
        return {v.path: (np.asarray(c[v.path]), v.trainable) for v in c.weights}


def _assert_reads_like_keras(path, keras: dict, weights_only: bool) -> None:
    """kaudit's value for every path is the one Keras loaded into that weight, and its trainable
    flag is Keras's (unknown, None, for a weights-only file: that depends on the model)."""
    assert keras["keras_error"] is None, keras["keras_error"]
    want = np.load(str(path) + ".npz")
    got = _kaudit_reads(path)
    assert sorted(got) == sorted(want.files)
    for p in want.files:
        np.testing.assert_array_equal(got[p][0], want[p], err_msg=f"{path.name}: {p}")
        want_trainable = None if weights_only else keras["trainable"][p]
        assert got[p][1] is want_trainable, f"{path.name}: {p} trainable {got[p][1]}, Keras {keras['trainable'][p]}"


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_kaudit_reads_what_keras_loads_or_refuses(built, name):
    out, cases = built
    info = cases[name]
    # the unedited file: read exactly as Keras loads it
    _assert_reads_like_keras(out / info["original"], info["keras_original"], info["weights_only"])
    edited = out / info["file"]
    if EXPECT[name] == "read":
        _assert_reads_like_keras(edited, info["keras"], info["weights_only"])
        return
    with pytest.raises(CorruptFileError, match=r"disagree|refuses"):
        _kaudit_reads(edited)


def test_refusal_is_exit_2_with_one_line(built):
    """The gate does not pass a file whose layer names and group paths disagree: before, this diff
    passed (kaudit followed the swapped groups' 'name' attributes) while Keras loaded the two Dense
    layers swapped."""
    out, cases = built
    info = cases["k3_keras_functional_groups_swapped"]
    r = run_cli("diff", str(out / info["original"]), str(out / info["file"]))
    assert r.returncode == 2, r.stdout + r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "Keras would load group 'layers/dense' into layer 'd01', the group's 'name' says it holds 'd02'" in line, (
        line
    )


def test_keras_refuses_a_built_layer_without_group(built):
    """Keras itself fails on a built layer whose group is missing; so does kaudit."""
    _out, cases = built
    assert cases["k3_keras_seq_group_renamed"]["keras"]["keras_error"] is not None


BARE = textwrap.dedent(r"""
    import os, shutil, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import h5py, keras, numpy as np
    out = sys.argv[1]

    def model():
        keras.utils.set_random_seed(3)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="d01"),
                                 keras.layers.Dense(4, name="d02")])

    m = model()
    a, b = os.path.join(out, "a.weights.h5"), os.path.join(out, "b.weights.h5")
    m.save_weights(a)
    shutil.copy(a, b)
    with h5py.File(b, "r+") as f:  # the two layers' groups swapped, their name attributes with them
        f.move("layers/dense", "layers/tmp")
        f.move("layers/dense_1", "layers/dense")
        f.move("layers/tmp", "layers/dense_1")
    loaded = model()
    loaded.load_weights(b)
    same = np.array_equal(loaded.get_layer("d01").kernel.numpy(), m.get_layer("d02").kernel.numpy())
    print("swapped" if same else "not swapped")
""")


def test_bare_weights_files_pair_where_keras_loads(tmp_path):
    """A bare ``.weights.h5`` has no config: Keras loads group ``layers/dense`` into the first
    Dense of the model it is given, whatever the group's ``name`` says. Two such files whose groups
    were swapped with their names pair by name to identical values, while Keras loads the layers
    swapped: the diff must fail, naming the group paths."""
    r = subprocess.run([sys.executable, "-c", BARE, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "swapped"  # what Keras does with b
    a, b = str(tmp_path / "a.weights.h5"), str(tmp_path / "b.weights.h5")
    res = kaudit.diff(a, b, policy=False)
    assert not res.passed
    rows = {r.path: r for r in res.records}
    assert rows["d01/kernel"].status == "identical" and rows["d01/kernel"].rule == "structure"
    assert any("layers/dense" in f and "layers/dense_1" in f for f in res.failures)
    assert kaudit.diff(a, a, policy=False).passed
