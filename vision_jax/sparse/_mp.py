"""Matching pursuit with homeostatic selection, jitted and blocked for the cache.

Notation: ``x`` is a batch ``(K, M)`` of patches, ``dictionary`` ``(N, M)`` has unit-norm rows
(atoms), ``G = D D^T`` is the Gram matrix and ``c = x D^T`` the running correlations. Each of
``n_steps`` steps selects one atom per sample, adds its coefficient and removes its projection
from the correlations through ``G`` (atoms may be selected again).

Selection (per sample):
  - gain path: ``i* = argmax_i relu(c_i) * gain_i`` (``gain`` of ones: plain ReLU-MP);
  - homeostatic (HEH) path: ``i* = argmax_i P_cum_i(1 - exp(-relu(c_i) / C))``, where row ``i``
    of ``p_cum`` ``(N, nb_quant)`` is a cumulative histogram sampled on ``linspace(0, 1,
    nb_quant)`` and read by linear interpolation.
The coefficient added is ``alpha * c_{i*}`` when the selected score is positive. A sample whose
scores are all <= 0 (nothing left to explain with a positive coefficient) gets no further
coefficient, where the reference implementation would add a non-positive one to atom 0.

Speed: in float32 on CPU the pursuit runs as a native kernel (``vision_jax/_native``: one patch at
a time, its correlations in L1 through all steps, the HEH lookup vectorised with hardware gathers;
the same entries; in the benchmark's runs of 4096 patches 1.0-1.1x the pure-JAX program for MP and
1.03-1.27x for HEH). The pure-JAX program (other platforms, float64,
``VISION_JAX_NATIVE=0``) processes the batch in blocks (``block_size`` samples) whose correlations stay in
cache through all steps; the arg-max is computed as a max followed by a max over the matching
indices, which XLA vectorises better on CPU than its generic arg-max reduction. The HEH lookup
reads each coefficient's histogram segment (value and slope, packed as one complex number) with a
single gather: on CPU the gather, not the arithmetic, is what the HEH path costs.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vision_jax import _native
from vision_jax._checks import check_array, check_int, check_positive, is_traced
from vision_jax._compile import jit_with_cpu_options

__all__ = ["matching_pursuit", "encode", "encode_entries", "to_dense", "heh_quantile"]


def heh_table(p_cum: jax.Array) -> jax.Array:
    """Segments of the cumulative histograms ``(N, Q)`` as ``(N, Q - 1)`` complex values
    ``value + 1j * slope``: one lookup per coefficient instead of two (half the gathers)."""
    return lax.complex(p_cum[:, :-1], p_cum[:, 1:] - p_cum[:, :-1])


def _heh_lookup(table: jax.Array, r: jax.Array) -> jax.Array:
    q = table.shape[-1] + 1
    pos = jnp.clip(r, 0.0, 1.0) * (q - 1)
    lo = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, q - 2)
    frac = pos - lo.astype(pos.dtype)
    segment = table[jnp.arange(table.shape[0])[None, :], lo]
    return jnp.real(segment) + jnp.imag(segment) * frac


def heh_quantile(p_cum: jax.Array, r: jax.Array) -> jax.Array:
    """``P_cum_i(r_ki)``: row ``i`` of ``p_cum`` ``(N, Q)`` read at ``r`` ``(K, N)`` in [0, 1].

    ``p_cum[i, j]`` is the value at ``j / (Q - 1)``; values in between are interpolated linearly.
    """
    return _heh_lookup(heh_table(p_cum), r)


def _argmax_rows(q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(index of the first maximum, maximum) of each row of ``q`` ``(B, N)``."""
    m = jnp.max(q, axis=1, keepdims=True)
    neg_iota = -jnp.arange(q.shape[1], dtype=q.dtype)[None, :]
    idx = -jnp.max(jnp.where(q == m, neg_iota, -q.shape[1]), axis=1)
    return idx.astype(jnp.int32), m[:, 0]


def _mp_block(c, G, gain, table, C, alpha, n_steps: int, heh):
    """MP on one block of correlations ``c`` ``(B, N)``; returns indices and coefficients ``(n_steps, B)``.

    ``table`` is :func:`heh_table` of the cumulative histograms (HEH path).

    ``heh`` is a Python bool (one selection rule compiled) or a traced boolean (both computed,
    one kept: lets a vmapped sweep mix homeostasis methods in one compiled call).
    """
    rows = jnp.arange(c.shape[0])

    def step(c, _):
        rc = jnp.maximum(c, 0)
        if heh is True:
            score = _heh_lookup(table, 1 - jnp.exp(-rc / C))
        elif heh is False:
            score = rc * gain[None, :]
        else:
            score = jnp.where(heh, _heh_lookup(table, 1 - jnp.exp(-rc / C)), rc * gain[None, :])
        i, best = _argmax_rows(score)
        ci = c[rows, i]
        delta = jnp.where(best > 0, alpha * ci, 0.0)
        return c - delta[:, None] * G[i], (i, delta)

    _, (idx, coef) = lax.scan(step, c, None, length=n_steps)
    return idx, coef


def _entries_xla(x, dictionary, gain, p_cum, C, alpha, n_steps: int, heh, block_size: int):
    """Pure-JAX pursuit (any platform and dtype): blocks of ``block_size`` samples, a scan over steps."""
    K, M = x.shape
    block_size = min(block_size, K)
    G = dictionary @ dictionary.T
    n_blocks = -(-K // block_size)
    pad = n_blocks * block_size - K
    xb = jnp.pad(x, ((0, pad), (0, 0))).reshape(n_blocks, block_size, M)
    table = heh_table(p_cum)

    def block(xk):
        return _mp_block(xk @ dictionary.T, G, gain, table, C, alpha, n_steps, heh)

    idx, coef = lax.map(block, xb)  # (n_blocks, n_steps, B)
    idx = jnp.swapaxes(idx, 1, 2).reshape(-1, n_steps)[:K]
    coef = jnp.swapaxes(coef, 1, 2).reshape(-1, n_steps)[:K]
    return idx, coef


def _entries_native(target, x, dictionary, gain, p_cum, C, alpha, n_steps: int, heh):
    """The same pursuit as one call of the native CPU kernel (``vision_jax/_native``), float32 only."""
    K = x.shape[0]
    f32 = jnp.float32
    table = jnp.stack([p_cum[:, :-1], p_cum[:, 1:] - p_cum[:, :-1]], axis=-1)
    scalars = jnp.stack([jnp.asarray(C, f32), jnp.asarray(alpha, f32), jnp.asarray(heh, f32)])
    out = (jax.ShapeDtypeStruct((K, n_steps), jnp.int32), jax.ShapeDtypeStruct((K, n_steps), f32))
    call = jax.ffi.ffi_call(target, out, vmap_method="sequential")
    return call(x @ dictionary.T, dictionary @ dictionary.T, table, gain, scalars)


def encode_entries(x, dictionary, gain, p_cum, C, alpha, n_steps: int, heh, block_size: int):
    """Unchecked, traceable matching pursuit as entries: ``(idx, coef)``, each ``(K, n_steps)``.

    Step ``s`` of sample ``k`` added ``coef[k, s]`` to atom ``idx[k, s]`` (an atom may appear more
    than once in a row; a coefficient is 0 once nothing is left to explain). :func:`to_dense`
    turns the entries into codes. ``heh`` may be traced (see :func:`_mp_block`).

    In float32 on CPU the pursuit runs as a native kernel where one compiles (see
    ``vision_jax._native``; the same entries, up to about 1.3x faster); elsewhere, and with
    ``VISION_JAX_NATIVE=0``, as the blocked JAX program (``block_size`` samples per block).
    """
    args = (x, dictionary, gain, p_cum, C, alpha)
    xla = functools.partial(_entries_xla, n_steps=n_steps, heh=heh, block_size=block_size)
    if all(jnp.result_type(a) == jnp.float32 for a in (x, dictionary, gain, p_cum)):
        target = _native.target("matching_pursuit")
        if target is not None:
            native = functools.partial(_entries_native, target, n_steps=n_steps, heh=heh)
            return lax.platform_dependent(*args, cpu=native, default=xla)
    return xla(*args)


def to_dense(idx, coef, n_atoms: int):
    """Codes ``(K, n_atoms)`` from matching-pursuit entries ``(K, S)`` (repeated atoms add up)."""
    K = idx.shape[0]
    return jnp.zeros((K, n_atoms), coef.dtype).at[jnp.arange(K)[:, None], idx].add(coef)


def encode(x, dictionary, gain, p_cum, C, alpha, n_steps: int, heh, block_size: int):
    """Unchecked, traceable matching pursuit (see :func:`matching_pursuit`); ``heh`` may be traced."""
    idx, coef = encode_entries(x, dictionary, gain, p_cum, C, alpha, n_steps, heh, block_size)
    return to_dense(idx, coef, dictionary.shape[0])


_matching_pursuit = jax.jit(encode, static_argnames=("n_steps", "heh", "block_size"))
# the HEH lookup gathers: wider vectors help on CPU (see vision_jax._compile)
_matching_pursuit_heh = jit_with_cpu_options(encode, static_argnames=("n_steps", "heh", "block_size"))


_UNIT_NORM_TOLERANCE = 1e-3
_CUMULATIVE_TOLERANCE = 1e-6


def _check_unit_rows(dictionary) -> None:
    """The pursuit's updates assume unit-norm atoms: a dictionary far from that is a mistake (checked when concrete)."""
    if is_traced(dictionary):
        return
    norms = np.linalg.norm(np.asarray(dictionary, np.float64), axis=1)
    if norms.size and np.max(np.abs(norms - 1)) > _UNIT_NORM_TOLERANCE:
        raise ValueError(f"dictionary: expected unit-norm rows (atoms), got row norms from {norms.min():.4g} to "
                         f"{norms.max():.4g}; normalise with d / jnp.linalg.norm(d, axis=1, keepdims=True)")


def _check_cumulative(p_cum) -> None:
    """Rows of ``p_cum`` are cumulative histograms: non-decreasing, within [0, 1] (checked when concrete)."""
    if is_traced(p_cum):
        return
    p = np.asarray(p_cum)
    if np.min(p) < -_CUMULATIVE_TOLERANCE or np.max(p) > 1 + _CUMULATIVE_TOLERANCE:
        raise ValueError(f"p_cum: expected cumulative histograms with values in [0, 1], got values from {np.min(p):.4g} "
                         f"to {np.max(p):.4g}")
    if np.min(np.diff(p, axis=1)) < -_CUMULATIVE_TOLERANCE:
        rows = np.flatnonzero(np.any(np.diff(p, axis=1) < -_CUMULATIVE_TOLERANCE, axis=1))
        raise ValueError(f"p_cum: expected non-decreasing rows (cumulative histograms), got {rows.size} decreasing "
                         f"row(s), the first is row {rows[0]}")


def matching_pursuit(
    x,
    dictionary,
    n_steps: int,
    *,
    gain=None,
    p_cum=None,
    C=3.0,
    alpha=1.0,
    block_size: int = 1024,
) -> jax.Array:
    """Sparse codes of ``x`` over ``dictionary`` by (homeostatic) matching pursuit.

    Args:
      x: ``(K, M)`` patches (a single ``(M,)`` patch is accepted too).
      dictionary: ``(N, M)`` atoms with unit L2 norm.
      n_steps: number of pursuit steps ``N0`` (>= 1); at most ``n_steps`` non-zeros per code.
      gain: ``(N,)`` non-negative selection gains (gain path); default ones.
      p_cum: ``(N, nb_quant)`` cumulative histograms: selects by the homeostatic quantile
        (HEH path) instead of gains. Mutually exclusive with ``gain``.
      C: scale of the non-linearity ``1 - exp(-a / C)`` of the HEH path (> 0).
      alpha: fraction of the correlation taken as coefficient (1 = full projection).
      block_size: samples processed together (a cache-friendly block; 1024 suits a 2-core CPU).

    Returns:
      ``(K, N)`` codes with ``x ~ codes @ dictionary``.
    """
    dictionary = check_array("dictionary", dictionary, ndim=2)
    x = check_array("x", x, ndim=(1, 2))
    single = x.ndim == 1
    if single:
        x = x[None, :]
    if x.shape[1] != dictionary.shape[1]:
        raise ValueError(f"x: expected patches of length {dictionary.shape[1]} to match dictionary {tuple(dictionary.shape)}, got shape {tuple(x.shape)}")
    if x.dtype != dictionary.dtype:
        raise TypeError(f"x: expected dtype {dictionary.dtype} like dictionary, got {x.dtype}")
    n_steps = check_int("n_steps", n_steps, min_value=1)
    block_size = check_int("block_size", block_size, min_value=1)
    check_positive("C", C)
    check_positive("alpha", alpha)
    _check_unit_rows(dictionary)
    N = dictionary.shape[0]
    if gain is not None and p_cum is not None:
        raise ValueError("gain: give either gain (gain path) or p_cum (HEH path), not both")
    heh = p_cum is not None
    if heh:
        p_cum = check_array("p_cum", p_cum, ndim=2).astype(x.dtype)
        if p_cum.shape[0] != N or p_cum.shape[1] < 2:
            raise ValueError(f"p_cum: expected shape ({N}, nb_quant >= 2), got {tuple(p_cum.shape)}")
        _check_cumulative(p_cum)
        gain = jnp.ones((N,), x.dtype)
    elif gain is None:
        gain, p_cum = jnp.ones((N,), x.dtype), jnp.zeros((N, 2), x.dtype)
    else:
        gain, p_cum = check_array("gain", gain, shape=(N,)).astype(x.dtype), jnp.zeros((N, 2), x.dtype)
        if not is_traced(gain) and bool(np.any(np.asarray(gain) < 0)):
            raise ValueError(f"gain: expected non-negative selection gains, got a minimum of {float(np.min(np.asarray(gain)))}")
    if x.shape[0] == 0:
        return jnp.zeros((0, N), x.dtype)
    codes = (_matching_pursuit_heh if heh else _matching_pursuit)(x, dictionary, gain, p_cum, jnp.asarray(C, x.dtype), jnp.asarray(alpha, x.dtype), n_steps, heh, block_size)
    return codes[0] if single else codes
