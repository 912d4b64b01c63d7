"""ANCOVA with CR1 standard errors: hand-computed cases and R's numbers."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from evalkit.estimation import (
    ESTIMATE_COLUMNS,
    ancova_from_frame,
    estimate_ancova,
    fit_ols_cluster,
)

REFERENCE = Path(__file__).parent / "reference"
#: R writes 15 significant digits; agreement is required to 1e-6 by the contract's tests.
TOL = 1e-6


def test_cr1_hand_computed_two_clusters_of_two():
    # y = a + b x; clusters {0,1}, {2,3}. OLS: x = [0,1,2,3], y = [1,2,2,4]
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([1.0, 2.0, 2.0, 4.0])
    X = np.column_stack([np.ones(4), x])
    fit = fit_ols_cluster(y, X, ["a", "b"], np.array(["g1", "g1", "g2", "g2"]))
    # Slope by hand: Sxy / Sxx = (sum (x-1.5)(y-2.25)) / 5 = 4.5 / 5 = 0.9; intercept 2.25 - 1.35 = 0.9
    assert fit.params == pytest.approx([0.9, 0.9])
    e = y - X @ np.array([0.9, 0.9])  # residuals [0.1, 0.2, -0.7, 0.4]
    assert e == pytest.approx([0.1, 0.2, -0.7, 0.4])
    bread = np.linalg.inv(X.T @ X)
    s1 = X[:2].T @ e[:2]
    s2 = X[2:].T @ e[2:]
    meat = np.outer(s1, s1) + np.outer(s2, s2)
    adjust = 2 / 1 * 3 / 2  # G/(G-1) * (N-1)/(N-K)
    assert fit.vcov == pytest.approx(adjust * bread @ meat @ bread)


def test_cr1_equals_statsmodels_cluster(rng):
    n, g = 300, 30
    clusters = rng.integers(0, g, n)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)])
    y = X @ [1.0, 0.5, -0.3] + rng.normal(size=g)[clusters] + rng.normal(size=n)
    ours = fit_ols_cluster(y, X, ["c", "x", "d"], clusters)
    theirs = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": clusters})
    np.testing.assert_allclose(ours.params, theirs.params, rtol=1e-10)
    np.testing.assert_allclose(ours.vcov, theirs.cov_params(), rtol=1e-8)


def test_collinear_column_is_dropped_like_r(rng):
    n = 60
    clusters = np.repeat(np.arange(12), 5)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x, 2 * x])
    fit = fit_ols_cluster(x + rng.normal(size=n), X, ["c", "x", "x2"], clusters)
    assert fit.names == ["c", "x"] and fit.rank == 2


@pytest.fixture(scope="module")
def reference_data():
    data = pd.read_csv(REFERENCE / "ancova_cr1_data.csv", dtype={"centre_id": str})
    expected = pd.read_csv(REFERENCE / "ancova_cr1_r_output.csv")
    return data, expected


def test_ancova_cr1_equals_r_sandwich(reference_data):
    data, expected = reference_data
    assert len(expected) == 4
    for row in expected.itertuples():
        frame = data.loc[data["region"] == row.region]
        result = ancova_from_frame(frame, region=row.region, baseline_sd=10.0)
        assert result.status == "ok"
        assert result.estimate == pytest.approx(row.estimate, abs=TOL)
        assert result.std_error == pytest.approx(row.std_error, abs=TOL)
        assert result.df == row.df
        assert result.ci_low == pytest.approx(row.ci_low, abs=TOL)
        assert result.ci_high == pytest.approx(row.ci_high, abs=TOL)
        assert result.p_value == pytest.approx(row.p_value, abs=TOL)
        assert result.n_children == row.n_children
        assert result.effect_size_sd == pytest.approx(row.estimate / 10.0, abs=TOL)


def _outcomes_from_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn an analysis frame back into child_outcomes rows (two waves per child)."""
    ids = [f"K{i:05d}" for i in range(len(frame))]
    common = dict(child_id=ids, centre_id=frame["centre_id"].to_numpy(), region=frame["region"].to_numpy(),
                  sex=frame["sex"].to_numpy(), setting=frame["setting"].to_numpy(),
                  is_partnered=frame["partnered"].astype(bool).to_numpy())
    baseline = pd.DataFrame({**common, "wave": "baseline", "age_months": frame["age_months"].to_numpy() - 8,
                             "elom_total": frame["baseline"].to_numpy()})
    endline = pd.DataFrame({**common, "wave": "endline", "age_months": frame["age_months"].to_numpy(),
                            "elom_total": frame["y"].to_numpy()})
    return pd.concat([baseline, endline], ignore_index=True)


def test_estimate_ancova_from_child_outcomes_equals_r(reference_data):
    data, expected = reference_data
    outcomes = _outcomes_from_frame(data)
    row = expected.loc[expected["region"] == "Gamma"].iloc[0]
    result = estimate_ancova(outcomes, "Gamma")
    assert result.estimate == pytest.approx(row.estimate, abs=TOL)
    assert result.std_error == pytest.approx(row.std_error, abs=TOL)
    gamma = outcomes[(outcomes["region"] == "Gamma") & (outcomes["wave"] == "baseline") & ~outcomes["is_partnered"]]
    assert result.effect_size_sd == pytest.approx(row.estimate / gamma["elom_total"].std(ddof=1))
    tidy = result.tidy()
    assert list(tidy.columns) == ESTIMATE_COLUMNS and tidy.loc[0, "inference"] == "CR1"


def test_not_estimable_with_too_few_partnered_centres(reference_data):
    data, _ = reference_data
    frame = data.loc[data["region"] == "Alpha"].copy()
    partnered_centres = frame.loc[frame["partnered"] == 1, "centre_id"].unique()
    frame.loc[frame["centre_id"].isin(partnered_centres[2:]), "partnered"] = 0
    result = ancova_from_frame(frame, region="Alpha")
    assert result.status == "not_estimable"
    assert np.isnan(result.estimate)
    assert "Only 2 partnered" in result.note
    assert "not estimable" in result.summary()
