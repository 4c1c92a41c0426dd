r"""The ``auto`` method: a portfolio that always answers within the time limit.

Policy (the table :data:`PLANS` by instance size, each stage a share of the time left):

1. **Heuristics first.** ``greedy`` always runs first (about 1 s on 10,240 GPUs), with a
   deadline that leaves room for the checks (if it expires, the jobs not yet considered
   stay unplaced); its checked decision is the fallback and the warm start of every later
   stage. ``lp-greedy`` (greedy guided by GPU prices from the type-level LP,
   :mod:`solver.heuristics.pricing`) follows in every size class when the time left
   exceeds ``GUIDED_BUDGET_FACTOR`` times what greedy took. The other
   heuristics (``fgd``, ``energy-greedy``, ``edf``, ``sjf``) follow while they are cheap
   compared with the budget (each is allowed only if the time left exceeds
   ``HEURISTIC_BUDGET_FACTOR`` times what greedy took).
2. **A bound.** ``formulations.lower_bound`` (LP relaxation) on small instances; on
   medium ones HiGHS reports its own MIP bound, on larger ones the RINS stage solves the
   LP relaxation itself and reports it as its bound.
3. **Improvement**, by size class: the exact model on small instances (CP-SAT, else the
   MILP backends); on medium ones (<= 1,024 GPUs, 400 jobs) HiGHS on the full model with all
   the time (10 s, medium seeds 0-4 x solver seeds 0-3: HiGHS proved 20 of 20 runs, in 1.6-6.6 s,
   CP-SAT 15-17 of 20; given 60 s CP-SAT proves all five in 1.6-11.5 s); on large
   ones RINS with all the time (LP, a few tight fixing rounds, then a placement-fixing
   round), then CP-SAT large-neighbourhood search when at least 2 s remain. With two usable
   cores the RINS stage starts before the heuristics (:data:`EARLY_STAGES`): its child builds
   the model and solves the LP relaxation on the second core while greedy and ``lp-greedy``
   run, then takes their best decision as its hint (when the time covers the model and the LP:
   :data:`EARLY_PREP_S_PER_ITEM`). Each stage is
   warm-started from the best decision so far, and once the best decision is proven
   optimal the later stages are skipped.

Every stage is an :class:`~solver.result.Attempt` with its own status; a stage that
raises, times out or returns a decision the checker rejects is recorded, never raised.
The returned decision is the best *checked* one; the bound is the best proven bound of
any attempt. Stages run with sub-deadlines that leave room for the final check of
:func:`solver.solve`, so the call stays within the limit (the 10% margin of the issue
is for the backends that stop late).

Complexity: the heuristics are O(jobs x candidate placements); the rest is bounded by
the time limit.
"""

from __future__ import annotations

import importlib
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol, cast

from solver.compiled import CompiledInstance
from solver.heuristics.methods import greedy_method
from solver.methods import REGISTRY, Method, MethodOutput, available, get_method
from solver.result import Attempt, Decision, Status
from solver.stop import Deadline

__all__ = ["PLANS", "Candidate", "Plan", "Stage", "auto_method", "global_lower_bound", "run_attempt", "size_class"]

#: Run another heuristic only if the time left exceeds this many greedy runtimes.
HEURISTIC_BUDGET_FACTOR = 20.0
#: Run ``lp-greedy`` only if the time left exceeds this many greedy runtimes (its two LPs and passes
#: took 2.5-5 greedy runtimes on medium to xl: 0.1 s on medium, 0.4 s on large, 2.4-2.7 s on xl).
#: It keeps the time limit itself, and ``auto`` keeps the best decision, so it cannot make the answer
#: worse. With 8 (before 2026-11-27), xl s4 at 3.5-4.5 s returned greedy's 14,955; with 5, 9,509.
GUIDED_BUDGET_FACTOR = 5.0
GUIDED_HEURISTIC = "lp-greedy"
#: Fraction of the limit kept for the final check of :func:`solver.solve` (plus the measured check time).
RESERVE_FRACTION = 0.03
#: Seconds a stage may run past its deadline (an exact backend's child is killed 0.1 s after it).
STAGE_OVERRUN_S = 0.25
#: Seconds per GPU plus job that one check (or building the topology index) takes: measured ~1e-5 on xl
#: (10,240 GPUs + 4,955 jobs: topology 0.24 s, check 0.10 s), with a 20% margin. Since then the index
#: takes ~0.12 s and a check ~0.08 s; the value is kept as a margin for a loaded machine.
CHECK_S_PER_ITEM = 1.2e-5
EXTRA_HEURISTICS = ("fgd", "energy-greedy", "edf", "sjf")
#: Stages that ``auto`` runs through a variant without its own bound (``auto`` computes one once).
STAGE_VARIANTS: dict[str, str] = {"lns": "solver.lns:lns_improve", "pop": "solver.decompose:pop_improve",
                                   "rins": "formulations.milp:solve_highs_rins"}
EXACT_BACKENDS = ("cpsat", "milp-highs", "milp-cbc")
#: Stage variants ``auto`` starts before the heuristics when it has two cores: the stage's child
#: builds the model and solves the LP relaxation on the second core while greedy and ``lp-greedy``
#: make its hint (``start(ci, deadline, seed) -> run`` with ``send_hint``, ``result`` and ``cancel``).
EARLY_STAGES: dict[str, str] = {"rins": "formulations.milp:start_highs_rins"}
#: Start a stage early only when its budget covers building the model and solving the LP relaxation,
#: estimated at this many seconds per GPU plus job (measured: 0.6-1.1 s on large, 3,048 items; 4-6 s on
#: xl, 15,240 items), plus :data:`EARLY_MIN_WORK_S` for its rounds. Otherwise the stage runs (or is
#: skipped) after the heuristics as before: on xl at 3 s an early child was killed unused and ``auto``
#: returned greedy's decision at 2.6 s instead of 1.3 s; on large at 3 s the early start helps
#: (1435.8 against 1454.8 on s0).
EARLY_PREP_S_PER_ITEM = 3.3e-4
EARLY_MIN_WORK_S = 0.5


class _EarlyRun(Protocol):
    def send_hint(self, hint: Decision | None) -> None: ...

    def result(self) -> MethodOutput: ...

    def cancel(self) -> None: ...


@dataclass(frozen=True)
class Stage:
    """One improvement stage: a method (or the first available of several), its share of the
    time left, and the least time (s) worth starting it with."""

    methods: tuple[str, ...]
    share: float
    min_s: float = 0.2


@dataclass(frozen=True)
class Plan:
    """What ``auto`` runs after the heuristics for one size class."""

    max_gpus: int
    max_jobs: int
    bound_share: float
    stages: tuple[Stage, ...]
    #: Run the other heuristics after greedy (when cheap); off where the first stage needs the time more.
    extra_heuristics: bool = True


#: Size classes, smallest first; an instance takes the first plan it fits.
#: ``rins`` (HiGHS on RINS sub-MIPs around the incumbent, :func:`formulations.milp.solve_highs_rins`)
#: solves the LP relaxation itself and reports it as its bound, so plans that start with it
#: skip the separate LP-bound step (``bound_share`` 0); LNS then uses what is left.
PLANS: tuple[Plan, ...] = (
    Plan(256, 120, 0.1, (Stage(EXACT_BACKENDS, 1.0),)),
    Plan(1024, 400, 0.0, (Stage(("milp-highs", "cpsat"), 1.0, min_s=1.0),)),
    Plan(1 << 62, 1 << 62, 0.0, (Stage(("rins", "lns"), 1.0, min_s=2.0), Stage(("lns",), 1.0, min_s=2.0)),
         extra_heuristics=False),
)


def size_class(ci: CompiledInstance) -> Plan:
    """The plan of ``ci`` by GPUs and jobs."""
    for plan in PLANS:
        if len(ci.gpu_ids) <= plan.max_gpus and len(ci.jobs) <= plan.max_jobs:
            return plan
    return PLANS[-1]


@dataclass(frozen=True)
class Candidate:
    """A checked decision with its objective."""

    decision: Decision
    objective: float


def run_attempt(
    name: str,
    fn: Callable[[], MethodOutput],
    ci: CompiledInstance,
) -> tuple[Attempt, Candidate | None, float | None]:
    """Run one method call as an attempt: catch failures, check the decision.

    Returns the attempt, the checked candidate (None when there is none) and the
    method's proven bound (None when it has none or it was dropped as inconsistent).
    """
    from solver.solve import normalize

    start = time.perf_counter()
    try:
        out = fn()
    except Exception as exc:  # a crashing backend is an attempt with a status
        msg = f"{type(exc).__name__}: {exc} [{traceback.format_exc(limit=2).splitlines()[-1]}]"
        return Attempt(name, Status.ERROR, None, None, time.perf_counter() - start, msg), None, None
    cand = None
    objective = None
    message = out.message
    if out.decision is not None:
        report = ci.check(out.decision)
        if report.valid:
            objective = report.objective
            cand = Candidate(out.decision, objective)
        else:
            message = "decision rejected by the checker: " + "; ".join(str(v) for v in report.violations[:3])
            out = MethodOutput(None, Status.ERROR, out.bound, message, build_s=out.build_s)
    status, bound, message = normalize(
        MethodOutput(out.decision, out.status, out.bound, message), objective)
    return Attempt(name, status, objective, bound, time.perf_counter() - start, message, out.build_s), cand, bound


def auto_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """Heuristics, a bound, then exact / LNS / decomposition by size; the best checked decision.

    See the module docstring for the policy. ``hint`` is tried as a candidate too (it
    is checked like any other decision) and seeds the improvement stages if it is best.
    """
    attempts: list[Attempt] = []
    best: Candidate | None = None
    bounds: list[float] = []
    reserve_s = RESERVE_FRACTION * deadline.limit_s

    def record(att: Attempt, cand: Candidate | None, bound: float | None) -> None:
        nonlocal best
        attempts.append(att)
        if cand is not None and (best is None or cand.objective < best.objective - 1e-9):
            best = cand
        if bound is not None:
            bounds.append(bound)

    def left() -> float:
        return deadline.remaining() - reserve_s

    plan = size_class(ci)
    items = len(ci.gpu_ids) + len(ci.jobs)
    # after greedy: room for solve()'s final check only (it reuses the report of the best attempt)
    stage_reserve_s = RESERVE_FRACTION * deadline.limit_s + CHECK_S_PER_ITEM * items
    early = _start_early(plan, ci, deadline, seed, stage_reserve_s)
    try:
        # room for checking: the topology index (built once), our check of greedy and of the hint; solve()'s
        # final check of the best decision reuses the report of its attempt (CompiledInstance.check)
        checks = (1 if "topology" in vars(ci) else 2) + (hint is not None)
        reserve_s += CHECK_S_PER_ITEM * items * checks
        t0 = time.perf_counter()
        greedy_deadline = Deadline(max(0.0, left()))
        record(*run_attempt("greedy", partial(greedy_method, ci, greedy_deadline, None, seed), ci))
        greedy_s = time.perf_counter() - t0
        reserve_s = stage_reserve_s
        if hint is not None:
            record(*run_attempt("hint", lambda: MethodOutput(hint, Status.FEASIBLE), ci))
        if available(GUIDED_HEURISTIC) and left() > GUIDED_BUDGET_FACTOR * greedy_s:
            guided_deadline = Deadline(max(0.0, left()))
            guided = partial(get_method(GUIDED_HEURISTIC), ci, guided_deadline, None, seed)
            record(*run_attempt(GUIDED_HEURISTIC, guided, ci))
        for name in EXTRA_HEURISTICS if plan.extra_heuristics else ():
            if available(name) and left() > HEURISTIC_BUDGET_FACTOR * greedy_s:
                fn = get_method(name)
                record(*run_attempt(name, partial(fn, ci, deadline, None, seed), ci))
        if plan.bound_share > 0 and left() > 0.2 and global_lower_bound() is not None:
            sub = Deadline(max(0.0, left()) * plan.bound_share)
            record(*_bound_attempt(ci, sub))
        for i, stage in enumerate(plan.stages):
            if best is not None and bounds and _proven(best.objective, max(bounds)):
                break  # proven optimal: the later stages cannot improve it
            if i == 0 and early is not None:
                name, run = early
                run.send_hint(best.decision if best is not None else hint)
                record(*run_attempt(name, run.result, ci))
                continue
            chosen = next((m for m in stage.methods if _available(m)), None)
            if chosen is None:
                attempts.append(Attempt("/".join(stage.methods), Status.ERROR, None, None, 0.0,
                                        "not available in this build"))
                continue
            budget = left() * stage.share - STAGE_OVERRUN_S
            if budget < stage.min_s:
                attempts.append(Attempt(chosen, Status.NO_SOLUTION, None, None, 0.0,
                                        f"skipped: {max(budget, 0.0):.1f} s left, needs {stage.min_s:g} s"))
                continue
            fn = _stage_function(chosen)
            start_hint = best.decision if best is not None else hint
            record(*run_attempt(chosen, partial(fn, ci, Deadline(budget), start_hint, seed), ci))
        bound = max(bounds) if bounds else None
        if best is None:
            return MethodOutput(None, Status.NO_SOLUTION, bound, "no method produced a checked decision",
                                attempts=tuple(attempts))
        winner = min((a for a in attempts if a.objective is not None), key=lambda a: a.objective or 0.0)
        return MethodOutput(best.decision, Status.FEASIBLE, bound, f"best of {len(attempts)} attempts: {winner.method}",
                            objective=best.objective, attempts=tuple(attempts))
    finally:
        if early is not None:
            early[1].cancel()  # a no-op once its result was read; kills it if a stage before proved the optimum


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _start_early(plan: Plan, ci: CompiledInstance, deadline: Deadline, seed: int,
                 reserve_s: float) -> tuple[str, _EarlyRun] | None:
    """Start the plan's first stage now when it is an :data:`EARLY_STAGES` variant and two cores are
    usable; its deadline is the one it would get as the first stage (its share of the time left
    minus the reserve), so the heuristics overlap with its hint-free work."""
    if not plan.stages or _cores() < 2:
        return None
    stage = plan.stages[0]
    chosen = next((m for m in stage.methods if _available(m)), None)
    if chosen is None or chosen not in EARLY_STAGES or chosen not in STAGE_VARIANTS:
        return None
    budget = (deadline.remaining() - reserve_s) * stage.share - STAGE_OVERRUN_S
    if budget < max(stage.min_s, EARLY_PREP_S_PER_ITEM * (len(ci.gpu_ids) + len(ci.jobs)) + EARLY_MIN_WORK_S):
        return None
    start = _resolve(EARLY_STAGES[chosen])
    if start is None:
        return None
    return chosen, cast(_EarlyRun, start(ci, Deadline(budget), seed))


def _proven(objective: float, bound: float) -> bool:
    """The objective is proven optimal by the bound (the tolerance of :func:`solver.solve.normalize`)."""
    from solver.solve import OPTIMAL_RTOL

    return objective - bound <= OPTIMAL_RTOL * max(1.0, abs(objective))


def _resolve(path: str) -> Callable[..., object] | None:
    """The function named by ``"module:function"``, None if it does not import."""
    module, func = path.split(":")
    try:
        fn: Callable[..., object] | None = getattr(importlib.import_module(module), func, None)
    except ImportError:
        return None
    return fn


def _available(name: str) -> bool:
    """A stage variant (importable) or a registered, available method."""
    if name in STAGE_VARIANTS:
        return _resolve(STAGE_VARIANTS[name]) is not None
    return name in REGISTRY and available(name)


def _stage_function(name: str) -> Method:
    if name in STAGE_VARIANTS:
        fn = _resolve(STAGE_VARIANTS[name])
        assert fn is not None, STAGE_VARIANTS[name]  # _available() was checked first
        return cast(Method, fn)
    return get_method(name)


def global_lower_bound() -> Callable[[CompiledInstance, Deadline], float | None] | None:
    """``formulations.lower_bound`` (LP relaxation) when this build has it, else None."""
    try:
        import formulations
    except ImportError:  # pragma: no cover - the package ships with solver
        return None
    fn: Callable[[CompiledInstance, Deadline], float | None] | None = getattr(formulations, "lower_bound", None)
    return fn


def _bound_attempt(ci: CompiledInstance, deadline: Deadline) -> tuple[Attempt, None, float | None]:
    """The LP-relaxation bound as an attempt (no decision)."""
    lower_bound = global_lower_bound()
    assert lower_bound is not None
    start = time.perf_counter()
    try:
        bound = lower_bound(ci, deadline)
    except Exception as exc:  # a failing bound is an attempt with a status
        return Attempt("lp-bound", Status.ERROR, None, None, time.perf_counter() - start,
                       f"{type(exc).__name__}: {exc}"), None, None
    status = Status.NO_SOLUTION
    msg = "LP relaxation bound" if bound is not None else "no bound within the time limit"
    return Attempt("lp-bound", status, None, bound, time.perf_counter() - start, msg), None, bound
