"""Metamers: images whose model representation matches a target's, by gradient descent.

Objective (plenoptic's): ``mean((f(x) - f(target))^2) + penalty_lambda * sum(excursion^2)``,
where the excursion is how far pixels fall outside ``allowed_range``. Optimised with optax (Adam
with amsgrad, learning rate 0.01, by default; any optax transformation, L-BFGS included), in
compiled chunks of iterations (``lax.while_loop``) with a progress bar between chunks.
Stopping rule (plenoptic's): after more than ``stop_iters_to_check`` iterations, stop when
``|loss[-stop_iters_to_check] - loss[-1]| < stop_criterion``. A batch of initial images runs as
one vmapped call; each metamer keeps its own loss history and stops on its own.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from vision_jax._checks import check_array, check_callable, check_int, check_nonnegative

__all__ = ["MetamerState", "MetamerResult", "metamer", "range_penalty", "adam_amsgrad"]


class MetamerState(NamedTuple):
    """Everything needed to continue a synthesis (leading axis: the batch)."""

    image: jax.Array  # (B, H, W, C)
    opt_state: Any
    losses: jax.Array  # (B, max_iter), NaN after the last iteration
    n_iter: jax.Array  # (B,) iterations done
    done: jax.Array  # (B,) stopped by the criterion
    stored: jax.Array  # (B, n_store, H, W, C) images every store_every iterations


class MetamerResult(NamedTuple):
    metamers: jax.Array  # (B, H, W, C)
    losses: jax.Array  # (B, max_iter)
    n_iter: jax.Array  # (B,)
    stored: jax.Array  # (B, n_store, H, W, C)
    state: MetamerState


def range_penalty(x, allowed_range=(0.0, 1.0)) -> jax.Array:
    """``sum(min(x - lo, 0)^2 + max(x - hi, 0)^2)`` (a sum, as in plenoptic)."""
    lo, hi = allowed_range
    below, above = jnp.minimum(x - lo, 0).ravel(), jnp.maximum(x - hi, 0).ravel()
    # two dot products: on CPU a reduction of this fused expression cost ~1 ms per 256x256 image
    return jnp.dot(below, below) + jnp.dot(above, above)


class _AmsgradState(NamedTuple):
    count: jax.Array
    mu: Any
    nu: Any
    nu_max: Any


def adam_amsgrad(learning_rate=0.01, b1=0.9, b2=0.999, eps=1e-8) -> optax.GradientTransformation:
    """Adam with amsgrad as PyTorch computes it (plenoptic's default optimizer).

    PyTorch keeps the maximum of the *uncorrected* second moment and divides it by the bias
    correction afterwards; ``optax.amsgrad`` takes the maximum of corrected moments, which
    follows another trajectory in the first iterations.
    """

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return _AmsgradState(jnp.zeros((), jnp.int32), zeros, zeros, zeros)

    def update(grads, state, params=None):
        del params
        count = state.count + 1
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, grads)
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)

        def step(m, vmax):
            t = count.astype(m.dtype)
            return -learning_rate * (m / (1 - b1**t)) / (jnp.sqrt(vmax) / jnp.sqrt(1 - b2**t) + eps)

        return jax.tree.map(step, mu, nu_max), _AmsgradState(count, mu, nu, nu_max)

    return optax.GradientTransformation(init, update)


_DEFAULT_OPTIMIZER = adam_amsgrad(0.01)


@lru_cache(maxsize=16)
def _compiled_chunk(model_fn, optimizer, penalty_lambda, allowed_range, stop_iters_to_check, stop_criterion, store_every, n_store):
    """The vmapped, jitted chunk of iterations for one model and setting (cached across calls)."""

    def loss_fn(x, rep):
        out = model_fn(x[None])
        return jnp.mean((out - rep) ** 2) + penalty_lambda * range_penalty(x, allowed_range)

    return descent_chunk(loss_fn, optimizer, stop_iters_to_check, stop_criterion, store_every, n_store)


def descent_chunk(loss_fn, optimizer, stop_iters_to_check, stop_criterion, store_every, n_store):
    """``run(state, aux, end)``: vmapped, jitted iterations of ``loss_fn(x, aux)`` up to ``end``.

    Each batch element stops on its own by plenoptic's rule; shared by metamers and MAD.
    """
    optimizer = optax.with_extra_args_support(optimizer)

    def one_chunk(s: MetamerState, rep, end):
        def cond(c):
            return (c.n_iter < end) & ~c.done

        def body(c):
            loss, grads = jax.value_and_grad(loss_fn)(c.image, rep)
            updates, opt_state = optimizer.update(grads, c.opt_state, c.image, value=loss, grad=grads,
                                                  value_fn=lambda x: loss_fn(x, rep))
            image = optax.apply_updates(c.image, updates)
            losses = c.losses.at[c.n_iter].set(loss)
            n = c.n_iter + 1
            past = losses[jnp.maximum(n - stop_iters_to_check, 0)]
            done = (n > stop_iters_to_check) & (jnp.abs(past - loss) < stop_criterion)
            done = done | ~jnp.isfinite(loss)
            stored = c.stored
            if store_every is not None:
                slot = jnp.minimum(n // store_every, n_store - 1)
                stored = jnp.where(n % store_every == 0, stored.at[slot].set(image), stored)
            return MetamerState(image, opt_state, losses, n, done, stored)

        return lax.while_loop(cond, body, s)

    batched = jax.jit(jax.vmap(one_chunk, in_axes=(0, 0, None)))

    @jax.jit
    def single(s, rep, end):  # a batch of one runs unbatched: a vmapped loop selects every carry per step
        first = lambda t: jax.tree.map(lambda a: a[0], t)  # noqa: E731
        out = one_chunk(first(s), first(rep), end)
        return jax.tree.map(lambda a: a[None], out)

    def run(s: MetamerState, rep, end):
        return (single if s.image.shape[0] == 1 else batched)(s, rep, end)

    return run


def check_descent_arguments(max_iter, stop_iters_to_check, chunk_size, stop_criterion, penalty_lambda, allowed_range,
                            optimizer, store_every):
    """Checks shared by metamers, coarse-to-fine metamers and MAD competition.

    Returns ``(stop_iters_to_check, chunk_size, (lo, hi), optimizer, store_every, n_store)``.
    """
    stop_iters_to_check = check_int("stop_iters_to_check", stop_iters_to_check, min_value=1)
    chunk_size = check_int("chunk_size", chunk_size, min_value=1)
    check_nonnegative("stop_criterion", stop_criterion)
    check_nonnegative("penalty_lambda", penalty_lambda)
    lo, hi = allowed_range
    if not lo < hi:
        raise ValueError(f"allowed_range: expected (lo, hi) with lo < hi, got {allowed_range}")
    store_every = None if store_every is None else check_int("store_every", store_every, min_value=1)
    n_store = 0 if store_every is None else max_iter // store_every + 1
    return stop_iters_to_check, chunk_size, (lo, hi), optimizer or _DEFAULT_OPTIMIZER, store_every, n_store


def metamer(
    model_fn: Callable,
    target,
    *,
    initial=None,
    key=None,
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
) -> MetamerResult:
    """Synthesise metamers of ``target`` for ``model_fn``.

    Args:
      model_fn: pure function of an NHWC batch ``(1, H, W, C)`` returning any array.
      target: ``(H, W, C)`` image or ``(B, H, W, C)`` batch (one target per metamer).
      initial: starting image(s), same shape as the target batch (or ``(B, H, W, C)`` for one
        target); default: uniform noise in ``allowed_range`` drawn from ``key``.
      key: PRNG key for the default initial images.
      optimizer: optax transformation; default :func:`adam_amsgrad` with learning rate 0.01
        (plenoptic's ``Adam(lr=0.01, amsgrad=True)``).
      max_iter: total iterations (the loss history length).
      stop_criterion, stop_iters_to_check: plenoptic's stopping rule (``stop_criterion=0``
        runs ``max_iter`` iterations).
      penalty_lambda, allowed_range: the range penalty.
      store_every: keep the image every this many iterations.
      chunk_size: iterations per compiled chunk (progress bar granularity).
      state: continue a previous synthesis (its ``result.state``) up to ``max_iter``.

    Returns:
      :class:`MetamerResult`.
    """
    check_callable("model_fn", model_fn)
    target = check_array("target", target, ndim=(3, 4))
    if target.ndim == 3:
        target = target[None]
    max_iter = check_int("max_iter", max_iter, min_value=1)
    (stop_iters_to_check, chunk_size, (lo, hi), optimizer, store_every, n_store) = check_descent_arguments(
        max_iter, stop_iters_to_check, chunk_size, stop_criterion, penalty_lambda, allowed_range, optimizer, store_every)

    if state is None:
        if initial is None:
            if key is None:
                raise ValueError("key: give a PRNG key (or initial images) to start the synthesis")
            initial = jax.random.uniform(key, target.shape, target.dtype, lo, hi)
        initial = check_array("initial", initial, ndim=(3, 4))
        if initial.ndim == 3:
            initial = initial[None]
        if initial.shape[1:] != target.shape[1:]:
            raise ValueError(f"initial: expected images of shape {tuple(target.shape[1:])} like target, got {tuple(initial.shape)}")
        if target.shape[0] == 1 and initial.shape[0] > 1:
            target = jnp.broadcast_to(target, initial.shape)
        if initial.shape != target.shape:
            raise ValueError(f"initial: expected {target.shape[0]} images to match the target batch, got {initial.shape[0]}")
        initial = initial.astype(target.dtype)
        B = initial.shape[0]
        state = MetamerState(
            image=initial,
            opt_state=jax.vmap(optimizer.init)(initial),
            losses=jnp.full((B, max_iter), jnp.nan, target.dtype),
            n_iter=jnp.zeros((B,), jnp.int32),
            done=jnp.zeros((B,), bool),
            stored=jnp.zeros((B, n_store) + initial.shape[1:], target.dtype),
        )
    else:
        if state.losses.shape[1] < max_iter:
            pad = max_iter - state.losses.shape[1]
            state = state._replace(losses=jnp.pad(state.losses, ((0, 0), (0, pad)), constant_values=jnp.nan))
        if state.image.shape[0] != target.shape[0]:
            target = jnp.broadcast_to(target, state.image.shape)

    target_rep = jax.vmap(lambda t: model_fn(t[None]))(target)
    if not bool(jnp.all(jnp.isfinite(target_rep))):
        raise ValueError("model_fn: returned non-finite values for the target")

    run = _compiled_chunk(model_fn, optimizer, float(penalty_lambda), (float(lo), float(hi)), stop_iters_to_check,
                          float(stop_criterion), store_every, n_store)
    state = drive_chunks(run, state, target_rep, max_iter=max_iter, chunk_size=chunk_size, store_every=store_every,
                         show_progress=show_progress, desc="metamer")
    return MetamerResult(state.image, state.losses, state.n_iter, state.stored, state)


def drive_chunks(run, state: MetamerState, aux, *, max_iter, chunk_size, store_every, show_progress, desc):
    """Run compiled chunks up to ``max_iter`` with a progress bar; raise on a non-finite loss."""
    from vision_jax.runner import progress

    start = int(jnp.min(state.n_iter))
    with progress(total=max_iter, desc=desc, disable=None if show_progress is None else not show_progress) as bar:
        bar.update(start)
        for end in range(min(start + chunk_size, max_iter), max_iter + chunk_size, chunk_size):
            end = min(end, max_iter)
            if store_every is not None and bool(jnp.any(state.n_iter == 0)):
                state = state._replace(stored=state.stored.at[:, 0].set(state.image))
            state = run(state, aux, jnp.asarray(end, jnp.int32))
            bar.update(end - bar.n)
            last = np.asarray(state.losses)[np.arange(state.losses.shape[0]), np.maximum(np.asarray(state.n_iter) - 1, 0)]
            if not np.all(np.isfinite(last)):
                bad = int(np.flatnonzero(~np.isfinite(last))[0])
                raise ValueError(f"model_fn: the loss of {desc} {bad} became non-finite at iteration "
                                 f"{int(state.n_iter[bad])}; the model returned NaN/inf (try a smaller learning rate)")
            if bool(jnp.all(state.done)) or end >= max_iter:
                break
    return state
