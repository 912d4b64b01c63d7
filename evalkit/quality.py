"""Data-quality checks for field teams, in the spirit of IPA's high-frequency checks.

All checks run on the clean tables, so a missing code such as ``-999`` is already
missing (with its reason in the cleaning log) and can never pose as an outlier:

* **outliers** by Tukey's IQR fences or mean ± k SD, within groups (wave);
* **missingness** by variable, arm (partnered / comparison) and wave, with the
  reasons (don't know, refused, a value set missing by a rule, blank), and
  differential missingness between the arms;
* **assessors** whose children's scores stand apart from the other assessors'
  (level and spread), who record too many assessments in one day or on weekends,
  or who leave many ELOM domains out;
* **completeness per centre**: children per wave, follow-up from baseline to
  endline, complete ELOM totals; a centre without an endline has no treatment status;
* **age** outside the ELOM 4&5 window.

Thresholds are data (``evalkit/rules/quality.yml``). :func:`check_quality` returns a
:class:`QualityReport`: one row per flag for the workbook field teams work
through (with the cleaning log's warnings and errors and any schema failure), the
tables behind each check, and a tidy summary (``results/data_quality_checks.csv``);
:func:`cleaning_summary` gives the cleaning log's counts (``results/data_quality.csv``).
Nothing personal is in any of them: the clean tables hold none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .cleaning import CleanData
from .config import DAYS_PER_MONTH, ELOM_DOMAINS, load_rules
from .groups import arm_label
from .indicators import elom_total
from .treatment import derive_treatment

__all__ = [
    "FLAG_COLUMNS",
    "SUMMARY_COLUMNS",
    "QualityReport",
    "find_outliers",
    "missingness",
    "assessor_checks",
    "centre_completeness",
    "age_checks",
    "cleaning_flags",
    "cleaning_summary",
    "CLEANING_SUMMARY_COLUMNS",
    "check_quality",
]

#: One row per flag, in the order a field team works through them.
FLAG_COLUMNS = ["flag_id", "severity", "source", "check", "table", "record_id", "row", "column", "value",
                "detail", "what_to_do"]
#: ``results/data_quality.csv``: rows changed, flagged and dropped by table, action and rule.
CLEANING_SUMMARY_COLUMNS = ["table", "action", "rule", "n_rows", "severity"]
#: ``results/data_quality_checks.csv``: one row per check x table x column x group.
SUMMARY_COLUMNS = ["check", "table", "column", "group", "n", "n_flagged", "pct_flagged", "severity", "detail"]

_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
_SOURCE_ORDER = {"cleaning": 0, "schema": 1, "quality": 2}
_KEYS = {"centres": ["centre_id"], "partnerships": ["partnership_id"], "child_assessments": ["child_id", "wave"],
         "parent_survey": ["response_id"]}


@dataclass(frozen=True)
class QualityReport:
    """Everything ``evalkit check`` reports.

    Attributes
    ----------
    flags : DataFrame
        :data:`FLAG_COLUMNS`: every record or variable a field team should look at.
    summary : DataFrame
        :data:`SUMMARY_COLUMNS`: counts per check (``results/data_quality_checks.csv``).
    outliers, missingness, assessors, centres : DataFrame
        The tables behind each check.
    schema : DataFrame
        Schema failures of the clean tables (empty when all pass).
    row_counts : dict
        Rows read, kept and dropped per table (from cleaning).
    """

    flags: pd.DataFrame
    summary: pd.DataFrame
    outliers: pd.DataFrame
    missingness: pd.DataFrame
    assessors: pd.DataFrame
    centres: pd.DataFrame
    schema: pd.DataFrame = field(default_factory=pd.DataFrame)
    row_counts: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def _record_ids(frame: pd.DataFrame, table: str) -> pd.Series:
    keys = [k for k in _KEYS.get(table, []) if k in frame.columns]
    if not keys:
        return pd.Series("", index=frame.index, dtype="object")
    text = frame[keys[0]].astype(str)
    for key in keys[1:]:
        text = text + "/" + frame[key].astype(str)
    return text


def _rows(clean: CleanData | None, table: str, frame: pd.DataFrame) -> pd.Series:
    rows = (clean.source_rows.get(table) if clean is not None else None)
    if rows is None or len(rows) != len(frame):
        return pd.Series(pd.NA, index=frame.index, dtype="Int64")
    return pd.Series(rows, index=frame.index, dtype="Int64")


def _text(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.strftime("%Y-%m-%d").astype("object").where(values.notna(), "")
    if pd.api.types.is_float_dtype(values):
        return values.map(lambda v: "" if pd.isna(v) else f"{v:g}")
    return values.astype("object").where(values.notna(), "").astype(str)


def _fmt(values: pd.Series, pattern: str) -> pd.Series:
    """Format numbers as text (object dtype even when empty, so that text can be added)."""
    return values.map(lambda v: "" if pd.isna(v) else pattern.format(v)).astype("object")


def _flags(check: str, table: str, frame: pd.DataFrame, mask: Any, *, column: str = "",
           value: Any = "", detail: Any = "", source: str = "quality", record_id: Any = None,
           row: Any = None, severity: str | None = None) -> pd.DataFrame:
    mask = np.asarray(mask, dtype=bool)
    selected = frame.loc[mask]

    def pick(item: Any) -> Any:
        if isinstance(item, pd.Series):
            return item.loc[mask].to_numpy()
        return item

    return pd.DataFrame({
        "severity": severity or "",
        "source": source,
        "check": check,
        "table": table,
        "record_id": pick(record_id) if record_id is not None else _record_ids(selected, table).to_numpy(),
        "row": pick(row) if row is not None else pd.array([pd.NA] * len(selected), dtype="Int64"),
        "column": column,
        "value": pick(value),
        "detail": pick(detail),
    }, index=range(len(selected)))


def _arms(tables: dict[str, pd.DataFrame], treatment: pd.DataFrame | None) -> pd.Series:
    """Arm of every centre: partnered, comparison or unknown (no endline)."""
    if treatment is None:
        treatment = derive_treatment(tables["centres"], tables["partnerships"], tables["child_assessments"])
    return pd.Series(arm_label(treatment["is_partnered"]).to_numpy(), index=treatment["centre_id"].to_numpy())


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


# --------------------------------------------------------------------------- outliers


def find_outliers(frame: pd.DataFrame, table: str, columns: list[str], *, group_by: list[str] | None = None,
                  method: str = "iqr", iqr_multiplier: float = 1.5, sd_multiplier: float = 3.0, min_n: int = 20,
                  rows: pd.Series | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Values outside their group's fences.

    Parameters
    ----------
    frame : DataFrame
        A clean table (missing codes already missing).
    columns : list of str
        Numeric columns to screen.
    group_by : list of str, optional
        Fences are computed within these groups (e.g. ``["wave"]``).
    method : {"iqr", "sd"}
        ``iqr``: outside [Q1 − k·IQR, Q3 + k·IQR] (Tukey); ``sd``: outside mean ± k·SD.
    min_n : int
        Groups with fewer non-missing values are not screened.

    Returns
    -------
    summary : DataFrame
        ``table, column, group, method, n, low, high, n_outliers``.
    flags : DataFrame
        One row per outlying value.
    """
    if method not in {"iqr", "sd"}:
        raise ValueError(f"unknown outlier method {method!r}: use 'iqr' or 'sd'")
    group_by = [g for g in (group_by or []) if g in frame.columns]
    group = pd.Series("all", index=frame.index, dtype="object")
    if group_by:
        group = frame[group_by[0]].astype(str)
        for column in group_by[1:]:
            group = group + ", " + frame[column].astype(str)
    group_label = (group_by and (", ".join(group_by) + "=")) or ""
    codes, labels = pd.factorize(group, sort=True)
    summaries, flags = [], []
    for column in [c for c in columns if c in frame.columns]:
        values = frame[column].astype("float64")
        grouped = values.groupby(codes)
        stats = pd.DataFrame({"n": grouped.count(), "q1": grouped.quantile(0.25), "q3": grouped.quantile(0.75),
                              "mean": grouped.mean(), "sd": grouped.std()})
        if method == "iqr":
            spread = stats["q3"] - stats["q1"]
            stats["low"], stats["high"] = stats["q1"] - iqr_multiplier * spread, stats["q3"] + iqr_multiplier * spread
        else:
            stats["low"] = stats["mean"] - sd_multiplier * stats["sd"]
            stats["high"] = stats["mean"] + sd_multiplier * stats["sd"]
        screened = stats["n"] >= min_n
        stats = stats.reindex(range(len(labels)))
        low = pd.Series(stats["low"].where(screened).to_numpy()[codes], index=frame.index)
        high = pd.Series(stats["high"].where(screened).to_numpy()[codes], index=frame.index)
        outside = (values.notna() & low.notna() & ((values < low) | (values > high))).to_numpy()
        stats["n_outliers"] = np.bincount(codes, weights=outside, minlength=len(labels))
        summaries.append(pd.DataFrame({
            "table": table, "column": column, "group": group_label + pd.Index(labels).astype(str),
            "method": method, "n": stats["n"].astype(int).to_numpy(),
            "low": stats["low"].where(screened).to_numpy(), "high": stats["high"].where(screened).to_numpy(),
            "n_outliers": stats["n_outliers"].fillna(0).astype(int).to_numpy()}))
        if outside.any():
            name = "IQR fences" if method == "iqr" else f"mean ± {sd_multiplier:g} SD"
            shown = _text(values[outside])
            detail = (shown + " outside [" + _fmt(low[outside], "{:.4g}") + ", " + _fmt(high[outside], "{:.4g}")
                      + f"] ({name}" + (", " + group_label + group[outside] if group_by else "") + ")")
            flags.append(_flags("outlier", table, frame, outside, column=column, value=shown.to_numpy(),
                                detail=detail.to_numpy(), row=rows))
    summary = pd.concat(summaries, ignore_index=True) if summaries else _empty(
        ["table", "column", "group", "method", "n", "low", "high", "n_outliers"])
    return summary, (pd.concat(flags, ignore_index=True) if flags else _empty(FLAG_COLUMNS[1:]))


# --------------------------------------------------------------------------- missingness


def _missing_reasons(log: pd.DataFrame, table: str) -> pd.DataFrame:
    """Why each value is missing, by input row and column: the last rule that set it missing."""
    part = log[log["table"] == table]
    dropped_rows = set(part.loc[part["action"] == "dropped", "row"])
    set_missing = part[(part["new_value"] == "") & (part["column"] != "") & (part["action"] != "dropped")
                       & ~part["row"].isin(dropped_rows)]
    reason = set_missing["reason"].where(set_missing["rule"] == "missing_code", set_missing["rule"])
    out = pd.DataFrame({"row": set_missing["row"].astype(int), "column": set_missing["column"],
                        "reason": reason, "is_code": set_missing["rule"] == "missing_code"})
    return out.drop_duplicates(["row", "column"], keep="last")


def missingness(tables: dict[str, pd.DataFrame], log: pd.DataFrame, arms: pd.Series,
                source_rows: dict[str, np.ndarray] | None = None, rules: dict | None = None) -> pd.DataFrame:
    """Missing values by table, variable, arm and wave, with their reasons.

    Returns
    -------
    DataFrame
        ``table, column, arm, wave, n, n_missing, pct_missing, n_missing_code,
        n_set_missing_by_rule, n_blank, reasons``; ``arm`` and ``wave`` are ``all``
        on the rows for the whole table.
    """
    spec = (rules or load_rules("quality"))["missingness"]["tables"]
    parts = []
    for table, columns in spec.items():
        frame = tables.get(table)
        if frame is None or frame.empty:
            continue
        arm = frame["centre_id"].map(arms).fillna("unknown") if "centre_id" in frame else pd.Series("all", index=frame.index)
        wave = frame["wave"].astype(str) if "wave" in frame else pd.Series("all", index=frame.index)
        rows = (source_rows or {}).get(table)
        reasons = _missing_reasons(log, table) if rows is not None and len(rows) == len(frame) else None
        position = pd.Series(np.arange(len(frame)), index=rows) if reasons is not None else None
        for column in [c for c in columns if c in frame.columns]:
            missing = frame[column].isna()
            cells = pd.DataFrame({"arm": arm.to_numpy(), "wave": wave.to_numpy(), "missing": missing.to_numpy(),
                                  "reason": "", "is_code": False})
            if reasons is not None:
                mine = reasons[reasons["column"] == column]
                at = position.reindex(mine["row"].to_numpy()).to_numpy()
                ok = ~pd.isna(at)
                idx = at[ok].astype(int)
                cells.loc[idx, "reason"] = mine["reason"].to_numpy()[ok]
                cells.loc[idx, "is_code"] = mine["is_code"].to_numpy()[ok]
            cells["reason"] = cells["reason"].where(cells["missing"], "")
            cells["is_code"] &= cells["missing"]
            for arm_value, wave_value, subset in _groupings(cells):
                n_missing = int(subset["missing"].sum())
                n_code = int(subset["is_code"].sum())
                n_rule = int(((subset["reason"] != "") & ~subset["is_code"]).sum())
                counts = subset.loc[subset["reason"] != "", "reason"].value_counts()
                blank = n_missing - n_code - n_rule
                text = "; ".join([f"{k} {v}" for k, v in counts.items()] + ([f"blank {blank}"] if blank else []))
                parts.append({"table": table, "column": column, "arm": arm_value, "wave": wave_value,
                              "n": len(subset), "n_missing": n_missing,
                              "pct_missing": round(100 * n_missing / len(subset), 2) if len(subset) else np.nan,
                              "n_missing_code": n_code, "n_set_missing_by_rule": n_rule, "n_blank": blank,
                              "reasons": text})
    columns = ["table", "column", "arm", "wave", "n", "n_missing", "pct_missing", "n_missing_code",
               "n_set_missing_by_rule", "n_blank", "reasons"]
    return pd.DataFrame(parts, columns=columns)


def _groupings(cells: pd.DataFrame):
    yield "all", "all", cells
    for (arm_value, wave_value), subset in cells.groupby(["arm", "wave"], sort=True):
        if not (arm_value == "all" and wave_value == "all"):
            yield arm_value, wave_value, subset


def _missingness_flags(table: pd.DataFrame, rules: dict) -> pd.DataFrame:
    spec = rules["missingness"]
    min_n = int(spec.get("min_n", 10))
    groups = table[(table["arm"] != "all") & (table["n"] >= min_n)]
    high = groups[groups["pct_missing"] > spec["flag_pct"]]
    flags = [pd.DataFrame({
        "check": "missingness", "table": high["table"], "record_id": "", "row": pd.NA, "column": high["column"],
        "value": _fmt(high["pct_missing"], "{:g}%"),
        "detail": (_fmt(high["pct_missing"], "{:g}") + "% missing in " + high["arm"] + ", " + high["wave"]
                   + " (" + high["n_missing"].astype(str) + " of " + high["n"].astype(str) + "; "
                   + high["reasons"] + ")")})]
    both = groups[groups["arm"].isin(["partnered", "comparison"])]
    wide = both.pivot_table(index=["table", "column", "wave"], columns="arm", values="pct_missing")
    if {"partnered", "comparison"} <= set(wide.columns):
        gap = (wide["partnered"] - wide["comparison"]).dropna()
        gap = gap[gap.abs() > spec["arm_gap_pct"]].reset_index(name="gap")
        flags.append(pd.DataFrame({
            "check": "missingness", "table": gap["table"], "record_id": "", "row": pd.NA, "column": gap["column"],
            "value": _fmt(gap["gap"], "{:+.1f} points"),
            "detail": "missing " + _fmt(gap["gap"].abs(), "{:.1f}") + " points more often in "
                      + np.where(gap["gap"] > 0, "partnered", "comparison") + " centres, " + gap["wave"]
                      + " (differential missingness)"}))
    out = pd.concat(flags, ignore_index=True)
    return out.assign(source="quality", severity="")


# --------------------------------------------------------------------------- assessors


def assessor_checks(child_assessments: pd.DataFrame, rules: dict | None = None,
                    centres: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assessors whose scores or timing stand apart.

    For each assessor and wave the mean ELOM total of their children is compared
    with the other assessors' children in the same province and wave (assessors
    work within a province, and provinces differ): the gap in the others' SDs and
    its z, the gap over its standard error. Children are clustered in centres, so
    each side's variance is inflated by the design effect 1 + (m − 1)·ICC, with m
    the children per centre and the ICC from the rules. Both the gap and the z
    must pass their thresholds, so neither a small real difference nor noise is
    flagged. Scores much more alike than the others' (SD ratio), too many
    assessments on one day, weekend dates and missing domains are flagged too.

    Returns
    -------
    table : DataFrame
        One row per assessor and wave with every statistic and ``is_flagged``.
    flags : DataFrame
    """
    spec = (rules or load_rules("quality"))["assessors"]
    columns = ["assessor_id", "province", "wave", "n_assessments", "mean_elom_total", "sd_elom_total", "others_mean",
               "others_sd", "gap_sd", "z", "sd_ratio", "n_days", "max_per_day", "n_weekend", "pct_domains_missing",
               "others_pct_domains_missing", "is_flagged", "reasons"]
    frame = child_assessments
    if frame.empty or "assessor_id" not in frame or frame["assessor_id"].notna().sum() == 0:
        return _empty(columns), _empty(FLAG_COLUMNS[1:])
    province = (frame["centre_id"].map(centres.set_index("centre_id")["province"])
                if centres is not None and "province" in centres else pd.Series("all", index=frame.index))
    data = pd.DataFrame({
        "assessor_id": frame["assessor_id"].astype("object"), "province": province.fillna("unknown").astype(str),
        "wave": frame["wave"].astype(str), "centre_id": frame["centre_id"].astype(str),
        "total": elom_total(frame), "date": frame["assessment_date"],
        "missing_domains": frame[list(ELOM_DOMAINS)].isna().sum(axis=1),
    }).dropna(subset=["assessor_id"])
    data["total_sq"] = data["total"] ** 2
    data["has_total"] = data["total"].notna()
    keys = ["assessor_id", "province", "wave"]
    by = data.groupby(keys, sort=True)
    table = pd.DataFrame({
        "n_assessments": by.size(), "n_total": by["has_total"].sum(), "sum": by["total"].sum(),
        "sum_sq": by["total_sq"].sum(), "missing_domains": by["missing_domains"].sum(),
        "n_centres": by["centre_id"].nunique(),
    })
    group_sums = table.groupby(level=["province", "wave"])[
        ["n_assessments", "n_total", "sum", "sum_sq", "missing_domains", "n_centres"]].transform("sum")
    n_a, n_o = table["n_total"], group_sums["n_total"] - table["n_total"]
    mean_a = table["sum"] / n_a.where(n_a > 0)
    mean_o = (group_sums["sum"] - table["sum"]) / n_o.where(n_o > 0)
    var_a = (table["sum_sq"] - n_a * mean_a**2) / (n_a - 1).where(n_a > 1)
    var_o = ((group_sums["sum_sq"] - table["sum_sq"]) - n_o * mean_o**2) / (n_o - 1).where(n_o > 1)
    sd_a, sd_o = np.sqrt(var_a.clip(lower=0)), np.sqrt(var_o.clip(lower=0))
    icc = float(spec.get("icc", 0.2))
    deff_a = 1 + (n_a / table["n_centres"].clip(lower=1) - 1).clip(lower=0) * icc
    centres_o = (group_sums["n_centres"] - table["n_centres"]).clip(lower=1)
    deff_o = 1 + (n_o / centres_o - 1).clip(lower=0) * icc
    table["mean_elom_total"], table["sd_elom_total"] = mean_a, sd_a
    table["others_mean"], table["others_sd"] = mean_o, sd_o
    table["gap_sd"] = (mean_a - mean_o) / sd_o.where(sd_o > 0)
    standard_error = sd_o * np.sqrt(deff_a / n_a.where(n_a > 0) + deff_o / n_o.where(n_o > 0))
    table["z"] = (mean_a - mean_o) / standard_error.where(standard_error > 0)
    table["sd_ratio"] = sd_a / sd_o.where(sd_o > 0)
    per_day = data.dropna(subset=["date"]).groupby([*keys, "date"]).size()
    table["n_days"] = per_day.groupby(level=keys).size().reindex(table.index).fillna(0).astype(int)
    table["max_per_day"] = per_day.groupby(level=keys).max().reindex(table.index).fillna(0).astype(int)
    weekend = data["date"].dt.day_of_week.isin(spec.get("weekend_days", [5, 6])) & data["date"].notna()
    table["n_weekend"] = weekend.groupby([data[k] for k in keys]).sum().reindex(table.index).fillna(0).astype(int)
    domains = len(ELOM_DOMAINS)
    table["pct_domains_missing"] = 100 * table["missing_domains"] / (domains * table["n_assessments"])
    others_n = group_sums["n_assessments"] - table["n_assessments"]
    table["others_pct_domains_missing"] = (100 * (group_sums["missing_domains"] - table["missing_domains"])
                                           / (domains * others_n.where(others_n > 0)))

    judged = table["n_total"] >= spec["min_assessments"]
    reasons = {
        "assessor_scores": judged & (table["gap_sd"].abs() > spec["score_gap_sd"]) & (table["z"].abs() > spec["score_z"]),
        "assessor_spread": judged & (table["sd_ratio"] < spec["sd_ratio_low"]),
        "assessor_per_day": table["max_per_day"] > spec["max_per_day"],
        "assessor_weekend": table["n_weekend"] > 0,
        "assessor_missing": ((table["n_assessments"] >= spec["min_assessments"])
                             & (table["pct_domains_missing"] > spec["missing_pct"])
                             & (table["pct_domains_missing"] > 2 * table["others_pct_domains_missing"].fillna(0))),
    }
    detail = {
        "assessor_scores": lambda t: ("mean ELOM total " + _fmt(t["mean_elom_total"], "{:.1f}") + " vs "
                                      + _fmt(t["others_mean"], "{:.1f}") + " for the other assessors in the province ("
                                      + _fmt(t["gap_sd"], "{:+.2f}") + " SD, z = " + _fmt(t["z"], "{:.1f}")
                                      + ", " + t["n_total"].astype(int).astype(str) + " children, "
                                      + t["province"] + ")"),
        "assessor_spread": lambda t: ("SD of ELOM total " + _fmt(t["sd_elom_total"], "{:.1f}") + " vs "
                                      + _fmt(t["others_sd"], "{:.1f}") + " for the others (ratio "
                                      + _fmt(t["sd_ratio"], "{:.2f}") + ")"),
        "assessor_per_day": lambda t: (t["max_per_day"].astype(str) + " assessments on one day (more than "
                                       + str(spec["max_per_day"]) + ")"),
        "assessor_weekend": lambda t: t["n_weekend"].astype(str) + " assessments dated on a weekend",
        "assessor_missing": lambda t: (_fmt(t["pct_domains_missing"], "{:.0f}") + "% of ELOM domains missing vs "
                                       + _fmt(t["others_pct_domains_missing"], "{:.0f}") + "% for the others"),
    }
    value = {"assessor_scores": "mean_elom_total", "assessor_spread": "sd_elom_total", "assessor_per_day": "max_per_day",
             "assessor_weekend": "n_weekend", "assessor_missing": "pct_domains_missing"}
    column = {"assessor_scores": "elom_total", "assessor_spread": "elom_total", "assessor_per_day": "assessment_date",
              "assessor_weekend": "assessment_date", "assessor_missing": "elom_*"}
    flat = table.reset_index()
    flags = []
    for check, hit in reasons.items():
        hit = hit.to_numpy(dtype=bool)
        if hit.any():
            rows = flat.loc[hit]
            flags.append(pd.DataFrame({
                "source": "quality", "severity": "", "check": check, "table": "child_assessments",
                "record_id": rows["assessor_id"].astype(str) + " (" + rows["wave"] + ")", "row": pd.NA,
                "column": column[check], "value": _text(rows[value[check]].astype("float64")),
                "detail": detail[check](rows).to_numpy()}))
    flagged = pd.DataFrame(reasons).to_numpy()
    names = np.array(list(reasons))
    flat["is_flagged"] = flagged.any(axis=1)
    flat["reasons"] = [", ".join(names[row]) for row in flagged]  # one short list per assessor
    out = flat.rename(columns={}).reindex(columns=columns)
    return out, (pd.concat(flags, ignore_index=True) if flags else _empty(FLAG_COLUMNS[1:]))


# --------------------------------------------------------------------------- centres


def centre_completeness(tables: dict[str, pd.DataFrame], arms: pd.Series,
                        rules: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Children assessed per wave, follow-up and complete ELOM totals, per centre.

    Returns
    -------
    table : DataFrame
        ``centre_id, province, arm, n_baseline, n_endline, n_both, follow_up_pct,
        n_complete_elom, complete_elom_pct, n_parent_responses, n_partnerships,
        is_flagged, reasons``.
    flags : DataFrame
    """
    spec = (rules or load_rules("quality"))["centres"]
    centres, children = tables["centres"], tables["child_assessments"]
    ids = centres["centre_id"]
    waves = children.groupby(["centre_id", "wave"]).size().unstack("wave").reindex(
        columns=["baseline", "endline"]).reindex(ids).fillna(0).astype(int)
    # Waves are baseline or endline and unique per child: two distinct waves mean both.
    both = (children.groupby(["centre_id", "child_id"])["wave"].nunique() == 2).groupby(level="centre_id").sum()
    complete = children[list(ELOM_DOMAINS)].notna().all(axis=1).groupby(children["centre_id"]).sum()
    survey = tables["parent_survey"].groupby("centre_id").size()
    mou = tables["partnerships"].groupby("centre_id").size()
    table = pd.DataFrame({
        "centre_id": ids.to_numpy(), "province": centres["province"].to_numpy(),
        "arm": ids.map(arms).fillna("unknown").to_numpy(),
        "n_baseline": waves["baseline"].to_numpy(), "n_endline": waves["endline"].to_numpy(),
        "n_both": both.reindex(ids).fillna(0).astype(int).to_numpy(),
        "n_complete_elom": complete.reindex(ids).fillna(0).astype(int).to_numpy(),
        "n_parent_responses": survey.reindex(ids).fillna(0).astype(int).to_numpy(),
        "n_partnerships": mou.reindex(ids).fillna(0).astype(int).to_numpy(),
    })
    assessed = table["n_baseline"] + table["n_endline"]
    table["follow_up_pct"] = (100 * table["n_both"] / table["n_baseline"].where(table["n_baseline"] > 0)).round(1)
    table["complete_elom_pct"] = (100 * table["n_complete_elom"] / assessed.where(assessed > 0)).round(1)
    table.insert(5, "n_both", table.pop("n_both"))

    checks: dict[str, tuple[pd.Series, pd.Series, pd.Series, str]] = {}
    for wave in ("baseline", "endline"):
        n = table[f"n_{wave}"]
        note = " (no endline date, so no treatment status)" if wave == "endline" else ""
        checks[f"centre_no_children:{wave}"] = (n == 0, n.astype(str),
                                                pd.Series("no child assessed at " + wave + note, index=n.index),
                                                f"n_{wave}")
        few = (n > 0) & (n < spec["min_children_per_wave"])
        checks[f"centre_few_children:{wave}"] = (few, n.astype(str), n.astype(str) + " children assessed at " + wave,
                                                 f"n_{wave}")
    low_follow = table["follow_up_pct"] < spec["min_follow_up_pct"]
    checks["centre_follow_up"] = (low_follow, _fmt(table["follow_up_pct"], "{:g}%"),
                                  table["n_both"].astype(str) + " of " + table["n_baseline"].astype(str)
                                  + " baseline children assessed again at endline", "follow_up_pct")
    low_complete = table["complete_elom_pct"] < spec["min_complete_elom_pct"]
    checks["centre_complete_elom"] = (low_complete, _fmt(table["complete_elom_pct"], "{:g}%"),
                                      table["n_complete_elom"].astype(str) + " of " + assessed.astype(str)
                                      + " assessments have all five ELOM domains", "complete_elom_pct")
    flags, reasons = [], pd.Series("", index=table.index, dtype="object")
    for name, (hit, value, detail, column) in checks.items():
        hit = hit.fillna(False).to_numpy(dtype=bool)
        if hit.any():
            check = name.split(":")[0]
            flags.append(pd.DataFrame({
                "source": "quality", "severity": "", "check": check, "table": "centres",
                "record_id": table.loc[hit, "centre_id"].to_numpy(), "row": pd.NA, "column": column,
                "value": value[hit].to_numpy(), "detail": detail[hit].to_numpy()}))
            reasons = reasons.where(~hit, reasons + np.where(reasons == "", "", ", ") + name.replace(":", " "))
    table["is_flagged"] = reasons != ""
    table["reasons"] = reasons
    return table, (pd.concat(flags, ignore_index=True) if flags else _empty(FLAG_COLUMNS[1:]))


# --------------------------------------------------------------------------- age


def age_checks(child_assessments: pd.DataFrame, rules: dict | None = None,
               rows: pd.Series | None = None) -> pd.DataFrame:
    """Children assessed outside the ELOM 4&5 age window."""
    low, high = (rules or load_rules("quality"))["age"]["months"]
    frame = child_assessments
    months = (frame["assessment_date"] - frame["date_of_birth"]).dt.days / DAYS_PER_MONTH
    # A child of 69 months and 20 days is still "69 months" in completed months.
    outside = (months.notna() & ((months < low) | (np.floor(months) > high))).to_numpy()
    if not outside.any():
        return _empty(FLAG_COLUMNS[1:])
    shown = _fmt(months[outside], "{:.1f}")
    return _flags("age_outside_elom", "child_assessments", frame, outside, column="date_of_birth",
                  value=(shown + " months").to_numpy(),
                  detail=("age " + shown + f" months at assessment, outside {low}-{high}").to_numpy(), row=rows)


# --------------------------------------------------------------------------- cleaning log


def cleaning_flags(log: pd.DataFrame, rules: dict | None = None) -> pd.DataFrame:
    """The cleaning log's warnings and errors as flags (a change of form needs no action)."""
    catalogue = (rules or load_rules("cleaning")).get("log_rules", {})
    needs_action = log[log["severity"].isin(["error", "warning"])]
    todo = needs_action["rule"].map({rule: spec.get("todo", "") for rule, spec in catalogue.items()})
    return pd.DataFrame({
        "severity": needs_action["severity"], "source": "cleaning", "check": needs_action["rule"],
        "table": needs_action["table"], "record_id": needs_action["record_id"],
        "row": pd.array(needs_action["row"], dtype="Int64"), "column": needs_action["column"],
        "value": needs_action["old_value"],
        "detail": needs_action["reason"].where(needs_action["reason"] != "", needs_action["action"]),
        "what_to_do": todo.fillna(""),
    }).reset_index(drop=True)


def cleaning_summary(log: pd.DataFrame) -> pd.DataFrame:
    """Rows changed, flagged and dropped by table, action and rule (``results/data_quality.csv``).

    Only counts leave the log: no record ids, no values.
    """
    if log.empty:
        return _empty(CLEANING_SUMMARY_COLUMNS)
    counts = log.groupby(["table", "action", "rule", "severity"], sort=True).size().rename("n_rows").reset_index()
    return counts[CLEANING_SUMMARY_COLUMNS]


def _unreadable_flags(clean: CleanData, rules: dict) -> pd.DataFrame:
    """One error flag per column most of whose values cannot be read (``evalkit run`` stops on it)."""
    errors = clean.unreadable[clean.unreadable["is_error"]]
    if errors.empty:
        return _empty(FLAG_COLUMNS[1:])
    return pd.DataFrame({
        "severity": "error", "source": "cleaning", "check": "unreadable_column", "table": errors["table"].to_numpy(),
        "record_id": "", "row": pd.array([pd.NA] * len(errors), dtype="Int64"), "column": errors["column"].to_numpy(),
        "value": errors["example"].to_numpy(), "detail": errors["problem"].to_numpy(),
        "what_to_do": rules.get("checks", {}).get("unreadable_column", {}).get("todo", ""),
    })


def _schema_flags(schema: pd.DataFrame) -> pd.DataFrame:
    if schema is None or schema.empty:
        return _empty(FLAG_COLUMNS[1:])
    return pd.DataFrame({"source": "schema", "severity": "", "check": "schema", "table": schema["table"],
                         "record_id": "", "row": schema["row"], "column": schema["column"],
                         "value": schema["failure_case"], "detail": schema["check"]})


# --------------------------------------------------------------------------- all together


def _finish_flags(parts: list[pd.DataFrame], rules: dict) -> pd.DataFrame:
    checks = rules.get("checks", {})
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        return _empty(FLAG_COLUMNS)
    flags = pd.concat(parts, ignore_index=True)
    for column in FLAG_COLUMNS[1:]:
        if column not in flags:
            flags[column] = ""
    quality = flags["source"] != "cleaning"
    severity = flags["check"].map({c: s.get("severity", "warning") for c, s in checks.items()})
    flags["severity"] = flags["severity"].where(~quality | flags["severity"].ne(""), severity).fillna("warning")
    flags.loc[flags["severity"] == "", "severity"] = "warning"
    todo = flags["check"].map({c: s.get("todo", "") for c, s in checks.items()})
    given = flags["what_to_do"].astype("object").where(flags["what_to_do"].notna(), "").astype(str)
    flags["what_to_do"] = given.where(given != "", todo).fillna("")
    flags["row"] = pd.array(pd.to_numeric(flags["row"], errors="coerce"), dtype="Int64")
    order = pd.DataFrame({"s": flags["severity"].map(_SEVERITY_ORDER).fillna(9), "o": flags["source"].map(_SOURCE_ORDER),
                          "t": flags["table"], "c": flags["check"], "r": flags["row"].fillna(0).astype(int),
                          "i": flags["record_id"].astype(str), "k": flags["column"].astype(str)})
    flags = flags.loc[order.sort_values(["s", "o", "t", "c", "r", "i", "k"], kind="stable").index].reset_index(drop=True)
    flags["flag_id"] = [f"F{n:05d}" for n in range(1, len(flags) + 1)]
    for column in ("record_id", "column", "value", "detail", "what_to_do"):
        flags[column] = flags[column].astype("object").where(flags[column].notna(), "").astype(str)
    return flags[FLAG_COLUMNS]


def _summary(report_parts: dict[str, pd.DataFrame], clean: CleanData, flags: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for table, counts in clean.row_counts.items():
        kept = counts["rows_kept"]
        rows.append({"check": "row_account", "table": table, "column": "", "group": "all", "n": counts["rows_in"],
                     "n_flagged": counts["rows_dropped"], "severity": "info",
                     "detail": f"{counts['rows_in']} rows read, {kept} kept, {counts['rows_dropped']} dropped"})
    log = clean.log
    if len(log):
        grouped = log.groupby(["table", "rule", "action", "severity", "column"], sort=True).size().reset_index(name="k")
        for item in grouped.itertuples(index=False):
            rows.append({"check": f"cleaning: {item.rule}", "table": item.table, "column": item.column,
                         "group": item.action, "n": clean.row_counts.get(item.table, {}).get("rows_in", np.nan),
                         "n_flagged": int(item.k), "severity": item.severity, "detail": ""})
    for item in clean.unreadable[clean.unreadable["is_error"]].itertuples(index=False):
        rows.append({"check": "unreadable_column", "table": item.table, "column": item.column, "group": "all",
                     "n": item.n_values, "n_flagged": item.n_unreadable, "severity": "error", "detail": item.problem})
    outliers = report_parts["outliers"]
    for item in outliers.itertuples(index=False):
        fences = "" if pd.isna(item.low) else f"{item.method} fences [{item.low:.4g}, {item.high:.4g}]"
        rows.append({"check": "outlier", "table": item.table, "column": item.column, "group": item.group,
                     "n": item.n, "n_flagged": item.n_outliers, "severity": "warning" if item.n_outliers else "info",
                     "detail": fences or "not screened (too few values)"})
    for item in report_parts["missingness"].itertuples(index=False):
        rows.append({"check": "missingness", "table": item.table, "column": item.column,
                     "group": f"arm={item.arm}, wave={item.wave}", "n": item.n, "n_flagged": item.n_missing,
                     "severity": "info", "detail": item.reasons})
    for item in report_parts["assessors"].itertuples(index=False):
        rows.append({"check": "assessor", "table": "child_assessments", "column": "assessor_id",
                     "group": f"{item.assessor_id} ({item.wave})", "n": item.n_assessments,
                     "n_flagged": int(item.is_flagged), "severity": "warning" if item.is_flagged else "info",
                     "detail": item.reasons})
    for item in report_parts["centres"].itertuples(index=False):
        rows.append({"check": "centre_completeness", "table": "centres", "column": "centre_id",
                     "group": item.centre_id, "n": item.n_baseline + item.n_endline,
                     "n_flagged": int(item.is_flagged), "severity": "warning" if item.is_flagged else "info",
                     "detail": item.reasons})
    schema = report_parts["schema"]
    if schema is not None and len(schema):
        grouped = schema.groupby(["table", "column", "check"], sort=True).size().reset_index(name="k")
        for item in grouped.itertuples(index=False):
            rows.append({"check": "schema", "table": item.table, "column": item.column, "group": "all",
                         "n": clean.row_counts.get(item.table, {}).get("rows_kept", np.nan), "n_flagged": int(item.k),
                         "severity": "error", "detail": item.check})
    age = flags[flags["check"] == "age_outside_elom"]
    n_children = len(clean.tables["child_assessments"])
    rows.append({"check": "age_outside_elom", "table": "child_assessments", "column": "date_of_birth", "group": "all",
                 "n": n_children, "n_flagged": len(age), "severity": "warning" if len(age) else "info", "detail": ""})
    summary = pd.DataFrame(rows, columns=[c for c in SUMMARY_COLUMNS if c != "pct_flagged"])
    n = pd.to_numeric(summary["n"], errors="coerce")
    summary["pct_flagged"] = (100 * summary["n_flagged"] / n.where(n > 0)).round(2)
    return summary[SUMMARY_COLUMNS]


def check_quality(clean: CleanData, rules: dict | None = None, *, treatment: pd.DataFrame | None = None,
                  schema: pd.DataFrame | None = None, cleaning_rules: dict | None = None,
                  outlier_method: str | None = None) -> QualityReport:
    """Run every data-quality check on clean tables.

    Parameters
    ----------
    clean : CleanData
        The output of :func:`evalkit.cleaning.clean_all`.
    rules : dict, optional
        Quality thresholds; ``evalkit/rules/quality.yml`` when not given.
    treatment : DataFrame, optional
        :func:`evalkit.treatment.derive_treatment` of the clean tables (derived when not given).
    schema : DataFrame, optional
        :func:`evalkit.schemas.schema_failures` of the clean tables, to include as flags.
    cleaning_rules : dict, optional
        The run's cleaning rules (for what to do about each cleaning rule).
    outlier_method : {"iqr", "sd"}, optional
        Overrides the method in the rules.
    """
    rules = rules or load_rules("quality")
    tables = clean.tables
    arms = _arms(tables, treatment)
    out_spec = rules["outliers"]
    method = outlier_method or out_spec["method"]
    outlier_tables, flag_parts = [], [cleaning_flags(clean.log, cleaning_rules), _unreadable_flags(clean, rules),
                                      _schema_flags(schema)]
    for table, spec in out_spec["tables"].items():
        frame = tables[table]
        summary, flags = find_outliers(frame, table, spec["columns"], group_by=spec.get("group_by"), method=method,
                                       iqr_multiplier=out_spec["iqr_multiplier"], sd_multiplier=out_spec["sd_multiplier"],
                                       min_n=out_spec["min_n"], rows=_rows(clean, table, frame))
        outlier_tables.append(summary)
        flag_parts.append(flags)
    missing = missingness(tables, clean.log, arms, clean.source_rows, rules)
    flag_parts.append(_missingness_flags(missing, rules) if len(missing) else None)
    assessors, assessor_flags = assessor_checks(tables["child_assessments"], rules, tables["centres"])
    centres, centre_flags = centre_completeness(tables, arms, rules)
    children = tables["child_assessments"]
    flag_parts += [assessor_flags, centre_flags, age_checks(children, rules, _rows(clean, "child_assessments", children))]
    flags = _finish_flags(flag_parts, rules)
    outliers = pd.concat(outlier_tables, ignore_index=True)
    parts = {"outliers": outliers, "missingness": missing, "assessors": assessors, "centres": centres,
             "schema": schema}
    summary = _summary(parts, clean, flags)
    return QualityReport(flags=flags, summary=summary, outliers=outliers, missingness=missing, assessors=assessors,
                         centres=centres, schema=schema if schema is not None else pd.DataFrame(),
                         row_counts=clean.row_counts)
