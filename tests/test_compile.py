"""jit_with_cpu_options: the same results as jax.jit at top level, inside a trace and under grad."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision_jax._compile import jit_with_cpu_options


def _gathering(table, x, n):
    idx = jnp.clip((x * (table.shape[1] - 1)).astype(jnp.int32), 0, table.shape[1] - 1)
    return jnp.sum(table[jnp.arange(table.shape[0])[None, :], idx] * x, axis=1) * n


@pytest.fixture
def inputs(key):
    k1, k2 = jax.random.split(key)
    return jax.random.uniform(k1, (16, 9)), jax.random.uniform(k2, (40, 16))


def test_top_level_call_equals_plain_jit(inputs):
    fn = jit_with_cpu_options(_gathering, static_argnames=("n",))
    np.testing.assert_array_equal(fn(*inputs, n=2), jax.jit(_gathering, static_argnames=("n",))(*inputs, n=2))


def test_calls_from_inside_a_trace_compile_as_part_of_it(inputs):
    fn = jit_with_cpu_options(_gathering, static_argnames=("n",))
    table, x = inputs
    expected = _gathering(table, x, 3)
    np.testing.assert_allclose(jax.jit(lambda x: fn(table, x, n=3))(x), expected, rtol=1e-6)
    # no traced argument: the closed-over values reach the function as constants
    np.testing.assert_allclose(jax.jit(lambda: fn(table, x, n=3))(), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(lambda x: fn(table, x[None], n=3)[0])(x), expected, rtol=1e-6)
    grad = jax.grad(lambda x: jnp.sum(fn(table, x, n=3)))(x)
    np.testing.assert_allclose(grad, jax.grad(lambda x: jnp.sum(_gathering(table, x, 3)))(x), rtol=1e-6)


def test_errors_of_the_function_are_not_swallowed(inputs):
    def bad(x):
        raise ValueError("x: expected something else")

    with pytest.raises(ValueError, match="expected something else"):
        jit_with_cpu_options(bad)(inputs[1])


def test_extra_options_compile_the_same_values(inputs):
    from vision_jax._compile import REGION_ANALYSIS

    def lagged(x):  # each carried value read by two updates, as in the retina's stages
        def body(c, xk):
            a, b = c
            return (0.5 * a + xk, a - 0.25 * b), a * b

        return jax.lax.scan(body, (x[0], x[1]), x)

    fn = jit_with_cpu_options(lagged, extra_options=REGION_ANALYSIS)
    x = inputs[1]
    for got, want in zip(jax.tree.leaves(fn(x)), jax.tree.leaves(jax.jit(lagged)(x))):
        np.testing.assert_array_equal(got, want)
