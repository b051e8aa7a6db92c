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


def _code_cells(notebook) -> list[str]:
    return [c.source.strip() for c in notebook.cells if c.cell_type == "code" and c.source.strip()]


def _code_cells_of_script(script: Path) -> list[str]:
    """Code cells of a jupytext percent script, read by jupytext when it is installed.

    Without jupytext (it is in the ``notebooks`` extra) a plain parser of the percent format
    stands in, so the check still runs.
    """
    try:
        import jupytext
    except ImportError:
        return _parse_percent_script(script)
    return _code_cells(jupytext.read(script))


def _code_cells_of_ipynb(pair: Path) -> list[str]:
    try:
        import jupytext
    except ImportError:
        nb = json.loads(pair.read_text())
        return ["".join(c["source"]).strip() for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    return _code_cells(jupytext.read(pair))


def _parse_percent_script(script: Path) -> list[str]:
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
def test_plain_parser_agrees_with_jupytext(script):
    jupytext = pytest.importorskip("jupytext")
    assert _parse_percent_script(script) == _code_cells(jupytext.read(script))


def test_first_cell_installs_only_on_colab():
    for script in NOTEBOOKS:
        first = _parse_percent_script(script)[0]
        assert "COLAB_RELEASE_TAG" in first and "pip" in first and "jax.devices()" in first, script.name


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_ipynb_pair_is_in_sync(script):
    pair = script.with_suffix(".ipynb")
    assert pair.exists(), f"{pair.name} missing: run jupytext --to ipynb {script}"
    assert _code_cells_of_ipynb(pair) == _code_cells_of_script(script), f"{pair.name} is out of sync: run jupytext --sync {script}"
