"""Where things are: the package's own resources, the user's study folder and a run's folders.

Three kinds of path, each with one owner here:

* **Package resources** — the report and explore notebooks and the nbconvert/Jinja templates.
  In a wheel they are package data (``evalkit/notebooks``, ``evalkit/templates``, read through
  :mod:`importlib.resources`); in a checkout the top-level ``notebooks/`` and ``templates/`` are
  read directly, and they are the source the wheel's copies are built from (``pyproject.toml``
  maps them into the package), so there is one copy to edit.
* **A study folder** — the folder holding ``evalkit.yml``, found upward from the working
  directory as git finds ``.git``; without one, the working directory. Its defaults are
  ``data/raw/`` in, ``reports/`` out and ``data/processed/`` for the processed tables. A study
  may keep its own copy of a notebook in ``notebooks/``; that copy is used.
* **A run folder** — :class:`RunLayout` knows every file a run writes and reads.

User paths (``--data``, ``--out``, papermill parameters, ``open_workbench(path)``) are relative
to the working directory, never to the package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import InputError

__all__ = [
    "EXPLORE_NOTEBOOK",
    "PLAN_FILE",
    "REGIONAL_NOTEBOOK",
    "REPORT_TEMPLATE",
    "RunLayout",
    "Study",
    "find_study",
    "package_notebook",
    "package_notebooks_dir",
    "package_templates_dir",
    "user_path",
]

#: The analysis plan's file name; the folder holding it is a study folder.
PLAN_FILE = "evalkit.yml"
REGIONAL_NOTEBOOK = "regional_evaluation.ipynb"
EXPLORE_NOTEBOOK = "explore.ipynb"
#: The nbconvert template of the regional reports: a folder of the templates directory.
REPORT_TEMPLATE = "evalkit_report"

_CHECKOUT = Path(__file__).resolve().parent.parent


def _resource_dir(name: str) -> Path:
    """``evalkit/<name>`` in an installed wheel; the checkout's top-level ``<name>/`` otherwise."""
    packaged = resources.files("evalkit").joinpath(name)
    if packaged.is_dir():
        return Path(str(packaged))
    in_checkout = _CHECKOUT / name
    if in_checkout.is_dir() and (_CHECKOUT / "pyproject.toml").is_file():
        return in_checkout
    raise InputError(f"evalkit/{name}", "is missing from this installation of evalkit; reinstall it")


def package_notebooks_dir() -> Path:
    """The notebooks evalkit ships (the regional report and the explorer)."""
    return _resource_dir("notebooks")


def package_templates_dir() -> Path:
    """The templates evalkit ships (the report's nbconvert template, the index and check pages)."""
    return _resource_dir("templates")


def package_notebook(name: str = REGIONAL_NOTEBOOK) -> Path:
    return package_notebooks_dir() / name


def user_path(path: str | os.PathLike) -> Path:
    """A path the user gave, made absolute from the working directory (``~`` expanded)."""
    return Path(os.path.abspath(Path(path).expanduser()))


@dataclass(frozen=True)
class Study:
    """A study folder: its plan file (if any) and its default data, output and processed folders."""

    root: Path
    plan_file: Path | None

    @property
    def data_dir(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def processed_dir(self) -> Path:
        return self.root / "data" / "processed"

    @property
    def check_dir(self) -> Path:
        return self.reports_dir / "check"

    @property
    def notebooks_dir(self) -> Path:
        return self.root / "notebooks"

    def notebook(self, name: str = REGIONAL_NOTEBOOK) -> Path:
        """The study's own copy of a notebook when it has one, else the package's."""
        own = self.notebooks_dir / name
        return own if own.is_file() else package_notebook(name)

    def processed_dir_for(self, output_dir: Path) -> Path:
        """The data contract's rule: ``data/processed/`` for the default output folder,
        ``<output>/processed`` for any other."""
        return self.processed_dir if Path(output_dir) == self.reports_dir else Path(output_dir) / "processed"


def find_study(start: str | os.PathLike | None = None) -> Study:
    """The nearest folder at or above ``start`` (default: the working directory) that holds
    ``evalkit.yml``; without one, ``start`` itself (with no plan file)."""
    here = user_path(start if start is not None else os.getcwd())
    for folder in (here, *here.parents):
        plan = folder / PLAN_FILE
        if plan.is_file():
            return Study(root=folder, plan_file=plan)
    return Study(root=here, plan_file=None)


@dataclass(frozen=True)
class RunLayout:
    """Every path of one run: its output folder and the folder of its processed tables."""

    output_dir: Path
    processed_dir: Path

    @classmethod
    def of(cls, output_dir: str | os.PathLike, processed_dir: str | os.PathLike | None = None) -> RunLayout:
        out = user_path(output_dir)
        processed = user_path(processed_dir) if processed_dir is not None else out / "processed"
        return cls(out, processed)

    def results_table(self, name: str) -> Path:
        return self.results_dir / f"{name}.csv"

    def region_report(self, slug: str) -> Path:
        return self.regions_dir / f"{slug}.html"

    def region_log(self, slug: str) -> Path:
        return self.logs_dir / f"{slug}.log"

    @property
    def results_dir(self) -> Path:
        return self.output_dir / "results"

    @property
    def estimates(self) -> Path:
        return self.results_table("estimates")

    @property
    def workbook(self) -> Path:
        return self.results_dir / "results.xlsx"

    @property
    def cleaning_log(self) -> Path:
        return self.output_dir / "cleaning_log.csv"

    @property
    def manifest(self) -> Path:
        return self.output_dir / "run_manifest.json"

    @property
    def index(self) -> Path:
        return self.output_dir / "index.html"

    @property
    def regions_dir(self) -> Path:
        return self.output_dir / "regions"

    @property
    def logs_dir(self) -> Path:
        return self.output_dir / "logs"

    @property
    def notebooks_dir(self) -> Path:
        return self.output_dir / "notebooks"

    @property
    def child_outcomes(self) -> Path:
        return self.processed_dir / "child_outcomes.parquet"

    @property
    def centre_outcomes(self) -> Path:
        return self.processed_dir / "centre_outcomes.parquet"

    @property
    def centre_treatment(self) -> Path:
        return self.processed_dir / "centre_treatment.parquet"
