"""ANCOVA with CR1 standard errors: hand-computed cases and R's numbers."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from evalkit.estimation import (
    ESTIMATE_COLUMNS,
    ancova_from_frame,
    design_matrix,
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


# ----------------------------------------------------------------------------- the other estimators

from scipy.special import expit  # noqa: E402

from evalkit.estimation import (  # noqa: E402
    CONTRACT_COLUMNS,
    EffectResult,
    EffectResults,
    _finish,
    aipw_from_frame,
    estimate_aipw,
    estimate_did,
    estimate_heterogeneity,
    estimate_ipw,
    estimate_national,
    estimate_region,
    estimate_regression_adjustment,
    ipw_from_frame,
)


def synthetic_outcomes(seed: int, n_centres: int = 300, effect: float = 2.6, rho: float = 1.0,
                       female_extra: float = 0.0, dose_per_month: float = 0.0, region: str = "Alpha",
                       with_baseline: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """child_outcomes and centre_outcomes with selection on centre characteristics and a known effect.

    Partnership follows a logit in registration, fee band and setting, which also raise scores,
    so a naive comparison is biased upwards. The effect on partnered children is ``effect``
    (+ ``female_extra`` for girls, + ``dose_per_month`` per month of partnership above the
    partnered mean). With ``rho = 1`` the endline is baseline + gain, so DiD is unbiased too.
    """
    rng = np.random.default_rng(seed)
    registration = rng.choice(["registered", "conditional", "unregistered"], n_centres)
    fee = rng.choice(["low", "high"], n_centres)
    setting = rng.choice(["urban", "rural"], n_centres)
    level = (np.select([registration == "registered", registration == "unregistered"], [1.5, -1.5], 0.0)
             + np.where(fee == "high", 2.0, -1.0) + np.where(setting == "urban", 1.0, -1.0))
    logit = -0.5 + 0.9 * (registration == "registered") + 0.7 * (fee == "high") + 0.4 * (setting == "urban")
    partnered = rng.random(n_centres) < expit(logit)
    exposure = np.where(partnered, rng.uniform(3, 36, n_centres), np.nan)
    centre_ids = np.array([f"C{i:04d}" for i in range(n_centres)])
    sizes = rng.integers(5, 15, n_centres)
    c = np.repeat(np.arange(n_centres), sizes)
    n = c.size
    female = rng.random(n) < 0.5
    age_b = rng.uniform(48, 60, n)
    base = 45 + 2 * level[c] + rng.normal(0, 3, n_centres)[c] + 0.7 * (age_b - 54) + 2 * female + rng.normal(0, 10, n)
    centred = np.nan_to_num(exposure - np.nanmean(exposure))
    tau = (effect + female_extra * female + dose_per_month * centred[c]) * partnered[c]
    end = (10 + rho * base + 0.3 * (age_b + 8 - 62) + female + 0.5 * (setting[c] == "urban") + tau
           + rng.normal(0, 1.5, n_centres)[c] + rng.normal(0, 7, n))
    common = dict(child_id=[f"K{i:06d}" for i in range(n)], centre_id=centre_ids[c], region=region,
                  is_partnered=pd.array(partnered[c], dtype="boolean"), sex=np.where(female, "female", "male"),
                  setting=setting[c])
    # two more outcomes with no effect, so that the Kling index has components
    haz = rng.normal(-0.5, 1, n)
    waves = [pd.DataFrame({**common, "wave": "endline", "age_months": age_b + 8, "elom_total": end,
                           "haz": haz + rng.normal(0, 0.2, n), "attendance_rate": rng.beta(8, 2, n)})]
    if with_baseline:
        waves.insert(0, pd.DataFrame({**common, "wave": "baseline", "age_months": age_b, "elom_total": base,
                                      "haz": haz, "attendance_rate": rng.beta(8, 2, n)}))
    child = pd.concat(waves, ignore_index=True)
    types = np.where(partnered, rng.choice(["cbo", "wellness", "cbo;private"], n_centres), "")
    centres = pd.DataFrame({
        "centre_id": centre_ids, "region": region, "is_partnered": pd.array(partnered, dtype="boolean"),
        "setting": setting, "registration_status": registration, "fee_band": fee, "exposure_months": exposure,
        "partner_types": types,
        "customer_service_score_pct": np.clip(60 + 2 * level + 6 * partnered + rng.normal(0, 8, n_centres), 0, 100),
    })
    return child, centres


@pytest.fixture(scope="module")
def selected():
    return synthetic_outcomes(11, n_centres=900)


def test_adjusted_estimators_recover_the_effect_that_a_naive_comparison_misses(selected):
    child, centres = selected
    endline = child[child["wave"] == "endline"]
    naive = (endline.loc[endline["is_partnered"], "elom_total"].mean()
             - endline.loc[~endline["is_partnered"], "elom_total"].mean())
    assert naive - 2.6 > 2.0  # selection on observables: the naive difference is far off
    results = {
        "ancova": estimate_ancova(child, "Alpha"),
        "did": estimate_did(child, "Alpha"),
        "regression_adjustment": estimate_regression_adjustment(child, "Alpha", centre_outcomes=centres),
        "ipw": estimate_ipw(child, "Alpha", centre_outcomes=centres),
        "aipw": estimate_aipw(child, "Alpha", centre_outcomes=centres),
    }
    for name, result in results.items():
        assert result.status == "ok" and result.estimator == name
        assert abs(result.estimate - 2.6) < 3.5 * result.std_error, (name, result.estimate, result.std_error)
        assert result.ci_low < 2.6 < result.ci_high or abs(result.estimate - 2.6) < 3.5 * result.std_error
    # the weighted estimators report their overlap diagnostics
    assert results["ipw"].diagnostics["n_centres_partnered"] > 100
    assert results["aipw"].diagnostics["effective_comparison_centres"] > 100


def test_did_is_biased_when_scores_regress_to_the_mean():
    child, _ = synthetic_outcomes(12, n_centres=900, rho=0.5)
    ancova, did = estimate_ancova(child, "Alpha"), estimate_did(child, "Alpha")
    assert abs(ancova.estimate - 2.6) < 3.5 * ancova.std_error
    # partnered centres start higher, and half of that gap fades by the endline
    assert did.estimate - 2.6 < -3 * did.std_error


def test_ipw_is_the_hajek_att_by_hand():
    frame = pd.DataFrame({"centre_id": ["a", "a", "b", "c", "c", "d"], "y": [5.0, 7.0, 4.0, 2.0, 4.0, 1.0],
                          "partnered": [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]})
    scored = pd.DataFrame({"centre_id": ["a", "b", "c", "d"], "partnered": [1.0, 1.0, 0.0, 0.0],
                           "propensity": [0.6, 0.5, 0.5, 0.2], "weight_att": [1.0, 1.0, 1.0, 0.25],
                           "is_trimmed": [False, False, False, False]})
    result = ipw_from_frame(frame, scored, region="R", outcome="y", min_centres=2)
    # treated mean 16/3; comparison weighted mean (2 + 4 + 0.25 * 1) / 2.25
    assert result.estimate == pytest.approx(16 / 3 - 6.25 / 2.25)
    assert result.n_centres_partnered == 2 and result.n_children == 6


def test_trimmed_centres_are_left_out_and_reported():
    frame = pd.DataFrame({"centre_id": list("aabbccddee"), "y": np.arange(10.0), "partnered": [1.0] * 6 + [0.0] * 4})
    scored = pd.DataFrame({"centre_id": list("abcde"), "partnered": [1.0, 1, 1, 0, 0],
                           "propensity": [0.97, 0.5, 0.5, 0.4, 0.3], "weight_att": [0.0, 1, 1, 0.4 / 0.6, 0.3 / 0.7],
                           "is_trimmed": [True, False, False, False, False]})
    result = ipw_from_frame(frame, scored, region="R", outcome="y", min_centres=2)
    assert result.n_centres_partnered == 2 and result.n_children == 8
    assert "weights_trimmed" in result.warning and "1 partnered and 0 comparison centres trimmed" in result.note


def test_aipw_with_a_constant_propensity_is_the_imputation_estimator(rng):
    n = 200
    frame = pd.DataFrame({"centre_id": np.repeat(np.arange(40), 5).astype(str), "age_months": rng.uniform(48, 60, n),
                          "sex": rng.choice(["female", "male"], n), "setting": "urban"})
    frame["partnered"] = (frame["centre_id"].astype(int) % 2).astype(float)
    frame["y"] = 2 * frame["partnered"] + 0.5 * frame["age_months"] + rng.normal(size=n)
    scored = pd.DataFrame({"centre_id": frame["centre_id"].unique(), "propensity": 0.5, "weight_att": 1.0,
                           "is_trimmed": False})
    scored["partnered"] = (scored["centre_id"].astype(int) % 2).astype(float)
    result = aipw_from_frame(frame, scored, region="R", outcome="y", numeric=["age_months"], categorical=["sex"])
    control = frame[frame["partnered"] == 0]
    X = np.column_stack([np.ones(len(control)), control["age_months"], control["sex"] == "male"]).astype(float)
    beta = np.linalg.lstsq(X, control["y"], rcond=None)[0]
    treated = frame[frame["partnered"] == 1]
    Xt = np.column_stack([np.ones(len(treated)), treated["age_months"], treated["sex"] == "male"]).astype(float)
    assert result.estimate == pytest.approx(float(np.mean(treated["y"] - Xt @ beta)), rel=1e-10)
    assert result.inference == "CR1" and result.df == 39


def test_heterogeneity_finds_the_girls_effect_and_the_dose():
    child, centres = synthetic_outcomes(13, n_centres=500, effect=1.0, female_extra=3.0, dose_per_month=0.2)
    rows = estimate_heterogeneity(child, "Alpha", centre_outcomes=centres, inference=["CR1"]).tidy().set_index("subgroup")
    assert rows.loc["sex=female", "estimate"] - rows.loc["sex=male", "estimate"] == pytest.approx(3.0, abs=1.2)
    assert rows.loc["sex:female_minus_male", "estimate"] == pytest.approx(3.0, abs=1.2)
    assert rows.loc["sex:female_minus_male", "p_value"] < 0.01
    dose = rows.loc["dose:per_12_months"]
    assert dose["estimate"] == pytest.approx(0.2 * 12, abs=1.0) and dose["p_value"] < 0.01
    assert {"setting=urban", "setting=rural", "partner_type=cbo", "partner_type=private", "partner_type=wellness",
            "exposure_months=0-12", "exposure_months=12-24", "exposure_months=24+"} <= set(rows.index)
    # partner type private: only the "cbo;private" centres are its partnered centres
    private = centres.loc[centres["partner_types"].str.contains("private")]
    assert rows.loc["partner_type=private", "n_centres_partnered"] == len(private)


@pytest.fixture(scope="module")
def region_rows():
    child, centres = synthetic_outcomes(14, n_centres=60)
    return child, centres, estimate_region(child, centres, "Alpha", bootstrap_reps=199)


def test_estimate_region_rows(region_rows):
    child, centres, rows = region_rows
    assert list(rows.columns) == [*CONTRACT_COLUMNS, "q_value_bh", "q_value_sharpened", "subgroup", "warning",
                                  "is_primary"]
    assert set(rows["inference"]) == {"CR1", "CR2", "WCR-bootstrap", "HC1"}
    assert set(rows["estimator"]) == {"ancova", "did", "regression_adjustment", "ipw", "aipw"}
    assert set(rows["outcome"]) == {"elom_total", "haz", "attendance_rate", "customer_service_score_pct",
                                    "kling_index"}
    primary = rows[rows["is_primary"]]
    assert len(primary) == 1
    single = estimate_ancova(child, "Alpha").tidy().iloc[0]
    for column in CONTRACT_COLUMNS:
        assert primary.iloc[0][column] == single[column], column
    boot = rows[(rows["inference"] == "WCR-bootstrap") & (rows["status"] == "ok")]
    assert (rows["status"] == "ok").mean() > 0.9
    assert len(boot) > 20 and boot["std_error"].isna().all() and boot["df"].isna().all()
    assert ((boot["ci_low"] < boot["estimate"]) & (boot["estimate"] < boot["ci_high"])).all()
    centre = rows[rows["outcome"] == "customer_service_score_pct"]
    assert set(centre["inference"]) == {"HC1", "CR2", "WCR-bootstrap"} and centre["n_children"].isna().all()
    # the same seed gives the same bootstrap
    again = estimate_region(child, centres, "Alpha", bootstrap_reps=199, outcomes=["elom_total"])
    mine = rows[(rows["outcome"] == "elom_total") & (rows["inference"] == "WCR-bootstrap")]
    same = [c for c in CONTRACT_COLUMNS if c != "n_children"]  # q-values depend on the family asked for
    pd.testing.assert_frame_equal(mine[same].reset_index(drop=True),
                                  again.loc[again["inference"] == "WCR-bootstrap", same].reset_index(drop=True))


def test_estimate_region_can_be_narrowed_for_large_data(region_rows):
    child, centres, rows = region_rows
    narrow = estimate_region(child, centres, "Alpha", bootstrap_reps=199, estimators=("ancova",), heterogeneity=False)
    assert set(narrow["estimator"]) == {"ancova"} and (narrow["subgroup"] == "").all()
    full = rows[(rows["estimator"] == "ancova") & (rows["subgroup"] == "")].reset_index(drop=True)
    pd.testing.assert_frame_equal(narrow[CONTRACT_COLUMNS].reset_index(drop=True), full[CONTRACT_COLUMNS],
                                  check_dtype=False)


def test_q_values_are_computed_over_the_outcome_family(region_rows):
    *_, rows = region_rows
    whole = rows[(rows["subgroup"] == "") & (rows["status"] == "ok")]
    family = whole[(whole["estimator"] == "regression_adjustment") & whole["inference"].isin(["CR1", "HC1"])
                   & (whole["outcome"] != "kling_index")]
    assert set(family["outcome"]) == {"elom_total", "haz", "attendance_rate", "customer_service_score_pct"}
    from evalkit.multiplicity import bh_qvalues

    np.testing.assert_allclose(family["q_value_bh"], bh_qvalues(family["p_value"]))
    assert rows.loc[rows["outcome"] == "kling_index", "q_value_bh"].isna().all()
    assert rows.loc[rows["subgroup"] != "", "q_value_bh"].isna().all()


def test_warning_codes():
    common = dict(region="R", outcome="elom_total", estimator="ancova", n_centres_partnered=5, n_centres_comparison=30)
    rows = [EffectResult(inference="CR1", p_value=0.04, estimate=1.0, **common),
            EffectResult(inference="CR2", p_value=0.07, estimate=1.0, **common),
            EffectResult(inference="CR1", p_value=0.5, estimate=1.0, **{**common, "outcome": "haz"}),
            EffectResult(inference="CR2", p_value=0.6, estimate=1.0, **{**common, "outcome": "haz"})]
    table = _finish(rows)
    assert table.loc[0, "warning"] == "few_partnered_centres;cr1_cr2_disagree"
    assert table.loc[1, "warning"] == "few_partnered_centres;cr1_cr2_disagree"
    assert table.loc[2, "warning"] == "few_partnered_centres"
    assert table["is_primary"].tolist() == [True, False, False, False]


def test_region_without_baseline_falls_back_on_regression_adjustment():
    child, centres = synthetic_outcomes(15, n_centres=80, with_baseline=False)
    rows = estimate_region(child, centres, "Alpha", outcomes=["elom_total"], bootstrap_reps=99)
    whole = rows[rows["subgroup"] == ""].set_index(["estimator", "inference"])
    assert whole.loc[("ancova", "CR1"), "status"] == "not_estimable"
    assert whole.loc[("did", "CR1"), "status"] == "not_estimable"
    ra = whole.loc[("regression_adjustment", "CR1")]
    assert ra["status"] == "ok" and "no baseline" in ra["note"]
    assert abs(ra["estimate"] - 2.6) < 4 * ra["std_error"]


def test_national_pools_regions_with_fixed_effects():
    a, ca = synthetic_outcomes(16, n_centres=150, effect=2.0, region="Alpha")
    b, cb = synthetic_outcomes(17, n_centres=150, effect=2.0, region="Beta")
    b = b.assign(child_id="B" + b["child_id"], centre_id="B" + b["centre_id"],
                 elom_total=b["elom_total"] + 10)  # a region shift the fixed effects absorb
    cb = cb.assign(centre_id="B" + cb["centre_id"])
    rows = estimate_national(pd.concat([a, b]), pd.concat([ca, cb]), bootstrap_reps=99)
    primary = rows[rows["is_primary"]].iloc[0]
    assert primary["region"] == "National" and primary["n_centres_partnered"] + primary["n_centres_comparison"] == 300
    assert abs(primary["estimate"] - 2.0) < 3.5 * primary["std_error"]
    assert "region fixed effects" in primary["note"]


def test_not_estimable_region_gives_reasons_not_errors(reference_data):
    data, _ = reference_data
    frame = data.loc[data["region"] == "Delta"].copy()
    frame.loc[frame["partnered"] == 1, "partnered"] = 0
    frame.loc[frame["centre_id"] == frame["centre_id"].iloc[0], "partnered"] = 1
    outcomes = _outcomes_from_frame(frame)
    rows = estimate_region(outcomes, None, "Delta", bootstrap_reps=99)
    assert (rows["status"] == "not_estimable").all() and rows["note"].str.len().gt(0).all()


def test_results_display(region_rows):
    child, centres, _ = region_rows
    many = estimate_ancova(child, "Alpha", inference=["CR1", "CR2", "WCR-bootstrap"], bootstrap_reps=99)
    assert isinstance(many, EffectResults) and len(many) == 3
    assert list(many.tidy()["inference"]) == ["CR1", "CR2", "WCR-bootstrap"]
    assert "bootstrap" in many.summary() and "<table" in many._repr_html_()
    assert "<table" in many[0]._repr_html_()


# ----------------------------------------------------------------------------- propensity scores

from evalkit.propensity import affordable_covariates, centre_propensity, firth_logit, overlap_table  # noqa: E402


def test_firth_logit_adds_a_half_to_each_cell_of_a_two_by_two_table():
    # Firth's estimate for a saturated logit with one binary covariate is the log odds with
    # 0.5 added to every cell (Firth 1993): x=0: 3 of 10 treated, x=1: 7 of 9 treated
    x = np.array([0] * 10 + [1] * 9, dtype=float)
    y = np.array([1] * 3 + [0] * 7 + [1] * 7 + [0] * 2, dtype=float)
    beta = firth_logit(np.column_stack([np.ones(19), x]), y)
    assert beta[0] == pytest.approx(np.log(3.5 / 7.5), abs=1e-8)
    assert beta[1] == pytest.approx(np.log(7.5 / 2.5) - np.log(3.5 / 7.5), abs=1e-8)


def test_firth_logit_is_finite_under_separation():
    x = np.array([0, 0, 0, 1, 1, 1], dtype=float)
    beta = firth_logit(np.column_stack([np.ones(6), x]), x)
    assert np.all(np.isfinite(beta)) and beta[1] == pytest.approx(np.log(3.5 / 0.5) * 2, abs=1e-8)


def test_affordable_covariates_drop_from_the_end():
    frame = pd.DataFrame({"centre_id": range(12), "a": list("xyz") * 4, "b": list("uv") * 6})
    # a uses 2 terms, b 1: with 3 fixed terms 12 centres support 6, with 4 only 5
    assert affordable_covariates(frame, ["a", "b"], fixed_terms=3) == (["a", "b"], "")
    assert affordable_covariates(frame, ["a", "b"], fixed_terms=4) == (["a"], (
        "Left out b: 12 centres cannot support more centre-level terms."))
    assert affordable_covariates(frame, ["a", "b"], fixed_terms=5)[0] == []


def test_overlap_table_reports_trimming_and_effective_sizes():
    centres = pd.DataFrame({"centre_id": [f"c{i}" for i in range(40)], "partnered": [1.0] * 12 + [0.0] * 28,
                            "setting": ["urban"] * 10 + ["rural"] * 2 + ["urban"] * 4 + ["rural"] * 24})
    scored = centre_propensity(centres, trim=0.35)
    urban_share = 10 / 14  # Firth shrinks it a little towards 1/2
    assert scored.loc[0, "propensity"] == pytest.approx(urban_share, abs=0.03)
    assert scored["is_trimmed"].sum() == 14  # every urban centre has a score above 1 - 0.35
    child = pd.DataFrame({"centre_id": centres["centre_id"], "region": "R", "wave": "endline",
                          "is_partnered": centres["partnered"] == 1, "setting": centres["setting"]})
    table = overlap_table(child, None, "R", trim=0.35)
    row = table.iloc[0]
    assert row["n_trimmed_partnered"] == 10 and row["n_trimmed_comparison"] == 4
    assert row["trim_threshold"] == pytest.approx(0.65)
    w = scored.loc[(scored["partnered"] == 0) & ~scored["is_trimmed"], "weight_att"]
    assert row["effective_comparison_centres"] == pytest.approx(w.sum() ** 2 / (w**2).sum())


def test_design_matrix_gives_categoricals_and_text_the_same_dummies():
    """A categorical column (unused and unsorted categories, as a region's slice of the national
    table has) gives exactly the dummies of the same values as text: levels present, sorted as
    R sorts a character column, the first the reference."""
    text = pd.Series(["urban", "rural", "peri-urban", "rural", "urban"], dtype="str")
    categorical = text.astype(pd.CategoricalDtype(["urban", "township", "rural", "peri-urban"]))
    frame_text = pd.DataFrame({"x": [1.0, 2, 3, 4, 5], "setting": text})
    frame_cat = frame_text.assign(setting=categorical)
    X_text, names_text = design_matrix(frame_text, ["x"], ["setting"])
    X_cat, names_cat = design_matrix(frame_cat, ["x"], ["setting"])
    assert names_text == names_cat == ["(Intercept)", "x", "settingrural", "settingurban"]
    np.testing.assert_array_equal(X_text, X_cat)
    np.testing.assert_array_equal(X_cat[:, 2], [0, 1, 0, 1, 0])


def test_an_exactly_fitted_effect_is_not_estimable_even_when_rounding_makes_its_variance_negative(monkeypatch):
    """The covariates fit the outcome exactly (seed 157470 of the live R test, Free State, centre
    level: 8 centres): R reports a noise SE and p = 2e-34; evalkit says there is nothing to estimate,
    also when the rounded variance comes out at −1e-30 (its square root is NaN)."""
    from evalkit.estimation import _rows_from_fit
    from evalkit.inference import LinearFit, fit_linear

    x = np.arange(8.0)
    d = np.array([1, 1, 1, 1, 1, 0, 0, 0], dtype=float)
    X = np.column_stack([np.ones(8), d, x])
    y = X @ np.array([2.0, 35.0, 0.5])
    fit = fit_linear(y, X, ["(Intercept)", "partnered", "x"])
    common = dict(region="R", outcome="y", estimator="regression_adjustment", n_children=8,
                  n_centres_partnered=5, n_centres_comparison=3)
    rows = _rows_from_fit(fit, "partnered", common, ["HC1", "CR2"], sd=1.0, seed=1, reps=99)
    assert [r.status for r in rows] == ["not_estimable", "not_estimable"]
    monkeypatch.setattr(LinearFit, "vcov_cr1", lambda self: -1e-30 * np.eye(3))
    rows = _rows_from_fit(fit, "partnered", common, ["HC1"], sd=1.0, seed=1, reps=99)
    assert rows[0].status == "not_estimable" and "fit the partnered centres exactly" in rows[0].note
