"""``evalkit codebook``: draft a data folder's ``codebook.yml`` from the exports in it.

An M&E officer who has just downloaded a tool's exports should not have to write a codebook
from nothing. The draft looks at every file (each sheet of a workbook, each CSV of a zip):

* which contract table each holds, by the contract columns its headers name (a group path's
  leaf counts: ``centre/location/province`` is ``province``);
* the repeat groups (a sheet or CSV whose rows carry ``_parent_index`` or ``PARENT_KEY``) and
  their parents;
* the contract columns a header does not name but an XLSForm's question label or a close name
  does, under ``columns:``;
* personal-looking columns (names, phones, GPS) under ``personal:``;
* a commented ``TODO`` for each contract column of a table it could not find.

File names get ``*`` where the tool put the download's date and time, so the next download
matches too. When the form used the contract's field names, the draft reads as it is.
"""

from __future__ import annotations

import difflib
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .codebook import CODEBOOK_FILE, read_xlsform
from .config import TABLES, load_rules
from .errors import InputError
from .exports import REPEAT_LINKS, leaf_name
from .readers import REQUIRED_COLUMNS, SUPPORTED_SUFFIXES, _read_file, contract_columns

__all__ = ["Source", "draft_codebook", "file_pattern", "write_draft"]

#: A date or date-time stamp in a downloaded file's name (2025-11-30, 2025-11-30-10-14-53, 20251130).
_STAMP = re.compile(r"\d{4}[-_]?\d{2}[-_]?\d{2}(?:[-_T ]?\d{2}[-_:]?\d{2}(?:[-_:]?\d{2})?)?")
#: Close names: a header whose leaf is this similar to a contract column is offered for it.
_CLOSE = 0.84


@dataclass
class Source:
    """One readable table in the folder: a file, or a sheet of a workbook, or a CSV of a zip."""

    path: Path
    sheet: str | None
    header: list[str]
    links: set[str] = field(default_factory=set)  # repeat-link columns present (folded)

    @property
    def label(self) -> str:
        return f"{self.path.name}" + (f" [{self.sheet}]" if self.sheet else "")

    @property
    def leaves(self) -> dict[str, str]:
        return {leaf_name(h): h for h in self.header}


def file_pattern(name: str) -> str:
    """A downloaded file's name with its date and time stamps made ``*``."""
    pattern = _STAMP.sub("*", name)
    return re.sub(r"\*+", "*", pattern)


def _sources(folder: Path, rules: dict) -> list[Source]:
    expected = {c for table in TABLES for c in contract_columns(table, rules)}
    out: list[Source] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES):
        sheets: list[str | None] = [None]
        if path.suffix.lower() == ".xlsx":
            import openpyxl

            workbook = openpyxl.load_workbook(path, read_only=True)
            sheets = [ws.title for ws in workbook.worksheets if ws.sheet_state == "visible"]
            workbook.close()
        elif path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as archive:
                sheets = [Path(i.filename).name[:-4] for i in archive.infolist() if i.filename.lower().endswith(".csv")]
        for sheet in sheets:
            try:
                frame, info = _read_file(path, expected, sheet=sheet, rules=rules)
            except InputError:
                continue  # a sheet of notes, an XLSForm: not a table
            header = [str(h) for h in info.get("header", frame.columns)]
            folded = {h.strip().lower() for h in header}
            links = {child for child, _parent in REPEAT_LINKS if child in folded}
            out.append(Source(path=path, sheet=sheet, header=header, links=links))
    return out


def _score(source: Source, table: str, rules: dict) -> float:
    """How much a source looks like a table: its required columns count double."""
    names = {h.strip().lower() for h in source.header} | set(source.leaves)
    columns = contract_columns(table, rules)
    return (sum(c in names for c in columns) + sum(c in names for c in REQUIRED_COLUMNS[table])) / (
        len(columns) + len(REQUIRED_COLUMNS[table]))


def _assign(sources: list[Source], rules: dict) -> dict[str, Source]:
    """Each table's best source (one source feeds one table), best matches first."""
    pairs = sorted(((_score(s, t, rules), i, t) for i, s in enumerate(sources) for t in TABLES), reverse=True)
    chosen: dict[str, Source] = {}
    used: set[int] = set()
    for score, i, table in pairs:
        if score > 0 and table not in chosen and i not in used:
            chosen[table] = sources[i]
            used.add(i)
    return chosen


def _parent(table: str, source: Source, chosen: dict[str, Source]) -> str | None:
    """The table a repeat group belongs to: the one read from the same file's main sheet, or from
    a source that has the parent side of the link."""
    if not source.links:
        return None
    parents_side = {parent for child, parent in REPEAT_LINKS if child in source.links}
    for other_table, other in chosen.items():
        if other_table == table or other.links:
            continue
        folded = {h.strip().lower() for h in other.header}
        if other.path == source.path and folded & parents_side:
            return other_table
    for other_table, other in chosen.items():
        folded = {h.strip().lower() for h in other.header}
        if other_table != table and not other.links and folded & parents_side:
            return other_table
    return None


def _form_labels(xlsforms: list[Path]) -> dict[str, str]:
    """Question name (full path, folded) -> its label text, from the XLSForms' survey sheets."""
    import pandas as pd

    labels: dict[str, str] = {}
    for path in xlsforms:
        read_xlsform(path)  # checks it is an XLSForm, with one clear error if not
        survey = pd.read_excel(path, sheet_name="survey", dtype=str).fillna("")
        label = next((c for c in survey.columns if str(c).strip().lower().startswith("label")), None)
        if label is None:
            continue
        for name, text in zip(survey["name"], survey[label]):
            if str(name).strip():
                labels[str(name).strip().lower()] = str(text).strip()
    return labels


def _snake(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _match_column(column: str, source: Source, labels: dict[str, str], taken: set[str],
                  wanted: list[str]) -> str | None:
    """A header for a contract column the headers do not name: by question label; by a leaf whose
    words are all words of this column and of no other column still wanted (``gmd`` for
    ``elom_gmd``, ``mou_date`` for ``mou_signed_date``); by a close name."""
    words = column.replace("_", " ")
    meta = [h for h in source.header if h not in taken and h.strip().lower().lstrip("_") == column]
    if meta:  # a tool's meta column used as data (Kobo's _submission_time)
        return meta[0]
    free = [h for h in source.header if h not in taken and not h.startswith("_")]
    for header in free:
        text = labels.get(leaf_name(header), "")
        if text and (_snake(text) == column or words in text.lower()):
            return header
    for header in free:
        tokens = set(leaf_name(header).split("_"))
        fits = [c for c in wanted if tokens <= set(c.split("_"))]
        if fits == [column]:
            return header
    close = difflib.get_close_matches(column, [leaf_name(h) for h in free], n=1, cutoff=_CLOSE)
    if close:
        return next(h for h in source.header if leaf_name(h) == close[0])
    return None


def draft_codebook(folder: str | Path, xlsforms: list[str | Path] = ()) -> str:
    """The text of a draft ``codebook.yml`` for the exports in ``folder``.

    Raises
    ------
    InputError
        When the folder holds no readable table, or an XLSForm given is not one.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "data folder does not exist")
    rules = load_rules("cleaning")
    forms = [Path(p) for p in xlsforms]
    form_names = {p.resolve() for p in forms}
    sources = [s for s in _sources(folder, rules) if s.path.resolve() not in form_names]
    if not sources:
        raise InputError(folder, "holds no table evalkit can read (.csv, .xlsx, .dta, .sav, .zip)")
    labels = _form_labels(forms)
    chosen = _assign(sources, rules)
    words = rules.get("personal_name_words", ())
    lines = [f"# Draft codebook for {folder.name}/, written by `evalkit codebook`. Check every line, then",
             "# save it as codebook.yml in the data folder. Format: docs/cleaning.md and docs/exports.md.",
             "version: 1"]
    if forms:
        lines.append(f"# XLSForms read: {', '.join(p.name for p in forms)}")
    lines.append("tables:")
    for table in TABLES:
        source = chosen.get(table)
        if source is None:
            lines += [f"  # TODO {table}: no file here looks like it; name it:",
                      f"  # {table}: {{file: \"...\"}}"]
            continue
        entry = {"file": file_pattern(source.path.name)}
        if source.sheet:
            entry["sheet"] = source.sheet
        parent = _parent(table, source, chosen)
        if parent:
            entry["parent"] = parent
        lines.append(f"  {table}:  # {source.label}")
        lines += ["    " + line for line in yaml.safe_dump(entry, sort_keys=False, allow_unicode=True,
                                                           width=1000).splitlines()]
        names = {h.strip().lower() for h in source.header}
        present = names | set(source.leaves)
        taken: set[str] = {h for h in source.header if h.strip().lower() in present
                            and h.strip().lower() in contract_columns(table, rules)}
        taken |= {h for h in source.header if leaf_name(h) in contract_columns(table, rules)}
        columns: dict[str, str] = {}
        wanted = [c for c in contract_columns(table, rules) if c not in present
                  and not (parent and (c in contract_columns(parent, rules) or c == "partnership_id"))]
        for _pass in range(2):  # a match in the first pass can make another unique in the second
            for column in list(wanted):
                header = _match_column(column, source, labels, taken, wanted)
                if header is not None:
                    columns[header] = column
                    taken.add(header)
                    wanted.remove(column)
        personal_targets = set(rules.get("personal_columns", {}).get(table, ()))
        todo = [c for c in wanted if c not in personal_targets]
        if columns:
            lines.append("    columns:")
            lines += [f"      {yaml.safe_dump(h, default_style=None).strip().removesuffix('...').strip()}: {c}"
                      for h, c in columns.items()]
        personal = [h for h in source.header if h not in columns and leaf_name(h) not in contract_columns(table, rules)
                    and any(w in h.lower() for w in words)]
        if personal:
            lines.append(f"    personal: {yaml.safe_dump(personal, default_flow_style=True, width=1000).strip()}")
        for column in todo:
            need = "required" if column in REQUIRED_COLUMNS[table] else "optional"
            lines.append(f"    # TODO ({need}): which column is {column}? add it under columns:")
    return "\n".join(lines) + "\n"


def write_draft(folder: str | Path, out: str | Path, xlsforms: list[str | Path] = ()) -> Path:
    """Write :func:`draft_codebook`'s text to ``out``, which must not exist (a draft never replaces
    a file, least of all a codebook in use)."""
    target = Path(out)
    if target.exists():
        raise InputError(target, "exists; evalkit codebook writes a new draft and replaces nothing")
    text = draft_codebook(folder, xlsforms)
    target.write_text(text, encoding="utf-8")
    return target
