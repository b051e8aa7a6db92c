"""Sparse coding speed: vision_jax matching pursuit vs numpy, a per-sample HEH loop and scikit-learn OMP.

python benchmarks/bench_sparse.py [--n 4096] [--learn] [--ref-threads 1]
All methods code the same whitened natural-image patches (21x21, 676 atoms, 21 steps) in one
process, round-robin (best of --rounds). XLA uses every core; so do numpy's BLAS and scikit-learn
unless --ref-threads says otherwise. The floor rows time the initial correlation product alone,
which every coder of the table computes. --learn also times full-size learning iterations (batch
4096; compiled once beforehand) and extrapolates a 4096-iteration run. Prints Markdown tables.
"""
import argparse
import functools
import os
import time

from _timing import pin_threads, print_table

_parser = argparse.ArgumentParser(description=__doc__)
_parser.add_argument("--n", type=int, default=4096, help="patches coded")
_parser.add_argument("--learn", action="store_true", help="also time learning iterations at batch 4096")
_parser.add_argument("--rounds", type=int, default=5, help="timing rounds (best is kept)")
_parser.add_argument("--settle", type=float, default=0.25, help="seconds of rest before each timed call")
_parser.add_argument("--ref-threads", type=int, default=os.cpu_count(), help="BLAS threads of numpy and scikit-learn")
ARGS = _parser.parse_args()
pin_threads(ARGS.ref_threads)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from numpy_mp import NumpyHAPLearner, mp_heh_per_sample, mp_numpy  # noqa: E402
from vision_jax import _native, data, sparse  # noqa: E402
from vision_jax._compile import jit_with_cpu_options  # noqa: E402
from vision_jax.sparse._mp import _entries_xla, to_dense  # noqa: E402


def main():
    args = ARGS
    N, S = 676, 21
    x = data.extract_patches(data.natural_images(), key=jax.random.key(0), n_patches=args.n)
    d = data.one_over_f_dictionary(jax.random.key(1), N, 21)
    xj, dj = jnp.asarray(x), jnp.asarray(d)
    rng = np.random.default_rng(0)
    p_cum = np.sort(rng.uniform(0, 1, (N, 128)), axis=1).astype(np.float32)
    p_cum[:, 0], p_cum[:, -1] = 0, 1

    n_loop = min(args.n, 256)
    n_omp = min(args.n, 1024)
    corr = jax.jit(lambda a, b: a @ b.T)
    ones = jnp.ones((N,), jnp.float32)
    f32 = jnp.float32

    # the pure-JAX program, which runs off CPU, in float64 or with VISION_JAX_NATIVE=0
    # (the dictionary is an argument: closed over, XLA would fold the Gram matrix at compile time)
    @functools.partial(jit_with_cpu_options, static_argnames="heh")
    def pure_jax(a, dk, pc, heh):
        idx, coef = _entries_xla(a, dk, ones, pc, f32(3.0), f32(0.95 if heh else 1.0), S, heh, 1024)
        return to_dense(idx, coef, N)

    p_cum_j = jnp.asarray(p_cum)
    cases = {  # name -> (fn, patches per call); timed round-robin, best of --rounds
        "jax": (lambda: sparse.matching_pursuit(xj, dj, S).block_until_ready(), args.n),
        "jax pure": (lambda: pure_jax(xj, dj, p_cum_j, False).block_until_ready(), args.n),
        "numpy": (lambda: mp_numpy(x, d, S), args.n),
        "heh": (lambda: sparse.matching_pursuit(xj, dj, S, p_cum=p_cum_j, alpha=0.95).block_until_ready(), args.n),
        "heh pure": (lambda: pure_jax(xj, dj, p_cum_j, True).block_until_ready(), args.n),
        "heh loop": (lambda: mp_heh_per_sample(x[:n_loop], d, S, p_cum), n_loop),
        "corr": (lambda: corr(xj, dj).block_until_ready(), args.n),
        "numpy corr": (lambda: x @ d.T, args.n),
    }
    try:
        from sklearn.decomposition import sparse_encode

        cases["omp"] = (lambda: sparse_encode(x[:n_omp], d, algorithm="omp", n_nonzero_coefs=S), n_omp)
    except ImportError:
        print("(scikit-learn not installed: pip install scikit-learn for the OMP row)")
    best = {}
    for name, (fn, _) in cases.items():
        fn()  # warm-up (compilation)
    for r in range(args.rounds):
        for name, (fn, _) in cases.items():
            if name in ("heh loop", "omp") and r >= 2:
                continue  # slow references: two rounds
            # OpenBLAS's idle threads spin for about 0.1 s after a call: let them sleep before
            # the next coder runs (they would otherwise take the cores of a multithreaded one)
            time.sleep(args.settle)
            start = time.perf_counter()
            fn()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    rate = {name: cases[name][1] / best[name] for name in best}
    native = "native kernel" if _native.available("matching_pursuit") else "pure JAX: no native kernel"
    rows = [
        [f"vision_jax MP ({native})", rate["jax"], rate["jax"] / rate["numpy"]],
        ["vision_jax MP (pure-JAX program, blocked)", rate["jax pure"], rate["jax pure"] / rate["numpy"]],
        ["numpy MP (vectorised, float32)", rate["numpy"], 1.0],
        [f"vision_jax HEH MP ({native})", rate["heh"], rate["heh"] / rate["heh loop"]],
        ["vision_jax HEH MP (pure-JAX program)", rate["heh pure"], rate["heh pure"] / rate["heh loop"]],
        ["per-sample HEH loop (numpy)", rate["heh loop"], 1.0],
    ]
    if "omp" in rate:
        rows.append(["scikit-learn OMP-21", rate["omp"], 1.0])
        rows[0].append(rate["jax"] / rate["omp"])
    rows.append(["floor: initial correlations x D^T only (XLA)", rate["corr"], None])
    rows.append(["floor: initial correlations x D^T only (numpy BLAS)", rate["numpy corr"], None])
    codes = np.asarray(sparse.matching_pursuit(xj, dj, S))
    ref = mp_numpy(x, d, S)
    same = np.mean(np.all((codes != 0) == (ref != 0), axis=1))
    res = [np.linalg.norm(x - a @ d) / np.linalg.norm(x) for a in (codes, ref)]
    # Near-ties between correlated atoms may be broken differently in float32 by the two programs.
    print(f"{args.n} patches, N={N}, N0={S}, {jax.devices()[0].platform}, references on {args.ref_threads} BLAS thread(s); same support as numpy for {100 * same:.2f} % of "
          f"patches; relative residual {res[0]:.6f} (vision_jax) vs {res[1]:.6f} (numpy)")
    print_table(["coder", "patches/s", "vs its reference (MP: numpy MP; HEH: the per-sample loop)", "vs OMP"],
                [[r[0], round(r[1]), "-" if r[2] is None else f"{r[2]:.1f}x",
                  f"{r[3]:.1f}x" if len(r) > 3 else "-"] for r in rows])
    if args.learn:
        patches = jnp.asarray(data.extract_patches(data.natural_images(), key=jax.random.key(2), n_patches=65520))
        print()
        out = []
        for method in ("HAP", "HEH"):
            def run(n_iter, method=method):
                res = sparse.learn_dictionary(jax.random.key(3), patches, homeostasis=method, n_iter=n_iter, show_progress=False)
                jax.block_until_ready(res.dictionary)

            run(32)  # compiles the 32-iteration chunk used by both timed runs
            times = []
            for n_iter in (32, 96):
                start = time.perf_counter()
                run(n_iter)
                times.append(time.perf_counter() - start)
            per_it = (times[1] - times[0]) / 64
            out.append([f"vision_jax {method}", per_it, per_it * 4096 / 60, "-"])
        learner = NumpyHAPLearner(np.asarray(data.one_over_f_dictionary(jax.random.key(1), N, 21)))
        patches_np = np.asarray(patches)
        learner.step(patches_np)
        ref = min(_timed(lambda: learner.step(patches_np)) for _ in range(3))
        out.append(["numpy HAP (the reference's iteration)", ref, ref * 4096 / 60, "1x"])
        out[0][3] = f"{ref / out[0][1]:.1f}x"
        print_table(["learning (batch 4096, N 676)", "s / iteration", "4096 iterations (min)", "speed-up vs numpy"], out)


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
