"""CR1, HC1, CR2 + Satterthwaite and the wild cluster restricted bootstrap: R's numbers,
hand-computed cases and brute force."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.estimation import (
    aipw_from_frame,
    ancova_from_frame,
    did_from_frame,
    ipw_from_frame,
    regression_adjustment_from_frame,
)
from evalkit.inference import _cluster_gram, bootstrap_weights, fit_linear, full_rank_columns

REFERENCE = Path(__file__).parent / "reference"
#: Agreement with R required by issue 5 (R writes 15 significant digits).
TOL = 1e-6


# ----------------------------------------------------------------------------- R references


@pytest.fixture(scope="module")
def cr2_reference():
    frames = pd.read_csv(REFERENCE / "cr2_frames.csv", dtype={"centre_id": str, "child_id": str})
    expected = pd.read_csv(REFERENCE / "cr2_r_output.csv").set_index(["model", "region", "inference"])
    return frames, expected


def python_rows(model: str, frame: pd.DataFrame) -> pd.DataFrame:
    """evalkit's CR1/HC1 and CR2 rows for one stored model frame."""
    region = frame["region"].iloc[0]
    frame = frame.reset_index(drop=True)
    if model == "ancova":
        result = ancova_from_frame(frame, region=region, inference=["CR1", "CR2"])
    elif model == "national_ancova":
        frame = frame.assign(region=frame["stratum"])
        result = ancova_from_frame(frame, region=region, inference=["CR1", "CR2"], extra_categorical=["region"])
    elif model == "did":
        result = did_from_frame(frame, region=region, inference=["CR1", "CR2"])
    elif model == "regression_adjustment":
        result = regression_adjustment_from_frame(frame, region=region, outcome="elom_total", inference=["CR1", "CR2"],
                                                  centre_covariates=["registration_status", "fee_band"])
    elif model in ("ipw", "aipw", "centre_aipw"):
        scored = frame.groupby("centre_id", as_index=False).agg(weight_att=("weight", "first"))
        scored = scored.assign(is_trimmed=False, propensity=0.5, partnered=frame.groupby("centre_id")["partnered"]
                               .first().to_numpy())
        frame = frame.drop(columns="weight")
        if model == "ipw":
            result = ipw_from_frame(frame, scored, region=region, outcome="elom_total", inference=["CR1", "CR2"])
        elif model == "aipw":
            result = aipw_from_frame(frame, scored, region=region, outcome="elom_total", inference=["CR1", "CR2"],
                                     numeric=["baseline", "age_months"],
                                     categorical=["sex", "setting", "registration_status", "fee_band"])
        else:
            result = aipw_from_frame(frame, scored, region=region, outcome="customer_service_score_pct",
                                     inference=["HC1", "CR2"], numeric=[], level="centre",
                                     categorical=["setting", "registration_status", "fee_band"])
    elif model == "centre_regression_adjustment":
        result = regression_adjustment_from_frame(frame, region=region, outcome="customer_service_score_pct",
                                                  inference=["HC1", "CR2"], level="centre",
                                                  centre_covariates=["registration_status", "fee_band"])
    else:
        raise AssertionError(model)
    return result.tidy()


def test_every_cr1_and_cr2_row_equals_r(cr2_reference):
    frames, expected = cr2_reference
    compared = 0
    for (model, region), frame in frames.groupby(["model", "region"]):
        rows = python_rows(model, frame)
        for row in rows.itertuples():
            r = expected.loc[(model, region, row.inference)]
            assert row.status == "ok", (model, region)
            for column in ("estimate", "std_error", "df", "ci_low", "ci_high", "p_value"):
                assert getattr(row, column) == pytest.approx(r[column], abs=TOL, rel=1e-9), (model, region, row.inference, column)
            compared += 1
    assert compared == len(expected)


def test_cr2_equals_r_with_a_nearly_fitted_centre(monkeypatch):
    """A frame from a simulated folder (seed 925911, Limpopo, AIPW) where one centre's G_g has an
    eigenvalue of 2e-5: its a_g is 5e4 times larger than its g_g. R's numbers are stable here
    (they do not move when the rows are reordered) and evalkit's must equal them."""
    import evalkit.inference as inference

    frame = pd.read_csv(REFERENCE / "cr2_near_singular_frames.csv", dtype={"centre_id": str, "child_id": str})
    expected = pd.read_csv(REFERENCE / "cr2_near_singular_r_output.csv").set_index("inference")
    rows = python_rows("aipw", frame).set_index("inference")
    for inference_name in ("CR1", "CR2"):
        for column in ("estimate", "std_error", "df", "ci_low", "ci_high", "p_value"):
            assert rows.loc[inference_name, column] == pytest.approx(expected.loc[inference_name, column], abs=TOL,
                                                                     rel=1e-9), (inference_name, column)
    # the k × k closed form of ‖P‖² loses this to cancellation, which is why P is formed explicitly
    explicit_error = abs(rows.loc["CR2", "df"] - expected.loc["CR2", "df"])
    monkeypatch.setattr(inference, "_EXPLICIT_P_MAX_CLUSTERS", 0)
    closed = python_rows("aipw", frame).set_index("inference").loc["CR2", "df"]
    assert abs(closed - expected.loc["CR2", "df"]) > 20 * explicit_error


def test_reference_covers_the_awkward_cases(cr2_reference):
    frames, expected = cr2_reference
    sizes = frames.loc[frames["model"] == "ancova"].groupby("centre_id").size()
    assert sizes.min() == 1 and sizes.max() >= 20  # single-child centres and large ones
    assert expected.loc[("ancova", "Beta", "CR2"), "n_clusters"] == 7  # Webb territory
    assert frames.loc[(frames["model"] == "ancova") & (frames["region"] == "Gamma"), "setting"].nunique() == 1
    # 7 centres cannot support registration status and fee band: both are left out, as R is told
    beta = frames[(frames["model"] == "centre_regression_adjustment") & (frames["region"] == "Beta")]
    assert (beta["fee_band"] == "(left out)").all() and (beta["registration_status"] == "(left out)").all()
    # CR2 matters here: clearly larger than CR1 in small regions
    assert expected.loc[("ancova", "Beta", "CR2"), "std_error"] > 1.2 * expected.loc[("ancova", "Beta", "CR1"), "std_error"]


# ----------------------------------------------------------------------------- hand-computed cases


def test_cr2_is_hc2_with_one_row_per_cluster_and_hand_computed_df():
    # y = a + b x, one observation per cluster: CR2 is HC2 = sum x_i^2 e_i^2 / (1 - h_ii) ...
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    X = np.column_stack([np.ones(5), x])
    fit = fit_linear(y, X, ["a", "b"])
    bread = np.linalg.inv(X.T @ X)
    h = np.einsum("ij,jk,ik->i", X, bread, X)
    e = y - X @ bread @ X.T @ y
    meat = (X * (e**2 / (1 - h))[:, None]).T @ X
    np.testing.assert_allclose(fit.vcov_cr2(), bread @ meat @ bread, rtol=1e-12)
    # Satterthwaite: with Φ = I, df = (tr P)^2 / ||P||^2 for P = D - W'MW (Bell & McCaffrey)
    c = bread[:, 1]
    a = (X @ c) / np.sqrt(1 - h)
    W = X.T * a  # columns X_i a_i
    P = np.diag(a**2) - W.T @ bread @ W
    assert fit.df_satterthwaite("b") == pytest.approx(np.trace(P) ** 2 / np.sum(P**2), rel=1e-12)


def test_hc1_factor_and_df():
    rng = np.random.default_rng(3)
    X = np.column_stack([np.ones(20), rng.normal(size=20)])
    y = X @ [1.0, 2.0] + rng.normal(size=20)
    fit = fit_linear(y, X, ["a", "b"])
    bread = np.linalg.inv(X.T @ X)
    e = fit.resid
    hc0 = bread @ ((X * (e**2)[:, None]).T @ X) @ bread
    np.testing.assert_allclose(fit.vcov_cr1(), 20 / 18 * hc0, rtol=1e-12)
    assert fit.coef_test("b", "HC1")["df"] == 18


def test_absorbed_cluster_effects_equal_dummies(rng):
    n_clusters = 12
    clusters = np.repeat(np.arange(n_clusters), rng.integers(1, 8, n_clusters))
    n = clusters.size
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n).astype(float)
    y = 0.5 * x + 0.3 * t + rng.normal(size=n_clusters)[clusters] + rng.normal(size=n)
    dummies = (clusters[:, None] == np.arange(n_clusters)).astype(float)
    full = fit_linear(y, np.column_stack([x, t, dummies]), ["x", "t", *[f"d{g}" for g in range(n_clusters)]], clusters)
    absorbed = fit_linear(y, np.column_stack([x, t]), ["x", "t"], clusters, absorb_clusters=True)
    for name in ("x", "t"):
        for inference in ("CR1", "CR2"):
            a, b = full.coef_test(name, inference), absorbed.coef_test(name, inference)
            for key in ("estimate", "std_error", "df", "p_value"):
                assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), (name, inference, key)


def test_cluster_gram_by_size_equals_one_cluster_at_a_time(rng):
    sizes = rng.integers(1, 9, 40)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    D = rng.normal(size=(sizes.sum(), 3))
    expected = np.stack([D[a:a + m].T @ D[a:a + m] for a, m in zip(starts, sizes)])
    np.testing.assert_allclose(_cluster_gram(D, starts), expected, rtol=1e-12)


def test_aliased_columns_are_dropped_in_order():
    X = np.column_stack([np.ones(6), [1, 2, 3, 4, 5, 6], [2, 4, 6, 8, 10, 12], [0, 1, 0, 1, 0, 1]]).astype(float)
    assert full_rank_columns(X) == [0, 1, 3]
    assert full_rank_columns(np.zeros((4, 1))) == []


# ----------------------------------------------------------------------------- wild bootstrap


def brute_force_wcr(y, X, clusters, j, b0, weights):
    """The restricted wild cluster bootstrap the slow way: refit every replication."""
    codes, _ = pd.factorize(clusters, sort=True)
    others = np.delete(X, j, axis=1)
    gamma = np.linalg.lstsq(others, y - b0 * X[:, j], rcond=None)[0]
    fitted = others @ gamma + b0 * X[:, j]
    resid_r = y - fitted

    def t_stat(yy):
        beta = np.linalg.lstsq(X, yy, rcond=None)[0]
        e = yy - X @ beta
        bread = np.linalg.inv(X.T @ X)
        scores = np.zeros((codes.max() + 1, X.shape[1]))
        np.add.at(scores, codes, X * e[:, None])
        se = np.sqrt((bread @ scores.T @ scores @ bread)[j, j])
        return (beta[j] - b0) / se

    t_obs = t_stat(y)
    t_boot = np.array([t_stat(fitted + resid_r * weights[codes, b]) for b in range(weights.shape[1])])
    return np.mean(np.abs(t_boot) >= np.abs(t_obs) * (1 - 1e-12))


@pytest.fixture
def small_design(rng):
    n_clusters = 14
    clusters = np.repeat(np.arange(n_clusters), rng.integers(2, 9, n_clusters))
    n = clusters.size
    d = (clusters % 3 == 0).astype(float)
    x = rng.normal(size=n)
    y = 1 + 0.4 * d + 0.7 * x + rng.normal(size=n_clusters)[clusters] + rng.normal(size=n)
    return y, np.column_stack([np.ones(n), d, x]), clusters


def test_wild_bootstrap_p_value_and_interval_equal_brute_force(small_design):
    y, X, clusters = small_design
    fit = fit_linear(y, X, ["c", "d", "x"], clusters)
    result = fit.wild_bootstrap("d", reps=399, seed=11)
    weights, kind = bootstrap_weights(14, 399, np.random.default_rng(11))
    assert kind == "rademacher" and result.weights == "rademacher"
    assert result.p_value == pytest.approx(brute_force_wcr(y, X, clusters, 1, 0.0, weights), abs=1e-12)
    # the interval's ends are where the brute-force p-value crosses 0.05
    for end, outward in ((result.ci_low, -1), (result.ci_high, 1)):
        inside, outside = end - outward * 1e-4, end + outward * 1e-4
        assert brute_force_wcr(y, X, clusters, 1, inside, weights) > 0.05
        assert brute_force_wcr(y, X, clusters, 1, outside, weights) <= 0.05


def test_wild_bootstrap_weighted_equals_transformed_ols(small_design, rng):
    y, X, clusters = small_design
    w = rng.uniform(0.3, 3.0, y.size)
    weighted = fit_linear(y, X, ["c", "d", "x"], clusters, weights=w)
    sw = np.sqrt(w)
    transformed = fit_linear(y * sw, X * sw[:, None], ["c", "d", "x"], clusters)
    a = weighted.wild_bootstrap("d", reps=199, seed=5)
    b = transformed.wild_bootstrap("d", reps=199, seed=5)
    assert (a.p_value, a.ci_low, a.ci_high) == pytest.approx((b.p_value, b.ci_low, b.ci_high), rel=1e-9)


def test_webb_weights_with_few_clusters_and_seeding(rng):
    weights, kind = bootstrap_weights(8, 5000, rng)
    assert kind == "webb"
    assert set(np.round(np.unique(weights) ** 2, 12)) == {0.5, 1.0, 1.5}
    assert abs(weights.mean()) < 0.03 and weights.var() == pytest.approx(1.0, abs=0.03)
    y = rng.normal(size=40)
    clusters = np.repeat(np.arange(8), 5)
    X = np.column_stack([np.ones(40), (clusters < 4).astype(float)])
    fit = fit_linear(y, X, ["c", "d"], clusters)
    first, second = fit.wild_bootstrap("d", seed=3), fit.wild_bootstrap("d", seed=3)
    assert first == second and first.weights == "webb"
    assert fit.wild_bootstrap("d", seed=4) != first
    assert first.ci_low < fit.params[1] < first.ci_high


def test_wild_bootstrap_rejects_a_real_effect_and_keeps_the_null(rng):
    n_clusters = 30
    clusters = np.repeat(np.arange(n_clusters), 10)
    d = (np.arange(n_clusters) % 2)[clusters].astype(float)
    noise = rng.normal(size=n_clusters)[clusters] * 0.3 + rng.normal(size=clusters.size)
    X = np.column_stack([np.ones(clusters.size), d])
    strong = fit_linear(3.0 * d + noise, X, ["c", "d"], clusters).wild_bootstrap("d", seed=1)
    null = fit_linear(noise, X, ["c", "d"], clusters).wild_bootstrap("d", seed=1)
    assert strong.p_value < 0.01 and strong.ci_low > 2.0
    assert null.p_value > 0.05 and null.ci_low < 0 < null.ci_high


def test_singular_cr2_clusters_are_counted(rng):
    clusters = np.repeat(np.arange(10), 5)
    alone = (clusters == 0).astype(float)  # a dummy only cluster 0 has: that cluster is fitted exactly
    X = np.column_stack([np.ones(50), (clusters % 2).astype(float), alone, rng.normal(size=50)])
    y = rng.normal(size=50)
    assert fit_linear(y, X, ["c", "d", "alone", "x"], clusters).n_singular_cr2_clusters == 1
    assert fit_linear(y, X[:, [0, 1, 3]], ["c", "d", "x"], clusters).n_singular_cr2_clusters == 0
    # absorbed cluster effects make every G_g singular in the constant direction: not counted
    absorbed = fit_linear(y, X[:, [3]], ["x"], clusters, absorb_clusters=True)
    assert absorbed.n_singular_cr2_clusters == 0


def brute_force_satterthwaite(fit, name):
    """clubSandwich's df the slow way: g_j = (I − H)'[A_j W_j X_j M c] with A_j from the full
    eigendecomposition of G_g = [(I − H)(I − H)']_gg (working model: the identity)."""
    X, M = fit.X, fit.bread
    w = np.ones(fit.n_obs) if fit.weights is None else fit.weights
    IH = np.eye(fit.n_obs) - X @ M @ X.T * w[None, :]
    c = M[:, fit.index(name)]
    gs = []
    for start, size in zip(fit.cluster_starts, fit.cluster_sizes):
        rows = slice(start, start + size)
        values, vectors = np.linalg.eigh((IH @ IH.T)[rows, rows])
        A = vectors @ np.diag(np.where(values > 1e-12, 1 / np.sqrt(np.clip(values, 1e-12, None)), 0)) @ vectors.T
        placed = np.zeros(fit.n_obs)
        placed[rows] = A @ (w[rows] * (X[rows] @ c))
        gs.append(IH.T @ placed)
    P = np.array(gs) @ np.array(gs).T
    return np.trace(P) ** 2 / np.sum(P**2)


@pytest.mark.parametrize("weighted", [False, "by cluster", "by row"])
def test_satterthwaite_with_a_nearly_fitted_centre_equals_brute_force(rng, weighted):
    # centre 0 is nearly fitted by its own dummy plus a covariate: G_0 has an eigenvalue near 1e-5,
    # a_0 is large and its g_0 small, which a diag + low-rank formula would cancel away
    sizes = rng.integers(3, 9, 16)
    clusters = np.repeat(np.arange(16), sizes)
    n = clusters.size
    near = (clusters == 0).astype(float) + 1e-3 * rng.normal(size=n) * (clusters != 0)
    d = (clusters % 3 == 0).astype(float)
    X = np.column_stack([np.ones(n), d, near, rng.normal(size=n)])
    y = X @ [1.0, 0.5, 1.0, 0.3] + rng.normal(size=16)[clusters] + rng.normal(size=n)
    w = {False: None, "by cluster": np.repeat(rng.uniform(0.05, 3.0, 16), sizes),
         "by row": rng.uniform(0.05, 3.0, n)}[weighted]
    fit = fit_linear(y, X, ["c", "d", "near", "x"], clusters, weights=w)
    assert fit.df_satterthwaite("d") == pytest.approx(brute_force_satterthwaite(fit, "d"), rel=1e-9)
    if w is not None:
        assert fit._weights_constant_within_clusters == (weighted == "by cluster")


def test_satterthwaite_closed_form_for_many_clusters_equals_the_explicit_one(rng, monkeypatch):
    import evalkit.inference as inference

    clusters = np.repeat(np.arange(60), rng.integers(2, 10, 60))
    n = clusters.size
    X = np.column_stack([np.ones(n), (clusters % 2).astype(float), rng.normal(size=n)])
    y = rng.normal(size=n) + rng.normal(size=60)[clusters]
    for w in (None, np.repeat(rng.uniform(0.2, 2, 60), np.bincount(clusters))):
        explicit = fit_linear(y, X, ["c", "d", "x"], clusters, weights=w).df_satterthwaite("d")
        monkeypatch.setattr(inference, "_EXPLICIT_P_MAX_CLUSTERS", 0)
        closed = fit_linear(y, X, ["c", "d", "x"], clusters, weights=w).df_satterthwaite("d")
        monkeypatch.setattr(inference, "_EXPLICIT_P_MAX_CLUSTERS", 1000)
        assert closed == pytest.approx(explicit, rel=1e-8)


def brute_force_cr2(fit, name):
    """CR2's covariance and Satterthwaite df with every A_g from the full eigendecomposition of
    G_g = [(I − H)(I − H)']_gg, H including the absorbed cluster effects' block means."""
    X, M = fit.X, fit.bread
    w = np.ones(fit.n_obs) if fit.weights is None else fit.weights
    IH = np.eye(fit.n_obs) - X @ M @ X.T * w[None, :]
    if fit.n_absorbed:
        same = fit.cluster_codes[:, None] == fit.cluster_codes[None, :]
        IH -= same / fit.cluster_sizes[fit.cluster_codes][None, :]
    c = M[:, fit.index(name)]
    meat, gs = [], []
    for start, size in zip(fit.cluster_starts, fit.cluster_sizes):
        rows = slice(start, start + size)
        values, vectors = np.linalg.eigh((IH @ IH.T)[rows, rows])
        A = vectors @ np.diag(np.where(values > 1e-12, 1 / np.sqrt(np.clip(values, 1e-12, None)), 0)) @ vectors.T
        meat.append(X[rows].T @ (w[rows] * (A @ fit.resid[rows])))
        placed = np.zeros(fit.n_obs)
        placed[rows] = A @ (w[rows] * (X[rows] @ c))
        gs.append(IH.T @ placed)
    meat = np.array(meat)
    P = np.array(gs) @ np.array(gs).T
    return M @ meat.T @ meat @ M, np.trace(P) ** 2 / np.sum(P**2)


@pytest.mark.parametrize("case", ["ols", "absorbed", "weights by cluster", "weights by row"])
def test_cr2_power_series_route_equals_brute_force(rng, case):
    """With many clusters each A_g comes from the power series (no eigendecomposition); its
    covariance and df equal the dense computation, and equal the eigen route."""
    import evalkit.inference as inference

    sizes = rng.integers(2, 7, 120)
    clusters = np.repeat(np.arange(120), sizes)
    n = clusters.size
    d = np.repeat(rng.integers(0, 2, 120), sizes).astype(float)
    x = rng.normal(size=n)
    y = 0.4 * d + 0.3 * x + rng.normal(size=120)[clusters] + rng.normal(size=n)
    weights = {"weights by cluster": np.repeat(rng.uniform(0.3, 3.0, 120), sizes),
               "weights by row": rng.uniform(0.3, 3.0, n)}.get(case)
    if case == "absorbed":
        X, names = np.column_stack([d * (np.arange(n) % 2), x]), ["d", "x"]
    else:
        X, names = np.column_stack([np.ones(n), d, x]), ["c", "d", "x"]
    fit = fit_linear(y, X, names, clusters, weights=weights, absorb_clusters=case == "absorbed")
    assert fit._cr2_low_rank["series"].mean() > 0.75  # the route under test was taken (for most clusters)
    vcov, df = brute_force_cr2(fit, "d")
    assert fit.vcov_cr2() == pytest.approx(vcov, rel=1e-10, abs=1e-14)
    assert fit.df_satterthwaite("d") == pytest.approx(df, rel=1e-9)
    original = inference._SERIES_MAX_BOUND
    try:
        inference._SERIES_MAX_BOUND = -1.0  # every cluster by eigendecomposition
        eigen = fit_linear(y, X, names, clusters, weights=weights, absorb_clusters=case == "absorbed")
        assert not eigen._cr2_low_rank["series"].any()
        assert eigen.vcov_cr2() == pytest.approx(fit.vcov_cr2(), rel=1e-11, abs=1e-15)
    finally:
        inference._SERIES_MAX_BOUND = original
