"""LGN-like image models as pure ``(init, apply)`` pairs (plenoptic's naive and front-end models).

``model = luminance_gain_control(31, pretrained=True)``; ``params = model.init()`` is a dict of
arrays named like plenoptic's state dicts; ``model.apply(params, images)`` maps an NHWC batch
``(N, H, W, 1)`` of grey images to ``(N, H, W, C)`` responses. ``apply`` is pure, jittable and
differentiable in ``params`` and ``images``.

Definitions (plenoptic 2.1's code, which its docstrings sometimes contradict):
  - Gaussian kernels: ``exp(-(x^2 + y^2) / (2 std^2))`` on offsets centred on the middle tap,
    normalised to sum 1 (odd kernel sizes only);
  - "same" filtering: pad by ``kernel_size // 2`` with ``pad_mode`` (``"reflect"``: torch's
    reflect; ``"circular"``; ``"constant"``: zeros), then filter (correlation; every kernel here
    is symmetric);
  - center-surround: ``amplitude_ratio * sign * (G(center_std) - G(surround_std))``, no further
    normalisation (sign +1 on-center, -1 off-center);
  - luminance gain control: ``lin / (1 + s_L * G_L(x))``; contrast gain control: ``l / (1 + s_C *
    (sqrt(G_C(l^2)) + 1e-6))``; outputs through softplus.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vision_jax import filters
from vision_jax._checks import check_array, check_choice, check_int, is_traced

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

PAD_MODES = {"reflect": "reflect", "circular": "circular", "constant": "zero"}

PRETRAINED = {
    "linear_nonlinear": {"center_surround": {"center_std": [0.5339], "surround_std": [6.148], "amplitude_ratio": 1.25}},
    "luminance_gain_control": {
        "center_surround": {"center_std": [1.962], "surround_std": [4.235], "amplitude_ratio": 1.25},
        "luminance": {"std": [4.235]},
        "luminance_scalar": [14.95],
    },
    "luminance_contrast_gain_control": {
        "center_surround": {"center_std": [0.7363], "surround_std": [48.37], "amplitude_ratio": 1.25},
        "luminance": {"std": [170.99]},
        "contrast": {"std": [2.658]},
        "luminance_scalar": [2.94],
        "contrast_scalar": [34.03],
    },
    "on_off": {
        "center_surround": {"center_std": [1.237, 0.3233], "surround_std": [30.12, 2.184], "amplitude_ratio": 1.25},
        "luminance": {"std": [76.4, 2.184]},
        "contrast": {"std": [7.49, 2.43]},
        "luminance_scalar": [3.2637, 14.3961],
        "contrast_scalar": [7.3405, 16.7423],
    },
}


class Model(NamedTuple):
    """A model as a pure pair: ``init() -> params`` and ``apply(params, images) -> responses``."""

    init: Callable[[], dict]
    apply: Callable[[dict, jax.Array], jax.Array]
    name: str


def circular_gaussian(kernel_size: int, std):
    """Gaussian kernels ``(C, K, K)`` for stds ``(C,)``, each normalised to sum 1.

    Concrete stds (fixed model parameters) give a numpy array computed in float64 and rounded
    once to the stds' dtype: no JAX operation runs, and inside ``jit`` the kernels stay constants
    (their spectra too, see ``filters.convolve2d_fft_bank``). Traced stds give a JAX array.
    """
    if _is_fixed(std):
        return _gaussian_np(kernel_size, std).astype(_float_dtype(std))
    std = jnp.atleast_1d(jnp.asarray(std))
    offsets = jnp.arange(kernel_size, dtype=std.dtype) - (kernel_size - 1) / 2
    r2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
    g = jnp.exp(-r2[None] / (2 * std[:, None, None] ** 2))
    return g / jnp.sum(g, axis=(1, 2), keepdims=True)


def _is_fixed(*values) -> bool:
    """True when no leaf of ``values`` is traced: kernels can then be computed on the host."""
    return not any(is_traced(leaf) for leaf in jax.tree.leaves(values))


def _float_dtype(x):
    dtype = getattr(x, "dtype", None)
    return dtype if dtype is not None and jnp.issubdtype(dtype, jnp.floating) else jax.dtypes.canonicalize_dtype(np.float64)


def _gaussian_np(kernel_size: int, std) -> np.ndarray:
    std = np.atleast_1d(np.asarray(std, np.float64))
    offsets = np.arange(kernel_size) - (kernel_size - 1) / 2
    r2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
    g = np.exp(-r2[None] / (2 * std[:, None, None] ** 2))
    return g / np.sum(g, axis=(1, 2), keepdims=True)


def raised_cosine_disk(shape, outer_radius=None, inner_radius=None) -> np.ndarray:
    """Mask of 1 inside ``inner_radius`` falling to 0 at ``outer_radius`` by a raised cosine.

    Defaults (plenoptic's ``disk``): outer ``(min(shape) - 1) / 2``, inner half of it.
    """
    H, W = shape
    outer = (min(shape) - 1) / 2 if outer_radius is None else outer_radius
    inner = outer / 2 if inner_radius is None else inner_radius
    i, j = np.meshgrid(np.arange(H) - (H - 1) / 2, np.arange(W) - (W - 1) / 2, indexing="ij")
    r = np.sqrt(i**2 + j**2)
    decay = np.clip((r - inner) / (outer - inner), 0, 1)
    return np.where(r > outer, 0.0, np.where(r < inner, 1.0, (1 + np.cos(np.pi * decay)) / 2))


def _filter(x: jax.Array, kernels: jax.Array, pad_mode: str, pairwise: bool = False) -> jax.Array:
    """Filter ``x`` ``(N, H, W)`` with each kernel ``(C, K, K)``: ``(N, C, H, W)``.

    ``kernels`` may be a list of such groups (a tuple of outputs); one FFT of the padded image
    serves them all. With ``pairwise``, ``x`` is ``(N, C, H, W)`` and channel c is filtered with
    kernel c.
    """
    return filters.convolve2d_fft_bank(x, kernels, padding=PAD_MODES[pad_mode], pairwise=pairwise)


def _abs_gaussian(kernel_size: int, std):
    return circular_gaussian(kernel_size, np.abs(np.asarray(std)) if _is_fixed(std) else jnp.abs(std))


def _check_images(images, kernel_size: int, channels: int = 1) -> jax.Array:
    images = check_array("images", images, ndim=4)
    if images.shape[-1] != channels:
        raise ValueError(f"images: expected NHWC with {channels} channel(s), got shape {tuple(images.shape)}")
    if min(images.shape[1:3]) <= kernel_size // 2:
        raise ValueError(f"images: expected height and width larger than half the kernel size {kernel_size}, got shape {tuple(images.shape)}")
    return images


def _check_config(kernel_size, pad_mode, stds: dict, amplitude_ratio=None) -> int:
    kernel_size = check_int("kernel_size", kernel_size, min_value=1)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size: expected an odd size so that the kernel has a centre, got {kernel_size}")
    check_choice("pad_mode", pad_mode, tuple(PAD_MODES))
    for name, v in stds.items():
        v = np.atleast_1d(np.asarray(v, np.float64))
        if not np.all(v > 0):
            raise ValueError(f"{name}: expected positive standard deviations in pixels, got {v.tolist()}")
    if amplitude_ratio is not None and not float(amplitude_ratio) >= 1:
        raise ValueError(f"amplitude_ratio: expected a value >= 1, got {amplitude_ratio}")
    return kernel_size


def _arr(v, n=None):
    a = jnp.atleast_1d(jnp.asarray(v, jnp.zeros(()).dtype))
    return a if n is None else jnp.broadcast_to(a, (n,))


def _cs_filter(p: dict, kernel_size: int, on_center):
    """``amplitude_ratio * sign * (G(center_std) - G(surround_std))``: ``(C, K, K)``.

    With fixed parameters the kernels are computed on the host (a numpy array, float64 rounded once), so
    a jitted ``lambda x: model.apply(params, x)`` holds them, and their spectra, as constants
    computed once instead of in every iteration of a synthesis loop, and compiles no extra program.
    """
    if _is_fixed(p):
        sign = np.asarray([1.0 if c else -1.0 for c in on_center])[:, None, None]
        ratio = np.reshape(np.asarray(p["amplitude_ratio"], np.float64), (1, 1, 1))
        k = ratio * sign * (_gaussian_np(kernel_size, p["center_std"]) - _gaussian_np(kernel_size, p["surround_std"]))
        return k.astype(_float_dtype(p["center_std"]))
    sign = jnp.asarray([1.0 if c else -1.0 for c in on_center], p["center_std"].dtype)[:, None, None]
    ratio = jnp.reshape(p["amplitude_ratio"], (1, 1, 1))
    center = circular_gaussian(kernel_size, p["center_std"])
    surround = circular_gaussian(kernel_size, p["surround_std"])
    return ratio * sign * (center - surround)


def gaussian(kernel_size: int = 31, *, std=3.0, pad_mode: str = "reflect") -> Model:
    """Gaussian blur ``(N, H, W, 1) -> (N, H, W, C)``, one channel per std; params ``{"std"}``."""
    kernel_size = _check_config(kernel_size, pad_mode, {"std": std})

    def apply(params, images):
        images = _check_images(images, kernel_size)
        kernels = _abs_gaussian(kernel_size, params["std"])
        return jnp.moveaxis(_filter(images[..., 0], kernels, pad_mode), 1, -1)

    return Model(lambda: {"std": _arr(std)}, apply, "gaussian")


def center_surround(kernel_size: int = 31, *, on_center=True, amplitude_ratio=1.25, center_std=1.0, surround_std=4.0,
                    pad_mode: str = "reflect") -> Model:
    """Difference-of-Gaussians filter; params ``{"center_std", "surround_std", "amplitude_ratio"}``."""
    kernel_size = _check_config(kernel_size, pad_mode, {"center_std": center_std, "surround_std": surround_std}, amplitude_ratio)
    n = max(np.size(center_std), np.size(on_center))
    on = tuple(np.broadcast_to(np.asarray(on_center, bool), (n,)).tolist())

    def init():
        return {"center_std": _arr(center_std, n), "surround_std": _arr(surround_std, n),
                "amplitude_ratio": jnp.asarray(amplitude_ratio, jnp.zeros(()).dtype)}

    def apply(params, images):
        images = _check_images(images, kernel_size)
        kernels = _cs_filter(params, kernel_size, on)
        return jnp.moveaxis(_filter(images[..., 0], kernels, pad_mode), 1, -1)

    return Model(init, apply, "center_surround")


def _front_end(name, kernel_size, pad_mode, pretrained, defaults, on_center, stages, apply_mask=False) -> Model:
    if pretrained:
        if kernel_size != 31:
            raise ValueError(f"kernel_size: the pretrained {name} model has kernel_size 31, got {kernel_size}")
        values = PRETRAINED[name]
    else:
        values = defaults
    stds = {f"{k}.{s}": v[s] for k, v in values.items() if isinstance(v, dict) for s in v if s.endswith("std")}
    kernel_size = _check_config(kernel_size, pad_mode, stds, values["center_surround"]["amplitude_ratio"])
    n = len(on_center)

    def init():
        params = {}
        for k, v in values.items():
            if isinstance(v, dict):
                params[k] = {s: (_arr(x, n) if s != "amplitude_ratio" else jnp.asarray(x, jnp.zeros(()).dtype)) for s, x in v.items()}
            else:
                params[k] = _arr(v, n)
        return params

    def apply(params, images):
        images = _check_images(images, kernel_size)
        # the center-surround and luminance kernels filter the image as one bank
        bank = [_cs_filter(params["center_surround"], kernel_size, on_center)]
        if "luminance" in stages:
            bank.append(_abs_gaussian(kernel_size, params["luminance"]["std"]))
        if "contrast" in stages:
            contrast = _abs_gaussian(kernel_size, params["contrast"]["std"])
        out = _filter(images[..., 0], bank, pad_mode)  # each (N, n, H, W)
        y = out[0]
        if "luminance" in stages:
            y = y / (1 + params["luminance_scalar"][None, :, None, None] * out[1])
        if "contrast" in stages:
            con = jnp.sqrt(_filter(y**2, contrast, pad_mode, pairwise=True)) + 1e-6
            y = y / (1 + params["contrast_scalar"][None, :, None, None] * con)
        y = jax.nn.softplus(jnp.moveaxis(y, 1, -1))
        if apply_mask:
            y = y * jnp.asarray(raised_cosine_disk(images.shape[1:3]), y.dtype)[None, :, :, None]
        return y

    return Model(init, apply, name)


def linear_nonlinear(kernel_size: int = 31, *, on_center=True, amplitude_ratio=1.25, pad_mode: str = "reflect",
                     pretrained: bool = False, center_std=1.0, surround_std=4.0) -> Model:
    """``softplus(center_surround(x))``; ``pretrained`` loads Berardino et al.'s values."""
    defaults = {"center_surround": {"center_std": center_std, "surround_std": surround_std, "amplitude_ratio": amplitude_ratio}}
    return _front_end("linear_nonlinear", kernel_size, pad_mode, pretrained, defaults, (bool(on_center),), ())


def luminance_gain_control(kernel_size: int = 31, *, on_center=True, amplitude_ratio=1.25, pad_mode: str = "reflect",
                           pretrained: bool = False, center_std=1.0, surround_std=4.0, luminance_std=3.0,
                           luminance_scalar=1.0) -> Model:
    """``softplus(lin / (1 + s_L * G_L(x)))`` with ``lin`` the center-surround response.

    plenoptic draws ``s_L`` at random; here it is an explicit parameter (``pretrained``: 14.95).
    """
    defaults = {"center_surround": {"center_std": center_std, "surround_std": surround_std, "amplitude_ratio": amplitude_ratio},
                "luminance": {"std": luminance_std}, "luminance_scalar": luminance_scalar}
    return _front_end("luminance_gain_control", kernel_size, pad_mode, pretrained, defaults, (bool(on_center),), ("luminance",))


def luminance_contrast_gain_control(kernel_size: int = 31, *, on_center=True, amplitude_ratio=1.25, pad_mode: str = "reflect",
                                    pretrained: bool = False, center_std=1.0, surround_std=4.0, luminance_std=3.0,
                                    contrast_std=3.0, luminance_scalar=1.0, contrast_scalar=1.0) -> Model:
    """Luminance then contrast gain control, then softplus (plenoptic's LuminanceContrastGainControl)."""
    defaults = {"center_surround": {"center_std": center_std, "surround_std": surround_std, "amplitude_ratio": amplitude_ratio},
                "luminance": {"std": luminance_std}, "contrast": {"std": contrast_std},
                "luminance_scalar": luminance_scalar, "contrast_scalar": contrast_scalar}
    return _front_end("luminance_contrast_gain_control", kernel_size, pad_mode, pretrained, defaults, (bool(on_center),),
                      ("luminance", "contrast"))


def on_off(kernel_size: int = 31, *, amplitude_ratio=1.25, pad_mode: str = "reflect", pretrained: bool = False,
           apply_mask: bool = False, center_std=(1.0, 1.0), surround_std=(4.0, 4.0), luminance_std=(3.0, 3.0),
           contrast_std=(3.0, 3.0), luminance_scalar=(1.0, 1.0), contrast_scalar=(1.0, 1.0)) -> Model:
    """Two channels (on-center, off-center) of luminance + contrast gain control; ``(N, H, W, 1) -> (N, H, W, 2)``.

    ``apply_mask`` multiplies the output by :func:`raised_cosine_disk`.
    """
    defaults = {"center_surround": {"center_std": center_std, "surround_std": surround_std, "amplitude_ratio": amplitude_ratio},
                "luminance": {"std": luminance_std}, "contrast": {"std": contrast_std},
                "luminance_scalar": luminance_scalar, "contrast_scalar": contrast_scalar}
    return _front_end("on_off", kernel_size, pad_mode, pretrained, defaults, (True, False), ("luminance", "contrast"), apply_mask)

