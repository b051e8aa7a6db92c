"""Image patches for sparse coding: retina pre-filter, whitening, band-pass, high-variance patches.

The pipeline follows the sparse-coding literature (Olshausen & Field; Perrinet's SHL):

1. a random ``crop_size`` square crop of each image, redrawn while its standard deviation is
   below ``0.2`` times the image's (flat sky is skipped);
2. a retina-like pre-filter (a low-pass that also removes the very lowest frequencies), then
   median subtraction and division by the largest absolute value;
3. whitening by ``K(f) ∝ f**1.4 * exp(-(f / 0.4)**4)`` (normalised to mean 1) and a band-pass
   ``(1 - exp((f - .5) / (.5 * .07))) * (f < .5) * (0.5 * tanh(42 * (f - 1/21)) + 0.5)``,
   with ``f`` in cycles per pixel;
4. ``over_patches`` times more random patches than needed, keeping those of largest standard
   deviation; each patch minus its mean, times a disk mask.

Pre-processing runs in numpy (it is done once per experiment, not on a hot path).
"""
from __future__ import annotations

import jax
import numpy as np

from vision_jax._checks import check_int

__all__ = [
    "radial_frequency",
    "retina_prefilter",
    "whitening_filter",
    "bandpass_filter",
    "whiten",
    "disk_mask",
    "extract_patches",
    "one_over_f_dictionary",
]


def _rng(key) -> np.random.Generator:
    """A numpy Generator seeded from a JAX key (or an int seed)."""
    if isinstance(key, (int, np.integer)):
        return np.random.default_rng(int(key))
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    raise TypeError(f"key: expected a PRNG key from jax.random.key or an int seed, got {type(key).__name__}")


def radial_frequency(shape) -> np.ndarray:
    """``|f|`` in cycles per pixel on the FFT grid of an ``(H, W)`` image."""
    H, W = shape
    return np.sqrt(np.fft.fftfreq(H)[:, None] ** 2 + np.fft.fftfreq(W)[None, :] ** 2)


def _lowpass_edge(f):
    return (1 - np.exp((f - 0.5) / (0.5 * 0.07))) * (f < 0.5)


def retina_prefilter(image: np.ndarray) -> np.ndarray:
    """Retina-like pre-filter of an ``(H, W)`` image, then ``(x - median) / max|x - median|``."""
    f = radial_frequency(image.shape)
    n = max(image.shape)
    filt = _lowpass_edge(f) * (1 - np.exp(-0.5 * f**2 / (0.5 / n) ** 2))
    out = np.real(np.fft.ifft2(np.fft.fft2(image) * filt))
    out = out - np.median(out)
    return out / np.max(np.abs(out))


def whitening_filter(shape, *, exponent: float = 1.4, f0: float = 0.4) -> np.ndarray:
    """Olshausen-style whitening ``f**exponent * exp(-(f / f0)**4)``, normalised to mean 1."""
    f = radial_frequency(shape)
    k = f**exponent * np.exp(-((f / f0) ** 4))
    return k / k.mean()


def bandpass_filter(shape) -> np.ndarray:
    """The band-pass applied after whitening (removes the corners and the lowest frequencies)."""
    f = radial_frequency(shape)
    return _lowpass_edge(f) * (0.5 * np.tanh(42 * (f - 1 / 21)) + 0.5)


def whiten(image: np.ndarray, *, bandpass: bool = True) -> np.ndarray:
    """Whitened (and band-passed) ``(H, W)`` image."""
    return _whiten(image, bandpass)


def _whiten(image, bandpass: bool) -> np.ndarray:
    image = np.asarray(image, np.float64)
    if image.ndim != 2:
        raise ValueError(f"image: expected a grey (H, W) image, got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError(f"image: expected finite values, got {int(np.sum(~np.isfinite(image)))} NaN/inf entries")
    filt = whitening_filter(image.shape)
    if bandpass:
        filt = filt * bandpass_filter(image.shape)
    return np.real(np.fft.ifft2(np.fft.fft2(image) * filt))


def disk_mask(patch_size: int) -> np.ndarray:
    """``(patch_size, patch_size)`` float mask, 1 inside the inscribed disk ``x**2 + y**2 <= 1``."""
    patch_size = check_int("patch_size", patch_size, min_value=1)
    t = np.linspace(-1, 1, patch_size)
    return (np.sqrt(t[:, None] ** 2 + t[None, :] ** 2) <= 1).astype(np.float64)


def _random_crop(image: np.ndarray, crop: int, rng: np.random.Generator, max_tries: int = 100) -> np.ndarray:
    H, W = image.shape
    threshold = 0.2 * image.std()
    for _ in range(max_tries):
        y, x = rng.integers(0, H - crop + 1), rng.integers(0, W - crop + 1)
        out = image[y:y + crop, x:x + crop]
        if out.std() >= threshold:
            return out
    return out


def _window_std(image: np.ndarray, size: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Standard deviation of the ``size`` x ``size`` windows at top-left corners (ys, xs), by summed-area tables."""
    s1 = np.pad(image.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    s2 = np.pad((image**2).cumsum(0).cumsum(1), ((1, 0), (1, 0)))

    def box(s):
        return s[ys + size, xs + size] - s[ys, xs + size] - s[ys + size, xs] + s[ys, xs]

    n = size * size
    mean = box(s1) / n
    return np.sqrt(np.maximum(box(s2) / n - mean**2, 0))


def _patches_from(image: np.ndarray, n: int, patch_size: int, over: int, rng) -> np.ndarray:
    H, W = image.shape
    ys = rng.integers(0, H - patch_size + 1, n * over)
    xs = rng.integers(0, W - patch_size + 1, n * over)
    if over > 1:
        keep = np.argsort(-_window_std(image, patch_size, ys, xs), kind="stable")[:n]
        ys, xs = ys[keep], xs[keep]
    windows = np.lib.stride_tricks.sliding_window_view(image, (patch_size, patch_size))
    return windows[ys, xs].reshape(n, patch_size * patch_size)


def extract_patches(
    images,
    *,
    key,
    n_patches: int,
    patch_size: int = 21,
    over_patches: int = 16,
    crop_size: int | None = 256,
    prefilter: bool = True,
    whiten: bool = True,
    bandpass: bool = True,
    mask: bool = True,
    dtype=np.float32,
) -> np.ndarray:
    """Patches for sparse coding, drawn evenly from ``images``.

    Args:
      images: a grey ``(H, W)`` image or a list of them (e.g. ``natural_images()``).
      key: PRNG key (or int seed) for crops and patch positions.
      n_patches: number of patches returned (split evenly over the images).
      patch_size: side of the square patches in pixels.
      over_patches: draw this many times more patches and keep those of largest std (1: no selection).
      crop_size: side of the random crop taken from each image first (``None``: whole image).
      prefilter, whiten, bandpass: pre-processing steps (module docstring).
      mask: multiply each patch by :func:`disk_mask`.

    Returns:
      ``(n_patches, patch_size**2)`` array (rows are flattened patches, each with zero mean
      before masking).
    """
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("images: expected at least one image, got an empty list")
    n_patches = check_int("n_patches", n_patches, min_value=1)
    patch_size = check_int("patch_size", patch_size, min_value=1)
    over_patches = check_int("over_patches", over_patches, min_value=1)
    if crop_size is not None:
        crop_size = check_int("crop_size", crop_size, min_value=1)
        if crop_size < patch_size:
            raise ValueError(f"patch_size: expected at most crop_size = {crop_size} (patches are cut from crops of that "
                             f"side; raise crop_size or pass crop_size=None), got {patch_size}")
    rng = _rng(key)
    checked = []
    for i, im in enumerate(images):
        im = np.asarray(im)
        if im.ndim != 2:
            raise ValueError(f"images[{i}]: expected a grey (H, W) image, got shape {im.shape}")
        if not np.issubdtype(im.dtype, np.floating):
            raise TypeError(f"images[{i}]: expected a floating dtype, got {im.dtype}")
        if not np.all(np.isfinite(im)):
            raise ValueError(f"images[{i}]: expected finite values, got NaN/inf")
        side = crop_size if crop_size is not None else patch_size
        if min(im.shape) < side:
            raise ValueError(f"images[{i}]: expected at least {side}x{side} pixels (crop_size/patch_size), got shape {im.shape}")
        checked.append(im.astype(np.float64))
    counts = np.full(len(checked), n_patches // len(checked))
    counts[: n_patches % len(checked)] += 1
    out = []
    for im, n in zip(checked, counts):
        if n == 0:
            continue
        if crop_size is not None:
            im = _random_crop(im, crop_size, rng)
        if prefilter:
            im = retina_prefilter(im)
        if whiten:
            im = _whiten(im, bandpass)
        out.append(_patches_from(im, int(n), patch_size, over_patches, rng))
    patches = np.concatenate(out)
    patches = patches - patches.mean(axis=1, keepdims=True)
    if mask:
        patches = patches * disk_mask(patch_size).ravel()[None, :]
    return patches.astype(dtype)


def one_over_f_dictionary(key, n_atoms: int, patch_size: int = 21, *, image_size: int = 256, dtype=np.float32) -> np.ndarray:
    """Initial dictionary of whitened 1/f-noise patches with unit-norm rows.

    A ``image_size`` square image with a ``1/|f|`` amplitude spectrum and random phases goes
    through :func:`whiten` (with band-pass); ``n_atoms`` random patches are taken, the global
    mean is subtracted and every row is L2-normalised.

    Returns:
      ``(n_atoms, patch_size**2)`` array.
    """
    n_atoms = check_int("n_atoms", n_atoms, min_value=1)
    patch_size = check_int("patch_size", patch_size, min_value=1)
    image_size = check_int("image_size", image_size, min_value=patch_size)
    rng = _rng(key)
    f = radial_frequency((image_size, image_size))
    amplitude = np.where(f > 0, 1 / np.where(f > 0, f, 1), 0.0)
    phase = np.exp(2j * np.pi * rng.random((image_size, image_size)))
    image = np.real(np.fft.ifft2(amplitude * phase))
    image = _whiten(image, True)
    atoms = _patches_from(image, n_atoms, patch_size, 1, rng)
    atoms = atoms - atoms.mean()
    atoms = atoms / np.linalg.norm(atoms, axis=1, keepdims=True)
    return atoms.astype(dtype)

