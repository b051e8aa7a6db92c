"""Data that needs no network: embedded photographs and digits, generators, patches, loaders.

- :func:`natural_images`, :func:`list_natural_images`: public-domain/CC0 photographs shipped in
  the package (see ``images/README.md``).
- :func:`load_digits`: 5,000 real MNIST digits shipped in the package.
- :func:`pink_noise`, :func:`dead_leaves`: natural-like images from a PRNG key.
- :func:`extract_patches`, :func:`whiten`, :func:`disk_mask`, :func:`one_over_f_dictionary`:
  whitened patches for sparse coding.
- :func:`load_dataset`: MNIST / CIFAR-10 through tensorflow-datasets when prepared locally.
- :func:`make_tapestry`, :func:`random_walk_frames`, :func:`ribbon_frames`: digit tapestries and moving windows.
"""
from vision_jax.data._natural import list_natural_images, load_digits, natural_images
from vision_jax.data._patches import (
    bandpass_filter,
    disk_mask,
    extract_patches,
    one_over_f_dictionary,
    radial_frequency,
    retina_prefilter,
    whiten,
    whitening_filter,
)
from vision_jax.data._synthetic import dead_leaves, pink_noise
from vision_jax.data._tfds import load_dataset

from vision_jax.data.tapestry import make_tapestry, random_walk_frames, ribbon_frames, tapestry_period

__all__ = [
    "list_natural_images",
    "natural_images",
    "load_digits",
    "pink_noise",
    "dead_leaves",
    "radial_frequency",
    "retina_prefilter",
    "whitening_filter",
    "bandpass_filter",
    "whiten",
    "disk_mask",
    "extract_patches",
    "one_over_f_dictionary",
    "load_dataset",
    "make_tapestry",
    "tapestry_period",
    "random_walk_frames",
    "ribbon_frames",
]
