"""A video feedback process across the layers of an autoencoder (depth acts like another spatial dimension).

State: one image-shaped array per layer, ``h^l`` ``(H / 2^l, W / 2^l, C_l)``, values in [-1, 1],
edges wrapping around (a torus). One frame of the source program's default transition::

    h_t^l = tblur * h_{t-1}^l + (1 - tblur) * tanh(fb * 0.5 * (B(gamma_{l-1}(h_{t-1}^{l-1})) + B(gamma_l^{-1}(h_{t-1}^{l+1}))))

with ``B`` the 5-tap blur (centre 1/2, four neighbours 1/8 each) on the layer's grid; at the
bottom layer the encoded term is replaced by the layer's own state, at the top layer the decoded
term is. With ``schedule="hierarchical"`` layer ``l`` is updated only on frames ``t`` with
``t % 2**l == 0``; every update reads the previous frame's state. ``fb`` and ``tblur`` may be
scalars or spatial maps ``(H, W)`` (mean-pooled to each layer's grid). The bottom layer is the
visible frame (:func:`render_frames` maps it to [0, 1]).
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vision_jax._checks import check_array, check_choice, check_int
from vision_jax.autoencoder._model import (
    AutoencoderConfig,
    AutoencoderParams,
    _check_config,
    decode_layer,
    draw_flat,
    encode_layer,
    layer_channels,
)

__all__ = ["FeedbackState", "feedback_process", "run_feedback", "render_frames", "blur5", "SCHEDULES"]

SCHEDULES = ("hierarchical", "every_frame")


class FeedbackState(NamedTuple):
    """``layers``: tuple of ``(H / 2^l, W / 2^l, C_l)`` arrays for ``l = 0 .. L``; ``frame``: int32 frame counter."""

    layers: tuple
    frame: jax.Array


def blur5(x):
    """The 5-tap wrap-around blur ``B`` on ``(H, W, C)``: centre 1/2, four neighbours 1/8 each."""
    s = jnp.roll(x, 1, -3) + jnp.roll(x, -1, -3) + jnp.roll(x, 1, -2) + jnp.roll(x, -1, -2)
    return 0.5 * x + 0.125 * s


def _check_map(name, value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    arr = check_array(name, value, ndim=(0, 2))
    return arr


def _layer_map(value, level: int, dtype):
    """Scalar, or an (H, W) map mean-pooled by 2**level to ``(H_l, W_l, 1)``."""
    if isinstance(value, float) or value.ndim == 0:
        return value if isinstance(value, float) else value.astype(dtype)
    f = 2**level
    h, w = value.shape
    m = value.astype(dtype).reshape(h // f, f, w // f, f).mean(axis=(1, 3))
    return m[:, :, None]


def _due(schedule: str, frame, level: int):
    """Whether layer ``level`` is updated on ``frame`` (a traced int32), or True when always."""
    if level == 0 or schedule == "every_frame":
        return True
    return frame % (2**level) == 0


def _enc(params, config, hs, level):
    return encode_layer(params.layers[level], hs[level], pooling=config.pooling[level],
                        activation=config.activation[level], padding="circular")


def _dec(params, config, hs, level):
    return decode_layer(params.layers[level], hs[level + 1], activation=config.activation[level], padding="circular")


def _mix(h, up, down, f, t):
    drive = jnp.tanh(f * 0.5 * blur5(up + down))  # B is linear: B(up) + B(down) = B(up + down)
    return t * h + (1 - t) * drive


def _transition(params: AutoencoderParams, config: AutoencoderConfig, fb, tblur, schedule: str, state: FeedbackState) -> FeedbackState:
    hs = state.layers
    top = config.n_layers

    def update(level):
        up = hs[0] if level == 0 else _enc(params, config, hs, level - 1)
        down = hs[top] if level == top else _dec(params, config, hs, level)
        return _mix(hs[level], up, down, _layer_map(fb, level, hs[level].dtype), _layer_map(tblur, level, hs[level].dtype))

    new = []
    for level in range(top + 1):
        due = _due(schedule, state.frame, level)
        new.append(update(level) if due is True else lax.cond(due, lambda lv=level: update(lv), lambda lv=level: hs[lv]))
    return FeedbackState(tuple(new), state.frame + 1)


def _cached_transition(params, config, fbs, tblurs, schedule, carry):
    """:func:`_transition` carrying the decoded maps ``decode_l(h^{l+1})``: each is recomputed only
    on the frame after ``h^{l+1}`` changed (the lower layers read it 2**(l+1) times per change)."""
    state, decoded = carry
    hs = state.layers
    top = config.n_layers

    def update(level):
        up = hs[0] if level == 0 else _enc(params, config, hs, level - 1)
        down = hs[top] if level == top else decoded[level]
        return _mix(hs[level], up, down, fbs[level], tblurs[level])

    new, dues = [], []
    for level in range(top + 1):
        due = _due(schedule, state.frame, level)
        dues.append(due)
        new.append(update(level) if due is True else lax.cond(due, lambda lv=level: update(lv), lambda lv=level: hs[lv]))
    new = tuple(new)
    fresh = []
    for level in range(top):
        due = dues[level + 1]
        fresh.append(_dec(params, config, new, level) if due is True else
                     lax.cond(due, lambda lv=level: _dec(params, config, new, lv), lambda lv=level: decoded[lv]))
    return FeedbackState(new, state.frame + 1), tuple(fresh)


def feedback_process(params: AutoencoderParams, config: AutoencoderConfig, *, fb=1.333, tblur=0.5, schedule: str = "hierarchical"):
    """The feedback process as an ``(init_fn, step_fn)`` pair; ``step_fn`` is exactly a ``lax.scan`` body.

    Args:
      params: learned (:func:`~vision_jax.autoencoder.train_greedy`) or random
        (:func:`~vision_jax.autoencoder.random_feedback_params`) weights; the data mean is not used
        (the process runs on bipolar values).
      config: the architecture.
      fb: feedback gain, a scalar or an ``(H, W)`` map (default 1.333).
      tblur: temporal mixing in [0, 1], a scalar or an ``(H, W)`` map (default 0.5).
      schedule: ``"hierarchical"`` (layer l every 2**l frames) or ``"every_frame"``.

    Returns:
      ``init_fn(key, height, width, *, kind="uniform", dtype=float32) -> FeedbackState`` (random
      values in [-1, 1]; ``kind="binary"`` gives -1/+1), and ``step_fn(state) -> state``.
    """
    _check_config(config)
    if not isinstance(params, AutoencoderParams):
        raise TypeError(f"params: expected AutoencoderParams, got {type(params).__name__}")
    if len(params.layers) != config.n_layers:
        raise ValueError(f"params: expected {config.n_layers} layers for this config, got {len(params.layers)}")
    check_choice("schedule", schedule, SCHEDULES)
    fb, tblur = _check_map("fb", fb), _check_map("tblur", tblur)
    if isinstance(tblur, float) and not 0 <= tblur <= 1:
        raise ValueError(f"tblur: expected a number in [0, 1], got {tblur!r}")
    chans = layer_channels(config)
    scale = 2**config.n_layers

    def init_fn(key, height: int, width: int, *, kind: str = "uniform", dtype=jnp.float32) -> FeedbackState:
        height = check_int("height", height, min_value=1)
        width = check_int("width", width, min_value=1)
        check_choice("kind", kind, ("uniform", "binary"))
        if height % scale or width % scale:
            raise ValueError(f"height, width: expected multiples of 2**levels = {scale}, got {height}x{width}")
        for name, m in (("fb", fb), ("tblur", tblur)):
            if not isinstance(m, float) and m.ndim == 2 and m.shape != (height, width):
                raise ValueError(f"{name}: expected a map of shape ({height}, {width}), got {tuple(m.shape)}")
        shapes = [(height >> level, width >> level, c) for level, c in enumerate(chans)]
        flat = draw_flat(key, sum(int(np.prod(sh)) for sh in shapes), "uniform", dtype)  # one draw for all layers
        if kind == "binary":
            flat = np.where(flat >= 0, 1.0, -1.0)
        layers, i = [], 0
        for sh in shapes:
            size = int(np.prod(sh))
            layers.append(jnp.asarray(flat[i : i + size].reshape(sh), dtype))
            i += size
        return FeedbackState(tuple(layers), jnp.asarray(np.int32(0)))

    step_fn = partial(_transition, params, config, fb, tblur, schedule)
    return init_fn, step_fn


def _check_state(state, config):
    if not isinstance(state, FeedbackState):
        raise TypeError(f"state: expected a FeedbackState, got {type(state).__name__}")
    chans = layer_channels(config)
    if len(state.layers) != len(chans):
        raise ValueError(f"state: expected {len(chans)} layers (0 .. {config.n_layers}), got {len(state.layers)}")
    h0 = state.layers[0].shape
    for level, (x, c) in enumerate(zip(state.layers, chans)):
        want = (h0[0] >> level, h0[1] >> level, c)
        if tuple(x.shape) != want or h0[0] % 2**config.n_layers or h0[1] % 2**config.n_layers:
            raise ValueError(
                f"state: expected layer {level} of shape {want} (base size divisible by {2**config.n_layers}), got {tuple(x.shape)}"
            )


@partial(jax.jit, static_argnames=("config", "schedule"))
def _start(params, state, *, config, schedule):
    return state, tuple(_dec(params, config, state.layers, level) for level in range(config.n_layers))


@partial(jax.jit, static_argnames=("config", "n", "schedule"))
def _block(params, carry, fb, tblur, n_valid, *, config, n, schedule):
    """``n`` frames, unrolled (XLA:CPU runs convolutions inside a loop body several times slower),
    returning every visible frame; frames from ``n_valid`` on leave the carry unchanged."""
    dtype = carry[0].layers[0].dtype
    fbs, tblurs = (tuple(_layer_map(m, level, dtype) for level in range(config.n_layers + 1)) for m in (fb, tblur))
    step_fn = partial(_cached_transition, params, config, fbs, tblurs, schedule)

    def frame(c, i):
        c = jax.tree.map(lambda a, b: jnp.where(i < n_valid, a, b), step_fn(c), c)
        return c, c[0].layers[0]

    if jax.default_backend() != "cpu":
        return lax.scan(frame, carry, jnp.arange(n))
    frames = []
    for i in range(n):  # unrolled in the program: no loop body
        carry, f = frame(carry, i)
        frames.append(f)
    return carry, jnp.stack(frames)


def _run(params, state, fb, tblur, *, config, n_frames, record_every, schedule, block_frames):
    """Blocks of compiled frames driven from Python: one program per config, shapes and block size."""
    carry = _start(params, state, config=config, schedule=schedule)
    frames, done = [], 0
    while done < n_frames:
        n_valid = min(n_frames - done, block_frames)
        carry, out = _block(params, carry, fb, tblur, np.int32(n_valid), config=config, n=block_frames, schedule=schedule)
        keep = [i for i in range(n_valid) if (done + i + 1) % record_every == 0]
        if keep:
            frames.append(out[keep[0] : keep[-1] + 1 : record_every])
        done += n_valid
    return carry[0], (frames[0] if len(frames) == 1 else jnp.concatenate(frames))


def run_feedback(params, config, state: FeedbackState, n_frames: int, *, fb=1.333, tblur=0.5, schedule: str = "hierarchical",
                 record_every: int = 1, block_frames: int = 4):
    """Run ``n_frames`` frames from ``state``: compiled blocks of ``block_frames`` frames (an unrolled
    ``lax.scan`` of the step), each decoded map recomputed only after its layer changed.

    Args:
      state: from ``init_fn`` of :func:`feedback_process` (or any state of matching shapes).
      n_frames: number of transitions, a multiple of ``record_every``.
      record_every: keep the visible frame every this many frames.
      block_frames: frames per compiled block (every run with the same block size shares one
        program; larger blocks compile longer).

    Returns:
      ``(final_state, frames)`` with ``frames`` ``(n_frames // record_every, H, W, C_0)`` the bottom layer, in [-1, 1].
    """
    feedback_process(params, config, fb=fb, tblur=tblur, schedule=schedule)  # argument checks
    _check_state(state, config)
    n_frames = check_int("n_frames", n_frames, min_value=1)
    record_every = check_int("record_every", record_every, min_value=1)
    if n_frames % record_every:
        raise ValueError(f"n_frames: expected a multiple of record_every={record_every}, got {n_frames}")
    fb, tblur = _check_map("fb", fb), _check_map("tblur", tblur)
    h, w = state.layers[0].shape[:2]
    for name, m in (("fb", fb), ("tblur", tblur)):
        if not isinstance(m, float) and m.ndim == 2 and m.shape != (h, w):
            raise ValueError(f"{name}: expected a map of shape ({h}, {w}), got {tuple(m.shape)}")
    # scalars become maps, so that every setting shares one compiled program
    dtype = state.layers[0].dtype
    fb, tblur = (jnp.asarray(np.broadcast_to(np.asarray(m, dtype), (h, w))) for m in (fb, tblur))
    block_frames = check_int("block_frames", block_frames, min_value=1)
    return _run(params, state, fb, tblur, config=config, n_frames=n_frames, record_every=record_every, schedule=schedule,
                block_frames=block_frames)


def render_frames(frames) -> np.ndarray:
    """Bipolar frames (values in [-1, 1]) to [0, 1] numpy images for display or :func:`vision_jax.plot.save_animation`."""
    return np.clip((np.asarray(frames, np.float64) + 1.0) / 2.0, 0.0, 1.0)
