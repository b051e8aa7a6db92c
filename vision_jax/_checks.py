"""Argument checks run before tracing.

Every public entry point validates its inputs with these helpers so that a bad call fails
with a message naming the argument, what was expected and what was given, instead of a
shape error deep inside XLA. Checks on *values* (finite, positive) are skipped for traced
arrays, where the values are not known; checks on shapes and dtypes always run.
"""
from __future__ import annotations

import numbers
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "is_traced",
    "check_array",
    "check_positive",
    "check_nonnegative",
    "check_int",
    "check_choice",
    "check_probability",
    "check_key",
    "check_keys",
    "check_callable",
    "check_real",
]


def is_traced(x) -> bool:
    """True when ``x`` is a JAX tracer (inside jit/vmap/grad), so its values are unknown."""
    return isinstance(x, jax.core.Tracer)


def _describe(x) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None:
        return f"an array of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(x).__name__} {x!r}"


def check_array(
    name: str,
    x,
    *,
    ndim: int | Iterable[int] | None = None,
    min_ndim: int | None = None,
    shape: tuple | None = None,
    dtype_kind: str | None = "f",
    finite: bool = True,
):
    """Validate an array argument and return it as a JAX array (or tracer).

    Args:
      name: the argument's name, used in error messages.
      x: the value (array-like).
      ndim: allowed number(s) of dimensions.
      min_ndim: smallest allowed number of dimensions.
      shape: expected shape; ``None`` entries match any size.
      dtype_kind: numpy dtype kinds accepted, e.g. ``"f"`` (floating), ``"fiu"``; ``None`` accepts any.
      finite: require every value to be finite (skipped for traced values).
    """
    if isinstance(x, (list, tuple)) or np.isscalar(x):
        x = np.asarray(x)
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name}: expected an array, got {_describe(x)}")
    if dtype_kind is not None and np.dtype(x.dtype).kind not in dtype_kind:
        kinds = {"f": "floating", "i": "signed integer", "u": "unsigned integer", "b": "boolean", "c": "complex"}
        want = " or ".join(kinds.get(k, k) for k in dtype_kind)
        raise TypeError(f"{name}: expected a {want} dtype, got {_describe(x)}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name}: expected {want} dimensions, got {_describe(x)}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dimensions, got {_describe(x)}")
    if shape is not None:
        ok = len(shape) == x.ndim and all(s is None or s == t for s, t in zip(shape, x.shape))
        if not ok:
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name}: expected shape {want}, got {_describe(x)}")
    if finite and not is_traced(x) and np.dtype(x.dtype).kind in "fc":
        if not bool(np.all(np.isfinite(np.asarray(x)))):
            n_bad = int(np.size(x) - np.count_nonzero(np.isfinite(np.asarray(x))))
            raise ValueError(f"{name}: expected finite values, got {n_bad} NaN/inf entries in {_describe(x)}")
    return x if isinstance(x, jax.Array) or is_traced(x) else jnp.asarray(x)


def _scalar(name: str, value):
    if is_traced(value):
        return None
    if isinstance(value, (jax.Array, np.ndarray)):
        if value.size != 1:
            raise ValueError(f"{name}: expected a scalar, got {_describe(value)}")
        value = value.reshape(()).item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {_describe(value)}")
    if not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return value


def check_real(name: str, value):
    """Require a finite real scalar (skipped when traced). Returns the value unchanged."""
    _scalar(name, value)
    return value


def check_positive(name: str, value, *, unit: str = ""):
    """Require a finite scalar > 0 (skipped when traced). Returns the value unchanged."""
    v = _scalar(name, value)
    if v is not None and not v > 0:
        raise ValueError(f"{name}: expected a positive number{' in ' + unit if unit else ''}, got {v!r}")
    return value


def check_nonnegative(name: str, value, *, unit: str = ""):
    """Require a finite scalar >= 0 (skipped when traced). Returns the value unchanged."""
    v = _scalar(name, value)
    if v is not None and not v >= 0:
        raise ValueError(f"{name}: expected a non-negative number{' in ' + unit if unit else ''}, got {v!r}")
    return value


def check_probability(name: str, value):
    """Require a scalar in [0, 1] (skipped when traced)."""
    v = _scalar(name, value)
    if v is not None and not 0 <= v <= 1:
        raise ValueError(f"{name}: expected a number in [0, 1], got {v!r}")
    return value


def check_int(name: str, value, *, min_value: int | None = None, max_value: int | None = None) -> int:
    """Require a Python/numpy integer within bounds; returns it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {_describe(value)}")
    value = int(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{name}: expected an integer >= {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name}: expected an integer <= {max_value}, got {value}")
    return value


def check_choice(name: str, value, choices):
    """Require ``value`` to be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {sorted(map(str, choices))}, got {value!r}")
    return value


def _key_batch_ndim(key, allow_raw: bool):
    """The number of batch axes of a typed PRNG key array (or, with ``allow_raw``, of raw ``uint32``
    keys ``(..., 2)``); None when ``key`` is not keys."""
    if not (isinstance(key, jax.Array) or is_traced(key)):
        return None
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key.ndim
    if allow_raw and key.dtype == jnp.uint32 and key.ndim >= 1 and key.shape[-1] == 2:
        return key.ndim - 1
    return None


def check_key(name: str, key, *, allow_raw: bool = True):
    """Require a single PRNG key: a typed key from ``jax.random.key`` or, with ``allow_raw``, a raw
    ``uint32`` key of shape ``(2,)`` from ``jax.random.PRNGKey``. Returns it unchanged."""
    if _key_batch_ndim(key, allow_raw) != 0:
        raise TypeError(f"{name}: expected a single PRNG key from jax.random.key(seed), got {_describe(key)}")
    return key


def check_keys(name: str, keys, *, allow_raw: bool = True):
    """Require one PRNG key or a ``(S,)`` batch of them (``jax.random.split``); returns the keys with
    exactly one batch axis (raw keys ``(S, 2)``)."""
    n = _key_batch_ndim(keys, allow_raw)
    if n not in (0, 1):
        raise TypeError(f"{name}: expected a PRNG key from jax.random.key(seed) or a (S,) array of them "
                        f"(jax.random.split), got {_describe(keys)}")
    return keys[None] if n == 0 else keys


def check_callable(name: str, fn):
    """Require a callable (a model or metric function). Returns it unchanged."""
    if not callable(fn):
        raise TypeError(f"{name}: expected a function, got {_describe(fn)}")
    return fn
