"""The layer-wise autoencoder: shapes, numpy references of the encoder/decoder, training, stacking, baseline."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import ndimage

import vision_jax.autoencoder as ae


# ---------------------------------------------------------------- numpy references

def np_encode(x, w, b, pooling, activation, wrap=False):
    """Same-size correlation (zero or wrap padding), bias, activation, 2x2 pooling; x (H, W, Cin), w (k, k, Cin, Cout)."""
    k = w.shape[0]
    r = k // 2
    xp = np.pad(x, ((r, r), (r, r), (0, 0)), mode="wrap" if wrap else "constant")
    H, W = x.shape[:2]
    z = np.zeros((H, W, w.shape[3]))
    for a in range(k):
        for c in range(k):
            z += xp[a : a + H, c : c + W] @ w[a, c]
    z = np.tanh(z + b) if activation == "tanh" else np.maximum(z + b, 0)
    z = z.reshape(H // 2, 2, W // 2, 2, -1)
    return z.max(axis=(1, 3)) if pooling == "max" else z.mean(axis=(1, 3))


def np_deconv(h, w, b, activation, wrap=False):
    """Caffe Deconvolution, stride 2, pad p = k/2-1, as a scatter: out[2i - p + a] += h[i] @ w[k-1-a] (wrapped or cropped)."""
    k = w.shape[0]
    p = k // 2 - 1
    H, W = h.shape[:2]
    out = np.zeros((2 * H, 2 * W, w.shape[3]))
    for i in range(H):
        for j in range(W):
            for a in range(k):
                for c in range(k):
                    y, x = 2 * i - p + a, 2 * j - p + c
                    if wrap:
                        y, x = y % (2 * H), x % (2 * W)
                    elif not (0 <= y < 2 * H and 0 <= x < 2 * W):
                        continue
                    out[y, x] += h[i, j] @ w[k - 1 - a, k - 1 - c]
    z = out + b
    return np.tanh(z) if activation == "tanh" else np.maximum(z, 0)


CFG2 = ae.AutoencoderConfig(features=(4, 6), encoder_kernel=(3, 5), decoder_kernel=(4, 2), pooling=("max", "mean"), activation="tanh")


@pytest.fixture(scope="module")
def params2():
    return ae.init_params(jax.random.key(0), CFG2, std=0.3, mean=jnp.array([0.4, 0.5, 0.6]))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, (6, 8, 8, 3))
    return jnp.asarray(ndimage.zoom(base, (1, 2, 2, 1), order=1), jnp.float32)  # smooth (6, 16, 16, 3)


def test_shapes_per_level(params2, images):
    codes = ae.encode_all(params2, images, CFG2)
    assert [c.shape for c in codes] == [(6, 8, 8, 4), (6, 4, 4, 6)]
    assert ae.decode(params2, codes[1], 1, CFG2).shape == (6, 8, 8, 4)
    assert ae.decode(params2, codes[0], 0, CFG2).shape == images.shape
    assert ae.apply(params2, images, CFG2).shape == images.shape
    assert ae.encode(params2, images[0], 0, CFG2).shape == (8, 8, 4)  # unbatched works too


def test_apply_is_composition_of_layers(params2, images):
    h1 = ae.encode(params2, images, 0, CFG2)
    h2 = ae.encode(params2, h1, 1, CFG2)
    rec = ae.decode(params2, ae.decode(params2, h2, 1, CFG2), 0, CFG2)
    np.testing.assert_allclose(ae.apply(params2, images, CFG2), rec, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("wrap", [False, True])
def test_layers_match_numpy_reference(params2, images, wrap):
    pad = "circular" if wrap else "zero"
    x = np.asarray(images[0], np.float64)
    L0, L1 = [jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), l) for l in params2.layers]
    mean = np.asarray(params2.mean, np.float64)
    h1 = np_encode(x - mean, L0.enc_w, L0.enc_b, "max", "tanh", wrap)
    np.testing.assert_allclose(ae.encode(params2, images[0], 0, CFG2, padding=pad), h1, atol=2e-5)
    h2 = np_encode(h1, L1.enc_w, L1.enc_b, "mean", "tanh", wrap)
    np.testing.assert_allclose(ae.encode(params2, jnp.asarray(h1, jnp.float32), 1, CFG2, padding=pad), h2, atol=2e-5)
    d1 = np_deconv(h2, L1.dec_w, L1.dec_b, "tanh", wrap)
    np.testing.assert_allclose(ae.decode(params2, jnp.asarray(h2, jnp.float32), 1, CFG2, padding=pad), d1, atol=2e-5)
    d0 = np_deconv(h1, L0.dec_w, L0.dec_b, "tanh", wrap) + mean
    np.testing.assert_allclose(ae.decode(params2, jnp.asarray(h1, jnp.float32), 0, CFG2, padding=pad), d0, atol=2e-5)


def test_relu_without_mean(images):
    cfg = ae.AutoencoderConfig(features=(3,), encoder_kernel=3, decoder_kernel=4, activation="relu", subtract_mean=False)
    p = ae.init_params(jax.random.key(1), cfg, mean=np.ones(3, np.float32))  # mean ignored without subtract_mean
    np.testing.assert_array_equal(p.mean, np.zeros(3))
    L = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), p.layers[0])
    x = np.asarray(images[1], np.float64)
    h = np_encode(x, L.enc_w, L.enc_b, "max", "relu")
    np.testing.assert_allclose(ae.encode(p, images[1], 0, cfg), h, atol=2e-5)
    assert np.asarray(ae.apply(p, images, cfg)).min() >= 0.0


def test_flax_module_equals_pure_functions_and_trains(params2, images):
    from functools import partial

    model = ae.ConvPoolAutoencoder(CFG2)
    v = ae.variables_from_params(params2)
    apply = jax.jit(model.apply)
    np.testing.assert_allclose(apply(v, images), ae.apply(params2, images, CFG2), rtol=1e-6, atol=1e-6)
    h1 = jax.jit(partial(model.apply, method="encode"), static_argnums=2)(v, images, 0)
    np.testing.assert_allclose(h1, ae.encode(params2, images, 0, CFG2), rtol=1e-6, atol=1e-6)
    d1 = jax.jit(partial(model.apply, method="decode"), static_argnums=2)(v, h1, 0)
    np.testing.assert_allclose(d1, ae.decode(params2, h1, 0, CFG2), rtol=1e-6, atol=1e-6)
    back = ae.params_from_variables(v, CFG2)
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(params2)):
        np.testing.assert_array_equal(a, b)
    # init gives the shapes of init_params and the given mean; one optax step through apply lowers the loss
    v0 = ae.ConvPoolAutoencoder(CFG2, mean=(0.4, 0.5, 0.6)).init(jax.random.key(0), images)
    assert jax.tree.map(jnp.shape, v0) == jax.tree.map(jnp.shape, v)
    np.testing.assert_allclose(v0["constants"]["mean"], [0.4, 0.5, 0.6])
    opt = optax.sgd(0.1, momentum=0.9)

    def loss(p):
        return ae.mse(model.apply({**v0, "params": p}, images), images)

    @jax.jit
    def step(p):
        value, grads = jax.value_and_grad(loss)(p)
        updates, _ = opt.update(grads, opt.init(p), p)
        return value, grads, optax.apply_updates(p, updates)

    before, grads, p1 = step(v0["params"])
    assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree_util.tree_leaves(grads))
    after = step(p1)[0]
    assert float(after) < float(before)
    with pytest.raises(ValueError, match="level"):
        model.apply(v, images, 2, method="encode")
    with pytest.raises(ValueError, match="mean"):
        ae.ConvPoolAutoencoder(CFG2, mean=(0.5,)).init(jax.random.key(0), images)


SGD = optax.sgd(0.05, momentum=0.9)  # one object: every training call with it shares compiled programs


def test_greedy_stacking_freezes_lower_layer(params2, images):
    opt = SGD
    p1, _ = ae.train_layer(params2, images, 0, CFG2, key=jax.random.key(1), optimizer=opt, steps=3, batch_size=2, chunk_steps=1)
    compiled = ae._training._train_chunk._cache_size()
    codes = ae.encode(p1, images, 0, CFG2)
    p2, _ = ae.train_layer(p1, codes, 1, CFG2, key=jax.random.key(2), optimizer=opt, steps=3, batch_size=2, chunk_steps=1)
    for a, b in zip(jax.tree_util.tree_leaves(p1.layers[0]), jax.tree_util.tree_leaves(p2.layers[0])):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(p1.layers[1]), jax.tree_util.tree_leaves(p2.layers[1])))
    np.testing.assert_array_equal(p2.mean, params2.mean)
    # train_greedy does the same, then fine-tuning moves every layer
    pg, hist = ae.train_greedy(params2, images, CFG2, key=jax.random.key(3), optimizer=opt, steps_per_layer=3, finetune_steps=3, batch_size=2, chunk_steps=1)
    assert [h.shape for h in hist.layer_losses] == [(3,), (3,)] and hist.finetune_losses.shape == (3,)
    # the layer stages reused the programs compiled above; only fine-tuning compiled anew
    assert ae._training._train_chunk._cache_size() == compiled + 2
    assert not np.array_equal(pg.layers[0].enc_w, params2.layers[0].enc_w)


def test_interrupted_training_resumes_to_the_same_result(params2, images, tmp_path, monkeypatch):
    from vision_jax.checkpoint import latest_step

    kw = dict(key=jax.random.key(7), optimizer=SGD, steps=7, batch_size=2, chunk_steps=1)  # the program of the test above
    ref, ref_losses = ae.train_layer(params2, images, 0, CFG2, **kw)
    real = ae._training._train_chunk

    def interrupted(carry, index, *args, **kwargs):
        if int(index) == 2:
            raise KeyboardInterrupt
        return real(carry, index, *args, **kwargs)

    monkeypatch.setattr(ae._training, "_train_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ae.train_layer(params2, images, 0, CFG2, checkpoint_dir=tmp_path, **kw)
    monkeypatch.setattr(ae._training, "_train_chunk", real)
    assert latest_step(tmp_path) == 2
    p, losses = ae.train_layer(params2, images, 0, CFG2, checkpoint_dir=tmp_path, **kw)
    np.testing.assert_array_equal(losses, ref_losses)
    assert losses.shape == (7,)
    for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="other arguments"):
        ae.train_layer(params2, images, 0, CFG2, checkpoint_dir=tmp_path, **{**kw, "steps": 6})


@pytest.fixture(scope="module")
def crops():
    return jnp.asarray(ae.colour_crops(3, 8, size=16, downscale=1))  # full-resolution texture crops


CFG_TINY = ae.AutoencoderConfig(features=(12, 12), encoder_kernel=5, decoder_kernel=6)


@pytest.fixture(scope="module")
def trained_levels(crops):
    """Level 1 trained on 8 crops, then level 2 on its frozen codes (greedy stacking, by hand)."""
    mean = np.asarray(crops).mean(axis=(0, 1, 2))
    p0 = ae.init_params(jax.random.key(4), CFG_TINY, mean=mean)
    opt = optax.adam(1e-2)
    p1, losses = ae.train_layer(p0, crops, 0, CFG_TINY, key=jax.random.key(5), optimizer=opt, steps=150, batch_size=8, chunk_steps=1)
    codes = ae.encode(p1, crops, 0, CFG_TINY)
    p2, _ = ae.train_layer(p1, codes, 1, CFG_TINY, key=jax.random.key(6), optimizer=opt, steps=100, batch_size=8, chunk_steps=1)
    return p0, p2, losses, codes


def test_training_reduces_loss(trained_levels, crops):
    p0, p, losses, _ = trained_levels
    before = float(ae.layer_loss(p0, crops, 0, CFG_TINY))
    after = float(ae.layer_loss(p, crops, 0, CFG_TINY))
    assert after < 0.5 * before
    assert losses.shape == (150,) and np.all(np.isfinite(np.asarray(losses)))


def _cubic_unclipped(h, factor=2):
    """Cubic down and up per plane (the baseline of :func:`ae.cubic_baseline`, without clipping to [0, 1])."""
    h = np.asarray(h, np.float64)
    out = np.empty_like(h)
    for n in range(h.shape[0]):
        for c in range(h.shape[-1]):
            small = ndimage.zoom(h[n, :, :, c], 1 / factor, order=3, mode="nearest")
            out[n, :, :, c] = ndimage.zoom(small, factor, order=3, mode="nearest")
    return out


def test_each_level_inverts_better_than_cubic(trained_levels, crops):
    """decode(encode(h^l)) on the training crops beats cubic interpolation through the coarser grid, level by level."""
    _, p, _, codes = trained_levels
    rec = ae.decode(p, ae.encode(p, crops, 0, CFG_TINY), 0, CFG_TINY)
    base = ae.cubic_baseline(crops, 2)
    assert ae.caffe_l2(rec, crops) < ae.caffe_l2(base, crops)
    assert ae.psnr(rec, crops) > ae.psnr(base, crops)
    # level 2 on level-1 codes (tanh values in [-1, 1]: the baseline is not clipped)
    np.testing.assert_array_equal(ae.encode(p, crops, 0, CFG_TINY), codes)  # level 1 stayed frozen
    rec2 = np.asarray(ae.decode(p, ae.encode(p, codes, 1, CFG_TINY), 1, CFG_TINY), np.float64)
    codes64 = np.asarray(codes, np.float64)
    assert np.mean((rec2 - codes64) ** 2) < np.mean((_cubic_unclipped(codes64) - codes64) ** 2)


def test_pooled_grid_encoder_gradients_equal_direct_convolution(monkeypatch):
    """Layers with few input channels run on the pooled grid with a patch-product kernel gradient:
    values and reverse-mode derivatives equal the direct "same" convolution."""
    layer = ae.init_params(jax.random.key(8), CFG_TINY, std=0.3).layers[0]
    x = jnp.asarray(np.random.default_rng(2).uniform(size=(2, 8, 8, 3)), jnp.float32)

    def loss(layer, x):  # values of both paddings are checked against numpy above
        return jnp.sum(jnp.sin(3.0 * ae.encode_layer(layer, x, pooling="max", activation="tanh", padding="zero")))

    phased = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(layer, x)
    monkeypatch.setattr(ae._model, "_PHASE_MAX_CHANNELS", 0)  # traced anew: the direct lax.conv form
    direct = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(layer, x)
    for a, b in zip(jax.tree_util.tree_leaves(phased), jax.tree_util.tree_leaves(direct)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_cubic_baseline_matches_scipy_by_hand(images):
    x = np.asarray(images, np.float64)
    ref = np.empty_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[3]):
            small = ndimage.zoom(x[n, :, :, c], 1 / 4, order=3, mode="nearest")
            ref[n, :, :, c] = np.clip(ndimage.zoom(small, 4, order=3, mode="nearest"), 0, 1)
    np.testing.assert_allclose(ae.cubic_baseline(images, 4), ref, atol=1e-10)
    flat = np.full((1, 16, 16, 3), 0.25)
    np.testing.assert_allclose(ae.cubic_baseline(flat, 2), flat, atol=1e-12)  # a constant image survives, edges included


def test_metrics_by_hand():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(size=(5, 32, 32, 3)), rng.uniform(size=(5, 32, 32, 3))
    m = np.mean((a - b) ** 2)
    assert ae.caffe_l2(a, b) == pytest.approx(0.5 * 3072 * m)
    assert ae.psnr(a, b) == pytest.approx(-10 * np.log10(m))


def test_bad_configurations_raise(params2, images):
    with pytest.raises(ValueError, match="pooling"):
        ae.AutoencoderConfig(pooling="median")
    with pytest.raises(ValueError, match="activation"):
        ae.AutoencoderConfig(activation="sigmoid")
    with pytest.raises(ValueError, match="decoder_kernel"):
        ae.AutoencoderConfig(decoder_kernel=5)
    with pytest.raises(ValueError, match="encoder_kernel"):
        ae.AutoencoderConfig(encoder_kernel=4)
    with pytest.raises(ValueError, match="one per layer"):
        ae.AutoencoderConfig(features=(4, 8), pooling=("max",))
    with pytest.raises(ValueError, match="divisible by 4"):
        ae.apply(params2, images[:, :14, :14], CFG2)  # 14 is not a multiple of 2**2
    with pytest.raises(ValueError, match="channels"):
        ae.encode(params2, images[..., :2], 0, CFG2)
    with pytest.raises(ValueError, match="level"):
        ae.encode(params2, images, 2, CFG2)
    with pytest.raises(ValueError, match="padding"):
        ae.encode(params2, images, 0, CFG2, padding="reflect")
    with pytest.raises(TypeError, match="optimizer"):
        ae.train_layer(params2, images, 0, CFG2, key=jax.random.key(0), optimizer="adam", steps=1)
    with pytest.raises(ValueError, match="factor"):
        ae.cubic_baseline(images[:, :15, :15], 2)
