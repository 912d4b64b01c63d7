"""Survey tools' own exports give the same estimates as the canonical data folder (issue 13, item 8).

``tests/fixtures/exports/`` holds one canonical data folder and the same records as KoboToolbox
(formpack's XLSX and CSV exports), ODK Central (its CSV zip), SurveyCTO (its documented CSV
format), Stata and SPSS (pyreadstat, with value labels) and a child-assessment file per wave write
them, each with a ``codebook.yml`` of a few lines; ``tests/fixtures/exports/make_exports.py`` says
how each was made. evalkit must give identical ``results/estimates.csv`` from every folder.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from evalkit.cleaning import clean_all
from evalkit.pipeline import run
from evalkit.readers import read_data_folder

EXPORTS = Path(__file__).resolve().parent / "fixtures" / "exports"
CANONICAL = EXPORTS / "canonical"
FORMATS = ("kobo_xlsx", "kobo_csv", "odk_zip", "surveycto", "stata", "spss", "waves")
KEYS = ["region", "outcome", "estimator", "inference", "subgroup"]


def _estimates(output_dir: Path) -> pd.DataFrame:
    frame = pd.read_csv(output_dir / "results" / "estimates.csv")
    return frame.sort_values(KEYS, na_position="first", kind="stable").reset_index(drop=True)


def _run(data_dir: Path, output_dir: Path):
    return run(data_dir, output_dir, render=False, progress=lambda _: None)


@pytest.fixture(scope="module")
def canonical(tmp_path_factory):
    """The canonical folder's run and its estimates, sorted."""
    out = tmp_path_factory.mktemp("canonical") / "out"
    result = _run(CANONICAL, out)
    return result, _estimates(out)


def test_canonical_folder_reads_and_runs(canonical):
    raw = read_data_folder(CANONICAL)
    for table, frame in raw.tables.items():
        with open(CANONICAL / f"{table}.csv", newline="", encoding="utf-8") as f:
            assert len(frame) == sum(1 for _ in csv.DictReader(f)), table
    clean = clean_all(raw.tables, rules=raw.rules)
    # the canonical folder is already clean: nothing is changed, flagged or dropped
    assert clean.log.empty, clean.log[["table", "rule"]].value_counts().head().to_dict()
    assert all(counts["rows_dropped"] == 0 for counts in clean.row_counts.values())
    assert clean.tables["child_assessments"]["child_id"].nunique() >= 150

    result, estimates = canonical
    assert result.exit_code == 0
    primary = estimates[estimates["is_primary"].astype(str).str.lower() == "true"].set_index("region")
    assert (primary["status"] == "ok").sum() >= 2
    assert primary.loc["Northern Cape", "status"] == "not_estimable"


@pytest.mark.slow
@pytest.mark.parametrize("export", FORMATS)
def test_export_gives_the_canonical_estimates(export, canonical, tmp_path):
    folder = EXPORTS / export
    assert (folder / "codebook.yml").is_file()
    _run(folder, tmp_path / "out")
    pd.testing.assert_frame_equal(_estimates(tmp_path / "out"), canonical[1])
