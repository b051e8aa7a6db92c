"""Compilation settings for the jitted entry points.

On CPU, XLA's code generator prefers 256-bit vectors by default. Some programs run faster with
512-bit vectors where the CPU has them (measured on a noisy 2-core AVX-512 CPU, one process,
alternating: the HEH pursuit 1.04-1.2x, an HEH learning iteration 1.2x, a retina forward run
about 1.1x; no gain for the plain pursuit and the HAP learning iteration, which compile without
it); on a CPU without them the preference is ignored. JAX accepts such options only for a top-level
``jax.jit``, so a call from inside a trace (a user's ``jit``, ``grad`` or ``vmap``) compiles
without them, as part of the enclosing program.

A scan whose carried maps are each read by several updates (the retina's stages, which read their
upstream stage's previous output) gets a copy of each map per step from XLA's default copy
insertion; :data:`REGION_ANALYSIS` lets it see that most are not needed (a retina forward run
1.04-1.18x, the same values bit for bit).
"""
from __future__ import annotations

import functools

import jax

CPU_OPTIONS = {"xla_cpu_prefer_vector_width": 512}
REGION_ANALYSIS = {"xla_cpu_copy_insertion_use_region_analysis": True}


def _in_trace(args, kwargs) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((args, kwargs)))


def jit_with_cpu_options(fn=None, *, extra_options=None, **jit_kwargs):
    """``jax.jit(fn, **jit_kwargs)`` that compiles with :data:`CPU_OPTIONS` (and ``extra_options``)
    when called at top level on CPU.

    Usable as a decorator (``@jit_with_cpu_options(static_argnames=...)``) or a function.
    """
    if fn is None:
        return functools.partial(jit_with_cpu_options, extra_options=extra_options, **jit_kwargs)
    plain = jax.jit(fn, **jit_kwargs)
    tuned = jax.jit(fn, compiler_options={**CPU_OPTIONS, **(extra_options or {})}, **jit_kwargs)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if jax.default_backend() != "cpu" or _in_trace(args, kwargs):
            return plain(*args, **kwargs)
        try:
            return tuned(*args, **kwargs)
        except ValueError as err:  # inside a trace although no argument is a tracer (closed-over values)
            if "compiler_options" not in str(err):
                raise
            return plain(*args, **kwargs)

    return call
