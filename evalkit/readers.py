"""Read the four tables of a data folder, whatever the export format.

Every table is read as text (``str`` columns, blanks kept as ``""``) so that the
cleaning stage sees exactly what the field team typed: a missing-value code such
as ``-99`` or ``N/A`` is interpreted by a logged rule, never by a reader default.
Raw files are opened read-only and never written.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .config import TABLES
from .errors import InputError

__all__ = [
    "REQUIRED_COLUMNS",
    "SUPPORTED_SUFFIXES",
    "RawData",
    "find_table_file",
    "read_table",
    "read_data_folder",
    "sha256_file",
]

SUPPORTED_SUFFIXES = (".csv", ".xlsx", ".dta", ".sav")

#: Columns without which a table cannot be used at all (data contract, section 1).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "centres": ("centre_id", "province", "setting"),
    "partnerships": ("partnership_id", "centre_id", "mou_signed_date", "status"),
    "child_assessments": (
        "child_id",
        "centre_id",
        "wave",
        "assessment_date",
        "date_of_birth",
        "sex",
        "elom_gmd",
        "elom_fmc",
        "elom_enm",
        "elom_cef",
        "elom_ell",
    ),
    "parent_survey": ("response_id", "centre_id"),
}

_MAX_SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True)
class RawData:
    """The tables of one data folder as read, with where each came from."""

    folder: Path
    tables: dict[str, pd.DataFrame]
    files: dict[str, Path]
    hashes: dict[str, str] = field(default_factory=dict)


def sha256_file(path: Path) -> str:
    """Return the SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_table_file(folder: Path, table: str) -> Path:
    """Return the one file in ``folder`` holding ``table``, in any supported format."""
    candidates = [folder / f"{table}{suffix}" for suffix in SUPPORTED_SUFFIXES]
    present = [p for p in candidates if p.is_file()]
    if not present:
        raise InputError(
            folder / f"{table}.csv",
            f"file is missing: the folder needs {table}.csv, .xlsx, .dta or .sav",
        )
    if len(present) > 1:
        names = ", ".join(p.name for p in present)
        raise InputError(folder, f"table '{table}' is given twice ({names}); keep one")
    return present[0]


def _decode(raw: bytes, path: Path) -> str:
    if b"\x00" in raw[:_MAX_SNIFF_BYTES]:
        raise InputError(path, "is not a text CSV file (it contains binary data)")
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Excel on Windows in South Africa saves CSV as Windows-1252.
        return raw.decode("cp1252", errors="replace")


def _sniff_delimiter(text: str) -> str:
    head = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(head, delimiters=",;\t").delimiter
    except csv.Error:
        first = text.splitlines()[0] if text else ""
        return max(",;\t", key=first.count)


def _read_csv(path: Path) -> pd.DataFrame:
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(path, "file is empty")
    text = _decode(raw, path)
    delimiter = _sniff_delimiter(text)
    try:
        return pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=False,
        )
    except pd.errors.ParserError as exc:
        raise InputError(path, f"cannot be read as CSV ({exc})") from None


def _read_excel(path: Path) -> pd.DataFrame:
    try:
        return pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
    except Exception as exc:  # openpyxl raises many kinds for a corrupt workbook
        raise InputError(path, f"cannot be read as an Excel workbook ({exc})") from None


def _read_stata(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_stata(path, convert_categoricals=True)
    except Exception as exc:
        raise InputError(path, f"cannot be read as a Stata file ({exc})") from None
    return frame.astype(str).replace({"nan": "", "NaT": "", "None": ""})


def _read_spss(path: Path) -> pd.DataFrame:
    try:
        import pyreadstat
    except ImportError:  # pragma: no cover - depends on the environment
        raise InputError(path, "reading SPSS files needs the pyreadstat package") from None
    try:
        frame, _meta = pyreadstat.read_sav(str(path), apply_value_formats=True)
    except Exception as exc:
        raise InputError(path, f"cannot be read as an SPSS file ({exc})") from None
    return frame.astype(str).replace({"nan": "", "NaT": "", "None": ""})


_READERS = {".csv": _read_csv, ".xlsx": _read_excel, ".dta": _read_stata, ".sav": _read_spss}


def read_table(path: Path, table: str | None = None) -> pd.DataFrame:
    """Read one table file as text columns, checking its required columns.

    Column names are stripped of surrounding spaces and lower-cased, since
    exports often differ only in that.
    """
    path = Path(path)
    frame = _READERS[path.suffix.lower()](path)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    frame = frame.astype(str)
    if table is not None:
        for column in REQUIRED_COLUMNS[table]:
            if column not in frame.columns:
                raise InputError(path, "required column is missing", column=column)
    return frame


def read_data_folder(folder: Path) -> RawData:
    """Read the four contract tables from ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "data folder does not exist")
    tables, files, hashes = {}, {}, {}
    for table in TABLES:
        path = find_table_file(folder, table)
        tables[table] = read_table(path, table)
        files[table] = path
        hashes[path.name] = sha256_file(path)
    return RawData(folder=folder, tables=tables, files=files, hashes=hashes)
