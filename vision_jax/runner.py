"""Shared plumbing for experiment scripts: output folder, metrics, figures, progress.

An experiment module in ``experiments/`` defines::

    DESCRIPTION = "one line shown by `vision-jax --help`"
    def add_arguments(parser): ...          # its own options (``--out``, ``--full``, ``--seed`` are added for it)
    def run(args) -> dict: ...              # does the work, returns the metrics written to metrics.json

and ends with ``if __name__ == "__main__": raise SystemExit(runner.main_for(__name__))`` so that
``python experiments/NAME.py`` and ``vision-jax NAME`` behave the same.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["add_common_arguments", "prepare_out", "save_metrics", "save_figure", "progress", "main_for", "run_experiment",
           "sweep_devices"]


def add_common_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """Options every experiment has: ``--out``, ``--quick``/``--full`` and ``--seed``."""
    parser.add_argument("--out", type=Path, default=Path("out") / name, help="folder for figures and metrics.json (default: out/%(prog)s)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="full", action="store_false", help="small sizes, about a minute on a laptop CPU (default)")
    size.add_argument("--full", dest="full", action="store_true", help="the reference sizes (long)")
    parser.set_defaults(full=False)
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    scale = parser.add_argument_group("scaling out (experiments that run sweeps)")
    scale.add_argument("--devices", choices=("default", "all"), default="default",
                       help="run sweeps on the default device, or shard them over all devices (of all processes)")
    scale.add_argument("--distributed", action="store_true",
                       help="start JAX's multi-process runtime first (one process per host; on a TPU slice no more flags are needed)")
    scale.add_argument("--coordinator", default=None, help="with --distributed off TPU: the coordinator's host:port")
    scale.add_argument("--num-processes", type=int, default=None, help="with --distributed off TPU: number of processes")
    scale.add_argument("--process-id", type=int, default=None, help="with --distributed off TPU: this process's id")


def prepare_out(path: Path | str) -> Path:
    """Create the output folder (and parents) and return it as a Path."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _jsonable(x: Any):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return _jsonable(np.asarray(x).tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, Path):
        return str(x)
    return x


def save_metrics(out: Path | str, metrics: dict, name: str = "metrics.json") -> Path:
    """Write ``metrics`` (numbers, arrays, nested dicts) as indented JSON; returns the file path."""
    path = prepare_out(out) / name
    if _is_primary_process():  # in a multi-process run, process 0 writes
        path.write_text(json.dumps(_jsonable(metrics), indent=2, sort_keys=True) + "\n")
    return path


def save_figure(fig, out: Path | str, name: str, *, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG into ``out`` and close it; returns the file path."""
    import matplotlib.pyplot as plt

    path = prepare_out(out) / (name if name.endswith(".png") else name + ".png")
    if _is_primary_process():
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", disable: bool | None = None):
    """A tqdm progress bar (quiet when stderr is not a terminal unless ``disable=False``)."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = not sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, disable=disable, leave=False)


def sweep_devices(args: argparse.Namespace):
    """The ``devices`` argument of :func:`vision_jax.sweep.sweep` chosen by ``--devices``."""
    return "all" if getattr(args, "devices", "default") == "all" else None


def _is_primary_process() -> bool:
    import jax

    return jax.process_index() == 0


def run_experiment(module, args: argparse.Namespace) -> dict:
    """Run ``module.run(args)``, time it, write metrics.json and print a short summary.

    With ``--distributed`` the multi-process runtime starts first; every process runs the
    experiment (sweeps gather their results on every process) and process 0 writes the outputs.
    """
    if getattr(args, "distributed", False):
        from vision_jax.sweep import initialize_distributed

        initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    out = prepare_out(args.out)
    start = time.perf_counter()
    metrics = module.run(args) or {}
    metrics = dict(metrics)
    metrics.setdefault("wall_time_s", round(time.perf_counter() - start, 3))
    path = save_metrics(out, metrics)
    print(f"wrote {path} and figures in {out}/ ({metrics['wall_time_s']:.1f} s)")
    return metrics


def main_for(module_name: str, argv: list[str] | None = None) -> int:
    """Command-line entry for ``python experiments/NAME.py``."""
    module = sys.modules[module_name]
    name = Path(getattr(module, "__file__", module_name)).stem
    parser = argparse.ArgumentParser(prog=name, description=getattr(module, "DESCRIPTION", ""))
    add_common_arguments(parser, name)
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    run_experiment(module, args)
    return 0
