"""Batch speed and scale, measured in one run (issue 7).

Run from the project root: ``.venv/bin/python benchmarks/batch.py`` (or
``make bench``). Prints a Markdown section and appends it to
``benchmarks/RESULTS.md``. Every figure is a median over ``--repeats`` runs
made in this one invocation, so ratios compare like with like.

Measures:
- the floor: a trivial parameterised notebook's papermill execution time
  × ceil(regions ÷ cores), i.e. what any notebook-per-region batch must pay;
- the 9-province ``evalkit run`` (no cache) against that floor, with where its
  time goes (start-up, data preparation, rendering) from the run manifests;
- the previous design (a thread pool, one ordinarily started kernel per region)
  and the Dask executor on a local cluster, on the same data;
- a naive loop: sequential ``papermill`` + ``jupyter nbconvert`` CLI calls per region;
- an unchanged re-run ÷ the first run (flagged when it was not a cache hit, which
  happens when someone edits evalkit's code between the two runs);
- ``--level district`` on the same data: wall time and how many districts were
  reported, estimated and not estimable;
- about a million child-assessment rows end to end: wall time and peak memory
  (the evalkit process and, separately, the largest notebook kernel).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
PROVINCES = 9


def _timed(cmd: list[str], **kwargs) -> float:
    return _timed_output(cmd, **kwargs)[0]


def _timed_output(cmd: list[str], **kwargs) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    return time.perf_counter() - start, done.stdout


def _trivial_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('region = "x"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def trivial_notebook_seconds(work: Path) -> float:
    """One papermill execution of a trivial parameterised notebook (kernel start and two cells)."""
    notebook = work / "trivial.ipynb"
    if not notebook.exists():
        _trivial_notebook(notebook)
    import papermill as pm

    # In-process, so the floor holds only kernel start-up and execution, not CLI start-up.
    start = time.perf_counter()
    pm.execute_notebook(str(notebook), str(work / "trivial-out.ipynb"), parameters={"region": "y"},
                        progress_bar=False, kernel_name="python3")
    return time.perf_counter() - start


def evalkit_run(data: Path, out: Path, *extra: str) -> float:
    return _timed([str(BIN / "evalkit"), "run", "--data", str(data), "--out", str(out), *extra])


def evalkit_first_run(data: Path, out: Path, *extra: str) -> tuple[float, float]:
    """A run without cache: wall seconds, and the seconds the reports took (from its progress lines)."""
    seconds, stdout = _timed_output([str(BIN / "evalkit"), "run", "--data", str(data), "--out", str(out),
                                     "--no-cache", *extra])
    return seconds, _rendered_seconds(stdout)


def evalkit_rerun(data: Path, out: Path) -> tuple[float, bool]:
    """An unchanged re-run, and whether it was a cache hit."""
    seconds, stdout = _timed_output([str(BIN / "evalkit"), "run", "--data", str(data), "--out", str(out)])
    return seconds, "(unchanged)" in stdout


def manifest_split(out: Path, wall: float) -> dict[str, float]:
    """Where a run's time went: start-up (wall − the run's own total), data, rendering, the rest."""
    manifest = json.loads((out / "run_manifest.json").read_text())
    timings = manifest["timings_seconds"]
    # the data stages (read, clean, indicators, and the regions' analysis side by side); writing
    # the tables, the cache keys, the workbook and the index count as "other"
    data = sum(v for k, v in timings.items() if k in ("read", "clean", "indicators", "analysis"))
    render = timings.get("render", 0.0)
    seconds = [info.get("render_seconds", 0.0) for info in manifest["regions"].values()]
    return {"startup": wall - timings["total"], "data": data, "render": render,
            "other": timings["total"] - data - render,
            "region_median": statistics.median(seconds) if seconds else 0.0}


def _rendered_seconds(stdout: str) -> float:
    found = re.findall(r"^Rendered \d+ report\(s\) in ([\d.]+) s", stdout, re.M)
    return float(found[-1]) if found else float("nan")


def previous_design(data: Path, out: Path, cores: int) -> tuple[float, float]:
    """The batch as it was before the region server: a thread pool, an ordinary kernel per region."""
    code = ("import sys; from evalkit.pipeline import run; from evalkit.executors import ThreadExecutor; "
            "run(sys.argv[1], sys.argv[2], jobs=int(sys.argv[3]), use_cache=False, "
            "executor=ThreadExecutor(int(sys.argv[3])))")
    seconds, stdout = _timed_output([sys.executable, "-c", code, str(data), str(out), str(cores)])
    return seconds, _rendered_seconds(stdout)


def district_run(data: Path, out: Path) -> dict[str, float]:
    start = time.perf_counter()
    done = subprocess.run([str(BIN / "evalkit"), "run", "--data", str(data), "--out", str(out), "--level", "district",
                           "--no-cache"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 3):  # 3: some districts' reports failed, which the table counts
        raise RuntimeError(f"district run failed ({done.returncode}): {done.stderr[-2000:]}")
    manifest = json.loads((out / "run_manifest.json").read_text())
    regions = manifest["regions"]
    statuses = [info.get("render_status", info["status"]) for info in regions.values()]
    return {"seconds": seconds, "districts": len(regions), "ok": statuses.count("ok"),
            "not_estimable": statuses.count("not_estimable"), "failed": statuses.count("failed"),
            "render": manifest["timings_seconds"].get("render", float("nan"))}


def naive_loop(data: Path, work: Path) -> float:
    """What a hand-rolled batch does: every region through the CLI tools, one after another."""
    from evalkit.pipeline import run, slugify

    prepared_out = work / "naive"
    run(data, prepared_out, render=False, progress=lambda _: None)
    regions = [line.split(",")[0] for line in
               (prepared_out / "results" / "estimates.csv").read_text().splitlines()[1:]]
    regions = sorted(set(regions))
    start = time.perf_counter()
    for region in regions:
        slug = slugify(region)
        executed = work / f"{slug}.ipynb"
        subprocess.run([str(BIN / "papermill"), "--no-progress-bar", str(ROOT / "notebooks" / "regional_evaluation.ipynb"),
                        str(executed), "-p", "region", region, "-p", "output_dir", str(prepared_out),
                        "-p", "processed_dir", str(prepared_out / "processed")],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        subprocess.run([str(BIN / "jupyter"), "nbconvert", "--to", "html", "--no-input",
                        "--TemplateExporter.extra_template_basedirs", str(ROOT / "templates"),
                        "--template", "evalkit_report", str(executed)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def million_rows(work: Path, scale: float) -> dict[str, float]:
    data = work / "million"
    subprocess.run([str(BIN / "evalkit"), "simulate", "--out", str(data), "--scale", str(scale)],
                   check=True, stdout=subprocess.DEVNULL)
    rows = sum(1 for _ in (data / "child_assessments.csv").open("rb")) - 1
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    cmd = [sys.executable, "-c", probe, sys.executable, "-c",
           "import resource, sys; from evalkit.cli import main; code = main(sys.argv[1:]); "
           "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)",
           "run", "--data", str(data), "--out", str(work / "million-out"), "--no-cache"]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    seconds, child_kb = done.stdout.split()
    main_kb = int(done.stderr.strip().splitlines()[-1])
    return {"rows": rows, "seconds": float(seconds), "peak_main_mb": main_kb / 1024,
            "peak_any_process_mb": int(child_kb) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=float, default=200, help="simulate scale for the million-row run")
    parser.add_argument("--skip-million", action="store_true")
    parser.add_argument("--skip-comparisons", action="store_true",
                        help="skip the previous design, the Dask executor and the naive loop")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    data = ROOT / "data" / "raw"
    with tempfile.TemporaryDirectory(prefix="evalkit-bench-") as tmp:
        work = Path(tmp)
        trivial, firsts, renders, reruns, hits, splits = [], [], [], [], [], []
        more_jobs, previous, previous_renders, dask, naive = [], [], [], [], []
        # The variants take turns within each repeat, so that load from other processes on the
        # machine falls on all of them alike; each figure is the median over the repeats.
        for i in range(args.repeats):
            trivial.append(trivial_notebook_seconds(work))
            out = work / f"run{i}"
            seconds, rendering = evalkit_first_run(data, out)
            firsts.append(seconds)
            renders.append(rendering)
            splits.append(manifest_split(out, seconds))
            seconds, hit = evalkit_rerun(data, out)
            reruns.append(seconds)
            hits.append(hit)
            if not args.skip_comparisons:
                more_jobs.append(evalkit_first_run(data, work / f"jobs{i}", "--jobs", str(cores + 1))[1])
                previous.append(previous_design(data, work / f"previous{i}", cores))
                previous_renders.append(previous[-1][1])
                previous[-1] = previous[-1][0]
                dask.append(evalkit_first_run(data, work / f"dask{i}", "--executor", "dask")[0])
                naive.append(naive_loop(data, work / f"naive{i}"))
        one = statistics.median(trivial)
        floor = one * math.ceil(PROVINCES / cores)
        first, rerun, rendering = statistics.median(firsts), statistics.median(reruns), statistics.median(renders)
        split = {key: statistics.median(s[key] for s in splits) for key in splits[0]}
        district_runs = [district_run(data, work / f"district{i}") for i in range(args.repeats)]
        district = dict(district_runs[0], seconds=statistics.median(d["seconds"] for d in district_runs),
                        render=statistics.median(d["render"] for d in district_runs))
        more_jobs, previous, previous_rendering, dask, naive = (
            statistics.median(x) if x else None for x in (more_jobs, previous, previous_renders, dask, naive))
        million = None if args.skip_million else million_rows(work, args.scale)
        shutil.rmtree(work, ignore_errors=True)

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## Batch benchmark, {stamp}",
        "",
        f"Machine: {platform.platform()}, {cores} cores, Python {platform.python_version()}; "
        f"medians of {args.repeats} runs in this one invocation.",
        "",
        "| measure | seconds | ratio |",
        "|---|---:|---:|",
        f"| trivial notebook, one papermill execution | {one:.2f} | |",
        f"| floor = trivial × ceil({PROVINCES} ÷ {cores}) | {floor:.2f} | 1.00 |",
        f"| evalkit run, 9 provinces, first run (no cache) | {first:.2f} | {first / floor:.2f} × floor |",
        f"| … of which start-up (imports) | {split['startup']:.2f} | |",
        f"| … of which data work (read, clean, indicators; estimates, balance, power of the regions side by side) | {split['data']:.2f} | |",
        f"| … of which the 9 reports (--jobs {cores}, from the first report started to the last one done) | "
        f"{rendering:.2f} | {rendering / floor:.2f} × floor |",
        f"| … of which everything else (writing tables, cache keys, workbook, index, publishing) | "
        f"{split['render'] + split['other'] - rendering:.2f} | |",
        f"| one region's report (median, inside the batch) | {split['region_median']:.2f} | |",
    ]
    if previous is not None:
        lines += [
            f"| the 9 reports with --jobs {cores + 1} on {cores} cores | {more_jobs:.2f} | "
            f"{more_jobs / floor:.2f} × floor |",
            f"| design before the region server (thread pool, an ordinarily started kernel per region; "
            f"conversion as today): whole run | {previous:.2f} | {previous / first:.2f} × evalkit |",
            f"| … of which the 9 reports | {previous_rendering:.2f} | {previous_rendering / floor:.2f} × floor, "
            f"{previous_rendering / rendering:.2f} × evalkit's reports |",
            f"| --executor dask (local cluster in the evalkit process): whole run | {dask:.2f} | "
            f"{dask / first:.2f} × evalkit |",
            f"| naive sequential papermill + nbconvert CLI loop (the 9 reports only) | {naive:.2f} | "
            f"{naive / rendering:.2f} × evalkit's reports |",
        ]
    miss = "" if all(hits) else f" ({hits.count(False)} of {len(hits)} re-runs were NOT cache hits: code changed?)"
    lines += [
        f"| unchanged re-run | {rerun:.2f} | {100 * rerun / first:.1f} % of first run{miss} |",
        f"| --level district, {district['districts']} districts ({district['ok']} estimated, "
        f"{district['not_estimable']} not estimable, {district['failed']} failed) | {district['seconds']:.2f} | "
        f"{district['seconds'] / first:.2f} × province run |",
        f"| … of which the {district['districts']} reports (--jobs {cores}) | "
        f"{district['render']:.2f} | |",
    ]
    if million:
        lines.append(f"| {million['rows']:,} child-assessment rows end to end | {million['seconds']:.1f} | "
                     f"peak memory {million['peak_main_mb']:.0f} MB (evalkit), "
                     f"{million['peak_any_process_mb']:.0f} MB (largest child process) |")
    text = "\n".join(lines) + "\n"
    print(text)
    with RESULTS.open("a", encoding="utf-8") as fh:
        fh.write("\n" + text)


if __name__ == "__main__":
    main()
