"""The board briefs (evalkit.brief): A4 PDFs, one per region and one for all regions.

Fast tests print briefs of the small prepared run of test_render (two regions with known rows);
the slow ones run the sample for an estimated region (Gauteng) and one that is not estimable
(Northern Cape), then read the PDFs back with poppler's pdfinfo and pdftotext: A4, 2–4 pages
(one page for a region without an estimate, by design), the finding sentence exactly as
reporting.finding words it, "Page 1 of", the run date and the data version on every page, no
heading as the last text block of a page, no suppressed number, and the cache and failure
behaviour of a run.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import SAMPLE
from evalkit import brief, reporting, render
from evalkit.config import NATIONAL
from evalkit.outputs import read_manifest, resolve_run, up_to_date
from evalkit.pipeline import run
from test_outputs import _fake_published_run
from test_render import write_prepared_run

A4 = (595.28, 841.89)  # points
HAS_POPPLER = all(shutil.which(tool) for tool in ("pdfinfo", "pdftotext"))
needs_poppler = pytest.mark.skipif(not HAS_POPPLER, reason="poppler-utils (pdfinfo, pdftotext) not installed; "
                                                           "bash .ci/system-deps installs it")


def _printer_works() -> bool:
    try:
        brief._weasyprint_html()
    except brief.PrinterUnavailable:
        return False
    return True


needs_printer = pytest.mark.skipif(not _printer_works(), reason="WeasyPrint cannot load Pango here; "
                                                                "bash .ci/system-deps installs it")


# --------------------------------------------------------------------------- reading PDFs back

def pdf_info(path: Path) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)


def pdf_pages(path: Path) -> int:
    return int(pdf_info(path)["Pages"])


def pdf_size(path: Path) -> tuple[float, float]:
    width, height = re.match(r"\s*([\d.]+) x ([\d.]+) pts", pdf_info(path)["Page size"]).groups()
    return float(width), float(height)


def pdf_text(path: Path, page: int | None = None) -> str:
    pages = ["-f", str(page), "-l", str(page)] if page else []
    return subprocess.run(["pdftotext", *pages, "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def words(text: str) -> str:
    return " ".join(text.split())


def body_blocks(path: Path) -> list[list[str]]:
    """Each page's text blocks between the page margins (pdftotext's layout analysis), top to bottom."""
    xhtml = subprocess.run(["pdftotext", "-bbox-layout", str(path), "-"], capture_output=True, text=True,
                           check=True).stdout
    pages = []
    for page in re.findall(r"<page\b(.*?)</page>", xhtml, re.S):
        height = float(re.search(r'height="([\d.]+)"', page).group(1))
        blocks = []
        for y_min, y_max, block in re.findall(r'<block xMin="[\d.]+" yMin="([\d.]+)" xMax="[\d.]+" '
                                              r'yMax="([\d.]+)">(.*?)</block>', page, re.S):
            if float(y_min) > 17 / 25.4 * 72 and float(y_max) < height - 24 / 25.4 * 72:  # the @page margins
                blocks.append((float(y_min), words(html.unescape(re.sub(r"<[^>]+>", " ", block)))))
        pages.append([text for _, text in sorted(blocks)])
    return pages


def headings(page: str) -> list[str]:
    """The section headings (h2, h3) of a brief's HTML, as text."""
    return [words(html.unescape(re.sub(r"<[^>]+>", "", h))) for h in re.findall(r"<h[23][^>]*>(.*?)</h[23]>",
                                                                                page, re.S)]


def assert_no_heading_at_a_page_foot(pdf: Path, page_html: str) -> None:
    titles = {h.casefold() for h in headings(page_html)}  # printed in capitals where the CSS says so
    assert titles
    for number, blocks in enumerate(body_blocks(pdf), start=1):
        assert blocks, f"page {number} of {pdf.name} is empty"
        assert blocks[-1].casefold() not in titles, f"page {number} of {pdf.name} ends with the heading {blocks[-1]!r}"


def assert_every_page_is_stamped(pdf: Path, manifest: dict) -> None:
    pages = pdf_pages(pdf)
    run_date = manifest["started_at"][:10]
    for number in range(1, pages + 1):
        text = words(pdf_text(pdf, number))
        assert f"Page {number} of {pages}" in text, (pdf.name, number)
        assert f"Run of {run_date}" in text, (pdf.name, number)
        for name, info in manifest["inputs"].items():
            assert f"{name} {info['sha256'][:8]}" in text, (pdf.name, number, name)


# --------------------------------------------------------------------------- fast: the prepared run

@pytest.fixture
def prepared(tmp_path):
    out, _processed, estimates = write_prepared_run(tmp_path, full=True)
    return out, estimates


def test_a_brief_page_is_self_contained_and_says_the_finding(prepared):
    out, estimates = prepared
    page = brief.brief_html(out, "Gauteng", slug="gauteng")
    found = reporting.finding(estimates, "Gauteng")
    assert html.escape(found["finding"], quote=False) in page
    assert found["certainty"] in page
    assert render._network_reference(page) is None
    assert not re.search(r"<(script|link|img|iframe)\b", page) and "url(" not in page
    assert '<svg class="ek-interval"' in page  # the interval figure
    for section in ("What we found", "How sure are we?", "What to keep in mind", "Who was assessed",
                    "Key indicators", "Programme scorecard"):
        assert section in page, section
    assert "Page \" counter(page) \" of \" counter(pages)" in page and "size: A4" in page
    assert "child_assessments.csv abababab" in page and "Run of 2025-11-23" in page


def test_a_region_without_an_estimate_gets_the_reason_and_what_would_make_one_possible(prepared):
    out, estimates = prepared
    page = brief.brief_html(out, "Northern Cape", slug="northern-cape")
    assert html.escape(reporting.finding(estimates, "Northern Cape")["finding"], quote=False) in page
    assert "What would make an estimate possible" in page and "At least 3 partnered and 3 comparison" in page
    assert "Key indicators" not in page and "<svg" not in page


def national_sentence(estimates: pd.DataFrame) -> str:
    """The pooled result's sentence, named as the index names it."""
    row = reporting.primary_row(reporting.in_display_units(estimates), NATIONAL)
    return reporting.headline_parts(row, "all regions combined",
                                    reporting.finding(estimates, NATIONAL)["checks"])["finding"]


def test_the_national_brief_has_the_pooled_result_and_every_regions_headline(prepared):
    out, estimates = prepared
    page = brief.brief_html(out, NATIONAL)
    assert "Every region’s headline" in page and "What we found across all regions" in page
    assert html.escape(national_sentence(estimates), quote=False) in page
    for region in ("Gauteng", "Northern Cape"):
        assert f'<th scope="row">{region}</th>' in page
    alone = brief.brief_html(out, NATIONAL, estimates=estimates.loc[estimates["region"] != NATIONAL])
    assert "This run has no pooled estimate across regions." in alone


def test_css_strings_cannot_leave_the_stylesheet():
    assert brief._css_string('a "b" \\ </style><script>') == 'a \\22 b\\22  \\5c  \\3c /style\\3e \\3c script\\3e '


def test_assessed_table_hides_small_cells_as_the_reports_do(prepared):
    out, _ = prepared
    table = brief._assessed(reporting.read_results_table(out, "indicators", "Northern Cape"))
    partnered = table.loc[table["Group"] == "Partnered"].iloc[0]
    assert partnered["Baseline, centres"] == "<3" and partnered["Baseline, children"] == "10"


@needs_printer
@needs_poppler
def test_a_suppressed_cell_is_suppressed_in_the_pdf(prepared):
    out, _ = prepared
    indicators = pd.read_csv(out / "results" / "indicators.csv")
    small = (indicators["region"] == "Gauteng") & (indicators["arm"] == "partnered") & (indicators["wave"] == "baseline")
    indicators.loc[small, ["n_children", "elom_total_mean", "on_track_pct"]] = [7, 61.37, 77.7]
    indicators.to_csv(out / "results" / "indicators.csv", index=False)
    shown = reporting.indicators_frame(reporting.read_results_table(out, "indicators", "Gauteng"))
    assert (shown["Partnered, baseline"].iloc[2:] == reporting.SUPPRESSED).all()  # as the HTML report shows it
    pdf = brief.write_brief(out, "Gauteng", slug="gauteng")
    text = words(pdf_text(pdf))
    assert "61.4" not in text and "78%" not in text and "<10" in text and "suppressed" in text
    assert pdf_size(pdf) == pytest.approx(A4, abs=0.5)


@needs_printer
@needs_poppler
def test_the_page_foot_check_finds_a_stranded_heading(tmp_path):
    page = ("<html><head><style>@page { size: A4; margin: 17mm 17mm 24mm 17mm; }</style></head><body>"
            '<p style="height: 230mm">Filler.</p><h2>Stranded heading</h2>'
            '<p style="break-before: page">Its text, alone on the next page.</p></body></html>')
    brief._print_pdf(page, tmp_path / "bad.pdf")
    with pytest.raises(AssertionError, match="ends with the heading 'Stranded heading'"):
        assert_no_heading_at_a_page_foot(tmp_path / "bad.pdf", page)


def test_write_briefs_goes_on_when_one_brief_fails(prepared, monkeypatch):
    out, estimates = prepared
    printed = []

    def fake_print(page, target):
        if target.name == "gauteng.pdf":
            raise ValueError("the printer jammed")
        printed.append(target.name)
        return 1

    monkeypatch.setattr(brief, "_print_pdf", fake_print)
    results = brief.write_briefs(out, estimates, {"Gauteng": "gauteng", "Northern Cape": "northern-cape"})
    assert [(r.region, r.ok) for r in results] == [("Gauteng", False), ("Northern Cape", True), (NATIONAL, True)]
    assert "the printer jammed" in results[0].reason and results[0].path == "briefs/gauteng.pdf"
    assert printed == ["northern-cape.pdf", "national.pdf"]


def test_a_missing_printer_is_a_plain_reason(prepared, monkeypatch):
    out, estimates = prepared

    def no_pango():
        raise brief.PrinterUnavailable("WeasyPrint, which prints the briefs, could not start (OSError: no Pango)")

    monkeypatch.setattr(brief, "_weasyprint_html", no_pango)
    results = brief.write_briefs(out, estimates, {"Gauteng": "gauteng"})
    assert not any(r.ok for r in results)
    assert results[0].reason.startswith("WeasyPrint, which prints the briefs, could not start")


def test_the_index_links_each_brief_and_offers_the_national_one(prepared):
    out, estimates = prepared
    renders = [render.RegionRender("Gauteng", "gauteng", "ok", "regions/gauteng.html", "", 0.0),
               render.RegionRender("Northern Cape", "northern-cape", "not_estimable", "regions/northern-cape.html",
                                   "few centres", 0.0)]
    index = render.write_index(out, estimates, renders, briefs=brief.planned_briefs(
        {"Gauteng": "gauteng", "Northern Cape": "northern-cape"})).read_text(encoding="utf-8")
    assert '<a class="ek-brief" href="briefs/gauteng.pdf">PDF brief</a>' in index
    assert 'href="briefs/northern-cape.pdf"' in index
    assert '<li><a href="briefs/national.pdf">Board brief for all regions (PDF, A4)' in index
    plain = render.write_index(out, estimates, renders).read_text(encoding="utf-8")
    assert "briefs/" not in plain


def test_a_run_whose_brief_is_missing_is_not_up_to_date(tmp_path):
    data, out = _fake_published_run(tmp_path)
    manifest = read_manifest(out)
    manifest["briefs"] = {"Gauteng": {"path": "briefs/gauteng.pdf", "ok": True}}
    (out / "run_manifest.json").write_text(json.dumps(manifest))
    assert not up_to_date(resolve_run(data, out), read_manifest(out))
    (out / "briefs").mkdir()
    (out / "briefs" / "gauteng.pdf").write_text("")
    assert up_to_date(resolve_run(data, out), read_manifest(out))


# --------------------------------------------------------------------------- slow: the sample, end to end

REGIONS = ["Gauteng", "Northern Cape"]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("briefs") / "out"
    result = run(SAMPLE, out, regions=REGIONS, jobs=2, progress=lambda _: None)
    assert result.exit_code == 0
    return out, result


@pytest.mark.slow
@needs_poppler
def test_each_brief_is_a4_with_the_finding_and_a_stamp_on_every_page(sample_run):
    out, result = sample_run
    manifest = read_manifest(out)
    estimates = pd.read_csv(out / "results" / "estimates.csv")
    assert manifest["timings_seconds"]["briefs"] > 0
    for region, pages in (("Gauteng", range(2, 5)), ("Northern Cape", range(1, 2)), (NATIONAL, range(2, 5))):
        entry = manifest["briefs"][region]
        pdf = out / entry["path"]
        assert entry["ok"] and pdf.is_file(), region
        assert pdf_size(pdf) == pytest.approx(A4, abs=0.5), region
        assert pdf_pages(pdf) in pages and entry["pages"] == pdf_pages(pdf), region
        text = words(pdf_text(pdf))
        found = reporting.finding(estimates, region)
        sentence = national_sentence(estimates) if region == NATIONAL else found["finding"]
        assert words(sentence) in text, region
        assert found["certainty"] in text, region
        assert "Page 1 of" in text
        assert_every_page_is_stamped(pdf, manifest)
        slug = "national" if region == NATIONAL else result.region_status[region]["slug"]
        assert_no_heading_at_a_page_foot(pdf, brief.brief_html(out, region, slug=slug))
    assert result.region_status["Gauteng"]["brief"] == "briefs/gauteng.pdf"
    assert result.region_status["Gauteng"]["brief_status"] == "ok"
    index = (out / "index.html").read_text(encoding="utf-8")
    assert 'href="briefs/gauteng.pdf"' in index and 'href="briefs/national.pdf"' in index


@pytest.mark.slow
@needs_poppler
def test_what_a_report_suppresses_its_brief_suppresses(sample_run):
    out, _ = sample_run
    # Northern Cape has 2 partnered centres: its report shows "<3" for them, and so does the brief
    report = (out / "regions" / "northern-cape.html").read_text(encoding="utf-8")
    assert "&lt;3" in report
    text = pdf_text(out / "briefs" / "northern-cape.pdf")
    partnered = [line for line in text.splitlines() if line.strip().startswith("Partnered")]
    assert partnered and all("<3" in line for line in partnered), partnered
    # Gauteng's key indicators: the brief's cells are the report's (reporting.indicators_frame)
    page = brief.brief_html(out, "Gauteng", slug="gauteng")
    frame = reporting.indicators_frame(reporting.read_results_table(out, "indicators", "Gauteng"))
    for _, row in frame.iloc[2:].iterrows():
        cells = "".join(f'<td class="num">{html.escape(v)}</td>' for v in row.iloc[1:])
        assert cells in page, row["Indicator"]


@pytest.mark.slow
@needs_poppler
def test_briefs_are_rewritten_with_reused_reports_and_a_failed_brief_does_not_fail_the_run(
        sample_run, tmp_path, monkeypatch):
    source, _ = sample_run
    out = tmp_path / "out"
    shutil.copytree(source, out)  # another folder: another run key, the same regions' cache keys
    # A rendering run reuses both region reports and still writes both briefs anew (this run's stamp).
    before = {p.name: p.stat().st_mtime_ns for p in (out / "briefs").glob("*.pdf")}
    again = run(SAMPLE, out, regions=REGIONS, jobs=2, progress=lambda _: None)
    assert not again.cached and again.exit_code == 0
    assert all(again.region_status[r]["cached"] for r in REGIONS)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "briefs").glob("*.pdf")}
    assert after.keys() == before.keys() == {"gauteng.pdf", "northern-cape.pdf", "national.pdf"}
    assert all(after[name] != before[name] for name in after)

    # One brief fails: the run goes on (exit 0), the region's note says so, the index drops the link
    # and the old file is not left beside the new reports.
    real = brief._print_pdf

    def jammed(page, target):
        if target.name == "gauteng.pdf":
            raise RuntimeError("the printer jammed")
        return real(page, target)

    monkeypatch.setattr(brief, "_print_pdf", jammed)
    (out / "briefs" / "national.pdf").unlink()  # a published brief went missing: the run is not up to date
    failed = run(SAMPLE, out, regions=REGIONS, jobs=2, progress=lambda _: None)
    assert not failed.cached and failed.exit_code == 0
    status = failed.region_status["Gauteng"]
    assert status["brief_status"] == "failed" and "The PDF brief could not be written" in status["note"]
    assert "the printer jammed" in status["note"] and status["status"] == "ok"
    assert not (out / "briefs" / "gauteng.pdf").exists()
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "briefs/gauteng.pdf" not in index and "briefs/northern-cape.pdf" in index
    assert read_manifest(out)["briefs"]["Gauteng"]["ok"] is False

    # The next run tries again (the manifest lists the missing brief).
    monkeypatch.setattr(brief, "_print_pdf", real)
    fixed = run(SAMPLE, out, regions=REGIONS, jobs=2, progress=lambda _: None)
    assert not fixed.cached and fixed.region_status["Gauteng"]["brief_status"] == "ok"
    assert (out / "briefs" / "gauteng.pdf").is_file()
    assert "PDF brief could not be written" not in fixed.region_status["Gauteng"]["note"]
