"""MAD competition: objective, direction, constraint, and equality with plenoptic's MADCompetition."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision_jax import data, synthesis


def mse(a, b):
    return jnp.mean((a - b) ** 2)


def smooth_l1(a, b):
    return jnp.mean(jnp.sqrt((a - b) ** 2 + 1e-3)) - np.sqrt(1e-3)


@pytest.fixture(scope="module")
def image():
    return jnp.asarray(data.natural_images(names="camera")[0][::16, ::16][:16, :16, None])


def test_first_loss_is_the_objective_at_the_start(image, key):
    res = synthesis.mad_competition(image, mse, smooth_l1, "max", key=key, metric_tradeoff_lambda=3.0, max_iter=1,
                                    n_images=2, show_progress=False)
    start = np.asarray(res.state.image)  # after one step; recompute the start from the same key
    x0 = np.asarray(image)[None] + 0.1 * np.asarray(jax.random.normal(jax.random.split(key)[0], (2,) + image.shape))
    assert start.shape == x0.shape
    for b in range(2):
        d = x0[b] - np.asarray(image)
        penalty = np.sum(np.minimum(x0[b], 0) ** 2 + np.maximum(x0[b] - 1, 0) ** 2)
        expected = -np.mean(d**2) + 0.1 * penalty  # the reference term is 0 at the start
        np.testing.assert_allclose(float(res.losses[b, 0]), expected, rtol=1e-5)
        np.testing.assert_allclose(float(res.reference_target[b]), np.mean(np.sqrt(d**2 + 1e-3)) - np.sqrt(1e-3),
                                   rtol=1e-5)


@pytest.mark.parametrize("minmax", ["min", "max"])
def test_pushes_one_metric_and_holds_the_other(image, key, minmax):
    res = synthesis.mad_competition(image, mse, smooth_l1, minmax, key=key, max_iter=150, stop_criterion=0.0,
                                    metric_tradeoff_lambda=100.0,
                                    show_progress=False)
    x0 = image[None] + 0.1 * jax.random.normal(jax.random.split(key)[0], (1,) + image.shape)
    opt0 = float(mse(image[None], x0))
    opt1, ref1, ref0 = float(res.optimized_metric[0]), float(res.reference_metric[0]), float(res.reference_target[0])
    if minmax == "min":
        assert opt1 < 0.9 * opt0
    else:
        assert opt1 > 1.1 * opt0
    assert abs(ref1 - ref0) < 0.1 * ref0  # a soft constraint


def test_automatic_tradeoff_is_a_power_of_ten(image, key):
    res = synthesis.mad_competition(image, mse, smooth_l1, "min", key=key, max_iter=1, show_progress=False)
    other = jax.random.uniform(jax.random.split(key)[1], image.shape)
    ratio = float(mse(image[None], other[None]) / smooth_l1(image[None], other[None]))
    assert res.metric_tradeoff_lambda == pytest.approx(10.0 ** np.round(np.log10(ratio)))


def test_bad_input(image, key):
    with pytest.raises(ValueError, match="minmax"):
        synthesis.mad_competition(image, mse, smooth_l1, "maximum", key=key)
    with pytest.raises(ValueError, match="initial: expected images of shape"):
        synthesis.mad_competition(image, mse, smooth_l1, "min", initial=jnp.zeros((1, 4, 4, 1)), metric_tradeoff_lambda=1.0)
    with pytest.raises(ValueError, match="optimized_metric: expected a scalar"):
        synthesis.mad_competition(image, lambda a, b: a - b, smooth_l1, "min", key=key)


def test_equals_plenoptic(image, x64):
    po = pytest.importorskip("plenoptic", reason="plenoptic is not installed (pip install torch==2.13.0 && pip install -e '.[reference]')")
    import torch

    torch.set_num_threads(1)
    img_t = torch.as_tensor(np.array(image)).permute(2, 0, 1)[None].double()

    def mse_t(a, b):
        return torch.mean((a - b) ** 2)

    def smooth_l1_t(a, b):
        return torch.mean(torch.sqrt((a - b) ** 2 + 1e-3)) - np.sqrt(1e-3)

    mad = po.MADCompetition(img_t, mse_t, smooth_l1_t, "max", metric_tradeoff_lambda=10.0)
    torch.manual_seed(0)
    mad.setup(initial_noise=0.1)
    start = mad.mad_image.detach().numpy().transpose(0, 2, 3, 1).copy()
    mad.synthesize(30, stop_criterion=0.0)
    theirs = np.asarray([float(v) for v in mad.losses])

    ours = synthesis.mad_competition(jnp.asarray(np.asarray(image), jnp.float64), mse, smooth_l1, "max",
                                     initial=jnp.asarray(start), metric_tradeoff_lambda=10.0, max_iter=30,
                                     stop_criterion=0.0, show_progress=False)
    np.testing.assert_allclose(np.asarray(ours.losses[0]), theirs[:30], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.asarray(ours.images[0]), mad.mad_image.detach().numpy().transpose(0, 2, 3, 1)[0],
                               rtol=1e-6, atol=1e-8)
