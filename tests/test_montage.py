"""Kernel montages (kaudit/montages.py, ``kaudit montage``, ``kaudit diff --montage-dir``).

Pixel-exact where no font is involved: the tutorial's method is re-computed here with numpy and
skimage exactly as the tutorial writes it, and compared with what kaudit draws.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import skimage.util
from PIL import Image, ImageDraw

import kaudit
import kaudit.montages as M
from kaudit.cli import main
from kaudit.errors import InputError, KauditError, UsageError, VariableNotFoundError

from .conftest import AFTER, BEFORE, CONVNET, CONVNET_K3
from .conftest import FIXTURES as FIX

# -- helpers ------------------------------------------------------------------------------------


def write_h5(path, layers: dict[str, dict[str, np.ndarray]]) -> str:
    """A weights-only file in the Keras legacy HDF5 layout (what ``save_weights('x.h5')`` writes)."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.21.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["layer_names"] = np.array([n.encode() for n in layers])
        for name, variables in layers.items():
            g = f.create_group(name)
            g.attrs["weight_names"] = np.array([f"{name}/{k}:0".encode() for k in variables])
            for k, arr in variables.items():
                g.create_dataset(f"{name}/{k}:0", data=arr)
    return str(path)


def tutorial_scale(w):
    """The tutorial's line, verbatim."""
    return ((w - w.min()) / (w.max() - w.min()) * 255).astype("uint8")


def distinct(shape, seed=None):
    if seed is None:
        return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def tile(img, k, th, tw, cols):
    r, c = divmod(k, cols)
    return img[r * th : (r + 1) * th, c * tw : (c + 1) * tw]


def panels_of(img):
    return [np.asarray(img)[y0:y1, x0:x1] for (x0, y0, x1, y1) in img.info["kaudit"]["panels"]]


def modified_copy(tmp_path, name="b.h5", change=None):
    """A copy of the convnet fixture with conv kernels changed in place (legacy HDF5 layout)."""
    dst = tmp_path / name
    shutil.copy(CONVNET, dst)
    with h5py.File(dst, "r+") as f:
        for ds_name, fn in (change or {}).items():
            ds = f["model_weights"][ds_name]
            arr = ds[...]
            fn(arr)
            ds[...] = arr
    return str(dst)


CONV1 = "conv1/conv1/kernel:0"
CONV2 = "conv2/conv2/kernel:0"


# -- the tutorial's method, pixel-exact ----------------------------------------------------------------


def test_rgb_kernel_tiles_layout_and_values():
    w = distinct((2, 2, 3, 4))  # 0..47, all distinct
    m = M.kernel_tiles(w)
    assert m.dtype == np.uint8 and m.shape == (4, 4, 3)  # 4 tiles of 2x2 in a 2x2 grid
    w8 = tutorial_scale(w)
    for k in range(4):
        np.testing.assert_array_equal(tile(m, k, 2, 2, 2), w8[:, :, :, k])
    # the min-max formula by hand: value v -> floor(v / 47 * 255)
    assert m[0, 0].tolist() == [0, 21, 43]  # w[0,0,:,0] = 0, 4, 8
    assert m[1, 1].tolist() == [195, 217, 238]  # w[1,1,:,0] = 36, 40, 44
    assert m[3, 3].tolist() == [211, 233, 255]  # tile 3, w[1,1,:,3] = 39, 43, 47
    assert m.min() == 0 and m.max() == 255


def test_bgr_reverses_channels():
    w = distinct((2, 2, 3, 4), seed=1)
    np.testing.assert_array_equal(M.kernel_tiles(w, bgr=True), M.kernel_tiles(w)[..., ::-1])
    assert not np.array_equal(M.kernel_tiles(w, bgr=True), M.kernel_tiles(w))


def test_grey_ordering_for_c_in_not_3():
    w = distinct((2, 2, 2, 3))  # c_in=2, c_out=3: 6 grey tiles, k = i * c_out + o
    m = M.kernel_tiles(w)
    assert m.shape == (6, 6)  # ceil(sqrt(6)) = 3 columns and rows of 2x2
    w8 = tutorial_scale(w)
    for i in range(2):
        for o in range(3):
            np.testing.assert_array_equal(tile(m, i * 3 + o, 2, 2, 3), w8[:, :, i, o])
    # exactly the tutorial's reshape/transpose + montage (empty slots: skimage's mean fill)
    np.testing.assert_array_equal(m, skimage.util.montage(w8.reshape(2, 2, 6).transpose(2, 0, 1)))


def test_grey_flag_on_rgb_kernel():
    w = distinct((2, 2, 3, 4))
    m = M.kernel_tiles(w, grey=True)
    assert m.shape == (8, 8)  # 12 tiles -> 4 x 4 grid of 2x2
    np.testing.assert_array_equal(m, skimage.util.montage(tutorial_scale(w).reshape(2, 2, 12).transpose(2, 0, 1)))


def test_resnet50_shapes_as_in_the_tutorial(tmp_path):
    conv1 = distinct((7, 7, 3, 64), seed=2) * 0.3
    block = distinct((3, 3, 128, 128), seed=3) * 0.05
    path = write_h5(
        tmp_path / "resnet_like.h5", {"conv1_conv": {"kernel": conv1}, "conv3_block1_2_conv": {"kernel": block}}
    )
    # first conv layer: the tutorial's exact code
    expected = skimage.util.montage(tutorial_scale(conv1).transpose(3, 0, 1, 2)[..., ::-1], channel_axis=-1)
    assert expected.shape == (56, 56, 3)
    img = kaudit.montage(path, layer="conv1_conv", bgr=True, scale=1)
    assert img.mode == "RGB"
    np.testing.assert_array_equal(panels_of(img)[0], expected)
    # the tutorial's Pillow resize x8 (nearest) is what --scale 8 --no-gaps gives
    big = kaudit.montage(path, layer="conv1_conv", bgr=True, gaps=False)
    ref = Image.fromarray(expected).resize((56 * 8, 56 * 8), Image.NEAREST)
    np.testing.assert_array_equal(panels_of(big)[0], np.asarray(ref))
    # with gaps (the default): the same tiles, 2 px apart, empty slots grey
    gapped = panels_of(kaudit.montage(path, layer="conv1_conv", bgr=True))[0]
    assert gapped.shape == (8 * 56 + 7 * 2, 8 * 56 + 7 * 2, 3)
    for k in (0, 9, 63):
        r, c = divmod(k, 8)
        np.testing.assert_array_equal(
            gapped[r * 58 : r * 58 + 56, c * 58 : c * 58 + 56], tile(np.asarray(ref), k, 56, 56, 8)
        )
    assert (gapped[56:58] == M.EMPTY).all()
    # deeper layer: grey 384 x 384 at scale 1
    expected = skimage.util.montage(tutorial_scale(block).reshape(3, 3, 128 * 128).transpose(2, 0, 1))
    img = kaudit.montage(path, layer="conv3_block1_2_conv", scale=1)
    assert img.mode == "L"
    np.testing.assert_array_equal(panels_of(img)[0], expected)
    # at the default scale no side grows past MAX_SIDE: x4 (1 px gaps) instead of x8
    img = kaudit.montage(path, layer="conv3_block1_2_conv")
    assert img.info["kaudit"]["scale"] == 4 and max(panels_of(img)[0].shape) <= M.MAX_SIDE


def test_scale_repeats_every_pixel():
    m1 = panels_of(kaudit.montage(CONVNET, scale=1))[0]
    m3 = panels_of(kaudit.montage(CONVNET, scale=3))[0]
    assert m1.shape == (21, 21, 3) and m3.shape == (63, 63, 3)
    for dy in range(3):
        for dx in range(3):
            np.testing.assert_array_equal(m3[dy::3, dx::3], m1)
    with pytest.raises(UsageError):
        kaudit.montage(CONVNET, scale=0)


def test_fixture_first_layer_both_formats_draw_the_same():
    a = kaudit.montage(CONVNET)  # default: the first conv kernel
    b = kaudit.montage(CONVNET_K3)
    assert a.info["kaudit"]["path"] == "conv1/kernel"
    assert panels_of(a)[0].shape == (3 * 56 + 2 * 2, 3 * 56 + 2 * 2, 3)  # 8 tiles: 3x3 grid of 7x7, x8, 2 px gaps
    np.testing.assert_array_equal(panels_of(a)[0], panels_of(b)[0])
    w = kaudit.load(CONVNET)["conv1/kernel"]
    np.testing.assert_array_equal(
        panels_of(kaudit.montage(CONVNET, scale=1))[0],
        skimage.util.montage(tutorial_scale(w).transpose(3, 0, 1, 2), channel_axis=-1),
    )


def test_conv1d_depthwise_dense():
    w = distinct((5, 2, 4))  # Conv1D (k, c_in, c_out): one c_in x k tile per filter
    m = M.kernel_tiles(w)
    w8 = tutorial_scale(w)
    assert m.shape == (4, 10)
    for o in range(4):
        np.testing.assert_array_equal(tile(m, o, 2, 5, 2), w8[:, :, o].T)
    dw = distinct((3, 3, 3, 2))  # depthwise with 3 channels is still grey: channels never mix
    assert M.kernel_tiles(dw).ndim == 3 and M.kernel_tiles(dw, depthwise=True).shape == (9, 9)
    d = distinct((16, 4))  # Dense: the matrix as one grey heatmap
    np.testing.assert_array_equal(M.kernel_tiles(d), tutorial_scale(d))
    img = kaudit.montage(CONVNET, layer="dwconv", scale=2)
    assert img.info["kaudit"]["kind"] == "grey" and panels_of(img)[0].shape == (24, 24)  # 16 tiles of 3x3
    img = kaudit.montage(CONVNET, layer="head", scale=1)
    assert panels_of(img)[0].shape == (16, 4) and img.mode == "L"


def test_constant_and_nonfinite_kernels():
    assert M.kernel_tiles(np.zeros((3, 3, 3, 4))).max() == 0
    w = distinct((2, 2, 1, 4))
    w[0, 0, 0, 0] = np.nan
    m = M.kernel_tiles(w)
    assert m[0, 0] == 0 and m.max() == 255


def test_undrawable_shapes():
    with pytest.raises(UsageError, match="1-D"):
        M.kernel_tiles(np.zeros(8))
    with pytest.raises(UsageError, match="5-D"):
        M.kernel_tiles(np.zeros((2, 2, 2, 2, 2)))
    with pytest.raises(UsageError, match="even unscaled"):
        M.fit_scale(10_000, 10_000, 1)
    assert M.fit_scale(384, 384, 8) == 8
    assert M.fit_scale(5000, 5000, 8) == 1


# -- --layer ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer, path",
    [
        (None, "conv1/kernel"),
        ("conv1", "conv1/kernel"),  # layer path
        ("conv2/kernel", "conv2/kernel"),  # variable path
        ("conv*", "conv1/kernel"),  # glob on layer paths, first in Keras order
        ("*/pointwise_kernel", "sepconv/pointwise_kernel"),
        ("sepconv", "sepconv/depthwise_kernel"),
        ("head", "head/kernel"),  # Dense: the 2-D kernel
    ],
)
def test_layer_resolution(layer, path):
    with kaudit.load(CONVNET) as ckpt:
        assert M.resolve(ckpt, layer).path == path


def test_layer_errors():
    with kaudit.load(CONVNET) as ckpt:
        with pytest.raises(VariableNotFoundError, match="nothing matches") as e:
            M.resolve(ckpt, "conv9")
        assert "did you mean" in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(UsageError, match="no drawable kernel"):
            M.resolve(ckpt, "bn1")
        with pytest.raises(UsageError, match="cannot be drawn"):
            M.resolve(ckpt, "conv1/bias")
        with pytest.raises(UsageError, match="pattern"):
            M.resolve(ckpt, "conv[")
    with pytest.raises(UsageError, match="two checkpoints"):
        kaudit.montage(CONVNET, sort_by_change=True)


def test_snapshot_has_no_values(tmp_path):
    snap = tmp_path / "base.json"
    assert main(["snapshot", CONVNET, "-o", str(snap)]) == 0
    with pytest.raises(InputError, match="no values"):
        kaudit.montage(str(snap))


def test_package_functions_survive_submodule_imports():
    import kaudit.health
    import kaudit.montages

    assert callable(kaudit.montage) and callable(kaudit.audit)
    assert panels_of(kaudit.montage(CONVNET, scale=1))[0].shape == (21, 21, 3)


# -- two checkpoints: A | B | B - A -----------------------------------------------------------------------


def test_diverging_colormap():
    c = M.diverging(np.array([0.0, 1.0, -1.0, 0.5, np.nan, 3.0]))
    assert c[0].tolist() == [255, 255, 255]
    assert c[1].tolist() == list(M.POSITIVE) and c[5].tolist() == list(M.POSITIVE)
    assert c[2].tolist() == list(M.NEGATIVE)
    assert c[3].tolist() == [round(255 + 0.5 * (v - 255)) for v in M.POSITIVE]
    assert c[4].tolist() == [0, 0, 0]


def test_identical_files_give_a_white_difference():
    img = kaudit.montage(CONVNET, CONVNET_K3)  # same values, two formats
    a, b, d = panels_of(img)
    assert a.shape == b.shape == d.shape == (168, 168, 3)
    np.testing.assert_array_equal(a, b)
    n = 8  # tiles; the 9th slot of the 3x3 grid is empty
    for k in range(n):
        assert (tile(d, k, 56, 56, 3) == 255).all()
    # A's tiles are the tutorial's tiles (one scale over A and B = A's own range here)
    single = panels_of(kaudit.montage(CONVNET, gaps=False))[0]
    for k in range(n):
        np.testing.assert_array_equal(tile(a, k, 56, 56, 3), tile(single, k, 56, 56, 3))
    assert img.info["kaudit"]["delta_max"] == 0.0
    # depthwise kernels pair across the Keras 2 / 3 names (depthwise_kernel vs kernel)
    img = kaudit.montage(CONVNET, CONVNET_K3, layer="dwconv")
    assert img.info["kaudit"]["path_b"] == "dwconv/kernel"
    assert (panels_of(img)[2] == 255).all()


def test_one_changed_filter_lights_one_tile(tmp_path):
    def bump(a):
        a[..., 2] += 0.5

    b = modified_copy(tmp_path, change={CONV1: bump})
    p = M.pair_panels(kaudit.load(CONVNET)["conv1/kernel"], kaudit.load(b)["conv1/kernel"])
    lit = [k for k in range(8) if not (tile(p.delta, k, 7, 7, 3) == 255).all()]
    assert lit == [2]
    assert (tile(p.delta, 2, 7, 7, 3) == M.POSITIVE).all()  # +0.5 everywhere: full red
    assert p.delta_max == pytest.approx(0.5)
    # one scale for A and B: the unchanged filters are pixel-identical in A and B
    for k in range(8):
        same = np.array_equal(tile(p.a, k, 7, 7, 3), tile(p.b, k, 7, 7, 3))
        assert same == (k != 2)
    # through the file API: the same, upscaled, in the composed image
    img = kaudit.montage(CONVNET, b, layer="conv1")
    _, _, d = panels_of(img)
    np.testing.assert_array_equal(d, M.upscale(p.delta, 8))


def test_sort_by_change_orders_all_panels(tmp_path):
    def bump(a):
        a[..., 5] -= 0.9
        a[..., 2] += 0.2

    b = modified_copy(tmp_path, change={CONV1: bump})
    ka, kb = kaudit.load(CONVNET)["conv1/kernel"], kaudit.load(b)["conv1/kernel"]
    plain = M.pair_panels(ka, kb)
    srt = M.pair_panels(ka, kb, sort_by_change=True)
    assert srt.order.tolist()[:2] == [5, 2]
    assert sorted(srt.order.tolist()) == list(range(8))
    for pos, k in enumerate(srt.order.tolist()):
        for name in ("a", "b", "delta"):
            np.testing.assert_array_equal(
                tile(getattr(srt, name), pos, 7, 7, 3), tile(getattr(plain, name), k, 7, 7, 3)
            )
    assert (tile(srt.delta, 0, 7, 7, 3) == M.NEGATIVE).all()  # the largest move, negative: full blue


def test_grey_pair_and_nan_in_difference():
    ka = distinct((2, 2, 2, 3))
    kb = ka.copy()
    kb[0, 0, 1, 2] = np.nan  # tile k = 1 * 3 + 2 = 5
    p = M.pair_panels(ka, kb)
    assert p.kind == "grey" and p.delta.shape == (6, 6, 3)
    t5 = tile(p.delta, 5, 2, 2, 3)
    assert t5[0, 0].tolist() == [0, 0, 0] and (t5[1:] == 255).all()
    assert all((tile(p.delta, k, 2, 2, 3) == 255).all() for k in range(5))
    assert (tile(p.delta, 6, 2, 2, 3) == M.EMPTY).all()  # empty grid slot


def test_pairs_like_the_diff_when_names_differ():
    a, b = str(FIX / "renamed" / "renamed_a.h5"), str(FIX / "renamed" / "renamed_b.h5")
    img = kaudit.montage(a, b)  # conv2d/kernel <-> conv2d_3/kernel, paired by structure
    assert (img.info["kaudit"]["path"], img.info["kaudit"]["path_b"]) == ("conv2d/kernel", "conv2d_3/kernel")
    img = kaudit.montage(a, b, layer="dense")
    assert img.info["kaudit"]["path_b"] == "dense_3/kernel" and img.info["kaudit"]["delta_max"] == 0.0


def test_pair_errors(tmp_path):
    other = write_h5(
        tmp_path / "o.h5",
        {
            "conv1": {"kernel": np.zeros((3, 3, 3, 8), np.float32)},
            "zzz": {"kernel": np.zeros((2, 2, 2, 2), np.float32)},
        },
    )
    with pytest.raises(UsageError, match="shape"):
        kaudit.montage(CONVNET, other, layer="conv1")
    with pytest.raises(KauditError, match="no counterpart"):
        kaudit.montage(CONVNET, other, layer="head")
    with pytest.raises(UsageError, match="shapes differ"):
        M.pair_panels(np.zeros((2, 2, 3, 1)), np.zeros((2, 2, 3, 2)))


def test_caption_text_with_threshold():
    img = kaudit.montage(BEFORE, AFTER, layer="head_dense")
    info = img.info["kaudit"]
    assert info["path"] == "head_dense/kernel" and info["delta_max"] > 0
    # the strip above the panels holds the caption: re-draw the expected text and compare
    lines = [
        f"A: {BEFORE}" if len(BEFORE) <= 90 else "A: ..." + BEFORE[-87:],
        f"B: {AFTER}" if len(AFTER) <= 90 else "B: ..." + AFTER[-87:],
        "head_dense/kernel  (8, 16)  dense tiles",
    ]
    ref = Image.new("RGB", img.size, M.BACKGROUND)
    draw = ImageDraw.Draw(ref)
    for i, line in enumerate(lines):
        draw.text((8, 8 + 16 * i), line, fill=M.TEXT, font=M._font(12))
    got = np.asarray(img.convert("L"), np.float64)[: 8 + 16 * 3]
    want = np.asarray(ref.convert("L"), np.float64)[: 8 + 16 * 3]
    assert (got < 128).sum() > 200  # there is text
    assert np.abs(got - want).mean() < 3.0
    # the difference of the fine-tuned head is not all white
    assert not (panels_of(img)[2] == 255).all()
    # backbone conv layers are frozen: identical, white difference
    img = kaudit.montage(BEFORE, AFTER)
    assert img.info["kaudit"]["path"] == "backbone/bb_conv1/kernel"  # (3, 3, 3, 8): 3x3 grid of 3x3, x8
    d = panels_of(img)[2]
    assert all((tile(d, k, 24, 24, 3) == 255).all() for k in range(8))
    assert (tile(d, 8, 24, 24, 3) == M.EMPTY).all()


# -- diff --montage-dir ------------------------------------------------------------------------------------


def test_write_diff_montages(tmp_path):
    b = modified_copy(
        tmp_path, change={CONV1: lambda a: a.__setitem__((..., 0), a[..., 0] * 2), CONV2: lambda a: a.__imul__(1.1)}
    )
    result = kaudit.diff(CONVNET, b, pictures=None)
    out = tmp_path / "new" / "dir"
    files = M.write_diff_montages(result, out)
    assert [os.path.basename(f) for f in files] == ["conv1__kernel.png", "conv2__kernel.png"]
    assert sorted(os.listdir(out)) == ["conv1__kernel.png", "conv2__kernel.png"]  # no temp files left
    with Image.open(files[0]) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        meta = json.loads(im.text["kaudit"])
        assert meta["path"] == "conv1/kernel" and len(meta["panels"]) == 3 and meta["scale"] == 8
    assert M.file_scale(21, 21) == 8 and M.file_scale(384, 384) == 2 and M.file_scale(1536, 1536) == 1
    # frozen backbone: nothing changed among the conv kernels, nothing written
    assert M.write_diff_montages(kaudit.diff(BEFORE, AFTER, pictures=None), tmp_path / "none") == []
    assert os.path.isdir(tmp_path / "none")


# -- the command line -----------------------------------------------------------------------------------


def test_cli_single_and_pair(tmp_path, capsys):
    out = tmp_path / "conv1.png"
    assert main(["montage", CONVNET, "--layer", "conv1", "--bgr", "--scale", "4", "-o", str(out)]) == 0
    with Image.open(out) as im:
        lib = kaudit.montage(CONVNET, bgr=True, scale=4)
        assert panels_of(lib)[0].shape == (3 * 28 + 2, 3 * 28 + 2, 3)  # x4: 1 px gaps
        np.testing.assert_array_equal(np.asarray(im), np.asarray(lib))
    assert "wrote" in capsys.readouterr().err
    out2 = tmp_path / "pair.png"
    assert main(["montage", BEFORE, AFTER, "--layer", "head_dense", "--sort-by-change", "-o", str(out2)]) == 0
    lib = M.montage_png(BEFORE, AFTER, layer="head_dense", sort_by_change=True)
    with Image.open(out2) as im, Image.open(io.BytesIO(lib)) as ref:
        assert im.size == ref.size
        assert np.abs(np.asarray(im, np.int16) - np.asarray(ref, np.int16)).mean() < 1.0


def test_cli_bad_layer_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["montage", CONVNET, "--layer", "nope*", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kaudit: error:") and "nope*" in err[0]
    assert not out.exists()
    assert main(["montage", CONVNET, "--layer", "bn1", "-o", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_cli_diff_montage_dir(tmp_path, capsys):
    b = modified_copy(tmp_path, change={CONV2: lambda a: a.__iadd__(0.01)})
    d = tmp_path / "m"
    assert main(["diff", CONVNET, b, "--montage-dir", str(d)]) == 1
    assert "montage: " in capsys.readouterr().out
    assert os.listdir(d) == ["conv2__kernel.png"]


def test_cli_subprocess(tmp_path):
    out = tmp_path / "delta.png"
    proc = subprocess.run(
        [sys.executable, "-m", "kaudit", "montage", CONVNET, CONVNET_K3, "--layer", "conv*", "-o", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as im:
        im.load()
        assert im.mode == "RGB" and im.width > 3 * 168
    proc = subprocess.run(
        [sys.executable, "-m", "kaudit", "montage", CONVNET, "--layer", "missing", "-o", str(tmp_path / "no.png")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_pointwise_and_large_kernels_stay_readable(tmp_path):
    """A 1x1 pointwise kernel is drawn as its c_in x c_out matrix (1x1 tiles are unreadable), and
    no montage grows past MAX_SIDE per side: large matrices and tile grids are cut, with a note."""
    pw = distinct((1, 1, 24, 40), seed=5)
    np.testing.assert_array_equal(M.kernel_tiles(pw), tutorial_scale(pw).reshape(24, 40))
    assert M.layout_kind((1, 1, 24, 40)) == "pointwise" and M.layout_kind((1, 1, 3, 8), depthwise=True) == "grey"
    big_dense = distinct((3000, 700), seed=6)
    wide = distinct((1, 1, 512, 2600), seed=7)
    path = write_h5(tmp_path / "big.h5", {"dense": {"kernel": big_dense}, "pw": {"kernel": wide}})
    img = kaudit.montage(path, layer="dense")
    panel = panels_of(img)[0]
    assert max(img.size) <= M.MAX_SIDE + 100 and panel.shape == (M.MAX_SIDE, 700)
    assert img.info["kaudit"]["note"] == "first 2000 of 3000 rows and 700 of 700 columns shown"
    np.testing.assert_array_equal(panel, tutorial_scale(big_dense)[: M.MAX_SIDE])
    img = kaudit.montage(path, layer="pw")
    assert img.info["kaudit"]["kind"] == "pointwise" and max(img.size) <= M.MAX_SIDE + 100
    assert "columns shown" in img.info["kaudit"]["note"]
    # the pair of a large matrix: three panels within MAX_SIDE, the note in the caption
    b = write_h5(tmp_path / "big_b.h5", {"dense": {"kernel": big_dense * 1.01}, "pw": {"kernel": wide}})
    pair = kaudit.montage(path, b, layer="dense")
    assert max(pair.size) <= M.MAX_SIDE + 100 and pair.info["kaudit"]["note"].startswith("first 653 of 3000 rows")
    # many small tiles: the first k x k that fit
    tiles, note = M.limit_tiles(np.zeros((300_000, 3, 3), np.uint8), 600)
    assert tiles.shape == (40_000, 3, 3) and note == "first 40000 of 300000 tiles shown"


def test_single_file_caption():
    img = kaudit.montage(CONVNET)
    info = img.info["kaudit"]
    _x0, y0, _x1, _y1 = info["panels"][0]
    strip = np.asarray(img.convert("L"))[: y0 - 2]
    assert (strip < 128).sum() > 200  # text in the caption strip
    assert info["gap"] == 2 and info["scale"] == 8 and info["note"] is None
