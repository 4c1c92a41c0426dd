r"""Metrics of a replay, computed from the final job records and the engine's integrals.

- **JCT** of a completed job: :math:`t_{end} - t_{submit}`; average, p50, p95, p99 (linear
  interpolation between order statistics).
- **Queueing delay**: :math:`t_{first\ start} - t_{submit}` of every started job.
- **Makespan**: last completion minus first submission.
- **Deadline attainment**: share of jobs with a deadline that completed by it (unfinished
  jobs count as missed).
- **Energy** (kWh) and **carbon** (kg): the engine's time integrals, PUE included, idle
  power of powered nodes included.
- **GPU utilization**: :math:`\int \text{busy milli-GPU}\,dt / (1000\,G\,(t_{end} - t_{0}))`.
- **Fragmentation** (FGD's definition): the share of the free GPU capacity that tasks drawn
  from the workload's task classes cannot use, :math:`\sum_n F_n(M) / \sum_n \text{free}_n`,
  averaged over the sampled scheduling passes with free capacity.
- **Inference SLO attainment** (TTFT and TPOT): share of requests served within capacity,
  see :mod:`solver.sim.inference`.
- **Migrations**, **preemptions**; **solver time per round** (in the ``timing`` block, the only
  part of the summary that is not deterministic).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from solver.sim.engine import Simulation
from solver.sim.workload import JobState

__all__ = ["job_table", "summarize"]

J_PER_KWH = 3.6e6


def job_table(sim: Simulation) -> pd.DataFrame:
    """One row per replayed job (per-job CSV)."""
    names = [t.name for t in sim.cluster.gpu_types]
    rows: list[dict[str, Any]] = []
    for j in sim.jobs:
        start = j.first_start_s
        rows.append({
            "job_id": j.job_id, "kind": j.kind, "state": j.state.name.lower(), "submit_s": j.submit_s,
            "start_s": start, "end_s": j.end_s,
            "jct_s": None if j.end_s is None else j.end_s - j.submit_s,
            "queue_s": None if start is None else start - j.submit_s,
            "num_gpus": j.num_gpus, "gpu_milli": j.milli,
            "gpu_type": names[j.type_index] if j.type_index >= 0 else "",
            "trace_duration_s": j.duration_s, "attained_gpu_s": j.attained_gpu_s,
            "preemptions": j.preemptions, "migrations": j.migrations,
            "deadline_s": j.deadline_s,
            "deadline_met": None if j.deadline_s is None else (j.end_s is not None and j.end_s <= j.deadline_s + 1e-6),
        })
    return pd.DataFrame(rows)


def _pct(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def summarize(sim: Simulation, policy: str, wall_s: float) -> dict[str, Any]:
    """The summary JSON document of a replay."""
    jobs = sim.jobs
    done = [j for j in jobs if j.state == JobState.DONE]
    jct = np.array([j.end_s - j.submit_s for j in done if j.end_s is not None])
    queue = np.array([j.first_start_s - j.submit_s for j in jobs if j.first_start_s is not None])
    t0 = min((j.submit_s for j in jobs), default=0.0)
    if sim.config.start_s is not None:
        t0 = sim.config.start_s
    span = max(sim.now_s - t0, 1e-9)
    total_milli = len(sim.cap.free_milli) * 1000.0
    with_deadline = [j for j in jobs if j.deadline_s is not None]
    met = sum(1 for j in with_deadline
              if j.end_s is not None and j.deadline_s is not None and j.end_s <= j.deadline_s + 1e-6)
    frag = [f / free for _, f, free in sim.acc.frag_samples if free > 0]
    solver = np.array([r.solver_s for r in sim.rounds])
    statuses: dict[str, int] = {}
    for r in sim.rounds:
        if r.status:
            statuses[r.status] = statuses.get(r.status, 0) + 1
    counts = {s.name.lower(): sum(1 for j in jobs if j.state == s) for s in JobState}
    return {
        "policy": policy,
        "jobs": len(jobs),
        "dropped": dict(sim.workload.dropped),
        "states": counts,
        "completed": len(done),
        "reference_gpu_type": sim.workload.reference_type,
        "cluster": {"nodes": len(sim.cluster.nodes), "gpus": sim.cluster.num_gpus,
                    "gpu_types": sorted({n.gpu_type for n in sim.cluster.nodes})},
        "jct_s": {"mean": float(jct.mean()) if len(jct) else None, "p50": _pct(jct, 50), "p95": _pct(jct, 95),
                  "p99": _pct(jct, 99)},
        "queue_s": {"mean": float(queue.mean()) if len(queue) else None, "p50": _pct(queue, 50),
                    "p95": _pct(queue, 95), "p99": _pct(queue, 99)},
        "makespan_s": (max(j.end_s for j in done if j.end_s is not None) - t0) if done else None,
        "simulated_span_s": span,
        "deadlines": {"jobs": len(with_deadline), "met": met,
                      "attainment": met / len(with_deadline) if with_deadline else None},
        "energy_kwh": sim.acc.energy_j / J_PER_KWH,
        "carbon_kg": sim.acc.carbon_g / 1000.0 if sim.carbon is not None else None,
        "gpu_utilization": sim.acc.busy_milli_s / (total_milli * span),
        "mean_queue_length": sim.acc.queue_job_s / span,
        "fragmentation": {"mean_share": float(np.mean(frag)) if frag else None,
                          "samples": len(frag)},
        "inference": {st.spec.service.id: {
            "model": st.spec.service.model,
            "gpu_type": sim.cluster.gpu_types[st.type_index].name if st.type_index >= 0 else None,
            "requests": st.requests, "slo_attainment": st.requests_ok / st.requests if st.requests else None,
            "replica_hours": st.replica_s / 3600.0, "intervals": st.intervals,
            "intervals_short_of_replicas": st.short_intervals} for st in sim.services},
        "migrations": sum(j.migrations for j in jobs),
        "preemptions": sum(j.preemptions for j in jobs),
        "scheduling_passes": sim.passes,
        "solver_statuses": statuses,
        "timing": {"wall_s": wall_s, "rounds": len(sim.rounds),
                   "solver_s_total": float(solver.sum()) if len(solver) else 0.0,
                   "solver_s_per_round_mean": float(solver.mean()) if len(solver) else None,
                   "solver_s_per_round_p95": _pct(solver, 95),
                   "solver_s_per_round_max": float(solver.max()) if len(solver) else None},
    }
