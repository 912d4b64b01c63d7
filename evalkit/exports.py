"""Survey tool exports as they are downloaded: group paths, repeat groups, file names, zips.

KoboToolbox, ODK Central and SurveyCTO write the same kind of export in their own ways. This
module knows those ways, so that a codebook only has to say what a person would say
("the partners sheet is a repeat group of the centres"):

* **Group paths.** A question inside groups is exported as ``centre/location/province``
  (Kobo, ``/``) or ``centre-location-province`` (ODK Central, ``-``); its *leaf* is the last
  part. A leaf that is a contract column maps itself (:func:`leaf_name`).
* **Repeat groups.** A repeat is exported as its own sheet or file whose rows point at their
  parent row: Kobo's ``_parent_index`` → the parent's ``_index``; ODK Central's and SurveyCTO's
  ``PARENT_KEY`` → the parent's ``KEY`` (:data:`REPEAT_LINKS`, :func:`parent_rows`).
* **File names as downloaded.** A codebook's ``file:`` may be a glob; of several matches the
  newest by name is used (tools put the export's date and time in the name), and the choice is
  reported (:func:`resolve_file`). A ``.zip`` (ODK Central's "all data" download) is read
  member by member (:func:`zip_member`).
"""

from __future__ import annotations

import fnmatch
import re
import zipfile
from pathlib import Path

import pandas as pd

from .errors import InputError

__all__ = ["GROUP_SEPARATORS", "REPEAT_LINKS", "leaf_name", "parent_rows", "resolve_file", "zip_member"]

#: Separators between group and question names in exported headers (Kobo, ODK Central).
GROUP_SEPARATORS = ("/", "-")
#: (column of a repeat row, column of its parent row) of each tool, names folded to lower case.
REPEAT_LINKS = (("_parent_index", "_index"), ("parent_key", "key"))
#: A zip member larger than this is refused (a zip bomb would otherwise fill the memory).
MAX_MEMBER_BYTES = 2 * 1024**3

_SPLIT = re.compile("|".join(re.escape(s) for s in GROUP_SEPARATORS))


def leaf_name(column: str) -> str:
    """The question name of an exported header, without its groups: ``child/anthro/height`` →
    ``height``, ``centre-location-province`` → ``province`` (folded to lower case)."""
    return _SPLIT.split(str(column).strip().lower())[-1].strip()


def resolve_file(folder: Path, pattern: str, table: str) -> tuple[Path, str]:
    """The file a codebook's ``file:`` names: the file itself, or the newest by name of the files
    a glob matches (``"ECD centre register*.xlsx"``). Returns the path and a note saying which
    file was chosen when there was a choice ('' otherwise)."""
    folder = Path(folder)
    path = folder / pattern
    if not any(ch in pattern for ch in "*?["):
        if not path.is_file():
            raise InputError(path, f"file is missing: the codebook names it for table '{table}'")
        return path, ""
    matches = sorted(p for p in folder.iterdir() if p.is_file() and fnmatch.fnmatchcase(p.name.lower(),
                                                                                          pattern.lower()))
    if not matches:
        raise InputError(folder / pattern, f"no file matches: the codebook names this pattern for table '{table}'")
    chosen = matches[-1]
    note = ""
    if len(matches) > 1:
        others = ", ".join(p.name for p in matches[:-1])
        note = f"'{pattern}' matches {len(matches)} files; read the newest by name, {chosen.name} (not {others})"
    return chosen, note


def zip_member(path: Path, member: str | None, table: str) -> tuple[str, bytes]:
    """The name and bytes of one CSV in a zip export.

    ``member`` (the codebook's ``sheet:``) picks a member whose name, without ``.csv``, is it or
    ends in ``-<member>`` (ODK Central names a repeat ``<form>-<repeat>.csv``); without it, the
    main CSV: the one whose name every other CSV's name starts with, else the only CSV.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(path, f"cannot be read as a zip archive ({type(exc).__name__})") from None
    with archive:
        csvs = [info for info in archive.infolist() if info.filename.lower().endswith(".csv")
                and not info.is_dir()]
        if not csvs:
            raise InputError(path, "the zip archive holds no CSV file")
        stems = {info.filename: Path(info.filename).name[:-4] for info in csvs}
        if member:
            wanted = member.strip().lower()
            chosen = [info for info in csvs if stems[info.filename].lower() == wanted
                      or stems[info.filename].lower().endswith("-" + wanted)]
            if len(chosen) != 1:
                names = ", ".join(Path(i.filename).name for i in csvs)
                problem = "no" if not chosen else "more than one"
                raise InputError(path, f"{problem} CSV in the zip archive is '{member}' for table '{table}' "
                                       f"(it holds {names})")
            info = chosen[0]
        else:
            main = [info for info in csvs
                    if all(stems[o.filename].startswith(stems[info.filename]) for o in csvs)]
            if len(main) != 1:
                names = ", ".join(Path(i.filename).name for i in csvs)
                raise InputError(path, f"the zip archive holds several CSV files ({names}); name the one for "
                                       f"table '{table}' in the codebook (sheet: <name>)")
            info = main[0]
        if info.file_size > MAX_MEMBER_BYTES:
            raise InputError(path, f"{Path(info.filename).name} in the zip archive is "
                                   f"{info.file_size / 1024**3:.1f} GB unpacked; the limit is "
                                   f"{MAX_MEMBER_BYTES / 1024**3:.0f} GB")
        with archive.open(info) as fh:
            data = fh.read(MAX_MEMBER_BYTES + 1)
        if len(data) > MAX_MEMBER_BYTES:
            raise InputError(path, f"{Path(info.filename).name} in the zip archive unpacks to more than "
                                   f"{MAX_MEMBER_BYTES / 1024**3:.0f} GB")
        return Path(info.filename).name, data


def _folded_columns(frame: pd.DataFrame) -> dict[str, str]:
    return {str(c).strip().lower(): c for c in frame.columns}


def parent_rows(child: pd.DataFrame, parent: pd.DataFrame, *, child_where: str,
                parent_where: str) -> tuple[pd.Series, str]:
    """For each row of a repeat group, the position of its parent row (``-1`` when it has none).

    The link columns are found by tool (:data:`REPEAT_LINKS`). Returns the positions and a note
    naming the rows whose parent is missing ('' when every row has one).

    Raises
    ------
    InputError
        When neither tool's link columns are there, or no row finds its parent (the wrong
        parent table, or exports from different downloads).
    """
    child_cols, parent_cols = _folded_columns(child), _folded_columns(parent)
    for child_key, parent_key in REPEAT_LINKS:
        if child_key in child_cols and parent_key in parent_cols:
            break
    else:
        raise InputError(child_where, "is declared a repeat group (parent:) but has no link to its parent: "
                                      "a repeat exported by KoboToolbox has '_parent_index' (and its parent "
                                      "'_index'); by ODK Central or SurveyCTO, 'PARENT_KEY' (and its parent 'KEY')")
    links = child[child_cols[child_key]].astype(str).str.strip()
    keys = parent[parent_cols[parent_key]].astype(str).str.strip()
    if keys.duplicated().any():
        twice = keys[keys.duplicated()].iloc[0]
        raise InputError(parent_where, f"the parent key '{parent_cols[parent_key]}' is not unique "
                                       f"('{twice}' appears twice)", column=parent_cols[parent_key])
    position = pd.Series(range(len(keys)), index=keys.to_numpy())
    found = links.map(position)
    missing = found.isna()
    if len(links) and missing.all():
        raise InputError(child_where, f"no row's '{child_cols[child_key]}' matches a '{parent_cols[parent_key]}' "
                                      f"of its parent ({parent_where}): is it the repeat of that form, from the "
                                      "same download?", column=child_cols[child_key])
    note = ""
    if missing.any():
        examples = ", ".join(links[missing].head(3))
        note = (f"{int(missing.sum())} row(s) point to a parent row that {parent_where} does not have "
                f"({child_cols[child_key]} {examples}); their parent's columns are left blank")
    return found.fillna(-1).astype(int), note
