"""Azure LLM inference trace 2023 (Splitwise) loader and request-to-load aggregation.

``AzureLLMInferenceTrace_{conv,code}.csv`` (``TIMESTAMP, ContextTokens, GeneratedTokens``)
maps to the canonical **request** table (:data:`solver.traces.schema.REQUEST_COLUMNS`):

- ``request_id`` = 0-based data-row number in the file, as a string;
- ``timestamp_s`` = ``TIMESTAMP`` (``YYYY-MM-DD HH:MM:SS.fffffff``, 100-ns resolution, no time
  zone) minus the earliest timestamp, which is stored as ``df.attrs["origin"]``;
- ``prompt_tokens`` = ``ContextTokens``; ``output_tokens`` = ``GeneratedTokens``.

The file is already sorted by time; the loader sorts (stable) anyway; with ``chunksize`` only
within each chunk. A chunked read finds the origin with a first pass over ``TIMESTAMP``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import overload

import numpy as np
import pandas as pd

from solver.traces._io import (
    PathLike,
    RowContext,
    check_sizes,
    existing_file,
    finish,
    read_csv_chunks,
    request_frame,
)
from solver.traces.schema import validate_request_table

__all__ = ["LOAD_COLUMNS", "load_azure", "requests_to_load"]

LOAD_COLUMNS = (
    "interval_start_s",
    "rate_rps",
    "mean_prompt_tokens",
    "mean_output_tokens",
    "p95_prompt_tokens",
    "p95_output_tokens",
)
"""Columns of :func:`requests_to_load`."""

_COLUMNS = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]


def _origin_of(file: PathLike, limit: int | None, ctx: RowContext) -> pd.Timestamp:
    best: pd.Timestamp | None = None
    for raw in read_csv_chunks(
        existing_file(file), chunksize=200_000, limit=limit, usecols=["TIMESTAMP"], dtype=str
    ):
        if len(raw):
            low = ctx.datetimes(raw["TIMESTAMP"], "TIMESTAMP").min()
            best = low if best is None or low < best else best
    return best if best is not None else pd.Timestamp(0)


def _convert(raw: pd.DataFrame, ctx: RowContext, origin: pd.Timestamp) -> pd.DataFrame:
    missing = [c for c in _COLUMNS if c not in raw.columns]
    if missing:
        raise ctx.error(missing[0], "column is missing from the header", None, list(raw.columns))
    stamps = ctx.datetimes(raw["TIMESTAMP"], "TIMESTAMP")
    df = request_frame(
        raw.index,
        {
            "request_id": [str(i) for i in raw.index],
            "timestamp_s": np.asarray((stamps - origin).dt.total_seconds(), dtype=float),
            "prompt_tokens": ctx.ints(raw["ContextTokens"], "ContextTokens", min_value=0),
            "output_tokens": ctx.ints(raw["GeneratedTokens"], "GeneratedTokens", min_value=0),
        },
    )
    df.attrs = {"origin": origin, "dropped": 0, "source": ctx.source}
    return df


@overload
def load_azure(
    path: PathLike,
    *,
    chunksize: None = None,
    limit: int | None = None,
    sort: bool = True,
    origin: pd.Timestamp | str | None = None,
) -> pd.DataFrame: ...
@overload
def load_azure(
    path: PathLike,
    *,
    chunksize: int,
    limit: int | None = None,
    sort: bool = True,
    origin: pd.Timestamp | str | None = None,
) -> Iterator[pd.DataFrame]: ...
@overload
def load_azure(
    path: PathLike,
    *,
    chunksize: int | None = None,
    limit: int | None = None,
    sort: bool = True,
    origin: pd.Timestamp | str | None = None,
) -> pd.DataFrame | Iterator[pd.DataFrame]: ...
def load_azure(
    path: PathLike,
    *,
    chunksize: int | None = None,
    limit: int | None = None,
    sort: bool = True,
    origin: pd.Timestamp | str | None = None,
) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Load an Azure LLM inference 2023 CSV as a canonical request table.

    Parameters
    ----------
    path
        ``AzureLLMInferenceTrace_conv.csv`` or ``AzureLLMInferenceTrace_code.csv``.
    chunksize
        If given, return an iterator of request tables of at most this many rows.
    limit
        Read only the first ``limit`` requests.
    sort
        Sort by ``timestamp_s`` (stable); with ``chunksize`` only within each chunk.
    origin
        Timestamp subtracted from ``TIMESTAMP``; default: the earliest timestamp read.

    Returns
    -------
    pandas.DataFrame or Iterator[pandas.DataFrame]
        Request table(s) ``request_id, timestamp_s, prompt_tokens, output_tokens``;
        ``attrs["origin"]`` holds the origin timestamp.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    TraceFormatError
        For a bad value (unparsable timestamp, negative or missing token count), naming the
        file, row, line, column and value.
    """
    check_sizes(chunksize, limit)
    file = existing_file(path)
    ctx = RowContext(file.name, header_lines=1)
    sort_column = "timestamp_s" if sort else None
    if chunksize is None:
        raw = pd.read_csv(file, nrows=limit, dtype={"TIMESTAMP": str})
        if origin is not None:
            start = pd.Timestamp(origin)
        elif len(raw) and "TIMESTAMP" in raw.columns:
            start = ctx.datetimes(raw["TIMESTAMP"], "TIMESTAMP").min()
        else:
            start = pd.Timestamp(0)
        return finish(
            iter([raw]), lambda r: _convert(r, ctx, start), chunked=False, sort_column=sort_column
        )

    def stream() -> Iterator[pd.DataFrame]:
        start = pd.Timestamp(origin) if origin is not None else _origin_of(file, limit, ctx)
        chunks = read_csv_chunks(file, chunksize=chunksize, limit=limit, dtype={"TIMESTAMP": str})
        result = finish(
            chunks, lambda r: _convert(r, ctx, start), chunked=True, sort_column=sort_column
        )
        assert not isinstance(result, pd.DataFrame)
        yield from result

    return stream()


def requests_to_load(requests: pd.DataFrame, interval_s: float = 60.0) -> pd.DataFrame:
    """Aggregate a request table into a per-interval load profile.

    Interval ``k`` covers ``[k * interval_s, (k + 1) * interval_s)`` on the request clock, for
    ``k = 0 … floor(max(timestamp_s) / interval_s)``; intervals without requests are included
    (rate 0, NaN token statistics). The rate of the last, possibly partial, interval is also
    divided by the full ``interval_s``.

    Parameters
    ----------
    requests
        Canonical request table (e.g. from :func:`load_azure`); need not be sorted.
    interval_s
        Interval length in seconds (> 0).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`LOAD_COLUMNS`: ``interval_start_s`` (float), ``rate_rps`` (requests per
        second), ``mean_prompt_tokens``, ``mean_output_tokens``, ``p95_prompt_tokens``,
        ``p95_output_tokens`` (floats; p95 with linear interpolation). ``attrs`` are copied
        from ``requests`` plus ``interval_s``.

    Raises
    ------
    ValueError
        If ``interval_s`` is not positive, or ``requests`` is not a valid request table or has
        negative timestamps.
    """
    if not np.isfinite(interval_s) or interval_s <= 0:
        raise ValueError(f"interval_s must be a positive number, got {interval_s!r}")
    validate_request_table(requests)
    t = requests["timestamp_s"].to_numpy(dtype=float)
    if len(t) and t.min() < 0:
        raise ValueError("requests_to_load: timestamp_s must be >= 0 (seconds from the origin)")
    columns = list(LOAD_COLUMNS)
    if len(t) == 0:
        out = pd.DataFrame({c: pd.Series([], dtype=float) for c in columns})
    else:
        k = np.floor(t / interval_s).astype(np.int64)
        n = int(k.max()) + 1
        frame = pd.DataFrame(
            {
                "k": k,
                "prompt": requests["prompt_tokens"].to_numpy(dtype=float),
                "output": requests["output_tokens"].to_numpy(dtype=float),
            }
        )
        grouped = frame.groupby("k")
        stats = pd.DataFrame(
            {
                "count": grouped.size(),
                "mean_prompt_tokens": grouped["prompt"].mean(),
                "mean_output_tokens": grouped["output"].mean(),
                "p95_prompt_tokens": grouped["prompt"].quantile(0.95),
                "p95_output_tokens": grouped["output"].quantile(0.95),
            }
        ).reindex(pd.RangeIndex(n))
        out = pd.DataFrame(
            {
                "interval_start_s": np.arange(n, dtype=float) * interval_s,
                "rate_rps": stats["count"].fillna(0).to_numpy(dtype=float) / interval_s,
                "mean_prompt_tokens": stats["mean_prompt_tokens"].to_numpy(dtype=float),
                "mean_output_tokens": stats["mean_output_tokens"].to_numpy(dtype=float),
                "p95_prompt_tokens": stats["p95_prompt_tokens"].to_numpy(dtype=float),
                "p95_output_tokens": stats["p95_output_tokens"].to_numpy(dtype=float),
            }
        )
    out.attrs = {**requests.attrs, "interval_s": float(interval_s)}
    return out
