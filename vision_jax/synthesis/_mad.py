"""Maximum differentiation (MAD) competition between two image metrics.

Starting from ``image`` plus Gaussian noise, push one metric (``optimized_metric``) to its
minimum or maximum distance from ``image`` while holding the other (``reference_metric``) at
its starting value. Objective (plenoptic's ``MADCompetition``)::

    sign * opt(image, x) + metric_tradeoff_lambda * (ref(image, x) - ref(image, x0))^2
        + penalty_lambda * range_penalty(x)

with ``sign`` +1 for ``"min"`` and -1 for ``"max"``. Optimisation, stopping, batching, resuming
and storing are those of :func:`vision_jax.synthesis.metamer`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vision_jax._checks import check_array, check_callable, check_choice, check_int, check_nonnegative
from vision_jax.synthesis._metamer import (
    MetamerState,
    check_descent_arguments,
    descent_chunk,
    drive_chunks,
    range_penalty,
)

__all__ = ["MADResult", "mad_competition"]


class MADResult(NamedTuple):
    images: jax.Array  # (B, H, W, C) synthesised images
    losses: jax.Array  # (B, max_iter) objective, NaN after the last iteration
    n_iter: jax.Array  # (B,)
    optimized_metric: jax.Array  # (B,) opt(image, x) at the end
    reference_metric: jax.Array  # (B,) ref(image, x) at the end
    reference_target: jax.Array  # (B,) ref(image, x0), the value held fixed
    metric_tradeoff_lambda: float
    stored: jax.Array  # (B, n_store, H, W, C)
    state: MetamerState


@lru_cache(maxsize=16)
def _compiled_mad(optimized_metric, reference_metric, sign, tradeoff, penalty_lambda, allowed_range,
                  stop_iters_to_check, stop_criterion, store_every, n_store, optimizer):
    def loss_fn(x, aux):
        image, ref_target = aux
        opt = optimized_metric(image[None], x[None])
        ref = reference_metric(image[None], x[None])
        return (sign * opt + tradeoff * (ref - ref_target) ** 2
                + penalty_lambda * range_penalty(x, allowed_range)).astype(x.dtype)

    return descent_chunk(loss_fn, optimizer, stop_iters_to_check, stop_criterion, store_every, n_store)


def mad_competition(
    image,
    optimized_metric: Callable,
    reference_metric: Callable,
    minmax: str,
    *,
    key=None,
    initial=None,
    initial_noise=0.1,
    n_images: int = 1,
    metric_tradeoff_lambda=None,
    optimizer: optax.GradientTransformation | None = None,
    max_iter: int = 100,
    stop_criterion=1e-4,
    stop_iters_to_check: int = 50,
    penalty_lambda=0.1,
    allowed_range=(0.0, 1.0),
    store_every: int | None = None,
    chunk_size: int = 50,
    state: MetamerState | None = None,
    show_progress: bool | None = None,
) -> MADResult:
    """MAD competition images for ``image``.

    Args:
      image: reference image ``(H, W, C)``.
      optimized_metric, reference_metric: pure ``metric(a, b) -> scalar`` on ``(1, H, W, C)``
        batches (a distance: 0 when ``a == b``).
      minmax: ``"min"`` or ``"max"``: the direction in which ``optimized_metric`` is pushed.
      key: PRNG key for the starting noise (and the automatic trade-off).
      initial: starting images ``(B, H, W, C)``; default ``image + initial_noise * N(0, 1)``,
        ``n_images`` of them (not clipped, as in plenoptic).
      metric_tradeoff_lambda: weight of the reference-metric constraint; default (plenoptic's
        rule) ``10 ** round(log10(opt(image, u) / ref(image, u)))`` for uniform noise ``u``.
      optimizer, max_iter, stop_criterion, stop_iters_to_check, penalty_lambda, allowed_range,
        store_every, chunk_size, state, show_progress: as in :func:`metamer`.

    Returns:
      :class:`MADResult`.
    """
    check_callable("optimized_metric", optimized_metric)
    check_callable("reference_metric", reference_metric)
    image = check_array("image", image, ndim=3)
    check_choice("minmax", minmax, ("min", "max"))
    max_iter = check_int("max_iter", max_iter, min_value=1)
    n_images = check_int("n_images", n_images, min_value=1)
    (stop_iters_to_check, chunk_size, (lo, hi), optimizer, store_every, n_store) = check_descent_arguments(
        max_iter, stop_iters_to_check, chunk_size, stop_criterion, penalty_lambda, allowed_range, optimizer, store_every)
    check_nonnegative("initial_noise", initial_noise)
    if (initial is None or metric_tradeoff_lambda is None) and state is None and key is None:
        raise ValueError("key: give a PRNG key (or initial images and metric_tradeoff_lambda)")
    key = jax.random.key(0) if key is None else key
    k_noise, k_lambda = jax.random.split(key)

    def metric_value(fn, a, b, name):
        v = fn(a[None], b[None])
        if jnp.ndim(v) != 0 and jnp.size(v) != 1:
            raise ValueError(f"{name}: expected a scalar distance, got shape {tuple(jnp.shape(v))}")
        return jnp.reshape(v, ())

    if metric_tradeoff_lambda is None:
        other = jax.random.uniform(k_lambda, image.shape, image.dtype)
        ratio = float(metric_value(optimized_metric, image, other, "optimized_metric")
                      / metric_value(reference_metric, image, other, "reference_metric"))
        if not np.isfinite(ratio) or ratio <= 0:
            raise ValueError(f"metric_tradeoff_lambda: cannot be chosen automatically (metric ratio {ratio}); give it")
        metric_tradeoff_lambda = float(10.0 ** np.round(np.log10(ratio)))
    else:
        check_nonnegative("metric_tradeoff_lambda", metric_tradeoff_lambda)
        metric_tradeoff_lambda = float(metric_tradeoff_lambda)

    if state is None:
        if initial is None:
            initial = image[None] + initial_noise * jax.random.normal(k_noise, (n_images,) + image.shape, image.dtype)
        initial = check_array("initial", initial, ndim=(3, 4))
        if initial.ndim == 3:
            initial = initial[None]
        if initial.shape[1:] != image.shape:
            raise ValueError(f"initial: expected images of shape {tuple(image.shape)} like image, got {tuple(initial.shape)}")
        initial = initial.astype(image.dtype)
        B = initial.shape[0]
        state = MetamerState(
            image=initial,
            opt_state=jax.vmap(optimizer.init)(initial),
            losses=jnp.full((B, max_iter), jnp.nan, image.dtype),
            n_iter=jnp.zeros((B,), jnp.int32),
            done=jnp.zeros((B,), bool),
            stored=jnp.zeros((B, n_store) + image.shape, image.dtype),
        )
        start_images = initial
    else:
        if state.losses.shape[1] < max_iter:
            pad = max_iter - state.losses.shape[1]
            state = state._replace(losses=jnp.pad(state.losses, ((0, 0), (0, pad)), constant_values=jnp.nan))
        if initial is None:
            raise ValueError("initial: give the starting images of the run being resumed (result.state plus initial)")
        start_images = check_array("initial", initial, ndim=4)

    B = state.image.shape[0]
    ref_fn = jax.vmap(lambda x: metric_value(reference_metric, image, x, "reference_metric"))
    opt_fn = jax.vmap(lambda x: metric_value(optimized_metric, image, x, "optimized_metric"))
    ref_target = ref_fn(start_images).astype(image.dtype)
    if not bool(jnp.all(jnp.isfinite(ref_target))):
        raise ValueError("reference_metric: returned non-finite values at the starting images")
    aux = (jnp.broadcast_to(image, (B,) + image.shape), ref_target)

    run = _compiled_mad(optimized_metric, reference_metric, 1.0 if minmax == "min" else -1.0, metric_tradeoff_lambda,
                        float(penalty_lambda), (float(lo), float(hi)), stop_iters_to_check, float(stop_criterion),
                        store_every, n_store, optimizer)
    state = drive_chunks(run, state, aux, max_iter=max_iter, chunk_size=chunk_size, store_every=store_every,
                         show_progress=show_progress, desc="MAD image")
    return MADResult(state.image, state.losses, state.n_iter, opt_fn(state.image), ref_fn(state.image), ref_target,
                     metric_tradeoff_lambda, state.stored, state)
