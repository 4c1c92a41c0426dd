"""The independent checker: is a decision feasible, and what does it really cost?

:func:`check` trusts nothing a solver says. It re-derives every constraint from the
instance data (locality tiers from the networkx topology graph, inference sizing from
the capacity model, energy from the power model) and recomputes the objective and all
metrics. Every solve method's decision passes through it before it is returned.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from solver.compiled import (
    _type_stats,
    fractional_terms,
    inference_terms,
    training_terms,
    unplaced_terms,
    weighted,
)
from solver.model import FractionalTask, InferenceService, Instance, TrainingJob
from solver.perf import size_inference
from solver.result import Decision
from solver.topology import TopologyIndex, build_graph

__all__ = ["CheckReport", "Violation", "check"]

VIOLATION_KINDS = (
    "unknown_job", "duplicate_placement", "unknown_gpu", "duplicate_gpu", "gpu_capacity",
    "fractional_capacity", "memory", "mixed_gpu_types", "ineligible_gpu_type", "gang_size",
    "tensor_parallel_domain", "inference_capacity", "power_cap_range", "non_preemptible_moved",
    "powered_off_node_used", "unknown_node", "power_down_not_allowed", "power_budget", "start_time",
)


@dataclass(frozen=True)
class Violation:
    """One broken constraint: its kind (see ``VIOLATION_KINDS``), the job and a message."""

    kind: str
    job: str
    message: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.job + ': ' if self.job else ''}{self.message}"


@dataclass(frozen=True)
class CheckReport:
    """Verdict and recomputed metrics of a decision."""

    violations: tuple[Violation, ...]
    objective: float
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.violations

    def kinds(self) -> set[str]:
        return {v.kind for v in self.violations}


def check(inst: Instance, decision: Decision, topology: TopologyIndex | None = None) -> CheckReport:
    """Check ``decision`` against ``inst`` and recompute the objective and metrics.

    Parameters
    ----------
    inst
        The snapshot problem.
    decision
        Placements and powered-down nodes to judge.
    topology
        A prebuilt :class:`TopologyIndex` of ``inst`` (built from the graph if None).

    Returns
    -------
    CheckReport
        ``valid`` is True when no constraint is broken. ``objective`` and ``metrics``
        are computed from the data; placements that are themselves invalid are left out
        of the energy terms.
    """
    topo = topology or TopologyIndex(build_graph(inst.nodes, {t.name: t for t in inst.gpu_types}, inst.links))
    viol: list[Violation] = []
    w = inst.objective

    def bad(kind: str, job: str, msg: str) -> None:
        viol.append(Violation(kind, job, msg))

    gpu_node: dict[str, str] = {g: n.id for n in inst.nodes for g in n.gpu_ids()}
    whole_owner: dict[str, str] = {}
    frac_milli: dict[str, int] = defaultdict(int)
    frac_mem: dict[str, float] = defaultdict(float)
    frac_jobs: dict[str, list[str]] = defaultdict(list)
    used_nodes: set[str] = set()
    seen_jobs: set[str] = set()
    energy_active = 0.0
    power_active = 0.0
    slo_violations = 0
    tardiness_h = 0.0
    migrations = 0
    gpus_used: set[str] = set()
    job_costs = 0.0

    for p in decision.placements:
        if p.job in seen_jobs:
            bad("duplicate_placement", p.job, "placed twice")
            continue
        seen_jobs.add(p.job)
        try:
            job = inst.job(p.job)
        except KeyError:
            bad("unknown_job", p.job, "no such job in the instance")
            continue
        ok = True
        if abs(p.start_s - inst.now_s) > 1e-6:
            bad("start_time", p.job, f"starts at {p.start_s:g} s, but a snapshot decision starts jobs now "
                f"({inst.now_s:g} s)")
            ok = False
        unknown = [g for g in p.gpus if g not in gpu_node]
        if unknown:
            bad("unknown_gpu", p.job, f"unknown GPU ids {unknown}")
            continue
        if len(set(p.gpus)) != len(p.gpus) or not p.gpus:
            bad("duplicate_gpu", p.job, "lists a GPU twice" if p.gpus else "has no GPUs")
            continue
        types = {inst.node(gpu_node[g]).gpu_type for g in p.gpus}
        if len(types) > 1:
            bad("mixed_gpu_types", p.job, f"spans GPU types {sorted(types)}; a gang uses one type")
            continue
        gpu = inst.gpu_type(types.pop())
        if not gpu.min_power_cap_w - 1e-6 <= p.power_cap_w <= gpu.max_power_cap_w + 1e-6:
            bad("power_cap_range", p.job, f"power cap {p.power_cap_w:g} W outside {gpu.name}'s allowed range "
                f"[{gpu.min_power_cap_w:g}, {gpu.max_power_cap_w:g}] W")
            ok = False
        # tensor-parallel groups (replicas) inside one NVLink domain
        if isinstance(job, TrainingJob | InferenceService):
            if p.tp < 1 or len(p.gpus) % p.tp:
                bad("gang_size", p.job, f"{len(p.gpus)} GPUs are not a multiple of tp={p.tp}")
                ok = False
            else:
                for k in range(0, len(p.gpus), p.tp):
                    group = p.gpus[k:k + p.tp]
                    if len({topo.domain(g) for g in group}) > 1:
                        bad("tensor_parallel_domain", p.job, f"tensor-parallel group {list(group)} spans "
                            "several NVLink domains")
                        ok = False
                        break
        migrated = False
        if job.running is not None:
            moved = set(p.gpus) != set(job.running.gpus)
            if moved and not job.preemptible:
                bad("non_preemptible_moved", p.job, "non-preemptible running job must keep its GPUs "
                    f"{list(job.running.gpus)}")
                ok = False
            migrated = moved
        terms = None
        if isinstance(job, TrainingJob):
            if job.throughput(gpu.name) is None:
                bad("ineligible_gpu_type", p.job, f"has no throughput on {gpu.name}")
                ok = False
            elif job.memory_gib > gpu.memory_gib:
                bad("memory", p.job, f"needs {job.memory_gib:g} GiB per GPU; {gpu.name} has {gpu.memory_gib:g}")
                ok = False
            if len(p.gpus) not in job.gpu_counts():
                bad("gang_size", p.job, f"gets {len(p.gpus)} GPUs; allowed sizes {list(job.gpu_counts())}")
                ok = False
            if p.tp != job.tp:
                bad("gang_size", p.job, f"tp={p.tp} but the job's tensor-parallel degree is {job.tp}")
                ok = False
            if ok:
                terms = training_terms(inst, job, gpu, len(p.gpus), p.power_cap_w, topo.tier(p.gpus), migrated)
        elif isinstance(job, InferenceService):
            if job.gpu_types and gpu.name not in job.gpu_types:
                bad("ineligible_gpu_type", p.job, f"{gpu.name} is not among its GPU types {list(job.gpu_types)}")
                ok = False
            else:
                sz = size_inference(job, inst.llm_model(job.model), gpu, p.power_cap_w)
                if sz is None:
                    bad("inference_capacity", p.job, f"cannot meet its SLOs on {gpu.name} at {p.power_cap_w:g} W")
                    ok = False
                elif p.tp != sz.tp or len(p.gpus) % sz.tp or len(p.gpus) // sz.tp < sz.replicas:
                    bad("inference_capacity", p.job, f"needs {sz.replicas} replicas x tp={sz.tp} on {gpu.name} "
                        f"at {p.power_cap_w:g} W; got {len(p.gpus)} GPUs with tp={p.tp}")
                    ok = False
                elif ok:
                    terms = inference_terms(inst, job, gpu, p.power_cap_w, len(p.gpus) // sz.tp)
        else:
            assert isinstance(job, FractionalTask)
            if len(p.gpus) != 1:
                bad("gang_size", p.job, f"a fractional task uses one GPU; got {len(p.gpus)}")
                ok = False
            if job.gpu_types and gpu.name not in job.gpu_types:
                bad("ineligible_gpu_type", p.job, f"{gpu.name} is not among its GPU types {list(job.gpu_types)}")
                ok = False
            if ok:
                terms = fractional_terms(inst, job, gpu)
        # capacity
        for g in p.gpus:
            used_nodes.add(gpu_node[g])
            gpus_used.add(g)
            if isinstance(job, FractionalTask):
                frac_milli[g] += job.gpu_milli
                frac_mem[g] += job.memory_gib
                frac_jobs[g].append(job.id)
                if g in whole_owner:
                    bad("gpu_capacity", p.job, f"GPU {g} is already used whole by '{whole_owner[g]}'")
            else:
                if g in whole_owner:
                    bad("gpu_capacity", p.job, f"GPU {g} is already used by '{whole_owner[g]}'")
                elif g in frac_jobs:
                    bad("gpu_capacity", p.job, f"GPU {g} is shared by fractional tasks {frac_jobs[g]}")
                whole_owner[g] = p.job
        if terms is not None:
            energy_active += terms.energy_kwh
            power_active += terms.power_w
            slo_violations += int(terms.late)
            tardiness_h += terms.tardiness_h
            migrations += int(migrated)
            job_costs += weighted(inst, terms, migrated)
    for g, milli in frac_milli.items():
        gpu = inst.gpu_type(inst.node(gpu_node[g]).gpu_type)
        if milli > 1000:
            bad("fractional_capacity", ",".join(frac_jobs[g]), f"GPU {g} holds {milli} milli-GPU (> 1000)")
        if frac_mem[g] > gpu.memory_gib + 1e-9:
            bad("memory", ",".join(frac_jobs[g]), f"GPU {g} holds {frac_mem[g]:g} GiB (> {gpu.memory_gib:g})")

    # non-preemptible running jobs must be placed at all
    unplaced = 0
    unplaced_gpus = 0.0
    preemptions = 0
    unplaced_cost = 0.0
    stats = _type_stats(inst)  # once, not per unplaced job
    for job in inst.jobs():
        if job.id in seen_jobs:
            continue
        if job.running is not None:
            if not job.preemptible:
                bad("non_preemptible_moved", job.id, "non-preemptible running job was preempted")
            preemptions += 1
        unplaced += 1
        terms_u = unplaced_terms(inst, job, stats)
        unplaced_cost += terms_u.cost(inst, job)
        unplaced_gpus += terms_u.gpus
        slo_violations += int(terms_u.late)
        tardiness_h += terms_u.tardiness_h

    # powered-down nodes
    off = set()
    known_nodes = set(gpu_node.values()) | {n.id for n in inst.nodes}
    for nid in decision.powered_off_nodes:
        if nid not in known_nodes:
            bad("unknown_node", "", f"powered-off node '{nid}' does not exist")
            continue
        if not w.allow_power_down:
            bad("power_down_not_allowed", "", f"node '{nid}' powered down but the objective forbids it")
        if nid in used_nodes:
            bad("powered_off_node_used", "", f"node '{nid}' is powered down but runs work")
        off.add(nid)
    idle_w = 0.0
    for n in inst.nodes:
        if n.id not in off:
            idle_w += n.host_power_w + n.gpu_count * inst.gpu_type(n.gpu_type).idle_w
    energy_idle = w.pue * idle_w * w.horizon_s / 3.6e6
    power_w = idle_w + power_active
    if inst.power_budget_w is not None and power_w > inst.power_budget_w + 1e-6:
        bad("power_budget", "", f"cluster power {power_w:.1f} W exceeds the budget {inst.power_budget_w:.1f} W")
    objective = w.energy_per_kwh * energy_idle + job_costs + unplaced_cost
    metrics = {
        "objective": objective,
        "energy_kwh": energy_idle + energy_active,
        "energy_active_kwh": energy_active,
        "energy_idle_kwh": energy_idle,
        "slo_violations": float(slo_violations),
        "tardiness_h": tardiness_h,
        "unplaced": float(unplaced),
        "unplaced_gpus": unplaced_gpus,
        "preemptions": float(preemptions),
        "migrations": float(migrations),
        "power_w": power_w,
        "gpus_used": float(len(gpus_used)),
        "gpus_total": float(inst.num_gpus),
        "nodes_powered_off": float(len(off)),
    }
    return CheckReport(tuple(viol), objective, metrics)
