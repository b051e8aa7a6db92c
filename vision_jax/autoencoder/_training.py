"""Losses, optax training (one layer at a time, greedy stacking, end-to-end fine-tuning) and the cubic baseline."""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vision_jax._checks import check_array, check_int, check_key, check_nonnegative
from vision_jax.autoencoder._model import (
    AutoencoderConfig,
    AutoencoderParams,
    _check_config,
    _check_input,
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


@partial(jax.jit, static_argnames=("level", "config"), inline=True)
def _layer_loss(params, h, *, level, config):
    return mse(decode(params, encode(params, h, level, config), level, config), h)


@partial(jax.jit, static_argnames=("config", "weights"), inline=True)
def _stack_loss(params, x, *, config, weights):
    hs = (x,) + encode_all(params, x, config)
    d, total = hs[-1], 0.0
    for level in reversed(range(config.n_layers)):
        d = decode(params, d, level, config)
        total = total + weights[level] * mse(d, hs[level])
    return total


def layer_loss(params: AutoencoderParams, h, level: int, config: AutoencoderConfig):
    """MSE of one layer's round trip, ``decode(encode(h^level)) - h^level``."""
    _check_config(config)
    level = check_int("level", level, min_value=0, max_value=config.n_layers - 1)
    h = _check_input("h", h, config, level, scale=2)
    return _layer_loss(params, h, level=level, config=config)


def stack_loss(params: AutoencoderParams, x, config: AutoencoderConfig, weights):
    """Weighted MSEs of decoding from the top code back to every level.

    ``d^L = h^L``, ``d^l = gamma_l^{-1}(d^{l+1})``; returns ``sum_l weights[l] * MSE(d^l, h^l)``
    for ``l = 0 .. L-1`` (``h^0 = x``): ``weights = (1, 1)`` is the source's two-layer "double objective".
    """
    _check_config(config)
    weights = tuple(float(w) for w in weights)
    if len(weights) != config.n_layers:
        raise ValueError(f"weights: expected {config.n_layers} values (one per level), got {len(weights)}")
    x = _check_input("x", x, config, 0, scale=2**config.n_layers)
    return _stack_loss(params, x, config=config, weights=weights)


def _objective(trainable, fixed, batch, *, objective, config, level, weights):
    if objective == "layer":
        layers = fixed.layers[:level] + (trainable,) + fixed.layers[level + 1 :]
        return layer_loss(fixed._replace(layers=layers), batch, level, config)
    return stack_loss(fixed._replace(layers=trainable), batch, config, weights)


_STATIC = ("objective", "config", "level", "weights", "optimizer", "chunk", "batch_size")


@partial(jax.jit, static_argnames=("optimizer",))
def _opt_init(trainable, *, optimizer):
    return optimizer.init(trainable)


@partial(jax.jit, static_argnames=_STATIC)
def _train_chunk(carry, index, fixed, data, key, steps, *, objective, config, level, weights, optimizer, chunk, batch_size):
    """``chunk`` optimizer steps ``index * chunk ...``; steps from ``steps`` on leave the carry unchanged.

    Step ``i`` draws its minibatch from ``fold_in(key, i)``, so the result does not depend on how
    the steps are cut into chunks (nor on an interruption between two chunks). On CPU the steps
    are unrolled: XLA:CPU runs convolutions inside a loop body several times slower.
    """
    n = data.shape[0]
    loss_fn = partial(_objective, objective=objective, config=config, level=level, weights=weights)

    def step(c, i, masked=True):
        p, s = c
        batch = data[jax.random.randint(jax.random.fold_in(key, i), (batch_size,), 0, n)]
        loss, grads = jax.value_and_grad(loss_fn)(p, fixed, batch)
        updates, s_new = optimizer.update(grads, s, p)
        p_new = optax.apply_updates(p, updates)
        if not masked:
            return (p_new, s_new), loss
        live = i < steps
        return jax.tree.map(lambda new, old: jnp.where(live, new, old), (p_new, s_new), (p, s)), loss

    if chunk == 1:  # every chunk is a real step
        c, loss = step(carry, index, masked=False)
        return c, loss[None]
    if jax.default_backend() != "cpu":
        return jax.lax.scan(step, carry, index * chunk + jnp.arange(chunk, dtype=jnp.int32))
    losses = []
    for j in range(chunk):  # unrolled in the program: no loop body
        carry, loss = step(carry, index * chunk + j)
        losses.append(loss)
    return carry, jnp.stack(losses)


def _fit(trainable, fixed, data, *, key, optimizer, steps, batch_size, chunk_steps, checkpoint_dir, save_every,
         fingerprint, desc, show_progress, **static):
    """Minimise the objective on random minibatches (with replacement) of ``data`` in compiled chunks.

    One compiled program per (objective, config, level, optimizer, chunk, batch size, data
    shape): a second call with the same ones (and the same optimizer object) compiles nothing.
    """
    from vision_jax.checkpoint import run_chunks

    chunk = min(steps, chunk_steps)
    n_chunks = -(-steps // chunk)
    # optax's own internals (e.g. Adam's ``b ** count`` with an int32 count) are not written for
    # strict dtype promotion; the model code is, so only the optimizer is traced permissively.
    with jax.numpy_dtype_promotion("standard"):
        carry = (trainable, _opt_init(trainable, optimizer=optimizer))
    steps_arr = jnp.asarray(steps, jnp.int32)

    def chunk_fn(c, index):
        with jax.numpy_dtype_promotion("standard"):
            return _train_chunk(c, index, fixed, data, key, steps_arr, optimizer=optimizer, chunk=chunk,
                                batch_size=batch_size, **static)

    fp = None
    if checkpoint_dir is not None:
        config = static["config"]
        fp = {"objective": static["objective"], "level": static["level"], "weights": static["weights"],
              "config": repr(config), "steps": steps, "chunk": chunk, "batch_size": batch_size,
              "data_shape": list(data.shape), "key": np.asarray(jax.random.key_data(key)).tolist(),
              **(fingerprint or {})}
    (trainable, _), losses = run_chunks(chunk_fn, carry, n_chunks=n_chunks, directory=checkpoint_dir,
                                        save_every=save_every, fingerprint=fp, desc=desc, show_progress=show_progress)
    return trainable, jnp.asarray(np.asarray(losses).reshape(-1)[:steps])


def _default_chunk(chunk_steps, save_every):
    """Steps per compiled chunk and chunks per checkpoint: one step per program on CPU (an unrolled
    chunk compiles for each step, and the dispatch of a step is cheap next to its work), 100 elsewhere;
    a checkpoint every 200 steps."""
    if chunk_steps is None:
        chunk_steps = 1 if jax.default_backend() == "cpu" else 100
    chunk_steps = check_int("chunk_steps", chunk_steps, min_value=1)
    if save_every is None:
        save_every = max(1, 200 // chunk_steps)
    return chunk_steps, check_int("save_every", save_every, min_value=1)


def _check_training(optimizer, steps, batch_size):
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer: expected an optax.GradientTransformation, got {type(optimizer).__name__}")
    return check_int("steps", steps, min_value=1), check_int("batch_size", batch_size, min_value=1)


_TRAINING_DOC = """
      key: a typed PRNG key (``jax.random.key``); step ``i`` draws its minibatch from ``fold_in(key, i)``.
      optimizer: an optax transformation, e.g. ``optax.sgd(1e-2, momentum=0.9)`` or ``optax.adam(3e-3)``;
        pass the same object again to reuse the compiled program.
      steps, batch_size: optimizer steps and minibatch size (drawn with replacement).
      chunk_steps: steps per compiled chunk (the progress bar moves between chunks; default 1 on
        CPU, where a chunk is unrolled, else 100).
      checkpoint_dir: save orbax checkpoints there every ``save_every`` chunks (default: every
        200 steps); a run started
        again with the same arguments resumes from the latest one and ends with the same result.
      fingerprint: extra JSON-able arguments checked on resume (e.g. the data's description).
      show_progress: force the tqdm bar on or off (default: on when stderr is a terminal).
"""


def train_layer(params: AutoencoderParams, inputs, level: int, config: AutoencoderConfig, *, key, optimizer, steps: int,
                batch_size: int = 100, chunk_steps: int | None = None, checkpoint_dir=None, save_every: int | None = None,
                fingerprint=None, show_progress=None):
    """Train layer ``level`` alone to reconstruct its input; every other layer stays frozen.

    Args:
      inputs: ``h^level`` for the training set, ``(N, H, W, C_level)`` (images at level 0;
        codes of the frozen lower layers above, e.g. from :func:`encode_all`).
    {doc}
    Returns:
      ``(params, losses)`` with ``losses`` ``(steps,)`` the minibatch MSEs.
    """
    _check_config(config)
    steps, batch_size = _check_training(optimizer, steps, batch_size)
    chunk_steps, save_every = _default_chunk(chunk_steps, save_every)
    check_key("key", key, allow_raw=False)
    level = check_int("level", level, min_value=0, max_value=config.n_layers - 1)
    inputs = _check_input("inputs", inputs, config, level, scale=2)
    if inputs.ndim != 4:
        raise ValueError(f"inputs: expected (N, H, W, C), got shape {tuple(inputs.shape)}")
    layer, losses = _fit(params.layers[level], params, inputs, key=key, optimizer=optimizer, steps=steps,
                         batch_size=batch_size, chunk_steps=chunk_steps, checkpoint_dir=checkpoint_dir,
                         save_every=save_every, fingerprint=fingerprint, desc=f"layer {level + 1}",
                         show_progress=show_progress, objective="layer", config=config, level=level, weights=None)
    return params._replace(layers=params.layers[:level] + (layer,) + params.layers[level + 1 :]), losses


def fine_tune(params: AutoencoderParams, images, config: AutoencoderConfig, *, key, optimizer, steps: int,
              batch_size: int = 100, weights=None, chunk_steps: int | None = None, checkpoint_dir=None, save_every: int | None = None,
              fingerprint=None, show_progress=None):
    """Train all layers end to end on :func:`stack_loss` (default weights 1 at every level).

    Args:
      images: ``(N, H, W, C)``.
      weights: one loss weight per level (default all 1: the source's "double objective").
    {doc}
    Returns:
      ``(params, losses)``.
    """
    _check_config(config)
    steps, batch_size = _check_training(optimizer, steps, batch_size)
    chunk_steps, save_every = _default_chunk(chunk_steps, save_every)
    check_key("key", key, allow_raw=False)
    images = _check_input("images", images, config, 0, scale=2**config.n_layers)
    weights = (1.0,) * config.n_layers if weights is None else tuple(float(check_nonnegative("weights", w)) for w in weights)
    if len(weights) != config.n_layers:
        raise ValueError(f"weights: expected {config.n_layers} values (one per level), got {len(weights)}")
    layers, losses = _fit(params.layers, params, images, key=key, optimizer=optimizer, steps=steps,
                          batch_size=batch_size, chunk_steps=chunk_steps, checkpoint_dir=checkpoint_dir,
                          save_every=save_every, fingerprint=fingerprint, desc="fine-tune",
                          show_progress=show_progress, objective="stack", config=config, level=None, weights=weights)
    return params._replace(layers=layers), losses


train_layer.__doc__ = train_layer.__doc__.replace("    {doc}\n", _TRAINING_DOC)
fine_tune.__doc__ = fine_tune.__doc__.replace("    {doc}\n", _TRAINING_DOC)


class GreedyHistory(NamedTuple):
    """Minibatch losses of greedy training: one array per layer stage, then the fine-tuning stage (or None)."""

    layer_losses: tuple
    finetune_losses: object


def train_greedy(params, images, config, *, key, optimizer, steps_per_layer: int, finetune_steps: int = 0,
                 batch_size: int = 100, finetune_optimizer=None, chunk_steps: int | None = None, checkpoint_dir=None,
                 save_every: int | None = None, fingerprint=None, show_progress=None):
    """Greedy stacking as in the source: train layer 0 on images; freeze it and train layer 1 on its
    codes; ...; then optionally fine-tune all layers end to end (:func:`fine_tune`).

    With ``checkpoint_dir`` each stage checkpoints into its own subfolder (``layer1``, ...,
    ``finetune``), and a run started again resumes where it stopped.

    Returns:
      ``(params, GreedyHistory)``.
    """
    from pathlib import Path

    _check_config(config)
    finetune_steps = check_int("finetune_steps", finetune_steps, min_value=0)
    images = _check_input("images", images, config, 0, scale=2**config.n_layers)
    check_key("key", key, allow_raw=False)
    keys = jax.random.split(key, config.n_layers + 1)
    sub = (lambda name: None) if checkpoint_dir is None else (lambda name: Path(checkpoint_dir) / name)
    common = dict(batch_size=batch_size, chunk_steps=chunk_steps, save_every=save_every, fingerprint=fingerprint,
                  show_progress=show_progress)
    h, history = images, []
    for level in range(config.n_layers):
        params, losses = train_layer(params, h, level, config, key=keys[level], optimizer=optimizer, steps=steps_per_layer,
                                     checkpoint_dir=sub(f"layer{level + 1}"), **common)
        history.append(losses)
        if level + 1 < config.n_layers:
            h = encode(params, h, level, config)
    ft = None
    if finetune_steps:
        params, ft = fine_tune(params, images, config, key=keys[-1], optimizer=finetune_optimizer or optimizer,
                               steps=finetune_steps, checkpoint_dir=sub("finetune"), **common)
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
    # mode="nearest": scipy >= 1.6's default "constant" mode leaves zeros along the last rows/columns at zoom 1/2
    n, h, w, c = x.shape
    planes = x.transpose(0, 3, 1, 2).reshape(n * c, h, w)
    up = np.empty_like(planes)
    for i, plane in enumerate(planes):  # 2-D zooms: a 4-D zoom would interpolate along batch and channels too
        small = ndimage.zoom(plane, 1 / factor, order=3, mode="nearest")
        up[i] = ndimage.zoom(small, factor, order=3, mode="nearest")
    up = up.reshape(n, c, h, w).transpose(0, 2, 3, 1)
    return np.clip(up, 0.0, 1.0)
