# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Metamers and eigendistortions of LGN-like models
#
# Any pure function `f(images) -> representation` can be probed: metamers (images the model
# cannot tell apart from a target) by gradient descent with optax, eigendistortions (the most
# and least noticeable changes) from the Fisher matrix `J^T J`. `VISION_JAX_SMOKE=1` shrinks
# everything.

# %%
import os
import subprocess
import sys

IN_COLAB = "COLAB_RELEASE_TAG" in os.environ
if IN_COLAB:  # install only on Colab; locally use `pip install -e .`
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/vision-jax/vision_jax"], check=True)

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from vision_jax import data, models, plot, synthesis

SMOKE = os.environ.get("VISION_JAX_SMOKE") == "1"
SIZE, ITERS, EIG_SIZE, STEPS = (32, 20, 24, 20) if SMOKE else (128, 300, 48, 300)
print("JAX", jax.__version__, "on", jax.devices()[0].platform)
camera = data.natural_images(names="camera")[0]
target = jnp.asarray(camera[:: 512 // SIZE, :: 512 // SIZE][:SIZE, :SIZE, None])

# %% [markdown]
# ## A luminance gain control model (Berardino et al.'s fitted values)

# %%
model = models.luminance_gain_control(31, pretrained=True)
params = model.init()
print(jax.tree.map(lambda p: np.asarray(p).tolist(), params))
fn = jax.jit(lambda x: model.apply(params, x))
plot.imshow([target[..., 0], fn(target[None])[0, ..., 0]], titles=["image", "model response"], vrange="indep")
plt.show()

# %% [markdown]
# ## Metamers from three starting points, in one batched call

# %%
starts = jnp.stack([jax.random.uniform(jax.random.key(0), target.shape), 0.5 * jnp.ones_like(target),
                    jnp.asarray(data.natural_images(names="astronaut")[0][:: 512 // SIZE, :: 512 // SIZE][:SIZE, :SIZE, None])])
res = synthesis.metamer(fn, target, initial=starts, max_iter=ITERS, stop_criterion=0.0)
plot.imshow([target[..., 0]] + [m[..., 0] for m in res.metamers], titles=["target", "from noise", "from grey", "from astronaut"], vrange=(0, 1))
plt.show()
plot.curves({f"start {i}": l for i, l in enumerate(np.asarray(res.losses))}, ylabel="loss", logy=True)
plt.show()

# %% [markdown]
# ## Eigendistortions by Lanczos

# %%
img = jnp.asarray(camera[:: 512 // EIG_SIZE, :: 512 // EIG_SIZE][:EIG_SIZE, :EIG_SIZE, None])
ed = synthesis.eigendistortion(fn, img, method="lanczos", max_iter=STEPS)
print("eigenvalues (max, min):", np.asarray(ed.eigenvalues), "converged:", ed.converged)
plot.imshow([img[..., 0], ed.eigendistortions[0, ..., 0], ed.eigendistortions[1, ..., 0]], titles=["image", "max", "min"], vrange="indep")
plt.show()
