"""Every published page passes the same checks a careful reviewer would make by hand.

No external URL or resource (the pages must work offline), no code, prompts or
parameters, no traceback text, a text alternative on every image and inline
chart, a language, numbered tables and figures, and an index that links every
report. The checker is tested on bad pages first (it must be able to fail),
then run on a hand-made run with every optional results table and on a whole
pipeline run of a simulated contract folder.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from evalkit.executors import render_reports
from evalkit.export import write_results_workbook
from evalkit.pipeline import run, slugify
from evalkit.render import write_index
from evalkit.simulate import simulate
from test_render import write_prepared_run

URL_ATTRIBUTES = ("src", "href", "action", "data", "poster", "srcset", "formaction", "xlink:href", "background")
LOCAL_PREFIXES = ("data:", "#", "../", "regions/", "results/", "briefs/")
FORBIDDEN_TAGS = {"script", "link", "iframe", "object", "embed", "base", "pre", "textarea", "input"}
# (markdown cells also sit in a jp-InputArea, so that class alone is no sign of code)
CODE_MARKERS = ("jp-InputPrompt", "jp-OutputPrompt", "jp-Editor", 'class="highlight', "jp-CodeMirror",
                "In&nbsp;[", "Out[", "injected-parameters", "application/vnd.jupyter.stderr")
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "', "\x1b[", "---------------------------------------")
NAMESPACE = re.compile(r'xmlns(:\w+)?="http://www\.w3\.org/[^"]*"')


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.images: list[str | None] = []
        self.charts: list[str | None] = []
        self.lang: str | None = None
        self.in_title, self.title = False, ""
        self.captions: list[str] = []
        self._caption: list[str] | None = None
        self.meta_refresh = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        for name in URL_ATTRIBUTES:
            if attrs.get(name):
                self.urls.append(attrs[name].strip())
        if tag == "html":
            self.lang = attrs.get("lang")
        if tag == "img":
            self.images.append(attrs.get("alt"))
        if tag == "svg":
            label = attrs.get("aria-label") if attrs.get("role") == "img" else None
            self.charts.append(label)
        if tag == "title":
            self.in_title = True
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":
            self.meta_refresh = True
        if tag in ("caption", "figcaption"):
            self._caption = []

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        if tag in ("caption", "figcaption") and self._caption is not None:
            self.captions.append("".join(self._caption).strip())
            self._caption = None

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        if self._caption is not None:
            self._caption.append(data)


def page_problems(page: str, *, numbered: bool = True) -> list[str]:
    """Everything wrong with one page, in words (empty when the page passes)."""
    problems = []
    parsed = _Page()
    parsed.feed(page)
    text = NAMESPACE.sub("", page)
    for match in re.finditer(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", text):
        problems.append(f"external URL {match.group(0)!r}")
    for url in parsed.urls:
        if not url.startswith(LOCAL_PREFIXES) or "//" in url.split(",")[0]:
            problems.append(f"link or resource outside the page's folder: {url[:80]!r}")
    for match in re.finditer(r"url\(\s*['\"]?([^'\")]*)", text):
        if not match.group(1).startswith(("data:", "#")):
            problems.append(f"CSS url() to {match.group(1)[:60]!r}")
    if "@import" in text:
        problems.append("CSS @import")
    for tag in sorted(FORBIDDEN_TAGS & set(parsed.tags)):
        problems.append(f"<{tag}> element")
    if parsed.meta_refresh:
        problems.append("meta refresh")
    for marker in CODE_MARKERS:
        if marker in page:
            problems.append(f"code, prompt or parameter marker {marker!r}")
    for marker in TRACEBACK_MARKERS:
        if marker in page:
            problems.append(f"traceback text {marker!r}")
    if re.search(r"\b\w+Error: ", page):
        problems.append("an exception message")
    problems += [f"image {i + 1} without alt text" for i, alt in enumerate(parsed.images) if not (alt or "").strip()]
    problems += [f"inline chart {i + 1} without role=img and aria-label"
                 for i, label in enumerate(parsed.charts) if not (label or "").strip()]
    if not parsed.lang:
        problems.append("no lang attribute on <html>")
    if not parsed.title.strip():
        problems.append("empty <title>")
    if numbered:
        for kind in ("Table", "Figure"):
            numbers = [int(m.group(1)) for c in parsed.captions for m in [re.match(rf"{kind} (\d+)\.", c)] if m]
            if numbers != list(range(1, len(numbers) + 1)):
                problems.append(f"{kind.lower()}s numbered {numbers}")
        unnumbered = [c[:40] for c in parsed.captions if not re.match(r"(Table|Figure) \d+\.", c)]
        if unnumbered:
            problems.append(f"captions without a number: {unnumbered}")
    return problems


def index_problems(index: str, slugs: list[str]) -> list[str]:
    """The index must link every region's report."""
    return [f"no link to regions/{slug}.html" for slug in slugs if f'href="regions/{slug}.html"' not in index]


# --------------------------------------------------------------------------- the checker can fail

GOOD = ('<!DOCTYPE html><html lang="en"><head><title>x</title></head><body><main>'
        '<figure><img src="data:image/png;base64,AAAA" alt="A chart"><figcaption>Figure 1. A</figcaption></figure>'
        '<svg class="ek-forest" role="img" aria-label="Forest"></svg>'
        '<table><caption>Table 1. T</caption></table><a href="regions/gauteng.html">G</a></main></body></html>')


def test_a_good_page_passes():
    assert page_problems(GOOD) == []


@pytest.mark.parametrize("bad, expected", [
    (GOOD.replace("data:image/png;base64,AAAA", "https://cdn.example.org/a.png"), "external URL"),
    (GOOD.replace("</main>", '<link rel="stylesheet" href="style.css"></main>'), "<link> element"),
    (GOOD.replace("</main>", "<script>fetch('x')</script></main>"), "<script> element"),
    (GOOD.replace("</main>", '<div style="background: url(bg.png)"></div></main>'), "CSS url()"),
    (GOOD.replace("</main>", '<div class="jp-InputArea"><div class="jp-InputPrompt">In [1]:</div><div class="jp-Editor">import evalkit</div></div></main>'), "code, prompt"),
    (GOOD.replace("</main>", "<p>Traceback (most recent call last):</p></main>"), "traceback text"),
    (GOOD.replace("</main>", "<p>KeyError: 'elom_total'</p></main>"), "exception message"),
    (GOOD.replace(' alt="A chart"', ""), "without alt text"),
    (GOOD.replace(' alt="A chart"', ' alt=" "'), "without alt text"),
    (GOOD.replace(' role="img" aria-label="Forest"', ""), "inline chart 1 without"),
    (GOOD.replace(' lang="en"', ""), "no lang"),
    (GOOD.replace("Figure 1.", "Figure 2."), "figures numbered [2]"),
    (GOOD.replace("Table 1. T", "T"), "captions without a number"),
    (GOOD.replace("regions/gauteng.html", "//evil.example/x"), "outside the page's folder"),
])
def test_the_checker_catches(bad, expected):
    problems = page_problems(bad)
    assert any(expected in p for p in problems), problems


def test_index_must_link_every_report():
    assert index_problems(GOOD, ["gauteng"]) == []
    assert index_problems(GOOD, ["gauteng", "limpopo"]) == ["no link to regions/limpopo.html"]


# --------------------------------------------------------------------------- real pages

@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A run with every optional results table, the workbook, and three regions (ok, not estimable, failed)."""
    out, processed, estimates = write_prepared_run(tmp_path_factory.mktemp("full"), full=True)
    write_results_workbook(out)
    renders = render_reports([("Gauteng", "gauteng"), ("Northern Cape", "northern-cape"), ("Limpopo", "limpopo")],
                             out, processed, jobs=2, timeout=120)
    write_index(out, estimates, renders)
    return out


@pytest.mark.slow
def test_every_page_of_a_full_run_passes(full_run):
    for slug in ("gauteng", "northern-cape", "limpopo"):
        page = (full_run / "regions" / f"{slug}.html").read_text(encoding="utf-8")
        assert page_problems(page) == [], slug
    index = (full_run / "index.html").read_text(encoding="utf-8")
    assert page_problems(index) == []
    assert index_problems(index, ["gauteng", "northern-cape", "limpopo"]) == []


@pytest.mark.slow
def test_full_report_has_every_section_from_the_results_tables(full_run):
    page = (full_run / "regions" / "gauteng.html").read_text(encoding="utf-8")
    for expected in (
        "What we found", "How sure are we?", "Some evidence, with caveats",
        "ANCOVA · CR2", "AIPW · CR1", "Height-for-age (z-score)",  # effects for every estimator and outcome
        "Difference by subgroup of children", "girls",
        "ELOM total by group and wave", "Children On Track for their age",
        "Child indicators in Gauteng", "What parents said", "84% (n 60)", "suppressed (n &lt;10)",
        "SCSPR-25 customer-service scorecard", "Not yet", "Partnership agreements (MOUs) signed",
        "Of 4 baseline characteristics, 2 were balanced", "Love plot", "Groups differed at baseline",
        "Why rows were dropped", "unknown province — never guessed, centre excluded",
        "Records changed, flagged or dropped", "province alias",
        "q-value (BH)", "the small-sample correction (CR2) changes the conclusion",
        "could reliably detect (80% power, 5% level) an effect of about 0.31 SD",
        "Reproducibility stamp", "balance, balance_joint, power",
    ):
        assert expected in page, expected
    index = (full_run / "index.html").read_text(encoding="utf-8")
    assert "What we found across all regions" in index and "+0.6 to +2.4 points" in index
    assert 'href="results/results.xlsx"' in index


@pytest.mark.slow
def test_every_page_of_a_simulated_contract_folder_passes(tmp_path):
    data = tmp_path / "data"
    simulate(data, seed=4242, scale=0.3)
    result = run(data, tmp_path / "out", jobs=2, progress=lambda _: None)
    out = result.output_dir
    slugs = [info["slug"] for info in result.region_status.values()]
    assert len(slugs) >= 5
    for slug in slugs:
        page = (out / "regions" / f"{slug}.html").read_text(encoding="utf-8")
        assert page_problems(page) == [], slug
    index = (out / "index.html").read_text(encoding="utf-8")
    assert page_problems(index) == []
    assert index_problems(index, slugs) == []
    assert sorted(slugs) == sorted(slugify(r) for r in result.region_status)
