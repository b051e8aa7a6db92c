"""Sparse coding: matching pursuit, homeostasis, Hebbian dictionary learning.

- :func:`matching_pursuit`: jitted, batched (homeostatic) matching pursuit.
- :func:`homeostasis` and :data:`METHODS` (None, OLS, HEH, HAP, EMP): pure ``(init, update)`` rules.
- :func:`learn_dictionary`, :func:`learn_dictionaries`: Hebbian learning in compiled chunks,
  one run or methods x seeds vmapped; :func:`learn_chunk` is the pure unit underneath.
"""
from vision_jax.sparse._homeostasis import METHODS, Homeostasis, HomeostasisState, homeostasis, method_index, p_cum_error
from vision_jax.sparse._learn import (
    LearnConfig,
    LearnResult,
    LearnState,
    Record,
    init_dictionary,
    init_learning,
    learn_chunk,
    learn_config,
    learn_dictionaries,
    learn_dictionary,
    usage_entropy,
)
from vision_jax.sparse._mp import heh_quantile, matching_pursuit

# invariance learning:
from vision_jax.sparse import invariance  # noqa: E402

__all__ = [
    "METHODS",
    "Homeostasis",
    "HomeostasisState",
    "homeostasis",
    "method_index",
    "p_cum_error",
    "matching_pursuit",
    "heh_quantile",
    "LearnConfig",
    "LearnState",
    "LearnResult",
    "Record",
    "init_dictionary",
    "init_learning",
    "learn_chunk",
    "learn_config",
    "learn_dictionary",
    "learn_dictionaries",
    "usage_entropy",
    "invariance",
]
