"""Gavel (OSDI'20) loaders: throughput profiles and Philly-derived job traces.

Throughputs
    :func:`load_gavel_throughputs` flattens ``simulation_throughputs.json`` (or
    ``physical_cluster_throughputs.json``) into one row per (job type, scale factor, GPU type,
    consolidated?) with the **isolated** throughput (the ``"null"`` partner key) in training
    steps per second. Co-location entries are ignored.

Job traces
    ``traces/msr/seed=S/<vc>.trace.gz`` files are tab-separated and headerless. Two layouts
    exist and are told apart by the field count of the first line:

    - 7 fields (legacy, the msr traces): ``job_type, command, num_steps_arg, needs_data_dir,
      total_steps, arrival_time, scale_factor``;
    - 10 fields (current, ``traces/physical_cluster``): ``job_type, command, working_directory,
      num_steps_arg, needs_data_dir, total_steps, scale_factor, priority_weight, SLO,
      arrival_time``.

    Canonical mapping: ``job_id`` = ``"<file stem>-<row>"`` (e.g. ``11cb48-0``), ``kind`` =
    ``"training"``, ``submit_time_s`` = ``arrival_time``, ``duration_s`` = NaN (it depends on
    the GPU type: ``total_steps / throughput``), ``num_gpus`` = ``scale_factor``,
    ``gpu_milli`` = 1000, ``model`` = ``job_type``, ``work_steps`` = ``total_steps``,
    ``user`` = file stem (the Philly VC hash), ``priority`` = ``priority_weight`` (10-field
    files; else 1.0). Extra column ``slo`` (10-field files only; NaN for ``-1``).

    A directory is read as the concatenation of its ``*.trace.gz`` / ``*.trace`` files in name
    order and (non-chunked) sorted by ``submit_time_s``; with ``chunksize`` chunks never span
    files and are sorted only within themselves.
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd

from solver.traces._io import (
    PathLike,
    RowContext,
    check_sizes,
    existing_file,
    job_frame,
    read_csv_chunks,
    sort_stable,
)
from solver.traces.schema import TraceFormatError

__all__ = ["load_gavel", "load_gavel_throughputs"]

_FIELDS_7 = [
    "job_type",
    "command",
    "num_steps_arg",
    "needs_data_dir",
    "total_steps",
    "arrival_time",
    "scale_factor",
]
_FIELDS_10 = [
    "job_type",
    "command",
    "working_directory",
    "num_steps_arg",
    "needs_data_dir",
    "total_steps",
    "scale_factor",
    "priority_weight",
    "SLO",
    "arrival_time",
]


def load_gavel_throughputs(path: PathLike) -> pd.DataFrame:
    """Load a Gavel throughput JSON as a tidy table of isolated throughputs.

    Parameters
    ----------
    path
        ``simulation_throughputs.json`` or ``physical_cluster_throughputs.json``.

    Returns
    -------
    pandas.DataFrame
        Columns ``job_type`` (str), ``scale_factor`` (int, GPUs), ``gpu_type`` (str: ``v100``,
        ``p100``, ``k80`` as in the file, without the ``_unconsolidated`` suffix),
        ``consolidated`` (bool: False for the ``*_unconsolidated`` worker types),
        ``throughput_steps_per_s`` (float). Sorted by job type, scale factor, GPU type,
        consolidated.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    TraceFormatError
        If a job key cannot be parsed or an isolated throughput is missing or negative.
    """
    file = existing_file(path)
    with file.open(encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise TraceFormatError(file.name, "<root>", "must be a JSON object", value=type(data))
    rows: list[tuple[str, int, str, bool, float]] = []
    for worker, jobs in data.items():
        worker = str(worker)
        consolidated = not worker.endswith("_unconsolidated")
        gpu_type = worker.removesuffix("_unconsolidated")
        if not isinstance(jobs, dict):
            raise TraceFormatError(file.name, worker, "must map job keys to objects", value=jobs)
        for key, partners in jobs.items():
            where = f"{worker}.{key}"
            try:
                parsed = ast.literal_eval(key)
                job_type, scale = str(parsed[0]), int(parsed[1])
            except (ValueError, SyntaxError, TypeError, IndexError) as exc:
                raise TraceFormatError(
                    file.name,
                    where,
                    "job key must look like \"('<job type>', <GPUs>)\"",
                    value=key,
                ) from exc
            value = partners.get("null") if isinstance(partners, dict) else None
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise TraceFormatError(
                    file.name,
                    where,
                    "isolated throughput ('null') must be a number >= 0",
                    value=value,
                )
            rows.append((job_type, scale, gpu_type, consolidated, float(value)))
    df = pd.DataFrame(
        rows,
        columns=["job_type", "scale_factor", "gpu_type", "consolidated", "throughput_steps_per_s"],
    )
    df = df.astype(
        {
            "job_type": str,
            "scale_factor": np.int64,
            "gpu_type": str,
            "consolidated": bool,
            "throughput_steps_per_s": float,
        }
    )
    df = df.sort_values(
        ["job_type", "scale_factor", "gpu_type", "consolidated"], kind="stable"
    ).reset_index(drop=True)
    df.attrs = {"source": file.name}
    return df


def _stem(file: Path) -> str:
    name = file.name
    for suffix in (".trace.gz", ".trace"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return file.stem


def _field_count(file: Path) -> int:
    opener = gzip.open if file.name.endswith(".gz") else open
    with opener(file, "rt", encoding="utf-8") as fh:
        first = fh.readline().rstrip("\r\n")
    return 0 if not first else first.count("\t") + 1


def _convert(raw: pd.DataFrame, ctx: RowContext, stem: str, ten: bool) -> pd.DataFrame:
    values: dict[str, Any] = {
        "job_id": [f"{stem}-{i}" for i in raw.index],
        "kind": "training",
        "submit_time_s": ctx.floats(raw["arrival_time"], "arrival_time", min_value=0.0),
        "num_gpus": ctx.ints(raw["scale_factor"], "scale_factor", min_value=1),
        "gpu_milli": 1000,
        "model": raw["job_type"],
        "work_steps": ctx.floats(raw["total_steps"], "total_steps", min_value=0.0),
        "user": stem,
    }
    ctx.fail_first(raw["job_type"], raw["job_type"].isna(), "job_type", "is missing")
    extra: dict[str, Any] | None = None
    if ten:
        values["priority"] = ctx.floats(raw["priority_weight"], "priority_weight")
        slo = ctx.floats(raw["SLO"], "SLO")
        extra = {"slo": np.where(slo < 0, np.nan, slo)}
    df = job_frame(raw.index, values, extra)
    df.attrs = {"origin": None, "dropped": 0, "source": ctx.source}
    return df


def _file_chunks(file: Path, chunksize: int | None, limit: int | None) -> Iterator[pd.DataFrame]:
    """Canonical chunks of one trace file (unsorted)."""
    count = _field_count(file)
    if count == 0:
        return
    if count not in (7, 10):
        raise TraceFormatError(
            file.name,
            "<line 1>",
            "Gavel traces have 7 or 10 tab-separated fields",
            row=0,
            line=1,
            value=count,
        )
    names = _FIELDS_10 if count == 10 else _FIELDS_7
    ctx = RowContext(file.name, header_lines=0)
    raw_chunks = read_csv_chunks(
        file,
        chunksize=chunksize,
        limit=limit,
        sep="\t",
        header=None,
        names=names,
        quoting=csv.QUOTE_NONE,
        dtype={"job_type": str, "command": str, "num_steps_arg": str},
        compression="infer",
    )
    stem = _stem(file)
    for raw in raw_chunks:
        yield _convert(raw, ctx, stem, count == 10)


def _trace_files(path: Path) -> list[Path]:
    files = sorted(
        p for p in path.iterdir() if p.is_file() and p.name.endswith((".trace", ".trace.gz"))
    )
    if not files:
        raise FileNotFoundError(f"{path}: no *.trace or *.trace.gz files")
    return files


@overload
def load_gavel(
    path: PathLike, *, chunksize: None = None, limit: int | None = None, sort: bool = True
) -> pd.DataFrame: ...
@overload
def load_gavel(
    path: PathLike, *, chunksize: int, limit: int | None = None, sort: bool = True
) -> Iterator[pd.DataFrame]: ...
@overload
def load_gavel(
    path: PathLike, *, chunksize: int | None = None, limit: int | None = None, sort: bool = True
) -> pd.DataFrame | Iterator[pd.DataFrame]: ...
def load_gavel(
    path: PathLike, *, chunksize: int | None = None, limit: int | None = None, sort: bool = True
) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Load a Gavel job trace (one ``.trace(.gz)`` file or a directory of them).

    Parameters
    ----------
    path
        A ``<vc>.trace.gz`` / ``.trace`` file, or a directory such as ``traces/msr/seed=0``.
    chunksize
        If given, return an iterator of canonical tables of at most this many rows (never
        spanning two files).
    limit
        Read at most this many jobs in total (files in name order, rows in file order).
    sort
        Sort by ``submit_time_s`` (stable); with ``chunksize`` only within each chunk.

    Returns
    -------
    pandas.DataFrame or Iterator[pandas.DataFrame]
        Canonical job table(s); ``duration_s`` is NaN, ``work_steps`` and ``model`` are set.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or a directory holds no trace files.
    TraceFormatError
        For a bad value, naming the file, row, line, column and value.
    """
    check_sizes(chunksize, limit)
    p = Path(path)
    files = _trace_files(p) if p.is_dir() else [existing_file(p)]
    source = str(p.name)

    def stream() -> Iterator[pd.DataFrame]:
        remaining = limit
        for file in files:
            if remaining is not None and remaining <= 0:
                return
            for chunk in _file_chunks(file, chunksize, remaining):
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    if chunksize is not None:

        def renumbered() -> Iterator[pd.DataFrame]:
            offset = 0
            for chunk in stream():
                out = sort_stable(chunk, "submit_time_s") if sort else chunk
                out.index = pd.RangeIndex(offset, offset + len(out))
                offset += len(out)
                yield out

        return renumbered()

    frames = list(stream())
    if frames:
        df = pd.concat(frames, ignore_index=True)
    else:
        df = job_frame(
            pd.RangeIndex(0),
            {"job_id": [], "kind": [], "submit_time_s": [], "num_gpus": [], "gpu_milli": []},
        )
    if sort:
        df = sort_stable(df, "submit_time_s")
    df.attrs = {"origin": None, "dropped": 0, "source": source}
    return df
