"""The face of the library: a cheap ``import evalkit``, its lazy public names and the error family."""

from __future__ import annotations

import pickle
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import evalkit
from evalkit.errors import ChoiceError, EvalkitError, InputError

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


# --------------------------------------------------------------------------- the package


def test_import_evalkit_is_cheap_and_the_api_is_lazy():
    out = _python(
        "import sys, evalkit\n"
        "heavy = sorted(m for m in ('pandas', 'numpy', 'scipy', 'matplotlib') if m in sys.modules)\n"
        "print('heavy', heavy)\n"
        "print('ancova', evalkit.estimation.estimate_ancova.__module__, 'pandas' in sys.modules)\n"
        "print('dir', 'estimate_ancova' in dir(evalkit), 'estimation' in dir(evalkit), '__version__' in dir(evalkit))\n")
    assert out.splitlines() == ["heavy []", "ancova evalkit.estimation True", "dir True True True"]


def test_every_public_name_resolves_and_is_listed():
    api = {"run": "pipeline", "prepare": "pipeline", "open_workbench": "explore", "read_data_folder": "readers",
           "clean_all": "cleaning", "InputError": "errors", "ChoiceError": "errors", "EvalkitError": "errors",
           **{name: "estimation" for name in ("estimate_ancova", "estimate_did", "estimate_regression_adjustment",
                                               "estimate_ipw", "estimate_aipw", "estimate_heterogeneity",
                                               "estimate_region", "estimate_national")}}
    for name, module in api.items():
        assert name in evalkit.__all__ and name in dir(evalkit)
        assert getattr(evalkit, name) is getattr(sys.modules[f"evalkit.{module}"], name)
        assert name in getattr(sys.modules[f"evalkit.{module}"], "__all__", [name])


def test_every_module_is_there_by_name():
    modules = {p.stem for p in (ROOT / "evalkit").glob("*.py")} - {"__init__", "__main__"}
    assert modules <= set(evalkit.__all__) and modules <= set(dir(evalkit))
    for name in sorted(modules):
        assert type(getattr(evalkit, name)).__name__ == "module" and getattr(evalkit, name).__name__ == f"evalkit.{name}"
    # a module's name is never also a function's: evalkit.simulate is the module, its function inside it
    assert not (set(evalkit._API) & modules)
    assert callable(evalkit.simulate.simulate)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="^module 'evalkit' has no attribute 'estimate_ancov'$"):
        evalkit.estimate_ancov  # noqa: B018
    assert not hasattr(evalkit, "nothing_here")


def test_version_is_pyproject_toml_s():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert evalkit.__version__ == pyproject


def test_version_falls_back_to_pyproject_toml_without_metadata(monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert evalkit._version() == pyproject


# --------------------------------------------------------------------------- the errors


def test_choice_error_names_the_choices_in_the_order_given():
    error = ChoiceError("region", "Gautang", valid=["Eastern Cape", "Free State", "Gauteng", "KwaZulu-Natal"])
    assert str(error) == ("region 'Gautang' is not one of: Eastern Cape, Free State, Gauteng, KwaZulu-Natal "
                          "(did you mean 'Gauteng'?)")
    assert (error.name, error.value, error.valid) == ("region", "Gautang", ("Eastern Cape", "Free State", "Gauteng",
                                                                            "KwaZulu-Natal"))
    assert str(ChoiceError("inference", "sandwich", valid=("CR1", "CR2", "WCR-bootstrap"))) == (
        "inference 'sandwich' is not one of: CR1, CR2, WCR-bootstrap")
    assert str(ChoiceError("estimator", "iv", valid=["ipw", "did"])) == "estimator 'iv' is not one of: ipw, did"
    assert str(ChoiceError("outcome", "x", valid=[])) == "outcome 'x' is not one of: (none)"


def test_the_error_family():
    error = ChoiceError("region", "Gautang", valid=["Gauteng"])
    assert isinstance(error, EvalkitError) and isinstance(error, ValueError)
    assert issubclass(InputError, EvalkitError) and not issubclass(InputError, ValueError)
    assert str(InputError("centres.csv", "no rows")) == "centres.csv: no rows"
    assert str(InputError("centres.csv", "not a number", column="enrolment")) == (
        "centres.csv, column 'enrolment': not a number")
    for original in (error, InputError("centres.csv", "not a number", column="enrolment")):
        copy = pickle.loads(pickle.dumps(original))  # a worker process's error comes back pickled
        assert type(copy) is type(original) and str(copy) == str(original) and vars(copy) == vars(original)
