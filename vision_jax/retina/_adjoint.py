"""Reverse-mode derivatives of a run without spikes from a native CPU kernel (``run(..., adjoint="native")``).

Such a run computes its outputs with the JAX program of :mod:`._model`; under ``jax.grad``
(``jax.vjp``, ``value_and_grad``) on CPU its forward pass and derivative come instead from
``vision_jax/_native/retina.cc``: the same cascade stepped frame by frame in C++, and its
reverse-mode derivative written by hand (every 16th state kept, the frames between recomputed on
the way back). XLA's differentiated scan runs about 120 small kernels per frame; here a frame is
a few loops over maps that stay in the cache. Gradients equal JAX's differentiation of the
program to float rounding (``tests/test_retina.py``: 1e-9 in float64).

The function has no forward-mode derivative (``jax.jvp``, ``jax.linearize``, ``jax.jacfwd``),
which is why it is not :func:`run`'s default; :func:`fit` uses it (``adjoint="auto"``).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from vision_jax import _native
from vision_jax.retina._model import (PARAM_FIELDS, RetinaOutput, RetinaParams, RetinaState, _decays, _kernels, _run,
                                      _n_poles)

_SEGMENT = 16  # the forward pass keeps every 16th state (kSegment in retina.cc)
_PADDING_CODES = {"reflect": 0, "symmetric": 1, "circular": 2, "zero": 3}  # enum Padding in retina.cc


def native_reason(params: RetinaParams, movie, spikes: bool) -> str | None:
    """Why the native derivative cannot serve this run (None: it can)."""
    if spikes:
        return "it covers runs without spikes (spikes=False)"
    if jax.default_backend() != "cpu":
        return f"it runs on CPU, the default backend is {jax.default_backend()}"
    if movie.dtype not in (np.float32, np.float64):
        return f"it computes in float32 or float64, the movie is {movie.dtype}"
    if any(np.ndim(getattr(params, f)) != 0 for f in PARAM_FIELDS):
        return "it takes one value per parameter (vmap over parameter sets instead of passing arrays)"
    if _native.target("retina") is None:
        return "the kernel is not available (no C++ compiler, or VISION_JAX_NATIVE=0)"
    return None


def _pack_params(params: RetinaParams, radii: tuple):
    """The kernel's 17 scalars and its concatenated blur taps (see retina.cc)."""
    p, cfg = params, params.config
    d = _decays(p)
    scalars = jnp.stack([p.opl_amplification / cfg.luminosity_range, d.center, d.undershoot, d.surround, d.adaptation,
                         d.transient, p.undershoot_weight, p.opl_weight, p.bipolar_amplification, p.inert_leak,
                         p.adaptation_amplification, p.transient_weight, p.v0, p.i0, p.ganglion_amplification, p.leak,
                         p.refr_mean])
    kernels = [k for k in _kernels(p, radii) if k is not None]
    taps = jnp.concatenate(kernels) if kernels else jnp.zeros((0,), scalars.dtype)
    return scalars, taps


def _attributes(params: RetinaParams, radii: tuple) -> dict:
    cfg = params.config
    counts = [0 if r == 0 else 3 if r == -1 else 2 * r + 1 for r in radii]
    return dict(poles=np.int64(_n_poles(cfg)), leaky=np.int64(cfg.leaky_heat), undershoot=np.int64(cfg.undershoot),
                lag=np.int64(cfg.stage_lag), padding=np.int64(_PADDING_CODES[cfg.padding]),
                n_c=np.int64(counts[0]), n_s=np.int64(counts[1]), n_a=np.int64(counts[2]), n_p=np.int64(counts[3]),
                dt=np.float64(cfg.dt))


def _pack_state(state: RetinaState):
    """The carried maps as one ``(poles + 10, H, W)`` array (the kernel's order)."""
    maps = (state.undershoot_lowpass, state.undershoot, state.surround, state.opl, state.bipolar, state.adaptation,
            state.transient_lowpass, state.transient)
    return jnp.concatenate([state.center] + [m[None] for m in maps] + [state.current])


def _unpack_state(packed, like: RetinaState, **rest) -> RetinaState:
    P = like.center.shape[0]
    maps = [packed[P + i] for i in range(8)]
    return RetinaState(packed[:P], *maps, packed[P + 8:], **rest)


def _native_forward(spec, params, state, movie):
    """The run by the native kernel: ``((state, RetinaOutput), states)``, ``states`` the packed
    state before every 16th frame ``(ceil(T / 16), poles + 10, H, W)`` (what the backward pass
    starts from)."""
    radii, stages, rates = spec
    T, H, W = movie.shape
    dtype = movie.dtype
    scalars, taps = _pack_params(params, radii)
    packed = _pack_state(state)

    def shape(wanted, *dims):
        return jax.ShapeDtypeStruct(dims if wanted else (0,), dtype)

    results = (jax.ShapeDtypeStruct(packed.shape, dtype), jax.ShapeDtypeStruct((-(-T // _SEGMENT),) + packed.shape, dtype),
               shape(rates, T, 2, H, W), shape(stages, T, H, W),
               shape(stages, T, H, W), shape(stages, T, H, W), shape(stages, T, 2, H, W))
    call = jax.ffi.ffi_call(_native.target("retina") + "_forward", results, vmap_method="expand_dims")
    final, states, r, opl, bip, adapt, cur = call(movie, packed, scalars, taps, **_attributes(params, radii))
    new = _unpack_state(final, state, voltage=state.voltage, refractory=state.refractory, key=state.key,
                        frame=state.frame + T)
    out = RetinaOutput(r if rates else None, None, *((opl, bip, adapt, cur) if stages else ()))
    return (new, out), states


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _differentiable_run(spec, params, state, movie):
    radii, stages, rates = spec
    return _run(params, state, movie, radii, False, (False, False), stages, False, rates)


def _fwd(spec, params, state, movie):
    result, states = _native_forward(spec, params, state, movie)
    return result, (params, state, movie, states)


def _bwd(spec, residuals, cotangents):
    radii = spec[0]
    params, state, movie, states = residuals
    g_state, g_out = cotangents
    dtype = movie.dtype
    (scalars, taps), pack_vjp = jax.vjp(lambda p: _pack_params(p, radii), params)
    empty = jnp.zeros((0,), dtype)

    def given(x):  # the outputs not asked for are None
        return empty if x is None else jnp.asarray(x, dtype)

    results = (jax.ShapeDtypeStruct(movie.shape, dtype), jax.ShapeDtypeStruct(states.shape[1:], dtype),
               jax.ShapeDtypeStruct(scalars.shape, dtype), jax.ShapeDtypeStruct(taps.shape, dtype))
    call = jax.ffi.ffi_call(_native.target("retina") + "_backward", results, vmap_method="expand_dims")
    output_cts = (g_out.rates, g_out.opl, g_out.bipolar, g_out.adaptation, g_out.ganglion_input)
    g_movie, g_packed, g_scalars, g_taps = call(movie, states, scalars, taps, _pack_state(g_state),
                                                *map(given, output_cts), **_attributes(params, radii))
    (g_params,) = pack_vjp((g_scalars, g_taps))
    float0 = jax.dtypes.float0
    g_state0 = _unpack_state(g_packed, state, voltage=g_state.voltage, refractory=g_state.refractory,
                             key=np.zeros(state.key.shape, float0), frame=np.zeros(state.frame.shape, float0))
    return g_params, g_state0, g_movie


_differentiable_run.defvjp(_fwd, _bwd)


@partial(jax.jit, static_argnames=("radii", "stages", "rates"))
def run_with_native_adjoint(params, state, movie, radii, stages, rates):
    """``_run`` without spikes whose reverse-mode derivative is the native kernel's."""
    return _differentiable_run((radii, stages, rates), params, state, movie)
