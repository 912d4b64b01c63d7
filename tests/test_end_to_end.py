"""`evalkit run` on a simulated folder: every output of the contract, and the truth covered.

The simulated folder has known true effects per province (truth.csv); the
primary 95% intervals must cover them in most provinces, Northern Cape is built
to have too few partnered centres, and nothing personal may leak.
"""

import json
import shutil
import subprocess
import sys

import nbformat
import pandas as pd
import pytest

from evalkit import render
from evalkit.config import ELOM_DOMAINS
from evalkit.render import REGIONAL_NOTEBOOK
from evalkit.estimation import ESTIMATE_COLUMNS
from evalkit.hashing import sha256_file
from evalkit.pipeline import run
from evalkit.simulate import simulate

pytestmark = pytest.mark.slow

SEED = 777
CHILD_OUTCOME_COLUMNS = {"child_id", "centre_id", "region", "wave", "age_months", "sex", *ELOM_DOMAINS,
                         "elom_total", "elom_band", "haz", "waz", "whz", "baz", "haz_flag", "waz_flag",
                         "whz_flag", "baz_flag", "attendance_rate"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = root / "data"
    simulate(data, seed=SEED, scale=1)
    before = {p.name: sha256_file(p) for p in data.iterdir()}
    out = root / "out"
    result = subprocess.run([sys.executable, "-m", "evalkit", "run", "--data", str(data), "--out", str(out),
                             "--jobs", "2"], capture_output=True, text=True)
    return data, out, before, result


def test_exit_status_and_every_output(finished_run):
    data, out, _, result = finished_run
    assert result.returncode == 0, result.stderr
    for path in ("index.html", "results/estimates.csv", "results/indicators.csv", "cleaning_log.csv",
                 "run_manifest.json", "processed/child_outcomes.parquet"):
        assert (out / path).is_file(), path
    estimates = pd.read_csv(out / "results" / "estimates.csv")
    assert list(estimates.columns[: len(ESTIMATE_COLUMNS)]) == ESTIMATE_COLUMNS
    primary = estimates.query("is_primary and region != 'National'")
    assert len(primary) == 9
    index = (out / "index.html").read_text(encoding="utf-8")
    for region in primary["region"]:
        slug = region.lower().replace(" ", "-")
        assert (out / "regions" / f"{slug}.html").is_file(), region
        assert f"regions/{slug}.html" in index
    gauteng = (out / "regions" / "gauteng.html").read_text(encoding="utf-8")
    for section in ("Were the groups alike", "Effective number of comparison centres", "CR2", "bootstrap"):
        assert section in gauteng, section


def test_raw_files_untouched(finished_run):
    data, _, before, _ = finished_run
    assert {p.name: sha256_file(p) for p in data.iterdir()} == before


def test_true_effects_covered_in_most_provinces(finished_run):
    data, out, _, _ = finished_run
    truth = pd.read_csv(data / "truth.csv").set_index("region")
    primary = (pd.read_csv(out / "results" / "estimates.csv")
               .query("is_primary and region != 'National'")
               .set_index("region"))
    assert primary.loc["Northern Cape", "status"] == "not_estimable"
    assert "partnered" in primary.loc["Northern Cape", "note"]
    ok = primary[primary["status"] == "ok"]
    assert len(ok) == 8
    true = truth.loc[ok.index, "true_effect_points"]
    covered = (ok["ci_low"] <= true) & (true <= ok["ci_high"])
    assert covered.sum() >= 6, pd.DataFrame({"true": true, "low": ok["ci_low"], "high": ok["ci_high"]})


def test_child_outcomes_are_de_identified_and_one_row_per_child_wave(finished_run):
    _, out, _, _ = finished_run
    outcomes = pd.read_parquet(out / "processed" / "child_outcomes.parquet")
    assert CHILD_OUTCOME_COLUMNS <= set(outcomes.columns)
    assert "child_name" not in outcomes.columns
    assert not outcomes.duplicated(["child_id", "wave"]).any()
    assert set(outcomes["wave"]) == {"baseline", "endline"}


def test_no_personal_data_in_any_output(finished_run):
    data, out, _, _ = finished_run
    children = pd.read_csv(data / "child_assessments.csv", dtype=str, keep_default_na=False)
    names = set(children["child_name"]) - {""}
    survey = pd.read_csv(data / "parent_survey.csv", dtype=str, sep=";", encoding="cp1252", keep_default_na=False)
    phones = set(survey["respondent_phone"]) - {""}
    sample_names = sorted(names)[:200]
    sample_phones = sorted(phones)[:200]
    for path in out.rglob("*"):
        if path.suffix not in {".html", ".csv", ".json", ".ipynb", ".log", ".parquet"}:
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        leaked = [v for v in sample_names + sample_phones if v in text]
        assert not leaked, (path, leaked[:3])


def test_manifest_accounts_for_every_row(finished_run):
    data, out, _, _ = finished_run
    manifest = json.loads((out / "run_manifest.json").read_text())
    for name in ("centres.csv", "partnerships.csv", "child_assessments.csv", "parent_survey.csv"):
        assert manifest["inputs"][name]["sha256"] == sha256_file(data / name)
    for table, counts in manifest["rows"].items():
        assert counts["rows_in"] == counts["rows_kept"] + counts["rows_dropped"], table
        assert sum(counts["dropped_by_rule"].values()) == counts["rows_dropped"], table
    log = pd.read_csv(out / "cleaning_log.csv")
    dropped = log[log["action"] == "dropped"].groupby("table").size()
    for table, counts in manifest["rows"].items():
        assert dropped.get(table, 0) == counts["rows_dropped"]
    assert manifest["regions"]["Northern Cape"]["status"] == "not_estimable"
    assert manifest["exit_code"] == 0


def test_a_failing_region_gives_exit_3_and_the_rest_complete(finished_run, tmp_path, monkeypatch):
    data, _, _, _ = finished_run
    nb = nbformat.read(REGIONAL_NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell('if region == "Free State":\n    raise RuntimeError("injected")'))
    broken = tmp_path / "broken.ipynb"
    nbformat.write(nb, broken)
    result = run(data, tmp_path / "out", regions=["Free State", "Gauteng"], jobs=2, progress=lambda _: None,
                 notebook=broken)
    assert result.exit_code == 3
    assert result.region_status["Free State"]["status"] == "failed"
    assert result.region_status["Gauteng"]["status"] == "ok"
    index = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "Free State" in index and "regions/gauteng.html" in index
    page = (tmp_path / "out" / "regions" / "free-state.html").read_text(encoding="utf-8")
    assert "Traceback" not in page and "injected" not in page
    assert "injected" in (tmp_path / "out" / "logs" / "free-state.log").read_text()
