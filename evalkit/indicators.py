"""Child- and centre-level indicators: age, ELOM, growth, attendance, satisfaction.

Pure functions on DataFrames. The ELOM cut-offs and labels are data
(``rules/elom.yml``); WHO z-scores come from :mod:`evalkit.growth`, parent
satisfaction from :mod:`evalkit.satisfaction`. Every definition, with its source,
is in ``docs/indicators.md``.

Outputs for the pipeline
------------------------
* :func:`build_child_outcomes` → ``processed/child_outcomes.parquet``
  (:data:`CHILD_OUTCOME_COLUMNS`: the contract's columns, then the added ones);
* :func:`region_indicators` → ``results/indicators.csv`` (region × arm × wave);
* :func:`centre_outcomes` → ``processed/centre_outcomes.parquet`` (one row per centre);
* :data:`OUTCOME_FAMILY` names the outcomes the estimation step analyses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

from .config import DAYS_PER_MONTH, ELOM_DOMAINS, load_rules
from .groups import arm_label, region_of_centres
from .growth import CLASS_COLUMNS, FLAG_LIMITS, classify_zscores, who_zscores
from .satisfaction import centre_satisfaction

__all__ = [
    "age_in_days",
    "age_in_months",
    "elom_total",
    "elom_band",
    "standardise_elom_band",
    "is_on_track_band",
    "social_emotional_score",
    "sef_meets_standard",
    "attendance_rate",
    "build_child_outcomes",
    "region_indicators",
    "centre_outcomes",
    "outcome_family_table",
    "OutcomeSpec",
    "OUTCOME_FAMILY",
    "CONTRACT_CHILD_COLUMNS",
    "CHILD_OUTCOME_COLUMNS",
    "REGION_INDICATOR_COLUMNS",
    "CENTRE_OUTCOME_COLUMNS",
]

#: The columns the data contract requires in ``child_outcomes.parquet`` (plus the
#: grouping columns the estimation needs), in the order of the first version.
CONTRACT_CHILD_COLUMNS = [
    "child_id", "centre_id", "region", "province", "district", "wave", "assessment_date",
    "age_months", "sex", "setting", "is_partnered", *ELOM_DOMAINS, "elom_total", "elom_band",
    "haz", "waz", "whz", "baz", "haz_flag", "waz_flag", "whz_flag", "baz_flag",
    "attendance_rate",
]
#: Every column of ``child_outcomes``: the contract's, then those added by issue 4.
CHILD_OUTCOME_COLUMNS = [
    *CONTRACT_CHILD_COLUMNS,
    "is_on_track", *CLASS_COLUMNS, "elom_sef", "is_sef_meeting_standard",
]

# --------------------------------------------------------------------------- age
def age_in_days(date_of_birth: pd.Series, assessment_date: pd.Series) -> pd.Series:
    """Days from birth to assessment (float; missing where either date is missing)."""
    return (assessment_date - date_of_birth).dt.days.astype("float64")


def age_in_months(date_of_birth: pd.Series, assessment_date: pd.Series) -> pd.Series:
    """Age in months as the contract defines it: days ÷ 30.4375 (not floored)."""
    return age_in_days(date_of_birth, assessment_date) / DAYS_PER_MONTH


# --------------------------------------------------------------------------- ELOM
def elom_total(frame: pd.DataFrame) -> pd.Series:
    """Sum of the five ELOM domain scores; missing when any domain is missing."""
    return frame[list(ELOM_DOMAINS)].sum(axis=1, min_count=len(ELOM_DOMAINS))


def _label_set(rules: dict, label_set: str | None) -> dict[str, str]:
    """The band labels of one label set (rules of the first version have only ``labels``)."""
    sets = rules.get("label_sets") or {"current": rules["labels"]}
    name = label_set or rules.get("label_set", "current")
    if name not in sets:
        raise ValueError(f"unknown ELOM label set {name!r}; rules/elom.yml has {', '.join(sets)}")
    return sets[name]


def elom_band(total: pd.Series, age_months: pd.Series, rules: dict | None = None, *,
              label_set: str | None = None) -> pd.Series:
    """ELOM 4&5 standards band from the age-banded cut-offs.

    Parameters
    ----------
    total : Series
        ELOM Total (0–100).
    age_months : Series
        Age in months (days ÷ 30.4375). Age bands use completed months
        (50–59, 60–69); outside the bands the standards do not apply and the
        band is missing.
    rules : dict, optional
        The ELOM rules; default ``rules/elom.yml``.
    label_set : {"current", "older"}, optional
        Which labels to write; default the rules' ``label_set`` ("current":
        Falling Far Behind / Falling Behind / On Track).

    Returns
    -------
    Series (object) of band labels, ``pd.NA`` where no band applies. Cut-offs
    are inclusive lower bounds: a total equal to ``on_track_from`` is On Track.
    """
    rules = rules or load_rules("elom")
    labels = _label_set(rules, label_set)
    completed = np.floor(age_months.to_numpy(dtype="float64", na_value=np.nan))
    values = total.to_numpy(dtype="float64", na_value=np.nan)
    band = np.full(len(total), None, dtype=object)
    for spec in rules["age_bands"]:
        low, high = spec["months"]
        in_band = (completed >= low) & (completed <= high) & ~np.isnan(values)
        band[in_band & (values < spec["falling_behind_from"])] = labels["far_behind"]
        band[in_band & (values >= spec["falling_behind_from"]) & (values < spec["on_track_from"])] = labels["behind"]
        band[in_band & (values >= spec["on_track_from"])] = labels["on_track"]
    return pd.Series(band, index=total.index, dtype="object").where(pd.notna(band), pd.NA)


def _band_lookup(rules: dict) -> dict[str, str]:
    """Folded spelling → current label, from every label set and the synonyms."""
    current = _label_set(rules, "current")
    lookup = {}
    for labels in (rules.get("label_sets") or {"current": rules["labels"]}).values():
        for key, text in labels.items():
            lookup[str(text).strip().lower()] = current[key]
    for text, canonical in (rules.get("label_synonyms") or {}).items():
        lookup[str(text).strip().lower()] = canonical
    return lookup


def standardise_elom_band(bands: pd.Series, rules: dict | None = None) -> pd.Series:
    """Map band labels of either label set (any case, stray spaces) to the current set.

    Raises
    ------
    ValueError
        Naming the labels that are in neither set (nothing is guessed).
    """
    rules = rules or load_rules("elom")
    lookup = _band_lookup(rules)
    text = bands.astype("object")
    present = text.notna().to_numpy()
    values = text[present]
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        # A million children have three labels: each distinct label is folded once.
        codes, distinct = pd.factorize(values)
        folded = pd.Series(distinct, dtype="object").astype(str).str.strip().str.lower()
        mapped = pd.Series(folded.map(lookup).to_numpy(dtype=object)[codes], index=values.index, dtype="object")
    else:
        mapped = values.astype(str).str.strip().str.lower().map(lookup)
    unknown = sorted(set(values[mapped.isna().to_numpy()].astype(str)))
    if unknown:
        raise ValueError(f"unknown ELOM band label(s): {', '.join(unknown)}")
    out = np.full(len(text), pd.NA, dtype=object)
    out[present] = mapped.to_numpy(dtype=object)
    return pd.Series(out, index=bands.index, dtype="object")


def is_on_track_band(bands: pd.Series, rules: dict | None = None) -> pd.Series:
    """Nullable boolean: the band is On Track ("Achieving the Standard"); <NA> when missing."""
    rules = rules or load_rules("elom")
    standard = standardise_elom_band(bands, rules)
    on_track = _label_set(rules, "current")["on_track"]
    values = (standard == on_track).fillna(False).to_numpy(dtype=bool)
    return pd.Series(pd.arrays.BooleanArray(values, standard.isna().to_numpy()), index=bands.index)


def social_emotional_score(child_assessments: pd.DataFrame, rules: dict | None = None) -> pd.Series:
    """The teacher-rated social-emotional score (``elom_sef``) when the table has one.

    The first column present among ``social_emotional.column`` and its aliases in
    ``rules/elom.yml`` is used; without one, the result is all missing. The scale
    is never added to ``elom_total`` (that is the five direct-assessment domains).
    """
    spec = (rules or load_rules("elom")).get("social_emotional") or {}
    names = [spec.get("column", "elom_sef"), *spec.get("aliases", [])]
    for name in names:
        if name in child_assessments.columns:
            # astype raises on text: a non-numeric score is a cleaning problem, not a NaN.
            return child_assessments[name].astype("float64").rename("elom_sef")
    return pd.Series(np.nan, index=child_assessments.index, dtype="float64", name="elom_sef")


def sef_meets_standard(score: pd.Series, rules: dict | None = None) -> pd.Series:
    """Nullable boolean: social-emotional score ≥ the configured cut-off.

    All <NA> while ``social_emotional.meets_standard_from`` is empty (the default).
    """
    spec = (rules or load_rules("elom")).get("social_emotional") or {}
    cutoff = spec.get("meets_standard_from")
    values = score.to_numpy(dtype="float64", na_value=np.nan)
    if cutoff is None:
        missing = np.ones(len(score), dtype=bool)
    else:
        missing = np.isnan(values)
    with np.errstate(invalid="ignore"):
        meets = np.where(missing, False, values >= (np.nan if cutoff is None else float(cutoff)))
    return pd.Series(pd.arrays.BooleanArray(meets, missing), index=score.index)


# --------------------------------------------------------------------- attendance
def attendance_rate(days_attended: pd.Series, days_possible: pd.Series) -> pd.Series:
    """Share of possible days attended; missing when days possible is 0 or missing."""
    possible = days_possible.where(days_possible > 0)
    return days_attended / possible


# ---------------------------------------------------------------- child outcomes
def build_child_outcomes(child_assessments: pd.DataFrame, centres: pd.DataFrame,
                         treatment: pd.DataFrame, *, level: str = "province") -> pd.DataFrame:
    """One de-identified row per child per wave with every child-level indicator.

    Parameters
    ----------
    child_assessments, centres : DataFrame
        Clean tables (:func:`evalkit.cleaning.clean_all`).
    treatment : DataFrame
        :func:`evalkit.treatment.derive_treatment` (``centre_id``, ``is_partnered``).
    level : {"province", "district"}
        What ``region`` is.

    Returns
    -------
    DataFrame with :data:`CHILD_OUTCOME_COLUMNS`: the contract's columns, then
    ``is_on_track`` (nullable boolean), ``is_stunted``, ``is_severely_stunted``,
    ``is_wasted``, ``is_underweight``, ``is_overweight`` (nullable booleans,
    <NA> where the z-score is missing or flagged implausible), ``elom_sef``
    (teacher-rated social-emotional score; missing when the data has none) and
    ``is_sef_meeting_standard``.
    """
    elom_rules = load_rules("elom")
    frame = child_assessments.merge(
        centres[["centre_id", "province", "district", "setting"]], on="centre_id", how="left"
    ).merge(treatment[["centre_id", "is_partnered"]], on="centre_id", how="left")
    frame["region"] = region_of_centres(frame, level)
    days = age_in_days(frame["date_of_birth"], frame["assessment_date"])
    frame["age_months"] = days / DAYS_PER_MONTH
    frame["elom_total"] = elom_total(frame)
    frame["elom_band"] = elom_band(frame["elom_total"], frame["age_months"], elom_rules)
    z = who_zscores(days, frame["sex"], frame["height_cm"], frame["weight_kg"])
    for column in ("haz", "waz", "whz", "baz", "haz_flag", "waz_flag", "whz_flag", "baz_flag",
                   *CLASS_COLUMNS):
        frame[column] = z[column].array
    frame["attendance_rate"] = attendance_rate(frame["days_attended"], frame["days_possible"])
    frame["is_on_track"] = is_on_track_band(frame["elom_band"], elom_rules)
    frame["elom_sef"] = social_emotional_score(frame, elom_rules)
    frame["is_sef_meeting_standard"] = sef_meets_standard(frame["elom_sef"], elom_rules)
    return frame[CHILD_OUTCOME_COLUMNS].reset_index(drop=True)


def _as_float(values: pd.Series) -> pd.Series:
    """Nullable booleans/numbers as float64 with NaN for missing (for means)."""
    return values.astype("Float64").astype("float64")


def _usable_z(frame: pd.DataFrame, name: str) -> pd.Series:
    """A z-score with flagged (implausible) values blanked, as WHO's summaries do."""
    z = frame[name].astype("float64")
    flag_column = f"{name}_flag"
    if flag_column in frame:
        flagged = frame[flag_column].astype("boolean").fillna(False).to_numpy(dtype=bool)
    else:
        low, high = FLAG_LIMITS[name]
        flagged = ((z < low) | (z > high)).to_numpy()
    return z.mask(flagged)


def _indicator_inputs(child_outcomes: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns to aggregate; flags and classes derived when a frame lacks them
    (frames written by the first version have no ``is_on_track`` or class columns)."""
    co = child_outcomes
    out = pd.DataFrame({"region": co["region"], "arm": arm_label(co["is_partnered"]),
                        "wave": co["wave"], "child_id": co["child_id"], "centre_id": co["centre_id"]},
                       index=co.index)
    for name in ("elom_total", *ELOM_DOMAINS, "attendance_rate", "elom_sef"):
        out[name] = co[name].astype("float64") if name in co else np.nan
    band = standardise_elom_band(co["elom_band"]) if "elom_band" in co else pd.Series(pd.NA, index=co.index)
    on_track = co["is_on_track"] if "is_on_track" in co else is_on_track_band(band)
    out["is_on_track"] = _as_float(on_track)
    current = _label_set(load_rules("elom"), "current")
    has_band = band.notna()
    out["is_falling_behind"] = (band == current["behind"]).astype("float64").where(has_band)
    out["is_falling_far_behind"] = (band == current["far_behind"]).astype("float64").where(has_band)
    usable = {name: _usable_z(co, name) for name in ("haz", "waz", "whz", "baz")}
    classes = None
    for name in CLASS_COLUMNS:
        if name in co:
            out[name] = _as_float(co[name])
        else:
            classes = classes if classes is not None else classify_zscores(pd.DataFrame(usable))
            out[name] = _as_float(classes[name])
    for name, values in usable.items():
        out[name] = values
    return out


#: ``results/indicators.csv``: the first version's columns, then the added ones.
REGION_INDICATOR_COLUMNS = [
    "region", "arm", "wave", "n_children", "n_centres", "elom_total_mean", "elom_total_sd",
    "on_track_pct", "haz_mean", "stunted_pct", "attendance_rate_mean",
    "n_with_elom_total", *(f"{d}_mean" for d in ELOM_DOMAINS), "n_with_band",
    "falling_behind_pct", "falling_far_behind_pct", "n_with_haz", "severely_stunted_pct",
    "waz_mean", "underweight_pct", "whz_mean", "wasted_pct", "overweight_pct", "baz_mean",
    "n_with_attendance", "elom_sef_mean",
]


def region_indicators(child_outcomes: pd.DataFrame) -> pd.DataFrame:
    """Child indicators by region × arm × wave (tidy, for ``results/indicators.csv``).

    ``arm`` is 'partnered', 'comparison' or 'unknown' (no treatment status).
    Percentages are over children with a value (``n_with_*``); z-score means and
    growth percentages leave out flagged implausible values, as WHO's summaries
    do. ``on_track_pct`` is % On Track among children in the ELOM age bands.
    Columns: :data:`REGION_INDICATOR_COLUMNS`.
    """
    frame = _indicator_inputs(child_outcomes)
    grouped = frame.groupby(["region", "arm", "wave"], sort=True, dropna=False)
    out = grouped.agg(
        n_children=("child_id", "nunique"),
        n_centres=("centre_id", "nunique"),
        elom_total_mean=("elom_total", "mean"),
        elom_total_sd=("elom_total", "std"),
        on_track_pct=("is_on_track", "mean"),
        haz_mean=("haz", "mean"),
        stunted_pct=("is_stunted", "mean"),
        attendance_rate_mean=("attendance_rate", "mean"),
        n_with_elom_total=("elom_total", "count"),
        **{f"{d}_mean": (d, "mean") for d in ELOM_DOMAINS},
        n_with_band=("is_on_track", "count"),
        falling_behind_pct=("is_falling_behind", "mean"),
        falling_far_behind_pct=("is_falling_far_behind", "mean"),
        n_with_haz=("haz", "count"),
        severely_stunted_pct=("is_severely_stunted", "mean"),
        waz_mean=("waz", "mean"),
        underweight_pct=("is_underweight", "mean"),
        whz_mean=("whz", "mean"),
        wasted_pct=("is_wasted", "mean"),
        overweight_pct=("is_overweight", "mean"),
        baz_mean=("baz", "mean"),
        n_with_attendance=("attendance_rate", "count"),
        elom_sef_mean=("elom_sef", "mean"),
    ).reset_index()
    for column in out.columns:
        if column.endswith("_pct"):
            out[column] *= 100
    return out[REGION_INDICATOR_COLUMNS]


# --------------------------------------------------------------- centre outcomes
#: ``processed/centre_outcomes.parquet``: one row per centre.
CENTRE_OUTCOME_COLUMNS = [
    "centre_id", "region", "province", "district", "setting", "registration_status", "fee_band",
    "is_partnered", "arm", "exposure_months", "n_partnerships_qualifying",
    "has_feedback_channel", "enrolment", "practitioners", "practitioners_trained",
    "practitioners_trained_pct", "parent_events",
    "n_children_baseline", "n_children_endline", "elom_total_mean_endline", "on_track_pct_endline",
    "attendance_rate_mean", "attendance_rate_mean_baseline",
    "n_responses", "n_valid_answers", "customer_service_score_pct", "satisfaction_mean_index",
    "n_recommend_valid", "nps", "is_below_refresher_threshold",
]


def _child_summary_by_centre(child_outcomes: pd.DataFrame) -> pd.DataFrame:
    co = child_outcomes
    frame = pd.DataFrame({
        "centre_id": co["centre_id"], "wave": co["wave"], "child_id": co["child_id"],
        "elom_total": co["elom_total"].astype("float64"),
        "is_on_track": _as_float(co["is_on_track"]) if "is_on_track" in co
        else _as_float(is_on_track_band(co["elom_band"])),
        "attendance_rate": co["attendance_rate"].astype("float64"),
    })
    wide = frame.groupby(["centre_id", "wave"]).agg(
        n_children=("child_id", "nunique"), elom_total_mean=("elom_total", "mean"),
        on_track_pct=("is_on_track", "mean"), attendance_rate_mean=("attendance_rate", "mean"),
    ).unstack("wave")
    out = pd.DataFrame(index=wide.index)

    def pick(stat: str, wave: str) -> pd.Series:
        return wide[(stat, wave)] if (stat, wave) in wide.columns else pd.Series(np.nan, index=wide.index)

    out["n_children_baseline"] = pick("n_children", "baseline").fillna(0).astype("int64")
    out["n_children_endline"] = pick("n_children", "endline").fillna(0).astype("int64")
    out["elom_total_mean_endline"] = pick("elom_total_mean", "endline")
    out["on_track_pct_endline"] = 100 * pick("on_track_pct", "endline")
    out["attendance_rate_mean"] = pick("attendance_rate_mean", "endline")
    out["attendance_rate_mean_baseline"] = pick("attendance_rate_mean", "baseline")
    return out


def centre_outcomes(centres: pd.DataFrame, parent_survey: pd.DataFrame, treatment: pd.DataFrame,
                    child_outcomes: pd.DataFrame, *, level: str = "province",
                    targets: dict | None = None) -> pd.DataFrame:
    """One row per centre: its characteristics, treatment, child summaries and the
    parent-satisfaction outcomes the centre-level estimation analyses.

    Parameters
    ----------
    centres, parent_survey : DataFrame
        Clean tables.
    treatment : DataFrame
        :func:`evalkit.treatment.derive_treatment`.
    child_outcomes : DataFrame
        :func:`build_child_outcomes` (built at the same ``level``).
    level : {"province", "district"}
        What ``region`` is.
    targets : dict, optional
        ``rules/targets.yml`` (for ``refresher_training_below_pct``).

    Returns
    -------
    DataFrame with :data:`CENTRE_OUTCOME_COLUMNS`, every centre of ``centres``
    (centres without children or responses have missing summaries and 0 counts).
    ``attendance_rate_mean`` is the endline wave's mean (the period the
    outcome is measured in); ``customer_service_score_pct`` is the top-2-box
    % over all valid Likert answers of the centre's parents;
    ``satisfaction_mean_index`` is the mean 1–5 answer (a different metric).

    Raises
    ------
    ValueError
        When ``child_outcomes`` places a centre in another region than ``level``
        gives (the two were built at different levels).
    """
    targets = targets or load_rules("targets")
    out = centres[["centre_id", "province", "district", "setting", "registration_status",
                   "fee_band", "enrolment", "practitioners", "practitioners_trained",
                   "parent_events"]].copy()
    out["region"] = region_of_centres(centres, level).to_numpy()
    known = child_outcomes[["centre_id", "region"]].dropna().drop_duplicates()
    check = known.merge(out[["centre_id", "region"]], on="centre_id", suffixes=("", "_centre"))
    clash = check["region"].astype(str) != check["region_centre"].astype(str)
    if clash.any():
        raise ValueError(f"child_outcomes puts {int(clash.sum())} centre(s) in another region than "
                         f"level={level!r} does (e.g. {check.loc[clash, 'centre_id'].iloc[0]}); "
                         "build both at the same level")
    channel = centres["feedback_channel"].astype("object")
    out["has_feedback_channel"] = pd.array(
        np.where(channel.notna(), channel == "yes", False), dtype="boolean")
    out.loc[channel.isna().to_numpy(), "has_feedback_channel"] = pd.NA
    with np.errstate(invalid="ignore", divide="ignore"):
        out["practitioners_trained_pct"] = 100 * out["practitioners_trained"] / out["practitioners"].where(
            out["practitioners"] > 0)
    out = out.merge(treatment[["centre_id", "is_partnered", "exposure_months",
                               "n_partnerships_qualifying"]], on="centre_id", how="left")
    out["is_partnered"] = out["is_partnered"].astype("boolean")
    out["arm"] = arm_label(out["is_partnered"])
    out = out.merge(_child_summary_by_centre(child_outcomes), left_on="centre_id",
                    right_index=True, how="left")
    out = out.merge(centre_satisfaction(parent_survey), on="centre_id", how="left")
    for column in ("n_children_baseline", "n_children_endline", "n_responses", "n_valid_answers",
                   "n_recommend_valid", "n_partnerships_qualifying"):
        out[column] = out[column].fillna(0).astype("int64")
    threshold = float(targets["refresher_training_below_pct"])
    css = out["customer_service_score_pct"]
    out["is_below_refresher_threshold"] = pd.array(
        np.where(css.notna(), css < threshold, False), dtype="boolean")
    out.loc[css.isna().to_numpy(), "is_below_refresher_threshold"] = pd.NA
    return out[CENTRE_OUTCOME_COLUMNS].reset_index(drop=True)


# ------------------------------------------------------------------ outcome family
@dataclass(frozen=True)
class OutcomeSpec:
    """One outcome the estimation step analyses.

    Attributes
    ----------
    name : column name in ``child_outcomes`` (``level='child'``) or
        ``centre_outcomes`` (``level='centre'``).
    label, unit : how reports name it and its unit.
    level : 'child' or 'centre'.
    role : 'primary' (the contract's headline) or 'secondary'.
    kind : 'continuous' or 'binary' (a nullable boolean column; its mean is a share).
    is_higher_better : direction, for sign-aligning a summary index and for wording.
    """

    name: str
    label: str
    unit: str
    level: Literal["child", "centre"]
    role: Literal["primary", "secondary"]
    kind: Literal["continuous", "binary"]
    is_higher_better: bool


_DOMAIN_LABELS = {
    "elom_gmd": "ELOM gross motor development",
    "elom_fmc": "ELOM fine motor coordination & visual-motor integration",
    "elom_enm": "ELOM emergent numeracy & mathematics",
    "elom_cef": "ELOM cognition & executive functioning",
    "elom_ell": "ELOM emergent literacy & language",
}

#: The outcome family of the estimation step, primary first. Child-level outcomes
#: are columns of ``child_outcomes``; the centre-level one of ``centre_outcomes``.
OUTCOME_FAMILY: tuple[OutcomeSpec, ...] = (
    OutcomeSpec("elom_total", "ELOM total", "points (0–100)", "child", "primary", "continuous", True),
    *(OutcomeSpec(d, _DOMAIN_LABELS[d], "points (0–20)", "child", "secondary", "continuous", True)
      for d in ELOM_DOMAINS),
    OutcomeSpec("is_on_track", "On Track on the ELOM standards", "share of children", "child",
                "secondary", "binary", True),
    OutcomeSpec("haz", "Height-for-age z-score", "z-score (SD)", "child", "secondary", "continuous", True),
    OutcomeSpec("is_stunted", "Stunted (height-for-age z < −2)", "share of children", "child",
                "secondary", "binary", False),
    OutcomeSpec("attendance_rate", "Attendance rate", "share of possible days", "child",
                "secondary", "continuous", True),
    OutcomeSpec("customer_service_score_pct", "Customer service score (top-2-box)",
                "percent of answers", "centre", "secondary", "continuous", True),
)


def outcome_family_table() -> pd.DataFrame:
    """:data:`OUTCOME_FAMILY` as a DataFrame (one row per outcome)."""
    return pd.DataFrame([asdict(spec) for spec in OUTCOME_FAMILY])
