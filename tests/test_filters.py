"""Filters: agreement with scipy.ndimage, FFT == direct, analytic temporal responses, chunking, gradients, errors."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
from jax.test_util import check_grads

from vision_jax import filters as F

SCIPY_MODE = {"reflect": "mirror", "symmetric": "reflect", "circular": "wrap", "zero": "constant"}


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.standard_normal((3, 37, 44)).astype(np.float32)


def test_gaussian_kernels_are_normalised_and_centred():
    k1 = np.asarray(F.gaussian_kernel_1d(1.5))
    assert k1.shape == (2 * math.ceil(6.0) + 1,)
    np.testing.assert_allclose(k1.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(k1, k1[::-1], rtol=1e-6)
    assert k1.argmax() == k1.size // 2
    x = np.arange(k1.size) - k1.size // 2
    expected = np.exp(-(x**2) / (2 * 1.5**2))
    np.testing.assert_allclose(k1, expected / expected.sum(), rtol=1e-5)
    k2 = np.asarray(F.gaussian_kernel(1.5, 11))
    np.testing.assert_allclose(k2, np.outer(k2[5] / k2[5].sum(), k2[:, 5] / k2[:, 5].sum()), rtol=1e-5)
    np.testing.assert_allclose(k2.sum(), 1.0, rtol=1e-6)


def test_dog_kernel_sums_to_one_minus_weight():
    k = np.asarray(F.dog_kernel(1.0, 3.0, surround_weight=0.8))
    assert k.shape == (25, 25)
    np.testing.assert_allclose(k.sum(), 0.2, atol=1e-6)
    assert k[12, 12] > 0 and k[12, 0] < 0


@pytest.mark.parametrize("padding", F.PADDINGS)
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_convolve2d_matches_scipy(images, padding, method):
    rng = np.random.default_rng(1)
    kernel = rng.uniform(-1, 1, (5, 7)).astype(np.float32)
    got = np.asarray(F.convolve2d(images, kernel, padding=padding, method=method))
    ref = np.stack([ndi.convolve(im.astype(np.float64), kernel.astype(np.float64), mode=SCIPY_MODE[padding]) for im in images])
    np.testing.assert_allclose(got, ref, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("padding", F.PADDINGS)
def test_fft_equals_direct_for_large_kernels(images, padding):
    kernel = F.dog_kernel(2.0, 4.0, 17)
    direct = F.convolve2d(images, kernel, padding=padding, method="direct")
    fft = F.convolve2d(images, kernel, padding=padding, method="fft")
    np.testing.assert_allclose(np.asarray(fft), np.asarray(direct), atol=1e-5)
    auto = F.convolve2d(images, kernel, padding=padding)
    np.testing.assert_allclose(np.asarray(auto), np.asarray(fft), atol=1e-6)


def test_convolve2d_nhwc_is_per_channel(images):
    x = np.moveaxis(images.reshape(1, 3, 37, 44), 1, -1)
    kernel = F.gaussian_kernel(1.0, 5)
    got = np.asarray(F.convolve2d_nhwc(x, kernel, padding="circular"))
    for c in range(3):
        ref = ndi.convolve(images[c].astype(np.float64), np.asarray(kernel, np.float64), mode="wrap")
        np.testing.assert_allclose(got[0, :, :, c], ref, atol=1e-5)


@pytest.mark.parametrize("padding", F.PADDINGS)
@pytest.mark.parametrize("sigma", [0.8, 2.5])
def test_gaussian_blur_matches_scipy(images, padding, sigma):
    got = np.asarray(F.gaussian_blur(images, sigma, padding=padding))
    ref = np.stack([ndi.gaussian_filter(im.astype(np.float64), sigma, mode=SCIPY_MODE[padding]) for im in images])
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_exp_lowpass_impulse_response_is_exact():
    dt, tau, T = 0.005, 0.02, 60
    x = np.zeros((T, 2), np.float32)
    x[0] = 1.0
    y, _ = F.exp_lowpass(x, tau, dt)
    e = math.exp(-dt / tau)
    expected = (1 - e) * e ** np.arange(T)
    np.testing.assert_allclose(np.asarray(y)[:, 0], expected, rtol=1e-5, atol=1e-8)
    # The ZOH response integrates the continuous kernel exp(-t/tau)/tau over each step.
    t = np.arange(T) * dt
    np.testing.assert_allclose(expected, np.exp(-t / tau) - np.exp(-(t + dt) / tau), rtol=1e-9)


@pytest.mark.parametrize("n", [1, 3, 5])
def test_exp_cascade_impulse_response_is_negative_binomial(n):
    dt, tau, T = 0.001, 0.004, 80
    x = np.zeros((T,), np.float32)
    x[0] = 1.0
    y, state = F.exp_cascade(x, tau, dt, n)
    e = math.exp(-dt / tau)
    k = np.arange(T)
    expected = np.array([math.comb(int(i) + n - 1, n - 1) for i in k]) * (1 - e) ** n * e**k
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-7)
    assert state.shape == (n,)
    np.testing.assert_allclose(np.asarray(y).sum(), 1.0, atol=2e-3)  # unit DC gain (truncated tail)


def test_virtual_retina_exp_cascade_peaks_at_tau():
    dt, tau, n = 0.0005, 0.02, 4
    x = np.zeros((400,), np.float32)
    x[0] = 1.0
    y, _ = F.exp_cascade(x, tau / n, dt, n + 1)
    # The continuous Gamma kernel peaks at tau; each discrete stage shifts it by under a step.
    assert abs(int(np.argmax(np.asarray(y))) * dt - tau) <= n * dt


@pytest.mark.parametrize("filt", ["lowpass", "cascade"])
def test_chunked_equals_one_shot_bit_for_bit(filt, key):
    x = jax.random.normal(key, (50, 4, 3))
    run = (lambda x, s: F.exp_lowpass(x, 0.01, 0.002, state=s)) if filt == "lowpass" else (lambda x, s: F.exp_cascade(x, 0.01, 0.002, 3, state=s))
    whole, final = run(x, None)
    parts, state = [], None
    for lo, hi in [(0, 7), (7, 20), (20, 21), (21, 50)]:
        y, state = run(x[lo:hi], state)
        parts.append(y)
    assert np.array_equal(np.asarray(jnp.concatenate(parts)), np.asarray(whole))
    assert np.array_equal(np.asarray(state), np.asarray(final))


def test_gradients(x64, key):
    # Each function is jitted, so check_grads' many evaluations reuse one compilation.
    img = jax.random.normal(key, (9, 11), jnp.float64)
    kernel = F.gaussian_kernel(1.0, 5, dtype=jnp.float64)
    for method in ("direct", "fft"):
        check_grads(jax.jit(lambda a, m=method: F.convolve2d(a, kernel, padding="reflect", method=m)), (img,), order=1,
                    modes=["fwd", "rev"])
    # the direct form's derivatives go through lax.conv (a custom JVP): in the image and the kernel at once
    check_grads(jax.jit(lambda a, k: F.convolve2d(a, k, padding="circular", method="direct")), (img, kernel), order=1,
                modes=["fwd", "rev"])
    check_grads(jax.jit(lambda s: F.gaussian_blur(img, s, radius=4)), (jnp.float64(1.3),), order=1, modes=["fwd", "rev"])
    check_grads(jax.jit(lambda s: F.gaussian_kernel(s, 7, dtype=jnp.float64)), (jnp.float64(1.1),), order=1)
    sig = jax.random.normal(key, (20, 2), jnp.float64)
    check_grads(jax.jit(lambda tau: F.exp_cascade(sig, tau, 0.001, 3)[0]), (jnp.float64(0.005),), order=1,
                modes=["fwd", "rev"], eps=1e-7)
    check_grads(jax.jit(lambda s: F.exp_lowpass(s, 0.005, 0.001)[0]), (sig,), order=1, modes=["fwd", "rev"])


def test_tau_can_be_fitted_under_jit(key):
    sig = jax.random.normal(key, (40,))
    target, _ = F.exp_lowpass(sig, 0.01, 0.001)

    @jax.jit
    def loss(tau):
        y, _ = F.exp_lowpass(sig, tau, 0.001)
        return jnp.mean((y - target) ** 2)

    g = jax.grad(loss)(jnp.float32(0.02))
    assert float(g) > 0  # a longer tau than the target's increases the loss


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: F.gaussian_kernel(-1.0), ValueError, ["sigma", "positive", "-1.0"]),
        (lambda: F.gaussian_kernel(1.0, 4), ValueError, ["size", "odd", "4"]),
        (lambda: F.gaussian_kernel(1.0, 0), ValueError, ["size", ">= 1"]),
        (lambda: F.dog_kernel(1.0, 0.0), ValueError, ["sigma_surround", "positive"]),
        (lambda: F.convolve2d(np.ones((5, 5), np.float32), np.ones((2, 3), np.float32)), ValueError, ["kernel", "odd"]),
        (lambda: F.convolve2d(np.ones((5,), np.float32), np.ones((3, 3), np.float32)), ValueError, ["x", "at least 2"]),
        (lambda: F.convolve2d(np.ones((5, 5), np.int32), np.ones((3, 3), np.float32)), TypeError, ["x", "floating"]),
        (lambda: F.convolve2d(np.full((5, 5), np.nan, np.float32), np.ones((3, 3), np.float32)), ValueError, ["x", "finite"]),
        (lambda: F.convolve2d(np.ones((5, 5), np.float32), np.ones((3, 3), np.float32), padding="wrap"), ValueError, ["padding", "circular"]),
        (lambda: F.convolve2d(np.ones((5, 5), np.float32), np.ones((3, 3), np.float32), method="fast"), ValueError, ["method", "fft"]),
        (lambda: F.convolve2d_nhwc(np.ones((5, 5, 3), np.float32), np.ones((3, 3), np.float32)), ValueError, ["x", "4 dimensions"]),
        (lambda: F.gaussian_blur(np.ones((5, 5), np.float32), 0.0), ValueError, ["sigma", "positive"]),
        (lambda: F.exp_lowpass(np.ones((5, 2), np.float32), -0.01, 0.001), ValueError, ["tau", "positive", "seconds"]),
        (lambda: F.exp_lowpass(np.ones((5, 2), np.float32), 0.01, 0.0), ValueError, ["dt", "positive"]),
        (lambda: F.exp_lowpass(np.ones((5, 2), np.float32), 0.01, 0.001, state=np.zeros(3, np.float32)), ValueError, ["state", "(2)"]),
        (lambda: F.exp_cascade(np.ones((5, 2), np.float32), 0.01, 0.001, 0), ValueError, ["n_stages", ">= 1"]),
        (lambda: F.exp_lowpass(np.ones((0, 2), np.float32), 0.01, 0.001), ValueError, ["x", "time step"]),
    ],
)
def test_bad_input_names_the_argument(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))
