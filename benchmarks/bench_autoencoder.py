"""Autoencoder training throughput (images/s) and feedback frames/s at 256x256 with two layers.

python benchmarks/bench_autoencoder.py [--steps 20] [--frames 40] [--rounds 5]

Every timed call reuses a program compiled by the warm-up call (same config, shapes and optimizer
object), so the numbers are steady-state throughput; the compile times are printed separately.
A second table compares the layer-1 encoder on the pooled grid (phases as channels, patch-product
kernel gradient; the default for layers with few input channels) with one direct "same"
``lax.conv``, round-robin in this process (best of ``--rounds``).
"""
import argparse
import os
import sys
import time
from functools import partial

sys.path.insert(0, os.path.dirname(__file__))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import vision_jax.autoencoder as ae  # noqa: E402
from _timing import best_time, print_table  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    x = jnp.asarray(ae.colour_crops(0, 1000))
    rows = []
    cfg = ae.AutoencoderConfig(features=(12, 48), encoder_kernel=5, decoder_kernel=6)
    p = ae.init_params(jax.random.key(0), cfg)
    opt = optax.sgd(1e-3, momentum=0.9)
    codes = ae.encode(p, x, 0, cfg)
    cases = [("train layer 1 (3->12, 5x5 / 6x6), 32x32", lambda s: ae.train_layer(p, x, 0, cfg, key=jax.random.key(1), optimizer=opt, steps=s)[1]),
             ("train layer 2 (12->48) on 16x16 codes", lambda s: ae.train_layer(p, codes, 1, cfg, key=jax.random.key(1), optimizer=opt, steps=s)[1]),
             ("fine-tune both layers end to end, 32x32", lambda s: ae.fine_tune(p, x, cfg, key=jax.random.key(1), optimizer=opt, steps=s)[1])]
    for name, fn in cases:
        t0 = time.perf_counter()
        fn(1).block_until_ready()
        compile_s = time.perf_counter() - t0
        t = best_time(lambda: fn(args.steps).block_until_ready(), repeat=2)
        rows.append([name + ", batch 100", f"{args.steps * 100 / t:.0f} images/s", f"{compile_s:.1f} s"])
    for schedule in ("hierarchical", "every_frame"):
        pr = ae.random_feedback_params(jax.random.key(2), cfg)
        init_fn, _ = ae.feedback_process(pr, cfg, schedule=schedule)
        s = init_fn(jax.random.key(3), 256, 256)
        n = args.frames
        t0 = time.perf_counter()
        ae.run_feedback(pr, cfg, s, 4, schedule=schedule)[1].block_until_ready()
        compile_s = time.perf_counter() - t0
        t = best_time(lambda: ae.run_feedback(pr, cfg, s, n, schedule=schedule, record_every=n)[1].block_until_ready(), repeat=3)
        rows.append([f"feedback 256x256, 2 layers (12, 48), 5x5/6x6, {schedule}", f"{n / t:.1f} frames/s", f"{compile_s:.1f} s"])
    print(f"backend {jax.default_backend()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print_table(["case", "throughput", "first call (compile)"], rows)
    print()
    print_table(["layer 1 (3->12, 5x5 encoder, 6x6 decoder)", "direct lax.conv", "pooled grid", "speed-up"], compare_encoders(args.rounds))


def compare_encoders(rounds: int) -> list:
    """Round-robin times of the two layer-1 encoder forms: one training step's value and gradient
    (batch 25 and 100 of 32x32 crops) and 4 feedback frames at 256x256."""
    from vision_jax.autoencoder import _model

    cfg = ae.AutoencoderConfig(features=(12, 48), encoder_kernel=5, decoder_kernel=6)
    p = ae.init_params(jax.random.key(0), cfg)
    pr = ae.random_feedback_params(jax.random.key(2), cfg)
    state = ae.feedback_process(pr, cfg)[0](jax.random.key(3), 256, 256)

    def step_loss(layer, x):
        return ae.mse(_model.decode_layer(layer, _model.encode_layer(layer, x, pooling="max", activation="tanh"), activation="tanh"), x)

    def frames(params, s):  # 4 frames of the feedback step, every layer updated each frame
        step = ae.feedback_process(params, cfg, schedule="every_frame")[1]
        for _ in range(4):
            s = step(s)
        return s.layers[0]

    cases = {}
    for n in (25, 100):
        x = jnp.asarray(ae.colour_crops(0, n))
        cases[f"training step (value and gradient), batch {n}"] = (jax.value_and_grad(step_loss), (p.layers[0], x))
    cases["feedback 256x256, 4 frames, every layer each frame"] = (frames, (pr, state))
    compiled = {}
    saved = _model._PHASE_MAX_CHANNELS
    try:
        for form, limit in (("direct", 0), ("pooled", saved)):
            _model._PHASE_MAX_CHANNELS = limit  # read when tracing: each form is its own program
            for name, (fn, fargs) in cases.items():
                f = jax.jit(partial(fn))
                jax.block_until_ready(f(*fargs))
                compiled[name, form] = (f, fargs)
    finally:
        _model._PHASE_MAX_CHANNELS = saved
    best = {key: float("inf") for key in compiled}
    for _ in range(rounds):
        for key, (f, fargs) in compiled.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(*fargs))
            best[key] = min(best[key], time.perf_counter() - t0)
    return [[name, f"{1e3 * best[name, 'direct']:.1f} ms", f"{1e3 * best[name, 'pooled']:.1f} ms",
             f"{best[name, 'direct'] / best[name, 'pooled']:.2f}x"] for name in cases]


if __name__ == "__main__":
    main()
