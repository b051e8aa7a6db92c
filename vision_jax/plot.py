"""Figures: image grids, dictionary tiles, curves, histograms, animations.

Every function returns a :class:`matplotlib.figure.Figure` (nothing is shown), accepts numpy or
JAX arrays, and works with the Agg backend. Save with ``fig.savefig(path)`` or
:func:`vision_jax.runner.save_figure`.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from vision_jax._checks import check_choice, check_int, check_positive

__all__ = ["imshow", "tiles", "curves", "histograms", "save_animation"]


def _figure(n_rows: int, n_cols: int, cell: float, *, squeeze: bool = False):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols, cell * n_rows), squeeze=squeeze)
    return fig, np.atleast_1d(axes).ravel()


def _numpy(name: str, x) -> np.ndarray:
    """numpy view of a numpy/JAX array; dtypes numpy cannot compute with (bfloat16) become float32."""
    arr = np.asarray(x)
    if arr.dtype.kind == "V":
        arr = arr.astype(np.float32)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    return arr


def _as_image_list(images) -> list[np.ndarray]:
    """A single (H, W) / (H, W, 3) image, a batch (N, H, W[, C]) or a list -> list of images.

    A 3-D array whose last axis has 3 or 4 entries and whose first has more than 4 is read as one
    colour image; any other 3-D array as a batch of grey images.
    """
    if isinstance(images, (list, tuple)):
        out = [_numpy(f"images[{i}]", im) for i, im in enumerate(images)]
    else:
        arr = _numpy("images", images)
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4):
            out = [arr]
        elif arr.ndim in (3, 4):
            out = list(arr)
        else:
            raise ValueError(f"images: expected (H, W), (H, W, 3), (N, H, W) or (N, H, W, C), got shape {arr.shape}")
    if not out:
        raise ValueError("images: expected at least one image, got none")
    for i, im in enumerate(out):
        if im.ndim == 3 and im.shape[-1] == 1:
            out[i] = im = im[..., 0]
        if im.ndim not in (2, 3) or (im.ndim == 3 and im.shape[-1] not in (3, 4)):
            raise ValueError(f"images[{i}]: expected (H, W) or (H, W, 3), got shape {im.shape}")
    return out


def _check_vrange(vrange, names: tuple[str, ...]):
    if isinstance(vrange, str):
        return check_choice("vrange", vrange, names)
    try:
        lo, hi = (float(v) for v in vrange)
    except (TypeError, ValueError):
        raise ValueError(f"vrange: expected one of {list(names)} or (lo, hi), got {vrange!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"vrange: expected finite (lo, hi) with lo < hi, got {vrange!r}")
    return lo, hi


def imshow(
    images,
    *,
    titles: Sequence[str] | None = None,
    vrange="auto",
    cmap: str = "gray",
    col_wrap: int | None = None,
    zoom: float = 1.0,
    colorbar: bool = False,
):
    """Show images side by side with titles and a common or per-image value range.

    Args:
      images: ``(H, W)``, ``(H, W, 3)``, a batch ``(N, H, W)`` / ``(N, H, W, C)`` or a list.
      titles: one title per image.
      vrange: ``"auto"`` (one range shared by all images: min to max over all), ``"indep"``
        (each image its own min to max), ``"sym"`` (shared, symmetric around 0) or ``(lo, hi)``.
      cmap: colour map of grey images.
      col_wrap: images per row (default: all in one row, up to 8).
      zoom: size multiplier (1 = about 2.5 inches per image).
      colorbar: add a colour bar to each grey image.
    """
    ims = _as_image_list(images)
    n = len(ims)
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles: expected {n} titles (one per image), got {len(titles)}")
    vrange = _check_vrange(vrange, ("auto", "indep", "sym"))
    check_positive("zoom", zoom)
    cols = min(n, 8) if col_wrap is None else check_int("col_wrap", col_wrap, min_value=1)
    rows = math.ceil(n / cols)
    fig, axes = _figure(rows, cols, 2.5 * zoom)
    lo_all = min(float(np.nanmin(im)) for im in ims)
    hi_all = max(float(np.nanmax(im)) for im in ims)
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= n:
            continue
        im = ims[i].astype(np.float64)
        if vrange == "auto":
            lo, hi = lo_all, hi_all
        elif vrange == "indep":
            lo, hi = float(np.nanmin(im)), float(np.nanmax(im))
        elif vrange == "sym":
            m = max(abs(lo_all), abs(hi_all))
            lo, hi = -m, m
        else:
            lo, hi = vrange
        if hi <= lo:
            hi = lo + 1e-12
        if im.ndim == 3:
            shown = ax.imshow(np.clip((im - lo) / (hi - lo), 0, 1), interpolation="nearest")
        else:
            shown = ax.imshow(im, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            if colorbar:
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    fig.tight_layout()
    return fig


def _tile_array(patches: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    n, h, w = patches.shape[:3]
    extra = patches.shape[3:]
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad) + extra, np.nan)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = patches[i]
    return canvas


def tiles(
    dictionary,
    *,
    patch_shape: tuple[int, int] | None = None,
    n_cols: int | None = None,
    max_atoms: int | None = None,
    title: str | None = None,
    cmap: str = "gray",
    zoom: float = 1.0,
):
    """Dictionary atoms or filters as a grid of small images, each scaled symmetrically around 0.

    Args:
      dictionary: ``(N, M)`` rows reshaped to ``patch_shape`` (default square), ``(N, h, w)``,
        or convolution kernels ``(kh, kw, c_in, c_out)`` (one tile per output channel; RGB when
        ``c_in == 3``, else the first input channel).
      patch_shape: ``(h, w)`` of each row of an ``(N, M)`` dictionary.
      n_cols: tiles per row (default about sqrt(N)).
      max_atoms: show at most this many atoms.
    """
    d = _numpy("dictionary", dictionary).astype(np.float64)
    check_positive("zoom", zoom)
    if n_cols is not None:
        n_cols = check_int("n_cols", n_cols, min_value=1)
    if max_atoms is not None:
        max_atoms = check_int("max_atoms", max_atoms, min_value=1)
    if d.ndim == 4:
        kh, kw, cin, cout = d.shape
        d = np.moveaxis(d, -1, 0)
        d = d if cin == 3 else d[..., 0]
    elif d.ndim == 2:
        n, m = d.shape
        if patch_shape is None:
            side = int(round(math.sqrt(m)))
            if side * side != m:
                raise ValueError(f"patch_shape: rows of length {m} are not square; pass patch_shape=(h, w)")
            patch_shape = (side, side)
        if len(patch_shape) != 2 or patch_shape[0] * patch_shape[1] != m:
            raise ValueError(f"patch_shape: expected h * w == {m}, got {tuple(patch_shape)}")
        d = d.reshape((n,) + tuple(patch_shape))
    elif d.ndim != 3:
        raise ValueError(f"dictionary: expected (N, M), (N, h, w) or (kh, kw, c_in, c_out), got shape {d.shape}")
    if d.shape[0] == 0:
        raise ValueError("dictionary: expected at least one atom, got none")
    if max_atoms is not None:
        d = d[:max_atoms]
    n = d.shape[0]
    # Each atom scaled to [-1, 1] by its own largest absolute value, then mapped to [0, 1].
    scale = np.max(np.abs(d.reshape(n, -1)), axis=1).reshape((n,) + (1,) * (d.ndim - 1))
    d = 0.5 + 0.5 * d / np.where(scale > 0, scale, 1)
    cols = n_cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    canvas = _tile_array(d, rows, cols)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(3.0, 0.35 * cols * zoom * d.shape[2] / 8), max(3.0, 0.35 * rows * zoom * d.shape[1] / 8)))
    if canvas.ndim == 3:
        ax.imshow(np.nan_to_num(canvas, nan=1.0), interpolation="nearest")
    else:
        ax.imshow(np.ma.masked_invalid(canvas), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def curves(
    ys: dict,
    *,
    x=None,
    xlabel: str = "iteration",
    ylabel: str = "",
    title: str | None = None,
    logx: bool = False,
    logy: bool = False,
):
    """Line plot of named curves; a ``(runs, T)`` entry is drawn as mean ± sd over runs.

    Args:
      ys: dict label -> ``(T,)`` or ``(runs, T)`` array.
      x: shared ``(T,)`` abscissa (default ``0 .. T-1``).
    """
    import matplotlib.pyplot as plt

    if not isinstance(ys, dict) or not ys:
        raise ValueError("ys: expected a non-empty dict label -> (T,) or (runs, T) array")
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, y in ys.items():
        y = _numpy(f"ys[{label!r}]", y).astype(np.float64)
        if y.ndim not in (1, 2):
            raise ValueError(f"ys[{label!r}]: expected (T,) or (runs, T), got shape {y.shape}")
        t = np.arange(y.shape[-1]) if x is None else _numpy("x", x)
        if t.shape != (y.shape[-1],):
            raise ValueError(f"x: expected shape ({y.shape[-1]},) to match ys[{label!r}], got {t.shape}")
        if y.ndim == 2:
            mean, sd = y.mean(0), y.std(0)
            (line,) = ax.plot(t, mean, label=f"{label} (n={y.shape[0]})")
            ax.fill_between(t, mean - sd, mean + sd, color=line.get_color(), alpha=0.25, linewidth=0)
        else:
            ax.plot(t, y, label=str(label))
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def histograms(values: dict, *, bins: int = 30, xlabel: str = "", title: str | None = None, density: bool = False):
    """Overlaid histograms of named samples (dict label -> array of any shape, flattened)."""
    import matplotlib.pyplot as plt

    if not isinstance(values, dict) or not values:
        raise ValueError("values: expected a non-empty dict label -> array")
    bins = check_int("bins", bins, min_value=1)
    flat = {k: _numpy(f"values[{k!r}]", v).astype(np.float64).ravel() for k, v in values.items()}
    allv = np.concatenate(list(flat.values()))
    if not np.any(np.isfinite(allv)):
        raise ValueError("values: expected at least one finite value, got none")
    fig, ax = plt.subplots(figsize=(6, 4))
    edges = np.histogram_bin_edges(allv[np.isfinite(allv)], bins=bins)
    for label, v in flat.items():
        ax.hist(v[np.isfinite(v)], bins=edges, alpha=0.5, label=str(label), density=density, histtype="stepfilled")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density" if density else "count")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_animation(frames, path, *, fps: float = 10.0, vrange="auto", scale: int = 1) -> Path:
    """Write ``frames`` ``(T, H, W)`` or ``(T, H, W, 3)`` to a GIF (Pillow) or MP4 (ffmpeg).

    Args:
      frames: the movie (``(T, H, W, 1)`` is read as grey); grey frames are mapped to 8-bit grey.
      path: ``.gif`` or ``.mp4`` file.
      fps: frames per second.
      vrange: ``"auto"`` (min to max over the movie) or ``(lo, hi)``.
      scale: integer upscaling of each pixel (nearest neighbour).

    Returns:
      The path written.
    """
    arr = _numpy("frames", frames).astype(np.float64)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] != 3) or arr.shape[0] < 1:
        raise ValueError(f"frames: expected (T, H, W) or (T, H, W, 3) with T >= 1, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("frames: expected finite values, got NaN/inf")
    check_positive("fps", fps, unit="frames per second")
    scale = check_int("scale", scale, min_value=1)
    vrange = _check_vrange(vrange, ("auto",))
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"path: expected a .gif or .mp4 file name, got {path.name!r}")
    lo, hi = (arr.min(), arr.max()) if vrange == "auto" else vrange
    u8 = np.round(255 * np.clip((arr - lo) / max(hi - lo, 1e-12), 0, 1)).astype(np.uint8)
    if scale > 1:
        u8 = u8.repeat(scale, axis=1).repeat(scale, axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        from PIL import Image

        mode = "L" if u8.ndim == 3 else "RGB"
        images = [Image.fromarray(f, mode=mode) for f in u8]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)
        return path
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("path: writing .mp4 needs the ffmpeg program on PATH (e.g. apt-get install ffmpeg); write a .gif instead")
    import subprocess

    h, w = u8.shape[1:3]
    pix = "gray" if u8.ndim == 3 else "rgb24"
    cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", pix, "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
           "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p", "-c:v", "libx264", str(path)]
    subprocess.run(cmd, input=u8.tobytes(), check=True)
    return path
