"""Scheduling policies of the simulator and their registry.

A policy orders the waiting queue with a *static* key (a waiting job's key never changes
while it waits) and acts on a :class:`~solver.sim.engine.Simulation` when one of its
triggers fires. Baselines (:data:`BASELINES`):

=================  ====================================================================
name               rule
=================  ====================================================================
``fifo``           arrival order, first-fit, head-of-line blocking
``fifo-backfill``  arrival order, first-fit, later jobs may pass a blocked head
``sjf``            shortest trace duration first (oracle knowledge), first-fit, backfill
``las``            Tiresias-style discretised 2D least-attained-service: queue level by
                   attained GPU-seconds (thresholds 1 and 10 GPU-hours), FIFO inside a
                   level; at every round each of the first 32 waiting jobs preempts
                   running jobs of a lower level when that frees enough GPUs of its types
``gavel``          Gavel-style heterogeneity-aware max throughput: jobs with the largest
                   fast/slow throughput ratio first, each on its fastest free GPU type
``best-fit``       arrival order, best-fit consolidation (a gang that fits one node waits
                   for one), backfill
``fgd``            arrival order, fragmentation gradient descent placement (ATC'23) with the
                   replayed workload's task classes as target workload, backfill
=================  ====================================================================

``solve:<method>`` (one per :func:`solver.methods.method_names`) builds a snapshot
:class:`~solver.model.Instance` at each round and applies the decision of the same
:func:`solver.solve` a scheduler calls (starts, migrations, preemptions, power caps,
powered-down nodes with ``power_down``). GPUs held by inference-service replicas appear in
the snapshot as non-preemptible running jobs, so the solver plans around them; CPU-only
tasks (which the snapshot model cannot express) are placed first fit after the decision.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Protocol

from solver.model import FractionalTask, Instance, ObjectiveWeights, Running, TrainingJob
from solver.sim.capacity import Placer, Slot, best_fit, first_fit, make_fgd
from solver.sim.workload import JobState, SimJob

if TYPE_CHECKING:
    from solver.sim.engine import RoundStat, Simulation

__all__ = ["BASELINES", "Policy", "QueuePolicy", "SolvePolicy", "make_policy", "policy_names"]

Key = Callable[[SimJob], tuple[float, ...]]
#: Tiresias queue thresholds on attained service (GPU-seconds).
LAS_THRESHOLDS_GPU_S: Final[tuple[float, ...]] = (3600.0, 36000.0)
#: Waiting jobs (highest priority first) that may preempt running ones at each LAS round.
LAS_PREEMPT_HEAD: Final[int] = 32


class Policy(Protocol):
    """What the engine needs from a policy."""

    @property
    def name(self) -> str:
        """Policy name as given to :func:`make_policy`."""
        ...

    @property
    def triggers(self) -> frozenset[str]:
        """Events that call :meth:`schedule`: ``arrival``, ``completion``, ``round``."""
        ...

    def key(self, job: SimJob) -> tuple[float, ...]:
        """Static queue key of a waiting job (smaller runs first)."""
        ...

    def schedule(self, sim: Simulation, periodic: bool) -> RoundStat | None:
        """Act on ``sim`` at ``sim.now_s``; ``periodic`` is True at round boundaries."""
        ...


def fifo_key(job: SimJob) -> tuple[float, ...]:
    return (job.submit_s, job.index)


def sjf_key(job: SimJob) -> tuple[float, ...]:
    return (job.duration_s, job.submit_s, job.index)


def las_level(attained_gpu_s: float) -> int:
    """Tiresias queue of a job with ``attained_gpu_s`` of service (0 = highest priority)."""
    return sum(attained_gpu_s >= t for t in LAS_THRESHOLDS_GPU_S)


def las_key(job: SimJob) -> tuple[float, ...]:
    return (las_level(job.attained_gpu_s), job.submit_s, job.index)


def gavel_key(job: SimJob) -> tuple[float, ...]:
    speeds = job.throughput.values()
    ratio = max(speeds) / min(speeds) if speeds else 1.0
    return (-ratio, job.submit_s, job.index)


def cluster_order(sim: Simulation, job: SimJob) -> list[int]:
    return sorted(job.throughput)


def fastest_first(sim: Simulation, job: SimJob) -> list[int]:
    return sorted(job.throughput, key=lambda k: (-job.throughput[k], k))


@dataclass
class QueuePolicy:
    """Queue order + placement rule (+ optional LAS preemption), no solver."""

    name: str
    key_fn: Key
    placer: Placer | None = None  # None: FGD built from the replayed workload
    blocking: bool = False
    consolidate: bool = False
    preemptive: bool = False
    type_order: Callable[[Simulation, SimJob], list[int]] = cluster_order
    triggers: frozenset[str] = frozenset({"arrival", "completion"})

    def key(self, job: SimJob) -> tuple[float, ...]:
        return self.key_fn(job)

    def _placer(self, sim: Simulation) -> Placer:
        if self.placer is None:
            self.placer = make_fgd(sim.frag_model)
        return self.placer

    def place(self, sim: Simulation, job: SimJob) -> Slot | None:
        return self._placer(sim)(sim.cap, job, self.type_order(sim, job), self.consolidate)

    def schedule(self, sim: Simulation, periodic: bool) -> RoundStat | None:
        from solver.sim.engine import RoundStat

        t0 = time.perf_counter()
        started: list[SimJob] = []
        if self.preemptive and periodic:
            started += self._preempt_pass(sim)
        fits: Callable[[int, int], bool] = (lambda n, m: True) if self.blocking else sim.fits_free
        for job in sim.queue.scan(fits):
            if job.state != JobState.WAITING:
                continue
            slot = self.place(sim, job)
            if slot is None:
                if self.blocking:
                    break
                continue
            sim.start(job, slot)
            started.append(job)
        for job in started:
            sim.queue.remove(job)
        return RoundStat(sim.now_s, time.perf_counter() - t0, "", len(started))

    def _preempt_pass(self, sim: Simulation) -> list[SimJob]:
        """Let waiting jobs displace running jobs of a strictly lower priority level."""
        started: list[SimJob] = []

        def now_key(j: SimJob) -> tuple[float, ...]:
            attained = j.attained_gpu_s + j.gpu_demand * (sim.now_s - j.run_start_s)
            return (las_level(attained), j.submit_s, j.index)

        head = list(itertools.islice(sim.queue.scan(lambda n, m: True), LAS_PREEMPT_HEAD))
        if not head or not sim.running:
            return started
        levels = {r.index: now_key(r) for r in sim.running.values()}
        max_level = max(k[0] for k in levels.values())
        ranked = sorted(sim.running.values(), key=lambda r: levels[r.index], reverse=True)
        for job in head:
            level = self.key(job)[0]
            if level >= max_level:
                break  # the head is in key order: no later job outranks a running one
            slot = self.place(sim, job)
            if slot is None:
                victims = [r for r in ranked if r.state == JobState.RUNNING and levels[r.index][0] > level
                           and r.type_index in job.throughput]
                freeable = sum(len(r.gpus) * r.milli for r in victims)
                free = int(sim.cap.free_milli[sim.cap.gpus_of(job.throughput)].sum())
                if not victims or freeable + free < job.num_gpus * job.milli:
                    continue
                for r in victims:
                    sim.preempt(r)
                    slot = self.place(sim, job)
                    if slot is not None:
                        break
            if slot is not None:
                sim.start(job, slot)
                started.append(job)
        return started


@dataclass
class SolvePolicy:
    """Each round: snapshot :class:`Instance` -> :func:`solver.solve` -> apply the decision."""

    method: str
    triggers: frozenset[str] = frozenset({"arrival", "completion", "round"})

    @property
    def name(self) -> str:
        return f"solve:{self.method}"

    def key(self, job: SimJob) -> tuple[float, ...]:
        return fifo_key(job)

    def snapshot(self, sim: Simulation) -> tuple[Instance, dict[str, SimJob]]:
        """The snapshot problem at ``sim.now_s``: running jobs with their remaining work and
        GPUs, plus the first ``max_pending`` waiting jobs in arrival order."""
        cfg = sim.config
        ci = sim.ci
        names = [t.name for t in sim.cluster.gpu_types]
        training: list[TrainingJob] = []
        fractional: list[FractionalTask] = []
        jobs: dict[str, SimJob] = {}
        waiting = [j for j in sim.queue.jobs() if j.num_gpus][:cfg.max_pending]
        for job in [*sorted(sim.running.values(), key=lambda j: j.index), *waiting]:
            if not job.num_gpus:
                continue
            running = None
            if job.state == JobState.RUNNING:
                running = Running(gpus=tuple(ci.gpu_ids[g] for g in job.gpus), power_cap_w=job.cap_w,
                                  migration_cost_s=cfg.migration_cost_s, remaining_work=sim.remaining_now(job),
                                  started_s=job.first_start_s or 0.0)
            jobs[job.job_id] = job
            allowed = tuple(names[k] for k in sorted(job.throughput))
            if job.whole:
                training.append(TrainingJob(
                    id=job.job_id, num_gpus=job.num_gpus, work=job.work,
                    throughput_per_gpu=tuple((names[k], v) for k, v in sorted(job.throughput.items())),
                    memory_gib=0.0, tier_slowdown=cfg.tier_slowdown, arrival_s=job.submit_s,
                    deadline_s=job.deadline_s, priority=job.priority, running=running))
            else:
                remaining = sim.remaining_now(job) if running else job.remaining
                fractional.append(FractionalTask(
                    id=job.job_id, gpu_milli=job.milli, memory_gib=0.0, duration_s=remaining,
                    gpu_types=allowed if len(allowed) < len(names) else (), priority=job.priority,
                    arrival_s=job.submit_s, running=running))
        for st in sim.services:  # GPUs held by service replicas: fixed, non-preemptible stand-ins
            for r, (_, gpus) in enumerate(st.replicas):
                training.append(TrainingJob(
                    id=f"{st.spec.service.id}/replica{r}", num_gpus=len(gpus), work=1.0,
                    throughput_per_gpu=((names[st.type_index], 1.0),), memory_gib=0.0,
                    preemptible=False, running=Running(gpus=tuple(ci.gpu_ids[g] for g in gpus))))
        objective = ObjectiveWeights(horizon_s=cfg.round_s, pue=cfg.pue, allow_power_down=cfg.power_down)
        inst = sim.base.replace(name=f"sim@{sim.now_s:.0f}", training_jobs=tuple(training),
                                fractional_tasks=tuple(fractional), objective=objective, now_s=sim.now_s)
        return inst, jobs

    def schedule(self, sim: Simulation, periodic: bool) -> RoundStat | None:
        from solver.sim.engine import RoundStat
        from solver.solve import solve

        inst, jobs = self.snapshot(sim)
        result = solve(inst, self.method, time_limit_s=sim.config.time_limit_s, seed=sim.config.seed)
        stat = RoundStat(sim.now_s, result.runtime_s, result.status.value, 0)
        started: list[SimJob] = []
        if result.decision is not None:
            ci = sim.ci
            placed = {p.job: p for p in result.decision.placements}
            moves: list[tuple[SimJob, Slot, float]] = []
            for jid, job in jobs.items():
                p = placed.get(jid)
                if job.state != JobState.RUNNING:
                    continue
                if p is None:
                    sim.preempt(job)
                    continue
                gpus = tuple(ci.gpu_index[g] for g in p.gpus)
                if set(gpus) != set(job.gpus):
                    sim.release_for_move(job)
                    moves.append((job, (int(sim.cap.gpu_node[gpus[0]]), gpus), p.power_cap_w))
                else:
                    sim.set_cap(job, p.power_cap_w)
            for job, slot, cap_w in moves:
                sim.finish_move(job, slot, cap_w)
            for jid, job in jobs.items():
                p = placed.get(jid)
                if p is None or job.state != JobState.WAITING:
                    continue
                gpus = tuple(ci.gpu_index[g] for g in p.gpus)
                sim.start(job, (int(sim.cap.gpu_node[gpus[0]]), gpus), p.power_cap_w)
                started.append(job)
            if sim.config.power_down:
                index = {n.id: v for v, n in enumerate(sim.cluster.nodes)}
                sim.set_powered_off({index[n] for n in result.decision.powered_off_nodes})
        for job in [j for j in sim.queue.jobs() if not j.num_gpus]:  # CPU-only tasks: first fit
            cpu_slot = first_fit(sim.cap, job, [], False)
            if cpu_slot is not None:
                sim.start(job, cpu_slot)
                started.append(job)
        for job in started:
            sim.queue.remove(job)
        stat.started = len(started)
        return stat


#: Baseline policy name -> factory.
BASELINES: Final[Mapping[str, Callable[[], Policy]]] = MappingProxyType({
    "fifo": lambda: QueuePolicy("fifo", fifo_key, first_fit, blocking=True),
    "fifo-backfill": lambda: QueuePolicy("fifo-backfill", fifo_key, first_fit),
    "sjf": lambda: QueuePolicy("sjf", sjf_key, first_fit),
    "las": lambda: QueuePolicy("las", las_key, first_fit, preemptive=True,
                               triggers=frozenset({"arrival", "completion", "round"})),
    "gavel": lambda: QueuePolicy("gavel", gavel_key, first_fit, type_order=fastest_first),
    "best-fit": lambda: QueuePolicy("best-fit", fifo_key, best_fit, consolidate=True),
    "fgd": lambda: QueuePolicy("fgd", fifo_key, None),
})

#: ``family:argument`` policies: ``solve:<method>``.
FAMILIES: Final[Mapping[str, Callable[[str], Policy]]] = MappingProxyType({"solve": SolvePolicy})


def policy_names() -> list[str]:
    """Baselines plus ``solve:<method>`` for every available solve method."""
    from solver.methods import method_names

    return [*BASELINES, *(f"solve:{m}" for m in method_names())]


def make_policy(name: str) -> Policy:
    """A fresh policy object; ``ValueError`` naming the known policies otherwise."""
    if name in BASELINES:
        return BASELINES[name]()
    family, sep, arg = name.partition(":")
    if sep and family in FAMILIES:
        from solver.methods import get_method

        get_method(arg)  # raises ValueError listing the methods
        return FAMILIES[family](arg)
    raise ValueError(f"unknown policy '{name}'; known: {', '.join(policy_names())}")
