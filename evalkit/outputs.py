"""The output folder: one writer at a time, all-or-nothing updates, and a cache.

A run writes everything into a staging folder inside the output folder and
moves the finished files into place only at the end, so an interrupted run
(Ctrl-C, SIGTERM, a crash) leaves the previous complete output as it was.
A lock file stops two runs writing one output folder.

The cache is keyed on what a result depends on: the input files' hashes, the
run's parameters and a fingerprint of the code, notebook and templates. An
unchanged re-run does nothing; a change to one region's data re-renders that
region only (and the index).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .hashing import sha256_file
from .plan import Plan, load_plan
from .study import find_study, package_notebooks_dir, package_templates_dir, user_path
from .errors import InputError

if TYPE_CHECKING:  # pandas is imported where a frame is written: the cache check must not pay for it
    import pandas as pd

__all__ = [
    "UP_TO_DATE_MESSAGE",
    "OutputLock",
    "RunKey",
    "Staging",
    "code_fingerprint",
    "frame_digest",
    "frame_digests_by",
    "hash_json",
    "input_file_hashes",
    "outputs_complete",
    "read_manifest",
    "resolve_run",
    "run_key",
    "up_to_date",
    "write_csv",
    "write_json",
    "write_parquet",
]

_PACKAGE_DIR = Path(__file__).resolve().parent
LOCK_NAME = ".evalkit.lock"
STAGING_NAME = ".evalkit-staging"
UP_TO_DATE_MESSAGE = ("Nothing changed since the last run: inputs, parameters and code are the same. "
                      "The reports are up to date.")


def hash_json(value: Any) -> str:
    """SHA-256 of a JSON-serialisable value, independent of key order."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _hash_files(paths: Iterable[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def code_fingerprint() -> dict[str, str]:
    """Hashes of the package code and rules, the package's notebooks and its templates."""
    notebooks, templates = package_notebooks_dir(), package_templates_dir()
    return {
        "code": _hash_files([p for p in _PACKAGE_DIR.rglob("*") if p.suffix in {".py", ".yml"}
                             and notebooks not in p.parents and templates not in p.parents], _PACKAGE_DIR),
        "notebooks": _hash_files(notebooks.glob("*.ipynb"), notebooks),
        "templates": _hash_files([p for p in templates.rglob("*") if p.is_file()], templates),
    }


def frame_digest(frame: pd.DataFrame) -> str:
    """Order-sensitive hash of a DataFrame's columns and values."""
    return _rows_digest(frame.columns, _row_hashes(frame))


def frame_digests_by(frame: pd.DataFrame, column: str, values: Iterable[str]) -> dict[str, str]:
    """:func:`frame_digest` of the rows where ``column`` equals each of ``values``, with every
    row hashed once however many values (a region's slice of a national table, say)."""
    row_hashes = _row_hashes(frame)
    labels = frame[column].astype(object).to_numpy()
    return {value: _rows_digest(frame.columns, row_hashes[labels == value]) for value in values}


def _row_hashes(frame: pd.DataFrame):
    import pandas as pd

    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def _rows_digest(columns: Iterable, row_hashes) -> str:
    digest = hashlib.sha256(",".join(map(str, columns)).encode())
    digest.update(row_hashes.tobytes())
    return digest.hexdigest()


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a CSV via a temporary name and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False, lineterminator="\n", float_format="%.10g")
    os.replace(tmp, path)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def write_json(data: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def input_file_hashes(data_dir: Path) -> dict[str, str]:
    """SHA-256 of every visible file in the data folder (tables, codebook, notes)."""
    return {path.name: sha256_file(path) for path in sorted(Path(data_dir).iterdir())
            if path.is_file() and not path.name.startswith(".")}


def read_manifest(output_dir: Path) -> dict | None:
    """The manifest of the last complete run in ``output_dir``, if any."""
    path = Path(output_dir) / "run_manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


class OutputLock:
    """An exclusive lock file in the output folder, released on exit.

    A lock left by a process that no longer exists is taken over.
    """

    def __init__(self, output_dir: Path):
        self.path = Path(output_dir) / LOCK_NAME
        self.stale_taken_over = False

    def __enter__(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _pid_alive(pid) and pid != os.getpid():
                    raise InputError(self.path.parent, f"another evalkit run (process {pid}) is writing "
                                                       "this output folder; wait for it or choose another --out")
                self.path.unlink(missing_ok=True)
                self.stale_taken_over = True
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            return self
        raise InputError(self.path.parent, "could not take the output folder's lock")

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class Staging:
    """A staging folder whose files replace their counterparts in ``target`` on commit."""

    target: Path

    @property
    def path(self) -> Path:
        return self.target / STAGING_NAME

    def open(self) -> Path:
        shutil.rmtree(self.path, ignore_errors=True)  # left by an interrupted run
        self.path.mkdir(parents=True)
        return self.path

    def commit(self, *, remove: Iterable[Path] = ()) -> None:
        """Move every staged file into place (each move is atomic); the manifest last."""
        staged = sorted(p for p in self.path.rglob("*") if p.is_file())
        manifest = [p for p in staged if p.name == "run_manifest.json" and p.parent == self.path]
        for path in [p for p in staged if p not in manifest] + manifest:
            destination = self.target / path.relative_to(self.path)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, destination)
        for path in remove:
            Path(path).unlink(missing_ok=True)
        shutil.rmtree(self.path, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@dataclass(frozen=True)
class RunKey:
    """What a run's results depend on, resolved before any data are read."""

    data_dir: Path
    output_dir: Path
    processed_dir: Path
    parameters: dict
    fingerprint: dict
    key: str
    plan: Plan = field(default_factory=Plan)
    notebook: Path | None = None

    @property
    def level(self) -> str:
        return self.parameters["level"]

    @property
    def regions(self) -> list[str] | None:
        return None if self.parameters["regions"] == "all" else list(self.parameters["regions"])


def run_key(data_dir: Path | str, output_dir: Path | str, processed_dir: Path | str | None = None, *,
            level: str = "province", regions: list[str] | None = None, render: bool = True,
            plan: dict | None = None, notebook: Path | str | None = None) -> RunKey:
    """Resolve a run's folders and hash its inputs, parameters, plan and code (standard library
    and PyYAML only, so the command line's cache check stays fast).

    Relative folders are taken from the working directory; ``processed_dir`` defaults to
    ``<output_dir>/processed``. ``plan`` is the plan's overrides of the rules
    (:meth:`evalkit.plan.Plan.rule_overrides`) and ``notebook`` the report notebook used (a
    study's own copy counts like the package's): a change to either is a change of the run.
    """
    data_dir, output_dir = user_path(data_dir), user_path(output_dir)
    processed_dir = user_path(processed_dir) if processed_dir is not None else output_dir / "processed"
    if not data_dir.is_dir():
        raise InputError(data_dir, "data folder does not exist")
    parameters = {"data_dir": str(data_dir), "output_dir": str(output_dir), "processed_dir": str(processed_dir),
                  "level": level, "regions": sorted(regions) if regions else "all", "render": render}
    if notebook is not None:
        parameters["notebook"] = str(notebook)
    fingerprint = dict(code_fingerprint())
    fingerprint["plan"] = hash_json(plan or {})
    if notebook is not None:
        fingerprint["notebook"] = sha256_file(Path(notebook))
    key = hash_json({"inputs": input_file_hashes(data_dir), "parameters": parameters, "fingerprint": fingerprint})
    return RunKey(data_dir, output_dir, processed_dir, parameters, fingerprint, key,
                  notebook=Path(notebook) if notebook is not None else None)


def resolve_run(data_dir: Path | str | None = None, output_dir: Path | str | None = None,
                processed_dir: Path | str | None = None, *, level: str | None = None,
                regions: list[str] | None = None, render: bool = True, plan: Plan | Path | str | None = None,
                notebook: Path | str | None = None) -> RunKey:
    """A run's folders, plan and notebook from what the caller gave and the study folder's defaults.

    Anything not given comes from the study folder (:func:`evalkit.study.find_study`, upward from
    the working directory): its ``evalkit.yml`` (the plan; its ``regions.level`` and
    ``regions.only`` when ``level`` / ``regions`` are not given), ``data/raw/`` in, ``reports/``
    out, ``data/processed/`` for the default output folder (else ``<out>/processed``) and the
    study's own regional notebook when it has one. Given paths are relative to the working
    directory.
    """
    study = find_study()
    if not isinstance(plan, Plan):
        plan = load_plan(user_path(plan) if plan is not None else study.plan_file)
    effective = plan.effective()
    level = level or effective["regions.level"]
    if regions is None and effective["regions.only"] != "all":
        regions = list(effective["regions.only"])
    out = user_path(output_dir) if output_dir is not None else study.reports_dir
    processed = user_path(processed_dir) if processed_dir is not None else study.processed_dir_for(out)
    notebook = user_path(notebook) if notebook is not None else study.notebook()
    key = run_key(user_path(data_dir) if data_dir is not None else study.data_dir, out, processed,
                  level=level, regions=regions, render=render, plan=plan.rule_overrides(), notebook=notebook)
    return replace(key, plan=plan)


def outputs_complete(key: RunKey, manifest: dict) -> bool:
    """Every file the last run published is still there, and every PDF brief it tried to write
    (a brief that failed is missing, so the next run tries it again)."""
    out = key.output_dir
    needed = [out / "index.html", out / "results" / "estimates.csv", out / "cleaning_log.csv",
              key.processed_dir / "child_outcomes.parquet"]
    needed += [out / info["report"] for info in manifest.get("regions", {}).values() if info.get("report")]
    needed += [out / info["path"] for info in manifest.get("briefs", {}).values() if info.get("path")]
    return all(path.is_file() for path in needed)


def up_to_date(key: RunKey, manifest: dict | None) -> bool:
    """True when ``manifest`` (the last run's) was made from exactly these inputs, parameters and
    code, finished without failures, and its files are all in place: nothing needs redoing."""
    return bool(manifest and manifest.get("cache", {}).get("run_key") == key.key
                and manifest.get("exit_code") == 0 and manifest.get("complete", True)
                and outputs_complete(key, manifest))
