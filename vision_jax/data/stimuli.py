"""Stimulus movies ``(T, H, W)`` (float32 numpy), e.g. for :mod:`vision_jax.retina`, and loading movies from files.

Positions and sizes are in pixels, times in frames, luminance in the caller's units (e.g. a
``background`` of 127.5 and ``contrast`` of 0.5 for a retina whose ``luminosity_range`` is 255).

``load_movie`` reads ``.npy``/``.npz`` arrays, multi-frame GIF/TIFF files and folders of image
frames with Pillow (a core dependency), and other video files (MP4, AVI, ...) through the
``ffmpeg`` program when it is on ``PATH`` or through ``imageio`` with a video plugin
(``pip install imageio[pyav]``) when that is installed.
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


def _read_pgm_stream(data: bytes) -> list:
    """Frames of a concatenation of binary PGM images (``ffmpeg -f image2pipe -vcodec pgm``)."""
    frames, pos = [], 0
    while pos < len(data):
        fields = []
        while len(fields) < 4:  # magic, width, height, maxval (whitespace separated; '#' comments)
            while data[pos:pos + 1].isspace():
                pos += 1
            if data[pos:pos + 1] == b"#":
                pos = data.index(b"\n", pos) + 1
                continue
            end = pos
            while not data[end:end + 1].isspace():
                end += 1
            fields.append(data[pos:end])
            pos = end
        pos += 1  # the single whitespace before the pixels
        if fields[0] != b"P5":
            raise ValueError(f"path: ffmpeg returned {fields[0]!r} frames, expected binary PGM (P5)")
        w, h, maxval = (int(f) for f in fields[1:])
        dtype = np.dtype(">u2") if maxval > 255 else np.dtype(np.uint8)
        n = w * h * dtype.itemsize
        frames.append(np.frombuffer(data[pos:pos + n], dtype).reshape(h, w))
        pos += n
    return frames


def _read_video(path: Path):
    import shutil
    import subprocess

    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is not None:
        done = subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(path), "-f", "image2pipe", "-pix_fmt", "gray",
                               "-vcodec", "pgm", "-"], capture_output=True, check=False)
        if done.returncode != 0:
            raise ValueError(f"path: ffmpeg could not read {str(path)!r}: {done.stderr.decode(errors='replace')[-500:]}")
        return _read_pgm_stream(done.stdout)
    try:
        import imageio.v3 as iio

        return iio.imread(path)
    except ImportError:
        pass
    except Exception as err:  # imageio is there but has no plugin for this format
        raise ValueError(f"path: cannot read {path.suffix!r} videos: install the ffmpeg program or imageio[pyav] "
                         f"(imageio said: {err})") from None
    raise ValueError(f"path: reading {path.suffix!r} videos needs the ffmpeg program on PATH or imageio[pyav]")


def load_movie(path, *, dtype=np.float32) -> np.ndarray:
    """Load a ``(T, H, W)`` luminance movie from a file or folder, as ``dtype``.

    ``.npy``, ``.npz`` (its first array), a multi-frame image (GIF, TIFF, PNG, PGM), a folder of
    image frames (sorted by name, e.g. Virtual Retina's PGM sequences) or a video file (through
    ffmpeg or imageio, see the module docstring). Colour frames become grey (luma for single
    image files, the mean of R, G, B otherwise). Values
    are kept as stored (e.g. 0-255 for 8-bit frames: use ``luminosity_range=255``).
    """
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

        frames = [np.asarray(f.convert("F"), dtype=np.float64) for f in ImageSequence.Iterator(Image.open(path))]  # luma
    else:
        frames = _read_video(path)
    shapes = {np.shape(f) for f in frames} if isinstance(frames, list) else {np.shape(frames)[1:]}
    if len(shapes) > 1:
        raise ValueError(f"path: frames of different shapes {sorted(shapes)} in {str(path)!r}")
    movie = np.asarray(frames, dtype=np.float64)
    if movie.ndim == 4:
        movie = movie[..., :3].mean(-1)
    if movie.ndim != 3:
        raise ValueError(f"path: expected a (T, H, W) movie, got shape {movie.shape} from {str(path)!r}")
    return movie.astype(dtype)
