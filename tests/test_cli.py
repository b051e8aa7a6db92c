"""The command line: experiments register themselves and run through the shared runner."""
import json
import subprocess
import sys

import pytest

from vision_jax import cli


def test_every_experiment_is_listed_in_help(capsys):
    experiments = cli.discover()
    assert experiments, "no experiment module found in experiments/"
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for name in experiments:
        assert name in text


def test_unknown_experiment_is_an_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["no-such-experiment"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "vision_jax.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "EXPERIMENT" in out.stdout


def test_save_metrics_handles_arrays_and_nan(tmp_path):
    import numpy as np

    from vision_jax import runner

    path = runner.save_metrics(tmp_path, {"a": np.arange(3), "b": float("nan"), "c": {"d": np.float32(1.5)}})
    data = json.loads(path.read_text())
    assert data == {"a": [0, 1, 2], "b": "nan", "c": {"d": 1.5}}
