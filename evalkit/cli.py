"""Command line: ``evalkit run | check | simulate``.

Unusable input ends with one line naming the file, column and problem and
exit status 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from .config import DATA_RAW, REPORTS
from .errors import InputError

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_INPUT, EXIT_PARTIAL = 0, 1, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalkit", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="clean, estimate and write one report per region and an index")
    run.add_argument("--data", type=Path, default=DATA_RAW, help="data folder (default: data/raw/)")
    run.add_argument("--out", type=Path, default=None, help="output folder (default: reports/)")
    run.add_argument("--level", choices=["province", "district"], default="province")
    run.add_argument("--regions", nargs="+", default=None, metavar="REGION",
                     help="only these regions (canonical names, e.g. KwaZulu-Natal)")
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
    check.add_argument("--data", type=Path, default=DATA_RAW, help="data folder (default: data/raw/)")
    check.add_argument("--out", type=Path, default=REPORTS / "check",
                       help="output folder, not inside the data folder (default: reports/check/)")
    check.add_argument("--outlier-method", choices=["iqr", "sd"], default=None,
                       help="outliers by IQR fences or mean ± k SD (default: rules/quality.yml)")
    check.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")

    sim = sub.add_parser("simulate", help="write a realistic synthetic data folder")
    sim.add_argument("--out", type=Path, required=True)
    sim.add_argument("--seed", type=int, default=20251123)
    sim.add_argument("--scale", type=float, default=1.0)
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    if args.jobs is not None and args.jobs < 1:
        raise InputError("--jobs", "must be 1 or more")
    output_dir = args.out if args.out is not None else REPORTS
    if args.timeout < 1:
        raise InputError("--timeout", "must be 1 second or more")
    if args.scheduler and args.executor != "dask":
        raise InputError("--scheduler", "is for --executor dask")
    if not args.no_cache and _unchanged_since_last_run(args, output_dir):
        return EXIT_OK
    from .executors import make_executor
    from .pipeline import run

    jobs = args.jobs or os.cpu_count() or 1
    # Made before run(): the local executor's worker process warms up while the data are prepared.
    with make_executor(args.executor if not args.no_reports else "none", jobs=jobs,
                       scheduler=args.scheduler) as executor:
        result = run(args.data, output_dir, level=args.level, regions=args.regions, jobs=jobs,
                     render=not args.no_reports, use_cache=not args.no_cache, executor=executor,
                     timeout=args.timeout)
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


def _unchanged_since_last_run(args: argparse.Namespace, output_dir: Path) -> bool:
    """The cache check before pandas, the kernels or a worker are started (standard library only),
    so an unchanged re-run costs little more than Python's start-up. ``pipeline.run`` makes the
    same check under the output folder's lock; this one only skips the run when no other run is
    writing the folder."""
    from .outputs import LOCK_NAME, UP_TO_DATE_MESSAGE, read_manifest, run_key, up_to_date

    key = run_key(args.data, output_dir, level=args.level, regions=args.regions, render=not args.no_reports)
    if (key.output_dir / LOCK_NAME).exists() or not up_to_date(key, read_manifest(key.output_dir)):
        return False
    print(UP_TO_DATE_MESSAGE)
    print(f"Reports: {key.output_dir / 'index.html'} (unchanged)")
    return True


def _cmd_check(args: argparse.Namespace) -> int:
    from .checkreport import run_check

    result = run_check(args.data, args.out, outlier_method=args.outlier_method)
    for table, counts in result.quality.row_counts.items():
        print(f"  {table:<18} in {counts['rows_in']:>7}  kept {counts['rows_kept']:>7}  "
              f"dropped {counts['rows_dropped']:>5}")
    print(f"Flags: {result.counts['errors']} errors, {result.counts['warnings']} warnings"
          + (f"; {result.counts['schema_failures']} schema failures" if result.counts["schema_failures"] else ""))
    print(f"Report: {result.html}")
    print(f"Flags workbook: {result.workbook}")
    print(f"Cleaning log: {result.log}")
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
    commands = {"run": _cmd_run, "check": _cmd_check, "simulate": _cmd_simulate}
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
        where = getattr(args, "out", None) or (REPORTS if args.command == "run" else None)
        kept = f" The previous complete output in {where} is unchanged and usable." if where else ""
        print(f"evalkit: interrupted; nothing from this run was published.{kept}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
