"""Nothing personal leaves ingestion, and text from data never becomes markup or a formula.

A full run (reports included) on the Kobo fixture, whose codebook declares
personal columns beyond the contract's, and on a simulated folder whose
district names carry script and formula text; every output file is scanned,
workbooks and parquet included.
"""

import re
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from evalkit.errors import InputError
from evalkit.pipeline import run
from evalkit.readers import read_table
from evalkit import readers
from evalkit.simulate import simulate

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).parent / "fixtures"


def _output_text(out: Path) -> dict[Path, str]:
    """Every output file as text; workbooks are unzipped, parquet files read back."""
    texts = {}
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as book:
                texts[path] = "\n".join(book.read(n).decode("utf-8", "replace") for n in book.namelist())
        elif path.suffix == ".parquet":
            texts[path] = pd.read_parquet(path).astype(str).to_csv()
        else:
            texts[path] = path.read_bytes().decode("utf-8", "replace")
    return texts


def _personal_values(folder: Path) -> set[str]:
    values: set[str] = set()
    child = pd.read_csv(folder / "ECD_child_assessment_-_all_versions_-_2025-11-30.csv", sep=None,
                        engine="python", dtype=str, keep_default_na=False)
    survey = pd.read_csv(folder / "Parent_satisfaction_-_all_versions_-_2025-11-30.csv", sep=None,
                         engine="python", dtype=str, keep_default_na=False)
    centres = pd.read_excel(folder / "ECD_centre_register_-_all_versions_-_2025-11-30.xlsx", dtype=str,
                            sheet_name=0).fillna("")
    values |= set(child["child/name"]) | set(survey["parent/phone"])
    values |= set(centres["centre/contact/principal_name"]) | set(centres["centre/contact/principal_phone"])
    return {v for v in values if len(v.strip()) >= 5}


def test_kobo_fixture_run_leaks_no_personal_value(tmp_path):
    folder = tmp_path / "kobo"
    shutil.copytree(FIXTURES / "kobo", folder)
    personal = _personal_values(folder)
    assert len(personal) >= 10
    out = tmp_path / "out"
    result = run(folder, out, jobs=2, progress=lambda _: None)
    assert result.exit_code in (0, 3)
    texts = _output_text(out)
    assert any(p.suffix == ".html" for p in texts) and any(p.suffix == ".xlsx" for p in texts)
    for path, text in texts.items():
        leaked = [value for value in personal if value in text]
        assert not leaked, (path, leaked[:3])


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    data = root / "data"
    simulate(data, seed=8, scale=0.5)
    centres = pd.read_csv(data / "centres.csv", dtype=str, keep_default_na=False)
    gauteng = centres["province"].str.lower().isin(["gauteng", "gp", "gt", "gauteng province"])
    targets = centres.index[gauteng][:12]
    centres.loc[targets[:6], "district"] = '<script>alert("x")</script>'
    centres.loc[targets[6:], "district"] = '=HYPERLINK("http://evil.example","click")'
    centres.to_csv(data / "centres.csv", index=False)
    out = root / "out"
    run(data, out, level="district", regions=['<script>alert("x")</script>', '=HYPERLINK("http://evil.example","click")'],
        jobs=2, progress=lambda _: None)
    return data, out


def test_data_text_never_becomes_markup(hostile_run):
    _, out = hostile_run
    for page in [out / "index.html", *(out / "regions").glob("*.html")]:
        html = page.read_text(encoding="utf-8")
        assert '<script>alert("x")</script>' not in html, page
        assert "evil.example" not in html or 'href="http://evil.example' not in html, page
        assert not re.search(r"<script\b", html, re.I), page
    assert "&lt;script&gt;" in (out / "index.html").read_text(encoding="utf-8")


def test_data_text_never_becomes_a_formula(hostile_run):
    _, out = hostile_run
    from openpyxl import load_workbook

    book = load_workbook(out / "results" / "results.xlsx")
    cells = [cell.value for sheet in book.worksheets for row in sheet.iter_rows() for cell in row
             if isinstance(cell.value, str)]
    assert any("HYPERLINK" in value for value in cells)
    assert not [value for value in cells if value.startswith(("=", "+", "@")) and "HYPERLINK" in value]


def test_child_ids_are_not_in_funder_facing_pages(hostile_run):
    data, out = hostile_run
    ids = set(pd.read_csv(data / "child_assessments.csv", dtype=str)["child_id"])
    for page in [out / "index.html", *(out / "regions").glob("*.html")]:
        html = page.read_text(encoding="utf-8")
        found = [i for i in re.findall(r"K\d{6}", html) if i in ids]
        assert not found, (page, found[:3])


def test_a_file_over_the_size_limit_is_refused_without_reading_it(tmp_path, monkeypatch):
    path = tmp_path / "child_assessments.csv"
    path.write_text("child_id,centre_id\n" + "K1,C1\n" * 1000)
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 1024)
    with pytest.raises(InputError, match="too large"):
        read_table(path, "child_assessments")
