"""End to end: execute the regional notebook on a small prepared run and check the HTML.

The fixture writes exactly what the pipeline prepares before any notebook runs
(estimates, child outcomes, cleaning log, manifest) for two regions with known
rows: Gauteng (estimate 2.0, 95% CI 0.5 to 3.5) and Northern Cape (not estimable).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from evalkit import render
from evalkit.executors import render_reports
from evalkit.render import RegionRender, render_region_report, write_index

NC_REASON = ("Only 2 partnered and 4 comparison centres have children assessed at both baseline "
             "and endline; at least 3 of each are needed.")
ESTIMATE_COLUMNS = ["region", "outcome", "estimator", "inference", "estimate", "std_error", "df",
                    "ci_low", "ci_high", "p_value", "effect_size_sd", "n_children",
                    "n_centres_partnered", "n_centres_comparison", "status", "note"]


def write_prepared_run(root: Path, seed: int = 20251123, *, full: bool = False
                       ) -> tuple[Path, Path, pd.DataFrame]:
    """A finished pipeline run: ``<root>/out`` (results, log, manifest) and ``<root>/processed``.

    With ``full``, also every optional results table the other stages write (see
    :func:`write_full_results`), as a run with all of them would look.
    """
    rng = np.random.default_rng(seed)
    out, processed = root / "out", root / "processed"
    (out / "results").mkdir(parents=True)
    processed.mkdir()
    nan = float("nan")
    estimates = pd.DataFrame([
        ["Gauteng", "elom_total", "ancova", "CR1", 2.0, 0.7, 11, 0.5, 3.5, 0.01, 0.16, 240, 6, 6, "ok",
         "Few centres in one arm (6 partnered, 6 comparison): cluster-robust standard errors may be too small."],
        ["Northern Cape", "elom_total", "ancova", "CR1", nan, nan, nan, nan, nan, nan, nan, 30, 2, 4,
         "not_estimable", NC_REASON],
    ], columns=ESTIMATE_COLUMNS)
    estimates.to_csv(out / "results" / "estimates.csv", index=False)

    rows = []
    for region, prefix, n_centres, n_partnered, per_centre in (("Gauteng", "GP", 12, 6, 20),
                                                               ("Northern Cape", "NC", 6, 2, 5)):
        for c in range(n_centres):
            centre, partnered = f"{prefix}{c:02d}", c < n_partnered
            for k in range(per_centre):
                baseline = rng.normal(45, 10)
                for wave, gain in (("baseline", 0.0), ("endline", 8.0 + 2.0 * partnered)):
                    total = float(np.clip(baseline + gain + rng.normal(0, 4), 0, 100))
                    age = 52.0 + (9 if wave == "endline" else 0) + rng.integers(0, 6)
                    cut = 46.32 if age < 60 else 54.38
                    band = ("On Track" if total >= cut else
                            "Falling Behind" if total >= cut - 10 else "Falling Far Behind")
                    rows.append(dict(
                        child_id=f"KID-{centre}-{k:02d}", centre_id=centre, region=region,
                        province=region, district="D1", wave=wave,
                        assessment_date=pd.Timestamp("2025-02-01" if wave == "baseline" else "2025-10-01"),
                        age_months=age, sex=rng.choice(["female", "male"]),
                        setting=rng.choice(["urban", "peri-urban", "rural"]), is_partnered=partnered,
                        **{d: total / 5 for d in ("elom_gmd", "elom_fmc", "elom_enm", "elom_cef", "elom_ell")},
                        elom_total=total, elom_band=band, haz=rng.normal(-0.5, 1), waz=0.0, whz=0.0,
                        baz=0.0, haz_flag=False, waz_flag=False, whz_flag=False, baz_flag=False,
                        attendance_rate=0.8))
    pd.DataFrame(rows).to_parquet(processed / "child_outcomes.parquet", index=False)

    log_rows = ([["centres", "GP01", "province", "GT", "Gauteng", "province_alias", "changed"]] * 14
                + [["child_assessments", "KID-GP01-01", "height_cm", "1050", "", "height_in_mm", "flagged"]] * 3
                + [["child_assessments", "KID-GP02-03", "", "", "", "exact_duplicate_row", "dropped"]] * 25)
    pd.DataFrame(log_rows, columns=["table", "record_id", "column", "old_value", "new_value", "rule",
                                    "action"]).to_csv(out / "cleaning_log.csv", index=False)
    (out / "run_manifest.json").write_text(json.dumps({
        "evalkit_version": "0.1.0", "started_at": "2025-11-23T10:00:00+00:00",
        "parameters": {"level": "province", "regions": "all"},
        "inputs": {"child_assessments.csv": {"sha256": "ab" * 32}, "centres.csv": {"sha256": "cd" * 32}},
        "packages": {"pandas": "3.1.1", "numpy": "2.3.0"},
        "rows": {"centres": {"rows_in": 19, "rows_kept": 18, "rows_dropped": 1,
                             "dropped_by_rule": {"unknown_province: never guessed, centre excluded": 1}},
                 "child_assessments": {"rows_in": 605, "rows_kept": 540, "rows_dropped": 65,
                                       "dropped_by_rule": {"exact_duplicate_row": 25,
                                                           "centre_id_not_in_centres": 40}}}}))
    if full:
        estimates = write_full_results(out, processed, estimates)
    return out, processed, estimates


EXTRA_ESTIMATE_COLUMNS = ["q_value_bh", "q_value_sharpened", "subgroup", "warning", "is_primary"]


def write_full_results(out: Path, processed: Path, estimates: pd.DataFrame) -> pd.DataFrame:
    """Every optional results table, in the agreed schemas, with known values.

    Gauteng gets several estimators and outcomes (ANCOVA CR1 primary 2.0 [0.5, 3.5];
    CR2 0.2 wider and flagged cr1_cr2_disagree; an AIPW row; a HAZ row; girls/boys
    subgroups), a National pooled row (1.5 [0.6, 2.4]), balance with one failing
    variable, power with an MDE of 0.31 SD, indicators, satisfaction, scorecard,
    milestones and a data-quality summary.
    """
    nan = float("nan")
    base = estimates.assign(q_value_bh=[0.02, nan], q_value_sharpened=[0.03, nan], subgroup="",
                            warning=["few_partnered_centres;few_comparison_centres", ""],
                            is_primary=[True, True])
    extra = pd.DataFrame([
        ["Gauteng", "elom_total", "ancova", "CR2", 2.0, 0.9, 8.3, -0.1, 4.1, 0.06, 0.16, 240, 6, 6, "ok", "",
         0.07, 0.08, "", "few_partnered_centres;cr1_cr2_disagree", False],
        ["Gauteng", "elom_total", "aipw", "CR1", 2.4, 0.8, 11, 0.6, 4.2, 0.01, 0.19, 240, 6, 6, "ok", "",
         0.02, 0.03, "", "", False],
        ["Gauteng", "haz", "ancova", "CR1", 0.05, 0.06, 11, -0.08, 0.18, 0.4, 0.05, 240, 6, 6, "ok", "",
         0.4, 0.45, "", "", False],
        ["Gauteng", "elom_total", "ancova", "CR1", 2.6, 1.0, 11, 0.4, 4.8, 0.02, 0.2, 118, 6, 6, "ok", "",
         nan, nan, "girls", "", False],
        ["Gauteng", "elom_total", "ancova", "CR1", 1.4, 1.1, 11, -1.0, 3.8, 0.2, 0.11, 122, 6, 6, "ok", "",
         nan, nan, "boys", "", False],
        ["National", "elom_total", "ancova", "CR1", 1.5, 0.45, 16, 0.6, 2.4, 0.003, 0.12, 270, 8, 10, "ok", "",
         0.01, 0.01, "", "", True],
    ], columns=ESTIMATE_COLUMNS + EXTRA_ESTIMATE_COLUMNS)
    estimates = pd.concat([base, extra], ignore_index=True)
    estimates.to_csv(out / "results" / "estimates.csv", index=False)
    results = out / "results"
    balance_rows = []
    for region, n_p, n_c in (("Gauteng", 120, 120), ("Northern Cape", 10, 20)):
        for variable, label, level, smd, flag in (("elom_total_baseline", "Baseline ELOM total", "", 0.03, "good"),
                                                   ("age_months", "Age (months)", "", -0.12, "adjust"),
                                                   ("setting", "Setting", "urban", 0.41, "fails"),
                                                   ("sex", "Sex", "female", 0.02, "good")):
            balance_rows.append(dict(region=region, variable=variable, label=label, level=level,
                                     n_partnered=n_p, n_comparison=n_c, mean_partnered=45 + smd,
                                     sd_partnered=10, mean_comparison=45, sd_comparison=10, diff_raw=smd * 10,
                                     diff_adjusted=smd * 9, se_adjusted=0.5, p_adjusted=0.2, smd=smd,
                                     smd_denominator=10, variance_ratio=1.1, flag=flag))
    pd.DataFrame(balance_rows).to_csv(results / "balance.csv", index=False)
    pd.DataFrame([dict(region="Gauteng", test="joint_f", statistic=1.8, df1=4, df2=11, p_value=0.2)]).to_csv(
        results / "balance_joint.csv", index=False)
    pd.DataFrame([dict(region="Gauteng", n_centres_partnered=6, n_centres_comparison=6, children_per_centre=20,
                       icc_baseline=0.2, mde_points=3.9, mde_sd=0.31, power_at_0_2_sd=0.45)]).to_csv(
        results / "power.csv", index=False)
    indicator_rows = []
    for region, n in (("Gauteng", 120), ("Northern Cape", 10)):
        for arm in ("partnered", "comparison"):
            for wave in ("baseline", "endline"):
                centres = 6 if region == "Gauteng" else (2 if arm == "partnered" else 4)
                indicator_rows.append(dict(region=region, arm=arm, wave=wave, n_children=n if arm == "comparison" else n // 2 * 2,
                                           n_centres=centres, elom_total_mean=47.25, elom_total_sd=11.0,
                                           on_track_pct=52.5, haz_mean=-0.52, stunted_pct=6.5,
                                           attendance_rate_mean=0.81))
    pd.DataFrame(indicator_rows).to_csv(results / "indicators.csv", index=False)
    pd.DataFrame([
        dict(region="Gauteng", arm="partnered", item="overall", n_valid=60, top2_pct=84.0, mean_score=4.2),
        dict(region="Gauteng", arm="comparison", item="overall", n_valid=55, top2_pct=71.0, mean_score=3.9),
        dict(region="Gauteng", arm="partnered", item="nps", n_valid=58, top2_pct=nan, mean_score=32.0),
        dict(region="Gauteng", arm="comparison", item="nps", n_valid=8, top2_pct=nan, mean_score=-5.0),
    ]).to_csv(results / "satisfaction.csv", index=False)
    pd.DataFrame([
        dict(scope="national", region="", metric="practitioners_trained", value=512, target=500, unit="count",
             is_met=True, note=""),
        dict(scope="national", region="", metric="monthly_customer_service_score", value=81.0, target=85,
             unit="%", is_met=False, note=""),
        dict(scope="region", region="Gauteng", metric="centres_with_feedback_channel", value=44, target=40,
             unit="count", is_met=True, note=""),
    ]).to_csv(results / "scorecard.csv", index=False)
    pd.DataFrame([dict(scope="region", region="Gauteng", month=f"2025-{m:02d}", cumulative_mous=m,
                       planned_mous=m + 1) for m in range(1, 11)]).to_csv(results / "milestones.csv", index=False)
    pd.DataFrame([
        dict(table="child_assessments", action="dropped", rule="exact_duplicate_row", n_rows=25),
        dict(table="centres", action="changed", rule="province_alias", n_rows=14),
        dict(table="child_assessments", action="flagged", rule="height_in_mm", n_rows=3),
    ]).to_csv(results / "data_quality.csv", index=False)
    pd.DataFrame(dict(centre_id=[f"GP{c:02d}" for c in range(12)], region="Gauteng",
                      is_partnered=[c < 6 for c in range(12)], setting="urban",
                      customer_service_score_pct=np.linspace(60, 95, 12))).to_parquet(
        processed / "centre_outcomes.parquet", index=False)
    return estimates


class _Links(HTMLParser):
    """Collects every URL-bearing attribute and every <img>'s alt."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.img_alts: list[str | None] = []
        self.svg_labels: list[str | None] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        for name in ("src", "href", "action", "data", "poster", "srcset"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        if tag == "img":
            self.img_alts.append(attrs.get("alt"))
        if tag == "svg":
            self.svg_labels.append(attrs.get("aria-label") if attrs.get("role") == "img" else None)


def assert_self_contained_report(page: str) -> _Links:
    parser = _Links()
    parser.feed(page)
    # XML namespace names are identifiers, never fetched
    assert not re.search(r"https?://", re.sub(r'xmlns(:\w+)?="http://www\.w3\.org/[^"]*"', "", page)), \
        "a network URL is in the page"
    assert not re.search(r"url\(\s*['\"]?(?!data:)", page), "CSS refers to an outside resource"
    for url in parser.urls:
        assert url.startswith(("data:", "#", "../", "regions/", "results/")) and "//" not in url.split(",")[0], url
    assert {"script", "link", "iframe", "pre"}.isdisjoint(parser.tags), parser.tags & {"script", "link", "pre"}
    assert all(alt and alt.strip() for alt in parser.img_alts), parser.img_alts
    assert all(label and label.strip() for label in parser.svg_labels), "an inline chart without a text alternative"
    return parser


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("render")
    out, processed, estimates = write_prepared_run(root)
    renders = render_reports([("Gauteng", "gauteng"), ("Northern Cape", "northern-cape"),
                              ("Limpopo", "limpopo")], out, processed, jobs=2, timeout=120)
    index = write_index(out, estimates, renders)
    return out, processed, estimates, {r.slug: r for r in renders}, index


@pytest.mark.slow
def test_statuses_paths_and_timings(run):
    out, _, _, renders, _ = run
    assert [r.status for r in renders.values()] == ["ok", "not_estimable", "failed"]
    assert renders["northern-cape"].reason == NC_REASON
    assert renders["gauteng"].reason == ""
    for r in renders.values():
        assert isinstance(r, RegionRender) and r.path == f"regions/{r.slug}.html"
        assert (out / r.path).is_file() and r.seconds >= 0
    assert (out / "notebooks" / "gauteng.ipynb").is_file()
    assert not list((out / "regions").glob(".*")), "temporary files left behind"


@pytest.mark.slow
def test_estimated_region_report(run):
    out, processed, _, _, _ = run
    page = (out / "regions" / "gauteng.html").read_text(encoding="utf-8")
    parser = assert_self_contained_report(page)
    assert '<html lang="en">' in page
    assert "<h1>Gauteng</h1>" in page
    assert ("Children in partnered centres scored 2.0 points higher on the ELOM total (about 0.16 SD) "
            "than similar children in comparison centres.") in page
    assert "The likely range of the difference is +0.5 to +3.5 points (the 95% interval)" in page
    assert len(parser.img_alts) == 2  # distribution and On Track charts
    assert page.count("<svg ") == 2  # headline interval and the effects forest plot
    assert "Table 1." in page and "Figure 3." in page and "Figure 4." not in page
    assert "t distribution with 11 degrees of freedom" in page
    assert "only 6 partnered and 6 comparison centres" in page  # few-centre warning
    assert "ab" * 32 in page  # input hash in the stamp
    # nothing of the code, the parameters or the children leaks
    for leaked in ("injected-parameters", "Traceback", "reporting.", "load_region", "import ",
                   str(out), str(processed), "KID-", "child_id", "In&nbsp;[", "Out[",
                   "Executed once per region"):  # the last is the developer note (tag remove-cell)
        assert leaked not in page, leaked


@pytest.mark.slow
def test_not_estimable_region_report(run):
    out, *_ = run
    page = (out / "regions" / "northern-cape.html").read_text(encoding="utf-8")
    assert_self_contained_report(page)
    assert "<h1>Northern Cape</h1>" in page
    assert ("We could not estimate an effect in Northern Cape because only 2 partnered and 4 comparison "
            "centres have children assessed at both baseline and endline") in page
    assert "suppressed" in page  # the two partnered centres' statistics
    assert "injected-parameters" not in page and "Traceback" not in page


@pytest.mark.slow
def test_missing_region_gives_unavailable_page_and_a_log(run):
    out, *_ = run
    page = (out / "regions" / "limpopo.html").read_text(encoding="utf-8")
    assert_self_contained_report(page)
    assert "unavailable" in page and "no row for Limpopo" in page and "Traceback" not in page
    log = (out / "logs" / "limpopo.log").read_text(encoding="utf-8")
    assert "status: failed" in log and "Traceback" in log


@pytest.mark.slow
def test_index_links_every_region_and_gives_reasons(run):
    out, *_, index = run
    page = index.read_text(encoding="utf-8")
    assert_self_contained_report(page)
    for slug in ("gauteng", "northern-cape", "limpopo"):
        assert f'href="regions/{slug}.html"' in page
    assert NC_REASON in page
    assert "no row for Limpopo" in page
    assert "0.5 to 3.5" in page and "+0.16" in page
    assert "Of 3 regions, 1 has an estimate: in 1 (Gauteng) children in partnered centres scored clearly higher." in page
    assert "1 (Northern Cape) could not be estimated. 1 report (Limpopo) failed to build." in page


def _corrupt_processed(root: Path) -> Path:
    """A processed-data folder whose child_outcomes.parquet is not parquet (fails inside the notebook)."""
    broken = root / "broken"
    broken.mkdir()
    (broken / "child_outcomes.parquet").write_bytes(b"this is not parquet")
    return broken


@pytest.mark.slow
def test_error_inside_the_notebook_is_isolated(tmp_path, run):
    """A corrupt child-outcomes file fails in the kernel: unavailable page, traceback only in the log."""
    out, *_ = run
    result = render_region_report("Gauteng", "gauteng-broken", out, _corrupt_processed(tmp_path), timeout=60)
    assert result.status == "failed"
    assert "error while reading or summarising" in result.reason
    page = (out / result.path).read_text(encoding="utf-8")
    assert "unavailable" in page and "Traceback" not in page and "Gauteng" in page
    log = (out / "logs" / "gauteng-broken.log").read_text(encoding="utf-8")
    assert "ArrowInvalid" in log and "load_region" in log  # the kernel's traceback
    assert "\x1b[" not in log  # ANSI colours stripped
    assert (out / "notebooks" / "gauteng-broken.ipynb").is_file()  # the failed run is kept


def test_bad_processed_dir_fails_before_any_kernel_starts(tmp_path, monkeypatch):
    out, _, _ = write_prepared_run(tmp_path)
    monkeypatch.setattr(render, "_execute", lambda *a, **k: pytest.fail("a kernel was started"))
    result = render_region_report("Gauteng", "gauteng", out, tmp_path / "nowhere")
    assert result.status == "failed" and "prepared child data" in result.reason
    assert "unavailable" in (out / "regions" / "gauteng.html").read_text(encoding="utf-8")


def test_render_reports_rejects_unsafe_or_duplicate_slugs(tmp_path):
    with pytest.raises(ValueError, match="slug"):
        render_reports([("Gauteng", "../gauteng")], tmp_path, tmp_path)
    with pytest.raises(ValueError, match="share"):
        render_reports([("Gauteng", "gp"), ("Gauteng 2", "gp")], tmp_path, tmp_path)
    assert render_reports([], tmp_path, tmp_path) == []


def test_kernel_that_fails_to_start_is_retried_once_over_ipc(tmp_path, monkeypatch):
    out, processed, _ = write_prepared_run(tmp_path)
    calls = []

    def flaky_execute(input_path, output_path, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:  # nothing written, no cell ran: a kernel start failure
            raise RuntimeError("Kernel didn't respond in 60 seconds")
        nbformat.write(nbformat.read(input_path, as_version=4), output_path)

    monkeypatch.setattr(papermill, "execute_notebook", flaky_execute)
    result = render_region_report("Gauteng", "gauteng", out, processed)
    assert result.status == "ok" and len(calls) == 2
    assert calls[0]["parameters"] == {"region": "Gauteng", "output_dir": str(out.resolve()),
                                      "processed_dir": str(processed.resolve())}
    config = calls[0]["config"].KernelManager
    assert config.transport == "ipc" and config.ip != calls[1]["config"].KernelManager.ip
    page = (out / "regions" / "gauteng.html").read_text(encoding="utf-8")
    assert 'region = "Gauteng"' not in page  # the parameters cell is dropped


def test_error_in_a_cell_is_not_retried(tmp_path, monkeypatch):
    out, processed, _ = write_prepared_run(tmp_path)
    calls = []

    def failing_execute(input_path, output_path, **kwargs):
        calls.append(kwargs)
        nb = nbformat.read(input_path, as_version=4)
        nb.cells[1].execution_count = 1
        nbformat.write(nb, output_path)
        raise PapermillExecutionError(1, 1, "x", "KeyError", "'elom_total'", ["Traceback line"])

    monkeypatch.setattr(papermill, "execute_notebook", failing_execute)
    result = render_region_report("Gauteng", "gauteng", out, processed)
    assert result.status == "failed" and len(calls) == 1
    assert "KeyError" in result.reason
    assert "Traceback line" in (out / "logs" / "gauteng.log").read_text(encoding="utf-8")


def test_conversion_refuses_a_page_that_would_load_from_the_network(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("display_data", data={
            "text/html": '<script src="https://cdn.example.org/plot.js"></script>'})])])
    path = tmp_path / "plot.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(render._RenderError, match="internet"):
        render._convert(path, "Gauteng")


def test_fast_kernel_is_used_first_and_an_ordinary_kernel_on_retry(tmp_path, monkeypatch):
    """The executors' forked kernel gets the first attempt; a start failure retries without it."""
    out, processed, _ = write_prepared_run(tmp_path)
    calls = []

    class FastKernelManager:  # stands in for evalkit.executors.ForkedKernelManager
        pass

    def flaky_execute(input_path, output_path, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        nbformat.write(nbformat.read(input_path, as_version=4), output_path)

    monkeypatch.setattr(papermill, "execute_notebook", flaky_execute)
    result = render_region_report("Gauteng", "gauteng", out, processed, kernel_manager_class=FastKernelManager)
    assert result.status == "ok" and len(calls) == 2
    assert calls[0]["kernel_manager_class"] is FastKernelManager
    assert calls[0]["shutdown_kernel"] == "immediate"
    assert "kernel_manager_class" not in calls[1] and "shutdown_kernel" not in calls[1]


def test_a_cell_over_its_time_limit_is_not_retried(tmp_path, monkeypatch):
    """No notebook written, but a cell timed out: the kernel did start, so no second attempt."""
    from nbclient.exceptions import CellTimeoutError

    out, processed, _ = write_prepared_run(tmp_path)
    calls = []

    def slow_execute(input_path, output_path, **kwargs):
        calls.append(kwargs)
        raise CellTimeoutError("A cell timed out while it was being executed, after 5 seconds.")

    monkeypatch.setattr(papermill, "execute_notebook", slow_execute)
    result = render_region_report("Gauteng", "gauteng", out, processed, timeout=5)
    assert result.status == "failed" and len(calls) == 1
    assert result.reason == ("Building the report took longer than the limit of 5 seconds per step "
                             "and was stopped.")


def test_the_notebook_to_execute_can_be_given(tmp_path, monkeypatch):
    """Executors pass the notebook path they were given, so another process runs the same file."""
    out, processed, _ = write_prepared_run(tmp_path)
    other = tmp_path / "other.ipynb"
    other.write_bytes(render.REGIONAL_NOTEBOOK.read_bytes())
    seen = []

    def record(input_path, output_path, **kwargs):
        seen.append(input_path)
        nbformat.write(nbformat.read(input_path, as_version=4), output_path)

    monkeypatch.setattr(papermill, "execute_notebook", record)
    assert render_region_report("Gauteng", "gauteng", out, processed, notebook=other).status == "ok"
    assert seen == [str(other)]
    missing = render_region_report("Gauteng", "gauteng", out, processed, notebook=tmp_path / "gone.ipynb")
    assert missing.status == "failed" and "notebook is missing" in missing.reason


@pytest.mark.slow
def test_converted_page_is_the_same_with_a_reused_exporter(run):
    """The exporter (and its compiled templates) is kept per thread; pages must not depend on it."""
    out, *_ = run
    first = render._convert(out / "notebooks" / "gauteng.ipynb", "Gauteng")
    render._EXPORTERS.value = None  # a fresh exporter, as the first region of a process gets
    assert render._convert(out / "notebooks" / "gauteng.ipynb", "Gauteng") == first


@pytest.mark.slow
def test_report_exporter_gives_nbconverts_document(run):
    """The exporter skips nbconvert's BeautifulSoup re-parse; the document must be the same."""
    from bs4 import BeautifulSoup
    from nbconvert import HTMLExporter

    out, *_ = run
    nb = nbformat.read(out / "notebooks" / "gauteng.ipynb", as_version=4)
    nb.metadata["title"] = "Gauteng: ECD partnership evaluation"
    fast = render._exporter()
    plain = HTMLExporter(config=fast.config, template_name=render.REPORT_TEMPLATE,
                         extra_template_basedirs=[str(render.TEMPLATES)])
    plain.language_code = "en"
    ours, _ = fast.from_notebook_node(nb, resources={"metadata": {"name": "gauteng"}})
    theirs, _ = plain.from_notebook_node(nb, resources={"metadata": {"name": "gauteng"}})
    assert str(BeautifulSoup(ours, "html.parser")) == theirs


def test_image_without_alt_text_still_gets_nbconverts_placeholder(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("display_data", data={"text/html": '<img src="data:image/png;base64,AAAA">'})])])
    path = tmp_path / "plain.ipynb"
    nbformat.write(nb, path)
    page = render._convert(path, "Gauteng")
    assert 'alt="No description has been provided for this image"' in page


def _without_build_time(page: str) -> str:
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", "<built>", page)


@pytest.mark.slow
def test_a_region_without_a_kernel_gives_the_kernels_page_and_notebook(tmp_path, run):
    """In process (no kernel) a region gets the very page and cells a kernel gives: an estimated
    region (every figure and table) and a not-estimable one."""
    import shutil

    out, processed, *_ = run
    pages = {}
    for name, in_process in (("kernel", False), ("in-process", True)):
        here = tmp_path / name
        shutil.copytree(out, here, ignore=shutil.ignore_patterns("regions", "notebooks", "logs"))
        engines = []
        real_execute = papermill.execute_notebook

        def spy(*args, **kwargs):
            engines.append(kwargs.get("engine_name"))
            return real_execute(*args, **kwargs)

        papermill.execute_notebook = spy
        try:
            result = render_region_report("Northern Cape", "northern-cape", here, processed, timeout=60,
                                          in_process_notebook=in_process)
            estimated = render_region_report("Gauteng", "gauteng", here, processed, timeout=60,
                                             in_process_notebook=in_process)
        finally:
            papermill.execute_notebook = real_execute
        assert result.status == "not_estimable" and result.reason == NC_REASON
        assert estimated.status == "ok"
        assert engines == ([render.IN_PROCESS_ENGINE] * 2 if in_process else [None, None])
        pages[name] = here
    for slug in ("northern-cape", "gauteng"):
        ours = (pages["in-process"] / "regions" / f"{slug}.html").read_text(encoding="utf-8")
        kernels = (pages["kernel"] / "regions" / f"{slug}.html").read_text(encoding="utf-8")
        assert _without_build_time(ours) == _without_build_time(kernels), slug
        mine = nbformat.read(pages["in-process"] / "notebooks" / f"{slug}.ipynb", as_version=4)
        theirs = nbformat.read(pages["kernel"] / "notebooks" / f"{slug}.ipynb", as_version=4)
        assert mine.metadata.language_info == theirs.metadata.language_info
        assert [(c.cell_type, c.get("execution_count"), [(o.output_type, sorted(o.get("data", {})))
                                                         for o in c.get("outputs", [])]) for c in mine.cells] == \
               [(c.cell_type, c.get("execution_count"), [(o.output_type, sorted(o.get("data", {})))
                                                         for o in c.get("outputs", [])]) for c in theirs.cells]
        assert all(c.metadata.papermill.status == "completed" for c in mine.cells)


@pytest.mark.slow
def test_error_in_a_cell_without_a_kernel_is_isolated_like_a_kernels(tmp_path, run):
    """A cell that raises in process: the same plain reason, the cell's traceback in the log."""
    out, *_ = run
    result = render_region_report("Northern Cape", "nc-broken", out, _corrupt_processed(tmp_path), timeout=60,
                                  in_process_notebook=True)
    assert result.status == "failed"
    assert result.reason == ("The report stopped with an error while reading or summarising this region's "
                             "data (ArrowInvalid).")
    log = (out / "logs" / "nc-broken.log").read_text(encoding="utf-8")
    assert "ArrowInvalid" in log and "load_region" in log
    nb = nbformat.read(out / "notebooks" / "nc-broken.ipynb", as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "ArrowInvalid"
    assert "Traceback" not in (out / result.path).read_text(encoding="utf-8")


def test_in_process_engine_keeps_a_kernels_outputs(tmp_path):
    """Last expression → execute_result (html + plain), prints → stream, ';' hides, None shows nothing."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 2"),
        nbformat.v4.new_code_cell("from IPython.display import HTML\nprint('hi')\nHTML(f'<b>{x}</b>')"),
        nbformat.v4.new_markdown_cell("text"),
        nbformat.v4.new_code_cell("x * 3;"),
        nbformat.v4.new_code_cell("None"),
        nbformat.v4.new_code_cell("x + 1"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source, target = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    render._register_in_process_engine()
    done = papermill.execute_notebook(str(source), str(target), engine_name=render.IN_PROCESS_ENGINE,
                                      progress_bar=False, kernel_name="python3")
    cells = [c for c in done.cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] == [1, 2, 3, 4, 5]
    assert cells[0].outputs == []
    stream, result = cells[1].outputs
    assert stream.output_type == "stream" and stream.text == "hi\n"
    assert result.output_type == "execute_result" and result.execution_count == 2
    assert result.data == {"text/html": "<b>2</b>", "text/plain": "<IPython.core.display.HTML object>"}
    assert cells[2].outputs == [] and cells[3].outputs == []
    assert cells[4].outputs[0].data == {"text/plain": "3"}
    assert nbformat.read(target, as_version=4).cells[5].outputs[0].data["text/plain"] == "3"


def test_in_process_engine_error_stops_the_run_as_papermill_does(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("{}['elom_total']"),
                                         nbformat.v4.new_code_cell("1")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source, target = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    render._register_in_process_engine()
    with pytest.raises(PapermillExecutionError) as caught:
        papermill.execute_notebook(str(source), str(target), engine_name=render.IN_PROCESS_ENGINE,
                                   progress_bar=False, kernel_name="python3")
    assert caught.value.ename == "KeyError" and "elom_total" in caught.value.evalue
    written = nbformat.read(target, as_version=4)
    assert [c.execution_count for c in written.cells if c.cell_type == "code"][-1] is None  # never ran


def test_regions_with_an_estimate_go_first_and_results_keep_the_callers_order(tmp_path):
    out, processed, _ = write_prepared_run(tmp_path)
    submitted = []

    class Recorder:
        def run(self, jobs, progress=None):
            submitted.extend(job.region for job in jobs)
            return [RegionRender(job.region, job.slug, "ok", f"regions/{job.slug}.html", "", 0.0)
                    for job in reversed(jobs)]

    results = render_reports([("Northern Cape", "northern-cape"), ("Gauteng", "gauteng"),
                              ("Limpopo", "limpopo")], out, processed, executor=Recorder())
    assert submitted == ["Gauteng", "Northern Cape", "Limpopo"]  # Limpopo has no row at all
    assert [r.slug for r in results] == ["northern-cape", "gauteng", "limpopo"]


def test_network_reference_check_finds_what_a_full_search_finds():
    """The fast check (only where a ``//`` could end a match) agrees with searching everywhere."""
    import random

    rng = random.Random(20251123)
    atoms = ["src", "SRC", "href", "action", "poster", "srcset", "url(", "URL(", "@import", "=", " ", "\n", '"',
             "'", "//", "/", "http:", "https:", "HTTPS:", "x", "a", "-", "(", ":", "s", "rc", "ſrc", "é"]
    pages = ["".join(rng.choice(atoms) for _ in range(rng.randint(1, 14))) for _ in range(20_000)]
    pages += ['<img src="data:image/png;base64,' + "A/" * 3000 + '"><img src=//cdn.example.org/x.png>',
              '<img src="data:image/png;base64,' + "A//" * 3000 + '" alt="x">',
              "<style>@import 'https://fonts.example.org/a.css';</style>", "<a href = \n 'http://x'>"]
    found = 0
    for page in pages:
        full, fast = render._NETWORK_REFERENCE.search(page), render._network_reference(page)
        assert (full is None) == (fast is None), page
        if full is not None:
            found += 1
            assert fast.group(0) == full.group(0)
    assert 100 < found < len(pages) - 100  # both kinds of page were tried
