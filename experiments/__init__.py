"""Experiment scripts. Each module here is a ``vision-jax`` subcommand and a runnable script."""
