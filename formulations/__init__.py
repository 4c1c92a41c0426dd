"""Exact snapshot models: CP-SAT (OR-Tools) and MILP (HiGHS via highspy, CBC via PuLP).

One backend-neutral builder (:class:`formulations.model.ExactModel`) makes the model
from the :class:`~solver.compiled.CompiledInstance`; the backends only translate it, so
constraint families (:data:`FAMILIES`) and objective terms (:data:`OBJECTIVE_TERMS`)
carry the same names everywhere. The math is in ``docs/formulations.md``.

Methods (registered in :mod:`solver.methods`): ``formulations.cpsat:solve_cpsat``,
``formulations.milp:solve_cbc``, ``formulations.milp:solve_highs``; and
:func:`lower_bound`, the LP relaxation bound used by decomposition methods.
"""

from formulations.constraints import FAMILIES
from formulations.milp import lower_bound
from formulations.objective import OBJECTIVE_TERMS

__all__ = ["FAMILIES", "OBJECTIVE_TERMS", "lower_bound"]
