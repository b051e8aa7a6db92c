# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Feature feedback: a layer-wise autoencoder and a video feedback process
#
# A convolutional pooling autoencoder whose layers apply one at a time
# (`h^{l+1} = encode(h^l)`, `h^l ~ decode(h^{l+1})`), trained greedily on 32x32 colour crops,
# compared with cubic interpolation; then a feedback process in which each layer is driven by the
# encoded layer below and the decoded layer above.

# %%
import os
import sys

IN_COLAB = "COLAB_RELEASE_TAG" in os.environ
if IN_COLAB:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/vision-jax/vision_jax"], check=True)

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import vision_jax.autoencoder as ae
from vision_jax import plot

SMOKE = os.environ.get("VISION_JAX_SMOKE") == "1"
print("JAX", jax.__version__, "on", jax.devices()[0].platform)
N_TRAIN, STEPS, SIZE, FRAMES = (200, 6, 32, 8) if SMOKE else (4000, 600, 128, 300)
BATCH = 25  # small minibatches: a few hundred steps reach the cubic baseline

# %% [markdown]
# ## Data and a one-layer autoencoder (12 filters 5x5, 6x6 decoder, max pooling, tanh)

# %%
train = ae.colour_crops(0, N_TRAIN)
test = ae.colour_crops(1, 100, split="test")
cfg = ae.AutoencoderConfig(features=(12, 48), encoder_kernel=5, decoder_kernel=6, pooling="max", activation="tanh")
params = ae.init_params(jax.random.key(0), cfg, mean=train.mean(axis=(0, 1, 2)))
# layer 1 alone, layer 2 on the frozen layer-1 codes, then both end to end on both losses
# (Adam, learning rate decaying along a cosine to a tenth)
params, hist = ae.train_greedy(params, train, cfg, key=jax.random.key(1),
                               optimizer=optax.adam(optax.cosine_decay_schedule(1e-2, STEPS, alpha=0.1)),
                               steps_per_layer=STEPS, finetune_steps=max(STEPS // 4, 1), batch_size=BATCH,
                               finetune_optimizer=optax.adam(optax.cosine_decay_schedule(1e-3, max(STEPS // 4, 1), alpha=0.1)))

# %%
h1 = ae.encode(params, test, 0, cfg)  # each public call is compiled once per config, level and shape
rec1 = np.asarray(ae.decode(params, h1, 0, cfg))
rec2 = np.asarray(ae.apply(params, test, cfg))
for name, rec, c in (("one layer", rec1, 2), ("two layers", rec2, 4)):
    base = ae.cubic_baseline(test, c)
    print(f"{name}: L2 {ae.caffe_l2(rec, test):.2f} (cubic x{c}: {ae.caffe_l2(base, test):.2f}); "
          f"PSNR {ae.psnr(rec, test):.1f} dB (cubic {ae.psnr(base, test):.1f} dB)")
plot.imshow(list(np.concatenate([test[:6], np.clip(rec1[:6], 0, 1), ae.cubic_baseline(test[:6], 2)])), col_wrap=6, vrange=(0, 1), zoom=0.6)
plot.tiles(np.asarray(params.layers[0].enc_w), title="encoder filters")
plot.tiles(np.asarray(params.layers[0].dec_w).transpose(0, 1, 3, 2), title="decoder filters")
plot.imshow(list(np.asarray(h1[0]).transpose(2, 0, 1)), col_wrap=6, vrange="sym", cmap="RdBu_r", zoom=0.5)

# %% [markdown]
# The same model as a `flax.linen` Module: `init` / `apply`, with `encode` / `decode` methods per
# layer; its variables convert to and from the parameters above.

# %%
model = ae.ConvPoolAutoencoder(cfg)
variables = ae.variables_from_params(params)
rec_flax = jax.jit(model.apply)(variables, test)
print("flax Module vs functions, max difference:", float(np.abs(np.asarray(rec_flax) - rec2).max()))

# %% [markdown]
# ## Video feedback across the hierarchy (wrap-around edges, layer l updated every 2**l frames)

# %%
init_fn, _ = ae.feedback_process(params, cfg, fb=1.333, tblur=0.5)
state = init_fn(jax.random.key(2), SIZE, SIZE)
_, frames = ae.run_feedback(params, cfg, state, FRAMES)
random_params = ae.random_feedback_params(jax.random.key(3), cfg)
_, frames_random = ae.run_feedback(random_params, cfg, state, FRAMES)
shots = [ae.render_frames(f[-1]) for f in (frames, frames_random)]
plot.imshow(shots, titles=["learned weights", "random weights"], vrange=(0, 1))
if not SMOKE:
    plot.save_animation(ae.render_frames(frames_random), "feedback_random.gif", fps=15, vrange=(0, 1))
plt.show()
