"""Errors that reach the user as one plain line (exit status 1, no traceback)."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(Exception):
    """Input that cannot be used at all.

    The message always names the file, the column (when there is one) and the
    problem, so a field team can fix the export without reading code.
    """

    def __init__(self, file: str, problem: str, column: str | None = None):
        self.file = str(file)
        self.column = column
        self.problem = problem
        where = f"{self.file}, column '{column}'" if column else self.file
        super().__init__(f"{where}: {problem}")
