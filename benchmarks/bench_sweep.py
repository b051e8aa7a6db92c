"""Sweep throughput: configurations vmapped in one compiled call vs a Python loop of single runs.

python benchmarks/bench_sweep.py            # about a minute on a 2-core CPU

Two workloads, each a pure ``fn(key, hyper)`` run through :func:`vision_jax.sweep.sweep`:

- invariance: the multi-winner-take-all + invariant layer trained on 1,000 tapestry windows
  (900 x 400 sparse weights, 100 invariant units, k = 4) from initial weights drawn per seed;
  it returns the final sparse error and the mean invariant output; swept: the invariant layer's
  rate ``leta`` for active units, or the sparse layer's rate ``xi``;
- matching pursuit: 21 steps on 256 whitened patches (one small learning batch) over a
  324-atom dictionary drawn per seed; it returns the relative residual.

Each is swept as 8 values of a hyperparameter with one seed (``leta`` or ``xi``; the coefficient
fraction ``alpha`` of MP), and as one configuration with 8 seeds. Seeds are vmapped outside
configurations, so with one seed the work that depends on the key alone is done once: the whole
sparse layer of the invariance model when ``leta`` is swept (it only enters the invariant layer),
the dictionary and its products with the patches in MP. A sweep of ``xi`` (it changes the sparse
layer from the first step) and a sweep of seeds share nothing.

For each, the table gives the best wall time (all variants timed round-robin in one process,
best of 5 rounds) of one run; of the 8 runs in one sweep, all vmapped together, or
``batch_size`` at a time (``lax.map`` over vmapped slices, still one compiled call); and of the
same 8 run one after another from Python (each already compiled). The target is that 8
configurations cost at most 2.5x one. Where nothing is shared and one run already keeps the
core busy, 8 runs cost about 8x one on a CPU: batching then shares only per-step overhead.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import pin_threads, print_table  # noqa: E402

pin_threads(1)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from vision_jax import data, sparse  # noqa: E402
from vision_jax.sparse import invariance as inv  # noqa: E402
from vision_jax.sweep import sweep  # noqa: E402


def invariance_workload(n_frames=1000):
    tapestry = jnp.asarray(data.make_tapestry(jax.random.key(0)))
    frames, _ = data.random_walk_frames(jax.random.key(1), tapestry, n_frames)

    def fn(key, hyper):
        params = inv.init_params(key)
        default = inv.InvarianceHyper()
        rates = inv.InvarianceHyper(leta=hyper.get("leta", default.leta), xi=hyper.get("xi", default.xi))
        _, stats = inv.train(params, frames, rates, k=4)
        return {"sparse_error": stats.sparse_error[-1], "invariant_output": stats.mean_invariant_output[-1]}

    return fn, {"leta": np.linspace(0.02, 0.09, 8), "xi": np.linspace(0.004, 0.012, 8)}


def mp_workload(n_patches=256, n_atoms=324):
    patches = jnp.asarray(data.extract_patches(data.natural_images(), key=jax.random.key(0), n_patches=n_patches))

    def fn(key, hyper):
        d = jax.random.normal(key, (n_atoms, patches.shape[1]), patches.dtype)
        d = d / jnp.linalg.norm(d, axis=1, keepdims=True)
        codes = sparse.matching_pursuit(patches, d, 21, alpha=hyper["alpha"])
        return {"residual": jnp.linalg.norm(patches - codes @ d) / jnp.linalg.norm(patches)}

    return fn, {"alpha": np.linspace(0.65, 1.0, 8)}


def measure(fn, grid, n_seeds, repeat):
    """Best wall times (s) of one run, of the 8 runs vmapped, by ``batch_size`` 4/2/1 and in a Python loop, round-robin."""
    key = jax.random.key(2)
    one_grid = {name: vals[:1] for name, vals in grid.items()}
    variants = {
        "one": lambda: sweep(fn, one_grid, key=key),
        "eight": lambda: sweep(fn, grid, key=key, n_seeds=n_seeds),
        **{b: (lambda b=b: sweep(fn, grid, key=key, n_seeds=n_seeds, batch_size=b)) for b in (4, 2, 1)},
    }
    # the same runs one by one: seed i of every configuration uses split(key, n_seeds)[i]
    runs = [(k, {name: jnp.asarray(v) for name, v in zip(grid, values)})
            for values in zip(*grid.values()) for k in jax.random.split(key, n_seeds)]
    single = jax.jit(fn)
    variants["loop"] = lambda: [single(k, h) for k, h in runs]

    def block(out):
        return jax.block_until_ready(out if isinstance(out, list) else out.outputs)

    for run in variants.values():  # compilation
        block(run())
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeat):
        for label, run in variants.items():
            start = time.perf_counter()
            block(run())
            best[label] = min(best[label], time.perf_counter() - start)
    # the sweeps and the loop compute the same thing
    looped = jax.tree.map(lambda *xs: np.stack(xs), *variants["loop"]())
    for label in ("eight", 4, 2, 1):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6), variants[label]().outputs, looped)
    return best["one"], best["eight"], {b: best[b] for b in (4, 2, 1)}, best["loop"]


def main():
    rows = []
    for label, (fn, swept_values) in (("invariance, 1,000 frames", invariance_workload()),
                                      ("matching pursuit, 256 patches", mp_workload())):
        first = next(iter(swept_values))
        sweeps = [(f"8 x {name}, 1 seed", {name: [float(v) for v in values]}, 1) for name, values in swept_values.items()]
        for swept, grid, n_seeds in sweeps + [("1 config, 8 seeds", {first: [float(swept_values[first][0])]}, 8)]:
            t1, t8, t8_seq, tl = measure(fn, grid, n_seeds, repeat=5)
            best = min(t8, *t8_seq.values())
            rows.append([label, swept, f"{t1 * 1e3:.1f}", f"{t8 * 1e3:.1f}", f"{t8_seq[4] * 1e3:.1f}", f"{t8_seq[2] * 1e3:.1f}",
                         f"{t8_seq[1] * 1e3:.1f}", f"{tl * 1e3:.1f}", f"{best / t1:.2f}x", f"{tl / best:.2f}x"])
    print(f"{jax.default_backend()} backend, {jax.device_count()} device(s)")
    print_table(["workload", "8 runs", "1 run (ms)", "8: vmap (ms)", "batch_size=4 (ms)", "batch_size=2 (ms)", "batch_size=1 (ms)",
                 "Python loop (ms)", "best of the sweeps / 1 run (target <= 2.5x)", "loop / best sweep"], rows)


if __name__ == "__main__":
    main()
