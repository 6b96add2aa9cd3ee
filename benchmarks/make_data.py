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
* ``scale`` (not in the default sets: ``--only scale``, ~32 GB): Keras 3 sharded weights
  (``model.weights.json`` + ``model_0000N.weights.h5``, 1 GiB shards) of a Gemma-like stack
  (Embedding, then blocks of RMSNormalization, Dense q/k/v/o, RMSNormalization, Dense gate/up/down,
  no biases; a final norm), about 4 GB per file:

  - ``scale_bf16_{a,a2,half,all}``: bfloat16, vocabulary 256,000, width 2,048, MLP 8,192,
    22 blocks (2.0 G parameters);
  - ``scale_int8_{a,a2,half,all}``: the same after ``model.quantize("int8")`` (int8 kernels and
    embeddings with their bfloat16 scales), width 3,072, MLP 12,288, 21 blocks (4.0 G parameters);

  ``a2`` is a byte-for-byte copy of ``a`` (the identical pair), ``half`` has every other layer with
  weights changed (small perturbations: x * (1 + N(0, 0.01)) for floats, +-1 on ~1/3 of the int8
  values), the rest bit-identical, ``all`` every layer changed. The files are written by Keras 3's
  own ``save_weights(..., max_shard_size=1)``: a model of the same layers at a tiny width is built
  and each layer's ``save_own_variables`` is swapped for one that hands Keras the full-size arrays
  (generated block by block), so the groups, attributes, dtypes (bfloat16 as Keras stores it: a
  2-byte HDF5 opaque type with ``dtype="bfloat16"``), sharding and ``weight_map`` are Keras's.
  ``--only scale-check`` writes the same at a small size, loads it with Keras 3's
  ``model.load_weights`` and with ``kaudit.load``, and checks both give the generated values.

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


# -- scale: Keras 3 sharded Gemma-like checkpoints of ~4 GB -------------------------------------------

SCALE_DIMS = {
    "bf16": {"vocab": 256_000, "d": 2048, "ff": 8192, "blocks": 22},
    "int8": {"vocab": 256_000, "d": 3072, "ff": 12288, "blocks": 21},
}
SCALE_VARIANTS = ("a", "half", "all")  # a2: a byte-for-byte copy of a
_TINY = {"vocab": 40, "d": 8, "ff": 24}  # distinct axis lengths: a tiny shape maps to the full one


def _gemma_like(keras, vocab: int, d: int, ff: int, blocks: int):
    L = keras.layers
    dt = "bfloat16"
    inp = keras.Input(shape=(4,), dtype="int32", name="token_ids")
    x = L.Embedding(vocab, d, dtype=dt, name="token_embedding")(inp)
    for i in range(blocks):
        h = L.RMSNormalization(dtype=dt, name=f"block{i}_attn_norm")(x)
        q = L.Dense(d, use_bias=False, dtype=dt, name=f"block{i}_q")(h)
        k = L.Dense(d, use_bias=False, dtype=dt, name=f"block{i}_k")(h)
        v = L.Dense(d, use_bias=False, dtype=dt, name=f"block{i}_v")(h)
        a = L.Add(dtype=dt, name=f"block{i}_qkv")([q, k, v])  # stands in for attention: only the weights matter
        x = L.Add(dtype=dt, name=f"block{i}_res1")([x, L.Dense(d, use_bias=False, dtype=dt, name=f"block{i}_o")(a)])
        h = L.RMSNormalization(dtype=dt, name=f"block{i}_mlp_norm")(x)
        g = L.Dense(ff, use_bias=False, dtype=dt, name=f"block{i}_gate")(h)
        u = L.Dense(ff, use_bias=False, dtype=dt, name=f"block{i}_up")(h)
        m = L.Multiply(dtype=dt, name=f"block{i}_glu")([g, u])
        x = L.Add(dtype=dt, name=f"block{i}_res2")([x, L.Dense(d, use_bias=False, dtype=dt, name=f"block{i}_down")(m)])
    x = L.RMSNormalization(dtype=dt, name="final_norm")(x)
    return keras.Model(inp, x, name="gemma_like")


def _scale_values(shape, dtype, seed: int, changed: bool, role: str):
    """One variable's values, generated in blocks of 16 Mi elements (bounded temporaries)."""
    import ml_dtypes
    import numpy as np

    n = int(np.prod(shape))
    out = np.empty(n, dtype=np.int8 if dtype == "int8" else ml_dtypes.bfloat16)
    rng = np.random.default_rng(seed)
    noise = np.random.default_rng(seed + 7_777_777)
    fan_in = shape[0] if len(shape) == 2 else 1
    step = 1 << 24
    for s in range(0, n, step):
        m = min(step, n - s)
        if dtype == "int8":
            x = rng.integers(-127, 128, m, dtype=np.int8)
            if changed:  # +-1 on about a third of the values, kept within [-127, 127]
                x = np.clip(x.astype(np.int16) + noise.integers(-1, 2, m, dtype=np.int16), -127, 127).astype(np.int8)
            out[s : s + m] = x
            continue
        if role == "scale":  # norm scales, and the int8 layers' per-channel scales
            x = rng.uniform(0.5, 1.5, m).astype(np.float32)
        else:
            x = rng.standard_normal(m, dtype=np.float32)
            x *= np.float32(1.0 / np.sqrt(fan_in))
        if changed:
            x *= 1.0 + np.float32(0.01) * noise.standard_normal(m, dtype=np.float32)
        out[s : s + m] = x.astype(ml_dtypes.bfloat16)
    return out.reshape(shape)


def write_scale(path: str, kind: str, variant: str, dims: dict | None = None) -> dict:
    """Write ``path`` (``*.weights.json``) with Keras 3's sharded store; returns {layer: [arrays]}
    when ``dims`` is given (small checks), else {}."""
    _quiet_tf()
    import keras
    import numpy as np

    dims = dims or SCALE_DIMS[kind]
    tiny = _gemma_like(keras, _TINY["vocab"], _TINY["d"], _TINY["ff"], dims["blocks"])
    if kind == "int8":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tiny.quantize("int8")
    axis = {_TINY[k]: dims[k] for k in ("vocab", "d", "ff")}
    kept: dict = {}
    with_vars = [layer for layer in tiny.layers if layer.weights]
    for li, layer in enumerate(with_vars):
        rec: dict = {}
        layer.save_own_variables(rec)  # the keys, dtypes and shapes Keras stores for this layer
        spec = []
        for key, v in rec.items():
            v = np.asarray(v)
            shape = tuple(axis.get(n, n) for n in v.shape)
            role = "scale" if (v.ndim == 1) else "kernel"
            spec.append((key, shape, str(v.dtype), role))
        changed = variant == "all" or (variant == "half" and li % 2 == 1)

        def save(store, spec=spec, li=li, changed=changed, name=layer.name):
            for j, (key, shape, dtype, role) in enumerate(spec):
                arr = _scale_values(shape, dtype, SEED + 1000 * li + j, changed, role)
                if dims is not SCALE_DIMS[kind]:
                    kept.setdefault(name, []).append(arr)
                store[key] = arr
                del arr

        object.__setattr__(layer, "save_own_variables", save)
    tiny.save_weights(path, max_shard_size=1.0 if dims is SCALE_DIMS[kind] else 0.25 / 1024)
    return kept


def make_scale(kinds=("bf16", "int8")) -> None:
    import shutil

    for kind in kinds:
        for variant in SCALE_VARIANTS:
            d = os.path.join(DATA, f"scale_{kind}_{variant}")
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            t = time.time()
            # one process per file: TensorFlow and the arrays are returned between files
            subprocess.run([sys.executable, __file__, "--set", f"scale-file:{kind}:{variant}"], check=True)
            print(f"  scale_{kind}_{variant} written in {time.time() - t:.1f}s", flush=True)
        a2 = os.path.join(DATA, f"scale_{kind}_a2")
        shutil.rmtree(a2, ignore_errors=True)
        shutil.copytree(os.path.join(DATA, f"scale_{kind}_a"), a2)


def check_scale() -> None:
    """The generator at a small size: Keras 3 loads the files, kaudit reads the same values."""
    _quiet_tf()
    import hashlib
    import shutil
    import tempfile

    import keras
    import numpy as np

    sys.path.insert(0, os.path.dirname(HERE))
    import kaudit

    def key(arr):
        arr = np.asarray(arr)
        return (tuple(arr.shape), str(arr.dtype), hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest())

    def widen(arr):
        return arr.astype(np.float32) if arr.dtype.name == "bfloat16" else arr

    tmp = tempfile.mkdtemp(prefix="kaudit-scale-check-")
    try:
        for kind in ("bf16", "int8"):
            dims = {"vocab": 1000, "d": 64, "ff": 256, "blocks": 3}
            for variant in SCALE_VARIANTS:
                path = os.path.join(tmp, f"{kind}_{variant}", "model.weights.json")
                os.makedirs(os.path.dirname(path))
                kept = write_scale(path, kind, variant, dims)
                shards = [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".h5")]
                model = _gemma_like(keras, dims["vocab"], dims["d"], dims["ff"], dims["blocks"])
                if kind == "int8":
                    import warnings

                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model.quantize("int8")
                model.load_weights(path)
                for layer in model.layers:
                    if not layer.weights:
                        continue
                    got = [key(keras.ops.convert_to_numpy(w)) for w in layer.weights]
                    want = [key(a) for a in kept[layer.name]]
                    assert sorted(got) == sorted(want), (kind, variant, layer.name)
                ck = kaudit.load(path)  # kaudit hands bfloat16 on widened to float32 (exact)
                got = sorted((v.dtype, *key(ck.read(v))) for v in ck)
                want = sorted((str(a.dtype), *key(widen(a))) for arrs in kept.values() for a in arrs)
                assert got == want, (kind, variant, "kaudit")
                print(f"  {kind}/{variant}: {len(shards)} shards, {len(want)} variables: Keras and kaudit agree")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
    elif name == "scale":
        make_scale()
    elif name == "scale-check":
        check_scale()
    elif name.startswith("scale-file:"):
        _, kind, variant = name.split(":")
        write_scale(os.path.join(DATA, f"scale_{kind}_{variant}", "model.weights.json"), kind, variant)
    else:
        raise SystemExit(f"unknown set {name!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--only", default=",".join(SETS), help=f"comma-separated subset of {','.join(SETS)},tf,scale,scale-check"
    )
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
