"""A small chunked run used by test_checkpoint.py: python _chunked_run.py DIR OUT.npz [SLEEP_S]."""
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from vision_jax.checkpoint import run_chunks


def make_chunk(sleep_s: float = 0.0):
    @jax.jit
    def compiled(carry, index):
        key, x = carry

        def step(x, k):
            x = 0.9 * x + jax.random.normal(k, x.shape) + index.astype(x.dtype)
            return x, jnp.mean(x)

        key, sub = jax.random.split(key)
        x, means = jax.lax.scan(step, x, jax.random.split(sub, 50))
        return (key, x), {"mean": means, "last": x[0]}

    def chunk(carry, index):
        out = compiled(carry, index)
        time.sleep(sleep_s)
        return out

    return chunk


def initial_carry():
    return (jax.random.key(3), jnp.zeros(4, jnp.float32))


if __name__ == "__main__":
    directory, out = sys.argv[1], sys.argv[2]
    sleep_s = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    (key, x), hist = run_chunks(make_chunk(sleep_s), initial_carry(), n_chunks=8, directory=directory, fingerprint={"n": 8})
    np.savez(out, x=np.asarray(x), key=np.asarray(jax.random.key_data(key)), mean=hist["mean"], last=hist["last"])
