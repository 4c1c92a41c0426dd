"""Error types for invalid input.

Only invalid *input* raises: infeasible problems and time-outs are statuses of a
:class:`solver.result.Result`, never exceptions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["FieldError", "InputError"]

_MISSING: Any = object()


def _show(value: Any) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    text = repr(value) if isinstance(value, str | list | dict) else str(value)
    if isinstance(value, dict | list) and len(text) > 80:
        text = f"{type(value).__name__} of {len(value)} items"
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of an input document.

    Attributes
    ----------
    path
        Field path inside the document, e.g. ``training_jobs[3].deadline_s``.
    reason
        What is wrong, e.g. ``must be >= arrival_s``.
    value
        The offending value, shown as ``(got ...)``; omitted for missing fields.
    """

    path: str
    reason: str
    value: Any = _MISSING

    def __str__(self) -> str:
        if self.value is _MISSING:
            return f"{self.path}: {self.reason}"
        return f"{self.path}: {self.reason} (got {_show(self.value)})"


class InputError(ValueError):
    """Raised when an input document (instance, decision, cluster spec) is invalid.

    Every problem found is listed, each with the file, the field path, the value and
    the reason. The command-line interface prints it and exits with status 2.
    """

    def __init__(self, source: str, errors: list[FieldError]) -> None:
        self.source = source
        self.errors = tuple(errors)
        lines = [f"{source}: {e}" for e in self.errors]
        head = f"{source}: {len(self.errors)} error(s) in input"
        super().__init__("\n".join([head, *lines]) if len(lines) > 1 else lines[0])


class Collector:
    """Accumulates :class:`FieldError` while a document is read, then raises once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[FieldError] = []
        self._shown: set[str] = set()

    def add(self, path: str, reason: str, value: Any = _MISSING) -> None:
        error = FieldError(path, reason, value)
        if str(error) not in self._shown:  # a node entry expanded ``count`` times reports once
            self._shown.add(str(error))
            self.errors.append(error)

    def raise_if_any(self) -> None:
        if self.errors:
            raise InputError(self.source, self.errors)
