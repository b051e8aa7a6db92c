"""Invariance learning: the fast step equals a dense numpy transcription; training beats controls."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision_jax import data
from vision_jax.sparse import invariance as inv


def numpy_train(sw, iw, frames, *, k, xi, alpha, leta, seta, c, prec, renorm_every, n_epochs):
    """The equations step by step, dense, one sample at a time (float64)."""
    sw, iw = sw.astype(np.float64).copy(), iw.astype(np.float64).copy()
    for _ in range(n_epochs):
        y = np.zeros(iw.shape[0])
        for t, v in enumerate(frames.astype(np.float64)):
            p = sw @ v
            winners = np.argsort(-p, kind="stable")[:k]
            s_t = np.zeros_like(p)
            s_t[winners] = p[winners]
            r = sw.T @ s_t
            e = v - r
            sw = sw + xi * sw * np.outer(s_t, e / np.maximum(r, prec))
            s = s_t / sw.sum(1)
            y = y + alpha * (iw @ s - y)
            q = iw.T @ y
            zeta = np.where(s > 0, leta, seta)
            iw = iw + iw * np.outer(y, zeta * (s - q) / np.maximum(q, prec))
            if renorm_every and t % renorm_every == 0:
                iw = c * iw / iw.sum(1, keepdims=True)
    return sw, iw


def test_step_equals_dense_numpy_in_float64(x64):
    key = jax.random.key(0)
    tap = data.make_tapestry(key, grid=6, dtype=np.float64)
    frames, _ = data.random_walk_frames(jax.random.key(1), jnp.asarray(tap), 300, window=12)
    params = inv.init_params(jax.random.key(2), 70, 144, 16, dtype=jnp.float64)  # 70 units: the top-k grid is padded
    hyper = inv.InvarianceHyper(xi=0.01, alpha=1 / 3, leta=0.05, seta=0.0005, renorm_c=4.0, prec=1e-10)
    got, _ = inv.train(params, frames, hyper, k=3, n_epochs=2, renorm_every=100)
    sw, iw = numpy_train(np.asarray(params.sw), np.asarray(params.iw), np.asarray(frames), k=3, xi=0.01, alpha=1 / 3,
                         leta=0.05, seta=0.0005, c=4.0, prec=1e-10, renorm_every=100, n_epochs=2)
    np.testing.assert_allclose(np.asarray(got.sw), sw, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(got.iw), iw, rtol=1e-8, atol=1e-12)


def test_without_renormalisation_the_row_scale_is_folded(x64):
    frames = jax.random.uniform(jax.random.key(3), (700, 16), jnp.float64)
    params = inv.init_params(jax.random.key(4), 12, 16, 5, dtype=jnp.float64)
    hyper = inv.InvarianceHyper(seta=0.01)
    got, _ = inv.train(params, frames, hyper, k=2, n_epochs=1, renorm_every=None)
    sw, iw = numpy_train(np.asarray(params.sw), np.asarray(params.iw), np.asarray(frames), k=2, xi=0.008, alpha=1 / 3,
                         leta=0.05, seta=0.01, c=9.0, prec=1e-10, renorm_every=None, n_epochs=1)
    np.testing.assert_allclose(np.asarray(got.iw), iw, rtol=1e-8)


def test_top_k_ties_are_deterministic():
    sw = jnp.ones((6, 4), jnp.float32)  # every unit has the same response
    params = inv.InvarianceParams(sw, jnp.full((3, 6), 0.1, jnp.float32))
    frames = jnp.ones((1, 4), jnp.float32)
    a, _ = inv.train(params, frames, k=2)
    b, _ = inv.train(params, frames, k=2)
    np.testing.assert_array_equal(np.asarray(a.sw), np.asarray(b.sw))
    changed = np.flatnonzero(np.any(np.asarray(a.sw) != 1, axis=1))
    assert changed.tolist() == [0, 1]  # lowest indices win ties


@pytest.fixture(scope="module")
def trained():
    tap = jnp.asarray(data.make_tapestry(jax.random.key(0)))
    frames, _ = data.random_walk_frames(jax.random.key(1), tap, 6000)
    params = inv.init_params(jax.random.key(2))
    out, stats = inv.train(params, frames, k=4, n_epochs=4)
    return params, out, stats, frames


def test_training_learns_and_stays_nonnegative(trained):
    params, out, stats, frames = trained
    err = np.asarray(stats.sparse_error)
    assert err[0] > 5 and err[-1] < 0.5  # the reconstruction error falls from ~10 to well below 1
    assert float(out.sw.min()) >= 0 and float(out.iw.min()) >= 0
    s, _, _ = inv.encode(out, frames)
    assert int(inv.dead_units(s)) <= 20
    cov = np.asarray(inv.coverage(out))
    assert cov.min() > 0.01 * cov.mean()


def test_renormalisation_sets_row_sums(trained):
    _, out, _, frames = trained
    # The last renormalisation happened at step 4000 of the last epoch; 1999 steps later the rows
    # have drifted from 9 but stay of that order.
    rows = np.asarray(out.iw.sum(1))
    assert np.all((rows > 3) & (rows < 27))
    once, _ = inv.train(out, frames[:1], k=4, renorm_every=1)  # renormalises after its single step
    np.testing.assert_allclose(np.asarray(once.iw.sum(1)), 9.0, rtol=1e-5)


def test_trained_invariant_layer_beats_both_controls(trained):
    params, out, _, frames = trained
    test_frames, _ = data.random_walk_frames(jax.random.key(9), jnp.asarray(data.make_tapestry(jax.random.key(0))), 3000)
    _, u, _ = inv.encode(out, test_frames)
    random_iw = inv.InvarianceParams(out.sw, 9.0 * params.iw / params.iw.sum(1, keepdims=True))
    _, u_random, _ = inv.encode(random_iw, test_frames)
    shuffled = test_frames[jax.random.permutation(jax.random.key(5), test_frames.shape[0])]
    _, u_shuffled, _ = inv.encode(out, shuffled)
    trained_p = float(inv.winner_persistence(u))
    assert trained_p > float(inv.winner_persistence(u_random))
    assert trained_p > float(inv.winner_persistence(u_shuffled))


def test_vmap_over_seeds_equals_separate_runs():
    frames = jax.random.uniform(jax.random.key(6), (200, 16), jnp.float32)
    keys = jax.random.split(jax.random.key(7), 3)
    params = jax.vmap(lambda k: inv.init_params(k, 12, 16, 5))(keys)
    hyper = inv.InvarianceHyper(xi=jnp.array([0.005, 0.01, 0.02], jnp.float32))
    batched, _ = jax.vmap(lambda p, h: inv._train(p, frames, h, 2, 1, 50), in_axes=(0, inv.InvarianceHyper(0, None, None, None, None, None)))(params, hyper)
    for i in range(3):
        one = inv.InvarianceParams(params.sw[i], params.iw[i])
        alone, _ = inv.train(one, frames, hyper._replace(xi=float(hyper.xi[i])), k=2, renorm_every=50)
        np.testing.assert_allclose(np.asarray(batched.iw[i]), np.asarray(alone.iw), rtol=1e-5)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda p, f: inv.train(p, f, k=1000), ValueError, ["k", "at most"]),
        (lambda p, f: inv.train(p, f, inv.InvarianceHyper(xi=-0.1)), ValueError, ["hyper.xi", "positive"]),
        (lambda p, f: inv.train(p, f, inv.InvarianceHyper(leta=0.0)), ValueError, ["hyper.leta", "positive"]),
        (lambda p, f: inv.train(p, f[:, :10]), ValueError, ["frames", "400"]),
        (lambda p, f: inv.train(p, f.at[0, 0].set(jnp.nan)), ValueError, ["frames", "finite"]),
        (lambda p, f: inv.train(p, f, n_epochs=0), ValueError, ["n_epochs"]),
        (lambda p, f: inv.init_params(0, 30, 400, 4), TypeError, ["key", "jax.random.key"]),
    ],
)
def test_bad_input_names_the_argument(call, exc, words):
    params = inv.init_params(jax.random.key(0), 30, 400, 4)
    frames = jnp.zeros((3, 400), jnp.float32)
    with pytest.raises(exc) as info:
        call(params, frames)
    for w in words:
        assert w in str(info.value), (w, str(info.value))
