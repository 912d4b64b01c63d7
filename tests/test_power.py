"""Baseline ICC, minimum detectable effects and power: hand-computed values and simulation."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evalkit.power import POWER_COLUMNS, icc_anova, minimum_detectable_effect, power_at, power_table


def test_icc_anova_by_hand():
    # groups {1,2,3}, {5,6,7}: MSB = 3*(2-4)^2*2/1 = 24, MSW = (2+2)/4 = 1, n0 = 3
    assert icc_anova(np.array([1, 2, 3, 5, 6, 7.0]), np.array([0, 0, 0, 1, 1, 1])) == pytest.approx(23 / 26)
    # no between-group variation: truncated at 0
    assert icc_anova(np.array([1, 2, 3, 1, 2, 3.0]), np.array([0, 0, 0, 1, 1, 1])) == 0.0


def test_icc_anova_recovers_a_known_icc(rng):
    sizes = rng.integers(5, 20, 800)
    groups = np.repeat(np.arange(800), sizes)
    y = rng.normal(0, np.sqrt(0.2), 800)[groups] + rng.normal(0, np.sqrt(0.8), groups.size)
    assert icc_anova(y, groups) == pytest.approx(0.2, abs=0.03)


def test_mde_and_power_by_hand():
    # 20 + 20 centres of 10 children, ICC 0.2: SE = sqrt((0.2 + 0.8/10) * (1/20 + 1/20))
    se = np.sqrt(0.28 * 0.1)
    multiplier = stats.t.ppf(0.975, 38) + stats.t.ppf(0.80, 38)
    mde = minimum_detectable_effect(20, 20, 10, 0.2)
    assert mde == pytest.approx(multiplier * se) and mde == pytest.approx(0.4812, abs=1e-4)
    assert power_at(mde, 20, 20, 10, 0.2) == pytest.approx(0.80, abs=0.01)
    assert power_at(0.0, 20, 20, 10, 0.2) == pytest.approx(0.05, abs=1e-9)
    # covariates that explain variance shrink the MDE
    assert minimum_detectable_effect(20, 20, 10, 0.2, r2_centre=0.5, r2_child=0.5) < mde
    assert np.isnan(minimum_detectable_effect(0, 20, 10, 0.2))


def test_power_matches_a_simulated_cluster_design(rng):
    # a two-sample t-test on centre means, the design the formula describes
    n_sims, j, m, icc, effect = 2000, 12, 8, 0.2, 0.6
    hits = 0
    for _ in range(n_sims):
        means = (rng.normal(0, np.sqrt(icc), 2 * j) + rng.normal(0, np.sqrt((1 - icc) / m), 2 * j))
        means[:j] += effect
        hits += stats.ttest_ind(means[:j], means[j:]).pvalue < 0.05
    assert hits / n_sims == pytest.approx(power_at(effect, j, j, m, icc), abs=0.03)


def test_power_table_columns_and_values():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_estimation import synthetic_outcomes

    child, _ = synthetic_outcomes(31, n_centres=120)
    table = power_table(child, "Alpha")
    assert list(table.columns) == POWER_COLUMNS and len(table) == 1
    row = table.iloc[0]
    centres = child.loc[child["wave"] == "endline"].groupby("centre_id")["is_partnered"].first()
    assert row["n_centres_partnered"] == centres.sum() and row["n_centres_comparison"] == (~centres).sum()
    assert 5 <= row["children_per_centre"] <= 14
    assert 0.05 < row["icc_baseline"] < 0.35
    assert row["mde_sd"] == pytest.approx(minimum_detectable_effect(
        row["n_centres_partnered"], row["n_centres_comparison"], row["children_per_centre"], row["icc_baseline"]))
    base = child[(child["wave"] == "baseline") & ~child["is_partnered"]]["elom_total"]
    assert row["mde_points"] == pytest.approx(row["mde_sd"] * base.std(ddof=1))
    assert 0 < row["power_at_0_2_sd"] < 1
