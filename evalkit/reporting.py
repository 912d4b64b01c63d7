"""What a regional report shows, as functions the report notebook calls.

The notebook ``notebooks/regional_evaluation.ipynb`` defines nothing and computes
nothing heavy: it calls :func:`load_region` once and then one function per
section. Each section function returns an :class:`IPython.display.HTML` object,
so a cell that ends with the call displays the section. The wording and the
tables are built by plain functions (``headline_text``, ``certainty``,
``estimate_frame``, ``suppress_small_cells`` …) that the tests call directly.

Inputs: ``results/estimates.csv`` and ``child_outcomes.parquet`` are required;
every other results table (balance, power, indicators, satisfaction,
scorecard, milestones, data quality) is read when present, and its section says
in a plain sentence that it is not available when absent.

Tables and figures are numbered in the order they appear: a section that is
skipped takes no number. Figures are inline SVG (crisp on phones, no network),
each with a text alternative.

Disclosure control: a table cell, figure mark, alt text or aria label that describes
fewer than :func:`min_children_per_cell` children or :func:`min_centres_per_cell` centres
is shown as ``"<10"`` / ``"<3"`` (counts) or ``"suppressed"`` (statistics). The rule is
:func:`evalkit.disclosure.cell_is_small`, asked by every section; :attr:`RegionData.groups`
decides it once per arm × wave group for the tables that do not count centres themselves.
``child_id`` is never loaded, and the cleaning log is only ever counted.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from .disclosure import balance_cells, cell_is_small, group_size, group_sizes, region_is_small, INDICATOR_COUNTS
from .ruleset import estimation_rules, study_rules
from .plan import activate, plan_from_manifest
from .study import RunLayout, find_study, user_path

__all__ = [
    "few_centres_warning",
    "min_centres_per_cell",
    "min_children_per_cell",
    "decimal_mark",
    "localise",
    "covariate_labels",
    "names_line",
    "plan_paragraph",
    "primary_spec",
    "report_names",
    "suppression_note",
    "PALETTE",
    "RESULT_TABLES",
    "RegionData",
    "RegionNotFoundError",
    "load_region",
    "read_results_table",
    "read_shared_csv",
    "preload_shared",
    "evalkit_version",
    "is_whole_region",
    "primary_row",
    "warning_codes",
    "effect_direction",
    "certainty",
    "FINDING_COLUMNS",
    "few_cluster_checks",
    "finding",
    "findings_frame",
    "outward",
    "in_display_units",
    "age_gradient",
    "months_sentence",
    "headline_parts",
    "subgroup_label",
    "headline_text",
    "headline_html",
    "short_result",
    "format_number",
    "format_interval",
    "format_p",
    "suppress_count",
    "suppress_small_cells",
    "cell_is_small",
    "interval_svg",
    "forest_svg",
    "effects_frame",
    "estimate_frame",
    "method_key",
    "subgroup_frame",
    "sample_size_frame",
    "on_track_frame",
    "indicators_frame",
    "satisfaction_frame",
    "scorecard_frame",
    "balance_frame",
    "rows_kept_frame",
    "dropped_by_reason_frame",
    "data_quality_frame",
    "data_quality_summary_frame",
    "power_sentence",
    "methods_paragraphs",
    "limitations_list",
    "title",
    "headline",
    "effects_figure",
    "effects_table",
    "subgroup_table",
    "overlap_table",
    "estimate_table",
    "effect_figure",
    "score_distribution_figure",
    "on_track_figure",
    "on_track_table",
    "indicators_table",
    "satisfaction_table",
    "scorecard_table",
    "milestones_figure",
    "balance_table",
    "love_plot",
    "sample_size_table",
    "rows_kept_table",
    "data_quality_table",
    "details",
    "methods",
    "limitations",
    "reproducibility_stamp",
]



def min_children_per_cell() -> int:
    """Smallest number of children a table cell may describe (plan: ``thresholds.small_cells``)."""
    return study_rules().small_cells.children


def min_centres_per_cell() -> int:
    """Smallest number of centres a table cell may describe (plan: ``thresholds.small_cells``)."""
    return study_rules().small_cells.centres


def few_centres_warning() -> int:
    """Below this many centres in an arm the report warns that clustered errors are fragile."""
    return estimation_rules().inference.few_centres_warning


def primary_spec() -> dict[str, str]:
    """The primary row's outcome, estimator and inference (plan: ``primary``)."""
    primary = estimation_rules().primary
    return {"outcome": primary.outcome, "estimator": primary.estimator, "inference": primary.inference}


#: Okabe–Ito colours (colour-blind safe) for the two arms.
PALETTE = {"Partnered": "#0072B2", "Comparison": "#E69F00"}
#: Optional tables under ``results/`` that a report reads when present.
RESULT_TABLES = ("balance", "balance_joint", "power", "overlap", "indicators", "satisfaction", "scorecard",
                 "milestones", "data_quality")

ARMS = ("Partnered", "Comparison")
WAVES = ("baseline", "endline")
ON_TRACK = "On Track"
SUPPRESSED = "suppressed"
DASH = "–"
MINUS = "\u2212"
_TEXT, _MUTED, _RULE = "#1d1d1f", "#555555", "#d0d4d9"
#: Plausible effects of programmes like this one, in SD (domain facts).
PLAUSIBLE_EFFECT_SD = (0.10, 0.25)

# Only these columns of child_outcomes are ever read: never child_id.
_CHILD_COLUMNS = ("centre_id", "region", "wave", "is_partnered", "age_months", "sex", "setting",
                  "elom_total", "elom_band", "haz")
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
    "attendance_rate": ("Attendance rate", "share"),
    "is_on_track": ("On Track", "share"),
    "is_stunted": ("Stunted", "share"),
    "kling_index": ("Summary index of all outcomes", "SD"),
    "customer_service_score_pct": ("Customer service score (top-2-box)", "pp"),
}
_ESTIMATOR_LABELS = {"ancova": "ANCOVA", "did": "Difference-in-differences", "naive": "Unadjusted",
                     "regression_adjustment": "Regression adjustment",
                     "ipw": "Inverse-probability weighting", "aipw": "Doubly robust (AIPW)",
                     "kling_index": "Summary index (Kling–Liebman–Katz)"}
_ESTIMATOR_SHORT = {"ancova": "ANCOVA", "did": "DiD", "naive": "Unadjusted",
                    "regression_adjustment": "Reg. adjustment", "ipw": "IPW", "aipw": "AIPW",
                    "kling_index": "KLK index"}
_INFERENCE_LABELS = {
    "CR1": "SE clustered by centre (CR1)",
    "CR2": "SE clustered by centre (CR2, small-sample)",
    "WCR-bootstrap": "wild cluster bootstrap",
    "HC1": "robust SE, not clustered (HC1)",
}
_WARNING_TEXT = {
    "few_partnered_centres": "few partnered centres",
    "few_comparison_centres": "few comparison centres",
    "cr1_cr2_disagree": "the small-sample correction (CR2) changes the conclusion",
    "weights_trimmed": "some centres were left out of the weighting (trimmed)",
    "poor_overlap": "partnered and comparison centres overlap poorly",
    "cr2_singular_centre": "one centre's covariates fit it exactly (CR2 degrees of freedom approximate)",
}
_CERTAINTY_LABELS = {"clear": "Fairly sure of the direction",
                     "tentative": "Some evidence, with caveats",
                     "unclear": "Not sure there is a difference",
                     "none": "No estimate"}


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
        The run's cleaning log (all regions), or None when the file is missing or
        not needed (the run wrote ``results/data_quality.csv``, which summarises it).
    manifest : dict or None
        ``run_manifest.json``, or None when the file is missing.
    results : dict
        Optional results tables by name (see :data:`RESULT_TABLES`): the
        region's rows (and, for the scorecard and milestones, the national
        ones), or None when the file is absent.
    province : str or None
        The province of a district (a run at district level), else None.
    """

    region: str
    estimates: pd.DataFrame
    children: pd.DataFrame
    cleaning_log: pd.DataFrame | None = None
    manifest: dict[str, Any] | None = None
    built_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    results: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    province: str | None = None
    # Running numbers of the tables and figures shown so far (the notebook runs top to bottom).
    _numbers: dict[str, int] = field(default_factory=lambda: {"Table": 0, "Figure": 0}, repr=False)

    @property
    def primary(self) -> pd.Series | None:
        """The primary estimate row (``is_primary``, else ELOM total / ANCOVA / CR1), or None."""
        return primary_row(self.estimates, self.region)

    def table(self, name: str) -> pd.DataFrame | None:
        """An optional results table, or None when the run did not write it."""
        return self.results.get(name)

    @functools.cached_property
    def groups(self) -> pd.DataFrame:
        """Children and centres of each arm × wave group of the region and whether it is small
        (:func:`evalkit.disclosure.group_sizes`), decided once for every section."""
        return group_sizes(self.children)

    def next_number(self, kind: str, number: int | None = None) -> int:
        """The number of the next table or figure (an explicit number resets the count)."""
        self._numbers[kind] = self._numbers.get(kind, 0) + 1 if number is None else int(number)
        return self._numbers[kind]


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

def run_layout(output_dir: str | Path | None = None, processed_dir: str | Path | None = None) -> RunLayout:
    """A run's folders from what a notebook or caller gave: relative paths from the working
    directory; what is not given from the study folder (its ``reports/``; ``data/processed/``
    for that default output folder, else ``<output_dir>/processed``)."""
    study = find_study()
    out = user_path(output_dir) if output_dir is not None else study.reports_dir
    processed = user_path(processed_dir) if processed_dir is not None else study.processed_dir_for(out)
    return RunLayout(out, processed)


def load_region(region: str, output_dir: str | Path | None = None,
                processed_dir: str | Path | None = None) -> RegionData:
    """Read one region's estimates, child outcomes, optional results, the cleaning log and the manifest.

    The run's analysis plan (in its manifest) becomes the plan of this process, so the report
    uses the thresholds, names and number format the run was made with.

    Parameters
    ----------
    region : str
        Canonical region name as in ``results/estimates.csv``.
    output_dir : path, optional
        The run's output folder (holds ``results/``, ``cleaning_log.csv``,
        ``run_manifest.json``); relative to the working directory; default the study's ``reports/``.
    processed_dir : path, optional
        The folder holding ``child_outcomes.parquet``; default as :func:`run_layout`.

    Raises
    ------
    FileNotFoundError
        When ``results/estimates.csv`` or ``child_outcomes.parquet`` is missing.
    RegionNotFoundError
        When the region has no row in the estimates.
    """
    layout = run_layout(output_dir, processed_dir)
    manifest = json.loads(layout.manifest.read_text(encoding="utf-8")) if layout.manifest.exists() else None
    activate(plan_from_manifest(manifest))
    output_dir = layout.output_dir
    estimates = read_shared_csv(layout.estimates)
    rows = estimates.loc[estimates["region"].astype(str) == region].copy()
    if rows.empty:
        raise RegionNotFoundError(f"{region!r} has no row in {layout.estimates}")
    is_primary = _primary_mask(rows)
    rows = in_display_units(pd.concat([rows[is_primary], rows[~is_primary]]).reset_index(drop=True))

    children = _read_children(layout.child_outcomes, region)

    results = {name: read_results_table(output_dir, name, region) for name in RESULT_TABLES}
    # The data-quality table summarises the cleaning log: the log (one row per change, all regions)
    # is only read when the run has no summary.
    log_path = layout.cleaning_log
    cleaning_log = (_read_cleaning_log(log_path)
                    if results.get("data_quality") is None and log_path.exists() else None)
    level = ((manifest or {}).get("parameters") or {}).get("level", "province")
    return RegionData(region=region, estimates=rows, children=children,
                      cleaning_log=cleaning_log, manifest=manifest, results=results,
                      province=_province_of(layout, region) if level == "district" else None)


def _province_of(layout: RunLayout, region: str) -> str | None:
    """The province most of a district's centres are in (centre_outcomes.parquet), or None."""
    import pyarrow.parquet as pq

    try:
        centres = pq.read_table(layout.centre_outcomes, columns=["region", "province"]).to_pandas()
    except Exception:  # noqa: BLE001 - only a label: a page without it is still right
        return None
    provinces = centres.loc[centres["region"].astype(str) == region, "province"].dropna().astype(str)
    return None if provinces.empty else provinces.mode().iloc[0]


def read_results_table(output_dir: str | Path, name: str, region: str | None = None) -> pd.DataFrame | None:
    """``<output_dir>/results/<name>.csv``, or None when the run did not write it.

    With ``region``, only that region's rows are kept; tables with a ``scope``
    column (scorecard, milestones) also keep their national rows.
    """
    path = RunLayout.of(output_dir).results_table(name)
    if not path.is_file():
        return None
    frame = read_shared_csv(path)
    if region is not None and "region" in frame.columns:
        keep = frame["region"].astype(str) == region
        if "scope" in frame.columns:
            keep |= frame["scope"].astype(str).str.lower() == "national"
        frame = frame.loc[keep].reset_index(drop=True)
    return frame


def _read_cleaning_log(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, usecols=lambda c: c in {"table", "rule", "action"})


#: Tables every region of a run reads, parsed once (see :func:`preload_shared`): path → (file state, frame).
_SHARED: dict[str, tuple[tuple[int, int, int], pd.DataFrame]] = {}
_SHARED_FOR: str | None = None


def _file_state(path: Path) -> tuple[int, int, int]:
    state = path.stat()
    return state.st_mtime_ns, state.st_size, state.st_ino


def read_shared_csv(path: str | Path) -> pd.DataFrame:
    """``pd.read_csv(path)``, from the copy :func:`preload_shared` parsed while the file is unchanged.

    Every region's report reads the same run-wide tables (all regions' estimates, the
    results tables); a process that renders many regions parses them once and the
    regions' processes, forked from it, start with them. A file changed since (time,
    size or inode) is read again. The frame returned is the caller's own (copy-on-write).
    """
    path = Path(path)
    kept = _SHARED.get(str(path))
    if kept is not None:
        try:
            if kept[0] == _file_state(path):
                return kept[1].copy(deep=False)
        except OSError:
            pass
    return pd.read_csv(path)


def preload_shared(output_dir: str | Path) -> int:
    """Parse the run-wide tables of ``output_dir`` once for :func:`read_shared_csv`; returns how many.

    Called by the region server before it forks a run's regions. Only the latest run's
    tables are kept. A file that cannot be read is left to the report, which says why.
    """
    global _SHARED_FOR
    layout = RunLayout.of(output_dir)
    output_dir = layout.output_dir
    paths = [layout.estimates] + [layout.results_table(name) for name in RESULT_TABLES]
    if _SHARED_FOR != str(output_dir):
        _SHARED.clear()
        _SHARED_FOR = str(output_dir)
    for path in paths:
        try:
            state = _file_state(path)
            if _SHARED.get(str(path), (None,))[0] != state:
                _SHARED[str(path)] = (state, pd.read_csv(path))
        except Exception:  # noqa: BLE001 - missing or unreadable: the report reads it itself and says why
            _SHARED.pop(str(path), None)
    return len(_SHARED)


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


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as dicts (``row["x"]``, ``row.get("x")``), with the values
    ``DataFrame.iterrows()`` gives but without building a Series per row."""
    columns = list(frame.columns)
    return [dict(zip(columns, values)) for values in frame.values.tolist()]


def _as_bool(values: pd.Series) -> pd.Series:
    """CSV booleans ("True", "true", 1) as bool; anything else False."""
    if values.dtype == bool:
        return values
    return values.astype(str).str.strip().str.lower().isin({"true", "1", "yes", "1.0"})


def is_whole_region(rows: pd.DataFrame) -> pd.Series:
    """True for rows about the whole region (``subgroup`` absent or empty)."""
    if "subgroup" not in rows.columns:
        return pd.Series(True, index=rows.index)
    subgroup = rows["subgroup"]
    return subgroup.isna() | (subgroup.astype(str).str.strip() == "")


def _default_primary_mask(rows: pd.DataFrame) -> pd.Series:
    mask = is_whole_region(rows)
    for column, value in primary_spec().items():
        mask &= rows[column].astype(str) == value
    return mask


def _primary_mask(rows: pd.DataFrame) -> pd.Series:
    """``is_primary`` rows of the whole region when the column marks any, else the default."""
    if "is_primary" in rows.columns:
        flagged = _as_bool(rows["is_primary"]) & is_whole_region(rows)
        if flagged.any():
            return flagged
    return _default_primary_mask(rows)


def primary_row(estimates: pd.DataFrame, region: str) -> pd.Series | None:
    """The region's primary row, or None.

    The row marked ``is_primary`` (whole region) when the estimates mark one,
    otherwise ``elom_total`` / ``ancova`` / ``CR1``.
    """
    rows = estimates.loc[estimates["region"].astype(str) == region]
    rows = rows.loc[_primary_mask(rows)]
    return None if rows.empty else rows.iloc[0]


def warning_codes(row: pd.Series | None) -> list[str]:
    """The row's ``warning`` codes (``few_partnered_centres;cr1_cr2_disagree`` → a list)."""
    if row is None:
        return []
    value = row.get("warning")
    if not isinstance(value, str):
        return []
    return [code.strip() for code in value.split(";") if code.strip()]


def _warning_text(code: str) -> str:
    return _WARNING_TEXT.get(code, code.replace("_", " "))


# --------------------------------------------------------------------------- formatting

def _isnum(value: Any) -> bool:
    try:
        return value is not None and not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def decimal_mark() -> str:
    """The decimal mark of the reports' numbers (plan: ``report.decimal_mark``)."""
    return study_rules().report.decimal_mark


def localise(text: str) -> str:
    """A number written with Python's ``1,234.5`` in the plan's convention: with a decimal comma,
    ``1 234,5`` (a narrow no-break space between thousands, as South African usage has it)."""
    if decimal_mark() != ",":
        return text
    return text.replace(",", "\u202f").replace(".", ",")


def format_number(value: Any, digits: int = 1, *, signed: bool = False) -> str:
    """A number for people: fixed decimals, a true minus sign, "–" when missing, the plan's
    decimal mark."""
    if not _isnum(value):
        return DASH
    value = float(value)
    text = f"{abs(value):,.{digits}f}"
    if float(text.replace(",", "")) == 0:
        return localise(text)
    text = localise(text)
    if value < 0:
        return MINUS + text
    return "+" + text if signed else text


def outward(low: Any, high: Any, digits: int = 1) -> tuple[float, float]:
    """An interval rounded outward to ``digits`` decimals: the printed interval holds the exact one,
    so it never contradicts "includes zero" (−0.003 to 3.1 prints as −0.1 to 3.1, not 0.0 to 3.1)."""
    scale = 10.0 ** digits
    return (math.floor(float(low) * scale + 1e-9) / scale, math.ceil(float(high) * scale - 1e-9) / scale)


def format_interval(low: Any, high: Any, digits: int = 1) -> str:
    """``"0.4 to 3.8"`` (words, not a dash, so negative bounds stay readable), rounded outward."""
    if not (_isnum(low) and _isnum(high)):
        return DASH
    exact_low, exact_high = float(low), float(high)
    low, high = outward(low, high, digits)
    return f"{_signed_zero(low, exact_low, digits)} to {_signed_zero(high, exact_high, digits)}"


def _signed_zero(shown: float, exact: float, digits: int) -> str:
    """A bound that rounds to zero keeps its side: −0.00 for a negative one (never 0.00 under
    "lower in partnered")."""
    if shown == 0 and exact < 0:
        return MINUS + format_number(0.0, digits)
    return format_number(shown, digits)


def format_p(p: Any) -> str:
    """p-value with three decimals, ``"<0.001"`` below that."""
    if not _isnum(p):
        return DASH
    return localise("<0.001" if float(p) < 0.001 else f"{float(p):.3f}")


def _digits_for(value: Any) -> int:
    """One decimal, two when it would round to zero (small z-score or SD effects)."""
    return 2 if _isnum(value) and abs(float(value)) < 0.05 else 1


def _interval_digits(low: Any, high: Any) -> int:
    """Two decimals for intervals within ±1 (z-scores, SD), else one."""
    return 2 if _isnum(low) and _isnum(high) and max(abs(float(low)), abs(float(high))) < 1 else 1


def _points(value: Any) -> str:
    """Effect magnitude: one decimal, two when it would round to zero."""
    return format_number(abs(float(value)) if _isnum(value) else value, _digits_for(value))


def _pct(value: Any, digits: int = 0) -> str:
    return DASH if not _isnum(value) else f"{format_number(value, digits)}%"


def suppress_count(n: Any, threshold: int | None = None) -> str:
    """A count, or ``"<threshold"`` when it is between 1 and threshold − 1.

    Zero is shown: an empty group discloses nothing about anyone, and readers
    need to see it (e.g. a region with no comparison centres).
    """
    if not _isnum(n):
        return DASH
    threshold = min_children_per_cell() if threshold is None else threshold
    n = int(round(float(n)))
    if 0 < n < threshold:
        return f"<{threshold}"
    return localise(f"{n:,}")


def _too_small(n_children: Any, n_centres: Iterable[Any] = ()) -> bool:
    return cell_is_small(n_children, list(n_centres))


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
    n_children = pd.to_numeric(table[children], errors="coerce")
    counts = table[centres].values.tolist() if centres else [[]] * len(table)
    small = pd.Series([cell_is_small(n, c) for n, c in zip(table[children], counts)], index=table.index)
    empty = n_children.fillna(0) == 0
    for column in values:
        out[column] = out[column].astype(object).where(~small, SUPPRESSED).where(~empty, DASH)
    out[children] = table[children].map(suppress_count).astype(object)
    for column in centres:
        out[column] = table[column].map(lambda n: suppress_count(n, min_centres_per_cell())).astype(object)
    return out


# --------------------------------------------------------------------------- the finding in words

def _reason(note: Any) -> str:
    text = str(note).strip() if isinstance(note, str) and note.strip() else "the reason was not recorded"
    text = text.rstrip(". ")
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return text


def _centre_counts(row: pd.Series) -> tuple[Any, Any]:
    return row.get("n_centres_partnered"), row.get("n_centres_comparison")


def effect_direction(row: pd.Series | None) -> str | None:
    """``"higher"``, ``"lower"`` or ``"unclear"`` for a usable row; None otherwise.

    "higher"/"lower" only when the whole 95% interval lies on one side of zero.
    A row resting on fewer than 10 children or 3 centres in an arm is not usable.
    """
    if row is None or str(row.get("status")) != "ok":
        return None
    if not all(_isnum(row.get(c)) for c in ("estimate", "ci_low", "ci_high")):
        return None
    if _too_small(row.get("n_children"), _centre_counts(row)):
        return None
    if float(row["ci_low"]) > 0:
        return "higher"
    if float(row["ci_high"]) < 0:
        return "lower"
    return "unclear"


def _has_few_centres(row: pd.Series) -> bool:
    part, comp = _centre_counts(row)
    few = _isnum(part) and _isnum(comp) and min(float(part), float(comp)) < few_centres_warning()
    return few or any(code.startswith("few_") for code in warning_codes(row))


#: The small-sample checks of a primary estimate: other inferences of the same model.
_CHECKS = {"CR2": "CR2", "WCR-bootstrap": "wild cluster bootstrap"}


def few_cluster_checks(rows: pd.DataFrame | None, row: pd.Series | None) -> list[dict[str, Any]]:
    """The primary row's small-sample checks: the region's CR2 and wild cluster bootstrap intervals
    of the same outcome and estimator (whole region), each with ``includes_zero``."""
    if row is None or rows is None or rows.empty or "inference" not in rows.columns:
        return []
    same = rows.loc[(rows["outcome"].astype(str) == str(row.get("outcome")))
                    & (rows["estimator"].astype(str) == str(row.get("estimator")))
                    & (rows["region"].astype(str) == str(row.get("region")))
                    & is_whole_region(rows) & (rows["status"].astype(str) == "ok")
                    & rows["inference"].astype(str).isin(list(_CHECKS))
                    & (rows["inference"].astype(str) != str(row.get("inference")))]
    out = []
    for check in _records(same):
        if _isnum(check.get("ci_low")) and _isnum(check.get("ci_high")):
            low, high = float(check["ci_low"]), float(check["ci_high"])
            out.append({"inference": str(check["inference"]), "label": _CHECKS[str(check["inference"])],
                        "low": low, "high": high, "includes_zero": low <= 0 <= high})
    return out


def certainty(row: pd.Series | None, checks: Iterable[dict] = ()) -> tuple[str, str]:
    """How sure we are, as a level and a plain label.

    Returns
    -------
    (level, label)
        ``"clear"`` — the interval lies on one side of zero and nothing
        weakens it; ``"tentative"`` — it does, but a small-sample check
        (:func:`few_cluster_checks`) includes zero, or few centres or a
        warning (e.g. CR1 and CR2 disagree) weaken it; ``"unclear"`` — the
        interval includes zero; ``"none"`` — no usable estimate.
    """
    direction = effect_direction(row)
    if direction is None:
        level = "none"
    elif direction == "unclear":
        level = "unclear"
    elif _has_few_centres(row) or warning_codes(row) or any(c["includes_zero"] for c in checks):
        level = "tentative"
    else:
        level = "clear"
    return level, _CERTAINTY_LABELS[level]


#: Columns of an estimates row that are in the outcome's units.
_IN_OUTCOME_UNITS = ("estimate", "std_error", "ci_low", "ci_high")


def in_display_units(rows: pd.DataFrame) -> pd.DataFrame:
    """Estimates as people read them: a share outcome (On Track, stunting, attendance) in
    percentage points (×100), everything else as it is. A frame already converted is returned
    as it is (``attrs["display_units"]``)."""
    if rows.attrs.get("display_units") or "outcome" not in rows.columns:
        return rows
    out = rows.copy()
    shares = out["outcome"].astype(str).map(lambda o: _OUTCOME_LABELS.get(o, ("", ""))[1] == "share").astype(bool)
    for column in _IN_OUTCOME_UNITS:
        if column in out.columns:
            out[column] = pd.to_numeric(out[column], errors="coerce").where(~shares, lambda v: v * 100)
    out.attrs["display_units"] = True
    return out


def _outcome_name(outcome: str) -> str:
    return _OUTCOME_LABELS.get(outcome, (outcome.replace("_", " "), ""))[0]


def _outcome_unit(outcome: str) -> str:
    unit = _OUTCOME_LABELS.get(outcome, ("", ""))[1]
    return {"z": "SD (z-score)", "share": "percentage points", "pp": "percentage points"}.get(unit, unit)


def headline_parts(row: pd.Series | None, region: str, checks: Iterable[dict] = ()) -> dict[str, Any]:
    """The headline in pieces: ``finding``, ``interval`` and ``caveats`` (plain text).

    ``finding`` is the one sentence a funder should remember; ``interval``
    says how wide the uncertainty is; ``caveats`` are the sentences that must
    travel with it (non-randomisation, few centres, warnings).
    """
    empty = {"finding": "", "interval": "", "caveats": []}
    if row is None:
        return dict(empty, finding=f"We could not estimate an effect in {region} because the results hold "
                                   "no primary estimate (ELOM total, ANCOVA) for this region.")
    if str(row.get("status")) != "ok":
        return dict(empty, finding=f"We could not estimate an effect in {region} because "
                                   f"{_reason(row.get('note'))}.")
    if not all(_isnum(row.get(c)) for c in ("estimate", "ci_low", "ci_high")):
        return dict(empty, finding=f"We could not estimate an effect in {region} because the estimate "
                                   "or its interval is missing from the results.")
    n_part, n_comp = _centre_counts(row)
    if _too_small(row.get("n_children"), [n_part, n_comp]):
        return dict(empty, finding=(
            f"We do not report an effect for {region}: the estimate rests on fewer than "
            f"{min_children_per_cell()} children or {min_centres_per_cell()} centres in a group, "
            "too few to publish without identifying them."))

    outcome = str(row.get("outcome", "elom_total"))
    name, unit = _outcome_name(outcome), _outcome_unit(outcome) or "units"
    direction = effect_direction(row)
    sd = (f" (about {format_number(abs(float(row['effect_size_sd'])), 2)} SD)"
          if _isnum(row.get("effect_size_sd")) and unit != "SD" else "")
    interval = format_interval(row["ci_low"], row["ci_high"], _interval_digits(row["ci_low"], row["ci_high"]))
    size = _points(row["estimate"])
    checks = list(checks)
    conflicting = [c for c in checks if c["includes_zero"]]
    if direction in ("higher", "lower") and conflicting:
        finding = (f"Children in partnered centres may have scored {size} {unit} {direction} on the {name}{sd} "
                   "than similar children in comparison centres, but this is not certain")
        interval_text = (f"the 95% interval runs from {interval} {unit}, while the small-sample checks ("
                         + "; ".join(f"{c['label']}: {format_interval(c['low'], c['high'], _interval_digits(c['low'], c['high']))}"
                                     f" {unit}" for c in conflicting) + ") include zero")
    elif direction in ("higher", "lower"):
        finding = (f"Children in partnered centres scored {size} {unit} {direction} on the {name}{sd} "
                   "than similar children in comparison centres")
        interval_text = f"the 95% interval runs from {interval} {unit}"
    else:
        sign = "higher" if float(row["estimate"]) >= 0 else "lower"
        finding = (f"We found no clear difference in {name} between children in partnered and "
                   "comparison centres")
        interval_text = (f"our best estimate is {size} {unit} {sign} in partnered centres{sd}, but the "
                         f"95% interval runs from {interval} {unit} and spans zero")
    caveats = ["Partnership was not randomised, so this is an adjusted comparison, "
               "not proof that partnerships caused the difference."]
    if _isnum(n_part) and _isnum(n_comp) and min(float(n_part), float(n_comp)) < few_centres_warning():
        caveats.append(f"It rests on only {int(n_part)} partnered and {int(n_comp)} comparison centres, "
                       "so treat it with extra caution.")
    other = [_warning_text(c) for c in warning_codes(row) if not c.startswith("few_")]
    if other:
        caveats.append("The analysis flagged: " + "; ".join(other) + ".")
    return {"finding": finding, "interval": interval_text, "caveats": caveats}


def headline_text(row: pd.Series | None, region: str, checks: Iterable[dict] = ()) -> str:
    """The plain-language result for funders, from the primary estimate row.

    Examples
    --------
    >>> headline_text(pd.Series(dict(status="ok", estimate=2.1, ci_low=0.4, ci_high=3.8,
    ...     effect_size_sd=0.16, n_children=400, n_centres_partnered=12,
    ...     n_centres_comparison=14)), "Gauteng")[:60]
    'Children in partnered centres scored 2.1 points higher on th'
    """
    parts = headline_parts(row, region, checks)
    if not parts["interval"]:
        return parts["finding"]
    joiner = "; " if parts["finding"].startswith("Children") else ": "
    return " ".join([parts["finding"] + joiner + parts["interval"] + "."] + parts["caveats"])


def short_result(row: pd.Series | None, checks: Iterable[dict] = ()) -> dict[str, str]:
    """Formatted cells for the landing page: estimate, interval, SD, children, reading (the reading
    and certainty are :func:`certainty`'s, so the index says what the region's page says)."""
    empty = {"estimate": DASH, "interval": DASH, "effect_size_sd": DASH,
             "n_children": DASH, "direction": "", "certainty": "none"}
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
               direction=_index_reading(direction, certainty(row, checks)[0], checks),
               certainty=certainty(row, checks)[0])
    return out


def _index_reading(direction: str, level: str, checks: Iterable[dict]) -> str:
    if direction == "unclear":
        return "no clear difference"
    if any(c["includes_zero"] for c in checks):
        return f"probably {direction}, not certain"
    return f"partnered {direction}"


def finding(estimates: pd.DataFrame, region: str) -> dict[str, Any]:
    """The region's conclusion, decided once: the primary row and its small-sample checks give the
    level and label of :func:`certainty`, the reading, and the sentences of :func:`headline_parts`.
    The index, the regional page, the brief and ``results/findings.csv`` print this."""
    estimates = in_display_units(estimates)
    rows = estimates.loc[estimates["region"].astype(str) == region] if "region" in estimates else estimates
    row = primary_row(estimates, region) if "region" in estimates else None
    checks = few_cluster_checks(rows, row)
    level, label = certainty(row, checks)
    parts = headline_parts(row, region, checks)
    result = short_result(row, checks)
    return {"region": region,
            "outcome": "" if row is None else str(row.get("outcome")),
            "estimator": "" if row is None else str(row.get("estimator")),
            "inference": "" if row is None else str(row.get("inference")),
            "level": level, "certainty": label, "reading": result["direction"],
            "finding": parts["finding"], "interval": parts["interval"], "caveats": list(parts["caveats"]),
            "conclusion": headline_text(row, region, checks), "checks": checks}


#: The columns of ``results/findings.csv``.
FINDING_COLUMNS = ["region", "outcome", "estimator", "inference", "level", "certainty", "reading", "conclusion"]


def findings_frame(estimates: pd.DataFrame, regions: Iterable[str]) -> pd.DataFrame:
    """One row per region (:data:`FINDING_COLUMNS`), from :func:`finding`."""
    estimates = in_display_units(estimates)  # once for the table, not once per region
    rows = [{k: v for k, v in finding(estimates, region).items() if k in FINDING_COLUMNS} for region in regions]
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


# --------------------------------------------------------------------------- inline SVG charts

def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _svg_text(x: float, y: float, text: str, *, anchor: str = "start", size: float = 12,
              weight: str | None = None, fill: str = _TEXT, italic: bool = False) -> str:
    extra = (f' font-weight="{weight}"' if weight else "") + (' font-style="italic"' if italic else "")
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{fill}"'
            f"{extra}>{_esc(text)}</text>")


def _svg_open(width: float, height: float, label: str, css_class: str) -> str:
    return (f'<svg class="{css_class}" viewBox="0 0 {width:.0f} '
            f'{height:.0f}" role="img" aria-label="{_esc(label)}" font-family="system-ui, -apple-system, '
            f"'Segoe UI', Roboto, Arial, sans-serif\"><title>{_esc(label)}</title>")


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (steps of 1, 2, 2.5 or 5 × 10^k; the ends included)."""
    span = max(high - low, 1e-9)
    raw = span / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    ticks = first + step * np.arange(int(round((last - first) / step)) + 1)
    return [0.0 if abs(t) < step * 1e-9 else float(round(t, 10)) for t in ticks]


def _tick_label(value: float) -> str:
    return localise(f"{value:g}").replace("-", MINUS)


def interval_svg(estimate: float, low: float, high: float, *, unit: str = "points",
                 label: str | None = None) -> str:
    """A one-line picture of an effect: where the 95% interval lies relative to "no difference".

    The axis is symmetric around zero, so whether the bar crosses the middle line is the
    whole story; the two halves are labelled in words (not only colour).
    """
    width, height, left, right = 360.0, 96.0, 10.0, 350.0
    reach = max(abs(low), abs(high), 1e-9) * 1.18
    x = lambda v: left + (float(v) + reach) / (2 * reach) * (right - left)  # noqa: E731
    mid, bar_y = x(0), 52.0
    crosses = low <= 0 <= high
    label = label or (f"Best estimate {format_number(estimate, _digits_for(estimate), signed=True)} {unit}, "
                      f"95% interval {format_interval(low, high, _interval_digits(low, high))} "
                      f"{unit}; the interval {'crosses' if crosses else 'does not cross'} the "
                      "no-difference line.")
    parts = [_svg_open(width, height, label, "ek-interval"),
             f'<rect x="{left}" y="26" width="{mid - left:.1f}" height="44" fill="#E69F00" fill-opacity="0.16"/>',
             f'<rect x="{mid:.1f}" y="26" width="{right - mid:.1f}" height="44" fill="#0072B2" fill-opacity="0.12"/>',
             _svg_text(left + 2, 16, "◀ lower in partnered", size=12, fill=_MUTED),
             _svg_text(right - 2, 16, "higher in partnered ▶", anchor="end", size=12, fill=_MUTED),
             f'<line x1="{mid:.1f}" y1="24" x2="{mid:.1f}" y2="72" stroke="{_TEXT}" stroke-width="1.5" '
             'stroke-dasharray="4 3"/>',
             f'<line x1="{x(low):.1f}" y1="{bar_y}" x2="{x(high):.1f}" y2="{bar_y}" stroke="#0072B2" '
             'stroke-width="7" stroke-linecap="round"/>',
             f'<circle cx="{x(estimate):.1f}" cy="{bar_y}" r="7.5" fill="{_TEXT}" stroke="#fff" stroke-width="2"/>']
    digits = _interval_digits(low, high)
    lo_x, hi_x = x(low), x(high)
    shown_low, shown_high = outward(low, high, digits)
    parts.append(_svg_text(max(lo_x, left + 2), 88, format_number(shown_low, digits, signed=True), size=13,
                           anchor="start" if lo_x - left < 20 else "middle"))
    parts.append(_svg_text(min(hi_x, right - 2), 88, format_number(shown_high, digits, signed=True), size=13,
                           anchor="end" if right - hi_x < 20 else "middle"))
    if abs(mid - lo_x) > 34 and abs(mid - hi_x) > 34:
        parts.append(_svg_text(mid, 88, "0", size=13, anchor="middle", fill=_MUTED))
    parts.append(_svg_text(x(estimate), 40, format_number(estimate, _digits_for(estimate), signed=True),
                           size=13, anchor="middle", weight="700"))
    parts.append("</svg>")
    return "".join(parts)


def forest_svg(rows: list[dict[str, Any]], *, unit: str, label: str) -> str:
    """Estimates with 95% intervals, one row each, on a shared axis (a forest plot).

    Parameters
    ----------
    rows : list of dict
        ``label`` (left, bold), ``note`` (under the label: numbers or a reason),
        ``estimate``, ``low``, ``high`` (None when there is nothing to draw)
        and optionally ``emphasis`` (a filled square instead of a dot).
    unit : str
        Axis title unit ("points", "SD" …).
    label : str
        The text alternative of the whole chart.
    """
    width, label_w, right, row_h, top = 380.0, 150.0, 372.0, 42.0, 28.0
    drawable = [r for r in rows if all(_isnum(r.get(k)) for k in ("estimate", "low", "high"))]
    lows = [float(r["low"]) for r in drawable] + [0.0]
    highs = [float(r["high"]) for r in drawable] + [0.0]
    ticks = _nice_ticks(min(lows), max(highs), 5) if drawable else [-1.0, 0.0, 1.0]
    lo, hi = ticks[0], ticks[-1]
    left = label_w + 6
    x = lambda v: left + (float(v) - lo) / (hi - lo) * (right - left)  # noqa: E731
    axis_y = top + row_h * len(rows) + 4
    height = axis_y + 40
    parts = [_svg_open(width, height, label, "ek-forest")]
    if x(0) - left > 50:
        parts.append(_svg_text(x(0) - 5, 14, "◀ lower", size=12, anchor="end", fill=_MUTED))
    if right - x(0) > 50:
        parts.append(_svg_text(x(0) + 5, 14, "higher ▶", size=12, fill=_MUTED))
    drawn = {id(r) for r in drawable}
    for i, row in enumerate(rows):
        y0 = top + i * row_h
        mid = y0 + row_h / 2
        if i % 2 == 0:
            parts.append(f'<rect x="0" y="{y0:.1f}" width="{width:.0f}" height="{row_h:.0f}" fill="#f3f5f7"/>')
        parts.append(_svg_text(4, mid - 3, str(row.get("label", "")), size=14,
                               weight="700" if row.get("emphasis") else "600"))
        parts.append(_svg_text(4, mid + 13, str(row.get("note", "")), size=12, fill=_MUTED))
        if id(row) in drawn:
            parts.append(f'<line x1="{x(row["low"]):.1f}" y1="{mid:.1f}" x2="{x(row["high"]):.1f}" '
                         f'y2="{mid:.1f}" stroke="#0072B2" stroke-width="3.5" stroke-linecap="round"/>')
            if row.get("emphasis"):
                parts.append(f'<rect x="{x(row["estimate"]) - 6:.1f}" y="{mid - 6:.1f}" width="12" height="12" '
                             f'fill="{_TEXT}" stroke="#fff" stroke-width="1.5"/>')
            else:
                parts.append(f'<circle cx="{x(row["estimate"]):.1f}" cy="{mid:.1f}" r="5.5" fill="{_TEXT}" '
                             'stroke="#fff" stroke-width="1.5"/>')
        else:
            parts.append(_svg_text(left + 4, mid + 4, row.get("missing", "no estimate"), size=12,
                                   fill=_MUTED, italic=True))
    parts.append(f'<line x1="{x(0):.1f}" y1="{top - 4}" x2="{x(0):.1f}" y2="{axis_y:.1f}" stroke="{_TEXT}" '
                 'stroke-width="1.2" stroke-dasharray="4 3"/>')
    parts.append(f'<line x1="{left:.1f}" y1="{axis_y:.1f}" x2="{right:.1f}" y2="{axis_y:.1f}" '
                 f'stroke="{_MUTED}" stroke-width="1"/>')
    for tick in ticks:
        if lo - 1e-9 <= tick <= hi + 1e-9:
            parts.append(f'<line x1="{x(tick):.1f}" y1="{axis_y:.1f}" x2="{x(tick):.1f}" y2="{axis_y + 4:.1f}" '
                         f'stroke="{_MUTED}"/>')
            parts.append(_svg_text(x(tick), axis_y + 16, _tick_label(tick), size=12, anchor="middle",
                                   fill=_MUTED))
    parts.append(_svg_text((left + right) / 2, axis_y + 33, f"difference, {unit}",
                           size=12, anchor="middle", fill=_MUTED))
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------- tables as frames

def _outcome_label(outcome: str) -> str:
    name, unit = _OUTCOME_LABELS.get(outcome, (outcome.replace("_", " "), ""))
    unit = {"share": "percentage points", "pp": "percentage points", "z": "z-score"}.get(unit, unit)
    return f"{name} ({unit})" if unit else name


def _method_label(row: pd.Series) -> str:
    estimator = _ESTIMATOR_LABELS.get(str(row["estimator"]), str(row["estimator"]))
    inference = _INFERENCE_LABELS.get(str(row["inference"]), str(row["inference"]))
    return f"{estimator}, {inference}"


def _whole(estimates: pd.DataFrame) -> pd.DataFrame:
    return estimates.loc[is_whole_region(estimates)]


def _reading(row: pd.Series) -> str:
    if str(row.get("status")) != "ok":
        return "not estimable"
    direction = effect_direction(row)
    if direction is None:
        return SUPPRESSED
    return {"higher": "higher in partnered", "lower": "lower in partnered",
            "unclear": "no clear difference"}[direction]


def _effect_cell(row: pd.Series) -> str:
    """``+2.0 (0.5 to 3.5)``, or the reason there is none."""
    reading = _reading(row)
    if reading in ("not estimable", SUPPRESSED):
        return reading
    digits = 2 if str(row.get("outcome")) in ("haz", "waz", "whz", "baz", "kling_index") else 1
    return (f"{format_number(row['estimate'], digits, signed=True)} "
            f"({format_interval(row['ci_low'], row['ci_high'], digits)})")


def _headline_rows(estimates: pd.DataFrame) -> pd.DataFrame:
    """One row per outcome: the primary method where it exists, else the outcome's first row."""
    whole = _whole(estimates)
    if whole.empty:
        return whole
    primary = whole.loc[_primary_mask(whole)]
    method = primary.iloc[0] if not primary.empty else whole.iloc[0]
    same = (whole["estimator"].astype(str) == str(method["estimator"])) & \
           (whole["inference"].astype(str) == str(method["inference"]))
    preferred = pd.concat([primary, whole[same], whole]).drop_duplicates(subset=["outcome"], keep="first")
    order = {o: i for i, o in enumerate(_OUTCOME_LABELS)}
    return preferred.sort_values("outcome", key=lambda s: s.map(lambda o: order.get(o, len(order))),
                                 kind="stable")


def effects_frame(estimates: pd.DataFrame) -> pd.DataFrame:
    """Table 1: one short row per outcome, narrow enough for a phone.

    Columns: Outcome, Difference (95% interval), Size (SD), Reading. The
    method is the primary one (every method is in the full table).
    """
    rows = []
    for row in _records(_headline_rows(estimates)):
        usable = effect_direction(row) is not None
        rows.append({
            "Outcome": _outcome_label(str(row["outcome"])),
            "Difference (95% interval)": _effect_cell(row),
            "Size (SD)": format_number(row.get("effect_size_sd"), 2, signed=True) if usable else DASH,
            "Reading": _reading(row),
        })
    return pd.DataFrame(rows, columns=["Outcome", "Difference (95% interval)", "Size (SD)", "Reading"])


def estimate_frame(estimates: pd.DataFrame) -> pd.DataFrame:
    """Every whole-region estimate as display strings, primary row first and marked.

    Methods are abbreviated ("ANCOVA · CR1"; see :func:`method_key` for the
    words). Rows describing fewer than 10 children or 3 centres in an arm show
    "suppressed" instead of numbers. q-values and warnings appear when the
    estimates carry them.
    """
    estimates = _whole(estimates)
    is_primary = _primary_mask(estimates)
    has_q = "q_value_bh" in estimates.columns and estimates["q_value_bh"].notna().any()
    rows = []
    for row_is_primary, row in zip(is_primary.to_numpy(), _records(estimates)):
        ok = str(row["status"]) == "ok" and _isnum(row.get("estimate"))
        short = _ESTIMATOR_SHORT.get(str(row["estimator"]), str(row["estimator"]))
        label = f"{short} · {row['inference']}" + (" (primary)" if row_is_primary else "")
        note = str(row["note"]) if isinstance(row.get("note"), str) else ""
        codes = warning_codes(row)
        if codes:
            note = (note + " " if note else "") + "Flags: " + "; ".join(_warning_text(c) for c in codes) + "."
        cells = {
            "Outcome": _outcome_label(str(row["outcome"])),
            "Method": label,
            "Estimate (95% interval)": (f"{format_number(row['estimate'], 2, signed=True)} "
                                        f"({format_interval(row['ci_low'], row['ci_high'], 2)})"
                                        if ok else "not estimable"),
            "Std. error": format_number(row["std_error"], 2) if ok else DASH,
            "p-value": format_p(row["p_value"]) if ok else DASH,
        }
        if has_q:
            cells["q-value (BH)"] = format_p(row.get("q_value_bh")) if ok else DASH
        cells.update({
            "Effect size (SD)": format_number(row["effect_size_sd"], 2, signed=True) if ok else DASH,
            "Children": row["n_children"],
            "Partnered centres": row["n_centres_partnered"],
            "Comparison centres": row["n_centres_comparison"],
            "Note": note,
        })
        rows.append(cells)
    columns = ["Outcome", "Method", "Estimate (95% interval)", "Std. error", "p-value"]
    columns += ["q-value (BH)"] if has_q else []
    columns += ["Effect size (SD)", "Children", "Partnered centres", "Comparison centres", "Note"]
    table = pd.DataFrame(rows, columns=columns)
    values = [c for c in columns[2:] if c not in ("Children", "Partnered centres", "Comparison centres", "Note")]
    shown = suppress_small_cells(table, children="Children",
                                 centres=["Partnered centres", "Comparison centres"], values=values)
    # A not-estimable row carries no statistic to protect: keep saying so.
    not_ok = table["Estimate (95% interval)"] == "not estimable"
    shown.loc[not_ok, values] = table.loc[not_ok, values]
    shown.insert(len(columns) - 3, "Centres (partnered / comparison)",
                 shown.pop("Partnered centres") + " / " + shown.pop("Comparison centres"))
    return shown


def method_key(estimates: pd.DataFrame) -> str:
    """The abbreviations of :func:`estimate_frame`'s Method column that occur, in words."""
    whole = _whole(estimates)
    words = [f"{_ESTIMATOR_SHORT.get(e, e)} = {_ESTIMATOR_LABELS.get(e, e)}"
             for e in dict.fromkeys(whole["estimator"].astype(str)) if _ESTIMATOR_SHORT.get(e, e) != _ESTIMATOR_LABELS.get(e, e)]
    words += [f"{i} = {_INFERENCE_LABELS.get(i, i)}" for i in dict.fromkeys(whole["inference"].astype(str))]
    return "; ".join(words) + "." if words else ""


_SUBGROUP_VALUES = {"sex=female": "Girls", "sex=male": "Boys", "sex:female_minus_male": "Girls minus boys "
                    "(difference in the effect)", "setting=urban": "Urban centres",
                    "setting=peri-urban": "Peri-urban centres", "setting=rural": "Rural centres"}
_PARTNER_TYPES = {"cbo": "community-based organisations", "wellness": "wellness and nutrition programmes",
                  "municipality": "municipalities", "private": "companies", "education": "educational institutions"}


def subgroup_label(code: str) -> str:
    """A subgroup of ``results/estimates.csv`` in words: ``sex=female`` → "Girls",
    ``partner_type=cbo`` → "Partnered with community-based organisations",
    ``exposure_months=12-24`` → "12–24 months of partnership", ``dose:per_12_months`` → "Each further
    12 months of partnership"."""
    if code in _SUBGROUP_VALUES:
        return _SUBGROUP_VALUES[code]
    name, _, value = code.partition("=")
    if name == "partner_type":
        return f"Partnered with {_PARTNER_TYPES.get(value, value.replace('_', ' '))}"
    if name == "exposure_months":
        return f"{value.replace('-', '–').replace('+', ' or more')} months of partnership"
    if code.startswith("dose:per_") and code.endswith("_months"):
        return f"Each further {code[len('dose:per_'):-len('_months')]} months of partnership"
    if value:
        return f"{name.replace('_', ' ').capitalize()}: {value.replace('_', ' ')}"
    return code.replace("_", " ")


def subgroup_frame(estimates: pd.DataFrame) -> pd.DataFrame:
    """Estimates for subgroups (primary method, one row per subgroup and outcome)."""
    columns = ["Subgroup", "Outcome", "Difference (95% interval)", "Children", "Reading"]
    if "subgroup" not in estimates.columns:
        return pd.DataFrame(columns=columns)
    sub = estimates.loc[~is_whole_region(estimates)]
    if sub.empty:
        return pd.DataFrame(columns=columns)
    headline = _headline_rows(estimates)
    if not headline.empty:
        first = headline.iloc[0]
        same = ((sub["estimator"].astype(str) == str(first["estimator"]))
                & (sub["inference"].astype(str) == str(first["inference"])))
        sub = sub.loc[same] if same.any() else sub
    rows = [{"Subgroup": subgroup_label(str(r["subgroup"])), "Outcome": _outcome_label(str(r["outcome"])),
             "Difference (95% interval)": _effect_cell(r), "Children": suppress_count(r.get("n_children")),
             "Reading": _reading(r)} for r in _records(sub)]
    return pd.DataFrame(rows, columns=columns)


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


_INDICATORS = (  # column of results/indicators.csv, label, formatter
    ("elom_total_mean", "Mean ELOM total (0–100)", lambda v: format_number(v, 1)),
    ("on_track_pct", "On Track on the ELOM standards", _pct),
    ("haz_mean", "Mean height-for-age z-score", lambda v: format_number(v, 2)),
    ("stunted_pct", "Stunted (height-for-age below −2)", _pct),
    ("attendance_rate_mean", "Mean attendance rate",
     lambda v: _pct(100 * float(v)) if _isnum(v) and float(v) <= 1 else _pct(v)),
)


def indicators_frame(indicators: pd.DataFrame | None) -> pd.DataFrame:
    """Child indicators with one column per arm and wave (5 columns: fits a phone).

    A column describing fewer than 10 children or 3 centres is suppressed.
    """
    groups = [(arm, wave) for arm in ARMS for wave in WAVES]
    names = [f"{arm}, {wave}" for arm, wave in groups]
    if indicators is None or indicators.empty:
        return pd.DataFrame(columns=["Indicator", *names])
    frame = indicators.assign(arm=indicators["arm"].astype(str).str.capitalize(),
                              wave=indicators["wave"].astype(str).str.lower())
    cells: dict[str, list[str]] = {"Indicator": ["Children", "Centres"]}
    present = [(c, label, fmt) for c, label, fmt in _INDICATORS if c in frame.columns]
    cells["Indicator"] += [label for _, label, _ in present]
    for (arm, wave), name in zip(groups, names):
        match = frame.loc[(frame["arm"] == arm) & (frame["wave"] == wave)]
        if match.empty:
            cells[name] = ["0", "0"] + [DASH] * len(present)
            continue
        row = match.iloc[0]
        small = _too_small(row.get("n_children"), [row.get("n_centres")])
        fewer = {c: c in INDICATOR_COUNTS and INDICATOR_COUNTS[c] in row and _too_small(row[INDICATOR_COUNTS[c]])
                 for c, _, _ in present}  # a statistic that rests on fewer children than its group
        cells[name] = ([suppress_count(row.get("n_children")),
                        suppress_count(row.get("n_centres"), min_centres_per_cell())]
                       + [SUPPRESSED if small or fewer[c] else fmt(row.get(c)) for c, _, fmt in present])
    return pd.DataFrame(cells)


def satisfaction_frame(satisfaction: pd.DataFrame | None, groups: pd.DataFrame | None = None) -> pd.DataFrame:
    """Parents' satisfaction by arm: top-2-box share per item and the net promoter score.

    Cells with answers from fewer than 10 parents, or from parents of fewer than 3 centres
    (the row's ``n_centres``; without it, the arm's centres in ``groups``), are suppressed.
    """
    columns = ["Item", "Partnered", "Comparison"]
    if satisfaction is None or satisfaction.empty:
        return pd.DataFrame(columns=columns)
    frame = satisfaction.assign(arm=satisfaction["arm"].astype(str).str.capitalize())
    items = list(dict.fromkeys(frame["item"].astype(str)))
    items = sorted(items, key=lambda i: (i != "overall", i == "nps"))
    labels = (dict(zip(frame["item"].astype(str), frame["item_label"].astype(str)))
              if "item_label" in frame.columns else {})
    rows = []
    for item in items:
        label = {"overall": "Customer service score (all items; share answering 4–5 of 5)",
                 "nps": "Net promoter score (−100 to 100)"}.get(
            item, labels.get(item, item.removeprefix("sat_").replace("_", " ").capitalize()))
        cells = {"Item": label}
        for arm in ARMS:
            match = frame.loc[(frame["item"].astype(str) == item) & (frame["arm"] == arm)]
            if match.empty:
                cells[arm] = DASH
                continue
            row = match.iloc[0]
            n = row.get("n_valid")
            centres = row.get("n_centres") if "n_centres" in row else group_size(groups, arm)[1]
            if _too_small(n, [math.inf if centres is None else centres]):
                cells[arm] = f"{SUPPRESSED} (n {suppress_count(n)})"
                continue
            value = (row.get("nps") if _isnum(row.get("nps")) else row.get("mean_score")) if item == "nps" \
                else row.get("top2_pct")
            shown = format_number(value, 0, signed=True) if item == "nps" else _pct(value)
            cells[arm] = f"{shown} (n {suppress_count(n)})"
        rows.append(cells)
    return pd.DataFrame(rows, columns=columns)


def scorecard_frame(scorecard: pd.DataFrame | None, region: str, groups: pd.DataFrame | None = None) -> pd.DataFrame:
    """SCSPR-25 scorecard rows for the region and the whole programme: value against target.

    The region's values are suppressed when its centres and children (``groups``) are too few."""
    columns = ["Metric", "Scope", "Value", "Target", "Met?"]
    if scorecard is None or scorecard.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    frame = scorecard.assign(scope=scorecard["scope"].astype(str).str.lower())
    frame = frame.sort_values("scope", key=lambda s: s.map({"region": 0, "national": 1}), kind="stable")
    for row in _records(frame):
        unit = str(row.get("unit")) if isinstance(row.get("unit"), str) else ""
        fmt = (lambda v: _pct(v)) if unit in ("%", "pct", "percent") else (lambda v: format_number(v, 0))
        label = row.get("label") if isinstance(row.get("label"), str) else str(row["metric"]).replace("_", " ").capitalize()
        met = row.get("is_met")
        met_text = DASH if pd.isna(met) else ("Yes" if _as_bool(pd.Series([met])).iloc[0] else "Not yet")
        small = row["scope"] == "region" and region_is_small(groups, region)
        rows.append({"Metric": label,
                     "Scope": region if row["scope"] == "region" else "All regions",
                     "Value": SUPPRESSED if small else fmt(row.get("value")), "Target": fmt(row.get("target")),
                     "Met?": SUPPRESSED if small and met_text != DASH else met_text})
    return pd.DataFrame(rows, columns=columns)


def balance_frame(balance: pd.DataFrame | None, groups: pd.DataFrame | None = None) -> pd.DataFrame:
    """Baseline balance: means by arm, standardised difference, variance ratio and verdict.

    An arm's mean is suppressed when its cell is small (:func:`evalkit.disclosure.balance_cells`:
    children rows count the arm's children in its baseline centres of ``groups``, centre rows its
    centres); what compares the arms (difference, ratio, verdict) when either arm's is.
    """
    columns = ["Characteristic", "Partnered", "Comparison", "Std. difference", "Variance ratio", "Verdict"]
    if balance is None or balance.empty:
        return pd.DataFrame(columns=columns)
    verdicts = {"good": "balanced", "adjust": "adjusted for", "fails": "imbalanced"}
    rows = []
    cells = balance_cells(balance, groups)
    for part, comp, small, row in zip(cells["Partnered"], cells["Comparison"], cells["either"], _records(balance)):
        name = str(row["label"]) if isinstance(row.get("label"), str) else str(row["variable"])
        level = row.get("level")
        if isinstance(level, str) and level.strip():
            name += f": {level}"
        rows.append({
            "Characteristic": name,
            "Partnered": SUPPRESSED if part else format_number(row.get("mean_partnered"), 2),
            "Comparison": SUPPRESSED if comp else format_number(row.get("mean_comparison"), 2),
            "Std. difference": SUPPRESSED if small else format_number(row.get("smd"), 2, signed=True),
            "Variance ratio": SUPPRESSED if small else format_number(row.get("variance_ratio"), 2),
            "Verdict": SUPPRESSED if small else verdicts.get(str(row.get("flag")), DASH),
        })
    return pd.DataFrame(rows, columns=columns)


def _compared(balance: pd.DataFrame, groups: pd.DataFrame | None) -> pd.Series:
    """The balance rows whose comparison of the arms may be shown (:func:`evalkit.disclosure.balance_cells`)."""
    return ~pd.Series(balance_cells(balance, groups)["either"], index=balance.index, dtype=bool)


def _rows_by_table(manifest: dict | None) -> dict[str, dict]:
    rows = (manifest or {}).get("rows") or {}
    return {str(k): v for k, v in rows.items() if isinstance(v, dict)}


def rows_kept_frame(manifest: dict | None) -> pd.DataFrame:
    """Rows read, kept and dropped per input table (from the run manifest)."""
    rows = [{"Table": table.replace("_", " "), "Rows read": suppress_count(counts.get("rows_in")),
             "Kept": suppress_count(counts.get("rows_kept")),
             "Dropped": DASH if counts.get("rows_dropped") in (0, None) else suppress_count(counts.get("rows_dropped"))}
            for table, counts in _rows_by_table(manifest).items()]
    return pd.DataFrame(rows, columns=["Table", "Rows read", "Kept", "Dropped"])


def _plain_rule(rule: str) -> str:
    """``"unknown_province: never guessed"`` → ``"unknown province — never guessed"``."""
    name, _, detail = str(rule).partition(":")
    text = name.strip().replace("_", " ")
    return f"{text} — {detail.strip()}" if detail.strip() else text


def dropped_by_reason_frame(manifest: dict | None) -> pd.DataFrame:
    """Rows dropped, by table and reason (from the run manifest), largest first."""
    rows = [{"Table": table.replace("_", " "), "Reason": _plain_rule(rule), "n": int(n)}
            for table, counts in _rows_by_table(manifest).items()
            for rule, n in (counts.get("dropped_by_rule") or {}).items() if _isnum(n) and int(n) > 0]
    frame = pd.DataFrame(rows, columns=["Table", "Reason", "n"]).sort_values("n", ascending=False, kind="stable")
    frame["Rows dropped"] = frame.pop("n").map(suppress_count)
    return frame.reset_index(drop=True)


def _action_counts(counts: pd.DataFrame, top: int) -> pd.DataFrame:
    counts = counts.reindex(columns=["changed", "flagged", "dropped"], fill_value=0)
    counts = counts.assign(total=counts.sum(axis=1)).sort_values("total", ascending=False, kind="stable").head(top)
    out = counts.reset_index()
    table = pd.DataFrame({"Table": out["table"], "Rule": out["rule"].map(_plain_rule)})
    for action in ("changed", "flagged", "dropped"):
        table[action.capitalize()] = out[action].map(lambda n: DASH if n == 0 else suppress_count(n))
    return table


def data_quality_frame(cleaning_log: pd.DataFrame | None, *, top: int = 15) -> pd.DataFrame:
    """Records changed, flagged and dropped, by table and rule (the whole run).

    Only counts leave the log: no record ids and no values.
    """
    if cleaning_log is None or cleaning_log.empty:
        return pd.DataFrame(columns=["Table", "Rule", "Changed", "Flagged", "Dropped"])
    log = cleaning_log.assign(action=cleaning_log["action"].str.lower())
    counts = log.groupby(["table", "rule", "action"]).size().unstack("action", fill_value=0)
    return _action_counts(counts, top)


def data_quality_summary_frame(data_quality: pd.DataFrame | None, *, top: int = 15) -> pd.DataFrame:
    """The same table as :func:`data_quality_frame`, from ``results/data_quality.csv``."""
    if data_quality is None or data_quality.empty:
        return pd.DataFrame(columns=["Table", "Rule", "Changed", "Flagged", "Dropped"])
    frame = data_quality.assign(action=data_quality["action"].astype(str).str.lower())
    counts = frame.pivot_table(index=["table", "rule"], columns="action", values="n_rows",
                               aggfunc="sum", fill_value=0)
    return _action_counts(counts, top)


# --------------------------------------------------------------------------- methods text

def _int(value: Any) -> int | None:
    return int(float(value)) if _isnum(value) else None


def power_sentence(power: pd.DataFrame | None) -> str:
    """What the design could detect (minimum detectable effect), or "" without a power table."""
    if power is None or power.empty or not _isnum(power.iloc[0].get("mde_sd")):
        return ""
    row = power.iloc[0]
    mde_sd = float(row["mde_sd"])
    points = f" ({format_number(row.get('mde_points'), 1)} ELOM points)" if _isnum(row.get("mde_points")) else ""
    low, high = PLAUSIBLE_EFFECT_SD
    text = (f"With this many centres and children, the study could reliably detect (80% power, 5% level) "
            f"an effect of about {format_number(mde_sd, 2)} SD{points} or more.")
    if mde_sd > high:
        text += (f" Effects of the size plausible for programmes like this ({format_number(low, 2)}–"
                 f"{format_number(high, 2)} SD) could "
                 "easily be missed, so “no clear difference” is not evidence of no effect.")
    elif mde_sd > low:
        text += (f" Smaller effects in the plausible range ({format_number(low, 2)}–{format_number(high, 2)} SD) "
                 "could be missed.")
    return text


def methods_paragraphs(data: RegionData) -> list[str]:
    """Methods, in plain sentences, written from the region's rows and the run's parameters."""
    row = data.primary
    level = ((data.manifest or {}).get("parameters") or {}).get("level", "province")
    paras = [
        "We compare children in centres that had signed a partnership (an MOU that had not ended) "
        "before their endline assessment — <em>partnered</em> centres — with children in centres "
        "without one — <em>comparison</em> centres. Children were assessed twice, at baseline and "
        "endline, with the ELOM 4&amp;5 (Early Learning Outcomes Measure; total 0–100). "
        f"Results are reported by {html.escape(str(level))}. Partnership was <strong>not randomised</strong>: "
        "centres chose to partner."
    ]
    if row is None or str(row.get("status")) != "ok":
        paras.append(
            "The planned analysis is an ANCOVA of the endline outcome on partnership, adjusting for "
            "the baseline outcome"
            + "".join(f", {html.escape(label)}" for label in covariate_labels())
            + ", with standard errors clustered by centre. "
            f"It was not run for {html.escape(data.region)} because "
            f"{html.escape(_reason(None if row is None else row.get('note')))}.")
        paras.append(plan_paragraph(data.manifest))
        return paras
    n, part, comp, df = (_int(row.get(c)) for c in
                         ("n_children", "n_centres_partnered", "n_centres_comparison", "df"))
    g = (part or 0) + (comp or 0)
    estimator = str(row.get("estimator"))
    if estimator == "ancova":
        outcome = html.escape(_outcome_label(str(row.get("outcome"))))
        model = (f"An ANCOVA: an ordinary least-squares regression of each child's endline {outcome} on "
                 f"partnership (partnered = 1), adjusting for the child's baseline {outcome}"
                 + "".join(f", {html.escape(label)}" for label in covariate_labels()[:-1])
                 + (f" and {html.escape(covariate_labels()[-1])}" if covariate_labels() else "")
                 + ". Adjusting for baseline matters because children gain roughly "
                 f"{format_number(_ELOM_POINTS_PER_MONTH)} ELOM points a month "
                 "as they grow.")
    else:
        model = (f"The primary estimate uses {html.escape(_ESTIMATOR_LABELS.get(estimator, estimator))} "
                 "on the endline outcome, adjusting for baseline scores and the children's and centres' "
                 "characteristics.")
    paras.append(
        f"<strong>Estimate.</strong> {model} The model uses {suppress_count(n)} children assessed at both "
        f"waves in {suppress_count(g, min_centres_per_cell())} centres "
        f"({suppress_count(part, min_centres_per_cell())} partnered, "
        f"{suppress_count(comp, min_centres_per_cell())} comparison).")
    whole = _whole(data.estimates)
    others = [e for e in dict.fromkeys(whole["estimator"].astype(str)) if e != estimator]
    if others:
        paras.append(
            "<strong>Other estimators.</strong> As checks on the primary estimate, the full table of "
            "estimates also shows "
            + ", ".join(html.escape(_ESTIMATOR_LABELS.get(e, e)) for e in others)
            + ". If they broadly agree, the result does not hinge on one modelling choice.")
    df_text = f"{df} degrees of freedom" if df is not None else "G − 1 degrees of freedom"
    inference = str(row.get("inference"))
    form = {"CR1": "CR1, the Stata small-sample form", "CR2": "CR2, the Bell–McCaffrey small-sample form",
            "WCR-bootstrap": "wild cluster restricted bootstrap", "HC1": "HC1, not clustered"}.get(inference, inference)
    inferences = [i for i in dict.fromkeys(whole["inference"].astype(str)) if i != inference]
    paras.append(
        "<strong>Uncertainty.</strong> Children in the same centre are alike, so standard errors are "
        f"clustered by centre ({html.escape(form)}) and the 95% interval uses a "
        f"t distribution with {df_text} (the number of centres minus one)."
        + (" The table of all estimates also reports "
           + ", ".join(html.escape(_INFERENCE_LABELS.get(i, i)) for i in inferences)
           + ", which behave better when there are few centres." if inferences else ""))
    if "q_value_bh" in whole.columns and whole["q_value_bh"].notna().any():
        paras.append(
            "<strong>Several outcomes.</strong> Because several outcomes are tested, q-values "
            "(Benjamini–Hochberg"
            + (" and Anderson's sharpened q-values" if "q_value_sharpened" in whole.columns else "")
            + ") control the share of false discoveries; read a result as clear only when its q-value is small too.")
    paras.append(
        "<strong>Effect size.</strong> The estimate in ELOM points divided by the standard deviation "
        f"of baseline ELOM total among comparison children in {html.escape(data.region)}; "
        f"{format_number(PLAUSIBLE_EFFECT_SD[0], 2)}–{format_number(PLAUSIBLE_EFFECT_SD[1], 2)} SD is the range "
        "plausible for "
        "programmes of this kind.")
    power = power_sentence(data.table("power"))
    if power:
        paras.append(f"<strong>What the study could detect.</strong> {html.escape(power)}")
    paras.append(plan_paragraph(data.manifest))
    return paras


_COVARIATE_LABELS = {"age_months": "age in months at endline", "sex": "sex",
                     "setting": "setting (urban, peri-urban, rural)", "registration_status": "registration status",
                     "fee_band": "fee band"}


def covariate_labels() -> list[str]:
    """The ANCOVA's covariates besides the baseline outcome, in words (plan: ``covariates``)."""
    from .estimation import ancova_covariates

    numeric, categorical = ancova_covariates()
    return [_COVARIATE_LABELS.get(c, c.replace("_", " ")) for c in [*numeric, *categorical] if c != "baseline"]


def plan_paragraph(manifest: dict | None) -> str:
    """What the run's analysis plan set, in one paragraph (escaped HTML)."""
    info = (manifest or {}).get("plan") or {}
    chosen = info.get("set") or {}
    if not info.get("source"):
        return ("<strong>Analysis plan.</strong> evalkit's default plan, the data contract's: primary outcome "
                "ELOM total, ANCOVA, CR1 standard errors clustered by centre.")
    items = "; ".join(f"<code>{html.escape(name)}</code>: {html.escape(_plan_value(value))}"
                      for name, value in chosen.items())
    where = html.escape(Path(info["source"]).name)
    digest = html.escape(str(info.get("sha256", ""))[:12])
    return (f"<strong>Analysis plan.</strong> The study's plan ({where}, SHA-256 {digest}…) "
            + (f"sets {items}; everything else follows evalkit's defaults (the data contract's)." if items
               else "keeps every default of evalkit (the data contract's)."))


def _plan_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) if value else "none"
    return localise(str(value)) if isinstance(value, float) else str(value)


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
        if part is not None and comp is not None and min(part, comp) < few_centres_warning():
            has_cr2 = (data.estimates["inference"].astype(str) == "CR2").any()
            items.append(
                f"<strong>Few centres.</strong> This region has only {part} partnered and {comp} "
                f"comparison centres (fewer than {few_centres_warning()} in an arm). With so few "
                "clusters, CR1 standard errors can be too small and one centre can move the result; "
                + ("compare the CR2 rows in the table of all estimates, which correct for this." if has_cr2
                   else "read the interval as a lower bound on the uncertainty."))
        codes = [c for c in warning_codes(row) if not c.startswith("few_")]
        if codes:
            items.append("<strong>Flags raised by the analysis:</strong> "
                         + html.escape("; ".join(_warning_text(c) for c in codes)) + ".")
        items.append(
            "Only children assessed at both baseline and endline are in the model; children who left "
            "or were absent at one wave are not represented.")
    else:
        items.append(
            "No effect was estimated for this region, so the tables in this report describe the "
            "children assessed but say nothing about what partnership did.")
    balance = data.table("balance")
    if balance is not None and "flag" in balance.columns:  # a suppressed comparison names nothing
        balance = balance.loc[_compared(balance, data.groups)]
    if balance is not None and "flag" in balance.columns and (balance["flag"].astype(str) == "fails").any():
        failing = balance.loc[balance["flag"].astype(str) == "fails"]
        names = ", ".join(dict.fromkeys(
            str(r["label"]) if isinstance(r.get("label"), str) else str(r["variable"]) for r in _records(failing)))
        items.append(f"<strong>Groups differed at baseline</strong> by more than a quarter of a standard "
                     f"deviation on: {html.escape(names)}. Adjustment cannot fully remove differences this large.")
    power = power_sentence(data.table("power"))
    if power and data.table("power") is not None and float(data.table("power").iloc[0]["mde_sd"]) > PLAUSIBLE_EFFECT_SD[0]:
        items.append(f"<strong>Limited power.</strong> {html.escape(power)}")
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


def details(title: str, *sections) -> Any:
    """One folded section of the technical appendix: the sections' HTML under a summary line,
    closed on screen and in print (a click opens it), so the page a funder reads and prints is
    the summary and the results that matter. Empty sections give nothing."""
    body = "".join(str(getattr(section, "data", section) or "") for section in sections)
    if not body.strip():
        return _html("")
    return _html(f'<details class="ek-details"><summary><h3 class="ek-details-title">{html.escape(title)}</h3>'
                 f"</summary>{body}</details>")


def _table_html(table: pd.DataFrame, caption: str, *, note: str = "",
                numeric: Iterable[str] = (), stack: bool | None = None,
                column_groups: list[tuple[str, int]] | None = None,
                column_labels: dict[str, str] | None = None) -> str:
    """An accessible table; wide ones (over 4 columns) turn into labelled cards on phones.

    ``column_groups`` adds a header row above the column names (label, span);
    ``column_labels`` shortens column names under such a group.
    """
    numeric = set(numeric)
    stack = len(table.columns) > 4 if stack is None else stack
    labels = column_labels or {}
    head = "".join(f'<th scope="col">{html.escape(labels.get(str(c), str(c)))}</th>' for c in table.columns)
    if column_groups:
        groups = "".join(f'<th scope="colgroup" colspan="{span}">{html.escape(label)}</th>' if label
                         else f'<td colspan="{span}"></td>' for label, span in column_groups)
        head = f"{groups}</tr><tr>{head}"
    body = []
    for values in table.values.tolist():  # the values DataFrame.iterrows() gives, without a Series per row
        cells = []
        for i, (column, value) in enumerate(zip(table.columns, values)):
            text = html.escape("" if value is None or (isinstance(value, float) and math.isnan(value))
                               else localise(str(value)) if isinstance(value, float) else str(value))
            cls = ' class="num"' if column in numeric else ""
            label = f' data-label="{_esc(column)}"'
            cells.append(f'<th scope="row"{label}>{text}</th>' if i == 0 else f"<td{cls}{label}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    note_html = f'<p class="ek-note">{note}</p>' if note else ""
    css = "ek-table ek-stack" if stack else "ek-table"
    wrap = "ek-table-wrap ek-wide" if len(table.columns) > 6 else "ek-table-wrap"
    return (f'<div class="{wrap}"><table class="{css}"><caption>{caption}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>{note_html}")


def _svg_uri(fig) -> str:
    import matplotlib

    if decimal_mark() != ".":
        _localise_ticks(fig)
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "evalkit"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _localise_ticks(fig) -> None:
    """Numeric tick labels in the plan's decimal mark (categorical axes keep their labels)."""
    from matplotlib.ticker import ScalarFormatter

    class Localised(ScalarFormatter):
        def __call__(self, x, pos=None):
            return localise(super().__call__(x, pos))

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if type(axis.get_major_formatter()) is ScalarFormatter:
                axis.set_major_formatter(Localised())


def _figure_html(fig, alt: str, caption: str) -> str:
    width = int(fig.get_figwidth() * 96)
    return (f'<figure class="ek-figure"><img src="{_svg_uri(fig)}" '
            f'alt="{html.escape(alt, quote=True)}" style="max-width:{width}px">'
            f"<figcaption>{caption}</figcaption></figure>")


#: Figure text sizes chosen so that labels stay readable when a chart shrinks to a phone's width.
_FIGURE_RC = {"font.size": 12, "axes.labelsize": 12, "xtick.labelsize": 11.5, "ytick.labelsize": 11.5,
              "legend.fontsize": 11.5, "font.family": "sans-serif"}


def _styled(function: Callable) -> Callable:
    """Draw the whole figure under :data:`_FIGURE_RC` (text takes its size when it is created)."""

    @functools.wraps(function)
    def drawn(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(_FIGURE_RC):
            return function(*args, **kwargs)
    return drawn


def _new_figure(width: float, height: float, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(1, ncols)


def _placeholder(text: str) -> str:
    return f'<p class="ek-placeholder">{text}</p>'


def _guarded(source: str) -> Callable:
    """Optional sections fail soft: an unexpected file shape becomes one plain sentence."""

    def wrap(function: Callable) -> Callable:
        def section(data: RegionData, *args, **kwargs):
            try:
                return function(data, *args, **kwargs)
            except (KeyError, ValueError, TypeError) as exc:
                missing = f" (it lacks the column {exc.args[0]!r})" if isinstance(exc, KeyError) and exc.args else ""
                return _html(_placeholder(f"This section could not be shown: {html.escape(source)} does not "
                                          f"have the expected layout{html.escape(missing)}."))
        return functools.wraps(function)(section)
    return wrap


def suppression_note() -> str:
    children, centres = min_children_per_cell(), min_centres_per_cell()
    return (f"Cells describing fewer than {children} children or {centres} centres are shown as "
            f"“&lt;{children}”, “&lt;{centres}” or “suppressed”.")


#: Typical ELOM Total gain per month of age (shared/spec/domain-facts.md), for the methods text.
_ELOM_POINTS_PER_MONTH = 0.7


def _balance_cutoffs() -> tuple[str, str, tuple[str, str]]:
    """The balance table's SMD cut-offs and variance-ratio range (rules: estimation.balance), as text."""
    rules = estimation_rules().balance
    low, high = rules.variance_ratio_range
    return (format_number(rules.smd_good, 2), format_number(rules.smd_fails, 2),
            (localise(f"{low:g}"), localise(f"{high:g}")))


def report_names() -> dict[str, str]:
    """The report's title, programme and funder (plan: ``report``); the title defaults to
    "ECD partnership evaluation", programme and funder to nothing."""
    names = study_rules().report
    return {"title": names.title or "ECD partnership evaluation", "programme": names.programme,
            "funder": names.funder}


def names_line() -> str:
    """"Programme: … · Funder: …" as escaped HTML, or '' when the plan names neither."""
    names = report_names()
    parts = [f"{label}: {html.escape(names[key])}" for key, label in (("programme", "Programme"),
                                                                        ("funder", "Funder")) if names[key]]
    return " · ".join(parts)


def title(data: RegionData):
    """Report title: the study's title, the region and the question the report answers."""
    names = names_line()
    return _html(
        f'<header class="ek-title"><p class="ek-kicker">{html.escape(report_names()["title"])}'
        '<span class="ek-wide-only"> · regional report</span></p>'
        f"<h1>{html.escape(data.region)}</h1>"
        + (f'<p class="ek-meta">District of {html.escape(data.province)}</p>' if data.province else "")
        + 
        '<p class="ek-meta">Do children in ECD centres with a partnership do better than children in '
        "similar centres without one?</p>"
        + (f'<p class="ek-meta">{names}</p>' if names else "") + "</header>")


def _certainty_sentence(row: pd.Series, level: str, checks: Iterable[dict] = ()) -> str:
    """How sure we are, with the interval in words a funder can repeat."""
    outcome = str(row.get("outcome", "elom_total"))
    unit = _outcome_unit(outcome) or "units"
    low, high = float(row["ci_low"]), float(row["ci_high"])
    digits = _interval_digits(low, high)
    shown_low, shown_high = outward(low, high, digits)
    span = (f"The likely range of the difference is {format_number(shown_low, digits, signed=True)} to "
            f"{format_number(shown_high, digits, signed=True)} {unit} (the 95% interval)")
    side = "above" if low > 0 else "below"
    if level == "clear":
        return f"{span}: all of it {side} zero, so the direction is clear, though the exact size is not."
    if level == "tentative":
        part, comp = _centre_counts(row)
        conflicting = [c for c in checks if c["includes_zero"]]
        if conflicting:
            why = ("the small-sample checks (" + "; ".join(
                f"{c['label']}: {format_interval(c['low'], c['high'], digits)}" for c in conflicting)
                + ") include zero")
        elif _has_few_centres(row) and _isnum(part) and _isnum(comp):
            why = f"it rests on only {int(float(part))} partnered and {int(float(comp))} comparison centres"
        else:
            why = "a check flagged it"
        return f"{span}: all of it {side} zero, but {why}, so more data could change the picture."
    return (f"{span}: it includes zero, so partnership may have made no difference, "
            "or a small one either way.")


def headline_html(row: pd.Series | None, region: str, *, heading: str = "What we found",
                  heading_level: int = 2, extra: Iterable[str] = (), checks: Iterable[dict] = ()) -> str:
    """The headline box as HTML: finding, a picture of the interval, how sure we are, the caveats.

    Used by :func:`headline` in each report and by the index for the national result; ``checks``
    are the row's :func:`few_cluster_checks`.
    """
    checks = list(checks)
    parts = headline_parts(row, region, checks)
    level, label = certainty(row, checks)
    body = [f'<p class="ek-lead">{html.escape(parts["finding"])}.</p>'
            if parts["interval"] else f'<p class="ek-lead">{html.escape(parts["finding"])}</p>']
    if parts["interval"]:
        outcome = str(row.get("outcome", "elom_total"))
        body.append(interval_svg(float(row["estimate"]), float(row["ci_low"]), float(row["ci_high"]),
                                 unit=_outcome_unit(outcome) or "units"))
        body.append(f'<p class="ek-sure"><strong>How sure are we?</strong> '
                    f'<span class="ek-badge ek-badge-{level}">{html.escape(label)}</span><br>'
                    f"{html.escape(_certainty_sentence(row, level, checks))}</p>")
        facts = [c for c in parts["caveats"] if not c.startswith("It rests on only")]
        n, part, comp = (_int(row.get(c)) for c in ("n_children", "n_centres_partnered", "n_centres_comparison"))
        if n is not None and part is not None and comp is not None:
            facts.append(f"Based on {suppress_count(n)} children assessed twice in {part + comp} centres "
                         f"({part} partnered, {comp} comparison).")
        if outcome.startswith("elom"):
            facts.append("ELOM: the Early Learning Outcomes Measure, a 0–100 score of what children aged "
                         "4–5 can do; SD: the difference as a share of how much children's scores vary.")
        facts += [f for f in extra if f]
        body.append('<ul class="ek-facts">' + "".join(f"<li>{html.escape(f)}</li>" for f in facts) + "</ul>")
    else:
        body.append(f'<p class="ek-sure"><strong>How sure are we?</strong> '
                    f'<span class="ek-badge ek-badge-{level}">{html.escape(label)}</span><br>'
                    "This data cannot tell whether partnership made a difference here. The figures below "
                    "describe the children assessed, not the effect of partnership.</p>")
    tag = f"h{heading_level}"
    return (f'<section class="ek-headline ek-{level}" aria-label="Headline result">'
            f"<{tag}>{html.escape(heading)}</{tag}>{''.join(body)}</section>")


def age_gradient(children: pd.DataFrame, outcome: str = "elom_total") -> dict[str, float] | None:
    """How much the outcome grows per month of age in this data: the slope of the outcome on age in
    months among comparison children at baseline (OLS, CR1 standard errors by centre, 95% interval
    on G − 1 df). None with too few children or centres to publish, or no age spread."""
    from .inference import fit_linear

    needed = {outcome, "age_months", "centre_id", "wave", "is_partnered"}
    if children is None or not needed <= set(children.columns):
        return None
    base = children.loc[(children["wave"].astype(str) == "baseline") & ~_as_bool(children["is_partnered"]),
                        [outcome, "age_months", "centre_id"]].dropna()
    if len(base) < min_children_per_cell() or base["centre_id"].nunique() < max(min_centres_per_cell(), 3):
        return None
    age = base["age_months"].to_numpy(dtype="float64")
    if np.ptp(age) == 0:
        return None
    X = np.column_stack([np.ones(len(base)), age])
    fit = fit_linear(base[outcome].to_numpy(dtype="float64"), X, ["(Intercept)", "age_months"],
                     base["centre_id"].astype(str).to_numpy())
    test = fit.coef_test("age_months", "CR1")
    return {"slope": test["estimate"], "ci_low": test["ci_low"], "ci_high": test["ci_high"],
            "n_children": float(len(base)), "n_centres": float(base["centre_id"].nunique())}


def months_sentence(row: pd.Series | None, gradient: dict[str, float] | None) -> str:
    """"About N months of typical development", from the data's own age gradient, hedged; '' when
    the gradient is not clearly positive or the row is not in points."""
    if row is None or gradient is None or not _isnum(row.get("estimate")):
        return ""
    if _OUTCOME_LABELS.get(str(row.get("outcome")), ("", ""))[1] != "points" or gradient["ci_low"] <= 0:
        return ""
    months = abs(float(row["estimate"])) / gradient["slope"]
    far, near = abs(float(row["estimate"])) / gradient["ci_low"], abs(float(row["estimate"])) / gradient["ci_high"]
    return (f"A difference of {_points(row['estimate'])} points is about {format_number(months, 1)} months of "
            f"typical development at this age (roughly {format_number(near, 1)} to {format_number(far, 1)}): "
            f"comparison children here scored {format_number(gradient['slope'], 2)} points more per month of "
            f"age at baseline (95% interval {format_interval(gradient['ci_low'], gradient['ci_high'], 2)}). "
            "A rough guide, not a measured gain in months.")


def headline(data: RegionData):
    """The first screen: the finding in one sentence, a picture of it, and how sure we are."""
    row = data.primary
    checks = few_cluster_checks(data.estimates, row)
    extra = []
    if certainty(row, checks)[0] in ("clear", "tentative"):
        outcome = str(row.get("outcome", "elom_total"))
        extra.append(months_sentence(row, age_gradient(data.children, outcome)))
    if certainty(row, checks)[0] == "unclear":
        power = data.table("power")
        if power is not None and not power.empty and _isnum(power.iloc[0].get("mde_sd")):
            extra.append(power_sentence(power))
    return _html(headline_html(row, data.region, extra=extra, checks=checks))


def _forest_rows(rows: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for r in _records(rows):
        usable = effect_direction(r) is not None
        short = _ESTIMATOR_SHORT.get(str(r["estimator"]), str(r["estimator"]))
        digits = 2 if str(r.get("outcome")) in ("haz", "waz", "whz", "baz", "kling_index") else 1
        out.append({
            "label": f"{short} · {r['inference']}",
            "note": (f"{format_number(r['estimate'], digits, signed=True)} "
                     f"({format_interval(r['ci_low'], r['ci_high'], digits)})") if usable else _reading(r),
            "estimate": r["estimate"] if usable else None, "low": r["ci_low"] if usable else None,
            "high": r["ci_high"] if usable else None, "missing": _reading(r),
        })
    return out


def effects_figure(data: RegionData, number: int | None = None):
    """Every estimate of every outcome with its 95% interval: one small forest plot per outcome."""
    whole = _whole(data.estimates)
    panels = []
    primary = data.primary
    for outcome in _headline_rows(whole)["outcome"].astype(str) if not whole.empty else []:
        rows = whole.loc[whole["outcome"].astype(str) == outcome]
        if primary is not None and str(primary["outcome"]) == outcome:  # primary method first
            rows = pd.concat([rows.loc[_primary_mask(rows)], rows.loc[~_primary_mask(rows)]])
        forest = _forest_rows(rows)
        if not any(r["estimate"] is not None for r in forest):
            continue
        if primary is not None and str(primary["outcome"]) == outcome:
            forest[0]["emphasis"] = True
        unit = _outcome_unit(outcome) or "units"
        described = "; ".join(f"{r['label']}: {r['note']}" for r in forest)
        panels.append(f'<div class="ek-panel"><p class="ek-panel-title">{html.escape(_outcome_label(outcome))}</p>'
                      + forest_svg(forest, unit=unit, label=f"{_outcome_name(outcome)} in {data.region}, "
                                                            f"difference in {unit} with 95% interval. {described}.")
                      + "</div>")
    if not panels:
        return _html(_placeholder(f"No effect figure: there is no usable estimate for "
                                  f"{html.escape(data.region)} (see the headline for why)."))
    n = data.next_number("Figure", number)
    caption = (f"Figure {n}. Difference between partnered and comparison centres (partnered minus "
               "comparison) with 95% intervals, for each outcome and method. The dashed line marks no "
               "difference; a bar that crosses it means no clear difference. The square marks the primary estimate.")
    return _html(f'<figure class="ek-figure ek-panels">{"".join(panels)}<figcaption>{caption}</figcaption></figure>')


def effect_figure(data: RegionData, number: int | None = None):
    """Alias of :func:`effects_figure` (kept for notebooks written before it)."""
    return effects_figure(data, number)


def effects_table(data: RegionData, number: int | None = None):
    """Table 1: the difference for each outcome in four short columns (fits a phone)."""
    frame = effects_frame(data.estimates)
    if frame.empty:
        return _html(_placeholder("There are no estimates for this region."))
    n = data.next_number("Table", number)
    caption = f"Table {n}. Difference between partnered and comparison centres in {html.escape(data.region)}"
    note = ("Difference = partnered minus comparison, in the outcome's units, with the 95% interval in "
            "brackets; Size (SD) puts it in standard deviations. Each row uses the primary method; every "
            "method is in the table of all estimates at the end. " + suppression_note())
    return _html(_table_html(frame, caption, note=note, numeric=("Difference (95% interval)", "Size (SD)"),
                             stack=False))


def overlap_table(data: RegionData, number: int | None = None):
    """Propensity-score overlap of partnered and comparison centres, and any trimming."""
    overlap = data.table("overlap")
    if overlap is None or overlap.empty:
        return _html(_placeholder("Overlap diagnostics are not available for this run "
                                  "(results/overlap.csv was not produced)."))
    row = overlap.iloc[0]
    # every measure compares the arms' centres: none is shown when either arm's cell is small
    small = any(_too_small(group_size(data.groups, arm)[0], [row.get(f"n_centres_{arm.lower()}", math.inf)])
                for arm in ARMS)

    def count(name: str) -> str:
        value = row.get(name)
        return "–" if value is None or pd.isna(value) else f"{int(value)}"

    def share(name: str, digits: int = 2) -> str:
        value = row.get(name)
        return "–" if value is None or pd.isna(value) else format_number(value, digits)

    frame = pd.DataFrame({
        "Measure": ["Propensity score range, partnered centres", "Propensity score range, comparison centres",
                    "Partnered centres above every comparison centre", "Comparison centres below every partnered centre",
                    "Centres trimmed (partnered / comparison)", "Effective number of comparison centres (weighted)",
                    "Largest share of the weight on one comparison centre"],
        "Value": [f"{share('propensity_min_partnered')} to {share('propensity_max_partnered')}",
                  f"{share('propensity_min_comparison')} to {share('propensity_max_comparison')}",
                  count("n_partnered_above_comparison_max"), count("n_comparison_below_partnered_min"),
                  f"{count('n_trimmed_partnered')} / {count('n_trimmed_comparison')}",
                  share("effective_comparison_centres", 1), share("max_comparison_weight_share")],
    })
    if small:
        frame["Value"] = SUPPRESSED
    n = data.next_number("Table", number)
    caption = (f"Table {n}. How alike partnered and comparison centres are in their chance of partnering "
               f"({html.escape(data.region)})")
    note = ("The weighting estimators (IPW, AIPW) compare partnered centres with comparison centres that had a "
            "similar chance of partnering, estimated from setting, registration and fee band. Where few "
            "comparison centres resemble the partnered ones, those estimates rest on a handful of centres."
            + (" " + suppression_note() if small else ""))
    return _html(_table_html(frame, caption, note=note))


def subgroup_table(data: RegionData, number: int | None = None):
    """Estimates for subgroups of children, when the run produced them."""
    frame = subgroup_frame(data.estimates)
    if frame.empty:
        return _html(_placeholder("No subgroup estimates were produced for this region."))
    n = data.next_number("Table", number)
    caption = f"Table {n}. Difference by subgroup of children in {html.escape(data.region)}"
    note = ("Subgroups are smaller than the region, so their intervals are wider; a difference between "
            "subgroups is only clear if tested directly. " + suppression_note())
    return _html(_table_html(frame, caption, note=note))


def estimate_table(data: RegionData, number: int | None = None):
    """Every estimate for the region (primary first), with standard errors, p-values and notes."""
    n = data.next_number("Table", number)
    caption = (f"Table {n}. All estimates of the difference between partnered and comparison centres "
               f"in {html.escape(data.region)} (partnered minus comparison)")
    note = ("Estimates are in the outcome's units (ELOM points unless stated). A positive estimate "
            "means higher scores in partnered centres. " + html.escape(method_key(data.estimates)) + " "
            + suppression_note())
    frame = estimate_frame(data.estimates)
    numeric = [c for c in frame.columns if c not in ("Outcome", "Method", "Note")]
    return _html(_table_html(frame, caption, note=note, numeric=numeric, stack=True))


@_styled
def score_distribution_figure(data: RegionData, number: int | None = None):
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
        return _html(_placeholder("The score distributions are not shown: too few children with an ELOM "
                                  "total in every group."))
    frame = pd.concat(shown, ignore_index=True)
    fig, ax = _new_figure(4.6, 3.0)
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
        alt += f" Suppressed (too few children or centres), not plotted: {', '.join(hidden)}."
    n = data.next_number("Figure", number)
    caption = (f"Figure {n}. ELOM total by group and wave. Boxes span the middle half of children, "
               "the line is the median and whiskers run from the 5th to the 95th percentile "
               "(individual scores are not plotted). Both groups grow between waves because children get older.")
    if hidden:
        caption += (f" Suppressed because too few children or centres, not plotted: "
                    f"{html.escape(', '.join(hidden))}.")
    return _html(_figure_html(fig, alt, caption))


@_styled
def on_track_figure(data: RegionData, number: int | None = None):
    """Bar chart of the share of children On Track, by arm and wave."""
    rows, hidden = [], []
    for arm, wave, group in _groups(data.children):
        banded = group.loc[group["elom_band"].notna()] if "elom_band" in group else group.iloc[0:0]
        if _too_small(len(banded), [banded["centre_id"].nunique()]):
            if len(group):
                hidden.append(f"{arm.lower()} {wave}")
            continue
        rows.append((arm, wave, 100 * float((banded["elom_band"] == ON_TRACK).mean())))
    if not rows:
        return _html(_placeholder("The On Track chart is not shown: too few children with an ELOM band "
                                  "in every group."))
    fig, ax = _new_figure(4.6, 2.7)
    width = 0.38
    for i, arm in enumerate(ARMS):
        for j, wave in enumerate(WAVES):
            match = [p for a, w, p in rows if a == arm and w == wave]
            if not match:
                continue
            x = j + (i - 0.5) * width
            ax.bar(x, match[0], width=width * 0.95, color=PALETTE[arm], label=arm if j == 1 or len(rows) < 3 else None,
                   hatch="//" if arm == "Comparison" else None, edgecolor="white", linewidth=0)
            ax.text(x, match[0] + 1.5, f"{match[0]:.0f}%", ha="center", va="bottom")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), frameon=False, loc="upper left", ncols=2)
    ax.set_xticks(range(len(WAVES)), [w.capitalize() for w in WAVES])
    ax.set_ylim(0, 115)
    ax.set_yticks([0, 25, 50, 75, 100], ["0%", "25%", "50%", "75%", "100%"])
    ax.set_ylabel("Children On Track")
    ax.spines[["top", "right"]].set_visible(False)
    described = "; ".join(f"{arm.lower()} {wave} {pct:.0f}%" for arm, wave, pct in rows)
    n = data.next_number("Figure", number)
    alt = f"Bar chart of the share of children On Track on the ELOM standards in {data.region}: {described}."
    caption = (f"Figure {n}. Children On Track for their age on the ELOM standards, by group and wave "
               "(raw shares, not adjusted for differences between centres).")
    if hidden:
        alt += f" Suppressed (too few children or centres), no bar: {', '.join(hidden)}."
        caption += f" Suppressed because too few children or centres, no bar: {html.escape(', '.join(hidden))}."
    return _html(_figure_html(fig, alt, caption))


def on_track_table(data: RegionData, number: int | None = None):
    """% On Track on the ELOM standards, by arm and wave."""
    n = data.next_number("Table", number)
    caption = f"Table {n}. Children On Track for their age on the ELOM standards, by group and wave"
    note = ("On Track = ELOM total at or above the age-band standard (50–59 and 60–69 months). "
            "These are raw shares, not adjusted for differences between centres. " + suppression_note())
    frame = on_track_frame(data.children)
    return _html(_table_html(frame, caption, note=note, numeric=frame.columns[2:], stack=True))


@_guarded("results/indicators.csv")
def indicators_table(data: RegionData, number: int | None = None):
    """Child indicators by arm and wave, from ``results/indicators.csv``."""
    indicators = data.table("indicators")
    if indicators is None or indicators.empty:
        return _html(_placeholder("The indicator table is not available for this run "
                                  "(results/indicators.csv was not produced)."))
    frame = indicators_frame(indicators)
    n = data.next_number("Table", number)
    caption = f"Table {n}. Child indicators in {html.escape(data.region)}, by group and wave"
    note = "Raw figures, not adjusted for differences between centres. " + suppression_note()
    groups = [("", 1)] + [(arm, len(WAVES)) for arm in ARMS]
    labels = {f"{arm}, {wave}": wave.capitalize() for arm in ARMS for wave in WAVES}
    # "suppressed" is wider than a number: with it, phones get the card layout instead of a grid
    has_suppressed = bool((frame.iloc[:, 1:] == SUPPRESSED).to_numpy().any())
    return _html(_table_html(frame, caption, note=note, numeric=frame.columns[1:], stack=has_suppressed,
                             column_groups=groups, column_labels=labels))


@_guarded("results/satisfaction.csv")
def satisfaction_table(data: RegionData, number: int | None = None):
    """Parents' satisfaction (customer service score and net promoter score) by arm."""
    frame = satisfaction_frame(data.table("satisfaction"), data.groups)
    if frame.empty:
        return _html(_placeholder("Parent satisfaction is not available for this run "
                                  "(results/satisfaction.csv was not produced)."))
    n = data.next_number("Table", number)
    caption = f"Table {n}. What parents said about their centre in {html.escape(data.region)}, by group"
    note = ("Customer service score = share of valid answers that are 4 or 5 on a 1–5 scale (don't know "
            "and not applicable excluded). Net promoter score = % answering 9–10 minus % answering 0–6 "
            f"on a 0–10 scale. n = parents answering; fewer than {min_children_per_cell()} parents, or parents of "
            f"fewer than {min_centres_per_cell()} centres, are suppressed.")
    return _html(_table_html(frame, caption, note=note, numeric=("Partnered", "Comparison")))


@_guarded("results/scorecard.csv")
def scorecard_table(data: RegionData, number: int | None = None):
    """The SCSPR-25 programme scorecard: each metric against its target."""
    frame = scorecard_frame(data.table("scorecard"), data.region, data.groups)
    if frame.empty:
        return _html(_placeholder("The SCSPR-25 scorecard is not available for this run "
                                  "(results/scorecard.csv was not produced)."))
    n = data.next_number("Table", number)
    caption = f"Table {n}. SCSPR-25 customer-service scorecard: value against target"
    note = "Programme monitoring figures, not estimates of effect. “Not yet” means below target."
    return _html(_table_html(frame, caption, note=note, numeric=("Value", "Target"), stack=True))


@_guarded("results/milestones.csv")
@_styled
def milestones_figure(data: RegionData, number: int | None = None):
    """Cumulative partnership MOUs signed against plan, by month."""
    milestones = data.table("milestones")
    if milestones is None or milestones.empty:
        return _html(_placeholder("Partnership milestones are not available for this run "
                                  "(results/milestones.csv was not produced)."))
    frame = milestones.assign(scope=milestones["scope"].astype(str).str.lower())
    regional = frame.loc[frame["scope"] == "region"]
    frame = (regional if not regional.empty else frame.loc[frame["scope"] == "national"]).sort_values("month")
    where = data.region if not regional.empty else "all regions"
    fig, ax = _new_figure(4.6, 2.6)
    month_column = "calendar_month" if "calendar_month" in frame.columns else "month"
    months = frame[month_column].astype(str).tolist()
    steps = np.arange(len(months))
    ax.plot(steps, frame["cumulative_mous"], color=PALETTE["Partnered"], linewidth=2.2, label="Signed")
    if "planned_mous" in frame and frame["planned_mous"].notna().any():
        planned = frame["planned_mous"].notna().to_numpy()
        ax.plot(steps[planned], frame["planned_mous"].to_numpy()[planned], color=_TEXT, linestyle="--",
                marker="s", markersize=6, linewidth=1.2, label="Planned (milestones)")
    ax.set_ylabel("Partnerships (cumulative)")
    ax.legend(frameon=False, loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    step = max(1, math.ceil(len(months) / 4))
    ax.set_xticks(steps[::step], months[::step], rotation=0)
    last = frame.iloc[-1]
    alt = (f"Line chart of partnerships signed in {where}, by month: {format_number(last['cumulative_mous'], 0)} "
           f"signed by {last[month_column]}"
           + (f" against {format_number(last.get('planned_mous'), 0)} planned." if _isnum(last.get("planned_mous")) else "."))
    n = data.next_number("Figure", number)
    caption = f"Figure {n}. Partnership agreements (MOUs) signed in {html.escape(where)}, cumulative, against plan."
    return _html(_figure_html(fig, alt, caption))


@_guarded("results/balance.csv")
def balance_table(data: RegionData, number: int | None = None):
    """Were partnered and comparison children alike at baseline? Means, standardised differences, verdicts."""
    balance = data.table("balance")
    if balance is None or balance.empty:
        return _html(_placeholder("The balance check is not available for this run "
                                  "(results/balance.csv was not produced)."))
    frame = balance_frame(balance, data.groups)
    shown = _compared(balance, data.groups)
    flags = balance["flag"].astype(str).where(shown) if "flag" in balance else pd.Series(dtype=str)
    estimated = data.primary is not None and str(data.primary.get("status")) == "ok"
    adjusts = "the analysis adjusts for them" if estimated else "an analysis would need to adjust for them"
    counts = (f"{int((flags == 'good').sum())} were balanced, "
              f"{int((flags == 'adjust').sum())} differed a little ({adjusts}) and "
              f"{int((flags == 'fails').sum())} differed by more than a quarter of a standard deviation.")
    summary = f"Of {len(balance)} baseline characteristics, " + (counts if shown.all() else (
        f"the comparison of {int((~shown).sum())} is suppressed (fewer than {min_children_per_cell()} children "
        f"or {min_centres_per_cell()} centres in a group)" + (f"; of the other {int(shown.sum())}, {counts}"
                                                              if shown.any() else ".")))
    joint = data.table("balance_joint")
    if joint is not None and not joint.empty and any(cell_is_small(*group_size(data.groups, arm, "baseline"))
                                                     for arm in ARMS):
        summary += " The joint test of all characteristics is suppressed with them."
    elif joint is not None and not joint.empty:
        j = joint.iloc[0]
        if _isnum(j.get("p_value")):
            summary += (f" A joint test of all characteristics gives p = {format_p(j['p_value'])}"
                        + (" (no sign that the groups differ overall)." if float(j["p_value"]) >= 0.05
                           else " (the groups differ overall)."))
        else:
            summary += (" A joint test of all characteristics could not be computed here (too few centres "
                        "for the number of characteristics).")
    n = data.next_number("Table", number)
    caption = f"Table {n}. Baseline characteristics of partnered and comparison children in {html.escape(data.region)}"
    good, fails, (ratio_low, ratio_high) = _balance_cutoffs()
    note = (f"Std. difference = difference in means divided by the pooled standard deviation. Within ±{good}: "
            f"balanced; {good}–{fails}: adjusted for in the analysis; beyond ±{fails}: imbalanced (What Works "
            f"Clearinghouse). Variance ratios should lie between {ratio_low} and {ratio_high}. " + suppression_note())
    return _html(f"<p>{html.escape(summary)}</p>"
                 + _table_html(frame, caption, note=note, numeric=frame.columns[1:5], stack=True))


@_guarded("results/balance.csv")
@_styled
def love_plot(data: RegionData, number: int | None = None):
    """Love plot: absolute standardised difference per characteristic against the balance cut-offs
    (rules: ``estimation.balance``; 0.05 and 0.25 by default)."""
    balance = data.table("balance")
    if balance is None or balance.empty or "smd" not in balance:
        return _html("")
    frame = balance.loc[pd.to_numeric(balance["smd"], errors="coerce").notna()].copy()
    shown = _compared(frame, data.groups)
    hidden, frame = int((~shown).sum()), frame.loc[shown]
    if frame.empty:
        return _html(_placeholder(f"The Love plot is not shown: the comparison of every characteristic is "
                                  f"suppressed (fewer than {min_children_per_cell()} children or "
                                  f"{min_centres_per_cell()} centres in a group).") if hidden else "")
    frame["name"] = [(str(r["label"]) if isinstance(r.get("label"), str) else str(r["variable"]))
                     + (f": {r['level']}" if isinstance(r.get("level"), str) and r["level"].strip() else "")
                     for r in _records(frame)]
    frame["abs_smd"] = frame["smd"].astype(float).abs()
    frame = frame.sort_values("abs_smd")
    fig, ax = _new_figure(4.6, 1.3 + 0.3 * len(frame))
    ys = np.arange(len(frame))
    styles = {"good": ("o", "#0072B2", "balanced"), "adjust": ("^", "#E69F00", "adjusted for"),
              "fails": ("s", "#D55E00", "imbalanced")}
    for flag, (marker, colour, label) in styles.items():
        mask = (frame["flag"].astype(str) == flag).to_numpy() if "flag" in frame else np.zeros(len(frame), bool)
        if mask.any():
            ax.scatter(frame["abs_smd"].to_numpy()[mask], ys[mask], marker=marker, color=colour, s=42,
                       label=label, zorder=3)
    rules = estimation_rules().balance
    good, fails = float(rules.smd_good), float(rules.smd_fails)
    good_text, fails_text = format_number(good, 2), format_number(fails, 2)
    for limit, style in ((good, ":"), (fails, "--")):
        ax.axvline(limit, color=_MUTED, linestyle=style, linewidth=1)
    ax.set_yticks(ys, frame["name"])
    ax.set_xlabel("Absolute standardised difference (SD)")
    ax.set_xlim(0, max(0.3, float(frame["abs_smd"].max()) * 1.1))
    fig.legend(frameon=False, loc="outside lower center", ncols=3)
    ax.spines[["top", "right"]].set_visible(False)
    worst = frame.iloc[-1]
    alt = (f"Love plot of baseline balance in {data.region}: {len(frame)} characteristics; the largest "
           f"standardised difference is {worst['name']} at {format_number(worst['abs_smd'], 2)} SD; "
           f"{int((frame['abs_smd'] > fails).sum())} lie beyond {format_number(fails, 2)} SD.")
    n = data.next_number("Figure", number)
    caption = (f"Figure {n}. Baseline balance (Love plot). Each mark is one characteristic; the dotted line "
               f"is {good_text} SD and the dashed line {fails_text} SD. Marks right of the dashed line are imbalanced.")
    if hidden:
        alt += f" {hidden} more are suppressed (too few children or centres in a group) and not plotted."
        caption += f" {hidden} characteristics are suppressed (too few children or centres in a group) and not plotted."
    return _html(_figure_html(fig, alt, caption))


def sample_size_table(data: RegionData, number: int | None = None):
    """Children and centres assessed, by arm and wave."""
    n = data.next_number("Table", number)
    caption = f"Table {n}. Children and centres assessed in {html.escape(data.region)}"
    row = data.primary
    in_model = ""
    if effect_direction(row) is not None:
        in_model = (f"{suppress_count(row['n_children'])} children with both assessments are in the "
                    "effect estimate. ")
    frame = sample_size_frame(data.children)
    return _html(_table_html(frame, caption, note=in_model + suppression_note(), numeric=frame.columns[2:],
                             stack=True))


def rows_kept_table(data: RegionData, number: int | None = None):
    """Rows read, kept and dropped per input table, and the reasons rows were dropped."""
    kept = rows_kept_frame(data.manifest)
    if kept.empty:
        return _html(_placeholder("Row counts are not available: the run manifest has no row accounting."))
    n = data.next_number("Table", number)
    out = _table_html(kept, f"Table {n}. Rows read, kept and dropped, by input table (all regions)",
                      numeric=("Rows read", "Kept", "Dropped"), stack=False)
    reasons = dropped_by_reason_frame(data.manifest)
    if reasons.empty:
        return _html(out + "<p>No rows were dropped.</p>")
    n = data.next_number("Table", None)
    out += _table_html(reasons, f"Table {n}. Why rows were dropped (all regions)", numeric=("Rows dropped",),
                       note="Counts from 1 to 9 are shown as “&lt;10”. Every dropped row is listed with its "
                            "rule in cleaning_log.csv for the evaluation team.", stack=False)
    return _html(out)


def data_quality_table(data: RegionData, number: int | None = None):
    """Values changed, flagged and dropped by cleaning rule (the whole run)."""
    summary_table = data.table("data_quality")
    if summary_table is None and data.cleaning_log is None:
        return _html(_placeholder("No cleaning log was found for this run, so data-quality counts are not "
                                  "available."))
    if summary_table is not None:
        totals = summary_table.groupby(summary_table["action"].astype(str).str.lower())["n_rows"].sum()
        frame = data_quality_summary_frame(summary_table)
    else:
        totals = data.cleaning_log["action"].str.lower().value_counts()
        frame = data_quality_frame(data.cleaning_log)
    summary = (f"Across all regions, cleaning changed {format_number(totals.get('changed', 0), 0)}, flagged "
               f"{format_number(totals.get('flagged', 0), 0)} and dropped {format_number(totals.get('dropped', 0), 0)} "
               "records or values "
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
    if frame.empty:
        return _html(f"<p>{summary}{region_line}</p>")
    n = data.next_number("Table", number)
    caption = f"Table {n}. Records changed, flagged or dropped by cleaning rule (all regions)"
    note = (f"The {len(frame)} most frequent rules are shown. Counts from 1 to 9 are shown as “&lt;10”; "
            "“–” means none. Record identifiers and values are never shown.")
    return _html(f"<p>{summary}{region_line}</p>"
                 + _table_html(frame, caption, note=note, numeric=("Changed", "Flagged", "Dropped"), stack=True))


def methods(data: RegionData):
    """Methods section, from the primary row and the run's parameters."""
    return _html("".join(f"<p>{p}</p>" for p in methods_paragraphs(data)))


def limitations(data: RegionData):
    """Limitations that apply to this region."""
    return _html("<ul>" + "".join(f"<li>{item}</li>" for item in limitations_list(data)) + "</ul>")


def reproducibility_stamp(data: RegionData, number: int | None = None):
    """evalkit version, input hashes, parameters and dates, from the run manifest."""
    version = evalkit_version()
    manifest = data.manifest
    if manifest is None:
        return _html(_placeholder("No run manifest was found, so this report cannot be traced to its inputs. "
                                  f"Report built with evalkit {html.escape(version)} on "
                                  f"{html.escape(data.built_at)}."))
    esc = lambda v: html.escape(str(v))  # noqa: E731
    params = {k: v for k, v in (manifest.get("parameters", {}) or {}).items()
              if k not in ("data_dir", "output_dir", "processed_dir")}  # machine paths say nothing to readers
    inputs = manifest.get("inputs", {}) or {}
    packages = manifest.get("packages", {}) or {}
    present = [name for name in RESULT_TABLES if data.table(name) is not None]
    rows = [
        ("evalkit version (run)", esc(manifest.get("evalkit_version", "unknown"))),
        ("evalkit version (report)", esc(version)),
        ("Run started", esc(manifest.get("started_at", "unknown"))),
        ("Report built", esc(data.built_at)),
        ("Region", esc(data.region)),
        ("Run parameters", "<br>".join(f"{esc(k)} = <code>{esc(v)}</code>" for k, v in params.items())
         or DASH),
        ("Results tables used", ", ".join(["estimates", *present])),
        ("Input files (SHA-256)", "<br>".join(
            f"{esc(name)}: <code class=\"ek-hash\">{esc((info or {}).get('sha256', '?'))}</code>"
            for name, info in inputs.items()) or DASH),
        ("Packages", ", ".join(f"{esc(k)} {esc(v)}" for k, v in packages.items()) or DASH),
    ]
    body = "".join(f'<tr><th scope="row">{k}</th><td>{v}</td></tr>' for k, v in rows)
    n = data.next_number("Table", number)
    return _html(f'<div class="ek-table-wrap"><table class="ek-table ek-stamp"><caption>Table {n}. '
                 f"Reproducibility stamp</caption><tbody>{body}</tbody></table></div>"
                 '<p class="ek-note">Re-running evalkit with the same inputs (same hashes), parameters '
                 "and package versions reproduces every number in this report.</p>")
