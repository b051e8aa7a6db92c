"""The ``vision-jax`` command: one subcommand per experiment module in ``experiments/``.

Experiments register themselves by existing: every module of ``vision_jax.experiments``
(the top-level ``experiments/`` folder) that defines ``DESCRIPTION``, ``add_arguments`` and
``run`` becomes a subcommand.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from vision_jax import runner


def discover() -> dict:
    """Map experiment name -> module, for every experiment module found."""
    import vision_jax.experiments as pkg

    found = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        if all(hasattr(module, a) for a in ("DESCRIPTION", "add_arguments", "run")):
            found[info.name.replace("_", "-")] = module
    return found


def build_parser(experiments: dict) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vision-jax",
        description="Computational models of early vision in JAX. Each subcommand runs one experiment "
        "and writes its figures and metrics.json to --out.",
    )
    sub = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    sub.required = True
    for name, module in experiments.items():
        p = sub.add_parser(name, help=module.DESCRIPTION, description=module.DESCRIPTION)
        runner.add_common_arguments(p, name)
        module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    experiments = discover()
    args = build_parser(experiments).parse_args(argv)
    runner.run_experiment(experiments[args.experiment], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
