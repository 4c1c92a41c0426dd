r"""GPU prices from the type-level LP relaxation, and the greedy pass they guide (``lp-greedy``).

Plain greedy picks each job's cheapest option as if capacity were free. When GPUs are
scarce that is myopic: an inference service that runs slightly cheaper on an H100 takes
it, while the L4s it could use sit idle and a training job that can only use H100s stays
unplaced. Measured on the generated medium instances (512 GPUs), greedy left 109 L4s idle on
seed 1 while leaving 53 jobs unplaced.

The **type-level LP** sees only GPU counts per type: for pending job :math:`j` and option
:math:`o` (type :math:`k_o`, capacity need :math:`g_o`: its GPU count, or for a fractional
task :math:`\max(m_o/1000,\ \mu_o/M_{k_o})` of one GPU by milli-GPU and memory),

.. math::
    \min \sum_{j,o} (c_{jo} - p_j)\, x_{jo} \quad \text{s.t.} \quad
    \sum_o x_{jo} \le 1 \;\; \forall j, \qquad
    \sum_{j,o:\,k_o = k} g_o\, x_{jo} \le F_k \;\; \forall k \;\; (\lambda_k), \qquad
    \sum_{j,o} w_o\, x_{jo} \le B' \;\; (\lambda_W), \qquad 0 \le x \le 1,

with :math:`c_{jo}` the option's weighted cost at the tightest locality tier the type's
topology can hold, :math:`p_j` the unplaced penalty, :math:`F_k` the GPUs of type
:math:`k` that running jobs leave free, and the power row only under a cluster power
budget (:math:`B'` = budget minus every node's idle power and the running jobs' power).
The duals :math:`\lambda_k \ge 0` price one GPU of type :math:`k`, :math:`\lambda_W` one
watt. The LP ignores topology and fragmentation, so it is a guide, not a bound.

:func:`lp_greedy_decision` then runs :func:`~solver.heuristics.greedy.greedy_decision`
with the jobs the LP places (:math:`\sum_o x_{jo} \ge 1/2`) first, each in the default
order, and options compared by :math:`\text{score} + \lambda_{k_o} g_o + \lambda_W w_o`
(whether a job is placed at all still compares its plain score with :math:`p_j`).
It makes two such passes and keeps the better: one with every running job kept (the LP
above), one from the LP in which a preemptible running job is a job like the others (its
own GPUs at their tier, any other option with its migration cost), where the running jobs
the LP keeps less than half are released: moved or left out by the pass. Plain greedy never
moves a running job; on medium seed 1 the second pass migrates 20 and preempts 7 and ends
at 1283.8 (greedy 2063.1, the first pass 1541.0, the optimum 1214.7).
:func:`warm_start` returns the better of plain greedy and ``lp-greedy`` by the checked
objective; the exact backends start from it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import highspy
import numpy as np

from solver.checker import CheckReport
from solver.compiled import CompiledInstance, Option
from solver.heuristics.greedy import default_order, greedy_decision
from solver.heuristics.methods import pass_output
from solver.highs import new_highs
from solver.methods import MethodOutput
from solver.model import Job
from solver.result import Decision
from solver.stop import Deadline

__all__ = ["TypePrices", "lp_greedy_decision", "lp_greedy_method", "start_decision", "type_prices", "warm_start"]

#: Seconds the type-level LP may take at most (it takes 0.03-0.3 s on medium and large, 1-1.7 s on xl).
LP_LIMIT_S = 2.0
#: The LP may take at most this share of the time left: the greedy pass it guides needs the rest
#: (xl at a 1 s limit: the LP took the time and the pass, cut short, left 86,045 against greedy's 16,939).
LP_TIME_SHARE = 0.5


@dataclass(frozen=True)
class TypePrices:
    """Duals of the type-level LP: objective units per GPU of each type and per watt,
    and the job indices the LP places (at least half)."""

    gpu: tuple[float, ...]
    watt: float
    placed: frozenset[int]
    #: Preemptible running jobs the LP does not keep on their GPUs (with ``running=True`` only).
    release: frozenset[int] = frozenset()

    def shadow(self, ci: CompiledInstance, o: Option) -> float:
        """:math:`\\lambda_{k_o} g_o + \\lambda_W w_o` of option ``o``."""
        return self.gpu[o.type_index] * need_gpus(ci, o) + self.watt * o.terms[0][0].power_w


def need_gpus(ci: CompiledInstance, o: Option) -> float:
    """GPUs option ``o`` takes: its count, or for a fractional task its larger share of one
    GPU by milli-GPU and by memory."""
    if o.milli >= 1000:
        return float(o.num_gpus)
    return max(o.milli / 1000.0, o.memory_gib / ci.instance.gpu_types[o.type_index].memory_gib)


def _tightest_tiers(ci: CompiledInstance) -> np.ndarray:
    """``most[k, t]``: the most GPUs of type ``k`` inside one unit of tier ``t``
    (NVLink domain, node, rack, pod, cluster)."""
    n_types = len(ci.instance.gpu_types)
    most = np.zeros((n_types, 5), dtype=np.int64)
    keys = (ci.gpu_domain, ci.gpu_node, ci.node_rack[ci.gpu_node], ci.node_pod[ci.gpu_node])
    for k in range(n_types):
        mask = ci.gpu_type == k
        if mask.any():
            for t, key in enumerate(keys):
                most[k, t] = np.bincount(key[mask]).max()
            most[k, 4] = int(mask.sum())
    return most


def type_prices(ci: CompiledInstance, deadline: Deadline | None = None, running: bool = False) -> TypePrices | None:
    """Solve the type-level LP (see the module docstring); None if it has nothing to
    price or HiGHS does not solve it in time.

    Parameters
    ----------
    running
        False: every running job keeps its GPUs (as plain greedy does). True: a preemptible
        running job is a column per option too, its own GPUs at their tier without a
        migration, any other option at the tightest tier with one; the jobs the LP keeps on
        their GPUs less than half are returned in :attr:`TypePrices.release`.
    """
    inst = ci.instance
    n_types = len(inst.gpu_types)
    free = np.bincount(ci.gpu_type, minlength=n_types).astype(np.float64)
    watts = (inst.power_budget_w - sum(ci.node_idle_power_w(v) for v in range(len(inst.nodes)))
             if inst.power_budget_w is not None else math.inf)
    most = _tightest_tiers(ci)
    cols_job: list[int] = []
    cols_opt: list[Option] = []
    cost: list[float] = []
    keeps: list[bool] = []

    def column(j: int, o: Option, c: float, keep: bool) -> None:
        cols_job.append(j)
        cols_opt.append(o)
        cost.append(c - float(ci.unplaced_penalty[j]))
        keeps.append(keep)

    for j, job in enumerate(ci.jobs):
        if job.running is not None:
            gpus = [ci.gpu_index[g] for g in job.running.gpus]
            k = int(ci.gpu_type[gpus[0]])
            kept = [o for o in ci.options[j] if o.type_index == k and o.num_gpus == len(gpus)]
            if running and job.preemptible:
                tier_now = ci.tier(gpus)
                for o in ci.options[j]:
                    if o in kept:
                        column(j, o, o.cost(inst, tier_now, False), True)
                    else:
                        column(j, o, o.cost(inst, _tier(most, o), True), False)
            elif kept:  # it stays where it is
                free[k] -= need_gpus(ci, kept[0])
                watts -= min(o.terms[0][0].power_w for o in kept)
            continue
        for o in ci.options[j]:
            column(j, o, o.cost(inst, _tier(most, o), False), False)
    if not cols_opt:
        return None
    n = len(cols_opt)
    # rows: one per job (at most one option), one per GPU type, the power budget
    job_rows = {j: r for r, j in enumerate(sorted(set(cols_job)))}
    n_rows = len(job_rows) + n_types + (1 if math.isfinite(watts) else 0)
    starts, index, value = [0], [], []
    for j, o in zip(cols_job, cols_opt, strict=True):
        index += [job_rows[j], len(job_rows) + o.type_index]
        value += [1.0, need_gpus(ci, o)]
        if math.isfinite(watts):
            index.append(n_rows - 1)
            value.append(o.terms[0][0].power_w)
        starts.append(len(index))
    upper = [1.0] * len(job_rows) + [max(0.0, f) for f in free] + ([max(0.0, watts)] if math.isfinite(watts) else [])
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, n_rows
    lp.col_cost_ = np.array(cost)
    lp.col_lower_, lp.col_upper_ = np.zeros(n), np.ones(n)
    lp.row_lower_, lp.row_upper_ = np.full(n_rows, -highspy.kHighsInf), np.array(upper)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value)
    limit = LP_LIMIT_S if deadline is None else min(LP_LIMIT_S, LP_TIME_SHARE * deadline.remaining())
    if limit <= 0:
        return None
    h = new_highs()
    h.setOptionValue("time_limit", float(limit))
    h.passModel(lp)
    # HiGHS keeps one task scheduler per process, fixed by the first run's thread count; a later run
    # with another count fails ("model status Not Set", see formulations.runner). Start from none and
    # leave none, so neither a caller's earlier HiGHS runs nor its later ones are affected.
    highspy.Highs.resetGlobalScheduler(False)
    try:
        h.run()
    finally:
        highspy.Highs.resetGlobalScheduler(False)
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    sol = h.getSolution()
    dual = np.asarray(sol.row_dual)
    x = np.asarray(sol.col_value)
    jobs = np.array(cols_job)
    share = np.zeros(len(ci.jobs))
    np.add.at(share, jobs, x)
    kept_share = np.zeros(len(ci.jobs))
    np.add.at(kept_share, jobs, x * np.array(keeps))
    gpu = tuple(float(max(0.0, -d)) for d in dual[len(job_rows):len(job_rows) + n_types])
    watt = float(max(0.0, -dual[-1])) if math.isfinite(watts) else 0.0
    pending = frozenset(j for j in range(len(ci.jobs)) if ci.jobs[j].running is None)
    release = frozenset(int(j) for j in set(cols_job) if ci.jobs[j].running is not None and kept_share[j] < 0.5)
    return TypePrices(gpu, watt, frozenset(int(j) for j in np.flatnonzero(share >= 0.5)) & pending, release)


def _tier(most: np.ndarray, o: Option) -> int:
    """The tightest tier whose units of the option's type hold its GPUs."""
    return next(t for t in range(5) if most[o.type_index, t] >= o.num_gpus)


def lp_greedy_decision(ci: CompiledInstance, deadline: Deadline | None = None) -> Decision:
    """Greedy guided by :func:`type_prices`: the better (checked objective) of a pass that
    keeps every running job and, when time allows, a pass from the LP with running jobs that
    releases the preemptible ones the LP moves or drops (plain greedy when no LP is solved)."""
    return _lp_greedy_checked(ci, deadline)[0]


def _lp_greedy_checked(ci: CompiledInstance, deadline: Deadline | None) -> tuple[Decision, CheckReport | None]:
    """:func:`lp_greedy_decision` and its check report when the comparison of the passes made one."""
    t0 = time.perf_counter()
    first = _guided(ci, type_prices(ci, deadline), deadline)
    spent = time.perf_counter() - t0
    if any(j.running is not None and j.preemptible for j in ci.jobs) and (
            deadline is None or deadline.remaining() > 2.0 * spent):
        second = _guided(ci, type_prices(ci, deadline, running=True), deadline)
        a, b = ci.check(first), ci.check(second)
        return (second, b) if b.objective < a.objective - 1e-9 else (first, a)
    return first, None


def _guided(ci: CompiledInstance, prices: TypePrices | None, deadline: Deadline | None) -> Decision:
    """One greedy pass with the LP's order, shadow prices and released jobs."""
    if prices is None:
        return greedy_decision(ci, deadline=deadline)
    index = ci.job_index
    placed = prices.placed

    def order(job: Job) -> tuple[float, ...]:
        return (0.0 if index[job.id] in placed else 1.0, *default_order(job))

    return greedy_decision(ci, order=order, deadline=deadline, shadow=lambda o: prices.shadow(ci, o),
                           release=prices.release)


def warm_start(ci: CompiledInstance, deadline: Deadline | None = None) -> Decision:
    """The better of plain greedy and :func:`lp_greedy_decision` by the checked objective
    (plain greedy on a tie); both are feasible by construction."""
    plain = greedy_decision(ci, deadline=deadline)
    if deadline is not None and deadline.expired():
        return plain
    guided, report = _lp_greedy_checked(ci, deadline)
    a, b = ci.check(plain), report or ci.check(guided)
    return guided if b.valid and (not a.valid or b.objective < a.objective - 1e-9) else plain


def start_decision(ci: CompiledInstance, deadline: Deadline, hint: Decision | None) -> Decision:
    """``hint`` when it passes the checker, else :func:`warm_start`.

    For the improvement stages of the ``auto`` portfolio: their hint is the portfolio's best
    checked decision so far, which already includes greedy and ``lp-greedy`` when they ran,
    so recomputing the warm start (3.5 s on xl) would only take time from the search.
    """
    if hint is not None and ci.check(hint).valid:
        return hint
    return warm_start(ci, deadline)


def lp_greedy_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """Greedy with GPU prices from the type-level LP; deterministic, ignores ``hint`` and ``seed``."""
    return pass_output(lp_greedy_decision(ci, deadline), deadline)

