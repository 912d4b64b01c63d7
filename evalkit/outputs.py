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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .config import NOTEBOOKS, TEMPLATES
from .errors import InputError

__all__ = [
    "OutputLock",
    "Staging",
    "code_fingerprint",
    "frame_digest",
    "hash_json",
    "input_file_hashes",
    "read_manifest",
    "write_csv",
    "write_json",
    "write_parquet",
]

_PACKAGE_DIR = Path(__file__).resolve().parent
LOCK_NAME = ".evalkit.lock"
STAGING_NAME = ".evalkit-staging"


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
    """Hashes of the package code and rules, the notebooks and the templates."""
    return {
        "code": _hash_files([p for p in _PACKAGE_DIR.rglob("*") if p.suffix in {".py", ".yml"}], _PACKAGE_DIR),
        "notebooks": _hash_files(NOTEBOOKS.glob("*.ipynb"), NOTEBOOKS) if NOTEBOOKS.is_dir() else "",
        "templates": _hash_files([p for p in TEMPLATES.rglob("*") if p.is_file()], TEMPLATES)
        if TEMPLATES.is_dir() else "",
    }


def frame_digest(frame: pd.DataFrame) -> str:
    """Order-sensitive hash of a DataFrame's columns and values."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    if len(frame):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
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
    digests = {}
    for path in sorted(Path(data_dir).iterdir()):
        if path.is_file() and not path.name.startswith("."):
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            digests[path.name] = digest.hexdigest()
    return digests


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
