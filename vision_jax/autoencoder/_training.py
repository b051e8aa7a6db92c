"""Losses, optax training (one layer at a time, greedy stacking, end-to-end fine-tuning) and the cubic baseline."""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vision_jax._checks import check_array, check_int, check_nonnegative, check_positive
from vision_jax.autoencoder._model import (
    AutoencoderConfig,
    AutoencoderParams,
    _check_config,
    _check_input,
    apply,
    decode,
    encode,
    encode_all,
)

__all__ = [
    "mse",
    "caffe_l2",
    "psnr",
    "layer_loss",
    "stack_loss",
    "train_layer",
    "fine_tune",
    "GreedyHistory",
    "train_greedy",
    "cubic_baseline",
]


def mse(a, b):
    """Mean squared error over all entries."""
    return jnp.mean(jnp.square(a - b))


def caffe_l2(pred, target) -> float:
    """Caffe's EuclideanLoss ``1/(2N) sum ||pred - target||^2`` over the N images of ``(N, H, W, C)`` arrays.

    On 32x32x3 images scaled to [0, 1] (the source's 1/256) this is the number the source reports
    (e.g. 1.47 for its one-layer 3x3 tanh model); it equals ``0.5 * 3072 * MSE``.
    """
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if pred.shape != target.shape or pred.ndim < 2:
        raise ValueError(f"pred, target: expected equal shapes (N, ...), got {pred.shape} and {target.shape}")
    return float(0.5 * np.sum(np.square(pred - target)) / pred.shape[0])


def psnr(pred, target, *, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(peak^2 / MSE)``."""
    err = float(np.mean(np.square(np.asarray(pred, np.float64) - np.asarray(target, np.float64))))
    return float("inf") if err == 0 else float(10 * np.log10(peak**2 / err))


def layer_loss(params: AutoencoderParams, h, level: int, config: AutoencoderConfig):
    """MSE of one layer's round trip, ``decode(encode(h^level)) - h^level``."""
    return mse(decode(params, encode(params, h, level, config), level, config), h)


def stack_loss(params: AutoencoderParams, x, config: AutoencoderConfig, weights):
    """Weighted MSEs of decoding from the top code back to every level.

    ``d^L = h^L``, ``d^l = gamma_l^{-1}(d^{l+1})``; returns ``sum_l weights[l] * MSE(d^l, h^l)``
    for ``l = 0 .. L-1`` (``h^0 = x``): ``weights = (1, 1)`` is the source's two-layer "double objective".
    """
    hs = (x,) + encode_all(params, x, config)
    d, total = hs[-1], 0.0
    for level in reversed(range(config.n_layers)):
        d = decode(params, d, level, config)
        total = total + weights[level] * mse(d, hs[level])
    return total


def _fit(loss_fn, trainable, data, *, key, optimizer, steps: int, batch_size: int):
    """Minimise ``loss_fn(trainable, batch)`` on random minibatches (with replacement) of ``data``; one jitted scan."""
    n = data.shape[0]
    with jax.numpy_dtype_promotion("standard"):
        opt_state = optimizer.init(trainable)

    def step(carry, k):
        p, s = carry
        batch = data[jax.random.randint(k, (batch_size,), 0, n)]
        loss, grads = jax.value_and_grad(loss_fn)(p, batch)
        updates, s = optimizer.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), loss

    @jax.jit
    def run(p, s, keys):
        return jax.lax.scan(step, (p, s), keys)

    # optax's own internals (e.g. Adam's ``b ** count`` with an int32 count) are not written for
    # strict dtype promotion; the model code is, so only the optimizer step is traced permissively.
    with jax.numpy_dtype_promotion("standard"):
        (trainable, _), losses = run(trainable, opt_state, jax.random.split(key, steps))
    return trainable, losses


def _check_training(optimizer, steps, batch_size):
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer: expected an optax.GradientTransformation, got {type(optimizer).__name__}")
    return check_int("steps", steps, min_value=1), check_int("batch_size", batch_size, min_value=1)


def train_layer(params: AutoencoderParams, inputs, level: int, config: AutoencoderConfig, *, key, optimizer, steps: int, batch_size: int = 100):
    """Train layer ``level`` alone to reconstruct its input; every other layer stays frozen.

    Args:
      inputs: ``h^level`` for the training set, ``(N, H, W, C_level)`` (images at level 0;
        codes of the frozen lower layers above, e.g. from :func:`encode_all`).
      optimizer: an optax transformation, e.g. ``optax.sgd(1e-2, momentum=0.9)`` or ``optax.adam(3e-3)``.

    Returns:
      ``(params, losses)`` with ``losses`` ``(steps,)`` the minibatch MSEs.
    """
    _check_config(config)
    steps, batch_size = _check_training(optimizer, steps, batch_size)
    level = check_int("level", level, min_value=0, max_value=config.n_layers - 1)
    inputs = _check_input("inputs", inputs, config, level, scale=2)
    if inputs.ndim != 4:
        raise ValueError(f"inputs: expected (N, H, W, C), got shape {tuple(inputs.shape)}")

    def loss_fn(layer, batch):
        layers = params.layers[:level] + (layer,) + params.layers[level + 1 :]
        return layer_loss(params._replace(layers=layers), batch, level, config)

    layer, losses = _fit(loss_fn, params.layers[level], inputs, key=key, optimizer=optimizer, steps=steps, batch_size=batch_size)
    return params._replace(layers=params.layers[:level] + (layer,) + params.layers[level + 1 :]), losses


def fine_tune(params: AutoencoderParams, images, config: AutoencoderConfig, *, key, optimizer, steps: int, batch_size: int = 100, weights=None):
    """Train all layers end to end on :func:`stack_loss` (default weights 1 at every level).

    Returns:
      ``(params, losses)``.
    """
    _check_config(config)
    steps, batch_size = _check_training(optimizer, steps, batch_size)
    images = _check_input("images", images, config, 0, scale=2**config.n_layers)
    weights = (1.0,) * config.n_layers if weights is None else tuple(float(check_nonnegative("weights", w)) for w in weights)
    if len(weights) != config.n_layers:
        raise ValueError(f"weights: expected {config.n_layers} values (one per level), got {len(weights)}")

    def loss_fn(layers, batch):
        return stack_loss(params._replace(layers=layers), batch, config, weights)

    layers, losses = _fit(loss_fn, params.layers, images, key=key, optimizer=optimizer, steps=steps, batch_size=batch_size)
    return params._replace(layers=layers), losses


class GreedyHistory(NamedTuple):
    """Minibatch losses of greedy training: one array per layer stage, then the fine-tuning stage (or None)."""

    layer_losses: tuple
    finetune_losses: object


def train_greedy(params, images, config, *, key, optimizer, steps_per_layer: int, finetune_steps: int = 0, batch_size: int = 100, finetune_optimizer=None):
    """Greedy stacking as in the source: train layer 0 on images; freeze it and train layer 1 on its
    codes; ...; then optionally fine-tune all layers end to end (:func:`fine_tune`).

    Returns:
      ``(params, GreedyHistory)``.
    """
    _check_config(config)
    finetune_steps = check_int("finetune_steps", finetune_steps, min_value=0)
    images = _check_input("images", images, config, 0, scale=2**config.n_layers)
    keys = jax.random.split(key, config.n_layers + 1)
    h, history = images, []
    for level in range(config.n_layers):
        params, losses = train_layer(params, h, level, config, key=keys[level], optimizer=optimizer, steps=steps_per_layer, batch_size=batch_size)
        history.append(losses)
        if level + 1 < config.n_layers:
            h = jax.jit(partial(encode, level=level, config=config))(params, h)
    ft = None
    if finetune_steps:
        params, ft = fine_tune(params, images, config, key=keys[-1], optimizer=finetune_optimizer or optimizer, steps=finetune_steps, batch_size=batch_size)
    return params, GreedyHistory(tuple(history), ft)


def cubic_baseline(images, factor: int) -> np.ndarray:
    """Cubic-spline interpolation down by ``factor`` and back up, clipped to [0, 1] (the source's baseline).

    Per image and channel: ``scipy.ndimage.zoom(x, 1/factor, order=3, mode='nearest')`` then ``zoom(., factor, ...)``.

    Args:
      images: ``(N, H, W, C)`` in [0, 1], H and W divisible by ``factor``.
      factor: 2, 4, 8 for 1, 2, 3 layers.

    Returns:
      float64 ``(N, H, W, C)``.
    """
    from scipy import ndimage

    factor = check_int("factor", factor, min_value=1)
    x = np.asarray(check_array("images", images, ndim=4), np.float64)
    if x.shape[1] % factor or x.shape[2] % factor:
        raise ValueError(f"images: expected height and width divisible by factor={factor}, got shape {x.shape}")
    # zoom 1 along the batch and channel axes is exactly the identity (interpolating spline at the samples)
    # mode="nearest": scipy >= 1.6's default "constant" mode leaves zeros along the last rows/columns at zoom 1/2
    small = ndimage.zoom(x, (1, 1 / factor, 1 / factor, 1), order=3, mode="nearest")
    up = ndimage.zoom(small, (1, factor, factor, 1), order=3, mode="nearest")
    return np.clip(up, 0.0, 1.0)
