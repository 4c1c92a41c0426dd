"""Alibaba cluster-trace-gpu-v2020 (PAI, NSDI'22) loaders: machine spec and task table.

Both tables are **headerless** CSVs; their column names are in ``<table>.header`` files next to
them (``pai_machine_spec.header``, ``pai_task_table.header``). The loaders read the header
file when it exists (or the one passed as ``header_path``) and otherwise use the documented
column names.

Machine spec (``pai_machine_spec.csv``: ``machine, gpu_type, cap_cpu, cap_mem, cap_gpu``)
maps to the canonical node table: ``node_id`` = ``machine``, ``gpu_type`` as in the trace
(``V100``, ``V100M32``, ``P100``, ``T4``, ``MISC``, ``CPU``), ``num_gpus`` = ``cap_gpu``,
``cpu_milli`` = ``cap_cpu`` × 1000 (cores), ``memory_mib`` = ``cap_mem`` × 1024 (the trace's
"GB" read as GiB), ``gpu_memory_gib`` = 32 for ``V100M32`` else NaN.

Task table (``pai_task_table.csv``, only in the full trace, which users download themselves:
``job_name, task_name, inst_num, status, start_time, end_time, plan_cpu, plan_mem, plan_gpu,
gpu_type``) maps to the canonical job table, one row per task:

- ``job_id`` = ``"<job_name>/<task_name>"``; ``submit_time_s`` = ``start_time`` (task launch,
  seconds; the job table's submission time would need a join); ``duration_s`` =
  ``end_time - start_time`` (NaN if ``end_time`` is empty); ``status`` = ``status``;
- ``plan_gpu`` is the per-instance GPU request in percent of one GPU: empty or 0 → ``kind``
  ``"cpu"``; 1…99 → ``"fractional"`` with ``gpu_milli`` = 10 × ``plan_gpu``; ≥ 100 →
  ``"training"`` with ``num_gpus`` = ceil(``plan_gpu`` / 100) and ``gpu_milli`` =
  round(10 × ``plan_gpu`` / ``num_gpus``) (1000 for whole multiples of 100);
- ``gpu_types`` = ``gpu_type`` (``""`` if empty);
- extra columns ``inst_num`` (int, instances of the task), ``cpu_milli`` = 10 × ``plan_cpu``,
  ``memory_mib`` = 1024 × ``plan_mem``.

Tasks that never started (empty ``start_time``) raise an error unless
``drop_unstarted=True``, which drops them and counts them in ``df.attrs["dropped"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import overload

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
from solver.traces.schema import TraceFormatError

__all__ = ["load_pai_machines", "load_pai_tasks"]

MACHINE_SPEC_COLUMNS = ("machine", "gpu_type", "cap_cpu", "cap_mem", "cap_gpu")
TASK_TABLE_COLUMNS = (
    "job_name",
    "task_name",
    "inst_num",
    "status",
    "start_time",
    "end_time",
    "plan_cpu",
    "plan_mem",
    "plan_gpu",
    "gpu_type",
)


def _header(path: Path, header_path: PathLike | None, default: tuple[str, ...]) -> list[str]:
    """Column names from ``header_path``, else ``<stem>.header`` next to ``path``, else default."""
    candidate = Path(header_path) if header_path is not None else path.with_suffix(".header")
    if header_path is not None and not candidate.is_file():
        raise FileNotFoundError(f"{candidate}: file not found")
    if not candidate.is_file():
        return list(default)
    names = [n.strip() for n in candidate.read_text(encoding="utf-8").strip().split(",")]
    missing = [c for c in default if c not in names]
    if missing:
        raise TraceFormatError(
            candidate.name, missing[0], "column is missing from the header file", value=names
        )
    return names


def load_pai_machines(path: PathLike, *, header_path: PathLike | None = None) -> pd.DataFrame:
    """Load ``pai_machine_spec.csv`` (headerless) as a canonical node table.

    Parameters
    ----------
    path
        Path of ``pai_machine_spec.csv``.
    header_path
        Header file; default ``pai_machine_spec.header`` next to ``path`` if present, else the
        documented columns ``machine,gpu_type,cap_cpu,cap_mem,cap_gpu``.

    Returns
    -------
    pandas.DataFrame
        Canonical node table.

    Raises
    ------
    FileNotFoundError
        If ``path`` (or a given ``header_path``) is not a file.
    TraceFormatError
        For a bad value, naming the file, row, line, column and value.
    """
    file = existing_file(path)
    names = _header(file, header_path, MACHINE_SPEC_COLUMNS)
    ctx = RowContext(file.name, header_lines=0)
    raw = pd.read_csv(
        file,
        header=None,
        names=names,
        dtype={"machine": str, "gpu_type": str},
        keep_default_na=False,
    )
    ctx.fail_first(raw["machine"], raw["machine"].eq(""), "machine", "is missing")
    gpu_type = raw["gpu_type"].astype(str)
    return node_frame(
        raw.index,
        {
            "node_id": raw["machine"],
            "gpu_type": gpu_type,
            "num_gpus": ctx.ints(raw["cap_gpu"], "cap_gpu", min_value=0),
            "gpu_memory_gib": np.where(gpu_type.eq("V100M32").to_numpy(), 32.0, np.nan),
            "cpu_milli": ctx.floats(raw["cap_cpu"], "cap_cpu", min_value=0.0) * 1000.0,
            "memory_mib": ctx.floats(raw["cap_mem"], "cap_mem", min_value=0.0) * 1024.0,
        },
    )


def _convert_tasks(raw: pd.DataFrame, ctx: RowContext, drop_unstarted: bool) -> pd.DataFrame:
    dropped = 0
    if drop_unstarted:
        started = pd.to_numeric(raw["start_time"], errors="coerce").notna()
        dropped = int((~started).sum())
        raw = raw[started.to_numpy()]
    start = ctx.floats(raw["start_time"], "start_time")
    end = ctx.floats(raw["end_time"], "end_time", allow_nan=True)
    duration = end - start
    ctx.fail_first(raw["end_time"], duration < 0, "end_time", "must be >= start_time")
    plan_gpu = ctx.floats(raw["plan_gpu"], "plan_gpu", allow_nan=True, min_value=0.0)
    plan_gpu = np.nan_to_num(plan_gpu, nan=0.0)
    is_cpu = plan_gpu == 0
    is_frac = (plan_gpu > 0) & (plan_gpu < 100)
    num_gpus = np.where(is_cpu, 0, np.where(is_frac, 1, np.ceil(plan_gpu / 100.0))).astype(np.int64)
    milli = np.where(is_cpu, 0.0, np.round(10.0 * plan_gpu / np.maximum(num_gpus, 1))).astype(
        np.int64
    )
    milli = np.where(is_frac, np.clip(milli, 1, 999), milli)
    kind = np.where(is_cpu, "cpu", np.where(is_frac, "fractional", "training"))
    job_name = raw["job_name"].fillna("").astype(str)
    ctx.fail_first(raw["job_name"], job_name.eq("").to_numpy(), "job_name", "is missing")
    ids = job_name + "/" + raw["task_name"].fillna("").astype(str)
    df = job_frame(
        raw.index,
        {
            "job_id": ids,
            "kind": kind,
            "submit_time_s": start,
            "duration_s": duration,
            "num_gpus": num_gpus,
            "gpu_milli": milli,
            "gpu_types": raw["gpu_type"],
            "status": raw["status"],
        },
        extra={
            "inst_num": ctx.ints(raw["inst_num"], "inst_num", min_value=0),
            "cpu_milli": 10.0
            * ctx.floats(raw["plan_cpu"], "plan_cpu", allow_nan=True, min_value=0.0),
            "memory_mib": 1024.0
            * ctx.floats(raw["plan_mem"], "plan_mem", allow_nan=True, min_value=0.0),
        },
    )
    df.attrs = {"origin": None, "dropped": dropped, "source": ctx.source}
    return df


@overload
def load_pai_tasks(
    path: PathLike,
    *,
    chunksize: None = None,
    limit: int | None = None,
    sort: bool = True,
    header_path: PathLike | None = None,
    drop_unstarted: bool = False,
) -> pd.DataFrame: ...
@overload
def load_pai_tasks(
    path: PathLike,
    *,
    chunksize: int,
    limit: int | None = None,
    sort: bool = True,
    header_path: PathLike | None = None,
    drop_unstarted: bool = False,
) -> Iterator[pd.DataFrame]: ...
@overload
def load_pai_tasks(
    path: PathLike,
    *,
    chunksize: int | None = None,
    limit: int | None = None,
    sort: bool = True,
    header_path: PathLike | None = None,
    drop_unstarted: bool = False,
) -> pd.DataFrame | Iterator[pd.DataFrame]: ...
def load_pai_tasks(
    path: PathLike,
    *,
    chunksize: int | None = None,
    limit: int | None = None,
    sort: bool = True,
    header_path: PathLike | None = None,
    drop_unstarted: bool = False,
) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Load the full PAI ``pai_task_table.csv`` (headerless) as a canonical job table.

    Parameters
    ----------
    path
        Path of ``pai_task_table.csv`` (from the full trace download).
    chunksize
        If given, return an iterator of canonical tables of at most this many rows.
    limit
        Read only the first ``limit`` rows.
    sort
        Sort by ``submit_time_s`` (stable); with ``chunksize`` only within each chunk.
    header_path
        Header file; default ``pai_task_table.header`` next to ``path`` if present, else the
        documented columns.
    drop_unstarted
        Drop tasks with an empty ``start_time`` (counted in ``attrs["dropped"]``) instead of
        raising.

    Returns
    -------
    pandas.DataFrame or Iterator[pandas.DataFrame]
        Canonical job table(s) with extra columns ``inst_num``, ``cpu_milli``, ``memory_mib``.

    Raises
    ------
    FileNotFoundError
        If ``path`` (or a given ``header_path``) is not a file.
    TraceFormatError
        For a bad value, naming the file, row, line, column and value.
    """
    check_sizes(chunksize, limit)
    file = existing_file(path)
    names = _header(file, header_path, TASK_TABLE_COLUMNS)
    ctx = RowContext(file.name, header_lines=0)
    chunks = read_csv_chunks(
        file,
        chunksize=chunksize,
        limit=limit,
        header=None,
        names=names,
        dtype={"job_name": str, "task_name": str, "status": str, "gpu_type": str},
    )
    return finish(
        chunks,
        lambda raw: _convert_tasks(raw, ctx, drop_unstarted),
        chunked=chunksize is not None,
        sort_column="submit_time_s" if sort else None,
    )
