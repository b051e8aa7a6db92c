"""Every notebook script runs in smoke mode, and its .ipynb pair holds the same code."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.py"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebook scripts found in notebooks/"


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_mode(script, tmp_path):
    env = {**os.environ, "VISION_JAX_SMOKE": "1", "MPLBACKEND": "Agg"}
    env.pop("COLAB_RELEASE_TAG", None)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


def _code_cells_of_script(script: Path) -> list[str]:
    """Code cells of a jupytext percent script (a plain parser, so the test needs no jupytext)."""
    cells, current, kind = [], [], None
    for line in script.read_text().splitlines():
        if line.startswith("# %%"):
            if kind == "code":
                cells.append("\n".join(current).strip())
            kind = "markdown" if "[markdown]" in line else "code"
            current = []
        elif kind is not None:
            current.append(line)
    if kind == "code":
        cells.append("\n".join(current).strip())
    return [c for c in cells if c]


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_ipynb_pair_is_in_sync(script):
    pair = script.with_suffix(".ipynb")
    assert pair.exists(), f"{pair.name} missing: run jupytext --to ipynb {script}"
    nb = json.loads(pair.read_text())
    cells = ["".join(c["source"]).strip() for c in nb["cells"] if c["cell_type"] == "code"]
    assert cells == _code_cells_of_script(script), f"{pair.name} is out of sync: run jupytext --sync {script}"
