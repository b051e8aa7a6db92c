"""Figures draw with Agg, save to PNG, apply value ranges, and reject bad input."""
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from vision_jax import plot
from vision_jax.runner import save_figure


def _png_ok(path, min_side=100):
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) >= min_side
        return np.asarray(im)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, (5, 16, 20)).astype(np.float32)


def _clims(fig):
    return [ax.images[0].get_clim() for ax in fig.axes if ax.images]


def test_imshow_shared_range(batch, tmp_path):
    batch = batch.copy()
    batch[2] *= 3
    fig = plot.imshow(batch, titles=[f"im{i}" for i in range(5)])
    clims = _clims(fig)
    assert len(clims) == 5 and len(set(clims)) == 1
    np.testing.assert_allclose(clims[0], (batch.min(), batch.max()), rtol=1e-6)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["im0", "im1"]
    _png_ok(save_figure(fig, tmp_path, "grid"))


def test_imshow_independent_symmetric_and_fixed_ranges(batch):
    indep = _clims(plot.imshow(batch, vrange="indep"))
    np.testing.assert_allclose(indep[1], (batch[1].min(), batch[1].max()), rtol=1e-6)
    sym = _clims(plot.imshow(batch - 0.7, vrange="sym"))
    assert sym[0][0] == -sym[0][1]
    assert _clims(plot.imshow(batch, vrange=(0.2, 0.4)))[0] == (0.2, 0.4)


def test_imshow_colour_list_and_wrap(tmp_path):
    rng = np.random.default_rng(1)
    colour = rng.uniform(0, 1, (24, 30, 3))
    fig = plot.imshow([colour, colour[..., 0]], col_wrap=1)
    assert len(fig.axes) == 2 and fig.axes[0].images[0].get_array().shape == (24, 30, 3)
    _png_ok(save_figure(fig, tmp_path, "colour"))


def test_tiles_square_rows_and_conv_kernels(tmp_path):
    rng = np.random.default_rng(2)
    d = rng.standard_normal((30, 49))
    fig = plot.tiles(d, title="atoms")
    canvas = fig.axes[0].images[0].get_array()
    assert canvas.shape == (5 * 8 + 1, 6 * 8 + 1)  # 30 atoms: 6 columns, 5 rows of 7x7 + 1 px gaps
    assert np.nanmin(canvas) >= 0 and np.nanmax(canvas) <= 1
    _png_ok(save_figure(fig, tmp_path, "tiles"))
    kernels = rng.standard_normal((5, 5, 3, 12))
    _png_ok(save_figure(plot.tiles(kernels), tmp_path, "kernels"))


def test_curves_with_bands_and_histograms(tmp_path):
    rng = np.random.default_rng(3)
    fig = plot.curves({"runs": rng.standard_normal((4, 50)).cumsum(1), "single": np.arange(50.0)}, ylabel="F")
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and len(ax.collections) == 1  # one band for the stacked runs
    _png_ok(save_figure(fig, tmp_path, "curves"))
    fig = plot.histograms({"a": rng.standard_normal(500), "b": rng.standard_normal(300) + 2}, bins=20)
    assert len(fig.axes[0].patches) == 2
    _png_ok(save_figure(fig, tmp_path, "hist"))


def test_gif_animation(tmp_path):
    frames = np.linspace(0, 1, 7)[:, None, None] * np.ones((7, 12, 10))
    path = plot.save_animation(frames, tmp_path / "movie.gif", fps=5, scale=2)
    with Image.open(path) as im:
        assert im.n_frames == 7 and im.size == (20, 24)


def test_jax_arrays_including_bfloat16(batch, tmp_path):
    fig = plot.imshow(jnp.asarray(batch[:2], dtype=jnp.bfloat16))
    as_f32 = np.asarray(jnp.asarray(batch[:2], dtype=jnp.bfloat16).astype(jnp.float32))
    np.testing.assert_allclose(_clims(fig)[0], (as_f32.min(), as_f32.max()))
    plot.curves({"loss": jnp.linspace(1.0, 0.1, 20)}, logy=True)
    plot.tiles(jnp.asarray(batch[:4]))
    plot.histograms({"x": jnp.asarray(batch)})
    path = plot.save_animation(jnp.asarray(batch)[..., None], tmp_path / "jax.gif")
    with Image.open(path) as im:
        assert im.n_frames == 5


def test_mp4_without_ffmpeg_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="ffmpeg"):
        plot.save_animation(np.zeros((2, 4, 4)), tmp_path / "m.mp4")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_mp4_with_ffmpeg(tmp_path):
    path = plot.save_animation(np.random.default_rng(4).uniform(size=(6, 15, 17)), tmp_path / "m.mp4", fps=6)
    assert path.stat().st_size > 0


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: plot.imshow(np.zeros((2, 3, 4, 5, 6))), ValueError, ["images", "shape"]),
        (lambda: plot.imshow([]), ValueError, ["images", "at least one"]),
        (lambda: plot.imshow(np.zeros((2, 4, 4)), titles=["a"]), ValueError, ["titles", "2 titles"]),
        (lambda: plot.imshow(np.zeros((4, 4)), vrange=(1, 0)), ValueError, ["vrange", "lo < hi"]),
        (lambda: plot.imshow(np.zeros((4, 4)), vrange="big"), ValueError, ["vrange"]),
        (lambda: plot.tiles(np.zeros((3, 10))), ValueError, ["patch_shape", "not square"]),
        (lambda: plot.tiles(np.zeros((3,))), ValueError, ["dictionary", "shape"]),
        (lambda: plot.curves({}), ValueError, ["ys", "non-empty"]),
        (lambda: plot.curves({"a": np.zeros(5)}, x=np.arange(4)), ValueError, ["x", "(5,)"]),
        (lambda: plot.save_animation(np.zeros((4, 4)), "m.gif"), ValueError, ["frames", "(T, H, W)"]),
        (lambda: plot.save_animation(np.zeros((2, 4, 4)), "m.avi"), ValueError, ["path", ".gif"]),
        (lambda: plot.save_animation(np.full((2, 4, 4), np.nan), "m.gif"), ValueError, ["frames", "finite"]),
        (lambda: plot.save_animation(np.zeros((2, 4, 4)), "m.gif", fps=0), ValueError, ["fps", "positive"]),
        (lambda: plot.save_animation(np.zeros((2, 4, 4)), "m.gif", vrange="indep"), ValueError, ["vrange", "auto"]),
        (lambda: plot.save_animation(np.zeros((2, 4, 4)), "m.gif", scale=0), ValueError, ["scale", ">= 1"]),
        (lambda: plot.imshow(np.zeros((4, 4)), col_wrap=0), ValueError, ["col_wrap", ">= 1"]),
        (lambda: plot.imshow(np.zeros((4, 4)), zoom=-1), ValueError, ["zoom", "positive"]),
        (lambda: plot.imshow(np.array(["a", "b"])), TypeError, ["images", "dtype"]),
        (lambda: plot.tiles(np.zeros((3, 12)), patch_shape=(3, 5)), ValueError, ["patch_shape", "12"]),
        (lambda: plot.histograms({"a": np.zeros(3)}, bins=0), ValueError, ["bins", ">= 1"]),
        (lambda: plot.histograms({"a": np.full(3, np.nan)}), ValueError, ["values", "finite"]),
    ],
)
def test_bad_input_names_the_argument(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))
