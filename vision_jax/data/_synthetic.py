"""Natural-like images without limit: 1/f ("pink") noise and dead leaves."""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from vision_jax._checks import check_int, check_positive, check_real

__all__ = ["pink_noise", "dead_leaves"]


def _check_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, int):
        shape = (shape, shape)
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"shape: expected (..., H, W) with at least 2 entries, got {shape}")
    for i, s in enumerate(shape):
        check_int(f"shape[{i}]", s, min_value=1)
    return shape


@partial(jax.jit, static_argnames=("shape", "dtype"))
def _pink_noise(key, exponent, shape, dtype):
    H, W = shape[-2:]
    fy = jnp.fft.fftfreq(H, dtype=dtype)[:, None]
    fx = jnp.fft.rfftfreq(W, dtype=dtype)[None, :]
    f = jnp.sqrt(fy**2 + fx**2)
    amplitude = jnp.where(f > 0, 1.0 / jnp.where(f > 0, f, 1.0) ** exponent, 0.0).astype(dtype)
    white = jax.random.normal(key, shape, dtype)
    spectrum = jnp.fft.rfft2(white)
    spectrum = spectrum * amplitude.astype(spectrum.dtype).reshape((1,) * (len(shape) - 2) + amplitude.shape)
    img = jnp.fft.irfft2(spectrum, s=(H, W)).astype(dtype)
    img = img - jnp.mean(img, axis=(-2, -1), keepdims=True)
    return img / jnp.std(img, axis=(-2, -1), keepdims=True)


def pink_noise(key, shape, *, exponent=1.0, dtype=jnp.float32) -> jax.Array:
    """Gaussian noise with a ``1 / f**exponent`` amplitude spectrum (natural images: exponent ~ 1).

    Args:
      key: PRNG key.
      shape: ``(H, W)`` or ``(..., H, W)`` (an int means square).
      exponent: spectral slope of the amplitude (0 = white noise).

    Returns:
      Array of ``shape``, each image with zero mean and unit standard deviation.
    """
    shape = _check_shape(shape)
    check_real("exponent", exponent)
    return _pink_noise(key, jnp.asarray(exponent, dtype), shape, jnp.dtype(dtype))


@partial(jax.jit, static_argnames=("shape", "n_disks", "dtype"))
def _dead_leaves(key, r_min, r_max, shape, n_disks, dtype):
    H, W = shape
    k_r, k_y, k_x, k_v, k_b = jax.random.split(key, 5)
    # Radii with density ~ r^-3 on [r_min, r_max] (scale invariance), by inverse CDF.
    u = jax.random.uniform(k_r, (n_disks,), dtype)
    radii = (r_min**-2 - u * (r_min**-2 - r_max**-2)) ** -0.5
    cy = jax.random.uniform(k_y, (n_disks,), dtype, -r_max, H + r_max)
    cx = jax.random.uniform(k_x, (n_disks,), dtype, -r_max, W + r_max)
    values = jax.random.uniform(k_v, (n_disks,), dtype)
    yy = jnp.arange(H, dtype=dtype)[:, None]
    xx = jnp.arange(W, dtype=dtype)[None, :]
    background = jnp.full((H, W), jax.random.uniform(k_b, (), dtype), dtype)

    def paint(img, disk):
        r, y, x, v = disk
        inside = (yy - y) ** 2 + (xx - x) ** 2 <= r**2
        return jnp.where(inside, v, img), None

    # Later disks are painted over earlier ones (they lie in front).
    img, _ = lax.scan(paint, background, (radii, cy, cx, values))
    return img


def dead_leaves(key, shape, *, n_disks: int = 2000, r_min=1.0, r_max=None, dtype=jnp.float32) -> jax.Array:
    """A dead-leaves image: occluding disks of uniform random grey level in [0, 1].

    Radii follow a ``1 / r**3`` density between ``r_min`` and ``r_max`` (pixels), which gives
    the scale invariance and 1/f-like spectrum of natural scenes.

    Args:
      key: PRNG key.
      shape: ``(H, W)`` (an int means square).
      n_disks: number of disks painted (more disks, fewer gaps to the background).
      r_min, r_max: radius range in pixels (default ``r_max = min(H, W) / 4``).

    Returns:
      ``(H, W)`` array in [0, 1]; vmap over keys for a batch.
    """
    shape = _check_shape(shape)
    if len(shape) != 2:
        raise ValueError(f"shape: expected (H, W), got {shape}; vmap over keys for a batch")
    n_disks = check_int("n_disks", n_disks, min_value=1)
    if r_max is None:
        r_max = min(shape) / 4
    check_positive("r_min", r_min, unit="pixels")
    check_positive("r_max", r_max, unit="pixels")
    if not float(r_max) > float(r_min):
        raise ValueError(f"r_max: expected a radius larger than r_min={r_min}, got {r_max}")
    return _dead_leaves(key, jnp.asarray(r_min, dtype), jnp.asarray(r_max, dtype), shape, n_disks, jnp.dtype(dtype))
