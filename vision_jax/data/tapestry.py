"""Digit tapestries and moving windows over them, for temporal invariance learning.

- :func:`make_tapestry`: a ``grid x grid`` mosaic of 28x28 digits whose last row and column
  repeat the first, so that a window sliding off one edge continues on the other (period
  ``(grid - 1) * 28`` pixels).
- :func:`random_walk_frames`: a window moving over it with a random acceleration redrawn every
  ``redraw_every`` steps and a speed capped at ``max_speed`` pixels per step (``lax.scan``).
- :func:`ribbon_frames`: a window sliding one pixel at a time along a row of digits.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vision_jax._checks import check_array, check_int, check_positive

__all__ = ["make_tapestry", "tapestry_period", "random_walk_frames", "ribbon_frames"]


def _digit_stack(key, digits, n: int) -> np.ndarray:
    if digits is None:
        from vision_jax.data._natural import load_digits

        digits = load_digits()[0]
    digits = np.asarray(digits)
    if digits.ndim != 3:
        raise ValueError(f"digits: expected (n, h, w) images, got shape {digits.shape}")
    if digits.shape[0] < 1:
        raise ValueError("digits: expected at least one digit, got none")
    order = np.asarray(jax.random.permutation(key, digits.shape[0]))
    order = np.resize(order, n)  # repeats the permutation when there are fewer digits than cells
    out = digits[order].astype(np.float64)
    return out / 255.0 if digits.dtype == np.uint8 else out


def make_tapestry(key, *, grid: int = 30, digits=None, dtype=np.float32) -> np.ndarray:
    """A wrapping mosaic of digits.

    Args:
      key: PRNG key choosing (and shuffling) the digits.
      grid: cells per side (>= 2); ``(grid - 1)**2`` distinct digits, the last row/column repeat the first.
      digits: ``(n, h, w)`` images (uint8 are scaled to [0, 1]); default: the embedded MNIST digits.

    Returns:
      ``(grid * h, grid * w)`` array with values in [0, 1].
    """
    grid = check_int("grid", grid, min_value=2)
    cells = _digit_stack(key, digits, (grid - 1) ** 2)
    h, w = cells.shape[1:]
    g = grid - 1
    mosaic = cells.reshape(g, g, h, w).transpose(0, 2, 1, 3).reshape(g * h, g * w)
    mosaic = np.concatenate([mosaic, mosaic[:h]], axis=0)
    mosaic = np.concatenate([mosaic, mosaic[:, :w]], axis=1)
    return mosaic.astype(dtype)


def tapestry_period(tapestry: np.ndarray, cell: int = 28) -> int:
    """Wrap-around period in pixels of a tapestry from :func:`make_tapestry`."""
    return tapestry.shape[0] - cell


@partial(jax.jit, static_argnames=("n_frames", "window", "redraw_every", "period"))
def _walk(key, tapestry, max_speed, n_frames, window, redraw_every, period):
    dtype = tapestry.dtype
    start = jnp.full((2,), period / 2, dtype)
    keys = jax.random.split(key, -(-n_frames // redraw_every))

    def step(carry, t):
        pos, vel, acc = carry
        acc = jnp.where(t % redraw_every == 0, jax.random.uniform(keys[t // redraw_every], (2,), dtype, -1.0, 1.0), acc)
        corner = jnp.floor(pos).astype(jnp.int32) % period
        frame = lax.dynamic_slice(tapestry, (corner[0], corner[1]), (window, window))
        pos = pos + vel
        vel = jnp.clip(vel + acc, -max_speed, max_speed)
        return (pos, vel, acc), (frame.reshape(-1), corner)

    zero = jnp.zeros((2,), dtype)
    _, (frames, corners) = lax.scan(step, (start, zero, zero), jnp.arange(n_frames))
    return frames, corners


def random_walk_frames(key, tapestry, n_frames: int, *, window: int = 20, max_speed=3.0, redraw_every: int = 20,
                       cell: int = 28):
    """Frames of a window moving over a wrapping tapestry.

    The window starts at the centre at rest; every ``redraw_every`` steps a new acceleration is
    drawn uniformly in [-1, 1]^2; each step the position advances by the velocity and the
    velocity by the acceleration, clipped to ``max_speed`` pixels per step per axis.

    Returns:
      ``(frames, corners)``: ``(n_frames, window**2)`` flattened windows and ``(n_frames, 2)``
      int32 top-left corners (row, column) in ``[0, period)``.
    """
    tapestry = check_array("tapestry", tapestry, ndim=2)
    n_frames = check_int("n_frames", n_frames, min_value=1)
    window = check_int("window", window, min_value=1)
    redraw_every = check_int("redraw_every", redraw_every, min_value=1)
    check_positive("max_speed", max_speed, unit="pixels per step")
    period = tapestry.shape[0] - cell
    if tapestry.shape[0] != tapestry.shape[1] or period < 1:
        raise ValueError(f"tapestry: expected a square wrapping tapestry larger than one {cell}-px cell, got shape {tuple(tapestry.shape)}")
    if window > cell:
        raise ValueError(f"window: expected at most the cell size {cell} so that windows stay inside the wrap margin, got {window}")
    return _walk(key, tapestry, jnp.asarray(max_speed, tapestry.dtype), n_frames, window, redraw_every, period)


def ribbon_frames(key, n_digits: int, *, digits=None, window: int = 28, dtype=np.float32) -> np.ndarray:
    """A ``window``-wide window sliding one pixel at a time along ``n_digits`` digits side by side.

    Returns:
      ``(n_digits * w - window + 1, h * window)`` flattened frames.
    """
    n_digits = check_int("n_digits", n_digits, min_value=1)
    window = check_int("window", window, min_value=1)
    cells = _digit_stack(key, digits, n_digits)
    h, w = cells.shape[1:]
    ribbon = cells.transpose(1, 0, 2).reshape(h, n_digits * w)
    if window > ribbon.shape[1]:
        raise ValueError(f"window: expected at most the ribbon width {ribbon.shape[1]}, got {window}")
    frames = np.lib.stride_tricks.sliding_window_view(ribbon, (h, window))[0]
    return frames.reshape(frames.shape[0], -1).astype(dtype)
