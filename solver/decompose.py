r"""POP-style decomposition by topology domain, with exact capacity.

After Narayanan et al., "Solving Large-Scale Granular Resource Allocation Problems
Efficiently with POP" (SOSP'21), adapted to placement: the cluster is split into
:math:`k` parts made of whole topology domains (pods, or racks when there are fewer
than two pods), so every part is a sub-instance holding exactly its own nodes and no
capacity is lost to rounding. Domains joined by a running job are kept in one part.

1. **Split** (:func:`split_nodes`): units (pods or racks, merged by running jobs) are
   dealt to parts largest first, each to the part with the fewest GPUs of the unit's
   type, then the fewest GPUs (balanced per type and in total).
2. **Assign jobs** (:func:`assign_jobs`): a running job goes with its nodes; a job the
   start decision placed goes to the part holding most of its GPUs; an unplaced job
   goes to the part with the most free GPUs of its types left by the start (then that
   capacity is counted as taken), so work is spread where capacity is. The start is the
   warm start (:func:`solver.heuristics.pricing.warm_start`: the better of greedy and
   ``lp-greedy``) or a better hint.
3. **Solve** every part with an exact backend in parallel processes (``PARALLEL``
   workers), warm-started from the start decision restricted to the part; a part whose
   solve fails keeps that restriction (always feasible inside the part).
4. **Merge** the part decisions (the objective is separable: each node and job belongs
   to exactly one part), check the merged decision on the full instance (the start is
   kept if the merge is worse, e.g. when parts ran out of time) and report its loss
   against the global lower bound (``formulations.lower_bound``).

Complexity: O(jobs + GPUs) to split and merge, plus the part solves (bounded by the
time limit; parts are solved in ``ceil(k / PARALLEL)`` waves).
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections import defaultdict
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from solver.checker import check
from solver.compiled import CompiledInstance
from solver.heuristics.pricing import start_decision, warm_start
from solver.methods import MethodOutput, available
from solver.model import FractionalTask, InferenceService, Instance, TrainingJob
from solver.portfolio import CHECK_S_PER_ITEM
from solver.result import Decision, Placement, Status
from solver.stop import Deadline

__all__ = ["PartResult", "assign_jobs", "part_instance", "pop_decompose", "pop_improve", "pop_method",
           "split_nodes"]

#: Exact backends tried in order for the parts.
PART_BACKENDS = ("cpsat", "milp-highs", "milp-cbc")
#: Worker processes (the reference machine has 2 cores).
PARALLEL = 2
#: Target GPUs per part.
PART_GPUS = 256
#: Seconds kept for starting the worker processes (forked).
STARTUP_S = 0.5
#: Seconds a part's solve may run past its limit (an exact backend's child is killed
#: ``formulations.runner.GRACE_S`` = 0.1 s after it; then decoding and the part's check).
PART_OVERRUN_S = 0.3
#: Below this many seconds per part the parts are not started: the start decision is returned.
MIN_PART_S = 0.2
NO_TIME = "no time left for the parts"


def _units(ci: CompiledInstance) -> list[list[int]]:
    """Pods (or racks with fewer than two pods) as node lists, merged when a running job spans them."""
    inst = ci.instance
    level = ci.node_pod if len(ci.pod_names) >= 2 else ci.node_rack
    parent = list(range(int(level.max()) + 1))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for job in ci.jobs:
        if job.running is None:
            continue
        us = {int(level[ci.gpu_node[ci.gpu_index[g]]]) for g in job.running.gpus}
        first = find(us.pop())
        for u in us:
            parent[find(u)] = first
    groups: dict[int, list[int]] = defaultdict(list)
    for v in range(len(inst.nodes)):
        groups[find(int(level[v]))].append(v)
    return [groups[k] for k in sorted(groups)]


def split_nodes(ci: CompiledInstance, n_parts: int) -> list[list[int]]:
    """Node indices of each part (see the module docstring); at most as many parts as units."""
    inst = ci.instance
    units = _units(ci)
    k = max(1, min(n_parts, len(units)))
    parts: list[list[int]] = [[] for _ in range(k)]
    total = [0] * k
    by_type: list[dict[str, int]] = [defaultdict(int) for _ in range(k)]

    def size(u: list[int]) -> int:
        return sum(inst.nodes[v].gpu_count for v in u)

    for u in sorted(units, key=lambda u: (-size(u), u[0])):
        t = inst.nodes[u[0]].gpu_type
        p = min(range(k), key=lambda p: (by_type[p][t], total[p], p))
        parts[p].extend(u)
        total[p] += size(u)
        by_type[p][t] += size(u)
    return [sorted(p) for p in parts]


def assign_jobs(ci: CompiledInstance, parts: list[list[int]], start: Decision) -> list[list[int]]:
    """Job indices of each part (see the module docstring)."""
    inst = ci.instance
    part_of = np.empty(len(inst.nodes), dtype=np.int64)
    for p, nodes in enumerate(parts):
        part_of[nodes] = p
    free: list[dict[int, float]] = [defaultdict(float) for _ in parts]
    for v, node in enumerate(inst.nodes):
        free[int(part_of[v])][ci.type_index[node.gpu_type]] += node.gpu_count
    placed = {ci.job_index[p.job]: [ci.gpu_index[g] for g in p.gpus] for p in start.placements}
    out: list[list[int]] = [[] for _ in parts]
    unplaced: list[int] = []
    for j, job in enumerate(ci.jobs):
        gpus = [ci.gpu_index[g] for g in job.running.gpus] if job.running is not None else placed.get(j)
        if gpus is None:
            unplaced.append(j)
            continue
        counts = np.bincount(part_of[ci.gpu_node[gpus]], minlength=len(parts))
        p = int(np.argmax(counts))
        out[p].append(j)
        if j in placed:
            used = job.gpu_milli / 1000.0 if isinstance(job, FractionalTask) else 1.0
            for g in placed[j]:
                free[int(part_of[ci.gpu_node[g]])][int(ci.gpu_type[g])] -= used
    for j in sorted(unplaced, key=lambda j: (-float(ci.unplaced_penalty[j]), j)):
        opts = ci.options[j]
        if not opts:
            out[0].append(j)
            continue
        p, t = max(((p, o.type_index) for p in range(len(parts)) for o in opts),
                   key=lambda pt: (free[pt[0]][pt[1]], -pt[0]))
        out[p].append(j)
        need = min(o.num_gpus * o.milli / 1000.0 for o in opts)
        free[p][t] -= need
    return [sorted(js) for js in out]


def part_instance(ci: CompiledInstance, nodes: list[int], jobs: list[int], index: int) -> Instance:
    """The sub-instance of one part: exactly its nodes and its jobs."""
    inst = ci.instance
    js = [ci.jobs[j] for j in jobs]
    return inst.replace(
        name=f"{inst.name}/part{index}",
        nodes=tuple(inst.nodes[v] for v in nodes),
        training_jobs=tuple(j for j in js if isinstance(j, TrainingJob)),
        inference_services=tuple(j for j in js if isinstance(j, InferenceService)),
        fractional_tasks=tuple(j for j in js if isinstance(j, FractionalTask)),
    )


@dataclass(frozen=True)
class PartResult:
    """Outcome of one part's solve (what a worker process sends back)."""

    index: int
    decision: Decision | None
    status: Status
    objective: float | None
    bound: float | None
    runtime_s: float
    message: str = ""


def _solve_part(index: int, sub: Instance, method: str, time_limit_s: float, hint: Decision,
                seed: int) -> PartResult:
    """Worker: solve one part with ``method`` (the decision is checked by :func:`solver.solve`)."""
    from solver.solve import solve

    r = solve(sub, method, time_limit_s=max(0.1, time_limit_s), hint=hint, seed=seed)
    return PartResult(index, r.decision, r.status, r.objective, r.bound, r.runtime_s,
                      r.attempts[-1].message if r.attempts else "")


def _restrict(dec: Decision, sub: Instance) -> Decision:
    """The placements of ``dec`` that lie inside ``sub`` (jobs and nodes)."""
    node_ids = {n.id for n in sub.nodes}
    jobs = {j.id for j in sub.jobs()}
    keep = tuple(p for p in dec.placements if p.job in jobs and all(g.rsplit("/", 1)[0] in node_ids for g in p.gpus))
    return Decision(keep, tuple(n for n in dec.powered_off_nodes if n in node_ids))


@dataclass(frozen=True)
class PopResult:
    """The merged decision, its checked objective and the parts' outcomes."""

    decision: Decision
    objective: float
    parts: tuple[PartResult, ...]
    method: str
    kept_start: bool = False

    @property
    def note(self) -> str:
        """Why the start decision was kept ("" when the merge was)."""
        if not self.kept_start:
            return ""
        if self.parts and all(p.message == NO_TIME for p in self.parts):
            return f" ({NO_TIME}: start kept)"
        return " (the merge was worse: start kept)"


def pop_decompose(ci: CompiledInstance, deadline: Deadline, start: Decision, seed: int = 0,
                  n_parts: int | None = None, method: str | None = None) -> PopResult:
    """Split, solve the parts in parallel processes, merge and check (see the module docstring)."""
    inst = ci.instance
    k = n_parts if n_parts is not None else max(2, math.ceil(len(ci.gpu_ids) / PART_GPUS))
    parts = split_nodes(ci, k)
    check_s = CHECK_S_PER_ITEM * (len(ci.gpu_ids) + len(ci.jobs))  # checking the merged decision at the end
    waves = math.ceil(len(parts) / PARALLEL)
    per_part_s = (deadline.remaining() - STARTUP_S - check_s) / waves - PART_OVERRUN_S
    if per_part_s < MIN_PART_S:  # no time for the parts: the start stands
        first = check(inst, start, ci.topology)
        late = tuple(PartResult(i, None, Status.NO_SOLUTION, None, None, 0.0, NO_TIME) for i in range(len(parts)))
        return PopResult(start, first.objective, late, method or "", kept_start=True)
    jobs = assign_jobs(ci, parts, start)
    subs = [part_instance(ci, nodes, js, i) for i, (nodes, js) in enumerate(zip(parts, jobs, strict=True))]
    hints = [_restrict(start, s) for s in subs]
    # looked up only now: importing a backend (OR-Tools) takes ~0.4 s
    chosen = method or next((m for m in PART_BACKENDS if available(m)), "greedy")
    results: list[PartResult] = []
    # fork: no re-import of the caller's __main__ (spawn would need a guarded script)
    pool = ProcessPoolExecutor(max_workers=min(PARALLEL, len(subs)), mp_context=multiprocessing.get_context("fork"))
    try:
        futures: list[Future[PartResult]] = [
            pool.submit(_solve_part, i, s, chosen, per_part_s, h, seed)
            for i, (s, h) in enumerate(zip(subs, hints, strict=True))]
        first = check(inst, start, ci.topology)  # while the parts run
        wait(futures, timeout=max(0.0, deadline.remaining() - check_s))
        for i, fut in enumerate(futures):  # a part that failed or is late keeps its start restriction
            if not fut.done():
                results.append(PartResult(i, None, Status.NO_SOLUTION, None, None, 0.0, "not done by the deadline"))
            elif (exc := fut.exception()) is not None:
                results.append(PartResult(i, None, Status.ERROR, None, None, 0.0, f"{type(exc).__name__}: {exc}"))
            else:
                results.append(fut.result())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    placements: list[Placement] = []
    off: list[str] = []
    for r, h in zip(results, hints, strict=True):
        dec = r.decision if r.decision is not None else h
        placements.extend(dec.placements)
        off.extend(dec.powered_off_nodes)
    merged = Decision(tuple(placements), tuple(off))
    report = check(inst, merged, ci.topology)
    if not report.valid or report.objective > first.objective:  # never worse than the start
        return PopResult(start, first.objective, tuple(results), chosen, kept_start=True)
    return PopResult(merged, report.objective, tuple(results), chosen)


def _pop_name(res: PopResult) -> str:
    return f"POP-{len(res.parts)}" + (f" with {res.method}" if res.method else "")


def pop_improve(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """POP from ``hint`` (the portfolio's best decision, when valid) or the warm start, without a bound
    (for portfolios; :func:`solver.heuristics.pricing.start_decision`)."""
    res = pop_decompose(ci, deadline, start_decision(ci, deadline, hint), seed)
    ok = sum(1 for r in res.parts if r.decision is not None)
    msg = (f"{_pop_name(res)}: {ok}/{len(res.parts)} parts solved"
           + res.note)
    return MethodOutput(res.decision, Status.FEASIBLE, None, msg, res.objective)


def pop_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """POP decomposition from the warm start; the bound is the global LP bound when available."""
    from solver.portfolio import global_lower_bound

    t0 = time.perf_counter()
    start = warm_start(ci, deadline)  # the better of greedy and lp-greedy, each cut at the deadline
    bound = None
    lower_bound = global_lower_bound() if deadline.remaining() > 2.0 else None  # imports the backends
    if lower_bound is not None:
        try:
            bound = lower_bound(ci, deadline.sub(0.2))
        except Exception:  # no bound, no gap: the decision still stands
            bound = None
    res = pop_decompose(ci, deadline, start, seed)
    ok = sum(1 for r in res.parts if r.decision is not None)
    msg = (f"{_pop_name(res)}: {ok}/{len(res.parts)} parts solved, objective "
           f"{res.objective:.6g}" + res.note)
    if bound is not None:
        loss = (res.objective - bound) / max(abs(res.objective), 1e-9)
        msg += f", global bound {bound:.6g}, loss <= {100 * loss:.3f}%"
    msg += f" ({time.perf_counter() - t0:.1f} s)"
    return MethodOutput(res.decision, Status.FEASIBLE, bound, msg, res.objective)
