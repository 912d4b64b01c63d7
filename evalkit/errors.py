"""The errors evalkit raises on purpose, one family under :class:`EvalkitError`.

:class:`InputError` is input that cannot be used at all; it reaches the user as one plain
line (exit status 1, no traceback). :class:`ChoiceError` is an argument with a value the
function does not know (a region, outcome, inference or estimator); its message lists the
valid values and, when one is close, suggests it.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

__all__ = ["EvalkitError", "InputError", "ChoiceError"]


class EvalkitError(Exception):
    """Base class of the errors evalkit raises on purpose."""


class InputError(EvalkitError):
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

    def __reduce__(self):  # unpickled from its parts: the message alone cannot rebuild it
        return type(self), (self.file, self.problem, self.column)


class ChoiceError(EvalkitError, ValueError):
    """An argument whose value is not one of the valid choices.

    ``ChoiceError("region", "Gautang", valid=["Eastern Cape", "Gauteng"])`` reads
    ``region 'Gautang' is not one of: Eastern Cape, Gauteng (did you mean 'Gauteng'?)``;
    the choices are listed in the order given.
    """

    def __init__(self, name: str, value: Any, valid: Iterable[Any] = ()):
        self.name = name
        self.value = value
        self.valid = tuple(valid)
        choices = ", ".join(map(str, self.valid)) if self.valid else "(none)"
        shown = repr(str(value)) if isinstance(value, str) else repr(value)  # np.str_ shows as plain text
        message = f"{name} {shown} is not one of: {choices}"
        close = difflib.get_close_matches(str(value), [str(v) for v in self.valid], n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        super().__init__(message)

    def __reduce__(self):
        return type(self), (self.name, self.value, self.valid)
