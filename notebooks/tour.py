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
# # A tour of vision_jax's building blocks
#
# Filters (spatial kernels, same-size convolution with four paddings, recursive temporal
# filters), the data that ships with the package (photographs, digits, natural-like images,
# whitened patches) and the plotting helpers. Runs on CPU, GPU or TPU; set `VISION_JAX_SMOKE=1`
# for a seconds-long run with tiny sizes.

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

from vision_jax import data, filters, plot

SMOKE = os.environ.get("VISION_JAX_SMOKE") == "1"
SIZE = 64 if SMOKE else 256
print("JAX", jax.__version__, "on", jax.devices()[0].platform, jax.devices())
key = jax.random.key(0)

# %% [markdown]
# ## Embedded photographs and digits
# Public-domain / CC0 photographs and 5,000 MNIST digits ship inside the package: no network needed.

# %%
images = data.natural_images()
plot.imshow([im[:SIZE, :SIZE] for im in images], titles=list(data.list_natural_images()), col_wrap=4, zoom=0.8)
plt.show()
digits, labels = data.load_digits()
plot.imshow(digits[::500], titles=[str(int(l)) for l in labels[::500]], zoom=0.5)
plt.show()

# %% [markdown]
# ## Natural-like images from a key: 1/f noise and dead leaves

# %%
k1, k2 = jax.random.split(key)
pink = data.pink_noise(k1, (SIZE, SIZE))
leaves = data.dead_leaves(k2, (SIZE, SIZE), n_disks=300 if SMOKE else 3000)
plot.imshow([pink, leaves], titles=["1/f noise", "dead leaves"], vrange="indep")
plt.show()

# %% [markdown]
# ## Kernels and same-size convolution
# A difference of Gaussians applied with each padding: the borders differ, the interior does not.

# %%
dog = filters.dog_kernel(1.0, 3.0, surround_weight=0.9)
camera = jnp.asarray(images[1][:SIZE, :SIZE])
responses = [filters.convolve2d(camera, dog, padding=p) for p in filters.PADDINGS]
plot.imshow([dog] + responses, titles=["DoG kernel"] + list(filters.PADDINGS), vrange="indep")
plt.show()
direct = filters.convolve2d(camera, dog, method="direct")
fft = filters.convolve2d(camera, dog, method="fft")
print("max |direct - fft| =", float(jnp.max(jnp.abs(direct - fft))))

# %% [markdown]
# ## Recursive temporal filters
# Impulse responses of cascades of first-order low-passes (a discrete Gamma family), and the
# fact that filtering in chunks with the carried state equals filtering at once.

# %%
dt, tau, T = 0.001, 0.01, 120
impulse = jnp.zeros(T).at[0].set(1.0)
responses = {f"{n} stage(s)": filters.exp_cascade(impulse, tau / n, dt, n)[0] for n in (1, 2, 4)}
fig = plot.curves(responses, x=np.arange(T) * dt * 1e3, xlabel="time (ms)", ylabel="impulse response")
plt.show()
whole, _ = filters.exp_lowpass(impulse, tau, dt)
first, state = filters.exp_lowpass(impulse[:50], tau, dt)
second, _ = filters.exp_lowpass(impulse[50:], tau, dt, state=state)
print("chunked == one-shot:", bool(jnp.array_equal(jnp.concatenate([first, second]), whole)))

# %% [markdown]
# ## Whitened patches for sparse coding
# Random crops, a retina-like pre-filter, whitening, band-pass, the highest-variance 21x21
# patches and a disk mask.

# %%
patches = data.extract_patches(images, key=key, n_patches=64 if SMOKE else 1024)
print(patches.shape, "mean RMS", float(np.sqrt((patches**2).mean(1)).mean()))
plot.tiles(patches[:64], title="whitened patches")
plt.show()
plot.histograms({"patch values": patches}, bins=50)
plt.show()
