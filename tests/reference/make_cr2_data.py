"""Write tests/reference/cr2_frames.csv: the model frames R's clubSandwich is run on.

Run from the project root: ``python tests/reference/make_cr2_data.py`` (seed 5150), then
``Rscript tests/reference/cr2_clubsandwich.R tests/reference/cr2_frames.csv
tests/reference/cr2_r_output.csv``.

A child table in the shape of ``child_outcomes`` (two waves, some children seen once) and a
centre table in the shape of ``centre_outcomes`` are generated with deliberate awkwardness:
unequal centre sizes from 1 to 24 children, single-child centres, a region with 7 centres (the
Webb-weights range), a region with one setting only, a fee band found only among partnered
centres. evalkit's own frame builders then turn them into one long CSV with a ``model``
column: ``ancova``, ``did`` (child panel, centre fixed effects), ``regression_adjustment``,
``ipw`` and ``aipw`` (the centre-level ATT weights in ``weight``), ``centre_regression_adjustment``
and ``centre_aipw`` (one row per centre) and ``national_ancova`` (all regions, region dummies in ``stratum``). Centre
covariates a region's centres cannot support (``evalkit.propensity.affordable_covariates``) are
written as the constant "(left out)", so that R fits the model evalkit fits.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.estimation import (
    _ChildFrames,
    _aipw_frame,
    _centre_scores,
    _did_sample,
    _ipw_sample,
    _model_frame_as_fitted,
    _scored_centres,
    centre_outcome_frame,
)

SEED = 5150
HERE = Path(__file__).resolve().parent
COLUMNS = ["model", "region", "centre_id", "child_id", "y", "partnered", "baseline", "age_months", "sex", "setting",
           "registration_status", "fee_band", "endline", "partnered_x_endline", "weight", "stratum"]


def make_tables(seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A child table (both waves) and a centre table with a partnership effect of 2 points."""
    rng = np.random.default_rng(seed)
    specs = [("Alpha", 30, ("urban", "peri-urban", "rural")), ("Beta", 7, ("urban", "rural")),
             ("Gamma", 16, ("rural",)), ("Delta", 22, ("urban", "peri-urban", "rural"))]
    children, centres = [], []
    child = 0
    for region, n_centres, settings in specs:
        for c in range(n_centres):
            centre_id = f"{region[0]}{c:03d}"
            setting = settings[c % len(settings)]
            registration = ("registered", "conditional", "unregistered")[rng.integers(0, 3)]
            partnered = bool(c % 3 == 0) if c < 6 else bool(rng.random() < (0.55 if registration == "registered" else 0.3))
            fee = ("none", "low", "middle")[rng.integers(0, 3)]
            if region == "Delta" and partnered and c % 4 == 0:
                fee = "high"  # a level seen only among partnered centres
            m = 1 if c in (2, 5) else int(rng.integers(2, 25))
            u, v = rng.normal(0, 4), rng.normal(0, 3)
            centres.append({"centre_id": centre_id, "region": region, "is_partnered": partnered, "setting": setting,
                            "registration_status": registration, "fee_band": fee,
                            "customer_service_score_pct": float(np.clip(60 + 8 * partnered + rng.normal(0, 12), 0, 100))})
            for _ in range(m):
                child += 1
                base = 45 + u + rng.normal(0, 11)
                age = rng.uniform(48, 60)
                sex = ("female", "male")[rng.integers(0, 2)]
                end = 8 + 0.8 * base + 0.6 * (age - 54) + 1.2 * (sex == "female") + 2.0 * partnered + v + rng.normal(0, 8)
                waves = [("baseline", base, age), ("endline", end, age + 8)]
                if rng.random() < 0.08:
                    waves = waves[:1]  # left before the endline
                elif rng.random() < 0.05:
                    waves = waves[1:]  # joined after the baseline
                for wave, score, months in waves:
                    children.append({"child_id": f"K{child:05d}", "centre_id": centre_id, "region": region,
                                     "wave": wave, "is_partnered": partnered, "age_months": round(months, 4),
                                     "sex": sex, "setting": setting, "elom_total": round(score, 2)})
    return pd.DataFrame(children), pd.DataFrame(centres)


def make_frames(children: pd.DataFrame, centres: pd.DataFrame) -> pd.DataFrame:
    """The model frames, stacked, with the columns R reads."""
    parts = []
    for region in sorted(children["region"].unique()):
        data = children.loc[children["region"] == region]
        cen = centres.loc[centres["region"] == region]
        frames = _ChildFrames(data, ["elom_total"], baseline_source=children, centre_outcomes=cen)
        endline = frames.endline_only("elom_total")
        scored = _scored_centres(data, cen, None)
        ipw = _ipw_sample(endline, scored).rename(columns={"weight_att": "weight"})
        covariates = ["registration_status", "fee_band"]
        centre = centre_outcome_frame(cen, None, "customer_service_score_pct")
        aipw = _ipw_sample(_aipw_frame(frames.ancova("elom_total"), endline, covariates)[0], scored)
        centre_aipw = _ipw_sample(centre, _centre_scores(centre, covariates))
        for model, frame in (("ancova", frames.ancova("elom_total")), ("did", _did_sample(frames.did("elom_total"))),
                             ("regression_adjustment", _model_frame_as_fitted(endline, covariates)), ("ipw", ipw),
                             ("centre_regression_adjustment", _model_frame_as_fitted(centre, covariates)),
                             ("aipw", _model_frame_as_fitted(aipw, covariates, "aipw")),
                             ("centre_aipw", _model_frame_as_fitted(centre_aipw, covariates, "aipw"))):
            parts.append(frame.rename(columns={"weight_att": "weight"}).assign(model=model, region=region))
    national = _ChildFrames(children, ["elom_total"]).ancova("elom_total")
    parts.append(national.assign(model="national_ancova", stratum=national["region"], region="National"))
    out = pd.concat(parts, ignore_index=True)
    return out.reindex(columns=COLUMNS)


if __name__ == "__main__":
    make_frames(*make_tables()).to_csv(HERE / "cr2_frames.csv", index=False, float_format="%.17g")
