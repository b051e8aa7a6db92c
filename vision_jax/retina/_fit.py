"""Fitting retina parameters to target responses by gradient descent (optax) through the whole cascade."""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vision_jax._checks import check_array, check_int, check_positive
from vision_jax.retina._model import PARAM_FIELDS, RetinaParams, RetinaState, blur_radii, run

__all__ = ["fit", "FitResult"]

# Fields fitted in log space (they must stay positive).
_POSITIVE = ("center_sigma", "center_tau", "undershoot_tau", "surround_sigma", "surround_tau", "opl_amplification",
             "bipolar_amplification", "inert_leak", "adaptation_amplification", "adaptation_sigma", "adaptation_tau",
             "transient_tau", "i0", "ganglion_amplification", "pool_sigma", "leak", "refr_mean")
_OUTPUTS = ("rates", "opl", "bipolar", "adaptation", "ganglion_input")


class FitResult(NamedTuple):
    params: RetinaParams  # fitted parameters (fitted fields have a leading cell axis when batched)
    losses: np.ndarray  # (steps,) loss before each update (summed over cells when batched)


def _response(params, state, movie, output, chunk_size, radii, remat):
    outs, s = [], state
    size = movie.shape[0] if chunk_size is None else chunk_size
    for i in range(0, movie.shape[0], size):
        s, out = run(params, s, movie[i:i + size], spikes=False, stages=output != "rates", radii=radii, remat=remat)
        outs.append(getattr(out, output))
    return jnp.concatenate(outs) if len(outs) > 1 else outs[0]


def fit(params: RetinaParams, state: RetinaState, movie, target, *, fields: Sequence[str], steps: int = 200,
        learning_rate: float = 0.05, output: str = "rates", batched: bool = False, chunk_size: int | None = None,
        remat: bool = False, optimizer=None) -> FitResult:
    """Fit ``fields`` of ``params`` so that ``run(params, state, movie)``'s ``output`` matches ``target``.

    Minimises the mean squared error with Adam (or ``optimizer``, an optax transformation) on the
    log of positive parameters (time constants, sigmas, gains) and on the value of the others.
    Gradients flow through the whole cascade and across chunk boundaries (``chunk_size``);
    ``remat`` recomputes steps in the backward pass to save memory. Spikes are off (rates only).

    Args:
      params: starting parameters; with ``batched`` the fitted fields are ``(n_cells,)`` arrays
        (one starting value per cell) and the cells are fitted at once with ``vmap``.
      state: initial state (shared by all cells).
      movie: ``(T, H, W)`` stimulus.
      target: the ``output`` for ``movie``: ``(T, ...)``, or ``(n_cells, T, ...)`` when batched.
      fields: names of :class:`RetinaParams` float fields to fit.
      output: one of ``rates``, ``opl``, ``bipolar``, ``adaptation``, ``ganglion_input``.

    Returns:
      :class:`FitResult` with the fitted params and the loss history.
    """
    import optax

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
    radii = blur_radii(params)
    dtype = movie.dtype
    params = jax.tree.map(lambda x: jnp.asarray(x, dtype), params)
    n_cells = None
    for f in fields:
        value = getattr(params, f)
        if batched:
            if value.ndim != 1 or (n_cells is not None and value.shape[0] != n_cells):
                raise ValueError(f"params.{f}: expected one starting value per cell, shape (n_cells,), got {value.shape}")
            n_cells = value.shape[0]
        elif value.ndim != 0:
            raise ValueError(f"params.{f}: expected a scalar (pass batched=True to fit several cells), got shape {value.shape}")
    if batched and target.shape[0] != n_cells:
        raise ValueError(f"target: expected a leading axis of {n_cells} cells, got shape {tuple(target.shape)}")

    to_theta = {f: (jnp.log if f in _POSITIVE else (lambda v: v)) for f in fields}
    from_theta = {f: (jnp.exp if f in _POSITIVE else (lambda v: v)) for f in fields}
    theta = {f: to_theta[f](getattr(params, f)) for f in fields}

    def cell_loss(th, tgt):
        p = params.replace(**{f: from_theta[f](th[f]) for f in fields})
        pred = _response(p, state, movie, output, chunk_size, radii, remat)
        return jnp.mean((pred - tgt) ** 2)

    if batched:
        def loss_fn(th):
            return jnp.sum(jax.vmap(cell_loss)(th, target))
    else:
        loss_fn = lambda th: cell_loss(th, target)  # noqa: E731

    opt = optimizer if optimizer is not None else optax.adam(learning_rate)
    opt_state = opt.init(theta)

    @jax.jit
    def update(th, o):
        loss, grads = jax.value_and_grad(loss_fn)(th)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 step count with float hyperparameters
            upd, o = opt.update(grads, o, th)
            return optax.apply_updates(th, upd), o, loss

    losses = []
    for _ in range(steps):
        theta, opt_state, loss = update(theta, opt_state)
        losses.append(loss)
    fitted = params.replace(**{f: from_theta[f](theta[f]) for f in fields})
    return FitResult(fitted, np.asarray(jnp.stack(losses)))
