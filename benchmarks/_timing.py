"""Timing helpers shared by the benchmark scripts."""
from __future__ import annotations

import os
import time


def pin_threads(n: int = 1) -> None:
    """Pin BLAS/OpenMP thread pools of numpy-based references (call before importing numpy)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))


def best_time(fn, *, repeat: int = 5, number: int = 1) -> float:
    """Best wall time in seconds of ``number`` calls of ``fn`` (after one warm-up call).

    ``fn`` must block until its result is ready (call ``.block_until_ready()`` on JAX outputs).
    """
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def print_table(header: list[str], rows: list[list]) -> None:
    """Print a Markdown table."""
    def fmt(x):
        return f"{x:.3g}" if isinstance(x, float) else str(x)

    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(fmt(x) for x in row) + " |")
