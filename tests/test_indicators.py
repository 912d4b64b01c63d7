"""Child-level indicators: age, ELOM total and bands at the exact cut-offs, attendance."""

import numpy as np
import pandas as pd
import pytest

from evalkit.indicators import age_in_months, attendance_rate, elom_band, elom_total


def test_age_in_months_uses_30_4375_days():
    dob = pd.Series(pd.to_datetime(["2020-01-01", None]))
    on = pd.Series(pd.to_datetime(["2024-07-01", "2024-07-01"]))
    assert age_in_months(dob, on).iloc[0] == pytest.approx(1643 / 30.4375)
    assert np.isnan(age_in_months(dob, on).iloc[1])


def test_elom_total_missing_when_any_domain_missing():
    frame = pd.DataFrame({"elom_gmd": [10, 10], "elom_fmc": [9.5, np.nan], "elom_enm": [8, 8],
                          "elom_cef": [7, 7], "elom_ell": [6.25, 6]})
    total = elom_total(frame)
    assert total.iloc[0] == pytest.approx(40.75) and np.isnan(total.iloc[1])


@pytest.mark.parametrize("total, age, band", [
    (36.02, 50.0, "Falling Behind"), (36.01, 50.0, "Falling Far Behind"),
    (46.32, 59.99, "On Track"), (46.31, 59.99, "Falling Behind"),
    (43.24, 60.0, "Falling Behind"), (43.23, 60.0, "Falling Far Behind"),
    (54.38, 69.5, "On Track"), (54.37, 69.5, "Falling Behind"),
    (46.32, 60.0, "Falling Behind"),  # the older band's higher cut-off applies from 60 months
])
def test_elom_band_at_exact_cutoffs(total, age, band):
    assert elom_band(pd.Series([total]), pd.Series([age])).iloc[0] == band


@pytest.mark.parametrize("age", [49.99, 70.0, np.nan])
def test_elom_band_outside_the_standards_is_missing(age):
    assert pd.isna(elom_band(pd.Series([50.0]), pd.Series([age])).iloc[0])


def test_attendance_rate():
    rate = attendance_rate(pd.Series([45.0, 10.0, 5.0]), pd.Series([60.0, 0.0, np.nan]))
    assert rate.iloc[0] == pytest.approx(0.75)
    assert rate.iloc[1:].isna().all()
