r"""Large-neighbourhood search (LNS) over any exact backend, starting from the warm start
(:func:`solver.heuristics.pricing.warm_start`: the better of greedy and ``lp-greedy``).

A *neighbourhood* is a set of nodes and a set of jobs allowed to move. Its
sub-instance holds only those nodes; every other job that sits on them is *frozen*:
it becomes a non-preemptible running job on the GPUs it has in the incumbent (power
cap still free). Jobs elsewhere keep their placement and are left out. The exact
backend (CP-SAT by default) solves the sub-instance warm-started from the incumbent;
the merged decision (outside placements + the sub-solution) is judged by
:func:`solver.checker.check` on the full instance and accepted if it is cheaper.

The objective separates: full objective = (terms of the nodes and jobs of the
sub-instance) + (terms of everything outside), and the outside does not change, so an
improvement of the sub-instance's checked objective is an improvement of the whole; the
full check is run only then, to confirm it.

Neighbourhoods follow the problem (:data:`NEIGHBOURHOODS`, used in rotation):

* ``rack``: the nodes of one rack, their jobs and the costliest unplaced jobs that could run there;
* ``gpu-type``: racks of one GPU type up to the size limit, and unplaced jobs of that type;
* ``deadline``: the training jobs with the least slack to their deadline, their nodes and
  the nodes of their types with the most free GPUs;
* ``fragmented``: the nodes with the highest FGD fragmentation (:mod:`solver.heuristics.fgd`).

The size limit adapts per neighbourhood kind: it grows by half (up to ``MAX_GPUS`` and
``MAX_JOBS``) after a sub-problem solved to optimality in under half its time, and
shrinks by a third after one that was not. Each iteration costs one sub-model solve plus an
O(GPUs) merge; the loop is anytime and stops at the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from solver.checker import check
from solver.compiled import CompiledInstance
from solver.heuristics.fgd import FULL_MILLI, fragmentation, workload_classes
from solver.heuristics.policies import shortest_duration_s
from solver.methods import MethodOutput, available, get_method
from solver.model import FractionalTask, InferenceService, Instance, Job, Running, TrainingJob
from solver.portfolio import CHECK_S_PER_ITEM
from solver.result import Decision, Placement, Status
from solver.stop import Deadline

__all__ = [
    "NEIGHBOURHOODS",
    "Incumbent",
    "Iteration",
    "LnsResult",
    "Neighbourhood",
    "SubProblem",
    "lns_improve",
    "lns_method",
    "lns_search",
    "sub_problem",
]

#: Exact backends tried in order for the sub-problems.
SUB_BACKENDS = ("cpsat", "milp-highs", "milp-cbc")
MIN_ITERATION_S = 0.5
#: Seconds a sub-solve may run past its limit (the backend's child is killed 0.5 s after it).
SUB_OVERRUN_S = 0.6
#: Largest neighbourhood the adaptation grows to.
MAX_GPUS = 512
MAX_JOBS = 160


@dataclass(frozen=True)
class Neighbourhood:
    """Nodes whose capacity is re-optimized and the jobs that may move onto them."""

    kind: str
    nodes: frozenset[int]
    jobs: frozenset[int]


class Incumbent:
    """A checked decision in index form: GPUs of each placed job, jobs on each node."""

    def __init__(self, ci: CompiledInstance, decision: Decision, objective: float) -> None:
        self.decision = decision
        self.objective = objective
        self.placement: dict[int, Placement] = {ci.job_index[p.job]: p for p in decision.placements}
        self.gpus: dict[int, list[int]] = {j: [ci.gpu_index[g] for g in p.gpus] for j, p in self.placement.items()}
        self.node_jobs: dict[int, set[int]] = {}
        for j, gpus in self.gpus.items():
            for g in gpus:
                self.node_jobs.setdefault(int(ci.gpu_node[g]), set()).add(j)
        self.off = frozenset(decision.powered_off_nodes)

    def job_nodes(self, ci: CompiledInstance, j: int) -> set[int]:
        return {int(ci.gpu_node[g]) for g in self.gpus.get(j, [])}

    def free_milli(self, ci: CompiledInstance) -> np.ndarray:
        """Free share of every GPU (milli-GPU; 0 when used whole)."""
        free = np.full(len(ci.gpu_ids), FULL_MILLI, dtype=np.int64)
        for j, gpus in self.gpus.items():
            job = ci.jobs[j]
            for g in gpus:
                free[g] = free[g] - job.gpu_milli if isinstance(job, FractionalTask) else 0
        return free


@dataclass(frozen=True)
class SubProblem:
    """A neighbourhood's sub-instance, its warm start and what stays outside."""

    instance: Instance
    hint: Decision
    outside: tuple[Placement, ...]
    outside_off: tuple[str, ...]
    free_jobs: int
    frozen_jobs: int


def _freeze(job: Job, p: Placement) -> Job:
    """``job`` as a non-preemptible running job on its incumbent GPUs."""
    if isinstance(job, TrainingJob):
        return replace(job, preemptible=False, running=Running(p.gpus, p.power_cap_w, 0.0, job.remaining_work))
    assert isinstance(job, InferenceService | FractionalTask)
    return replace(job, preemptible=False, running=Running(p.gpus, p.power_cap_w))


def sub_problem(ci: CompiledInstance, inc: Incumbent, nb: Neighbourhood, power_w: float | None = None) -> SubProblem:
    """The sub-instance of ``nb`` (see the module docstring).

    The node set is closed: a frozen job spanning other nodes pulls them in, and a job
    whose original running GPUs lie outside cannot move (frozen if placed, left out if not).
    ``power_w`` is the incumbent's cluster power, needed only with a power budget.
    """
    inst = ci.instance
    nodes = set(nb.nodes)

    def running_nodes(job: Job) -> set[int]:
        if job.running is None:
            return set()
        return {int(ci.gpu_node[ci.gpu_index[g]]) for g in job.running.gpus}

    while True:
        touched = {j for v in nodes for j in inc.node_jobs.get(v, ())}
        free = {j for j in nb.jobs if (j in touched or j not in inc.gpus) and inc.job_nodes(ci, j) <= nodes
                and running_nodes(ci.jobs[j]) <= nodes}
        frozen = touched - free
        grow = set().union(*(inc.job_nodes(ci, j) for j in frozen)) - nodes if frozen else set()
        if not grow:
            break
        nodes |= grow
    sub_jobs: list[Job] = []
    for j, job in enumerate(ci.jobs):
        if j in free:
            sub_jobs.append(job)
        elif j in frozen:
            sub_jobs.append(_freeze(job, inc.placement[j]))
    in_sub = {job.id for job in sub_jobs}
    order = sorted(nodes)
    sub_node_ids = {inst.nodes[v].id for v in order}
    budget = inst.power_budget_w
    hint = Decision(tuple(p for p in inc.decision.placements if p.job in in_sub),
                    tuple(n for n in inc.off if n in sub_node_ids))
    sub = inst.replace(
        name=f"{inst.name}/lns-{nb.kind}",
        nodes=tuple(inst.nodes[v] for v in order),
        training_jobs=tuple(j for j in sub_jobs if isinstance(j, TrainingJob)),
        inference_services=tuple(j for j in sub_jobs if isinstance(j, InferenceService)),
        fractional_tasks=tuple(j for j in sub_jobs if isinstance(j, FractionalTask)),
    )
    if budget is not None:
        assert power_w is not None, "the incumbent's power is needed with a power budget"
        sub_power = check(sub, hint).metrics["power_w"]
        sub = sub.replace(power_budget_w=budget - (power_w - sub_power))
    outside = tuple(p for p in inc.decision.placements if p.job not in in_sub)
    outside_off = tuple(n for n in inc.off if n not in sub_node_ids)
    return SubProblem(sub, hint, outside, outside_off, len(free), len(frozen))


# ---------------------------------------------------------------- neighbourhoods
NeighbourhoodFn = Callable[[CompiledInstance, Incumbent, np.random.Generator, int, int], Neighbourhood | None]


def _take_nodes(ci: CompiledInstance, ordered: list[int], max_gpus: int) -> set[int]:
    out: set[int] = set()
    gpus = 0
    for v in ordered:
        n = ci.instance.nodes[v].gpu_count
        if out and gpus + n > max_gpus:
            break
        out.add(v)
        gpus += n
    return out


def _unplaced_for(ci: CompiledInstance, inc: Incumbent, types: set[int], k: int) -> list[int]:
    """Up to ``k`` unplaced, movable jobs with an option on ``types``, costliest penalty first."""
    cands = [j for j in range(len(ci.jobs)) if j not in inc.gpus and ci.jobs[j].running is None
             and any(o.type_index in types for o in ci.options[j])]
    cands.sort(key=lambda j: (-float(ci.unplaced_penalty[j]), j))
    return cands[:k]


def _with_jobs(kind: str, ci: CompiledInstance, inc: Incumbent, nodes: set[int], max_jobs: int,
               extra: list[int] | None = None) -> Neighbourhood | None:
    if not nodes:
        return None
    types = {ci.type_index[ci.instance.nodes[v].gpu_type] for v in nodes}
    on = sorted({j for v in nodes for j in inc.node_jobs.get(v, ())})
    chosen = list(dict.fromkeys((extra or []) + on))[:max_jobs]
    room = max(0, max_jobs - len(chosen))
    chosen += [j for j in _unplaced_for(ci, inc, types, room + len(chosen)) if j not in chosen][:room]
    return Neighbourhood(kind, frozenset(nodes), frozenset(chosen))


def rack_neighbourhood(ci: CompiledInstance, inc: Incumbent, rng: np.random.Generator, max_gpus: int,
                       max_jobs: int) -> Neighbourhood | None:
    """One rack (a random part of it when it exceeds ``max_gpus``)."""
    r = int(rng.integers(len(ci.rack_names)))
    members = [v for v in range(len(ci.instance.nodes)) if int(ci.node_rack[v]) == r]
    members = [members[i] for i in rng.permutation(len(members))]
    return _with_jobs("rack", ci, inc, _take_nodes(ci, members, max_gpus), max_jobs)


def type_neighbourhood(ci: CompiledInstance, inc: Incumbent, rng: np.random.Generator, max_gpus: int,
                       max_jobs: int) -> Neighbourhood | None:
    """Racks of one GPU type, in random order, up to ``max_gpus``."""
    inst = ci.instance
    present = sorted({ci.type_index[n.gpu_type] for n in inst.nodes})
    t = present[int(rng.integers(len(present)))]
    racks = sorted({int(ci.node_rack[v]) for v, n in enumerate(inst.nodes) if ci.type_index[n.gpu_type] == t})
    order = [racks[i] for i in rng.permutation(len(racks))]
    nodes = [v for r in order for v, n in enumerate(inst.nodes)
             if int(ci.node_rack[v]) == r and ci.type_index[n.gpu_type] == t]
    return _with_jobs("gpu-type", ci, inc, _take_nodes(ci, nodes, max_gpus), max_jobs)


def deadline_neighbourhood(ci: CompiledInstance, inc: Incumbent, rng: np.random.Generator, max_gpus: int,
                           max_jobs: int) -> Neighbourhood | None:
    """The jobs nearest their deadline, their nodes and the freest nodes of their types."""
    inst = ci.instance
    horizon = inst.objective.horizon_s
    slack = []
    for j, job in enumerate(ci.jobs):
        if isinstance(job, TrainingJob) and job.deadline_s is not None and ci.options[j] and (
                job.preemptible or job.running is None):
            slack.append((job.deadline_s - inst.now_s - shortest_duration_s(job, horizon), j))
    if not slack:
        return None
    slack.sort()
    pool = [j for _, j in slack[: 3 * max(1, max_jobs // 4)]]
    picked = sorted(pool[i] for i in rng.permutation(len(pool))[: max(1, max_jobs // 4)])
    nodes: list[int] = sorted(set().union(*(inc.job_nodes(ci, j) for j in picked)))
    types = {o.type_index for j in picked for o in ci.options[j]}
    used = np.zeros(len(inst.nodes), dtype=np.int64)
    for gpus in inc.gpus.values():
        for g in gpus:
            used[int(ci.gpu_node[g])] += 1
    spare = [v for v, n in enumerate(inst.nodes) if ci.type_index[n.gpu_type] in types and v not in nodes]
    spare.sort(key=lambda v: (used[v] - inst.nodes[v].gpu_count, v))
    return _with_jobs("deadline", ci, inc, _take_nodes(ci, nodes + spare, max_gpus), max_jobs, extra=picked)


def fragmented_neighbourhood(ci: CompiledInstance, inc: Incumbent, rng: np.random.Generator, max_gpus: int,
                             max_jobs: int) -> Neighbourhood | None:
    """The nodes with the highest FGD fragmentation (ties broken at random)."""
    inst = ci.instance
    classes = workload_classes(ci)
    free = inc.free_milli(ci)
    frag = np.zeros(len(inst.nodes))
    start = 0
    for v, n in enumerate(inst.nodes):
        frag[v] = fragmentation(free[start:start + n.gpu_count], ci.type_index[n.gpu_type], classes)
        start += n.gpu_count
    noise = rng.random(len(inst.nodes))
    order = [int(v) for v in np.lexsort((noise, -frag)) if frag[v] > 0]
    return _with_jobs("fragmented", ci, inc, _take_nodes(ci, order, max_gpus), max_jobs)


NEIGHBOURHOODS: dict[str, NeighbourhoodFn] = {
    "rack": rack_neighbourhood,
    "gpu-type": type_neighbourhood,
    "deadline": deadline_neighbourhood,
    "fragmented": fragmented_neighbourhood,
}


# ---------------------------------------------------------------- the search
@dataclass(frozen=True)
class Iteration:
    """One LNS step: its neighbourhood, the sub-solve outcome and whether it was accepted."""

    kind: str
    gpus: int
    free_jobs: int
    frozen_jobs: int
    status: Status
    objective: float
    accepted: bool
    runtime_s: float


@dataclass(frozen=True)
class LnsResult:
    """Best checked decision, its objective and the iterations made."""

    decision: Decision
    objective: float
    start_objective: float
    iterations: tuple[Iteration, ...] = field(default=())

    def summary(self) -> str:
        acc = sum(1 for it in self.iterations if it.accepted)
        return (f"LNS: {len(self.iterations)} iterations, {acc} improving, objective "
                f"{self.start_objective:.6g} -> {self.objective:.6g}")


SubSolver = Callable[[CompiledInstance, Deadline, Decision | None, int], MethodOutput]


def lns_search(
    ci: CompiledInstance,
    deadline: Deadline,
    start: Decision,
    seed: int = 0,
    *,
    solver: SubSolver | None = None,
    max_gpus: int = 64,
    max_jobs: int = 40,
    iteration_limit_s: float = 5.0,
    kinds: tuple[str, ...] = tuple(NEIGHBOURHOODS),
) -> LnsResult:
    """Improve ``start`` by LNS until ``deadline``.

    Parameters
    ----------
    solver
        Exact method for the sub-instances (default: the first available of
        :data:`SUB_BACKENDS`).
    max_gpus, max_jobs
        Initial neighbourhood size (adapted as the search goes).
    iteration_limit_s
        Time limit of one sub-solve.
    kinds
        Neighbourhood kinds used in rotation (keys of :data:`NEIGHBOURHOODS`).
    """
    inst = ci.instance
    report = check(inst, start, ci.topology)
    if not report.valid:
        raise ValueError(f"LNS start decision is invalid: {report.violations[0]}")
    overrun_s = SUB_OVERRUN_S + CHECK_S_PER_ITEM * (len(ci.gpu_ids) + len(ci.jobs))
    if deadline.remaining() <= MIN_ITERATION_S + overrun_s:  # no iteration fits: skip importing a backend
        return LnsResult(start, report.objective, report.objective)
    if solver is None:
        name = next((m for m in SUB_BACKENDS if available(m)), None)
        if name is None:
            return LnsResult(start, report.objective, report.objective)
        solver = get_method(name)
    inc = Incumbent(ci, start, report.objective)
    power_w = report.metrics["power_w"]
    rng = np.random.default_rng(seed)
    iterations: list[Iteration] = []
    size = {k: (max_gpus, max_jobs) for k in kinds}  # adapted per neighbourhood kind
    it = 0
    while deadline.remaining() > MIN_ITERATION_S + overrun_s:
        t0 = time.perf_counter()
        kind = kinds[it % len(kinds)]
        it += 1
        nb = NEIGHBOURHOODS[kind](ci, inc, rng, *size[kind])
        if nb is None or not nb.jobs:
            if it > 4 * len(kinds) and not iterations:
                break
            continue
        sp = sub_problem(ci, inc, nb, power_w)
        sub_ci = CompiledInstance(sp.instance)
        limit = min(iteration_limit_s, deadline.remaining() - overrun_s)
        out = solver(sub_ci, Deadline(limit), sp.hint, seed + it)
        accepted = False
        objective = inc.objective
        if out.decision is not None:
            before = check(sp.instance, sp.hint, sub_ci.topology)
            after = check(sp.instance, out.decision, sub_ci.topology)
            if after.valid and after.objective < before.objective - 1e-7 * max(1.0, abs(before.objective)):
                merged = Decision(sp.outside + out.decision.placements,
                                  sp.outside_off + out.decision.powered_off_nodes)
                full = check(inst, merged, ci.topology)
                if full.valid and full.objective < inc.objective - 1e-9:
                    inc = Incumbent(ci, merged, full.objective)
                    power_w = full.metrics["power_w"]
                    objective, accepted = full.objective, True
        gpus = sum(n.gpu_count for n in sp.instance.nodes)
        iterations.append(Iteration(kind, gpus, sp.free_jobs, sp.frozen_jobs, out.status, objective, accepted,
                                    time.perf_counter() - t0))
        g, n = size[kind]
        if out.status == Status.OPTIMAL and time.perf_counter() - t0 < 0.5 * limit:
            size[kind] = (min(MAX_GPUS, g * 3 // 2), min(MAX_JOBS, n * 3 // 2))
        elif out.status != Status.OPTIMAL:
            size[kind] = (max(8, g * 2 // 3), max(4, n * 2 // 3))
    return LnsResult(inc.decision, inc.objective, report.objective, tuple(iterations))


def lns_improve(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """LNS from ``hint`` (the portfolio's best decision, when valid) or the warm start, without a bound
    (for portfolios; :func:`solver.heuristics.pricing.start_decision`)."""
    from solver.heuristics.pricing import start_decision

    return _lns_from(ci, deadline, start_decision(ci, deadline, hint), seed)


def _lns_from(ci: CompiledInstance, deadline: Deadline, start: Decision, seed: int) -> MethodOutput:
    res = lns_search(ci, deadline, start, seed)
    return MethodOutput(res.decision, Status.FEASIBLE, None, res.summary(), res.objective)


def lns_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """LNS from ``hint`` (when valid and better) or the warm start, with the LP bound when available.

    A share of the time (a fifth) goes to ``formulations.lower_bound`` so that the result has a gap.
    """
    from solver.heuristics.pricing import warm_start
    from solver.portfolio import global_lower_bound

    bound = None
    lower_bound = global_lower_bound() if deadline.remaining() > 2.0 else None  # imports the backends
    if lower_bound is not None:
        try:
            bound = lower_bound(ci, deadline.sub(0.2))
        except Exception:  # a failing bound leaves the search without a gap, nothing more
            bound = None
    start = warm_start(ci, deadline)
    if hint is not None:
        given = ci.check(hint)
        if given.valid and given.objective < ci.check(start).objective:
            start = hint
    out = _lns_from(ci, deadline, start, seed)
    return MethodOutput(out.decision, out.status, bound, out.message, out.objective)
