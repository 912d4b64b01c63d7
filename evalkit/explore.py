"""The evaluator's workbench behind ``notebooks/explore.ipynb``.

:func:`open_workbench` loads a finished run (``reports/`` by default) or, when
there is none, prepares the data in memory from ``data/raw/``. :func:`explorer`
returns ipywidgets controls — region, outcome, subgroup — that redraw three
views: the outcome's distribution by group and wave, baseline balance, and the
estimates. :func:`show` draws the same views without widgets, so the notebook
has real output when it runs top to bottom (nbval, a printed copy).

Every function returns something a notebook cell displays; the notebook itself
defines nothing. The views keep the reports' small-cell rule
(:func:`evalkit.disclosure.cell_is_small`): a group of fewer than 10 children or 3 centres
has no box, and its statistics (and the differences and estimates that rest on it) show
"suppressed". ``child_id`` is replaced by a meaningless number on loading
(the two waves of a child still pair up), so no view can show a real id.
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import reporting
from .disclosure import SUPPRESSED, cell_is_small, group_sizes, shown_count, suppressed_results
from .errors import InputError
from .study import find_study, user_path

__all__ = [
    "SUBGROUPS",
    "OUTCOMES",
    "Workbench",
    "open_workbench",
    "subgroup_mask",
    "baseline_balance",
    "region_estimates",
    "distribution_view",
    "balance_view",
    "estimates_view",
    "show",
    "explorer",
]

#: Subgroups offered in the explorer: label → (column, value); None = every child.
SUBGROUPS: dict[str, tuple[str, Any] | None] = {
    "all children": None,
    "girls": ("sex", "female"),
    "boys": ("sex", "male"),
    "urban centres": ("setting", "urban"),
    "peri-urban centres": ("setting", "peri-urban"),
    "rural centres": ("setting", "rural"),
}
#: Outcomes offered when the prepared data has them, in this order.
OUTCOMES = ("elom_total", "elom_gmd", "elom_fmc", "elom_enm", "elom_cef", "elom_ell", "haz", "waz", "whz",
            "baz", "attendance_rate")
_BALANCE_NUMERIC = {"elom_total": "Baseline ELOM total", "age_months": "Age (months)", "haz": "Height-for-age z"}
_BALANCE_SHARES = {("sex", "female"): "Girls (share)", ("setting", "urban"): "Urban (share)",
                   ("setting", "rural"): "Rural (share)"}


@dataclass
class Workbench:
    """Prepared data for exploring.

    Attributes
    ----------
    children : DataFrame
        One row per child per wave, with ``arm``; ``child_id`` is a meaningless number.
    estimates : DataFrame
        ``results/estimates.csv`` (or the estimates just computed).
    balance : DataFrame or None
        ``results/balance.csv`` when the run wrote it.
    indicators : DataFrame or None
        ``results/indicators.csv`` (or computed).
    source : str
        Where the data came from, in words.
    """

    children: pd.DataFrame
    estimates: pd.DataFrame
    balance: pd.DataFrame | None = None
    indicators: pd.DataFrame | None = None
    source: str = ""
    regions: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.regions:
            self.regions = sorted(self.children["region"].dropna().astype(str).unique())

    @property
    def outcomes(self) -> list[str]:
        """Outcomes present in the child data."""
        return [o for o in OUTCOMES if o in self.children.columns and self.children[o].notna().any()]

    def _repr_html_(self) -> str:
        n_children = self.children.loc[self.children["wave"] == "baseline"].shape[0]
        return (f"<p><strong>evalkit workbench</strong> — {html.escape(self.source)}. "
                f"{len(self.regions)} regions, {n_children:,} baseline assessments, "
                f"{len(self.estimates):,} estimate rows; outcomes: {html.escape(', '.join(self.outcomes))}.</p>")


def _with_arm(children: pd.DataFrame) -> pd.DataFrame:
    """Add ``arm``; replace ``child_id`` by a meaningless number (waves still pair up, no real id shows)."""
    children = children.drop(columns=[c for c in ("child_name",) if c in children.columns])
    if "child_id" in children.columns:
        children = children.assign(child_id=pd.factorize(children["child_id"])[0])
    return children.assign(arm=children["is_partnered"].map({True: "Partnered", False: "Comparison"}))


def open_workbench(output_dir: str | Path | None = None, processed_dir: str | Path | None = None,
                   data_dir: str | Path | None = None) -> Workbench:
    """A finished run's data, or a raw data folder prepared in memory.

    Relative paths are taken from the working directory; what is not given comes from the
    study folder (the folder holding ``evalkit.yml``, searched upward from the working
    directory, else the working directory itself).

    Parameters
    ----------
    output_dir : path, optional
        A finished run's output folder (``results/estimates.csv`` and the processed
        ``child_outcomes.parquet``). Default: the study's ``reports/`` when it holds a
        finished run, else the study's raw data is prepared (see ``data_dir``).
    processed_dir : path, optional
        Folder with ``child_outcomes.parquet``; default ``<output_dir>/processed``, and
        ``data/processed/`` for the study's default output folder.
    data_dir : path, optional
        A raw data folder to prepare in memory (a few seconds) instead of reading a run;
        default the study's ``data/raw/`` when there is no finished run.

    Raises
    ------
    InputError
        When a folder given (or the study's raw data folder, when it is needed) does not
        exist or holds no finished run: never a silent fallback to other data.
    """
    if data_dir is None:
        layout = reporting.run_layout(output_dir, processed_dir)
        finished = layout.estimates.is_file() and layout.child_outcomes.is_file()
        if finished:
            return Workbench(children=_with_arm(pd.read_parquet(layout.child_outcomes)),
                             estimates=pd.read_csv(layout.estimates),
                             balance=reporting.read_results_table(layout.output_dir, "balance"),
                             indicators=reporting.read_results_table(layout.output_dir, "indicators"),
                             source=f"finished run in {layout.output_dir}")
        if output_dir is not None or processed_dir is not None:
            what = (layout.estimates if not layout.estimates.is_file() else layout.child_outcomes)
            problem = ("is not a folder" if not layout.output_dir.is_dir() else
                       f"holds no finished run ({what.name} not found: {what})")
            raise InputError(layout.output_dir, problem)
    from .pipeline import prepare

    raw = user_path(data_dir) if data_dir is not None else find_study().data_dir
    if not raw.is_dir():
        raise InputError(raw, "data folder does not exist (and there is no finished run to read)")
    prepared = prepare(raw)
    return Workbench(children=_with_arm(prepared.child_outcomes), estimates=prepared.estimates,
                     balance=getattr(prepared, "balance", None), indicators=prepared.indicators,
                     source=f"prepared just now from {raw}")


def subgroup_mask(children: pd.DataFrame, subgroup: str) -> pd.Series:
    """Rows of ``children`` in the named subgroup (see :data:`SUBGROUPS`)."""
    if subgroup not in SUBGROUPS:
        raise ValueError(f"unknown subgroup {subgroup!r}; choose from {', '.join(SUBGROUPS)}")
    rule = SUBGROUPS[subgroup]
    if rule is None:
        return pd.Series(True, index=children.index)
    column, value = rule
    if column not in children.columns:
        return pd.Series(False, index=children.index)
    return children[column].astype(str) == value


def _smd(partnered: pd.Series, comparison: pd.Series) -> float:
    """(m1 − m2) / √(½(v1 + v2)): the normalised difference with the pooled SD."""
    pooled = np.sqrt((partnered.var(ddof=1) + comparison.var(ddof=1)) / 2)
    return float((partnered.mean() - comparison.mean()) / pooled) if pooled > 0 else np.nan


def baseline_balance(children: pd.DataFrame) -> pd.DataFrame:
    """Baseline means by arm and standardised differences, computed from the children given.

    Returns one row per characteristic: ``characteristic, n_partnered,
    n_comparison, mean_partnered, mean_comparison, smd, flag`` with the What
    Works Clearinghouse verdicts (|SMD| ≤ 0.05 good, ≤ 0.25 adjust, else fails).
    """
    baseline = children.loc[children["wave"] == "baseline"]
    part, comp = baseline.loc[baseline["arm"] == "Partnered"], baseline.loc[baseline["arm"] == "Comparison"]
    rows = []
    for column, label in _BALANCE_NUMERIC.items():
        if column in baseline.columns:
            a, b = part[column].dropna(), comp[column].dropna()
            rows.append((label, len(a), len(b), a.mean(), b.mean(), _smd(a, b)))
    for (column, value), label in _BALANCE_SHARES.items():
        if column in baseline.columns:
            a = (part[column].dropna().astype(str) == value).astype(float)
            b = (comp[column].dropna().astype(str) == value).astype(float)
            rows.append((label, len(a), len(b), a.mean(), b.mean(), _smd(a, b)))
    frame = pd.DataFrame(rows, columns=["characteristic", "n_partnered", "n_comparison", "mean_partnered",
                                        "mean_comparison", "smd"])
    size = frame["smd"].abs()
    frame["flag"] = np.select([size <= 0.05, size <= 0.25], ["good", "adjust"], "fails")
    frame.loc[size.isna(), "flag"] = ""
    return frame


def _check(bench: Workbench, region: str, outcome: str | None = None, *, estimated: bool = False) -> None:
    """:class:`~evalkit.errors.ChoiceError` for a region or outcome the workbench does not have:
    the children's (by estimation's rules), with ``estimated`` also the estimates'."""
    from .estimation import check_arguments

    def listed(column: str):
        return bench.estimates[column].dropna().astype(str).unique() if estimated else ()

    check_arguments(bench.children, region=region, outcome=outcome, extra_regions=listed("region"),
                     extra_outcomes=listed("outcome"))


def region_estimates(bench: Workbench, region: str, outcome: str, subgroup: str = "all children") -> pd.DataFrame:
    """The region's estimates for one outcome (and subgroup).

    Whole-region rows come from the run. For a subgroup the run did not
    estimate, an ANCOVA (CR1 and CR2) is computed here on that subgroup's
    children, marked ``computed here`` in ``note``.
    """
    _check(bench, region, outcome, estimated=True)
    estimates = bench.estimates
    rows = estimates.loc[(estimates["region"].astype(str) == region) & (estimates["outcome"].astype(str) == outcome)]
    whole = reporting.is_whole_region(rows)
    if subgroup == "all children":
        return rows.loc[whole].reset_index(drop=True)
    if "subgroup" in rows.columns:
        listed = rows.loc[rows["subgroup"].astype(str) == subgroup]
        if not listed.empty:
            return listed.reset_index(drop=True)
    from .estimation import estimate_ancova

    children = bench.children.loc[subgroup_mask(bench.children, subgroup)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        live = estimate_ancova(children, region, outcome=outcome, inference=["CR1", "CR2"]).tidy()
    live["subgroup"] = subgroup
    live["note"] = [f"{note} (computed here)" if isinstance(note, str) and note else "computed here"
                    for note in live["note"]]
    return live


def _h(text: str) -> str:
    return f"<h3>{html.escape(text)}</h3>"


def distribution_view(bench: Workbench, region: str, outcome: str, subgroup: str = "all children"):
    """Box plots of the outcome by group and wave, with the counts and means behind them."""
    _check(bench, region, outcome)
    from IPython.display import HTML
    from matplotlib.figure import Figure

    children = bench.children
    chosen = children.loc[(children["region"].astype(str) == region) & subgroup_mask(children, subgroup)
                          & children[outcome].notna()]
    if chosen.empty:
        return HTML(f"<p>No {html.escape(outcome)} values for {html.escape(subgroup)} in {html.escape(region)}.</p>")
    fig = Figure(figsize=(6.4, 3.4), layout="constrained")
    ax = fig.subplots()
    positions, data, colours, labels, hidden = [], [], [], [], []
    for j, wave in enumerate(reporting.WAVES):
        for i, arm in enumerate(reporting.ARMS):
            group = chosen.loc[(chosen["arm"] == arm) & (chosen["wave"] == wave)]
            values = group[outcome].to_numpy()
            if len(values) and cell_is_small(len(values), group["centre_id"].nunique()):
                hidden.append(f"{arm.lower()} {wave}")
            elif len(values):
                positions.append(j + (i - 0.5) * 0.36)
                data.append(values)
                colours.append(reporting.PALETTE[arm])
                labels.append(arm)
    alt = f"Box plots of {outcome} by group and wave in {region} ({subgroup})"
    if hidden:
        alt += f"; suppressed (too few children or centres), no box: {', '.join(hidden)}"
    if data:
        boxes = ax.boxplot(data, positions=positions, widths=0.32, patch_artist=True, showfliers=False,
                           whis=(5, 95), medianprops={"color": "black"})
        for patch, colour in zip(boxes["boxes"], colours):
            patch.set_facecolor(colour)
        ax.set_xticks(range(len(reporting.WAVES)), [w.capitalize() for w in reporting.WAVES])
        ax.set_ylabel(reporting._outcome_label(outcome))
        ax.set_title(f"{region} — {subgroup}", loc="left", fontsize=10)
        handles = [boxes["boxes"][labels.index(a)] for a in reporting.ARMS if a in labels]
        ax.legend(handles, [a for a in reporting.ARMS if a in labels], frameon=False, loc="upper left")
        ax.spines[["top", "right"]].set_visible(False)
        picture = reporting._figure_html(fig, alt, "")
    else:
        picture = f"<p>No box: every group is suppressed (too few children or centres): {', '.join(hidden)}.</p>"
    summary = (chosen.groupby(["arm", "wave"]).agg(n=(outcome, "count"), centres=("centre_id", "nunique"),
                                                   mean=(outcome, "mean"), std=(outcome, "std"),
                                                   median=(outcome, "median")).round(2).reset_index())
    small = [cell_is_small(n, c) for n, c in zip(summary["n"], summary["centres"])]
    for column in ("mean", "std", "median"):
        summary[column] = summary[column].astype(object).where(~pd.Series(small, index=summary.index), SUPPRESSED)
    summary["n"] = summary["n"].map(shown_count)
    summary["centres"] = summary["centres"].map(lambda n: shown_count(n, "centres"))
    return HTML(_h(f"Distribution of {reporting._outcome_label(outcome)}") + picture
                + summary.to_html(index=False, classes="ek-table"))


def balance_view(bench: Workbench, region: str, subgroup: str = "all children"):
    """Baseline balance for the region and subgroup (the run's table too, for the whole region)."""
    _check(bench, region)
    from IPython.display import HTML

    children = bench.children.loc[(bench.children["region"].astype(str) == region)
                                  & subgroup_mask(bench.children, subgroup)]
    groups = group_sizes(children) if len(children) else None
    computed = suppressed_results("balance", baseline_balance(children).round(3), groups)
    out = _h(f"Baseline balance — {subgroup}") + computed.to_html(index=False, classes="ek-table")
    if subgroup == "all children" and bench.balance is not None:
        run = bench.balance.loc[bench.balance["region"].astype(str) == region]
        if not run.empty:
            keep = [c for c in ("region", "label", "level", "n_partnered", "n_comparison", "smd", "variance_ratio",
                                "p_adjusted", "flag") if c in run.columns]
            run = suppressed_results("balance", run[keep].round(3), groups)
            out += "<p>The run's balance table (results/balance.csv):</p>" + run.drop(
                columns=["region"], errors="ignore").to_html(index=False, classes="ek-table")
    return HTML(out + "<p>|SMD| ≤ 0.05 good, ≤ 0.25 adjust, beyond fails (What Works Clearinghouse).</p>")


def estimates_view(bench: Workbench, region: str, outcome: str, subgroup: str = "all children"):
    """The estimates as a forest plot and a table."""
    from IPython.display import HTML

    rows = region_estimates(bench, region, outcome, subgroup)
    if rows.empty:
        return HTML(f"<p>No estimates of {html.escape(outcome)} for {html.escape(region)}.</p>")
    forest = reporting._forest_rows(rows)
    svg = reporting.forest_svg(forest, unit=reporting._outcome_unit(outcome) or "units",
                               label=f"Estimates of {outcome} in {region} ({subgroup})")
    columns = [c for c in ("estimator", "inference", "subgroup", "estimate", "ci_low", "ci_high", "p_value",
                           "effect_size_sd", "n_children", "n_centres_partnered", "n_centres_comparison",
                           "status", "note") if c in rows.columns]
    table = suppressed_results("estimates", rows[columns].round(3))
    return HTML(_h(f"Estimates — {subgroup}") + f'<div style="max-width:34rem">{svg}</div>'
                + table.to_html(index=False, classes="ek-table", na_rep=""))


def show(bench: Workbench, region: str | None = None, outcome: str = "elom_total", subgroup: str = "all children"):
    """All three views for one choice, without widgets."""
    from IPython.display import HTML

    region = region or bench.regions[0]
    parts = [distribution_view(bench, region, outcome, subgroup), balance_view(bench, region, subgroup),
             estimates_view(bench, region, outcome, subgroup)]
    return HTML(f"<h2>{html.escape(region)} · {html.escape(outcome)} · {html.escape(subgroup)}</h2>"
                + "".join(p.data for p in parts))


def explorer(bench: Workbench):
    """Dropdowns for region, outcome and subgroup that redraw :func:`show` below them."""
    import ipywidgets as widgets
    from IPython.display import display

    region = widgets.Dropdown(options=bench.regions, value=bench.regions[0], description="Region")
    outcome = widgets.Dropdown(options=bench.outcomes, value=bench.outcomes[0], description="Outcome")
    subgroup = widgets.Dropdown(options=list(SUBGROUPS), value="all children", description="Subgroup")
    output = widgets.Output()

    def redraw(*_):
        output.clear_output(wait=True)
        with output:
            display(show(bench, region.value, outcome.value, subgroup.value))

    for control in (region, outcome, subgroup):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([region, outcome, subgroup]), output])
