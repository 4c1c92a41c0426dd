r"""Root-bound diagnosis: how far each backend's bound gets at the root, and whether HiGHS's cuts
would let CP-SAT prove the optimum.

HiGHS proves the medium instances optimal at its root node while CP-SAT, on the same model,
keeps its bound near the LP relaxation. For each generated instance this command measures:

1. ``lp``: the LP relaxation of the exact model (HiGHS).
2. ``highs root``: HiGHS on the full model, one thread, presolve off, root node only: its
   bound after its cutting planes, and the cut pool it reports (callback
   ``kCallbackMipGetCutPool``; presolve off keeps the cuts in the model's columns).
3. ``optimum``: HiGHS on the full model with default settings (one thread): status,
   objective, branch-and-bound nodes and time. It is the hint given to CP-SAT below.
4. ``lp + pool``: the LP relaxation with HiGHS's whole cut pool, and ``best single cut``:
   with the one pool cut that raises it most (its support by variable kind, e.g.
   ``z:698``).
5. ``cpsat`` / ``cpsat + pool``: CP-SAT with gpuplan's parameters (:func:`formulations.cpsat.
   cpsat_solver`) for ``--time-limit`` s, hinted with the optimum, on the model alone and on
   the model plus HiGHS's cuts (each weakened to integer coefficients: :math:`\lfloor 10^6 a
   \rfloor x \le \lfloor 10^6 b \rfloor`, valid for :math:`x \ge 0`).

The cuts come from HiGHS, so step 5 is a diagnosis, not a method: it tells whether a
stronger root (the cuts) would be enough for CP-SAT's search, or whether the search itself
is the bottleneck.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shlex
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt
from ortools.sat.python import cp_model
from tqdm import tqdm

from benchmarks.snapshot import RESULTS_DIR, _num, _table, environment, provenance
from formulations.cpsat import Scaling, cpsat_model, cpsat_solver
from formulations.linear import Row
from formulations.milp import highs_model
from formulations.model import ExactModel
from solver.compiled import CompiledInstance
from solver.generate import FAMILIES, generate

__all__ = ["CutPool", "Diagnosis", "diagnose", "register"]

#: Cuts are scaled by this before their coefficients are floored for CP-SAT.
CUT_SCALE = 1e6


@dataclass(frozen=True)
class CutPool:
    """HiGHS's cut pool in CSR form over the model's columns (rows ``a x <= hi``)."""

    start: npt.NDArray[np.int64]
    index: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    hi: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.hi)

    def cut(self, c: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], float]:
        a, b = int(self.start[c]), int(self.start[c + 1])
        return self.index[a:b], self.value[a:b], float(self.hi[c])

    def integer_rows(self) -> list[Row]:
        """Every cut weakened to integer coefficients (see the module docstring)."""
        rows = []
        for c in range(len(self)):
            idx, val, hi = self.cut(c)
            coef = np.floor(val * CUT_SCALE)
            rows.append(Row("cut", tuple(int(i) for i in idx), tuple(float(v) for v in coef), -math.inf,
                            float(math.floor(hi * CUT_SCALE))))
        return rows


@dataclass(frozen=True)
class Diagnosis:
    """The measurements of one instance (see the module docstring)."""

    instance: str
    variables: int
    rows: int
    lp: float
    root: float
    root_s: float
    cuts: int
    optimum: float | None
    optimum_status: str
    optimum_nodes: int
    optimum_s: float
    lp_pool: float | None
    best_cut: float | None
    best_cut_support: str
    cpsat_status: str
    cpsat_bound: float | None
    cpsat_pool_status: str
    cpsat_pool_bound: float | None


def _kinds(model: ExactModel, index: npt.NDArray[np.int64]) -> str:
    counts = Counter(model.lm.names[int(i)].split("[", 1)[0] for i in index)
    return " ".join(f"{k}:{n}" for k, n in counts.most_common())


def _root(model: ExactModel, limit_s: float) -> tuple[float, CutPool, float]:
    h = highs_model(model, limit_s, 0, 1)
    h.setOptionValue("presolve", "off")
    h.setOptionValue("mip_max_nodes", 1)
    pools: list[CutPool] = []

    def keep_pool(kind: int, message: str, out: Any, into: Any, user: Any) -> None:
        n = int(out.cutpool_num_cut)
        start = np.array(out.cutpool_start, dtype=np.int64)[: n + 1]
        nnz = int(start[-1]) if n else 0
        pools.append(CutPool(start, np.array(out.cutpool_index, dtype=np.int64)[:nnz],
                             np.array(out.cutpool_value, dtype=np.float64)[:nnz],
                             np.array(out.cutpool_upper, dtype=np.float64)[:n]))

    h.setCallback(keep_pool, None)
    h.startCallback(highspy.cb.HighsCallbackType.kCallbackMipGetCutPool)
    t0 = time.perf_counter()
    h.run()
    elapsed = time.perf_counter() - t0
    empty = CutPool(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))
    return float(h.getInfo().mip_dual_bound), pools[-1] if pools else empty, elapsed


def _lp_with(model: ExactModel, pool: CutPool, cuts: Sequence[int]) -> float | None:
    h = highs_model(model, 60.0, 0, 1, relax=True)
    for c in cuts:
        idx, val, hi = pool.cut(c)
        h.addRow(-highspy.kHighsInf, hi, len(idx), idx.astype(np.int32), val)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return float(h.getInfo().objective_function_value)


def _cpsat(model: ExactModel, hint: npt.NDArray[np.float64], extra: Sequence[Row], limit_s: float,
           workers: int) -> tuple[str, float | None]:
    scaling = Scaling(model)
    built = cpsat_model(model, scaling, extra)
    assert built is not None  # no deadline on the model
    cp, xs = built
    for x, v in zip(xs, hint, strict=True):
        cp.add_hint(x, round(float(v)))
    solver = cpsat_solver(limit_s, 0, workers)
    code = solver.solve(cp)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return solver.status_name(code), None
    return solver.status_name(code), scaling.bound(solver.best_objective_bound)


def diagnose(family: str, seed: int, time_limit_s: float, workers: int = 2) -> Diagnosis:
    """Measure one generated instance (see the module docstring)."""
    model = ExactModel(CompiledInstance(generate(family, seed)))
    lm = model.lm
    if (np.asarray(lm.lb) < 0).any():
        raise ValueError("the cut weakening needs non-negative variables")
    root, pool, root_s = _root(model, 120.0)
    lp = _lp_with(model, pool, ())
    if lp is None:
        raise RuntimeError(f"{family} s{seed}: LP relaxation not solved")
    ref = highs_model(model, 120.0, 0, 1)
    t0 = time.perf_counter()
    ref.run()
    optimum_s = time.perf_counter() - t0
    info = ref.getInfo()
    has_solution = info.primal_solution_status == 2
    x = np.rint(np.array(ref.getSolution().col_value, dtype=np.float64)) if has_solution else np.asarray(lm.lb)
    best_cut, support = None, ""
    for c in range(len(pool)):
        value = _lp_with(model, pool, [c])
        if value is not None and (best_cut is None or value > best_cut):
            best_cut, support = value, _kinds(model, pool.cut(c)[0])
    lp_pool = _lp_with(model, pool, range(len(pool))) if len(pool) else lp
    cp_status, cp_bound = _cpsat(model, x, (), time_limit_s, workers)
    pool_status, pool_bound = _cpsat(model, x, pool.integer_rows(), time_limit_s, workers)
    return Diagnosis(f"{family} s{seed}", lm.num_vars, len(lm.rows), lp, root, root_s, len(pool),
                     lm.evaluate(x) if has_solution else None, ref.modelStatusToString(ref.getModelStatus()),
                     int(info.mip_node_count), optimum_s, lp_pool, best_cut, support, cp_status, cp_bound,
                     pool_status, pool_bound)


def markdown(rows: Sequence[Diagnosis], command: str, env: dict[str, str], time_limit_s: float,
             started: dt.datetime) -> str:
    """The report: header, one table of bounds, one of the strongest cut's support."""
    lines = [f"# Root-bound diagnosis {started:%Y-%m-%d}", ""]
    lines += provenance(command, env, started, f"CP-SAT runs {time_limit_s:g} s each, hinted with the optimum")
    lines += ["", "What each column is: `benchmarks/rootgap.py` (module docstring). Bounds are on the real objective; "
              "`share closed` is (bound - lp) / (optimum - lp).", ""]

    def closed(r: Diagnosis) -> str:
        if r.optimum is None or r.best_cut is None or r.optimum - r.lp <= 1e-9:
            return ""
        return f"{100 * (r.best_cut - r.lp) / (r.optimum - r.lp):.0f}%"

    lines += _table(
        ("instance", "vars / rows", "lp", "highs root (s)", "cuts", "optimum (HiGHS status, nodes, s)", "lp + pool",
         "best single cut", "share closed by it", "cpsat", "cpsat + pool"),
        ((r.instance, f"{r.variables:,} / {r.rows:,}", _num(r.lp), f"{_num(r.root)} ({r.root_s:.1f})", str(r.cuts),
          f"{_num(r.optimum)} ({r.optimum_status}, {r.optimum_nodes}, {r.optimum_s:.1f})", _num(r.lp_pool),
          _num(r.best_cut), closed(r), f"{r.cpsat_status} {_num(r.cpsat_bound)}",
          f"{r.cpsat_pool_status} {_num(r.cpsat_pool_bound)}") for r in rows))
    lines += ["", "Support of the strongest single cut (variables by kind, see `formulations/variables.py`):", ""]
    lines += [f"- {r.instance}: {r.best_cut_support or 'no cut'}" for r in rows]
    return "\n".join(lines) + "\n"


def register(sub: Any) -> None:
    """Add the ``rootgap`` command to the ``python -m benchmarks`` parser."""
    p = sub.add_parser(
        "rootgap", help="root bounds of LP, HiGHS and CP-SAT, and CP-SAT given HiGHS's cuts",
        description="For each generated instance: LP relaxation, HiGHS's root bound and cut pool, the optimum, "
        "the LP with the cuts, and CP-SAT's bound with and without the cuts (see benchmarks/rootgap.py).")
    p.add_argument("--family", default="medium", choices=list(FAMILIES), help="instance family (default: medium)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="generator seeds (default: 0-4)")
    p.add_argument("--time-limit", type=float, default=10.0, help="seconds per CP-SAT run (default: 10)")
    p.add_argument("--workers", type=int, default=2, help="CP-SAT workers (default: 2)")
    p.add_argument("--output", "-o", type=Path, default=None,
                   help="Markdown file to write (default: benchmarks/results/rootgap-<family>.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=main_rootgap)


def main_rootgap(args: argparse.Namespace) -> int:
    """Run the diagnosis described by ``args`` and write the report."""
    if not args.time_limit > 0:
        raise SystemExit("error: --time-limit must be > 0")
    if args.workers < 1:
        raise SystemExit("error: --workers must be >= 1")
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    output: Path = args.output or RESULTS_DIR / f"rootgap-{args.family}.md"
    rows = [diagnose(args.family, seed, args.time_limit, args.workers)
            for seed in tqdm(args.seeds, desc="rootgap", unit="instance", disable=args.no_progress)]
    output.parent.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks " + shlex.join(args.argv)
    output.write_text(markdown(rows, command, environment(), args.time_limit, started), encoding="utf-8")
    print(f"wrote {output}")
    return 0
