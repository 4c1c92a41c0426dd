"""Frozen problem data: GPU types, the cluster, the work and the objective.

All entities are frozen dataclasses with tuple fields; they refer to each other by
stable string ids (GPU type names, node ids, job ids). Units are in the field names:
``_s`` seconds, ``_w`` watts, ``_gib`` GiB, ``_gbps`` GB/s, ``_kwh`` kilowatt-hours.
Validation with precise messages happens when documents are read
(:mod:`solver.fileformat`); :meth:`Instance.__post_init__` builds lookup tables once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "TIER_NAMES",
    "FractionalTask",
    "GpuType",
    "InferenceService",
    "Instance",
    "LinkSpec",
    "LlmModel",
    "Node",
    "ObjectiveWeights",
    "PowerModel",
    "Running",
    "TrainingJob",
]

#: Locality tiers of a set of GPUs, from tightest to loosest. A gang's tier is the
#: level of the lowest common ancestor of its GPUs in the topology tree
#: (:func:`solver.topology.tier_of`).
TIER_NAMES: tuple[str, ...] = ("nvlink", "node", "rack", "pod", "cluster")
#: Default duration multiplier per tier: node 2%, rack 5%, pod 10%, cross-pod 20% (research F.2).
DEFAULT_TIER_SLOWDOWN: tuple[float, ...] = (1.0, 1.02, 1.05, 1.10, 1.20)


@dataclass(frozen=True)
class PowerModel:
    r"""Board power and throughput of one GPU type by phase and power cap.

    Active power of a phase with uncapped demand :math:`d` under cap :math:`c` is
    :math:`\min(c, d)`; its throughput is divided by the slowdown

    .. math:: s(d, c) = \max(1, d / c)^{\beta}.

    Demands: training :math:`f_{train} \cdot TDP`, prefill :math:`f_{prefill} \cdot TDP`,
    decode :math:`f_{dec}(b) \cdot TDP` interpolated in :math:`\log_2 b` between the
    measured batch sizes.
    """

    train_frac: float = 0.95
    prefill_frac: float = 1.0
    decode_batches: tuple[int, ...] = (1, 8, 32, 64, 128)
    decode_fracs: tuple[float, ...] = (0.64, 0.69, 0.78, 0.88, 0.90)
    beta: float = 0.75
    idle_ctx_extra_w: float = 40.0

    def decode_frac(self, batch: float) -> float:
        """Decode power as a fraction of TDP at ``batch`` (log2 interpolation, clamped)."""
        xs = [math.log2(b) for b in self.decode_batches]
        x = math.log2(max(batch, 1.0))
        if x <= xs[0]:
            return self.decode_fracs[0]
        for i in range(1, len(xs)):
            if x <= xs[i]:
                t = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
                return self.decode_fracs[i - 1] + t * (self.decode_fracs[i] - self.decode_fracs[i - 1])
        return self.decode_fracs[-1]

    def slowdown(self, demand_w: float, cap_w: float) -> float:
        """Throughput divisor :math:`\\max(1, d/c)^\\beta` of a phase demanding ``demand_w``."""
        return max(1.0, demand_w / cap_w) ** self.beta


@dataclass(frozen=True)
class GpuType:
    """One GPU model of the catalog (see ``data/catalog/gpu_types.yaml`` for sources)."""

    name: str
    memory_gib: float
    bf16_tflops: float
    mem_bw_gbps: float
    tdp_w: float
    idle_w: float
    min_power_cap_w: float
    max_power_cap_w: float
    power_cap_levels_w: tuple[float, ...]
    nvlink_bw_gbps: float = 0.0
    power_model: PowerModel = field(default_factory=PowerModel)
    sources: tuple[tuple[str, str], ...] = ()

    def train_power_w(self, cap_w: float) -> float:
        """Board power while training under ``cap_w``: :math:`\\min(c, f_{train} TDP)`."""
        return min(cap_w, self.power_model.train_frac * self.tdp_w)

    def train_slowdown(self, cap_w: float) -> float:
        """Training throughput divisor under ``cap_w``."""
        return self.power_model.slowdown(self.power_model.train_frac * self.tdp_w, cap_w)


@dataclass(frozen=True)
class LlmModel:
    """Transformer architecture used by the memory and inference-capacity models."""

    name: str
    params_b: float
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    source: str = ""

    @property
    def weight_bytes(self) -> float:
        """bf16 weights: 2 bytes per parameter."""
        return 2.0 * self.params_b * 1e9

    @property
    def kv_bytes_per_token(self) -> float:
        """bf16 KV cache per token: :math:`2 \\cdot L \\cdot n_{kv} \\cdot d_{head} \\cdot 2`."""
        return 2.0 * self.n_layers * self.n_kv_heads * self.d_head * 2.0


@dataclass(frozen=True)
class LinkSpec:
    """Bandwidths of the links above the node (GB/s per GPU, one direction)."""

    pcie_bw_gbps: float = 32.0
    leaf_bw_gbps: float = 50.0
    spine_bw_gbps: float = 50.0
    core_bw_gbps: float = 12.5


@dataclass(frozen=True)
class Node:
    """A server: ``gpu_count`` GPUs of one type, grouped into NVLink domains.

    ``nvlink_domains`` partitions the local GPU indices ``0..gpu_count-1``; a PCIe box
    has one singleton domain per GPU. ``numa_domains`` partitions them by PCIe root /
    NUMA node. ``host_power_w`` is the average non-GPU power of the powered server.
    """

    id: str
    gpu_type: str
    gpu_count: int
    nvlink_domains: tuple[tuple[int, ...], ...]
    numa_domains: tuple[tuple[int, ...], ...]
    host_power_w: float
    rack: str
    pod: str
    template: str = ""

    def gpu_ids(self) -> tuple[str, ...]:
        """Global GPU ids ``<node id>/<local index>``."""
        return tuple(f"{self.id}/{i}" for i in range(self.gpu_count))


@dataclass(frozen=True)
class Running:
    """State of a job that is already running when the snapshot is taken.

    ``gpus`` are its current GPUs; keeping them costs nothing, moving to others costs
    ``migration_cost_s`` of lost progress (checkpoint, restart) and one migration.
    """

    gpus: tuple[str, ...]
    power_cap_w: float | None = None
    migration_cost_s: float = 0.0
    remaining_work: float | None = None
    started_s: float = 0.0


@dataclass(frozen=True)
class TrainingJob:
    r"""A gang-scheduled training job.

    Runs on ``num_gpus`` GPUs of one type (or, when ``min_gpus`` is set, on any power of
    two between ``min_gpus`` and ``num_gpus``, or ``num_gpus`` itself). Its duration on
    :math:`n` GPUs of type :math:`k` under cap :math:`c` at locality tier :math:`\ell` is

    .. math:: T = \frac{W}{n \cdot \theta_k / s_k(c)} \cdot \sigma_\ell

    with :math:`W` the remaining ``work``, :math:`\theta_k` the per-GPU
    ``throughput_per_gpu`` (work units per second) and :math:`\sigma_\ell` the
    ``tier_slowdown`` of the tier. Types absent from ``throughput_per_gpu`` are
    ineligible. Every ``tp`` consecutive GPUs of the placement form a tensor-parallel
    group that must sit in one NVLink domain.
    """

    id: str
    num_gpus: int
    work: float
    throughput_per_gpu: tuple[tuple[str, float], ...]
    memory_gib: float
    min_gpus: int | None = None
    tp: int = 1
    tier_slowdown: tuple[float, ...] = DEFAULT_TIER_SLOWDOWN
    arrival_s: float = 0.0
    deadline_s: float | None = None
    priority: float = 1.0
    preemptible: bool = True
    running: Running | None = None
    model: str = ""
    _throughput: Mapping[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_throughput", dict(self.throughput_per_gpu))

    def throughput(self, gpu_type: str) -> float | None:
        """Per-GPU throughput on ``gpu_type`` (work units/s), or None if ineligible."""
        return self._throughput.get(gpu_type)

    def gpu_counts(self) -> tuple[int, ...]:
        """Allowed gang sizes, ascending."""
        if self.min_gpus is None or self.min_gpus >= self.num_gpus:
            return (self.num_gpus,)
        sizes = {self.num_gpus}
        n = 1
        while n < self.num_gpus:
            if n >= self.min_gpus and n % self.tp == 0:
                sizes.add(n)
            n *= 2
        return tuple(sorted(sizes))

    @property
    def remaining_work(self) -> float:
        if self.running is not None and self.running.remaining_work is not None:
            return self.running.remaining_work
        return self.work


@dataclass(frozen=True)
class InferenceService:
    """An LLM inference service sized to meet its TTFT and TPOT SLOs.

    GPUs needed on a type = replicas x tensor-parallel degree, from the capacity model
    of :mod:`solver.perf` (or the explicit ``capacity`` table: per GPU type, the TP
    degree and the maximum request rate one replica sustains at the SLO).
    """

    id: str
    model: str
    request_rate_rps: float
    prompt_tokens: float
    output_tokens: float
    ttft_slo_s: float
    tpot_slo_s: float
    gpu_types: tuple[str, ...] = ()
    capacity: tuple[tuple[str, int, float], ...] = ()
    priority: float = 1.0
    arrival_s: float = 0.0
    preemptible: bool = True
    running: Running | None = None


@dataclass(frozen=True)
class FractionalTask:
    """A task using ``gpu_milli``/1000 of one GPU (Alibaba 2023 style GPU sharing)."""

    id: str
    gpu_milli: int
    memory_gib: float
    duration_s: float
    gpu_types: tuple[str, ...] = ()
    priority: float = 1.0
    arrival_s: float = 0.0
    preemptible: bool = True
    running: Running | None = None


@dataclass(frozen=True)
class ObjectiveWeights:
    r"""Weights of the minimized objective (see ``docs/formulations.md``).

    .. math::
        Z = w_E \cdot E_{kWh} + w_V \cdot V + w_T \cdot T_h
            + w_U \sum_{j \text{ unplaced}} \pi_j g_j + w_M \cdot M

    :math:`E` energy over ``horizon_s`` including PUE, :math:`V` SLO violations,
    :math:`T_h` tardiness in hours, :math:`\pi_j` priority, :math:`g_j` GPUs requested
    (milli-GPU/1000 for fractional tasks), :math:`M` migrations.
    """

    energy_per_kwh: float = 1.0
    slo_violation: float = 10.0
    tardiness_per_h: float = 1.0
    unplaced_per_gpu: float = 10.0
    migration: float = 1.0
    horizon_s: float = 3600.0
    pue: float = 1.2
    allow_power_down: bool = True


Job = TrainingJob | InferenceService | FractionalTask


@dataclass(frozen=True)
class Instance:
    """A snapshot problem: cluster, running jobs, pending work, weights and the time."""

    name: str
    gpu_types: tuple[GpuType, ...]
    llm_models: tuple[LlmModel, ...]
    nodes: tuple[Node, ...]
    links: LinkSpec = field(default_factory=LinkSpec)
    training_jobs: tuple[TrainingJob, ...] = ()
    inference_services: tuple[InferenceService, ...] = ()
    fractional_tasks: tuple[FractionalTask, ...] = ()
    objective: ObjectiveWeights = field(default_factory=ObjectiveWeights)
    power_budget_w: float | None = None
    now_s: float = 0.0
    _types: Mapping[str, GpuType] = field(init=False, repr=False, compare=False)
    _models: Mapping[str, LlmModel] = field(init=False, repr=False, compare=False)
    _nodes: Mapping[str, Node] = field(init=False, repr=False, compare=False)
    _jobs: Mapping[str, Job] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_types", {t.name: t for t in self.gpu_types})
        object.__setattr__(self, "_models", {m.name: m for m in self.llm_models})
        object.__setattr__(self, "_nodes", {n.id: n for n in self.nodes})
        jobs: dict[str, Job] = {j.id: j for j in self.jobs()}
        object.__setattr__(self, "_jobs", jobs)

    def gpu_type(self, name: str) -> GpuType:
        return self._types[name]

    def has_gpu_type(self, name: str) -> bool:
        return name in self._types

    def llm_model(self, name: str) -> LlmModel:
        return self._models[name]

    def node(self, node_id: str) -> Node:
        return self._nodes[node_id]

    def job(self, job_id: str) -> Job:
        return self._jobs[job_id]

    def jobs(self) -> tuple[Job, ...]:
        return (*self.training_jobs, *self.inference_services, *self.fractional_tasks)

    @property
    def num_gpus(self) -> int:
        return sum(n.gpu_count for n in self.nodes)

    def replace(self, **changes: Any) -> Instance:
        """A new instance with ``changes`` applied (fields are re-indexed)."""
        return replace(self, **changes)
