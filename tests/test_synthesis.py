"""Metamers and eigendistortions: objective, stopping, batching, resuming; eigenvalues against exact."""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vision_jax import data, models, synthesis


@pytest.fixture(scope="module")
def image():
    return jnp.asarray(data.natural_images(names="camera")[0][::16, ::16][:24, :24, None])


@pytest.fixture(scope="module")
def cs():
    model = models.center_surround(5, surround_std=2.0)
    params = model.init()
    return lambda x: model.apply(params, x)


def test_metamer_matches_the_representation(cs, image, key):
    res = synthesis.metamer(cs, image, key=key, max_iter=300, stop_criterion=0.0, show_progress=False)
    losses = np.asarray(res.losses[0])
    assert losses.shape == (300,) and np.all(np.isfinite(losses))
    assert losses[-1] < 0.05 * losses[0]
    rep_err = float(jnp.mean((cs(res.metamers[:1]) - cs(image[None])) ** 2))
    assert rep_err < 0.05 * float(jnp.mean(cs(image[None]) ** 2))
    assert float(jnp.mean((res.metamers[0] - image) ** 2)) > 1e-4  # a metamer, not a copy


def test_stopping_rule_and_batch_each_stop_on_their_own(cs, image, key):
    inits = jnp.stack([jax.random.uniform(key, image.shape), 0.5 * image + 0.25])
    res = synthesis.metamer(cs, image, initial=inits, max_iter=400, stop_criterion=1e-4, stop_iters_to_check=20,
                            show_progress=False)
    n = np.asarray(res.n_iter)
    assert n.shape == (2,) and np.all(n < 400) and n[0] != n[1]
    for b in range(2):
        losses = np.asarray(res.losses[b])
        k = n[b]
        assert abs(losses[k - 20] - losses[k - 1]) < 1e-4 and np.all(np.isnan(losses[k:]))


def test_resume_continues_the_same_trajectory(cs, image, key):
    whole = synthesis.metamer(cs, image, key=key, max_iter=120, stop_criterion=0.0, chunk_size=40, show_progress=False)
    part = synthesis.metamer(cs, image, key=key, max_iter=60, stop_criterion=0.0, chunk_size=40, show_progress=False)
    rest = synthesis.metamer(cs, image, state=part.state, max_iter=120, stop_criterion=0.0, chunk_size=40, show_progress=False)
    np.testing.assert_allclose(np.asarray(rest.metamers), np.asarray(whole.metamers), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(rest.losses), np.asarray(whole.losses), rtol=1e-5)


def test_store_every_keeps_progress(cs, image, key):
    res = synthesis.metamer(cs, image, key=key, max_iter=40, stop_criterion=0.0, store_every=10, show_progress=False)
    assert res.stored.shape == (1, 5) + image.shape
    assert float(jnp.abs(res.stored[0, -1] - res.metamers[0]).max()) == 0.0


def test_status_figure_and_animation(cs, image, key, tmp_path):
    from PIL import Image

    res = synthesis.metamer(cs, image, key=key, max_iter=40, stop_criterion=0.0, store_every=10, show_progress=False)
    fig = synthesis.synthesis_status(res, cs, image, iteration=20, title="metamer")
    assert len(fig.axes) == 4  # image, representation error (+ its colour bar), loss
    fig.savefig(tmp_path / "status.png")
    assert (tmp_path / "status.png").stat().st_size > 1000
    path = synthesis.animate(res, tmp_path / "progress.gif", cs, image)
    with Image.open(path) as gif:
        assert gif.n_frames == 5
    with pytest.raises(ValueError, match="iteration: expected a stored iteration"):
        synthesis.synthesis_status(res, iteration=15)
    with pytest.raises(ValueError, match="no stored progress"):
        synthesis.animate(res._replace(stored=res.stored[:, :0]), tmp_path / "x.gif")


def test_non_finite_model_output_is_an_error(image, key):
    with pytest.raises(ValueError, match="model_fn: the loss of metamer 0 became non-finite"):
        synthesis.metamer(lambda x: jnp.log(x - 0.5), image * 0 + 0.9, initial=image * 0 + 0.6,
                          optimizer=optax.sgd(1000.0), max_iter=20, show_progress=False)


def test_metamer_bad_input(cs, image, key):
    with pytest.raises(ValueError, match="initial: expected images of shape"):
        synthesis.metamer(cs, image, initial=jnp.zeros((1, 10, 10, 1)), max_iter=2)
    with pytest.raises(ValueError, match="key"):
        synthesis.metamer(cs, image, max_iter=2)
    with pytest.raises(ValueError, match="allowed_range"):
        synthesis.metamer(cs, image, key=key, allowed_range=(1, 0))
    with pytest.raises(TypeError, match="model_fn: expected a function"):
        synthesis.metamer(None, image, key=key, max_iter=2)
    with pytest.raises(TypeError, match="model_fn: expected a function"):
        synthesis.metamer_ctf(None, image, key=key, max_iter=2)
    with pytest.raises(TypeError, match="model_fn: expected a function"):
        synthesis.eigendistortion("gaussian", image)
    with pytest.raises(TypeError, match="reference_metric: expected a function"):
        synthesis.mad_competition(image, lambda a, b: jnp.mean((a - b) ** 2), 0.5, "min", key=key, max_iter=2)


@pytest.mark.parametrize("name", ["gaussian", "luminance_contrast_gain_control", "on_off"])
def test_lanczos_agrees_with_exact_in_float64(x64, name):
    img = jnp.asarray(data.natural_images(names="camera")[0][::32, ::32][:12, :12, None], jnp.float64)
    model = {"gaussian": models.gaussian(5, std=1.0),
             "luminance_contrast_gain_control": models.luminance_contrast_gain_control(5, luminance_scalar=3.0, contrast_scalar=5.0),
             "on_off": models.on_off(5)}[name]
    params = jax.tree.map(lambda p: p.astype(jnp.float64), model.init())
    fn = lambda x: model.apply(params, x)  # noqa: E731
    exact = synthesis.eigendistortion(fn, img, method="exact")
    lz = synthesis.eigendistortion(fn, img, method="lanczos", max_iter=144, tol=1e-8)
    lam_e, lam_l = np.asarray(exact.eigenvalues), np.asarray(lz.eigenvalues)
    np.testing.assert_allclose(lam_l[0], lam_e[0], rtol=1e-6)
    # The bottom: to 1 % where F is non-singular; ~0 (below 1e-10 of the top) where it is singular.
    if lam_e[1] > 1e-10 * lam_e[0]:
        np.testing.assert_allclose(lam_l[1], lam_e[1], rtol=1e-2)
    else:
        assert abs(lam_l[1]) < 1e-10 * lam_e[0]
    overlap = np.abs(np.sum(np.asarray(exact.eigendistortions[0]) * np.asarray(lz.eigendistortions[0])))
    assert overlap > 1 - 1e-6  # the same vector up to sign


def test_power_top_is_accurate_and_unconverged_bottom_warns(x64):
    img = jnp.asarray(data.natural_images(names="camera")[0][::32, ::32][:12, :12, None], jnp.float64)
    model = models.gaussian(5, std=1.0)
    params = jax.tree.map(lambda p: p.astype(jnp.float64), model.init())
    fn = lambda x: model.apply(params, x)  # noqa: E731
    exact = np.asarray(synthesis.eigendistortion(fn, img, method="exact").eigenvalues)
    with pytest.warns(UserWarning, match="bottom eigenvalue"):
        res = synthesis.eigendistortion(fn, img, method="power", max_iter=300)
    np.testing.assert_allclose(float(res.eigenvalues[0]), exact[0], rtol=1e-5)
    assert res.converged == (True, False)


def test_eigendistortion_of_any_pure_function(key):
    # A learned-sparse-code-like model: a fixed random dictionary and a soft threshold.
    d = jax.random.normal(key, (20, 64))

    def code(x):
        return jax.nn.relu(x.reshape(x.shape[0], -1) @ d.T - 0.1)

    img = jax.random.uniform(key, (8, 8, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = synthesis.eigendistortion(code, img, method="lanczos", max_iter=64)
    assert res.eigendistortions.shape == (2, 8, 8, 1) and float(res.eigenvalues[0]) > float(res.eigenvalues[1])


def test_eigendistortion_bad_input(cs, image):
    with pytest.raises(ValueError, match="method"):
        synthesis.eigendistortion(cs, image, method="svd")
    with pytest.raises(ValueError, match="image: expected one image"):
        synthesis.eigendistortion(cs, jnp.stack([image, image]))
    with pytest.raises(ValueError, match="model_fn: returned non-finite"):
        synthesis.eigendistortion(lambda x: jnp.log(x - 2.0), image)


def test_randomized_svd_top_agrees_with_exact(x64):
    img = jnp.asarray(data.natural_images(names="camera")[0][::32, ::32][:12, :12, None], jnp.float64)
    model = models.luminance_gain_control(5, luminance_scalar=3.0)
    params = jax.tree.map(lambda p: p.astype(jnp.float64), model.init())
    fn = lambda x: model.apply(params, x)  # noqa: E731
    exact = synthesis.eigendistortion(fn, img, method="exact", k=2)
    rs = synthesis.eigendistortion(fn, img, method="randomized_svd", k=2, max_iter=40, tol=1e-8)
    assert rs.eigendistortions.shape == (2, 12, 12, 1) and rs.converged[0]
    np.testing.assert_allclose(np.asarray(rs.eigenvalues), np.asarray(exact.eigenvalues[:2]), rtol=1e-6)
    overlap = np.abs(np.sum(np.asarray(exact.eigendistortions[0]) * np.asarray(rs.eigendistortions[0])))
    assert overlap > 1 - 1e-6
