"""A convolutional pooling autoencoder whose layers can be applied one at a time.

Layer ``l`` maps ``h^l`` ``(..., H, W, C_l)`` to ``h^{l+1}`` ``(..., H/2, W/2, C_{l+1})``:
a stride-1 "same" convolution, bias, activation (tanh or ReLU), then non-overlapping 2x2 max or
mean pooling. Its decoder is a stride-2 transposed convolution (kernel ``k`` even, padding
``k/2 - 1``, so the output is exactly twice the input size), bias and the same activation.
Arrays are NHWC; kernels HWIO. With ``subtract_mean`` the per-channel data mean is subtracted
before layer 0 and added back after its decoder.
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vision_jax._checks import check_array, check_choice, check_int, check_positive

__all__ = [
    "AutoencoderConfig",
    "LayerParams",
    "AutoencoderParams",
    "init_params",
    "random_feedback_params",
    "encode",
    "decode",
    "encode_all",
    "apply",
    "layer_channels",
    "POOLINGS",
    "ACTIVATIONS",
    "PADDINGS",
]

POOLINGS = ("max", "mean")
ACTIVATIONS = ("tanh", "relu")
PADDINGS = ("zero", "circular")


def _per_layer(name, value, n, kind):
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(values) != n:
        raise ValueError(f"{name}: expected one value or {n} values (one per layer), got {len(values)}")
    return values


@dataclasses.dataclass(frozen=True)
class AutoencoderConfig:
    """Architecture of the stacked autoencoder (hashable, usable as a static argument).

    Attributes:
      features: number of filters per layer, e.g. ``(12,)`` or ``(12, 48)``.
      in_channels: channels of the images (3 for colour).
      encoder_kernel: odd encoder kernel size per layer (or one for all).
      decoder_kernel: even decoder (transposed convolution) kernel size per layer (or one for all).
      pooling: ``"max"`` or ``"mean"`` per layer (or one for all).
      activation: ``"tanh"`` or ``"relu"`` per layer (or one for all), used by encoder and decoder.
      subtract_mean: subtract the per-channel data mean before layer 0.
    """

    features: tuple = (12,)
    in_channels: int = 3
    encoder_kernel: tuple | int = 5
    decoder_kernel: tuple | int = 6
    pooling: tuple | str = "max"
    activation: tuple | str = "tanh"
    subtract_mean: bool = True

    def __post_init__(self):
        feats = tuple(self.features) if isinstance(self.features, (tuple, list)) else (self.features,)
        if len(feats) < 1:
            raise ValueError("features: expected at least one layer, got an empty sequence")
        feats = tuple(check_int(f"features[{i}]", f, min_value=1) for i, f in enumerate(feats))
        n = len(feats)
        object.__setattr__(self, "features", feats)
        object.__setattr__(self, "in_channels", check_int("in_channels", self.in_channels, min_value=1))
        enc = tuple(check_int("encoder_kernel", k, min_value=1) for k in _per_layer("encoder_kernel", self.encoder_kernel, n, int))
        for k in enc:
            if k % 2 != 1:
                raise ValueError(f"encoder_kernel: expected odd sizes (centred 'same' convolution), got {enc}")
        dec = tuple(check_int("decoder_kernel", k, min_value=2) for k in _per_layer("decoder_kernel", self.decoder_kernel, n, int))
        for k in dec:
            if k % 2 != 0:
                raise ValueError(f"decoder_kernel: expected even sizes (stride-2 upsampling by exactly 2), got {dec}")
        pool = tuple(check_choice("pooling", p, POOLINGS) for p in _per_layer("pooling", self.pooling, n, str))
        act = tuple(check_choice("activation", a, ACTIVATIONS) for a in _per_layer("activation", self.activation, n, str))
        if not isinstance(self.subtract_mean, bool):
            raise TypeError(f"subtract_mean: expected a bool, got {self.subtract_mean!r}")
        object.__setattr__(self, "encoder_kernel", enc)
        object.__setattr__(self, "decoder_kernel", dec)
        object.__setattr__(self, "pooling", pool)
        object.__setattr__(self, "activation", act)

    @property
    def n_layers(self) -> int:
        return len(self.features)


def layer_channels(config: AutoencoderConfig) -> tuple:
    """Channels of ``h^0 .. h^L``: ``(in_channels, *features)``."""
    return (config.in_channels,) + tuple(config.features)


class LayerParams(NamedTuple):
    """One layer: encoder ``(k, k, C_l, C_{l+1})`` + bias ``(C_{l+1},)``; decoder ``(k', k', C_{l+1}, C_l)`` + bias ``(C_l,)``."""

    enc_w: jax.Array
    enc_b: jax.Array
    dec_w: jax.Array
    dec_b: jax.Array


class AutoencoderParams(NamedTuple):
    """All layers plus the per-channel data mean ``(in_channels,)`` (zeros without mean subtraction; never trained)."""

    layers: tuple
    mean: jax.Array


_BLOCK = 1 << 16


@jax.jit
def _bits_block(key, index):
    return jax.random.bits(jax.random.fold_in(key, index), (_BLOCK,), jnp.uint32)


def draw_flat(key, n: int, dist: str, dtype=jnp.float32) -> np.ndarray:
    """``n`` standard normal (``dist="normal"``) or ``U(-1, 1)`` (``"uniform"``) numbers from ``key``, as numpy.

    The random bits come in fixed blocks of one compiled program (``fold_in(key, block)``), so
    every size and every configuration reuses it; an eager draw of each new shape would compile anew.
    """
    from scipy.special import ndtri

    n = int(n)
    blocks = [np.asarray(_bits_block(key, np.int32(i))) for i in range(-(-n // _BLOCK))]
    bits = np.concatenate(blocks)[:n] if blocks else np.zeros(0, np.uint32)
    u = ((bits >> np.uint32(8)).astype(np.float64) + 0.5) * 2.0**-24  # in (0, 1)
    return (ndtri(u) if dist == "normal" else 2.0 * u - 1.0).astype(np.dtype(dtype))


def _split_flat(flat: np.ndarray, shapes, dtype) -> list:
    out, i = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(jnp.asarray(flat[i : i + size].reshape(shape), dtype))
        i += size
    return out


def _weight_shapes(config: AutoencoderConfig) -> list:
    chans = layer_channels(config)
    shapes = []
    for l in range(config.n_layers):
        ke, kd = config.encoder_kernel[l], config.decoder_kernel[l]
        shapes += [(ke, ke, chans[l], chans[l + 1]), (kd, kd, chans[l + 1], chans[l])]
    return shapes


def init_params(key, config: AutoencoderConfig, *, std: float = 0.1, mean=None, dtype=jnp.float32) -> AutoencoderParams:
    """Gaussian weights (std 0.1 as in the source's Caffe models), zero biases.

    All weights come from one draw of ``key`` (one compiled program for every configuration of
    similar size).

    Args:
      key: a PRNG key.
      config: the architecture.
      std: standard deviation of the weights.
      mean: per-channel data mean ``(in_channels,)`` subtracted before layer 0 (ignored, zeros,
        when ``config.subtract_mean`` is False; default zeros).
    """
    if not isinstance(config, AutoencoderConfig):
        raise TypeError(f"config: expected an AutoencoderConfig, got {type(config).__name__}")
    std = float(check_positive("std", std))
    chans = layer_channels(config)
    shapes = _weight_shapes(config)
    flat = std * draw_flat(key, sum(int(np.prod(s)) for s in shapes), "normal", dtype)
    weights = _split_flat(flat, shapes, dtype)
    layers = tuple(
        LayerParams(enc_w=weights[2 * l], enc_b=jnp.asarray(np.zeros(chans[l + 1]), dtype),
                    dec_w=weights[2 * l + 1], dec_b=jnp.asarray(np.zeros(chans[l]), dtype))
        for l in range(config.n_layers)
    )
    m = jnp.asarray(np.zeros(config.in_channels), dtype)
    if mean is not None and config.subtract_mean:
        m = jnp.asarray(np.asarray(check_array("mean", mean, shape=(config.in_channels,))), dtype)
    return AutoencoderParams(layers=layers, mean=m)


def random_feedback_params(key, config: AutoencoderConfig, *, power: int = 5, dtype=jnp.float32) -> AutoencoderParams:
    """Random weights and biases ``U(-1, 1)**power`` (odd power keeps the sign), the feedback program's startup weights."""
    if not isinstance(config, AutoencoderConfig):
        raise TypeError(f"config: expected an AutoencoderConfig, got {type(config).__name__}")
    power = check_int("power", power, min_value=1)
    chans = layer_channels(config)
    shapes = []
    for l, (ew, dw) in enumerate(zip(_weight_shapes(config)[::2], _weight_shapes(config)[1::2])):
        shapes += [ew, (chans[l + 1],), dw, (chans[l],)]
    flat = draw_flat(key, sum(int(np.prod(s)) for s in shapes), "uniform", dtype).astype(np.float64) ** power
    leaves = _split_flat(flat, shapes, dtype)
    layers = tuple(LayerParams(*leaves[4 * l : 4 * l + 4]) for l in range(config.n_layers))
    return AutoencoderParams(layers=layers, mean=jnp.asarray(np.zeros(config.in_channels), dtype))


# ---------------------------------------------------------------- primitives

def _last_axis(v, like):
    """Reshape a per-channel vector ``(C,)`` to broadcast against ``like`` ``(..., C)`` without rank promotion."""
    return v.astype(like.dtype).reshape((1,) * (like.ndim - 1) + v.shape)


def _activate(x, activation: str):
    return jnp.tanh(x) if activation == "tanh" else jax.nn.relu(x)


def _pad(x, before: int, after: int, padding: str):
    widths = [(0, 0)] * (x.ndim - 3) + [(before, after), (before, after), (0, 0)]
    return jnp.pad(x, widths, mode="wrap" if padding == "circular" else "constant")


_DIMS = ("NHWC", "HWIO", "NHWC")


def _as_batch(x):
    """``(..., H, W, C)`` -> ``(N, H, W, C)`` and the function that restores the leading axes."""
    lead = x.shape[:-3]
    return x.reshape((-1,) + x.shape[-3:]), (lambda y: y.reshape(lead + y.shape[1:]))


def _pool(x, pooling: str):
    *lead, h, w, c = x.shape
    x = x.reshape(tuple(lead) + (h // 2, 2, w // 2, 2, c))
    return x.max(axis=(-4, -2)) if pooling == "max" else x.mean(axis=(-4, -2))


# Input channels up to which an encoder layer runs on the coarse (pooled) grid: XLA:CPU's
# convolutions with few channels (the RGB layer) are slow, the phase form has 4x the channels.
_PHASE_MAX_CHANNELS = 4


def _conv_valid(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=_DIMS)


def _patches(x, kh: int, kw: int):
    """``(N, H, W, C)`` -> ``(N H' W', kh kw C)``: every ``kh x kw`` patch of a VALID convolution
    (``H' = H - kh + 1``, ``W' = W - kw + 1``) as a row, ordered like an HWIO kernel's first three axes."""
    n, h, w, c = x.shape
    ho, wo = h - kh + 1, w - kw + 1
    cols = [x[:, a : a + ho, b : b + wo] for a in range(kh) for b in range(kw)]
    return jnp.concatenate(cols, axis=-1).reshape(n * ho * wo, kh * kw * c)


@jax.custom_vjp
def _conv_valid_patch_grad(x, w):
    """``lax.conv`` (VALID, stride 1, NHWC/HWIO) whose kernel gradient is one product of patches, ``P^T g``.

    Equal to :func:`_conv_valid` in value and derivatives (reverse mode only). XLA:CPU computes the
    kernel gradient of a convolution with a small kernel and many positions several times slower
    than the same contraction as a matrix product.
    """
    return _conv_valid(x, w)


def _conv_fwd(x, w):
    return _conv_valid(x, w), (x, w)


def _conv_bwd(res, g):
    x, w = res
    kh, kw, cin, cout = w.shape
    dx = jax.linear_transpose(lambda v: _conv_valid(v, w), x)(g)[0]
    dw = (_patches(x, kh, kw).T @ g.reshape(-1, cout)).reshape(kh, kw, cin, cout)
    return dx, dw.astype(w.dtype)


_conv_valid_patch_grad.defvjp(_conv_fwd, _conv_bwd)


def _encoder_taps(k: int):
    """Fine tap ``a`` of a ``k``-wide kernel used by output phase ``p``, input phase ``q`` and coarse
    offset ``o`` (``(2, 2, T)``; ``k`` marks a missing tap), and the coarse padding (before, after)."""
    r = k // 2
    lo, hi = (-r) // 2, (r + 1) // 2
    taps = np.array([[[a if 0 <= (a := 2 * o + q - p + r) < k else k for o in range(lo, hi + 1)] for q in (0, 1)] for p in (0, 1)])
    return taps, -lo, hi


def _encode_phases(layer: LayerParams, x, padding: str):
    """The "same" convolution of ``x`` ``(N, H, W, C)`` as ``(N, H/2, W/2, 4, C_out)``: the four
    output phases of each 2x2 pooling window, from one stride-1 convolution on the coarse grid
    (input phases as ``4C`` channels, output phases as ``4 C_out``)."""
    k = layer.enc_w.shape[0]
    n, hh, ww, c = x.shape
    taps, before, after = _encoder_taps(k)
    t = taps.shape[-1]
    wp = jnp.pad(layer.enc_w.astype(x.dtype), ((0, 1), (0, 1), (0, 0), (0, 0)))  # index k reads zeros
    g = wp[taps[:, :, :, None, None, None], taps[None, None, None]]  # (py, qy, oy, px, qx, ox, C, C_out)
    cout = g.shape[-1]
    w = g.transpose(2, 5, 1, 4, 6, 0, 3, 7).reshape(t, t, 4 * c, 4 * cout)  # (oy, ox, [qy, qx, C], [py, px, C_out])
    xs = x.reshape(n, hh // 2, 2, ww // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, hh // 2, ww // 2, 4 * c)
    widths = ((0, 0), (before, after), (before, after), (0, 0))
    xs = jnp.pad(xs, widths, mode="wrap" if padding == "circular" else "constant")
    return _conv_valid_patch_grad(xs, w).reshape(n, hh // 2, ww // 2, 4, cout)


def encode_layer(layer: LayerParams, h, *, pooling: str, activation: str, padding: str = "zero"):
    """``h^l (..., H, W, C_l) -> h^{l+1} (..., H/2, W/2, C_{l+1})`` without input checks (use :func:`encode`).

    Layers with at most ``_PHASE_MAX_CHANNELS`` input channels are computed on the pooled grid
    (:func:`_encode_phases`; equal to the direct convolution to float rounding, reverse-mode
    derivatives only); the others as one "same" ``lax.conv``.
    """
    k = layer.enc_w.shape[0]
    x, restore = _as_batch(h)
    if x.shape[-1] <= _PHASE_MAX_CHANNELS:
        z = _encode_phases(layer, x, padding)
        z = z + _last_axis(layer.enc_b, z)
        a = _activate(z, activation)
        return restore(a.max(axis=-2) if pooling == "max" else a.mean(axis=-2))
    w = layer.enc_w.astype(x.dtype)
    if padding == "circular":
        z = lax.conv_general_dilated(_pad(x, k // 2, k // 2, padding), w, (1, 1), "VALID", dimension_numbers=_DIMS)
    else:
        z = lax.conv_general_dilated(x, w, (1, 1), [(k // 2, k // 2)] * 2, dimension_numbers=_DIMS)
    z = z + _last_axis(layer.enc_b, z)
    return restore(_pool(_activate(z, activation), pooling))


def _phase_taps(k: int):
    """Tap of a ``k``-wide stride-2 transposed kernel used by output phase ``p`` at coarse offset ``o``
    (``(2, 2R + 1)``, ``R = k // 4``; ``k`` marks a missing tap)."""
    r = k // 4
    return np.array([[u if 0 <= (u := 2 * o - p + k // 2) < k else k for o in range(-r, r + 1)] for p in (0, 1)])


def decode_layer(layer: LayerParams, h, *, activation: str, padding: str = "zero"):
    """``h^{l+1} (..., H, W, C_{l+1}) -> h^l (..., 2H, 2W, C_l)``: stride-2 transposed convolution, bias, activation.

    Caffe's Deconvolution with stride 2 and pad ``k/2 - 1``: ``out[2i - k/2 + 1 + a] += h[i] @ w[k-1-a]``.
    Computed as one stride-1 ``(2R+1) x (2R+1)`` convolution on the coarse grid (``R = k // 4``)
    giving the four output phases as channels, then interleaved (depth to space).
    """
    k = layer.dec_w.shape[0]
    r = k // 4
    x, restore = _as_batch(h)
    n, hh, ww, _ = x.shape
    taps = _phase_taps(k)
    wp = jnp.pad(layer.dec_w.astype(x.dtype), ((0, 1), (0, 1), (0, 0), (0, 0)))  # index k reads zeros
    g = wp[taps.T[:, None, :, None], taps.T[None, :, None, :]]  # (K, K, 2, 2, C_in, C_out): [oy, ox, py, px]
    kk, cin, cout = 2 * r + 1, g.shape[-2], g.shape[-1]
    w = g.transpose(0, 1, 4, 2, 3, 5).reshape(kk, kk, cin, 4 * cout)
    if padding == "circular":
        z = lax.conv_general_dilated(_pad(x, r, r, padding), w, (1, 1), "VALID", dimension_numbers=_DIMS)
    else:
        z = lax.conv_general_dilated(x, w, (1, 1), [(r, r)] * 2, dimension_numbers=_DIMS)
    z = z.reshape(n, hh, ww, 2, 2, cout).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * hh, 2 * ww, cout)
    z = z + _last_axis(layer.dec_b, z)
    return restore(_activate(z, activation))


# ---------------------------------------------------------------- checked public API

def _check_config(config):
    if not isinstance(config, AutoencoderConfig):
        raise TypeError(f"config: expected an AutoencoderConfig, got {type(config).__name__}")


def _check_level(config, level) -> int:
    return check_int("level", level, min_value=0, max_value=config.n_layers - 1)


def _check_input(name, x, config, level, *, scale: int = 1):
    x = check_array(name, x, min_ndim=3, finite=False)
    c = layer_channels(config)[level]
    if x.shape[-1] != c:
        raise ValueError(f"{name}: expected {c} channels (last axis) at level {level}, got shape {tuple(x.shape)}")
    h, w = x.shape[-3], x.shape[-2]
    if h % scale or w % scale or h == 0 or w == 0:
        raise ValueError(
            f"{name}: expected height and width divisible by {scale} (2**levels to go), got {h}x{w} (shape {tuple(x.shape)})"
        )
    return x


@partial(jax.jit, static_argnames=("level", "config", "padding"), inline=True)
def _encode_jit(params, x, *, level, config, padding):
    if level == 0 and config.subtract_mean:
        x = x - _last_axis(params.mean, x)
    return encode_layer(params.layers[level], x, pooling=config.pooling[level], activation=config.activation[level], padding=padding)


@partial(jax.jit, static_argnames=("level", "config", "padding"), inline=True)
def _decode_jit(params, h, *, level, config, padding):
    y = decode_layer(params.layers[level], h, activation=config.activation[level], padding=padding)
    if level == 0 and config.subtract_mean:
        y = y + _last_axis(params.mean, y)
    return y


@partial(jax.jit, static_argnames=("config", "padding"), inline=True)
def _encode_all_jit(params, x, *, config, padding):
    codes, h = [], x
    for level in range(config.n_layers):
        h = _encode_jit(params, h, level=level, config=config, padding=padding)
        codes.append(h)
    return tuple(codes)


@partial(jax.jit, static_argnames=("config", "padding"), inline=True)
def _apply_jit(params, x, *, config, padding):
    h = _encode_all_jit(params, x, config=config, padding=padding)[-1]
    for level in reversed(range(config.n_layers)):
        h = _decode_jit(params, h, level=level, config=config, padding=padding)
    return h


def _check_params(params, config):
    if not isinstance(params, AutoencoderParams):
        raise TypeError(f"params: expected AutoencoderParams, got {type(params).__name__}")
    if len(params.layers) != config.n_layers:
        raise ValueError(f"params: expected {config.n_layers} layers for this config, got {len(params.layers)}")


def encode(params: AutoencoderParams, x, level: int, config: AutoencoderConfig, *, padding: str = "zero"):
    """Apply the encoder of one layer: ``h^{level+1} = gamma_level(h^level)`` (compiled once per config, level and shape).

    Args:
      params: from :func:`init_params`.
      x: ``h^level``, ``(..., H, W, C_level)``; at level 0 the raw images (e.g. in [0, 1]).
      level: ``0 .. L-1``.
      config: the architecture.
      padding: ``"zero"`` (training, as Caffe) or ``"circular"`` (wrap-around edges).

    Returns:
      ``(..., H/2, W/2, C_{level+1})``.

    A layer with few input channels (the image layer) is differentiable in reverse mode only
    (``jax.grad``, ``jax.vjp``; see :func:`encode_layer`).
    """
    _check_config(config)
    _check_params(params, config)
    level = _check_level(config, level)
    check_choice("padding", padding, PADDINGS)
    x = _check_input("x", x, config, level, scale=2)
    return _encode_jit(params, x, level=level, config=config, padding=padding)


def decode(params: AutoencoderParams, h, level: int, config: AutoencoderConfig, *, padding: str = "zero"):
    """Apply the decoder of one layer: ``h^level ~ gamma_level^{-1}(h^{level+1})``.

    Args:
      h: ``h^{level+1}``, ``(..., H, W, C_{level+1})``.
      level: ``0 .. L-1``.

    Returns:
      ``(..., 2H, 2W, C_level)``; at level 0 in image units (the mean added back).
    """
    _check_config(config)
    _check_params(params, config)
    level = _check_level(config, level)
    check_choice("padding", padding, PADDINGS)
    h = _check_input("h", h, config, level + 1)
    return _decode_jit(params, h, level=level, config=config, padding=padding)


def encode_all(params: AutoencoderParams, x, config: AutoencoderConfig, *, padding: str = "zero") -> tuple:
    """All codes ``(h^1, ..., h^L)`` of images ``x`` ``(..., H, W, C)``, H and W divisible by ``2**L``."""
    _check_config(config)
    _check_params(params, config)
    check_choice("padding", padding, PADDINGS)
    x = _check_input("x", x, config, 0, scale=2**config.n_layers)
    return _encode_all_jit(params, x, config=config, padding=padding)


def apply(params: AutoencoderParams, x, config: AutoencoderConfig, *, padding: str = "zero"):
    """Reconstruct ``x`` ``(..., H, W, C)`` through all layers: encode up to ``h^L``, decode back down."""
    _check_config(config)
    _check_params(params, config)
    check_choice("padding", padding, PADDINGS)
    x = _check_input("x", x, config, 0, scale=2**config.n_layers)
    return _apply_jit(params, x, config=config, padding=padding)
