"""Retina: the cascade against a plain-numpy transcription of Virtual Retina's recursions, analytic
responses, chunking, gradients, spikes, presets, XML and errors."""
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal
from jax import lax
from jax.test_util import check_grads

from vision_jax import _native, retina
from vision_jax.checkpoint import latest_step
from vision_jax.data import stimuli
from vision_jax.retina._model import _lif_step, _normals

NATIVE = jax.default_backend() == "cpu" and _native.available("retina")
needs_native = pytest.mark.skipif(not NATIVE, reason="the native retina kernel is not available here")

# ------------------------------------------------------------------------------------------
# Plain-numpy transcription of Virtual Retina's order of evaluation: at every step all stage
# inputs are fed first (each reads its upstream stage's current output), then every stage
# steps. Filters are written in VR's recursive-filter form (RecFilter::tempStep):
#   y_k = (sum_j b_j x_{k-j} - sum_{i>=1} a_i y_{k-i}) / a_0.
# ------------------------------------------------------------------------------------------


class NumpyRecFilter:
    def __init__(self, b, a, shape, gain=1.0):
        self.b = np.asarray(b, float) * gain
        self.a = np.asarray(a, float)
        self.x = [np.zeros(shape) for _ in self.b]
        self.y = [np.zeros(shape) for _ in self.a]

    def step(self, x):
        self.x = [x] + self.x[:-1]
        y = sum(bj * xj for bj, xj in zip(self.b, self.x)) - sum(ai * yi for ai, yi in zip(self.a[1:], self.y[:-1]))
        y = y / self.a[0]
        self.y = [y] + self.y[:-1]
        return y


def exp_filter(tau, dt, shape, gain=1.0):
    e = math.exp(-dt / tau)
    return NumpyRecFilter([1 - e], [1, -e], shape, gain)


def exp_cascade_filter(tau, n, dt, shape, gain=1.0):
    c = math.exp(-dt / (tau / n if n else tau))
    a = [math.comb(n + 1, i) * (-c) ** i for i in range(n + 2)]
    return NumpyRecFilter([(1 - c) ** (n + 1)], a, shape, gain)


def partial_highpass_filter(w, tau, dt, shape):
    """Identity - w Exp(tau): y_k = e y_{k-1} + (1 - w (1 - e)) x_k - e x_{k-1}."""
    e = math.exp(-dt / tau)
    return NumpyRecFilter([1 - w * (1 - e), -e], [1, -e], shape)


def np_blur(x, sigma_px):
    if sigma_px == 0:
        return x
    if sigma_px < 0.8:  # the model's 3-tap kernel of exact variance
        a = sigma_px**2 / 2
        for axis in (-2, -1):
            x = ndi.correlate1d(x, [a, 1 - 2 * a, a], axis=axis, mode="reflect")
        return x
    return ndi.gaussian_filter(x, sigma_px, mode="reflect", truncate=4.0, axes=(-2, -1))


def np_rectification(v, v0, i0, lam):
    return np.where(v < v0, i0**2 / (i0 - lam * np.minimum(v - v0, 0)), i0 + lam * (v - v0))


def np_lif(current, v, refr_left, p, dt):
    """Event-driven LIF over one step, one cell at a time (noise-free, fixed refractory period)."""
    g, spikes = p["leak"], np.zeros(current.shape)
    v, refr_left = v.copy(), refr_left.copy()
    for idx in np.ndindex(current.shape):
        if refr_left[idx] >= dt:
            refr_left[idx] -= dt
            v[idx] = 0.0
            continue
        t0 = refr_left[idx]
        start = 0.0 if t0 > 0 else v[idx]
        refr_left[idx] = 0.0
        e_inf = current[idx] / g
        end = e_inf + (start - e_inf) * math.exp(-g * (dt - t0))
        if end < 1:
            v[idx] = end
            continue
        spikes[idx] = 1
        t_spike = t0 + math.log((e_inf - start) / (e_inf - 1)) / g
        if t_spike + p["refr_mean"] >= dt:
            refr_left[idx], v[idx] = t_spike + p["refr_mean"] - dt, 0.0
        else:
            v[idx] = e_inf * (1 - math.exp(-g * (dt - t_spike - p["refr_mean"])))
    return spikes, v, refr_left


def numpy_retina(p, cfg, movie, v_init, lag=True):
    """Step-by-step Virtual Retina (from zero state) on ``movie`` (T, H, W); returns dict of (T, ...) arrays."""
    dt, ppd, shape = cfg.dt, cfg.pixels_per_degree, movie.shape[1:]
    amp = p["opl_amplification"] / cfg.luminosity_range
    if cfg.leaky_heat:
        excit = exp_filter(p["center_tau"], dt, shape, gain=amp)
        inhib = exp_filter(p["surround_tau"], dt, shape, gain=p["opl_weight"])
    else:
        excit = exp_cascade_filter(p["center_tau"], cfg.center_n, dt, shape, gain=amp)
        inhib = exp_filter(p["surround_tau"], dt, shape, gain=p["opl_weight"])
    undershoot = partial_highpass_filter(p["undershoot_weight"], p["undershoot_tau"], dt, shape)
    control = exp_filter(p["adaptation_tau"], dt, shape)
    transient = partial_highpass_filter(p["transient_weight"], p["transient_tau"], dt, shape)
    C = U = V = gA = Vtrs = np.zeros(shape)
    # at rest the ganglion input is N(0) (the model's state at zero luminance is a steady state)
    Ig = np_rectification(np.zeros((2,) + shape), p["v0"], p["i0"], p["ganglion_amplification"])
    I_opl = np.zeros(shape)
    volt, refr = v_init.copy(), np.zeros((2,) + shape)
    signs = np.array([1.0, -1.0])[:, None, None]
    rec = {k: [] for k in ("opl", "bipolar", "adaptation", "ganglion_input", "rates", "spikes")}
    for frame in movie:
        # feed: every stage reads its upstream output (previous step's, in VR's order)
        fed = dict(C=C, U=U, I=I_opl, V=V, gA=gA, Vtrs=Vtrs, Ig=Ig)
        # step the OPL
        if cfg.leaky_heat:
            C = excit.step(frame)
            C = np_blur(C, p["center_sigma"] * ppd * math.sqrt(dt / p["center_tau"]))
            excit.y[0] = C
        else:
            C = excit.step(np_blur(frame, p["center_sigma"] * ppd))
        U = undershoot.step(fed["C"] if lag else C)
        x_s = fed["U"] if lag else U
        if cfg.leaky_heat:
            wS = np_blur(inhib.step(x_s), p["surround_sigma"] * ppd * math.sqrt(dt / p["surround_tau"]))
            inhib.y[0] = wS
        else:
            wS = inhib.step(np_blur(x_s, p["surround_sigma"] * ppd))
        I_opl = U - wS
        # contrast gain control (conductance of the previous step)
        g = p["inert_leak"] + fed["gA"]
        E = p["bipolar_amplification"] * (fed["I"] if lag else I_opl) / g
        V = (fed["V"] - E) * np.exp(-dt * g) + E
        x_v = fed["V"] if lag else V
        gA = control.step(np_blur(p["adaptation_amplification"] * x_v**2, p["adaptation_sigma"] * ppd))
        # ganglion input
        Vtrs = transient.step(x_v)
        x_n = fed["Vtrs"] if lag else Vtrs
        Ig = np_blur(np_rectification(signs * x_n, p["v0"], p["i0"], p["ganglion_amplification"]), p["pool_sigma"] * ppd)
        x_i = fed["Ig"] if lag else Ig
        rate = np.where(x_i > p["leak"], 1 / (p["refr_mean"] + np.log(x_i / np.maximum(x_i - p["leak"], 1e-9)) / p["leak"]), 0)
        spk, volt, refr = np_lif(x_i, volt, refr, p, dt)
        for k, v in zip(rec, (I_opl, V, gA, Ig, rate, spk)):
            rec[k].append(v)
    return {k: np.stack(v) for k, v in rec.items()}


BASE = dict(opl_amplification=10.0, adaptation_amplification=100.0, inert_leak=5.0, bipolar_amplification=150.0,
            pool_sigma=0.1, noise_sigma=0.0, refr_sd=0.0, i0=80.0, dt=0.002, undershoot_weight=0.6)


@pytest.fixture(scope="module")
def movie():
    rng = np.random.default_rng(0)
    t = np.arange(40)[:, None, None] * 0.002
    x = np.arange(10)[None, None, :] / 10.0
    m = 0.5 + 0.35 * np.sin(2 * np.pi * (1.5 * x - 8 * t)) + 0.1 * rng.standard_normal((40, 10, 10))
    return m.astype(np.float32)


@pytest.mark.parametrize("leaky_heat, lag, center_n", [(False, True, 0), (False, False, 2), (True, True, 0), (True, False, 0)])
def test_cascade_equals_numpy_transcription(movie, key, leaky_heat, lag, center_n):
    params = retina.preset("convis", **BASE, leaky_heat=leaky_heat, stage_lag=lag, center_n=center_n)
    state = retina.init_state(params, (10, 10), key=key)
    _, out = retina.run(params, state, jnp.asarray(movie), stages=True)
    fields = {f: float(getattr(params, f)) for f in retina.PARAM_FIELDS}
    ref = numpy_retina(fields, params.config, movie.astype(np.float64), np.asarray(state.voltage, np.float64), lag=lag)
    np.testing.assert_allclose(np.asarray(out.opl), ref["opl"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out.bipolar), ref["bipolar"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out.adaptation), ref["adaptation"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(out.ganglion_input), ref["ganglion_input"], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(out.rates), ref["rates"], rtol=1e-4, atol=1e-2)
    assert ref["spikes"].sum() > 50
    assert np.mean(np.asarray(out.spikes) == ref["spikes"]) > 0.998


def _impulse_opl(params, T, dtype=jnp.float32):
    state = retina.init_state(params, (3, 3), key=jax.random.key(0), dtype=dtype)
    movie = np.zeros((T, 3, 3), dtype)
    movie[0] = 1.0
    return np.asarray(retina.run(params, state, movie, stages=True, spikes=False)[1].opl)[:, 1, 1]


@pytest.mark.parametrize("tau, n", [(0.01, 3), (0.03, 5)])
def test_centre_cascade_impulse_response(tau, n):
    # (the single pole, n = 0, is checked against the numpy recursion above)
    dt = 0.001
    params = retina.preset("convis", opl_amplification=1.0, opl_weight=0.0, undershoot=False, center_tau=tau, center_n=n, dt=dt)
    h = _impulse_opl(params, 600)
    c = math.exp(-dt / (tau / max(n, 1)))
    k = np.arange(600)
    analytic = np.array([math.comb(int(i) + n, n) for i in k]) * (1 - c) ** (n + 1) * c**k
    np.testing.assert_allclose(h, analytic, rtol=1e-4, atol=1e-7)
    assert abs(h.sum() - 1) < 1e-4
    # each zero-order-hold pole advances the peak by about dt / 2
    assert abs(int(np.argmax(h)) - (tau / dt - (n + 1) / 2)) <= 1


def _full_field_step_opl(dt, T, lag, dtype, **overrides):
    values = dict(center_tau=0.01, undershoot_tau=0.1, undershoot_weight=0.8, surround_tau=0.004, opl_weight=1.0)
    params = retina.preset("convis", **{**values, **overrides}, dt=dt, stage_lag=lag)
    state = retina.init_state(params, (3, 3), key=jax.random.key(0), dtype=dtype)
    out = retina.run(params, state, np.full((T, 3, 3), 0.5, dtype), stages=True, spikes=False)[1].opl
    return np.asarray(out)[:, 1, 1]


def test_opl_step_converges_to_the_laplace_solution(x64):
    # lambda dL / s * 1/(1 + s tC) * (1 - wU + s tU)/(1 + s tU) * (1 - w + s tS)/(1 + s tS), convis's values, dL = 0.5
    num = np.polymul(np.polymul([5.0], [0.1, 0.2]), [0.004, 0.0])
    den = np.polymul(np.polymul([0.01, 1.0], [0.1, 1.0]), [0.004, 1.0])
    for lag, dts in ((True, (1e-4, 1e-5)), (False, (1e-5,))):
        errors = []
        for dt in dts:
            T = int(round(0.12 / dt))
            got = 2 * _full_field_step_opl(dt, T, lag, jnp.float64)  # per unit step
            t = np.arange(1, T + 1) * dt
            _, exact = scipy.signal.step((num, den), T=t)
            errors.append(np.max(np.abs(got - 2 * exact)))
        assert errors[-1] < 0.01, (lag, errors)
        if len(errors) > 1:  # O(dt)
            assert errors[1] < errors[0] / 5, errors
        peak, trough = int(np.argmax(got)), int(np.argmin(got))
        assert abs(got[peak] - 2.098) < 0.01 and abs(t[peak] - 0.0058) < 2e-4
        assert abs(got[trough] + 0.185) < 0.005 and abs(t[trough] - 0.059) < 2e-3


def test_steady_state_opl_and_dc_gain():
    h = _full_field_step_opl(0.002, 1500, True, jnp.float32)  # w = 1: steady state 0
    assert abs(h[-1]) < 1e-4 and h.max() > 0.5
    h = _full_field_step_opl(0.002, 1500, True, jnp.float32, opl_weight=0.7)  # same compiled program
    assert abs(h[-1] - 10 * 0.5 * (1 - 0.8) * (1 - 0.7)) < 1e-4


def _cgc_params(**overrides):
    """cat X contrast gain control behind an instantaneous OPL (I_OPL = luminance) without spatial blurs:
    each pixel is an independent cell."""
    return retina.preset("cat_x", undershoot=False, opl_weight=0.0, opl_amplification=1.0, luminosity_range=1.0,
                         leaky_heat=False, center_sigma=0.0, surround_sigma=0.0, adaptation_sigma=0.0, **overrides)


def test_contrast_gain_control_steady_state(key):
    # cat X: lambda' 150, g_A0 5, lambda_A 100; constant I_OPL = drive, one drive per pixel.
    drives = np.array([0.01, 0.1, 1.0], np.float32)
    expected = np.array([0.181, 0.5, 1.130])
    v = np.asarray(jax.jit(retina.cgc_steady_state, static_argnums=(1, 2))(150.0 * drives, 5.0, 100.0))
    np.testing.assert_allclose(100 * v**3 + 5 * v, 150 * drives, rtol=1e-6)
    np.testing.assert_allclose(v, expected, atol=2e-3)
    params = _cgc_params(center_tau=1e-4, dt=0.001)
    state = retina.init_state(params, (1, 3), key=key)
    _, out = retina.run(params, state, np.broadcast_to(drives, (800, 1, 3)), stages=True, spikes=False)
    np.testing.assert_allclose(np.asarray(out.bipolar)[-1, 0], v, rtol=2e-4)
    # started at the steady state (uniform screen), it stays there
    state = retina.init_state(params, (1, 3), key=key, luminance=1.0)
    _, out = retina.run(params, state, np.ones((800, 1, 3), np.float32), stages=True, spikes=False)
    np.testing.assert_allclose(np.asarray(out.bipolar), v[-1], rtol=1e-5)


def test_contrast_gain_falls_with_contrast(key):
    """F1 gain V/I_OPL of an 8 Hz sinusoid falls and its phase advances with amplitude (Shapley-Victor)."""
    dt, f = 0.0005, 8.0
    t = np.arange(int(1.0 / dt)) * dt
    amps = np.array([0.01, 0.3, 1.0], np.float32)
    movie = (amps[:, None] * np.sin(2 * np.pi * f * t)[None]).T[:, None, :].astype(np.float32)  # (T, 1, 3)
    gains, phases = [], []
    for lam_a in (100.0, 0.0):
        params = _cgc_params(center_tau=1e-5, dt=dt, adaptation_amplification=lam_a, stage_lag=False)
        state = retina.init_state(params, (1, 3), key=key)
        v = np.asarray(retina.run(params, state, movie, stages=True, spikes=False)[1].bipolar)[:, 0].T  # (3, T)
        last = t >= 0.5  # 4 cycles after the transient
        z = (v[:, last] * np.exp(-2j * np.pi * f * t[last])).mean(1) * 2
        gains.append(np.abs(z) / amps)
        phases.append(np.degrees(np.angle(z / -1j)))  # relative to sin
    g, ph = gains[0], phases[0]
    np.testing.assert_allclose(g, [2.97, 2.51, 1.28], rtol=0.05)
    assert g[0] > g[1] > g[2] and ph[0] < ph[1] < ph[2]
    np.testing.assert_allclose(gains[1], 150 / abs(5 + 2j * np.pi * f), rtol=0.02)  # lambda_A = 0: linear


def test_rectification_values():
    n_and_slope = jax.jit(jax.vmap(jax.value_and_grad(lambda v: retina.rectification(v, 0.0, 37.0, 100.0))))
    n, slope = (np.asarray(a) for a in n_and_slope(np.array([0.0, -1.0, -0.1, 0.1, -1e4, -1e-6, 1e-6], np.float32)))
    assert np.all(np.abs(n[:4] - [37.0, 9.99, 29.13, 47.0]) < [1e-5, 0.01, 0.01, 1e-4]), n
    assert 0 < n[4] < 0.01
    assert abs(slope[5] - 100) < 0.01 and abs(slope[6] - 100) < 1e-4  # C1 at v0: slope lambda_G on both sides


@pytest.mark.parametrize("dt", [0.001, 0.005])
def test_lif_rate_and_simulated_spikes(dt, key):
    currents = np.array([60.0, 100.0, 200.0, 400.0], np.float32)
    expected = 1 / (0.003 + np.log(currents / (currents - 50)) / 50)
    np.testing.assert_allclose(expected, [25.75, 59.3, 114.2, 176.4], rtol=2e-3)
    # One cell per current: no blurs, no OPL dynamics to speak of, no transient, no CGC, so the ON
    # ganglion input is i0 + lambda_G (lambda' / g_A0) L: pick the luminance L of each pixel.
    params = retina.preset("convis", noise_sigma=0.0, center_sigma=0.0, surround_sigma=0.0, opl_weight=0.0, undershoot=False,
                           opl_amplification=1.0, center_tau=1e-4, transient_weight=0.0, i0=50.0, dt=dt)
    lum = (currents - 50.0) / 100.0  # lambda_G = 100, lambda' = g_A0 = 50
    settle, seconds = int(0.2 / dt), 10.0
    state = retina.init_state(params, (1, 4), key=key)
    _, out = retina.run(params, state, np.broadcast_to(lum, (settle + int(seconds / dt), 1, 4)))
    rates, spikes = np.asarray(out.rates), np.asarray(out.spikes)
    np.testing.assert_allclose(rates[-1, 0, 0], expected, rtol=1e-3)  # retina.lif_rate of the designed currents
    np.testing.assert_allclose(spikes[settle:, 0, 0].sum(0) / seconds, expected, rtol=0.01)
    assert spikes[:, 1].sum() == 0  # OFF input N(-V) < g_L: silent


def test_lif_step_equals_event_driven_numpy(x64):
    """One step of the exact LIF from mixed states (free, refractory past or into the step), float64."""
    rng = np.random.default_rng(3)
    n, dt = 4000, 0.002
    fields = {"leak": 50.0, "refr_mean": 0.003}
    p = retina.preset("convis", refr_sd=0.0, noise_sigma=0.0, **fields)
    current = rng.uniform(0.0, 800.0, n)
    voltage = rng.uniform(0.0, 0.999, n)
    refr_left = np.where(rng.random(n) < 0.3, rng.uniform(0.0, 2.5 * dt, n), 0.0)
    voltage = np.where(refr_left > 0, 0.0, voltage)  # the potential is held at 0 while refractory
    step = jax.jit(lambda c, v, r: _lif_step(jax.tree.map(jnp.asarray, p), c, v, r, None, None, dt))
    spike, v_new, r_new = step(current, voltage, np.exp(fields["leak"] * refr_left))
    spike_np, v_np, refr_np = np_lif(current, voltage, refr_left, fields, dt)
    state = retina.RetinaState(**{**dict.fromkeys(retina.RetinaState._fields), "refractory": r_new})
    assert 200 < spike_np.sum() < n - 200
    np.testing.assert_array_equal(np.asarray(spike), spike_np.astype(bool))
    np.testing.assert_allclose(np.asarray(v_new), v_np, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(retina.refractory_time(state, p)), refr_np, rtol=1e-9, atol=1e-12)


def _chunk_params(**overrides):
    """cat X (leaky heat, undershoot, contrast gain control) with pooling, membrane noise and refractory jitter."""
    return retina.preset("cat_x", luminosity_range=1.0, pixels_per_degree=10.0, noise_sigma=0.1, pool_sigma=0.1, **overrides)


def test_chunked_equals_one_shot_and_noise_follows_the_key(movie, key):
    params = _chunk_params()
    state = retina.init_state(params, (10, 10), key=key, luminance=0.5)
    _, whole = retina.run(params, state, movie, stages=True)
    s, a = retina.run(params, state, movie[:20], stages=True)
    s, b = retina.run(params, s, movie[20:], stages=True)
    for field in retina.RetinaOutput._fields:
        np.testing.assert_array_equal(np.concatenate([np.asarray(getattr(a, field)), np.asarray(getattr(b, field))]),
                                      np.asarray(getattr(whole, field)), err_msg=field)
    _, chunked = retina.run_chunked(params, state, movie, 20, stages=True)
    np.testing.assert_array_equal(chunked.spikes, np.asarray(whole.spikes))
    assert np.asarray(whole.spikes).sum() > 20
    # the same key gives the same spikes; another key, other spikes
    _, again = retina.run(params, retina.init_state(params, (10, 10), key=key, luminance=0.5), movie, stages=True)
    np.testing.assert_array_equal(np.asarray(again.spikes), np.asarray(whole.spikes))
    _, other = retina.run(params, retina.init_state(params, (10, 10), key=jax.random.fold_in(key, 1), luminance=0.5), movie,
                          stages=True)
    assert np.any(np.asarray(other.spikes) != np.asarray(whole.spikes))


def test_spikes_without_rates_and_their_straight_through_gradient(movie, key):
    params = retina.preset("convis", **BASE)
    state = retina.init_state(params, (10, 10), key=key)
    _, both = retina.run(params, state, movie)
    _, alone = retina.run(params, state, movie, rates=False)
    assert alone.rates is None
    np.testing.assert_array_equal(np.asarray(alone.spikes), np.asarray(both.spikes))
    # spikes carry the gradient of rates * dt backward
    radii = retina.blur_radii(params)

    def total(p, which):
        out = retina.run(p, state, movie[:10], spikes=True, radii=radii, rates=which == "rates")[1]
        return jnp.sum(out.spikes) if which == "spikes" else jnp.sum(out.rates) * params.config.dt

    g_spikes = jax.grad(total)(params, "spikes")
    g_rates = jax.grad(total)(params, "rates")
    for field in ("opl_amplification", "center_tau", "leak"):
        np.testing.assert_allclose(getattr(g_spikes, field), getattr(g_rates, field), rtol=1e-5, err_msg=field)
    with pytest.raises(ValueError, match="rates"):
        retina.run(params, state, movie, spikes=False, rates=False)


def test_steady_state_start_stays_put(key):
    params = _chunk_params(opl_weight=0.8)  # the compiled program of the test above
    state = retina.init_state(params, (10, 10), key=key, luminance=0.5)
    _, out = retina.run(params, state, np.full((40, 10, 10), 0.5, np.float32), stages=True)
    rates, v0 = np.asarray(out.rates), np.asarray(state.bipolar)[0, 0]
    np.testing.assert_allclose(rates, rates[:1] * np.ones((40, 1, 1, 1)), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(out.bipolar), v0, rtol=1e-5)
    assert v0 > 0.1


def test_noise_statistics():
    def both(seed):
        frames = jax.vmap(lambda i: _normals(seed, i, 0, (2, 16, 16), jnp.float32))(jnp.arange(64))
        return frames, _normals(seed, 0, 1, (2, 16, 16), jnp.float32)  # and the jitter stream

    draws, other = (np.asarray(a) for a in jax.jit(both)(np.array([12345, 678], np.uint32)))
    assert abs(draws.mean()) < 0.02 and abs(draws.std() - 1) < 0.02
    assert abs(np.mean(draws**4) - 3) < 0.15 and abs(np.mean(np.abs(draws) > 1.96) - 0.05) < 0.005
    assert abs(np.corrcoef(draws[:, 0].ravel(), draws[:, 1].ravel())[0, 1]) < 0.03  # ON vs OFF
    assert abs(np.corrcoef(draws[:-1].ravel(), draws[1:].ravel())[0, 1]) < 0.03  # frame to frame
    assert abs(np.corrcoef(other.ravel(), draws[0].ravel())[0, 1]) < 0.1


def test_gradients_through_chunks_equal_one_shot(x64, movie, key):
    # float64: in float32 the per-chunk reductions of the cotangents differ in order (the centre
    # width's gradient sums second differences, which cancel: chunkings differ by ~2e-4 there)
    params = jax.tree.map(np.float64, retina.preset("convis", adaptation_amplification=50.0))
    state = retina.init_state(params, (10, 10), key=key, dtype=jnp.float64)
    radii = retina.blur_radii(params)
    m = movie[:24].astype(np.float64)

    def loss(p, n_chunks):
        def chunk(s, frames):  # one retina.run per chunk, the state carried from chunk to chunk
            s, out = retina.run(p, s, frames, radii=radii)
            return s, (jnp.sum(out.rates) + jnp.sum(out.spikes), out.spikes)

        _, (totals, spikes) = lax.scan(chunk, state, m.reshape((n_chunks, 24 // n_chunks) + m.shape[1:]))
        return jnp.sum(totals), spikes.reshape((24,) + spikes.shape[2:])

    grad = jax.jit(jax.grad(loss, has_aux=True), static_argnums=1)
    g1, spikes1 = grad(params, 1)
    g2, spikes2 = grad(params, 2)
    np.testing.assert_array_equal(np.asarray(spikes1), np.asarray(spikes2))  # the non-leaky path, chunked
    assert np.asarray(spikes1).sum() > 0
    for f in retina.PARAM_FIELDS:
        np.testing.assert_allclose(float(getattr(g1, f)), float(getattr(g2, f)), rtol=1e-10, atol=1e-12, err_msg=f)
    assert abs(float(g1.surround_tau)) > 0 and abs(float(g1.center_sigma)) > 0 and np.isfinite(float(g1.refr_mean))


@pytest.mark.parametrize("adjoint", ["autodiff", "native"])
def test_check_grads_on_a_tiny_movie(x64, key, adjoint):
    if adjoint == "native" and not NATIVE:
        pytest.skip("the native retina kernel is not available here")
    params = retina.preset("convis", adaptation_amplification=50.0, pool_sigma=0.1)
    params = jax.tree.map(np.float64, params)
    state = retina.init_state(params, (4, 4), key=key, luminance=0.5, dtype=jnp.float64)
    radii = retina.blur_radii(params)
    frames = 0.5 + 0.3 * np.random.default_rng(0).uniform(size=(6, 4, 4))

    def f(center_tau, surround_sigma, adaptation_amplification, transient_weight):
        p = params.replace(center_tau=center_tau, surround_sigma=surround_sigma,
                           adaptation_amplification=adaptation_amplification, transient_weight=transient_weight)
        return retina.run(p, state, frames, radii=radii, stages=True, spikes=False, adjoint=adjoint)[1].ganglion_input

    args = tuple(np.float64(v) for v in (0.01, 0.15, 50.0, 0.7))
    # the native kernel gives reverse-mode derivatives only
    check_grads(jax.jit(f), args, order=1, modes=["fwd", "rev"] if adjoint == "autodiff" else ["rev"], eps=1e-6)


_MAPS = ("center", "undershoot_lowpass", "undershoot", "surround", "opl", "bipolar", "adaptation", "transient_lowpass",
         "transient", "current", "voltage")


def _gradients(params, state, movie, weights, adjoint, n_chunks=1):
    """Value and gradients (parameters, state maps, movie) of a loss on every output and the final state."""
    radii = retina.blur_radii(params)

    def loss(p, maps, m):
        def chunk(s, xs):
            frames, ws = xs
            s, out = retina.run(p, s, frames, spikes=False, stages=True, radii=radii, adjoint=adjoint)
            terms = (out.rates, out.opl, out.bipolar, out.adaptation, out.ganglion_input)
            return s, sum(jnp.sum(x * w) for x, w in zip(terms, ws))

        split = lambda x: x.reshape((n_chunks, -1) + x.shape[1:])  # noqa: E731
        s, totals = lax.scan(chunk, state._replace(**maps), (split(m), tuple(map(split, weights))))
        return jnp.sum(totals) + jnp.sum(s.bipolar) + jnp.sum(s.center) + 0.01 * jnp.sum(s.current)

    maps = {f: getattr(state, f) for f in _MAPS}
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(params, maps, movie)


def _problem(name, dtype, T=16, H=7, W=9, **overrides):
    params = jax.tree.map(dtype, retina.preset(name, **overrides))
    state = retina.init_state(params, (H, W), key=jax.random.key(3), luminance=0.4, dtype=dtype)
    rng = np.random.default_rng(1)
    movie = ((0.4 + 0.3 * rng.uniform(size=(T, H, W))) * params.config.luminosity_range).astype(dtype)
    weights = tuple(rng.standard_normal(shape).astype(dtype) for shape in
                    ((T, 2, H, W), (T, H, W), (T, H, W), (T, H, W), (T, 2, H, W)))
    return params, state, movie, weights


@needs_native
@pytest.mark.parametrize("name, overrides", [
    ("convis", dict(adaptation_amplification=50.0, pool_sigma=0.1, i0=80.0)),  # stage lag, 3-tap centre, all blurs
    ("convis", dict(i0=80.0)),  # lambda_A = 0: the adaptation blur skipped
    ("convis", dict(adaptation_amplification=50.0, stage_lag=False, center_n=2, center_sigma=0.3, padding="zero")),
    ("cat_x", dict(padding="reflect")),  # leaky heat equation
    ("primate_magno", dict(stage_lag=False, padding="circular")),  # no undershoot, pooling
])
def test_native_gradients_equal_autodiff(x64, name, overrides):
    """The hand-written reverse pass equals JAX's differentiation of the program (float64)."""
    params, state, movie, weights = _problem(name, np.float64, **overrides)
    (v_a, g_a), (v_n, g_n) = (_gradients(params, state, movie, weights, a) for a in ("autodiff", "native"))
    np.testing.assert_allclose(float(v_n), float(v_a), rtol=1e-12)
    for f in retina.PARAM_FIELDS:
        a, n = float(getattr(g_a[0], f)), float(getattr(g_n[0], f))
        np.testing.assert_allclose(n, a, rtol=1e-9, atol=1e-9 * (1 + abs(a)), err_msg=f)
    for f in _MAPS:
        np.testing.assert_allclose(np.asarray(g_n[1][f]), np.asarray(g_a[1][f]), rtol=1e-9, atol=1e-10, err_msg=f)
    np.testing.assert_allclose(np.asarray(g_n[2]), np.asarray(g_a[2]), rtol=1e-9, atol=1e-10)
    assert abs(float(g_n[0].surround_sigma)) > 0 and abs(float(g_n[0].i0)) > 0


@needs_native
def test_native_gradients_in_float32_and_in_chunks():
    params, state, movie, weights = _problem("convis", np.float32, adaptation_amplification=50.0, i0=80.0)
    (v_a, g_a), (v_n, g_n), (v_c, g_c) = (_gradients(params, state, movie, weights, a, n)
                                          for a, n in (("autodiff", 1), ("native", 1), ("native", 4)))
    assert abs(float(g_n[0].leak)) > 0 and abs(float(g_n[0].refr_mean)) > 0  # cells fire
    np.testing.assert_allclose(float(v_n), float(v_a), rtol=1e-5)
    for f in retina.PARAM_FIELDS:
        a, n, c = (float(getattr(g[0], f)) for g in (g_a, g_n, g_c))
        scale = 1e-3 * (abs(a) + 1e-3 * max(abs(float(getattr(g_a[0], q))) for q in retina.PARAM_FIELDS))
        assert abs(n - a) <= scale and abs(c - n) <= scale, (f, a, n, c)
    np.testing.assert_allclose(np.asarray(g_c[2]), np.asarray(g_n[2]), rtol=1e-4, atol=1e-5)


@needs_native
def test_native_gradients_under_vmap_and_errors(key):
    params = retina.preset("convis", dt=0.002)
    state = retina.init_state(params, (3, 4), key=key, luminance=0.5)
    movie = (0.5 + 0.2 * np.random.default_rng(0).standard_normal((20, 3, 4))).astype(np.float32)
    taus = np.array([0.005, 0.02, 0.01], np.float32)
    movies = np.stack([movie, movie[::-1], 1.2 * movie])

    def loss(tau, m, adjoint):
        return jnp.mean(retina.run(params.replace(center_tau=tau), state, m, spikes=False, adjoint=adjoint)[1].rates)

    # cells in one kernel call (items spread over threads): parameters batched, then movies too
    for in_axes in ((0, None), (0, 0)):
        m = movie if in_axes[1] is None else movies
        batched = jax.vmap(jax.grad(loss, argnums=(0, 1)), in_axes=in_axes + (None,))(taus, m, "native")
        for i, tau in enumerate(taus):
            one = jax.grad(loss, argnums=(0, 1))(tau, m if in_axes[1] is None else m[i], "autodiff")
            np.testing.assert_allclose(float(batched[0][i]), float(one[0]), rtol=1e-4)
            scale = float(np.max(np.abs(np.asarray(one[1]))))
            np.testing.assert_allclose(np.asarray(batched[1][i]), np.asarray(one[1]), rtol=1e-3, atol=1e-4 * scale)
    with pytest.raises(ValueError, match="adjoint: 'native' cannot serve this run: it covers runs without spikes"):
        retina.run(params, state, movie, adjoint="native")
    with pytest.raises(ValueError, match="adjoint"):
        retina.run(params, state, movie, spikes=False, adjoint="backsolve")


@pytest.fixture(scope="module")
def fit_problem():
    key = jax.random.key(7)
    params = retina.preset("convis", dt=0.002)
    state = retina.init_state(params, (2, 2), key=key, luminance=0.5)
    t = np.arange(150)
    movie = np.broadcast_to((0.5 + 0.4 * np.sign(np.sin(2 * np.pi * t / 50)))[:, None, None], (150, 2, 2)).astype(np.float32)
    truth = {"center_tau": np.array([0.02, 0.006], np.float32), "opl_amplification": np.array([6.0, 14.0], np.float32)}
    targets = np.stack([retina.run(params.replace(center_tau=a, opl_amplification=b), state, movie, spikes=False)[1].rates
                         for a, b in zip(*truth.values())])
    return params, state, movie, truth, targets


def test_fit_recovers_tau_and_gain_for_several_cells(fit_problem):
    params, state, movie, truth, targets = fit_problem
    start = params.replace(center_tau=np.full(2, 0.01, np.float32), opl_amplification=np.full(2, 10.0, np.float32))
    result = retina.fit(start, state, movie, targets, fields=("center_tau", "opl_amplification"), steps=300,
                        learning_rate=0.05, batched=True, chunk_size=75)
    assert result.losses.shape == (300,) and result.losses[-1] < 1e-3 * result.losses[0]
    np.testing.assert_allclose(np.asarray(result.params.center_tau), truth["center_tau"], rtol=0.05)
    np.testing.assert_allclose(np.asarray(result.params.opl_amplification), truth["opl_amplification"], rtol=0.05)


def test_fit_in_chunks_equals_one_chunk_and_resumes_from_its_checkpoints(fit_problem, tmp_path):
    params, state, movie, truth, targets = fit_problem
    kwargs = dict(fields=("center_tau", "opl_amplification"), steps=7, learning_rate=0.05)
    whole = retina.fit(params, state, movie, targets[0], chunk_steps=7, **kwargs)
    chunked = retina.fit(params, state, movie, targets[0], chunk_steps=3, checkpoint_dir=tmp_path / "ck", **kwargs)
    assert chunked.losses.shape == (7,) and np.all(np.isfinite(chunked.losses))
    np.testing.assert_allclose(chunked.losses, whole.losses, rtol=1e-6)
    np.testing.assert_allclose(float(chunked.params.center_tau), float(whole.params.center_tau), rtol=1e-6)
    assert latest_step(tmp_path / "ck") == 3
    resumed = retina.fit(params, state, movie, targets[0], chunk_steps=3, checkpoint_dir=tmp_path / "ck", **kwargs)
    np.testing.assert_array_equal(resumed.losses, chunked.losses)
    assert float(resumed.params.opl_amplification) == float(chunked.params.opl_amplification)


def test_multistart_fit_through_the_sweep_keeps_the_best_start(fit_problem):
    params, state, movie, truth, targets = fit_problem
    starts = {"center_tau": [0.004, 0.03, 0.012], "opl_amplification": [4.0, 20.0, 10.0]}
    result = retina.multistart_fit(params, state, movie, targets, starts, fields=("center_tau", "opl_amplification"),
                                   steps=120, learning_rate=0.05, batched=True, chunk_size=75)
    assert result.losses.shape == (3, 120) and result.final_losses.shape == (3, 2) and result.best.shape == (2,)
    np.testing.assert_array_equal(result.best, np.argmin(result.final_losses, axis=0))
    for cell in range(2):  # the chosen values are those of the best start, which is close to the truth
        b = result.best[cell]
        assert float(result.params.center_tau[cell]) == result.fitted["center_tau"][b, cell]
        np.testing.assert_allclose(float(result.params.center_tau[cell]), truth["center_tau"][cell], rtol=0.1)
    assert np.all(result.final_losses.min(0) < 1e-2 * result.losses[:, 0].max())


# --- presets and XML -----------------------------------------------------------------------

CONFIGS = Path(retina.__file__).parent / "configs"


@pytest.mark.parametrize("xml_name, layer, name", [("cat_x.xml", 0, "cat_x"), ("primate_parvo_magno.xml", 0, "primate_parvo"),
                                                   ("primate_parvo_magno.xml", 2, "primate_magno"), ("linear.xml", 0, None)])
def test_xml_files_match_presets(xml_name, layer, name):
    params = retina.read_xml(CONFIGS / xml_name, layer=layer)
    if name is None:  # OPL only
        expected = retina.preset("linear")
        for f in ("center_sigma", "surround_sigma", "center_tau", "surround_tau", "opl_amplification", "opl_weight"):
            assert getattr(params, f) == getattr(expected, f), f
        assert params.config == expected.config
        return
    assert params == retina.preset(name)


def test_xml_text_and_defaults():
    params = retina.read_xml('<retina-description-file><retina temporal-step__sec="0.01"><outer-plexiform-layer>'
                             '<linear-version center-sigma__deg="0.5" center-n__uint="2"/></outer-plexiform-layer>'
                             '</retina></retina-description-file>')
    assert params.config.dt == 0.01 and params.config.center_n == 2 and params.center_sigma == 0.5
    assert params.config.luminosity_range == 255.0 and params.i0 == 70.0 and params.adaptation_amplification == 0.0


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: retina.preset("dog"), ValueError, ["name", "cat_x"]),
        (lambda: retina.preset("cat_x", tau=1.0), ValueError, ["overrides", "tau"]),
        (lambda: retina.init_state(retina.preset("convis", center_tau=-0.01), (4, 4), key=jax.random.key(0)), ValueError,
         ["params.center_tau", "positive"]),
        (lambda: retina.init_state(retina.preset("convis", transient_tau=0.0), (4, 4), key=jax.random.key(0)), ValueError,
         ["params.transient_tau", "positive"]),
        (lambda: retina.init_state(retina.preset("convis", dt=0.0), (4, 4), key=jax.random.key(0)), ValueError,
         ["config.dt", "positive"]),
        (lambda: retina.init_state(retina.preset("convis", leak=500.0, refr_mean=0.2), (4, 4), key=jax.random.key(0)),
         ValueError, ["params.refr_mean", "leak"]),
        (lambda: retina.init_state(retina.preset("convis", opl_weight=float("nan")), (4, 4), key=jax.random.key(0)),
         ValueError, ["params.opl_weight", "finite"]),
        (lambda: retina.init_state(retina.preset("convis", opl_amplification=float("inf")), (4, 4), key=jax.random.key(0)),
         ValueError, ["params.opl_amplification", "finite"]),
        (lambda: retina.init_state(retina.preset("convis", v0="low"), (4, 4), key=jax.random.key(0)), TypeError,
         ["params.v0", "real number"]),
        (lambda: retina.init_state(retina.preset("convis", center_tau=np.array([0.01, -0.01])), (4, 4),
                                   key=jax.random.key(0)), ValueError, ["params.center_tau", "positive"]),
        (lambda: retina.init_state(retina.preset("convis"), (4, 4), key=None), TypeError, ["key", "jax.random.key"]),
        (lambda: retina.init_state(retina.preset("convis"), (4, 4), key=0), TypeError, ["key", "PRNG key"]),
        (lambda: retina.blur_radii(retina.preset("convis", center_sigma=0.001)), ValueError,
         ["params.center_sigma", "pixels", "minimum"]),
        (lambda: retina.read_xml("<retina-description-file><retina>"), ValueError, ["source", "malformed"]),
        (lambda: retina.read_xml("<retina-description-file/>"), ValueError, ["source", "<retina>"]),
        (lambda: retina.read_xml('<retina><outer-plexiform-layer><linear-version center-tau__sec="fast"/>'
                                 '</outer-plexiform-layer></retina>'), ValueError, ["center-tau__sec", "not a number"]),
        (lambda: retina.read_xml(CONFIGS / "cat_x.xml", layer=3), ValueError, ["layer", "1 ganglion"]),
        (lambda: retina.fit(retina.preset("convis"), None, np.zeros((2, 2, 2), np.float32), np.zeros(2, np.float32), fields=["nope"]), ValueError,
         ["fields", "nope"]),
        (lambda: retina.fit(retina.preset("convis"), None, np.zeros((3, 4, 4), np.float32), np.zeros((2, 2, 4, 4), np.float32),
                            fields=["center_tau"]), ValueError, ["target", "(3, 2, 4, 4)", "out.rates"]),
        (lambda: retina.fit(retina.preset("convis"), None, np.zeros((3, 4, 4), np.float32), np.zeros((3, 4, 4), np.float32),
                            fields=["center_tau"], batched=True, output="opl"), ValueError, ["target", "'n_cells', 3, 4, 4"]),
        (lambda: retina.step(retina.preset("convis"), retina.init_state(retina.preset("convis"), (4, 4), key=jax.random.key(0)),
                             np.zeros((3, 3), np.float32), radii=(0, 0, 0, 0)), ValueError, ["frame", "(4, 4)"]),
        (lambda: retina.step(retina.preset("convis"), retina.init_state(retina.preset("convis"), (4, 4), key=jax.random.key(0)),
                             np.full((4, 4), np.nan, np.float32), radii=(0, 0, 0, 0)), ValueError, ["frame", "finite"]),
    ],
)
def test_bad_configuration(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_bad_movies(key):
    params = retina.preset("convis")
    state = retina.init_state(params, (4, 4), key=key)
    with pytest.raises(ValueError, match="movie: expected frames of shape"):
        retina.run(params, state, np.zeros((5, 3, 4), np.float32))
    with pytest.raises(ValueError, match="movie: expected 3 dimensions"):
        retina.run(params, state, np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="movie: expected finite"):
        retina.run(params, state, np.full((2, 4, 4), np.nan, np.float32))
    with pytest.raises(TypeError, match="movie: expected a floating"):
        retina.run(params, state, np.zeros((2, 4, 4), np.int32))


def test_stimuli_shapes_and_values():
    assert retina.moving_bar is stimuli.moving_bar  # the generators live in vision_jax.data.stimuli
    step = stimuli.full_field_step(10, (4, 5), onset=3, background=100.0, contrast=0.5)
    assert step.shape == (10, 4, 5) and step[2, 0, 0] == 100.0 and step[3, 0, 0] == 150.0
    spot = stimuli.flashed_spot(6, (9, 9), radius=2.0, onset=1, duration=2)
    assert spot[1, 4, 4] == 0.75 and spot[1, 0, 0] == 0.5 and spot[3, 4, 4] == 0.5
    grating = stimuli.drifting_grating(8, (4, 16), period=8.0, frames_per_cycle=4.0)
    np.testing.assert_allclose(grating[0], grating[4], atol=1e-6)
    bar = stimuli.moving_bar(5, (3, 20), width=2.0, speed=3.0, start=2.0)
    assert bar[0, 0, 2] == 0.75 and bar[1, 0, 5] == 0.75 and bar[1, 0, 2] == 0.5


def test_load_movie_from_arrays_images_and_videos(tmp_path):
    from PIL import Image

    frames = (np.arange(3 * 4 * 5).reshape(3, 4, 5) * 4).astype(np.uint8)
    np.save(tmp_path / "m.npy", frames)
    np.savez(tmp_path / "m.npz", movie=frames)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(tmp_path / "m.gif", save_all=True, append_images=images[1:])
    (tmp_path / "pgm").mkdir()
    for i, im in enumerate(images):
        im.save(tmp_path / "pgm" / f"frame{i:03d}.pgm")
    for name in ("m.npy", "m.npz", "m.gif", "pgm"):
        movie = stimuli.load_movie(tmp_path / name)
        assert movie.dtype == np.float32 and movie.shape == (3, 4, 5), name
        np.testing.assert_array_equal(movie, frames, err_msg=name)
    # ffmpeg's PGM pipe (how videos are read when the ffmpeg program is there)
    pipe = b"".join(b"P5\n# frame\n5 4\n255\n" + f.tobytes() for f in frames)
    np.testing.assert_array_equal(np.asarray(stimuli._read_pgm_stream(pipe)), frames)
    import shutil

    if shutil.which("ffmpeg"):
        from vision_jax import plot

        plot.save_animation(np.repeat(np.repeat(frames, 4, 1), 4, 2), tmp_path / "m.mp4")
        assert stimuli.load_movie(tmp_path / "m.mp4").shape[1:] == (16, 20)
    with pytest.raises(ValueError, match="path: no such file"):
        stimuli.load_movie(tmp_path / "missing.mp4")
    (tmp_path / "junk.avi").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="path: "):
        stimuli.load_movie(tmp_path / "junk.avi")


@pytest.mark.parametrize("name", ["convis", "cat_x"])
def test_step_by_step_equals_run(name, movie, key):
    # run() blurs the non-leaky centre's input for all frames before its scan; step() per frame
    params = retina.preset(name, pixels_per_degree=10.0)
    state = retina.init_state(params, (10, 10), key=key)
    radii = retina.blur_radii(params)
    frames = movie[:12] * (255.0 if name == "cat_x" else 1.0)
    _, out = retina.run(params, state, frames, radii=radii, stages=True)
    one = jax.jit(lambda s, f: retina.step(params, s, f, radii=radii))
    s, steps = state, []
    for frame in frames:
        s, outputs = one(s, frame)
        steps.append(outputs)
    for name_, got, want in zip(("rates", "spikes", "opl", "bipolar", "adaptation", "ganglion_input"), zip(*steps), out):
        np.testing.assert_allclose(np.stack(got), want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()), err_msg=name_)
    assert np.asarray(out.spikes).sum() > 0 and np.abs(np.asarray(out.opl)).max() > 0
