"""Synthesis beyond plenoptic's models: the retina (rates of a short movie) and a sparse code."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision_jax import data, retina, sparse, synthesis

T = 6  # frames of the movie: the static image, repeated


def _retina_fn(dtype):
    params = retina.preset("cat_x")
    state = retina.init_state(params, (8, 8), key=jax.random.key(0), luminance=127.5, dtype=dtype)

    def fn(x):  # (1, 8, 8, 1) in [0, 1] -> ON/OFF rates of T frames, Hz
        movie = jnp.broadcast_to(255.0 * x[0, :, :, 0], (T, 8, 8)).astype(dtype)
        return retina.run(params, state, movie, spikes=False)[1].rates

    return fn


def _patch(dtype):
    img = data.natural_images(names="camera")[0][::16, ::16][10:18, 10:18, None]
    return jnp.asarray(0.25 + 0.5 * img, dtype)


def _sparse_fn(dtype):
    """A smooth readout of a sparse-coding dictionary: soft-thresholded correlations with 32 atoms."""
    patches = np.asarray(jax.random.normal(jax.random.key(1), (64, 64)), np.float32)
    d = sparse.init_dictionary(jax.random.key(2), patches, 32).astype(dtype)  # (32, 64) unit rows

    def fn(x):
        c = x.reshape(x.shape[0], -1) @ d.T
        return jax.nn.softplus(20.0 * (jnp.abs(c) - 0.2)) / 20.0

    return fn


@pytest.mark.parametrize("name", ["retina", "sparse"])
def test_metamer_matches_the_representation(name, key):
    fn = _retina_fn(jnp.float32) if name == "retina" else _sparse_fn(jnp.float32)
    target = _patch(jnp.float32)
    init = jax.random.uniform(key, target.shape)
    res = synthesis.metamer(fn, target, initial=init, max_iter=200, stop_criterion=0.0, show_progress=False,
                            optimizer=synthesis.adam_amsgrad(0.02))
    want = fn(target[None])
    err = float(jnp.mean((fn(res.metamers[:1]) - want) ** 2))
    err0 = float(jnp.mean((fn(init[None]) - want) ** 2))
    assert np.all(np.isfinite(np.asarray(res.losses))) and err < 0.02 * err0
    assert float(jnp.mean((res.metamers[0] - target) ** 2)) > 1e-5  # not the target itself


def test_eigendistortion_of_the_sparse_code_agrees_with_exact(x64):
    fn, img = _sparse_fn(jnp.float64), _patch(jnp.float64)
    exact = synthesis.eigendistortion(fn, img, method="exact")
    lz = synthesis.eigendistortion(fn, img, method="lanczos", max_iter=64, tol=1e-8)
    lam_e, lam_l = np.asarray(exact.eigenvalues), np.asarray(lz.eigenvalues)
    assert lam_e[0] > 0
    np.testing.assert_allclose(lam_l[0], lam_e[0], rtol=1e-8)
    assert abs(lam_l[1] - lam_e[1]) < 1e-8 * lam_e[0]
    overlap = np.abs(np.sum(np.asarray(exact.eigendistortions[0]) * np.asarray(lz.eigendistortions[0])))
    assert overlap > 1 - 1e-8
    fv = jax.jit(synthesis.fisher_product(fn, img))  # an eigenvector of J^T J: ||F v - lambda v|| small
    v = lz.eigendistortions[0].ravel()
    assert float(jnp.linalg.norm(fv(v) - lam_l[0] * v)) < 1e-6 * lam_l[0]


def test_eigendistortion_of_the_retina(x64):
    # Lanczos over the whole 64-pixel space: converged at both ends (its Ritz residuals), and the
    # top eigenvalue is the squared gain of the model along its eigendistortion (central differences).
    fn, img = _retina_fn(jnp.float64), _patch(jnp.float64)
    lz = synthesis.eigendistortion(fn, img, method="lanczos", max_iter=64, tol=1e-8)
    assert lz.converged == (True, True)
    lam = np.asarray(lz.eigenvalues)
    assert lam[0] > 0 and 0 <= lam[1] < lam[0]
    eps = 1e-4
    v = lz.eigendistortions[0][None]
    gain = float(jnp.sum((fn(img[None] + eps * v) - fn(img[None] - eps * v)) ** 2)) / (4 * eps**2)
    np.testing.assert_allclose(gain, lam[0], rtol=1e-5)
    u = jax.random.normal(jax.random.key(3), v.shape, jnp.float64)
    u = u / jnp.linalg.norm(u)
    assert float(jnp.sum((fn(img[None] + eps * u) - fn(img[None] - eps * u)) ** 2)) / (4 * eps**2) < lam[0]
