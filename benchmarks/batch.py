"""Batch speed and scale, measured in one run (issue 7).

Run from the project root: ``.venv/bin/python benchmarks/batch.py`` (or
``make bench``). Prints a Markdown section and appends it to
``benchmarks/RESULTS.md``. Every figure is a median over ``--repeats`` runs
made in this one invocation, so ratios compare like with like.

Measures:
- the floor: a trivial parameterised notebook's papermill execution time
  × ceil(regions ÷ cores), i.e. what any notebook-per-region batch must pay;
- the 9-province ``evalkit run`` (no cache) against that floor;
- a naive loop: sequential ``papermill`` + ``jupyter nbconvert`` CLI calls per region;
- an unchanged re-run ÷ the first run;
- about a million child-assessment rows end to end: wall time and peak memory
  (the evalkit process and, separately, the largest notebook kernel).
"""

from __future__ import annotations

import argparse
import math
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
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    return time.perf_counter() - start


def _trivial_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('region = "x"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def floor_seconds(work: Path, repeats: int, cores: int) -> tuple[float, float]:
    notebook = work / "trivial.ipynb"
    _trivial_notebook(notebook)
    import papermill as pm

    times = []
    for _ in range(repeats):
        # In-process, so the floor holds only kernel start-up and execution, not CLI start-up.
        start = time.perf_counter()
        pm.execute_notebook(str(notebook), str(work / "trivial-out.ipynb"), parameters={"region": "y"},
                            progress_bar=False, kernel_name="python3")
        times.append(time.perf_counter() - start)
    one = statistics.median(times)
    return one, one * math.ceil(PROVINCES / cores)


def evalkit_run(data: Path, out: Path, *extra: str) -> float:
    return _timed([str(BIN / "evalkit"), "run", "--data", str(data), "--out", str(out), *extra])


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
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    data = ROOT / "data" / "raw"
    with tempfile.TemporaryDirectory(prefix="evalkit-bench-") as tmp:
        work = Path(tmp)
        one, floor = floor_seconds(work, args.repeats, cores)
        firsts, reruns = [], []
        for i in range(args.repeats):
            out = work / f"run{i}"
            firsts.append(evalkit_run(data, out, "--no-cache"))
            reruns.append(evalkit_run(data, out))
        first, rerun = statistics.median(firsts), statistics.median(reruns)
        naive = statistics.median([naive_loop(data, work / f"naive{i}") for i in range(max(1, args.repeats - 1))])
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
        f"| naive sequential papermill + nbconvert CLI loop (render only) | {naive:.2f} | "
        f"{naive / first:.2f} × evalkit |",
        f"| unchanged re-run | {rerun:.2f} | {100 * rerun / first:.1f} % of first run |",
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
