"""A data folder's ``codebook.yml``: map any export onto the data contract.

Survey platforms (KoboToolbox, ODK, SurveyCTO) and statistics packages name
columns and code values their own way. A codebook says, per table, which source
column is which contract column, how values are recoded, which columns hold
personal data, and which missing codes and plausible ranges the organisation
uses. It can take value labels from the form itself (an XLSForm's ``survey`` and
``choices`` sheets) and turn a select_multiple question into a contract column.
The format is documented in ``docs/cleaning.md``; an example is
``tests/fixtures/kobo/codebook.yml``.

Everything here is applied as the data is read (:func:`evalkit.readers.read_data_folder`):
personal columns never leave this step. Renaming and recoding are declared, so
they are not logged cell by cell; the cleaner then logs everything it does to
the values that arrive.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import yaml

from .cleaning import missing_code_reasons
from .config import load_rules
from .errors import InputError
from .exports import leaf_name
from .hashing import sha256_file

__all__ = [
    "CODEBOOK_FILE",
    "Codebook",
    "FileSpec",
    "TableCodebook",
    "SelectMultiple",
    "XLSForm",
    "load_codebook",
    "read_xlsform",
    "apply_codebook",
    "canonical_codes",
    "merge_rules",
    "source_names",
]

CODEBOOK_FILE = "codebook.yml"

_TOP_KEYS = {"version", "description", "xlsform", "xlsform_label", "group_separator", "strip_groups",
             "missing_codes", "ranges", "tables"}
_TABLE_KEYS = {"file", "sheet", "files", "constants", "parent", "xlsform", "columns", "personal", "drop", "values",
               "select_multiple", "date_formats"}
_FILE_KEYS = {"file", "sheet", "constants"}
_SELECT_KEYS = {"to", "yes_if_any", "separator"}


@dataclass(frozen=True)
class SelectMultiple:
    """A select_multiple question turned into one yes/no contract column.

    The answer is the space-separated column ``source`` or, when the export has
    only one 0/1 column per option, those columns (``source/option``). The
    contract column is ``yes`` when any option in ``yes_if_any`` is chosen, ``no``
    when the question was answered with none of them; blank stays blank. An
    answer with an option the form does not know is passed on as typed, so the
    cleaner flags it rather than a guess being made.
    """

    source: str
    target: str
    yes_if_any: tuple[str, ...]
    separator: str = " "


@dataclass(frozen=True)
class FileSpec:
    """One file feeding a table: its name or glob, the sheet (or zip member) and constant columns
    (``{wave: baseline}`` for an export of one wave)."""

    file: str
    sheet: str | None = None
    constants: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TableCodebook:
    """The codebook of one table; source names are folded to lower case.

    ``files`` lists every file feeding the table (one, or one per wave); ``parent`` names the
    table whose rows this one's rows belong to (a repeat group: see :mod:`evalkit.exports`).
    """

    file: str | None = None
    sheet: str | None = None
    files: tuple[FileSpec, ...] = ()
    parent: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    personal: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    select_multiple: tuple[SelectMultiple, ...] = ()
    form: "XLSForm | None" = None
    #: Date formats by date column, tried before the rules' (``date_formats`` for the table or a column).
    date_formats: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class XLSForm:
    """Value labels of an XLSForm: select_one questions and select_multiple options."""

    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Codebook:
    """A parsed, validated ``codebook.yml``."""

    path: Path
    tables: dict[str, TableCodebook]
    missing_codes: dict[str, str] = field(default_factory=dict)
    ranges: dict[str, list[float]] = field(default_factory=dict)
    group_separator: str = "/"
    strip_groups: bool = False
    form: XLSForm = field(default_factory=XLSForm)
    hashes: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- loading


def _fold(name: Any) -> str:
    return str(name).strip().lower()


def _require_mapping(value: Any, path: Path, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(path, f"'{where}' must be a mapping (name: value), not {type(value).__name__}")
    return value


def _require_list(value: Any, path: Path, where: str) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise InputError(path, f"'{where}' must be a list, not {type(value).__name__}")
    return value


def _check_keys(given: dict, allowed: set[str], path: Path, where: str) -> None:
    unknown = sorted(set(map(str, given)) - allowed)
    if unknown:
        raise InputError(path, f"unknown key '{unknown[0]}' in {where} (allowed: {', '.join(sorted(allowed))})")


def _contract(table: str, rules: dict) -> tuple[str, ...]:
    return tuple(rules["tables"][table]["columns"]) + tuple(rules.get("personal_columns", {}).get(table, ()))


# The strptime directives a codebook's date format may use (not the locale's %c, %x, %X, nor %Z).
_STRPTIME_DIRECTIVES = set("aAbBdfHIjmMpSUwWyYzGuV%")


def _parse_date_formats(name: str, value: Any, path: Path, rules: dict) -> dict[str, tuple[str, ...]]:
    """``date_formats``: a list for every date column of the table, or a mapping of date column -> list."""
    where = f"tables.{name}.date_formats"
    if value is None:
        return {}
    moments = [c for c, kind in rules["tables"][name]["columns"].items() if kind in ("date", "datetime")]
    if isinstance(value, dict):
        formats = {}
        for column, listed in value.items():
            if _fold(column) not in moments:
                raise InputError(path, f"{where} names '{column}', which is not a date column of {name} "
                                       f"({', '.join(moments) or 'it has none'})", column=str(column))
            formats[_fold(column)] = _strptime_formats(listed, path, f"{where}.{column}")
        return formats
    if not moments:
        raise InputError(path, f"{where}: {name} has no date column")
    listed = _strptime_formats(value, path, where)
    return {column: listed for column in moments}


def _strptime_formats(value: Any, path: Path, where: str) -> tuple[str, ...]:
    listed = [value] if isinstance(value, str) else value
    if not isinstance(listed, list) or not listed:
        raise InputError(path, f"'{where}' must be a list of date formats such as [\"%d.%m.%Y\"], or a mapping "
                               "of date column -> list")
    for fmt in listed:
        directives = re.findall(r"%(.)", fmt) if isinstance(fmt, str) else []
        if not directives:
            raise InputError(path, f"'{where}': {fmt!r} is not a date format (strptime directives such as "
                                   "%d, %m, %Y, %H, %M, %S, %b, %p)")
        unknown = [d for d in directives if d not in _STRPTIME_DIRECTIVES]
        if unknown:
            raise InputError(path, f"'{where}': '{fmt}' uses %{unknown[0]}, which is not a strptime directive "
                                   f"evalkit reads ({', '.join('%' + d for d in sorted(_STRPTIME_DIRECTIVES))})")
        if "z" in directives and not fmt.endswith("%z"):
            raise InputError(path, f"'{where}': '{fmt}' has %z before its end; an offset may only end a format")
    return tuple(listed)


def _parse_table(name: str, spec: dict, path: Path, rules: dict, separator: str, label: str | None,
                 hashes: dict[str, str]) -> TableCodebook:
    where = f"tables.{name}"
    _check_keys(spec, _TABLE_KEYS, path, where)
    contract = set(_contract(name, rules))
    columns: dict[str, str] = {}
    for source, target in _require_mapping(spec.get("columns"), path, f"{where}.columns").items():
        target = _fold(target)
        if target not in contract:
            raise InputError(path, f"{where}.columns maps '{source}' to '{target}', which is not a column of "
                                   f"{name} in the data contract", column=str(source))
        if target in columns.values():
            other = next(s for s, t in columns.items() if t == target)
            raise InputError(path, f"{where}.columns maps both '{other}' and '{source}' to '{target}'",
                             column=target)
        columns[_fold(source)] = target
    values: dict[str, dict[str, str]] = {}
    for target, recode in _require_mapping(spec.get("values"), path, f"{where}.values").items():
        if _fold(target) not in contract:
            raise InputError(path, f"{where}.values recodes '{target}', which is not a column of {name}",
                             column=str(target))
        recode = _require_mapping(recode, path, f"{where}.values.{target}")
        values[_fold(target)] = {str(k).strip(): str(v) for k, v in recode.items()}
    selects = []
    for source, sm in _require_mapping(spec.get("select_multiple"), path, f"{where}.select_multiple").items():
        sm = _require_mapping(sm, path, f"{where}.select_multiple.{source}")
        _check_keys(sm, _SELECT_KEYS, path, f"{where}.select_multiple.{source}")
        target = _fold(sm.get("to", ""))
        if target not in contract:
            raise InputError(path, f"{where}.select_multiple.{source}.to must name a column of {name}",
                             column=target or None)
        options = tuple(str(o).strip() for o in _require_list(sm.get("yes_if_any"), path, "yes_if_any"))
        if not options:
            raise InputError(path, f"{where}.select_multiple.{source} needs yes_if_any: [options]")
        selects.append(SelectMultiple(source=_fold(source), target=target, yes_if_any=options,
                                      separator=str(sm.get("separator", " "))))
    form = None
    if spec.get("xlsform"):
        form = _load_form(path.parent / str(spec["xlsform"]), separator, label, hashes)
    files = _parse_files(name, spec, path, contract)
    parent = spec.get("parent")
    if parent is not None and (str(parent) not in rules["tables"] or str(parent) == name):
        raise InputError(path, f"{where}.parent must name another table of the data contract "
                               f"({', '.join(t for t in rules['tables'] if t != name)}), not '{parent}'")
    return TableCodebook(
        form=form,
        file=files[0].file if len(files) == 1 else None,
        sheet=files[0].sheet if len(files) == 1 else None,
        files=files,
        parent=str(parent) if parent is not None else None,
        columns=columns,
        personal=tuple(_fold(c) for c in _require_list(spec.get("personal"), path, f"{where}.personal")),
        drop=tuple(_fold(c) for c in _require_list(spec.get("drop"), path, f"{where}.drop")),
        values=values,
        select_multiple=tuple(selects),
        date_formats=_parse_date_formats(name, spec.get("date_formats"), path, rules),
    )


def _constants(value: Any, path: Path, where: str, table: str, contract: set[str]) -> dict[str, str]:
    constants = {}
    for column, text in _require_mapping(value, path, where).items():
        if _fold(column) not in contract:
            raise InputError(path, f"{where} sets '{column}', which is not a column of {table} in the data "
                                   "contract", column=str(column))
        constants[_fold(column)] = "" if text is None else str(text)
    return constants


def _parse_files(table: str, spec: dict, path: Path, contract: set[str]) -> tuple[FileSpec, ...]:
    """``file`` / ``sheet`` / ``constants``, or a ``files`` list of them."""
    where = f"tables.{table}"
    if spec.get("files") is not None:
        if spec.get("file") or spec.get("sheet") or spec.get("constants"):
            raise InputError(path, f"{where} gives both 'files' and 'file' (or 'sheet', 'constants'); "
                                   "use one")
        items = _require_list(spec["files"], path, f"{where}.files")
        if not items:
            raise InputError(path, f"{where}.files is empty")
    else:
        items = [{k: spec[k] for k in _FILE_KEYS if spec.get(k) is not None}] if spec.get("file") else []
        if not items and (spec.get("sheet") or spec.get("constants")):
            items = [{k: spec[k] for k in _FILE_KEYS if spec.get(k) is not None}]
    files = []
    for i, item in enumerate(items):
        here = f"{where}.files[{i + 1}]" if spec.get("files") is not None else where
        item = _require_mapping(item, path, here)
        _check_keys(item, _FILE_KEYS, path, here)
        if spec.get("files") is not None and not item.get("file"):
            raise InputError(path, f"{here} needs file: <name or pattern>")
        files.append(FileSpec(file=str(item["file"]) if item.get("file") else "",
                              sheet=str(item["sheet"]) if item.get("sheet") else None,
                              constants=_constants(item.get("constants"), path, f"{here}.constants", table,
                                                   contract)))
    return tuple(files)


def load_codebook(folder: Path, rules: dict | None = None) -> Codebook | None:
    """Read and check ``<folder>/codebook.yml``; ``None`` when the folder has none.

    Raises
    ------
    InputError
        Naming ``codebook.yml`` (and the key or column) when it cannot be used:
        YAML syntax, unknown keys, a target that is not a contract column, a
        missing XLSForm, a range that is not two numbers.
    """
    path = Path(folder) / CODEBOOK_FILE
    if not path.is_file():
        return None
    rules = rules or load_rules("cleaning")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise InputError(path, "is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" on line {mark.line + 1}" if mark is not None else ""
        raise InputError(path, f"is not valid YAML{where} ({getattr(exc, 'problem', None) or 'syntax error'})") \
            from None
    data = _require_mapping(data, path, "the codebook")
    _check_keys(data, _TOP_KEYS, path, "the codebook")
    separator = str(data.get("group_separator", "/"))
    label = data.get("xlsform_label")
    hashes = {path.name: sha256_file(path)}
    tables = {}
    for name, spec in _require_mapping(data.get("tables"), path, "tables").items():
        if name not in rules["tables"]:
            raise InputError(path, f"tables.{name} is not a table of the data contract "
                                   f"({', '.join(rules['tables'])})")
        tables[name] = _parse_table(name, _require_mapping(spec, path, f"tables.{name}"), path, rules,
                                    separator, label, hashes)
    codes = {str(k).strip(): str(v) for k, v in _require_mapping(data.get("missing_codes"), path,
                                                                   "missing_codes").items()}
    ranges = {}
    for column, bounds in _require_mapping(data.get("ranges"), path, "ranges").items():
        if (not isinstance(bounds, list) or len(bounds) != 2
                or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
                or bounds[0] > bounds[1]):
            raise InputError(path, f"ranges.{column} must be [low, high] with low <= high", column=str(column))
        ranges[_fold(column)] = [bounds[0], bounds[1]]
    form = _load_form(path.parent / str(data["xlsform"]), separator, label, hashes) if data.get("xlsform") \
        else XLSForm()
    return Codebook(path=path, tables=tables, missing_codes=codes, ranges=ranges, group_separator=separator,
                    strip_groups=bool(data.get("strip_groups", False)), form=form, hashes=hashes)


def _load_form(path: Path, separator: str, label: str | None, hashes: dict[str, str]) -> XLSForm:
    form = read_xlsform(path, separator=separator, label=label)
    hashes[path.name] = sha256_file(path)
    return form


def read_xlsform(path: Path, *, separator: str = "/", label: str | None = None) -> XLSForm:
    """Value labels from an XLSForm's ``survey`` and ``choices`` sheets.

    Question names are joined with their group names (``child/anthro/height``)
    as Kobo and ODK exports write them. ``label`` picks a label column
    (``label::English (en)``); by default ``label`` or the first ``label::`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "XLSForm named in the codebook is missing")
    try:
        sheets = pd.read_excel(path, sheet_name=None, dtype=str, engine="openpyxl")
    except Exception as exc:  # noqa: BLE001 - any unreadable workbook gets one plain message
        raise InputError(path, f"cannot be read as an XLSForm workbook ({type(exc).__name__})") from None
    lower = {name.strip().lower(): frame for name, frame in sheets.items()}
    if "survey" not in lower or "choices" not in lower:
        raise InputError(path, "an XLSForm needs a 'survey' and a 'choices' sheet")
    survey = lower["survey"].fillna("")
    choices = lower["choices"].fillna("")
    survey.columns = [str(c).strip() for c in survey.columns]
    choices.columns = [str(c).strip() for c in choices.columns]
    for sheet, frame, needed in (("survey", survey, ("type", "name")), ("choices", choices, ("list_name", "name"))):
        for column in needed:
            if column not in frame.columns:
                raise InputError(path, f"the {sheet} sheet has no '{column}' column", column=column)
    label_column = label if label in choices.columns else next(
        (c for c in choices.columns if c == "label" or c.startswith("label::")), "name")
    texts = choices[label_column] if label_column in choices.columns else choices["name"]
    lists: dict[str, dict[str, str]] = {}
    for list_name, name, text in zip(choices["list_name"], choices["name"], texts):
        name = str(name).strip()
        lists.setdefault(str(list_name).strip(), {})[name] = str(text).strip() or name
    labels: dict[str, dict[str, str]] = {}
    options: dict[str, tuple[str, ...]] = {}
    groups: list[str] = []
    for kind, name in zip(survey["type"].astype(str), survey["name"].astype(str)):
        kind, name = " ".join(kind.strip().split()), name.strip()
        word = kind.split(" ")[0].lower().replace("-", "_")
        if word in {"begin_group", "begin_repeat"} or kind.lower() in {"begin group", "begin repeat"}:
            groups.append(name)
            continue
        if word in {"end_group", "end_repeat"} or kind.lower() in {"end group", "end repeat"}:
            if groups:
                groups.pop()
            continue
        parts = kind.split(" ")
        if word in {"select_one", "select_multiple"} and len(parts) > 1:
            full = _fold(separator.join([*groups, name]))
            choice = lists.get(parts[1], {})
            if word == "select_one":
                labels[full] = choice
            else:
                options[full] = tuple(choice)
    return XLSForm(labels=labels, options=options)


# --------------------------------------------------------------------------- applying


def source_names(codebook: Codebook | None, table: str) -> set[str]:
    """Every source column the codebook names for ``table`` (to find the header row)."""
    if codebook is None or table not in codebook.tables:
        return set()
    spec = codebook.tables[table]
    return {*spec.columns, *spec.personal, *spec.drop, *(sm.source for sm in spec.select_multiple)}


def merge_rules(rules: dict, codebook: Codebook | None) -> dict:
    """The cleaning rules with the codebook's missing codes, ranges and date formats (a new dict).

    A table's date formats go to ``rules["tables"][table]["date_formats"]`` (date column -> list),
    which the cleaner tries before the rules' ``date_formats``.
    """
    rules = copy.deepcopy(rules)
    if codebook is None:
        return rules
    assumed = rules.setdefault("missing_codes_assumed", {})
    for code, reason in codebook.missing_codes.items():
        for existing in [c for c in assumed if str(c).strip().upper() == code.upper()]:
            del assumed[existing]
        for existing in [c for c in rules["missing_codes"] if str(c).strip().upper() == code.upper()]:
            del rules["missing_codes"][existing]
        rules["missing_codes"][code] = reason
    rules.setdefault("ranges", {}).update(codebook.ranges)
    for table, spec in codebook.tables.items():
        if spec.date_formats:
            rules["tables"][table]["date_formats"] = {c: list(f) for c, f in spec.date_formats.items()}
    return rules


def _meta_names(rules: dict) -> set[str]:
    return {_fold(n) for n in rules.get("survey_meta_columns", ())}


def _is_meta(name: str, meta: set[str]) -> bool:
    return name.startswith("_") or name in meta


_TICKED = ("1", "1.0", "true", "yes")


def _options_pattern(options: Iterable[str]) -> str:
    return r"(?:^|\s)(?:" + "|".join(re.escape(o) for o in options) + r")(?=\s|$)"


def _derive_select_multiple(frame: pd.DataFrame, folded: dict[str, str], sm: SelectMultiple,
                            separator: str, known: set[str], rules: dict) -> tuple[pd.Series | None, list[str]]:
    """The yes/no column of one select_multiple question and the source columns it used."""
    prefix = sm.source + separator
    one_hot = {name[len(prefix):]: column for name, column in folded.items() if name.startswith(prefix)}
    if sm.source in folded:
        column = folded[sm.source]
        used = [column, *one_hot.values()]
        text = frame[column].astype(str).str.strip()
        if sm.separator != " ":
            text = text.str.replace(sm.separator, " ", regex=False).str.strip()
        is_yes = text.str.contains(_options_pattern(sm.yes_if_any), regex=True)
        unknown = missing_code_reasons(text, rules).notna() & (text != "")
        if known:
            leftover = text.str.replace(_options_pattern(known), " ", regex=True).str.strip()
            unknown |= leftover != ""
    elif one_hot:
        used = list(one_hot.values())
        ticks = pd.DataFrame({o: frame[c].astype(str).str.strip().str.lower() for o, c in one_hot.items()})
        text = ticks.apply(lambda col: col != "").any(axis=1).map({True: "answered", False: ""})
        wanted = [o for o in sm.yes_if_any if o in ticks.columns]
        is_yes = ticks[wanted].isin(_TICKED).any(axis=1) if wanted else pd.Series(False, index=frame.index)
        unknown = pd.Series(False, index=frame.index)
    else:
        return None, []
    out = pd.Series("no", index=frame.index, dtype="object").where(~is_yes, "yes")
    out = out.where(text != "", "")
    # An option the form does not know is passed on as typed (a missing code such as -99
    # too): the cleaner then keeps its reason or flags it, rather than a guess being made.
    out = out.where(~unknown, text)
    return out, used


def _fold_code(value: Any) -> str:
    return " ".join(str(value).strip().lower().split())


def canonical_codes(table: str, column: str, rules: dict) -> set[str]:
    """Values of a contract column the cleaner already reads as a valid code (folded): the
    canonical categories and their spellings, or every province name, code and variant."""
    kind = rules["tables"][table]["columns"].get(column)
    if kind == "province":
        provinces = load_rules("provinces")["provinces"]
        return {_fold_code(v) for p in provinces for v in (p["name"], p["code"], *p.get("variants", ()))}
    spellings = rules.get("categories", {}).get(column, {})
    return {_fold_code(v) for canonical, variants in spellings.items() for v in (canonical, *(variants or ()))}


def _labels_for(labels: dict[str, str], table: str, target: str, rules: dict) -> dict[str, str]:
    """The XLSForm labels to apply to a column: none to a numeric column (a Likert item or a score
    keeps its number), and never to a value that is already a valid code (``fee_band`` ``low``
    stays ``low``, not its label "R1-R200")."""
    if rules["tables"][table]["columns"].get(target) in ("number", "integer"):
        return {}
    valid = canonical_codes(table, target, rules)
    return {code: label for code, label in labels.items() if _fold_code(code) not in valid}


def apply_codebook(frame: pd.DataFrame, table: str, codebook: Codebook, path: Path,
                   info: dict | None = None, rules: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Apply the codebook to one table as read.

    Drops the declared personal columns and survey meta columns (names only are
    reported), derives select_multiple columns, applies recodes and XLSForm
    value labels, and renames source columns to contract names. Columns the
    codebook does not mention pass through unchanged for the reader to keep
    (contract names) or drop.

    Returns
    -------
    frame : DataFrame
        The renamed table.
    info : dict
        ``info`` updated with ``columns_used`` (source → contract),
        ``columns_personal``, ``columns_meta`` and ``notes``.
    """
    rules = rules or load_rules("cleaning")
    info = dict(info or {})
    spec = codebook.tables.get(table, TableCodebook())
    contract = set(_contract(table, rules))
    personal_targets = set(rules.get("personal_columns", {}).get(table, ()))
    meta = _meta_names(rules)
    separator = codebook.group_separator
    form = spec.form or codebook.form

    folded: dict[str, str] = {}
    for column in frame.columns:
        name = _fold(column)
        if name in folded and (name in spec.columns or name in contract):
            raise InputError(path, f"column appears twice ('{folded[name]}' and '{column}')", column=str(column))
        folded.setdefault(name, column)

    personal = [column for name, column in folded.items()
                if name in spec.personal or spec.columns.get(name) in personal_targets]
    notes = [f"the codebook maps '{source}' but the file has no such column"
             for source in spec.columns if source not in folded]

    derived: dict[str, pd.Series] = {}
    consumed: set[str] = set(personal)
    for sm in spec.select_multiple:
        form_options = set(form.options.get(sm.source, ()))
        known = form_options | set(sm.yes_if_any) if form_options else set()
        values, used = _derive_select_multiple(frame, folded, sm, separator, known, rules)
        if values is None:
            notes.append(f"the codebook's select_multiple '{sm.source}' is not in the file")
            continue
        derived[sm.target] = values
        consumed.update(used)

    renamed: dict[str, str] = {}  # file column -> contract name
    for name, column in folded.items():
        if column in consumed:
            continue
        if name in spec.columns:
            renamed[column] = spec.columns[name]
        elif name in contract:
            renamed[column] = name
    # A question inside groups maps itself when its leaf is a contract column the codebook and the
    # file's own names leave free (evalkit.readers reports two candidates for one column).
    taken = set(renamed.values())
    leaves: dict[str, list[str]] = {}
    for name, column in folded.items():
        if column not in consumed and column not in renamed and leaf_name(name) != name:
            leaves.setdefault(leaf_name(name), []).append(column)
    for leaf, columns in leaves.items():
        if leaf in contract and leaf not in taken and len(columns) == 1:
            renamed[columns[0]] = leaf

    meta_columns = [column for name, column in folded.items()
                    if column not in consumed and column not in renamed
                    and (_is_meta(name, meta) or name in spec.drop)]
    out = frame.drop(columns=[*consumed, *meta_columns])
    for column, target in renamed.items():
        values = out[column].astype(str)
        source = _fold(column)
        labels = form.labels.get(source)
        if labels is None:
            labels = next((v for k, v in form.labels.items() if leaf_name(k) == leaf_name(source)), None)
        recode = spec.values.get(target, {})
        lookup = {**_labels_for(labels or {}, table, target, rules), **recode}
        if lookup:
            stripped = values.str.strip()
            mapped = stripped.map(lookup)
            out[column] = mapped.where(mapped.notna(), values).astype("str")
    out = out.rename(columns=renamed)
    for target, values in derived.items():
        if target in out.columns:
            raise InputError(path, f"'{target}' comes both from a column and from a select_multiple question",
                             column=target)
        recode = spec.values.get(target, {})
        mapped = values.map(recode) if recode else values
        out[target] = mapped.where(mapped.notna(), values).astype("str")
    used = {column: target for column, target in renamed.items()}
    used.update({sm.source: sm.target for sm in spec.select_multiple if sm.target in derived})
    info["columns_used"] = used
    info["columns_personal"] = tuple(info.get("columns_personal", ())) + tuple(personal)
    info["columns_meta"] = tuple(info.get("columns_meta", ())) + tuple(meta_columns)
    info["notes"] = tuple(info.get("notes", ())) + tuple(notes)
    return out, info
