"""Every experiment runs end to end from the command line with tiny settings and writes its outputs."""
import json

import pytest

from vision_jax import cli

TINY = {
    "demo": ["--n-patches", "64"],
    "homeostasis": ["--n-iter", "32", "--n-seeds", "1", "--methods", "None", "HEH"],
    "invariance": ["--epochs", "1", "--frames", "600", "--n-seeds", "2"],
    "lgn-metamers": ["--iters", "20", "--eigen-size", "32", "--eigen-steps", "20"],
    "retina": ["--size", "12", "--fit-steps", "5"],
    "feature-feedback": ["--steps", "10", "--feedback-size", "32", "--frames", "8"],
}


def test_every_experiment_has_tiny_settings():
    assert set(cli.discover()) <= set(TINY), "add tiny settings for the new experiment to TINY"


@pytest.mark.parametrize("name", sorted(TINY))
def test_experiment_runs(name, tmp_path):
    assert cli.main([name, "--out", str(tmp_path), *TINY[name]]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["wall_time_s"] > 0
    assert list(tmp_path.glob("*.png")), "no figure written"
