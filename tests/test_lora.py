"""LoRA: KerasHub adapter files and Keras's LoRA-merged weights, against Keras's own ΔW
(fixtures/lora/bert.lora.h5.truth.json, computed with Keras ops on the live layers)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kaudit
from kaudit import adapters
from kaudit.inspection import inspect as kinspect
from kaudit.keras import lora as LORA

from .conftest import FIXTURES, run_cli

LORA_FILE = FIXTURES / "lora" / "bert.lora.h5"
TRUTH = json.loads((FIXTURES / "lora" / "bert.lora.h5.truth.json").read_text())


def test_adapter_file_rank_scale_and_delta_norms_are_keras():
    with kaudit.load(str(LORA_FILE)) as c:
        assert c.format == "keras-hub-lora"
        got = {layer: (info, fro, mx) for layer, info, fro, mx in adapters.adapter_deltas(c)}
        assert set(got) == {f"lora/{i}" for i in TRUTH["adapters"]}
        for i, want in TRUTH["adapters"].items():
            info, fro, mx = got[f"lora/{i}"]
            assert (info.rank, info.scale) == (want["rank"], want["scale"])
            assert fro == pytest.approx(want["frobenius"], rel=1e-6)
            assert mx == pytest.approx(want["max_abs"], rel=1e-6)
    res = kinspect(str(LORA_FILE), stats=False)
    assert "lora" in res.columns and all(r.lora.startswith("LoRA ") for r in res.rows())
    assert sum("Frobenius norm" in n for n in res.notes) == len(TRUTH["adapters"])


def test_delta_norms_without_forming_the_matrix():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(7, 3, 4)), rng.normal(size=(4, 5))
    full = 0.5 * (a.reshape(-1, 4) @ b)
    fro, mx = LORA.delta_norms(a, b, 0.5, block_elems=10)  # row blocks of two rows
    assert fro == pytest.approx(np.linalg.norm(full), rel=1e-12)
    assert mx == np.max(np.abs(full))


def test_merged_lora_diff_is_keras_delta():
    """Keras saves an adapted kernel with its adapter added: the diff of the base preset against
    the merged one is ΔW, layer by layer (only there)."""
    r = kaudit.diff(str(FIXTURES / "presets" / "bert_base"), str(FIXTURES / "presets" / "bert_lora_merged"))
    changed = {x.path: x for x in r.records if x.status != "identical"}
    want = {d["layer"]: d for d in TRUTH["adapters"].values()}
    assert {p.rsplit("/vars/", 1)[0] for p in changed} == set(want)
    for path, row in changed.items():
        d = want[path.rsplit("/vars/", 1)[0]]
        assert row.max_abs == pytest.approx(d["max_abs"], rel=1e-5)
        assert row.rms * np.sqrt(row.params) == pytest.approx(d["frobenius"], rel=1e-5)


def test_corrupt_adapter_rank_is_an_error(tmp_path):
    import shutil

    import h5py

    bad = tmp_path / "bad.lora.h5"
    shutil.copy(LORA_FILE, bad)
    with h5py.File(bad, "r+") as f:
        del f["lora/vars/rank"]
        f["lora/vars/rank"] = 3
    r = run_cli("inspect", str(bad))
    assert r.returncode == 2 and "rank" in r.stderr and "Traceback" not in r.stderr
