"""Pollux (OSDI'21) / Sia (SOSP'23) loaders: workload job lists and step-time profiles.

Workloads (``*_workloads/**/workload-N.csv``: ``name, time, application, num_replicas,
batch_size``) map to the canonical job table: ``job_id`` = ``name``, ``kind`` = ``"training"``,
``submit_time_s`` = ``time``, ``duration_s`` = NaN (jobs run to completion; use the profiles),
``num_gpus`` = ``num_replicas`` (the *initial* allocation: the jobs are elastic),
``gpu_milli`` = 1000, ``model`` = ``application``; extra column ``batch_size`` (int, initial
total batch size).

Profiles (:func:`load_sia_profiles`) read ``<profiles>/<application>/placements-<cluster>.csv``
(``placement, local_bsz, step_time, sync_time``, column order varies between files, so they
are read by name) into one tidy table. The ``scalability-*.csv`` files hold the same
measurements indexed by node / replica count and the ``validation-*.csv`` files hold
per-epoch statistical-efficiency data; neither is read. The un-suffixed ``placements.csv``
(Pollux's original, identical to ``placements-aws.csv``) is used only when
``placements-aws.csv`` is absent, as cluster ``aws``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final, overload

import numpy as np
import pandas as pd

from solver.traces._io import (
    PathLike,
    RowContext,
    check_sizes,
    existing_dir,
    existing_file,
    finish,
    job_frame,
    read_csv_chunks,
)
from solver.traces.schema import TraceFormatError

__all__ = ["SIA_CLUSTER_GPU_TYPES", "load_sia", "load_sia_profiles"]

SIA_CLUSTER_GPU_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "aws": "T4",
        "azure": "V100",
        "dgx": "A100",
        "dgx-ext": "A100",
        "quad": "RTX6000",
        "rtx": "RTX2080Ti",
    }
)
"""GPU model of each profiled cluster (profile file suffix → GPU type)."""

PROFILE_COLUMNS: Final[tuple[str, ...]] = (
    "application",
    "cluster",
    "gpu_type",
    "placement",
    "num_nodes",
    "num_gpus",
    "local_bsz",
    "step_time_s",
    "sync_time_s",
)
"""Columns of :func:`load_sia_profiles`."""

_PLACEMENT = re.compile(r"^[0-9]+$")
_COLUMNS = ["name", "time", "application", "num_replicas", "batch_size"]


def _convert(raw: pd.DataFrame, ctx: RowContext) -> pd.DataFrame:
    missing = [c for c in _COLUMNS if c not in raw.columns]
    if missing:
        raise ctx.error(missing[0], "column is missing from the header", None, list(raw.columns))
    for col in ("name", "application"):
        ctx.fail_first(raw[col], raw[col].isna() | raw[col].eq(""), col, "is missing")
    df = job_frame(
        raw.index,
        {
            "job_id": raw["name"],
            "kind": "training",
            "submit_time_s": ctx.floats(raw["time"], "time", min_value=0.0),
            "num_gpus": ctx.ints(raw["num_replicas"], "num_replicas", min_value=1),
            "gpu_milli": 1000,
            "model": raw["application"],
        },
        extra={"batch_size": ctx.ints(raw["batch_size"], "batch_size", min_value=1)},
    )
    df.attrs = {"origin": None, "dropped": 0, "source": ctx.source}
    return df


@overload
def load_sia(
    path: PathLike, *, chunksize: None = None, limit: int | None = None, sort: bool = True
) -> pd.DataFrame: ...
@overload
def load_sia(
    path: PathLike, *, chunksize: int, limit: int | None = None, sort: bool = True
) -> Iterator[pd.DataFrame]: ...
@overload
def load_sia(
    path: PathLike, *, chunksize: int | None = None, limit: int | None = None, sort: bool = True
) -> pd.DataFrame | Iterator[pd.DataFrame]: ...
def load_sia(
    path: PathLike, *, chunksize: int | None = None, limit: int | None = None, sort: bool = True
) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Load one Pollux/Sia ``workload-N.csv`` as a canonical job table.

    Parameters
    ----------
    path
        Path of a workload file.
    chunksize
        If given, return an iterator of canonical tables of at most this many rows.
    limit
        Read only the first ``limit`` jobs.
    sort
        Sort by ``submit_time_s`` (stable); with ``chunksize`` only within each chunk.

    Returns
    -------
    pandas.DataFrame or Iterator[pandas.DataFrame]
        Canonical job table(s) with extra column ``batch_size``.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    TraceFormatError
        For a bad value, naming the file, row, line, column and value.
    """
    check_sizes(chunksize, limit)
    file = existing_file(path)
    ctx = RowContext(file.name, header_lines=1)
    chunks = read_csv_chunks(
        file, chunksize=chunksize, limit=limit, dtype={"name": str, "application": str}
    )
    return finish(
        chunks,
        lambda raw: _convert(raw, ctx),
        chunked=chunksize is not None,
        sort_column="submit_time_s" if sort else None,
    )


def _read_placements(file: Path, application: str, cluster: str) -> pd.DataFrame:
    ctx = RowContext(f"{application}/{file.name}", header_lines=1)
    raw = pd.read_csv(file, dtype={"placement": str})
    for col in ("placement", "local_bsz", "step_time", "sync_time"):
        if col not in raw.columns:
            raise ctx.error(col, "column is missing from the header", None, list(raw.columns))
    placement = raw["placement"].fillna("").astype(str).str.strip()
    ctx.fail_first(
        raw["placement"],
        ~placement.str.fullmatch(_PLACEMENT).to_numpy(dtype=bool),
        "placement",
        "must be a string of per-node GPU counts (digits)",
    )
    per_node = placement.map(lambda p: [int(c) for c in p])
    num_gpus = np.asarray(per_node.map(sum), dtype=np.int64)
    ctx.fail_first(raw["placement"], num_gpus < 1, "placement", "must use at least one GPU")
    return pd.DataFrame(
        {
            "application": application,
            "cluster": cluster,
            "gpu_type": SIA_CLUSTER_GPU_TYPES.get(cluster, cluster),
            "placement": placement.to_numpy(),
            "num_nodes": np.asarray(placement.str.len(), dtype=np.int64),
            "num_gpus": num_gpus,
            "local_bsz": ctx.ints(raw["local_bsz"], "local_bsz", min_value=1),
            "step_time_s": ctx.floats(raw["step_time"], "step_time", min_value=0.0),
            "sync_time_s": ctx.floats(raw["sync_time"], "sync_time", min_value=0.0),
        }
    )


def load_sia_profiles(directory: PathLike) -> pd.DataFrame:
    """Load the Sia/Pollux step-time profiles as one tidy table.

    Parameters
    ----------
    directory
        The ``profiles`` directory: one sub-directory per application, each holding
        ``placements-<cluster>.csv`` files.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PROFILE_COLUMNS`: ``application``, ``cluster`` (file suffix, e.g.
        ``azure``), ``gpu_type`` (:data:`SIA_CLUSTER_GPU_TYPES`; the suffix itself if unknown),
        ``placement`` (str of per-node GPU counts, e.g. ``"88"``), ``num_nodes`` (int, its
        length), ``num_gpus`` (int, its digit sum), ``local_bsz`` (int, per-GPU batch size),
        ``step_time_s`` (float, seconds per iteration), ``sync_time_s`` (float, seconds of
        gradient synchronisation within the step). Sorted by application, cluster, num_gpus,
        placement, local_bsz.

    Raises
    ------
    FileNotFoundError
        If ``directory`` is not a directory or holds no placement files.
    TraceFormatError
        For a bad value, naming the file, row, column and value.
    """
    root = existing_dir(directory)
    frames: list[pd.DataFrame] = []
    for app_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        app = app_dir.name
        suffixed = sorted(app_dir.glob("placements-*.csv"))
        for file in suffixed:
            cluster = file.name[len("placements-") : -len(".csv")]
            frames.append(_read_placements(file, app, cluster))
        plain = app_dir / "placements.csv"
        if plain.is_file() and not (app_dir / "placements-aws.csv").is_file():
            frames.append(_read_placements(plain, app, "aws"))
    if not frames:
        raise FileNotFoundError(f"{root}: no <application>/placements-*.csv files")
    df = pd.concat(frames, ignore_index=True)
    for col in ("application", "cluster", "gpu_type", "placement"):
        df[col] = df[col].astype(str)
    df = df.sort_values(
        ["application", "cluster", "num_gpus", "placement", "local_bsz"], kind="stable"
    ).reset_index(drop=True)
    if list(df.columns) != list(PROFILE_COLUMNS):  # pragma: no cover - built above
        raise TraceFormatError(str(root), "<columns>", "unexpected columns", value=list(df.columns))
    df.attrs = {"source": str(root)}
    return df
