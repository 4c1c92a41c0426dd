r"""Simulated jobs: a canonical job table turned into mutable job records.

Work model
----------
A training job's work is measured in *reference GPU-seconds*: the trace duration
:math:`D` on :math:`n` GPUs of the reference type gives :math:`W = n D`. The per-GPU
throughput on type :math:`k` is the bf16 TFLOP/s ratio :math:`\theta_k = F_k / F_{ref}`
(documented default when a trace has no per-type throughputs), so on the reference type at
full power and tier 0 the job runs for exactly its trace duration. The reference type is the
cluster's most numerous GPU type unless given. A fractional task (``gpu_milli`` < 1000) runs
for its trace duration wherever it is placed, as :func:`solver.compiled.fractional_terms`
assumes. ``cpu`` rows are kept only when the cluster knows its CPU capacity.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import pandas as pd

from solver.sim.cluster import SimCluster

__all__ = ["JobState", "SimJob", "Workload", "jobs_from_table", "reference_type"]


class JobState(IntEnum):
    """Life cycle of a simulated job."""

    PENDING = 0  # not yet arrived
    WAITING = 1
    RUNNING = 2
    DONE = 3
    UNSCHEDULABLE = 4


@dataclass(eq=False)
class SimJob:
    """One job of the replay, with its static trace data and its mutable progress.

    ``work`` is in reference GPU-seconds (fractional and CPU tasks: seconds);
    ``throughput`` maps a type index to the per-GPU throughput :math:`\\theta_k`.
    """

    index: int
    job_id: str
    kind: str
    submit_s: float
    num_gpus: int
    milli: int
    work: float
    duration_s: float
    throughput: dict[int, float]
    priority: float = 1.0
    deadline_s: float | None = None
    cpu_milli: float = 0.0
    memory_mib: float = 0.0
    user: str = ""
    # dynamic state
    state: JobState = JobState.PENDING
    remaining: float = 0.0
    attained_gpu_s: float = 0.0
    gpus: tuple[int, ...] = ()
    type_index: int = -1
    cap_w: float = 0.0
    rate: float = 0.0
    power_w: float = 0.0
    progress_from_s: float = 0.0
    run_start_s: float = 0.0
    version: int = 0
    first_start_s: float | None = None
    end_s: float | None = None
    preemptions: int = 0
    migrations: int = 0
    tiers: list[int] = field(default_factory=list)

    @property
    def whole(self) -> bool:
        """True for whole-GPU gangs (``milli`` = 1000)."""
        return self.milli >= 1000

    @property
    def gpu_demand(self) -> float:
        """GPUs requested: ``num_gpus`` x ``milli`` / 1000."""
        return self.num_gpus * self.milli / 1000.0


@dataclass
class Workload:
    """Jobs of a replay plus what was dropped and why."""

    jobs: list[SimJob]
    reference_type: str
    dropped: dict[str, int]


def reference_type(cluster: SimCluster) -> str:
    """The most numerous GPU type of the cluster (ties: first in node order)."""
    counts: Counter[str] = Counter()
    for n in cluster.nodes:
        counts[n.gpu_type] += n.gpu_count
    return counts.most_common(1)[0][0]


def jobs_from_table(
    table: pd.DataFrame,
    cluster: SimCluster,
    *,
    reference: str | None = None,
    start_s: float | None = None,
    until_s: float | None = None,
    limit: int | None = None,
    throughputs: pd.DataFrame | None = None,
) -> Workload:
    """Convert a canonical job table into :class:`SimJob` records sorted by submission.

    Jobs without a duration, of kind ``inference``, ``cpu`` jobs when the cluster has no CPU
    capacity, and jobs submitted outside ``[start_s, until_s)`` are dropped and counted.
    Jobs no GPU type of the cluster can host stay in the list and are marked
    ``UNSCHEDULABLE`` when they arrive.

    ``throughputs`` (:func:`solver.traces.load_gavel_throughputs`) gives per-type
    throughputs to jobs whose ``model`` and ``num_gpus`` it lists (consolidated rows): then
    :math:`W` = ``work_steps`` and :math:`\\theta_k` = steps/s on type :math:`k` divided by
    the GPU count; their ``duration_s`` becomes the run time on the fastest type.
    """
    ref = reference or reference_type(cluster)
    types = {t.name: k for k, t in enumerate(cluster.gpu_types)}
    if ref not in types:
        raise ValueError(f"reference GPU type {ref!r} is not in the cluster ({sorted(types)})")
    ref_tflops = cluster.gpu_types[types[ref]].bf16_tflops
    theta_all = {k: t.bf16_tflops / ref_tflops for k, t in enumerate(cluster.gpu_types)}
    cpu_known = bool(cluster.node_cpu_milli) and all(math.isfinite(c) for c in cluster.node_cpu_milli)
    sub = table.sort_values("submit_time_s", kind="stable")
    dropped: Counter[str] = Counter()
    submit = sub["submit_time_s"].to_numpy(dtype=float)
    keep = np.ones(len(sub), dtype=bool)
    if start_s is not None:
        keep &= submit >= start_s
    if until_s is not None:
        keep &= submit < until_s
    dropped["outside_window"] = int((~keep).sum())
    sub = sub[keep]
    extras = {c: sub[c].to_numpy(dtype=float) if c in sub.columns else np.zeros(len(sub))
              for c in ("cpu_milli", "memory_mib")}
    jobs: list[SimJob] = []
    cols = [sub[c].to_numpy() for c in ("job_id", "kind", "submit_time_s", "duration_s", "num_gpus", "gpu_milli",
                                        "gpu_types", "priority", "deadline_s", "user")]
    table_theta = _throughput_table(throughputs, cluster, types)
    models = sub["model"].to_numpy()
    steps = sub["work_steps"].to_numpy(dtype=float)
    for i, (jid, kind, sub_s, dur, n, milli, gtypes, prio, dl, user) in enumerate(zip(*cols, strict=True)):
        if limit is not None and len(jobs) >= limit:
            break
        kind = str(kind)
        if kind == "inference":
            dropped["inference_rows"] += 1
            continue
        if kind == "cpu" and not cpu_known:
            dropped["cpu_without_cpu_capacity"] += 1
            continue
        profiled = table_theta.get((str(models[i]), int(n)))
        if profiled is not None and math.isfinite(steps[i]):
            jobs.append(SimJob(
                index=len(jobs), job_id=str(jid), kind=kind, submit_s=float(sub_s), num_gpus=int(n), milli=int(milli),
                work=float(steps[i]), duration_s=float(steps[i]) / (int(n) * max(profiled.values())),
                throughput=dict(profiled), priority=float(prio),
                deadline_s=None if not math.isfinite(float(dl)) else float(dl), user=str(user),
                remaining=float(steps[i])))
            continue
        if not math.isfinite(float(dur)):
            dropped["no_duration"] += 1
            continue
        allowed = [cluster.type_name(g) for g in str(gtypes).split("|") if g] if gtypes else None
        if allowed is None:
            theta = dict(theta_all)
        else:
            theta = {types[a]: theta_all[types[a]] for a in allowed if a is not None}
        n_gpus, m = int(n), int(milli)
        work = float(dur) if kind in ("fractional", "cpu") else float(dur) * n_gpus
        cpu = float(extras["cpu_milli"][i]) if cpu_known else 0.0
        mem = float(extras["memory_mib"][i]) if cpu_known else 0.0
        jobs.append(SimJob(
            index=len(jobs), job_id=str(jid), kind=kind, submit_s=float(sub_s), num_gpus=n_gpus, milli=m,
            work=work, duration_s=float(dur), throughput=theta, priority=float(prio),
            deadline_s=None if not math.isfinite(float(dl)) else float(dl), cpu_milli=cpu, memory_mib=mem,
            user=str(user), remaining=work))
    return Workload(jobs, ref, {k: v for k, v in dropped.items() if v})


def _throughput_table(throughputs: pd.DataFrame | None, cluster: SimCluster,
                      types: dict[str, int]) -> dict[tuple[str, int], dict[int, float]]:
    """(job type, GPUs) -> {type index: per-GPU steps/s} from a Gavel throughput table."""
    out: dict[tuple[str, int], dict[int, float]] = {}
    if throughputs is None:
        return out
    rows = throughputs[throughputs["consolidated"]]
    for job_type, scale, gpu, value in zip(rows["job_type"], rows["scale_factor"], rows["gpu_type"],
                                           rows["throughput_steps_per_s"], strict=True):
        name = cluster.type_name(str(gpu))
        if name is None or not value > 0:
            continue
        out.setdefault((str(job_type), int(scale)), {})[types[name]] = float(value) / int(scale)
    return out
