"""KerasHub preset directories are one checkpoint: the backbone's weights by its own layer names
(against Keras's answer in fixtures/presets/*.truth.json), and assets compared by hash."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

import kaudit

from .conftest import FIXTURES, run_cli
from .hub_models import FAMILIES, backbone

BASE = FIXTURES / "presets" / "bert_base"


def _sha(x):
    return hashlib.sha256(np.ascontiguousarray(x).astype("<f4").tobytes()).hexdigest()


def test_preset_variables_are_the_backbone_weights():
    truth = json.loads((FIXTURES / "presets" / "bert_base.truth.json").read_text())
    with kaudit.load(str(BASE)) as c:
        assert c.format == "keras-hub-preset" and c.keras_version
        assert c.totals.total == truth["total"]
        mine = [(v.path, tuple(v.shape), _sha(c.read(v))) for v in c.model_variables]
        theirs = [(w["path"], tuple(w["shape"]), w["sha256"]) for w in truth["variables"]]
        assert mine == theirs  # Keras's names, in Keras's model.weights order
        assert set(c.assets) == {"config.json", "tokenizer.json", "assets/tokenizer/vocabulary.txt"}


def test_presets_diff_reports_assets(tmp_path):
    b = tmp_path / "b"
    shutil.copytree(BASE, b)
    assert run_cli("diff", str(BASE), str(b)).returncode == 0
    vocab = b / "assets" / "tokenizer" / "vocabulary.txt"
    vocab.write_text(vocab.read_text().replace("w7", "w7x"))
    r = run_cli("diff", str(BASE), str(b))
    assert r.returncode == 1 and "asset: assets/tokenizer/vocabulary.txt differs" in r.stdout


def test_preset_link_out_of_the_directory_is_refused(tmp_path):
    b = tmp_path / "b"
    shutil.copytree(BASE, b)
    outside = tmp_path / "secret.txt"
    outside.write_text("x")
    (b / "tokenizer.json").unlink()
    (b / "tokenizer.json").symlink_to(outside)
    r = run_cli("inspect", str(b))
    assert r.returncode == 2 and "link out of the preset" in r.stderr


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("save", ["preset", "weights"])
def test_keras_hub_weights_are_named_and_ordered_as_keras(keras_hub_models, tmp_path, family, save):
    """A KerasHub backbone's weights file has no layer graph, and lists a composite layer's
    sublayers by attribute name: kaudit gives Keras's own paths, in ``backbone.weights`` order, with
    the values Keras holds."""
    keras, keras_hub = keras_hub_models
    keras.utils.set_random_seed(5)
    bb = backbone(keras_hub, family)
    if save == "preset":
        bb.save_to_preset(str(tmp_path / "p"))
        src = tmp_path / "p"
    else:
        src = tmp_path / "w.weights.h5"
        bb.save_weights(str(src))
    with kaudit.load(str(src)) as c:
        assert [v.path for v in c.model_variables] == [w.path for w in bb.weights]
        assert all(v.named for v in c.model_variables)
        for v, w in zip(c.model_variables, bb.weights, strict=True):
            np.testing.assert_array_equal(c.read(v), keras.ops.convert_to_numpy(w))
