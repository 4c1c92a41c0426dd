"""Shared helpers of the trace loaders: chunked reading, checked conversions, canonical frames.

Row numbers in error messages are 0-based data rows of the file (the first row after the
header is row 0); ``line`` is the 1-based line of the file (assuming no blank or multi-line
records before it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from solver.traces.schema import (
    CANONICAL_COLUMNS,
    CANONICAL_DTYPES,
    NODE_COLUMNS,
    NODE_DTYPES,
    REQUEST_COLUMNS,
    REQUEST_DTYPES,
    ColumnKind,
    TraceFormatError,
)

PathLike: TypeAlias = str | os.PathLike[str]
"""A file-system path accepted by every loader."""

JOB_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "duration_s": np.nan,
        "gpu_types": "",
        "priority": 1.0,
        "deadline_s": np.nan,
        "model": "",
        "work_steps": np.nan,
        "user": "",
        "status": "",
    }
)


def existing_file(path: PathLike) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path`; raise FileNotFoundError if it is not a file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: file not found")
    return p


def existing_dir(path: PathLike) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path`; raise FileNotFoundError if not a directory."""
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: directory not found")
    return p


def check_sizes(chunksize: int | None, limit: int | None) -> None:
    """Reject non-positive ``chunksize`` and negative ``limit``."""
    if chunksize is not None and (isinstance(chunksize, bool) or chunksize < 1):
        raise ValueError(f"chunksize must be a positive integer or None, got {chunksize!r}")
    if limit is not None and (isinstance(limit, bool) or limit < 0):
        raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")


def read_csv_chunks(
    path: Path, *, chunksize: int | None, limit: int | None, **kwargs: Any
) -> Iterator[pd.DataFrame]:
    """Yield the raw file in chunks (one chunk if ``chunksize`` is None).

    The index of every chunk is the 0-based data-row number in the file (pandas continues the
    :class:`~pandas.RangeIndex` across chunks).
    """
    if chunksize is None:
        yield pd.read_csv(path, nrows=limit, **kwargs)
        return
    with pd.read_csv(path, chunksize=chunksize, nrows=limit, **kwargs) as reader:
        yield from reader


class RowContext:
    """Where raw values come from, to build error messages.

    Parameters
    ----------
    source
        File name shown in messages.
    header_lines
        Lines before the first data row (1 for a CSV header, 0 for headerless files).
    """

    def __init__(self, source: str, header_lines: int) -> None:
        self.source = source
        self.header_lines = header_lines

    def error(self, column: str, reason: str, row: Any, value: Any) -> TraceFormatError:
        """Build the error for one bad value at file row ``row``."""
        line = int(row) + self.header_lines + 1 if isinstance(row, int | np.integer) else None
        return TraceFormatError(self.source, column, reason, row=row, value=value, line=line)

    def fail_first(self, raw: pd.Series[Any], mask: Any, column: str, reason: str) -> None:
        """Raise for the first row where ``mask`` is True (``raw`` supplies labels and values)."""
        arr = np.asarray(mask, dtype=bool)
        if arr.any():
            pos = int(np.argmax(arr))
            raise self.error(column, reason, raw.index[pos], raw.iloc[pos])

    def floats(
        self,
        raw: pd.Series[Any],
        column: str,
        *,
        allow_nan: bool = False,
        min_value: float | None = None,
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Convert a raw column to float64, raising on non-numbers, NaN (unless allowed), inf
        and values below ``min_value``."""
        num = pd.to_numeric(raw, errors="coerce")
        arr = np.asarray(num, dtype=float)
        given = np.array(raw.notna(), dtype=bool)
        if raw.dtype == object or pd.api.types.is_string_dtype(raw.dtype):
            text = raw.astype(object).map(lambda v: v.strip().lower() if isinstance(v, str) else v)
            given = given & np.asarray(~text.isin(["", "nan"]) & text.notna(), dtype=bool)
        self.fail_first(raw, given & np.isnan(arr), column, "is not a number")
        if not allow_nan:
            self.fail_first(raw, np.isnan(arr), column, "is missing")
        self.fail_first(raw, np.isinf(arr), column, "must be finite")
        if min_value is not None:
            self.fail_first(raw, arr < min_value, column, f"must be >= {min_value:g}")
        return arr

    def ints(
        self, raw: pd.Series[Any], column: str, *, min_value: int | None = None
    ) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Convert a raw column to int64, raising on missing or non-integral values."""
        arr = self.floats(raw, column, min_value=min_value)
        self.fail_first(raw, arr != np.round(arr), column, "must be an integer")
        return arr.astype(np.int64)

    def datetimes(self, raw: pd.Series[Any], column: str) -> pd.Series[pd.Timestamp]:
        """Parse wall-clock timestamps (ISO 8601 style), raising on unparsable entries."""
        parsed = pd.to_datetime(raw, format="ISO8601", errors="coerce")
        self.fail_first(raw, parsed.isna(), column, "is not a valid timestamp")
        return parsed.astype("datetime64[ns]")


def as_str(values: Any, index: pd.Index[Any]) -> pd.Series[str]:
    """Turn values into a string column, missing values becoming ``""``."""
    s = pd.Series(values, index=index)
    return s.astype(object).where(s.notna(), "").astype(str)


def _typed(values: Any, kind: ColumnKind, index: pd.Index[Any]) -> pd.Series[Any]:
    if kind == "str":
        if isinstance(values, str):
            return pd.Series([values] * len(index), index=index, dtype=str)
        return as_str(values, index)
    if kind == "int":
        return pd.Series(
            np.broadcast_to(np.asarray(values, dtype=np.int64), len(index)),
            index=index,
            dtype=np.int64,
        )
    return pd.Series(
        np.broadcast_to(np.asarray(values, dtype=float), len(index)), index=index, dtype=float
    )


def _frame(
    index: pd.Index[Any],
    columns: Iterable[str],
    kinds: Mapping[str, ColumnKind],
    values: Mapping[str, Any],
    extra: Mapping[str, Any] | None,
) -> pd.DataFrame:
    data: dict[str, Any] = {col: _typed(values[col], kinds[col], index) for col in columns}
    if extra:
        for col, val in extra.items():
            data[col] = pd.Series(val, index=index) if not isinstance(val, pd.Series) else val
    return pd.DataFrame(data, index=index)


def job_frame(
    index: pd.Index[Any], values: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Build a canonical job table; canonical columns missing from ``values`` get defaults.

    Scalars are broadcast. ``extra`` columns are appended after the canonical ones, in order.
    """
    merged = {**JOB_DEFAULTS, **values}
    missing = [c for c in CANONICAL_COLUMNS if c not in merged]
    if missing:
        raise KeyError(f"job_frame: no value for canonical columns {missing}")
    return _frame(index, CANONICAL_COLUMNS, CANONICAL_DTYPES, merged, extra)


def node_frame(
    index: pd.Index[Any], values: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Build a canonical node table (index reset to 0..n-1)."""
    df = _frame(index, NODE_COLUMNS, NODE_DTYPES, values, extra)
    return df.reset_index(drop=True)


def request_frame(index: pd.Index[Any], values: Mapping[str, Any]) -> pd.DataFrame:
    """Build a canonical request table."""
    return _frame(index, REQUEST_COLUMNS, REQUEST_DTYPES, values, None)


def sort_stable(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Stable sort by ``column``; the index keeps its start but is renumbered consecutively."""
    start = int(df.index[0]) if len(df) and isinstance(df.index[0], int | np.integer) else 0
    attrs = dict(df.attrs)
    out = df.sort_values(column, kind="stable")
    out.index = pd.RangeIndex(start, start + len(out))
    out.attrs = attrs
    return out


def finish(
    chunks: Iterator[pd.DataFrame],
    convert: Callable[[pd.DataFrame], pd.DataFrame],
    *,
    chunked: bool,
    sort_column: str | None,
) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Convert raw chunks; return one frame or a lazy iterator of frames.

    Sorting (if ``sort_column``) is per chunk in the chunked case.
    """

    def one(raw: pd.DataFrame) -> pd.DataFrame:
        out = convert(raw)
        return sort_stable(out, sort_column) if sort_column is not None else out

    if chunked:
        return (one(raw) for raw in chunks)
    frames = [one(raw) for raw in chunks]
    if len(frames) != 1:  # pragma: no cover - read_csv_chunks yields exactly one frame
        raise AssertionError("expected exactly one frame")
    return frames[0]
