"""Constants of the data contract and the rules as data.

Cleaning rules, missing codes, category spellings, thresholds and targets live as data in
``evalkit/rules/*.yml`` and are read through :func:`load_rules`. A study's analysis plan
(``evalkit.yml``, :mod:`evalkit.plan`) overrides some of those values: while a plan is active,
:func:`load_rules` returns the package's rules with the plan's values in place. Paths are not
here: the package's resources, the study folder and a run's folders are :mod:`evalkit.study`'s.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DAYS_PER_MONTH",
    "ELOM_DOMAINS",
    "NATIONAL",
    "TABLES",
    "default_rules",
    "load_rules",
    "rule_overrides",
    "set_rule_overrides",
]

#: The four input tables of the data contract, by base file name.
TABLES = ("centres", "partnerships", "child_assessments", "parent_survey")

#: WHO convention for converting days of age to months.
DAYS_PER_MONTH = 30.4375

#: ELOM 4&5 domain score columns, in the order the instrument reports them.
ELOM_DOMAINS = ("elom_gmd", "elom_fmc", "elom_enm", "elom_cef", "elom_ell")

#: The region name of the pooled estimate over every region of a run.
NATIONAL = "National"

_RULES_DIR = Path(__file__).resolve().parent / "rules"
_OVERRIDES: dict[str, dict] = {}


@lru_cache(maxsize=None)
def default_rules(name: str) -> dict[str, Any]:
    """The package's rule set ``evalkit/rules/<name>.yml``, as shipped."""
    path = _RULES_DIR / f"{name}.yml"
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _merged(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merged(base.get(key), value)
        return out
    return copy.deepcopy(override)


@lru_cache(maxsize=None)
def load_rules(name: str) -> dict[str, Any]:
    """The rule set ``<name>`` in force: the package's, with the active plan's values in place.

    The same dictionary is returned on every call while the plan is unchanged; treat it as
    read-only (copy it before changing it)."""
    base = default_rules(name)
    return _merged(base, _OVERRIDES[name]) if name in _OVERRIDES else base


def rule_overrides() -> dict[str, dict]:
    """The values the active plan puts in place of the package's rules (a copy)."""
    return copy.deepcopy(_OVERRIDES)


def set_rule_overrides(overrides: dict[str, dict] | None) -> None:
    """Replace the overrides every :func:`load_rules` applies (see :func:`evalkit.plan.activate`)."""
    global _OVERRIDES
    _OVERRIDES = copy.deepcopy(overrides or {})
    load_rules.cache_clear()
