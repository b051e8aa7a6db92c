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


def test_experiment_runs_on_two_processes(tmp_path):
    """``--distributed --devices all``: two processes (2 CPU devices each) share one sweep; process 0 writes."""
    import os
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "MPLBACKEND": "Agg"}
    procs = []
    for pid in range(2):
        cmd = [sys.executable, "-m", "vision_jax.cli", "invariance", "--out", str(tmp_path / f"p{pid}"), "--epochs", "1",
               "--frames", "300", "--n-seeds", "3", "--devices", "all", "--distributed", "--coordinator", f"127.0.0.1:{port}",
               "--num-processes", "2", "--process-id", str(pid)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    metrics = json.loads((tmp_path / "p0" / "metrics.json").read_text())
    assert metrics["wall_time_s"] > 0
    assert not (tmp_path / "p1" / "metrics.json").exists() and not list((tmp_path / "p1").glob("*.png"))
