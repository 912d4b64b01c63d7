"""The face of the library: a cheap ``import evalkit``, its lazy public names, the error family,
and wrong arguments that name the valid choices."""

from __future__ import annotations

import pickle
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

import evalkit
from evalkit import estimation, explore
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


# --------------------------------------------------------------------------- wrong arguments


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two regions, two centres each, both waves: enough for the checks, which come first."""
    rows = [dict(child_id=f"K{c}{w}", centre_id=f"C{c}", region="Gauteng" if c < 2 else "Limpopo", wave=wave,
                 is_partnered=c % 2 == 0, age_months=50.0 + w, sex="female", setting="urban",
                 elom_total=40.0 + c + w, haz=-0.5, elom_band="on track")
            for c in range(4) for w, wave in enumerate(("baseline", "endline"))]
    child = pd.DataFrame(rows)
    centres = pd.DataFrame({"centre_id": [f"C{c}" for c in range(4)],
                            "region": ["Gauteng", "Gauteng", "Limpopo", "Limpopo"],
                            "customer_service_score_pct": [70.0, 80.0, 75.0, 90.0]})
    return child, centres


REGIONS = "region 'Gautang' is not one of: Gauteng, Limpopo (did you mean 'Gauteng'?)"
CHILD_OUTCOMES = "outcome 'elom_totl' is not one of: elom_total, haz (did you mean 'elom_total'?)"
ANY_OUTCOMES = ("outcome 'elom_totl' is not one of: elom_total, haz, customer_service_score_pct "
                "(did you mean 'elom_total'?)")
INFERENCES = "inference 'HC3' is not one of: CR1, CR2, WCR-bootstrap"
MODELS = {
    "estimate_ancova": (False, CHILD_OUTCOMES),
    "estimate_did": (False, CHILD_OUTCOMES),
    "estimate_heterogeneity": (True, CHILD_OUTCOMES),
    "estimate_regression_adjustment": (True, ANY_OUTCOMES),
    "estimate_ipw": (True, ANY_OUTCOMES),
    "estimate_aipw": (True, ANY_OUTCOMES),
}


@pytest.mark.parametrize("name", MODELS)
def test_one_model_names_the_valid_region_outcome_and_inference(tables, name):
    child, centres = tables
    takes_centres, outcomes = MODELS[name]
    estimate = getattr(estimation, name)
    kwargs = {"centre_outcomes": centres} if takes_centres else {}
    for wrong, expected in [(dict(region="Gautang"), REGIONS), (dict(outcome="elom_totl"), outcomes),
                            (dict(inference=["CR1", "HC3"]), INFERENCES)]:
        with pytest.raises(ChoiceError) as caught:
            estimate(child, **{"region": "Gauteng", **kwargs, **wrong})
        assert str(caught.value) == expected, name


def test_a_centre_level_outcome_names_the_centre_inferences(tables):
    child, centres = tables
    with pytest.raises(ChoiceError, match=r"^inference 'CR1' is not one of: HC1, CR2, WCR-bootstrap"):
        estimation.estimate_regression_adjustment(child, centre_outcomes=centres,
                                                  outcome="customer_service_score_pct", inference="CR1")
    with pytest.raises(ChoiceError, match=r"^outcome 'customer_service_score_pct' is not one of: elom_total, haz$"):
        estimation.estimate_ancova(child, outcome="customer_service_score_pct")
    with pytest.raises(ValueError, match="pass centre_outcomes"):  # the centre table is what is missing
        estimation.estimate_ipw(child, outcome="customer_service_score_pct")


def test_region_and_national_tables_name_the_valid_outcomes_and_estimators(tables):
    child, centres = tables
    family = "outcome 'elom_totl' is not one of: elom_total, haz, customer_service_score_pct (did you mean 'elom_total'?)"
    with pytest.raises(ChoiceError) as caught:
        estimation.estimate_region(child, centres, "Gautang")
    assert str(caught.value) == REGIONS
    with pytest.raises(ChoiceError) as caught:
        estimation.estimate_region(child, centres, "Gauteng", outcomes=["elom_total", "elom_totl"])
    assert str(caught.value) == family
    with pytest.raises(ChoiceError) as caught:
        estimation.estimate_region(child, centres, "Gauteng", estimators=["ancova", "dd"])
    assert str(caught.value) == ("estimator 'dd' is not one of: ancova, did, regression_adjustment, ipw, aipw "
                                 "(did you mean 'did'?)")
    with pytest.raises(ChoiceError) as caught:
        estimation.estimate_national(child, centres, outcomes="elom_totl")
    assert str(caught.value) == family


def test_valid_arguments_pass_the_checks(tables):
    child, centres = tables
    check = estimation.check_arguments
    assert check(child, centres, region="Limpopo", outcome="customer_service_score_pct", inference="HC1",
                 centre_level=True) is None
    as_categories = child.assign(region=child["region"].astype("category"))
    assert check(as_categories, region="Gauteng", outcome="haz", inference=estimation.ALL_INFERENCES) is None
    assert check(child, centres, outcomes=["elom_total", "customer_service_score_pct"],
                 estimators=estimation.ESTIMATORS) is None
    with pytest.raises(ChoiceError, match="^region 'Free State' is not one of: Gauteng, Limpopo$"):
        check(as_categories, region="Free State")


@pytest.fixture(scope="module")
def bench(tables) -> explore.Workbench:
    child, _ = tables
    estimates = pd.DataFrame({"region": ["Gauteng", "National"], "outcome": ["elom_total", "kling_index"],
                              "estimator": "ancova", "inference": "CR1", "subgroup": "", "estimate": 1.0})
    return explore.Workbench(children=explore._with_arm(child), estimates=estimates)


@pytest.mark.parametrize("view", ["region_estimates", "distribution_view", "balance_view", "estimates_view", "show"])
def test_workbench_views_name_the_valid_region_and_outcome(bench, view):
    function = getattr(explore, view)
    with pytest.raises(ChoiceError, match=r"^region 'Gautang' is not one of: Gauteng, Limpopo"):
        function(bench, "Gautang", **({} if view == "balance_view" else {"outcome": "elom_total"}))
    if view != "balance_view":
        with pytest.raises(ChoiceError, match=r"^outcome 'elom_totl' is not one of: elom_total, haz"):
            function(bench, "Gauteng", outcome="elom_totl")


def test_workbench_estimates_count_as_choices(bench):
    assert explore.region_estimates(bench, "National", "kling_index")["estimate"].tolist() == [1.0]
    with pytest.raises(ChoiceError, match=r"^region 'Gautang' is not one of: Gauteng, Limpopo, National "):
        explore.region_estimates(bench, "Gautang", "elom_total")
