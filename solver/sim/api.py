"""The Python entry point :func:`simulate` and the outputs of a replay."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from solver.sim.carbon import CarbonIntensity
from solver.sim.cluster import SimCluster, load_sim_cluster
from solver.sim.engine import RoundStat, SimConfig, Simulation
from solver.sim.inference import ServiceLoad
from solver.sim.metrics import job_table, summarize
from solver.sim.policies import Policy, make_policy
from solver.sim.workload import jobs_from_table

__all__ = ["SimResult", "simulate", "write_outputs"]


@dataclass
class SimResult:
    """Per-job table, summary, event log, timeline and scheduling rounds of a replay."""

    jobs: pd.DataFrame
    summary: dict[str, Any]
    events: list[dict[str, Any]]
    timeline: pd.DataFrame
    rounds: list[RoundStat]


def simulate(
    trace: str | pd.DataFrame,
    cluster: str | Path | SimCluster,
    policy: str | Policy,
    config: SimConfig | None = None,
    *,
    carbon: CarbonIntensity | None = None,
    throughputs: pd.DataFrame | None = None,
    services: Sequence[ServiceLoad] = (),
    **overrides: Any,
) -> SimResult:
    """Replay ``trace`` on ``cluster`` with ``policy``.

    Parameters
    ----------
    trace
        A canonical job table or a ``FORMAT:PATH`` spec for :func:`solver.traces.load_trace`.
    cluster
        A :class:`SimCluster`, a cluster spec file or a node table ``FORMAT:PATH``
        (see :func:`solver.sim.cluster.load_sim_cluster`).
    policy
        A name from :func:`solver.sim.policies.policy_names` or a policy object.
    config
        Replay settings; keyword ``overrides`` replace single fields.
    carbon
        Hourly carbon intensity for the carbon metric.
    throughputs
        Per-type throughputs (:func:`solver.traces.load_gavel_throughputs`) for jobs with
        ``work_steps`` but no duration (Gavel traces).
    services
        Inference services following their request load (:mod:`solver.sim.inference`).

    Returns
    -------
    SimResult
        Everything but ``summary["timing"]`` is deterministic for a given input and seed.
    """
    cfg = replace(config or SimConfig(), **overrides)
    if isinstance(trace, str):
        from solver.traces import load_trace

        table = load_trace(trace, limit=None)
    else:
        table = trace
    sim_cluster = cluster if isinstance(cluster, SimCluster) else load_sim_cluster(cluster)
    workload = jobs_from_table(table, sim_cluster, reference=cfg.reference_gpu_type, start_s=cfg.start_s,
                               until_s=cfg.until_s, limit=cfg.limit, throughputs=throughputs)
    pol = make_policy(policy) if isinstance(policy, str) else policy
    sim = Simulation(sim_cluster, workload, cfg, pol.key, carbon, services)
    t0 = time.perf_counter()
    sim.run(pol)
    wall = time.perf_counter() - t0
    gpu_ids = sim.ci.gpu_ids
    events = [{"t_s": t, "event": ev, "job": j, "gpus": [gpu_ids[g] for g in gpus], "milli": int(m)}
              for t, ev, j, gpus, m in sim.log]
    timeline = pd.DataFrame(sim.acc.timeline, columns=["t_s", "busy_gpus", "waiting", "running"])
    return SimResult(job_table(sim), summarize(sim, pol.name, wall), events, timeline, sim.rounds)


def write_outputs(result: SimResult, directory: str | Path, *, plot: bool = True) -> list[Path]:
    """Write ``jobs.csv``, ``events.jsonl``, ``summary.json``, ``timeline.csv`` and ``timeline.png``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "jobs.csv", out / "events.jsonl", out / "summary.json", out / "timeline.csv"]
    result.jobs.to_csv(paths[0], index=False)
    with paths[1].open("w") as fh:
        for e in result.events:
            fh.write(json.dumps(e, separators=(",", ":")) + "\n")
    paths[2].write_text(json.dumps(result.summary, indent=2, sort_keys=True) + "\n")
    result.timeline.to_csv(paths[3], index=False)
    if plot and len(result.timeline):
        paths.append(_plot(result, out / "timeline.png"))
    return paths


def _plot(result: SimResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tl = result.timeline
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(9, 5))
    hours = tl["t_s"] / 3600.0
    ax1.step(hours, tl["busy_gpus"], where="post", lw=0.8)
    ax1.axhline(result.summary["cluster"]["gpus"], color="grey", ls="--", lw=0.8)
    ax1.set_ylabel("busy GPUs")
    ax2.step(hours, tl["waiting"], where="post", lw=0.8, color="tab:red")
    ax2.set_ylabel("waiting jobs")
    ax2.set_xlabel("time (h)")
    fig.suptitle(f"policy {result.summary['policy']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
