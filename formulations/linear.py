r"""A backend-neutral linear model: bounded variables, named constraint rows, an objective.

The exact model is built once into a :class:`LinearModel`; the CP-SAT, HiGHS and CBC
adapters only translate it. Every row carries the name of its constraint family
(:data:`formulations.FAMILIES`), so the families are the same in every backend by
construction, and ``skip_families`` drops them in one place.

Rows are :math:`lo \le \sum_i a_i x_i \le hi`; the objective is
:math:`c_0 + \sum_{\tau} \sum_i c^{\tau}_i x_i` with one coefficient map per objective
term :math:`\tau` (:data:`formulations.OBJECTIVE_TERMS`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from solver.stop import Deadline

__all__ = ["BuildTimeout", "Expr", "LinearModel", "Row"]

#: A linear expression: variable index -> coefficient.
Expr = dict[int, float]
INF = math.inf
_CHECK_EVERY = 2000


class BuildTimeout(Exception):
    """Raised when the deadline passes while the model is being built."""


@dataclass(frozen=True)
class Row:
    """One constraint row :math:`lo \\le \\sum a_i x_i \\le hi` of a family."""

    family: str
    index: tuple[int, ...]
    value: tuple[float, ...]
    lo: float
    hi: float


@dataclass
class LinearModel:
    """Variables, rows and objective of the exact model (see module docstring).

    Parameters
    ----------
    deadline
        Building stops with :class:`BuildTimeout` once it has expired.
    skip_families
        Families whose rows are silently dropped.
    """

    deadline: Deadline | None = None
    skip_families: frozenset[str] = frozenset()
    names: list[str] = field(default_factory=list)
    lb: list[float] = field(default_factory=list)
    ub: list[float] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    terms: dict[str, Expr] = field(default_factory=lambda: defaultdict(dict))
    constant: float = 0.0
    infeasible_reason: str = ""
    #: Variables of which at most one is 1 in any feasible assignment (one job's placements).
    exclusive: list[list[int]] = field(default_factory=list)
    #: Defined variables: variable -> index of the equality row (coefficient 1 on it) that
    #: defines it from the others (see :meth:`substituted`).
    defined: dict[int, int] = field(default_factory=dict)

    @property
    def num_vars(self) -> int:
        return len(self.names)

    def var(self, name: str, ub: float, lb: float = 0.0) -> int:
        """A new integer variable in ``[lb, ub]`` (binary when ``ub == 1``); its index."""
        self.names.append(name)
        self.lb.append(lb)
        self.ub.append(ub)
        return len(self.names) - 1

    def add(self, family: str, expr: Expr, lo: float = -INF, hi: float = INF) -> None:
        """Add ``lo <= expr <= hi`` to ``family`` (dropped if the family is skipped)."""
        if len(self.rows) % _CHECK_EVERY == 0:
            self.check_time()
        if family in self.skip_families:
            return
        items = [(i, a) for i, a in expr.items() if a != 0.0]
        if not items:
            return
        self.rows.append(Row(family, tuple(i for i, _ in items), tuple(a for _, a in items), lo, hi))

    def define(self, var: int, family: str, expr: Expr, value: float) -> None:
        """Add the row ``expr + x[var] = value`` to ``family`` and mark ``var`` as defined by it."""
        n = len(self.rows)
        self.add(family, {**expr, var: 1.0}, lo=value, hi=value)
        if len(self.rows) > n:
            self.defined[var] = n

    def substituted(self, r: Row) -> Row:
        """Row ``r`` with every defined variable replaced by its definition
        :math:`x_f = v - \\sum_i a_i x_i` (the defining rows themselves are returned as they are).

        An exact rewrite: a backend that prefers dense rows to the extra variables (CP-SAT)
        builds the substituted rows and keeps each defining row, where the defined variable is
        then a singleton column that its presolve removes.
        """
        if not self.defined or not any(i in self.defined for i in r.index):
            return r
        changed = False
        out: Expr = {}
        shift = 0.0
        for i, a in zip(r.index, r.value, strict=True):
            k = self.defined.get(i)
            if k is None or self.rows[k] is r:
                out[i] = out.get(i, 0.0) + a
                continue
            d = self.rows[k]
            changed = True
            shift += a * d.lo
            for j, b in zip(d.index, d.value, strict=True):
                if j != i:
                    out[j] = out.get(j, 0.0) - a * b
        if not changed:  # a defining row
            return r
        items = [(i, a) for i, a in out.items() if a != 0.0]
        return Row(r.family, tuple(i for i, _ in items), tuple(a for _, a in items), r.lo - shift, r.hi - shift)

    def add_cost(self, term: str, var: int, coef: float) -> None:
        """Add ``coef * x[var]`` to objective term ``term``."""
        if coef != 0.0:
            t = self.terms[term]
            t[var] = t.get(var, 0.0) + coef

    def check_time(self) -> None:
        if self.deadline is not None and self.deadline.expired():
            raise BuildTimeout(f"time limit reached while building the model ({self.num_vars} variables, "
                               f"{len(self.rows)} rows)")

    def objective(self) -> Expr:
        """All objective terms summed into one coefficient map."""
        out: Expr = {}
        for t in self.terms.values():
            for i, c in t.items():
                out[i] = out.get(i, 0.0) + c
        return out

    def objective_array(self) -> npt.NDArray[np.float64]:
        c = np.zeros(self.num_vars)
        for i, v in self.objective().items():
            c[i] = v
        return c

    def evaluate(self, x: npt.ArrayLike) -> float:
        """Objective value of the assignment ``x``."""
        return float(self.constant + self.objective_array() @ np.asarray(x, dtype=np.float64))

    def violated(self, x: npt.ArrayLike, tol: float = 1e-6) -> list[Row]:
        """Rows (and bounds, as pseudo-rows) that ``x`` breaks; used to test hints."""
        xs = np.asarray(x, dtype=np.float64)
        lb, ub = np.asarray(self.lb, dtype=np.float64), np.asarray(self.ub, dtype=np.float64)
        out = [Row("bounds", (int(i),), (1.0,), self.lb[i], self.ub[i])
               for i in np.flatnonzero((xs < lb - tol) | (xs > ub + tol))]
        if not self.rows:
            return out
        starts, index, value = self.csr()
        products = value * xs[index]
        sums = np.zeros(len(self.rows))
        nonempty = starts[1:] > starts[:-1]
        sums[nonempty] = np.add.reduceat(products, starts[:-1][nonempty])
        lo = np.fromiter((r.lo for r in self.rows), dtype=np.float64, count=len(self.rows))
        hi = np.fromiter((r.hi for r in self.rows), dtype=np.float64, count=len(self.rows))
        out += [self.rows[int(k)] for k in np.flatnonzero((sums < lo - tol) | (sums > hi + tol))]
        return out

    def csr(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float64]]:
        """Row starts, column indices and values of the constraint matrix."""
        starts = np.zeros(len(self.rows) + 1, dtype=np.int64)
        for k, r in enumerate(self.rows):
            starts[k + 1] = starts[k] + len(r.index)
        index = np.fromiter((i for r in self.rows for i in r.index), dtype=np.int32, count=int(starts[-1]))
        value = np.fromiter((a for r in self.rows for a in r.value), dtype=np.float64, count=int(starts[-1]))
        return starts, index, value
