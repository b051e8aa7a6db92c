"""The native CPU matching-pursuit kernel gives the entries of the pure-JAX program."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision_jax import _native
from vision_jax.sparse._mp import _entries_native, _entries_xla, encode_entries

pytestmark = pytest.mark.skipif(not _native.available("matching_pursuit") or jax.default_backend() != "cpu",
                                reason="the native kernel did not compile here (no C++ compiler?) or not on CPU")


def _problem(seed, K, N=60, M=30, Q=16):
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((N, M))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    x = rng.standard_normal((K, M))
    p_cum = np.sort(rng.uniform(0, 1, (N, Q)), axis=1)
    p_cum[:, 0], p_cum[:, -1] = 0, 1
    gain = rng.uniform(0, 2, N)
    gain[:3] = 0  # atoms that can never be selected
    f32 = np.float32
    return x.astype(f32), d.astype(f32), gain.astype(f32), p_cum.astype(f32)


def _both(x, d, gain, p_cum, C, alpha, n_steps, heh):
    args = tuple(jnp.asarray(a) for a in (x, d, gain, p_cum)) + (jnp.float32(C), jnp.float32(alpha))
    xla = jax.jit(_entries_xla, static_argnames=("n_steps", "heh", "block_size"))(*args, n_steps=n_steps, heh=heh,
                                                                                    block_size=32)
    native = jax.jit(_entries_native, static_argnums=0, static_argnames=("n_steps",))(
        _native.target("matching_pursuit"), *args, n_steps=n_steps, heh=heh)
    return xla, native


@pytest.mark.parametrize("heh", [False, True])
@pytest.mark.parametrize("K", [1, 63, 200])  # one thread, and rows split over the pool unevenly
def test_native_entries_equal_pure_jax(heh, K):
    x, d, gain, p_cum = _problem(K, K)
    (i_x, c_x), (i_n, c_n) = _both(x, d, gain, p_cum, 2.0, 0.9, 12, heh)
    assert i_n.shape == (K, 12) and i_n.dtype == jnp.int32 and c_n.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(i_n), np.asarray(i_x))
    np.testing.assert_allclose(np.asarray(c_n), np.asarray(c_x), rtol=1e-5, atol=1e-6)


def test_native_stops_when_nothing_is_left_to_explain():
    x, d, gain, p_cum = _problem(1, 50)
    x = -np.abs(x)
    d = np.abs(d)  # every correlation is negative: no coefficient at all
    for heh in (False, True):
        (i_x, c_x), (i_n, c_n) = _both(x, d, gain, p_cum, 3.0, 1.0, 5, heh)
        assert np.all(np.asarray(c_n) == 0)
        np.testing.assert_array_equal(np.asarray(i_n), np.asarray(i_x))


def test_native_under_vmap_with_traced_method():
    """A sweep mixing gain and HEH selection (``heh`` traced) runs the kernel once per member."""
    x, d, gain, p_cum = _problem(2, 100)
    args = tuple(jnp.asarray(a) for a in (x, d, gain, p_cum))

    def run(heh, alpha):
        return encode_entries(*args, jnp.float32(3.0), alpha, 8, heh, 32)

    heh = jnp.array([False, True, True])
    alpha = jnp.array([1.0, 1.0, 0.5], jnp.float32)
    assert "ffi_call" in str(jax.make_jaxpr(jax.vmap(run))(heh, alpha))
    idx, coef = jax.jit(jax.vmap(run))(heh, alpha)
    for m in range(3):
        i_x, c_x = _entries_xla(*args, jnp.float32(3.0), alpha[m], 8, bool(heh[m]), 32)
        np.testing.assert_array_equal(np.asarray(idx[m]), np.asarray(i_x))
        np.testing.assert_allclose(np.asarray(coef[m]), np.asarray(c_x), rtol=1e-5, atol=1e-6)


def test_native_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("VISION_JAX_NATIVE", "0")
    assert not _native._enabled()
    monkeypatch.setenv("VISION_JAX_NATIVE", "1")
    assert _native._enabled()
