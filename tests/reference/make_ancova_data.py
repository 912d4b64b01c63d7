"""Write tests/reference/ancova_cr1_data.csv: a stored dataset for the R comparison.

Run from the project root: ``python tests/reference/make_ancova_data.py``
(seed 4242). Regions differ on purpose: unequal cluster sizes, one region with
only two settings, one with few clusters, so that dropped factor levels and
small-sample corrections are exercised. Then run
``Rscript tests/reference/ancova_cr1.R tests/reference/ancova_cr1_data.csv
tests/reference/ancova_cr1_r_output.csv``.
"""

from pathlib import Path

import numpy as np
import pandas as pd

SEED = 4242
HERE = Path(__file__).resolve().parent


def make(seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    specs = [("Alpha", 40, ("urban", "peri-urban", "rural")), ("Beta", 12, ("urban", "rural")),
             ("Gamma", 25, ("urban", "peri-urban", "rural")), ("Delta", 7, ("urban", "peri-urban", "rural"))]
    for region, n_centres, settings in specs:
        for c in range(n_centres):
            m = int(rng.integers(3, 25))
            setting = settings[c % len(settings)]
            partnered = int(rng.random() < (0.6 if setting == "urban" else 0.3)) if c > 3 else c % 2
            u = rng.normal(0, 4)
            base = 45 + u + rng.normal(0, 11, m)
            age = rng.uniform(56, 68, m)
            sex = rng.choice(["female", "male"], m)
            y = (8 + 0.8 * base + 0.6 * (age - 60) + 1.2 * (sex == "female") + 2.0 * partnered
                 + rng.normal(0, 3) + rng.normal(0, 8, m))
            parts.append(pd.DataFrame({
                "region": region, "centre_id": f"{region[:1]}{c:03d}", "y": y.round(2),
                "partnered": partnered, "baseline": base.round(2), "age_months": age.round(4),
                "sex": sex, "setting": setting}))
    return pd.concat(parts, ignore_index=True)


if __name__ == "__main__":
    make().to_csv(HERE / "ancova_cr1_data.csv", index=False)
