"""Seeds x hyperparameters in one compiled call, and the same sweep sharded over devices.

A sweep runs ``fn(key, hyper) -> pytree`` for every combination of a hyperparameter grid and a
number of seeds, with ``vmap`` inside one ``jit``::

    def fn(key, hyper):
        return train(key, eta=hyper["eta"], k=hyper["k"]).final_loss

    result = sweep(fn, {"eta": [0.01, 0.1], "k": [2, 4]}, n_seeds=3, key=jax.random.key(0))
    result.outputs              # leaves of shape (4 * 3, ...): configs x seeds, flattened
    result.table()              # dict of columns: eta, k, seed, and every scalar output
    result.reshape()            # leaves of shape (n_configs, n_seeds, ...)

The grid is either a dict of lists (expanded to their Cartesian product, the first key varying
slowest) or a pytree of arrays with a common leading axis (one configuration per row). String
values (e.g. a method name) are *static*: the sweep compiles once per static combination and
vmaps over the numeric rest. Seed ``i`` uses the same key in every configuration (common random
numbers), so configurations are compared on the same draws. Without ``devices`` or
``batch_size``, seeds are vmapped outside configurations: whatever ``fn`` computes from the key
alone (initial weights, a random dictionary and its products with fixed data) is computed once
per seed and shared by every configuration, not once per run.

Sharding: ``devices="all"`` (or a 1-D :class:`jax.sharding.Mesh`) splits the flattened sweep
axis over devices, padding it to a multiple of the device count and dropping the padding from
the results. In a multi-process run (after :func:`initialize_distributed`), every process
passes the same grid; each feeds its share of the sweep axis to its local devices and the
results are gathered on every process. Library code stays unaware of sharding: only this
module knows about it.
"""
from __future__ import annotations

import csv
import itertools
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vision_jax._checks import check_int, check_key

__all__ = ["Grid", "SweepResult", "make_grid", "sweep", "sweep_mesh", "initialize_distributed"]

SWEEP_AXIS = "sweep"


class Grid(NamedTuple):
    """A flattened hyperparameter grid.

    Attributes:
      numeric: dict name -> array of shape ``(n_configs,)`` (or ``(n_configs, ...)``), vmapped.
      static: dict name -> tuple of length ``n_configs`` of hashable values (strings), compiled per value.
      n_configs: number of configurations.
    """

    numeric: dict
    static: dict
    n_configs: int


def _is_static_value(v) -> bool:
    return isinstance(v, (str, bytes)) or v is None


def make_grid(grid, *, product: bool = True) -> Grid:
    """Flatten ``grid`` into one row per configuration.

    Args:
      grid: dict name -> list of values (numbers, arrays of one shape, or strings).
      product: ``True`` expands the lists to their Cartesian product (first key slowest);
        ``False`` zips them: every list has one entry per configuration (a pytree of arrays
        with a common leading axis is the usual form).

    Raises:
      ValueError: empty grid or empty value list; ragged numeric entries; zipped lists of
        different lengths.
      TypeError: a grid that is not a dict; a list mixing strings and numbers.
    """
    if isinstance(grid, Grid):
        return grid
    if not isinstance(grid, dict):
        raise TypeError(f"grid: expected a dict of lists (name -> values), got {type(grid).__name__}")
    if not grid:
        raise ValueError("grid: expected at least one hyperparameter, got an empty dict")
    names, values = [], []
    for name, vals in grid.items():
        if isinstance(vals, (str, bytes)) or np.isscalar(vals):
            vals = [vals]
        vals = list(vals) if not isinstance(vals, (np.ndarray, jax.Array)) else list(np.asarray(vals))
        if len(vals) == 0:
            raise ValueError(f"grid[{name!r}]: expected at least one value, got an empty list")
        kinds = {_is_static_value(v) for v in vals}
        if len(kinds) > 1:
            raise TypeError(f"grid[{name!r}]: expected all strings or all numbers, got a mix: {vals!r}")
        if not kinds.pop():
            shapes = {np.shape(v) for v in vals}
            if len(shapes) > 1:
                raise ValueError(f"grid[{name!r}]: expected values of one shape, got ragged shapes {sorted(shapes)}")
            for v in vals:
                arr = np.asarray(v)
                if arr.dtype.kind not in "biuf":
                    raise TypeError(f"grid[{name!r}]: expected numbers or strings, got {v!r}")
        names.append(name)
        values.append(vals)
    if product:
        rows = list(itertools.product(*values))
    else:
        lengths = {name: len(v) for name, v in zip(names, values)}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"grid: with product=False every entry needs one value per configuration, got lengths {lengths}")
        rows = list(zip(*values))
    numeric, static = {}, {}
    for j, name in enumerate(names):
        column = [row[j] for row in rows]
        if _is_static_value(column[0]):
            static[name] = tuple(column)
        else:
            numeric[name] = np.stack([np.asarray(v) for v in column])
    return Grid(numeric=numeric, static=static, n_configs=len(rows))


class SweepResult(NamedTuple):
    """Results of :func:`sweep`.

    Attributes:
      outputs: pytree whose leaves have leading axis ``n_configs * n_seeds`` (configuration-major).
      grid: the flattened :class:`Grid`.
      n_seeds: number of seeds per configuration.
    """

    outputs: Any
    grid: Grid
    n_seeds: int

    def coords(self) -> dict:
        """Columns ``config``, ``seed`` and one per hyperparameter, each of length n_configs * n_seeds."""
        n = self.grid.n_configs
        cols = {"config": np.repeat(np.arange(n), self.n_seeds), "seed": np.tile(np.arange(self.n_seeds), n)}
        for name, col in self.grid.numeric.items():
            cols[name] = np.repeat(np.asarray(col), self.n_seeds, axis=0)
        for name, col in self.grid.static.items():
            cols[name] = np.repeat(np.asarray(col, dtype=object), self.n_seeds)
        return cols

    def reshape(self):
        """Outputs with leaves reshaped to ``(n_configs, n_seeds, ...)``."""
        return jax.tree.map(lambda x: np.asarray(x).reshape((self.grid.n_configs, self.n_seeds) + x.shape[1:]), self.outputs)

    def table(self) -> dict:
        """A tidy table: the coordinates plus every output leaf that is a scalar per run."""
        cols = self.coords()
        leaves, _ = jax.tree_util.tree_flatten_with_path(self.outputs)
        for path, leaf in leaves:
            leaf = np.asarray(leaf)
            if leaf.ndim == 1:
                cols[jax.tree_util.keystr(path).strip("[]'.") or "output"] = leaf
        return cols

    def to_csv(self, path: Path | str) -> Path:
        """Write :meth:`table` as CSV; returns the path."""
        path = Path(path)
        cols = self.table()
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(list(cols))
            for row in zip(*[np.asarray(c).tolist() for c in cols.values()]):
                writer.writerow(row)
        return path


def sweep_mesh(devices="all") -> Mesh:
    """A 1-D mesh named ``"sweep"`` over ``devices`` (``"all"``: every device of every process)."""
    devs = jax.devices() if isinstance(devices, str) and devices == "all" else list(devices)
    if not devs:
        raise ValueError("devices: expected at least one device, got none")
    return jax.make_mesh((len(devs),), (SWEEP_AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devs)


def _pad_rows(tree, n_pad: int):
    if n_pad == 0:
        return tree
    return jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], n_pad, axis=0)], axis=0), tree)


@lru_cache(maxsize=64)
def _compiled(fn, static: tuple, batch_size, sharding, nested: bool = False):
    """One jitted runner per (function, static values, batch size, sharding, layout).

    ``nested``: the runner takes ``(seed_keys (S,), hypers (C, ...))`` and vmaps over seeds
    outside configurations, so that work depending on the key alone (initial weights, products
    with them) is computed once per seed instead of once per configuration; its outputs have
    leading axes ``(S, C)``. Otherwise it takes flat ``(keys, hypers)`` of one row per run.
    Cached, so a sweep called again with the same function and static values (with other numeric
    values, keys or seeds of the same shapes) reuses the compiled program.
    """
    static_dict = dict(static)

    def one(k, h):
        return fn(k, {**h, **static_dict})

    if nested:
        run = jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))
    elif batch_size is not None:
        def run(k, h):
            return jax.lax.map(lambda kh: one(*kh), (k, h), batch_size=batch_size)
    else:
        run = jax.vmap(one)
    return jax.jit(run) if sharding is None else jax.jit(run, out_shardings=sharding)


def _run_group(fn, static: tuple, seed_keys, numeric: dict, n_rows: int, *, batch_size, mesh):
    """Run ``fn`` for every (configuration row of ``numeric``, seed); host numpy leaves of leading
    size ``n_rows * n_seeds``, configuration-major."""
    n_seeds = seed_keys.shape[0]
    if mesh is None and batch_size is None and numeric:
        hypers = {k: jnp.asarray(v) for k, v in numeric.items()}
        out = _compiled(fn, static, None, None, nested=True)(seed_keys, hypers)
        return jax.tree.map(lambda x: np.swapaxes(np.asarray(x), 0, 1).reshape((n_rows * n_seeds,) + x.shape[2:]), out)
    hypers = {k: jnp.asarray(np.repeat(v, n_seeds, axis=0)) for k, v in numeric.items()}
    keys = seed_keys[np.tile(np.arange(n_seeds), n_rows)]
    return _run_flat(fn, static, keys, hypers, batch_size=batch_size, mesh=mesh)


def _run_flat(fn, static: tuple, keys, hypers, *, batch_size, mesh):
    """Run ``fn`` over the leading axis of (keys, hypers); returns host numpy leaves."""
    n = keys.shape[0]
    if mesh is None:
        return jax.tree.map(np.asarray, _compiled(fn, static, batch_size, None)(keys, hypers))

    n_dev = mesh.devices.size
    n_pad = (-n) % n_dev
    keys_p = _pad_rows(keys, n_pad)
    hypers_p = _pad_rows(hypers, n_pad)
    sharding = NamedSharding(mesh, PartitionSpec(SWEEP_AXIS))
    if jax.process_count() == 1:
        keys_p, hypers_p = jax.device_put((keys_p, hypers_p), sharding)
    else:
        keys_p, hypers_p = _process_local_share((keys_p, hypers_p), mesh, sharding)
    out = _compiled(fn, static, batch_size, sharding)(keys_p, hypers_p)
    out = _gather(out)
    return jax.tree.map(lambda x: np.asarray(x)[:n], out)


def _process_local_share(tree, mesh: Mesh, sharding: NamedSharding):
    """Each process feeds the rows its local devices own; returns global sharded arrays."""
    local = {d.id for d in jax.local_devices()}
    order = [i for i, d in enumerate(mesh.devices.flat) if d.id in local]

    def place(x):
        x = np.asarray(jax.random.key_data(x)) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else np.asarray(x)
        rows_per_dev = x.shape[0] // mesh.devices.size
        local_rows = np.concatenate([x[i * rows_per_dev:(i + 1) * rows_per_dev] for i in order], axis=0)
        return jax.make_array_from_process_local_data(sharding, local_rows, x.shape)

    keys, hypers = tree
    is_typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
    impl = jax.random.key_impl(keys) if is_typed else None
    keys_g = place(keys)
    if is_typed:
        keys_g = jax.jit(lambda k: jax.random.wrap_key_data(k, impl=impl), out_shardings=sharding)(keys_g)
    return keys_g, jax.tree.map(place, hypers)


def _gather(tree):
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def sweep(
    fn: Callable,
    grid,
    *,
    key: jax.Array,
    n_seeds: int = 1,
    product: bool = True,
    batch_size: int | None = None,
    devices=None,
) -> SweepResult:
    """Run ``fn(key, hyper)`` for every configuration of ``grid`` and every seed.

    Args:
      fn: a pure function of a PRNG key and a dict of hyperparameters (numeric ones as scalars
        or arrays, static ones as Python values), returning a pytree of arrays. It is vmapped,
        so it must be traceable.
      grid: dict of lists (see :func:`make_grid`) or a :class:`Grid`.
      product: expand the grid's lists to their product (default) or zip them.
      key: PRNG key; seed ``i`` uses ``jax.random.split(key, n_seeds)[i]`` in every configuration.
      n_seeds: seeds per configuration (>= 1).
      batch_size: if given, run at most this many combinations at once (``lax.map`` over slices
        of the vmapped axis) to bound memory. Runs are then vmapped as one flat list, so work that
        depends on the key alone is no longer shared between configurations (nor with ``devices``).
      devices: ``None`` (default device), ``"all"``, a list of devices or a 1-D ``Mesh`` whose
        single axis shards the flattened sweep axis.

    Returns:
      :class:`SweepResult` with outputs of leading size ``n_configs * n_seeds``.
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a callable fn(key, hyper), got {type(fn).__name__}")
    g = make_grid(grid, product=product)
    n_seeds = check_int("n_seeds", n_seeds, min_value=1)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, min_value=1)
    check_key("key", key)
    mesh = None
    if devices is not None:
        mesh = devices if isinstance(devices, Mesh) else sweep_mesh(devices)
        if len(mesh.axis_names) != 1:
            raise ValueError(f"devices: expected a 1-D mesh, got axes {mesh.axis_names}")
        if mesh.axis_names[0] != SWEEP_AXIS:
            mesh = Mesh(mesh.devices, (SWEEP_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))

    seed_keys = jax.random.split(key, n_seeds)
    # Group configurations by their static values: one compilation per group.
    groups: dict[tuple, list[int]] = {}
    for i in range(g.n_configs):
        groups.setdefault(tuple(g.static[name][i] for name in g.static), []).append(i)

    pieces, index = [], []
    for static_values, rows in groups.items():
        rows_a = np.asarray(rows)
        numeric = {k: v[rows_a] for k, v in g.numeric.items()}
        pieces.append(_run_group(fn, tuple(zip(g.static, static_values)), seed_keys, numeric, len(rows), batch_size=batch_size, mesh=mesh))
        index.append(np.concatenate([np.arange(r * n_seeds, (r + 1) * n_seeds) for r in rows]))
    order = np.argsort(np.concatenate(index))
    outputs = jax.tree.map(lambda *xs: np.concatenate(xs, axis=0)[order], *pieces)
    return SweepResult(outputs=outputs, grid=g, n_seeds=n_seeds)


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None, **kwargs) -> None:
    """Start JAX's multi-process runtime (call once per process, before any computation).

    On a TPU pod slice or a cluster with a supported launcher (SLURM, Kubernetes, ...), call it
    with no arguments; elsewhere pass the coordinator ``host:port``, the number of processes and
    this process's id (on CPU, JAX's default gloo collectives work over loopback).
    """
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id, **kwargs)
