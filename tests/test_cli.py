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



def test_distributed_flags_start_the_runtime_and_only_process_0_writes(tmp_path, monkeypatch):
    """``--distributed`` starts JAX's multi-process runtime before the experiment; other processes write nothing.

    (The multi-process sweep itself runs on two real processes in tests/test_sweep.py.)
    """
    import jax

    from vision_jax import runner
    from vision_jax import sweep as sweep_mod

    calls = []
    monkeypatch.setattr(sweep_mod, "initialize_distributed", lambda *a: calls.append(a))
    argv = ["demo", "--n-patches", "64", "--distributed", "--coordinator", "10.0.0.1:1234", "--num-processes", "2",
            "--process-id", "1", "--devices", "all"]
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    assert cli.main(argv + ["--out", str(tmp_path / "p1")]) == 0
    assert calls == [("10.0.0.1:1234", 2, 1)]
    assert not (tmp_path / "p1" / "metrics.json").exists() and not list((tmp_path / "p1").glob("*.png"))
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    assert cli.main(argv[:-4] + ["--process-id", "0", "--out", str(tmp_path / "p0")]) == 0
    assert (tmp_path / "p0" / "metrics.json").exists() and list((tmp_path / "p0").glob("*.png"))
    assert runner.sweep_devices(cli.build_parser(cli.discover()).parse_args(argv)) == "all"
