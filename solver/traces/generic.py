"""Loader of CSV files that are already in the canonical job schema.

The file must have a header with every column of
:data:`solver.traces.schema.CANONICAL_COLUMNS` (any order); other columns are kept after the
canonical ones, in file order, as numbers when every non-empty value parses as a number and as
strings otherwise. Empty cells mean ``""`` in string columns and NaN in float columns (allowed
only in ``duration_s``, ``deadline_s`` and ``work_steps``); ``num_gpus`` and ``gpu_milli`` must
be integers. ``df.to_csv(path, index=False)`` of a canonical table writes this format.

Values are checked with :func:`solver.traces.schema.validate_job_table`; errors name the file,
the row (0-based data row), the line and the column. Duplicate ``job_id`` values are detected
within a chunk only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, overload

import numpy as np
import pandas as pd

from solver.traces._io import (
    PathLike,
    RowContext,
    check_sizes,
    existing_file,
    finish,
    job_frame,
    read_csv_chunks,
)
from solver.traces.schema import (
    CANONICAL_COLUMNS,
    CANONICAL_DTYPES,
    TraceFormatError,
    validate_job_table,
)

__all__ = ["load_generic_csv"]

_NULLABLE = frozenset({"duration_s", "deadline_s", "work_steps"})


def _extra(raw: pd.Series[Any]) -> Any:
    text = raw.astype(str)
    given = text.str.strip().ne("")
    num = pd.to_numeric(text.where(given, np.nan), errors="coerce")
    if bool((num.isna() & given).any()):
        return text.to_numpy(dtype=object)
    return num.to_numpy(dtype=float)


def _convert(raw: pd.DataFrame, ctx: RowContext) -> pd.DataFrame:
    missing = [c for c in CANONICAL_COLUMNS if c not in raw.columns]
    if missing:
        raise TraceFormatError(
            ctx.source,
            missing[0],
            "column is missing from the header",
            value=[str(c) for c in raw.columns],
        )
    values: dict[str, Any] = {}
    for col, kind in CANONICAL_DTYPES.items():
        if kind == "str":
            values[col] = raw[col].astype(str).to_numpy(dtype=object)
        elif kind == "int":
            values[col] = ctx.ints(raw[col], col)
        else:
            values[col] = ctx.floats(raw[col], col, allow_nan=col in _NULLABLE)
    extra = {str(c): _extra(raw[c]) for c in raw.columns if c not in CANONICAL_DTYPES}
    df = job_frame(raw.index, values, extra)
    for col, val in extra.items():
        if val.dtype == object:
            df[col] = df[col].astype(str)
    try:
        validate_job_table(df, source=ctx.source)
    except TraceFormatError as exc:
        row = exc.row
        if isinstance(row, int | np.integer):
            raise ctx.error(exc.column, exc.errors[0].reason, row, exc.value) from None
        raise
    df.attrs = {"origin": None, "dropped": 0, "source": ctx.source}
    return df


@overload
def load_generic_csv(
    path: PathLike, *, chunksize: None = None, limit: int | None = None
) -> pd.DataFrame: ...
@overload
def load_generic_csv(
    path: PathLike, *, chunksize: int, limit: int | None = None
) -> Iterator[pd.DataFrame]: ...
@overload
def load_generic_csv(
    path: PathLike, *, chunksize: int | None = None, limit: int | None = None
) -> pd.DataFrame | Iterator[pd.DataFrame]: ...
def load_generic_csv(
    path: PathLike, *, chunksize: int | None = None, limit: int | None = None
) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Load and validate a CSV file in the canonical job schema.

    Parameters
    ----------
    path
        CSV file with a header naming (at least) the canonical columns.
    chunksize
        If given, return an iterator of tables of at most this many rows.
    limit
        Read only the first ``limit`` rows.

    Returns
    -------
    pandas.DataFrame or Iterator[pandas.DataFrame]
        Canonical job table(s), rows in file order.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    TraceFormatError
        For a missing column or a bad value, naming the file, row, line, column and value.
    """
    check_sizes(chunksize, limit)
    file = existing_file(path)
    ctx = RowContext(file.name, header_lines=1)
    chunks = read_csv_chunks(
        file, chunksize=chunksize, limit=limit, dtype=str, keep_default_na=False
    )
    return finish(
        chunks, lambda raw: _convert(raw, ctx), chunked=chunksize is not None, sort_column=None
    )
