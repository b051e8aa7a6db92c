"""Run a small sweep in its own process: python _sweep_worker.py N_DEVICES OUT.json [PROCESS_ID N_PROCESSES PORT]."""
import json
import sys

import jax

n_devices, out = int(sys.argv[1]), sys.argv[2]
jax.config.update("jax_num_cpu_devices", n_devices)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from vision_jax import sweep as sw  # noqa: E402

if len(sys.argv) > 3:
    pid, n_proc, port = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    sw.initialize_distributed(f"127.0.0.1:{port}", num_processes=n_proc, process_id=pid)


def fn(key, hyper):
    x = jax.random.normal(key, (5,))
    return {"loss": jnp.sum(jnp.tanh(x * hyper["eta"])) + hyper["k"], "vec": x * hyper["eta"]}


GRID = {"eta": [0.1, 0.5, 1.0], "k": [0.0, 1.0, 2.0]}  # 9 configs x 3 seeds = 27 rows: not a multiple of 8
plain = sw.sweep(fn, GRID, key=jax.random.key(0), n_seeds=3)
sharded = sw.sweep(fn, GRID, key=jax.random.key(0), n_seeds=3, devices="all")
result = {
    "device_count": jax.device_count(),
    "process_index": jax.process_index(),
    "plain": np.asarray(plain.outputs["loss"]).tolist(),
    "sharded": np.asarray(sharded.outputs["loss"]).tolist(),
    "vec": np.asarray(sharded.outputs["vec"]).tolist(),
}
with open(out, "w") as f:
    json.dump(result, f)
