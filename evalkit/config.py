"""One place for paths and defaults.

Every path the workbench uses is derived here from the project root, so that
notebooks, the command line and the tests agree wherever they are started from.
Cleaning rules, missing codes and category spellings live as data in
``evalkit/rules/*.yml`` and are loaded through :func:`load_rules`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "PROJECT_ROOT",
    "DATA_RAW",
    "DATA_PROCESSED",
    "REPORTS",
    "NOTEBOOKS",
    "TEMPLATES",
    "REGIONAL_NOTEBOOK",
    "REPORT_TEMPLATE",
    "TABLES",
    "DAYS_PER_MONTH",
    "ELOM_DOMAINS",
    "MIN_CENTRES_PER_ARM",
    "load_rules",
]

PROJECT_ROOT = Path(os.environ.get("EVALKIT_HOME", Path(__file__).resolve().parents[1]))
DATA_RAW = PROJECT_ROOT / "data" / "raw"
DATA_PROCESSED = PROJECT_ROOT / "data" / "processed"
REPORTS = PROJECT_ROOT / "reports"
NOTEBOOKS = PROJECT_ROOT / "notebooks"
TEMPLATES = PROJECT_ROOT / "templates"
REGIONAL_NOTEBOOK = NOTEBOOKS / "regional_evaluation.ipynb"
REPORT_TEMPLATE = "evalkit_report"  # a folder under TEMPLATES

#: The four input tables of the data contract, by base file name.
TABLES = ("centres", "partnerships", "child_assessments", "parent_survey")

#: WHO convention for converting days of age to months.
DAYS_PER_MONTH = 30.4375

#: ELOM 4&5 domain score columns, in the order the instrument reports them.
ELOM_DOMAINS = ("elom_gmd", "elom_fmc", "elom_enm", "elom_cef", "elom_ell")

#: A region needs at least this many partnered and comparison centres with
#: usable data before an effect is estimated (data contract, section 2).
MIN_CENTRES_PER_ARM = 3

_RULES_DIR = Path(__file__).resolve().parent / "rules"


@lru_cache(maxsize=None)
def load_rules(name: str) -> dict[str, Any]:
    """Return the rule set ``evalkit/rules/<name>.yml`` as a dictionary."""
    path = _RULES_DIR / f"{name}.yml"
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)
