"""Invariance learning speed: vision_jax's compiled step vs a plain numpy loop of the same step.

python benchmarks/bench_invariance.py [--frames 2048] [--rounds 5]
900 sparse units, 20x20 windows, k = 4, 100 invariant units, frames from the digit tapestry.
The numpy loop is the dense one-sample-at-a-time transcription (one BLAS thread), run in float64
(the reference's dtype) and in float32; each vision_jax row is compared with the numpy loop of its
own dtype. All rows are timed in one process, round-robin, best of ``--rounds``. The floor rows are
the part no implementation of the step can skip: the responses ``sw v`` of every unit to every
frame, (a) as one matrix product over all frames (the machine's matrix-product speed; a learner
cannot do this, its weights change every step) and (b) by blocks of ``inv.BLOCK`` frames with the
weights read again for each block, as the step does, for one network and for 8 (8 weight
matrices: 8 times the products and 8 times the weights to read per block). The 8-seed target
(4x one stream) cannot be met where the 8-seed block floor is below 4x the one-stream rate.
"""
import argparse
import time

from _timing import pin_threads, print_table

pin_threads(1)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

from vision_jax import data  # noqa: E402
from vision_jax.sparse import invariance as inv  # noqa: E402


def numpy_steps(sw, iw, frames, k=4, xi=0.008, alpha=1 / 3, leta=0.05, seta=0.0005, c=9.0, prec=1e-10, renorm_every=2000):
    dtype = sw.dtype
    y = np.zeros(iw.shape[0], dtype)
    xi, alpha, leta, seta, c, prec = (dtype.type(h) for h in (xi, alpha, leta, seta, c, prec))
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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=2048, help="frames per timed vision_jax run")
    parser.add_argument("--numpy-frames", type=int, default=200, help="frames per timed numpy run")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (best is kept)")
    args = parser.parse_args()
    T = args.frames
    tap = jnp.asarray(data.make_tapestry(jax.random.key(0), dtype=np.float64))
    frames64, _ = data.random_walk_frames(jax.random.key(1), tap, T)
    params64 = inv.init_params(jax.random.key(2), dtype=jnp.float64)
    keys = jax.random.split(jax.random.key(3), 8)
    hyper = inv.InvarianceHyper()
    cases = {}  # name -> (fn, steps per call)
    for dtype in (jnp.float64, jnp.float32):
        name = jnp.dtype(dtype).name
        frames = frames64.astype(dtype)
        params = jax.tree.map(lambda x: x.astype(dtype), params64)
        batch = jax.vmap(lambda kk: inv.init_params(kk, dtype=dtype))(keys)
        sw, iw, f = (np.asarray(a) for a in (params.sw, params.iw, frames[: args.numpy_frames]))
        one = jax.jit(lambda p, fr=frames: inv._train(p, fr, hyper, 4, 1, 2000))
        eight = jax.jit(jax.vmap(lambda p, fr=frames: inv._train(p, fr, hyper, 4, 1, 2000)))
        floor = jax.jit(lambda sw, fr=frames: jnp.sum(fr @ sw.T))
        blocks = frames.reshape(T // inv.BLOCK, inv.BLOCK, -1)

        def by_block(sw, blocks=blocks):
            def body(sw, fb):
                p = jnp.einsum("...nm,fm->...nf", sw, fb)
                return sw.at[..., 0, 0].add(1e-9 * p[..., 0, 0]), p[..., 0, 0]  # the weights change between blocks

            return lax.scan(body, sw, blocks)[1]

        floor_blocks = jax.jit(by_block)
        cases[f"numpy {name}"] = (lambda sw=sw, iw=iw, f=f: numpy_steps(sw, iw, f), args.numpy_frames)
        cases[f"one {name}"] = (lambda p=params, fn=one: jax.block_until_ready(fn(p)), T)
        cases[f"eight {name}"] = (lambda b=batch, fn=eight: jax.block_until_ready(fn(b)), 8 * T)
        cases[f"floor {name}"] = (lambda s=params.sw, fn=floor: jax.block_until_ready(fn(s)), T)
        cases[f"blocks {name}"] = (lambda s=params.sw, fn=floor_blocks: jax.block_until_ready(fn(s)), T)
        cases[f"blocks8 {name}"] = (lambda s=batch.sw, fn=floor_blocks: jax.block_until_ready(fn(s)), 8 * T)
    best = {}
    for name, (fn, _) in cases.items():  # warm-up (compilation)
        fn()
    for _ in range(args.rounds):
        for name, (fn, _) in cases.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best.get(name, np.inf), time.perf_counter() - start)
    rate = {name: cases[name][1] / best[name] for name in cases}
    rows = []
    for name in ("float64", "float32"):
        base = rate[f"numpy {name}"]
        rows.append([f"numpy loop ({name}, dense)", 1, round(base), "1x", "-"])
        rows.append([f"vision_jax ({name})", 1, round(rate[f"one {name}"]), f"{rate[f'one {name}'] / base:.0f}x", "1x"])
        rows.append([f"vision_jax, 8 seeds vmapped ({name})", 8, round(rate[f"eight {name}"]), f"{rate[f'eight {name}'] / base:.0f}x",
                     f"{rate[f'eight {name}'] / rate[f'one {name}']:.2f}x"])
        rows.append([f"floor: responses sw v only ({name})", 1, round(rate[f"floor {name}"]), f"{rate[f'floor {name}'] / base:.0f}x", "-"])
        rows.append([f"floor: responses by blocks of {inv.BLOCK} ({name})", 1, round(rate[f"blocks {name}"]), f"{rate[f'blocks {name}'] / base:.0f}x",
                     f"{rate[f'blocks {name}'] / rate[f'one {name}']:.2f}x"])
        rows.append([f"floor: responses by blocks, 8 seeds ({name})", 8, round(rate[f"blocks8 {name}"]), f"{rate[f'blocks8 {name}'] / base:.0f}x",
                     f"{rate[f'blocks8 {name}'] / rate[f'one {name}']:.2f}x"])
    print(f"N=900, M=400, k=4, I=100; {T} frames per vision_jax run, {args.numpy_frames} per numpy run; best of {args.rounds} "
          f"round-robin rounds; {jax.devices()[0].platform}")
    print_table(["implementation", "streams", "steps/s", "vs numpy (same dtype)", "vs one stream"], rows)


if __name__ == "__main__":
    main()
