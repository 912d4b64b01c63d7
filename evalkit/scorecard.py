"""Programme scorecard against the SCSPR-25 targets, and partnership (MOU) milestones.

The targets and the milestone plan are data (``rules/targets.yml``); this module
only knows how to *compute* each metric (:data:`METRIC_DEFINITIONS`). Both
tables are tidy, nationally (``scope='national'``, ``region`` missing) and per
region (``scope='region'``). Definitions and sources: ``docs/indicators.md``.

Every metric is computed with one ``groupby`` over the data stacked twice, once
labelled national and once by region, so national and regional numbers come from
the same code.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from .cleaning import normalise_key
from .config import load_rules
from .groups import region_of_centres
from .satisfaction import OVERALL_ITEM, centre_satisfaction, responses_with_groups, satisfaction_summary

__all__ = [
    "SCORECARD_COLUMNS",
    "MILESTONE_COLUMNS",
    "METRIC_DEFINITIONS",
    "load_targets",
    "programme_scorecard",
    "partnership_milestones",
    "programme_start_month",
]

SCORECARD_COLUMNS = ["scope", "region", "metric", "label", "value", "target", "unit", "is_met", "note"]
MILESTONE_COLUMNS = ["scope", "region", "month", "calendar_month", "cumulative_mous", "planned_mous",
                     "is_milestone", "is_met"]
_KEYS = ["scope", "region"]


def load_targets(targets: dict | None = None) -> dict:
    """The targets: ``rules/targets.yml``, or ``targets`` when given (same layout)."""
    return targets if targets is not None else load_rules("targets")


def _stack(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows twice: once as the national scope, once under their region."""
    national = frame.assign(scope="national", region=pd.NA)
    regional = frame.assign(scope="region")
    return pd.concat([national, regional], ignore_index=True)


def _scopes(regions: pd.Series) -> pd.DataFrame:
    """Every scope row of the scorecard: national, then each region (sorted)."""
    names = sorted(regions.dropna().astype(str).unique())
    return pd.DataFrame({"scope": ["national"] + ["region"] * len(names),
                         "region": [pd.NA, *names]})


def _grouped(frame: pd.DataFrame):
    return _stack(frame).groupby(_KEYS, dropna=False, sort=False)


def _month_text(times: pd.Series) -> pd.Series:
    """``times.dt.strftime("%Y-%m")``, written once per distinct month rather than once per row."""
    dt = times.dt
    month_number = (dt.year * 12 + dt.month).to_numpy(dtype="float64", na_value=np.nan)
    codes, distinct = pd.factorize(month_number, use_na_sentinel=False)
    first = np.unique(codes, return_index=True)[1]
    text = times.iloc[first].dt.strftime("%Y-%m")
    return pd.Series(text.array.take(codes), index=times.index, name=times.name, dtype=text.dtype)


def _missing_note(n_missing: pd.Series, what: str) -> pd.Series:
    return n_missing.map(lambda k: f"{int(k)} {what}" if k else "")


# ----------------------------------------------------------------------- metrics
# Each metric: f(context) -> DataFrame with scope, region, value, note.

def _sum_of_centre_column(column: str, missing_what: str) -> Callable[[dict], pd.DataFrame]:
    def metric(ctx: dict) -> pd.DataFrame:
        c = ctx["centres"]
        frame = pd.DataFrame({"region": c["region"], "value": c[column].astype("float64")})
        frame["is_missing"] = frame["value"].isna()
        out = _grouped(frame).agg(value=("value", "sum"), n_missing=("is_missing", "sum"),
                                  n_centres=("value", "size")).reset_index()
        out["note"] = [f"sum over {n} centres" + (f"; {m} {missing_what}" if m else "")
                       for n, m in zip(out["n_centres"], out["n_missing"])]
        return out
    return metric


def _centres_with_feedback_channel(ctx: dict) -> pd.DataFrame:
    c = ctx["centres"]
    channel = c["feedback_channel"].astype("object")
    frame = pd.DataFrame({"region": c["region"], "is_yes": (channel == "yes").fillna(False),
                          "is_missing": channel.isna()})
    out = _grouped(frame).agg(value=("is_yes", "sum"), n_missing=("is_missing", "sum")).reset_index()
    out["note"] = _missing_note(out["n_missing"], "centres did not say whether they run one")
    return out


def _customer_service_score(ctx: dict) -> pd.DataFrame:
    spec = ctx["specs"]["customer_service_score_pct"]
    responses = ctx["responses"]
    period = spec.get("period", "all")
    months = _month_text(responses["submission_time"])
    if period == "latest_month":
        latest = months.dropna().max()
        responses = responses.loc[months == latest]
        when = f"month {latest}" if isinstance(latest, str) else "no dated responses"
    elif period == "all":
        dated = months.dropna()
        when = f"all responses, {dated.min()} to {dated.max()}" if len(dated) else "all responses"
    else:
        raise ValueError(f"customer_service_score_pct: unknown period {period!r} (use 'all' or 'latest_month')")
    summary = satisfaction_summary(_stack(responses), _KEYS)
    summary = summary.loc[summary["item"] == OVERALL_ITEM]
    out = summary.rename(columns={"top2_pct": "value"})
    out["note"] = [f"top-2-box of {int(v)} valid answers from {r} responses ({when})"
                   for v, r in zip(out["n_valid"], out["n_responses"])]
    return out


def _strategic_partners(ctx: dict) -> pd.DataFrame:
    p = ctx["partnerships"]
    active = p["status"].astype("object").eq("active").fillna(False).to_numpy(dtype=bool)
    if ctx["as_of"] is not None:
        active = active & (p["mou_signed_date"] <= ctx["as_of"]).fillna(False).to_numpy(dtype=bool)
    name = p["partner_name"].astype("object")
    key = normalise_key(name.fillna("")).where(name.notna())
    key = key.where(key != "")  # a blank name is no organisation we could count
    frame = pd.DataFrame({"region": p["region"], "partner_key": key.where(active),
                          "is_unnamed": active & key.isna().to_numpy()})
    out = _grouped(frame).agg(value=("partner_key", "nunique"), n_unnamed=("is_unnamed", "sum")).reset_index()
    notes = ["distinct partner names (case, spacing and punctuation folded) with an active MOU"]
    out["note"] = [notes[0] + (f"; {k} active MOUs without a partner name not counted" if k else "")
                   for k in out["n_unnamed"]]
    return out


def _centres_below_refresher(ctx: dict) -> pd.DataFrame:
    threshold = float(ctx["targets"]["refresher_training_below_pct"])
    scores = centre_satisfaction(ctx["responses"])
    frame = ctx["centres"][["centre_id", "region"]].merge(scores, on="centre_id", how="left")
    css = frame["customer_service_score_pct"]
    frame = pd.DataFrame({"region": frame["region"], "is_below": (css < threshold).fillna(False),
                          "has_score": css.notna()})
    out = _grouped(frame).agg(value=("is_below", "sum"), n_scored=("has_score", "sum")).reset_index()
    out["note"] = [f"centres with a customer service score below {threshold:g}%, of {int(n)} centres "
                   "with survey answers" for n in out["n_scored"]]
    return out


#: How each scorecard metric is computed from the clean tables.
METRIC_DEFINITIONS: dict[str, Callable[[dict], pd.DataFrame]] = {
    "practitioners_trained": _sum_of_centre_column(
        "practitioners_trained", "centres did not report it (counted as 0)"),
    "centres_with_feedback_channel": _centres_with_feedback_channel,
    "parent_engagement_events": _sum_of_centre_column(
        "parent_events", "centres did not report it (counted as 0)"),
    "customer_service_score_pct": _customer_service_score,
    "strategic_partners": _strategic_partners,
    "centres_below_refresher_threshold": _centres_below_refresher,
}


#: Metrics counted from a table that may have no row for a scope: none there means 0.
_ZERO_WHEN_ABSENT = {"strategic_partners": "no active MOU in this scope"}


def _regional_target(spec: dict, targets: dict, regions: pd.Series) -> np.ndarray:
    """Target per scope row: national rows get the target; regions get it when the
    target is a rate (``regional: true``) or is set under ``regional_targets``."""
    overrides = targets.get("regional_targets") or {}
    national = np.nan if spec.get("target") is None else float(spec["target"])
    out = []
    for region in regions:
        if pd.isna(region):
            out.append(national)
        elif spec.get("regional", False):
            out.append(national)
        else:
            value = (overrides.get(str(region)) or {}).get(spec["metric"])
            out.append(np.nan if value is None else float(value))
    return np.array(out, dtype="float64")


def programme_scorecard(centres: pd.DataFrame, partnerships: pd.DataFrame,
                        parent_survey: pd.DataFrame, *, level: str = "province",
                        targets: dict | None = None, as_of=None) -> pd.DataFrame:
    """The programme's monitoring metrics against their targets, national and per region.

    Parameters
    ----------
    centres, partnerships, parent_survey : DataFrame
        Clean tables.
    level : {"province", "district"}
        What ``region`` is.
    targets : dict, optional
        Layout of ``rules/targets.yml`` (the default).
    as_of : date-like, optional
        Count only MOUs signed on or before this date as active partners.

    Returns
    -------
    DataFrame with :data:`SCORECARD_COLUMNS`: one row per scope (national, then
    each region) and metric (in the targets' order). ``is_met`` (nullable
    boolean) is ``value >= target``; <NA> where there is no target or no value.
    A partner organisation working in two regions counts once nationally and
    once in each region, so regional partner counts do not add up to the national.
    """
    targets = load_targets(targets)
    region = region_of_centres(centres, level)
    where = pd.DataFrame({"centre_id": centres["centre_id"], "region": region.to_numpy()})
    ctx = {
        "centres": centres.assign(region=region.to_numpy()),
        "partnerships": partnerships.merge(where, on="centre_id", how="left"),
        "responses": responses_with_groups(parent_survey, centres, level=level),
        "targets": targets,
        "specs": {spec["metric"]: spec for spec in targets["metrics"]},
        "as_of": None if as_of is None else pd.Timestamp(as_of),
    }
    scopes = _scopes(region)
    parts = []
    for spec in targets["metrics"]:
        name = spec["metric"]
        if name not in METRIC_DEFINITIONS:
            raise ValueError(f"targets: unknown metric {name!r}; known: {', '.join(METRIC_DEFINITIONS)}")
        values = METRIC_DEFINITIONS[name](ctx)[[*_KEYS, "value", "note"]]
        rows = scopes.merge(values.astype({"region": "object"}), on=_KEYS, how="left")
        rows["value"] = rows["value"].astype("float64")
        rows["note"] = rows["note"].astype("object")
        if name in _ZERO_WHEN_ABSENT:  # a region with centres but no rows to count has none
            absent = rows["value"].isna()
            rows.loc[absent, "value"] = 0.0
            rows.loc[absent, "note"] = _ZERO_WHEN_ABSENT[name]
        rows["note"] = rows["note"].fillna("no data in this scope")
        rows["metric"] = name
        rows["label"] = spec.get("label", name)
        rows["unit"] = spec.get("unit", "")
        rows["target"] = _regional_target(spec, targets, rows["region"])
        parts.append(rows)
    out = pd.concat(parts, ignore_index=True)
    has_both = out["value"].notna() & out["target"].notna()
    met = (out["value"] >= out["target"]).to_numpy(dtype=bool)
    out["is_met"] = pd.arrays.BooleanArray(met & has_both.to_numpy(), ~has_both.to_numpy())
    order = {n: i for i, n in enumerate(spec["metric"] for spec in targets["metrics"])}
    out["_scope_order"] = (out["scope"] != "national").astype(int)
    out["_metric_order"] = out["metric"].map(order)
    out = out.sort_values(["_scope_order", "region", "_metric_order"], kind="stable", na_position="first")
    return out[SCORECARD_COLUMNS].reset_index(drop=True)


# -------------------------------------------------------------------- milestones
def programme_start_month(partnerships: pd.DataFrame, start=None,
                          targets: dict | None = None) -> pd.Period:
    """The programme's first month (month 1 of the milestone plan).

    ``start`` (a 'YYYY-MM' text, date or Period) wins; otherwise the targets'
    ``milestones.start``: a 'YYYY-MM' text, or ``first_mou_month`` = the calendar
    month of the earliest signed MOU in the data (the default).
    """
    if start is None:
        start = load_targets(targets)["milestones"].get("start", "first_mou_month")
    if isinstance(start, str) and start == "first_mou_month":
        first = partnerships["mou_signed_date"].min()
        if pd.isna(first):
            raise ValueError("no MOU has a signed date: give the programme start explicitly")
        return pd.Period(first, freq="M")
    return pd.Period(start, freq="M")


def partnership_milestones(partnerships: pd.DataFrame, centres: pd.DataFrame, *,
                           level: str = "province", start=None, as_of=None,
                           targets: dict | None = None) -> pd.DataFrame:
    """Cumulative MOUs signed by the end of each programme month, against the plan.

    Parameters
    ----------
    partnerships, centres : DataFrame
        Clean tables.
    level : {"province", "district"}
        What ``region`` is.
    start : 'YYYY-MM' text, date or Period, optional
        Month 1 of the programme; default the targets' ``milestones.start``
        (``first_mou_month``: the month of the earliest signed MOU).
    as_of : date-like, optional
        The date the data describe. Months after its month have no count
        (``cumulative_mous`` missing), since later MOUs could not be in the data.
        Default: the latest signed date in the data. Pass the run's data date
        (e.g. the last assessment) when MOUs may have stopped earlier.
    targets : dict, optional
        Layout of ``rules/targets.yml`` (the default): ``milestones.plan``.

    Returns
    -------
    DataFrame with :data:`MILESTONE_COLUMNS`, for months 1 to the later of the
    last planned month and the ``as_of`` month, nationally and per region
    (no rows when no MOU has a signed date and no start is given).
    ``cumulative_mous`` counts every MOU signed on or before the month's end,
    whatever its status now (an MOU that has since ended was still signed), and
    MOUs signed before the start count from month 1. MOUs without a signed date
    cannot be placed and are left out (the cleaning log flags them).
    ``planned_mous`` is set on the national rows of the planned months;
    ``is_met`` (nullable boolean) compares them there and is <NA> elsewhere.
    """
    targets = load_targets(targets)
    anchored = start is not None or targets["milestones"].get("start", "first_mou_month") != "first_mou_month"
    if not anchored and partnerships["mou_signed_date"].isna().all():
        # No MOU to anchor month 1 on: nothing to chart (the scorecard still reports 0 partners).
        return pd.DataFrame({c: pd.Series(dtype="object") for c in MILESTONE_COLUMNS})
    start_month = programme_start_month(partnerships, start, targets)
    plan = {int(p["month"]): float(p["cumulative_mous"]) for p in targets["milestones"]["plan"]}
    dated = partnerships.loc[partnerships["mou_signed_date"].notna()]
    as_of_month = (pd.Period(pd.Timestamp(as_of), freq="M") if as_of is not None
                   else (pd.Period(dated["mou_signed_date"].max(), freq="M") if len(dated) else start_month))
    observed_months = max((as_of_month - start_month).n + 1, 0)
    n_months = max(max(plan, default=0), observed_months)

    region = region_of_centres(centres, level)
    where = pd.DataFrame({"centre_id": centres["centre_id"], "region": region.to_numpy()})
    frame = dated[["centre_id", "mou_signed_date"]].merge(where, on="centre_id", how="left")
    signed = frame["mou_signed_date"].dt
    months_since_start = (signed.year * 12 + signed.month) - (start_month.year * 12 + start_month.month)
    frame["month"] = (months_since_start + 1).clip(lower=1).astype("int64")  # before the start: month 1
    frame = frame.loc[frame["month"] <= n_months]

    scopes = _scopes(region)
    months = np.arange(1, n_months + 1)
    grid = scopes.merge(pd.DataFrame({"month": months}), how="cross")
    counts = (_stack(frame).groupby([*_KEYS, "month"], dropna=False).size().rename("n_signed")
              .reset_index().astype({"region": "object"}))
    grid = grid.merge(counts, on=[*_KEYS, "month"], how="left")
    grid["n_signed"] = grid["n_signed"].fillna(0)
    grid["cumulative_mous"] = grid.groupby(_KEYS, dropna=False, sort=False)["n_signed"].cumsum()
    grid.loc[grid["month"] > observed_months, "cumulative_mous"] = np.nan
    labels = {int(m): str(start_month + int(m) - 1) for m in months}
    grid["calendar_month"] = grid["month"].map(labels)
    is_national = (grid["scope"] == "national").to_numpy()
    grid["planned_mous"] = np.where(is_national, grid["month"].map(plan).astype("float64"), np.nan)
    grid["is_milestone"] = grid["month"].isin(list(plan)).to_numpy()
    has_both = (grid["planned_mous"].notna() & grid["cumulative_mous"].notna()).to_numpy()
    met = (grid["cumulative_mous"] >= grid["planned_mous"]).to_numpy(dtype=bool)
    grid["is_met"] = pd.arrays.BooleanArray(met & has_both, ~has_both)
    return grid[MILESTONE_COLUMNS].reset_index(drop=True)
