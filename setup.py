"""Package layout: the library is ``vision_jax/``; the experiment scripts in the top-level
``experiments/`` folder install as ``vision_jax.experiments`` so that the ``vision-jax`` command
can run them (everything else is declared in pyproject.toml)."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["vision_jax", "vision_jax.*"]) + ["vision_jax.experiments"],
    package_dir={"vision_jax.experiments": "experiments"},
)
