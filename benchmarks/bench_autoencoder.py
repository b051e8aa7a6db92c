"""Autoencoder training throughput (images/s) and feedback frames/s at 256x256 with two layers.

python benchmarks/bench_autoencoder.py [--steps 20] [--frames 40]

Every timed call reuses a program compiled by the warm-up call (same config, shapes and optimizer
object), so the numbers are steady-state throughput; the compile times are printed separately.
"""
import argparse
import os
import sys
import time

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
    print(f"backend {jax.default_backend()}, {os.cpu_count()} CPUs")
    print_table(["case", "throughput", "first call (compile)"], rows)


if __name__ == "__main__":
    main()
