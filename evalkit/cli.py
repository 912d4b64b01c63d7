"""Command line: ``evalkit run | check | init | codebook | simulate``.

Unusable input ends with one line naming the file, column and problem and
exit status 1; ``--debug`` shows the traceback instead. Folders default to the
study folder's (the folder holding ``evalkit.yml``, searched upward from the
working directory, else the working directory): ``data/raw/`` in, ``reports/`` out.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from .errors import InputError
from .study import EXPLORE_NOTEBOOK, PLAN_FILE, REGIONAL_NOTEBOOK, find_study, package_notebook, user_path

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_INPUT, EXIT_PARTIAL = 0, 1, 3

_RUN_EPILOG = """\
exit status:
  0  every region has its report (a region that cannot be estimated gets one that says why)
  1  the input cannot be used at all: one line names the file, column and problem
  3  some regions failed and the rest were written (the index says which and why)
  130  interrupted (Ctrl-C or SIGTERM): nothing from this run was published

The input tables, their columns and codes, and every output are described in the data
contract: docs/data-contract.md in the evalkit repository, or `python -m pydoc evalkit`.
The analysis plan (outcomes, covariates, thresholds, report names) is the study's evalkit.yml
(`evalkit init` writes one with every key and its default)."""


def _version() -> str:
    from . import __version__

    return f"evalkit {__version__}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalkit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="clean, estimate and write one report per region and an index",
                         description="Clean a data folder, estimate every region and write one report per "
                                     "region and an index.",
                         epilog=_RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--data", type=Path, default=None,
                     help="data folder (default: the study folder's data/raw/)")
    run.add_argument("--out", type=Path, default=None, help="output folder (default: the study folder's reports/)")
    run.add_argument("--plan", type=Path, default=None, metavar="FILE",
                     help=f"analysis plan (default: the study folder's {PLAN_FILE}, if any)")
    run.add_argument("--level", choices=["province", "district"], default=None,
                     help="region level (default: the plan's, else province)")
    run.add_argument("--regions", nargs="+", default=None, metavar="REGION",
                     help="only these regions (canonical names, e.g. KwaZulu-Natal; default: the plan's, else all)")
    run.add_argument("--jobs", type=int, default=None,
                     help="regional reports rendered at once (default: number of cores)")
    run.add_argument("--no-reports", action="store_true", help="stop after the results tables")
    run.add_argument("--no-cache", action="store_true",
                     help="rebuild everything even when inputs, parameters and code are unchanged")
    run.add_argument("--executor", choices=["local", "dask"], default="local",
                     help="where regional reports are rendered: pre-warmed worker processes on this machine "
                          "(default) or a Dask cluster")
    run.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (with --executor dask; "
                          "default: a cluster on this machine)")
    run.add_argument("--timeout", type=int, default=600, metavar="SECONDS",
                     help="time limit for one regional report; a report that takes longer is stopped and "
                          "marked failed (default: 600)")

    check = sub.add_parser("check", help="data-quality checks only (before analysis)",
                           description="Read, clean and check a data folder; write a data-quality page "
                                       "(data_quality.html), a workbook of flags for field teams "
                                       "(data_quality_flags.xlsx), results/data_quality.csv and cleaning_log.csv.")
    check.add_argument("--data", type=Path, default=None,
                       help="data folder (default: the study folder's data/raw/)")
    check.add_argument("--out", type=Path, default=None,
                       help="output folder, not inside the data folder (default: the study folder's reports/check/)")
    check.add_argument("--outlier-method", choices=["iqr", "sd"], default=None,
                       help="outliers by IQR fences or mean ± k SD (default: rules/quality.yml)")
    check.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")

    init = sub.add_parser("init", help="start a study folder: evalkit.yml, data/raw/, notebooks/ and a README",
                          description="Write a study folder: evalkit.yml (the analysis plan, every key with its "
                                      "default), data/raw/ (empty, or the synthetic sample with --sample), "
                                      "notebooks/ (the regional report and explore notebooks, to adapt) and a "
                                      "README. Nothing that exists is overwritten.")
    init.add_argument("dir", type=Path, help="the study folder to create (may exist if empty)")
    init.add_argument("--sample", action="store_true", help="put the synthetic sample in data/raw/")
    init.add_argument("--title", default="", help="the reports' title (report.title in evalkit.yml)")

    draft = sub.add_parser("codebook", help="draft a codebook.yml from the exports in a data folder",
                           description="Look at every export in a data folder (each sheet, each CSV of a zip) "
                                       "and draft its codebook.yml: which file is which table, repeat groups "
                                       "and their parents, columns matched by name or XLSForm label, "
                                       "personal-looking columns, and a TODO for each column not found. "
                                       "Printed, or written to --out (never over an existing file).")
    draft.add_argument("--data", type=Path, default=None,
                       help="data folder (default: the study folder's data/raw/)")
    draft.add_argument("--xlsform", type=Path, nargs="+", default=[], metavar="FILE",
                       help="the forms' XLSForms, for question labels")
    draft.add_argument("--out", type=Path, default=None, help="write the draft here instead of printing it")

    sim = sub.add_parser("simulate", help="write a realistic synthetic data folder")
    sim.add_argument("--out", type=Path, required=True)
    sim.add_argument("--seed", type=int, default=20251123)
    sim.add_argument("--scale", type=float, default=1.0)
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from .outputs import resolve_run

    if args.jobs is not None and args.jobs < 1:
        raise InputError("--jobs", "must be 1 or more")
    if args.timeout < 1:
        raise InputError("--timeout", "must be 1 second or more")
    if args.scheduler and args.executor != "dask":
        raise InputError("--scheduler", "is for --executor dask")
    key = resolve_run(args.data, args.out, level=args.level, regions=args.regions, render=not args.no_reports,
                      plan=args.plan)
    if not args.no_cache and _unchanged_since_last_run(key):
        return EXIT_OK
    from .executors import make_executor
    from .pipeline import run

    jobs = args.jobs or os.cpu_count() or 1
    # Made before run(): the local executor's worker process warms up while the data are prepared.
    with make_executor(args.executor if not args.no_reports else "none", jobs=jobs,
                       scheduler=args.scheduler) as executor:
        result = run(key.data_dir, key.output_dir, key.processed_dir, level=key.level, regions=key.regions,
                     jobs=jobs, render=not args.no_reports, use_cache=not args.no_cache, executor=executor,
                     timeout=args.timeout, plan=key.plan, notebook=key.notebook)
    if result.cached:
        print(f"Reports: {result.output_dir / 'index.html'} (unchanged)")
        return result.exit_code
    for region, info in result.region_status.items():
        print(f"  {region:<20} {info['status']:<14} {info.get('note', '')[:80]}")
    index = result.output_dir / "index.html"
    if index.exists():
        print(f"Reports: {index}")
    print(f"Results: {result.output_dir / 'results' / 'estimates.csv'}")
    if result.exit_code == EXIT_PARTIAL:
        print("Some regions failed; see the index and logs/ for the reasons.", file=sys.stderr)
    return result.exit_code


def _unchanged_since_last_run(key) -> bool:
    """The cache check before pandas, the kernels or a worker are started (standard library and
    PyYAML only), so an unchanged re-run costs little more than Python's start-up. ``pipeline.run``
    makes the same check under the output folder's lock; this one only skips the run when no other
    run is writing the folder."""
    from .outputs import LOCK_NAME, UP_TO_DATE_MESSAGE, read_manifest, up_to_date

    if (key.output_dir / LOCK_NAME).exists() or not up_to_date(key, read_manifest(key.output_dir)):
        return False
    print(UP_TO_DATE_MESSAGE)
    print(f"Reports: {key.output_dir / 'index.html'} (unchanged)")
    return True


def _cmd_check(args: argparse.Namespace) -> int:
    from .checkreport import run_check
    from .plan import load_plan, using

    study = find_study()
    data = user_path(args.data) if args.data is not None else study.data_dir
    out = user_path(args.out) if args.out is not None else study.check_dir
    with using(load_plan(study.plan_file)):
        result = run_check(data, out, outlier_method=args.outlier_method)
    for table, counts in result.quality.row_counts.items():
        print(f"  {table:<18} in {counts['rows_in']:>7}  kept {counts['rows_kept']:>7}  "
              f"dropped {counts['rows_dropped']:>5}")
    print(f"Flags: {result.counts['errors']} errors, {result.counts['warnings']} warnings"
          + (f"; {result.counts['schema_failures']} schema failures" if result.counts["schema_failures"] else ""))
    print(f"Report: {result.html}")
    print(f"Flags workbook: {result.workbook}")
    print(f"Cleaning log: {result.log}")
    return EXIT_OK


_STUDY_README = """\
# {name}

An evalkit study folder.

- `evalkit.yml`: the analysis plan (outcomes, covariates, thresholds, report names). Every key is
  listed there with its default; uncomment what your plan changes.
- `data/raw/`: the four input tables (centres, partnerships, child_assessments, parent_survey) as
  CSV, Excel, Stata or SPSS, and optionally a `codebook.yml`. Nothing in this folder is ever changed.
- `notebooks/`: the regional report and the explorer. `evalkit run` uses this copy of
  `{regional}`, so a change here changes every report; delete it to use evalkit's own.

From anywhere inside this folder:

    evalkit check     # data-quality checks for field teams -> reports/check/
    evalkit run       # one report per region -> reports/index.html
    jupyter lab notebooks/{explore}
"""


def _cmd_init(args: argparse.Namespace) -> int:
    import shutil

    from .plan import plan_template

    root = user_path(args.dir)
    if root.exists() and not root.is_dir():
        raise InputError(root, "exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        raise InputError(root, "is not empty; evalkit init writes a new study folder and overwrites nothing")
    (root / "data" / "raw").mkdir(parents=True, exist_ok=True)
    (root / "notebooks").mkdir()
    (root / PLAN_FILE).write_text(plan_template(args.title), encoding="utf-8")
    for name in (REGIONAL_NOTEBOOK, EXPLORE_NOTEBOOK):
        shutil.copyfile(package_notebook(name), root / "notebooks" / name)
    (root / "README.md").write_text(_STUDY_README.format(name=root.name, regional=REGIONAL_NOTEBOOK,
                                                         explore=EXPLORE_NOTEBOOK), encoding="utf-8")
    if args.sample:
        from .simulate import simulate

        simulate(root / "data" / "raw")
    print(f"Wrote a study folder to {root}" + (" with the synthetic sample in data/raw/." if args.sample else
                                               "; put the four input tables in data/raw/."))
    print(f"Next: cd {root} && evalkit check && evalkit run")
    return EXIT_OK


def _cmd_codebook(args: argparse.Namespace) -> int:
    from .draft import draft_codebook, write_draft

    data = user_path(args.data) if args.data is not None else find_study().data_dir
    forms = [user_path(p) for p in args.xlsform]
    if args.out is None:
        sys.stdout.write(draft_codebook(data, forms))
    else:
        print(f"Wrote a draft codebook to {write_draft(data, user_path(args.out), forms)}; check it, then save "
              "it as codebook.yml in the data folder.")
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate import simulate

    if args.scale <= 0:
        raise InputError("--scale", "must be greater than 0")
    result = simulate(args.out, seed=args.seed, scale=args.scale)
    print(f"Wrote a synthetic data folder to {result.out} (seed {result.seed}, scale {result.scale:g}).")
    return EXIT_OK


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (a scheduler or `kill`) unwinds like Ctrl-C, so staged output is discarded.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"run": _cmd_run, "check": _cmd_check, "init": _cmd_init, "codebook": _cmd_codebook,
                "simulate": _cmd_simulate}
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return commands[args.command](args)
    except InputError as exc:
        if args.debug:
            raise
        print(f"evalkit: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        where = getattr(args, "out", None) or (find_study().reports_dir if args.command == "run" else None)
        kept = f" The previous complete output in {where} is unchanged and usable." if where else ""
        print(f"evalkit: interrupted; nothing from this run was published.{kept}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
