"""Temporal invariance learning: a multi-winner-take-all sparse layer feeding an invariant layer.

One step on an input window ``v`` (``M`` values), with non-negative weights ``sw`` ``(N, M)`` and
``iw`` ``(I, N)`` and the invariant output ``y`` ``(I,)`` (reset to 0 at each epoch start):

  sparse layer   ``p = sw v``; keep the ``k`` largest entries (``s~``); ``r = sw^T s~``, ``e = v - r``;
                 ``sw += xi * sw * s~ (e / max(r, prec))^T``; ``s = s~ / rowsum(sw)`` (updated weights)
  invariant      ``y += alpha (iw s - y)``; ``q = iw^T y``; ``zeta_j = leta if s_j > 0 else seta``;
                 ``iw += iw * y (zeta * (s - q) / max(q, prec))^T``;
                 every ``renorm_every`` steps (from the epoch's first) ``iw <- c * iw / rowsum(iw)``.

The step touches only what changes. Only the ``k`` winning rows of ``sw`` enter ``r`` and change;
only ``k`` entries of ``s`` are non-zero. For a silent sparse unit ``j`` (``s_j = 0``) the
invariant update reduces to ``iw_ij <- iw_ij (1 - seta y_i)`` (when ``q_j >= prec``), the same
factor for every silent column: it is kept as a per-row scale ``g`` (``iw = g[:, None] * w.T``,
``w`` stored transposed so that a column of ``iw`` is a contiguous row), so a step updates ``g``
and the ``k`` winning columns instead of all ``I x N`` weights; the renormalisation only sets
``g``. The scale is folded back into ``w`` every ``fold_every`` steps. The result equals the dense
update up to rounding, except for silent units with ``q_j < prec`` (only possible when the
invariant output is ~0), which decay by ``1 - seta y_i`` instead of ``1 - seta y_i q_j / prec``.

Speed (CPU, where a step is dominated by the number of XLA operations, not by arithmetic): the
one unavoidable dense operation is ``p = sw v``. :func:`train` computes it for blocks of
``BLOCK`` frames as one matrix product from the block's initial ``sw`` (reading ``sw`` once per
block instead of once per frame); when a step changes ``k`` rows, their responses to every frame
of the block are recomputed at once (one small product that also gives the new row sums), so
later steps of the block read exact responses. The top-k is ``k`` rounds of max over a 2-D view
of the responses (each round one pass on XLA:CPU; XLA's top-k is a sort outside float32), rows and
columns are read and written by dynamic slices (in place; a custom batching rule turns them into
one gather / scatter under ``vmap``), the epoch statistics are accumulated elementwise, and no
branch carries the large weights.

API: :func:`init_params` (``sw``, ``iw``), :func:`step` (one ``lax.scan`` body over the carry
:class:`Carry`), :func:`train` (epochs x frames as nested ``lax.scan``, jitted, vmappable over
keys and hyperparameters), :func:`encode` (the trained network on a sequence, no learning) and
analysis helpers.
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from vision_jax._checks import check_array, check_int, check_key, check_positive

__all__ = [
    "InvarianceParams",
    "InvarianceHyper",
    "Carry",
    "EpochStats",
    "init_params",
    "init_carry",
    "step",
    "train",
    "encode",
    "winner_persistence",
    "slowness",
    "coverage",
    "dead_units",
    "affinity_groups",
    "invariant_error",
]


class InvarianceParams(NamedTuple):
    sw: jax.Array  # (N, M) sparse prototypes, >= 0
    iw: jax.Array  # (I, N) invariant weights, >= 0


class InvarianceHyper(NamedTuple):
    """Learning rates and constants (scalars, or stacked arrays under vmap)."""

    xi: jax.Array | float = 0.008  # sparse learning rate
    alpha: jax.Array | float = 1 / 3  # invariant moving-average rate
    leta: jax.Array | float = 0.05  # invariant rate for active sparse units
    seta: jax.Array | float = 0.0005  # invariant rate for silent sparse units
    renorm_c: jax.Array | float = 9.0  # row sum of iw after renormalisation
    prec: jax.Array | float = 1e-10


class Carry(NamedTuple):
    sw: jax.Array  # (N, M)
    w: jax.Array  # (N, I) invariant weights without their row scale, transposed: iw = g[:, None] * w.T
    g: jax.Array  # (I,) row scale: iw = g[:, None] * w
    y: jax.Array  # (I,) invariant output
    t: jax.Array  # () int32 step within the epoch


class EpochStats(NamedTuple):
    sparse_error: jax.Array  # sum ||e||^2 / sum ||v||^2 over the epoch
    mean_invariant_output: jax.Array  # mean of y over the epoch


def init_params(key, n_sparse: int = 900, n_inputs: int = 400, n_invariant: int = 100, *, sw_max=0.2, iw_max=0.1,
                dtype=None) -> InvarianceParams:
    """Uniform initial weights: ``sw ~ U[0, sw_max)`` ``(n_sparse, n_inputs)``, ``iw ~ U[0, iw_max)``."""
    for name, v in (("n_sparse", n_sparse), ("n_inputs", n_inputs), ("n_invariant", n_invariant)):
        check_int(name, v, min_value=1)
    check_positive("sw_max", sw_max)
    check_positive("iw_max", iw_max)
    check_key("key", key)
    dtype = dtype or jnp.zeros(()).dtype  # float32, or float64 when x64 is enabled
    k1, k2 = jax.random.split(key)
    return InvarianceParams(jax.random.uniform(k1, (n_sparse, n_inputs), dtype, 0.0, sw_max),
                            jax.random.uniform(k2, (n_invariant, n_sparse), dtype, 0.0, iw_max))


def init_carry(params: InvarianceParams) -> Carry:
    iw = params.iw
    return Carry(params.sw, iw.T, jnp.ones(iw.shape[:1], iw.dtype), jnp.zeros(iw.shape[:1], iw.dtype), jnp.zeros((), jnp.int32))


def params_of(carry: Carry) -> InvarianceParams:
    """The dense weights of a carry."""
    return InvarianceParams(carry.sw, carry.g[:, None] * carry.w.T)


def _fold(carry: Carry) -> Carry:
    """The row scale folded into ``w`` (``g = 1``)."""
    return carry._replace(w=carry.w * carry.g[None, :], g=jnp.ones_like(carry.g))


def _fold_if(carry: Carry, pred) -> Carry:
    """:func:`_fold` when ``pred``; the branch carries only ``w`` and ``g`` (``sw`` is not copied)."""
    w, g = lax.cond(pred, lambda w, g: (w * g[None, :], jnp.ones_like(g)), lambda w, g: (w, g), carry.w, carry.g)
    return carry._replace(w=w, g=g)


def _top_k(p: jax.Array, k: int):
    """``lax.top_k(p, k)`` for a vector ``p``, fast in float64 too (ties: lowest index first); used by :func:`step`.

    XLA's CPU top-k is a full sort (about 0.3 ms for 900 values) unless it is rewritten into a
    custom call, which happens for float32 only and not inside every loop; for small ``k``, ``k``
    rounds of max / first index of the max / mask are used instead.
    """
    if k > 8:
        return lax.top_k(p, k)
    n = p.shape[0]
    iota = jnp.arange(n, dtype=jnp.int32)
    vals, idx = [], []
    for _ in range(k):
        m = jnp.max(p)
        i = jnp.min(jnp.where(p == m, iota, n))
        vals.append(m)
        idx.append(i)
        p = jnp.where(iota == i, -jnp.inf, p)
    return jnp.stack(vals), jnp.stack(idx)


def _grid(n: int):
    """A 2-D shape ``(a, b)``, ``a * b >= n``, ``b <= 32``.

    XLA:CPU splits the reduction of a vector longer than 32 into two passes (two operations); an
    array whose dimensions are all at most 32 is reduced in one.
    """
    b = min(n, 32)
    return -(-n // b), b


def _top_k_2d(p, k: int, n: int):
    """Values and flat indices of the ``k`` largest entries of ``p`` ``(a, b)`` (ties: lowest index first).

    Entries at flat index ``>= n`` are padding and must hold ``-inf``. Each round masks the
    winners found so far from the original ``p`` (no chain of copies of ``p``).
    """
    iota = lax.broadcasted_iota(jnp.int32, p.shape, 0) * p.shape[1] + lax.broadcasted_iota(jnp.int32, p.shape, 1)
    vals, idx = [], []
    mask = None
    for _ in range(k):
        q = p if mask is None else jnp.where(mask, -jnp.inf, p)
        m = jnp.max(q)
        i = jnp.min(jnp.where(q == m, iota, n))
        vals.append(m)
        idx.append(i)
        mask = iota == i if mask is None else mask | (iota == i)
    return jnp.stack(vals), jnp.stack(idx)


def _mv(a, x):
    """``a @ x`` for a small matrix, as a product and a sum (a batched dot under vmap is slow on CPU)."""
    return jnp.sum(a * x[None, :], axis=1)


def _sum_k(x, weights):
    """``sum_i weights[i] * x[i]`` over the (few) rows of ``x``, as elementwise operations."""
    out = weights[0] * x[0]
    for i in range(1, x.shape[0]):
        out = out + weights[i] * x[i]
    return out


def _take(a, idx, axis: int):
    """``a`` at the (few, static count) indices ``idx`` along ``axis``: slices, not a gather (slow on CPU)."""
    return jnp.stack([lax.dynamic_index_in_dim(a, i, axis, keepdims=False) for i in idx], axis=axis)


def _put(a, idx, values, axis: int):
    """``a`` with ``values`` written at the distinct indices ``idx`` along ``axis`` (in place)."""
    for n in range(idx.shape[0]):
        a = lax.dynamic_update_index_in_dim(a, lax.index_in_dim(values, n, axis, keepdims=False), idx[n], axis)
    return a


@jax.custom_batching.custom_vmap
def _rows(a, idx):
    """``a[idx]`` for a few row indices ``idx`` ``(k,)``: dynamic slices, one gather under ``vmap``.

    Under ``vmap`` the slices would each become a gather (or a scatter in :func:`_set_rows`); the
    batching rule makes the whole access one gather.
    """
    return _take(a, idx, 0)


@_rows.def_vmap
def _rows_vmap(axis_size, in_batched, a, idx):
    a, idx = (x if b else jnp.broadcast_to(x, (axis_size,) + x.shape) for b, x in zip(in_batched, (a, idx)))
    return jax.vmap(lambda a, i: a[i])(a, idx), True


@jax.custom_batching.custom_vmap
def _set_rows(a, idx, values):
    """``a.at[idx].set(values)`` for a few distinct row indices: in-place dynamic updates, one scatter under ``vmap``."""
    return _put(a, idx, values, 0)


@_set_rows.def_vmap
def _set_rows_vmap(axis_size, in_batched, a, idx, values):
    a, idx, values = (x if b else jnp.broadcast_to(x, (axis_size,) + x.shape) for b, x in zip(in_batched, (a, idx, values)))
    return jax.vmap(lambda a, i, v: a.at[i].set(v, unique_indices=True))(a, idx, values), True


def _sparse_update(sw, v, vals, idx, xi, prec):
    """The sparse layer's update of its ``k`` winning rows ``idx`` (responses ``vals``) for the frame ``v``.

    Returns the new ``sw``, its new winning rows ``(k, M)`` and the reconstruction error ``e`` ``(M,)``.
    """
    rows = _rows(sw, idx)  # (k, M)
    r = _mv(rows.T, vals)
    e = v - r
    rows = rows + xi * rows * (vals[:, None] * (e / jnp.maximum(r, prec))[None, :])
    return _set_rows(sw, idx, rows), rows, e


def _invariant_update(w, g, y, idx, s_w, t, alpha, leta, seta, c, prec, renorm_every: int | None):
    """The invariant layer's step on the ``k`` winning columns ``idx`` (code values ``s_w``); silent
    columns decay through the row scale ``g``. Returns the new ``(w, g, y)``."""
    cols = _rows(w, idx) * g[None, :]  # (k, I): the winning columns of iw, dense
    y = y + alpha * (_sum_k(cols, s_w) - y)
    q_w = _mv(cols, y)
    zeta = jnp.where(s_w > 0, leta, seta)
    new_cols = cols * (1 + y[None, :] * (zeta * (s_w - q_w) / jnp.maximum(q_w, prec))[:, None])
    g = g * (1 - seta * y)
    w = _set_rows(w, idx, new_cols / g[None, :])
    if renorm_every is not None:
        # iw <- c iw / rowsum(iw) is g <- c / rowsum(w): only the row scale changes
        g = lax.cond(t % renorm_every == 0, lambda: c / jnp.sum(w, axis=0), lambda: g)
    return w, g, y


def _step(carry: Carry, v, t, p, hyper, k: int, renorm_every: int | None, fold_every: int | None):
    """One step; ``t`` is the step within the epoch (not batched under vmap), ``p`` is ``sw v`` (or None)."""
    dtype = v.dtype
    xi, alpha, leta, seta, c, prec = (jnp.asarray(h, dtype) for h in hyper)
    sw, w, g, y, _ = carry
    if p is None:
        p = sw @ v
    vals, idx = _top_k(p, k)
    sw, rows, e = _sparse_update(sw, v, vals, idx, xi, prec)
    s_w = vals / jnp.sum(rows, axis=1)  # the k non-zero entries of s
    w, g, y = _invariant_update(w, g, y, idx, s_w, t, alpha, leta, seta, c, prec, renorm_every)
    carry = Carry(sw, w, g, y, carry.t + 1)
    if fold_every is not None:
        carry = _fold_if(carry, (t + 1) % fold_every == 0)
    return carry, (jnp.sum(e**2), jnp.sum(v**2), jnp.mean(y))


def step(carry: Carry, v: jax.Array, hyper: InvarianceHyper, *, k: int, renorm_every: int | None, fold_every: int = 1024):
    """One learning step on the window ``v`` ``(M,)``; returns ``(carry, (||e||^2, ||v||^2, mean(y)))``."""
    return _step(carry, v, carry.t, None, hyper, k, renorm_every, fold_every)


BLOCK = 32  # frames whose responses ``sw v`` are computed together (larger pays under vmap: 8 weight sets read once per block)
UNROLL = 2  # steps per iteration of the compiled loop inside a block


def _block_step(state, xs, hyper, k, renorm_every, n, grid):
    """One step inside a block (same update as :func:`_step`).

    ``state``: ``(sw, w, g, y, pt, acc_e, acc_y)`` with ``pt`` ``(grid[0] * grid[1], block)`` the
    responses of the units (padded with -inf) to the block's frames, ``acc_e`` ``(M,)`` and ``acc_y`` ``(I,)`` the running
    sums of ``e**2`` and ``y``. ``xs``: the frame ``v`` ``(M,)``, its index ``j`` in the block, its
    step ``t`` in the epoch and ``fbx`` ``(block + 1, M)``, the block's frames and a row of ones.
    """
    sw, w, g, y, pt, acc_e, acc_y = state
    v, j, t, fbx = xs
    dtype = v.dtype
    xi, alpha, leta, seta, c, prec = (jnp.asarray(h, dtype) for h in hyper)
    p = lax.dynamic_index_in_dim(pt, j, 1, keepdims=False).reshape(grid)  # sw v with the current sw
    vals, idx = _top_k_2d(p, k, n)
    sw, rows, e = _sparse_update(sw, v, vals, idx, xi, prec)
    acc_e = acc_e + e * e
    prod = rows @ fbx.T  # (k, block + 1): the new rows' responses to the block's frames, and their sums
    s_w = vals / prod[:, -1]  # the k non-zero entries of s
    pt = _set_rows(pt, idx, prod[:, :-1])
    w, g, y = _invariant_update(w, g, y, idx, s_w, t, alpha, leta, seta, c, prec, renorm_every)
    return (sw, w, g, y, pt, acc_e, acc_y + y), None


def _epoch(carry: Carry, frames, hyper, k: int, renorm_every: int | None, block: int | None = None):
    """One pass over ``frames`` ``(T, M)``: blocks of ``block`` frames, then the remainder step by step.

    Returns ``(carry, (sum ||e||^2, sum ||v||^2, sum of mean(y)))`` over the pass. The step index
    ``t`` comes from the scanned sequence, not from the carry, so that it stays unbatched under
    ``vmap`` and the renormalisation stays a branch, not a select.
    """
    block = block or BLOCK
    T, M = frames.shape
    n_blocks = T // block
    fold_blocks = max(1, 1024 // block)
    n_sparse = carry.sw.shape[0]
    grid = _grid(n_sparse)
    n_padded = grid[0] * grid[1]
    dtype = frames.dtype

    def block_body(state, xs):
        carry, acc_e, acc_y = state
        fb, b = xs
        pt = carry.sw @ fb.T  # (N, block)
        pt = jnp.concatenate([pt, jnp.full((n_padded - n_sparse, block), -jnp.inf, dtype)])  # padded to the top-k grid
        fbx = jnp.concatenate([fb, jnp.ones((1, M), dtype)])
        st = (carry.sw, carry.w, carry.g, carry.y, pt, acc_e, acc_y)
        st, _ = lax.scan(lambda s, x: _block_step(s, x + (fbx,), hyper, k, renorm_every, n_sparse, grid), st,
                         (fb, jnp.arange(block), b * block + jnp.arange(block)), unroll=UNROLL)
        sw, w, g, y, _, acc_e, acc_y = st
        carry = _fold_if(carry._replace(sw=sw, w=w, g=g, y=y), (b + 1) % fold_blocks == 0)
        return (carry, acc_e, acc_y), None

    acc = (jnp.zeros((M,), dtype), jnp.zeros_like(carry.y))
    if n_blocks:
        fb = frames[: n_blocks * block].reshape(n_blocks, block, M)
        (carry, acc_e, acc_y), _ = lax.scan(block_body, (carry,) + acc, (fb, jnp.arange(n_blocks)))
        acc = (acc_e, acc_y)
    e2 = jnp.sum(acc[0])
    ym = jnp.sum(acc[1]) / carry.y.shape[0]
    if T > n_blocks * block:
        def rest(carry, xs):
            v, t = xs
            return _step(carry, v, t, None, hyper, k, renorm_every, None)

        carry, out = lax.scan(rest, carry, (frames[n_blocks * block:], jnp.arange(n_blocks * block, T)))
        e2 = e2 + jnp.sum(out[0])
        ym = ym + jnp.sum(out[2])
    return _fold(carry), (e2, jnp.sum(frames**2), ym)


def _check_train(params, frames, k):
    sw = check_array("params.sw", params.sw, ndim=2)
    iw = check_array("params.iw", params.iw, ndim=2)
    frames = check_array("frames", frames, ndim=2)
    if iw.shape[1] != sw.shape[0]:
        raise ValueError(f"params.iw: expected {sw.shape[0]} columns (one per sparse unit), got shape {tuple(iw.shape)}")
    if frames.shape[1] != sw.shape[1]:
        raise ValueError(f"frames: expected windows of {sw.shape[1]} values to match params.sw, got shape {tuple(frames.shape)}")
    if frames.dtype != sw.dtype:
        raise TypeError(f"frames: expected dtype {sw.dtype} like the weights, got {frames.dtype}")
    k = check_int("k", k, min_value=1)
    if k > sw.shape[0]:
        raise ValueError(f"k: expected at most the {sw.shape[0]} sparse units, got {k}")
    return frames, k


def _check_hyper(hyper: InvarianceHyper):
    for name, value in zip(hyper._fields, hyper):
        check_positive(f"hyper.{name}", value)


@partial(jax.jit, static_argnames=("k", "n_epochs", "renorm_every"))
def _train(params, frames, hyper, k, n_epochs, renorm_every):
    def epoch(carry, _):
        carry = carry._replace(y=jnp.zeros_like(carry.y), t=jnp.zeros_like(carry.t))
        carry, (e2, v2, ym) = _epoch(carry, frames, hyper, k, renorm_every)
        return carry, EpochStats(e2 / v2, ym / frames.shape[0])

    carry, stats = lax.scan(epoch, init_carry(params), None, length=n_epochs)
    return params_of(carry), stats


def train(params: InvarianceParams, frames, hyper: InvarianceHyper = InvarianceHyper(), *, k: int = 4, n_epochs: int = 1,
          renorm_every: int | None = 2000):
    """Train on ``frames`` ``(T, M)`` for ``n_epochs`` passes (the same frames each epoch).

    Returns:
      ``(params, stats)``: the trained weights and :class:`EpochStats` with leaves ``(n_epochs,)``.
    """
    frames, k = _check_train(params, frames, k)
    _check_hyper(hyper)
    n_epochs = check_int("n_epochs", n_epochs, min_value=1)
    if renorm_every is not None:
        renorm_every = check_int("renorm_every", renorm_every, min_value=1)
    return _train(params, frames, hyper, k, n_epochs, renorm_every)


@partial(jax.jit, static_argnames=("k",))
def encode(params: InvarianceParams, frames, *, k: int = 4, alpha=1 / 3):
    """The trained network on a sequence, without learning.

    Returns:
      ``(s, u, y)``: sparse codes ``(T, N)`` (``k`` winners each, divided by the row sums of
      ``sw``), invariant drive ``u = iw s`` ``(T, I)`` and the moving average ``y`` ``(T, I)``.
    """
    p = frames @ params.sw.T
    vals, idx = lax.top_k(p, k)
    rowsum = jnp.sum(params.sw, axis=1)
    s = jnp.zeros_like(p).at[jnp.arange(p.shape[0])[:, None], idx].set(vals / rowsum[idx])
    u = s @ params.iw.T

    def ema(y, ut):
        y = y + alpha * (ut - y)
        return y, y

    _, y = lax.scan(ema, jnp.zeros_like(u[0]), u)
    return s, u, y


def winner_persistence(codes) -> jax.Array:
    """Fraction of consecutive frames whose strongest unit is the same (codes ``(T, n)``)."""
    winners = jnp.argmax(codes, axis=1)
    return jnp.mean((winners[1:] == winners[:-1]).astype(codes.dtype))


def slowness(codes) -> jax.Array:
    """``<(x_t - x_{t-1})^2> / var(x)`` averaged over units (lower is slower)."""
    diff = jnp.mean(jnp.diff(codes, axis=0) ** 2, axis=0)
    var = jnp.var(codes, axis=0)
    return jnp.mean(jnp.where(var > 0, diff / jnp.where(var > 0, var, 1), 0))


def coverage(params: InvarianceParams) -> jax.Array:
    """How much invariant weight each sparse unit receives: ``iw.sum(0)`` ``(N,)``."""
    return jnp.sum(params.iw, axis=0)


def dead_units(sparse_codes) -> jax.Array:
    """Number of sparse units never among the winners in ``sparse_codes`` ``(T, N)``."""
    return jnp.sum(jnp.all(sparse_codes == 0, axis=0))


def affinity_groups(params: InvarianceParams, n_top: int = 8) -> jax.Array:
    """Indices ``(I, n_top)`` of the sparse units each invariant unit weights most."""
    return lax.top_k(params.iw, n_top)[1]


def invariant_error(params: InvarianceParams, s, y) -> jax.Array:
    """``sum_t ||s_t - iw^T y_t||^2 / sum_t ||s_t||^2`` for codes from :func:`encode`."""
    q = y @ params.iw
    return jnp.sum((s - q) ** 2) / jnp.sum(s**2)
