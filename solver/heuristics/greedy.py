"""Topology-aware best-fit greedy: the fast baseline, the fallback and the warm start.

Order: running jobs first (kept on their GPUs, best power cap chosen), then pending
jobs by priority (high first), deadline (earliest first) and size (largest first).
For each job, every option (GPU type, gang size, power cap) is tried at its tightest
placement (:meth:`ClusterState.find_gang`); the option with the lowest exact objective
contribution wins, counting the energy of powering an idle node. Empty nodes are
powered down at the end when the objective allows it. Complexity is about
O(jobs x options x NVLink domains).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from solver.compiled import CompiledInstance, Option, gc_paused
from solver.heuristics.state import ClusterState
from solver.model import FractionalTask, Job
from solver.result import Decision, Placement
from solver.stop import Deadline

__all__ = ["FractionFinder", "default_order", "greedy_decision"]

OrderKey = Callable[[Job], tuple[float, ...]]
#: Chooses the GPU of a fractional task: (state, job index, allowed type indices) -> GPU index or None.
FractionFinder = Callable[[ClusterState, int, set[int]], int | None]


def default_order(job: Job) -> tuple[float, ...]:
    """Priority desc, deadline asc, GPUs desc."""
    deadline = getattr(job, "deadline_s", None)
    size = job.gpu_milli / 1000 if isinstance(job, FractionalTask) else getattr(job, "num_gpus", 1)
    return (-job.priority, deadline if deadline is not None else math.inf, -float(size))


def greedy_decision(
    ci: CompiledInstance,
    order: OrderKey = default_order,
    option_key: Callable[[CompiledInstance, Option, int, float], float] | None = None,
    skip: Sequence[str] = (),
    fraction_finder: FractionFinder | None = None,
    deadline: Deadline | None = None,
    shadow: Callable[[Option], float] | None = None,
    release: frozenset[int] = frozenset(),
) -> Decision:
    """Build a feasible decision greedily.

    Parameters
    ----------
    ci
        Compiled instance.
    order
        Sort key of pending jobs.
    option_key
        Score of (option, tier, extra node energy kWh); lower is better. Defaults to the
        exact weighted objective contribution.
    skip
        Job ids to leave unplaced.
    fraction_finder
        Picks the GPU of a pending fractional task among all its options' types at once
        (e.g. FGD); the option of that GPU's type is then scored. Defaults to best fit
        per option (:meth:`ClusterState.find_fraction`).
    deadline
        When it expires, the pending jobs not yet considered are left unplaced (running
        jobs are always kept), so the decision stays feasible and arrives in time.
    shadow
        A shadow cost of the capacity an option takes (e.g. LP prices of GPUs, see
        :mod:`~solver.heuristics.pricing`), added to an option's score when options are
        compared; whether to place the job at all still compares its score without it
        against the unplaced penalty. None: no shadow cost.
    release
        Indices of preemptible running jobs to treat as pending (moved or left out; a
        placement other than their own GPUs is scored with their migration cost), e.g. those
        the LP of
        :func:`~solver.heuristics.pricing.type_prices` does not keep.
    """
    with gc_paused():  # a bounded pass that allocates many short- and long-lived objects
        return _greedy_pass(ci, order, option_key, skip, fraction_finder, deadline, shadow, release)


def _greedy_pass(
    ci: CompiledInstance,
    order: OrderKey,
    option_key: Callable[[CompiledInstance, Option, int, float], float] | None,
    skip: Sequence[str],
    fraction_finder: FractionFinder | None,
    deadline: Deadline | None,
    shadow: Callable[[Option], float] | None = None,
    release: frozenset[int] = frozenset(),
) -> Decision:
    """The pass of :func:`greedy_decision` (same parameters)."""
    inst = ci.instance
    state = ClusterState(ci)
    w = inst.objective
    placements: list[Placement] = []
    power_w = 0.0
    n_nodes = len(inst.nodes)
    powered = [False] * n_nodes
    budget = inst.power_budget_w if inst.power_budget_w is not None else math.inf
    skipped = set(skip)
    # plain-Python copies of the per-GPU and per-node data read in the loop (same values)
    gpu_node: list[int] = ci.gpu_node.tolist()
    gpu_ids = ci.gpu_ids
    node_watts = [ci.node_idle_power_w(v) for v in range(n_nodes)]
    node_kwh = [ci.node_energy_kwh(v) for v in range(n_nodes)] if w.allow_power_down else []
    penalty: list[float] = ci.unplaced_penalty.tolist()

    def node_cost(gpus: list[int]) -> tuple[float, float]:
        new = {gpu_node[g] for g in gpus if not powered[gpu_node[g]]}
        watts = sum(node_watts[v] for v in new)
        kwh = sum(node_kwh[v] for v in new) if w.allow_power_down else 0.0
        return kwh, watts

    def score(opt: Option, tier: int, extra_kwh: float, migrated: bool = False) -> float:
        if option_key is not None:
            return option_key(ci, opt, tier, extra_kwh)
        return opt.cost(inst, tier, migrated) + w.energy_per_kwh * extra_kwh

    def commit(j: int, opt: Option, gpus: list[int], extra_w: float) -> None:
        nonlocal power_w
        job = ci.jobs[j]
        if isinstance(job, FractionalTask):
            state.take_fraction(gpus[0], job.gpu_milli, job.memory_gib)
        else:
            state.take_whole(gpus)
        for g in gpus:
            powered[gpu_node[g]] = True
        power_w += extra_w + opt.terms[0][0].power_w
        placements.append(Placement(job.id, tuple(gpu_ids[g] for g in gpus), opt.power_cap_w,
                                    inst.now_s, opt.tp))

    if not w.allow_power_down:
        powered = [True] * n_nodes
        power_w = sum(ci.node_idle_power_w(v) for v in range(n_nodes))

    # running jobs: keep them where they are
    pending: list[int] = []
    for j, job in enumerate(ci.jobs):
        if job.running is None:
            if job.id not in skipped:
                pending.append(j)
            continue
        gpus = [ci.gpu_index[g] for g in job.running.gpus]
        tier = ci.tier(gpus)
        t = int(ci.gpu_type[gpus[0]])
        fits = [o for o in ci.options[j] if o.type_index == t and o.num_gpus == len(gpus)]
        usable = fits and j not in release and (state.is_free(gpus) or isinstance(job, FractionalTask))
        if not usable and job.preemptible:
            pending.append(j)
            continue
        if not fits:
            continue  # cannot happen for a validated instance
        extra_kwh, extra_w = node_cost(gpus)
        best = min(fits, key=lambda o: score(o, tier, extra_kwh))
        commit(j, best, gpus, extra_w)

    pending.sort(key=lambda j: order(ci.jobs[j]))
    mem_cap = {k: t.memory_gib for k, t in enumerate(inst.gpu_types)}
    every = 8 if fraction_finder is not None else 64  # a finder such as FGD scores every GPU: ~5 ms a task on xl
    for done, j in enumerate(pending):
        if deadline is not None and done % every == 0 and deadline.expired():
            break
        job = ci.jobs[j]
        fractional = isinstance(job, FractionalTask)
        best_rank, best_pick = math.inf, None
        # GPUs, tier and node cost depend only on the (type, size, tp) key of an option
        tried: dict[tuple[int, int, int], tuple[list[int], int, float, float] | None] = {}
        if fraction_finder is not None and fractional:
            g_pick = fraction_finder(state, j, {o.type_index for o in ci.options[j]})
            for opt in ci.options[j]:
                hit = g_pick is not None and int(ci.gpu_type[g_pick]) == opt.type_index
                tried[(opt.type_index, opt.num_gpus, opt.tp)] = (
                    ([g_pick], 0, *node_cost([g_pick])) if hit and g_pick is not None else None)
        for opt in ci.options[j]:
            key = (opt.type_index, opt.num_gpus, opt.tp)
            if key in tried:
                where = tried[key]
            else:
                if fractional:
                    assert isinstance(job, FractionalTask)
                    g = state.find_fraction({opt.type_index}, job.gpu_milli, job.memory_gib, mem_cap)
                    found = None if g is None else ([g], 0)  # one GPU: NVLink tier
                else:
                    found = state.find_gang_tier(opt.type_index, opt.num_gpus, opt.tp)
                where = None if found is None else (found[0], found[1], *node_cost(found[0]))
                tried[key] = where
            if where is None:
                continue
            gpus, tier, extra_kwh, extra_w = where
            t_opt = opt.terms[tier][0]
            if power_w + extra_w + t_opt.power_w > budget + 1e-6:
                continue
            # a released running job moves unless it lands on its own GPUs again
            moved = job.running is not None and {gpu_ids[g] for g in gpus} != set(job.running.gpus)
            val = score(opt, tier, extra_kwh, moved)
            if val >= penalty[j] - 1e-12:  # placing must beat leaving the job unplaced
                continue
            rank = val + shadow(opt) if shadow is not None else val
            if rank < best_rank - 1e-12:
                best_rank, best_pick = rank, (opt, gpus, extra_w)
        if best_pick is not None:
            commit(j, *best_pick)
    off: tuple[str, ...] = ()
    if w.allow_power_down:
        off = tuple(inst.nodes[v].id for v in range(n_nodes) if not powered[v])
    return Decision(tuple(placements), off)
