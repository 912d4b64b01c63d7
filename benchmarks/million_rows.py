"""About a million child-assessment rows end to end: time and peak memory (issue 7).

Run from the project root: ``.venv/bin/python benchmarks/million_rows.py`` (``make bench``
runs it). It simulates a national-size folder (``evalkit simulate --scale 200``: about 1.1
million child-assessment rows, 50,000 centres) unless ``--data`` names one, then times
``evalkit run --no-cache`` on it ``--repeats`` times and appends a Markdown section with the
medians to ``benchmarks/RESULTS.md``.

Memory is the peak of the **sum** over the evalkit process and every process it started
(analysis workers, the report worker and its kernels), sampled every 0.1 s from
``/proc/<pid>/smaps_rollup``: PSS (proportional set size) counts a page shared by forked
processes once in total, so the sum is the machine memory the run needs; the largest
single-process RSS is reported beside it. The stage split comes from the run manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def _descendants(pid: int) -> list[int]:
    """The process and all its descendants (from /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
    return found


def _memory_kb(pid: int) -> tuple[int, int]:
    """(sum of PSS, largest RSS) over a process tree, in kB."""
    total, largest = 0, 0
    for member in _descendants(pid):
        try:
            text = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        values = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()[1:] if ":" in line}
        total += values.get("Pss", 0)
        largest = max(largest, values.get("Rss", 0))
    return total, largest


def timed_run(data: Path, out: Path, *extra: str) -> dict[str, float]:
    """One ``evalkit run --no-cache``: wall seconds, peak summed PSS and largest RSS (MB), stages."""
    cmd = [str(BIN / "evalkit"), "run", "--data", str(data), "--out", str(out), "--no-cache", *extra]
    peak = {"pss": 0, "rss": 0}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            pss, rss = _memory_kb(proc.pid)
            peak["pss"], peak["rss"] = max(peak["pss"], pss), max(peak["rss"], rss)
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode not in (0, 3):
        raise SystemExit(f"evalkit run failed ({proc.returncode}): {stderr[-2000:]}")
    timings = json.loads((out / "run_manifest.json").read_text())["timings_seconds"]
    return {"seconds": seconds, "peak_pss_mb": peak["pss"] / 1024, "largest_rss_mb": peak["rss"] / 1024,
            **{f"stage_{k}": v for k, v in timings.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="an existing data folder (default: simulate one)")
    parser.add_argument("--scale", type=float, default=200, help="simulate scale (200 ≈ 1.1 M child rows)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-reports", action="store_true", help="stop after the results tables")
    parser.add_argument("--no-record", action="store_true", help="print the section, do not append it to RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evalkit-million-") as tmp:
        work = Path(tmp)
        data = args.data
        if data is None:
            data = work / "data"
            subprocess.run([str(BIN / "evalkit"), "simulate", "--out", str(data), "--scale", str(args.scale)],
                           check=True, stdout=subprocess.DEVNULL)
        with (data / "child_assessments.csv").open("rb") as fh:
            rows = sum(1 for _ in fh) - 1
        extra = ("--no-reports",) if args.no_reports else ()
        runs = [timed_run(data, work / "out", *extra) for _ in range(args.repeats)]
    median = {key: statistics.median(r.get(key, 0.0) for r in runs) for key in runs[0]}
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    stages = ", ".join(f"{k.removeprefix('stage_')} {v:.1f} s" for k, v in median.items()
                       if k.startswith("stage_") and k != "stage_total")
    lines = [
        f"## Million rows, {stamp}",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"medians of {args.repeats} runs of `evalkit run --no-cache{' --no-reports' if args.no_reports else ''}` "
        f"in this one invocation on {rows:,} child-assessment rows.",
        "",
        "| measure | value | target |",
        "|---|---:|---:|",
        f"| wall time, end to end | {median['seconds']:.1f} s | 60 s |",
        f"| peak memory, all evalkit processes together (PSS) | {median['peak_pss_mb'] / 1024:.2f} GB | 3 GB |",
        f"| largest single process (RSS) | {median['largest_rss_mb'] / 1024:.2f} GB | |",
        "",
        f"Stages (wall, from the run manifest): {stages}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        with RESULTS.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
