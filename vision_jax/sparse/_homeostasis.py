"""Homeostasis rules for sparse coding: None, OLS, HEH, HAP, EMP.

Each rule is a pure ``(init, update)`` pair over one :class:`HomeostasisState`, in the style of
optax::

    rule = homeostasis("HAP", eta_homeo=0.01)
    state = rule.init(n_atoms, nb_quant=128)
    codes = matching_pursuit(x, D, 21, **coding_args(state, "HAP"))
    state = rule.update(state, codes)

Every rule tracks the same statistics (so that they can be compared and vmapped together):
  - ``p``: running probability that each atom is active, ``p <- (1 - eta_h) p + eta_h mean_k[a_ki != 0]``
    (set to the first batch's value on the first update);
  - ``p_cum``: running cumulative histograms of ``1 - exp(-relu(a_ki) / C)`` over the batch, zeros
    included, on ``nb_quant`` points ``linspace(0, 1, nb_quant)`` (initially the identity line);
  - ``variance``: running normalised variance ``mean_k a_ki^2 / mean_jk a_kj^2`` (OLS).
and sets the selection gain:
  - ``None``: 1;
  - ``OLS`` (Olshausen & Field): ``variance ** -alpha_homeo``;
  - ``HEH`` (histogram equalisation): selection by ``p_cum`` (gain unused, 1);
  - ``HAP``: ``log(p_i) / log(target)``, ``target = mean_ki[a_ki > 0]`` of the batch (about N0 / N);
  - ``EMP`` (Sandin et al.): ``1[p_i < target (1 + alpha_homeo)]``.
Guards: ``p`` is clipped to [1e-6, 1 - 1e-6] in HAP so that an atom never used gets a large
finite gain (not +inf, which would turn ``0 * inf`` into NaN), and ``variance`` is floored at
1e-12 in OLS.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from vision_jax._checks import check_choice, check_int, check_nonnegative, check_positive, check_probability

__all__ = ["METHODS", "HomeostasisState", "Homeostasis", "BatchStatistics", "homeostasis", "method_index", "update_state",
           "update_from_statistics", "batch_statistics", "entry_statistics", "p_cum_error"]

METHODS = ("None", "OLS", "HEH", "HAP", "EMP")
HEH = METHODS.index("HEH")


class HomeostasisState(NamedTuple):
    """Running statistics and gains of ``N`` atoms (see module docstring)."""

    gain: jax.Array  # (N,) selection gains
    p: jax.Array  # (N,) activation probability
    p_cum: jax.Array  # (N, nb_quant) cumulative histograms
    variance: jax.Array  # (N,) normalised variance
    count: jax.Array  # () int32, number of updates


class Homeostasis(NamedTuple):
    """A homeostasis rule: ``init(n_atoms, nb_quant, dtype) -> state``, ``update(state, codes) -> state``."""

    init: Callable
    update: Callable
    method: str


def method_index(method) -> int:
    """Position of ``method`` in :data:`METHODS` (``None`` is accepted for ``"None"``)."""
    method = "None" if method is None else method
    check_choice("method", method, METHODS)
    return METHODS.index(method)


def init_state(n_atoms: int, nb_quant: int = 128, dtype=jnp.float32) -> HomeostasisState:
    """Unit gains, zero probabilities, identity cumulative histograms."""
    n_atoms = check_int("n_atoms", n_atoms, min_value=1)
    nb_quant = check_int("nb_quant", nb_quant, min_value=2)
    line = jnp.linspace(0.0, 1.0, nb_quant, dtype=dtype)
    return HomeostasisState(
        gain=jnp.ones((n_atoms,), dtype),
        p=jnp.zeros((n_atoms,), dtype),
        p_cum=jnp.tile(line[None, :], (n_atoms, 1)),
        variance=jnp.ones((n_atoms,), dtype),
        count=jnp.zeros((), jnp.int32),
    )


class BatchStatistics(NamedTuple):
    """What one batch of codes contributes to the running statistics."""

    p: jax.Array  # (N,) fraction of the batch in which each atom is active
    p_cum: jax.Array  # (N, nb_quant) cumulative histogram of 1 - exp(-relu(a) / C)
    power: jax.Array  # (N,) mean squared coefficient
    target: jax.Array  # () fraction of positive coefficients over the whole batch


def _batch_p_cum(codes: jax.Array, C, nb_quant: int) -> jax.Array:
    """Cumulative histogram ``(N, nb_quant)`` of ``1 - exp(-relu(a) / C)`` per atom, zeros included."""
    K, N = codes.shape
    n_bins = nb_quant - 1
    bins = _bins(codes, C, n_bins)
    hist = jnp.zeros((N, n_bins), codes.dtype).at[jnp.arange(N)[None, :], bins].add(1.0) / K
    return _cumulative(hist)


def _bins(a, C, n_bins: int):
    """Histogram bin of ``1 - exp(-relu(a) / C)`` among ``n_bins`` equal bins of [0, 1] (the last one closed)."""
    r = 1 - jnp.exp(-jnp.maximum(a, 0) / C)
    return jnp.clip(jnp.floor(r * n_bins).astype(jnp.int32), 0, n_bins - 1)


def _cumulative(hist):
    return jnp.concatenate([jnp.zeros((hist.shape[0], 1), hist.dtype), jnp.cumsum(hist, axis=1)], axis=1)


def batch_statistics(codes: jax.Array, C, nb_quant: int) -> BatchStatistics:
    """:class:`BatchStatistics` of dense codes ``(K, N)``."""
    dtype = codes.dtype
    return BatchStatistics(p=jnp.mean((codes != 0).astype(dtype), axis=0), p_cum=_batch_p_cum(codes, C, nb_quant),
                           power=jnp.mean(codes**2, axis=0), target=jnp.mean((codes > 0).astype(dtype)))


def entry_statistics(idx: jax.Array, coef: jax.Array, n_atoms: int, C, nb_quant: int) -> BatchStatistics:
    """:class:`BatchStatistics` of the codes whose non-zeros are listed as entries (as matching pursuit makes them).

    Row ``k`` of the codes is ``sum_s coef[k, s] * onehot(idx[k, s])`` (``idx``, ``coef``: ``(K, S)``;
    an atom may be listed more than once in a row). Equal to :func:`batch_statistics` of those
    dense codes, but touches ``K * S`` entries instead of ``K * N`` coefficients: most
    coefficients are zero and all fall in the first histogram bin.
    """
    K, S = idx.shape
    dtype = coef.dtype
    same = idx[:, :, None] == idx[:, None, :]  # (K, S, S)
    value = jnp.sum(jnp.where(same, coef[:, None, :], 0), axis=2)  # the atom's coefficient in the dense row
    first = ~jnp.any(jnp.tril(same, k=-1), axis=2)  # one entry per (row, atom)
    nonzero = first & (value != 0)
    value = jnp.where(nonzero, value, 0)
    flat = idx.reshape(-1)

    def per_atom(w):
        return jnp.zeros((n_atoms,), dtype).at[flat].add(w.reshape(-1))

    count = per_atom(nonzero.astype(dtype))
    n_bins = nb_quant - 1
    bins = _bins(value, C, n_bins)
    hist = jnp.zeros((n_atoms * n_bins,), dtype).at[flat * n_bins + bins.reshape(-1)].add(nonzero.astype(dtype).reshape(-1))
    hist = hist.reshape(n_atoms, n_bins).at[:, 0].add(K - count)  # the zeros of the dense codes
    return BatchStatistics(p=count / K, p_cum=_cumulative(hist / K), power=per_atom(value**2) / K,
                           target=jnp.sum((value > 0).astype(dtype)) / (K * n_atoms))


def update_state(state: HomeostasisState, codes: jax.Array, method, eta_homeo, alpha_homeo, C) -> HomeostasisState:
    """One homeostasis step from a batch of codes ``(K, N)``.

    ``method`` is an index into :data:`METHODS`, a Python int (one rule compiled) or a traced
    int32 (``lax.switch``: lets a vmapped sweep run several rules in one compiled call).
    """
    stats = batch_statistics(codes, jnp.asarray(C, codes.dtype), state.p_cum.shape[1])
    return update_from_statistics(state, stats, method, eta_homeo, alpha_homeo)


def update_from_statistics(state: HomeostasisState, stats: BatchStatistics, method, eta_homeo, alpha_homeo) -> HomeostasisState:
    """:func:`update_state` from the :class:`BatchStatistics` of a batch."""
    dtype = state.p.dtype
    eta = jnp.asarray(eta_homeo, dtype)
    first = state.count == 0
    p = jnp.where(first, stats.p, (1 - eta) * state.p + eta * stats.p)
    p_cum = (1 - eta) * state.p_cum + eta * stats.p_cum
    v_batch = stats.power / jnp.maximum(jnp.mean(stats.power), 1e-30)
    variance = jnp.where(first, v_batch, (1 - eta) * state.variance + eta * v_batch)
    target = stats.target
    alpha = jnp.asarray(alpha_homeo, dtype)

    def none(_):
        return jnp.ones_like(p)

    def ols(_):
        return jnp.maximum(variance, 1e-12) ** (-alpha)

    def hap(_):
        pc = jnp.clip(p, 1e-6, 1 - 1e-6)
        return jnp.log(pc) / jnp.log(jnp.clip(target, 1e-6, 1 - 1e-6))

    def emp(_):
        return (p < target * (1 + alpha)).astype(dtype)

    branches = [none, ols, none, hap, emp]  # HEH selects through p_cum: its gain stays 1
    if isinstance(method, int):
        gain = branches[method](None)
    else:
        gain = lax.switch(method, branches, None)
    return HomeostasisState(gain=gain, p=p, p_cum=p_cum, variance=variance, count=state.count + 1)


def homeostasis(method="HAP", *, eta_homeo=0.01, alpha_homeo=0.05, C=3.0) -> Homeostasis:
    """A homeostasis rule as a pure ``(init, update)`` pair.

    Args:
      method: ``"None"``, ``"OLS"``, ``"HEH"``, ``"HAP"`` or ``"EMP"``.
      eta_homeo: rate of the running statistics, in [0, 1].
      alpha_homeo: exponent (OLS) or tolerance (EMP), >= 0.
      C: scale of the HEH non-linearity ``1 - exp(-a / C)`` (> 0).
    """
    index = method_index(method)
    check_probability("eta_homeo", eta_homeo)
    check_nonnegative("alpha_homeo", alpha_homeo)
    check_positive("C", C)

    def update(state, codes):
        return update_state(state, codes, index, eta_homeo, alpha_homeo, C)

    return Homeostasis(init=init_state, update=update, method=METHODS[index])


def p_cum_error(p_cum: jax.Array) -> jax.Array:
    """The paper's ``qerror``: ``sum_i sum_j |P_cum_ij - mean_i P_cum_ij|`` (0 when all atoms are used alike)."""
    return jnp.sum(jnp.abs(p_cum - jnp.mean(p_cum, axis=0, keepdims=True)))
