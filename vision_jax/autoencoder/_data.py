"""Offline stand-in for CIFAR-10: 32x32 colour crops of the embedded photographs."""
from __future__ import annotations

import numpy as np

from vision_jax._checks import check_int

__all__ = ["colour_crops", "TEST_IMAGES"]

# photographs held out for testing; the others give the training crops
TEST_IMAGES = ("coffee", "rocket")


def colour_crops(seed: int, n: int, *, size: int = 32, downscale: int = 4, split: str = "train") -> np.ndarray:
    """Random ``size x size`` RGB crops of the embedded photographs, float32 in [0, 1].

    The photographs are first shrunk by ``downscale`` (block means) so that a crop holds a whole
    object part, closer to CIFAR-10 statistics than a crop of a full-resolution photograph.

    Args:
      seed: numpy seed of the crop positions.
      n: number of crops.
      size: crop side in pixels.
      downscale: integer shrink factor applied first.
      split: ``"train"`` (all photographs but :data:`TEST_IMAGES`) or ``"test"`` (those).

    Returns:
      ``(n, size, size, 3)`` float32.
    """
    from vision_jax.data import list_natural_images, natural_images

    n = check_int("n", n, min_value=1)
    size = check_int("size", size, min_value=2)
    downscale = check_int("downscale", downscale, min_value=1)
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    names = [m for m in list_natural_images() if (m in TEST_IMAGES) == (split == "test")]
    images = []
    for im in natural_images(grey=False, names=names, dtype=np.float64):
        h, w = (im.shape[0] // downscale) * downscale, (im.shape[1] // downscale) * downscale
        small = im[:h, :w].reshape(h // downscale, downscale, w // downscale, downscale, 3).mean(axis=(1, 3))
        if min(small.shape[:2]) >= size:
            images.append(small)
    if not images:
        raise ValueError(f"size: crops of {size} pixels do not fit the photographs shrunk by {downscale}")
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.float32)
    which = rng.integers(0, len(images), n)
    for i, k in enumerate(which):
        im = images[k]
        y, x = rng.integers(0, im.shape[0] - size + 1), rng.integers(0, im.shape[1] - size + 1)
        out[i] = im[y : y + size, x : x + size]
    return out
