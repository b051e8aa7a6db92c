"""A Virtual Retina cascade (Wohrer & Kornprobst 2009) as pure functions stepped by ``lax.scan``.

Per frame ``L_k`` (luminance), with ``e(tau) = exp(-dt / tau)`` and every first-order low-pass
``y_k = e y_{k-1} + (1 - e) x_k`` (exact for an input held over the step):

1. OPL. Centre ``C = (lambda_OPL / luminosity_range) G_sC * L`` through ``center_n + 1`` poles of
   ``center_tau / max(center_n, 1)`` (Virtual Retina's ``ExpCascade``, peak at ``center_tau``);
   undershoot ``U = C - w_U E_tauU(C)``; surround ``S = E_tauS(G_sS * U)``; ``I_OPL = U - w_OPL S``.
   With ``leaky_heat`` the low-passes are single poles and the *state* is blurred after every
   step by ``sigma sqrt(dt / tau)`` (the leaky heat equation) instead of blurring the input.
2. Contrast gain control. ``dV/dt = lambda' I_OPL - (g_A0 + g_A) V``, stepped exactly with the
   conductance held over the step; ``g_A = E_tauA(G_sA * lambda_A V^2)``.
3. Ganglion input. ``V_trs = V - w_G E_tauG(V)``; ``I_G = G_sP * N(sign V_trs)`` for ON (+1) and
   OFF (-1), ``N(v) = i0^2 / (i0 - lambda_G (v - v0))`` below ``v0``, ``i0 + lambda_G (v - v0)`` above.
4. Spiking. Leaky integrate-and-fire ``dV/dt = I_G + eta - g_L V``, threshold 1, reset 0,
   refractory ``refr_mean + refr_sd N(0, 1)`` (clipped at 0), integrated exactly within each step
   (spike time, refractory end and restart inside the step; at most one spike per cell and step).
   The state keeps ``exp(g_L r)`` for the refractory time ``r`` left, so that a step needs no
   logarithm or exponential of the state (``refractory_time`` converts it to seconds).
   The noise current ``eta = sigma_V sqrt(2 g_L / dt) N(0, 1)`` is held over a step; its draws come
   from a counter-based hash of (bits of the state's key, frame index, cell) through Box-Muller.
   ``rates`` are the noise-free LIF rates ``1 / (refr_mean + ln(I / (I - g_L)) / g_L)`` (0 for
   ``I <= g_L``); ``spikes`` are 0/1 forward and carry the gradient of ``rates * dt`` backward
   (a straight-through surrogate).

``stage_lag=True`` (default) reproduces Virtual Retina's order of evaluation: every stage reads
the output its upstream stage had at the previous step (VR feeds all inputs, then steps all
stages), which delays each stage boundary by one ``dt``. ``stage_lag=False`` reads the current
output instead (closer to the continuous equations at large ``dt``).

Lengths are in degrees (``pixels_per_degree``), times in seconds, rates and conductances in Hz.
"""
from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

from vision_jax import filters
from vision_jax._checks import (check_array, check_choice, check_int, check_key, check_nonnegative, check_positive,
                                is_traced)
from vision_jax._compile import REGION_ANALYSIS, jit_with_cpu_options

__all__ = ["RetinaConfig", "RetinaParams", "RetinaState", "RetinaOutput", "PRESETS", "preset", "init_state", "step",
           "run", "blur_radii", "rectification", "lif_rate", "cgc_steady_state", "refractory_time", "MIN_SIGMA_PIXELS"]

# Bound on leak * refractory period: the LIF state keeps exp(leak * refractory time left).
_MAX_LEAK_TIMES_REFRACTORY = 60.0
# A Gaussian narrower than this (in pixels) is not resolved by the grid: raise instead of silently not blurring.
MIN_SIGMA_PIXELS = 0.1
# Below this width (pixels) a blur uses the 3-tap kernel [s^2/2, 1 - s^2, s^2/2] of exact variance s^2
# (a sampled Gaussian that narrow has far less variance than s^2, which matters for the leaky heat equation).
_THREE_TAP_BELOW = 0.8


class RetinaConfig(NamedTuple):
    """Structural settings: static under ``jit`` (changing one recompiles)."""

    dt: float = 0.001  # s
    pixels_per_degree: float = 10.0
    luminosity_range: float = 1.0  # the OPL gain is opl_amplification / luminosity_range
    center_n: int = 0  # centre low-pass: center_n + 1 poles (ignored with leaky_heat)
    leaky_heat: bool = False
    undershoot: bool = True  # whether the OPL has an undershoot stage (VR: the <undershoot> element)
    stage_lag: bool = True  # Virtual Retina's one-step delay at each stage boundary
    padding: str = "symmetric"  # image edges for the blurs (edge sample repeated)


@struct.dataclass
class RetinaParams:
    """Differentiable parameters in physical units, plus the static ``config``.

    A pytree: every float field is a leaf (fit any subset); ``config`` is static.
    """

    center_sigma: float = 0.05  # deg
    center_tau: float = 0.01  # s
    undershoot_tau: float = 0.1  # s
    undershoot_weight: float = 0.8
    surround_sigma: float = 0.15  # deg
    surround_tau: float = 0.004  # s
    opl_amplification: float = 10.0  # lambda_OPL
    opl_weight: float = 1.0  # w_OPL
    bipolar_amplification: float = 50.0  # lambda'_OPL, Hz
    inert_leak: float = 50.0  # g_A0, Hz
    adaptation_amplification: float = 0.0  # lambda_A, Hz
    adaptation_sigma: float = 0.2  # deg
    adaptation_tau: float = 0.005  # s
    transient_tau: float = 0.02  # s
    transient_weight: float = 0.7  # w_G
    v0: float = 0.0  # bipolar linear threshold
    i0: float = 37.0  # Hz, value at the linear threshold
    ganglion_amplification: float = 100.0  # lambda_G, Hz
    pool_sigma: float = 0.0  # deg (0: no pooling)
    leak: float = 50.0  # g_L, Hz
    noise_sigma: float = 0.1  # sigma_V
    refr_mean: float = 0.003  # s
    refr_sd: float = 0.0  # s
    config: RetinaConfig = struct.field(pytree_node=False, default=RetinaConfig())

    def with_config(self, **changes) -> "RetinaParams":
        """A copy with some ``config`` fields changed."""
        return self.replace(config=self.config._replace(**changes))


PARAM_FIELDS = tuple(f for f in RetinaParams.__dataclass_fields__ if f != "config")
_TAUS = ("center_tau", "undershoot_tau", "surround_tau", "adaptation_tau", "transient_tau")
_SIGMAS = ("center_sigma", "surround_sigma", "adaptation_sigma", "pool_sigma")


class RetinaState(NamedTuple):
    """Carried state; each map ``(H, W)`` unless noted. Stage outputs are kept for ``stage_lag``."""

    center: jax.Array  # (poles, H, W) centre low-pass stages; the last is C
    undershoot_lowpass: jax.Array  # E_tauU(C)
    undershoot: jax.Array  # U
    surround: jax.Array  # S (without the w_OPL weight)
    opl: jax.Array  # I_OPL
    bipolar: jax.Array  # V_Bip
    adaptation: jax.Array  # g_A (without g_A0)
    transient_lowpass: jax.Array  # E_tauG(V)
    transient: jax.Array  # V_trs
    current: jax.Array  # (2, H, W) ganglion input I_G, ON and OFF, Hz
    voltage: jax.Array  # (2, H, W) LIF membrane potentials
    refractory: jax.Array  # (2, H, W) exp(leak * s of refractory period left): 1 when not refractory (refractory_time())
    key: jax.Array  # the noise of frame k is a hash of (bits drawn from key, k, cell)
    frame: jax.Array  # int32 index of the next frame


class RetinaOutput(NamedTuple):
    """Per-frame outputs, ``T`` frames; the stage maps only when ``run(..., stages=True)``."""

    rates: jax.Array | None  # (T, 2, H, W) noise-free LIF rates, Hz (ON, OFF); None with run(..., rates=False)
    spikes: jax.Array | None = None  # (T, 2, H, W) 0/1 (straight-through gradient of rates * dt)
    opl: jax.Array | None = None  # (T, H, W) I_OPL
    bipolar: jax.Array | None = None  # (T, H, W) V_Bip
    adaptation: jax.Array | None = None  # (T, H, W) g_A
    ganglion_input: jax.Array | None = None  # (T, 2, H, W) I_G, Hz


# --- presets ---------------------------------------------------------------------------------

_VR_RETINA = dict(center_tau=0.01, surround_tau=0.01, opl_amplification=10.0, opl_weight=1.0, bipolar_amplification=150.0,
                  inert_leak=5.0, adaptation_amplification=100.0, adaptation_tau=0.01, transient_tau=0.03, v0=0.0, i0=80.0,
                  leak=50.0, refr_mean=0.003)

PRESETS = {
    # convis's default Retina(): the tutorial's 'midget' column (no contrast gain control), 1 ms steps, input in [0, 1]
    "convis": RetinaParams(config=RetinaConfig(dt=0.001, pixels_per_degree=10.0, luminosity_range=1.0)),
    # Virtual Retina's EXAMPLE_cat_X_cell.xml
    "cat_x": RetinaParams(**_VR_RETINA, center_sigma=0.88, surround_sigma=2.35, undershoot_weight=0.5, undershoot_tau=0.2,
                          adaptation_sigma=2.5, transient_weight=0.7, ganglion_amplification=100.0, pool_sigma=0.0,
                          noise_sigma=0.1, refr_sd=0.001,
                          config=RetinaConfig(dt=0.005, pixels_per_degree=2.0, luminosity_range=255.0, leaky_heat=True)),
    # Virtual Retina's EXAMPLE_primate_ParvoMagno.xml: parvocellular (midget) ganglion layers
    "primate_parvo": RetinaParams(**_VR_RETINA, center_sigma=0.03, surround_sigma=0.1, undershoot_weight=0.0,
                                  adaptation_sigma=0.2, transient_weight=0.7, ganglion_amplification=100.0, pool_sigma=0.0,
                                  noise_sigma=0.0, refr_sd=0.0,
                                  config=RetinaConfig(dt=0.005, pixels_per_degree=20.0, luminosity_range=255.0,
                                                      leaky_heat=True, undershoot=False)),
    # ... and its magnocellular (parasol) layers
    "primate_magno": RetinaParams(**_VR_RETINA, center_sigma=0.03, surround_sigma=0.1, undershoot_weight=0.0,
                                  adaptation_sigma=0.2, transient_weight=1.0, ganglion_amplification=400.0, pool_sigma=0.1,
                                  noise_sigma=0.0, refr_sd=0.0,
                                  config=RetinaConfig(dt=0.005, pixels_per_degree=20.0, luminosity_range=255.0,
                                                      leaky_heat=True, undershoot=False)),
    # Virtual Retina's EXAMPLE_linear_noSpikes.xml (OPL only: read out.opl; later stages keep the convis defaults)
    "linear": RetinaParams(center_sigma=0.1, surround_sigma=0.3, center_tau=0.01, surround_tau=0.01, opl_amplification=10.0,
                           opl_weight=1.0, undershoot_weight=0.0,
                           config=RetinaConfig(dt=0.05, pixels_per_degree=10.0, luminosity_range=255.0, leaky_heat=True,
                                               undershoot=False)),
}


def preset(name: str, **overrides) -> RetinaParams:
    """Parameters of a named preset (see ``PRESETS``); keyword overrides go to parameters or config.

    >>> params = preset("cat_x", dt=0.001, transient_weight=0.5)
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"name: expected one of {sorted(PRESETS)}, got {name!r}")
    params = PRESETS[name]
    p = {k: v for k, v in overrides.items() if k in PARAM_FIELDS}
    c = {k: v for k, v in overrides.items() if k in RetinaConfig._fields}
    unknown = set(overrides) - set(p) - set(c)
    if unknown:
        raise ValueError(f"overrides: unknown parameter(s) {sorted(unknown)}; expected names from {list(PARAM_FIELDS)} "
                         f"or {list(RetinaConfig._fields)}")
    return params.replace(**p).with_config(**c)


# --- checks ----------------------------------------------------------------------------------


def check_params(params: RetinaParams) -> None:
    """Validate parameter values (concrete ones; traced values are skipped) and the config."""
    if not isinstance(params, RetinaParams):
        raise TypeError(f"params: expected RetinaParams (e.g. retina.preset('cat_x')), got {type(params).__name__}")
    cfg = params.config
    check_positive("config.dt", cfg.dt, unit="seconds")
    check_positive("config.pixels_per_degree", cfg.pixels_per_degree)
    check_positive("config.luminosity_range", cfg.luminosity_range)
    check_int("config.center_n", cfg.center_n, min_value=0)
    check_choice("config.padding", cfg.padding, filters.PADDINGS)
    values = {}  # concrete values as float arrays (traced ones are skipped: unknown)
    for name in PARAM_FIELDS:
        value = getattr(params, name)
        if is_traced(value):
            continue
        array = np.asarray(value)
        if array.dtype.kind not in "fiu":
            raise TypeError(f"params.{name}: expected a real number (or an array of them), got {type(value).__name__} {value!r}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"params.{name}: expected a finite number, got {value!r}")
        values[name] = array.astype(float)

    def smallest(name):  # the smallest concrete value (a batch of parameters is checked entry by entry)
        return float(np.min(values[name])) if name in values and values[name].size else None

    for name in _TAUS + ("leak", "i0", "inert_leak"):
        if (value := smallest(name)) is not None:
            check_positive(f"params.{name}", value, unit="seconds" if name in _TAUS else "")
    for name in _SIGMAS + ("refr_mean", "refr_sd", "noise_sigma", "adaptation_amplification"):
        if (value := smallest(name)) is not None:
            check_nonnegative(f"params.{name}", value)

    def concrete(name):  # a Python float, or None when traced or batched
        return float(values[name]) if name in values and values[name].ndim == 0 else None

    leak, refr_mean, refr_sd = concrete("leak"), concrete("refr_mean"), concrete("refr_sd")
    if None not in (leak, refr_mean, refr_sd) and leak * (refr_mean + 6 * refr_sd) > _MAX_LEAK_TIMES_REFRACTORY:
        # the LIF state keeps exp(leak * refractory time left): keep it far from float32 overflow
        raise ValueError(f"params.refr_mean: leak * (refr_mean + 6 refr_sd) = {leak * (refr_mean + 6 * refr_sd):.3g} exceeds "
                         f"{_MAX_LEAK_TIMES_REFRACTORY}; expected a refractory period of at most a few membrane time "
                         f"constants (1 / leak = {1 / leak:.3g} s)")


def blur_radii(params: RetinaParams) -> tuple:
    """Static blur sizes (pixels) for the current sigma values: ``(centre, surround, adaptation, pool)``.

    Each is ``0`` (no blur), ``-1`` (3-tap kernel of exact variance, for sigmas under 0.8 px) or the
    half-width ``int(4 sigma + 0.5)`` of a sampled Gaussian. Compute it outside ``jit``/``grad``
    (from concrete values) and pass it to :func:`run` when the sigmas are traced.
    """
    cfg = params.config
    out = []
    for name in _SIGMAS:
        value = getattr(params, name)
        if is_traced(value):
            raise ValueError(f"params.{name}: is traced; compute blur_radii(params) from concrete values and pass radii=")
        sigma = float(np.max(np.asarray(value))) * cfg.pixels_per_degree
        tau = {"center_sigma": "center_tau", "surround_sigma": "surround_tau"}.get(name)
        if sigma == 0:
            if name in ("center_sigma", "surround_sigma") and cfg.leaky_heat:
                raise ValueError(f"params.{name}: the leaky heat equation needs a positive sigma, got 0")
            out.append(0)
            continue
        if sigma < MIN_SIGMA_PIXELS:
            raise ValueError(f"params.{name}: {float(np.max(np.asarray(value)))} deg is {sigma:.3g} pixels at "
                             f"{cfg.pixels_per_degree} pixels/degree, below the minimum of {MIN_SIGMA_PIXELS} pixels; "
                             "use 0 to switch the blur off or raise pixels_per_degree")
        if cfg.leaky_heat and tau is not None:
            sigma = sigma * math.sqrt(cfg.dt / float(np.min(np.asarray(getattr(params, tau)))))
        out.append(-1 if sigma < _THREE_TAP_BELOW else int(4 * sigma + 0.5))
    return tuple(out)


# --- pieces ----------------------------------------------------------------------------------


def rectification(v, v0, i0, lam):
    """Virtual Retina's smooth rectifier ``N``: ``i0^2 / (i0 - lam (v - v0))`` below ``v0``, ``i0 + lam (v - v0)`` above.

    Continuous with slope ``lam`` on both sides of ``v0``; positive, tending to 0 as ``v -> -inf``.
    """
    below = i0**2 / (i0 - lam * jnp.minimum(v - v0, 0))
    return jnp.where(v < v0, below, i0 + lam * (v - v0))


def lif_rate(current, leak, refractory):
    """Noise-free LIF firing rate (threshold 1, reset 0, Hz) for a constant input current (Hz).

    ``1 / (refractory + ln(I / (I - g_L)) / g_L)`` for ``I > g_L``, else 0.
    """
    safe = jnp.maximum(current, leak * (1 + 1e-6))
    isi = refractory + jnp.log(safe / (safe - leak)) / leak
    return jnp.where(current > leak * (1 + 1e-6), 1 / isi, 0.0)


def cgc_steady_state(drive, inert_leak, adaptation_amplification, n_newton: int = 40):
    """Steady bipolar potential ``V`` solving ``lambda_A V^3 + g_A0 V - drive = 0`` (``drive = lambda' I_OPL``)."""
    drive = jnp.asarray(drive)
    # Start above the root's magnitude on the convex side so that Newton converges monotonically.
    v = jnp.sign(drive) * jnp.maximum(jnp.abs(drive) / inert_leak, 0.0)
    if not (isinstance(adaptation_amplification, (int, float)) and adaptation_amplification == 0):
        cube = jnp.cbrt(jnp.abs(drive) / jnp.maximum(adaptation_amplification, 1e-30))
        v = jnp.sign(drive) * jnp.minimum(jnp.abs(v), cube)
    lam, g0 = jnp.asarray(adaptation_amplification, v.dtype), jnp.asarray(inert_leak, v.dtype)

    def newton(_, v):
        f = lam * v**3 + g0 * v - drive
        return v - f / (3 * lam * v**2 + g0)

    # a loop, not an unrolled chain: XLA would fuse and duplicate the unrolled iterations (slow to compile)
    return lax.fori_loop(0, n_newton, newton, v)


def _taps(sigma_px, radius: int):
    """1-D blur weights ``(2 r + 1,)`` for a static size code from :func:`blur_radii` (None: no blur)."""
    if radius == 0:
        return None
    if radius == -1:
        a = 0.5 * sigma_px**2
        return jnp.stack([a, 1 - 2 * a, a])
    g = jnp.exp(-0.5 * (jnp.arange(-radius, radius + 1, dtype=jnp.result_type(sigma_px)) / sigma_px) ** 2)
    return g / jnp.sum(g)


def _blur(x, taps, padding: str):
    """Separable blur of the last two axes: the padded maps through two 1-D convolutions (fast forward and backward).

    The 3-tap kernel ``(a, 1 - 2a, a)`` is a fused sum of shifted slices instead (cheaper than a
    convolution call), written ``x + a (x_left + x_right - 2 x)`` so that the gradient of ``a`` sums
    small second differences instead of cancelling two large sums.
    """
    if taps is None:
        return x
    r = (taps.shape[0] - 1) // 2
    shape = x.shape
    if r == 1:
        H, W = shape[-2:]
        y = filters.pad2d(x, (1, 1), (0, 0), padding)
        mid = y[..., 1:H + 1, :]
        y = mid + taps[0] * (y[..., :H, :] + y[..., 2:, :] - 2 * mid)
        y = filters.pad2d(y, (0, 0), (1, 1), padding)
        mid = y[..., 1:W + 1]
        return mid + taps[0] * (y[..., :W] + y[..., 2:] - 2 * mid)
    y = filters.pad2d(x.reshape((-1, 1) + shape[-2:]), (r, r), (r, r), padding)
    y = lax.conv_general_dilated(y, taps[:, None][None, None], (1, 1), "VALID")  # the taps are symmetric
    y = lax.conv_general_dilated(y, taps[None, :][None, None], (1, 1), "VALID")
    return y.reshape(shape)


def _kernels(params: RetinaParams, radii: tuple):
    """Blur weights of the centre, surround, adaptation and pooling stages (computed once per run)."""
    cfg, p = params.config, params
    ppd, dt = cfg.pixels_per_degree, cfg.dt
    sc, ss = p.center_sigma * ppd, p.surround_sigma * ppd
    if cfg.leaky_heat:
        sc, ss = sc * jnp.sqrt(dt / p.center_tau), ss * jnp.sqrt(dt / p.surround_tau)
    sigmas = (sc, ss, p.adaptation_sigma * ppd, p.pool_sigma * ppd)
    return tuple(_taps(sig, r) for sig, r in zip(sigmas, radii))


def _n_poles(cfg: RetinaConfig) -> int:
    return 1 if cfg.leaky_heat else cfg.center_n + 1


def init_state(params: RetinaParams, frame_shape, *, key, luminance=None, dtype=None) -> RetinaState:
    """Initial state for frames of ``frame_shape`` ``(H, W)``.

    Args:
      params: :class:`RetinaParams`.
      frame_shape: ``(H, W)``.
      key: PRNG key for the LIF start potentials (uniform in (0, 1), VR's ``random-init``) and
        for the noise and refractory draws of later steps (kept in the state; every draw is a
        hash of bits drawn once from it, the frame index, a stream number and the cell).
      luminance: ``None`` starts every filter at 0; a number starts every stage at its steady
        state for a uniform screen of that luminance (Virtual Retina starts the OPL at
        ``luminosity_range / 2``).
      dtype: float dtype of the state (default: JAX's default float).
    """
    check_params(params)
    if len(tuple(frame_shape)) != 2:
        raise ValueError(f"frame_shape: expected (H, W), got {tuple(frame_shape)}")
    H, W = (check_int("frame_shape", int(s), min_value=1) for s in frame_shape)
    check_key("key", key)
    dtype = jnp.zeros(()).dtype if dtype is None else jnp.dtype(dtype)
    if luminance is not None:
        check_nonnegative("luminance", luminance)
    p = jax.tree.map(lambda v: jnp.asarray(v, dtype), params)
    return _init_arrays(p, key, jnp.asarray(0.0 if luminance is None else luminance, dtype), (H, W), dtype)


@partial(jax.jit, static_argnums=(3, 4))
def _init_arrays(p: RetinaParams, key, luminance, shape, dtype) -> RetinaState:
    """The state's arrays, in one compiled call (steady state for a uniform screen of ``luminance``; 0 is rest)."""
    cfg = p.config
    H, W = shape
    c = _drive(p, luminance)
    u = c * (1 - p.undershoot_weight) if cfg.undershoot else c
    i_opl = u * (1 - p.opl_weight)
    v = cgc_steady_state(p.bipolar_amplification * i_opl, p.inert_leak, p.adaptation_amplification)
    v_trs = v * (1 - p.transient_weight)
    signs = jnp.asarray([1.0, -1.0], dtype)
    current = rectification(signs * v_trs, p.v0, p.i0, p.ganglion_amplification)
    full = lambda value: jnp.broadcast_to(jnp.asarray(value, dtype), (H, W))  # noqa: E731
    return RetinaState(
        center=jnp.broadcast_to(c, (_n_poles(cfg), H, W)),
        undershoot_lowpass=full(c),
        undershoot=full(u),
        surround=full(u),
        opl=full(i_opl),
        bipolar=full(v),
        adaptation=full(p.adaptation_amplification * v**2),
        transient_lowpass=full(v),
        transient=full(v_trs),
        current=jnp.broadcast_to(current[:, None, None], (2, H, W)),
        voltage=_uniforms(_seed(key), 0, _VOLTAGE_STREAM, (2, H, W), dtype),
        refractory=jnp.ones((2, H, W), dtype),
        key=key,
        frame=jnp.zeros((), jnp.int32),
    )


def _lif_step(p: RetinaParams, current, voltage, refractory, noise, jitter, dt):
    """Exact LIF integration over one step with the current held; at most one spike per cell.

    ``refractory`` is ``exp(g_L r)`` for ``r`` seconds of refractory period left (1: not
    refractory). In that form the step needs no transcendental function of the state: the decay
    over the free part ``dt - r`` of the step is ``exp(-g_L dt) exp(g_L r)``, and the time left
    after a spike at ``t_s`` (``exp(g_L t_s)`` is a ratio of potentials) is a product of
    exponentials too.
    ``noise`` and ``jitter`` are standard normal draws ``(2, H, W)`` (or None for none).
    """
    g = p.leak
    e_inf = current / g if noise is None else (current + p.noise_sigma * jnp.sqrt(2 * g / dt) * noise) / g
    e_dt = jnp.exp(-g * dt)
    held = refractory * e_dt  # exp(g (r - dt)): < 1 when part of the step is free
    decay = jnp.minimum(held, 1.0)  # exp(-g free), free = max(dt - r, 0)
    v_start = jnp.where(refractory > 1, 0.0, voltage)
    v_end = (v_start - e_inf) * decay + e_inf
    spike = (v_end >= 1.0) & (held < 1)
    ratio = jnp.where(spike & (v_start < 1), (e_inf - v_start) / jnp.where(spike, e_inf - 1, 1.0), 1.0)
    ratio = jnp.maximum(ratio, 1.0)  # exp(g t_spike), t_spike from the start of the free part
    refr = p.refr_mean if jitter is None else jnp.maximum(p.refr_mean + p.refr_sd * jitter, 0.0)
    # exp(-g (time from the spike to the end of the step)) = decay * ratio; times exp(g refr):
    # restart = exp(g (refractory time left at the end of the step)), < 1 when it ended within the step
    restart = jnp.minimum(decay * ratio, 1.0) * jnp.exp(g * refr)
    v_after = jnp.where(restart < 1, e_inf * (1 - restart), 0.0)
    voltage = jnp.where(spike, v_after, v_end)
    refractory = jnp.maximum(jnp.where(spike, restart, held), 1.0)
    return spike, voltage, refractory


def refractory_time(state: "RetinaState", params: RetinaParams) -> jax.Array:
    """Seconds of refractory period left per LIF unit ``(2, H, W)`` (the state keeps ``exp(g_L r)``)."""
    return jnp.log(state.refractory) / params.leak


_GOLDEN = 0x9E3779B9


def _fmix32(x):
    """MurmurHash3's 32-bit finaliser: a bijection of uint32 with full avalanche."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def _seed(key):
    """Two uint32 seed words from a PRNG key: its raw words mixed by the hash (no PRNG call, cheap to compile)."""
    words = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    words = jnp.asarray(words).reshape(-1).astype(jnp.uint32)
    h0 = _fmix32(words[0] ^ jnp.uint32(0x3C6EF372))
    h1 = _fmix32(h0 ^ jnp.uint32(0xA54FF53A))
    for i in range(1, words.shape[0]):
        h0 = _fmix32(h0 ^ _fmix32(words[i] + jnp.uint32(i)))
        h1 = _fmix32(h1 + words[i])
    return jnp.stack([h0, _fmix32(h1 ^ h0)])


_VOLTAGE_STREAM = 2  # streams 0 and 1: membrane noise and refractory jitter


def _uniforms(seed, frame_index, stream: int, shape, dtype):
    """Uniform draws in (0, 1) of ``shape`` (any rank) from a counter-based hash of ``(seed, frame, stream, cell)``."""
    counter = jnp.asarray(frame_index).astype(jnp.uint32) * jnp.uint32(_GOLDEN) + jnp.uint32((stream * 0x632BE5AB) & 0xFFFFFFFF)
    c = _fmix32(counter ^ seed[0])
    cell = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):
        cell = cell + lax.broadcasted_iota(jnp.uint32, shape, axis) * jnp.uint32(stride)
        stride *= shape[axis]
    h = _fmix32(_fmix32(cell ^ c) + seed[1])
    return ((h >> 8).astype(dtype) + 0.5) * (1.0 / (1 << 24))


def _normals(seed, frame_index, stream: int, shape, dtype):
    """Standard normal maps ``(2, H, W)`` for one frame: a counter-based hash of ``(seed, frame, stream, cell)``
    gives two uniforms ``u0, u1`` per pixel, and Box-Muller turns them into the ON draw
    ``r cos(2 pi u1)`` and the OFF draw ``r sin(2 pi u1)``, ``r = sqrt(-2 ln u0)``.

    Both draws are written as one expression of the channel index ``k`` (``(1 - k) cos + k sin``,
    no stacking), which XLA compiles to one vectorised loop (a stack of the two compiled to a
    branch per element, ~8x slower). The draws depend only on the seed and the absolute frame
    index, so they do not depend on how a movie is chunked; hashing inside the step keeps them
    fused with the spiking update (no stored ``(T, 2, H, W)`` array of draws).
    """
    if shape[0] != 2:
        raise ValueError(f"shape: expected (2, H, W), got {tuple(shape)}")
    u = _uniforms(seed, frame_index, stream, shape, dtype)
    u0, u1 = (jnp.broadcast_to(u[i:i + 1], shape) for i in (0, 1))
    k = lax.broadcasted_iota(dtype, shape, 0)  # 0: ON, 1: OFF
    cos, sin = _cos_sin_2pi(u1)
    return jnp.sqrt(-2 * jnp.log(u0)) * ((1 - k) * cos + k * sin)


def _cos_sin_2pi(u):
    """``cos(2 pi u)`` and ``sin(2 pi u)`` for ``u`` in [0, 1] by polynomials of the half angle
    ``x = pi (u - 1/2)`` in [-pi/2, pi/2] (Taylor to x^11 / x^12: error below 1e-7; much cheaper on
    CPU than the library's range-reduced sin and cos)."""
    x = math.pi * (u - 0.5)
    x2 = x * x
    s = x * (1 + x2 * (-1 / 6 + x2 * (1 / 120 + x2 * (-1 / 5040 + x2 * (1 / 362880 + x2 * (-1 / 39916800))))))
    c = 1 + x2 * (-1 / 2 + x2 * (1 / 24 + x2 * (-1 / 720 + x2 * (1 / 40320 + x2 * (-1 / 3628800 + x2 / 479001600)))))
    # 2 pi u = 2 x + pi: cos(2x + pi) = -cos 2x = 2 s^2 - 1, sin(2x + pi) = -sin 2x = -2 s c
    return 2 * s * s - 1, -2 * s * c


def _draws(seed, frame_index, shape, dtype, draws):
    """Standard normals for the noise and the refractory jitter of one frame (None where not needed)."""
    noise = _normals(seed, frame_index, 0, shape, dtype) if draws[0] else None
    jitter = _normals(seed, frame_index, 1, shape, dtype) if draws[1] else None
    return noise, jitter


def _static_draws(params: RetinaParams, spikes: bool):
    """Which random draws a run needs: (noise, refractory jitter); skipped when the parameter is a concrete 0."""
    def needed(value):
        return bool(spikes) and (is_traced(value) or bool(np.any(np.asarray(value) != 0)))

    return needed(params.noise_sigma), needed(params.refr_sd)


def _static_radii(params: RetinaParams, radii: tuple) -> tuple:
    """``radii`` with the adaptation blur dropped when ``adaptation_amplification`` is a concrete 0
    (it would blur a map of zeros: the result is the same, bit for bit)."""
    value = params.adaptation_amplification
    if not is_traced(value) and not np.any(np.asarray(value) != 0):
        return radii[:2] + (0,) + radii[3:]
    return radii


def step(params: RetinaParams, state: RetinaState, frame, *, radii: tuple, spikes: bool = True):
    """One frame ``(H, W)`` of luminance: ``(state, outputs)``.

    ``outputs`` is ``(rates, spikes, opl, bipolar, adaptation, ganglion_input)`` for this frame.
    :func:`run` does the same over many frames with the blur weights and random draws hoisted out
    of the ``lax.scan``.
    """
    frame = check_array("frame", frame, shape=state.bipolar.shape)
    if frame.dtype != state.bipolar.dtype:
        raise TypeError(f"frame: expected dtype {state.bipolar.dtype} like the state, got {frame.dtype}")
    draws = _static_draws(params, spikes)
    noise, jitter = _draws(_seed(state.key), state.frame, state.voltage.shape, state.voltage.dtype, draws)
    return _step(params, _kernels(params, radii), _decays(params), state, frame, noise, jitter, spikes)


@jax.custom_jvp
def _straight_through(value, surrogate):
    """``value`` forward, the derivative of ``surrogate`` backward. As a custom rule rather than
    ``value + surrogate - stop_gradient(surrogate)``, a forward run does not compute the surrogate
    (the rates) unless they are an output."""
    del surrogate
    return value


@_straight_through.defjvp
def _straight_through_jvp(primals, tangents):
    return primals[0], tangents[1]


def _drive(params: RetinaParams, luminance):
    """The OPL's drive ``(lambda_OPL / luminosity_range) L``."""
    return (params.opl_amplification / params.config.luminosity_range) * luminance


def _center_input(params: RetinaParams, k_c, movie):
    """The centre's blurred drive ``G_sC * _drive(L)`` of frames ``(..., H, W)`` (non-leaky OPL)."""
    return _blur(_drive(params, movie), k_c, params.config.padding)


def _hoist_center(params: RetinaParams, k_c) -> bool:
    """Whether :func:`_run` blurs the centre's input for all frames before the scan: without the leaky heat
    equation the centre blur acts on the input alone, and the 3-tap blur is a fused elementwise pass over
    the whole movie (cheaper than a few small per-frame kernels; the same values, bit for bit)."""
    return not params.config.leaky_heat and (k_c is None or k_c.shape[0] == 3)


class _Decays(NamedTuple):
    """``exp(-dt / tau)`` of each low-pass stage (computed once per run, outside the scan)."""

    center: jax.Array  # of one centre pole
    undershoot: jax.Array
    surround: jax.Array
    adaptation: jax.Array
    transient: jax.Array


def _decays(params: RetinaParams) -> _Decays:
    cfg, p = params.config, params
    center_tau = p.center_tau if cfg.leaky_heat else p.center_tau / max(cfg.center_n, 1)
    return _Decays(*(jnp.exp(-cfg.dt / tau) for tau in (center_tau, p.undershoot_tau, p.surround_tau, p.adaptation_tau,
                                                       p.transient_tau)))


def _lowpass(y, x, e):
    """``e y + (1 - e) x`` written with one use of ``e`` (one reduction of its cotangent per step, not two)."""
    return x + e * (y - x)


def _step(params: RetinaParams, kernels, decays: _Decays, state: RetinaState, frame, noise, jitter, spikes: bool,
          blurred: bool = False):
    """One step; with ``blurred`` (non-leaky OPL only) ``frame`` is already :func:`_center_input` of the frame.

    A scalar parameter used more than once in a step is broadcast to the maps once, so that the
    backward pass sums its cotangent maps and reduces once per step instead of once per use.
    """
    cfg = params.config
    p = params
    dt = cfg.dt
    lag = cfg.stage_lag
    k_c, k_s, k_a, k_p = kernels
    blur = partial(_blur, padding=cfg.padding)
    maps = state.bipolar.shape
    # 1. OPL
    if cfg.leaky_heat:
        c = blur(_lowpass(state.center[0], _drive(p, frame), decays.center), k_c)
        center = c[None]
    else:
        x = frame if blurred else _center_input(p, k_c, frame)
        e = decays.center if cfg.center_n == 0 else jnp.broadcast_to(decays.center, maps)
        poles = []
        for i in range(cfg.center_n + 1):
            x = _lowpass(state.center[i], x, e)
            poles.append(x)
        c = x
        center = jnp.stack(poles)
    if cfg.undershoot:
        x_u = state.center[-1] if lag else c
        u_lp = _lowpass(state.undershoot_lowpass, x_u, decays.undershoot)
        u = x_u - p.undershoot_weight * u_lp
    else:
        u_lp, u = state.undershoot_lowpass, c
    x_s = (state.undershoot if cfg.undershoot else state.center[-1]) if lag else u
    if cfg.leaky_heat:
        s = blur(_lowpass(state.surround, x_s, decays.surround), k_s)
    else:
        s = _lowpass(state.surround, blur(x_s, k_s), decays.surround)
    i_opl = u - p.opl_weight * s
    # 2. contrast gain control: exact exponential with the conductance of the previous step held
    x_b = state.opl if lag else i_opl
    g = p.inert_leak + state.adaptation
    v_inf = p.bipolar_amplification * x_b / g
    v = (state.bipolar - v_inf) * jnp.exp(-dt * g) + v_inf
    x_a = state.bipolar if lag else v
    g_a = _lowpass(state.adaptation, blur(p.adaptation_amplification * x_a**2, k_a), decays.adaptation)
    # 3. ganglion input: transient, then ON/OFF rectification and pooling
    x_t = state.bipolar if lag else v
    t_lp = _lowpass(state.transient_lowpass, x_t, decays.transient)
    v_trs = x_t - p.transient_weight * t_lp
    x_n = state.transient if lag else v_trs
    signs = jnp.asarray([1.0, -1.0], v.dtype)[:, None, None]
    on_off = signs * x_n[None]
    gains = (jnp.broadcast_to(q, on_off.shape) for q in (p.v0, p.i0, p.ganglion_amplification))
    current = blur(rectification(on_off, *gains), k_p)
    # 4. spiking
    x_i = state.current if lag else current
    rates = lif_rate(x_i, jnp.broadcast_to(p.leak, x_i.shape), p.refr_mean)
    if spikes:
        spike, voltage, refractory = _lif_step(lax.stop_gradient(p), lax.stop_gradient(x_i), state.voltage,
                                               state.refractory, noise, jitter, dt)
        spike_out = _straight_through(spike.astype(rates.dtype), rates * dt)
    else:
        voltage, refractory, spike_out = state.voltage, state.refractory, None
    new = RetinaState(center, u_lp, u, s, i_opl, v, g_a, t_lp, v_trs, current, voltage, refractory, state.key,
                      state.frame + 1)
    return new, (rates, spike_out, i_opl, v, g_a, current)


@jit_with_cpu_options(extra_options=REGION_ANALYSIS, static_argnames=("radii", "spikes", "draws", "stages", "remat", "rates"))
def _run(params, state, movie, radii, spikes, draws, stages, remat, rates=True):
    kernels = _kernels(params, radii)
    shape, dtype = state.voltage.shape, state.voltage.dtype
    seed = _seed(state.key)
    blurred = _hoist_center(params, kernels[0])
    decays = _decays(params)
    inputs = _center_input(params, kernels[0], movie) if blurred else movie

    def body(s, frame):
        noise, jitter = _draws(seed, s.frame, shape, dtype, draws)
        s, out = _step(params, kernels, decays, s, frame, noise, jitter, spikes, blurred)
        out = out if stages else out[:2]
        return s, out if rates else (None,) + out[1:]

    if remat:
        body = jax.checkpoint(body)
    state, outputs = lax.scan(body, state, inputs)
    return state, RetinaOutput(*outputs)


def _as_dtype(x, dtype):
    """``x`` as an array of ``dtype``: host values converted by numpy (one transfer with the call
    instead of one dispatch per parameter), JAX arrays and tracers by ``jnp.asarray``."""
    if isinstance(x, jax.Array):
        return x if x.dtype == dtype else jnp.asarray(x, dtype)
    return np.asarray(x, dtype)


def run(params: RetinaParams, state: RetinaState, movie, *, spikes: bool = True, stages: bool = False,
        radii: tuple | None = None, remat: bool = False, rates: bool = True, adjoint: str = "autodiff"):
    """Run the retina over ``movie`` ``(T, H, W)`` (luminance, same units as ``luminosity_range``).

    Running a movie in chunks, passing the returned state on, gives the same outputs bit for bit
    and the same gradients as running it at once.

    Args:
      params: :class:`RetinaParams` (any float field may be traced, e.g. under ``jax.grad``).
      state: from :func:`init_state` or a previous call.
      movie: ``(T, H, W)`` finite floats.
      spikes: simulate the LIF units (``False``: rates only, faster and deterministic).
      stages: also return ``opl``, ``bipolar``, ``adaptation`` and ``ganglion_input``.
      radii: static blur sizes from :func:`blur_radii` (needed when the sigmas are traced). By
        default those of ``params``, without the adaptation blur when ``adaptation_amplification``
        is a concrete 0 (it would blur zeros); pass ``radii`` to share one compiled program
        between such parameters and others.
      remat: recompute each step in the backward pass (``jax.checkpoint``) to save memory.
      rates: also return the rates (``False``: ``out.rates`` is None, as in convis's spiking
        output; spikes alone are less to compute and to store). Needs ``spikes`` or ``stages``.
      adjoint: how derivatives of the run are computed. ``"autodiff"`` (default): JAX
        differentiates the program, in forward and reverse mode. ``"native"``: reverse-mode
        derivatives (``jax.grad``, ``jax.vjp``) from a native CPU kernel
        (:mod:`vision_jax.retina._adjoint`; 2-3x faster, ``remat`` not needed), for runs
        without spikes on CPU in float32 or float64 with one value per parameter (vmap over
        parameter sets); it raises where it cannot serve, and forward mode (``jax.jvp``,
        ``jax.linearize``, eigendistortions) is not defined for it. ``"auto"``: ``"native"`` where
        it serves, else ``"autodiff"`` (what :func:`fit` uses). Outputs without differentiation
        are the same for every choice.

    Returns:
      ``(state, RetinaOutput)``.
    """
    movie = check_array("movie", movie, ndim=3)
    if not isinstance(state, RetinaState):
        raise TypeError(f"state: expected RetinaState from retina.init_state, got {type(state).__name__}")
    if tuple(movie.shape[1:]) != tuple(state.bipolar.shape):
        raise ValueError(f"movie: expected frames of shape {tuple(state.bipolar.shape)} like the state, got shape {tuple(movie.shape)}")
    if movie.dtype != state.bipolar.dtype:
        raise TypeError(f"movie: expected dtype {state.bipolar.dtype} like the state, got {movie.dtype}")
    if state.center.shape[0] != _n_poles(params.config):
        raise ValueError(f"state: has {state.center.shape[0]} centre poles, params.config needs {_n_poles(params.config)}; "
                         "build it with init_state(params, ...)")
    check_params(params)
    if not (rates or spikes or stages):
        raise ValueError("rates: with spikes=False and stages=False, rates=False leaves nothing to return")
    check_choice("adjoint", adjoint, ("auto", "native", "autodiff"))
    radii = _static_radii(params, blur_radii(params)) if radii is None else tuple(radii)
    draws = _static_draws(params, spikes)
    params = jax.tree.map(lambda x: _as_dtype(x, movie.dtype), params)
    if adjoint != "autodiff":
        from vision_jax.retina import _adjoint  # imports this module

        reason = _adjoint.native_reason(params, movie, spikes)
        if reason is None:
            return _adjoint.run_with_native_adjoint(params, state, movie, tuple(radii), bool(stages), bool(rates))
        if adjoint == "native":
            raise ValueError(f"adjoint: 'native' cannot serve this run: {reason}; use adjoint='auto' or 'autodiff'")
    return _run(params, state, movie, tuple(radii), bool(spikes), draws, bool(stages), bool(remat), bool(rates))
