"""Chunked runs: checkpoints, exact resume after a kill or Ctrl-C, argument checks."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from vision_jax.checkpoint import latest_step, run_chunks

sys.path.insert(0, str(Path(__file__).parent))
import _chunked_run  # noqa: E402

SCRIPT = Path(__file__).parent / "_chunked_run.py"


@pytest.fixture(scope="module")
def reference():
    (key, x), hist = run_chunks(_chunked_run.make_chunk(), _chunked_run.initial_carry(), n_chunks=8)
    return {"x": np.asarray(x), "key": np.asarray(jax.random.key_data(key)), "mean": hist["mean"], "last": hist["last"]}


def _same(result_path, reference):
    got = np.load(result_path)
    for name in ("x", "key", "mean", "last"):
        np.testing.assert_array_equal(got[name], reference[name], err_msg=name)


def test_outputs_are_stacked_per_chunk(reference):
    assert reference["mean"].shape == (8, 50)
    assert reference["last"].shape == (8,)


def test_resume_in_process_equals_uninterrupted(tmp_path, reference):
    chunk = _chunked_run.make_chunk()
    calls = []

    def failing(carry, index):
        if int(index) == 5:
            raise KeyboardInterrupt
        calls.append(int(index))
        return chunk(carry, index)

    with pytest.raises(KeyboardInterrupt):
        run_chunks(failing, _chunked_run.initial_carry(), n_chunks=8, directory=tmp_path, save_every=2, fingerprint={"n": 8})
    # Ctrl-C saved the 5 completed chunks although save_every=2 had saved only 4.
    assert latest_step(tmp_path) == 5
    (key, x), hist = run_chunks(chunk, _chunked_run.initial_carry(), n_chunks=8, directory=tmp_path, save_every=2, fingerprint={"n": 8})
    np.testing.assert_array_equal(np.asarray(x), reference["x"])
    np.testing.assert_array_equal(hist["mean"], reference["mean"])
    np.testing.assert_array_equal(np.asarray(jax.random.key_data(key)), reference["key"])


def test_kill_and_resume_in_subprocess_equals_uninterrupted(tmp_path, reference):
    ckpt, out = tmp_path / "ckpt", tmp_path / "out.npz"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(ckpt), str(out), "1.0"])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (latest_step(ckpt) or 0) < 2:
            time.sleep(0.2)
        assert (latest_step(ckpt) or 0) >= 2, "no checkpoint appeared"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    done = subprocess.run([sys.executable, str(SCRIPT), str(ckpt), str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    _same(out, reference)


def test_other_arguments_refuse_to_resume(tmp_path):
    run_chunks(_chunked_run.make_chunk(), _chunked_run.initial_carry(), n_chunks=1, directory=tmp_path, fingerprint={"n": 1})
    with pytest.raises(ValueError, match="directory: .* other arguments"):
        run_chunks(_chunked_run.make_chunk(), _chunked_run.initial_carry(), n_chunks=2, directory=tmp_path, fingerprint={"n": 2})


@pytest.mark.parametrize("kwargs, match", [({"n_chunks": 0}, "n_chunks"), ({"n_chunks": 2, "save_every": 0}, "save_every")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_chunks(_chunked_run.make_chunk(), _chunked_run.initial_carry(), **kwargs)


def test_chunk_fn_must_be_a_function():
    with pytest.raises(TypeError, match="chunk_fn: expected a function"):
        run_chunks(None, _chunked_run.initial_carry(), n_chunks=2)
