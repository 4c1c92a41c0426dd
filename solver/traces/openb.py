"""Alibaba cluster-trace-gpu-v2023 ("openb", ATC'23 FGD) loaders: pod lists and node lists.

Pod lists ``openb_pod_list_*.csv`` map to the canonical job table:

- ``job_id`` = ``name``; ``submit_time_s`` = ``creation_time`` (already seconds from an
  anonymised origin; ``attrs["origin"]`` is None);
- ``kind``: ``"cpu"`` when ``num_gpu == 0`` (then ``num_gpus`` = 0, ``gpu_milli`` = 0),
  ``"fractional"`` when ``gpu_milli < 1000`` (``num_gpus`` = 1), else ``"training"`` (the trace
  does not say whether a whole-GPU task trains or serves; ``qos`` is kept for that);
- ``duration_s`` = ``deletion_time - scheduled_time`` for scheduled pods, NaN for pods never
  scheduled (empty ``scheduled_time``: the ``Pending`` ones);
- ``gpu_types`` = ``gpu_spec`` (``|``-separated, ``""`` = any); ``status`` = ``pod_phase``;
- extra columns ``cpu_milli``, ``memory_mib`` (int), ``qos``, ``pod_phase`` (str),
  ``scheduled_time_s``, ``deletion_time_s`` (float, NaN when empty).

The four ``openb_pod_list_multigpu*.csv`` variants have only ``name, cpu_milli, memory_mib,
num_gpu, gpu_milli``: every task then gets ``submit_time_s`` = 0.0 (all arrive together, in
file order, which is how the FGD simulator replays them), ``duration_s`` NaN, and empty
``qos`` / ``pod_phase``.

Node lists ``openb_node_list_*.csv`` (``sn, cpu_milli, memory_mib, gpu, model``) map to the
canonical node table; ``gpu_type`` = ``model`` (``""`` for CPU-only nodes), ``gpu_memory_gib``
is known only from the model name (``V100M16`` = 16, ``V100M32`` = 32), else NaN.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, Final, overload

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

__all__ = ["load_openb", "load_openb_nodes"]

_BASE = ["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"]
_TIMED = ["gpu_spec", "qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time"]
_GPU_MEMORY_GIB: Final[Mapping[str, float]] = MappingProxyType({"V100M16": 16.0, "V100M32": 32.0})


def _convert(raw: pd.DataFrame, ctx: RowContext) -> pd.DataFrame:
    missing = [c for c in _BASE if c not in raw.columns]
    if missing:
        raise ctx.error(missing[0], "column is missing from the header", None, list(raw.columns))
    timed = all(c in raw.columns for c in _TIMED)
    names = raw["name"]
    ctx.fail_first(names, names.isna() | names.eq(""), "name", "is missing")
    num_gpu = ctx.ints(raw["num_gpu"], "num_gpu", min_value=0)
    milli = ctx.ints(raw["gpu_milli"], "gpu_milli", min_value=0)
    ctx.fail_first(raw["gpu_milli"], milli > 1000, "gpu_milli", "must be <= 1000")
    is_cpu = num_gpu == 0
    ctx.fail_first(
        raw["gpu_milli"], ~is_cpu & (milli == 0), "gpu_milli", "must be > 0 when num_gpu > 0"
    )
    is_frac = ~is_cpu & (milli < 1000)
    ctx.fail_first(
        raw["num_gpu"],
        is_frac & (num_gpu != 1),
        "num_gpu",
        "must be 1 for a fractional request (gpu_milli < 1000)",
    )
    kind = np.where(is_cpu, "cpu", np.where(is_frac, "fractional", "training"))
    gpu_milli = np.where(is_cpu, 0, milli)
    values: dict[str, Any] = {
        "job_id": names,
        "kind": kind,
        "num_gpus": num_gpu,
        "gpu_milli": gpu_milli,
    }
    extra: dict[str, Any] = {
        "cpu_milli": ctx.ints(raw["cpu_milli"], "cpu_milli", min_value=0),
        "memory_mib": ctx.ints(raw["memory_mib"], "memory_mib", min_value=0),
    }
    if timed:
        creation = ctx.floats(raw["creation_time"], "creation_time")
        deletion = ctx.floats(raw["deletion_time"], "deletion_time", allow_nan=True)
        scheduled = ctx.floats(raw["scheduled_time"], "scheduled_time", allow_nan=True)
        ctx.fail_first(
            raw["scheduled_time"],
            scheduled < creation,
            "scheduled_time",
            "must be >= creation_time",
        )
        duration = deletion - scheduled
        ctx.fail_first(
            raw["deletion_time"], duration < 0, "deletion_time", "must be >= scheduled_time"
        )
        pod_phase = raw["pod_phase"].fillna("").astype(str)
        values.update(
            {
                "submit_time_s": creation,
                "duration_s": duration,
                "gpu_types": raw["gpu_spec"],
                "status": pod_phase,
            }
        )
        extra.update(
            {
                "qos": raw["qos"].fillna("").astype(str).to_numpy(),
                "pod_phase": pod_phase.to_numpy(),
                "scheduled_time_s": scheduled,
                "deletion_time_s": deletion,
            }
        )
    else:
        values["submit_time_s"] = 0.0
        extra.update(
            {
                "qos": "",
                "pod_phase": "",
                "scheduled_time_s": np.nan,
                "deletion_time_s": np.nan,
            }
        )
    df = job_frame(raw.index, values, extra)
    for col in ("qos", "pod_phase"):
        df[col] = df[col].astype(str)
    df.attrs = {"origin": None, "dropped": 0, "source": ctx.source}
    return df


@overload
def load_openb(
    path: PathLike, *, chunksize: None = None, limit: int | None = None, sort: bool = True
) -> pd.DataFrame: ...
@overload
def load_openb(
    path: PathLike, *, chunksize: int, limit: int | None = None, sort: bool = True
) -> Iterator[pd.DataFrame]: ...
@overload
def load_openb(
    path: PathLike, *, chunksize: int | None = None, limit: int | None = None, sort: bool = True
) -> pd.DataFrame | Iterator[pd.DataFrame]: ...
def load_openb(
    path: PathLike, *, chunksize: int | None = None, limit: int | None = None, sort: bool = True
) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Load an openb pod list (``openb_pod_list_*.csv``) as a canonical job table.

    Parameters
    ----------
    path
        Path of a pod list.
    chunksize
        If given, return an iterator of canonical tables of at most this many rows.
    limit
        Read only the first ``limit`` pods.
    sort
        Sort by ``submit_time_s`` (stable; the default list is already in creation order);
        with ``chunksize`` only within each chunk.

    Returns
    -------
    pandas.DataFrame or Iterator[pandas.DataFrame]
        Canonical job table(s) with extra columns ``cpu_milli``, ``memory_mib``, ``qos``,
        ``pod_phase``, ``scheduled_time_s``, ``deletion_time_s``.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    TraceFormatError
        For a bad value (negative or missing counts, a pod deleted before it was scheduled,
        ``gpu_milli`` > 1000 ...), naming the file, row, line, column and value.
    """
    check_sizes(chunksize, limit)
    file = existing_file(path)
    ctx = RowContext(file.name, header_lines=1)
    dtypes = {"name": str, "gpu_spec": str, "qos": str, "pod_phase": str}
    chunks = read_csv_chunks(
        file,
        chunksize=chunksize,
        limit=limit,
        dtype=dtypes,
        keep_default_na=False,
        na_values={"scheduled_time": [""], "deletion_time": [""], "creation_time": [""]},
    )
    return finish(
        chunks,
        lambda raw: _convert(raw, ctx),
        chunked=chunksize is not None,
        sort_column="submit_time_s" if sort else None,
    )


def load_openb_nodes(path: PathLike) -> pd.DataFrame:
    """Load an openb node list (``openb_node_list_*.csv``) as a canonical node table.

    Parameters
    ----------
    path
        ``openb_node_list_gpu_node.csv`` or ``openb_node_list_all_node.csv``.

    Returns
    -------
    pandas.DataFrame
        Canonical node table; ``cpu_milli`` and ``memory_mib`` are the node capacities.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    TraceFormatError
        For a bad value, naming the file, row, line, column and value.
    """
    file = existing_file(path)
    ctx = RowContext(file.name, header_lines=1)
    raw = pd.read_csv(file, dtype={"sn": str, "model": str}, keep_default_na=False)
    for col in ("sn", "cpu_milli", "memory_mib", "gpu", "model"):
        if col not in raw.columns:
            raise ctx.error(col, "column is missing from the header", None, list(raw.columns))
    ctx.fail_first(raw["sn"], raw["sn"].eq(""), "sn", "is missing")
    gpus = ctx.ints(raw["gpu"], "gpu", min_value=0)
    model = raw["model"].astype(str)
    ctx.fail_first(
        raw["model"],
        (gpus > 0) & model.eq("").to_numpy(),
        "model",
        "is missing for a node with GPUs",
    )
    return node_frame(
        raw.index,
        {
            "node_id": raw["sn"],
            "gpu_type": model,
            "num_gpus": gpus,
            "gpu_memory_gib": model.map(dict(_GPU_MEMORY_GIB)).astype(float).to_numpy(),
            "cpu_milli": ctx.floats(raw["cpu_milli"], "cpu_milli", min_value=0.0),
            "memory_mib": ctx.floats(raw["memory_mib"], "memory_mib", min_value=0.0),
        },
    )
