"""BH and Anderson's sharpened q-values, and the Kling-Liebman-Katz index: hand-computed
cases and an independent implementation (statsmodels)."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from evalkit.multiplicity import bh_qvalues, kling_components, kling_index, sharpened_qvalues


def test_bh_by_hand():
    p = [0.01, 0.04, 0.03, 0.20]
    # sorted 0.01, 0.03, 0.04, 0.20 -> 0.04, 0.06, 0.0533, 0.20 -> step-up minimum from the top
    assert bh_qvalues(p) == pytest.approx([0.04, 0.05333333, 0.05333333, 0.20])
    assert np.isnan(bh_qvalues([0.5, np.nan])[1]) and bh_qvalues([0.5, np.nan])[0] == 0.5


def test_bh_equals_statsmodels(rng):
    for _ in range(20):
        p = rng.uniform(0, 0.2, rng.integers(1, 15)) ** rng.uniform(0.5, 3)
        np.testing.assert_allclose(bh_qvalues(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)


def test_sharpened_single_hypothesis_by_hand():
    # one p-value: rejected at q exactly when p <= q/(1+q), i.e. q >= p/(1-p): 0.04/0.96 = 0.04167
    assert sharpened_qvalues([0.04]) == pytest.approx([0.042])
    assert sharpened_qvalues([0.9]) == pytest.approx([1.0])


def test_sharpened_rejections_equal_statsmodels_two_stage_bky(rng):
    for _ in range(30):
        p = np.concatenate([rng.uniform(0, 0.02, rng.integers(0, 6)), rng.uniform(0, 1, rng.integers(1, 10))])
        q = sharpened_qvalues(p)
        for alpha in (0.01, 0.05, 0.1, 0.25):
            rejected = multipletests(p, alpha=alpha, method="fdr_tsbky")[0]
            # every hypothesis the two-stage procedure rejects at alpha has q <= alpha
            assert np.all(q[rejected] <= alpha + 1e-9)
        assert np.all((q >= 0.001) & (q <= 1.0))


def test_sharpened_gains_power_over_bh_when_many_nulls_are_false():
    # with most hypotheses false the second stage raises the level by M/(M − r1): the marginal
    # p-values get smaller q-values than BH (the very smallest can get slightly larger ones,
    # because the first stage runs at q/(1+q))
    p = np.array([0.001, 0.002, 0.004, 0.01, 0.02, 0.03, 0.04, 0.045, 0.6, 0.8])
    sharpened, bh = sharpened_qvalues(p), bh_qvalues(p)
    assert np.all(sharpened[3:8] < bh[3:8])
    assert sharpened[7] < 0.05 < bh[7]


def test_kling_index_by_hand():
    frame = pd.DataFrame({
        "region": "R", "wave": "endline",
        "is_partnered": [False, False, False, True, True],
        "a": [1.0, 2.0, 3.0, 4.0, np.nan],
        "b": [10.0, 30.0, 20.0, 10.0, 40.0],  # lower is better
    })
    index = kling_index(frame, [("a", True), ("b", False)], min_share=0.5)
    # comparison means 2 and 20, SDs 1 and 10; z_a = a-2, z_b = -(b-20)/10
    raw = np.array([(-1 + 1) / 2, (0 - 1) / 2, (1 + 0) / 2, (2 + 1) / 2, -2.0])
    ref = raw[:3]
    expected = (raw - ref.mean()) / ref.std(ddof=1)
    np.testing.assert_allclose(index.to_numpy(), expected)


def test_kling_index_is_standardised_on_the_comparison_group_per_region_and_wave(rng):
    n = 400
    frame = pd.DataFrame({"region": rng.choice(["A", "B"], n), "wave": rng.choice(["baseline", "endline"], n),
                          "is_partnered": pd.array(rng.random(n) < 0.4, dtype="boolean"),
                          "elom_gmd": rng.normal(10, 3, n), "haz": rng.normal(-0.5, 1, n),
                          "attendance_rate": rng.beta(8, 2, n)})
    frame.loc[::17, "haz"] = np.nan
    assert [c for c, _ in kling_components(frame.columns)] == ["elom_gmd", "haz", "attendance_rate"]
    index = kling_index(frame)
    comparison = frame.assign(index=index).loc[~frame["is_partnered"]]
    stats = comparison.groupby(["region", "wave"])["index"].agg(["mean", "std"])
    np.testing.assert_allclose(stats["mean"], 0, atol=1e-12)
    np.testing.assert_allclose(stats["std"], 1, atol=1e-12)
    assert index.notna().all()  # two of three components are enough
