"""WHO z-score throughput: evalkit's vectorised code against pygrowup2's per-row API.

Run: ``.venv/bin/python benchmarks/zscore_throughput.py``. Reports medians of 5
runs measured in this one run, and their ratio.
"""

import platform
import statistics
import time
from datetime import date

import numpy as np
import pandas as pd
from pygrowup import Observation

from evalkit.growth import who_zscores

N = 1_000_000
N_PER_ROW = 2_000


def main() -> None:
    rng = np.random.default_rng(1)
    age = rng.integers(1, 1857, N).astype(float)
    sex = pd.Series(rng.choice(["female", "male"], N))
    height = np.round(rng.normal(45 + age * 0.035, 4), 1)
    weight = np.round(rng.normal(3 + age * 0.008, 1.2), 2).clip(1.5)
    lying = rng.random(N) < 0.5
    who_zscores(age[:10], sex[:10], height[:10], weight[:10])  # warm the table cache

    times = []
    for _ in range(5):
        t = time.perf_counter()
        who_zscores(age, sex, height, weight, measured_lying=lying)
        times.append(time.perf_counter() - t)
    ours = statistics.median(times)

    def per_row(i: int) -> None:
        obs = Observation(sex=sex[i], age_in_days=int(age[i]))
        h, w, d = float(height[i]), float(weight[i]), int(age[i])
        for call in (lambda: obs.lhfa(str(h), recumbent=bool(lying[i])), lambda: obs.wfa(str(w)),
                     lambda: (obs.wfl if d < 731 else obs.wfh)(str(w), str(round(h, 1))),
                     lambda: obs.bmifa(str(w / (h / 100) ** 2))):
            try:
                call()
            except Exception:  # pygrowup2 raises for values outside its tables
                pass

    times = []
    for _ in range(5):
        t = time.perf_counter()
        for i in range(N_PER_ROW):
            per_row(i)
        times.append(time.perf_counter() - t)
    theirs_per_million = statistics.median(times) * N / N_PER_ROW
    print(f"# z-score throughput, {date.today()}, {platform.machine()}, {platform.processor() or ''}")
    print(f"evalkit who_zscores, {N:,} rows: median {ours:.3f} s ({N / ours:,.0f} rows/s)")
    print(f"pygrowup2 per-row, {N_PER_ROW:,} rows scaled to {N:,}: median {theirs_per_million:.1f} s")
    print(f"ratio: evalkit is {theirs_per_million / ours:.0f} x faster")


if __name__ == "__main__":
    main()
