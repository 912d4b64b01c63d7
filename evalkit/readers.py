"""Read the four tables of a data folder, whatever the export format.

Every table is read as text (``str`` columns, blanks kept as ``""``) so that the
cleaning stage sees exactly what the field team typed: a missing-value code such
as ``-99`` or ``N/A`` is interpreted by a logged rule, never by a reader default.

* CSV: the encoding (UTF-8, UTF-8 with BOM, UTF-16 with BOM, Windows-1252) and the
  delimiter (``,`` ``;`` tab ``|``) are detected, and so is the header row, when
  title lines stand above it.
* Excel ``.xlsx``: the sheet named after the table (or the codebook's sheet, or the
  first sheet); title rows above the header are skipped; date cells become ISO text.
* Stata ``.dta`` and SPSS ``.sav``: value labels are applied, except to values that
  are missing codes, which stay codes so that the cleaner keeps their reason; SPSS
  user-missing values are kept as their codes for the same reason.

:func:`read_data_folder` then applies the folder's ``codebook.yml`` (see
:mod:`evalkit.codebook`), keeps the contract's columns and drops everything else as
it reads: personal data (declared by the contract or the codebook, or a column
whose name looks personal), survey meta columns and unused columns. Only their
names are reported (:class:`SourceInfo`), never their values.

Raw files are opened read-only and never written. Input that cannot be used at all
raises :class:`~evalkit.errors.InputError` naming the file, the column and the problem.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .codebook import apply_codebook, load_codebook, merge_rules, source_names
from .config import TABLES, load_rules
from .errors import InputError
from .exports import REPEAT_LINKS, leaf_name, parent_rows, resolve_file, zip_member
from .hashing import sha256_file

__all__ = [
    "REQUIRED_COLUMNS",
    "SUPPORTED_SUFFIXES",
    "MAX_FILE_BYTES",
    "TABLES_NEEDING_ROWS",
    "RawData",
    "SourceInfo",
    "contract_columns",
    "find_table_file",
    "read_table",
    "read_data_folder",
]

SUPPORTED_SUFFIXES = (".csv", ".xlsx", ".dta", ".sav", ".zip")

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

#: Tables without which nothing can be analysed: a file with a header but no rows is an error.
#: (A data set may have no partnerships or no parent survey responses.)
TABLES_NEEDING_ROWS = ("centres", "child_assessments")

#: A table file larger than this is refused with a clear error rather than risking memory.
MAX_FILE_BYTES = 2 * 1024**3

_MAX_SNIFF_BYTES = 64 * 1024
_HEADER_SEARCH_ROWS = 30
_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_OLD_FORMATS = {".xls": "old Excel (.xls)", ".ods": "OpenDocument (.ods)", ".zsav": "compressed SPSS (.zsav)"}


@dataclass(frozen=True)
class SourceInfo:
    """How one table was read: the file, its format and what was kept or dropped.

    Column lists hold names only, never values.
    """

    table: str
    path: Path
    file_format: str
    encoding: str = ""
    delimiter: str = ""
    sheet: str = ""
    header_row: int = 1
    n_rows: int = 0
    columns_used: dict[str, str] = field(default_factory=dict)
    columns_personal: tuple[str, ...] = ()
    columns_meta: tuple[str, ...] = ()
    columns_unused: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RawData:
    """The tables of one data folder as read, with where each came from.

    Attributes
    ----------
    folder : Path
    tables : dict of DataFrame
        The contract's columns of each table as text, one row per input row.
    files : dict of Path
        The file each table was read from.
    hashes : dict of str
        SHA-256 of every file read (tables, codebook, XLSForm), by file name.
    rules : dict
        The cleaning rules with the codebook's missing codes and ranges merged in:
        pass them on, ``clean_all(raw.tables, rules=raw.rules)``.
    sources : dict of SourceInfo
        How each table was read.
    codebook : Path or None
        The codebook applied, if the folder has one.
    """

    folder: Path
    tables: dict[str, pd.DataFrame]
    files: dict[str, Path]
    hashes: dict[str, str] = field(default_factory=dict)
    rules: dict = field(default_factory=lambda: copy.deepcopy(load_rules("cleaning")))
    sources: dict[str, SourceInfo] = field(default_factory=dict)
    codebook: Path | None = None


def contract_columns(table: str, rules: dict | None = None) -> tuple[str, ...]:
    """The canonical columns of ``table`` in the data contract, personal ones included."""
    rules = rules or load_rules("cleaning")
    personal = tuple(rules.get("personal_columns", {}).get(table, ()))
    return tuple(rules["tables"][table]["columns"]) + personal


def find_table_file(folder: Path, table: str, name: str | None = None) -> Path:
    """Return the one file in ``folder`` holding ``table``, in any supported format.

    ``name`` is a file name given by the codebook; otherwise the table's base
    name with any supported suffix.
    """
    folder = Path(folder)
    if name:
        path = folder / name
        if not path.is_file():
            raise InputError(path, f"file is missing: the codebook names it for table '{table}'")
        return path
    candidates = [folder / f"{table}{suffix}" for suffix in SUPPORTED_SUFFIXES]
    present = [p for p in candidates if p.is_file()]
    if not present:
        for suffix, kind in _OLD_FORMATS.items():
            if (folder / f"{table}{suffix}").is_file():
                raise InputError(folder / f"{table}{suffix}",
                                 f"{kind} files cannot be read; save it as .xlsx or .csv")
        raise InputError(
            folder / f"{table}.csv",
            f"file is missing: the folder needs {table}.csv, .xlsx, .dta or .sav",
        )
    if len(present) > 1:
        names = ", ".join(p.name for p in present)
        raise InputError(folder, f"table '{table}' is given twice ({names}); keep one")
    return present[0]


# --------------------------------------------------------------------------- text cells


def _cell_text(value: Any) -> str:
    """One cell of a spreadsheet or statistics file as the text a person would type."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, datetime | pd.Timestamp):
        if pd.isna(value):
            return ""
        if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0):
            return value.strftime("%Y-%m-%d")
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        if float(value).is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(float(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    return str(value)


def _frame_from_rows(header: list[Any], rows: Iterable[Iterable[Any]]) -> pd.DataFrame:
    names = [_cell_text(h).strip() for h in header]
    width = len(names)
    body = [[_cell_text(v) for v in row][:width] for row in rows]
    body = [row + [""] * (width - len(row)) for row in body]
    frame = pd.DataFrame(body, columns=_unique_names(names), dtype="str") if body else \
        pd.DataFrame({n: pd.Series(dtype="str") for n in _unique_names(names)})
    return frame


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for position, name in enumerate(names):
        name = name or f"unnamed: {position + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return out


# --------------------------------------------------------------------------- header rows


def _normalise_name(name: Any) -> str:
    return str(name).strip().lower()


def _header_score(cells: list[str], expected: set[str]) -> int:
    return sum(_normalise_name(c) in expected or leaf_name(c) in expected for c in cells)


def _find_header(rows: list[list[str]], expected: set[str]) -> int:
    """Index of the header among the first rows: the row naming most expected columns.

    Title rows above a header ("ECD centre list, November 2025") name none; with
    no expected names, or no match at all, the first non-blank row is the header.
    """
    best, best_score = None, 0
    for index, cells in enumerate(rows[:_HEADER_SEARCH_ROWS]):
        score = _header_score(cells, expected) if expected else 0
        if score > best_score:
            best, best_score = index, score
    if best is not None:
        return best
    for index, cells in enumerate(rows[:_HEADER_SEARCH_ROWS]):
        if any(str(c).strip() for c in cells):
            return index
    return 0


# --------------------------------------------------------------------------- CSV


def _decode(raw: bytes, path: Path) -> tuple[str, str]:
    """Text and the name of its encoding; binary data is refused."""
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"),
                          (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(encoding), encoding
            except UnicodeDecodeError:
                raise InputError(path, f"starts with a {encoding} byte-order mark but is not "
                                       f"valid {encoding} text") from None
    head = raw[:_MAX_SNIFF_BYTES]
    if b"\x00" in head:
        raise InputError(path, "is not a text CSV file (it contains binary data)")
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # Excel on Windows in South Africa saves CSV as Windows-1252; latin-1 takes the
        # five bytes Windows-1252 leaves undefined.
        try:
            text, encoding = raw.decode("cp1252"), "windows-1252"
        except UnicodeDecodeError:
            text, encoding = raw.decode("latin-1"), "latin-1"
    sample = text[:_MAX_SNIFF_BYTES]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n\f")
    if sample and controls / len(sample) > 0.01:
        raise InputError(path, "is not a text CSV file (it contains binary data)")
    return text, encoding


def _split_lines(lines: list[str], delimiter: str) -> list[list[str]]:
    try:
        return list(csv.reader(lines, delimiter=delimiter))
    except csv.Error:
        return [line.split(delimiter) for line in lines]


def _head_lines(text: str, n: int) -> list[str]:
    """``text.splitlines()[:n]`` without splitting the whole text (a national file has a million lines)."""
    size = _MAX_SNIFF_BYTES
    while size < len(text):
        lines = text[:size].splitlines()
        if len(lines) > n:
            # A line starts after the n-th, so the n-th line and its line break are complete.
            return lines[:n]
        size *= 4
    return text.splitlines()[:n]


def _sniff(text: str, expected: set[str]) -> tuple[str, int]:
    """The delimiter and the header line (0-based) of a CSV text."""
    lines = _head_lines(text, _HEADER_SEARCH_ROWS)
    best: tuple[int, int, int, str] | None = None  # (score, width, -index, delimiter)
    for delimiter in _DELIMITERS:
        rows = _split_lines(lines, delimiter)
        index = _find_header(rows, expected)
        score = _header_score(rows[index], expected) if rows and expected else 0
        width = len(rows[index]) if rows else 0
        candidate = (score, width, -index, delimiter)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    assert best is not None
    if best[0] == 0:
        # No expected name anywhere: fall back to the sniffer on the first lines.
        head = "\n".join(lines)
        try:
            delimiter = csv.Sniffer().sniff(head, delimiters="".join(_DELIMITERS)).delimiter
        except csv.Error:
            first = lines[0] if lines else ""
            delimiter = max(_DELIMITERS, key=first.count)
        return delimiter, _find_header(_split_lines(lines, delimiter), set())
    return best[3], -best[2]


_FIELDS_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_EOF_ERROR = re.compile(r"EOF inside string starting (?:at|on) (?:row|line) (\d+)")


def _csv_problem(exc: Exception) -> str:
    message = str(exc)
    fields = _FIELDS_ERROR.search(message)
    if fields:
        expected, line, seen = fields.groups()
        return (f"line {line} has {seen} fields but the header has {expected} "
                "(a stray delimiter, or an unquoted value holding one?)")
    eof = _EOF_ERROR.search(message)
    if eof:
        return f"a quote opened in data row {int(eof.group(1))} is never closed"
    return f"cannot be read as CSV ({message.strip().splitlines()[-1] if message.strip() else type(exc).__name__})"


def _read_csv(path: Path, expected: set[str], sheet: str | None = None,
              raw: bytes | None = None) -> tuple[pd.DataFrame, dict]:
    raw = path.read_bytes() if raw is None else raw
    if not raw.strip(b" \t\r\n\x00\xef\xbb\xbf"):
        raise InputError(path, "file is empty")
    text, encoding = _decode(raw, path)
    if not text.strip():
        raise InputError(path, "file is empty")
    delimiter, header_line = _sniff(text, expected)
    header = _split_lines(_head_lines(text, _HEADER_SEARCH_ROWS)[header_line:header_line + 1], delimiter)
    if encoding in ("utf-8", "utf-8-sig"):
        # The parser reads the UTF-8 bytes themselves (the same characters, checked above): faster, and
        # no second copy of the text as it parses.
        source = io.BytesIO(raw[3:] if encoding == "utf-8-sig" else raw)
        del text
    else:
        source = io.StringIO(text)
    try:
        frame = pd.read_csv(source, sep=delimiter, skiprows=header_line, dtype="str", encoding="utf-8",
                            keep_default_na=False, na_filter=False, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise InputError(path, "has no header row") from None
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        raise InputError(path, _csv_problem(exc)) from None
    info = {"file_format": "csv", "encoding": encoding, "delimiter": _DELIMITER_NAMES[delimiter],
            "header_row": header_line + 1, "header": header[0] if header else []}
    return frame, info


# --------------------------------------------------------------------------- Excel


def _choose_sheet(names: list[str], table: str | None, sheet: str | None, path: Path) -> str:
    if sheet:
        for name in names:
            if name.strip().lower() == sheet.strip().lower():
                return name
        raise InputError(path, f"has no sheet '{sheet}' (sheets: {', '.join(names)})")
    if table:
        for name in names:
            if name.strip().lower() == table:
                return name
    return names[0]


def _read_excel(path: Path, expected: set[str], sheet: str | None = None,
                table: str | None = None) -> tuple[pd.DataFrame, dict]:
    import openpyxl

    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - zip, XML and openpyxl errors all mean "not a usable workbook"
        raise InputError(path, "cannot be read as an Excel workbook (damaged, password-protected "
                               f"or another format: {type(exc).__name__})") from None
    try:
        visible = [ws.title for ws in workbook.worksheets if ws.sheet_state == "visible"] or workbook.sheetnames
        name = _choose_sheet(visible, table, sheet, path)
        rows = [list(row) for row in workbook[name].iter_rows(values_only=True)]
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputError(path, f"cannot be read as an Excel workbook ({type(exc).__name__})") from None
    finally:
        workbook.close()
    # Trailing cells Excel keeps as formatted-but-empty carry no data.
    while rows and not any(_cell_text(v).strip() for v in rows[-1]):
        rows.pop()
    if not rows:
        raise InputError(path, f"sheet '{name}' is empty")
    text_rows = [[_cell_text(v) for v in row] for row in rows[:_HEADER_SEARCH_ROWS]]
    header_index = _find_header(text_rows, expected)
    header = rows[header_index]
    while header and not _cell_text(header[-1]).strip():
        header = header[:-1]
    frame = _frame_from_rows(header, rows[header_index + 1:])
    info = {"file_format": "xlsx", "sheet": name, "header_row": header_index + 1,
            "header": [_cell_text(h) for h in header]}
    return frame, info


# --------------------------------------------------------------------------- Stata, SPSS


def _missing_code_texts(rules: dict | None = None) -> set[str]:
    rules = rules or load_rules("cleaning")
    codes = {**rules.get("missing_codes_assumed", {}), **rules["missing_codes"]}
    return {str(code).strip().upper() for code in codes if str(code).strip()}


def _labelled_frame(frame: pd.DataFrame, meta: Any, missing_codes: set[str],
                    keep_numbers: set[str] = frozenset()) -> pd.DataFrame:
    """Numbers and dates as text, value labels applied except to missing codes and to the columns
    in ``keep_numbers`` (numeric contract columns such as Likert items and scores, by folded name
    or group leaf), which keep their numbers."""
    types = getattr(meta, "readstat_variable_types", {}) or {}
    labels = getattr(meta, "variable_value_labels", {}) or {}
    out = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_float_dtype(values):
            # Single precision (Stata "float") is shown as typed: 17.299999 -> 17.3.
            precise = values.astype("float32") if types.get(column) == "float" else values
            text = pd.Series(precise.to_numpy().astype(str), index=values.index)
            text = text.str.replace(r"\.0$", "", regex=True).where(values.notna(), "")
        elif pd.api.types.is_integer_dtype(values):
            text = values.astype(str)
        else:
            text = values.astype("object").map(_cell_text)
        if column in labels and not ({_normalise_name(column), leaf_name(column)} & keep_numbers):
            by_text = {_cell_text(code): str(label) for code, label in labels[column].items()
                       if _cell_text(code).upper() not in missing_codes}
            text = text.map(lambda value, lookup=by_text: lookup.get(value, value))
        out[column] = text.astype("str")
    return pd.DataFrame(out, index=frame.index)


def _read_stats(path: Path, expected: set[str], sheet: str | None = None,
                missing_codes: set[str] | None = None, keep_numbers: set[str] = frozenset()) -> tuple[pd.DataFrame, dict]:
    import pyreadstat

    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    is_stata = path.suffix.lower() == ".dta"
    kind = "a Stata" if is_stata else "an SPSS"
    try:
        if is_stata:
            frame, meta = pyreadstat.read_dta(str(path), apply_value_formats=False)
        else:
            # user_missing keeps -99 as -99 (not blank) so that its reason is kept.
            frame, meta = pyreadstat.read_sav(str(path), apply_value_formats=False, user_missing=True)
    except Exception as exc:  # noqa: BLE001 - pyreadstat raises its own and OS errors for bad files
        raise InputError(path, f"cannot be read as {kind} file ({type(exc).__name__})") from None
    frame = _labelled_frame(frame, meta, missing_codes if missing_codes is not None else _missing_code_texts(),
                            keep_numbers)
    info = {"file_format": "dta" if is_stata else "sav", "header_row": 1, "header": list(frame.columns)}
    return frame, info


_READERS = {".csv": _read_csv, ".xlsx": _read_excel, ".dta": _read_stats, ".sav": _read_stats, ".zip": None}


def _numeric_columns(table: str | None, rules: dict | None) -> set[str]:
    """The numeric contract columns of ``table`` (they keep their numbers, whatever their labels)."""
    if table is None:
        return set()
    columns = (rules or load_rules("cleaning"))["tables"][table]["columns"]
    return {name for name, kind in columns.items() if kind in ("number", "integer")}


def _read_file(path: Path, expected: Iterable[str] = (), *, table: str | None = None,
               sheet: str | None = None, rules: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Read one file as text columns (names stripped, case kept) and say how."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        kind = _OLD_FORMATS.get(suffix, f"'{suffix or 'no suffix'}'")
        raise InputError(path, f"{kind} files cannot be read; use .csv, .xlsx, .dta, .sav or a .zip of CSV files")
    if not path.is_file():
        raise InputError(path, "file is missing")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(path, f"file is too large ({size / 1024**3:.1f} GB; the limit is "
                               f"{MAX_FILE_BYTES / 1024**3:.0f} GB): split it or export fewer columns")
    expected = {_normalise_name(e) for e in expected}
    if suffix == ".xlsx":
        frame, info = _read_excel(path, expected, sheet, table)
    elif suffix == ".csv":
        frame, info = _read_csv(path, expected)
    elif suffix == ".zip":
        member, data = zip_member(path, sheet, table or "")
        frame, info = _read_csv(Path(f"{path}:{member}"), expected, raw=data)
        info.update(file_format="csv in zip", sheet=member)
    else:
        frame, info = _read_stats(path, expected, missing_codes=_missing_code_texts(rules) if rules else None,
                                  keep_numbers=_numeric_columns(table, rules))
    header = [_normalise_name(h) for h in info.get("header", [])]
    twice = sorted({h for h in header if h and header.count(h) > 1 and h in expected})
    if twice:
        raise InputError(path, "column appears twice in the header", column=twice[0])
    frame.columns = [str(c).strip() for c in frame.columns]
    # Columns with no name and no value (trailing separators, formatted-but-empty Excel
    # columns) carry nothing.
    empty = [c for c in frame.columns
             if (c.startswith("unnamed: ") or c.lower().startswith("unnamed:")) and not (frame[c] != "").any()]
    frame = frame.drop(columns=empty)
    return frame.astype("str"), info


def read_table(path: Path, table: str | None = None) -> pd.DataFrame:
    """Read one table file as text columns, checking its required columns.

    Column names are stripped of surrounding spaces and lower-cased, since
    exports often differ only in that. Title rows above the header are skipped
    when ``table`` is given (the header is the row naming the table's columns).
    """
    path = Path(path)
    expected = contract_columns(table) if table else ()
    frame, _info = _read_file(path, expected, table=table)
    frame.columns = [_normalise_name(c) for c in frame.columns]
    if table is not None:
        _check_required(frame, table, path)
    return frame


def _check_required(frame: pd.DataFrame, table: str, path: Path, hint: str = "", *,
                    sheet: str | None = None) -> None:
    for column in REQUIRED_COLUMNS[table]:
        if column not in frame.columns:
            problem = f"required column is missing{hint}"
            if sheet and Path(path).suffix.lower() == ".xlsx":
                others = _sheets_with(Path(path), column, sheet)
                problem += (f" from sheet '{sheet}'; the sheets that have it: {', '.join(others)}" if others
                            else f" from sheet '{sheet}' (and from every other sheet of the workbook)")
            raise InputError(path, problem, column=column)


def _sheets_with(path: Path, column: str, chosen: str) -> list[str]:
    """The other visible sheets of a workbook whose header rows name ``column`` (or a group path
    ending in it)."""
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - the sheet read before; a second look is only a hint
        return []
    try:
        found = []
        for ws in workbook.worksheets:
            if ws.title == chosen or ws.sheet_state != "visible":
                continue
            for row in ws.iter_rows(max_row=_HEADER_SEARCH_ROWS, values_only=True):
                if any(_normalise_name(_cell_text(v)) == column or leaf_name(_cell_text(v)) == column
                       for v in row):
                    found.append(ws.title)
                    break
        return found
    finally:
        workbook.close()


def _looks_personal(name: str, words: Iterable[str]) -> bool:
    folded = name.lower()
    return any(word in folded for word in words)


def _canonical_frame(frame: pd.DataFrame, table: str, path: Path, rules: dict,
                     info: dict) -> tuple[pd.DataFrame, dict]:
    """Keep the contract's columns (lower-cased names); drop and name everything else."""
    contract = contract_columns(table, rules)
    personal_declared = set(rules.get("personal_columns", {}).get(table, ()))
    words = rules.get("personal_name_words", ())
    normalised: dict[str, str] = {}
    for column in frame.columns:
        name = _normalise_name(column)
        if name in normalised and name in contract:
            raise InputError(path, f"column appears twice ('{normalised[name]}' and '{column}')", column=name)
        normalised.setdefault(name, column)
    meta_words = {_normalise_name(n) for n in rules.get("survey_meta_columns", ())}
    # A question inside groups (child/anthro/height_cm, centre-location-province) is its leaf when
    # the leaf is a contract column that no column of that very name already fills.
    by_leaf: dict[str, list[str]] = {}
    for name, column in normalised.items():
        leaf = leaf_name(name)
        if leaf != name and leaf in contract and leaf not in normalised:
            by_leaf.setdefault(leaf, []).append(column)
    for leaf, columns in by_leaf.items():
        if len(columns) > 1:
            raise InputError(path, f"columns {' and '.join(repr(c) for c in columns)} could both be '{leaf}'; "
                                   "say which in the codebook (columns:)", column=leaf)
    from_leaf = {columns[0]: leaf for leaf, columns in by_leaf.items()}
    keep, personal, meta, unused = {}, [], [], []
    for name, column in normalised.items():
        if name in personal_declared or from_leaf.get(column) in personal_declared:
            personal.append(column)
        elif name in contract:
            keep[column] = name
        elif column in from_leaf:
            keep[column] = from_leaf[column]
        elif _looks_personal(name, words):
            personal.append(column)
        elif name.startswith("_") or name in meta_words or leaf_name(name) in meta_words:
            meta.append(column)
        else:
            unused.append(column)
    out = frame[list(keep)].rename(columns=keep)
    earlier = info.get("columns_used")
    used = ({source: target for source, target in earlier.items() if target in keep.values()}
            if earlier else dict(keep))
    info = {**info, "columns_used": used,
            "columns_personal": tuple(info.get("columns_personal", ())) + tuple(personal),
            "columns_meta": tuple(info.get("columns_meta", ())) + tuple(meta),
            "columns_unused": tuple(info.get("columns_unused", ())) + tuple(unused)}
    return out, info


def _table_order(codebook) -> list[str]:
    """The contract's tables, each after the table it is a repeat group of."""
    parents = {t: spec.parent for t, spec in (codebook.tables.items() if codebook is not None else ())
               if spec.parent}
    order: list[str] = []

    def visit(table: str, seen: tuple[str, ...]) -> None:
        if table in order:
            return
        if table in seen:
            raise InputError(codebook.path, f"tables {' and '.join(seen)} are each other's parent")
        if table in parents:
            visit(parents[table], (*seen, table))
        order.append(table)

    for table in TABLES:
        visit(table, ())
    return order


def _sources(folder: Path, table: str, spec) -> list[tuple[Path, str | None, dict[str, str], str]]:
    """(file, sheet, constants, note) of every file feeding ``table``."""
    files = spec.files if spec is not None and spec.files else ()
    if not files:
        return [(find_table_file(folder, table), None, {}, "")]
    out = []
    for item in files:
        path, note = resolve_file(folder, item.file, table) if item.file else (find_table_file(folder, table), "")
        out.append((path, item.sheet, item.constants, note))
    return out


_LINK_COLUMNS = {name for pair in REPEAT_LINKS for name in pair}


def _link_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The repeat-group link columns of a table as read (they are meta columns, dropped later)."""
    keep = [c for c in frame.columns if _normalise_name(c) in _LINK_COLUMNS]
    return frame[keep].reset_index(drop=True)


def _read_sources(folder: Path, table: str, spec, codebook, rules: dict,
                  hashes: dict) -> tuple[pd.DataFrame, dict, Path, pd.DataFrame]:
    """Read, map and stack every file of one table; returns the frame (codebook applied, before the
    contract's columns are chosen), the reading info, the (first) file and the rows' repeat-group
    link columns as read."""
    expected = {*contract_columns(table, rules), *source_names(codebook, table)}
    frames, infos, notes, links = [], [], [], []
    sources = _sources(folder, table, spec)
    for path, sheet, constants, note in sources:
        frame, info = _read_file(path, expected, table=table, sheet=sheet, rules=rules)
        links.append(_link_columns(frame))
        if codebook is not None:
            frame, info = apply_codebook(frame, table, codebook, path, info, rules)
        for column, value in constants.items():
            frame[column] = value
        hashes[path.name] = sha256_file(path)
        frames.append(frame)
        infos.append(info)
        notes += [note] if note else []
    info = dict(infos[0])
    if len(frames) > 1:
        frame = pd.concat(frames, ignore_index=True).fillna("").astype("str")
        notes.insert(0, f"stacked {len(frames)} files: " + ", ".join(
            f"{p.name} ({len(f):,} rows)" for (p, *_), f in zip(sources, frames)))
        for key in ("columns_personal", "columns_meta"):
            info[key] = tuple(dict.fromkeys(c for i in infos for c in i.get(key, ())))
        info["columns_used"] = {k: v for i in infos for k, v in i.get("columns_used", {}).items()}
    else:
        frame = frames[0]
    info["notes"] = tuple(info.get("notes", ())) + tuple(notes)
    return frame, info, sources[0][0], pd.concat(links, ignore_index=True).fillna("")


def _fill_from_parent(frame: pd.DataFrame, links: pd.DataFrame, table: str, parent: str, parent_frame: pd.DataFrame,
                      parent_links: pd.DataFrame, path: Path, parent_path: Path, rules: dict) -> tuple[pd.DataFrame, list[str]]:
    """A repeat group's rows with the contract columns they lack taken from their parent rows
    (at least ``centre_id``); a missing record id is the repeat row's own key."""
    positions, note = parent_rows(links, parent_links, child_where=str(path), parent_where=str(parent_path))
    notes = [note] if note else []
    found = (positions >= 0).to_numpy()
    taken = []
    for column in contract_columns(table, rules):
        if column not in frame.columns and column in parent_frame.columns:
            values = parent_frame[column].to_numpy()[positions.clip(lower=0).to_numpy()]
            frame[column] = np.where(found, values, "")
            taken.append(column)
    if taken:
        notes.append(f"{', '.join(taken)} taken from each row's parent in {parent} ({parent_path.name})")
    key = rules["tables"][table].get("key", [])
    own = [c for c in links.columns if _normalise_name(c) in ("key", "_index")]
    for column in key:
        if column not in frame.columns and own:
            frame[column] = links[own[0]].to_numpy()
            notes.append(f"{column} is the repeat row's own {own[0]}")
    return frame, notes


def read_data_folder(folder: Path) -> RawData:
    """Read the four contract tables from ``folder``, applying its ``codebook.yml`` if any.

    Returns
    -------
    RawData
        The contract's columns of each table as text; ``rules`` carries the
        codebook's missing codes and ranges for :func:`evalkit.cleaning.clean_all`.

    Raises
    ------
    InputError
        When a table is missing, unreadable, lacks a required column, or the
        codebook is not valid.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "data folder does not exist")
    codebook = load_codebook(folder)
    rules = merge_rules(copy.deepcopy(load_rules("cleaning")), codebook)
    tables, files, hashes, sources, links = {}, {}, {}, {}, {}
    if codebook is not None:
        hashes.update(codebook.hashes)
    for table in _table_order(codebook):
        spec = codebook.tables.get(table) if codebook is not None else None
        frame, info, path, links[table] = _read_sources(folder, table, spec, codebook, rules, hashes)
        hint = " (after the codebook's renames)" if codebook is not None else ""
        frame, info = _canonical_frame(frame.reset_index(drop=True), table, path, rules, info)
        if spec is not None and spec.parent:
            frame, notes = _fill_from_parent(frame, links[table], table, spec.parent, tables[spec.parent],
                                             links[spec.parent], path, files[spec.parent], rules)
            info["notes"] = tuple(info.get("notes", ())) + tuple(notes)
        _check_required(frame, table, path, hint, sheet=info.get("sheet"))
        if table in TABLES_NEEDING_ROWS and frame.empty:
            raise InputError(path, "has a header but no data rows")
        tables[table] = frame.reset_index(drop=True)
        files[table] = path
        sources[table] = SourceInfo(
            table=table, path=path, file_format=info.get("file_format", ""),
            encoding=info.get("encoding", ""), delimiter=info.get("delimiter", ""),
            sheet=info.get("sheet", ""), header_row=int(info.get("header_row", 1)), n_rows=len(frame),
            columns_used=dict(info.get("columns_used", {})),
            columns_personal=tuple(info.get("columns_personal", ())),
            columns_meta=tuple(info.get("columns_meta", ())),
            columns_unused=tuple(info.get("columns_unused", ())),
            notes=tuple(info.get("notes", ())),
        )
    tables = {table: tables[table] for table in TABLES}
    return RawData(folder=folder, tables=tables, files={t: files[t] for t in TABLES}, hashes=hashes, rules=rules,
                   sources={t: sources[t] for t in TABLES}, codebook=codebook.path if codebook is not None else None)
