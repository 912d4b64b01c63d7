"""What a regional report shows, as functions the report notebook calls.

The notebook ``notebooks/regional_evaluation.ipynb`` defines nothing and computes
nothing heavy: it calls :func:`load_region` once and then one function per
section. Each section function returns an :class:`IPython.display.HTML` object,
so a cell that ends with the call displays the section. The wording and the
tables are built by plain functions (``headline_text``, ``estimate_frame``,
``suppress_small_cells`` …) that the tests call directly.

Disclosure control: a table cell that describes fewer than
:data:`MIN_CHILDREN_PER_CELL` children or :data:`MIN_CENTRES_PER_CELL` centres
is shown as ``"<10"`` / ``"<3"`` (counts) or ``"suppressed"`` (statistics).
``child_id`` is never loaded, and the cleaning log is only ever counted.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

__all__ = [
    "MIN_CHILDREN_PER_CELL",
    "MIN_CENTRES_PER_CELL",
    "FEW_CENTRES_WARNING",
    "PALETTE",
    "RegionData",
    "RegionNotFoundError",
    "load_region",
    "evalkit_version",
    "primary_row",
    "effect_direction",
    "headline_text",
    "short_result",
    "format_number",
    "format_interval",
    "format_p",
    "suppress_count",
    "suppress_small_cells",
    "estimate_frame",
    "sample_size_frame",
    "on_track_frame",
    "data_quality_frame",
    "methods_paragraphs",
    "limitations_list",
    "title",
    "headline",
    "estimate_table",
    "effect_figure",
    "score_distribution_figure",
    "on_track_table",
    "sample_size_table",
    "data_quality_table",
    "methods",
    "limitations",
    "reproducibility_stamp",
]

#: Smallest number of children a table cell may describe.
MIN_CHILDREN_PER_CELL = 10
#: Smallest number of centres a table cell may describe.
MIN_CENTRES_PER_CELL = 3
#: Below this many centres in an arm the report warns that clustered errors are fragile.
FEW_CENTRES_WARNING = 10
#: Okabe–Ito colours (colour-blind safe) for the two arms.
PALETTE = {"Partnered": "#0072B2", "Comparison": "#E69F00"}

PRIMARY = {"outcome": "elom_total", "estimator": "ancova", "inference": "CR1"}
ARMS = ("Partnered", "Comparison")
WAVES = ("baseline", "endline")
ON_TRACK = "On Track"
SUPPRESSED = "suppressed"
DASH = "–"
MINUS = "\u2212"

_ESTIMATES = Path("results") / "estimates.csv"
_CHILD_OUTCOMES = "child_outcomes.parquet"
_CLEANING_LOG = "cleaning_log.csv"
_MANIFEST = "run_manifest.json"
# Only these columns of child_outcomes are ever read: never child_id.
_CHILD_COLUMNS = ("centre_id", "region", "wave", "is_partnered", "age_months", "sex", "setting",
                  "elom_total", "elom_band")
_REQUIRED_CHILD_COLUMNS = ("centre_id", "region", "wave", "is_partnered", "elom_total")

_OUTCOME_LABELS = {
    "elom_total": ("ELOM total", "points"),
    "elom_gmd": ("ELOM gross motor", "points"),
    "elom_fmc": ("ELOM fine motor & visual-motor", "points"),
    "elom_enm": ("ELOM emergent numeracy", "points"),
    "elom_cef": ("ELOM cognition & executive functioning", "points"),
    "elom_ell": ("ELOM emergent literacy & language", "points"),
    "haz": ("Height-for-age", "z"),
    "waz": ("Weight-for-age", "z"),
    "whz": ("Weight-for-height", "z"),
    "baz": ("BMI-for-age", "z"),
    "attendance_rate": ("Attendance rate", ""),
}
_ESTIMATOR_LABELS = {"ancova": "ANCOVA", "did": "Difference-in-differences", "naive": "Unadjusted"}
_INFERENCE_LABELS = {
    "CR1": "SE clustered by centre (CR1)",
    "CR2": "SE clustered by centre (CR2, small-sample)",
}


class RegionNotFoundError(LookupError):
    """The region has no row in ``results/estimates.csv``."""


@dataclass(frozen=True, eq=False)
class RegionData:
    """One region's prepared data, as the report reads it.

    Attributes
    ----------
    region : str
        Canonical region name.
    estimates : DataFrame
        The region's rows of ``results/estimates.csv``, primary row first.
    children : DataFrame
        The region's rows of ``child_outcomes.parquet`` (no ``child_id``), with an
        ``arm`` column ("Partnered" / "Comparison").
    cleaning_log : DataFrame or None
        The run's cleaning log (all regions), or None when the file is missing.
    manifest : dict or None
        ``run_manifest.json``, or None when the file is missing.
    """

    region: str
    estimates: pd.DataFrame
    children: pd.DataFrame
    cleaning_log: pd.DataFrame | None = None
    manifest: dict[str, Any] | None = None
    built_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def primary(self) -> pd.Series | None:
        """The primary estimate row (ELOM total, ANCOVA, CR1), or None."""
        return primary_row(self.estimates, self.region)


def evalkit_version() -> str:
    """The running evalkit's version.

    Falls back to the installed distribution's metadata when the package was
    imported as a namespace (a stale editable install seen outside the project root).
    """
    import evalkit

    version = getattr(evalkit, "__version__", None)
    if version:
        return version
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        return dist_version("evalkit")
    except PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------- loading

def load_region(region: str, output_dir: str | Path, processed_dir: str | Path) -> RegionData:
    """Read one region's estimates, child outcomes, the cleaning log and the manifest.

    Parameters
    ----------
    region : str
        Canonical region name as in ``results/estimates.csv``.
    output_dir : path
        The run's output folder (holds ``results/``, ``cleaning_log.csv``,
        ``run_manifest.json``). A relative path is taken from the project root.
    processed_dir : path
        The folder holding ``child_outcomes.parquet`` (relative: from the project root).

    Raises
    ------
    FileNotFoundError
        When ``results/estimates.csv`` or ``child_outcomes.parquet`` is missing.
    RegionNotFoundError
        When the region has no row in the estimates.
    """
    output_dir, processed_dir = _from_project_root(output_dir), _from_project_root(processed_dir)
    estimates = pd.read_csv(output_dir / _ESTIMATES)
    rows = estimates.loc[estimates["region"].astype(str) == region].copy()
    if rows.empty:
        raise RegionNotFoundError(f"{region!r} has no row in {output_dir / _ESTIMATES}")
    is_primary = _primary_mask(rows)
    rows = pd.concat([rows[is_primary], rows[~is_primary]]).reset_index(drop=True)

    children = _read_children(processed_dir / _CHILD_OUTCOMES, region)

    log_path = output_dir / _CLEANING_LOG
    cleaning_log = pd.read_csv(log_path, dtype=str, keep_default_na=False) if log_path.exists() else None
    manifest_path = output_dir / _MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else None
    return RegionData(region=region, estimates=rows, children=children,
                      cleaning_log=cleaning_log, manifest=manifest)


def _from_project_root(path: str | Path) -> Path:
    """Relative paths (the notebook's defaults) are taken from the project root, not the cwd."""
    from .config import PROJECT_ROOT

    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _read_children(path: Path, region: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    available = set(pq.read_schema(path).names)
    missing = [c for c in _REQUIRED_CHILD_COLUMNS if c not in available]
    if missing:
        raise ValueError(f"{path.name} lacks the column(s) {', '.join(missing)}")
    columns = [c for c in _CHILD_COLUMNS if c in available]
    children = pd.read_parquet(path, columns=columns, filters=[("region", "==", region)])
    children["arm"] = children["is_partnered"].map({True: "Partnered", False: "Comparison"})
    return children


def _primary_mask(rows: pd.DataFrame) -> pd.Series:
    mask = pd.Series(True, index=rows.index)
    for column, value in PRIMARY.items():
        mask &= rows[column].astype(str) == value
    return mask


def primary_row(estimates: pd.DataFrame, region: str) -> pd.Series | None:
    """The region's primary row (``elom_total`` / ``ancova`` / ``CR1``), or None."""
    rows = estimates.loc[(estimates["region"].astype(str) == region) & _primary_mask(estimates)]
    return None if rows.empty else rows.iloc[0]


# --------------------------------------------------------------------------- formatting

def _isnum(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def format_number(value: Any, digits: int = 1, *, signed: bool = False) -> str:
    """A number for people: fixed decimals, a true minus sign, "–" when missing."""
    if not _isnum(value):
        return DASH
    value = float(value)
    text = f"{abs(value):,.{digits}f}"
    if float(text.replace(",", "")) == 0:
        return text
    if value < 0:
        return MINUS + text
    return "+" + text if signed else text


def format_interval(low: Any, high: Any, digits: int = 1) -> str:
    """``"0.4 to 3.8"`` (words, not a dash, so negative bounds stay readable)."""
    if not (_isnum(low) and _isnum(high)):
        return DASH
    return f"{format_number(low, digits)} to {format_number(high, digits)}"


def format_p(p: Any) -> str:
    """p-value with three decimals, ``"<0.001"`` below that."""
    if not _isnum(p):
        return DASH
    return "<0.001" if float(p) < 0.001 else f"{float(p):.3f}"


def _points(value: Any) -> str:
    """Effect in points: one decimal, two when it would round to zero."""
    digits = 2 if _isnum(value) and abs(float(value)) < 0.05 else 1
    return format_number(abs(float(value)) if _isnum(value) else value, digits)


def suppress_count(n: Any, threshold: int = MIN_CHILDREN_PER_CELL) -> str:
    """A count, or ``"<threshold"`` when it is between 1 and threshold − 1.

    Zero is shown: an empty group discloses nothing about anyone, and readers
    need to see it (e.g. a region with no comparison centres).
    """
    if not _isnum(n):
        return DASH
    n = int(round(float(n)))
    if 0 < n < threshold:
        return f"<{threshold}"
    return f"{n:,}"


def _too_small(n_children: Any, n_centres: Iterable[Any] = ()) -> bool:
    if not _isnum(n_children) or float(n_children) < MIN_CHILDREN_PER_CELL:
        return True
    return any(not _isnum(c) or float(c) < MIN_CENTRES_PER_CELL for c in n_centres)


def suppress_small_cells(table: pd.DataFrame, *, children: str,
                         centres: str | list[str] | tuple[str, ...] = (),
                         values: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """Return a display copy of ``table`` with small cells hidden.

    Parameters
    ----------
    table : DataFrame
        One row per group.
    children : str
        Column holding the number of children the row describes; shown as
        ``"<10"`` when 1–9.
    centres : str or sequence of str
        Column(s) holding numbers of centres; shown as ``"<3"`` when 1–2.
    values : sequence of str
        Already formatted statistics of the row (means, percentages,
        estimates). They become ``"suppressed"`` when the row describes fewer
        than 10 children or fewer than 3 centres in any centre column.

    Returns
    -------
    DataFrame
        Same shape, count and value columns as strings.
    """
    centres = [centres] if isinstance(centres, str) else list(centres)
    out = table.copy()
    small = [_too_small(row[children], [row[c] for c in centres]) for _, row in table.iterrows()]
    small = pd.Series(small, index=table.index, dtype=bool)
    for column in values:
        out[column] = out[column].astype(object).where(~small, SUPPRESSED)
        empty = table[children].fillna(0).astype(float) == 0
        out[column] = out[column].where(~empty, DASH)
    out[children] = table[children].map(suppress_count).astype(object)
    for column in centres:
        out[column] = table[column].map(lambda n: suppress_count(n, MIN_CENTRES_PER_CELL)).astype(object)
    return out


# --------------------------------------------------------------------------- headline

def _reason(note: Any) -> str:
    text = str(note).strip() if isinstance(note, str) and note.strip() else "the reason was not recorded"
    text = text.rstrip(". ")
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return text


def effect_direction(row: pd.Series | None) -> str | None:
    """``"higher"``, ``"lower"`` or ``"unclear"`` for a usable row; None otherwise.

    "higher"/"lower" only when the whole 95% interval lies on one side of zero.
    """
    if row is None or str(row.get("status")) != "ok":
        return None
    if not all(_isnum(row.get(c)) for c in ("estimate", "ci_low", "ci_high")):
        return None
    if _too_small(row.get("n_children"), [row.get("n_centres_partnered"), row.get("n_centres_comparison")]):
        return None
    if float(row["ci_low"]) > 0:
        return "higher"
    if float(row["ci_high"]) < 0:
        return "lower"
    return "unclear"


def headline_text(row: pd.Series | None, region: str) -> str:
    """The plain-language result for funders, from the primary estimate row.

    Examples
    --------
    >>> headline_text(pd.Series(dict(status="ok", estimate=2.1, ci_low=0.4, ci_high=3.8,
    ...     effect_size_sd=0.16, n_children=400, n_centres_partnered=12,
    ...     n_centres_comparison=14)), "Gauteng")[:60]
    'Children in partnered centres scored 2.1 points higher on th'
    """
    if row is None:
        return (f"We could not estimate an effect in {region} because the results hold no "
                "primary estimate (ELOM total, ANCOVA) for this region.")
    if str(row.get("status")) != "ok":
        return f"We could not estimate an effect in {region} because {_reason(row.get('note'))}."
    if not all(_isnum(row.get(c)) for c in ("estimate", "ci_low", "ci_high")):
        return (f"We could not estimate an effect in {region} because the estimate or its "
                "interval is missing from the results.")
    n_part, n_comp = row.get("n_centres_partnered"), row.get("n_centres_comparison")
    if _too_small(row.get("n_children"), [n_part, n_comp]):
        return (f"We do not report an effect for {region}: the estimate rests on fewer than "
                f"{MIN_CHILDREN_PER_CELL} children or {MIN_CENTRES_PER_CELL} centres in a group, "
                "too few to publish without identifying them.")

    direction = effect_direction(row)
    sd = (f" (about {format_number(abs(float(row['effect_size_sd'])), 2)} SD)"
          if _isnum(row.get("effect_size_sd")) else "")
    interval = format_interval(row["ci_low"], row["ci_high"])
    if direction in ("higher", "lower"):
        text = (f"Children in partnered centres scored {_points(row['estimate'])} points {direction} "
                f"on the ELOM total{sd} than similar children in comparison centres; "
                f"the 95% interval runs from {interval} points.")
    else:
        sign = "higher" if float(row["estimate"]) >= 0 else "lower"
        text = (f"We found no clear difference in ELOM total between children in partnered and "
                f"comparison centres: our best estimate is {_points(row['estimate'])} points {sign} "
                f"in partnered centres{sd}, but the 95% interval runs from {interval} points "
                "and spans zero.")
    text += (" Partnership was not randomised, so this is an adjusted comparison, "
             "not proof that partnerships caused the difference.")
    if _isnum(n_part) and _isnum(n_comp) and min(float(n_part), float(n_comp)) < FEW_CENTRES_WARNING:
        text += (f" It rests on only {int(n_part)} partnered and {int(n_comp)} comparison centres, "
                 "so treat it with extra caution.")
    return text


def short_result(row: pd.Series | None) -> dict[str, str]:
    """Formatted cells for the landing page: estimate, interval, SD, children."""
    empty = {"estimate": DASH, "interval": DASH, "effect_size_sd": DASH,
             "n_children": DASH, "direction": ""}
    if row is None:
        return empty
    out = dict(empty, n_children=suppress_count(row.get("n_children")))
    direction = effect_direction(row)
    if direction is None:
        if str(row.get("status")) == "ok":
            out.update(estimate=SUPPRESSED)
        return out
    out.update(estimate=format_number(row["estimate"], 1, signed=True),
               interval=format_interval(row["ci_low"], row["ci_high"]),
               effect_size_sd=format_number(row.get("effect_size_sd"), 2, signed=True),
               direction={"higher": "partnered higher", "lower": "partnered lower",
                          "unclear": "no clear difference"}[direction])
    return out


# --------------------------------------------------------------------------- tables as frames

def _outcome_label(outcome: str) -> str:
    label, unit = _OUTCOME_LABELS.get(outcome, (outcome, ""))
    return f"{label} ({unit})" if unit else label


def _method_label(row: pd.Series) -> str:
    estimator = _ESTIMATOR_LABELS.get(str(row["estimator"]), str(row["estimator"]))
    inference = _INFERENCE_LABELS.get(str(row["inference"]), str(row["inference"]))
    return f"{estimator}, {inference}"


def estimate_frame(estimates: pd.DataFrame) -> pd.DataFrame:
    """The estimate table as display strings, primary row first and marked.

    Rows describing fewer than 10 children or 3 centres in an arm show
    "suppressed" instead of numbers.
    """
    rows = []
    is_primary = _primary_mask(estimates)
    for index, row in estimates.iterrows():
        ok = str(row["status"]) == "ok" and _isnum(row.get("estimate"))
        label = _method_label(row) + (" — primary" if is_primary.loc[index] else "")
        cells = {
            "Outcome": _outcome_label(str(row["outcome"])),
            "Method": label,
            "Estimate": format_number(row["estimate"], 2, signed=True) if ok else "not estimable",
            "95% interval": format_interval(row["ci_low"], row["ci_high"], 2) if ok else DASH,
            "Std. error": format_number(row["std_error"], 2) if ok else DASH,
            "p-value": format_p(row["p_value"]) if ok else DASH,
            "Effect size (SD)": format_number(row["effect_size_sd"], 2, signed=True) if ok else DASH,
            "Children": row["n_children"],
            "Partnered centres": row["n_centres_partnered"],
            "Comparison centres": row["n_centres_comparison"],
            "Note": str(row["note"]) if isinstance(row.get("note"), str) else "",
        }
        rows.append(cells)
    table = pd.DataFrame(rows, columns=["Outcome", "Method", "Estimate", "95% interval", "Std. error",
                                        "p-value", "Effect size (SD)", "Children", "Partnered centres",
                                        "Comparison centres", "Note"])
    values = ["Estimate", "95% interval", "Std. error", "p-value", "Effect size (SD)"]
    shown = suppress_small_cells(table, children="Children",
                                 centres=["Partnered centres", "Comparison centres"], values=values)
    # A not-estimable row carries no statistic to protect: keep saying so.
    not_ok = table["Estimate"] == "not estimable"
    shown.loc[not_ok, values] = table.loc[not_ok, values]
    return shown


def _groups(children: pd.DataFrame) -> Iterable[tuple[str, str, pd.DataFrame]]:
    for arm in ARMS:
        for wave in WAVES:
            yield arm, wave, children.loc[(children["arm"] == arm) & (children["wave"] == wave)]


def sample_size_frame(children: pd.DataFrame) -> pd.DataFrame:
    """Children and centres assessed, by arm and wave (suppressed counts as strings)."""
    rows = [{"Group": arm, "Wave": wave.capitalize(), "Children assessed": len(group),
             "With ELOM total": int(group["elom_total"].notna().sum()),
             "Centres": group["centre_id"].nunique()}
            for arm, wave, group in _groups(children)]
    table = pd.DataFrame(rows)
    out = suppress_small_cells(table, children="Children assessed", centres="Centres")
    out["With ELOM total"] = table["With ELOM total"].map(suppress_count)
    return out


def on_track_frame(children: pd.DataFrame) -> pd.DataFrame:
    """Share of children On Track on the ELOM standards, by arm and wave."""
    rows = []
    for arm, wave, group in _groups(children):
        banded = group.loc[group["elom_band"].notna()] if "elom_band" in group else group.iloc[0:0]
        n = len(banded)
        pct = 100 * (banded["elom_band"] == ON_TRACK).mean() if n else np.nan
        mean = banded["elom_total"].mean() if n else np.nan
        rows.append({"Group": arm, "Wave": wave.capitalize(), "Children": n,
                     "Centres": banded["centre_id"].nunique(),
                     "On Track (%)": format_number(pct, 0), "Mean ELOM total": format_number(mean, 1)})
    return suppress_small_cells(pd.DataFrame(rows), children="Children", centres="Centres",
                                values=["On Track (%)", "Mean ELOM total"])


def data_quality_frame(cleaning_log: pd.DataFrame | None, *, top: int = 15) -> pd.DataFrame:
    """Records changed, flagged and dropped, by table and rule (the whole run).

    Only counts leave the log: no record ids and no values.
    """
    columns = ["Table", "Rule", "Changed", "Flagged", "Dropped"]
    if cleaning_log is None or cleaning_log.empty:
        return pd.DataFrame(columns=columns)
    log = cleaning_log.assign(action=cleaning_log["action"].str.lower())
    counts = (log.groupby(["table", "rule", "action"]).size().unstack("action", fill_value=0)
              .reindex(columns=["changed", "flagged", "dropped"], fill_value=0))
    counts = counts.assign(total=counts.sum(axis=1)).sort_values("total", ascending=False).head(top)
    out = counts.reset_index()
    table = pd.DataFrame({"Table": out["table"], "Rule": out["rule"].str.replace("_", " ")})
    for action in ("changed", "flagged", "dropped"):
        table[action.capitalize()] = out[action].map(lambda n: DASH if n == 0 else suppress_count(n))
    return table


# --------------------------------------------------------------------------- methods text

def _int(value: Any) -> int | None:
    return int(float(value)) if _isnum(value) else None


def methods_paragraphs(data: RegionData) -> list[str]:
    """Methods, in plain sentences, written from the region's primary row."""
    row = data.primary
    paras = [
        "We compare children in centres that had signed a partnership (an MOU that had not ended) "
        "before their endline assessment — <em>partnered</em> centres — with children in centres "
        "without one — <em>comparison</em> centres. Children were assessed twice, at baseline and "
        "endline, with the ELOM 4&amp;5 (Early Learning Outcomes Measure; total 0–100)."
    ]
    if row is None or str(row.get("status")) != "ok":
        paras.append(
            "The planned analysis is an ANCOVA of endline ELOM total on partnership, adjusting for "
            "baseline ELOM total, age, sex and setting, with standard errors clustered by centre. "
            f"It was not run for {html.escape(data.region)} because "
            f"{html.escape(_reason(None if row is None else row.get('note')))}.")
        return paras
    n, part, comp, df = (_int(row.get(c)) for c in
                         ("n_children", "n_centres_partnered", "n_centres_comparison", "df"))
    g = (part or 0) + (comp or 0)
    paras.append(
        "<strong>Estimate.</strong> An ANCOVA: an ordinary least-squares regression of each child's "
        "endline ELOM total on partnership (partnered = 1), adjusting for the child's baseline ELOM "
        "total, age in months at endline, sex and setting (urban, peri-urban, rural). Adjusting for "
        "baseline matters because children gain roughly 0.7 ELOM points a month as they grow. "
        f"The model uses {suppress_count(n)} children assessed at both waves in "
        f"{suppress_count(g, MIN_CENTRES_PER_CELL)} centres "
        f"({suppress_count(part, MIN_CENTRES_PER_CELL)} partnered, "
        f"{suppress_count(comp, MIN_CENTRES_PER_CELL)} comparison).")
    df_text = f"{df} degrees of freedom" if df is not None else "G − 1 degrees of freedom"
    paras.append(
        "<strong>Uncertainty.</strong> Children in the same centre are alike, so standard errors are "
        "clustered by centre (CR1, the Stata small-sample form) and the 95% interval uses a "
        f"t distribution with {df_text} (the number of centres minus one).")
    paras.append(
        "<strong>Effect size.</strong> The estimate in ELOM points divided by the standard deviation "
        f"of baseline ELOM total among comparison children in {html.escape(data.region)}; 0.10–0.25 SD "
        "is the range plausible for programmes of this kind.")
    return paras


def limitations_list(data: RegionData) -> list[str]:
    """Limitations that apply to this region's result (HTML-safe sentences)."""
    row = data.primary
    items = [
        "Partnership was <strong>not randomised</strong>. Centres chose to partner, and partnered "
        "centres tend to be urban, registered and better resourced. The adjustment removes measured "
        "differences at baseline but not unmeasured ones, so the result is an association, not proof "
        "of cause."
    ]
    if row is not None and str(row.get("status")) == "ok":
        part, comp = _int(row.get("n_centres_partnered")), _int(row.get("n_centres_comparison"))
        if part is not None and comp is not None and min(part, comp) < FEW_CENTRES_WARNING:
            has_cr2 = (data.estimates["inference"].astype(str) == "CR2").any()
            items.append(
                f"<strong>Few centres.</strong> This region has only {part} partnered and {comp} "
                f"comparison centres (fewer than {FEW_CENTRES_WARNING} in an arm). With so few "
                "clusters, CR1 standard errors can be too small and one centre can move the result; "
                + ("compare the CR2 row in Table 1, which corrects for this." if has_cr2
                   else "read the interval as a lower bound on the uncertainty."))
        items.append(
            "Only children assessed at both baseline and endline are in the model; children who left "
            "or were absent at one wave are not represented.")
    else:
        items.append(
            "No effect was estimated for this region, so the tables in this report describe the "
            "children assessed but say nothing about what partnership did.")
    items.append(
        "The ELOM 4&amp;5 is designed for children aged 50–69 months and for reporting on groups, "
        "not on individual children.")
    items.append(
        "The data-quality counts cover the whole run (all regions), not only "
        f"{html.escape(data.region)}.")
    return items


# --------------------------------------------------------------------------- HTML pieces

def _html(markup: str):
    from IPython.display import HTML

    return HTML(markup)


def _table_html(table: pd.DataFrame, caption: str, *, note: str = "",
                numeric: Iterable[str] = ()) -> str:
    numeric = set(numeric)
    head = "".join(f'<th scope="col">{html.escape(str(c))}</th>' for c in table.columns)
    body = []
    for _, row in table.iterrows():
        cells = []
        for i, (column, value) in enumerate(row.items()):
            text = html.escape("" if value is None or (isinstance(value, float) and math.isnan(value))
                               else str(value))
            cls = ' class="num"' if column in numeric else ""
            cells.append(f"<th scope=\"row\">{text}</th>" if i == 0 else f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    note_html = f'<p class="ek-note">{note}</p>' if note else ""
    return (f'<div class="ek-table-wrap"><table class="ek-table"><caption>{caption}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>{note_html}")


def _figure_html(fig, alt: str, caption: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=144, bbox_inches="tight", metadata={"Software": None})
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    width = int(fig.get_figwidth() * 96)
    return (f'<figure class="ek-figure"><img src="data:image/png;base64,{png}" '
            f'alt="{html.escape(alt, quote=True)}" style="max-width:{width}px">'
            f"<figcaption>{caption}</figcaption></figure>")


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots()


SUPPRESSION_NOTE = (f"Cells describing fewer than {MIN_CHILDREN_PER_CELL} children or "
                    f"{MIN_CENTRES_PER_CELL} centres are shown as “&lt;{MIN_CHILDREN_PER_CELL}”, "
                    f"“&lt;{MIN_CENTRES_PER_CELL}” or “suppressed”.")


def title(data: RegionData):
    """Report title: the region, what the report is, when it was built."""
    row = data.primary
    estimated = row is not None and str(row.get("status")) == "ok"
    status = "effect estimated" if estimated else "no effect estimated"
    started = (data.manifest or {}).get("started_at", "unknown")
    return _html(
        f'<header class="ek-title"><p class="ek-kicker">ECD partnership evaluation · regional report</p>'
        f"<h1>{html.escape(data.region)}</h1>"
        f'<p class="ek-meta">Do children in ECD centres with partnerships do better than children in '
        f"similar centres without them? Status: {status}. Data run started "
        f"{html.escape(str(started))}; report built {html.escape(data.built_at)}.</p></header>")


def headline(data: RegionData):
    """The headline box for funders."""
    text = headline_text(data.primary, data.region)
    direction = effect_direction(data.primary) or "none"
    return _html(f'<section class="ek-headline ek-{direction}" aria-label="Headline result">'
                 f"<h2>What we found</h2><p>{html.escape(text)}</p></section>")


def estimate_table(data: RegionData, number: int = 1):
    """Table of every estimate for the region (primary first)."""
    caption = (f"Table {number}. Estimated difference between partnered and comparison centres "
               f"in {html.escape(data.region)} (partnered minus comparison)")
    note = ("Estimates are in the outcome's units (ELOM points unless stated). A positive estimate "
            "means higher scores in partnered centres. " + SUPPRESSION_NOTE)
    frame = estimate_frame(data.estimates)
    numeric = [c for c in frame.columns if c not in ("Outcome", "Method", "Note")]
    return _html(_table_html(frame, caption, note=note, numeric=numeric))


def effect_figure(data: RegionData, number: int = 1):
    """Point estimate and 95% interval of every usable ELOM-total estimate."""
    rows = data.estimates.loc[data.estimates["outcome"].astype(str) == "elom_total"]
    rows = [r for _, r in rows.iterrows() if effect_direction(r) is not None]
    if not rows:
        return _html(f'<p class="ek-placeholder">Figure {number} is not shown: there is no estimate '
                     f"of the effect for {html.escape(data.region)} (see the headline for why).</p>")
    labels = [f"{_ESTIMATOR_LABELS.get(str(r['estimator']), str(r['estimator']))}, {r['inference']}"
              + (" (primary)" if str(r["inference"]) == PRIMARY["inference"]
                 and str(r["estimator"]) == PRIMARY["estimator"] else "") for r in rows]
    fig, ax = _new_figure(7.0, 0.9 + 0.55 * len(rows))
    ys = np.arange(len(rows))[::-1]
    for y, r in zip(ys, rows):
        ax.errorbar(float(r["estimate"]), y, xerr=[[float(r["estimate"]) - float(r["ci_low"])],
                                                   [float(r["ci_high"]) - float(r["estimate"])]],
                    fmt="o", color=PALETTE["Partnered"], ecolor=PALETTE["Partnered"], capsize=4,
                    markersize=7, linewidth=2)
    ax.axvline(0, color="#555555", linewidth=1, linestyle="--")
    ax.set_yticks(ys, labels)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("Difference in ELOM total, points (partnered − comparison), with 95% interval")
    lo = min(float(r["ci_low"]) for r in rows)
    hi = max(float(r["ci_high"]) for r in rows)
    pad = max(0.5, 0.15 * (hi - lo))
    ax.set_xlim(min(lo, 0) - pad, max(hi, 0) + pad)
    ax.spines[["top", "right"]].set_visible(False)
    main = rows[0]
    direction = effect_direction(main)
    where = {"higher": "lies entirely above zero", "lower": "lies entirely below zero",
             "unclear": "includes zero"}[direction]
    alt = (f"Dot-and-whisker chart of the estimated difference in ELOM total in {data.region}: "
           f"{format_number(main['estimate'], 1)} points, 95% interval "
           f"{format_interval(main['ci_low'], main['ci_high'])} points; the interval {where}.")
    caption = (f"Figure {number}. Estimated difference in ELOM total between partnered and comparison "
               "centres, with 95% interval. The dashed line marks no difference.")
    return _html(_figure_html(fig, alt, caption))


def score_distribution_figure(data: RegionData, number: int = 2):
    """Box plots of ELOM total by arm and wave (groups too small to show are left out)."""
    import seaborn as sns

    shown, hidden, medians = [], [], []
    for arm, wave, group in _groups(data.children):
        scored = group.loc[group["elom_total"].notna()]
        if _too_small(len(scored), [scored["centre_id"].nunique()]):
            if len(group):
                hidden.append(f"{arm.lower()} {wave}")
            continue
        shown.append(scored.assign(Wave=wave.capitalize()))
        medians.append(f"{arm.lower()} {wave} {format_number(scored['elom_total'].median(), 0)}")
    if not shown:
        return _html(f'<p class="ek-placeholder">Figure {number} is not shown: too few children with '
                     "an ELOM total in every group.</p>")
    frame = pd.concat(shown, ignore_index=True)
    fig, ax = _new_figure(7.0, 3.6)
    with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib's deprecated `vert`
        warnings.simplefilter("ignore", DeprecationWarning)
        sns.boxplot(data=frame, x="Wave", y="elom_total", hue="arm",
                    hue_order=[a for a in ARMS if a in set(frame["arm"])],
                    order=[w.capitalize() for w in WAVES], palette=PALETTE, saturation=1,
                    showfliers=False, whis=(5, 95), width=0.6, ax=ax)
    ax.set_ylabel("ELOM total (0–100)")
    ax.set_xlabel("")
    ax.legend(title=None, frameon=False, loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    alt = (f"Box plots of ELOM total scores in {data.region} for partnered and comparison centres at "
           f"baseline and endline. Median scores: {'; '.join(medians)}.")
    if hidden:
        alt += f" Not shown (too few children): {', '.join(hidden)}."
    caption = (f"Figure {number}. ELOM total by group and wave. Boxes span the middle half of children, "
               "the line is the median and whiskers run from the 5th to the 95th percentile "
               "(individual scores are not plotted).")
    if hidden:
        caption += f" Not shown because too few children: {html.escape(', '.join(hidden))}."
    return _html(_figure_html(fig, alt, caption))


def on_track_table(data: RegionData, number: int = 2):
    """% On Track on the ELOM standards, by arm and wave."""
    caption = f"Table {number}. Children On Track for their age on the ELOM standards, by group and wave"
    note = ("On Track = ELOM total at or above the age-band standard (50–59 and 60–69 months). "
            "These are raw shares, not adjusted for differences between centres. " + SUPPRESSION_NOTE)
    frame = on_track_frame(data.children)
    return _html(_table_html(frame, caption, note=note, numeric=frame.columns[2:]))


def sample_size_table(data: RegionData, number: int = 3):
    """Children and centres assessed, by arm and wave."""
    caption = f"Table {number}. Children and centres assessed in {html.escape(data.region)}"
    row = data.primary
    in_model = ""
    if effect_direction(row) is not None:
        in_model = (f"{suppress_count(row['n_children'])} children with both assessments are in the "
                    "effect estimate. ")
    frame = sample_size_frame(data.children)
    return _html(_table_html(frame, caption, note=in_model + SUPPRESSION_NOTE, numeric=frame.columns[2:]))


def data_quality_table(data: RegionData, number: int = 4):
    """Cleaning-log counts by rule (the whole run)."""
    if data.cleaning_log is None:
        return _html('<p class="ek-placeholder">No cleaning log was found for this run, so data-quality '
                     "counts are not available.</p>")
    log = data.cleaning_log
    total = len(log)
    actions = log["action"].str.lower().value_counts() if total else pd.Series(dtype=int)
    summary = (f"Across all regions, cleaning changed {actions.get('changed', 0):,}, flagged "
               f"{actions.get('flagged', 0):,} and dropped {actions.get('dropped', 0):,} records or values "
               "under written rules; raw files were not modified.")
    missing, assessed = int(data.children["elom_total"].isna().sum()), len(data.children)
    region = html.escape(data.region)
    if not assessed:
        region_line = f" There are no child assessments for {region} in the prepared data."
    elif not missing:
        region_line = (f" In {region}, every one of the {suppress_count(assessed)} assessments "
                       "has an ELOM total.")
    else:
        region_line = (f" In {region}, ELOM total is missing for {suppress_count(missing)} of "
                       f"{suppress_count(assessed)} assessments (a domain score was missing).")
    frame = data_quality_frame(log)
    if frame.empty:
        return _html(f"<p>{summary}{region_line}</p>")
    caption = f"Table {number}. Records changed, flagged or dropped by cleaning rule (all regions)"
    note = (f"The {len(frame)} most frequent rules are shown. Counts from 1 to 9 are shown as “&lt;10”; "
            "“–” means none. Record identifiers and values are never shown.")
    return _html(f"<p>{summary}{region_line}</p>"
                 + _table_html(frame, caption, note=note, numeric=("Changed", "Flagged", "Dropped")))


def methods(data: RegionData):
    """Methods section, from the primary row."""
    return _html("".join(f"<p>{p}</p>" for p in methods_paragraphs(data)))


def limitations(data: RegionData):
    """Limitations that apply to this region."""
    return _html("<ul>" + "".join(f"<li>{item}</li>" for item in limitations_list(data)) + "</ul>")


def reproducibility_stamp(data: RegionData, number: int = 5):
    """evalkit version, input hashes, parameters and dates, from the run manifest."""
    __version__ = evalkit_version()
    manifest = data.manifest
    if manifest is None:
        return _html('<p class="ek-placeholder">No run manifest was found, so this report cannot be '
                     f"traced to its inputs. Report built with evalkit {html.escape(__version__)} on "
                     f"{html.escape(data.built_at)}.</p>")
    esc = lambda v: html.escape(str(v))  # noqa: E731
    params = manifest.get("parameters", {}) or {}
    inputs = manifest.get("inputs", {}) or {}
    packages = manifest.get("packages", {}) or {}
    rows = [
        ("evalkit version (run)", esc(manifest.get("evalkit_version", "unknown"))),
        ("evalkit version (report)", esc(__version__)),
        ("Run started", esc(manifest.get("started_at", "unknown"))),
        ("Report built", esc(data.built_at)),
        ("Region", esc(data.region)),
        ("Run parameters", "<br>".join(f"{esc(k)} = <code>{esc(v)}</code>" for k, v in params.items())
         or DASH),
        ("Input files (SHA-256)", "<br>".join(
            f"{esc(name)}: <code class=\"ek-hash\">{esc((info or {}).get('sha256', '?'))}</code>"
            for name, info in inputs.items()) or DASH),
        ("Packages", ", ".join(f"{esc(k)} {esc(v)}" for k, v in packages.items()) or DASH),
    ]
    body = "".join(f'<tr><th scope="row">{k}</th><td>{v}</td></tr>' for k, v in rows)
    return _html(f'<div class="ek-table-wrap"><table class="ek-table ek-stamp"><caption>Table {number}. '
                 f"Reproducibility stamp</caption><tbody>{body}</tbody></table></div>"
                 '<p class="ek-note">Re-running evalkit with the same inputs (same hashes), parameters '
                 "and package versions reproduces every number in this report.</p>")
