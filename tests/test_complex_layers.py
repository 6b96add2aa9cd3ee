"""Layers with sub-layers (RNN cells, Bidirectional, MultiHeadAttention, TimeDistributed) get the
same canonical paths in every format, built live with Keras 3 and tf_keras in a temporary dir."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import kaudit

pytestmark = pytest.mark.keras

BUILD = textwrap.dedent("""
    import os, sys, json
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    flavour, out = sys.argv[1], sys.argv[2]
    if flavour == "k3":
        import keras
    else:
        import tf_keras as keras
    keras.utils.set_random_seed(1)
    inp = keras.Input((5, 6))
    x = keras.layers.LSTM(4, name="my_lstm", return_sequences=True)(inp)
    x = keras.layers.MultiHeadAttention(2, 3, name="mha")(x, x)
    x = keras.layers.TimeDistributed(keras.layers.Dense(3, name="td_dense"), name="td")(x)
    x = keras.layers.Bidirectional(keras.layers.GRU(3), name="bi")(x)
    x = keras.layers.Embedding(10, 2, name="emb")(keras.layers.Lambda(lambda t: t[:, :1] * 0, name="lam")(x)) if False else x
    m = keras.Model(inp, x)
    if flavour == "k3":
        m.save(os.path.join(out, "m.keras")); m.save_weights(os.path.join(out, "m.weights.h5")); m.save(os.path.join(out, "m_legacy.h5"))
    else:
        m.save(os.path.join(out, "m_k2.h5"))
    rows = []
    for layer in m.layers:
        for w in layer.weights:
            rows.append([layer.name, w.name.split(":")[0], list(w.shape)])
    json.dump(rows, open(os.path.join(out, flavour + ".json"), "w"))
""")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("keras")
    pytest.importorskip("tf_keras")
    out = tmp_path_factory.mktemp("complex")
    script = out / "build.py"
    script.write_text(BUILD)
    for flavour in ("k3", "k2"):
        r = subprocess.run(
            [sys.executable, str(script), flavour, str(out)],
            capture_output=True,
            text=True,
            env=dict(os.environ, TF_USE_LEGACY_KERAS="0"),
            timeout=300,
        )
        assert r.returncode == 0, r.stderr[-2000:]
    return out


EXPECTED = [
    "my_lstm/kernel",
    "my_lstm/recurrent_kernel",
    "my_lstm/bias",
    "mha/query/kernel",
    "mha/query/bias",
    "mha/key/kernel",
    "mha/key/bias",
    "mha/value/kernel",
    "mha/value/bias",
    "mha/attention_output/kernel",
    "mha/attention_output/bias",
    "td/kernel",
    "td/bias",
]


@pytest.mark.parametrize("name", ["m.keras", "m_legacy.h5", "m_k2.h5"])
def test_complex_paths(built, name):
    with kaudit.load(built / name) as c:
        paths = [v.path for v in c.weights]
        assert paths[: len(EXPECTED)] == EXPECTED
        bi = paths[len(EXPECTED) :]
        assert bi == [
            "bi/forward_gru/kernel",
            "bi/forward_gru/recurrent_kernel",
            "bi/forward_gru/bias",
            "bi/backward_gru/kernel",
            "bi/backward_gru/recurrent_kernel",
            "bi/backward_gru/bias",
        ]
        assert all(v.trainable is True for v in c.weights)
        assert not any("position" in n for n in c.notes), c.notes


def test_complex_same_weights_across_k3_formats(built):
    assert kaudit.diff(built / "m.keras", built / "m_legacy.h5").passed
    assert kaudit.diff(built / "m.keras", built / "m.weights.h5").passed
