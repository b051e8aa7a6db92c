"""The autoencoder as a ``flax.linen`` Module over the same layer functions.

``ConvPoolAutoencoder(config)`` holds one submodule per layer (``layers_0``, ``layers_1``, ...)
with parameters ``enc_w (k, k, C_l, C_{l+1})``, ``enc_b (C_{l+1},)``, ``dec_w (k', k', C_{l+1}, C_l)``,
``dec_b (C_l,)``, and the per-channel data mean in the ``"constants"`` collection (never
trained). Its outputs are those of :func:`~vision_jax.autoencoder.encode`,
:func:`~vision_jax.autoencoder.decode` and :func:`~vision_jax.autoencoder.apply` for the same
weights; :func:`variables_from_params` and :func:`params_from_variables` convert between the
Module's variables and :class:`~vision_jax.autoencoder.AutoencoderParams`::

    model = ConvPoolAutoencoder(config, mean=tuple(train.mean(axis=(0, 1, 2))))
    variables = model.init(jax.random.key(0), x)           # x (N, H, W, C)
    rec = model.apply(variables, x)                        # all layers
    h1 = model.apply(variables, x, 0, method="encode")    # one layer (level is a Python int)
    grads = jax.grad(lambda p: mse(model.apply({**variables, "params": p}, x), x))(variables["params"])

Call ``init`` eagerly (not under ``jax.jit``): the initial weights then come from one compiled
random-bits program shared with :func:`~vision_jax.autoencoder.init_params`, where a jitted
``init`` compiles ``jax.random.normal`` for every weight shape (tens of seconds on CPU).
"""
from __future__ import annotations

from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vision_jax._checks import check_choice, is_traced
from vision_jax.autoencoder._model import (
    PADDINGS,
    AutoencoderConfig,
    AutoencoderParams,
    LayerParams,
    _check_input,
    _check_level,
    _last_axis,
    decode_layer,
    draw_flat,
    encode_layer,
    layer_channels,
)

__all__ = ["ConvPoolAutoencoder", "variables_from_params", "params_from_variables"]


def _normal(std: float):
    """Gaussian initializer: with a concrete key, from :func:`draw_flat` (one compiled program of
    random bits for every shape; compiling ``jax.random.normal`` for each shape takes seconds on
    CPU); under a trace, ``jax.random.normal``."""

    def init(key, shape, dtype=jnp.float32):
        if is_traced(key):
            return std * jax.random.normal(key, shape, dtype)
        return jnp.asarray(std * draw_flat(key, int(np.prod(shape)), "normal", dtype).reshape(shape), dtype)

    return init


@partial(jax.jit, static_argnames=("pooling", "activation", "padding", "subtract"), inline=True)
def _encode(layer, mean, x, *, pooling, activation, padding, subtract):
    """One encoder layer, mean subtracted first when ``subtract`` (compiled once per shape when
    called eagerly, e.g. by ``init``; inlined inside a trace)."""
    if subtract:
        x = x - _last_axis(mean, x)
    return encode_layer(layer, x, pooling=pooling, activation=activation, padding=padding)


@partial(jax.jit, static_argnames=("activation", "padding", "add"), inline=True)
def _decode(layer, mean, h, *, activation, padding, add):
    y = decode_layer(layer, h, activation=activation, padding=padding)
    return y + _last_axis(mean, y) if add else y


class _Layer(nn.Module):
    """One layer's encoder and decoder weights (Gaussian std ``init_std``, zero biases, as :func:`init_params`)."""

    c_in: int
    c_out: int
    encoder_kernel: int
    decoder_kernel: int
    pooling: str
    activation: str
    init_std: float
    param_dtype: Any

    def setup(self):
        ke, kd = self.encoder_kernel, self.decoder_kernel
        normal, zeros = _normal(self.init_std), nn.initializers.zeros
        self.enc_w = self.param("enc_w", normal, (ke, ke, self.c_in, self.c_out), self.param_dtype)
        self.enc_b = self.param("enc_b", zeros, (self.c_out,), self.param_dtype)
        self.dec_w = self.param("dec_w", normal, (kd, kd, self.c_out, self.c_in), self.param_dtype)
        self.dec_b = self.param("dec_b", zeros, (self.c_in,), self.param_dtype)

    def _weights(self) -> LayerParams:
        return LayerParams(self.enc_w, self.enc_b, self.dec_w, self.dec_b)

    def encode(self, h, mean, padding: str, subtract: bool):
        return _encode(self._weights(), mean, h, pooling=self.pooling, activation=self.activation, padding=padding,
                       subtract=subtract)

    def decode(self, h, mean, padding: str, add: bool):
        return _decode(self._weights(), mean, h, activation=self.activation, padding=padding, add=add)


class ConvPoolAutoencoder(nn.Module):
    """A convolutional pooling autoencoder whose layers apply one at a time (``flax.linen``).

    Attributes:
      config: the architecture (:class:`~vision_jax.autoencoder.AutoencoderConfig`).
      mean: initial per-channel data mean ``(in_channels,)`` stored in the ``"constants"``
        collection and subtracted before layer 0 when ``config.subtract_mean`` (default zeros).
      padding: ``"zero"`` (as Caffe; training) or ``"circular"`` (wrap-around edges).
      init_std: standard deviation of the Gaussian initial weights (biases start at zero).
      param_dtype: dtype of the parameters.

    Methods (all take NHWC arrays; ``level`` is a Python int ``0 .. L-1``):
      ``encode(x, level)``: ``h^{level+1}`` from ``h^level``, ``(..., H, W, C_l) -> (..., H/2, W/2, C_{l+1})``.
      ``decode(h, level)``: ``h^level`` from ``h^{level+1}``, ``(..., H, W, C_{l+1}) -> (..., 2H, 2W, C_l)``.
      ``encode_all(x)``: ``(h^1, ..., h^L)``.
      ``__call__(x)``: the reconstruction through all layers, ``(..., H, W, C)`` with H, W divisible by ``2**L``.
    """

    config: AutoencoderConfig
    mean: tuple | None = None
    padding: str = "zero"
    init_std: float = 0.1
    param_dtype: Any = jnp.float32

    def setup(self):
        cfg = self.config
        if not isinstance(cfg, AutoencoderConfig):
            raise TypeError(f"config: expected an AutoencoderConfig, got {type(cfg).__name__}")
        check_choice("padding", self.padding, PADDINGS)
        chans = layer_channels(cfg)
        self.layers = [
            _Layer(chans[l], chans[l + 1], cfg.encoder_kernel[l], cfg.decoder_kernel[l], cfg.pooling[l], cfg.activation[l],
                   self.init_std, self.param_dtype)
            for l in range(cfg.n_layers)
        ]
        if self.mean is not None and len(self.mean) != cfg.in_channels:
            raise ValueError(f"mean: expected {cfg.in_channels} values (one per input channel), got {len(self.mean)}")

        def init_mean():
            if self.mean is None or not cfg.subtract_mean:
                return jnp.zeros((cfg.in_channels,), self.param_dtype)
            return jnp.asarray(np.asarray(self.mean, np.float64), self.param_dtype)

        self.data_mean = self.variable("constants", "mean", init_mean)

    def encode(self, x, level: int):
        level = _check_level(self.config, level)
        x = _check_input("x", x, self.config, level, scale=2)
        subtract = level == 0 and self.config.subtract_mean
        return self.layers[level].encode(x, self.data_mean.value, self.padding, subtract)

    def decode(self, h, level: int):
        level = _check_level(self.config, level)
        h = _check_input("h", h, self.config, level + 1)
        add = level == 0 and self.config.subtract_mean
        return self.layers[level].decode(h, self.data_mean.value, self.padding, add)

    def encode_all(self, x) -> tuple:
        _check_input("x", x, self.config, 0, scale=2**self.config.n_layers)
        codes, h = [], x
        for level in range(self.config.n_layers):
            h = self.encode(h, level)
            codes.append(h)
        return tuple(codes)

    def __call__(self, x):
        h = self.encode_all(x)[-1]
        for level in reversed(range(self.config.n_layers)):
            h = self.decode(h, level)
        return h


_LEAVES = ("enc_w", "enc_b", "dec_w", "dec_b")


def variables_from_params(params: AutoencoderParams) -> dict:
    """``{"params": {"layers_0": {"enc_w", "enc_b", "dec_w", "dec_b"}, ...}, "constants": {"mean"}}`` for :class:`ConvPoolAutoencoder`."""
    if not isinstance(params, AutoencoderParams):
        raise TypeError(f"params: expected AutoencoderParams, got {type(params).__name__}")
    layers = {f"layers_{l}": {name: jnp.asarray(getattr(layer, name)) for name in _LEAVES} for l, layer in enumerate(params.layers)}
    return {"params": layers, "constants": {"mean": jnp.asarray(params.mean)}}


def params_from_variables(variables, config: AutoencoderConfig) -> AutoencoderParams:
    """The :class:`~vision_jax.autoencoder.AutoencoderParams` of a :class:`ConvPoolAutoencoder`'s variables
    (for :func:`~vision_jax.autoencoder.train_greedy`, the feedback process, ...)."""
    if not isinstance(config, AutoencoderConfig):
        raise TypeError(f"config: expected an AutoencoderConfig, got {type(config).__name__}")
    try:
        p = variables["params"]
        layers = tuple(LayerParams(*(p[f"layers_{l}"][name] for name in _LEAVES)) for l in range(config.n_layers))
    except (KeyError, TypeError) as err:
        raise ValueError(f"variables: expected the variables of a ConvPoolAutoencoder with {config.n_layers} layers, missing {err}") from None
    constants = variables.get("constants", {}) if hasattr(variables, "get") else {}
    mean = constants.get("mean", jnp.zeros((config.in_channels,), layers[0].enc_w.dtype))
    return AutoencoderParams(layers=layers, mean=jax.tree.map(jnp.asarray, mean))
