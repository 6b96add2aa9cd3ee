"""Kernel montages: the tutorial's conv-filter pictures, and A | B | difference side by side.

One checkpoint (:func:`kernel_tiles`, :func:`montage` with ``b=None``) follows the tutorial
exactly: min-max scale the whole kernel to 0..255 uint8; a kernel (h, w, 3, c_out) becomes c_out
RGB tiles (``transpose(3, 0, 1, 2)``, ``[..., ::-1]`` for BGR/caffe weights); any other kernel
becomes one grey h x w tile per (c_in, c_out) pair (``reshape(h, w, c_in * c_out).transpose(2, 0,
1)``); ``skimage.util.montage`` lays the tiles out in a square grid; nearest-neighbour upscaling.

Two checkpoints (:func:`montage` with ``b``, :func:`write_diff_montages`): one image per kernel,
A | B | B - A. A and B share one min-max scale (over both), so equal weights look equal; the
difference uses a blue-white-red colormap centred on zero with its own symmetric scale. A caption
strip names the files, the variable and the value ranges. See docs/montage.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import paths
from .errors import InputError, KauditError, UsageError, VariableNotFoundError
from .readers import opened

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from .checkpoint import Checkpoint, Variable
    from .result import DiffResult, Picture

DEFAULT_SCALE = 8
#: The scale is lowered (down to 1) so that one image stays under this many pixels; a kernel
#: whose unscaled montage is larger still is refused.
MAX_PIXELS = 40_000_000
#: No side of a drawn montage grows past about this many pixels: the scale is lowered first, then
#: tiles (or a matrix's rows and columns) beyond it are left out and the caption says so.
MAX_SIDE = 2000
#: From this scale on, single-file montages leave a gap between tiles (scale // 4 pixels).
GAP_FROM_SCALE = 4

#: The difference colormap: B - A < 0 towards blue, 0 white, > 0 towards red (ColorBrewer RdBu ends).
NEGATIVE = (33, 102, 172)
POSITIVE = (178, 24, 43)
WHITE = (255, 255, 255)
#: Non-finite differences (NaN/Inf on either side) are painted black.
NONFINITE = (0, 0, 0)
#: Grid slots without a tile (when the tile count is not a square) in the two-file layout.
EMPTY = (224, 224, 224)
SEPARATOR = (64, 64, 64)
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)

PANEL_LABELS = ("A", "B", "B - A")


# -- the tutorial's method ---------------------------------------------------------------------


def _as_float(x) -> np.ndarray:
    """The kernel as a float array; float32 stays float32 (the tutorial computes in float32)."""
    x = np.asarray(x)
    if x.dtype.kind == "f" and x.dtype.itemsize >= 4:
        return x
    if x.dtype.kind not in "fiub":
        raise UsageError(f"cannot draw values of dtype {x.dtype}")
    return x.astype(np.float32)


def value_range(*arrays: np.ndarray) -> tuple[float, float]:
    """(min, max) over the finite values of all ``arrays`` (0, 0 when there are none), kept in
    the arrays' own float type so the scaling is the tutorial's float32 arithmetic."""
    arrays = tuple(_as_float(a) for a in arrays)
    dtype = np.result_type(*arrays)
    lo = hi = None
    for a in arrays:
        fin = a[np.isfinite(a)] if not np.isfinite(a).all() else a
        if fin.size == 0:
            continue
        amin, amax = fin.min(), fin.max()
        lo = amin if lo is None else min(lo, amin)
        hi = amax if hi is None else max(hi, amax)
    if lo is None:
        return dtype.type(0), dtype.type(0)
    return dtype.type(lo), dtype.type(hi)


def to_uint8(w, lo=None, hi=None) -> np.ndarray:
    """``((w - min) / (max - min) * 255).astype('uint8')`` as in the tutorial; ``lo``/``hi``
    override the range (one scale for A and B). A constant kernel is all 0; non-finite values 0."""
    w = _as_float(w)
    if lo is None or hi is None:
        lo, hi = value_range(w)
    if not hi > lo:
        return np.zeros(w.shape, np.uint8)
    with np.errstate(invalid="ignore", over="ignore"):
        out = (w - lo) / (hi - lo) * 255
    if not np.isfinite(out).all():
        out = np.where(np.isfinite(out), out, 0)
    return np.clip(out, 0, 255).astype(np.uint8)


def layout_kind(shape: tuple[int, ...], *, grey: bool = False, depthwise: bool = False) -> str:
    """How a kernel of ``shape`` is cut into tiles: ``rgb`` (h, w, 3, c_out), ``grey`` (4-D, one
    tile per (c_in, c_out) pair), ``pointwise`` (1, 1, c_in, c_out: the c_in x c_out matrix as one
    tile, rows the input channels, as a Dense kernel), ``conv1d`` (k, c_in, c_out: one c_in x k
    tile per filter) or ``dense`` (2-D: the matrix itself, one tile)."""
    nd = len(shape)
    if nd == 4 and shape[0] == 1 and shape[1] == 1 and not depthwise and not grey:
        return "pointwise"  # 1x1 tiles are unreadable: the channel-mixing matrix instead
    if nd == 4:
        return "rgb" if (shape[2] == 3 and not grey and not depthwise) else "grey"
    if nd == 3:
        return "conv1d"
    if nd == 2:
        return "dense"
    raise UsageError(
        f"a {nd}-D variable {tuple(shape)} cannot be drawn",
        hint="montages draw 4-D conv kernels (Conv2D, depthwise), 3-D (Conv1D) and 2-D (Dense) kernels",
    )


def tiles_of(arr: np.ndarray, kind: str, bgr: bool = False) -> np.ndarray:
    """Cut a kernel (any dtype) into tiles: (n, th, tw) or, for ``rgb``, (n, th, tw, 3)."""
    if kind == "rgb":
        t = arr.transpose(3, 0, 1, 2)
        return t[..., ::-1] if bgr else t
    if kind == "grey":
        h, w, ci, co = arr.shape
        return arr.reshape(h, w, ci * co).transpose(2, 0, 1)
    if kind == "pointwise":  # (1, 1, c_in, c_out) -> one (c_in, c_out) tile
        return arr.reshape(arr.shape[2], arr.shape[3])[np.newaxis]
    if kind == "conv1d":  # (k, c_in, c_out) -> (c_out, c_in, k): rows are input channels
        return arr.transpose(2, 1, 0)
    if kind == "dense":
        return arr[np.newaxis]
    raise ValueError(kind)


def _grid(tiles: np.ndarray, fill="mean") -> np.ndarray:
    import skimage.util

    rgb = tiles.ndim == 4
    return skimage.util.montage(tiles, fill=fill, channel_axis=-1 if rgb else None)


def kernel_tiles(kernel, bgr: bool = False, grey: bool = False, *, depthwise: bool = False) -> np.ndarray:
    """The unscaled montage of one kernel as uint8: (H, W, 3) for an RGB kernel, else (H, W).

    Exactly the tutorial for (h, w, c_in, c_out) kernels: (7, 7, 3, 64) gives (56, 56, 3) and
    (3, 3, 128, 128) gives (384, 384). ``depthwise`` (h, w, c_in, depth_multiplier) kernels are
    always grey tiles, one per (channel, multiplier) pair. Empty grid slots, when the tile count
    is not a square, hold the mean colour (``skimage.util.montage``'s default, as in the tutorial).
    """
    k = np.asarray(kernel)
    kind = layout_kind(k.shape, grey=grey, depthwise=depthwise)
    if k.size == 0:
        raise UsageError(f"an empty kernel {k.shape} cannot be drawn")
    return _grid(tiles_of(to_uint8(k), kind, bgr))


def limit_tiles(tiles: np.ndarray, side: int) -> tuple[np.ndarray, str | None]:
    """Tiles whose grid fits ``side`` pixels at scale 1: a single tile (a matrix) cut to its first
    ``side`` rows and columns, else the first k x k tiles that fit; and a note saying what was left
    out (None when nothing was)."""
    n, th, tw = tiles.shape[:3]
    if n == 1:
        if th <= side and tw <= side:
            return tiles, None
        return tiles[:, :side, :side], (f"first {min(th, side)} of {th} rows and {min(tw, side)} of {tw} columns shown")
    per = max(1, side // max(th, tw, 1))
    if math.ceil(math.sqrt(n)) <= per:
        return tiles, None
    k = per * per
    return tiles[:k], f"first {k} of {n} tiles shown"


def side_scale(height: int, width: int, scale: int, max_side: int = MAX_SIDE) -> int:
    """``scale`` lowered (down to 1) so that a height x width picture stays within ``max_side``."""
    while scale > 1 and max(height, width) * scale > max_side:
        scale -= 1
    return scale


def upscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor: every pixel repeated scale x scale
    (what Pillow's ``resize(..., NEAREST)`` gives for integer factors)."""
    if scale == 1:
        return img
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def fit_scale(height: int, width: int, scale: int, panels: int = 1) -> int:
    """``scale``, lowered so that ``panels`` panels of height x width stay under MAX_PIXELS."""
    if scale < 1:
        raise UsageError(f"scale must be an integer >= 1, got {scale}")
    px = height * width * panels
    if px > MAX_PIXELS:
        raise UsageError(
            f"this kernel would need {width * panels} x {height} pixels even unscaled",
            hint="pick a smaller layer with --layer",
        )
    while scale > 1 and px * scale * scale > MAX_PIXELS:
        scale -= 1
    return scale


# -- the difference -----------------------------------------------------------------------------


def diverging(t: np.ndarray) -> np.ndarray:
    """Blue-white-red colours (uint8, shape + (3,)) for ``t`` in [-1, 1]: 0 is pure white,
    -1 ``NEGATIVE``, +1 ``POSITIVE``, linear in between; non-finite values ``NONFINITE``."""
    t = np.asarray(t, dtype=np.float64)
    bad = ~np.isfinite(t)
    tc = np.clip(np.where(bad, 0.0, t), -1.0, 1.0)[..., np.newaxis]
    white = np.array(WHITE, np.float64)
    end = np.where(tc < 0, np.array(NEGATIVE, np.float64), np.array(POSITIVE, np.float64))
    rgb = np.rint(white + np.abs(tc) * (end - white))
    rgb[bad] = NONFINITE
    return rgb.astype(np.uint8)


@dataclass
class PairPanels:
    """The three unscaled panels of a two-file montage (RGB uint8, equal shapes) and the ranges."""

    a: np.ndarray
    b: np.ndarray
    delta: np.ndarray
    lo: float
    hi: float
    delta_max: float
    kind: str
    order: np.ndarray
    tile_change: np.ndarray = field(repr=False)
    #: What was left out to keep the picture within MAX_SIDE (None: nothing).
    note: str | None = None


#: The side of one panel of a pair montage at scale 1 (three panels share MAX_SIDE).
PANEL_SIDE = (MAX_SIDE - 40) // 3


def _tile_norms(d_tiles: np.ndarray) -> np.ndarray:
    axes = tuple(range(1, d_tiles.ndim))
    with np.errstate(invalid="ignore", over="ignore"):
        n = np.sqrt(np.sum(np.square(d_tiles), axis=axes))
    return np.where(np.isfinite(n), n, np.inf)


def pair_panels(
    ka, kb, *, bgr: bool = False, grey: bool = False, depthwise: bool = False, sort_by_change: bool = False
) -> PairPanels:
    """A | B | B - A for two kernels of one shape, unscaled.

    A and B are scaled with ONE min-max range (over both), so equal values get equal pixels. The
    difference B - A is computed in float64 and coloured with :func:`diverging` over its own
    symmetric range +/- max|B - A| (all white when A == B). For RGB tiles the difference pixel is
    the channel with the largest |B - A| (its sign kept). ``sort_by_change`` orders the tiles by
    the L2 norm of their difference, largest first (stable), the same order in all three panels.
    """
    ka, kb = _as_float(ka), _as_float(kb)
    if ka.shape != kb.shape:
        raise UsageError(f"shapes differ: {ka.shape} vs {kb.shape}; A | B | B - A needs equal shapes")
    if ka.size == 0:
        raise UsageError(f"an empty kernel {ka.shape} cannot be drawn")
    kind = layout_kind(ka.shape, grey=grey, depthwise=depthwise)
    lo, hi = value_range(ka, kb)
    ta = tiles_of(to_uint8(ka, lo, hi), kind, bgr)
    tb = tiles_of(to_uint8(kb, lo, hi), kind, bgr)
    with np.errstate(invalid="ignore", over="ignore"):
        d = kb.astype(np.float64) - ka.astype(np.float64)
    td = tiles_of(d, kind, bgr)
    norms = _tile_norms(td)
    if td.ndim == 4:  # RGB: the channel that moved most, with its sign
        mag = np.where(np.isfinite(td), np.abs(td), np.inf)
        idx = np.argmax(mag, axis=-1)[..., np.newaxis]
        td = np.take_along_axis(td, idx, axis=-1)[..., 0]
    finite = td[np.isfinite(td)]
    dmax = float(np.abs(finite).max()) if finite.size else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        t = td / dmax if dmax > 0 else np.where(np.isfinite(td), 0.0, td)
    cd = diverging(t)
    if ta.ndim == 3:  # grey tiles -> RGB so the three panels are alike
        ta = np.repeat(ta[..., np.newaxis], 3, axis=-1)
        tb = np.repeat(tb[..., np.newaxis], 3, axis=-1)
    order = np.argsort(-norms, kind="stable") if sort_by_change else np.arange(len(norms))
    ta, tb, cd = ta[order], tb[order], cd[order]
    ta, note = limit_tiles(ta, PANEL_SIDE)
    tb, _ = limit_tiles(tb, PANEL_SIDE)
    cd, _ = limit_tiles(cd, PANEL_SIDE)
    fill = tuple(EMPTY)
    return PairPanels(
        _grid(ta, fill), _grid(tb, fill), _grid(cd, fill), float(lo), float(hi), dmax, kind, order, norms, note
    )


def _font(size: int = 12):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


def _num(x: float) -> str:
    return f"{x:.4g}"


def compose(panels: PairPanels, scale: int, caption: list[str]) -> PILImage.Image:
    """Lay out the caption strip, the panel labels and the three upscaled panels with separators.
    The panel boxes (x0, y0, x1, y1) are in ``image.info['kaudit']['panels']``."""
    from PIL import Image, ImageDraw

    ph, pw = panels.a.shape[:2]
    scale = side_scale(ph, 3 * pw, fit_scale(ph, pw, scale, panels=3))
    sep = max(2, scale // 2)
    margin = 8
    font = _font(12)
    line_h = 16
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max((int(draw_probe.textlength(line, font=font)) for line in caption), default=0)
    big = [upscale(p, scale) for p in (panels.a, panels.b, panels.delta)]
    sh, sw = big[0].shape[:2]
    row_w = 3 * sw + 2 * sep
    width = max(row_w, text_w) + 2 * margin
    caption_h = margin + line_h * len(caption) + 4
    label_h = line_h + 2
    top = caption_h + label_h
    height = top + sh + margin
    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(caption):
        draw.text((margin, margin + i * line_h), line, fill=TEXT, font=font)
    boxes = []
    x = margin
    for i, (label, arr) in enumerate(zip(PANEL_LABELS, big, strict=True)):
        draw.text((x, caption_h), label, fill=TEXT, font=font)
        img.paste(Image.fromarray(arr, "RGB"), (x, top))
        boxes.append((x, top, x + sw, top + sh))
        x += sw
        if i < 2:
            draw.rectangle((x, top - 2, x + sep - 1, top + sh + 1), fill=SEPARATOR)
            x += sep
    # a frame around the row, so an all-white (unchanged) difference panel still shows its extent
    draw.rectangle((margin - 2, top - 2, margin + row_w + 1, top + sh + 1), outline=SEPARATOR, width=1)
    img.info["kaudit"] = {
        "panels": boxes,
        "scale": scale,
        "lo": panels.lo,
        "hi": panels.hi,
        "delta_max": panels.delta_max,
        "kind": panels.kind,
    }
    return img


def pair_image(
    ka,
    kb,
    *,
    name_a: str = "A",
    name_b: str = "B",
    path: str = "",
    path_b: str | None = None,
    bgr: bool = False,
    grey: bool = False,
    depthwise: bool = False,
    scale: int = DEFAULT_SCALE,
    sort_by_change: bool = False,
) -> PILImage.Image:
    """The A | B | B - A image of two kernels, with its caption."""
    p = pair_panels(ka, kb, bgr=bgr, grey=grey, depthwise=depthwise, sort_by_change=sort_by_change)
    shape = "(" + ", ".join(str(d) for d in np.shape(ka)) + ")"
    where = path if not path_b or path_b == path else f"{path}  <->  {path_b}"
    caption = [
        _short(f"A: {name_a}"),
        _short(f"B: {name_b}"),
        _short(
            f"{where}  {shape}  {p.kind} tiles"
            + ("  (BGR -> RGB)" if bgr and p.kind == "rgb" else "")
            + ("  sorted by change" if sort_by_change else "")
            + (f"  ({p.note})" if p.note else "")
        ),
        f"A, B: [{_num(p.lo)}, {_num(p.hi)}] -> 0..255 (one scale)    "
        + (
            f"B - A: -{_num(p.delta_max)} blue .. 0 white .. +{_num(p.delta_max)} red"
            if p.delta_max > 0
            else "B - A: all zero"
        ),
    ]
    img = compose(p, scale, caption)
    img.info["kaudit"].update(
        path=path, path_b=path_b or path, file_a=name_a, file_b=name_b, order=[int(i) for i in p.order], note=p.note
    )
    return img


def single_image(
    kernel,
    *,
    name: str = "",
    path: str = "",
    bgr: bool = False,
    grey: bool = False,
    depthwise: bool = False,
    scale: int = DEFAULT_SCALE,
    gaps: bool = True,
) -> PILImage.Image:
    """One kernel drawn the tutorial's way, with a caption strip (file, variable, shape, layout,
    value range) as the pair montages have, a gap between tiles from scale GAP_FROM_SCALE on
    (empty grid slots then EMPTY, as in the pair montages; below it, or with ``gaps=False``, the
    tutorial's picture exactly, empty slots the mean colour), and no side much past MAX_SIDE (tiles left out, said in the
    caption). The grid's box is ``image.info['kaudit']['panels'][0]``; RGB, or L for grey tiles."""
    from PIL import Image, ImageDraw

    k = np.asarray(kernel)
    kind = layout_kind(k.shape, grey=grey, depthwise=depthwise)
    if k.size == 0:
        raise UsageError(f"an empty kernel {k.shape} cannot be drawn")
    tiles = tiles_of(to_uint8(k), kind, bgr)
    tiles, note = limit_tiles(tiles, MAX_SIDE)
    plain = _grid(tiles)
    per = math.ceil(math.sqrt(len(tiles)))  # tiles per side of the grid

    def gap_of(scale_: int) -> int:
        return scale_ // 4 if gaps and scale_ >= GAP_FROM_SCALE and len(tiles) > 1 else 0

    s = fit_scale(plain.shape[0], plain.shape[1], scale)
    while s > 1 and max(plain.shape[:2]) * s + (per - 1) * gap_of(s) > MAX_SIDE:
        s -= 1
    gap = gap_of(s)
    if gap:
        import skimage.util

        big_tiles = np.repeat(np.repeat(tiles, s, axis=1), s, axis=2)
        fill = EMPTY if big_tiles.ndim == 4 else EMPTY[0]
        body = skimage.util.montage(
            big_tiles, fill=fill, padding_width=gap, channel_axis=-1 if big_tiles.ndim == 4 else None
        )
        body = body[gap:-gap, gap:-gap] if body.shape[0] > 2 * gap and body.shape[1] > 2 * gap else body
    else:
        body = upscale(plain, s)
    lo, hi = value_range(k)
    shape = "(" + ", ".join(str(d) for d in k.shape) + ")"
    caption = [
        _short(f"{name}") if name else "",
        _short(
            f"{path}  {shape}  {kind} tiles"
            + ("  (BGR -> RGB)" if bgr and kind == "rgb" else "")
            + (f"  ({note})" if note else "")
        ),
        f"[{_num(lo)}, {_num(hi)}] -> 0..255" + (f"    x{s}" if s > 1 else ""),
    ]
    caption = [c for c in caption if c]
    mode = "RGB" if body.ndim == 3 else "L"
    font = _font(12)
    margin, line_h = 8, 16
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max((int(probe.textlength(line, font=font)) for line in caption), default=0)
    bh, bw = body.shape[:2]
    top = margin + line_h * len(caption) + 4
    img = Image.new(
        mode, (max(bw, text_w) + 2 * margin, top + bh + margin), BACKGROUND if mode == "RGB" else BACKGROUND[0]
    )
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(caption):
        draw.text((margin, margin + i * line_h), line, fill=TEXT if mode == "RGB" else TEXT[0], font=font)
    img.paste(Image.fromarray(body, mode), (margin, top))
    img.info["kaudit"] = {
        "file_a": name,
        "path": path,
        "shape": list(k.shape),
        "scale": s,
        "gap": gap,
        "lo": float(lo),
        "hi": float(hi),
        "kind": kind,
        "note": note,
        "panels": [(margin, top, margin + bw, top + bh)],
    }
    return img


# -- checkpoints ----------------------------------------------------------------------------------


def _has_values(ckpt: Checkpoint) -> None:
    if not getattr(ckpt.store, "has_values", True):
        raise InputError(
            "a kaudit snapshot holds no values to draw", path=ckpt.file, hint="draw the checkpoint file itself"
        )


def is_depthwise(v: Variable) -> bool:
    """Depthwise kernels (h, w, c_in, depth_multiplier) never mix channels: grey tiles."""
    return v.name == "depthwise_kernel" or (v.name == "kernel" and (v.layer_class or "").startswith("DepthwiseConv"))


def _drawable(v: Variable) -> bool:
    return 2 <= v.ndim <= 4 and v.params > 0


def _is_conv(v: Variable) -> bool:
    return v.ndim in (3, 4) and v.params > 0


def _check(v: Variable, ckpt: Checkpoint) -> Variable:
    if not _drawable(v):
        raise UsageError(
            f"{v.path} {tuple(v.shape)} cannot be drawn",
            path=ckpt.file,
            hint="montages draw 4-D conv kernels (Conv2D, depthwise), 3-D (Conv1D) and 2-D (Dense) kernels",
        )
    return v


def _pick(vs: list[Variable]) -> Variable | None:
    """The kernel to draw among ``vs``: the first conv kernel, else the first 2-D kernel."""
    for v in vs:
        if _is_conv(v):
            return v
    for v in vs:
        if v.ndim == 2 and v.params > 0:
            return v
    return None


def resolve(ckpt: Checkpoint, layer: str | None = None) -> Variable:
    """The variable ``--layer`` names: a variable path, a layer path (or a unique layer name), or
    a glob (``kaudit.paths.match`` on variable and layer paths). The first drawable kernel, in
    Keras order, is taken. Without ``layer``: the first conv kernel (4-D, or 3-D for Conv1D)."""
    mv = list(ckpt.model_variables)
    if layer is None:
        for v in mv:
            if _is_conv(v):
                return v
        raise UsageError(
            "no conv kernel (4-D, or 3-D for Conv1D) in this file",
            path=ckpt.file,
            hint="name a variable with --layer, see `kaudit inspect`",
        )
    if layer in ckpt:
        return _check(ckpt.variable(layer), ckpt)
    hits: list[Variable] = []
    with contextlib.suppress(VariableNotFoundError):
        hits = list(ckpt.layer(layer).weights)
    if not hits:
        try:
            paths.validate_pattern(layer)
        except ValueError as exc:
            raise UsageError(f"bad --layer pattern {layer!r}: {exc}") from None
        hits = [v for v in mv if paths.match(layer, v.path) or paths.match(layer, v.layer)]
    if not hits:
        import difflib

        names = sorted({v.layer for v in mv} | {v.path for v in mv})
        close = difflib.get_close_matches(layer, names, n=1, cutoff=0.6)
        raise VariableNotFoundError(
            f"nothing matches --layer {layer!r}",
            path=ckpt.file,
            hint=f"did you mean {close[0]!r}?" if close else "see `kaudit inspect` for the paths",
        )
    picked = _pick(hits)
    if picked is None:
        found = ", ".join(f"{h.path} {tuple(h.shape)}" for h in hits[:4]) + (", ..." if len(hits) > 4 else "")
        raise UsageError(
            f"--layer {layer!r} matches no drawable kernel ({found})",
            path=ckpt.file,
            hint="montages draw 4-D conv, 3-D Conv1D and 2-D Dense kernels",
        )
    return picked


class _Pairing:
    """b's variable paired with a variable of a, the way the diff pairs them: the same path first,
    else ``kaudit.align.align`` over all variables (computed once, when first needed)."""

    def __init__(self, ca: Checkpoint, cb: Checkpoint):
        self.ca, self.cb = ca, cb
        self._pairs: dict[str, Variable | None] | None = None

    def __call__(self, va: Variable) -> Variable | None:
        if va.path in self.cb and self.cb.variable(va.path).shape == va.shape:
            return self.cb.variable(va.path)
        if self._pairs is None:
            from .align import align

            pairs, _ = align(list(self.ca.all_variables), list(self.cb.all_variables), ckpt_a=self.ca, ckpt_b=self.cb)
            self._pairs = {p.a.path: p.b for p in pairs if p.a is not None}
        return self._pairs.get(va.path)


def _resolve_pair(ca: Checkpoint, cb: Checkpoint, layer: str | None) -> tuple[Variable, Variable]:
    counterpart = _Pairing(ca, cb)
    if layer is None:
        candidates = [v for v in ca.model_variables if _is_conv(v)]
        if not candidates:
            resolve(ca, None)  # raises the "no conv kernel" error
        for va in candidates:
            vb = counterpart(va)
            if vb is not None and vb.shape == va.shape:
                return va, vb
        raise UsageError(
            f"no conv kernel of {ca.file} has a counterpart of the same shape in {cb.file}",
            hint="name one with --layer",
        )
    va = resolve(ca, layer)
    vb = counterpart(va)
    if vb is None:
        raise VariableNotFoundError(
            f"{va.path} has no counterpart in {cb.file}",
            path=ca.file,
            hint="see `kaudit diff` for how the variables pair",
        )
    if vb.shape != va.shape:
        raise UsageError(
            f"{va.path} shape {tuple(va.shape)} in A but {tuple(vb.shape)} in B ({vb.path})",
            path=ca.file,
            hint="A | B | B - A needs equal shapes",
        )
    return va, vb


def montage(
    a,
    b=None,
    *,
    layer: str | None = None,
    bgr: bool = False,
    grey: bool = False,
    scale: int = DEFAULT_SCALE,
    sort_by_change: bool = False,
    gaps: bool = True,
) -> PILImage.Image:
    """Draw a kernel of checkpoint ``a`` (path or Checkpoint) the tutorial's way, or, with ``b``,
    A | B | B - A side by side with a caption. Returns a ``PIL.Image.Image`` (RGB, or L for grey
    single-file montages); ``image.info['kaudit']`` describes it (path, scale, ranges, panels).
    ``gaps=False``: no gaps between the tiles of a single-file montage (the tutorial's picture)."""
    if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool) or scale < 1:
        raise UsageError(f"--scale must be an integer >= 1, got {scale!r}")
    scale = int(scale)
    if b is None:
        if sort_by_change:
            raise UsageError("--sort-by-change needs two checkpoints (A and B)")
        with opened(a) as ca:
            _has_values(ca)
            v = resolve(ca, layer)
            kernel = ca.read(v)
            file_a = ca.file
        return single_image(
            kernel, name=file_a, path=v.path, bgr=bgr, grey=grey, depthwise=is_depthwise(v), scale=scale, gaps=gaps
        )
    with opened(a) as ca, opened(b) as cb:
        _has_values(ca)
        _has_values(cb)
        va, vb = _resolve_pair(ca, cb, layer)
        ka, kb = ca.read(va), cb.read(vb)
        name_a, name_b = ca.file, cb.file
    return pair_image(
        ka,
        kb,
        name_a=name_a,
        name_b=name_b,
        path=va.path,
        path_b=vb.path,
        bgr=bgr,
        grey=grey,
        depthwise=is_depthwise(va),
        scale=scale,
        sort_by_change=sort_by_change,
    )


def to_png(img: PILImage.Image) -> bytes:
    """PNG bytes; ``image.info['kaudit']`` goes into a ``kaudit`` text chunk."""
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    info = img.info.get("kaudit")
    if info:
        meta.add_text("kaudit", json.dumps(info, default=str))
    meta.add_text("Software", "kaudit")
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()


def montage_png(a, b=None, **options) -> bytes:
    """:func:`montage` as PNG bytes."""
    return to_png(montage(a, b, **options))


# -- montages of a diff ----------------------------------------------------------------------------

_VALUE_STATUSES = ("close", "changed", "dtype_changed")


def changed_kernels(result: DiffResult) -> list[tuple[str, str]]:
    """(path in A, path in B) of the conv kernels (3-D or 4-D) the diff saw change, equal shapes,
    in the table's (Keras) order."""
    out = []
    for r in result.records:
        if r.status not in _VALUE_STATUSES or r.shape_a is None or r.shape_b is None:
            continue
        if list(r.shape_a) != list(r.shape_b) or len(r.shape_a) not in (3, 4) or 0 in list(r.shape_a):
            continue
        out.append((r.path, r.path_b or r.path))
    return out


def diff_pictures(
    result: DiffResult, ca: Checkpoint, cb: Checkpoint, limit: int | None = None, scale=None
) -> tuple[tuple[Picture, ...], int]:
    """(pictures, number of changed conv kernels): an A | B | B - A montage of each of the first
    ``limit`` (all when None) changed conv kernels of ``result``, drawn from the open checkpoints
    it was computed from. ``scale``: the upscaling, or a callable (panel height, width) -> scale
    (default :func:`file_scale`). None when a side is a snapshot (no values to draw)."""
    from .result import Picture

    todo = changed_kernels(result)
    total = len(todo)
    if limit is not None:
        todo = todo[:limit]
    if not todo or not getattr(ca.store, "has_values", True) or not getattr(cb.store, "has_values", True):
        return (), total
    scale = file_scale if scale is None else scale
    out = []
    for pa, pb in todo:
        va, vb = ca.variable(pa), cb.variable(pb)
        ka, kb = ca.read(va), cb.read(vb)
        s = scale
        if callable(scale):
            kind = layout_kind(va.shape, depthwise=is_depthwise(va))
            h, w = _grid(tiles_of(np.zeros(va.shape, np.uint8), kind)).shape[:2]
            s = scale(h, w)
        img = pair_image(
            ka, kb, name_a=result.file_a, name_b=result.file_b, path=pa, path_b=pb, depthwise=is_depthwise(va), scale=s
        )
        out.append(Picture(pa, pb, to_png(img), img.width, img.height))
    return tuple(out), total


def file_scale(height: int, width: int) -> int:
    """The upscaling of ``--montage-dir`` images: 8, lowered so a panel stays near 1024 px
    ((7, 7, 3, 64): x8, 448 px; (3, 3, 128, 128): x2, 768 px; larger: x1)."""
    return max(1, min(DEFAULT_SCALE, 1024 // max(height, width, 1)))


def write_diff_montages(result: DiffResult, directory: str | os.PathLike) -> list[str]:
    """The montages of ``result.pictures`` (``kaudit.diff(..., pictures=None)`` draws them all)
    as PNG files in ``directory`` (created if needed), named after the variable path
    (``kaudit.paths.safe_filename``), written atomically. Returns the written paths."""
    from ._io import write_atomic

    directory = os.fspath(directory)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise KauditError(f"cannot create the montage directory: {exc.strerror or exc}", path=directory) from None
    written: list[str] = []
    used: set[str] = set()
    for pic in result.pictures:
        name = paths.safe_filename(pic.path, ".png")
        stem, n = name[:-4], 2
        while name in used:
            name = f"{stem}-{n}.png"
            n += 1
        used.add(name)
        target = os.path.join(directory, name)
        write_atomic(target, pic.png)
        written.append(target)
    return written
