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
    if name in ("homeostasis", "invariance"):  # long runs leave resumable checkpoints
        assert (tmp_path / "checkpoints" / "fingerprint.json").exists()


def test_homeostasis_sweep_writes_one_row_per_run(tmp_path):
    args = ["homeostasis", "--sweep", "--out", str(tmp_path), "--n-iter", "32", "--n-seeds", "2", "--methods", "None", "HEH",
            "--sweep-values", "0.01", "0.05"]
    assert cli.main(args) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    rows = (tmp_path / "sweep.csv").read_text().splitlines()
    assert rows[0] == "method,eta_homeo,seed,final_F" and len(rows) == 1 + 2 * 2 * 2
    finals = [float(r.split(",")[-1]) for r in rows[1:]]
    assert all(0 < f < 2 for f in finals) and len(set(finals)) == len(finals)  # every run is its own
    assert set(metrics["best_eta_homeo"]) == {"None", "HEH"}
    assert (tmp_path / "sweep_eta_homeo.png").exists()
