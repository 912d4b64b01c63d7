"""The small-cell rule of the study's plan, in one place.

A cell (a number in a table, a mark in a figure, a phrase of an alt text, aria label or
title, a cell of a download) that describes fewer than :func:`min_children` children or,
in a group it is computed from, fewer than :func:`min_centres` centres is suppressed
(plan: ``thresholds.small_cells``; 10 and 3 by default). :func:`cell_is_small` is that
rule; everything that shows a number computed from a group of children or centres asks it:

* :func:`group_sizes` decides it once for every arm × wave group of a region's children
  (the report's :attr:`evalkit.reporting.RegionData.groups`, the explorer's views);
* :func:`suppressed_results` applies it to the results tables offered to funders
  (``results/results.xlsx``), with the groups of ``results/indicators.csv``.

Statistics of a small cell (means, shares, SDs, differences, verdicts, p-values) become
``"suppressed"``; counts of 1 to ``min_children() - 1`` children become ``"<10"`` and of
1 to ``min_centres() - 1`` centres ``"<3"`` (:func:`shown_count`). Group sizes themselves
(how many children a group has) stay shown: readers need them to read the table.
The analysts' ``results/*.csv`` keep full precision.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import pandas as pd

from .ruleset import study_rules

__all__ = ["SUPPRESSED", "GROUP_COLUMNS", "INDICATOR_COUNTS", "min_children", "min_centres", "cell_is_small",
           "shown_count", "group_sizes", "groups_from_indicators", "group_size", "balance_cells", "region_is_small",
           "suppressed_results"]

SUPPRESSED = "suppressed"
#: Columns of :func:`group_sizes` (with ``region`` first when the children have one).
GROUP_COLUMNS = ["arm", "wave", "n_children", "n_centres", "small"]
#: The wave of an arm's row that covers both waves.
ALL_WAVES = "all"


def min_children() -> int:
    """Smallest number of children a cell may describe (plan: ``thresholds.small_cells.children``)."""
    return study_rules().small_cells.children


def min_centres() -> int:
    """Smallest number of centres a cell may describe (plan: ``thresholds.small_cells.centres``)."""
    return study_rules().small_cells.centres


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if isinstance(value, bool) or math.isnan(number) else number


def cell_is_small(n_children: Any, n_centres: Any = ()) -> bool:
    """True when a cell describing ``n_children`` children in ``n_centres`` centres is suppressed.

    ``n_centres`` is one count, or one count per group the cell is computed from (a
    difference between partnered and comparison children describes both arms). The cell
    is small with fewer than :func:`min_children` children or, in any group, fewer than
    :func:`min_centres` centres. A count that is missing or not a number is small: what
    cannot be checked is not shown.
    """
    children = _number(n_children)
    if children is None or children < min_children():
        return True
    single = isinstance(n_centres, (str, bytes)) or not isinstance(n_centres, Iterable)
    return any(_number(c) is None or _number(c) < min_centres() for c in ([n_centres] if single else n_centres))


def shown_count(n: Any, of: str = "children") -> Any:
    """A count as a cell may show it: ``"<10"`` (children, parents) or ``"<3"`` (centres) from 1
    to the limit − 1, otherwise the count itself (zero and missing unchanged)."""
    number = _number(n)
    limit = min_centres() if of == "centres" else min_children()
    if number is not None and 0 < round(number) < limit:
        return f"<{limit}"
    return n


def _arm(value: Any) -> str:
    return str(value).strip().capitalize()


def group_sizes(children: pd.DataFrame) -> pd.DataFrame:
    """Children and centres of every arm × wave group, and whether the group is small.

    One row per (``region``,) ``arm`` ("Partnered", "Comparison"), ``wave`` (each wave, and
    ``"all"`` for the arm over both waves: its children counted in the larger wave, its
    centres over both) with ``n_children`` (rows of the group: one per child and wave),
    ``n_centres`` (distinct ``centre_id``) and ``small`` (:func:`cell_is_small`).
    ``children`` needs ``centre_id``, ``wave`` and ``arm`` or ``is_partnered``.
    """
    keys = ["region"] if "region" in children.columns else []
    arm = (children["arm"] if "arm" in children.columns
           else children["is_partnered"].map({True: "Partnered", False: "Comparison"}))
    frame = pd.DataFrame({**{k: children[k].astype(str) for k in keys}, "arm": arm.map(_arm),
                          "wave": children["wave"].astype(str).str.lower(), "centre_id": children["centre_id"]})
    by_wave = (frame.groupby([*keys, "arm", "wave"], sort=True)
               .agg(n_children=("centre_id", "size"), n_centres=("centre_id", "nunique")).reset_index())
    by_arm = frame.groupby([*keys, "arm"], sort=True).agg(n_centres=("centre_id", "nunique")).reset_index()
    most = by_wave.groupby([*keys, "arm"], sort=True)["n_children"].max().rename("n_children").reset_index()
    by_arm = by_arm.merge(most, on=[*keys, "arm"]).assign(wave=ALL_WAVES)
    return _with_small(pd.concat([by_wave, by_arm], ignore_index=True), keys)


def groups_from_indicators(indicators: pd.DataFrame | None) -> pd.DataFrame | None:
    """:func:`group_sizes` from ``results/indicators.csv`` (its ``n_children`` and ``n_centres`` by
    region × arm × wave); the arm over both waves takes the larger wave of each (a lower bound of its
    centres, so never less suppression). None without the table."""
    needed = {"region", "arm", "wave", "n_children", "n_centres"}
    if indicators is None or indicators.empty or not needed <= set(indicators.columns):
        return None
    by_wave = pd.DataFrame({"region": indicators["region"].astype(str), "arm": indicators["arm"].map(_arm),
                            "wave": indicators["wave"].astype(str).str.lower(),
                            "n_children": pd.to_numeric(indicators["n_children"], errors="coerce"),
                            "n_centres": pd.to_numeric(indicators["n_centres"], errors="coerce")})
    by_arm = (by_wave.groupby(["region", "arm"], sort=True)[["n_children", "n_centres"]].max()
              .reset_index().assign(wave=ALL_WAVES))
    return _with_small(pd.concat([by_wave, by_arm], ignore_index=True), ["region"])


def _with_small(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    frame = frame.assign(small=[cell_is_small(n, c) for n, c in zip(frame["n_children"], frame["n_centres"])])
    return frame[[*keys, *GROUP_COLUMNS]].reset_index(drop=True)


def group_size(groups: pd.DataFrame | None, arm: str, wave: str = ALL_WAVES,
               region: str | None = None) -> tuple[Any, Any]:
    """``(n_children, n_centres)`` of one group of :func:`group_sizes`; ``(0, 0)`` when it has no
    children; ``(None, None)`` without ``groups`` (nothing known)."""
    if groups is None:
        return None, None
    match = (groups["arm"] == _arm(arm)) & (groups["wave"] == str(wave).lower())
    if region is not None and "region" in groups.columns:
        match &= groups["region"] == str(region)
    rows = groups.loc[match]
    if rows.empty:
        return 0, 0
    return rows["n_children"].iloc[0], rows["n_centres"].iloc[0]


# --------------------------------------------------------------------------- downloads

#: Count columns of the results tables: what they count.
_COUNTS = {"n_children": "children", "n_centres": "centres", "n_centres_partnered": "centres",
           "n_centres_comparison": "centres", "n_responses": "children", "n_valid": "children",
           "n_with_elom_total": "children", "n_with_band": "children", "n_with_haz": "children",
           "n_with_attendance": "children", "n_rows": "children",
           "rows_in": "children", "rows_kept": "children", "rows_dropped": "children"}
#: Statistics of results/indicators.csv that rest on fewer children than their group: their count column.
INDICATOR_COUNTS = {"elom_total_mean": "n_with_elom_total", "elom_total_sd": "n_with_elom_total",
                "on_track_pct": "n_with_band", "falling_behind_pct": "n_with_band",
                "falling_far_behind_pct": "n_with_band", "haz_mean": "n_with_haz", "stunted_pct": "n_with_haz",
                "severely_stunted_pct": "n_with_haz", "attendance_rate_mean": "n_with_attendance"}
ARMS = ("Partnered", "Comparison")
_BALANCE_ARM = {"Partnered": ("mean_partnered", "sd_partnered"), "Comparison": ("mean_comparison", "sd_comparison")}
_BALANCE_BOTH = ("diff_raw", "diff_adjusted", "se_adjusted", "p_adjusted", "smd", "variance_ratio", "flag",
                 "hedges_g", "smd_weighted", "share_missing")


def _hide(frame: pd.DataFrame, rows: Iterable[bool], columns: Iterable[str]) -> None:
    """``"suppressed"`` in ``columns`` of the ``rows`` that hold a value (a missing value stays missing)."""
    mask = pd.Series(list(rows), index=frame.index, dtype=bool)
    for column in columns:
        if column in frame.columns:
            hide = mask & frame[column].notna()
            if hide.any():
                frame[column] = frame[column].astype(object).where(~hide, SUPPRESSED)


def _sizes(groups: pd.DataFrame | None, arm: str, wave: str, region: Any) -> tuple[float, float]:
    """A group's (children, centres); infinite when there are no groups to ask (nothing to add)."""
    children, centres = group_size(groups, arm, wave, None if region is None else str(region))
    return (math.inf, math.inf) if children is None else (children, centres)


def _column(frame: pd.DataFrame, name: str) -> list:
    return frame[name].tolist() if name in frame.columns else [None] * len(frame)


def balance_cells(balance: pd.DataFrame, groups: pd.DataFrame | None = None) -> dict[str, list[bool]]:
    """Whether each row's partnered and comparison cells of a balance table are small.

    A child row (``level`` not "centre") counts children (``n_partnered``, ``n_comparison``) in
    the arm's baseline centres; a centre row counts centres with the arm's baseline children
    (``groups``: :func:`group_sizes`; without them only the row's own counts are checked).
    Returns lists for "Partnered", "Comparison" and "either" (the cells that compare the arms).
    """
    out: dict[str, list[bool]] = {}
    for arm in ARMS:
        small = []
        for region, level, count in zip(_column(balance, "region"), _column(balance, "level"),
                                        _column(balance, f"n_{arm.lower()}")):
            children, centres = _sizes(groups, arm, "baseline", region)
            small.append(cell_is_small(children, count) if str(level) == "centre"
                         else cell_is_small(count, centres))
        out[arm] = small
    out["either"] = [a or b for a, b in zip(out["Partnered"], out["Comparison"])]
    return out


def region_is_small(groups: pd.DataFrame | None, region: Any = None) -> bool:
    """Whether a cell about a whole region (both arms) is small; False when ``groups`` do not know it."""
    if groups is None:
        return False
    sizes = [group_size(groups, arm, ALL_WAVES, None if region is None else str(region)) for arm in ARMS]
    if not any(n for n, _ in sizes):
        return False
    return cell_is_small(sum(n for n, _ in sizes), sum(c for _, c in sizes))


def suppressed_results(name: str, table: pd.DataFrame, groups: pd.DataFrame | None = None) -> pd.DataFrame:
    """A results table as funders may see it: the cells :func:`cell_is_small` finds small suppressed.

    ``name`` is the table's file stem under ``results/``; ``groups`` the region × arm × wave sizes
    (:func:`groups_from_indicators`), for the tables that do not count centres themselves
    (balance, balance_joint, satisfaction without ``n_centres``, scorecard). Statistics of a small
    cell become ``"suppressed"`` and counts :func:`shown_count`; tables with nothing computed from a
    group of children (milestones) come back as they are.
    """
    out = table.copy()
    if name == "estimates" and "n_children" in out:
        centres = zip(_column(out, "n_centres_partnered"), _column(out, "n_centres_comparison"))
        keep = {"region", "outcome", "estimator", "inference", "df", "status", "note", "subgroup", "warning",
                "is_primary", *_COUNTS}
        _hide(out, [cell_is_small(k, list(c)) for k, c in zip(out["n_children"], centres)],
              [c for c in out.columns if c not in keep])
    elif name == "indicators" and "n_children" in out:
        _hide(out, [cell_is_small(k, c) for k, c in zip(out["n_children"], _column(out, "n_centres"))],
              [c for c in out.columns if c not in ("region", "arm", "wave", *_COUNTS)])
        for stat, count in INDICATOR_COUNTS.items():
            if stat in out and count in out:
                _hide(out, [cell_is_small(k) for k in table[count]], [stat])
    elif name == "satisfaction" and "n_valid" in out:
        centres = (_column(out, "n_centres") if "n_centres" in out else
                   [_sizes(groups, arm, ALL_WAVES, region)[1] for region, arm in zip(_column(out, "region"),
                                                                                   _column(out, "arm"))])
        _hide(out, [cell_is_small(k, c) for k, c in zip(out["n_valid"], centres)],
              ["n_top2", "top2_pct", "mean_score", "n_promoters", "n_detractors", "nps"])
    elif name == "balance":
        cells = balance_cells(out, groups)
        for arm, columns in _BALANCE_ARM.items():
            _hide(out, cells[arm], columns)
        _hide(out, cells["either"], _BALANCE_BOTH)
        for arm in ARMS:
            if f"n_{arm.lower()}" in out:
                out[f"n_{arm.lower()}"] = [shown_count(k, "centres" if str(level) == "centre" else "children")
                                           for k, level in zip(table[f"n_{arm.lower()}"], _column(out, "level"))]
    elif name == "balance_joint":
        if groups is not None:
            _hide(out, [any(cell_is_small(*_sizes(groups, arm, "baseline", region)) for arm in ARMS)
                        for region in _column(out, "region")], ["statistic", "p_value"])
        if "n_obs" in out:  # children, or centres for the test of the centres' characteristics
            out["n_obs"] = [shown_count(k, "centres" if str(test).startswith("centre") else "children")
                            for k, test in zip(table["n_obs"], _column(out, "test"))]
    elif name == "scorecard" and "scope" in out:
        _hide(out, [str(scope).lower() == "region" and region_is_small(groups, region)
                    for scope, region in zip(out["scope"], _column(out, "region"))], ["value"])
    if name != "milestones":
        for count, of in _COUNTS.items():
            if count in out:
                out[count] = [shown_count(k, of) for k in table[count]]
    return out
