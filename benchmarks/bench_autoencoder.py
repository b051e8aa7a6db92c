"""Autoencoder training throughput (images/s) and feedback frames/s at 256x256 with two layers.

python benchmarks/bench_autoencoder.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import vision_jax.autoencoder as ae  # noqa: E402
from _timing import best_time, print_table  # noqa: E402


def main():
    x = jnp.asarray(ae.colour_crops(0, 1000))
    rows = []
    steps, batch = 50, 100
    for feats in ((12,), (12, 48)):
        cfg = ae.AutoencoderConfig(features=feats, encoder_kernel=5, decoder_kernel=6)
        p = ae.init_params(jax.random.key(0), cfg)
        opt = optax.sgd(1e-3, momentum=0.9)
        # fine_tune compiles per call: time the compiled scan through jax's cache by a fixed step count
        ae.fine_tune(p, x, cfg, key=jax.random.key(1), optimizer=opt, steps=steps, batch_size=batch)[1].block_until_ready()
        t = best_time(lambda: ae.fine_tune(p, x, cfg, key=jax.random.key(1), optimizer=opt, steps=steps, batch_size=batch)[1].block_until_ready(), repeat=2)
        rows.append([f"train {len(feats)} layer(s), 32x32, batch {batch}", f"{steps * batch / t:.0f} images/s (incl. compile)"])
    for schedule in ("hierarchical", "every_frame"):
        cfg = ae.AutoencoderConfig(features=(12, 48), encoder_kernel=5, decoder_kernel=6)
        p = ae.random_feedback_params(jax.random.key(2), cfg)
        init_fn, _ = ae.feedback_process(p, cfg, schedule=schedule)
        s = init_fn(jax.random.key(3), 256, 256)
        n = 60
        ae.run_feedback(p, cfg, s, n, schedule=schedule, record_every=n)[1].block_until_ready()
        t = best_time(lambda: ae.run_feedback(p, cfg, s, n, schedule=schedule, record_every=n)[1].block_until_ready(), repeat=3)
        rows.append([f"feedback 256x256, 2 layers (12, 48), 5x5/6x6, {schedule}", f"{n / t:.1f} frames/s"])
    print_table(["case", "throughput"], rows)


if __name__ == "__main__":
    main()
