"""Board briefs: a short PDF per region, and one for all regions, for a funder's board.

``<output_dir>/briefs/<region-slug>.pdf`` and ``<output_dir>/briefs/national.pdf``: A4, two to four
pages for a region with an estimate (one page for a region that could not be estimated), in plain
language. A region's brief leads with its finding sentence and how sure it is, a picture of the
95% interval, who was assessed, the key indicators and the programme scorecard, and the caveats
that must travel with the result; a region that could not be estimated gets the reason and what
data would make an estimate possible. The national brief has the pooled result (the estimates'
``National`` rows) and every region's headline in one table. Every page carries its number
("Page 2 of 3"), the run's date and the data version (the input files' SHA-256 from
``run_manifest.json``, shortened).

The conclusion is :func:`evalkit.reporting.finding`'s (the one place that decides each region's
sentence, certainty and reading, as on the index and the region's page); the tables are
:mod:`evalkit.reporting`'s and the small-cell rule :mod:`evalkit.disclosure`'s (with the groups
of ``results/indicators.csv``, as the downloads), so a cell suppressed on a region's page is
suppressed in its brief.

The page is HTML (``templates/brief.html.j2``, stylesheet inline, no network) printed by
WeasyPrint, which implements CSS paged media: page counters in the margins, headings kept with
what follows them, tables and figures kept whole.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from . import disclosure, reporting
from .config import NATIONAL
from .ruleset import estimation_rules
from .study import RunLayout, package_templates_dir

__all__ = ["BRIEFS_DIR", "NATIONAL_SLUG", "BriefResult", "PrinterUnavailable", "brief_html", "brief_path",
           "data_version", "planned_briefs", "write_brief", "write_briefs"]

#: The briefs' folder inside a run's output folder.
BRIEFS_DIR = "briefs"
#: File name (without ``.pdf``) of the brief for all regions.
NATIONAL_SLUG = "national"
TEMPLATE = "brief.html.j2"
#: Hex digits of each input file's SHA-256 shown as the data version.
HASH_DIGITS = 8


@dataclass(frozen=True)
class BriefResult:
    """What happened to one brief.

    Attributes
    ----------
    region : str
        The region's canonical name, or ``National`` for the brief for all regions.
    path : str
        The PDF relative to the output folder (``briefs/<slug>.pdf``).
    ok : bool
        False when the brief could not be written (``reason`` says why).
    reason : str
        Plain-language reason for a failure; empty when ``ok``.
    pages, seconds : int, float
        Pages written (0 on failure) and wall time.
    """

    region: str
    path: str
    ok: bool
    reason: str
    pages: int
    seconds: float


def brief_path(slug: str) -> str:
    """``briefs/<slug>.pdf``: where a brief goes, relative to the output folder."""
    return f"{BRIEFS_DIR}/{slug}.pdf"


# --------------------------------------------------------------------------- what a brief says

def _manifest(output_dir: Path) -> dict:
    path = RunLayout.of(output_dir).manifest
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def data_version(manifest: Mapping) -> list[tuple[str, str]]:
    """The input files and their shortened SHA-256 (``[("centres.csv", "345334fb"), ...]``)."""
    inputs = manifest.get("inputs") or {}
    return [(name, str((info or {}).get("sha256", ""))[:HASH_DIGITS] or reporting.DASH)
            for name, info in inputs.items()]


def _run_date(manifest: Mapping) -> str:
    started = str(manifest.get("started_at") or "")
    return started[:10] if len(started) >= 10 else datetime.now(timezone.utc).strftime("%Y-%m-%d")


def _frame(table: pd.DataFrame, *, grouped: bool = False) -> dict[str, Any]:
    """A display table as the template draws it: column names and rows of text.

    ``grouped``: columns named ``"<group>, <name>"`` (after the first) get a header row of
    their groups above their names (``Partnered`` over ``baseline`` and ``endline``).
    """
    def text(value: Any) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        return reporting.localise(str(value)) if isinstance(value, float) else str(value)

    columns = [str(c) for c in table.columns]
    labels, groups = columns, []
    if grouped and len(columns) > 1 and all(", " in c for c in columns[1:]):
        split = [c.split(", ", 1) for c in columns[1:]]
        labels = [columns[0]] + [name.capitalize() for _, name in split]
        groups = [("", 1)]
        for group, _ in split:
            if groups[-1][0] == group:
                groups[-1] = (group, groups[-1][1] + 1)
            else:
                groups.append((group, 1))
    return {"columns": columns, "labels": labels, "groups": groups,
            "rows": [[text(v) for v in values] for values in table.values.tolist()]}


def _assessed(indicators: pd.DataFrame | None) -> pd.DataFrame:
    """Children and centres assessed by group and wave (``results/indicators.csv``), small cells hidden
    (:func:`evalkit.reporting.suppress_small_cells`); one row per group, ``"<wave>, children"`` columns."""
    rows = []
    for arm in reporting.ARMS:
        for wave in reporting.WAVES:
            match = (indicators.loc[(indicators["arm"].astype(str).str.capitalize() == arm)
                                    & (indicators["wave"].astype(str).str.lower() == wave)]
                     if indicators is not None and not indicators.empty else pd.DataFrame())
            first = match.iloc[0] if not match.empty else {}
            rows.append({"Group": arm, "wave": wave, "children": first.get("n_children", 0),
                         "centres": first.get("n_centres", 0)})
    shown = reporting.suppress_small_cells(pd.DataFrame(rows), children="children", centres="centres")
    wide = {arm: {"Group": arm} for arm in reporting.ARMS}
    for row in shown.to_dict("records"):
        wave = row["wave"].capitalize()
        wide[row["Group"]].update({f"{wave}, children": row["children"], f"{wave}, centres": row["centres"]})
    return pd.DataFrame(list(wide.values()))


def _number(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(number) else number


def _assessed_sentence(row: pd.Series | None, estimated: bool) -> str:
    """How many children (and, for an estimate, centres) the result rests on; counts suppressed as in tables."""
    count = reporting.suppress_count
    n = None if row is None else _number(row.get("n_children"))
    if n is None:
        return ""
    if not estimated:
        return f"{count(n)} children were assessed at both baseline and endline."
    part, comp = _number(row.get("n_centres_partnered")), _number(row.get("n_centres_comparison"))
    where = ""
    if part is not None and comp is not None:
        centres = reporting.min_centres_per_cell()
        where = f", in {count(part, centres)} partnered and {count(comp, centres)} comparison centres"
    return f"The estimate compares {count(n)} children assessed at both baseline and endline{where}."


def _finding(estimates: pd.DataFrame, region: str) -> dict[str, Any]:
    """The region's conclusion as :func:`evalkit.reporting.finding` decides it (the same sentence,
    certainty and reading as the index and the region's page), with its primary row."""
    estimates = reporting.in_display_units(estimates)
    found = dict(reporting.finding(estimates, region))
    found["row"] = reporting.primary_row(estimates, region) if "region" in estimates else None
    if region == NATIONAL:  # the sentences name the pooled result as the index does
        found.update(reporting.headline_parts(found["row"], "all regions combined", found["checks"]))
    interval = found["interval"]
    found.update(interval=interval[:1].upper() + interval[1:], estimated=bool(interval))
    return found


def _figure(row: pd.Series) -> str:
    unit = reporting._outcome_unit(str(row.get("outcome", "elom_total"))) or "units"
    return reporting.interval_svg(float(row["estimate"]), float(row["ci_low"]), float(row["ci_high"]), unit=unit)


def _caveats(found: dict[str, Any], output_dir: Path, region: str, groups: pd.DataFrame | None) -> list[str]:
    """The sentences that must travel with the result, plain text (``groups``: the region's arm × wave
    sizes, :func:`evalkit.disclosure.groups_from_indicators`)."""
    items = list(found["caveats"])
    if found["estimated"]:
        items.append("Only children assessed at both baseline and endline are in the estimate; children "
                     "who left or missed one assessment are not represented.")
        balance = reporting.read_results_table(output_dir, "balance", region)
        if balance is not None and "flag" in balance.columns:
            shown = ~pd.Series(disclosure.balance_cells(balance, groups)["either"], index=balance.index, dtype=bool)
            failing = balance.loc[shown & (balance["flag"].astype(str) == "fails")]  # as the report names them
            labels = failing["label"] if "label" in failing.columns else failing["variable"]
            names = list(dict.fromkeys(str(label).split(":")[0].strip() for label in labels))
            if names:
                shown = names if len(names) <= 4 else names[:3] + [f"{len(names) - 3} more"]
                listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
                items.append("Partnered and comparison centres and children already differed at the start, by "
                             f"more than a quarter of a standard deviation, on {listed}. The adjustment cannot "
                             "fully remove differences this large.")
        if found["level"] == "unclear":
            power = reporting.power_sentence(reporting.read_results_table(output_dir, "power", region))
            if power:
                items.append(power)
    else:
        items.append("No effect was estimated, so the figures in this brief describe the children assessed, "
                     "not what partnership did.")
    items.append("The ELOM 4&5 is designed for children aged 50–69 months and for reporting on groups, "
                 "not on individual children.")
    return items


def _needed() -> list[str]:
    """What data would make an estimate possible, for a region that has none."""
    k = estimation_rules().thresholds.min_centres_per_arm
    return [f"At least {k} partnered and {k} comparison centres with children assessed at both baseline "
            "and endline.",
            "Every child assessed on all five ELOM domains at both assessments, so that the total score "
            "can be worked out.",
            "Each centre's partnership (its MOU and the date it was signed) recorded, so that every centre "
            "can be counted as partnered or comparison."]


def _regions_table(estimates: pd.DataFrame, regions: Iterable[str]) -> pd.DataFrame:
    """Every region's headline on one line: what was found, the difference, children, how sure."""
    rows = []
    for region in regions:
        found = _finding(estimates, region)
        result = reporting.short_result(found["row"], found["checks"])
        if found["row"] is None or str(found["row"].get("status")) != "ok":
            reading = "Not estimable"
        else:
            reading = found["reading"].capitalize() if found["reading"] else "Not published (too few)"
        difference = (f"{result['estimate']} ({result['interval']})" if result["interval"] != reporting.DASH
                      else result["estimate"])
        rows.append({"Region": region, "What we found": reading, "Difference (95% interval)": difference,
                     "Children": result["n_children"],
                     "How sure": found["certainty"] if found["reading"] else reporting.DASH})
    return pd.DataFrame(rows, columns=["Region", "What we found", "Difference (95% interval)",
                                       "Children", "How sure"])


def _chance_note(estimates: pd.DataFrame, regions: list[str]) -> str:
    usable = sum(reporting.effect_direction(reporting.primary_row(estimates, r)) is not None for r in regions)
    if usable < 3:
        return ""
    return (f"Each region is estimated separately: among {usable} estimates, one clear result can turn up by "
            "chance alone, so a pattern across regions says more than any single region.")


def _context(output_dir: Path, region: str, slug: str, estimates: pd.DataFrame, manifest: Mapping,
             regions: list[str] | None) -> dict[str, Any]:
    national = region == NATIONAL
    found = _finding(estimates, region)
    row = found["row"]
    context: dict[str, Any] = dict(
        kind="national" if national else ("region" if found["estimated"] else "not_estimable"),
        region="All regions" if national else region, found=found,
        figure=_figure(row) if found["estimated"] else "",
        assessed_sentence=_assessed_sentence(row, found["estimated"]),
        report_title=reporting.report_names()["title"], names=reporting.report_names(),
        run_date=_run_date(manifest), data_version=data_version(manifest),
        version=reporting.evalkit_version(), hash_digits=HASH_DIGITS,
        suppression=reporting.suppression_note().replace("&lt;", "<"),
        slug=slug, tables={}, needed=[])
    if national:
        regions = list(regions if regions is not None else
                       dict.fromkeys(r for r in estimates["region"].astype(str) if r != NATIONAL))
        context["tables"]["regions"] = _frame(_regions_table(estimates, regions))
        context["caveats"] = found["caveats"] + [c for c in [_chance_note(estimates, regions)] if c]
        if not found["estimated"] and row is None:
            found["finding"] = ("This run has no pooled estimate across regions"
                                + (" (it has only one region)." if len(regions) < 2 else "."))
        context["n_regions"] = len(regions)
        return context
    indicators = reporting.read_results_table(output_dir, "indicators", region)
    groups = disclosure.groups_from_indicators(indicators)  # the small-cell rule's groups, as the downloads use
    context["tables"]["assessed"] = _frame(_assessed(indicators), grouped=True)
    context["caveats"] = _caveats(found, output_dir, region, groups)
    if found["estimated"]:
        key = reporting.indicators_frame(indicators)
        key = key.loc[~key["Indicator"].isin(["Children", "Centres"])]
        context["tables"]["indicators"] = _frame(key, grouped=True)
        context["tables"]["scorecard"] = _frame(reporting.scorecard_frame(
            reporting.read_results_table(output_dir, "scorecard", region), region, groups))
    else:
        context["needed"] = _needed()
    return context


def _css_string(text: str) -> str:
    """``text`` as the body of a CSS string (``content: "..."``), safe inside ``<style>``."""
    out = []
    for char in str(text):
        if char in '"\\<>' or ord(char) < 32:
            out.append(f"\\{ord(char):x} ")
        else:
            out.append(char)
    return "".join(out)


def brief_html(output_dir: str | Path, region: str, *, slug: str | None = None,
               estimates: pd.DataFrame | None = None, regions: Iterable[str] | None = None) -> str:
    """The brief as one self-contained HTML page (what :func:`write_brief` prints to PDF).

    ``region`` is a region's canonical name, or ``National`` for the brief for all regions
    (``regions``: the regions in its table, default every region in the estimates).
    """
    from jinja2 import Environment, FileSystemLoader, StrictUndefined
    from markupsafe import Markup

    output_dir = Path(output_dir).expanduser().resolve()
    if estimates is None:
        estimates = reporting.read_shared_csv(RunLayout.of(output_dir).estimates)
    estimates = reporting.in_display_units(estimates)  # shares in percentage points, as every report shows them
    slug = slug or (NATIONAL_SLUG if region == NATIONAL else None)
    if slug is None:
        raise ValueError(f"no file name (slug) given for the brief of {region!r}")
    context = _context(output_dir, region, slug, estimates, _manifest(output_dir),
                       None if regions is None else list(regions))
    env = Environment(loader=FileSystemLoader(str(package_templates_dir())), autoescape=True,
                      undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters["css_string"] = lambda text: Markup(_css_string(text))
    return env.get_template(TEMPLATE).render(**context)


# --------------------------------------------------------------------------- printing

class PrinterUnavailable(RuntimeError):
    """WeasyPrint (or the system's Pango, which it draws text with) is missing."""


def _weasyprint_html():
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: WeasyPrint is installed but cannot load Pango
        raise PrinterUnavailable(
            "WeasyPrint, which prints the briefs, could not start "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}); it needs the "
            "Pango library of the operating system (Debian or Ubuntu: apt-get install libpango-1.0-0 "
            "libpangoft2-1.0-0)") from exc
    return HTML


def _print_pdf(page: str, target: Path) -> int:
    """Print ``page`` (HTML) to ``target`` (written atomically); returns the number of pages."""
    document = _weasyprint_html()(string=page).render()  # the page refers to nothing outside itself
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        document.write_pdf(scratch)
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)
    return len(document.pages)


def planned_briefs(slugs: Mapping[str, str]) -> dict[str, str]:
    """Where :func:`write_briefs` puts each brief: region (and ``National``) → ``briefs/<slug>.pdf``."""
    return {**{region: brief_path(slug) for region, slug in slugs.items()}, NATIONAL: brief_path(NATIONAL_SLUG)}


def write_brief(output_dir: str | Path, region: str, *, slug: str | None = None,
                estimates: pd.DataFrame | None = None, regions: Iterable[str] | None = None) -> Path:
    """Write ``<output_dir>/briefs/<slug>.pdf`` for one region (or ``National``); returns its path.

    Reads the run's ``results/`` tables and ``run_manifest.json`` in ``output_dir``;
    ``estimates`` saves reading ``results/estimates.csv`` again; ``regions`` are the regions in
    the national brief's table. Raises on any failure (:func:`write_briefs` records failures
    instead).
    """
    output_dir = Path(output_dir).expanduser().resolve()
    slug = slug or (NATIONAL_SLUG if region == NATIONAL else None)
    page = brief_html(output_dir, region, slug=slug, estimates=estimates, regions=regions)
    target = output_dir / brief_path(slug or "")
    _print_pdf(page, target)
    return target


def _slugs(output_dir: Path, regions: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    if isinstance(regions, Mapping):
        return {str(region): str(slug) for region, slug in regions.items()}
    known = _manifest(output_dir).get("regions", {})
    names = [str(r) for r in regions]
    missing = [r for r in names if not (known.get(r) or {}).get("slug")]
    if missing:
        raise ValueError(f"no file name (slug) for {', '.join(missing)}: pass regions as a mapping "
                         "from region to slug, or write the run's manifest first")
    return {r: known[r]["slug"] for r in names}


def _write_one(output_dir: Path, region: str, slug: str, estimates: pd.DataFrame, regions: list[str]) -> BriefResult:
    """One brief of :func:`write_briefs`; never raises."""
    started = time.perf_counter()
    try:
        page = brief_html(output_dir, region, slug=slug, estimates=estimates, regions=regions)
        pages = _print_pdf(page, output_dir / brief_path(slug))
    except Exception as exc:  # noqa: BLE001 - one brief never stops the others or the run
        reason = str(exc) if isinstance(exc, PrinterUnavailable) else f"{type(exc).__name__}: {exc}"
        return BriefResult(region, brief_path(slug), False, reason, 0, time.perf_counter() - started)
    return BriefResult(region, brief_path(slug), True, "", pages, time.perf_counter() - started)


def write_briefs(output_dir: str | Path, estimates: pd.DataFrame | None,
                 regions: Mapping[str, str] | Iterable[str]) -> list[BriefResult]:
    """Write every region's brief and the national one; a brief that fails does not stop the others.

    About half a second a brief (WeasyPrint's layout of two A4 pages; the first of a process
    also loads the fonts): 50 regions take about 20 seconds, one after the other.

    Parameters
    ----------
    output_dir : path
        The run's output folder (its ``results/`` and ``run_manifest.json`` are read).
    estimates : DataFrame, optional
        ``results/estimates.csv`` (read from ``output_dir`` when None).
    regions : mapping or iterable
        Region → file name (slug), or region names whose slugs are in the run's manifest.

    Returns
    -------
    list of BriefResult
        One per region, in the order given, then the national brief's.
    """
    output_dir = Path(output_dir).expanduser().resolve()
    if estimates is None:
        estimates = reporting.read_shared_csv(RunLayout.of(output_dir).estimates)
    estimates = reporting.in_display_units(estimates)
    slugs = _slugs(output_dir, regions)
    return [_write_one(output_dir, region, slug, estimates, list(slugs))
            for region, slug in [*slugs.items(), (NATIONAL, NATIONAL_SLUG)]]
