"""The one entry point: :func:`solve`.

``solve`` compiles the instance, runs the method within a mandatory time limit, checks
the decision with the independent checker and normalizes the status. It always returns
a :class:`~solver.result.Result`; only invalid input (or an unknown method) raises.
"""

from __future__ import annotations

import time
import traceback

from solver.compiled import CompiledInstance, gc_paused
from solver.methods import MethodOutput, get_method
from solver.model import Instance
from solver.result import Attempt, Decision, Result, Status, relative_gap

__all__ = ["normalize", "solve"]

OPTIMAL_RTOL = 1e-6


def normalize(out: MethodOutput, objective: float | None) -> tuple[Status, float | None, str]:
    """Status and bound after comparing the method's claims with the checked objective.

    ``optimal`` survives only if the bound equals the objective within 1e-6 relative
    (1e-6 absolute near zero). A bound above the objective would be a modelling bug:
    it is dropped and reported rather than trusted.
    """
    bound = out.bound
    msg = out.message
    if objective is None:
        return (out.status if out.status in (Status.INFEASIBLE, Status.NO_SOLUTION, Status.ERROR)
                else Status.NO_SOLUTION), bound, msg
    if bound is not None and bound > objective + OPTIMAL_RTOL * max(1.0, abs(objective)):
        msg = (msg + "; " if msg else "") + f"bound {bound:.6g} exceeds checked objective {objective:.6g}: dropped"
        bound = None
    gap = relative_gap(objective, bound)
    if gap is not None and (gap <= OPTIMAL_RTOL or objective - (bound or 0.0) <= OPTIMAL_RTOL):
        return Status.OPTIMAL, bound, msg
    return Status.FEASIBLE, bound, msg


def solve(
    instance: Instance,
    method: str = "greedy",
    *,
    time_limit_s: float,
    hint: Decision | None = None,
    seed: int = 0,
    compiled: CompiledInstance | None = None,
) -> Result:
    """Solve a snapshot problem.

    Parameters
    ----------
    instance
        The problem (see :func:`solver.load_instance`).
    method
        A name from :func:`solver.methods.method_names` (``greedy``, ``cpsat``, ``milp-cbc``,
        ``milp-highs``, ``auto`` ... as available).
    time_limit_s
        Mandatory wall-clock limit in seconds, model building included.
    hint
        A previous decision used as a warm start by methods that accept one.
    seed
        Random seed for methods that use randomness.
    compiled
        A precompiled form of ``instance`` to reuse.

    Returns
    -------
    Result
        Status, checked objective, proven bound, gap, runtime, metrics and attempts.
        The decision has passed :func:`solver.check`; an invalid solver output is
        returned as status ``error`` without a decision.
    """
    if not time_limit_s > 0:
        raise ValueError(f"time_limit_s must be > 0 (got {time_limit_s})")
    from solver.stop import Deadline

    start = time.perf_counter()
    deadline = Deadline(time_limit_s)
    fn = get_method(method)
    if compiled is not None:
        ci = compiled
    else:
        with gc_paused():
            ci = CompiledInstance(instance)
    compiled_s = time.perf_counter() - start
    try:
        out = fn(ci, deadline, hint, seed)
    except Exception as exc:  # a crashing backend is an attempt with a status, not an exception
        out = MethodOutput(None, Status.ERROR, None, f"{type(exc).__name__}: {exc} "
                           f"[{traceback.format_exc(limit=2).splitlines()[-1]}]")
    decision, objective, metrics = out.decision, None, {}
    message = out.message
    if decision is not None:
        report = ci.check(decision, instance)  # once: a portfolio's decision was checked already
        if report.valid:
            objective, metrics = report.objective, report.metrics
        else:
            message = "decision rejected by the checker: " + "; ".join(str(v) for v in report.violations[:5])
            decision = None
            out = MethodOutput(None, Status.ERROR, out.bound, message, build_s=out.build_s)
    status, bound, message = normalize(
        MethodOutput(decision, out.status, out.bound, message, attempts=out.attempts), objective)
    runtime = time.perf_counter() - start
    # the method's build is timed from the deadline's start, which precedes compiling
    build_s = min(runtime, compiled_s if out.build_s is None else max(out.build_s, compiled_s))
    attempts = out_attempts(out, method, status, objective, bound, runtime, message, build_s)
    return Result(status=status, objective=objective, bound=bound, runtime_s=runtime, method=method,
                  decision=decision, metrics=metrics, attempts=attempts, instance_name=instance.name,
                  build_s=build_s)


def out_attempts(out: MethodOutput, method: str, status: Status, objective: float | None,
                 bound: float | None, runtime: float, message: str,
                 build_s: float | None = None) -> tuple[Attempt, ...]:
    """Attempts of a single-method solve (a portfolio method reports its own)."""
    if out.attempts:
        return out.attempts
    return (Attempt(method, status, objective, bound, runtime, message,
                    build_s if out.build_s is not None else None),)
