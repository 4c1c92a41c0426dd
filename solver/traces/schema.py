"""Canonical tables that every trace loader produces, and their validators.

Job table
---------
One row per job (or task / pod), columns in exactly this order (trace-specific extra columns may
follow them):

=================  =======  ==================================================================
column             dtype    meaning
=================  =======  ==================================================================
``job_id``         str      job identifier, unique within the table
``kind``           str      ``"training"``, ``"inference"``, ``"fractional"`` or ``"cpu"``
``submit_time_s``  float    submission time, seconds from the trace's origin (never NaN);
                            loaders of wall-clock traces subtract the earliest timestamp and
                            store it as ``df.attrs["origin"]`` (a :class:`pandas.Timestamp`)
``duration_s``     float    run time in seconds, NaN if unknown, else >= 0
``num_gpus``       int      GPUs per job (0 for ``cpu``, 1 for ``fractional``)
``gpu_milli``      int      share of each GPU in milli-GPU: 1000 = whole GPU, 1..999 only for
                            ``fractional`` jobs, 0 only for ``cpu`` jobs
``gpu_types``      str      ``""`` = any GPU type, else ``|``-separated allowed GPU type names
                            spelled as in the trace
``priority``       float    scheduling weight, default 1.0 (never NaN)
``deadline_s``     float    absolute deadline on the ``submit_time_s`` clock, NaN if none
``model``          str      job type / model / application name, ``""`` if unknown
``work_steps``     float    training iterations to run, NaN if unknown, else >= 0
``user``           str      user, virtual cluster or tenant, ``""`` if unknown
``status``         str      final status as recorded in the trace, ``""`` if unknown
=================  =======  ==================================================================

Node table
----------
``node_id`` (str), ``gpu_type`` (str, as in the trace, ``""`` if none), ``num_gpus`` (int),
``gpu_memory_gib`` (float, NaN if unknown), ``cpu_milli`` (float, milli-cores, NaN if unknown),
``memory_mib`` (float, NaN if unknown).

Request table (LLM inference)
-----------------------------
``request_id`` (str), ``timestamp_s`` (float, seconds from the trace origin, sorted),
``prompt_tokens`` (int), ``output_tokens`` (int).

Every validator raises :class:`TraceFormatError` (a :class:`ValueError`) that names the
column, the first bad row (index label) and its value.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from solver.errors import FieldError, InputError

__all__ = [
    "CANONICAL_COLUMNS",
    "CANONICAL_DTYPES",
    "JOB_KINDS",
    "NODE_COLUMNS",
    "NODE_DTYPES",
    "REQUEST_COLUMNS",
    "REQUEST_DTYPES",
    "TraceFormatError",
    "empty_job_table",
    "validate_job_table",
    "validate_node_table",
    "validate_request_table",
]

ColumnKind = Literal["str", "float", "int"]

CANONICAL_COLUMNS: Final[tuple[str, ...]] = (
    "job_id",
    "kind",
    "submit_time_s",
    "duration_s",
    "num_gpus",
    "gpu_milli",
    "gpu_types",
    "priority",
    "deadline_s",
    "model",
    "work_steps",
    "user",
    "status",
)
"""Canonical job-table columns, in order."""

CANONICAL_DTYPES: Final[Mapping[str, ColumnKind]] = MappingProxyType(
    {
        "job_id": "str",
        "kind": "str",
        "submit_time_s": "float",
        "duration_s": "float",
        "num_gpus": "int",
        "gpu_milli": "int",
        "gpu_types": "str",
        "priority": "float",
        "deadline_s": "float",
        "model": "str",
        "work_steps": "float",
        "user": "str",
        "status": "str",
    }
)
"""Value kind of each canonical job-table column."""

JOB_KINDS: Final[frozenset[str]] = frozenset({"training", "inference", "fractional", "cpu"})
"""Allowed values of the ``kind`` column."""

NODE_COLUMNS: Final[tuple[str, ...]] = (
    "node_id",
    "gpu_type",
    "num_gpus",
    "gpu_memory_gib",
    "cpu_milli",
    "memory_mib",
)
"""Canonical node-table columns, in order."""

NODE_DTYPES: Final[Mapping[str, ColumnKind]] = MappingProxyType(
    {
        "node_id": "str",
        "gpu_type": "str",
        "num_gpus": "int",
        "gpu_memory_gib": "float",
        "cpu_milli": "float",
        "memory_mib": "float",
    }
)
"""Value kind of each canonical node-table column."""

REQUEST_COLUMNS: Final[tuple[str, ...]] = (
    "request_id",
    "timestamp_s",
    "prompt_tokens",
    "output_tokens",
)
"""Canonical request-table columns, in order."""

REQUEST_DTYPES: Final[Mapping[str, ColumnKind]] = MappingProxyType(
    {
        "request_id": "str",
        "timestamp_s": "float",
        "prompt_tokens": "int",
        "output_tokens": "int",
    }
)
"""Value kind of each canonical request-table column."""


class TraceFormatError(InputError):
    """A trace file or table has a bad value.

    The message names the source (file or table), the row, the column, the value and the
    problem, e.g. ``philly.csv: row 17 (line 19), column 'duration': must be >= 0 (got -5.0)``.

    Parameters
    ----------
    source
        File path or table description.
    column
        Offending column.
    reason
        What is wrong with the value.
    row
        Row label (0-based data row of the file for loaders, index label for validators);
        ``None`` for problems that concern a whole column.
    value
        The offending value; omitted when not given.
    line
        1-based line number in the file, if known.
    """

    def __init__(
        self,
        source: str,
        column: str,
        reason: str,
        *,
        row: Hashable | None = None,
        value: Any = None,
        line: int | None = None,
        has_value: bool = True,
    ) -> None:
        self.column = column
        self.row = row
        self.line = line
        self.value = value
        where = ""
        if row is not None:
            where = f"row {row}" + (f" (line {line})" if line is not None else "") + ", "
        path = f"{where}column {column!r}"
        field = FieldError(path, reason, value) if has_value else FieldError(path, reason)
        super().__init__(source, [field])


def _raise_first(mask: Any, s: pd.Series[Any], source: str, col: str, reason: str) -> None:
    """Raise for the first True entry of ``mask`` (positional), naming its index label."""
    arr = np.asarray(mask, dtype=bool)
    if arr.any():
        pos = int(np.argmax(arr))
        raise TraceFormatError(source, col, reason, row=s.index[pos], value=s.iloc[pos])


def _check_str(df: pd.DataFrame, col: str, source: str) -> None:
    s = df[col]
    if pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype):
        ok = np.fromiter((isinstance(v, str) for v in s.to_numpy()), dtype=bool, count=len(s))
        _raise_first(~ok, s, source, col, "must be a string (use '' for unknown)")
        return
    raise TraceFormatError(source, col, f"must have a string dtype, not {s.dtype}", has_value=False)


def _check_float(df: pd.DataFrame, col: str, source: str, *, allow_nan: bool) -> None:
    s = df[col]
    if not pd.api.types.is_float_dtype(s.dtype):
        raise TraceFormatError(
            source, col, f"must have a float dtype, not {s.dtype}", has_value=False
        )
    arr = s.to_numpy(dtype=float, na_value=np.nan)
    bad_mask = np.isinf(arr) if allow_nan else ~np.isfinite(arr)
    reason = "must be finite or NaN" if allow_nan else "must be a finite number (not NaN)"
    _raise_first(bad_mask, s, source, col, reason)


def _check_int(df: pd.DataFrame, col: str, source: str) -> None:
    s = df[col]
    if not pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        raise TraceFormatError(
            source, col, f"must have an integer dtype, not {s.dtype}", has_value=False
        )
    _raise_first(s.isna(), s, source, col, "must not be missing")


def _check_columns(
    df: pd.DataFrame, columns: Sequence[str], kinds: Mapping[str, ColumnKind], source: str
) -> None:
    head = [str(c) for c in df.columns[: len(columns)]]
    if head != list(columns):
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise TraceFormatError(source, missing[0], "column is missing", has_value=False)
        raise TraceFormatError(
            source,
            next(c for c, h in zip(columns, head, strict=True) if c != h),
            f"columns must start with {list(columns)} in this order, got {head}",
            has_value=False,
        )
    for col in columns:
        kind = kinds[col]
        if kind == "str":
            _check_str(df, col, source)
        elif kind == "int":
            _check_int(df, col, source)
    # float checks need the column kinds only; constraint-specific NaN rules are applied by callers


def _require(df: pd.DataFrame, mask: Any, col: str, reason: str, source: str) -> None:
    """Raise for the first row where ``mask`` is True."""
    _raise_first(mask, df[col], source, col, reason)


def validate_job_table(df: pd.DataFrame, *, source: str = "job table") -> None:
    """Check that ``df`` is a canonical job table.

    Parameters
    ----------
    df
        Table to check. Extra columns after the canonical ones are allowed.
    source
        Name used in error messages (e.g. the file it came from).

    Raises
    ------
    TraceFormatError
        (a :class:`ValueError`) naming the column and the first bad row label: wrong column
        order, wrong dtype, NaN where a value is required, negative durations, GPU counts or
        steps, an unknown ``kind``, a ``gpu_milli`` inconsistent with ``kind``, or a duplicate
        ``job_id``.
    """
    _check_columns(df, CANONICAL_COLUMNS, CANONICAL_DTYPES, source)
    _check_float(df, "submit_time_s", source, allow_nan=False)
    _check_float(df, "priority", source, allow_nan=False)
    for col in ("duration_s", "deadline_s", "work_steps"):
        _check_float(df, col, source, allow_nan=True)
    for col in ("duration_s", "work_steps"):
        _require(df, df[col].to_numpy(dtype=float) < 0, col, "must be >= 0 or NaN", source)
    kind = df["kind"].to_numpy(dtype=object)
    _require(
        df,
        ~np.isin(kind, sorted(JOB_KINDS)),
        "kind",
        f"must be one of {sorted(JOB_KINDS)}",
        source,
    )
    gpus = df["num_gpus"].to_numpy(dtype=np.int64)
    milli = df["gpu_milli"].to_numpy(dtype=np.int64)
    _require(df, gpus < 0, "num_gpus", "must be >= 0", source)
    _require(df, (milli < 0) | (milli > 1000), "gpu_milli", "must be in 0..1000", source)
    is_cpu = kind == "cpu"
    is_frac = kind == "fractional"
    _require(df, is_cpu & (gpus != 0), "num_gpus", "must be 0 for kind 'cpu'", source)
    _require(df, ~is_cpu & (gpus == 0), "num_gpus", "must be >= 1 unless kind is 'cpu'", source)
    _require(df, is_cpu & (milli != 0), "gpu_milli", "must be 0 for kind 'cpu'", source)
    _require(df, is_frac & (gpus != 1), "num_gpus", "must be 1 for kind 'fractional'", source)
    _require(
        df,
        is_frac & (milli >= 1000),
        "gpu_milli",
        "must be < 1000 for kind 'fractional'",
        source,
    )
    _require(
        df,
        ~is_cpu & ~is_frac & (milli < 1),
        "gpu_milli",
        "must be >= 1 for GPU jobs",
        source,
    )
    dup = df["job_id"].duplicated().to_numpy()
    _require(df, dup, "job_id", "duplicate job_id", source)


def validate_node_table(df: pd.DataFrame, *, source: str = "node table") -> None:
    """Check that ``df`` is a canonical node table.

    Parameters
    ----------
    df
        Table to check. Extra columns after the canonical ones are allowed.
    source
        Name used in error messages.

    Raises
    ------
    TraceFormatError
        Naming the column and the first bad row.
    """
    _check_columns(df, NODE_COLUMNS, NODE_DTYPES, source)
    for col in ("gpu_memory_gib", "cpu_milli", "memory_mib"):
        _check_float(df, col, source, allow_nan=True)
        _require(df, df[col].to_numpy(dtype=float) < 0, col, "must be >= 0 or NaN", source)
    _require(df, df["num_gpus"].to_numpy(dtype=np.int64) < 0, "num_gpus", "must be >= 0", source)
    _require(df, df["node_id"].duplicated().to_numpy(), "node_id", "duplicate node_id", source)


def validate_request_table(df: pd.DataFrame, *, source: str = "request table") -> None:
    """Check that ``df`` is a canonical request table.

    Parameters
    ----------
    df
        Table to check. Extra columns after the canonical ones are allowed.
    source
        Name used in error messages.

    Raises
    ------
    TraceFormatError
        Naming the column and the first bad row.
    """
    _check_columns(df, REQUEST_COLUMNS, REQUEST_DTYPES, source)
    _check_float(df, "timestamp_s", source, allow_nan=False)
    for col in ("prompt_tokens", "output_tokens"):
        _require(df, df[col].to_numpy(dtype=np.int64) < 0, col, "must be >= 0", source)


def empty_job_table() -> pd.DataFrame:
    """Return a canonical job table with no rows (and the right dtypes)."""
    data: dict[str, Any] = {}
    for col, kind in CANONICAL_DTYPES.items():
        if kind == "str":
            data[col] = pd.Series([], dtype=str)
        elif kind == "int":
            data[col] = pd.Series([], dtype=np.int64)
        else:
            data[col] = pd.Series([], dtype=float)
    return pd.DataFrame(data)
