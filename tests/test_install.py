"""evalkit as a user installs it: a wheel built from the repository, in a fresh virtual
environment, used from a folder that has nothing to do with the checkout.

The wheel must carry the notebooks and templates; every path must come from the user's
study folder and working directory; nothing may be written inside the environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def _sh(args, cwd, env=None, timeout=900):
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))} -> {done.returncode}\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-3000:]}"
    return done


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A wheel of this checkout installed in a new venv (dependencies from the package index)."""
    root = tmp_path_factory.mktemp("install")
    wheels = root / "wheels"
    _sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", wheels, REPO], cwd=root)
    wheel = next(wheels.glob("evalkit-*.whl"))
    venv = root / "venv"
    _sh([sys.executable, "-m", "venv", venv], cwd=root)
    _sh([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel], cwd=root)
    return venv, wheel


def test_the_wheel_carries_the_notebooks_templates_and_rules(installed):
    import zipfile

    _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ["evalkit/notebooks/regional_evaluation.ipynb", "evalkit/notebooks/explore.ipynb",
                   "evalkit/templates/index.html.j2", "evalkit/templates/check.html.j2",
                   "evalkit/templates/brief.html.j2",
                   "evalkit/templates/evalkit_report/index.html.j2", "evalkit/templates/evalkit_report/conf.json",
                   "evalkit/templates/evalkit_report/evalkit.css", "evalkit/rules/estimation.yml",
                   "evalkit/rules/study.yml"]:
        assert needed in names, needed
    # the package data are the top-level folders themselves, not copies kept by hand
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("evalkit/notebooks/regional_evaluation.ipynb") == \
            (REPO / "notebooks" / "regional_evaluation.ipynb").read_bytes()
        assert zf.read("evalkit/templates/evalkit_report/evalkit.css") == \
            (REPO / "templates" / "evalkit_report" / "evalkit.css").read_bytes()


def test_a_new_user_makes_reports_from_their_own_folder(installed, tmp_path):
    venv, _ = installed
    bin_ = venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path / "home")  # caches (matplotlib, jupyter) land in the user's home
    work = tmp_path / "somewhere"
    work.mkdir()
    before = _files(venv)

    where = _sh([bin_ / "python", "-c", "import evalkit.study as s, evalkit; print(evalkit.__file__); "
                                        "print(s.package_notebooks_dir())"], cwd=work, env=env).stdout.split()
    assert all(str(venv) in line for line in where), where  # the installed package, not the checkout
    version = _sh([bin_ / "evalkit", "--version"], cwd=work, env=env).stdout
    assert version.startswith("evalkit ")

    _sh([bin_ / "evalkit", "init", "study", "--sample", "--title", "Pilot study"], cwd=work, env=env)
    study = work / "study"
    assert (study / "evalkit.yml").is_file() and (study / "data" / "raw" / "centres.csv").is_file()
    assert (study / "notebooks" / "regional_evaluation.ipynb").is_file()
    assert (study / "notebooks" / "explore.ipynb").is_file() and (study / "README.md").is_file()

    run = _sh([bin_ / "evalkit", "run", "--jobs", "2"], cwd=study, env=env)
    assert "Reports:" in run.stdout
    index = study / "reports" / "index.html"
    assert index.is_file() and "Pilot study" in index.read_text(encoding="utf-8")
    assert (study / "reports" / "regions" / "gauteng.html").is_file()
    # the PDF briefs, printed by the WeasyPrint pip installed (with the system's Pango)
    assert (study / "reports" / "briefs" / "gauteng.pdf").read_bytes().startswith(b"%PDF-")
    assert (study / "reports" / "briefs" / "national.pdf").is_file()
    assert (study / "data" / "processed" / "child_outcomes.parquet").is_file()
    manifest = json.loads((study / "reports" / "run_manifest.json").read_text())
    assert manifest["plan"]["source"] == str(study / "evalkit.yml")
    assert manifest["parameters"]["notebook"] == str(study / "notebooks" / "regional_evaluation.ipynb")

    # started from a sub-folder, the study folder is found upward, as git finds .git
    again = _sh([bin_ / "evalkit", "run"], cwd=study / "notebooks", env=env)
    assert "Nothing changed" in again.stdout

    check = _sh([bin_ / "evalkit", "check"], cwd=study, env=env)
    assert "Report:" in check.stdout and (study / "reports" / "check" / "data_quality.html").is_file()

    # papermill on the study's own notebook, with paths relative to the working directory
    _sh([bin_ / "papermill", "notebooks/regional_evaluation.ipynb", "by-hand.ipynb", "-p", "region", "Limpopo",
         "-p", "output_dir", "reports", "-p", "processed_dir", "data/processed", "--no-progress-bar"],
        cwd=study, env=env)
    executed = nbformat.read(study / "by-hand.ipynb", as_version=4)
    shown = "".join(str(o.get("data", {}).get("text/html", "")) for c in executed.cells if c.cell_type == "code"
                    for o in c.get("outputs", []))
    assert "Limpopo" in shown

    # relative --data / --out from an unrelated folder, with no study folder above it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _sh([bin_ / "evalkit", "run", "--data", "../somewhere/study/data/raw", "--out", "out", "--regions", "Gauteng",
         "--no-reports"], cwd=elsewhere, env=env)
    assert (elsewhere / "out" / "results" / "estimates.csv").is_file()
    assert (elsewhere / "out" / "processed" / "child_outcomes.parquet").is_file()

    after = _files(venv)
    assert after == before, sorted(set(after.items()) ^ set(before.items()))[:10]


def test_a_folder_that_does_not_exist_is_an_error_not_the_sample(installed, tmp_path):
    venv, _ = installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HOME"] = str(tmp_path)
    done = subprocess.run([venv / "bin" / "evalkit", "run"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip() == f"evalkit: error: {tmp_path / 'data' / 'raw'}: data folder does not exist"
    assert not (tmp_path / "reports").exists()
