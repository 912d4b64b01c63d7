"""Open the index and the reports in headless Chromium with the network blocked.

Debian's chromium (installed by ``.ci/system-deps``) is driven by Playwright;
no browser is ever downloaded. Every request that is not a local file is
aborted and recorded, and the test fails if any was attempted. It also fails on
console errors and page errors, on anything that scrolls sideways on a phone,
and when the finding and how sure we are do not fit on the first screen.
Screenshots (desktop 1280 px and phone 390 px) and a printed PDF are saved
under ``test-artifacts/browser/`` for people to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SAMPLE as DATA_RAW
from evalkit.executors import render_reports
from evalkit.export import write_results_workbook
from evalkit.pipeline import run
from evalkit.render import write_index
from test_render import write_prepared_run

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browser"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                                                     "(make system-deps installs it)"),
]

# Runs in the page: every scroll box that is wider than its box, and where the key parts are.
_LAYOUT_PROBE = """() => {
  const wide = [];
  const root = document.scrollingElement;
  if (root.scrollWidth > window.innerWidth + 1) wide.push('page ' + root.scrollWidth);
  for (const el of document.querySelectorAll('.ek-table-wrap, figure, svg, img')) {
    const r = el.getBoundingClientRect();
    if (el.scrollWidth > el.clientWidth + 1 || r.right > window.innerWidth + 1)
      wide.push(((el.querySelector && el.querySelector('caption, figcaption')) || el).textContent.slice(0, 60)
                + ` (${el.scrollWidth} px in ${el.clientWidth} px)`);
  }
  const top = sel => { const el = document.querySelector(sel); return el ? el.getBoundingClientRect().top : null; };
  const bottom = sel => { const el = document.querySelector(sel); return el ? el.getBoundingClientRect().bottom : null; };
  return {wide, leadBottom: bottom('.ek-lead'), sureTop: top('.ek-sure'), height: window.innerHeight,
          images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)};
}"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """The shipped sample, through the whole pipeline, with the workbook linked from the index."""
    root = tmp_path_factory.mktemp("sample")
    result = run(DATA_RAW, root / "out", jobs=2, progress=lambda _: None)
    write_results_workbook(result.output_dir)
    return result.output_dir


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A hand-made run with every optional results table (all report sections shown)."""
    out, processed, estimates = write_prepared_run(tmp_path_factory.mktemp("full"), full=True)
    renders = render_reports([("Gauteng", "gauteng"), ("Northern Cape", "northern-cape")], out, processed,
                             jobs=2, timeout=120)
    write_index(out, estimates, renders)
    return out


def _visit(browser, path: Path, name: str, *, viewport: str, first_screen: bool, pdf: bool = False) -> dict:
    context = browser.new_context(viewport=VIEWPORTS[viewport], device_scale_factor=1,
                                  java_script_enabled=True, offline=True)
    attempted, errors = [], []

    def block(route):
        url = route.request.url
        if url.startswith(("file://", "data:")):
            route.continue_()
        else:
            attempted.append(url)
            route.abort()

    context.route("**/*", block)
    page = context.new_page()
    page.on("request", lambda request: None if request.url.startswith(("file://", "data:"))
            else attempted.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = page.goto(path.as_uri(), wait_until="load")
    assert response is None or response.ok, path
    layout = page.evaluate(_LAYOUT_PROBE)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{viewport}.png"))
    page.screenshot(path=str(ARTIFACTS / f"{name}-{viewport}-full.png"), full_page=True)
    if pdf:
        page.emulate_media(media="print")
        page.pdf(path=str(ARTIFACTS / f"{name}-print.pdf"), format="A4", print_background=True)
    context.close()
    assert not attempted, f"{name}: network requests attempted: {attempted[:5]}"
    assert not errors, f"{name}: console errors: {errors[:5]}"
    assert not layout["images"], f"{name}: images that did not load: {layout['images']}"
    assert not layout["wide"], f"{name} ({viewport}): scrolls sideways: {layout['wide']}"
    if first_screen:  # the finding, and how sure we are when there is an estimate, without scrolling
        assert layout["leadBottom"] is not None and layout["leadBottom"] <= layout["height"], \
            f"{name} ({viewport}): the finding is below the first screen"
        assert layout["sureTop"] is None or layout["sureTop"] < layout["height"], \
            f"{name} ({viewport}): 'how sure are we' is below the first screen"
    return layout


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_sample_index_and_every_report_offline(browser, sample_run, viewport):
    _visit(browser, sample_run / "index.html", "sample-index", viewport=viewport, first_screen=True)
    reports = sorted((sample_run / "regions").glob("*.html"))
    assert len(reports) >= 5
    for report in reports:
        _visit(browser, report, f"sample-{report.stem}", viewport=viewport, first_screen=True,
               pdf=viewport == "desktop" and report.stem == "gauteng")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_report_with_every_section_offline(browser, full_run, viewport):
    _visit(browser, full_run / "index.html", "full-index", viewport=viewport, first_screen=True)
    _visit(browser, full_run / "regions" / "gauteng.html", "full-gauteng", viewport=viewport, first_screen=True)
    _visit(browser, full_run / "regions" / "northern-cape.html", "full-northern-cape", viewport=viewport,
           first_screen=True)


def test_blocking_is_real(browser, tmp_path):
    """A page that asks the network is caught: the check above can fail."""
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><html lang="en"><title>x</title><img src="https://example.org/x.png" alt="x">'
                    "</html>", encoding="utf-8")
    with pytest.raises(AssertionError, match="network requests attempted"):
        _visit(browser, page, "leaky", viewport="desktop", first_screen=False)
    for leftover in ARTIFACTS.glob("leaky-*"):
        leftover.unlink()


def _pdf_pages(pdf: Path) -> int:
    import subprocess

    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


def test_every_report_prints_to_at_most_twelve_a4_pages(browser, sample_run, tmp_path):
    """A funder's printout: the summary and the results that matter; the appendix stays folded."""
    pages = {}
    context = browser.new_context(offline=True)
    page = context.new_page()
    for report in sorted((sample_run / "regions").glob("*.html")):
        page.goto(report.as_uri(), wait_until="load")
        page.emulate_media(media="print")
        pdf = tmp_path / f"{report.stem}.pdf"
        page.pdf(path=str(pdf), format="A4", print_background=True)
        pages[report.stem] = _pdf_pages(pdf)
    context.close()
    assert pages and max(pages.values()) <= 12, pages
