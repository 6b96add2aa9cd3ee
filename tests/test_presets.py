"""KerasHub preset directories are one checkpoint: the backbone's weights by its own layer names
(against Keras's answer in fixtures/presets/*.truth.json), and assets compared by hash."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np

import kaudit

from .conftest import FIXTURES, run_cli

BASE = FIXTURES / "presets" / "bert_base"


def _sha(x):
    return hashlib.sha256(np.ascontiguousarray(x).astype("<f4").tobytes()).hexdigest()


def test_preset_variables_are_the_backbone_weights():
    truth = json.loads((FIXTURES / "presets" / "bert_base.truth.json").read_text())
    with kaudit.load(str(BASE)) as c:
        assert c.format == "keras-hub-preset" and c.keras_version
        assert c.totals.total == truth["total"]
        mine = sorted((v.layer, tuple(v.shape), _sha(c.read(v))) for v in c.model_variables)
        theirs = sorted((w["path"].rsplit("/", 1)[0], tuple(w["shape"]), w["sha256"]) for w in truth["variables"])
        assert mine == theirs
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
