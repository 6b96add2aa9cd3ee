"""Generate the benchmark checkpoints in benchmarks/data/ (git-ignored; several GB).

    python benchmarks/make_data.py            # everything
    python benchmarks/make_data.py --only big,small

Sets (all real Keras files, written by tf_keras / Keras 3 themselves):

* ``big_a.h5`` / ``big_b.h5``        legacy Keras 2 HDF5 (tf_keras), ~0.5 GB each: four Dense layers
  4096x8192 / 8192x4096 / 4096x8192 / 8192x4096, each followed by BatchNormalization, weights from
  a seeded numpy RNG; in b, two layers' kernels are perturbed by N(0, 1e-4).
* ``big_a.keras`` / ``big_b.keras`` and ``big_a.weights.h5`` / ``big_b.weights.h5``: the same pair
  saved by Keras 3.
* ``big_a_tfckpt/ckpt`` / ``big_b_tfckpt/ckpt``: the same pair as TF2 checkpoints (tf_keras
  ``save_weights`` in the TensorFlow format: a tensor bundle with its object graph). ``--only tf``
  writes just these (and the ``.h5`` pair when it is missing).
* ``x4_a.h5`` / ``x4_b.h5``          the same architecture at width x2 (4x the bytes, ~2 GB each).
* ``small_a.h5`` / ``small_b.h5``    2,000 parallel Dense(8) layers (4,000 small variables), one changed
  (the same metadata, byte for byte: a fine-tuned copy); ``small_c.h5`` has b's weights in a model
  named otherwise (as long): a file of the same size whose metadata differs;
  ``tiny_{a,b,c}.h5`` the same with one layer (start-up cost, for the per-variable figure);
  ``small_{a,b,c}.keras`` / ``tiny_{a,b,c}.keras``: the same weights saved by Keras 3.
* ``resnet50.h5``                    tf_keras ResNet50(weights=None) saved as .h5 (~100 MB).

Each set is generated in its own subprocess (TensorFlow memory is returned between sets).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
SETS = ("big", "x4", "small", "resnet")  # "tf": only the TF2 checkpoints of the big set
SEED = 20240607


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def _dense_weights(width: int, seed: int):
    """Weights (kernel, bias, then BN gamma/beta/mean/var) for the four Dense+BN blocks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    dims = [width, 2 * width, width, 2 * width, width]
    out = []
    for i in range(4):
        fan_in, fan_out = dims[i], dims[i + 1]
        k = rng.standard_normal((fan_in, fan_out), dtype=np.float32)
        k *= np.float32(1.0 / np.sqrt(fan_in))
        out.append(k)
        out.append(rng.standard_normal(fan_out, dtype=np.float32) * np.float32(0.01))
        out.append(1.0 + 0.1 * rng.standard_normal(fan_out, dtype=np.float32))  # gamma
        out.append(0.1 * rng.standard_normal(fan_out, dtype=np.float32))  # beta
        out.append(0.1 * rng.standard_normal(fan_out, dtype=np.float32))  # moving_mean
        out.append(rng.uniform(0.5, 1.5, fan_out).astype(np.float32))  # moving_variance
    return dims, out


def _perturb(weights, seed: int):
    """b: the kernels of layers 1 and 3 (0-based) get + N(0, 1e-4)."""
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    for layer in (1, 3):
        k = weights[layer * 6]
        for r in range(0, k.shape[0], 1024):  # in row blocks, to keep memory flat
            k[r : r + 1024] += rng.standard_normal(k[r : r + 1024].shape, dtype=np.float32) * np.float32(1e-4)
    return weights


def _build(keras, dims):
    inp = keras.Input(shape=(dims[0],), name="x")
    h = inp
    for i in range(4):
        h = keras.layers.Dense(dims[i + 1], name=f"dense_{i}")(h)
        h = keras.layers.BatchNormalization(name=f"bn_{i}")(h)
    return keras.Model(inp, h, name="mlp")


def make_dense(prefix: str, width: int, keras3: bool, tf_ckpt: bool = False, h5: bool = True) -> None:
    _quiet_tf()
    import gc

    import tf_keras

    dims, w = _dense_weights(width, SEED)
    model = _build(tf_keras, dims)
    model.set_weights(w)
    t = time.time()
    if h5:
        model.save(os.path.join(DATA, f"{prefix}_a.h5"))
        print(f"  {prefix}_a.h5 written in {time.time() - t:.1f}s", flush=True)
    if tf_ckpt:
        model.save_weights(os.path.join(DATA, f"{prefix}_a_tfckpt", "ckpt"))
    if keras3:
        import keras

        m3 = _build(keras, dims)
        m3.set_weights(w)
        m3.save(os.path.join(DATA, f"{prefix}_a.keras"))
        m3.save_weights(os.path.join(DATA, f"{prefix}_a.weights.h5"))
    w = _perturb(w, SEED)
    model.set_weights(w)
    if h5:
        model.save(os.path.join(DATA, f"{prefix}_b.h5"))
    if tf_ckpt:
        model.save_weights(os.path.join(DATA, f"{prefix}_b_tfckpt", "ckpt"))
    if keras3:
        m3.set_weights(w)
        m3.save(os.path.join(DATA, f"{prefix}_b.keras"))
        m3.save_weights(os.path.join(DATA, f"{prefix}_b.weights.h5"))
    del model, w
    gc.collect()


def make_small(n_layers: int = 2000, prefix: str = "small") -> None:
    _quiet_tf()
    import keras
    import numpy as np
    import tf_keras

    def build(k, name="wide"):  # parallel branches (a 2,000-deep chain overflows Keras's recursive graph walk)
        inp = k.Input(shape=(8,), name="x")
        outs = [k.layers.Dense(8, name=f"d{i}")(inp) for i in range(n_layers)]
        return k.Model(inp, k.layers.Concatenate(name="cat")(outs), name=name)

    rng = np.random.default_rng(SEED)
    w = None
    # c: b's weights in a model of another name, as long: files of a's size whose metadata differs
    for side, name in (("a", "wide"), ("b", "wide"), ("c", "WIDE")):
        model, m3 = build(tf_keras, name), build(keras, name)
        if w is None:
            w = [rng.standard_normal(v.shape).astype(np.float32) for v in model.weights]
        if side == "b":
            w[len(w) // 2] = w[len(w) // 2] + np.float32(1e-3)
        model.set_weights(w)
        model.save(os.path.join(DATA, f"{prefix}_{side}.h5"))
        m3.set_weights(w)  # the same weights as a Keras 3 archive
        m3.save(os.path.join(DATA, f"{prefix}_{side}.keras"))


def make_resnet() -> None:
    _quiet_tf()
    import tf_keras

    model = tf_keras.applications.ResNet50(weights=None)
    model.save(os.path.join(DATA, "resnet50.h5"))


def run_set(name: str) -> None:
    if name == "big":
        make_dense("big", 4096, keras3=True, tf_ckpt=True)
    elif name == "tf":
        have_h5 = all(os.path.exists(os.path.join(DATA, f"big_{s}.h5")) for s in "ab")
        make_dense("big", 4096, keras3=False, tf_ckpt=True, h5=not have_h5)
    elif name == "x4":
        make_dense("x4", 8192, keras3=False)
    elif name == "small":
        make_small()
        make_small(1, "tiny")  # the same layout with one layer: start-up cost, for the per-variable figure
    elif name == "resnet":
        make_resnet()
    else:
        raise SystemExit(f"unknown set {name!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SETS), help=f"comma-separated subset of {','.join(SETS)},tf")
    ap.add_argument("--set", help=argparse.SUPPRESS)  # internal: generate one set in this process
    args = ap.parse_args()
    os.makedirs(DATA, exist_ok=True)
    if args.set:
        run_set(args.set)
        return
    for name in args.only.split(","):
        t = time.time()
        print(f"generating {name} ...", flush=True)
        subprocess.run([sys.executable, __file__, "--set", name], check=True)
        print(f"  {name} done in {time.time() - t:.1f}s", flush=True)
    for f in sorted(os.listdir(DATA)):
        full = os.path.join(DATA, f)
        size = (
            sum(os.path.getsize(os.path.join(full, g)) for g in os.listdir(full))
            if os.path.isdir(full)
            else os.path.getsize(full)
        )
        print(f"  {f:28s} {size / 2**20:10.1f} MiB")


if __name__ == "__main__":
    main()
