"""Fitting retina parameters to target responses by gradient descent (optax) through the whole cascade.

:func:`fit` runs the optimisation as compiled ``lax.scan`` chunks of optimizer steps (one
compilation, a progress bar between chunks, optional checkpoints); :func:`fit_function` returns that
optimisation as a pure function of the starting values, to ``vmap`` over cells or to run
through :func:`vision_jax.sweep.sweep`; :func:`multistart_fit` does the latter, one sweep
configuration per starting point, and keeps the best start of every cell.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vision_jax._checks import check_array, check_int, check_positive
from vision_jax.checkpoint import run_chunks
from vision_jax.retina._model import PARAM_FIELDS, RetinaParams, RetinaState, blur_radii, run

__all__ = ["fit", "fit_function", "multistart_fit", "FitResult", "MultistartResult"]

# Fields fitted in log space (they must stay positive).
_POSITIVE = ("center_sigma", "center_tau", "undershoot_tau", "surround_sigma", "surround_tau", "opl_amplification",
             "bipolar_amplification", "inert_leak", "adaptation_amplification", "adaptation_sigma", "adaptation_tau",
             "transient_tau", "i0", "ganglion_amplification", "pool_sigma", "leak", "refr_mean")
_OUTPUTS = ("rates", "opl", "bipolar", "adaptation", "ganglion_input")


class FitResult(NamedTuple):
    params: RetinaParams  # fitted parameters (fitted fields have a leading cell axis when batched)
    losses: np.ndarray  # (steps,) loss before each update (summed over cells when batched)


class MultistartResult(NamedTuple):
    params: RetinaParams  # the best start's fitted values (fitted fields (n_cells,) when batched)
    losses: np.ndarray  # (n_starts, steps) loss history of every start (summed over cells when batched)
    fitted: dict  # field -> (n_starts,) or (n_starts, n_cells) fitted values of every start
    final_losses: np.ndarray  # (n_starts,) or (n_starts, n_cells): each start's loss after its last update
    best: np.ndarray  # () or (n_cells,): index of the best start (per cell when batched)


def _response(params, state, movie, output, chunk_size, radii, remat, adjoint):
    """``output`` over ``movie``, run ``chunk_size`` frames at a time with the state carried across chunks.

    Whole chunks go through one ``lax.scan`` (one copy of the cascade in the compiled program);
    with ``remat`` each chunk is a ``jax.checkpoint``: the backward pass keeps only the states at
    chunk boundaries and recomputes each chunk's steps.
    """
    T = movie.shape[0]
    size = T if chunk_size is None else min(chunk_size, T)
    n_full = T // size

    def one(s, chunk):
        s, out = run(params, s, chunk, spikes=False, stages=output != "rates", radii=radii, remat=remat, adjoint=adjoint)
        return s, getattr(out, output)

    if remat:
        one = jax.checkpoint(one)
    outs, s = [], state
    if n_full == 1:
        s, y = one(s, movie[:size])
        outs.append(y)
    else:
        chunks = movie[:n_full * size].reshape((n_full, size) + movie.shape[1:])
        s, ys = lax.scan(one, s, chunks)
        outs.append(ys.reshape((n_full * size,) + ys.shape[2:]))
    if T > n_full * size:
        s, y = one(s, movie[n_full * size:])
        outs.append(y)
    return jnp.concatenate(outs) if len(outs) > 1 else outs[0]


def _check_common(fields, output, steps, learning_rate, movie, target, chunk_size):
    fields = tuple(fields)
    if not fields or any(f not in PARAM_FIELDS for f in fields):
        raise ValueError(f"fields: expected a non-empty list of names from {list(PARAM_FIELDS)}, got {list(fields)}")
    if output not in _OUTPUTS:
        raise ValueError(f"output: expected one of {list(_OUTPUTS)}, got {output!r}")
    steps = check_int("steps", steps, min_value=1)
    check_positive("learning_rate", learning_rate)
    movie = check_array("movie", movie, ndim=3)
    target = check_array("target", target)
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, min_value=1)
    return fields, steps, movie, target, chunk_size


def _check_target(target, output: str, movie, batched: bool) -> None:
    """``target`` is ``output`` for ``movie``: ``(T, [2,] H, W)``, with a leading cell axis when ``batched``."""
    per_cell = movie.shape[:1] + ((2,) if output in ("rates", "ganglion_input") else ()) + tuple(movie.shape[1:])
    want = ("n_cells",) + per_cell if batched else per_cell
    if target.ndim != len(want) or tuple(target.shape[-len(per_cell):]) != per_cell:
        raise ValueError(f"target: expected shape {tuple(want)} (out.{output} of the movie{', per cell' if batched else ''}), "
                         f"got {tuple(target.shape)}")


def fit_function(params: RetinaParams, state: RetinaState, movie, *, fields: Sequence[str], steps: int = 200,
                 learning_rate: float = 0.05, output: str = "rates", chunk_size: int | None = None, remat: bool = False,
                 optimizer=None, radii: tuple | None = None, adjoint: str = "auto") -> Callable:
    """The optimisation as a pure function ``opt(start, target) -> (fitted, losses)``.

    ``start`` and ``fitted`` are dicts field -> value in physical units; ``losses`` is the
    ``(steps,)`` history of the mean squared error before each update. The function is
    traceable: ``jit`` it, ``vmap`` it over cells or starting points, or call it inside a
    :func:`vision_jax.sweep.sweep` function. Arguments as in :func:`fit`. Its attributes
    ``init(start) -> carry``, ``advance(carry, target, n, first) -> (carry, losses)`` and
    ``finish(carry) -> fitted`` are the same optimisation in pieces (what :func:`fit` runs in chunks);
    ``loss_at(values, target)`` is the loss at given values (reverse-mode derivatives only with
    the native ``adjoint``: pass ``adjoint="autodiff"`` for forward mode).
    """
    import optax

    fields, steps, movie, _, chunk_size = _check_common(fields, output, steps, learning_rate, movie, jnp.zeros(()), chunk_size)
    radii = blur_radii(params) if radii is None else tuple(radii)
    dtype = movie.dtype
    params = jax.tree.map(lambda x: jnp.asarray(x, dtype), params)
    opt = optimizer if optimizer is not None else optax.adam(learning_rate)
    to_theta = {f: (jnp.log if f in _POSITIVE else (lambda v: v)) for f in fields}
    from_theta = {f: (jnp.exp if f in _POSITIVE else (lambda v: v)) for f in fields}

    def loss_fn(theta, target):
        p = params.replace(**{f: from_theta[f](theta[f]) for f in fields})
        pred = _response(p, state, movie, output, chunk_size, radii, remat, adjoint)
        return jnp.mean((pred - target) ** 2)

    def init(start):
        """The optimisation's carry ``(theta, optimizer state)`` at ``start`` (dict field -> value)."""
        theta = {f: to_theta[f](jnp.asarray(start[f], dtype)) for f in fields}
        with jax.numpy_dtype_promotion("standard"):
            return theta, opt.init(theta)

    def advance(carry, target, n: int, first=0):
        """``n`` updates from step ``first``; steps from ``steps`` on are skipped (their loss is NaN)."""
        def one_step(carry, j):
            def update(carry):
                th, o = carry
                loss, grads = jax.value_and_grad(loss_fn)(th, target)
                with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 step count with float hyperparameters
                    upd, o = opt.update(grads, o, th)
                    th = optax.apply_updates(th, upd)
                return (th, o), loss

            return lax.cond(first + j < steps, update, lambda c: (c, jnp.asarray(jnp.nan, dtype)), carry)

        return lax.scan(one_step, carry, jnp.arange(n))

    def finish(carry):
        return {f: from_theta[f](carry[0][f]) for f in fields}

    def optimise(start, target):
        carry, losses = advance(init(start), target, steps)
        return finish(carry), losses

    def loss_at(values, target):
        return loss_fn({f: to_theta[f](jnp.asarray(values[f], dtype)) for f in fields}, target)

    optimise.loss_at = loss_at
    optimise.init, optimise.advance, optimise.finish = init, advance, finish
    return optimise


def fit(params: RetinaParams, state: RetinaState, movie, target, *, fields: Sequence[str], steps: int = 200,
        learning_rate: float = 0.05, output: str = "rates", batched: bool = False, chunk_size: int | None = None,
        remat: bool = False, optimizer=None, radii: tuple | None = None, chunk_steps: int = 50,
        checkpoint_dir=None, show_progress: bool | None = None, adjoint: str = "auto") -> FitResult:
    """Fit ``fields`` of ``params`` so that ``run(params, state, movie)``'s ``output`` matches ``target``.

    Minimises the mean squared error with Adam (or ``optimizer``, an optax transformation) on the
    log of positive parameters (time constants, sigmas, gains) and on the value of the others.
    Gradients flow through the whole cascade and across chunk boundaries (``chunk_size``);
    ``remat`` recomputes steps in the backward pass to save memory. Spikes are off (rates only).
    The steps run in compiled chunks of ``chunk_steps`` (one compilation) with a progress bar
    between chunks; with ``checkpoint_dir`` every chunk is saved there and an interrupted fit
    resumes from its last chunk when called again with the same arguments.

    Args:
      params: starting parameters; with ``batched`` the fitted fields are ``(n_cells,)`` arrays
        (one starting value per cell) and the cells are fitted at once with ``vmap``.
      state: initial state (shared by all cells).
      movie: ``(T, H, W)`` stimulus.
      target: the ``output`` for ``movie``: ``(T, ...)``, or ``(n_cells, T, ...)`` when batched.
      fields: names of :class:`RetinaParams` float fields to fit.
      output: one of ``rates``, ``opl``, ``bipolar``, ``adaptation``, ``ganglion_input``.
      radii: static blur sizes (:func:`blur_radii`); by default those of the starting values. The
        leaky-heat blur per step narrows as ``center_tau`` grows: pass the radii of the smallest
        time constant the fit may reach (and generate targets with the same radii).
      chunk_steps: optimizer steps per compiled chunk (the results do not depend on it).
      adjoint: how the gradients are computed (:func:`run`): ``"auto"`` takes the native CPU
        kernel's reverse pass where it serves (2-3x faster), ``"autodiff"`` JAX's.
      checkpoint_dir: folder for checkpoints (None: none).
      show_progress: force the progress bar on or off (default: on when stderr is a terminal).

    Returns:
      :class:`FitResult` with the fitted params and the loss history.
    """
    chunk_steps = check_int("chunk_steps", chunk_steps, min_value=1)
    fields, steps, movie, target, chunk_size = _check_common(fields, output, steps, learning_rate, movie, target, chunk_size)
    _check_target(target, output, movie, batched)
    n_cells = None
    for f in fields:
        value = np.asarray(getattr(params, f))
        if batched:
            if value.ndim != 1 or (n_cells is not None and value.shape[0] != n_cells):
                raise ValueError(f"params.{f}: expected one starting value per cell, shape (n_cells,), got {value.shape}")
            n_cells = value.shape[0]
        elif value.ndim != 0:
            raise ValueError(f"params.{f}: expected a scalar (pass batched=True to fit several cells), got shape {value.shape}")
    if batched and target.shape[0] != n_cells:
        raise ValueError(f"target: expected a leading axis of {n_cells} cells, got shape {tuple(target.shape)}")
    start = {f: jnp.asarray(getattr(params, f), movie.dtype) for f in fields}
    # the fitted fields are replaced inside the optimisation: build it from scalar placeholders
    base = params.replace(**{f: np.asarray(getattr(params, f)).reshape(-1)[0] for f in fields})
    optimise = fit_function(base, state, movie, fields=fields, steps=steps, learning_rate=learning_rate, output=output,
                            chunk_size=chunk_size, remat=remat, optimizer=optimizer,
                            radii=blur_radii(params) if radii is None else radii, adjoint=adjoint)
    size = min(chunk_steps, steps)

    @jax.jit
    def chunk(carry, i, target):
        def one_cell(c, t):
            return optimise.advance(c, t, size, i * size)

        return jax.vmap(one_cell)(carry, target) if batched else one_cell(carry, target)

    carry = (jax.vmap(optimise.init) if batched else optimise.init)(start)
    fingerprint = {"fields": list(fields), "steps": steps, "chunk_steps": size, "learning_rate": float(learning_rate),
                   "output": output, "batched": bool(batched), "movie_shape": list(movie.shape),
                   "target_shape": list(target.shape), "optimizer": "adam" if optimizer is None else repr(optimizer)}
    carry, losses = run_chunks(lambda c, i: chunk(c, i, target), carry, n_chunks=-(-steps // size),
                               directory=checkpoint_dir, fingerprint=fingerprint, desc="retina fit",
                               show_progress=show_progress)
    losses = np.moveaxis(losses, 0, -2)  # (..., n_chunks, size): the cells first when batched
    losses = losses.reshape(losses.shape[:-2] + (-1,))[..., :steps]
    if batched:
        losses = losses.sum(axis=0)
    return FitResult(params.replace(**optimise.finish(carry)), losses)  # finish is elementwise: cells or not


def multistart_fit(params: RetinaParams, state: RetinaState, movie, target, starts: dict, *, fields: Sequence[str],
                   key=None, steps: int = 200, learning_rate: float = 0.05, output: str = "rates", batched: bool = False,
                   chunk_size: int | None = None, remat: bool = False, product: bool = False, devices=None,
                   optimizer=None, radii: tuple | None = None, adjoint: str = "auto") -> MultistartResult:
    """Fit from several starting points at once through :func:`vision_jax.sweep.sweep` and keep the best.

    Each starting point is one sweep configuration (``starts``: dict field -> list of starting
    values, zipped, or their product with ``product=True``); the sweep vmaps the compiled
    optimisation over them (and shards them over ``devices`` if given). With ``batched`` every
    start is applied to every cell (``target`` ``(n_cells, T, ...)``) and the best start is picked
    per cell.
    """
    from vision_jax import sweep as sweep_mod

    fields, steps, movie, target, chunk_size = _check_common(fields, output, steps, learning_rate, movie, target, chunk_size)
    _check_target(target, output, movie, batched)
    if not isinstance(starts, dict) or set(starts) != set(fields):
        raise ValueError(f"starts: expected a dict with one list of starting values per field {list(fields)}, "
                         f"got {list(starts) if isinstance(starts, dict) else type(starts).__name__}")
    base = params.replace(**{f: np.asarray(getattr(params, f)).reshape(-1)[0] for f in fields})
    if radii is None:  # the largest blurs over the starts
        radii = blur_radii(params.replace(**{f: np.asarray(starts[f], np.float64) for f in fields}))
    optimise = fit_function(base, state, movie, fields=fields, steps=steps, learning_rate=learning_rate, output=output,
                            chunk_size=chunk_size, remat=remat, optimizer=optimizer, radii=radii, adjoint=adjoint)
    target = jnp.asarray(target)

    def one_start(key, hyper):
        start = {f: hyper[f] for f in fields}
        if batched:
            fitted, losses = jax.vmap(optimise, in_axes=(None, 0))(start, target)
            final = jax.vmap(optimise.loss_at)(fitted, target)
            return {"fitted": fitted, "losses": jnp.sum(losses, 0), "final": final}
        fitted, losses = optimise(start, target)
        return {"fitted": fitted, "losses": losses, "final": optimise.loss_at(fitted, target)}

    result = sweep_mod.sweep(one_start, starts, key=jax.random.key(0) if key is None else key, product=product,
                             devices=devices)
    out = result.outputs
    final = np.asarray(out["final"])
    best = np.argmin(final, axis=0)
    fitted = {f: np.asarray(out["fitted"][f]) for f in fields}
    if batched:
        chosen = {f: jnp.asarray(fitted[f][best, np.arange(best.shape[0])]) for f in fields}
    else:
        chosen = {f: jnp.asarray(fitted[f][best]) for f in fields}
    return MultistartResult(params.replace(**chosen), np.asarray(out["losses"]), fitted, final, best)
