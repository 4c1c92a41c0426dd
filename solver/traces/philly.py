"""Microsoft Philly (ATC'19) loaders: the Pollux-derived job table and the machine list.

``philly.csv`` (``timestamp, duration, num_gpus, gpu_time, cluster``) is mapped to the canonical
job table (:mod:`solver.traces.schema`):

- ``job_id`` = 0-based data-row number in the file, as a string (stable under sorting);
- ``kind`` = ``"training"``; ``gpu_milli`` = 1000; ``gpu_types`` = ``""`` (no GPU model recorded);
- ``submit_time_s`` = ``timestamp`` minus the earliest timestamp (``df.attrs["origin"]``);
- ``duration_s`` = ``duration`` (seconds); ``num_gpus`` = ``num_gpus``; ``user`` = ``cluster`` (VC);
- extra column ``gpu_time_s`` = ``gpu_time`` (GPU-seconds).

Rows of ``philly.csv`` are not sorted by time. The non-chunked loader sorts by ``submit_time_s``
(stable) unless ``sort=False``. With ``chunksize`` every chunk is sorted on its own: the
concatenated stream is **not** globally sorted. The origin of a chunked read is the earliest
timestamp of the whole file (of the first ``limit`` rows), found by a first pass over the
``timestamp`` column, unless ``origin`` is given.
"""

from __future__ import annotations

import re
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
    node_frame,
    read_csv_chunks,
)

__all__ = ["load_philly", "load_philly_machines"]

_COLUMNS = ["timestamp", "duration", "num_gpus", "gpu_time", "cluster"]
_GB = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*GB\s*$", re.IGNORECASE)


def _origin_of(path: PathLike, limit: int | None, ctx: RowContext) -> pd.Timestamp:
    """Earliest ``timestamp`` of the (first ``limit`` rows of the) file, read column-wise."""
    best: pd.Timestamp | None = None
    for raw in read_csv_chunks(
        existing_file(path), chunksize=200_000, limit=limit, usecols=["timestamp"], dtype=str
    ):
        if len(raw):
            low = ctx.datetimes(raw["timestamp"], "timestamp").min()
            best = low if best is None or low < best else best
    return best if best is not None else pd.Timestamp(0)


def _convert(raw: pd.DataFrame, ctx: RowContext, origin: pd.Timestamp) -> pd.DataFrame:
    missing = [c for c in _COLUMNS if c not in raw.columns]
    if missing:
        raise ctx.error(missing[0], "column is missing from the header", None, list(raw.columns))
    stamps = ctx.datetimes(raw["timestamp"], "timestamp")
    submit = np.asarray((stamps - origin).dt.total_seconds(), dtype=float)
    df = job_frame(
        raw.index,
        {
            "job_id": [str(i) for i in raw.index],
            "kind": "training",
            "submit_time_s": submit,
            "duration_s": ctx.floats(raw["duration"], "duration", min_value=0.0),
            "num_gpus": ctx.ints(raw["num_gpus"], "num_gpus", min_value=1),
            "gpu_milli": 1000,
            "user": raw["cluster"],
        },
        extra={"gpu_time_s": ctx.floats(raw["gpu_time"], "gpu_time", allow_nan=True)},
    )
    df.attrs = {"origin": origin, "dropped": 0, "source": ctx.source}
    return df


@overload
def load_philly(
    path: PathLike,
    *,
    chunksize: None = None,
    limit: int | None = None,
    sort: bool = True,
    origin: pd.Timestamp | str | None = None,
) -> pd.DataFrame: ...
@overload
def load_philly(
    path: PathLike,
    *,
    chunksize: int,
    limit: int | None = None,
    sort: bool = True,
    origin: pd.Timestamp | str | None = None,
) -> Iterator[pd.DataFrame]: ...
@overload
def load_philly(
    path: PathLike,
    *,
    chunksize: int | None = None,
    limit: int | None = None,
    sort: bool = True,
    origin: pd.Timestamp | str | None = None,
) -> pd.DataFrame | Iterator[pd.DataFrame]: ...
def load_philly(
    path: PathLike,
    *,
    chunksize: int | None = None,
    limit: int | None = None,
    sort: bool = True,
    origin: pd.Timestamp | str | None = None,
) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Load ``philly.csv`` as a canonical job table.

    Parameters
    ----------
    path
        Path of ``philly.csv``.
    chunksize
        If given, return an iterator of canonical tables of at most this many rows.
    limit
        Read only the first ``limit`` data rows of the file (before sorting).
    sort
        Sort by ``submit_time_s`` (stable). With ``chunksize`` this holds only within each chunk.
    origin
        Timestamp subtracted from ``timestamp``; default: the earliest timestamp read.

    Returns
    -------
    pandas.DataFrame or Iterator[pandas.DataFrame]
        Canonical job table(s) with extra column ``gpu_time_s``; ``attrs["origin"]`` is the
        origin timestamp, ``attrs["dropped"]`` is 0 (no rows are dropped).

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    TraceFormatError
        For a bad value (bad timestamp, negative duration, missing GPU count ...), naming the
        file, row, line, column and value.
    """
    check_sizes(chunksize, limit)
    file = existing_file(path)
    ctx = RowContext(file.name, header_lines=1)
    dtypes: dict[str, Any] = {"timestamp": str, "cluster": str}

    if chunksize is None:
        raw = pd.read_csv(file, nrows=limit, dtype=dtypes)
        if origin is not None:
            start = pd.Timestamp(origin)
        elif len(raw):
            start = ctx.datetimes(raw["timestamp"], "timestamp").min()
        else:
            start = pd.Timestamp(0)
        return finish(
            iter([raw]),
            lambda r: _convert(r, ctx, start),
            chunked=False,
            sort_column="submit_time_s" if sort else None,
        )

    def stream() -> Iterator[pd.DataFrame]:
        start = pd.Timestamp(origin) if origin is not None else _origin_of(file, limit, ctx)
        chunks = read_csv_chunks(file, chunksize=chunksize, limit=limit, dtype=dtypes)
        result = finish(
            chunks,
            lambda r: _convert(r, ctx, start),
            chunked=True,
            sort_column="submit_time_s" if sort else None,
        )
        assert not isinstance(result, pd.DataFrame)
        yield from result

    return stream()


def load_philly_machines(path: PathLike) -> pd.DataFrame:
    """Load Philly's ``cluster_machine_list(.csv)`` as a canonical node table.

    The header is ``machineId, number of GPUs, single GPU mem`` with leading spaces, and memory
    values look like ``" 12GB"``; both are handled. ``gpu_type`` is ``""`` (not recorded),
    ``gpu_memory_gib`` is the number before ``GB``; CPU and memory capacities are unknown (NaN).

    Parameters
    ----------
    path
        Path of the machine list.

    Returns
    -------
    pandas.DataFrame
        Canonical node table (:data:`solver.traces.schema.NODE_COLUMNS`).

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    TraceFormatError
        For a bad value, naming the file, row, column and value.
    """
    file = existing_file(path)
    ctx = RowContext(file.name, header_lines=1)
    raw = pd.read_csv(file, skipinitialspace=True, dtype=str)
    raw.columns = [str(c).strip() for c in raw.columns]
    for col in ("machineId", "number of GPUs", "single GPU mem"):
        if col not in raw.columns:
            raise ctx.error(col, "column is missing from the header", None, list(raw.columns))
    mem_text = raw["single GPU mem"].fillna("")
    match = mem_text.str.extract(_GB, expand=False)
    ctx.fail_first(mem_text, match.isna(), "single GPU mem", "expected a value like '12GB'")
    ids = raw["machineId"].fillna("").str.strip()
    ctx.fail_first(raw["machineId"], ids.eq(""), "machineId", "is missing")
    return node_frame(
        raw.index,
        {
            "node_id": ids,
            "gpu_type": "",
            "num_gpus": ctx.ints(raw["number of GPUs"], "number of GPUs", min_value=0),
            "gpu_memory_gib": match.astype(float).to_numpy(),
            "cpu_milli": np.nan,
            "memory_mib": np.nan,
        },
    )
