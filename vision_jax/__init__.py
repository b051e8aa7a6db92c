"""vision_jax: computational models of early vision in JAX.

Subpackages (imported on first use):
  filters      Gaussian / difference-of-Gaussians kernels, same-size convolution, recursive temporal filters
  data         embedded natural images and digits, natural-like image generators, patch extraction, dataset loaders
  plot         matplotlib figures: image grids, dictionary tiles, curves, histograms, animations
  retina       Virtual Retina cascade
  sparse       matching pursuit, homeostasis, dictionary learning, invariance learning
  models       image models as pure functions (plenoptic's LGN-like models)
  synthesis    metamers and eigendistortions
  autoencoder  convolutional pooling autoencoder and feedback process
  sweep        seeds x hyperparameters in one compiled call, sharded over devices
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("filters", "data", "plot", "retina", "sparse", "models", "synthesis", "autoencoder", "sweep", "runner", "cli")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
