"""Matching pursuit vs a plain numpy reference, homeostasis rules by hand, dictionary learning."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision_jax import sparse
from vision_jax.sparse._homeostasis import _batch_p_cum, batch_statistics, entry_statistics, init_state, update_state
from vision_jax.sparse._mp import encode_entries, to_dense


def numpy_mp(x, d, n_steps, gain=None, p_cum=None, C=3.0, alpha=1.0):
    """A straightforward per-sample matching pursuit, written from the equations."""
    x, d = np.asarray(x, np.float64), np.asarray(d, np.float64)
    N = d.shape[0]
    gain = np.ones(N) if gain is None else np.asarray(gain, np.float64)
    codes = np.zeros((x.shape[0], N))
    for k in range(x.shape[0]):
        residual = x[k].copy()
        for _ in range(n_steps):
            c = d @ residual
            rc = np.maximum(c, 0)
            if p_cum is None:
                score = rc * gain
            else:
                grid = np.linspace(0, 1, p_cum.shape[1])
                score = np.array([np.interp(1 - np.exp(-rc[i] / C), grid, p_cum[i]) for i in range(N)])
            i = int(np.argmax(score))
            if score[i] <= 0:
                break
            codes[k, i] += alpha * c[i]
            residual -= alpha * c[i] * d[i]
    return codes


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    d = rng.standard_normal((40, 25))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    x = rng.standard_normal((37, 25))
    return x.astype(np.float32), d.astype(np.float32)


def test_mp_equals_numpy_reference(problem):
    x, d = problem
    got = np.asarray(sparse.matching_pursuit(x, d, 8, block_size=16))
    np.testing.assert_allclose(got, numpy_mp(x, d, 8), atol=1e-5)
    assert ((got != 0).sum(1) <= 8).all()


def test_mp_with_gains_equals_numpy_reference(problem):
    x, d = problem
    gain = np.random.default_rng(1).uniform(0.5, 2.0, 40).astype(np.float32)
    got = np.asarray(sparse.matching_pursuit(x, d, 6, gain=gain))
    np.testing.assert_allclose(got, numpy_mp(x, d, 6, gain=gain), atol=1e-5)


def test_heh_path_equals_numpy_reference(problem):
    x, d = problem
    rng = np.random.default_rng(2)
    p_cum = np.sort(rng.uniform(0, 1, (40, 16)), axis=1)
    p_cum[:, 0], p_cum[:, -1] = 0, 1
    p_cum = p_cum.astype(np.float32)
    got = np.asarray(sparse.matching_pursuit(x, d, 5, p_cum=p_cum, C=2.0, alpha=0.9))
    np.testing.assert_allclose(got, numpy_mp(x, d, 5, p_cum=p_cum, C=2.0, alpha=0.9), atol=1e-5)


def test_heh_with_identity_p_cum_selects_like_relu_mp(problem):
    x, d = problem
    identity = np.tile(np.linspace(0, 1, 128, dtype=np.float32), (40, 1))
    heh = sparse.matching_pursuit(x, d, 7, p_cum=identity, alpha=1.0)
    relu = sparse.matching_pursuit(x, d, 7)
    np.testing.assert_allclose(np.asarray(heh), np.asarray(relu), atol=1e-6)


def test_orthonormal_dictionary_recovers_exact_sparse_code(key):
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((32, 32)))
    codes = np.zeros((10, 32), np.float32)
    rng = np.random.default_rng(4)
    for k in range(10):
        codes[k, rng.choice(32, 4, replace=False)] = rng.uniform(0.5, 2.0, 4)
    x = codes @ q.T.astype(np.float32)
    got = sparse.matching_pursuit(x, q.T.astype(np.float32), 4)
    np.testing.assert_allclose(np.asarray(got), codes, atol=1e-5)


def test_block_size_does_not_change_codes(problem):
    x, d = problem
    a = sparse.matching_pursuit(x, d, 5, block_size=4)
    b = sparse.matching_pursuit(x, d, 5, block_size=1000)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_no_patches_give_no_codes(problem):
    _, d = problem
    assert sparse.matching_pursuit(np.zeros((0, 25), np.float32), d, 3).shape == (0, 40)


def test_all_nonpositive_correlations_add_nothing(problem):
    _, d = problem
    x = -np.abs(d[:3]) * 0  # zero patches: no positive correlation anywhere
    assert np.all(np.asarray(sparse.matching_pursuit(x.astype(np.float32), d, 4)) == 0)


def test_batch_p_cum_by_hand():
    codes = jnp.array([[0.0, 1.0], [0.0, 3.0], [2.0, 0.0], [0.0, 0.0]], jnp.float32)
    got = np.asarray(_batch_p_cum(codes, 1.0, 5))  # 4 bins on [0, 1]
    r = 1 - np.exp(-np.array([[0, 1], [0, 3], [2, 0], [0, 0]], np.float64))
    expected = np.zeros((2, 5))
    for i in range(2):
        hist, _ = np.histogram(r[:, i], bins=np.linspace(0, 1, 5))
        expected[i, 1:] = np.cumsum(hist) / 4
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_entry_statistics_equal_dense_statistics():
    # jitted: op-by-op these small functions compile one program per operation
    entries = jax.jit(entry_statistics, static_argnums=(2, 4))
    dense_stats = jax.jit(lambda i, c, n, C, q: batch_statistics(to_dense(i, c, n), C, q), static_argnums=(2, 4))
    # Matching-pursuit entries with repeated atoms, cancelling and zero coefficients, negative ones.
    idx = jnp.array([[1, 3, 1, 0], [2, 2, 2, 5], [4, 0, 4, 4], [0, 1, 2, 3]], jnp.int32)
    coef = jnp.array([[0.5, -0.2, 0.3, 0.0], [0.1, 0.2, 0.4, 1.5], [0.7, 0.9, -0.7, 0.0], [0.0, 0.0, 0.0, 0.0]], jnp.float32)
    assert float(jax.jit(to_dense, static_argnums=2)(idx, coef, 6)[2, 4]) == 0.0  # cancelled: inactive in the dense codes
    for got, want in zip(entries(idx, coef, 6, 1.0, 5), dense_stats(idx, coef, 6, 1.0, 5)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)
    # and on real pursuit entries
    rng = np.random.default_rng(1)
    d = rng.standard_normal((30, 16)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    x = rng.standard_normal((50, 16)).astype(np.float32)
    encode = jax.jit(encode_entries, static_argnums=(6, 7, 8))
    idx, coef = encode(jnp.asarray(x), jnp.asarray(d), jnp.ones(30, jnp.float32), jnp.zeros((30, 2), jnp.float32),
                       1.0, 1.0, 12, False, 16)
    for got, want in zip(entries(idx, coef, 30, 2.0, 9), dense_stats(idx, coef, 30, 2.0, 9)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)


def _codes():
    return jnp.array([[0.0, 1.0, 0.5, 0.0], [0.0, 2.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]], jnp.float32)


@pytest.mark.parametrize("method", sparse.METHODS)
def test_homeostasis_updates_by_hand(method):
    rule = sparse.homeostasis(method, eta_homeo=0.25, alpha_homeo=0.5, C=1.0)
    s0 = rule.init(4, nb_quant=5)
    s1 = rule.update(s0, _codes())
    s2 = rule.update(s1, _codes() * 0)
    p1 = np.array([1, 2, 1, 0]) / 3
    np.testing.assert_allclose(np.asarray(s1.p), p1, atol=1e-6)  # first update: the batch value
    np.testing.assert_allclose(np.asarray(s2.p), 0.75 * p1, atol=1e-6)
    target = 4 / 12
    if method in ("None", "HEH"):
        expected = np.ones(4)
    elif method == "OLS":
        power = np.array([1, 5, 0.25, 0]) / 3
        expected = np.maximum(power / power.mean(), 1e-12) ** -0.5
    elif method == "HAP":
        expected = np.log(np.clip(p1, 1e-6, 1 - 1e-6)) / np.log(target)
    else:  # EMP
        expected = (p1 < target * 1.5).astype(float)
    np.testing.assert_allclose(np.asarray(s1.gain), expected, rtol=1e-5)
    assert np.all(np.isfinite(np.asarray(s1.gain)))  # an unused atom gets a finite gain
    line = np.linspace(0, 1, 5)
    np.testing.assert_allclose(np.asarray(s1.p_cum), 0.75 * line + 0.25 * np.asarray(_batch_p_cum(_codes(), 1.0, 5)), atol=1e-6)


def test_traced_method_equals_static_method():
    s0 = init_state(4, 5)
    for m in range(len(sparse.METHODS)):
        static = update_state(s0, _codes(), m, 0.25, 0.5, 1.0)
        traced = jax.jit(lambda i: update_state(s0, _codes(), i, 0.25, 0.5, 1.0))(jnp.int32(m))
        np.testing.assert_allclose(np.asarray(traced.gain), np.asarray(static.gain), rtol=1e-6)


@pytest.fixture(scope="module")
def patches():
    from vision_jax import data

    return jnp.asarray(data.extract_patches(data.natural_images(), key=jax.random.key(0), n_patches=2048, patch_size=9))


SMALL = dict(n_atoms=36, n_steps=5, n_iter=96, batch_size=128, record_every=32, record_size=256, eta=0.05, show_progress=False)


@pytest.fixture(scope="module")
def learned(patches):
    return sparse.learn_dictionaries(jax.random.split(jax.random.key(7), 2), patches, ("None", "HEH"), **SMALL)


def test_learning_reduces_the_cost(learned):
    F = np.asarray(learned.history.F)
    assert F.shape == (2, 2, 3)
    assert np.all(np.isfinite(F))
    # The first record is after 32 iterations; the cost keeps falling after that.
    assert np.all(F[..., -1] < F[..., 0])
    np.testing.assert_allclose(np.linalg.norm(np.asarray(learned.dictionary), axis=-1), 1, rtol=1e-5)


def test_vmapped_methods_equal_separate_runs(learned, patches):
    alone = sparse.learn_dictionary(jax.random.split(jax.random.key(7), 2)[1], patches, homeostasis="HEH", **SMALL)
    np.testing.assert_allclose(np.asarray(alone.dictionary), np.asarray(learned.dictionary[1, 1]), atol=2e-5)
    np.testing.assert_allclose(np.asarray(alone.history.F), np.asarray(learned.history.F[1, 1]), atol=2e-5)


def test_same_key_same_result(patches):
    a = sparse.learn_dictionary(jax.random.key(3), patches, homeostasis="HAP", **{**SMALL, "n_iter": 32})
    b = sparse.learn_dictionary(jax.random.key(3), patches, homeostasis="HAP", **{**SMALL, "n_iter": 32})
    np.testing.assert_array_equal(np.asarray(a.dictionary), np.asarray(b.dictionary))


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda x, d: sparse.matching_pursuit(np.full_like(x, np.nan), d, 3), ValueError, ["x", "finite"]),
        (lambda x, d: sparse.matching_pursuit(x[:, :10], d, 3), ValueError, ["x", "length 25"]),
        (lambda x, d: sparse.matching_pursuit(x, d, 0), ValueError, ["n_steps", ">= 1"]),
        (lambda x, d: sparse.matching_pursuit(x.astype(np.int32), d, 3), TypeError, ["x", "floating"]),
        (lambda x, d: sparse.matching_pursuit(x, d, 3, gain=np.ones(3, np.float32)), ValueError, ["gain", "(40)"]),
        (lambda x, d: sparse.matching_pursuit(x, d, 3, p_cum=np.ones((40, 1), np.float32)), ValueError, ["p_cum", "nb_quant"]),
        (lambda x, d: sparse.matching_pursuit(x, 2 * d, 3), ValueError, ["dictionary", "unit-norm"]),
        (lambda x, d: sparse.matching_pursuit(x, d, 3, gain=-np.ones(40, np.float32)), ValueError, ["gain", "non-negative"]),
        (lambda x, d: sparse.matching_pursuit(x, d, 3, alpha=0.0), ValueError, ["alpha", "positive"]),
        (lambda x, d: sparse.matching_pursuit(x, d, 3, alpha=float("nan")), ValueError, ["alpha", "finite"]),
        (lambda x, d: sparse.matching_pursuit(x, d, 3, p_cum=np.tile(np.linspace(1, 0, 8, dtype=np.float32), (40, 1))),
         ValueError, ["p_cum", "non-decreasing"]),
        (lambda x, d: sparse.matching_pursuit(x, d, 3, p_cum=np.tile(np.linspace(0, 2, 8, dtype=np.float32), (40, 1))),
         ValueError, ["p_cum", "[0, 1]"]),
        (lambda x, d: sparse.homeostasis("ABC"), ValueError, ["method", "HEH"]),
        (lambda x, d: sparse.homeostasis("HAP", eta_homeo=1.5), ValueError, ["eta_homeo", "[0, 1]"]),
        (lambda x, d: sparse.learn_dictionary(jax.random.key(0), x, homeostasis="XYZ", n_atoms=4, n_iter=1), ValueError, ["method"]),
        (lambda x, d: sparse.learn_dictionary(jax.random.key(0), x, n_atoms=4, n_steps=0), ValueError, ["n_steps"]),
        (lambda x, d: sparse.learn_dictionary(0, x, n_atoms=4, n_iter=1), TypeError, ["key", "jax.random.key"]),
        (lambda x, d: sparse.learn_dictionaries(np.zeros(3), x, ("HAP",), n_atoms=4, n_iter=1), TypeError,
         ["keys", "jax.random.split"]),
    ],
)
def test_bad_input_names_the_argument(problem, call, exc, words):
    x, d = problem
    with pytest.raises(exc) as info:
        call(x, d)
    for w in words:
        assert w in str(info.value), (w, str(info.value))
