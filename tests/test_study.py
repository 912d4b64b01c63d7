"""The study folder: found upward from the working directory, its defaults, its own notebooks,
`evalkit init`, and user paths taken from the working directory (never from the package)."""

from __future__ import annotations

import json

import pytest

from conftest import REPO
from evalkit import __version__, explore, reporting
from evalkit.cli import main
from evalkit.errors import InputError
from evalkit.plan import load_plan
from evalkit.study import PLAN_FILE, RunLayout, find_study, package_notebook, package_notebooks_dir, user_path


def test_the_study_folder_is_the_nearest_one_holding_evalkit_yml(tmp_path, monkeypatch):
    (tmp_path / "study" / "notebooks" / "deeper").mkdir(parents=True)
    (tmp_path / "study" / PLAN_FILE).write_text("")
    monkeypatch.chdir(tmp_path / "study" / "notebooks" / "deeper")
    study = find_study()
    assert study.root == tmp_path / "study" and study.plan_file == tmp_path / "study" / PLAN_FILE
    assert study.data_dir == tmp_path / "study" / "data" / "raw"
    assert study.reports_dir == tmp_path / "study" / "reports"
    assert study.processed_dir_for(study.reports_dir) == tmp_path / "study" / "data" / "processed"
    assert study.processed_dir_for(tmp_path / "out") == tmp_path / "out" / "processed"
    monkeypatch.chdir(tmp_path)
    bare = find_study()
    assert bare.root == tmp_path and bare.plan_file is None and bare.data_dir == tmp_path / "data" / "raw"


def test_the_repository_is_a_study_folder_of_its_own():
    study = find_study(REPO / "evalkit")
    assert study.root == REPO and study.plan_file == REPO / PLAN_FILE
    assert load_plan(study.plan_file).values == {}  # every key commented out: the package defaults


def test_a_study_uses_its_own_notebook_else_the_packages(tmp_path):
    (tmp_path / PLAN_FILE).write_text("")
    study = find_study(tmp_path)
    assert study.notebook() == package_notebook() == package_notebooks_dir() / "regional_evaluation.ipynb"
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "regional_evaluation.ipynb").write_text("{}")
    assert study.notebook() == tmp_path / "notebooks" / "regional_evaluation.ipynb"


def test_user_paths_and_a_runs_layout_come_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert user_path("out") == tmp_path / "out"
    layout = RunLayout.of("out")
    assert layout.estimates == tmp_path / "out" / "results" / "estimates.csv"
    assert layout.child_outcomes == tmp_path / "out" / "processed" / "child_outcomes.parquet"
    assert layout.region_report("gauteng") == tmp_path / "out" / "regions" / "gauteng.html"
    # the notebook's parameters: relative from the working directory; None from the study folder
    assert reporting.run_layout("reports", "data/processed").processed_dir == tmp_path / "data" / "processed"
    assert reporting.run_layout().output_dir == tmp_path / "reports"


def test_version_and_run_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"evalkit {__version__}"
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for line in ("0  every region has its report", "1  the input cannot be used at all",
                 "3  some regions failed", "docs/data-contract.md", "evalkit.yml"):
        assert line in text, line


def test_init_writes_a_study_folder_and_overwrites_nothing(tmp_path, capsys):
    assert main(["init", str(tmp_path / "study"), "--title", "Pilot: 2025"]) == 0
    study = tmp_path / "study"
    assert sorted(p.name for p in study.iterdir()) == ["README.md", "data", "evalkit.yml", "notebooks"]
    assert list((study / "data" / "raw").iterdir()) == []
    assert (study / "notebooks" / "regional_evaluation.ipynb").read_bytes() == package_notebook().read_bytes()
    assert load_plan(study / PLAN_FILE).values == {"report.title": "Pilot: 2025"}
    assert main(["init", str(study)]) == 1
    assert "is not empty; evalkit init writes a new study folder and overwrites nothing" in capsys.readouterr().err


def test_a_missing_data_folder_is_an_error_never_the_sample(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--data", "survey"]) == 1
    assert capsys.readouterr().err.strip() == f"evalkit: error: {tmp_path / 'survey'}: data folder does not exist"
    assert main(["check"]) == 1
    assert "data/raw" in capsys.readouterr().err
    with pytest.raises(InputError, match="typo: is not a folder"):
        explore.open_workbench("typo")
    with pytest.raises(InputError, match="data folder does not exist"):
        explore.open_workbench()  # no finished run here and no data/raw/
    assert not (tmp_path / "reports").exists()


def test_a_bad_plan_stops_the_run_with_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / PLAN_FILE).write_text("thresholds:\n  min_centers_per_arm: 4\n")
    (tmp_path / "data" / "raw").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert main(["run"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"evalkit: error: {tmp_path / PLAN_FILE}: unknown key 'thresholds.min_centers_per_arm'")
    assert "\n" not in err


def test_the_manifest_of_a_cached_run_names_its_plan(tmp_path):
    manifest = {"plan": {"source": "/s/evalkit.yml", "sha256": "ab" * 32, "set": {"report.title": "T"}}}
    text = reporting.plan_paragraph(manifest)
    assert "<code>report.title</code>: T" in text and "evalkit.yml, SHA-256 abababababab" in text
    assert "default plan" in reporting.plan_paragraph({})
    assert json.dumps(manifest)  # what the pipeline writes is JSON
