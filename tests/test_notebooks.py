"""The notebooks under nbval (lax mode, with sanitizers) on freshly prepared data.

nbval runs each notebook top to bottom with its default parameters. Those
parameters are paths relative to the project root, so the test points
``EVALKIT_HOME`` at a temporary root holding a prepared run.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.config import NOTEBOOKS
from evalkit.pipeline import run
from evalkit.simulate import simulate

pytestmark = pytest.mark.slow
SANITIZE = Path(__file__).parent / "nbval_sanitize.cfg"


def test_regional_notebook_under_nbval(tmp_path):
    simulate(tmp_path / "data" / "raw", seed=31, scale=0.5)
    run(tmp_path / "data" / "raw", tmp_path / "reports", tmp_path / "data" / "processed",
        regions=["Gauteng"], render=False, progress=lambda _: None)
    env = {**os.environ, "EVALKIT_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-sanitize-with", str(SANITIZE), str(NOTEBOOKS / "regional_evaluation.ipynb")],
        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
