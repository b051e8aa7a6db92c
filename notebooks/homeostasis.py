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
# # Sparse Hebbian learning with homeostasis
#
# Perrinet (2019), "An Adaptive Homeostatic Algorithm for the Unsupervised Learning of Visual
# Features": a dictionary of whitened natural-image patches is learned by matching pursuit and a
# Hebbian rule, with five ways of keeping the atoms equally used (None, OLS, HEH, HAP, EMP).
# All methods and seeds run as one vmapped computation. `VISION_JAX_SMOKE=1` shrinks everything.

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

from vision_jax import data, plot, sparse

SMOKE = os.environ.get("VISION_JAX_SMOKE") == "1"
print("JAX", jax.__version__, "on", jax.devices()[0].platform)
N_PATCHES, N_ATOMS, N_ITER, BATCH, SEEDS = (2048, 64, 64, 128, 2) if SMOKE else (16384, 324, 384, 512, 3)

# %% [markdown]
# ## Data: whitened 21x21 patches of the embedded photographs

# %%
patches = jnp.asarray(data.extract_patches(data.natural_images(), key=jax.random.key(0), n_patches=N_PATCHES))
plot.tiles(np.asarray(patches[:64]), title="training patches")
plt.show()

# %% [markdown]
# ## Matching pursuit
# 21 steps of ReLU matching pursuit on the initial (1/f-noise) dictionary.

# %%
d0 = sparse.init_dictionary(jax.random.key(1), np.asarray(patches), N_ATOMS)
codes = sparse.matching_pursuit(patches, d0, 21)
residual = jnp.linalg.norm(patches - codes @ d0) / jnp.linalg.norm(patches)
print("non-zeros per patch", float((codes != 0).sum(1).mean()), "relative residual", float(residual))

# %% [markdown]
# ## Learning with each homeostasis rule, all seeds, one computation

# %%
result = sparse.learn_dictionaries(jax.random.split(jax.random.key(2), SEEDS), patches, sparse.METHODS,
                                   n_atoms=N_ATOMS, n_iter=N_ITER, batch_size=BATCH)
F = np.asarray(result.history.F)
iters = np.asarray(result.history.iteration)[0, 0]
plot.curves({m: F[i] for i, m in enumerate(sparse.METHODS)}, x=iters, ylabel="F", title="cost F (mean ± sd over seeds)")
plt.show()
for i, m in enumerate(sparse.METHODS):
    print(f"{m:5s} final F {F[i, :, -1].mean():.4f} ± {F[i, :, -1].std():.4f}")

# %% [markdown]
# ## Dictionaries and how evenly their atoms are used

# %%
for i in (0, 2):
    plot.tiles(np.asarray(result.dictionary[i, 0]), title=sparse.METHODS[i])
    plt.show()
plot.histograms({m: np.asarray(result.homeostasis.p[i]) for i, m in enumerate(sparse.METHODS)}, bins=30,
                xlabel="activation probability")
plt.show()
