"""Stimulus movies ``(T, H, W)`` (float32 numpy) for the retina, and loading movies from files.

Positions and sizes are in pixels, times in frames, luminance in the caller's units (e.g. a
``background`` of 127.5 and ``contrast`` of 0.5 for a retina whose ``luminosity_range`` is 255).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vision_jax._checks import check_int, check_nonnegative, check_positive

__all__ = ["full_field_step", "flashed_spot", "drifting_grating", "moving_bar", "load_movie"]


def _grid(shape):
    H, W = (check_int("shape", int(s), min_value=1) for s in shape)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    return H, W, y - (H - 1) / 2, x - (W - 1) / 2


def full_field_step(n_frames: int, shape, *, onset: int, background: float = 0.5, contrast: float = 0.5) -> np.ndarray:
    """Uniform screen at ``background`` that steps to ``background * (1 + contrast)`` at frame ``onset``."""
    n_frames = check_int("n_frames", n_frames, min_value=1)
    H, W, _, _ = _grid(shape)
    level = np.full(n_frames, background, np.float32)
    level[check_int("onset", onset, min_value=0):] = background * (1 + contrast)
    return np.broadcast_to(level[:, None, None], (n_frames, H, W)).copy()


def flashed_spot(n_frames: int, shape, *, radius: float, onset: int, duration: int, background: float = 0.5,
                 contrast: float = 0.5) -> np.ndarray:
    """A centred disk of ``radius`` pixels at ``background * (1 + contrast)`` for ``duration`` frames from ``onset``."""
    n_frames = check_int("n_frames", n_frames, min_value=1)
    check_positive("radius", radius, unit="pixels")
    H, W, y, x = _grid(shape)
    disk = (x**2 + y**2 <= radius**2).astype(np.float32)
    on = np.zeros(n_frames, np.float32)
    on[check_int("onset", onset, min_value=0):onset + check_int("duration", duration, min_value=0)] = 1
    return (background * (1 + contrast * on[:, None, None] * disk[None])).astype(np.float32)


def drifting_grating(n_frames: int, shape, *, period: float, frames_per_cycle: float, background: float = 0.5,
                     contrast: float = 0.5, angle: float = 0.0) -> np.ndarray:
    """Sinusoidal grating ``background (1 + contrast sin(2 pi (x'/period - t/frames_per_cycle)))``; ``angle`` in radians."""
    n_frames = check_int("n_frames", n_frames, min_value=1)
    check_positive("period", period, unit="pixels")
    check_positive("frames_per_cycle", frames_per_cycle, unit="frames")
    H, W, y, x = _grid(shape)
    xr = np.cos(angle) * x + np.sin(angle) * y
    t = np.arange(n_frames, dtype=np.float32)[:, None, None]
    phase = 2 * np.pi * (xr[None] / period - t / frames_per_cycle)
    return (background * (1 + contrast * np.sin(phase))).astype(np.float32)


def moving_bar(n_frames: int, shape, *, width: float, speed: float, background: float = 0.5, contrast: float = 0.5,
               start: float | None = None) -> np.ndarray:
    """A vertical bar ``width`` pixels wide moving right at ``speed`` pixels/frame from ``start`` (default: off the left edge)."""
    n_frames = check_int("n_frames", n_frames, min_value=1)
    check_positive("width", width, unit="pixels")
    check_nonnegative("speed", speed)
    H, W, _, _ = _grid(shape)
    x = np.arange(W, dtype=np.float32)
    start = -width if start is None else start
    centre = start + speed * np.arange(n_frames, dtype=np.float32)
    bar = (np.abs(x[None] - centre[:, None]) <= width / 2).astype(np.float32)
    return np.broadcast_to((background * (1 + contrast * bar))[:, None, :], (n_frames, H, W)).astype(np.float32)


def load_movie(path, *, dtype=np.float32) -> np.ndarray:
    """Load a ``(T, H, W)`` luminance movie: ``.npy``, ``.npz`` (first array), a multi-frame image (GIF/TIFF),
    a folder of image frames (sorted by name, e.g. Virtual Retina's PGM sequences), or any video
    ``imageio`` can read (if installed). Colour frames are averaged to grey."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"path: no such file or folder: {str(path)!r}")
    if path.is_dir():
        from PIL import Image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in {".pgm", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
        if not files:
            raise ValueError(f"path: folder {str(path)!r} holds no image frames")
        frames = [np.asarray(Image.open(f), dtype=np.float64) for f in files]
    elif path.suffix == ".npy":
        frames = np.load(path)
    elif path.suffix == ".npz":
        with np.load(path) as data:
            frames = data[data.files[0]]
    elif path.suffix.lower() in {".gif", ".tif", ".tiff", ".pgm", ".png"}:
        from PIL import Image, ImageSequence

        frames = [np.asarray(f.convert("F")) for f in ImageSequence.Iterator(Image.open(path))]
    else:
        try:
            import imageio.v3 as iio
        except ImportError as err:
            raise ValueError(f"path: reading {path.suffix!r} videos needs the 'imageio' package (with its ffmpeg plugin)") from err
        frames = iio.imread(path)
    movie = np.asarray(frames, dtype=np.float64)
    if movie.ndim == 4:
        movie = movie[..., :3].mean(-1)
    if movie.ndim != 3:
        raise ValueError(f"path: expected a (T, H, W) movie, got shape {movie.shape} from {str(path)!r}")
    return movie.astype(dtype)
