"""The primary rows equal R's on data no developer looked at: a freshly simulated folder.

A new seed each run (printed on failure) goes through the whole data pipeline;
the analysis frames of every estimable region are handed to
``tests/reference/ancova_cr1.R`` and R's numbers must equal ``estimates.csv``
to 1e-6.
"""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.estimation import ancova_frame
from evalkit.pipeline import prepare
from evalkit.simulate import simulate

R_SCRIPT = Path(__file__).parent / "reference" / "ancova_cr1.R"
TOL = 1e-6

pytestmark = [pytest.mark.needs_r, pytest.mark.slow]


def _have_r_sandwich() -> bool:
    if shutil.which("Rscript") is None:
        return False
    check = subprocess.run(["Rscript", "-e", "library(sandwich)"], capture_output=True)
    return check.returncode == 0


@pytest.mark.skipif(not _have_r_sandwich(), reason="Rscript with sandwich is not installed (make test installs it as root)")
def test_primary_rows_equal_r_on_a_fresh_folder(tmp_path):
    seed = int(os.environ.get("EVALKIT_R_SEED", np.random.SeedSequence().entropy % 1_000_000))
    simulate(tmp_path / "data", seed=seed, scale=0.6)
    prepared = prepare(tmp_path / "data")
    primary = prepared.estimates.query("outcome == 'elom_total' and estimator == 'ancova' and inference == 'CR1'")
    ok = primary.loc[primary["status"] == "ok"]
    assert len(ok) >= 5, f"seed {seed}: too few estimable regions to compare"
    frames = [ancova_frame(prepared.child_outcomes, region) for region in ok["region"]]
    data = pd.concat(frames, ignore_index=True)[
        ["region", "centre_id", "y", "partnered", "baseline", "age_months", "sex", "setting"]]
    data_path, out_path = tmp_path / "frame.csv", tmp_path / "r.csv"
    data.to_csv(data_path, index=False, float_format="%.17g")
    subprocess.run(["Rscript", str(R_SCRIPT), str(data_path), str(out_path)], check=True, capture_output=True)
    r = pd.read_csv(out_path).set_index("region")
    for row in ok.itertuples():
        expected = r.loc[row.region]
        for column in ("estimate", "std_error", "ci_low", "ci_high", "p_value"):
            assert getattr(row, column) == pytest.approx(expected[column], abs=TOL), (seed, row.region, column)
        assert row.df == expected["df"] and row.n_children == expected["n_children"], (seed, row.region)
