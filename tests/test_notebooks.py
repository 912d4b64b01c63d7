"""The notebooks under nbval (lax mode, with sanitizers), and the explorer's functions.

nbval runs each notebook top to bottom with its default parameters, which leave
the folders to the study folder (the folder holding ``evalkit.yml`` above the
notebook). So each test makes a temporary study folder holding a prepared run
(or, for the explorer's fallback, only a raw data folder), copies the notebook
into its ``notebooks/`` as ``evalkit init`` does, and runs nbval on the copy.
"""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from evalkit import explore
from evalkit.pipeline import run
from evalkit.plan import plan_template
from evalkit.study import package_notebooks_dir
from evalkit.simulate import simulate

SANITIZE = Path(__file__).parent / "nbval_sanitize.cfg"
NOTEBOOKS = package_notebooks_dir()
NOTEBOOK_FILES = ("regional_evaluation.ipynb", "explore.ipynb")


def _nbval(notebook: str, home: Path) -> subprocess.CompletedProcess:
    (home / "evalkit.yml").write_text(plan_template(), encoding="utf-8")
    (home / "notebooks").mkdir(exist_ok=True)
    copy = home / "notebooks" / notebook
    copy.write_bytes((NOTEBOOKS / notebook).read_bytes())
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-sanitize-with", str(SANITIZE), str(copy)],
        capture_output=True, text=True, env=dict(os.environ), cwd=home / "notebooks")


@pytest.fixture(scope="module")
def prepared_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    simulate(home / "data" / "raw", seed=31, scale=0.5)
    run(home / "data" / "raw", home / "reports", home / "data" / "processed",
        regions=["Gauteng"], render=False, progress=lambda _: None)
    return home


@pytest.mark.slow
def test_regional_notebook_under_nbval(prepared_home):
    result = _nbval("regional_evaluation.ipynb", prepared_home)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


@pytest.mark.slow
def test_explore_notebook_under_nbval_on_a_finished_run(prepared_home):
    result = _nbval("explore.ipynb", prepared_home)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


@pytest.mark.slow
def test_explore_notebook_under_nbval_with_only_raw_data(tmp_path):
    simulate(tmp_path / "data" / "raw", seed=32, scale=0.3)
    result = _nbval("explore.ipynb", tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize("name", NOTEBOOK_FILES)
def test_notebooks_are_committed_without_outputs_and_define_nothing(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not cell.outputs and cell.execution_count is None, f"{name}: strip outputs before committing"
        assert "def " not in cell.source and "class " not in cell.source and "lambda" not in cell.source, \
            f"{name}: move code into the evalkit package"


# --------------------------------------------------------------------------- the explorer's functions

def _children(rng) -> pd.DataFrame:
    """Two regions, 4 centres each; partnered endline scores 5 points higher, girls in alternating rows."""
    rows = []
    for region in ("Gauteng", "Limpopo"):
        for c in range(8):
            partnered = c < 4
            for k in range(15):
                base = rng.normal(45, 8)
                for wave, gain in (("baseline", 0.0), ("endline", 8.0 + 5.0 * partnered)):
                    rows.append(dict(child_id=f"K{region[0]}{c}{k}", centre_id=f"{region[0]}{c}", region=region,
                                     wave=wave, is_partnered=partnered, sex="female" if k % 2 else "male",
                                     setting="urban" if c % 2 else "rural", age_months=55.0 + 9 * (wave == "endline"),
                                     elom_total=base + gain + rng.normal(0, 2), haz=rng.normal(-0.5, 1)))
    return pd.DataFrame(rows)


@pytest.fixture
def bench(rng):
    children = _children(rng)
    estimates = pd.DataFrame([dict(region="Gauteng", outcome="elom_total", estimator="ancova", inference="CR1",
                                   estimate=5.0, std_error=0.5, df=7, ci_low=3.8, ci_high=6.2, p_value=0.001,
                                   effect_size_sd=0.6, n_children=120, n_centres_partnered=4,
                                   n_centres_comparison=4, status="ok", note="")])
    return explore.Workbench(children=explore._with_arm(children), estimates=estimates, source="test")


def test_workbench_hides_child_ids_and_lists_regions_and_outcomes(bench):
    assert bench.children["child_id"].dtype.kind == "i"  # a number, not the real id
    assert bench.children.groupby("child_id")["wave"].nunique().eq(2).all()  # waves still pair up
    assert bench.regions == ["Gauteng", "Limpopo"]
    assert bench.outcomes == ["elom_total", "haz"]
    assert "2 regions" in bench._repr_html_()


def test_subgroup_mask_and_unknown_subgroup(bench):
    girls = explore.subgroup_mask(bench.children, "girls")
    assert set(bench.children.loc[girls, "sex"]) == {"female"}
    assert girls.sum() == 2 * 8 * 7 * 2  # regions x centres x girls (odd k of 15) x waves
    with pytest.raises(ValueError, match="unknown subgroup"):
        explore.subgroup_mask(bench.children, "left-handed")


def test_baseline_balance_hand_computed():
    children = pd.DataFrame({"wave": "baseline", "arm": ["Partnered"] * 4 + ["Comparison"] * 4,
                             "elom_total": [40.0, 42, 44, 46, 40, 42, 44, 46],
                             "sex": ["female", "female", "male", "male", "female", "male", "male", "male"]})
    table = explore.baseline_balance(children).set_index("characteristic")
    assert table.loc["Baseline ELOM total", "smd"] == 0 and table.loc["Baseline ELOM total", "flag"] == "good"
    # shares 0.5 vs 0.25; variances 1/3 and 1/4 (n-1): smd = 0.25 / sqrt((1/3 + 1/4) / 2)
    assert table.loc["Girls (share)", "smd"] == pytest.approx(0.25 / np.sqrt((1 / 3 + 1 / 4) / 2))
    assert table.loc["Girls (share)", "flag"] == "fails"


def test_region_estimates_from_the_run_and_computed_for_a_subgroup(bench):
    whole = explore.region_estimates(bench, "Gauteng", "elom_total")
    assert whole["estimate"].tolist() == [5.0]
    girls = explore.region_estimates(bench, "Gauteng", "elom_total", "girls")
    assert girls["inference"].tolist() == ["CR1", "CR2"]
    assert set(girls["subgroup"]) == {"girls"} and girls["note"].str.contains("computed here").all()
    assert (girls["ci_low"] < 5.0).all() and (girls["ci_high"] > 5.0).all()  # true effect 5 points


def test_show_and_explorer_render_all_three_views(bench, capsys):
    markup = explore.show(bench, "Gauteng", "elom_total", "girls").data
    for heading in ("Distribution of ELOM total", "Baseline balance", "Estimates"):
        assert heading in markup
    assert 'alt="Box plots of elom_total' in markup and 'role="img"' in markup
    # urban centres: 2 per arm, too few to show (the small-cell rule)
    assert "No box: every group is suppressed" in explore.show(bench, "Gauteng", "elom_total", "urban centres").data
    assert "KG" not in markup  # no child ids
    box = explore.explorer(bench)
    region, outcome, subgroup = box.children[0].children
    assert list(region.options) == ["Gauteng", "Limpopo"] and subgroup.value == "all children"
    subgroup.value = "boys"
    # Outside a kernel the Output widget cannot capture, so each redraw prints the view's repr
    assert capsys.readouterr().out.count("IPython.core.display.HTML object") == 2  # first draw + the change
