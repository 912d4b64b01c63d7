"""Parent satisfaction: customer service score (top-2-box), a mean index, net promoter score.

Definitions (``shared/spec/domain-facts.md``, "Parent satisfaction"; details in
``docs/indicators.md``):

* **Customer service score** = top-2-box %: answers of 4 or 5 over *valid*
  answers × 100, per Likert item and overall (all items' answers pooled). A
  valid answer is one of 1, 2, 3, 4, 5; blanks, N/A and every missing code
  (−88 not applicable, −99 don't know, −98 refused — already missing after
  cleaning) and anything else are left out of the denominator.
* **Satisfaction mean index** = the mean of the valid 1–5 answers. It is a
  different metric from the customer service score and is always labelled so.
* **Net promoter score** = % of valid ``recommend`` answers (0–10) that are 9 or 10
  minus % that are 0 to 6; from −100 to +100.

These thresholds *are* the definitions of the metrics (changing them makes
another metric), so they are constants here rather than configurable rules.
All functions are vectorised: answers are melted to one row per response × item
and counted with one ``groupby``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .cleaning import SATISFACTION_ITEMS
from .groups import arm_label, region_of_centres

__all__ = [
    "LIKERT_ITEMS",
    "RECOMMEND_ITEM",
    "OVERALL_ITEM",
    "NPS_ITEM",
    "ITEM_LABELS",
    "SATISFACTION_COLUMNS",
    "CENTRE_SATISFACTION_COLUMNS",
    "MONTHLY_COLUMNS",
    "top2_box_pct",
    "mean_index",
    "net_promoter_score",
    "satisfaction_summary",
    "satisfaction_table",
    "centre_satisfaction",
    "customer_service_by_month",
    "responses_with_groups",
]

#: The Likert items (1–5) of the contract's parent survey.
LIKERT_ITEMS: tuple[str, ...] = SATISFACTION_ITEMS
#: Likelihood to recommend (0–10), for the net promoter score.
RECOMMEND_ITEM = "recommend"
#: Name of the pooled row of all Likert items.
OVERALL_ITEM = "overall"
#: Name of the net promoter score row (computed from ``recommend``).
NPS_ITEM = "nps"

LIKERT_VALID = (1.0, 2.0, 3.0, 4.0, 5.0)
TOP_BOX_FROM = 4.0          # top-2-box: 4 ("satisfied") and 5 ("very satisfied")
RECOMMEND_VALID = tuple(float(v) for v in range(11))
PROMOTER_FROM = 9.0         # 9–10 promoters
DETRACTOR_UP_TO = 6.0       # 0–6 detractors (7–8 passives count only in the denominator)

ITEM_LABELS = {
    "sat_communication": "Communication with parents",
    "sat_safety": "Safety of the child",
    "sat_learning": "Child's learning",
    "sat_staff_respect": "Staff treat parents with respect",
    "sat_responsiveness": "Responsiveness to concerns",
    "sat_overall": "Overall satisfaction (single item)",
    OVERALL_ITEM: "All items pooled (customer service score)",
    NPS_ITEM: "Net promoter score (likelihood to recommend, 0-10)",
}

_COUNT_COLUMNS = ["n_responses", "n_valid", "n_top2", "top2_pct", "mean_score",
                  "n_promoters", "n_detractors", "nps"]
#: ``results/satisfaction.csv``: region × arm × item.
SATISFACTION_COLUMNS = ["region", "arm", "item", "item_label", *_COUNT_COLUMNS, "n_centres"]
#: One row per centre (merged into ``centre_outcomes``).
CENTRE_SATISFACTION_COLUMNS = ["centre_id", "n_responses", "n_valid_answers",
                               "customer_service_score_pct", "satisfaction_mean_index",
                               "n_recommend_valid", "nps"]
#: Customer service score by calendar month of submission.
MONTHLY_COLUMNS = ["scope", "region", "month", "n_responses", "n_valid",
                   "customer_service_score_pct"]


# ------------------------------------------------------------------ scalar forms
def _numbers(values) -> np.ndarray:
    return pd.Series(values).astype("Float64").to_numpy(dtype="float64", na_value=np.nan)


def top2_box_pct(values) -> float:
    """Top-2-box % of one set of 1–5 answers: (4s + 5s) / valid answers × 100.

    Anything but 1–5 (missing, N/A, −88, −99, …) is not a valid answer. NaN when
    there is no valid answer.
    """
    x = _numbers(values)
    valid = np.isin(x, LIKERT_VALID)
    n = valid.sum()
    return float(100 * (x[valid] >= TOP_BOX_FROM).sum() / n) if n else float("nan")


def mean_index(values) -> float:
    """Satisfaction mean index: the mean of the valid 1–5 answers (not the customer
    service score). NaN when there is no valid answer."""
    x = _numbers(values)
    valid = np.isin(x, LIKERT_VALID)
    return float(x[valid].mean()) if valid.any() else float("nan")


def net_promoter_score(values) -> float:
    """Net promoter score of 0–10 answers: % 9–10 minus % 0–6 of valid answers."""
    x = _numbers(values)
    valid = np.isin(x, RECOMMEND_VALID)
    n = valid.sum()
    if not n:
        return float("nan")
    x = x[valid]
    return float(100 * ((x >= PROMOTER_FROM).sum() - (x <= DETRACTOR_UP_TO).sum()) / n)


# ---------------------------------------------------------------- grouped forms
def _ratio(numerator: pd.Series, denominator: pd.Series, scale: float = 1.0) -> pd.Series:
    return scale * numerator.astype("float64") / denominator.where(denominator > 0).astype("float64")


def satisfaction_summary(responses: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Top-2-box, mean score and NPS for every group of ``by``, item by item.

    Parameters
    ----------
    responses : DataFrame
        One row per parent response with the Likert items, ``recommend`` and the
        ``by`` columns (missing items are treated as unanswered).
    by : list of str
        Grouping columns (may be empty for one overall group).

    Returns
    -------
    DataFrame with ``by``, ``item`` and the counts: one row per group and Likert
    item, one ``overall`` row (all Likert answers pooled: the customer service
    score and the mean index) and one ``nps`` row (from ``recommend``: ``nps``,
    ``n_promoters``, ``n_detractors``). Columns that do not apply to a row are
    NaN (``top2_pct`` and ``mean_score`` of ``nps``, ``nps`` of the items).
    ``n_responses`` counts responses in the group, ``n_valid`` valid answers.
    """
    by = list(by)
    key = "_group"
    if by:
        # Groups numbered in order of first appearance; counted with bincount, item by item.
        group = responses.groupby(by, sort=False, dropna=False).ngroup().to_numpy()
        first = np.unique(group, return_index=True)[1]
        groups = responses[by].iloc[first].reset_index(drop=True)
    else:
        group = np.zeros(len(responses), dtype=np.intp)
        groups = pd.DataFrame({key: [0]})
    n_groups = len(groups)
    groups[key] = np.arange(n_groups)

    def count(weights: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=weights, minlength=n_groups)

    def scores(item: str) -> np.ndarray:
        if item not in responses:
            return np.full(len(responses), np.nan)
        return responses[item].astype("Float64").astype("float64").to_numpy()

    n_responses = np.bincount(group, minlength=n_groups)
    parts = []
    for item in sorted(LIKERT_ITEMS):
        score = scores(item)
        valid = np.isin(score, LIKERT_VALID)
        parts.append(pd.DataFrame({
            key: groups[key], "item": item,
            "n_valid": count(valid).astype("int64"),
            "n_top2": count(valid & (score >= TOP_BOX_FROM)).astype("int64"),
            # Valid scores are whole numbers 1-5: their sums are exact in any order.
            "score_sum": count(np.where(valid, score, 0.0)),
        }))
    per_item = pd.concat(parts, ignore_index=True)
    pooled = per_item.groupby(key)[["n_valid", "n_top2", "score_sum"]].sum().reset_index()
    pooled["item"] = OVERALL_ITEM
    likert = pd.concat([per_item, pooled], ignore_index=True)
    likert["top2_pct"] = _ratio(likert["n_top2"], likert["n_valid"], 100.0)
    likert["mean_score"] = _ratio(likert["score_sum"], likert["n_valid"])

    rec = scores(RECOMMEND_ITEM)
    rec_valid = np.isin(rec, RECOMMEND_VALID)
    nps = pd.DataFrame({key: groups[key], "n_valid": count(rec_valid).astype("int64"),
                        "n_promoters": count(rec_valid & (rec >= PROMOTER_FROM)).astype("int64"),
                        "n_detractors": count(rec_valid & (rec <= DETRACTOR_UP_TO)).astype("int64")})
    if not len(responses):
        nps = nps.iloc[:0]
        likert = likert.iloc[:0]
    nps["item"] = NPS_ITEM
    nps["nps"] = _ratio(nps["n_promoters"] - nps["n_detractors"], nps["n_valid"], 100.0)

    out = pd.concat([likert.drop(columns="score_sum"), nps], ignore_index=True)
    out["n_responses"] = n_responses[out[key].to_numpy()].astype("int64")
    for column in ("n_valid", "n_top2", "n_promoters", "n_detractors"):
        out[column] = out[column].astype("Int64")
    order = {item: i for i, item in enumerate((*LIKERT_ITEMS, OVERALL_ITEM, NPS_ITEM))}
    out = out.assign(_order=out["item"].map(order)).sort_values([key, "_order"])
    out = groups.merge(out, on=key, how="inner").drop(columns=[key, "_order"])
    return out[[*by, "item", *_COUNT_COLUMNS]].reset_index(drop=True)


def responses_with_groups(parent_survey: pd.DataFrame, centres: pd.DataFrame,
                          treatment: pd.DataFrame | None = None, *,
                          level: str = "province") -> pd.DataFrame:
    """The survey with each response's ``region`` (at ``level``) and, given the
    treatment table, its centre's ``arm`` ('partnered'/'comparison'/'unknown')."""
    where = pd.DataFrame({"centre_id": centres["centre_id"],
                          "region": region_of_centres(centres, level).to_numpy()})
    frame = parent_survey.merge(where, on="centre_id", how="left")
    if treatment is not None:
        frame = frame.merge(treatment[["centre_id", "is_partnered"]], on="centre_id", how="left")
        frame["arm"] = arm_label(frame["is_partnered"]).to_numpy()
    return frame


def satisfaction_table(parent_survey: pd.DataFrame, centres: pd.DataFrame,
                       treatment: pd.DataFrame, *, level: str = "province") -> pd.DataFrame:
    """Parent satisfaction by region × arm × item, for ``results/satisfaction.csv``.

    Rows per region and arm: each Likert item (``top2_pct`` = customer service
    score of the item, ``mean_score`` = its mean 1–5 answer), ``overall`` (all
    items pooled: the customer service score and the satisfaction mean index) and
    ``nps`` (the net promoter score in column ``nps``, with ``n_promoters`` and
    ``n_detractors``; ``n_valid`` = valid ``recommend`` answers). ``n_centres`` counts the
    centres of the region and arm with a response (the reports' small-cell rule needs it).
    Columns: :data:`SATISFACTION_COLUMNS`.
    """
    frame = responses_with_groups(parent_survey, centres, treatment, level=level)
    out = satisfaction_summary(frame, ["region", "arm"])
    out["item_label"] = out["item"].map(ITEM_LABELS).fillna(out["item"])
    answering = frame.groupby(["region", "arm"], dropna=False)["centre_id"].nunique().rename("n_centres")
    out = out.merge(answering.reset_index(), on=["region", "arm"], how="left")
    return out.sort_values(["region", "arm"], kind="stable")[SATISFACTION_COLUMNS].reset_index(drop=True)


def centre_satisfaction(parent_survey: pd.DataFrame) -> pd.DataFrame:
    """One row per centre with responses: :data:`CENTRE_SATISFACTION_COLUMNS`.

    ``customer_service_score_pct`` is the top-2-box % over all the centre's valid
    Likert answers (items pooled); ``satisfaction_mean_index`` is the mean valid
    1–5 answer (a different metric); ``nps`` the net promoter score.
    """
    if parent_survey.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in CENTRE_SATISFACTION_COLUMNS})
    summary = satisfaction_summary(parent_survey, ["centre_id"])
    overall = summary.loc[summary["item"] == OVERALL_ITEM].set_index("centre_id")
    rec = summary.loc[summary["item"] == NPS_ITEM].set_index("centre_id")
    out = pd.DataFrame({
        "n_responses": overall["n_responses"],
        "n_valid_answers": overall["n_valid"].astype("int64"),
        "customer_service_score_pct": overall["top2_pct"],
        "satisfaction_mean_index": overall["mean_score"],
        "n_recommend_valid": rec["n_valid"].astype("int64"),
        "nps": rec["nps"],
    })
    return out.rename_axis("centre_id").reset_index()[CENTRE_SATISFACTION_COLUMNS]


def customer_service_by_month(parent_survey: pd.DataFrame, centres: pd.DataFrame, *,
                              level: str = "province") -> pd.DataFrame:
    """Customer service score (all items pooled) by calendar month of submission,
    nationally (``scope='national'``, ``region`` missing) and per region.

    Responses without a submission time cannot be placed in a month and are
    left out here (they count in every other table). ``month`` is 'YYYY-MM'.
    """
    frame = responses_with_groups(parent_survey, centres, level=level)
    frame = frame.loc[frame["submission_time"].notna()].copy()
    frame["month"] = frame["submission_time"].dt.strftime("%Y-%m")
    parts = []
    for scope, by in (("national", ["month"]), ("region", ["region", "month"])):
        summary = satisfaction_summary(frame, by)
        summary = summary.loc[summary["item"] == OVERALL_ITEM]
        if scope == "national":
            summary = summary.assign(region=pd.NA)
        parts.append(summary.assign(scope=scope))
    out = pd.concat(parts, ignore_index=True).rename(columns={"top2_pct": "customer_service_score_pct"})
    return out.sort_values(["scope", "region", "month"], kind="stable",
                           key=lambda s: s.astype(str))[MONTHLY_COLUMNS].reset_index(drop=True)
