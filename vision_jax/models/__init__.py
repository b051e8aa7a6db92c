"""Image models as pure functions: ``model.apply(params, images)`` on NHWC batches.

plenoptic's LGN-like models with its parameters and defaults: :func:`gaussian`,
:func:`center_surround`, :func:`linear_nonlinear`, :func:`luminance_gain_control`,
:func:`luminance_contrast_gain_control`, :func:`on_off` (``pretrained=True``: Berardino et al.'s
fitted values). Any ``f(images) -> representation`` works with :mod:`vision_jax.synthesis`.
"""
from vision_jax.models._frontend import (
    PAD_MODES,
    Model,
    center_surround,
    circular_gaussian,
    gaussian,
    linear_nonlinear,
    luminance_contrast_gain_control,
    luminance_gain_control,
    on_off,
    raised_cosine_disk,
)

__all__ = [
    "Model",
    "PAD_MODES",
    "circular_gaussian",
    "raised_cosine_disk",
    "gaussian",
    "center_surround",
    "linear_nonlinear",
    "luminance_gain_control",
    "luminance_contrast_gain_control",
    "on_off",
]
