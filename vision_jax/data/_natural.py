"""Natural photographs and handwritten digits shipped inside the package."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

__all__ = ["list_natural_images", "natural_images", "load_digits"]

_IMAGES = ("astronaut", "camera", "chelsea", "coffee", "rocket", "grass", "gravel", "brick")
_LUMA = np.array([0.2989, 0.5870, 0.1140])


def list_natural_images() -> tuple[str, ...]:
    """Names of the embedded photographs (see ``vision_jax/data/images/README.md``)."""
    return _IMAGES


@lru_cache(maxsize=None)
def _load(name: str) -> np.ndarray:
    from PIL import Image

    folder = resources.files("vision_jax.data") / "images"
    path = next(p for p in folder.iterdir() if p.name.split(".")[0] == name)
    with resources.as_file(path) as f, Image.open(f) as im:
        arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    arr.setflags(write=False)
    return arr


def natural_images(*, grey: bool = True, names=None, dtype=np.float32) -> list[np.ndarray]:
    """The embedded photographs as float arrays with values in [0, 1].

    Args:
      grey: ``True`` returns ``(H, W)`` luminance images (0.2989 R + 0.5870 G + 0.1140 B);
        ``False`` returns ``(H, W, 3)`` colour images (grey originals repeated on 3 channels).
      names: subset of :func:`list_natural_images` (default: all, in that order).
      dtype: floating dtype of the result.

    Returns:
      A list of arrays (the images differ in size).
    """
    if names is None:
        names = _IMAGES
    if isinstance(names, str):
        names = (names,)
    unknown = [n for n in names if n not in _IMAGES]
    if unknown:
        raise ValueError(f"names: expected names from {list(_IMAGES)}, got unknown {unknown}")
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise TypeError(f"dtype: expected a floating dtype, got {np.dtype(dtype)}")
    out = []
    for name in names:
        arr = _load(name).astype(np.float64) / 255.0
        if grey and arr.ndim == 3:
            arr = arr @ _LUMA
        elif not grey and arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=-1)
        out.append(arr.astype(dtype))
    return out


@lru_cache(maxsize=1)
def _digits():
    with resources.as_file(resources.files("vision_jax.data") / "digits.npz") as f, np.load(f) as z:
        return z["images"], z["labels"].astype(np.int32)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """5,000 real handwritten MNIST digits shipped in the package (500 per class).

    Returns:
      ``(images, labels)``: uint8 ``(5000, 28, 28)`` with white digits on black, int32 ``(5000,)``.
    """
    images, labels = _digits()
    return images.copy(), labels.copy()
