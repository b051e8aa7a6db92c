"""Ground rules for every test.

- Matplotlib draws with the Agg backend (no display).
- JAX runs with strict dtype promotion and no implicit rank promotion, so silent float64/float32
  mixing and accidental broadcasting fail loudly.
- ``--x64`` (or ``VISION_JAX_X64=1``) runs the whole suite with 64-bit floats.
- The ``key`` fixture gives each test its own fixed PRNG key, derived from the test's name, so a
  test's random inputs are the same from run to run and independent of test order.
"""
from __future__ import annotations

import os
import zlib

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--x64", action="store_true", default=False, help="run with jax_enable_x64")


def pytest_configure(config):
    import matplotlib

    matplotlib.use("Agg")
    x64 = config.getoption("--x64") or os.environ.get("VISION_JAX_X64") == "1"
    jax.config.update("jax_enable_x64", bool(x64))
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key(request):
    """A fixed typed PRNG key per test (seeded from the test's node id)."""
    return jax.random.key(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def x64():
    """Enable 64-bit floats for one test (restored afterwards), e.g. for ``check_grads``."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
