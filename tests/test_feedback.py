"""The video feedback process: shapes, a numpy reference of one frame, wrap-around, schedule, scan vs loop."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vision_jax.autoencoder as ae
from vision_jax.autoencoder.feedback import blur5

CFG = ae.AutoencoderConfig(features=(4, 5), encoder_kernel=3, decoder_kernel=(4, 2), pooling=("max", "mean"))
H = W = 16
N = 6  # frames per run: one compiled program for every run of N frames


@pytest.fixture(scope="module")
def params():
    return ae.random_feedback_params(jax.random.key(0), CFG)


@pytest.fixture(scope="module")
def process(params):
    return ae.feedback_process(params, CFG)


@pytest.fixture(scope="module")
def state0(process):
    init_fn, _ = process
    return init_fn(jax.random.key(1), H, W)


@pytest.fixture(scope="module")
def jit_step(process):
    return jax.jit(process[1])


def test_state_shapes_per_layer(state0):
    assert [x.shape for x in state0.layers] == [(16, 16, 3), (8, 8, 4), (4, 4, 5)]
    assert int(state0.frame) == 0
    assert all(np.abs(np.asarray(x)).max() <= 1.0 for x in state0.layers)


def np_blur(x):
    return 0.5 * x + 0.125 * sum(np.roll(x, s, a) for s in (1, -1) for a in (0, 1))


def test_first_frame_matches_numpy_reference(params, state0, jit_step):
    """Frame 0 updates every layer from the previous state; reference built from numpy pieces."""
    hs = [np.asarray(x, np.float64) for x in state0.layers]
    np.testing.assert_allclose(jax.jit(blur5)(state0.layers[0]), np_blur(hs[0]), atol=1e-6)
    # the layers themselves are checked against numpy in test_autoencoder.py (the random params have a zero mean)
    enc = [np.asarray(ae.encode(params, state0.layers[l], l, CFG, padding="circular"), np.float64) for l in range(2)]
    dec = [np.asarray(ae.decode(params, state0.layers[l + 1], l, CFG, padding="circular"), np.float64) for l in range(2)]
    ups = [hs[0], enc[0], enc[1]]
    downs = [dec[0], dec[1], hs[2]]
    new = jit_step(state0)
    for l in range(3):
        want = 0.5 * hs[l] + 0.5 * np.tanh(1.333 * 0.5 * (np_blur(ups[l]) + np_blur(downs[l])))
        np.testing.assert_allclose(new.layers[l], want, atol=1e-5)
    assert int(new.frame) == 1


def test_hierarchical_schedule(state0, jit_step):
    """Layer l changes only on frames t with t % 2**l == 0; layer 0 every frame."""
    s = state0
    for t in range(8):
        n = jit_step(s)
        for level in range(3):
            changed = not np.array_equal(n.layers[level], s.layers[level])
            assert changed == (t % 2**level == 0), (t, level)
        s = n


def test_scan_equals_python_loop_and_bottom_is_visible(params, state0, jit_step):
    final, frames = ae.run_feedback(params, CFG, state0, N)
    s, loop_frames = state0, []
    for _ in range(N):
        s = jit_step(s)
        loop_frames.append(s.layers[0])
    np.testing.assert_allclose(frames, np.stack(loop_frames), atol=1e-6)
    for a, b in zip(final.layers, s.layers):
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_array_equal(frames[-1], final.layers[0])
    assert int(final.frame) == N
    _, every2 = ae.run_feedback(params, CFG, state0, N, record_every=2)
    np.testing.assert_allclose(every2, frames[1::2], atol=1e-6)


def test_wrap_around_commutes_with_circular_shift(params, state0):
    shift = (4, 8)  # multiples of 2**L = 4 so every layer shifts by whole samples
    shifted = state0._replace(layers=tuple(jnp.asarray(np.roll(np.asarray(x), (shift[0] >> l, shift[1] >> l), axis=(0, 1))) for l, x in enumerate(state0.layers)))
    _, a = ae.run_feedback(params, CFG, state0, N)
    _, b = ae.run_feedback(params, CFG, shifted, N)
    np.testing.assert_allclose(np.roll(np.asarray(a), shift, axis=(1, 2)), b, atol=1e-5)


def test_spatial_maps_equal_scalars(params, state0):
    _, a = ae.run_feedback(params, CFG, state0, N, fb=1.333, tblur=0.5)
    _, b = ae.run_feedback(params, CFG, state0, N, fb=np.full((H, W), 1.333, np.float32), tblur=np.full((H, W), 0.5, np.float32))
    np.testing.assert_allclose(a, b, atol=1e-6)
    _, c = ae.run_feedback(params, CFG, state0, N, tblur=np.where(np.arange(W) < 8, 1.0, 0.0).astype(np.float32) * np.ones((H, 1), np.float32))
    np.testing.assert_array_equal(c[-1, :, :8], state0.layers[0][:, :8])  # tblur = 1 freezes that half


def test_deterministic_and_bounded_for_1000_frames(params):
    init_fn, _ = ae.feedback_process(params, CFG, fb=3.0, tblur=0.2)
    s = init_fn(jax.random.key(2), H, W, kind="binary")
    assert set(np.unique(np.asarray(s.layers[1]))) == {-1.0, 1.0}
    f1, fr1 = ae.run_feedback(params, CFG, s, 1000, fb=3.0, tblur=0.2, record_every=100)  # the same program as N frames
    f2, fr2 = ae.run_feedback(params, CFG, s, 1000, fb=3.0, tblur=0.2, record_every=100)
    np.testing.assert_array_equal(fr1, fr2)
    assert all(np.abs(np.asarray(x)).max() <= 1.0 for x in f1.layers)
    r = ae.render_frames(fr1)
    assert r.shape == (10, H, W, 3) and r.min() >= 0 and r.max() <= 1


def test_bad_arguments_raise(params, state0):
    init_fn, _ = ae.feedback_process(params, CFG)
    with pytest.raises(ValueError, match="multiples of 2\\*\\*levels = 4"):
        init_fn(jax.random.key(0), 18, 16)
    with pytest.raises(ValueError, match="schedule"):
        ae.feedback_process(params, CFG, schedule="random")
    with pytest.raises(ValueError, match="tblur"):
        ae.feedback_process(params, CFG, tblur=1.5)
    with pytest.raises(ValueError, match="fb"):
        ae.run_feedback(params, CFG, state0, 2, fb=np.ones((8, 8), np.float32))
    with pytest.raises(ValueError, match="record_every"):
        ae.run_feedback(params, CFG, state0, 5, record_every=2)
    with pytest.raises(ValueError, match="layer 1"):
        ae.run_feedback(params, CFG, state0._replace(layers=(state0.layers[0], state0.layers[0], state0.layers[2])), 2)
    with pytest.raises(ValueError, match="layers"):
        ae.feedback_process(params._replace(layers=params.layers[:1]), CFG)
