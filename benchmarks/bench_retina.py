"""Retina cascade speed and memory: vision_jax.retina against convis (PyTorch port of Virtual Retina).

    python benchmarks/bench_retina.py            # quick (about a minute)
    python benchmarks/bench_retina.py --full     # the reference sizes, 100,000-frame stream

Runs convis in the same process when it is importable (``pip install convis``; three small fixes
for current numpy/Python are applied at import time), alternating its runs with ours and keeping
the best of each, and otherwise prints the reference figures measured for convis 0.6.3 on a
2-core CPU with 1 torch thread.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import pin_threads, print_table  # noqa: E402

pin_threads(1)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from vision_jax import retina  # noqa: E402
from vision_jax.retina._adjoint import native_reason  # noqa: E402

# convis 0.6.3, full Retina() with spikes, 1 torch thread on a 2-core CPU (frames/s; s)
CONVIS_REFERENCE = {"1000x50x50": 340.0, "2000x100x100": 90.0, "fwd+bwd 500x50x50 (s)": 4.0}
CONVIS_REFERENCE_NOGRAD = {"1000x50x50": 460.0, "2000x100x100": 145.0}  # torch.no_grad()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def movie(T, H, W, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None, None] * 0.001
    x = np.arange(W)[None, None, :] / 10.0
    m = 0.5 + 0.3 * np.sin(2 * np.pi * (x - 4 * t)) + 0.1 * rng.standard_normal((T, H, W))
    return m.astype(np.float32)


def _best(fns: dict, rounds: int) -> dict:
    """Best wall time of each callable, the callables alternated ``rounds`` times (fair under a shared CPU)."""
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def forward_fn(params, T, H, W, spikes=True, rates=True):
    """A compiled forward run over a (T, H, W) movie, ready to time (compiled on creation)."""
    state = retina.init_state(params, (H, W), key=jax.random.key(0), luminance=0.5)
    m = jnp.asarray(movie(T, H, W))

    def fn():
        jax.block_until_ready(retina.run(params, state, m, spikes=spikes, rates=rates))

    fn()
    return fn


def time_forward(params, T, H, W, spikes=True, rounds=3):
    return T / _best({"f": forward_fn(params, T, H, W, spikes)}, rounds)["f"]


def forward_backward_fn(params, T, H, W, remat=True, adjoint="auto"):
    state = retina.init_state(params, (H, W), key=jax.random.key(0), luminance=0.5)
    m = jnp.asarray(movie(T, H, W))
    radii = retina.blur_radii(params)

    @jax.jit
    def loss_and_grad(p):
        return jax.value_and_grad(lambda q: jnp.mean(retina.run(q, state, m, spikes=False, radii=radii, remat=remat,
                                                                          adjoint=adjoint)[1].rates))(p)

    def fn():
        jax.block_until_ready(loss_and_grad(params))

    fn()
    return fn


def time_stream(params, T, H, W, chunk):
    """Stream T frames in chunks, keeping only spike counts: returns (frames/s, peak RSS growth in MB)."""
    state = retina.init_state(params, (H, W), key=jax.random.key(0), luminance=0.5)
    block = movie(chunk, H, W)
    counts = jnp.zeros((2, H, W))
    # warm up (compile) on one chunk, then measure memory growth over the whole stream
    state, out = retina.run(params, state, jnp.asarray(block))
    jax.block_until_ready(out)
    rss0 = peak_rss_mb()
    start = time.perf_counter()
    for state, c in retina.stream(params, state, (block for _ in range(T // chunk)), chunk, reduce=lambda o: o.spikes.sum(0)):
        counts = counts + c
    jax.block_until_ready(counts)
    return T / (time.perf_counter() - start), peak_rss_mb() - rss0, float(counts.sum())


def try_convis(torch_threads: int = 1):
    try:
        import collections
        import collections.abc
        import math

        collections.Mapping = collections.abc.Mapping  # removed in Python 3.10
        np.math = math  # removed in numpy 2
        import torch

        torch.set_num_threads(torch_threads)
        import convis  # noqa: F401
        import convis.numerical_filters as nf

        class _IntLinspace:  # convis passes float sample counts to linspace
            def __getattr__(self, name):
                return getattr(np, name)

            @staticmethod
            def linspace(a, b, n, *args, **kwargs):
                return np.linspace(a, b, int(n), *args, **kwargs)

        nf.np = _IntLinspace()
        return convis, torch
    except Exception as err:  # not installed or not fixable here
        print(f"(convis not run: {type(err).__name__}: {err})")
        return None, None


def convis_forward_fn(convis, torch, T, H, W, autograd=True, spikes=True):
    """convis Retina() over a (T, H, W) movie in chunks of 500 frames (a fresh model per call, warmed up)."""
    inp = torch.from_numpy(movie(T, H, W)[None, None])

    def fn():
        model = convis.retina.Retina(spikes=spikes)
        with torch.enable_grad() if autograd else torch.no_grad():
            model.run(inp[:, :, :20], dt=20)  # warm up
            model.clear_state()
            start = time.perf_counter()
            model.run(inp, dt=500)
        return time.perf_counter() - start

    return fn


def convis_forward_backward_fn(convis, torch, T, H, W):
    """Retina(spikes=False), one forward over the movie, backward from the mean of both outputs.

    A fresh model each time: convis keeps the autograd graph in its carried state.
    """
    m = torch.from_numpy(movie(T, H, W)[None, None])

    def fn():
        model = convis.retina.Retina(spikes=False)
        out = model(m)
        loss = out[0].mean() + out[1].mean()
        loss.backward()

    return fn


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="reference sizes and a 100,000-frame stream")
    parser.add_argument("--no-convis", action="store_true", help="skip convis even if installed")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch threads for convis (default 1, as in the reference figures); "
                             "JAX uses every core the process may run on: pin the process (taskset) for one core each")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s)")
    params = retina.preset("convis")
    sizes = [(1000, 50, 50), (2000, 100, 100)] if args.full else [(1000, 50, 50), (500, 100, 100)]
    convis, torch = (None, None) if args.no_convis else try_convis(args.torch_threads)
    rounds = 5
    rows = []
    for T, H, W in sizes:
        fns = {"ours": forward_fn(params, T, H, W, spikes=True), "ours_rates": forward_fn(params, T, H, W, spikes=False),
               "ours_spikes": forward_fn(params, T, H, W, spikes=True, rates=False)}
        if convis is not None:
            c_fwd = convis_forward_fn(convis, torch, T, H, W)
            c_nograd = convis_forward_fn(convis, torch, T, H, W, autograd=False)
            c_times = {"convis": [], "convis_nograd": []}
            fns["convis"] = lambda: c_times["convis"].append(c_fwd())
            fns["convis_nograd"] = lambda: c_times["convis_nograd"].append(c_nograd())
        best = _best(fns, rounds)
        ref_key = f"{T if args.full else {50: 1000, 100: 2000}[H]}x{H}x{W}"
        ours, ours_rates, ours_spikes = T / best["ours"], T / best["ours_rates"], T / best["ours_spikes"]
        if convis is not None:  # convis's own loop time (model construction and warm-up excluded)
            theirs, theirs_nograd, source = T / min(c_times["convis"]), T / min(c_times["convis_nograd"]), "measured"
        else:
            theirs, source = CONVIS_REFERENCE[ref_key], "reference"
            theirs_nograd = CONVIS_REFERENCE_NOGRAD[ref_key]
        rows.append([f"forward {T}x{H}x{W}, spikes and rates (frames/s)", ours, theirs, source, ours / theirs])
        rows.append([f"forward {T}x{H}x{W}, spikes only, as convis returns (frames/s)", ours_spikes, theirs, source,
                     ours_spikes / theirs])
        rows.append([f"forward {T}x{H}x{W}, no spikes vs convis no autograd (frames/s)", ours_rates, theirs_nograd, source,
                     ours_rates / theirs_nograd])
    # all 23 parameters; "auto" is the native kernel's reverse pass where it serves (CPU), else autodiff
    fns = {"auto": forward_backward_fn(params, 500, 50, 50),
           "remat": forward_backward_fn(params, 500, 50, 50, adjoint="autodiff"),
           "plain": forward_backward_fn(params, 500, 50, 50, remat=False, adjoint="autodiff")}
    if convis is not None:
        fns["convis"] = convis_forward_backward_fn(convis, torch, 500, 50, 50)
    best = _best(fns, rounds)
    theirs, source = (best["convis"], "measured") if convis is not None else (CONVIS_REFERENCE["fwd+bwd 500x50x50 (s)"], "reference")
    native = native_reason(params, jnp.zeros((1, 1, 1), jnp.float32), False) is None
    rows.append([f"forward+backward 500x50x50, rates, default ({'native' if native else 'autodiff'} adjoint) (s)",
                 best["auto"], theirs, source, theirs / best["auto"]])
    rows.append(["forward+backward 500x50x50, rates, autodiff with remat (s)", best["remat"], theirs, source,
                 theirs / best["remat"]])
    rows.append(["forward+backward 500x50x50, rates, autodiff, no remat (s)", best["plain"], theirs, source,
                 theirs / best["plain"]])
    print_table(["convis preset (10 px/deg, dt 1 ms)", "vision_jax", "convis", "convis source", "speed-up"], rows)

    T = 100_000 if args.full else 20_000
    fps, growth, n_spikes = time_stream(params, T, 50, 50, chunk=1000)
    print()
    print_table(["stream (chunks of 1000 frames, 50x50, spikes)", "value"],
                [["frames", T], ["frames/s", fps], ["peak RSS growth during the stream (MB)", growth],
                 ["peak RSS of the process (MB)", peak_rss_mb()], ["spikes counted", n_spikes]])
    cat = retina.preset("cat_x")
    print()
    print_table(["other presets, forward 1000x50x50 with spikes", "frames/s"],
                [[name, time_forward(retina.preset(name), 1000, 50, 50)] for name in ("cat_x", "primate_magno")] +
                [["cat_x, stage_lag=False", time_forward(cat.with_config(stage_lag=False), 1000, 50, 50)]])


if __name__ == "__main__":
    main()
