"""The small-cell rule everywhere (issue 14, item 6).

A cell describing fewer than 10 children or 3 centres is suppressed in every table, figure,
alt text, aria label and title of a report, on the index and in the downloads the index
offers funders, and in the explorer. The rule is :func:`evalkit.disclosure.cell_is_small`.

The slow test renders the sample's Northern Cape (2 partnered centres), computes from the
processed ``child_outcomes.parquet`` (and ``centre_outcomes.parquet``) every mean, median,
SD, share and standardised difference of its partnered arm, formatted as the reports format
numbers, and asserts that none of them appears on any surface a funder can read.
"""

from __future__ import annotations

import base64
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SAMPLE
from evalkit import reporting
from evalkit.reporting import format_number

REGION = "Northern Cape"
CHILD_VARIABLES = ("elom_total", "elom_gmd", "elom_fmc", "elom_enm", "elom_cef", "elom_ell", "haz", "waz", "whz",
                   "baz", "age_months", "attendance_rate")
SHARES = ("on_track", "stunted", "girls")


# --------------------------------------------------------------------------- what a page shows

class _Surfaces(HTMLParser):
    """Every text a reader (or a screen reader) gets: text, alt, aria-label and title, and the same
    inside base64 SVG images (``data:image/svg+xml;base64,...``). Style sheets are not text."""

    def __init__(self):
        super().__init__()
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("style", "script")
        for name, value in attrs:
            if name in ("alt", "aria-label", "title") and value:
                self.chunks.append(value)
            if name in ("src", "href") and value and value.startswith("data:image/svg+xml;base64,"):
                self.chunks += surfaces(base64.b64decode(value.split(",", 1)[1]).decode("utf-8"))

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "script")

    def handle_data(self, data):
        if data.strip() and not self._skip:
            self.chunks.append(data)


def surfaces(page: str) -> list[str]:
    parser = _Surfaces()
    parser.feed(page)
    return parser.chunks


_NUMBER = re.compile(r"\d[\d.,]*%?")


def numbers(chunks: list[str]) -> dict[str, str]:
    """Each number written in the texts (signs dropped; version strings like 3.11.2 skipped) → where."""
    found = {}
    for chunk in chunks:
        for token in _NUMBER.findall(chunk):
            token = token.rstrip(".,")
            if token.count(".") <= 1:
                found.setdefault(token, " ".join(chunk.split())[:160])
    return found


def _shown(value: float, share: bool = False, one_decimal: bool = True) -> set[str]:
    """How the reports write a statistic: 2 decimals, 1 decimal (from 1 up), a share as a whole %."""
    out = {format_number(value, 2)} | ({format_number(value, 1)} if one_decimal and abs(value) >= 1 else set())
    if share:
        out.add(format_number(100 * value, 0) + "%")
    return {text.lstrip("+−-") for text in out}


def _statistics(children: pd.DataFrame) -> dict[str, tuple[float, bool]]:
    """name → (value, is a share): mean, median and SD of every child variable and the shares."""
    out = {}
    for column in CHILD_VARIABLES:
        values = children[column].dropna().astype(float)
        if len(values) > 1:
            out.update({f"{column} mean": (values.mean(), column == "attendance_rate"),
                        f"{column} median": (values.median(), False), f"{column} sd": (values.std(ddof=1), False)})
    flags = {"on_track": children["elom_band"].dropna() == reporting.ON_TRACK,
             "stunted": children["is_stunted"].dropna().astype(bool),
             "girls": children["sex"].dropna().astype(str) == "female"}
    out.update({f"{name} share": (float(flag.mean()), True) for name, flag in flags.items() if len(flag)})
    return out


def _simple(value: float) -> bool:
    """A fraction with a small denominator (1/3, 62.5 = 5/8 of 100): any table of nine regions has those."""
    return any(abs(value * q - round(value * q)) < 1e-6 for q in range(1, 51))


def _smd(a: pd.Series, b: pd.Series, binary: bool = False) -> float:
    a, b = a.dropna().astype(float), b.dropna().astype(float)
    if binary:
        pooled = math.sqrt((a.mean() * (1 - a.mean()) + b.mean() * (1 - b.mean())) / 2)
    else:
        pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return (a.mean() - b.mean()) / pooled


def must_not_appear(processed: Path, region: str = REGION) -> tuple[dict[str, set[str]], set[float]]:
    """What the partnered arm of ``region`` must never show: name → formatted forms, and the raw values.

    Forms that are also the formatted value of a statistic that may be shown (the comparison arm's,
    the whole region's) are left out: they cannot tell a leak from the shown value.
    """
    children = pd.read_parquet(processed / "child_outcomes.parquet")
    children = children.loc[children["region"] == region]
    partnered = children.loc[children["is_partnered"].astype(bool)]
    comparison = children.loc[~children["is_partnered"].astype(bool)]
    stats, allowed = {}, set()
    for wave in ("baseline", "endline", None):
        def of(frame):
            return frame if wave is None else frame.loc[frame["wave"] == wave]
        stats.update({f"{wave or 'both waves'} {k}": v for k, v in _statistics(of(partnered)).items()})
        for frame in (comparison, children):
            allowed |= {text for value, share in _statistics(of(frame)).values() for text in _shown(value, share)}
    base_p, base_c = (frame.loc[frame["wave"] == "baseline"] for frame in (partnered, comparison))
    for column in CHILD_VARIABLES:
        stats[f"{column} std. difference"] = (_smd(base_p[column], base_c[column]), False)
    stats["girls std. difference"] = (_smd(base_p["sex"] == "female", base_c["sex"] == "female", True), False)
    centres = pd.read_parquet(processed / "centre_outcomes.parquet")
    centres = centres.loc[centres["region"] == region]
    for column in ("enrolment", "practitioners"):
        if column in centres:
            mine = centres.loc[centres["is_partnered"].astype(bool), column]
            stats[f"centres' {column} mean"] = (float(mine.mean()), False)
            stats[f"centres' {column} std. difference"] = (
                _smd(mine, centres.loc[~centres["is_partnered"].astype(bool), column]), False)
            allowed |= _shown(float(centres.loc[~centres["is_partnered"].astype(bool), column].mean()))
    # differences are written with 2 decimals only
    shown = {name: _shown(value, share, one_decimal="difference" not in name) - allowed
             for name, (value, share) in stats.items()}
    raw = {abs(v) * k for v, share in stats.values() for k in ((1, 100) if share else (1,))}
    return shown, {v for v in raw if not _simple(v)}


def _is_raw(value, raw: set[float]) -> bool:
    return (isinstance(value, float) and math.isfinite(value)
            and any(math.isclose(abs(value), v, rel_tol=1e-9) for v in raw))


def leaks(chunks: list[str], shown: dict[str, set[str]]) -> list[str]:
    found = numbers(chunks)
    return [f"{name} = {text!r} in: {found[text]}" for name, forms in shown.items() for text in sorted(forms)
            if text in found]


def download_cells(path: Path) -> list:
    """Every cell value of a download (a workbook's sheets, a CSV's cells, a PDF's text)."""
    if path.suffix == ".pdf":
        import shutil
        import subprocess

        if not shutil.which("pdftotext"):
            pytest.skip("pdftotext (poppler) is needed to read the PDF downloads")
        return [subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                               text=True).stdout]
    if path.suffix == ".xlsx":
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True)
        return [value for sheet in book.worksheets for row in sheet.iter_rows(values_only=True) for value in row
                if value is not None]
    frame = pd.read_csv(path, dtype=object, keep_default_na=False)
    return [_parsed(value) for value in frame.to_numpy().ravel().tolist()]


def _parsed(text: str):
    try:
        return float(text)
    except ValueError:
        return text


# --------------------------------------------------------------------------- the rule

def test_cell_is_small_is_the_plans_rule():
    from evalkit import disclosure
    from evalkit.disclosure import cell_is_small

    assert reporting.cell_is_small is cell_is_small
    assert not cell_is_small(10, 3) and not cell_is_small(26, [3, 6])
    assert cell_is_small(9, 3) and cell_is_small(26, 2) and cell_is_small(26, [2, 6])
    assert cell_is_small(None) and cell_is_small(float("nan")) and cell_is_small(26, [3, None])
    assert not cell_is_small(10)  # no centres to check
    assert disclosure.shown_count(9) == "<10" and disclosure.shown_count(2, "centres") == "<3"
    assert disclosure.shown_count(0) == 0 and disclosure.shown_count(26) == 26


def _children(rng, partnered_centres: int = 2, comparison_centres: int = 4, per_centre: int = 8) -> pd.DataFrame:
    rows = []
    for arm, n_centres, level, spread in (("Partnered", partnered_centres, 61.2345, 11.0),
                                          ("Comparison", comparison_centres, 48.0, 4.0)):
        for c in range(n_centres):
            for k in range(per_centre):
                base = level + rng.normal(0, spread)
                for wave, gain in (("baseline", 0.0), ("endline", 7.0)):
                    rows.append(dict(child_id=f"K{arm[0]}{c}{k}", centre_id=f"{arm[0]}{c}", region="Tiny",
                                     wave=wave, is_partnered=arm == "Partnered", sex="female" if k % 2 else "male",
                                     setting="urban", age_months=55.0 + 9 * (wave == "endline"),
                                     elom_total=base + gain, elom_band="On Track" if k % 3 else "Falling Behind",
                                     haz=rng.normal(-0.4, 1)))
    return pd.DataFrame(rows)


def test_group_sizes_decide_once_per_arm_and_wave(rng):
    from evalkit.disclosure import group_sizes

    groups = group_sizes(_children(rng)).set_index(["arm", "wave"])
    assert groups.loc[("Partnered", "baseline"), ["n_children", "n_centres", "small"]].tolist() == [16, 2, True]
    assert groups.loc[("Comparison", "endline"), ["n_children", "n_centres", "small"]].tolist() == [32, 4, False]
    assert groups.loc[("Partnered", "all"), "small"] and not groups.loc[("Comparison", "all"), "small"]


def test_frames_consult_the_groups(rng):
    from evalkit.disclosure import group_sizes

    groups = group_sizes(_children(rng))
    balance = pd.DataFrame([
        dict(region="Tiny", variable="elom_total", label="ELOM total", level="child", n_partnered=16,
             n_comparison=32, mean_partnered=61.23, mean_comparison=48.0, smd=1.4, variance_ratio=1.1, flag="fails"),
        dict(region="Tiny", variable="enrolment", label="Enrolment", level="centre", n_partnered=2,
             n_comparison=4, mean_partnered=33.5, mean_comparison=52.0, smd=-1.7, variance_ratio=0.02,
             flag="fails")])
    frame = reporting.balance_frame(balance, groups)
    assert frame["Partnered"].tolist() == ["suppressed", "suppressed"]
    assert frame["Comparison"].tolist() == ["48.00", "52.00"]  # the comparison arm is not small
    assert set(frame[["Std. difference", "Variance ratio", "Verdict"]].to_numpy().ravel()) == {"suppressed"}
    # without the groups only the rows' own counts are known: the centre row (2 centres) is still small
    alone = reporting.balance_frame(balance)
    assert alone["Partnered"].tolist() == ["61.23", "suppressed"]
    satisfaction = pd.DataFrame([dict(arm="partnered", item="overall", n_valid=60, top2_pct=84.4),
                                 dict(arm="comparison", item="overall", n_valid=60, top2_pct=71.0)])
    table = reporting.satisfaction_frame(satisfaction, groups)
    assert table.iloc[0]["Partnered"] == "suppressed (n 60)" and table.iloc[0]["Comparison"] == "71% (n 60)"
    counted = reporting.satisfaction_frame(satisfaction.assign(n_centres=[3, 4]), groups)
    assert counted.iloc[0]["Partnered"] == "84% (n 60)"  # the parents' own centres decide
    indicators = pd.DataFrame([dict(arm="partnered", wave="baseline", n_children=40, n_centres=4,
                                    elom_total_mean=44.25, haz_mean=-0.5, n_with_elom_total=40, n_with_haz=8)])
    shown = reporting.indicators_frame(indicators).set_index("Indicator")["Partnered, baseline"]
    assert shown["Mean ELOM total (0–100)"] == "44.2" and shown["Mean height-for-age z-score"] == "suppressed"


def test_downloads_suppress_small_cells(rng):
    from evalkit import disclosure
    from evalkit.disclosure import suppressed_results

    groups = disclosure.groups_from_indicators(pd.DataFrame([
        dict(region="Tiny", arm=arm, wave=wave, n_children=n, n_centres=c)
        for arm, n, c in (("partnered", 16, 2), ("comparison", 32, 4)) for wave in ("baseline", "endline")]))
    indicators = pd.DataFrame([dict(region="Tiny", arm="partnered", wave="baseline", n_children=16, n_centres=2,
                                    elom_total_mean=61.2345, n_with_elom_total=16),
                               dict(region="Tiny", arm="comparison", wave="baseline", n_children=32, n_centres=4,
                                    elom_total_mean=48.5, n_with_elom_total=32)])
    out = suppressed_results("indicators", indicators, groups)
    assert out["elom_total_mean"].tolist() == ["suppressed", 48.5]
    assert out["n_centres"].tolist() == ["<3", 4] and out["n_children"].tolist() == [16, 32]
    balance = pd.DataFrame([dict(region="Tiny", level="child", n_partnered=16, n_comparison=32, mean_partnered=61.2,
                                 sd_partnered=5.0, mean_comparison=48.0, sd_comparison=6.0, smd=1.4, flag="fails",
                                 share_missing=0.0)])
    row = suppressed_results("balance", balance, groups).iloc[0]
    assert (row["mean_partnered"], row["sd_partnered"], row["smd"], row["flag"]) == ("suppressed",) * 4
    assert row["mean_comparison"] == 48.0
    estimates = pd.DataFrame([dict(region="Tiny", estimate=2.5, ci_low=1.0, ci_high=4.0, n_children=48,
                                   n_centres_partnered=2, n_centres_comparison=4, status="ok", note=""),
                              dict(region="Tiny", estimate=np.nan, ci_low=np.nan, ci_high=np.nan, n_children=48,
                                   n_centres_partnered=2, n_centres_comparison=4, status="not_estimable",
                                   note="Only 2 partnered")])
    out = suppressed_results("estimates", estimates)
    assert out.loc[0, ["estimate", "ci_low", "ci_high"]].tolist() == ["suppressed"] * 3
    assert pd.isna(out.loc[1, "estimate"])  # nothing to hide stays empty, not "suppressed"
    satisfaction = pd.DataFrame([dict(region="Tiny", arm="partnered", item="overall", n_valid=60, n_top2=50,
                                      top2_pct=83.33)])
    assert suppressed_results("satisfaction", satisfaction, groups).loc[0, "top2_pct"] == "suppressed"


def test_explorer_views_suppress_a_group_of_two_centres(rng):
    from evalkit import explore

    children = _children(rng)
    estimates = pd.DataFrame([dict(region="Tiny", outcome="elom_total", estimator="ancova", inference="CR1",
                                   estimate=13.2468, std_error=1.5, df=5, ci_low=9.1357, ci_high=17.3579,
                                   p_value=0.001, effect_size_sd=1.9753, n_children=96, n_centres_partnered=2,
                                   n_centres_comparison=4, status="ok", note="")])
    bench = explore.Workbench(children=explore._with_arm(children), estimates=estimates, source="test")
    partnered = children.loc[children["is_partnered"]]
    secret = set()
    for wave in ("baseline", "endline", None):
        values = partnered["elom_total"] if wave is None else partnered.loc[partnered["wave"] == wave, "elom_total"]
        secret |= {f"{s:.2f}" for s in (values.mean(), values.std(), values.median())}
        secret |= {f"{s:.3f}" for s in (values.mean(), values.std(), values.median())}
    secret |= {"13.247", "9.136", "17.358", "1.975", "13.25", "+13.2"}
    for view in (explore.distribution_view(bench, "Tiny", "elom_total"), explore.balance_view(bench, "Tiny"),
                 explore.estimates_view(bench, "Tiny", "elom_total")):
        markup = view.data
        found = numbers(surfaces(markup))
        assert not secret & set(found), {s: found[s] for s in secret & set(found)}
        assert "suppressed" in markup
    markup = explore.distribution_view(bench, "Tiny", "elom_total").data
    assert "no box: partnered baseline, partnered endline" in markup
    # the comparison arm keeps its numbers
    comparison = children.loc[~children["is_partnered"] & (children["wave"] == "baseline"), "elom_total"]
    assert f"{comparison.mean():.2f}" in markup


# --------------------------------------------------------------------------- the sample's Northern Cape

@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    from evalkit.pipeline import run

    out = tmp_path_factory.mktemp("small_cells") / "out"
    result = run(SAMPLE, out, regions=[REGION, "Gauteng"], jobs=2, progress=lambda _: None)
    assert result.region_status[REGION]["render_status"] == "not_estimable"
    return out, result.processed_dir


@pytest.mark.slow
def test_partnered_values_of_northern_cape_appear_nowhere(sample_run):
    out, processed = sample_run
    children = pd.read_parquet(processed / "child_outcomes.parquet").query("region == @REGION")
    assert children.loc[children["is_partnered"], "centre_id"].nunique() == 2  # the case at hand
    shown, raw = must_not_appear(processed)
    assert sum(len(forms) for forms in shown.values()) > 60 and len(raw) > 40  # the check has teeth
    page = (out / "regions" / "northern-cape.html").read_text(encoding="utf-8")
    index = (out / "index.html").read_text(encoding="utf-8")
    found = []
    for where, text in (("the region's report", page), ("the index", index)):
        found += [f"{where}: {leak}" for leak in leaks(surfaces(text), shown)]
        found += [f"{where}: raw {v!r}" for v in raw if repr(v) in text]
    # every download the index offers but the other regions' own pages and briefs (their numbers are theirs)
    others = {slug for slug in re.findall(r'href="regions/([^"/]+)\.html"', index) if slug != "northern-cape"}
    links = [link for link in re.findall(r'href="([^"#]+)"', index)
             if not link.startswith("regions/") and Path(link).stem not in others]
    assert "results/results.xlsx" in links
    for link in links:
        cells = download_cells(out / link)
        found += [f"{link}: {leak}" for leak in leaks([c for c in cells if isinstance(c, str)], shown)]
        found += [f"{link}: raw {c!r}" for c in cells if _is_raw(c, raw)]
    assert not found, "\n".join(found)


@pytest.mark.slow
def test_northern_cape_says_what_is_suppressed(sample_run):
    out, _ = sample_run
    page = (out / "regions" / "northern-cape.html").read_text(encoding="utf-8")
    texts = surfaces(page)
    alts = [t for t in texts if t.startswith(("Box plots", "Bar chart", "Love plot"))]
    assert any("Suppressed (too few children or centres), not plotted: partnered baseline, partnered endline" in t
               for t in alts), alts
    assert any(t.startswith("Bar chart") and "Suppressed" in t for t in alts), alts
    assert not any(t.startswith("Love plot") for t in alts)  # every characteristic involves the partnered arm
    assert "The Love plot is not shown" in page
    assert "the comparison of 18 is suppressed" in page
    # the comparison arm and the counts are still shown
    indicators = pd.read_csv(out / "results" / "indicators.csv").query("region == @REGION and arm == 'comparison'")
    for mean in indicators["elom_total_mean"]:
        assert format_number(mean, 1) in page
    gauteng = (out / "regions" / "gauteng.html").read_text(encoding="utf-8")
    assert "suppressed (" not in gauteng.replace("“suppressed”", "")
