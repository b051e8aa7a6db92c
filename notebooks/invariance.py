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
# # Temporal invariance learning on a digit tapestry
#
# A window wanders over a wrapping mosaic of MNIST digits. A sparse layer keeps its `k` most
# active prototypes (multi-winner-take-all) and learns them by a multiplicative rule; an
# invariant layer averages the sparse code over time and learns, with a larger rate for active
# than for silent units, which prototypes tend to follow one another. `VISION_JAX_SMOKE=1`
# shrinks everything.

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

from vision_jax import data, plot
from vision_jax.sparse import invariance as inv

SMOKE = os.environ.get("VISION_JAX_SMOKE") == "1"
N_FRAMES, EPOCHS = (1000, 2) if SMOKE else (10000, 8)
print("JAX", jax.__version__, "on", jax.devices()[0].platform)

# %% [markdown]
# ## The tapestry and the moving window

# %%
tapestry = jnp.asarray(data.make_tapestry(jax.random.key(0)))
frames, corners = data.random_walk_frames(jax.random.key(1), tapestry, N_FRAMES)
plot.imshow(tapestry[:280, :280], titles=["corner of the 840x840 tapestry"], zoom=2)
plt.show()
plot.imshow(np.asarray(frames[:16:2]).reshape(-1, 20, 20), titles=[f"t={t}" for t in range(0, 16, 2)], zoom=0.7)
plt.show()

# %% [markdown]
# ## Training: epochs x frames as one compiled scan

# %%
init = inv.init_params(jax.random.key(2))
params, stats = inv.train(init, frames, k=4, n_epochs=EPOCHS)
plot.curves({"sparse reconstruction error": stats.sparse_error}, xlabel="epoch", logy=True)
plt.show()

# %% [markdown]
# ## What the invariant units group together
# Each row: the sparse prototypes an invariant unit weights most. Shifted copies of one digit
# part end up in the same group.

# %%
groups = np.asarray(inv.affinity_groups(params, 8))[:8]
plot.tiles(np.asarray(params.sw)[groups.ravel()], n_cols=8, title="affinity groups")
plt.show()

# %% [markdown]
# ## Invariance, with controls
# Winner persistence: how often the strongest invariant unit stays the same from one frame to
# the next, for the trained network, the same sparse layer with random invariant weights, and
# the trained network on shuffled frames.

# %%
test_frames, _ = data.random_walk_frames(jax.random.key(9), tapestry, 3000)
_, u, _ = inv.encode(params, test_frames)
_, u_random, _ = inv.encode(inv.InvarianceParams(params.sw, 9.0 * init.iw / init.iw.sum(1, keepdims=True)), test_frames)
_, u_shuffled, _ = inv.encode(params, test_frames[jax.random.permutation(jax.random.key(5), 3000)])
for name, codes in [("trained", u), ("random iw", u_random), ("shuffled frames", u_shuffled)]:
    print(f"{name:16s} persistence {float(inv.winner_persistence(codes)):.3f}   slowness {float(inv.slowness(codes)):.3f}")
