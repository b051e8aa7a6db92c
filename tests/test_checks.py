"""Argument checks: each names the argument, the expectation and what was given."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision_jax import _checks


def test_check_array_accepts_and_converts():
    out = _checks.check_array("x", np.ones((2, 3), np.float32), ndim=2)
    assert isinstance(out, jax.Array) and out.shape == (2, 3)


@pytest.mark.parametrize(
    "value, kwargs, exc, words",
    [
        (np.ones((2, 3), np.float32), {"ndim": 3}, ValueError, ["x", "3 dimensions", "(2, 3)"]),
        (np.ones((2, 3), np.float32), {"shape": (2, 4)}, ValueError, ["x", "(2, 4)", "(2, 3)"]),
        (np.ones((2, 3), np.int32), {}, TypeError, ["x", "floating", "int32"]),
        (np.array([1.0, np.nan], np.float32), {}, ValueError, ["x", "finite", "1 NaN"]),
        ("abc", {}, TypeError, ["x", "expected"]),
    ],
)
def test_check_array_errors(value, kwargs, exc, words):
    with pytest.raises(exc) as info:
        _checks.check_array("x", value, **kwargs)
    for w in words:
        assert w in str(info.value)


def test_value_checks_are_skipped_under_tracing():
    @jax.jit
    def f(x, tau):
        _checks.check_array("x", x)
        _checks.check_positive("tau", tau)
        return x * tau

    assert float(f(jnp.float32(2.0), jnp.float32(-1.0))) == -2.0


@pytest.mark.parametrize(
    "fn, value, exc, words",
    [
        (_checks.check_positive, -1.0, ValueError, ["tau", "positive", "-1.0"]),
        (_checks.check_positive, 0.0, ValueError, ["tau", "positive"]),
        (_checks.check_positive, float("nan"), ValueError, ["tau", "finite"]),
        (_checks.check_positive, "1", TypeError, ["tau", "real number"]),
        (_checks.check_nonnegative, -0.5, ValueError, ["tau", "non-negative"]),
        (_checks.check_probability, 1.5, ValueError, ["tau", "[0, 1]"]),
    ],
)
def test_scalar_checks(fn, value, exc, words):
    with pytest.raises(exc) as info:
        fn("tau", value)
    for w in words:
        assert w in str(info.value)


def test_check_int_and_choice():
    assert _checks.check_int("n", np.int64(3), min_value=1) == 3
    with pytest.raises(ValueError, match="n: expected an integer >= 1, got 0"):
        _checks.check_int("n", 0, min_value=1)
    with pytest.raises(TypeError, match="n: expected an integer"):
        _checks.check_int("n", 2.5)
    with pytest.raises(ValueError, match="padding: expected one of"):
        _checks.check_choice("padding", "wrap", ("circular", "reflect"))


def test_check_key_accepts_typed_and_raw_keys():
    typed, raw = jax.random.key(0), jax.random.PRNGKey(0)
    assert _checks.check_key("key", typed) is typed
    assert _checks.check_key("key", raw) is raw
    jax.jit(lambda k: _checks.check_key("key", k))(typed)  # a traced key passes too


@pytest.mark.parametrize("value, kwargs", [(None, {}), (0, {}), (jax.random.split(jax.random.key(0), 3), {}),
                                           (jnp.zeros(2, jnp.float32), {}), (jax.random.PRNGKey(0), {"allow_raw": False})])
def test_check_key_errors(value, kwargs):
    with pytest.raises(TypeError, match="key: expected a single PRNG key"):
        _checks.check_key("key", value, **kwargs)


def test_check_keys_gives_one_batch_axis():
    assert _checks.check_keys("keys", jax.random.key(0)).shape == (1,)
    assert _checks.check_keys("keys", jax.random.split(jax.random.key(0), 3)).shape == (3,)
    assert _checks.check_keys("keys", jax.random.PRNGKey(0)).shape == (1, 2)
    with pytest.raises(TypeError, match="keys: expected a PRNG key"):
        _checks.check_keys("keys", jnp.zeros(3))
