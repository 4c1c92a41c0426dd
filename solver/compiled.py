r"""The compiled form of an instance: index arrays, options and exact cost terms.

One compiled form feeds every solver backend and the checker, so that the objective a
model optimizes is, term for term, the objective the checker recomputes.

An **option** of a job is one way to run it: a GPU type, a gang size, a power cap (and,
for inference, the TP degree and replica count the SLOs need). Its cost terms depend
additionally on the locality tier of the GPUs chosen and on whether a running job is
migrated; :func:`training_terms`, :func:`inference_terms` and :func:`fractional_terms`
compute them from the data alone.

Energy accounting over the horizon :math:`H` (``objective.horizon_s``), PUE :math:`\phi`:

.. math::
    E = \frac{\phi}{3.6 \cdot 10^6} \Big[ \sum_{\text{powered nodes } v}
        (P^{host}_v + G_v P^{idle}_v) H
        + \sum_{\text{placed } j} n_j (P^{act}_j - P^{idle}_j) \min(T_j, H) \Big]

(kWh); idle GPUs of powered nodes draw idle power, powered-down nodes draw nothing.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, overload

import numpy as np
import numpy.typing as npt

from solver.model import (
    TIER_NAMES,
    FractionalTask,
    GpuType,
    InferenceService,
    Instance,
    Job,
    TrainingJob,
)
from solver.perf import InferenceSizing, replica_utilization, serving_power_w, size_inference
from solver.topology import TopologyIndex, build_graph

if TYPE_CHECKING:
    from solver.checker import CheckReport
    from solver.result import Decision

__all__ = [
    "CompileCache",
    "CompiledInstance",
    "Option",
    "Terms",
    "fractional_terms",
    "gc_paused",
    "inference_terms",
    "options_exist",
    "training_terms",
]

J_PER_KWH = 3.6e6
#: Reports :meth:`CompiledInstance.check` remembers (the most recent ones).
CHECKS_KEPT = 16
EPS = 1e-9
N_TIERS = len(TIER_NAMES)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a bounded, allocation-heavy step.

    Compiling an instance, building the topology index, a greedy pass and a check each
    allocate tens of thousands of objects that stay alive (or die by reference counting,
    which is not paused); the collector would walk the whole heap several times for
    nothing (about a fifth of the time on 10,240 GPUs). The previous state is restored on
    exit, so collections resume afterwards and a caller that disabled the collector
    keeps it disabled.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class Terms:
    """Cost terms of one placed job (before weighting)."""

    energy_kwh: float
    tardiness_h: float
    late: bool
    duration_s: float
    power_w: float


@dataclass(frozen=True)
class Option:
    """One way to run a job: GPU type, GPU count, power cap, TP degree and replicas.

    ``terms[tier][migrated]`` holds the :class:`Terms` at each locality tier, without
    (``0``) and with (``1``) a migration (a tuple, or a lazily computed
    :class:`TrainingTermsByTier` with the same values). ``milli`` is 1000 for whole-GPU work.
    """

    job: int
    gpu_type: str
    type_index: int
    num_gpus: int
    tp: int
    power_cap_w: float
    milli: int
    memory_gib: float
    terms: Sequence[tuple[Terms, Terms]]

    def cost(self, inst: Instance, tier: int, migrated: bool) -> float:
        """Weighted objective contribution of this option at ``tier``."""
        return weighted(inst, self.terms[tier][int(migrated)], migrated)


def weighted(inst: Instance, t: Terms, migrated: bool) -> float:
    """:math:`w_E E + w_V [late] + w_T T_h + w_M [migrated]` of one placed job."""
    w = inst.objective
    return (w.energy_per_kwh * t.energy_kwh + w.slo_violation * float(t.late)
            + w.tardiness_per_h * t.tardiness_h + w.migration * float(migrated))


def _kwh(inst: Instance, watts: float, seconds: float) -> float:
    return inst.objective.pue * watts * seconds / J_PER_KWH


def training_terms(inst: Instance, job: TrainingJob, gpu: GpuType, n: int, cap_w: float, tier: int,
                   migrated: bool) -> Terms:
    r"""Duration, energy and tardiness of ``job`` on ``n`` GPUs of ``gpu`` at ``tier``.

    .. math:: T = \frac{W}{n\,\theta_k / s_k(c)}\,\sigma_\ell + [migrated]\,m_j, \quad
              E = \phi\, n\,(P^{train}_k(c) - P^{idle}_k)\,\min(T, H)
    """
    theta = job.throughput(gpu.name)
    assert theta is not None
    duration = job.remaining_work / (n * theta / gpu.train_slowdown(cap_w)) * job.tier_slowdown[tier]
    if migrated and job.running is not None:
        duration += job.running.migration_cost_s
    extra_w = n * (gpu.train_power_w(cap_w) - gpu.idle_w)
    energy = _kwh(inst, extra_w, min(duration, inst.objective.horizon_s))
    tardiness_h, late = 0.0, False
    if job.deadline_s is not None:
        finish = inst.now_s + duration
        late = finish > job.deadline_s + 1e-6
        tardiness_h = max(0.0, finish - job.deadline_s) / 3600.0
    return Terms(energy, tardiness_h, late, duration, extra_w)


class TrainingTermsByTier(Sequence[tuple[Terms, Terms]]):
    """``training_terms`` at every tier (not migrated, migrated), computed on first access.

    Performs exactly the floating-point operations of :func:`training_terms`, so the
    values are identical; the common factors are computed once per option and a tier's
    terms only when someone reads them (a greedy pass reads one tier of a few options).
    """

    __slots__ = ("_base", "_cache", "_extra_w", "_inst", "_job")

    def __init__(self, inst: Instance, job: TrainingJob, gpu: GpuType, n: int, cap_w: float) -> None:
        theta = job.throughput(gpu.name)
        assert theta is not None
        self._inst, self._job = inst, job
        self._base = job.remaining_work / (n * theta / gpu.train_slowdown(cap_w))
        self._extra_w = n * (gpu.train_power_w(cap_w) - gpu.idle_w)
        self._cache: list[tuple[Terms, Terms] | None] | None = None

    @classmethod
    def _of(cls, inst: Instance, job: TrainingJob, base: float, extra_w: float) -> TrainingTermsByTier:
        """The same object from its common factors, computed by the caller exactly as ``__init__`` does.

        ``base = remaining_work / (n * theta / train_slowdown(cap))`` and
        ``extra_w = n * (train_power_w(cap) - idle_w)``.
        """
        obj = cls.__new__(cls)
        obj._inst, obj._job, obj._base, obj._extra_w, obj._cache = inst, job, base, extra_w, None
        return obj

    def _terms(self, duration: float) -> Terms:
        inst, job = self._inst, self._job
        energy = _kwh(inst, self._extra_w, min(duration, inst.objective.horizon_s))
        tardiness_h, late = 0.0, False
        if job.deadline_s is not None:
            finish = inst.now_s + duration
            late = finish > job.deadline_s + 1e-6
            tardiness_h = max(0.0, finish - job.deadline_s) / 3600.0
        return Terms(energy, tardiness_h, late, duration, self._extra_w)

    @overload
    def __getitem__(self, tier: int) -> tuple[Terms, Terms]: ...

    @overload
    def __getitem__(self, tier: slice) -> Sequence[tuple[Terms, Terms]]: ...

    def __getitem__(self, tier: int | slice) -> tuple[Terms, Terms] | Sequence[tuple[Terms, Terms]]:
        if isinstance(tier, slice):
            return tuple(self[t] for t in range(N_TIERS)[tier])
        cache = self._cache
        if cache is None:
            cache = self._cache = [None] * N_TIERS
        got = cache[tier]
        if got is None:
            duration = self._base * self._job.tier_slowdown[tier]
            stay = self._terms(duration)
            running = self._job.running
            got = (stay, stay if running is None else self._terms(duration + running.migration_cost_s))
            cache[tier] = got
        return got

    def __len__(self) -> int:
        return N_TIERS

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))


def inference_terms(inst: Instance, svc: InferenceService, gpu: GpuType, cap_w: float, replicas: int,
                    sizing: InferenceSizing | None = None) -> Terms | None:
    """Energy of ``svc`` served by ``replicas`` replicas on ``gpu`` under ``cap_w``.

    None when the type cannot meet the SLOs or ``replicas`` is below what the load needs.
    ``sizing`` is ``size_inference(svc, ..., gpu, cap_w)`` when the caller has it already.
    """
    sz = sizing if sizing is not None else size_inference(svc, inst.llm_model(svc.model), gpu, cap_w)
    if sz is None or replicas < sz.replicas:
        return None
    util = replica_utilization(svc.request_rate_rps, replicas, sz.max_rps_per_replica)
    per_gpu = serving_power_w(gpu, sz, util)
    extra_w = replicas * sz.tp * (per_gpu - gpu.idle_w)
    return Terms(_kwh(inst, extra_w, inst.objective.horizon_s), 0.0, False, inst.objective.horizon_s, extra_w)


def fractional_terms(inst: Instance, task: FractionalTask, gpu: GpuType) -> Terms:
    """Energy of a fractional task: its share of the active-minus-idle power."""
    extra_w = task.gpu_milli / 1000.0 * (gpu.train_power_w(gpu.max_power_cap_w) - gpu.idle_w)
    energy = _kwh(inst, extra_w, min(task.duration_s, inst.objective.horizon_s))
    return Terms(energy, 0.0, False, task.duration_s, extra_w)


class CompileCache:
    """Values that many options share, computed once while compiling one instance.

    Each is the result of the same function call on the same arguments, so the
    options and penalties are identical to those computed without the cache.
    """

    def __init__(self) -> None:
        self._train: dict[tuple[str, float], tuple[float, float]] = {}
        self._sizing: dict[tuple[InferenceService, str, float], InferenceSizing | None] = {}

    def train(self, gpu: GpuType, cap_w: float) -> tuple[float, float]:
        """``gpu.train_slowdown(cap_w)`` and ``gpu.train_power_w(cap_w) - gpu.idle_w``."""
        key = (gpu.name, cap_w)
        got = self._train.get(key)
        if got is None:
            got = self._train[key] = (gpu.train_slowdown(cap_w), gpu.train_power_w(cap_w) - gpu.idle_w)
        return got

    def sizing(self, inst: Instance, svc: InferenceService, gpu: GpuType, cap_w: float) -> InferenceSizing | None:
        """``size_inference(svc, inst.llm_model(svc.model), gpu, cap_w)``."""
        key = (svc, gpu.name, cap_w)  # frozen and hashable: equal services size alike
        if key not in self._sizing:
            self._sizing[key] = size_inference(svc, inst.llm_model(svc.model), gpu, cap_w)
        return self._sizing[key]


def unplaced_gpus(inst: Instance, job: Job, cache: CompileCache | None = None) -> float:
    """GPUs counted by the unplaced penalty: requested GPUs, milli/1000, or fewest GPUs for a service."""
    if isinstance(job, TrainingJob):
        return float(job.num_gpus)
    if isinstance(job, FractionalTask):
        return job.gpu_milli / 1000.0
    best = math.inf
    for t in inst.gpu_types:
        if job.gpu_types and t.name not in job.gpu_types:
            continue
        sz = (cache.sizing(inst, job, t, t.max_power_cap_w) if cache is not None
              else size_inference(job, inst.llm_model(job.model), t, t.max_power_cap_w))
        if sz is not None:
            best = min(best, sz.num_gpus)
    return best if best < math.inf else 1.0


def unplaced_lateness(inst: Instance, job: Job,
                      stats: dict[str, tuple[int, int]] | None = None) -> tuple[bool, float]:
    r"""Lateness an unplaced training job cannot avoid: (late, tardiness in hours).

    Deferring a job never makes it finish earlier than starting it now on its fastest
    option (tier 0, no migration), so an unplaced job with a deadline is charged at
    least that lateness: :math:`\min_o` over its options of the tier-0 terms. Without
    this, leaving a late job unplaced could look cheaper than running it late.
    """
    if not isinstance(job, TrainingJob) or job.deadline_s is None:
        return False, 0.0
    stats = stats if stats is not None else _type_stats(inst)
    best: tuple[bool, float] | None = None
    for gpu in inst.gpu_types:
        if gpu.name not in stats or job.throughput(gpu.name) is None or job.memory_gib > gpu.memory_gib:
            continue
        for n in job.gpu_counts():
            if n > stats[gpu.name][0]:
                continue
            t = training_terms(inst, job, gpu, n, gpu.max_power_cap_w, 0, False)
            if best is None or t.tardiness_h < best[1]:
                best = (t.late, t.tardiness_h)
    return best if best is not None else (False, 0.0)


@dataclass(frozen=True)
class UnplacedTerms:
    """What leaving one job unplaced counts: GPUs for the penalty and unavoidable lateness."""

    gpus: float
    late: bool
    tardiness_h: float

    def cost(self, inst: Instance, job: Job) -> float:
        r""":math:`w_U \pi_j g_j + w_V [\text{late}^{min}_j] + w_T T^{min}_j`."""
        w = inst.objective
        return (w.unplaced_per_gpu * job.priority * self.gpus
                + w.slo_violation * float(self.late) + w.tardiness_per_h * self.tardiness_h)


def unplaced_terms(inst: Instance, job: Job, stats: dict[str, tuple[int, int]] | None = None,
                   cache: CompileCache | None = None) -> UnplacedTerms:
    """:func:`unplaced_gpus` and :func:`unplaced_lateness` of ``job``, computed once."""
    late, tardiness_h = unplaced_lateness(inst, job, stats)
    return UnplacedTerms(unplaced_gpus(inst, job, cache), late, tardiness_h)


def unplaced_penalty(inst: Instance, job: Job, stats: dict[str, tuple[int, int]] | None = None,
                     cache: CompileCache | None = None) -> float:
    r"""Cost of leaving ``job`` unplaced (or preempting it).

    .. math:: w_U \pi_j g_j + w_V [\text{late}^{min}_j] + w_T T^{min}_j

    with the unavoidable lateness of :func:`unplaced_lateness`.
    """
    return unplaced_terms(inst, job, stats, cache).cost(inst, job)


def _type_stats(inst: Instance) -> dict[str, tuple[int, int]]:
    """Per GPU type: total GPUs and largest NVLink domain."""
    stats: dict[str, tuple[int, int]] = {}
    for n in inst.nodes:
        total, dom = stats.get(n.gpu_type, (0, 0))
        stats[n.gpu_type] = (total + n.gpu_count, max(dom, max(len(d) for d in n.nvlink_domains)))
    return stats


def job_options(inst: Instance, j: int, job: Job, stats: dict[str, tuple[int, int]] | None = None,
                type_index: dict[str, int] | None = None, cache: CompileCache | None = None) -> list[Option]:
    """Every option of ``job`` (index ``j``) that fits the cluster's GPU types.

    ``cache`` shares the per-type factors (and service sizings) between the jobs of one instance.
    """
    stats = stats if stats is not None else _type_stats(inst)
    if type_index is None:
        type_index = {t.name: k for k, t in enumerate(inst.gpu_types)}
    cache = cache if cache is not None else CompileCache()
    out: list[Option] = []
    for gpu in inst.gpu_types:
        if gpu.name not in stats:
            continue
        total, dom = stats[gpu.name]
        caps = gpu.power_cap_levels_w
        k = type_index[gpu.name]
        if isinstance(job, TrainingJob):
            theta = job.throughput(gpu.name)
            if theta is None or job.memory_gib > gpu.memory_gib or job.tp > dom:
                continue
            work = job.remaining_work
            factors = [(cap, *cache.train(gpu, cap)) for cap in caps]
            for n in job.gpu_counts():
                if n > total:
                    continue
                for cap, slowdown, watts in factors:
                    # the factors of TrainingTermsByTier(inst, job, gpu, n, cap), same operations
                    terms: Sequence[tuple[Terms, Terms]] = TrainingTermsByTier._of(
                        inst, job, work / (n * theta / slowdown), n * watts)
                    out.append(Option(j, gpu.name, k, n, job.tp, cap, 1000, job.memory_gib, terms))
        elif isinstance(job, InferenceService):
            if job.gpu_types and gpu.name not in job.gpu_types:
                continue
            model = inst.llm_model(job.model)
            for cap in caps:
                sz = cache.sizing(inst, job, gpu, cap)
                if sz is None or sz.tp > dom or sz.num_gpus > total:
                    continue
                t = inference_terms(inst, job, gpu, cap, sz.replicas, sz)
                assert t is not None
                terms = ((t, t),) * N_TIERS
                mem = model.weight_bytes / sz.tp / 2**30
                out.append(Option(j, gpu.name, k, sz.num_gpus, sz.tp, cap, 1000, mem, terms))
        else:
            if (job.gpu_types and gpu.name not in job.gpu_types) or job.memory_gib > gpu.memory_gib:
                continue
            t = fractional_terms(inst, job, gpu)
            terms = ((t, t),) * N_TIERS
            out.append(Option(j, gpu.name, k, 1, 1, gpu.max_power_cap_w, job.gpu_milli,
                              job.memory_gib, terms))
    return out


def options_exist(inst: Instance, job: Job, stats: dict[str, tuple[int, int]] | None = None) -> str:
    """Empty string if ``job`` has at least one option, else the reason it has none."""
    stats = stats if stats is not None else _type_stats(inst)
    if job_options(inst, 0, job, stats):
        return ""
    if isinstance(job, TrainingJob):
        eligible = [t for t in inst.gpu_types if job.throughput(t.name) is not None and t.name in stats]
        if not eligible:
            return "no GPU type in the cluster has a throughput for it"
        if all(job.memory_gib > t.memory_gib for t in eligible):
            return f"needs {job.memory_gib:g} GiB per GPU, more than any eligible GPU type has"
        if all(job.tp > stats[t.name][1] for t in eligible):
            return f"tp={job.tp} exceeds every NVLink domain of its eligible GPU types"
        return f"needs {min(job.gpu_counts())} GPUs, more than the cluster has of any eligible type"
    if isinstance(job, InferenceService):
        return "no GPU type in the cluster meets its TTFT/TPOT SLOs with the GPUs it has"
    return f"no allowed GPU type in the cluster has {job.memory_gib:g} GiB for it"


class CompiledInstance:
    """Index arrays of the cluster and the options of every job.

    Attributes
    ----------
    gpu_ids
        Global GPU ids in node order; arrays below are indexed like it.
    gpu_node, gpu_domain, gpu_type
        Node index, global NVLink-domain index and type index of each GPU (read-only).
    node_rack, node_pod
        Rack and pod index of each node (read-only).
    options
        ``options[j]`` lists the :class:`Option` of job ``j`` (``instance.jobs()`` order).
    """

    def __init__(self, inst: Instance) -> None:
        self.instance = inst
        self.jobs: tuple[Job, ...] = inst.jobs()
        self.job_index = {j.id: k for k, j in enumerate(self.jobs)}
        self.type_index = {t.name: k for k, t in enumerate(inst.gpu_types)}
        ids: list[str] = []
        node_of: list[int] = []
        dom_of: list[int] = []
        type_of: list[int] = []
        racks: dict[str, int] = {}
        pods: dict[str, int] = {}
        node_rack: list[int] = []
        node_pod: list[int] = []
        self.domains: list[tuple[int, ...]] = []  # GPU indices of each NVLink domain
        self.domain_node: list[int] = []
        for v, node in enumerate(inst.nodes):
            node_rack.append(racks.setdefault(node.rack, len(racks)))
            node_pod.append(pods.setdefault(node.pod, len(pods)))
            base = len(ids)
            ids.extend(node.gpu_ids())
            node_of.extend([v] * node.gpu_count)
            type_of.extend([self.type_index[node.gpu_type]] * node.gpu_count)
            dom_of.extend([0] * node.gpu_count)
            for dom in node.nvlink_domains:
                d = len(self.domains)
                self.domains.append(tuple(base + i for i in dom))
                self.domain_node.append(v)
                for i in dom:
                    dom_of[base + i] = d
        self.gpu_ids: tuple[str, ...] = tuple(ids)
        self.gpu_index = {g: k for k, g in enumerate(ids)}
        self.gpu_node = _ro(np.array(node_of, dtype=np.int64))
        self.gpu_domain = _ro(np.array(dom_of, dtype=np.int64))
        self.gpu_type = _ro(np.array(type_of, dtype=np.int64))
        self.node_rack = _ro(np.array(node_rack, dtype=np.int64))
        self.node_pod = _ro(np.array(node_pod, dtype=np.int64))
        self.rack_names = tuple(racks)
        self.pod_names = tuple(pods)
        stats = _type_stats(inst)
        cache = CompileCache()
        self.options: tuple[tuple[Option, ...], ...] = tuple(
            tuple(job_options(inst, j, job, stats, self.type_index, cache)) for j, job in enumerate(self.jobs))
        self.unplaced_penalty = _ro(np.array([unplaced_penalty(inst, job, stats, cache) for job in self.jobs]))
        self._checks: dict[tuple[int, int], tuple[Instance, Decision, CheckReport]] = {}

    def check(self, decision: Decision, instance: Instance | None = None) -> CheckReport:
        """:func:`solver.checker.check` of ``decision`` with this instance's topology index.

        Parameters
        ----------
        decision
            The decision to judge.
        instance
            The instance to judge it against (default: the compiled one).

        Returns
        -------
        CheckReport
            The checker's report. Instances and decisions are immutable, so the report
            of the same pair of objects never changes: the last :data:`CHECKS_KEPT`
            reports are remembered (by object identity) and a decision checked twice,
            e.g. by the ``auto`` portfolio and then by :func:`solver.solve`, is checked
            once. Each call returns its own copy of the metrics.
        """
        from solver.checker import check

        inst = instance if instance is not None else self.instance
        key = (id(inst), id(decision))
        hit = self._checks.get(key)
        if hit is None or hit[0] is not inst or hit[1] is not decision:
            with gc_paused():
                hit = (inst, decision, check(inst, decision, self.topology))
            self._checks[key] = hit  # holds both objects, so their ids stay unique
            if len(self._checks) > CHECKS_KEPT:
                del self._checks[next(iter(self._checks))]
        return replace(hit[2], metrics=dict(hit[2].metrics))

    @cached_property
    def topology(self) -> TopologyIndex:
        """Ancestor chains read from the networkx topology graph."""
        return TopologyIndex(build_graph(self.instance.nodes, {t.name: t for t in self.instance.gpu_types},
                                         self.instance.links))

    def tier(self, gpus: npt.ArrayLike) -> int:
        """Locality tier of GPU indices ``gpus``: 0 NVLink domain ... 4 cluster."""
        g = np.asarray(gpus, dtype=np.int64)
        doms = self.gpu_domain[g]
        if (doms == doms[0]).all():
            return 0
        nodes = self.gpu_node[g]
        if (nodes == nodes[0]).all():
            return 1
        racks = self.node_rack[nodes]
        if (racks == racks[0]).all():
            return 2
        pods = self.node_pod[nodes]
        if (pods == pods[0]).all():
            return 3
        return 4

    def node_idle_power_w(self, v: int) -> float:
        """Power of powered node ``v`` with all its GPUs idle: host + GPUs x idle."""
        node = self.instance.nodes[v]
        return node.host_power_w + node.gpu_count * self.instance.gpu_type(node.gpu_type).idle_w

    def node_energy_kwh(self, v: int) -> float:
        """Energy of keeping node ``v`` powered over the horizon (PUE included)."""
        return _kwh(self.instance, self.node_idle_power_w(v), self.instance.objective.horizon_s)


def _ro(a: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    a.setflags(write=False)
    return a
