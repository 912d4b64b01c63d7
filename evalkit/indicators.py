"""Child-level indicators: age, ELOM total and standards band, attendance, growth.

Pure functions on DataFrames. The ELOM cut-offs are data (``rules/elom.yml``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import DAYS_PER_MONTH, ELOM_DOMAINS, load_rules

__all__ = [
    "age_in_days",
    "age_in_months",
    "elom_total",
    "elom_band",
    "attendance_rate",
    "build_child_outcomes",
    "CHILD_OUTCOME_COLUMNS",
]

CHILD_OUTCOME_COLUMNS = [
    "child_id", "centre_id", "region", "province", "district", "wave", "assessment_date",
    "age_months", "sex", "setting", "is_partnered", *ELOM_DOMAINS, "elom_total", "elom_band",
    "haz", "waz", "whz", "baz", "haz_flag", "waz_flag", "whz_flag", "baz_flag",
    "attendance_rate",
]


def age_in_days(date_of_birth: pd.Series, assessment_date: pd.Series) -> pd.Series:
    """Days from birth to assessment (float; missing where either date is missing)."""
    return (assessment_date - date_of_birth).dt.days.astype("float64")


def age_in_months(date_of_birth: pd.Series, assessment_date: pd.Series) -> pd.Series:
    """Age in months as the contract defines it: days ÷ 30.4375 (not floored)."""
    return age_in_days(date_of_birth, assessment_date) / DAYS_PER_MONTH


def elom_total(frame: pd.DataFrame) -> pd.Series:
    """Sum of the five ELOM domain scores; missing when any domain is missing."""
    return frame[list(ELOM_DOMAINS)].sum(axis=1, min_count=len(ELOM_DOMAINS))


def elom_band(total: pd.Series, age_months: pd.Series, rules: dict | None = None) -> pd.Series:
    """ELOM 4&5 standards band from the age-banded cut-offs.

    Age bands use completed months (50–59, 60–69). Outside the bands the
    standards do not apply and the band is missing.
    """
    rules = rules or load_rules("elom")
    labels = rules["labels"]
    completed = np.floor(age_months.to_numpy(dtype="float64"))
    values = total.to_numpy(dtype="float64")
    band = np.full(len(total), None, dtype=object)
    for spec in rules["age_bands"]:
        low, high = spec["months"]
        in_band = (completed >= low) & (completed <= high) & ~np.isnan(values)
        band[in_band & (values < spec["falling_behind_from"])] = labels["far_behind"]
        band[in_band & (values >= spec["falling_behind_from"]) & (values < spec["on_track_from"])] = labels["behind"]
        band[in_band & (values >= spec["on_track_from"])] = labels["on_track"]
    return pd.Series(band, index=total.index, dtype="object").where(pd.notna(band), pd.NA)


def attendance_rate(days_attended: pd.Series, days_possible: pd.Series) -> pd.Series:
    """Share of possible days attended; missing when days possible is 0 or missing."""
    possible = days_possible.where(days_possible > 0)
    return days_attended / possible


def build_child_outcomes(child_assessments: pd.DataFrame, centres: pd.DataFrame,
                         treatment: pd.DataFrame, *, level: str = "province") -> pd.DataFrame:
    """One de-identified row per child per wave with every child-level indicator."""
    from .growth import who_zscores

    frame = child_assessments.merge(
        centres[["centre_id", "province", "district", "setting"]], on="centre_id", how="left"
    ).merge(treatment[["centre_id", "is_partnered"]], on="centre_id", how="left")
    if level == "province":
        frame["region"] = frame["province"]
    elif level == "district":
        frame["region"] = frame["district"]
    else:
        raise ValueError(f"unknown level {level!r}: use 'province' or 'district'")
    days = age_in_days(frame["date_of_birth"], frame["assessment_date"])
    frame["age_months"] = days / DAYS_PER_MONTH
    frame["elom_total"] = elom_total(frame)
    frame["elom_band"] = elom_band(frame["elom_total"], frame["age_months"])
    z = who_zscores(days, frame["sex"], frame["height_cm"], frame["weight_kg"])
    for column in ("haz", "waz", "whz", "baz", "haz_flag", "waz_flag", "whz_flag", "baz_flag"):
        frame[column] = z[column].to_numpy()
    frame["attendance_rate"] = attendance_rate(frame["days_attended"], frame["days_possible"])
    return frame[CHILD_OUTCOME_COLUMNS].reset_index(drop=True)
