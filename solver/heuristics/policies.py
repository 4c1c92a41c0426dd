r"""Job orders and option scores of the greedy variants.

Each policy is data for :func:`~solver.heuristics.greedy.greedy_decision`: an order key
over jobs and, optionally, an option score. :data:`POLICIES` maps method names to them,
so adding a variant is adding a row.

* **EDF** (earliest deadline first): jobs by deadline (jobs without one last), then
  priority (high first), then size (large first).
* **SJF** (shortest job first): jobs by their shortest possible run time
  :math:`W / (n \max_k \theta_k)` for training, the duration of a fractional task and
  the horizon for an inference service (it serves for the whole horizon).
* **energy-greedy**: the default order; among the options of a job, the fewest joules
  for the whole job (energy to solution, not truncated at the horizon, plus the idle
  energy of a node it powers on) among those that meet the SLO or deadline; an option
  that misses it is scored by its exact cost plus one more SLO penalty, so it is taken
  only when no on-time option exists and placing it still beats leaving the job out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from solver.compiled import J_PER_KWH, CompiledInstance, Option
from solver.heuristics.greedy import OrderKey, default_order
from solver.model import FractionalTask, InferenceService, Job, TrainingJob

__all__ = ["POLICIES", "Policy", "edf_order", "energy_score", "shortest_duration_s", "sjf_order"]

OptionScore = Callable[[CompiledInstance, Option, int, float], float]


def _size(job: Job) -> float:
    if isinstance(job, FractionalTask):
        return job.gpu_milli / 1000.0
    return float(getattr(job, "num_gpus", 1))


def edf_order(job: Job) -> tuple[float, ...]:
    """Deadline asc (none last), priority desc, GPUs desc."""
    deadline = job.deadline_s if isinstance(job, TrainingJob) and job.deadline_s is not None else math.inf
    return (deadline, -job.priority, -_size(job))


def shortest_duration_s(job: Job, horizon_s: float) -> float:
    """Shortest run time of ``job`` in seconds (fastest type, full gang, no cap)."""
    if isinstance(job, TrainingJob):
        best = max(theta for _, theta in job.throughput_per_gpu)
        return job.remaining_work / (job.num_gpus * best)
    if isinstance(job, FractionalTask):
        return job.duration_s
    assert isinstance(job, InferenceService)
    return horizon_s


def sjf_order(horizon_s: float) -> OrderKey:
    """Order key: shortest run time asc, priority desc."""

    def key(job: Job) -> tuple[float, ...]:
        return (shortest_duration_s(job, horizon_s), -job.priority)

    return key


def energy_score(ci: CompiledInstance, opt: Option, tier: int, extra_node_kwh: float) -> float:
    """Score of an option for the energy-greedy policy (lower is better; see the module doc)."""
    inst = ci.instance
    w = inst.objective
    t = opt.terms[tier][0]
    job_kwh = w.pue * t.power_w * t.duration_s / J_PER_KWH
    if not t.late:
        return w.energy_per_kwh * (job_kwh + extra_node_kwh)
    return opt.cost(inst, tier, False) + w.energy_per_kwh * extra_node_kwh + w.slo_violation


@dataclass(frozen=True)
class Policy:
    """A greedy variant: how jobs are ordered and options scored (None: exact cost)."""

    order: Callable[[CompiledInstance], OrderKey]
    score: OptionScore | None = None


POLICIES: dict[str, Policy] = {
    "edf": Policy(lambda ci: edf_order),
    "sjf": Policy(lambda ci: sjf_order(ci.instance.objective.horizon_s)),
    "energy-greedy": Policy(lambda ci: default_order, energy_score),
}
