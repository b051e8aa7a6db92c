"""Sweeps: grid expansion, vmap == loop, batching, static values, sharding over 8 fake devices, two processes."""
import json
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision_jax import sweep as sw

WORKER = Path(__file__).parent / "_sweep_worker.py"


def fn(key, hyper):
    x = jax.random.normal(key, (5,))
    return {"loss": jnp.sum(jnp.tanh(x * hyper["eta"])) + hyper["k"], "vec": x * hyper["eta"]}


GRID = {"eta": [0.1, 0.5, 1.0], "k": [0.0, 1.0, 2.0]}


@pytest.fixture(scope="module")
def plain():
    return sw.sweep(fn, GRID, key=jax.random.key(0), n_seeds=3)


def test_grid_is_the_product_first_key_slowest():
    g = sw.make_grid({"a": [1, 2], "b": [10.0, 20.0, 30.0], "m": ["x", "y"]})
    assert g.n_configs == 12
    np.testing.assert_array_equal(g.numeric["a"], np.repeat([1, 2], 6))
    np.testing.assert_array_equal(g.numeric["b"], np.tile(np.repeat([10.0, 20.0, 30.0], 2), 2))
    assert g.static["m"] == ("x", "y") * 6


def test_zipped_grid():
    g = sw.make_grid({"a": [1.0, 2.0], "b": [3.0, 4.0]}, product=False)
    assert g.n_configs == 2 and g.numeric["b"].tolist() == [3.0, 4.0]


def test_sweep_equals_python_loop(plain):
    keys = jax.random.split(jax.random.key(0), 3)
    table = plain.table()
    for row in range(27):
        hyper = {"eta": jnp.float32(table["eta"][row]), "k": jnp.float32(table["k"][row])}
        expected = fn(keys[table["seed"][row]], hyper)["loss"]
        np.testing.assert_allclose(plain.outputs["loss"][row], expected, rtol=1e-6)


def test_reshape_and_csv(plain, tmp_path):
    shaped = plain.reshape()
    assert shaped["loss"].shape == (9, 3) and shaped["vec"].shape == (9, 3, 5)
    path = plain.to_csv(tmp_path / "sweep.csv")
    lines = path.read_text().splitlines()
    assert lines[0].split(",") == ["config", "seed", "eta", "k", "loss"]
    assert len(lines) == 28


def test_same_seed_is_shared_across_configurations(plain):
    vec = plain.reshape()["vec"]
    # vec = x * eta with x drawn from the seed's key: dividing by eta gives the same draw everywhere.
    etas = np.asarray(GRID["eta"], np.float32)
    draws = vec / np.repeat(etas, 3)[:, None, None]
    np.testing.assert_allclose(draws, np.broadcast_to(draws[:1], draws.shape), rtol=1e-5)


def test_work_that_depends_on_the_key_alone_runs_once_per_seed():
    calls = []

    def expensive(x):  # a host callback stands in for costly work; it counts how often it runs
        calls.append(np.shape(x))
        return np.asarray(x) * 2

    def with_shared_part(key, hyper):
        x = jax.random.normal(key, (4,))
        shared = jax.pure_callback(expensive, jax.ShapeDtypeStruct((4,), x.dtype), x, vmap_method="sequential")
        return {"y": jnp.sum(shared) * hyper["a"]}

    res = sw.sweep(with_shared_part, {"a": [1.0, 2.0, 3.0]}, key=jax.random.key(0), n_seeds=2)
    assert len(calls) == 2, f"expected one call per seed (2), got {len(calls)}"
    y = res.reshape()["y"]
    np.testing.assert_allclose(y, y[:1] * np.array([1.0, 2.0, 3.0])[:, None], rtol=1e-6)
    calls.clear()
    sw.sweep(with_shared_part, {"a": [1.0, 2.0, 3.0]}, key=jax.random.key(0), n_seeds=2, batch_size=2)
    assert len(calls) == 6  # batch_size vmaps the flat list of runs: nothing is shared


def test_batch_size_bounds_memory_without_changing_results(plain):
    batched = sw.sweep(fn, GRID, key=jax.random.key(0), n_seeds=3, batch_size=4)
    np.testing.assert_allclose(batched.outputs["loss"], plain.outputs["loss"], rtol=1e-6)


def test_static_values_compile_separately():
    def f(key, hyper):
        scale = {"double": 2.0, "triple": 3.0}[hyper["method"]]
        return {"y": scale * hyper["x"]}

    res = sw.sweep(f, {"method": ["double", "triple"], "x": [1.0, 2.0]}, key=jax.random.key(0))
    assert res.outputs["y"].tolist() == [2.0, 4.0, 3.0, 6.0]
    assert res.table()["method"].tolist() == ["double", "double", "triple", "triple"]


def test_a_repeated_sweep_reuses_the_compiled_program():
    traces = []

    def f(key, hyper):
        traces.append(hyper["method"])
        return {"y": hyper["x"] * jax.random.uniform(key)}

    first = sw.sweep(f, {"method": ["a"], "x": [1.0, 2.0]}, key=jax.random.key(0), n_seeds=2)
    again = sw.sweep(f, {"method": ["a"], "x": [3.0, 4.0]}, key=jax.random.key(1), n_seeds=2)
    assert traces == ["a"], "the second sweep (same function, static values and shapes) traced again"
    assert not np.allclose(first.outputs["y"], again.outputs["y"])
    sw.sweep(f, {"method": ["b"], "x": [1.0, 2.0]}, key=jax.random.key(0), n_seeds=2)
    assert traces == ["a", "b"]


@pytest.mark.parametrize(
    "grid, exc, match",
    [
        ({}, ValueError, "empty dict"),
        ({"a": []}, ValueError, r"grid\['a'\]: expected at least one value"),
        ({"a": [np.zeros(2), np.zeros(3)]}, ValueError, "ragged"),
        ({"a": [1.0, "x"]}, TypeError, "mix"),
        ([1, 2], TypeError, "dict"),
    ],
)
def test_bad_grids(grid, exc, match):
    with pytest.raises(exc, match=match):
        sw.sweep(fn, grid, key=jax.random.key(0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_seeds"):
        sw.sweep(fn, GRID, key=jax.random.key(0), n_seeds=0)
    with pytest.raises(TypeError, match="key"):
        sw.sweep(fn, GRID, key=0)
    with pytest.raises(ValueError, match="product=False"):
        sw.make_grid({"a": [1.0, 2.0], "b": [1.0]}, product=False)


def _run_worker(args, tmp_path, name):
    out = tmp_path / f"{name}.json"
    return out, subprocess.Popen([sys.executable, str(WORKER), *map(str, args[:1]), str(out), *map(str, args[1:])],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sharded_over_8_fake_devices_equals_unsharded(tmp_path, plain):
    out, proc = _run_worker([8], tmp_path, "eight")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    res = json.loads(out.read_text())
    assert res["device_count"] == 8
    np.testing.assert_allclose(res["sharded"], res["plain"], rtol=1e-6)
    np.testing.assert_allclose(res["sharded"], plain.outputs["loss"], rtol=1e-6)


def test_two_processes_equal_one_process(tmp_path, plain):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [_run_worker([4, pid, 2, port], tmp_path, f"p{pid}") for pid in range(2)]
    for out, proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    for out, _ in procs:
        res = json.loads(out.read_text())
        assert res["device_count"] == 8
        np.testing.assert_allclose(res["sharded"], plain.outputs["loss"], rtol=1e-6)
