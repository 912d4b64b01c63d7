"""The balance table, joint tests and Love plot: hand-computed numbers on a tiny region."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from evalkit.balance import BALANCE_COLUMNS, JOINT_TEST_COLUMNS, balance_joint_test, balance_table, hedges_g, love_plot
from evalkit.inference import fit_linear


def tiny_region() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Four centres, two per arm, three baseline children each (one score missing)."""
    scores = {"P1": [50.0, 54.0, 58.0], "P2": [46.0, 50.0, np.nan], "C1": [40.0, 44.0, 48.0], "C2": [45.0, 47.0, 49.0]}
    rows = []
    for centre, values in scores.items():
        for i, value in enumerate(values):
            for wave in ("baseline", "endline"):
                rows.append({"child_id": f"{centre}-{i}", "centre_id": centre, "region": "R", "wave": wave,
                             "is_partnered": centre.startswith("P"), "age_months": 50.0 + i + (8 if wave == "endline" else 0),
                             "sex": "female" if i % 2 == 0 else "male", "setting": "urban" if centre in ("P1", "C1") else "rural",
                             "elom_total": value})
    child = pd.DataFrame(rows)
    child["is_partnered"] = child["is_partnered"].astype("boolean")
    centres = pd.DataFrame({"centre_id": ["P1", "P2", "C1", "C2"], "region": "R",
                            "registration_status": ["registered", "registered", "registered", "unregistered"],
                            "enrolment": [30.0, 50.0, 20.0, 40.0]})
    return child, centres


@pytest.fixture
def table():
    child, centres = tiny_region()
    return balance_table(child, centres, "R").set_index("variable")


def test_columns_and_levels(table):
    assert list(table.reset_index()[BALANCE_COLUMNS].columns) == BALANCE_COLUMNS
    assert set(table.reset_index().columns) == set(BALANCE_COLUMNS)
    assert table.loc["elom_total", "level"] == "child" and table.loc["enrolment", "level"] == "centre"
    assert {"setting=rural", "setting=urban", "registration_status=registered",
            "registration_status=unregistered"} <= set(table.index)


def test_child_row_by_hand(table):
    row = table.loc["elom_total"]
    p, c = np.array([50, 54, 58, 46, 50.0]), np.array([40, 44, 48, 45, 47, 49.0])
    assert (row["n_partnered"], row["n_comparison"]) == (5, 6)
    assert row["mean_partnered"] == pytest.approx(p.mean()) and row["sd_comparison"] == pytest.approx(c.std(ddof=1))
    assert row["diff_raw"] == pytest.approx(p.mean() - c.mean())
    pooled = np.sqrt((p.var(ddof=1) + c.var(ddof=1)) / 2)
    assert row["smd"] == pytest.approx((p.mean() - c.mean()) / pooled)
    assert row["smd_denominator"] == "sqrt((sd_partnered^2 + sd_comparison^2) / 2)"
    assert row["variance_ratio"] == pytest.approx(p.var(ddof=1) / c.var(ddof=1))
    assert row["flag"] == "fails"  # a 1.5-SD gap
    assert row["share_missing"] == pytest.approx(1 / 12)
    assert row["hedges_g"] == pytest.approx(hedges_g(p, c))


def test_binary_rows_use_cobalts_denominator(table):
    row = table.loc["is_female"]
    pp, pc = 4 / 6, 4 / 6
    assert row["mean_partnered"] == pytest.approx(pp) and np.isnan(row["variance_ratio"])
    assert row["smd"] == pytest.approx(0.0) and row["flag"] == "good"
    urban = table.loc["setting=urban"]
    assert urban["mean_partnered"] == 0.5 and urban["n_partnered"] == 2
    registered = table.loc["registration_status=registered"]
    p1, p0 = 1.0, 0.5
    assert registered["smd"] == pytest.approx((p1 - p0) / np.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2))
    assert "p_partnered(1-p_partnered)" in registered["smd_denominator"]
    assert pc == pytest.approx(table.loc["is_female", "mean_comparison"])


def test_adjusted_difference_is_the_clustered_regression(table):
    child, _ = tiny_region()
    base = child[(child["wave"] == "baseline")].dropna(subset=["elom_total"])
    X = np.column_stack([np.ones(len(base)), base["is_partnered"].astype(float), base["age_months"],
                         base["sex"] == "male", base["setting"] == "urban"]).astype(float)
    fit = fit_linear(base["elom_total"].to_numpy(), X, ["c", "partnered", "age", "male", "urban"],
                     base["centre_id"].to_numpy())
    expected = fit.coef_test("partnered", "CR1")
    row = table.loc["elom_total"]
    assert row["diff_adjusted"] == pytest.approx(expected["estimate"])
    assert row["se_adjusted"] == pytest.approx(expected["std_error"])
    assert row["p_adjusted"] == pytest.approx(expected["p_value"])


def test_hedges_g_by_hand():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0, 8.0])
    pooled = np.sqrt((2 * 1.0 + 3 * (20 / 3)) / 5)
    assert hedges_g(a, b) == pytest.approx((2 - 5) / pooled * (1 - 3 / (4 * 7 - 9)))
    assert np.isnan(hedges_g([1.0], b))


def test_weighted_smd_moves_towards_balance_on_a_selection_variable():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_estimation import synthetic_outcomes

    child, centres = synthetic_outcomes(21, n_centres=400)
    table = balance_table(child, centres, "Alpha").set_index("variable")
    for level in ("registration_status=registered", "fee_band=high"):
        assert abs(table.loc[level, "smd"]) > 0.2 and table.loc[level, "p_adjusted"] < 0.05
        assert abs(table.loc[level, "smd_weighted"]) < 0.1


def test_joint_tests():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_estimation import synthetic_outcomes

    child, centres = synthetic_outcomes(22, n_centres=200)
    tests = balance_joint_test(child, centres, "Alpha")
    assert list(tests.columns) == JOINT_TEST_COLUMNS
    tests = tests.set_index("test")
    # the centre characteristics drive partnership (and, through them, baseline scores)
    assert tests.loc["centre_variables_F_HC1", "p_value"] < 0.001
    assert tests.loc["all_variables_F_CR1", "p_value"] < 0.01
    assert tests.loc["child_variables_F_CR1", "df1"] == 5 and tests.loc["centre_variables_F_HC1", "df1"] == 4
    assert tests.loc["all_variables_F_CR1", "df2"] == 199
    small = balance_joint_test(*tiny_region(), "R").set_index("test")
    assert small["statistic"].isna().all() and small["note"].str.contains("twice as many centres|both arms").all()


def test_love_plot_is_a_figure(table):
    fig = love_plot(table.reset_index())
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.collections) == 2  # unadjusted and weighted
    assert {round(line.get_xdata()[0], 2) for line in ax.lines} == {0.05, 0.25}
    assert ax.get_title() == "Baseline balance, R"
    assert [t.get_text() for t in fig.legends[0].get_texts()][-2:] == ["0.05: good below", "0.25: fails above"]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "ELOM total (baseline)" in labels
