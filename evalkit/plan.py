"""The analysis plan as data: a study's ``evalkit.yml``.

An evaluator states the plan once — region level and regions, the primary outcome, estimator
and inference, further outcomes, the ANCOVA's covariates, the estimators and inferences run,
subgroups, thresholds, the report's names and the decimal mark — and every stage follows it.
Each key of ``evalkit.yml`` overrides one value of the package's rules (``evalkit/rules/*.yml``),
which stay the defaults: :data:`PLAN_KEYS` says which. :func:`activate` makes a plan's overrides
the rules every stage reads (:func:`evalkit.config.load_rules`); the effective plan is written
to ``run_manifest.json`` (so a report rendered in another process reads the same plan) and is
part of the run's cache key.

Reading and checking the file needs only the standard library and PyYAML, so the command
line's cache check stays fast; :func:`check_choices` (names of estimators, inferences and
outcomes) imports the estimation stage and runs when a run starts.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .config import load_rules, rule_overrides, set_rule_overrides
from .errors import InputError
from .study import PLAN_FILE

__all__ = ["PLAN_KEYS", "Plan", "activate", "check_choices", "current_plan", "load_plan", "plan_from_manifest",
           "plan_template", "using"]

#: The largest plan file read (an analysis plan is a page of YAML, not megabytes).
_MAX_BYTES = 256 * 1024


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(_text(v) for v in value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class _Key:
    """One key of ``evalkit.yml``: the rules value it overrides and what it must be."""

    rules: str                 # rules file (evalkit/rules/<rules>.yml)
    path: tuple[str, ...]      # key path inside it
    valid: Callable[[Any], bool]
    expected: str              # what the key takes, for the error message
    to_rules: Callable[[Any], Any] = field(default=lambda v: v)
    from_rules: Callable[[Any], Any] = field(default=lambda v: v)


def _all_or_texts(value: Any) -> bool:
    return value == "all" or _texts(value)


#: Every key an ``evalkit.yml`` may set, by its dotted name.
PLAN_KEYS: dict[str, _Key] = {
    "regions.level": _Key("study", ("level",), lambda v: v in ("province", "district"),
                          "'province' or 'district'"),
    "regions.only": _Key("study", ("regions",), _all_or_texts, "'all' or a list of region names"),
    "primary.outcome": _Key("estimation", ("primary", "outcome"), _text, "an outcome name"),
    "primary.estimator": _Key("estimation", ("primary", "estimator"), _text, "an estimator name"),
    "primary.inference": _Key("estimation", ("primary", "inference"), _text, "an inference name"),
    "outcomes": _Key("estimation", ("outcomes",), _all_or_texts, "'all' or a list of outcome names"),
    "covariates.numeric": _Key("estimation", ("covariates", "ancova_numeric"), _texts,
                               "a list of numeric child or centre columns",
                               to_rules=lambda v: ["baseline", *[c for c in v if c != "baseline"]],
                               from_rules=lambda v: [c for c in v if c != "baseline"]),
    "covariates.categorical": _Key("estimation", ("covariates", "ancova_categorical"), _texts,
                                   "a list of categorical child or centre columns"),
    "estimators": _Key("estimation", ("estimators",), _texts, "a list of estimator names"),
    "inference": _Key("estimation", ("inferences",), _texts, "a list of inference names"),
    "subgroups.child": _Key("estimation", ("heterogeneity", "child"), _texts, "a list of child columns"),
    "subgroups.centre": _Key("estimation", ("heterogeneity", "centre"), _texts, "a list of centre columns"),
    "thresholds.min_centres_per_arm": _Key("estimation", ("thresholds", "min_centres_per_arm"), _count,
                                           "a whole number of 1 or more"),
    "thresholds.few_centres_warning": _Key("estimation", ("inference", "few_centres_warning"), _count,
                                           "a whole number of 1 or more"),
    "thresholds.small_cells.children": _Key("study", ("small_cells", "children"), _count,
                                            "a whole number of 1 or more"),
    "thresholds.small_cells.centres": _Key("study", ("small_cells", "centres"), _count,
                                           "a whole number of 1 or more"),
    "report.title": _Key("study", ("report", "title"), lambda v: isinstance(v, str), "text"),
    "report.programme": _Key("study", ("report", "programme"), lambda v: isinstance(v, str), "text"),
    "report.funder": _Key("study", ("report", "funder"), lambda v: isinstance(v, str), "text"),
    "report.decimal_mark": _Key("study", ("report", "decimal_mark"), lambda v: v in (".", ","),
                                "'.' or ','"),
}

def _get(tree: dict, path: tuple[str, ...]) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def _put(tree: dict, path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        tree = tree.setdefault(part, {})
    tree[path[-1]] = value


def _flatten(tree: Any, prefix: str, where: str) -> dict[str, Any]:
    """Dotted names of a parsed plan; an unknown key or section is an error naming it."""
    if tree is None and prefix:  # a section whose keys are all commented out
        return {}
    if not isinstance(tree, dict):
        raise InputError(where, f"'{prefix or 'the file'}' must be a mapping of keys to values")
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if name in PLAN_KEYS:
            flat[name] = value
        elif any(k.startswith(name + ".") for k in PLAN_KEYS):
            flat.update(_flatten(value, name, where))
        else:
            known = sorted({k.split(".")[0] for k in PLAN_KEYS} if not prefix
                           else {k for k in PLAN_KEYS if k.startswith(prefix + ".")})
            raise InputError(where, f"unknown key '{name}'; the plan's keys here are: {', '.join(known)}")
    return flat


@dataclass(frozen=True)
class Plan:
    """A checked analysis plan: the values it sets (dotted names) and where it came from."""

    values: dict[str, Any] = field(default_factory=dict)
    source: str = ""    # the plan file, '' for the package defaults
    sha256: str = ""    # of the plan file's bytes

    def rule_overrides(self) -> dict[str, dict]:
        """The plan as overrides of the package's rules, by rules file."""
        out: dict[str, dict] = {}
        for name, value in self.values.items():
            key = PLAN_KEYS[name]
            _put(out.setdefault(key.rules, {}), key.path, key.to_rules(copy.deepcopy(value)))
        return out

    def effective(self) -> dict[str, Any]:
        """Every plan key with the value in force (the plan's, else the package default),
        read from the rules as they stand with this plan active."""
        with using(self):
            return {name: key.from_rules(copy.deepcopy(_get(load_rules(key.rules), key.path)))
                    for name, key in PLAN_KEYS.items()}

    def to_manifest(self) -> dict[str, Any]:
        return {"source": self.source, "sha256": self.sha256, "set": copy.deepcopy(self.values),
                "effective": self.effective()}


_CURRENT: Plan = Plan()


class using:
    """Context manager: ``plan`` active inside, the previous plan restored after."""

    def __init__(self, plan: Plan):
        self.plan = plan

    def __enter__(self) -> Plan:
        self.previous = _CURRENT
        activate(self.plan)
        return self.plan

    def __exit__(self, *exc: object) -> None:
        activate(self.previous)


def activate(plan: Plan | None) -> Plan:
    """Make ``plan`` (None: the package defaults) the one every stage of this process reads.

    Processes forked afterwards inherit it; a report rendered elsewhere activates the plan
    its run's manifest holds (:func:`plan_from_manifest`)."""
    global _CURRENT
    plan = plan or Plan()
    if plan.rule_overrides() != rule_overrides():
        set_rule_overrides(plan.rule_overrides())
    _CURRENT = plan
    return plan


def current_plan() -> Plan:
    return _CURRENT


def load_plan(path: str | Path | None) -> Plan:
    """Read and check an ``evalkit.yml``; None gives the package defaults.

    Raises
    ------
    InputError
        One line naming the file and the key: an unknown key, a value of the wrong kind, a
        file that is not YAML or is too large.
    """
    if path is None:
        return Plan()
    path = Path(path)
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(where, f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > _MAX_BYTES:
        raise InputError(where, f"is {len(data):,} bytes; an analysis plan is at most {_MAX_BYTES:,}")
    try:
        tree = yaml.safe_load(data.decode("utf-8-sig")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise InputError(where, f"is not valid YAML{line}: {getattr(exc, 'problem', None) or exc}") from None
    values = _flatten(tree, "", where)
    for name, value in values.items():
        key = PLAN_KEYS[name]
        if not key.valid(value):
            raise InputError(where, f"'{name}' must be {key.expected}, not {value!r}")
    if values.get("regions.only") == "all":
        values.pop("regions.only")
    if values.get("outcomes") == "all":
        values.pop("outcomes")
    return Plan(values=values, source=where, sha256=hashlib.sha256(data).hexdigest())


def plan_template(title: str = "") -> str:
    """The text of a new ``evalkit.yml``: every key, commented out, with the package default
    in force and what it takes (``evalkit init`` writes it)."""
    defaults = Plan().effective()
    lines = [
        "# evalkit.yml: the analysis plan of this study (docs/study.md).",
        "# The folder holding this file is the study folder: `evalkit run` and `evalkit check` started",
        "# anywhere inside it read data/raw/ and write reports/ here. Every key is optional; a key left",
        "# out or commented out takes the package default shown (evalkit/rules/*.yml). Uncomment and",
        "# change what your study's plan says; the effective plan is written to run_manifest.json and",
        "# shown in each report's methods section.",
    ]
    section = None
    for name, key in PLAN_KEYS.items():
        head, _, leaf = name.rpartition(".")
        top = head.split(".")[0] if head else ""
        if top != section:
            lines.append("")
            if top:
                lines.append(f"{top}:")
            section = top
        depth = name.count(".")
        if depth == 2 and not any(line.strip() == f"{head.split('.')[1]}:" for line in lines[-4:]):
            lines.append(f"  {head.split('.')[1]}:")
        indent = "  " * depth
        value = defaults[name]
        if name == "report.title" and title:
            lines.append(f"{indent}{leaf}: {yaml.safe_dump(title, default_flow_style=True).strip().removesuffix('...').strip()}")
            continue
        shown = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip()
        shown = shown.removesuffix("...").strip()
        lines.append(f"{indent}# {leaf}: {shown}    # {key.expected}")
    return "\n".join(lines) + "\n"


def plan_from_manifest(manifest: dict | None) -> Plan:
    """The plan a run used, from its ``run_manifest.json`` (the defaults for an older run)."""
    info = (manifest or {}).get("plan") or {}
    return Plan(values=dict(info.get("set") or {}), source=info.get("source", ""), sha256=info.get("sha256", ""))


def check_choices(plan: Plan) -> None:
    """Names in the plan that the estimation stage does not know are an error naming the key
    and the valid choices (imports the estimation stage; called when a run starts)."""
    from .estimation import ALL_INFERENCES, CENTRE_INFERENCES, ESTIMATORS
    from .indicators import OUTCOME_FAMILY
    from .ruleset import estimation_rules

    where = plan.source or PLAN_FILE
    effective = plan.effective()
    outcomes = [spec.name for spec in OUTCOME_FAMILY] + [estimation_rules().kling_index.name]
    inferences = list(dict.fromkeys([*ALL_INFERENCES, *CENTRE_INFERENCES]))

    def one_of(name: str, values: list[str], valid: list[str]) -> None:
        bad = [v for v in values if v not in valid]
        if bad:
            raise InputError(where, f"'{name}' has {', '.join(map(repr, bad))}, which is not one of: "
                                    f"{', '.join(valid)}")

    one_of("primary.outcome", [effective["primary.outcome"]], outcomes)
    one_of("primary.estimator", [effective["primary.estimator"]], list(ESTIMATORS))
    one_of("primary.inference", [effective["primary.inference"]], list(ALL_INFERENCES))
    one_of("estimators", effective["estimators"], list(ESTIMATORS))
    one_of("inference", effective["inference"], list(ALL_INFERENCES))
    if effective["outcomes"] != "all":
        one_of("outcomes", effective["outcomes"], outcomes)
    if effective["thresholds.small_cells.centres"] > effective["thresholds.small_cells.children"]:
        raise InputError(where, "'thresholds.small_cells.centres' must not be larger than "
                                "'thresholds.small_cells.children'")
