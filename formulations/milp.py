r"""MILP backends: HiGHS (through ``highspy``) and CBC (through PuLP).

Both translate the same :class:`~formulations.linear.LinearModel`, so the constraint
families are identical to CP-SAT's. Bounds are read natively: HiGHS's
``mip_dual_bound``; CBC's best possible objective from its log, because PuLP reports
"Optimal" after a time limit. :func:`lower_bound` solves the LP relaxation with HiGHS.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt
import pulp

from formulations.model import ExactModel
from formulations.runner import Backend, BackendResult, BackendRun, Report, run_backend, start_backend
from solver.compiled import CompiledInstance
from solver.highs import new_highs
from solver.methods import MethodOutput
from solver.result import Decision, Status
from solver.stop import Deadline

__all__ = ["highs_model", "lower_bound", "solve_cbc", "solve_highs", "solve_highs_rins", "solve_rins_then_full",
           "start_highs_rins"]

DEFAULT_THREADS = 2
MIP_REL_GAP = 1e-7
#: HiGHS is given this share of the time left. It overran a 2 s limit by 2-3 s on large (in its root
#: LP; by 0.1 s at 5 s, 0.03 s on medium); the runner kills it at the deadline, and its improving
#: solutions are streamed as found (:func:`stream_improving_solutions`), so an overrun loses only the
#: final bound. Before the streaming this was 0.85, which left ~1.2 s of a 10 s limit unused on medium.
HIGHS_TIME_SHARE = 0.95
#: Most of the time the RINS stage gives its LP relaxation (it returns as soon as it is solved).
RINS_LP_SHARE = 0.5
#: Started before its hint (:func:`start_highs_rins`), the LP runs while the caller's heuristics make
#: the hint, so it may take most of the time left.
RINS_EARLY_LP_SHARE = 0.8
#: RINS: up to this many tight rounds (every agreeing variable fixed), each with at most this share
#: of the time left, while they improve; then one round fixing placement variables only, to the end.
RINS_FIRST_ROUNDS = 4
RINS_FIRST_SHARE = 0.3
#: The first tight round may take this share: it fixes the fewest variables and finds the largest
#: improvement (on xl it needs 1.8-2.8 s; with 0.3 of the ~4 s left at 10 s it ended without one).
RINS_OPENING_SHARE = 0.6
#: After the tight rounds, rounds that fix a random share (RINS_RANDOM_KEEP) of the agreeing variables, each
#: with this share of the time left: other neighbourhoods than the LP's. On large s0-s4 (auto, 10 s, two runs)
#: the worst gap went from 1.17% / 0.81% (s4) to 0.71% / 0.94%; s2/s3 lost 0.25-0.66 points to the shorter
#: final round.
RINS_RANDOM_ROUNDS = 2
RINS_RANDOM_KEEP = 0.8
RINS_RANDOM_SHARE = 0.34
#: Relative gap at which a RINS sub-MIP stops: a sub-MIP's own optimum proves nothing globally, and on
#: xl s4 HiGHS spent 18 of 30 s closing a sub-MIP's last 0.001%.
RINS_SUBMIP_GAP = 1e-5
#: Seconds kept back from HiGHS in a RINS round (HiGHS may stop a little late; the child is killed
#: at the deadline and only reports after a round).
RINS_MARGIN_S = 0.3
RINS_MARGIN_SHARE = 0.08
#: The method ``milp-rins`` (not the ``auto`` stage, which leaves that time to LNS) runs HiGHS on the full
#: model, hinted with the RINS incumbent, when its rounds end with at least this many seconds left: on small
#: instances the rounds converge in 0.1-0.3 s, and the method used to return there (small s4: 380.4 after
#: 0.18 s of a 10 s limit, the optimum is 65.4).
RINS_FULL_MIN_S = 1.0
#: Whole seconds CBC needs at least: with a MIP start and "-sec 1" its binary (PuLP's CBC 2.10)
#: crashed (segmentation fault) on large s3, which PuLP reports as an error; once it claimed the
#: model infeasible. With 2 s or more it stopped on time.
CBC_MIN_S = 2


def highs_model(model: ExactModel, limit_s: float, seed: int, threads: int, relax: bool = False) -> highspy.Highs:
    """The exact model as a silent HiGHS instance (its LP relaxation if ``relax``), not yet run."""
    lm = model.lm
    h = new_highs()
    h.setOptionValue("time_limit", float(max(limit_s, 0.01)))
    h.setOptionValue("random_seed", int(seed))
    h.setOptionValue("threads", int(threads))
    h.setOptionValue("mip_rel_gap", MIP_REL_GAP)
    h.setOptionValue("mip_abs_gap", MIP_REL_GAP)
    n = lm.num_vars
    inf = highspy.kHighsInf
    lb = np.array(lm.lb, dtype=np.float64)
    ub = np.array(lm.ub, dtype=np.float64)
    h.addVars(n, lb, ub)
    idx = np.arange(n, dtype=np.int32)
    h.changeColsCost(n, idx, lm.objective_array())
    h.changeObjectiveOffset(lm.constant)
    if not relax:
        h.changeColsIntegrality(n, idx, np.array([highspy.HighsVarType.kInteger] * n))
    starts, index, value = lm.csr()
    lo = np.array([max(r.lo, -inf) for r in lm.rows], dtype=np.float64)
    hi = np.array([min(r.hi, inf) for r in lm.rows], dtype=np.float64)
    if lm.rows:
        h.addRows(len(lm.rows), lo, hi, len(index), starts[:-1].astype(np.int32), index, value)
    return h


def stream_improving_solutions(h: highspy.Highs, model: ExactModel, report: Report) -> None:
    """Send every improving solution HiGHS finds to the parent as it is found (with HiGHS's
    global dual bound at that moment), so a run killed at the deadline still returns its best
    incumbent (HiGHS overran a 2 s limit by 2-3 s on large, in its root LP)."""
    lm = model.lm
    best = [math.inf]

    def improving(kind: highspy.cb.HighsCallbackType, message: str, out: highspy.cb.HighsCallbackOutput,
                  into: highspy.cb.HighsCallbackInput, user: Any) -> None:
        values = np.rint(np.asarray(out.mip_solution, dtype=np.float64))
        if len(values) != lm.num_vars or lm.violated(values):
            return
        objective = lm.evaluate(values)
        if objective < best[0] - 1e-9:
            best[0] = objective
            bound = float(out.mip_dual_bound)
            report(values, objective, bound if math.isfinite(bound) else None)

    h.setCallback(improving, None)
    h.startCallback(highspy.cb.HighsCallbackType.kCallbackMipImprovingSolution)


def _highs_backend(threads: int) -> Backend:
    def backend(model: ExactModel, hint_values: npt.NDArray[np.float64], limit_s: float, seed: int,
                report: Report) -> BackendResult:
        h = highs_model(model, HIGHS_TIME_SHARE * limit_s, seed, threads)
        sol = highspy.HighsSolution()
        sol.col_value = list(hint_values)
        h.setSolution(sol)
        stream_improving_solutions(h, model, report)
        run = h.run()
        ms = h.getModelStatus()
        info = h.getInfo()
        name = h.modelStatusToString(ms)
        if run == highspy.HighsStatus.kError:  # not solved: neither the values nor the bound mean anything
            return BackendResult(Status.ERROR, None, None, None, f"HiGHS failed to run (model status {name})")
        if ms == highspy.HighsModelStatus.kInfeasible:
            return BackendResult(Status.INFEASIBLE, None, None, None, "HiGHS proved the model infeasible")
        bound = float(info.mip_dual_bound) if math.isfinite(info.mip_dual_bound) else None
        if info.primal_solution_status != 2:  # kSolutionStatusFeasible
            return BackendResult(Status.NO_SOLUTION, None, None, bound, f"HiGHS: {name}")
        values = np.array(h.getSolution().col_value, dtype=np.float64)
        status = Status.OPTIMAL if ms == highspy.HighsModelStatus.kOptimal else Status.FEASIBLE
        return BackendResult(status, values, model.lm.evaluate(np.rint(values)), bound, f"HiGHS {name}")

    return backend


class _RinsBackend:
    """LP relaxation, then HiGHS on RINS sub-MIPs (Danna, Rothberg and Le Pape 2005) around the
    incumbent: the variables on which the LP optimum and the incumbent agree are fixed.

    Rounds: up to :data:`RINS_FIRST_ROUNDS` tight rounds fixing every such variable (small
    sub-MIPs that HiGHS solves in a second or two; they stop once one does not improve), then
    :data:`RINS_RANDOM_ROUNDS` rounds fixing a random :data:`RINS_RANDOM_KEEP` of them (seeded),
    then, from the improved incumbent, a round fixing only the agreeing placement variables
    (:meth:`ExactModel.placement_columns`), so the packing is re-optimized freely.
    Fixing only restricts the model: every solution is feasible for the full model. The
    bound reported is the full LP relaxation's (a sub-MIP's own bound is not global).

    The LP needs no incumbent: :meth:`prepare` solves it before the hint exists (a late hint,
    :func:`start_highs_rins`); otherwise the call solves it first.
    """

    def __init__(self, threads: int, finish_on_full_model: bool = False) -> None:
        self.threads = threads
        self.finish_on_full_model = finish_on_full_model
        self.t_start = time.perf_counter()
        self.lp_note = ""
        self._lp: tuple[highspy.HighsModelStatus, npt.NDArray[np.float64], float] | None = None

    def prepare(self, model: ExactModel, deadline: Deadline, seed: int) -> None:
        """Solve the LP relaxation with :data:`RINS_EARLY_LP_SHARE` of the time left (in the child)."""
        self._lp = self._solve_lp(model, RINS_EARLY_LP_SHARE * deadline.remaining(), seed)

    def _solve_lp(self, model: ExactModel, limit_s: float, seed: int
                  ) -> tuple[highspy.HighsModelStatus, npt.NDArray[np.float64], float]:
        t0 = time.perf_counter()
        lp = highs_model(model, limit_s, seed, self.threads, relax=True)
        lp.run()
        self.lp_note = f"LP {time.perf_counter() - t0:.1f} s, done at {time.perf_counter() - self.t_start:.1f} s"
        return (lp.getModelStatus(), np.asarray(lp.getSolution().col_value, dtype=np.float64),
                float(lp.getInfo().objective_function_value))

    def __call__(self, model: ExactModel, hint_values: npt.NDArray[np.float64], limit_s: float, seed: int,
                 report: Report) -> BackendResult:
        lm = model.lm
        threads = self.threads
        end = time.perf_counter() + limit_s
        t_hint = time.perf_counter() - self.t_start
        status, x, z = self._lp if self._lp is not None else self._solve_lp(model, RINS_LP_SHARE * limit_s, seed)
        if status == highspy.HighsModelStatus.kInfeasible:
            return BackendResult(Status.INFEASIBLE, None, None, None, "HiGHS: LP relaxation infeasible")
        if status != highspy.HighsModelStatus.kOptimal:
            # too big for the time: return now, leaving the rest of the time to the next stage
            return BackendResult(Status.NO_SOLUTION, None, None, None, "HiGHS RINS: LP relaxation not solved in time")
        if lm.violated(hint_values):  # no feasible incumbent to fix around: plain HiGHS on the full model
            return _highs_backend(threads)(model, hint_values, end - time.perf_counter(), seed, report)
        bound = z - 1e-7 * max(1.0, abs(z))
        best, best_obj = hint_values, lm.evaluate(hint_values)
        notes = []
        improved = True
        report_s = 0.0  # time one streamed incumbent takes (decoding it to GPU ids and sending it)
        every = range(lm.num_vars)
        rounds = ([(RINS_OPENING_SHARE, every)] + [(RINS_FIRST_SHARE, every)] * (RINS_FIRST_ROUNDS - 1)
                  + [(RINS_RANDOM_SHARE, every)] * RINS_RANDOM_ROUNDS
                  + [(1.0, model.placement_columns())])
        rng = np.random.default_rng(seed)
        for r, (share, columns) in enumerate(rounds):
            left = end - time.perf_counter()
            if left <= 0.05:
                break
            if r and r < RINS_FIRST_ROUNDS and not improved:  # the tight rounds have converged
                continue
            improved = False
            last = r == len(rounds) - 1
            # the last round's result is decoded after it: keep room for that too
            margin = max(RINS_MARGIN_S, RINS_MARGIN_SHARE * left) + (1.5 * report_s if last else 0.0)
            h = highs_model(model, share * left - margin, seed, threads)
            h.setOptionValue("mip_rel_gap", RINS_SUBMIP_GAP)
            cols = np.asarray(columns, dtype=np.int32)
            cols = cols[np.abs(x[cols] - best[cols]) < 1e-6]
            if RINS_FIRST_ROUNDS <= r < len(rounds) - 1:  # a random neighbourhood: free some agreeing ones too
                cols = cols[rng.random(len(cols)) < RINS_RANDOM_KEEP]
            fixed = len(cols)
            if fixed:
                h.changeColsBounds(fixed, cols, best[cols].astype(np.float64), best[cols].astype(np.float64))
            sol = highspy.HighsSolution()
            sol.col_value = list(best)
            h.setSolution(sol)
            t0 = time.perf_counter()
            h.run()
            notes.append(f"{fixed} fixed: {h.modelStatusToString(h.getModelStatus())} "
                         f"{time.perf_counter() - t0:.1f} s")
            if h.getInfo().primal_solution_status == 2:  # kSolutionStatusFeasible
                values = np.rint(np.array(h.getSolution().col_value, dtype=np.float64))
                obj = lm.evaluate(values)
                if obj < best_obj - 1e-9 and not lm.violated(values):
                    best, best_obj, improved = values, obj, True
                    if not last:  # the runner decodes the final result itself
                        t1 = time.perf_counter()
                        report(best, best_obj, bound)
                        report_s = max(report_s, time.perf_counter() - t1)
        final = Status.FEASIBLE
        left = end - time.perf_counter()
        if self.finish_on_full_model and left >= RINS_FULL_MIN_S:
            report(best, best_obj, bound)  # the last round's incumbent, in case the full run is killed
            full = _highs_backend(threads)(model, best, end - time.perf_counter(), seed, report)
            notes.append(f"then the full model: {full.message}")
            if full.values is not None and full.objective is not None:  # objective: of the rounded values
                values, obj = np.rint(full.values), full.objective
                if obj < best_obj - 1e-9 and not lm.violated(values):
                    best, best_obj = values, obj
                if full.status == Status.OPTIMAL and obj <= best_obj + 1e-9:
                    final = Status.OPTIMAL
            if full.bound is not None:
                bound = max(bound, full.bound)
        return BackendResult(final, best, best_obj, bound,
                             f"HiGHS RINS ({self.lp_note}, hint at {t_hint:.1f} s; " + "; ".join(notes) + ")")


def solve_highs_rins(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int, *,
                     skip_families: frozenset[str] = frozenset(), num_workers: int | None = None) -> MethodOutput:
    """HiGHS on the RINS sub-MIP around the warm start (an ``auto`` stage); bound = LP relaxation."""
    return run_backend(ci, deadline, hint, seed, _RinsBackend(num_workers or DEFAULT_THREADS), skip_families)


def solve_rins_then_full(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int, *,
                         skip_families: frozenset[str] = frozenset(), num_workers: int | None = None) -> MethodOutput:
    """Method ``milp-rins``: the RINS stage, then HiGHS on the full model, hinted with the RINS incumbent,
    for the time left (at least :data:`RINS_FULL_MIN_S`); the bound is the better of the LP relaxation's
    and HiGHS's."""
    backend = _RinsBackend(num_workers or DEFAULT_THREADS, finish_on_full_model=True)
    return run_backend(ci, deadline, hint, seed, backend, skip_families)


def start_highs_rins(ci: CompiledInstance, deadline: Deadline, seed: int, *,
                     num_workers: int | None = None) -> BackendRun:
    """Start the RINS stage before its hint exists (``auto`` on large instances).

    The child builds the model and solves the LP relaxation while the caller runs the
    heuristics; :meth:`~formulations.runner.BackendRun.send_hint` then gives it the warm start
    and :meth:`~formulations.runner.BackendRun.result` waits for the answer.
    """
    rins = _RinsBackend(num_workers or DEFAULT_THREADS)
    return start_backend(ci, deadline, seed, rins, late_hint=True,
                         prepare=lambda model, dl: rins.prepare(model, dl, seed))


def solve_highs(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int, *,
                skip_families: frozenset[str] = frozenset(), num_workers: int | None = None) -> MethodOutput:
    """Solve the exact model with HiGHS (method ``milp-highs``); bound = ``mip_dual_bound``."""
    return run_backend(ci, deadline, hint, seed, _highs_backend(num_workers or DEFAULT_THREADS), skip_families)


# ---------------------------------------------------------------------------------- CBC
_CBC_RESULT = re.compile(r"^Result - (.*)$", re.M)
_CBC_OBJ = re.compile(r"^Objective value:\s+(\S+)", re.M)
_CBC_LB = re.compile(r"^Lower bound:\s+(\S+)", re.M)


def cbc_log_bound(log: str) -> tuple[str, float | None]:
    """CBC's result line and proven bound (objective without constant) from its log.

    ``Result - Optimal solution found`` proves the objective value; on a stop (time or
    node limit) CBC prints ``Lower bound:``, the best possible objective.
    """
    result = _CBC_RESULT.findall(log)
    line = result[-1].strip() if result else ""
    if line.startswith("Optimal"):
        obj = _CBC_OBJ.findall(log)
        return line, float(obj[-1]) if obj else None
    lb = _CBC_LB.findall(log)
    return line, float(lb[-1]) if lb else None


def _cbc_backend(threads: int) -> Backend:
    def backend(model: ExactModel, hint_values: npt.NDArray[np.float64], limit_s: float, seed: int,
                report: Report) -> BackendResult:
        lm = model.lm
        prob = pulp.LpProblem("gpuplan", pulp.LpMinimize)
        xs = [pulp.LpVariable(f"x{i}", lb, ub, cat=pulp.LpInteger) for i, (lb, ub) in enumerate(
            zip(lm.lb, lm.ub, strict=True))]
        obj = lm.objective()
        prob += pulp.LpAffineExpression([(xs[i], c) for i, c in sorted(obj.items())])
        for k, r in enumerate(lm.rows):
            expr = pulp.LpAffineExpression([(xs[i], a) for i, a in zip(r.index, r.value, strict=True)])
            if r.lo == r.hi:
                prob += pulp.LpConstraint(expr, pulp.LpConstraintEQ, f"r{k}", r.lo)
            else:
                if r.lo > -math.inf:
                    prob += pulp.LpConstraint(expr, pulp.LpConstraintGE, f"r{k}l", r.lo)
                if r.hi < math.inf:
                    prob += pulp.LpConstraint(expr, pulp.LpConstraintLE, f"r{k}u", r.hi)
        for x, v in zip(xs, hint_values, strict=True):
            x.setInitialValue(float(round(v)))
        limit = lm.deadline.remaining() - 0.3 if lm.deadline is not None else limit_s
        seconds = int(min(limit_s, limit))
        if seconds < CBC_MIN_S:
            return BackendResult(Status.NO_SOLUTION, None, None, None,
                                 f"CBC not started: {max(0.0, limit):.2f} s left, needs {CBC_MIN_S} s")
        with tempfile.TemporaryDirectory(prefix="gpuplan-cbc-") as tmp:
            log_path = os.path.join(tmp, "cbc.log")
            solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=seconds,
                                       # "-threads 1" starts CBC's parallel code with one thread, which
                                       # intermittently hangs until the time limit ("Thread 0 used 0
                                       # times, waiting to start 10.0"); one thread = serial CBC
                                       threads=threads if threads > 1 else None,
                                       warmStart=True, logPath=log_path, gapRel=0.0, gapAbs=0.0,
                                       keepFiles=False, options=[f"randomCbcSeed {seed + 1}"])
            code = prob.solve(solver)
            with open(log_path) as f:
                log = f.read()
        line, raw_bound = cbc_log_bound(log)
        bound = raw_bound + lm.constant if raw_bound is not None else None
        if "infeasible" in line.lower() or (code == pulp.LpStatusInfeasible and not line):
            return BackendResult(Status.INFEASIBLE, None, None, None, f"CBC: {line or 'infeasible'}")
        values = np.array([x.varValue if x.varValue is not None else np.nan for x in xs], dtype=np.float64)
        if np.isnan(values).any() or prob.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
            return BackendResult(Status.NO_SOLUTION, None, None, bound, f"CBC: {line or 'no solution'}")
        values = np.rint(values)
        status = Status.OPTIMAL if line.startswith("Optimal") else Status.FEASIBLE
        return BackendResult(status, values, lm.evaluate(values), bound, f"CBC: {line}")

    return backend


def solve_cbc(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int, *,
              skip_families: frozenset[str] = frozenset(), num_workers: int | None = None) -> MethodOutput:
    """Solve the exact model with CBC through PuLP (method ``milp-cbc``); bound from CBC's log."""
    return run_backend(ci, deadline, hint, seed, _cbc_backend(num_workers or DEFAULT_THREADS), skip_families)


# ---------------------------------------------------------------------------------- LP bound
def _lp_backend(model: ExactModel, hint_values: npt.NDArray[np.float64], limit_s: float, seed: int,
                report: Report) -> BackendResult:
    h = highs_model(model, limit_s, seed, 1, relax=True)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return BackendResult(Status.NO_SOLUTION, None, None, None, "LP relaxation not solved")
    z = float(h.getInfo().objective_function_value)
    return BackendResult(Status.FEASIBLE, None, None, z - 1e-7 * max(1.0, abs(z)), "LP relaxation")


def lower_bound(ci: CompiledInstance, deadline: Deadline) -> float | None:
    r"""A valid lower bound: the LP relaxation of the exact model, solved by HiGHS.

    The model is exact and its symmetry rows keep an optimal solution, so
    :math:`z_{LP} \le z^*`. None when the relaxation is not solved in time.
    """
    out = run_backend(ci, deadline, Decision(), 0, _lp_backend)
    return out.bound
