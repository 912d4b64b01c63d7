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
    primary = prepared.estimates.query("is_primary and region != 'National'")
    ok = primary.loc[primary["status"] == "ok"]
    assert len(ok) >= 5, f"seed {seed}: too few estimable regions to compare"
    frames = [ancova_frame(prepared.child_outcomes, region) for region in ok["region"]]
    data = pd.concat(frames, ignore_index=True)[
        ["region", "centre_id", "y", "partnered", "baseline", "age_months", "sex", "setting"]]
    data_path, out_path = tmp_path / "frame.csv", tmp_path / "r.csv"
    data.to_csv(data_path, index=False, float_format="%.17g")
    done = subprocess.run(["Rscript", str(R_SCRIPT), str(data_path), str(out_path)], capture_output=True, text=True)
    assert done.returncode == 0, f"seed {seed}: R failed: {done.stderr[-2000:]}"
    r = pd.read_csv(out_path).set_index("region")
    for row in ok.itertuples():
        expected = r.loc[row.region]
        for column in ("estimate", "std_error", "ci_low", "ci_high", "p_value"):
            assert getattr(row, column) == pytest.approx(expected[column], abs=TOL), (seed, row.region, column)
        assert row.df == expected["df"] and row.n_children == expected["n_children"], (seed, row.region)


# ----------------------------------------------------------------------------- CR2 (issue 5)

CR2_SCRIPT = Path(__file__).parent / "reference" / "cr2_clubsandwich.R"
CR2_COLUMNS = ["model", "region", "centre_id", "child_id", "y", "partnered", "baseline", "age_months", "sex", "setting",
               "registration_status", "fee_band", "endline", "partnered_x_endline", "weight", "stratum"]
#: estimates.csv estimator (and level) -> the model name of cr2_clubsandwich.R
MODELS = {("ancova", "child"): "ancova", ("did", "child"): "did",
          ("regression_adjustment", "child"): "regression_adjustment", ("ipw", "child"): "ipw",
          ("regression_adjustment", "centre"): "centre_regression_adjustment",
          ("aipw", "child"): "aipw", ("aipw", "centre"): "centre_aipw"}


def _model_of(estimator: str, outcome: str, region: str) -> str | None:
    if region == "National":
        return "national_ancova" if estimator == "ancova" else None
    return MODELS.get((estimator, "centre" if outcome == "customer_service_score_pct" else "child"))


def _have_clubsandwich() -> bool:
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", "library(clubSandwich)"], capture_output=True).returncode == 0


def _fresh_tables(folder: Path):
    """The data stages of a run, up to child_outcomes and centre_outcomes."""
    from evalkit.cleaning import clean_all
    from evalkit.indicators import build_child_outcomes, centre_outcomes
    from evalkit.readers import read_data_folder
    from evalkit.treatment import derive_treatment

    tables = clean_all(read_data_folder(folder).tables).tables
    treatment = derive_treatment(tables["centres"], tables["partnerships"], tables["child_assessments"])
    child = build_child_outcomes(tables["child_assessments"], tables["centres"], treatment)
    centres = centre_outcomes(tables["centres"], tables["parent_survey"], treatment, child)
    return child, centres


def _model_frames(child: pd.DataFrame, centres: pd.DataFrame, region: str) -> pd.DataFrame:
    """The frames estimate_region fits for elom_total and the centre outcome, in the R script's layout."""
    from evalkit.estimation import (
        _aipw_frame,
        _centre_scores,
        _ChildFrames,
        _did_sample,
        _ipw_sample,
        _model_frame_as_fitted,
        _scored_centres,
        centre_outcome_frame,
    )

    data = child.loc[child["region"] == region]
    cen = centres.loc[centres["region"] == region]
    frames = _ChildFrames(data, ["elom_total"], baseline_source=child, centre_outcomes=cen)
    endline = frames.endline_only("elom_total")
    covariates = frames.covariates
    scored = _scored_centres(data, cen, None)
    centre = centre_outcome_frame(cen, None, "customer_service_score_pct")
    aipw = _ipw_sample(_aipw_frame(frames.ancova("elom_total"), endline, covariates)[0], scored)
    parts = {"ancova": frames.ancova("elom_total"), "did": _did_sample(frames.did("elom_total")),
             "regression_adjustment": _model_frame_as_fitted(endline, covariates),
             "ipw": _ipw_sample(endline, scored),
             "centre_regression_adjustment": _model_frame_as_fitted(centre, covariates),
             "aipw": _model_frame_as_fitted(aipw, covariates, "aipw"),
             "centre_aipw": _model_frame_as_fitted(_ipw_sample(centre, _centre_scores(centre, covariates)),
                                                   covariates, "aipw")}
    return pd.concat([f.rename(columns={"weight_att": "weight"}).assign(model=m, region=region)
                      for m, f in parts.items()], ignore_index=True)


@pytest.mark.skipif(not _have_clubsandwich(), reason="Rscript with clubSandwich is not installed")
def test_cr1_and_cr2_rows_of_every_estimator_equal_r_on_a_fresh_folder(tmp_path):
    from evalkit.estimation import _ChildFrames, estimate_national, estimate_region

    seed = int(os.environ.get("EVALKIT_R_SEED", np.random.SeedSequence().entropy % 1_000_000))
    simulate(tmp_path / "data", seed=seed, scale=0.6)
    child, centres = _fresh_tables(tmp_path / "data")
    regions = sorted(child["region"].dropna().unique())
    rows = pd.concat([estimate_region(child, centres, r, outcomes=["elom_total", "customer_service_score_pct"],
                                      bootstrap_reps=99) for r in regions]
                     + [estimate_national(child, centres, outcomes=["elom_total"], bootstrap_reps=99)])
    national = _ChildFrames(child.dropna(subset=["region"]), ["elom_total"]).ancova("elom_total")
    frames = pd.concat([_model_frames(child, centres, r) for r in regions]
                       + [national.assign(model="national_ancova", stratum=national["region"], region="National")],
                       ignore_index=True).reindex(columns=CR2_COLUMNS)
    data_path, out_path = tmp_path / "frames.csv", tmp_path / "r.csv"
    ok = rows[(rows["status"] == "ok") & (rows["subgroup"] == "") & rows["inference"].isin(["CR1", "HC1", "CR2"])]
    ok = ok.assign(model=[_model_of(e, o, rg) for e, o, rg in zip(ok["estimator"], ok["outcome"], ok["region"])])
    ok = ok.dropna(subset=["model"])
    # R is asked only about the models evalkit could fit (a saturated model fails differently in lm)
    fitted = set(zip(ok["model"], ok["region"]))
    frames = frames[[(m, rg) in fitted for m, rg in zip(frames["model"], frames["region"])]]
    frames.to_csv(data_path, index=False, float_format="%.17g")
    done = subprocess.run(["Rscript", str(CR2_SCRIPT), str(data_path), str(out_path)], capture_output=True, text=True)
    assert done.returncode == 0, f"seed {seed} (rerun with EVALKIT_R_SEED={seed}): R failed:\n{done.stderr[-2000:]}"
    r = pd.read_csv(out_path).set_index(["model", "region", "inference"])
    compared = 0
    for row in ok.itertuples():
        expected = r.loc[(row.model, row.region, row.inference)]
        # a centre fitted exactly by its covariates makes clubSandwich's own df depend on rounding
        # (docs/methods.md, section 8): there only the estimate and SE are compared
        exact = "cr2_singular_centre" in str(row.warning) and row.inference == "CR2"
        columns = ("estimate", "std_error") if exact else ("estimate", "std_error", "df", "ci_low", "ci_high", "p_value")
        for column in columns:
            assert getattr(row, column) == pytest.approx(expected[column], abs=TOL, rel=1e-9), \
                (seed, row.model, row.region, row.inference, column)
        compared += 1
    assert compared >= 80, f"seed {seed}: only {compared} rows compared"
    assert {"CR1", "CR2", "HC1"} <= set(r.index.get_level_values("inference"))
