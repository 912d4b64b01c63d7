"""`evalkit codebook`: a draft codebook from the exports in a folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import yaml

from conftest import SAMPLE
from evalkit.cli import main
from evalkit.draft import draft_codebook, file_pattern
from evalkit.readers import read_data_folder

KOBO = Path(__file__).parent / "fixtures" / "kobo"


def test_file_patterns_replace_the_download_stamp():
    assert file_pattern("ECD_centre_register_-_all_versions_-_2025-11-30-10-14-53.xlsx") == \
        "ECD_centre_register_-_all_versions_-_*.xlsx"
    assert file_pattern("ELOM baseline 20250301.csv") == "ELOM baseline *.csv"
    assert file_pattern("centres.csv") == "centres.csv"


def _kobo_exports(tmp_path) -> Path:
    folder = tmp_path / "exports"
    folder.mkdir()
    for path in KOBO.iterdir():
        if path.name.startswith(("ECD_", "Parent_")):
            shutil.copy(path, folder / path.name)
    return folder


def test_a_draft_of_kobo_exports_finds_tables_repeats_labels_and_personal_columns(tmp_path):
    folder = _kobo_exports(tmp_path)
    text = draft_codebook(folder, [KOBO / "centre_register_form.xlsx", KOBO / "child_assessment_form.xlsx"])
    plan = yaml.safe_load(text)["tables"]
    assert plan["centres"]["file"] == "ECD_centre_register_-_all_versions_-_*.xlsx"
    assert plan["centres"]["sheet"] == "ECD centre register"
    assert plan["partnerships"] == {"file": "ECD_centre_register_-_all_versions_-_*.xlsx", "sheet": "partners",
                                    "parent": "centres", "columns": {"partners/mou_date": "mou_signed_date"}}
    kids = plan["child_assessments"]["columns"]
    assert kids["assessment/elom/gmd"] == "elom_gmd" and kids["child/dob"] == "date_of_birth"
    assert kids["assessment/date"] == "assessment_date" and kids["child/anthro/height"] == "height_cm"
    assert plan["parent_survey"]["columns"]["_submission_time"] == "submission_time"
    assert "centre/contact/principal_phone" in plan["centres"]["personal"]
    assert "# TODO (optional): which column is assessor_id?" in text
    (folder / "codebook.yml").write_text(text, encoding="utf-8")
    raw = read_data_folder(folder)  # the draft reads as it is
    assert len(raw.tables["child_assessments"]) == 14 and len(raw.tables["partnerships"]) == 6
    assert raw.tables["partnerships"]["centre_id"].ne("").all()


def test_a_draft_of_contract_named_files_needs_nothing_and_reads_the_same(tmp_path, capsys):
    folder = tmp_path / "data"
    shutil.copytree(SAMPLE, folder, ignore=shutil.ignore_patterns("truth.csv", "simulation.json", "README.md"))
    assert main(["codebook", "--data", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "required" not in text  # every required column found by its own name
    before = read_data_folder(folder)
    (folder / "codebook.yml").write_text(text, encoding="utf-8")
    after = read_data_folder(folder)
    for table, frame in before.tables.items():
        pd.testing.assert_frame_equal(frame, after.tables[table])
    assert main(["codebook", "--data", str(folder), "--out", str(folder / "codebook.yml")]) == 1
    assert "exists; evalkit codebook writes a new draft and replaces nothing" in capsys.readouterr().err
