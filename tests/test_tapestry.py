"""Digit tapestries wrap; windows move as specified and stay inside; ribbons slide by one pixel."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision_jax import data


@pytest.fixture(scope="module")
def tapestry():
    return data.make_tapestry(jax.random.key(0), grid=8)


def test_tapestry_wraps(tapestry):
    assert tapestry.shape == (224, 224)
    np.testing.assert_array_equal(tapestry[-28:], tapestry[:28])
    np.testing.assert_array_equal(tapestry[:, -28:], tapestry[:, :28])
    assert 0 <= tapestry.min() and tapestry.max() <= 1 and tapestry.max() > 0.9
    assert data.tapestry_period(tapestry) == 196


def test_random_walk_windows_match_the_tapestry(tapestry):
    frames, corners = data.random_walk_frames(jax.random.key(1), jnp.asarray(tapestry), 500, window=20)
    frames, corners = np.asarray(frames), np.asarray(corners)
    assert frames.shape == (500, 400) and corners.min() >= 0 and corners.max() < 196
    for t in (0, 77, 499):
        y, x = corners[t]
        np.testing.assert_array_equal(frames[t].reshape(20, 20), tapestry[y:y + 20, x:x + 20])
    step = np.abs(np.diff(corners, axis=0))
    step = np.minimum(step, 196 - step)  # across the wrap
    assert step.max() <= 4  # speed <= 3 px/step plus flooring
    assert len(np.unique(corners, axis=0)) > 100  # it moves


def test_walk_wraps_around(tapestry):
    _, corners = data.random_walk_frames(jax.random.key(2), jnp.asarray(tapestry), 5000, max_speed=3.0)
    jumps = np.abs(np.diff(np.asarray(corners), axis=0)).max()
    assert jumps > 150  # crossing the edge jumps by about one period


def test_ribbon_slides_one_pixel():
    digits = np.arange(3 * 4 * 5, dtype=np.float64).reshape(3, 4, 5)
    frames = data.ribbon_frames(jax.random.key(0), 3, digits=digits, window=5)
    assert frames.shape == (3 * 5 - 5 + 1, 20)
    np.testing.assert_array_equal(frames[1].reshape(4, 5)[:, :-1], frames[0].reshape(4, 5)[:, 1:])


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda t: data.random_walk_frames(jax.random.key(0), t, 10, window=40), ValueError, ["window", "28"]),
        (lambda t: data.random_walk_frames(jax.random.key(0), t, 10, max_speed=0.0), ValueError, ["max_speed", "positive"]),
        (lambda t: data.random_walk_frames(jax.random.key(0), t[:20, :20], 10), ValueError, ["tapestry", "square"]),
        (lambda t: data.make_tapestry(jax.random.key(0), grid=1), ValueError, ["grid", ">= 2"]),
        (lambda t: data.ribbon_frames(jax.random.key(0), 2, window=100), ValueError, ["window", "ribbon width"]),
    ],
)
def test_bad_input_names_the_argument(tapestry, call, exc, words):
    with pytest.raises(exc) as info:
        call(jnp.asarray(tapestry))
    for w in words:
        assert w in str(info.value), (w, str(info.value))
