"""Coarse-to-fine metamers for multi-scale models (plenoptic's ``MetamerCTF``).

The model returns one representation per scale, in the order to synthesise them (coarsest
first). Synthesis goes through stages: with ``coarse_to_fine="together"`` stage ``t`` matches
scales ``0..t`` for ``t < S - 1``, then all scales; with ``"separate"`` stage ``t`` matches
scale ``t`` alone for ``t < S``, then all scales. The loss of a stage is the mean squared error
over the elements of its scales plus the range penalty; the recorded loss is always that of
all scales (plenoptic's). A stage ends, at the start of an iteration, once it has run at least
``ctf_iters_to_check`` iterations and its loss changed by less than ``change_scale_criterion``
over the last ``ctf_iters_to_check`` iterations (``None``: after ``ctf_iters_to_check``
iterations); the optimizer state carries over. Synthesis stops by the metamer rule on the
recorded loss once the last stage has run more than ``ctf_iters_to_check`` iterations.
Everything runs in the compiled, vmapped chunks of :func:`vision_jax.synthesis.metamer`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from vision_jax._checks import check_array, check_callable, check_choice, check_int, check_nonnegative
from vision_jax.synthesis._metamer import check_descent_arguments, drive_chunks, range_penalty

__all__ = ["CTFState", "CTFResult", "metamer_ctf", "stage_masks"]


class CTFState(NamedTuple):
    image: jax.Array  # (B, H, W, C)
    opt_state: Any
    losses: jax.Array  # (B, max_iter) loss over all scales (with the penalty)
    scale_losses: jax.Array  # (B, max_iter) loss of the stage being optimised
    stages: jax.Array  # (B, max_iter) stage of each iteration, -1 after the last
    stage: jax.Array  # (B,) current stage
    stage_start: jax.Array  # (B,) iteration at which it began
    n_iter: jax.Array  # (B,)
    done: jax.Array  # (B,)
    stored: jax.Array  # (B, n_store, H, W, C)


class CTFResult(NamedTuple):
    metamers: jax.Array
    losses: jax.Array
    scale_losses: jax.Array
    stages: jax.Array
    n_iter: jax.Array
    stored: jax.Array
    stage_masks: np.ndarray  # (n_stages, n_scales) which scales each stage matches
    state: CTFState


def stage_masks(n_scales: int, coarse_to_fine: str) -> np.ndarray:
    """``(n_stages, n_scales)`` booleans: the scales matched at each stage (the last is all)."""
    idx = np.arange(n_scales)
    if coarse_to_fine == "together":
        rows = [idx <= t for t in range(n_scales - 1)]
    else:
        rows = [idx == t for t in range(n_scales)]
    return np.stack(rows + [np.ones(n_scales, bool)])


@lru_cache(maxsize=16)
def _compiled_ctf(model_fn, optimizer, masks_key, penalty_lambda, allowed_range, stop_iters_to_check, stop_criterion,
                  change_scale_criterion, ctf_iters_to_check, store_every, n_store):
    masks = jnp.asarray(np.asarray(masks_key, bool))
    n_stages = masks.shape[0]
    optimizer = optax.with_extra_args_support(optimizer)

    def errors(x, reps):
        outs = model_fn(x[None])
        sse = jnp.stack([jnp.sum((o - r) ** 2) for o, r in zip(outs, reps)])
        count = jnp.asarray([r.size for r in reps], sse.dtype)
        return sse, count

    def stage_loss(x, reps, stage):
        sse, count = errors(x, reps)
        w = masks[stage].astype(sse.dtype)
        penalty = penalty_lambda * range_penalty(x, allowed_range)
        return jnp.sum(w * sse) / jnp.sum(w * count) + penalty, jnp.sum(sse) / jnp.sum(count) + penalty

    def one_chunk(s: CTFState, reps, end):
        def cond(c):
            return (c.n_iter < end) & ~c.done

        def body(c):
            n = c.n_iter
            past = c.scale_losses[jnp.maximum(n - ctf_iters_to_check, 0)]
            stalled = True if change_scale_criterion is None else (
                jnp.abs(c.scale_losses[jnp.maximum(n - 1, 0)] - past) < change_scale_criterion)
            switch = ((c.stage < n_stages - 1) & (n >= ctf_iters_to_check) & stalled
                      & (n - c.stage_start >= ctf_iters_to_check))
            stage = c.stage + switch.astype(c.stage.dtype)
            stage_start = jnp.where(switch, n, c.stage_start)
            (loss, overall), grads = jax.value_and_grad(stage_loss, has_aux=True)(c.image, reps, stage)
            updates, opt_state = optimizer.update(grads, c.opt_state, c.image, value=loss, grad=grads,
                                                  value_fn=lambda x: stage_loss(x, reps, stage)[0])
            image = optax.apply_updates(c.image, updates)
            losses = c.losses.at[n].set(overall)
            n1 = n + 1
            old = losses[jnp.maximum(n1 - stop_iters_to_check, 0)]
            done = ((n1 > stop_iters_to_check) & (jnp.abs(old - overall) < stop_criterion)
                    & (stage == n_stages - 1) & (n - stage_start > ctf_iters_to_check))
            done = done | ~jnp.isfinite(overall)
            stored = c.stored
            if store_every is not None:
                slot = jnp.minimum(n1 // store_every, n_store - 1)
                stored = jnp.where(n1 % store_every == 0, stored.at[slot].set(image), stored)
            return CTFState(image, opt_state, losses, c.scale_losses.at[n].set(loss), c.stages.at[n].set(stage),
                            stage, stage_start, n1, done, stored)

        return lax.while_loop(cond, body, s)

    return jax.jit(jax.vmap(one_chunk, in_axes=(0, 0, None)))


def metamer_ctf(
    model_fn: Callable,
    target,
    *,
    coarse_to_fine: str = "together",
    initial=None,
    key=None,
    optimizer: optax.GradientTransformation | None = None,
    max_iter: int = 100,
    stop_criterion=1e-4,
    stop_iters_to_check: int = 50,
    change_scale_criterion=1e-2,
    ctf_iters_to_check: int = 50,
    penalty_lambda=0.1,
    allowed_range=(0.0, 1.0),
    store_every: int | None = None,
    chunk_size: int = 50,
    state: CTFState | None = None,
    show_progress: bool | None = None,
) -> CTFResult:
    """Coarse-to-fine metamers of ``target`` for a multi-scale ``model_fn``.

    Args:
      model_fn: pure function of an NHWC batch ``(1, H, W, C)`` returning a tuple (or list) of
        arrays, one per scale, coarsest (first synthesised) first.
      coarse_to_fine: ``"together"`` (earlier scales stay in the loss) or ``"separate"``.
      change_scale_criterion: loss change over ``ctf_iters_to_check`` iterations below which a
        stage ends (``None``: stages last ``ctf_iters_to_check`` iterations); must exceed
        ``stop_criterion``.
      ctf_iters_to_check: the least number of iterations of each stage.
      Other arguments: as :func:`vision_jax.synthesis.metamer`.

    Returns:
      :class:`CTFResult`; ``stages[b, i]`` is the stage of iteration ``i`` and
      ``stage_masks[t]`` the scales stage ``t`` matches.
    """
    check_callable("model_fn", model_fn)
    target = check_array("target", target, ndim=(3, 4))
    if target.ndim == 3:
        target = target[None]
    check_choice("coarse_to_fine", coarse_to_fine, ("together", "separate"))
    max_iter = check_int("max_iter", max_iter, min_value=1)
    (stop_iters_to_check, chunk_size, (lo, hi), optimizer, store_every, n_store) = check_descent_arguments(
        max_iter, stop_iters_to_check, chunk_size, stop_criterion, penalty_lambda, allowed_range, optimizer, store_every)
    ctf_iters_to_check = check_int("ctf_iters_to_check", ctf_iters_to_check, min_value=1)
    if change_scale_criterion is not None:
        check_nonnegative("change_scale_criterion", change_scale_criterion)
        if not stop_criterion < change_scale_criterion:
            raise ValueError(f"change_scale_criterion: expected more than stop_criterion={stop_criterion}, "
                             f"got {change_scale_criterion}")

    outs = jax.eval_shape(model_fn, jax.ShapeDtypeStruct((1,) + target.shape[1:], target.dtype))
    if not isinstance(outs, (tuple, list)) or len(outs) < 2:
        raise ValueError(f"model_fn: expected a tuple of at least 2 per-scale representations, got {type(outs).__name__}"
                         + (f" of {len(outs)}" if isinstance(outs, (tuple, list)) else ""))
    masks = stage_masks(len(outs), coarse_to_fine)

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
        nan = jnp.full((B, max_iter), jnp.nan, target.dtype)
        state = CTFState(initial, jax.vmap(optimizer.init)(initial), nan, nan, jnp.full((B, max_iter), -1, jnp.int32),
                         jnp.zeros((B,), jnp.int32), jnp.zeros((B,), jnp.int32), jnp.zeros((B,), jnp.int32),
                         jnp.zeros((B,), bool), jnp.zeros((B, n_store) + initial.shape[1:], target.dtype))
    else:
        pad = max_iter - state.losses.shape[1]
        if pad > 0:
            state = state._replace(
                losses=jnp.pad(state.losses, ((0, 0), (0, pad)), constant_values=jnp.nan),
                scale_losses=jnp.pad(state.scale_losses, ((0, 0), (0, pad)), constant_values=jnp.nan),
                stages=jnp.pad(state.stages, ((0, 0), (0, pad)), constant_values=-1))
        if state.image.shape[0] != target.shape[0]:
            target = jnp.broadcast_to(target, state.image.shape)

    reps = jax.vmap(lambda t: tuple(model_fn(t[None])))(target)
    if not all(bool(jnp.all(jnp.isfinite(r))) for r in reps):
        raise ValueError("model_fn: returned non-finite values for the target")
    run = _compiled_ctf(model_fn, optimizer, tuple(map(tuple, masks.tolist())), float(penalty_lambda), (float(lo), float(hi)),
                        stop_iters_to_check, float(stop_criterion),
                        None if change_scale_criterion is None else float(change_scale_criterion), ctf_iters_to_check,
                        store_every, n_store)
    state = drive_chunks(run, state, reps, max_iter=max_iter, chunk_size=chunk_size, store_every=store_every,
                         show_progress=show_progress, desc="metamer_ctf")
    return CTFResult(state.image, state.losses, state.scale_losses, state.stages, state.n_iter, state.stored, masks, state)
