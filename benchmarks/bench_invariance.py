"""Invariance learning speed: vision_jax's lax.scan step vs a plain numpy loop of the same step.

python benchmarks/bench_invariance.py
900 sparse units, 20x20 windows, k = 4, 100 invariant units, frames from the digit tapestry.
The numpy loop is the dense one-sample-at-a-time transcription (float64, one BLAS thread); ours
runs in float32 and in float64, one stream and 8 seeds vmapped.
"""
import time

from _timing import pin_threads, print_table

pin_threads(1)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

from vision_jax import data  # noqa: E402
from vision_jax.sparse import invariance as inv  # noqa: E402


def numpy_steps(sw, iw, frames, k=4, xi=0.008, alpha=1 / 3, leta=0.05, seta=0.0005, c=9.0, prec=1e-10, renorm_every=2000):
    y = np.zeros(iw.shape[0])
    for t, v in enumerate(frames):
        p = sw @ v
        w = np.argpartition(-p, k)[:k]
        s_t = np.zeros_like(p)
        s_t[w] = p[w]
        r = sw.T @ s_t
        sw = sw + xi * sw * np.outer(s_t, (v - r) / np.maximum(r, prec))
        s = s_t / sw.sum(1)
        y = y + alpha * (iw @ s - y)
        q = iw.T @ y
        iw = iw + iw * np.outer(y, np.where(s > 0, leta, seta) * (s - q) / np.maximum(q, prec))
        if t % renorm_every == 0:
            iw = c * iw / iw.sum(1, keepdims=True)
    return sw, iw


def rate(fn, n_steps, repeat=3):
    fn()
    best = min(_timed(fn) for _ in range(repeat))
    return n_steps / best


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    tap = jnp.asarray(data.make_tapestry(jax.random.key(0), dtype=np.float64))
    frames64, _ = data.random_walk_frames(jax.random.key(1), tap, 10000)
    params64 = inv.init_params(jax.random.key(2), dtype=jnp.float64)
    n_np = 400
    sw, iw, f = np.asarray(params64.sw), np.asarray(params64.iw), np.asarray(frames64)
    numpy_rate = rate(lambda: numpy_steps(sw, iw, f[:n_np]), n_np, repeat=2)
    rows = [["numpy loop (float64, dense)", 1, numpy_rate, 1.0]]
    for dtype in (jnp.float64, jnp.float32):
        frames = frames64.astype(dtype)
        params = jax.tree.map(lambda x: x.astype(dtype), params64)
        one = rate(lambda: jax.block_until_ready(inv.train(params, frames, k=4)), frames.shape[0])
        keys = jax.random.split(jax.random.key(3), 8)
        batch = jax.vmap(lambda kk: inv.init_params(kk, dtype=dtype))(keys)
        run8 = jax.jit(jax.vmap(lambda p: inv._train(p, frames, inv.InvarianceHyper(), 4, 1, 2000)))
        eight = rate(lambda: jax.block_until_ready(run8(batch)), 8 * frames.shape[0])
        name = jnp.dtype(dtype).name
        rows.append([f"vision_jax lax.scan ({name})", 1, one, one / numpy_rate])
        rows.append([f"vision_jax, 8 seeds vmapped ({name})", 8, eight, eight / numpy_rate])
        print(f"{name}: 8 seeds vmapped give {eight / one:.2f}x the single-stream throughput")
    print_table(["implementation", "streams", "samples/s", "speed-up vs numpy"], [[r[0], r[1], round(r[2]), f"{r[3]:.0f}x"] for r in rows])


if __name__ == "__main__":
    main()
