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
# # A Virtual Retina in JAX
#
# Wohrer & Kornprobst (2009): an outer plexiform layer (centre minus surround, with an undershoot),
# a contrast gain control at the bipolar cells, and ON/OFF ganglion cells with a transient, a smooth
# rectification and leaky integrate-and-fire spiking. Each stage is a pure step function; a movie
# runs as one `lax.scan`, in chunks with the carried state if it is long, and the whole cascade is
# differentiable, so its parameters can be fitted like a neural network's.
# `VISION_JAX_SMOKE=1` shrinks every size.

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

from vision_jax import retina

SMOKE = os.environ.get("VISION_JAX_SMOKE") == "1"
print("JAX", jax.__version__, "on", jax.devices()[0].platform)
SIZE, SECONDS, FIT_STEPS = (12, 0.3, 20) if SMOKE else (48, 1.5, 300)

# %% [markdown]
# ## Presets and parameters
# `preset(name)` returns a pytree of parameters in physical units (degrees, seconds, Hz) with a
# static `config` (time step, pixels per degree, luminance range, discretisation choices). The
# presets carry the values of Virtual Retina's example configurations (cat X, primate parvo/magno,
# linear) and of convis's default retina. Virtual Retina XML files can be read with `read_xml`.

# %%
print(sorted(retina.PRESETS))
params = retina.preset("cat_x")
print(params.config)
print({f: getattr(params, f) for f in ("center_sigma", "surround_sigma", "undershoot_weight", "adaptation_amplification", "i0")})

# %% [markdown]
# ## Responses to a drifting grating
# The movie is `(T, H, W)` luminance in the units of `luminosity_range` (255 here). The state starts
# at the steady state of the mean luminance, as Virtual Retina does.

# %%
cfg = params.config
T = int(SECONDS / cfg.dt)
bg = cfg.luminosity_range / 2
movie = retina.drifting_grating(T, (SIZE, SIZE), period=SIZE / 2, frames_per_cycle=0.25 / cfg.dt, background=bg, contrast=0.5)
state = retina.init_state(params, (SIZE, SIZE), key=jax.random.key(0), luminance=bg)
final, out = retina.run(params, state, jnp.asarray(movie), stages=True)
print({k: None if v is None else v.shape for k, v in out._asdict().items()})

t = np.arange(T) * cfg.dt
c = SIZE // 2
fig, axes = plt.subplots(3, 1, figsize=(8, 6), sharex=True)
axes[0].plot(t, movie[:, c, c], color="0.5")
axes[0].set_ylabel("luminance")
axes[1].plot(t, np.asarray(out.opl)[:, c, c], label="OPL")
axes[1].plot(t, np.asarray(out.bipolar)[:, c, c], label="bipolar")
axes[1].legend(fontsize=8)
axes[2].plot(t, np.asarray(out.rates)[:, 0, c, c], color="tab:red", label="ON")
axes[2].plot(t, np.asarray(out.rates)[:, 1, c, c], color="tab:blue", label="OFF")
axes[2].set_ylabel("rate (Hz)")
axes[2].set_xlabel("time (s)")
axes[2].legend(fontsize=8)
plt.show()

# %%
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, img, title in zip(axes, [movie[-1], np.asarray(out.rates)[-1, 0], np.asarray(out.spikes).sum(0)[0]],
                          ["last frame", "ON rates, last frame", "ON spike counts"]):
    ax.imshow(img, cmap="gray")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Long movies in chunks
# Passing the returned state on gives the same result, bit for bit, as one run; `stream` keeps only
# a reduction of each chunk, so memory does not grow with the movie's length.

# %%
s, a = retina.run(params, state, jnp.asarray(movie[: T // 2]), stages=True)
s, b = retina.run(params, s, jnp.asarray(movie[T // 2:]), stages=True)
print("chunked == one-shot:", np.array_equal(np.concatenate([a.spikes, b.spikes]), np.asarray(out.spikes)))
total = sum(c for _, c in retina.stream(params, state, movie, T // 2, reduce=lambda o: o.spikes.sum(), stages=True))
print("spikes counted by streaming:", float(total), "one-shot:", np.asarray(out.spikes).sum())

# %% [markdown]
# ## Contrast gain control
# The bipolar response per unit contrast falls with contrast when the adaptation feedback is on.

# %%
contrasts = [0.05, 0.2, 0.8]
for label, p in (("with CGC", params), ("lambda_A = 0", params.replace(adaptation_amplification=0.0))):
    gains = []
    for k in contrasts:
        m = retina.drifting_grating(T, (SIZE, SIZE), period=SIZE / 2, frames_per_cycle=0.25 / cfg.dt, background=bg, contrast=k)
        # radii: the blurs of `params`, so that lambda_A = 0 shares the compiled program of the runs above
        v = np.asarray(retina.run(p, state, jnp.asarray(m), stages=True, radii=retina.blur_radii(params))[1].bipolar)[T // 2:, c, c]
        gains.append(np.ptp(v) / k)
    print(label, np.round(np.array(gains) / gains[0], 3))

# %% [markdown]
# ## Fitting
# Responses generated with known centre time constants and OPL gains are fitted back, three cells
# at once (`vmap`), with gradients through two chunks. The whole optimisation (every Adam step)
# is one compiled `lax.scan`. `retina.multistart_fit` runs several starting points at once
# through `vision_jax.sweep.sweep` (see `vision-jax retina`). On CPU the gradients come from the
# native kernel's reverse pass (`adjoint="auto"`, about 3x faster than JAX's differentiation of
# the scan; `retina.run(..., adjoint="native")` for your own losses).

# %%
small = (6, 6)
st = retina.init_state(params, small, key=jax.random.key(1), luminance=bg)
Tf = int((0.2 if SMOKE else 0.5) / cfg.dt)
flicker = bg * (1 + 0.6 * np.sign(np.sin(2 * np.pi * np.arange(Tf) * cfg.dt * 3.0)))
fmovie = jnp.asarray(np.broadcast_to(flicker[:, None, None], (Tf,) + small).astype(np.float32))
true_tau, true_amp = [0.006, 0.012, 0.03], [7.0, 10.0, 14.0]
radii = retina.blur_radii(params.replace(center_tau=0.005))  # blur sizes of the shortest tau, shared by targets and fit
targets = np.stack([retina.run(params.replace(center_tau=a, opl_amplification=b), st, fmovie, spikes=False, radii=radii)[1].rates
                    for a, b in zip(true_tau, true_amp)])
start = params.replace(center_tau=np.full(3, 0.015, np.float32), opl_amplification=np.full(3, 10.0, np.float32))
result = retina.fit(start, st, fmovie, targets, fields=("center_tau", "opl_amplification"), steps=FIT_STEPS,
                    learning_rate=0.03, batched=True, chunk_size=Tf // 2, radii=radii)
print("tau (ms):", np.round(np.asarray(result.params.center_tau) * 1000, 2), "true:", np.array(true_tau) * 1000)
print("lambda_OPL:", np.round(np.asarray(result.params.opl_amplification), 2), "true:", true_amp)
plt.semilogy(result.losses)
plt.xlabel("step")
plt.ylabel("loss")
plt.show()
