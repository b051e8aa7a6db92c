"""LGN-like models: equal to plenoptic on its images for every padding; pure, differentiable, checked."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision_jax import models

BUILDERS = {
    "Gaussian": (lambda pad: models.gaussian(31, std=3.0, pad_mode=pad), lambda po, pad: po.models.Gaussian(31, 3.0, pad_mode=pad)),
    "CenterSurround": (lambda pad: models.center_surround(31, pad_mode=pad), lambda po, pad: po.models.CenterSurround(31, pad_mode=pad)),
    "LinearNonlinear": (lambda pad: models.linear_nonlinear(31, pretrained=True, pad_mode=pad),
                        lambda po, pad: po.models.LinearNonlinear(31, pretrained=True, pad_mode=pad, cache_filt=True)),
    "LuminanceGainControl": (lambda pad: models.luminance_gain_control(31, pretrained=True, pad_mode=pad),
                             lambda po, pad: po.models.LuminanceGainControl(31, pretrained=True, pad_mode=pad, cache_filt=True)),
    "LuminanceContrastGainControl": (lambda pad: models.luminance_contrast_gain_control(31, pretrained=True, pad_mode=pad),
                                     lambda po, pad: po.models.LuminanceContrastGainControl(31, pretrained=True, pad_mode=pad, cache_filt=True)),
    "OnOff": (lambda pad: models.on_off(31, pretrained=True, pad_mode=pad, apply_mask=True),
              lambda po, pad: po.models.OnOff(31, pretrained=True, pad_mode=pad, cache_filt=True, apply_mask=True)),
}


@pytest.fixture(scope="module")
def plenoptic():
    po = pytest.importorskip("plenoptic", reason="plenoptic is not installed (pip install torch==2.13.0 && pip install -e '.[reference]')")
    import torch

    torch.set_num_threads(1)
    return po


@pytest.mark.parametrize("pad", ["reflect", "circular", "constant"])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_equals_plenoptic(plenoptic, name, pad):
    import torch

    ours_fn, theirs_fn = BUILDERS[name]
    for image in (plenoptic.data.einstein(), plenoptic.data.curie()):
        image = image.to(torch.float32)
        with torch.no_grad(), _quiet():
            expected = theirs_fn(plenoptic, pad)(image).numpy().transpose(0, 2, 3, 1)
        model = ours_fn(pad)
        got = np.asarray(model.apply(model.init(), jnp.asarray(image.numpy().transpose(0, 2, 3, 1))))
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def test_center_surround_kernel_follows_the_code_not_the_docstring():
    assert np.asarray(models.center_surround(31).init()["center_std"]).tolist() == [1.0]
    kernel = 1.25 * (np.asarray(models.circular_gaussian(31, 1.0))[0] - np.asarray(models.circular_gaussian(31, 4.0))[0])
    assert abs(kernel.sum()) < 1e-5  # no renormalisation: sums to ~0
    np.testing.assert_allclose(kernel[15, 15], 0.1865, atol=1e-4)


def test_models_are_differentiable_in_their_parameters(key):
    images = jax.random.uniform(key, (2, 24, 24, 1))
    model = models.luminance_contrast_gain_control(7, luminance_scalar=2.0, contrast_scalar=3.0)
    params = model.init()
    loss, grads = jax.jit(jax.value_and_grad(lambda p: jnp.mean(model.apply(p, images) ** 2)))(params)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads["luminance_scalar"][0])) > 0
    out = jax.jit(model.apply)(params, images)
    np.testing.assert_allclose(float(jnp.mean(out**2)), float(loss), rtol=1e-6)


def test_fft_bank_equals_one_kernel_at_a_time_and_holds_fixed_kernels_as_constants(key):
    from vision_jax import filters

    assert [filters.fft_length(n) for n in (7, 94, 286)] == [8, 96, 288]
    x = jax.random.normal(key, (2, 21, 18))
    k1, k2 = jax.random.normal(key, (2, 2, 7, 7))
    for pad in ("reflect", "circular", "zero"):
        a, b = filters.convolve2d_fft_bank(x, [k1, k2], padding=pad)
        ref = [jnp.stack([filters.convolve2d(x, k[c], padding=pad, method="direct") for c in range(2)], 1) for k in (k1, k2)]
        np.testing.assert_allclose(np.asarray(a), np.asarray(ref[0]), atol=1e-4)
        np.testing.assert_allclose(np.asarray(b), np.asarray(ref[1]), atol=1e-4)
        pw = filters.convolve2d_fft_bank(jnp.stack([x[0], x[1]]), k1, padding=pad, pairwise=True)
        np.testing.assert_allclose(np.asarray(pw), np.asarray(jnp.stack([ref[0][0, 0], ref[0][1, 1]])), atol=1e-4)
    # A jitted model with fixed parameters transforms the image, not its kernels, in its loop.
    model = models.luminance_gain_control(7, luminance_scalar=2.0)
    params = model.init()
    grad = jax.jit(jax.grad(lambda im: jnp.sum(model.apply(params, im) ** 2)))
    hlo = grad.lower(jnp.ones((1, 16, 16, 1))).compile().as_text()
    assert hlo.count(" fft(") == 6  # rfft, 2 irfft forward; 2 rfft, 1 irfft backward


def test_on_off_has_two_channels_and_a_mask(key):
    model = models.on_off(7, apply_mask=True)
    out = model.apply(model.init(), jax.random.uniform(key, (1, 32, 32, 1)))
    assert out.shape == (1, 32, 32, 2)
    assert float(jnp.abs(out[0, 0, 0]).max()) == 0.0  # corner outside the disk


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: models.center_surround(30), ValueError, ["kernel_size", "odd"]),
        (lambda: models.center_surround(31, center_std=-1.0), ValueError, ["center_std", "positive"]),
        (lambda: models.center_surround(31, amplitude_ratio=0.5), ValueError, ["amplitude_ratio", ">= 1"]),
        (lambda: models.gaussian(31, pad_mode="wrap"), ValueError, ["pad_mode", "circular"]),
        (lambda: models.luminance_gain_control(15, pretrained=True), ValueError, ["kernel_size", "31"]),
        (lambda: models.gaussian(5).apply({"std": jnp.ones(1)}, jnp.ones((8, 8))), ValueError, ["images", "4 dimensions"]),
        (lambda: models.gaussian(5).apply({"std": jnp.ones(1)}, jnp.ones((1, 8, 8, 3))), ValueError, ["images", "1 channel"]),
        (lambda: models.gaussian(31).apply({"std": jnp.ones(1)}, jnp.ones((1, 8, 8, 1))), ValueError, ["images", "kernel size"]),
        (lambda: models.gaussian(5).apply({"std": jnp.ones(1)}, jnp.full((1, 8, 8, 1), jnp.nan)), ValueError, ["images", "finite"]),
    ],
)
def test_bad_input_names_the_argument(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))
