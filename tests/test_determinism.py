"""Same inputs and seed → byte-identical results and log; reports identical but for the time stamp."""

import re

import pytest

from evalkit.pipeline import run
from evalkit.simulate import simulate

pytestmark = pytest.mark.slow
JOBS = re.compile(r"jobs = <code>\d+</code>")  # the stamp lists the run's parameters, --jobs among them
STAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?(\.\d+)?( ?(UTC|\+00:00|Z))?")


def test_two_runs_agree(tmp_path):
    simulate(tmp_path / "data", seed=11, scale=0.4)
    outs = []
    # one process, then two: the regions' analysis is shared out over processes, which must not
    # change a byte of the results
    for name, jobs in (("one", 1), ("two", 2)):
        out = tmp_path / name
        run(tmp_path / "data", out, regions=["Gauteng", "Northern Cape"], jobs=jobs, use_cache=False,
            progress=lambda _: None)
        outs.append(out)
    one, two = outs
    for path in ("results/estimates.csv", "cleaning_log.csv", "results/indicators.csv"):
        assert (one / path).read_bytes() == (two / path).read_bytes(), path
    for page in ["index.html", "regions/gauteng.html", "regions/northern-cape.html"]:
        first = JOBS.sub("JOBS", STAMP.sub("TIME", (one / page).read_text(encoding="utf-8")))
        second = JOBS.sub("JOBS", STAMP.sub("TIME", (two / page).read_text(encoding="utf-8")))
        assert first == second, page
