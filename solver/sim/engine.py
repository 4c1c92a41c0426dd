r"""The event-driven trace-replay engine.

Events are arrivals, completions and scheduling rounds. All events at the same instant are
applied together (completions, then arrivals), then the policy is called once if one of its
triggers fired (:attr:`~solver.sim.policies.Policy.triggers`: ``arrival``, ``completion``,
``round``; rounds fall on multiples of ``round_s`` while work is waiting or running).

Progress model (the semantics of :func:`solver.compiled.training_terms`): a training job on
:math:`n` GPUs of type :math:`k` under cap :math:`c` at locality tier :math:`\ell` progresses
at

.. math:: r = \frac{n\,\theta_k}{s_k(c)\,\sigma_\ell} \quad \text{(work units per second)},

so it completes :math:`W_{rem} / r` seconds after it (re)starts. A restart after a
preemption or a migration first loses ``migration_cost_s`` (checkpoint and restore).
Fractional and CPU tasks run for their trace duration.

Energy integrates the cluster power over time, PUE included:

.. math:: E = \frac{\phi}{3.6\cdot 10^6} \int \Big[\sum_{v\ \mathrm{on}} (P^{host}_v + G_v P^{idle}_v)
          + \sum_{j\ \mathrm{running}} P^{extra}_j \Big] dt \quad [\mathrm{kWh}]

with :math:`P^{extra}_j` the active-minus-idle power of :func:`~solver.compiled.training_terms`
(fractional tasks: their share of it).
"""

from __future__ import annotations

import bisect
import heapq
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solver.compiled import CompiledInstance
from solver.model import DEFAULT_TIER_SLOWDOWN, Instance, LlmModel
from solver.sim.capacity import FULL, FragmentationModel, FreeCapacity, Slot
from solver.sim.carbon import CarbonIntensity
from solver.sim.cluster import SimCluster
from solver.sim.inference import ServiceLoad, ServiceState
from solver.sim.workload import JobState, SimJob, Workload

__all__ = ["SimConfig", "Simulation", "WaitQueue"]

COMPLETION, ARRIVAL = 0, 1
J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class SimConfig:
    """Knobs of a replay (times in seconds on the trace clock).

    Fragmentation is measured every ``frag_every`` scheduling passes; ``max_pending`` bounds
    the waiting jobs a ``solve()`` snapshot holds; with ``event_rounds`` False, round-based
    policies (``las``, ``solve:*``) act only at round boundaries, not on arrivals and completions.
    """

    round_s: float = 60.0
    start_s: float | None = None
    until_s: float | None = None
    limit: int | None = None
    seed: int = 0
    time_limit_s: float = 10.0
    migration_cost_s: float = 60.0
    pue: float = 1.2
    reference_gpu_type: str | None = None
    tier_slowdown: tuple[float, ...] = DEFAULT_TIER_SLOWDOWN
    max_pending: int = 64
    power_down: bool = False
    frag_every: int = 50
    progress: bool = False
    event_rounds: bool = True


@dataclass
class RoundStat:
    """One scheduling pass: time, solver wall time and (solve policies) status."""

    time_s: float
    solver_s: float
    status: str = ""
    started: int = 0


class WaitQueue:
    """Waiting jobs sorted by a static key, bucketed by demand (GPUs, milli).

    :meth:`scan` yields jobs in key order but skips buckets whose demand exceeds the free
    capacity, so a pass costs O(started + buckets) rather than O(queue).
    """

    def __init__(self, key: Callable[[SimJob], tuple[float, ...]]) -> None:
        self.key = key
        self.buckets: dict[tuple[int, int], list[tuple[tuple[float, ...], int, SimJob]]] = {}
        self.size = 0

    def push(self, job: SimJob) -> None:
        b = self.buckets.setdefault((job.num_gpus, job.milli), [])
        bisect.insort(b, (self.key(job), job.index, job), key=lambda e: (e[0], e[1]))
        self.size += 1

    def remove(self, job: SimJob) -> None:
        b = self.buckets[(job.num_gpus, job.milli)]
        k = (self.key(job), job.index)
        i = bisect.bisect_left(b, k, key=lambda e: (e[0], e[1]))
        assert b[i][2] is job
        del b[i]
        self.size -= 1

    def __len__(self) -> int:
        return self.size

    def jobs(self) -> list[SimJob]:
        """All waiting jobs in key order."""
        return [e[2] for e in sorted((e for b in self.buckets.values() for e in b), key=lambda e: (e[0], e[1]))]

    def scan(self, fits: Callable[[int, int], bool]) -> Iterator[SimJob]:
        """Jobs in key order among buckets with ``fits(num_gpus, milli)``; jobs started while
        scanning must be removed with :meth:`remove` only after the scan."""
        heap = [(b[0][0], b[0][1], size, 0) for size, b in self.buckets.items() if b]
        heapq.heapify(heap)
        while heap:
            _, _, size, pos = heapq.heappop(heap)
            if not fits(*size):
                continue
            b = self.buckets[size]
            yield b[pos][2]
            if pos + 1 < len(b):
                heapq.heappush(heap, (b[pos + 1][0], b[pos + 1][1], size, pos + 1))


@dataclass
class Accumulators:
    """Time integrals and counters of a replay."""

    energy_j: float = 0.0
    carbon_g: float = 0.0
    busy_milli_s: float = 0.0
    queue_job_s: float = 0.0
    frag_samples: list[tuple[float, float, float]] = field(default_factory=list)  # t, fragmented, free
    timeline: list[tuple[float, float, int, int]] = field(default_factory=list)  # t, busy GPUs, waiting, running


class Simulation:
    """State of one replay; policies act on it through :meth:`start`, :meth:`preempt`,
    :meth:`migrate` and :meth:`set_cap`."""

    def __init__(self, cluster: SimCluster, workload: Workload, config: SimConfig,
                 key: Callable[[SimJob], tuple[float, ...]], carbon: CarbonIntensity | None = None,
                 services: Sequence[ServiceLoad] = ()) -> None:
        self.cluster = cluster
        self.config = config
        self.jobs = workload.jobs
        self.workload = workload
        self.cap = FreeCapacity(cluster)
        self.base = Instance(name="sim", gpu_types=cluster.gpu_types, llm_models=cluster.llm_models,
                             nodes=cluster.nodes, links=cluster.links)
        self.ci = CompiledInstance(self.base)
        self.queue = WaitQueue(key)
        self.running: dict[int, SimJob] = {}
        self.now_s = 0.0
        self.events: list[tuple[float, int, int, int]] = []  # time, kind, job index, version
        self.log: list[tuple[float, str, str, tuple[int, ...], float]] = []  # t, event, job, gpus, milli
        self.rounds: list[RoundStat] = []
        self.acc = Accumulators()
        self.carbon = carbon
        self.node_off = np.zeros(len(cluster.nodes), dtype=bool)
        self.node_idle_w = np.array([self.ci.node_idle_power_w(v) for v in range(len(cluster.nodes))])
        self.idle_w = float(self.node_idle_w.sum())
        self.active_w = 0.0
        self.frag_model = FragmentationModel.from_jobs(self.jobs, len(cluster.gpu_types))
        self.passes = 0
        self.solver_s = 0.0
        self._slot: dict[int, Slot] = {}
        self.services = [ServiceState(sl) for sl in services]
        self._svc_next = [0 for _ in self.services]

    # ------------------------------------------------------------------ job actions
    def _rate(self, job: SimJob, gpus: tuple[int, ...], cap_w: float) -> tuple[float, float, int]:
        """Progress rate, extra power (W) and tier of ``job`` on ``gpus`` under ``cap_w``."""
        if not gpus:
            return 1.0, 0.0, 0
        t = int(self.cap.gpu_type[gpus[0]])
        gpu = self.cluster.gpu_types[t]
        if not job.whole:
            return 1.0, job.milli / FULL * (gpu.train_power_w(gpu.max_power_cap_w) - gpu.idle_w), 0
        tier = self.ci.tier(list(gpus)) if len(gpus) > 1 else 0
        rate = len(gpus) * job.throughput[t] / gpu.train_slowdown(cap_w) / self.config.tier_slowdown[tier]
        return rate, len(gpus) * (gpu.train_power_w(cap_w) - gpu.idle_w), tier

    def start(self, job: SimJob, slot: Slot, cap_w: float | None = None) -> None:
        """Start (or restart) a waiting job on ``slot`` at ``cap_w`` (default: the type's maximum)."""
        assert job.state == JobState.WAITING
        self.cap.take(job, slot)
        gpus = slot[1]
        if cap_w is None:
            cap_w = self.cluster.gpu_types[int(self.cap.gpu_type[gpus[0]])].max_power_cap_w if gpus else 0.0
        for v in {int(self.cap.gpu_node[g]) for g in gpus} | {slot[0]}:
            self._power_on(v)
        restart = job.first_start_s is not None
        self._run(job, gpus, cap_w, self.now_s + (self.config.migration_cost_s if restart else 0.0))
        job.state = JobState.RUNNING
        self.running[job.index] = job
        if job.first_start_s is None:
            job.first_start_s = self.now_s
        self._slot[job.index] = slot
        self.log.append((self.now_s, "start", job.job_id, gpus, float(job.milli)))

    def _run(self, job: SimJob, gpus: tuple[int, ...], cap_w: float, progress_from: float) -> None:
        rate, power, tier = self._rate(job, gpus, cap_w)
        job.gpus, job.cap_w, job.rate, job.power_w = gpus, cap_w, rate, power
        job.type_index = int(self.cap.gpu_type[gpus[0]]) if gpus else -1
        job.progress_from_s = progress_from
        job.run_start_s = self.now_s
        job.tiers.append(tier)
        self.active_w += power
        job.version += 1
        heapq.heappush(self.events, (progress_from + job.remaining / rate, COMPLETION, job.index, job.version))

    def _settle(self, job: SimJob) -> None:
        """Book the progress and attained service of a running job up to now."""
        dt = max(0.0, self.now_s - job.progress_from_s)
        job.remaining = max(0.0, job.remaining - job.rate * dt)
        job.progress_from_s = max(job.progress_from_s, self.now_s)
        job.attained_gpu_s += job.gpu_demand * (self.now_s - job.run_start_s)
        job.run_start_s = self.now_s
        self.active_w -= job.power_w

    def _stop(self, job: SimJob) -> Slot:
        self._settle(job)
        slot = self._slot.pop(job.index)
        self.cap.release(job, slot)
        del self.running[job.index]
        job.version += 1
        return slot

    def preempt(self, job: SimJob) -> None:
        """Stop a running job and put it back in the queue with its remaining work."""
        slot = self._stop(job)
        job.preemptions += 1
        job.state = JobState.WAITING
        self.queue.push(job)
        self.log.append((self.now_s, "preempt", job.job_id, slot[1], float(job.milli)))

    def release_for_move(self, job: SimJob) -> None:
        """First half of a migration: free the job's GPUs (call :meth:`finish_move` next)."""
        slot = self._stop(job)
        self.log.append((self.now_s, "migrate_out", job.job_id, slot[1], float(job.milli)))

    def finish_move(self, job: SimJob, slot: Slot, cap_w: float) -> None:
        """Second half of a migration: restart on ``slot`` after ``migration_cost_s``."""
        self.cap.take(job, slot)
        for v in {int(self.cap.gpu_node[g]) for g in slot[1]}:
            self._power_on(v)
        self._run(job, slot[1], cap_w, self.now_s + self.config.migration_cost_s)
        self.running[job.index] = job
        self._slot[job.index] = slot
        job.migrations += 1
        self.log.append((self.now_s, "migrate_in", job.job_id, slot[1], float(job.milli)))

    def set_cap(self, job: SimJob, cap_w: float) -> None:
        """Change the power cap of a running job (no restart)."""
        if abs(cap_w - job.cap_w) < 1e-9:
            return
        self._settle(job)
        job.tiers.pop()
        self._run(job, job.gpus, cap_w, job.progress_from_s)

    def set_powered_off(self, nodes: set[int]) -> None:
        """Power down idle nodes (only nodes without any work)."""
        for v in range(len(self.node_off)):
            want = v in nodes
            if want and not self.node_off[v] and self._node_idle(v):
                self.node_off[v] = True
                self.idle_w -= float(self.node_idle_w[v])
            elif not want:
                self._power_on(v)

    def _node_idle(self, v: int) -> bool:
        first, size = int(self.cap.node_first[v]), int(self.cap.node_size[v])
        return bool((self.cap.free_milli[first:first + size] == FULL).all())

    def _power_on(self, v: int) -> None:
        if self.node_off[v]:
            self.node_off[v] = False
            self.idle_w += float(self.node_idle_w[v])

    def remaining_now(self, job: SimJob) -> float:
        """Remaining work of a running job at the current time."""
        return max(0.0, job.remaining - job.rate * max(0.0, self.now_s - job.progress_from_s))

    def free_whole(self) -> int:
        return int(self.cap.node_full_free.sum())

    def fits_free(self, n: int, milli: int) -> bool:
        """Cheap necessary condition: enough free GPUs (whole) or milli-GPU (fractional)."""
        if milli >= FULL:
            return self.free_whole() >= n
        return self.cap.busy_milli + milli <= len(self.cap.free_milli) * FULL

    # ------------------------------------------------------------------ clock
    def _advance(self, t: float) -> None:
        dt = t - self.now_s
        if dt > 0:
            power_w = (self.idle_w + self.active_w) * self.config.pue
            self.acc.energy_j += power_w * dt
            if self.carbon is not None:
                self.acc.carbon_g += self.carbon.grams(power_w / 1000.0, self.now_s, t)
            self.acc.busy_milli_s += self.cap.busy_milli * dt
            self.acc.queue_job_s += len(self.queue) * dt
            for st in self.services:
                st.account(dt)
        self.now_s = t

    def _complete(self, job: SimJob) -> None:
        self._settle(job)
        job.remaining = 0.0
        slot = self._slot.pop(job.index)
        self.cap.release(job, slot)
        del self.running[job.index]
        job.state = JobState.DONE
        job.end_s = self.now_s
        job.version += 1
        self.log.append((self.now_s, "finish", job.job_id, slot[1], float(job.milli)))

    def _arrive(self, job: SimJob) -> None:
        if not self.cap.fits_ever(job):
            job.state = JobState.UNSCHEDULABLE
            self.log.append((self.now_s, "unschedulable", job.job_id, (), float(job.milli)))
            return
        job.state = JobState.WAITING
        self.queue.push(job)
        self.log.append((self.now_s, "arrive", job.job_id, (), float(job.milli)))

    def run(self, policy: Any) -> None:
        """Replay every job with ``policy`` (a :class:`~solver.sim.policies.Policy`)."""
        from tqdm import tqdm

        cfg = self.config
        triggers = policy.triggers
        if not cfg.event_rounds and "round" in triggers:
            triggers = frozenset({"round"})
        jobs = self.jobs
        ai = 0
        until = cfg.until_s if cfg.until_s is not None else math.inf
        if jobs:
            self.now_s = jobs[0].submit_s if cfg.start_s is None else cfg.start_s
        bar = tqdm(total=len(jobs), disable=not cfg.progress, unit="job", desc=f"simulate {policy.name}")
        next_round = math.inf
        while True:
            t_arr = jobs[ai].submit_s if ai < len(jobs) else math.inf
            t_evt = self.events[0][0] if self.events else math.inf
            if "round" in triggers and (len(self.queue) or self.running):
                if next_round == math.inf or next_round <= self.now_s:
                    next_round = (math.floor(self.now_s / cfg.round_s) + 1) * cfg.round_s
            else:
                next_round = math.inf
            t_svc = min((self._svc_time(k) for k in range(len(self.services))), default=math.inf)
            t = min(t_arr, t_evt, next_round, t_svc)
            if t == math.inf:
                break
            if t > until:
                self._advance(until)
                break
            t = max(t, self.now_s)
            self._advance(t)
            fired: set[str] = set()
            while self.events and self.events[0][0] <= t:
                _, _, idx, version = heapq.heappop(self.events)
                job = jobs[idx]
                if job.version == version and job.state == JobState.RUNNING:
                    self._complete(job)
                    bar.update(1)
                    fired.add("completion")
            for k in range(len(self.services)):
                if self._svc_time(k) <= t:
                    self._service_tick(k)
                    fired.add("arrival")
            while ai < len(jobs) and jobs[ai].submit_s <= t:
                self._arrive(jobs[ai])
                if jobs[ai].state == JobState.UNSCHEDULABLE:
                    bar.update(1)
                ai += 1
                fired.add("arrival")
            if t == next_round:
                fired.add("round")
                next_round = (math.floor(t / cfg.round_s) + 1) * cfg.round_s
            if fired & triggers and len(self.queue):
                t0 = time.perf_counter()
                stat = policy.schedule(self, "round" in fired)
                self.solver_s += time.perf_counter() - t0
                if stat is not None:
                    self.rounds.append(stat)
                self._sample()
            self.acc.timeline.append((self.now_s, self.cap.busy_milli / FULL, len(self.queue), len(self.running)))
        bar.close()

    # ------------------------------------------------------------------ inference services
    def _svc_time(self, k: int) -> float:
        """Start of service ``k``'s next interval (its end after the last), inf when done."""
        st, nxt = self.services[k], self._svc_next[k]
        load = st.spec.load
        if nxt < len(load):
            return float(load["interval_start_s"].iloc[nxt])
        if nxt == len(load) and len(load):
            return float(load["interval_start_s"].iloc[-1]) + st.spec.interval_s
        return math.inf

    def _replica_job(self, st: ServiceState, r: int) -> SimJob:
        tp = st.sizing.tp if st.sizing else 1
        return SimJob(index=-1, job_id=f"{st.spec.service.id}/replica{r}", kind="inference", submit_s=0.0,
                      num_gpus=tp, milli=FULL, work=0.0, duration_s=0.0, throughput={st.type_index: 1.0})

    def _release_replica(self, st: ServiceState) -> None:
        slot = st.replicas.pop()
        self.cap.release(self._replica_job(st, len(st.replicas)), slot)
        self.log.append((self.now_s, "finish", f"{st.spec.service.id}/replica{len(st.replicas)}", slot[1], 1000.0))

    def _service_tick(self, k: int) -> None:
        """Resize service ``k`` for its next interval (see :mod:`solver.sim.inference`)."""
        st = self.services[k]
        i = self._svc_next[k]
        self._svc_next[k] += 1
        self.active_w -= st.power_w
        sz = st.size(self.cluster.gpu_types, self._llm(st.spec.service.model), i) if i < len(st.spec.load) else None
        if sz is None or (st.sizing is not None and sz.tp != st.sizing.tp):
            while st.replicas:
                self._release_replica(st)
        if sz is None:
            st.sizing, st.rate_rps = None, 0.0
            if i < len(st.spec.load):
                st.short_intervals += 1
        else:
            st.sizing = sz
            while len(st.replicas) > sz.replicas:
                self._release_replica(st)
            while len(st.replicas) < sz.replicas:
                slot = self._replica_slot(st.type_index, sz.tp)
                if slot is None:
                    st.short_intervals += 1
                    break
                v = slot[0]
                self.cap.take(self._replica_job(st, len(st.replicas)), slot)
                self._power_on(v)
                self.log.append((self.now_s, "start", f"{st.spec.service.id}/replica{len(st.replicas)}", slot[1],
                                 1000.0))
                st.replicas.append(slot)
            st.intervals += 1
        st.power_w = st.update_power(self.cluster.gpu_types)
        self.active_w += st.power_w

    def _replica_slot(self, type_index: int, tp: int) -> Slot | None:
        """First ``tp`` fully free GPUs inside one NVLink domain of a node of ``type_index``."""
        nodes = self.cap.nodes_of([type_index])
        for v in nodes[self.cap.node_full_free[nodes] >= tp]:
            first = int(self.cap.node_first[v])
            for dom in self.cluster.nodes[int(v)].nvlink_domains:
                free = [first + i for i in dom if self.cap.free_milli[first + i] == FULL]
                if len(free) >= tp:
                    return int(v), tuple(free[:tp])
        return None

    def _llm(self, name: str) -> LlmModel:
        return self.base.llm_model(name)

    def _sample(self) -> None:
        """Every ``frag_every`` scheduling passes, a fragmentation measurement."""
        self.passes += 1
        if self.passes % self.config.frag_every == 1:
            frag, free = self.frag_model.cluster_fragmentation(self.cap)
            self.acc.frag_samples.append((self.now_s, frag, free))
