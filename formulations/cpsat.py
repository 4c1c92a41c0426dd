r"""CP-SAT backend (OR-Tools): the exact model with integer coefficients.

All scaling to integers happens in :class:`Scaling`, the one place where CP-SAT's
integer data is made from the model's real coefficients:

* **Objective**: :math:`\tilde c_i = \operatorname{round}(S c_i)` with
  :math:`S = 10^{\lfloor \log_{10}(10^{13} / U) \rfloor}` (at most :math:`10^7`), where
  :math:`U = \sum_i |c_i| \max(|l_i|, |u_i|)`. With :math:`e_i = \tilde c_i - S c_i`, the
  real objective of any feasible assignment is at least its scaled one minus
  :math:`\epsilon = \frac{1}{S} \big(\sum_{J} \max_{i \in J} e_i^+ + \sum_{i \notin \cup J}
  e_i^+ u_i\big)`, where the groups :math:`J` are one job's placement variables (at most one
  of them is 1). The reported bound :math:`b_{CP}/S + c_0 - \epsilon` is therefore valid.
* **Defined variables** (a slot's free GPUs, see ``LinearModel.define``) are substituted by
  their definition in every other row (``LinearModel.substituted``): CP-SAT gets the dense
  per-type capacity rows, with which it proved medium more often than with the sparse ones
  that HiGHS gets (docs/formulations.md, **gpu_capacity**).
* **Rows**: multiplied by the smallest :math:`10^d` (:math:`d \le 6`) that makes every
  coefficient integral, then :math:`lo \to \lceil lo \rceil`, :math:`hi \to \lfloor hi \rfloor`
  (exact, the left side being integral). A row that stays fractional at :math:`10^6`
  (only the power budget in watts can) has its coefficients rounded towards the safe side
  (up for :math:`\le` rows over non-negative variables), so a CP-SAT solution always
  satisfies the real row.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from ortools.sat.python import cp_model

from formulations.linear import Row
from formulations.model import ExactModel
from formulations.runner import BackendResult, Report, run_backend
from solver.compiled import CompiledInstance
from solver.methods import MethodOutput
from solver.result import Decision, Status
from solver.stop import Deadline

__all__ = ["Scaling", "cpsat_model", "cpsat_solver", "solve_cpsat"]

DEFAULT_WORKERS = 2
#: CP-SAT's full-model workers, both full (``num_full_subsolvers``), with ``symmetry_level = 4``:
#: LP search branching on pseudo-costs and LP search branching on reduced costs. Two full
#: workers on two threads leave none to CP-SAT's LNS subsolvers (its log: "LNS stats ... 0/0").
#: Medium s0/s3/s4 (the seeds that land near 10 s), 10 s: 21 of 36 runs proven against 31 of 60
#: with ``max_lp`` + ``reduced_costs``, within run-to-run noise; 15-17 of 20 in the seeds benchmark;
#: on large the same median gap as the pair with ``max_lp`` in the same half hour (15% over 20 runs;
#: 1.3% in a later run; docs/formulations.md, "Bounds and statuses").
SUBSOLVERS = ("pseudo_costs", "reduced_costs")


class Scaling:
    """Integer objective and rows for CP-SAT (see the module docstring)."""

    MAX_DIGITS = 6

    def __init__(self, model: ExactModel) -> None:
        lm = model.lm
        c = lm.objective_array()
        mag = np.maximum(np.abs(lm.lb), np.abs(lm.ub))
        total = float(np.abs(c) @ mag) + 1.0
        self.factor = float(min(1e7, 10.0 ** math.floor(math.log10(1e13 / total))))
        scaled = c * self.factor
        self.objective = np.rint(scaled).astype(np.int64)
        up = np.maximum(self.objective - scaled, 0.0)
        grouped = np.zeros(len(c), dtype=bool)
        err = 0.0
        for group in lm.exclusive:
            err += float(up[group].max())
            grouped[group] = True
        err += float(up[~grouped] @ mag[~grouped])
        self.error = err / self.factor
        self.constant = lm.constant
        self.lb = lm.lb

    def bound(self, scaled_bound: float) -> float:
        """A valid lower bound of the real objective from CP-SAT's scaled bound."""
        return scaled_bound / self.factor + self.constant - self.error

    def row(self, r: Row) -> tuple[list[int], float, float]:
        """Integer coefficients and bounds of row ``r``."""
        for d in range(self.MAX_DIGITS + 1):
            f = 10.0**d
            a = [v * f for v in r.value]
            if all(abs(x - round(x)) <= 1e-9 * max(1.0, abs(x)) for x in a):
                return [round(x) for x in a], _ceil(r.lo * f), _floor(r.hi * f)
        f = 10.0**self.MAX_DIGITS
        nonneg = all(self.lb[i] >= 0 for i in r.index)
        if r.lo == -math.inf and nonneg:
            return [math.ceil(v * f) for v in r.value], r.lo, _floor(r.hi * f)
        if r.hi == math.inf and nonneg:
            return [math.floor(v * f) for v in r.value], _ceil(r.lo * f), r.hi
        return [round(v * f) for v in r.value], _ceil(r.lo * f), _floor(r.hi * f)


def _ceil(x: float) -> float:
    return x if math.isinf(x) else float(math.ceil(x - 1e-9))


def _floor(x: float) -> float:
    return x if math.isinf(x) else float(math.floor(x + 1e-9))


def solve_cpsat(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int, *,
                skip_families: frozenset[str] = frozenset(), num_workers: int | None = None) -> MethodOutput:
    """Solve the exact model with CP-SAT (method ``cpsat``).

    Parameters
    ----------
    num_workers
        CP-SAT search workers (None: 2, the cores of the reference machine; tests use 1,
        which with a fixed ``seed`` is deterministic).
    """
    workers = num_workers or DEFAULT_WORKERS

    def backend(model: ExactModel, hint_values: npt.NDArray[np.float64], limit_s: float, seed: int,
                report: Report) -> BackendResult:
        return _run(model, hint_values, limit_s, seed, report, workers)

    return run_backend(ci, deadline, hint, seed, backend, skip_families)


class _Incumbents(cp_model.CpSolverSolutionCallback):
    """Streams every improving solution to the parent process."""

    def __init__(self, xs: list[cp_model.IntVar], model: ExactModel, scaling: Scaling, report: Report) -> None:
        super().__init__()
        self.xs, self.model, self.scaling, self.report = xs, model, scaling, report

    def on_solution_callback(self) -> None:
        values = np.array([self.value(x) for x in self.xs], dtype=np.float64)
        self.report(values, self.model.lm.evaluate(values), self.scaling.bound(self.best_objective_bound))


def cpsat_model(model: ExactModel, scaling: Scaling, extra_rows: Sequence[Row] = ()
                ) -> tuple[cp_model.CpModel, list[cp_model.IntVar]] | None:
    """The exact model (and ``extra_rows``, e.g. cuts under study) as a CP-SAT model with its
    variables, in the model's variable order; None if the model's deadline passes while building."""
    lm = model.lm
    cp = cp_model.CpModel()
    xs = [cp.new_int_var(int(lb), int(ub), name) for lb, ub, name in zip(lm.lb, lm.ub, lm.names, strict=True)]
    for k, r in enumerate(itertools.chain(lm.rows, extra_rows)):
        if k % 2000 == 0 and lm.deadline is not None and lm.deadline.remaining() < 0.05:
            return None
        r = lm.substituted(r)
        coefs, lo, hi = scaling.row(r)
        expr = cp_model.LinearExpr.weighted_sum([xs[i] for i in r.index], coefs)
        if lo == hi:
            cp.add(expr == int(lo))
        else:
            if lo > -math.inf:
                cp.add(expr >= int(lo))
            if hi < math.inf:
                cp.add(expr <= int(hi))
    nz = np.flatnonzero(scaling.objective)
    cp.minimize(cp_model.LinearExpr.weighted_sum([xs[i] for i in nz], [int(scaling.objective[i]) for i in nz]))
    return cp, xs


def cpsat_solver(limit_s: float, seed: int, workers: int) -> cp_model.CpSolver:
    """A CP-SAT solver with gpuplan's parameters (docs/formulations.md, "Bounds and statuses")."""
    solver = cp_model.CpSolver()
    p = solver.parameters
    p.max_time_in_seconds = limit_s
    p.num_workers = workers
    p.random_seed = seed
    p.relative_gap_limit = 0.0
    p.absolute_gap_limit = 0.0
    p.linearization_level = 2
    p.cp_model_probing_level = 0
    p.symmetry_level = 4  # see SUBSOLVERS
    if workers > 1:  # see SUBSOLVERS
        p.subsolvers.extend(SUBSOLVERS)
        p.num_full_subsolvers = min(workers, len(SUBSOLVERS))
    return solver


def _run(model: ExactModel, hint_values: npt.NDArray[np.float64], limit_s: float, seed: int, report: Report,
         workers: int) -> BackendResult:
    lm = model.lm
    scaling = Scaling(model)
    built = cpsat_model(model, scaling)
    if built is None:
        return BackendResult(Status.NO_SOLUTION, None, None, None, "time limit reached while building CP-SAT")
    cp, xs = built
    for x, v in zip(xs, hint_values, strict=True):
        cp.add_hint(x, round(float(v)))
    remaining = lm.deadline.remaining() - 0.3 if lm.deadline is not None else limit_s
    solver = cpsat_solver(max(0.05, min(limit_s, remaining)), seed, workers)
    code = solver.solve(cp, _Incumbents(xs, model, scaling, report))
    if code == cp_model.INFEASIBLE:
        return BackendResult(Status.INFEASIBLE, None, None, None, "CP-SAT proved the model infeasible")
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return BackendResult(Status.NO_SOLUTION, None, None, None, f"CP-SAT: {solver.status_name(code)}")
    values = np.array([solver.value(x) for x in xs], dtype=np.float64)
    status = Status.OPTIMAL if code == cp_model.OPTIMAL else Status.FEASIBLE
    return BackendResult(status, values, lm.evaluate(values), scaling.bound(solver.best_objective_bound),
                         f"CP-SAT {solver.status_name(code)}, scale {scaling.factor:g}")
