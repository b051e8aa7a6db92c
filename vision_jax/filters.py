"""Shared building blocks: spatial kernels, same-size 2-D convolution, recursive temporal filters.

Spatial
  - :func:`gaussian_kernel_1d`, :func:`gaussian_kernel`, :func:`dog_kernel`: sampled Gaussians
    normalised to sum 1, centred on the middle sample (odd sizes); sigma in pixels.
  - :func:`convolve2d` (``(..., H, W)`` arrays) and :func:`convolve2d_nhwc` (NHWC batches):
    same-size convolution after padding, direct or through the FFT.
  - :func:`convolve2d_fft_bank`: a bank of kernels through one FFT of the padded input, at a
    5-smooth transform size (:func:`fft_length`), for many large kernels on one image.
  - :func:`gaussian_blur`: separable Gaussian blur (scipy's ``gaussian_filter`` convention).

Padding names (numpy's ``np.pad`` modes in brackets, scipy.ndimage's after them):
  ``"reflect"``   d c b | a b c d | c b a   (numpy ``reflect``; scipy ``mirror``; torch ``reflect``)
  ``"symmetric"`` c b a | a b c d | d c b   (numpy ``symmetric``; scipy ``reflect``)
  ``"circular"``  b c d | a b c d | a b c   (numpy ``wrap``; scipy ``wrap``)
  ``"zero"``      0 0 0 | a b c d | 0 0 0   (numpy ``constant``; scipy ``constant``, cval 0)

Temporal (over the leading time axis, exact for inputs held constant over each step, as in
Virtual Retina): ``y_k = e * y_{k-1} + (1 - e) * x_k`` with ``e = exp(-dt / tau)``.
  - :func:`exp_decay`, :func:`exp_lowpass_step` (a ``lax.scan`` body), :func:`exp_lowpass`,
    :func:`exp_cascade` (n identical stages). Each filter takes and returns its state, so
    filtering a signal in chunks with the carried state equals filtering it at once.
"""
from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from vision_jax._checks import check_array, check_choice, check_int, check_positive, is_traced

__all__ = [
    "PADDINGS",
    "gaussian_kernel_1d",
    "gaussian_kernel",
    "dog_kernel",
    "pad2d",
    "convolve2d",
    "convolve2d_nhwc",
    "fft_length",
    "convolve2d_fft_bank",
    "gaussian_blur",
    "exp_decay",
    "exp_lowpass_step",
    "exp_lowpass",
    "exp_cascade",
]

PADDINGS = ("reflect", "symmetric", "circular", "zero")
_NP_MODE = {"reflect": "reflect", "symmetric": "symmetric", "circular": "wrap", "zero": "constant"}
METHODS = ("auto", "direct", "fft")
# method="auto" uses the FFT for kernels of at least this many taps (benchmarks/bench_filters.py:
# on a 2-core CPU, 8 x 256x256, the shifted-sum direct form wins up to 13x13, the FFT from 15x15).
_FFT_MIN_TAPS = 196
# Up to this many taps the direct form is a fused sum of shifted slices, which XLA's CPU backend
# runs several times faster than a single-channel convolution; beyond it, lax.conv.
_SHIFT_ADD_MAX_TAPS = 225


def _default_size(sigma, truncate: float = 4.0) -> int:
    if is_traced(sigma):
        raise ValueError("size: must be given when sigma is traced (e.g. fitted by gradient); got size=None")
    return 2 * int(math.ceil(truncate * float(sigma))) + 1


def _float_dtype(dtype):
    return jnp.dtype(dtype) if dtype is not None else jnp.dtype(jnp.float32)


def gaussian_kernel_1d(sigma, size: int | None = None, *, dtype=jnp.float32) -> jax.Array:
    """Sampled 1-D Gaussian, normalised to sum 1.

    Args:
      sigma: standard deviation in pixels (> 0; may be traced when ``size`` is given).
      size: odd number of taps; default ``2 * ceil(4 * sigma) + 1``.
      dtype: floating dtype of the result.

    Returns:
      ``(size,)`` array centred on index ``size // 2``.
    """
    check_positive("sigma", sigma, unit="pixels")
    size = _default_size(sigma) if size is None else check_int("size", size, min_value=1)
    if size % 2 == 0:
        raise ValueError(f"size: expected an odd number of taps so that the kernel has a centre, got {size}")
    x = jnp.arange(size, dtype=_float_dtype(dtype)) - (size - 1) / 2
    g = jnp.exp(-0.5 * (x / jnp.asarray(sigma, x.dtype)) ** 2)
    return g / jnp.sum(g)


def gaussian_kernel(sigma, size: int | None = None, *, dtype=jnp.float32) -> jax.Array:
    """Sampled isotropic 2-D Gaussian ``(size, size)``, normalised to sum 1 (see :func:`gaussian_kernel_1d`)."""
    g = gaussian_kernel_1d(sigma, size, dtype=dtype)
    return g[:, None] * g[None, :]


def dog_kernel(sigma_center, sigma_surround, size: int | None = None, *, surround_weight=1.0, dtype=jnp.float32) -> jax.Array:
    """Difference of Gaussians ``G(sigma_center) - surround_weight * G(sigma_surround)``.

    Both Gaussians are normalised to sum 1 on the same ``(size, size)`` grid (default size from
    the larger sigma), so the kernel sums to ``1 - surround_weight``.
    """
    check_positive("sigma_center", sigma_center, unit="pixels")
    check_positive("sigma_surround", sigma_surround, unit="pixels")
    if size is None:
        if is_traced(sigma_center) or is_traced(sigma_surround):
            raise ValueError("size: must be given when the sigmas are traced (e.g. fitted by gradient); got size=None")
        size = _default_size(max(float(sigma_center), float(sigma_surround)))
    return gaussian_kernel(sigma_center, size, dtype=dtype) - surround_weight * gaussian_kernel(sigma_surround, size, dtype=dtype)


def pad2d(x: jax.Array, pad_h: tuple[int, int], pad_w: tuple[int, int], padding: str) -> jax.Array:
    """Pad the last two axes of ``x`` by ``(before, after)`` samples with a named padding."""
    check_choice("padding", padding, PADDINGS)
    widths = [(0, 0)] * (x.ndim - 2) + [tuple(pad_h), tuple(pad_w)]
    return jnp.pad(x, widths, mode=_NP_MODE[padding])


def _check_kernel(kernel, x) -> jax.Array:
    kernel = check_array("kernel", kernel, ndim=2)
    kh, kw = kernel.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel: expected odd sizes so that the kernel has a centre, got shape {tuple(kernel.shape)}")
    return kernel.astype(x.dtype)


@partial(jax.jit, static_argnames=("padding", "method"))
def _convolve2d(x, kernel, padding: str, method: str):
    kh, kw = kernel.shape
    H, W = x.shape[-2:]
    xp = pad2d(x, (kh // 2, kh // 2), (kw // 2, kw // 2), padding)
    if method == "fft":
        Hp, Wp = xp.shape[-2:]
        kspec = jnp.fft.rfft2(kernel, s=(Hp, Wp))
        spec = jnp.fft.rfft2(xp) * kspec.reshape((1,) * (xp.ndim - 2) + kspec.shape)
        full = jnp.fft.irfft2(spec, s=(Hp, Wp)).astype(x.dtype)
        return full[..., kh - 1:kh - 1 + H, kw - 1:kw - 1 + W]
    flipped = kernel[::-1, ::-1]  # a true convolution correlates with the flipped kernel
    if kh * kw <= _SHIFT_ADD_MAX_TAPS:
        return _shift_add(xp, flipped)
    return _correlate_valid(xp, flipped)


def _correlate_valid(xp, w):
    """``out[..., i, j] = sum_ab w[a, b] xp[..., i + a, j + b]`` ("valid" size) as one XLA convolution."""
    kh, kw = w.shape
    flat = xp.reshape((-1, 1) + xp.shape[-2:])
    out = lax.conv_general_dilated(flat, w[None, None], (1, 1), "VALID", precision=lax.Precision.HIGHEST)
    return out.reshape(xp.shape[:-2] + (xp.shape[-2] - kh + 1, xp.shape[-1] - kw + 1))


@jax.custom_jvp
def _shift_add(xp, w):
    """:func:`_correlate_valid` as a fused sum of shifted slices (faster on CPU for small kernels).

    Its derivatives go through :func:`_correlate_valid`: autodiff of the unrolled sum would
    transpose every slice into a padded copy of the image, a graph that takes XLA tens of
    seconds to compile for a 7x7 kernel, where the convolution's transpose is one convolution.
    """
    kh, kw = w.shape
    H, W = xp.shape[-2] - kh + 1, xp.shape[-1] - kw + 1
    out = jnp.zeros(xp.shape[:-2] + (H, W), xp.dtype)
    for a in range(kh):
        for b in range(kw):
            out = out + w[a, b] * xp[..., a:a + H, b:b + W]
    return out


def _shift_add_jvp(primals, tangents):
    xp, w = primals
    dxp, dw = tangents  # bilinear in (xp, w); a constant image or kernel has a symbolic zero tangent
    terms = [_correlate_valid(dxp, w) if not isinstance(dxp, SymbolicZero) else None,
             _correlate_valid(xp, dw) if not isinstance(dw, SymbolicZero) else None]
    terms = [t for t in terms if t is not None]
    out = _shift_add(xp, w)
    return out, (terms[0] + terms[1] if len(terms) == 2 else terms[0])


_shift_add.defjvp(_shift_add_jvp, symbolic_zeros=True)


def _pick_method(method: str, kernel_shape) -> str:
    check_choice("method", method, METHODS)
    if method == "auto":
        return "fft" if kernel_shape[0] * kernel_shape[1] >= _FFT_MIN_TAPS else "direct"
    return method


def convolve2d(x, kernel, *, padding: str = "reflect", method: str = "auto") -> jax.Array:
    """Same-size 2-D convolution over the last two axes.

    Args:
      x: ``(..., H, W)`` floating array.
      kernel: ``(kh, kw)`` with odd sizes, centred on ``(kh // 2, kw // 2)``. The kernel is
        flipped (a true convolution, like ``scipy.ndimage.convolve``); for symmetric kernels
        this equals correlation.
      padding: ``"reflect"``, ``"symmetric"``, ``"circular"`` or ``"zero"`` (module docstring).
      method: ``"direct"``, ``"fft"`` or ``"auto"`` (FFT for kernels of 196 taps or more).

    Returns:
      ``(..., H, W)`` array of ``x``'s dtype.
    """
    x = check_array("x", x, min_ndim=2)
    check_choice("padding", padding, PADDINGS)
    kernel = _check_kernel(kernel, x)
    return _convolve2d(x, kernel, padding, _pick_method(method, kernel.shape))


def convolve2d_nhwc(x, kernel, *, padding: str = "reflect", method: str = "auto") -> jax.Array:
    """:func:`convolve2d` applied to every channel of an NHWC batch ``(N, H, W, C)``."""
    x = check_array("x", x, ndim=4)
    y = convolve2d(jnp.moveaxis(x, -1, 1), kernel, padding=padding, method=method)
    return jnp.moveaxis(y, 1, -1)


def fft_length(n: int) -> int:
    """The smallest ``2^a 3^b 5^c >= n``: a transform size the FFT runs fast on (286 -> 288)."""
    n = check_int("n", n, min_value=1)
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _kernel_spectra(kernels, dtype, shape):
    """``rfft2`` of kernels ``(..., kh, kw)`` zero-padded to ``shape``. Concrete kernels (numpy
    arrays, or JAX arrays closed over from outside ``jit``) are transformed once on the host, in
    float64, and become a constant of the program: nothing is recomputed per call."""
    if is_traced(kernels):
        return jnp.fft.rfft2(kernels.astype(dtype), s=shape)
    spectra = np.fft.rfft2(np.asarray(kernels, np.float64), s=shape)
    return jnp.asarray(spectra.astype(np.complex128 if jnp.dtype(dtype) == np.float64 else np.complex64))


def convolve2d_fft_bank(x, kernels, *, padding: str = "reflect", pairwise: bool = False):
    """Same-size 2-D convolution of ``x`` with a bank of kernels through one FFT of the padded input.

    Equals :func:`convolve2d` with ``method="fft"`` kernel by kernel (to rounding), but the padded
    input is transformed once for the whole bank (and, under autodiff, the cotangents of all
    outputs are summed in the frequency domain before one inverse transform), the transform size
    is 5-smooth (:func:`fft_length`; 256 + 30 -> 288), and the kernels' spectra are computed at
    trace time when the kernels are concrete (fixed model parameters), so a loop over a jitted
    model does not recompute them.

    Args:
      x: ``(..., H, W)`` floating array; with ``pairwise=True``, ``(..., C, H, W)``.
      kernels: ``(C, kh, kw)`` with odd sizes (true convolution, as :func:`convolve2d`), or a
        list of such arrays (groups of one size) sharing the input's transform.
      padding: see :func:`convolve2d`.
      pairwise: filter channel ``c`` of ``x`` with kernel ``c`` only (one group).

    Returns:
      ``(..., C, H, W)`` array of ``x``'s dtype, or a tuple of them, one per group.
    """
    x = check_array("x", x, min_ndim=3 if pairwise else 2)
    check_choice("padding", padding, PADDINGS)
    given = list(kernels) if isinstance(kernels, (list, tuple)) else [kernels]
    groups = [check_array("kernels", k, ndim=3) for k in given]
    kh, kw = groups[0].shape[1:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernels: expected odd sizes so that the kernels have a centre, got shape {tuple(groups[0].shape)}")
    if any(k.shape[1:] != (kh, kw) for k in groups):
        raise ValueError(f"kernels: expected groups of one kernel size, got {[tuple(k.shape) for k in groups]}")
    if pairwise and (len(groups) != 1 or x.shape[-3] != groups[0].shape[0]):
        raise ValueError(f"x: expected {groups[0].shape[0]} channels on axis -3 to pair with one group of kernels, "
                         f"got shape {tuple(x.shape)}")
    H, W = x.shape[-2:]
    shape = (fft_length(H + kh - 1), fft_length(W + kw - 1))
    # numpy kernels as given: under jit, their JAX conversion would be a tracer, computed in the program
    spectra = tuple(_kernel_spectra(g if isinstance(g, np.ndarray) else k, x.dtype, shape) for g, k in zip(given, groups))
    out = _fft_bank(x, spectra, (kh, kw), shape, padding, pairwise)
    return out if isinstance(kernels, (list, tuple)) else out[0]


@partial(jax.jit, static_argnames=("ksize", "shape", "padding", "pairwise"))
def _fft_bank(x, spectra, ksize, shape, padding, pairwise):
    kh, kw = ksize
    H, W = x.shape[-2:]
    xp = pad2d(x, (kh // 2, kh // 2), (kw // 2, kw // 2), padding)
    spec = jnp.fft.rfft2(xp, s=shape)
    if not pairwise:
        spec = spec[..., None, :, :]
    outs = []
    for k in spectra:
        full = jnp.fft.irfft2(spec * k.reshape((1,) * (spec.ndim - 3) + k.shape), s=shape).astype(x.dtype)
        # The circular convolution of length >= H + kh - 1 wraps only into the first kh - 1 outputs.
        outs.append(full[..., kh - 1:kh - 1 + H, kw - 1:kw - 1 + W])
    return tuple(outs)


# Blurs wider than this many taps go through the FFT: an unrolled sum of more shifted slices
# compiles slowly (inside lax.scan and under grad) and runs no faster.
_BLUR_SHIFT_ADD_MAX_TAPS = 13


@partial(jax.jit, static_argnames=("padding", "radius"))
def _gaussian_blur(x, sigma, padding: str, radius: int):
    taps = jnp.arange(-radius, radius + 1, dtype=x.dtype)
    g = jnp.exp(-0.5 * (taps / sigma) ** 2)
    g = g / jnp.sum(g)
    if 2 * radius + 1 > _BLUR_SHIFT_ADD_MAX_TAPS:
        return _convolve2d(x, g[:, None] * g[None, :], padding, "fft")
    H, W = x.shape[-2:]
    xp = pad2d(x, (radius, radius), (radius, radius), padding)
    # Two 1-D passes as fused sums of shifted slices (the Gaussian is symmetric: no flip needed).
    rows = sum(g[b] * xp[..., :, b:b + W] for b in range(2 * radius + 1))
    return sum(g[a] * rows[..., a:a + H, :] for a in range(2 * radius + 1))


def gaussian_blur(x, sigma, *, padding: str = "reflect", truncate: float = 4.0, radius: int | None = None) -> jax.Array:
    """Separable Gaussian blur over the last two axes of ``x`` (``(..., H, W)``).

    Follows ``scipy.ndimage.gaussian_filter``: the kernel has ``2 * radius + 1`` taps with
    ``radius = int(truncate * sigma + 0.5)`` and is normalised to sum 1.

    Args:
      x: ``(..., H, W)`` floating array.
      sigma: standard deviation in pixels (> 0). May be traced (fitted) if ``radius`` is given.
      padding: see :func:`convolve2d`.
      truncate: kernel half-width in standard deviations.
      radius: explicit half-width in pixels (overrides ``truncate``).
    """
    x = check_array("x", x, min_ndim=2)
    check_positive("sigma", sigma, unit="pixels")
    check_positive("truncate", truncate)
    check_choice("padding", padding, PADDINGS)
    if radius is None:
        if is_traced(sigma):
            raise ValueError("radius: must be given when sigma is traced (e.g. fitted by gradient); got radius=None")
        radius = int(truncate * float(sigma) + 0.5)
    radius = check_int("radius", radius, min_value=0)
    return _gaussian_blur(x, jnp.asarray(sigma, x.dtype), padding, radius)


# --- temporal -------------------------------------------------------------------------------


def exp_decay(tau, dt) -> jax.Array:
    """Per-step decay ``exp(-dt / tau)`` of a first-order low-pass (tau, dt in seconds, > 0)."""
    check_positive("tau", tau, unit="seconds")
    check_positive("dt", dt, unit="seconds")
    return jnp.exp(-jnp.asarray(dt) / jnp.asarray(tau))


def exp_lowpass_step(state, x_k, decay):
    """One step ``y = decay * state + (1 - decay) * x_k``; returns ``(y, y)`` (a scan body)."""
    y = decay * state + (1 - decay) * x_k
    return y, y


def _check_signal(x, state, state_shape):
    x = check_array("x", x, min_ndim=1)
    if x.shape[0] < 1:
        raise ValueError(f"x: expected at least one time step along axis 0, got shape {tuple(x.shape)}")
    if state is None:
        state = jnp.zeros(state_shape, x.dtype)
    else:
        state = check_array("state", state, shape=state_shape)
        if state.dtype != x.dtype:
            raise TypeError(f"state: expected dtype {x.dtype} like x, got {state.dtype}")
    return x, state


def exp_lowpass(x, tau, dt, *, state=None):
    """First-order recursive low-pass over the leading (time) axis.

    ``y_k = e * y_{k-1} + (1 - e) * x_k``, ``e = exp(-dt / tau)``: the exact solution of
    ``tau dy/dt = x - y`` for ``x`` held constant over each step; unit DC gain.

    Args:
      x: ``(T, ...)`` input.
      tau: time constant in seconds (> 0; may be traced, scalar or broadcastable to ``x[0]``).
      dt: time step in seconds (> 0).
      state: ``y_{-1}``, shape ``x.shape[1:]``; default zeros.

    Returns:
      ``(y, state)``: output ``(T, ...)`` and the final state to pass to the next chunk.
    """
    x, state = _check_signal(x, state, x.shape[1:] if hasattr(x, "shape") else None)
    decay = exp_decay(tau, dt).astype(x.dtype)
    final, y = lax.scan(lambda s, xk: exp_lowpass_step(s, xk, decay), state, x)
    return y, final


def exp_cascade(x, tau, dt, n_stages: int, *, state=None):
    """``n_stages`` identical first-order low-passes in series (a discrete Gamma kernel).

    The impulse response is ``C(k + n - 1, n - 1) (1 - e)^n e^k`` with ``e = exp(-dt / tau)``.
    Virtual Retina's ``ExpCascade(tau, n)`` (n + 1 poles of tau / n, peak at tau) is
    ``exp_cascade(x, tau / n, dt, n + 1)``.

    Args:
      x: ``(T, ...)`` input.
      tau: time constant of each stage, seconds (> 0).
      dt: time step, seconds (> 0).
      n_stages: number of stages (>= 1).
      state: ``(n_stages, ...)`` stage outputs at the previous step; default zeros.

    Returns:
      ``(y, state)``: output of the last stage ``(T, ...)`` and the final stage states.
    """
    n_stages = check_int("n_stages", n_stages, min_value=1)
    shape = (n_stages,) + tuple(x.shape[1:]) if hasattr(x, "shape") else None
    x, state = _check_signal(x, state, shape)
    decay = exp_decay(tau, dt).astype(x.dtype)

    def step(s, xk):
        stages = []
        inp = xk
        for i in range(n_stages):
            inp, _ = exp_lowpass_step(s[i], inp, decay)
            stages.append(inp)
        return jnp.stack(stages), inp

    final, y = lax.scan(step, state, x)
    return y, final
