"""The registry of solve methods.

A method is a callable ``(ci, deadline, hint, seed) -> MethodOutput``. Methods are
registered by name in :data:`REGISTRY`; entries are import paths resolved on first
use, so optional backends cost nothing until called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from solver.compiled import CompiledInstance
from solver.result import Attempt, Decision, Status
from solver.stop import Deadline

__all__ = ["REGISTRY", "MethodOutput", "get_method", "method_names"]


@dataclass(frozen=True)
class MethodOutput:
    """What a method claims; :func:`solver.solve` checks and normalizes it.

    ``bound`` is a proven lower bound on the objective (None when unknown);
    ``status`` is the method's claim (``optimal`` is only kept when the bound matches
    the checker's objective). ``build_s``: seconds from the start of the method's deadline
    until its solver started (exact model built, warm start made; None for methods without
    a separate build).
    """

    decision: Decision | None
    status: Status
    bound: float | None = None
    message: str = ""
    objective: float | None = None
    attempts: tuple[Attempt, ...] = ()
    build_s: float | None = None


Method = Callable[[CompiledInstance, Deadline, Decision | None, int], MethodOutput]

#: name -> "module:function"; resolved lazily by :func:`get_method`.
REGISTRY: dict[str, str] = {
    "auto": "solver.portfolio:auto_method",
    "greedy": "solver.heuristics.methods:greedy_method",
    "lp-greedy": "solver.heuristics.pricing:lp_greedy_method",
    "energy-greedy": "solver.heuristics.methods:energy_greedy_method",
    "fgd": "solver.heuristics.methods:fgd_method",
    "edf": "solver.heuristics.methods:edf_method",
    "sjf": "solver.heuristics.methods:sjf_method",
    "cpsat": "formulations.cpsat:solve_cpsat",
    "milp-cbc": "formulations.milp:solve_cbc",
    "milp-highs": "formulations.milp:solve_highs",
    "milp-rins": "formulations.milp:solve_rins_then_full",
    "lns": "solver.lns:lns_method",
    "pop": "solver.decompose:pop_method",
}

DESCRIPTIONS: dict[str, str] = {
    "auto": "portfolio: fast heuristic first, then exact/LNS/decomposition by size; best checked decision",
    "greedy": "topology-aware best fit (tightest NVLink domain, node, rack, pod), exact marginal cost",
    "lp-greedy": "greedy with per-type GPU prices (and a watt price) from the type-level LP relaxation",
    "energy-greedy": "fewest joules per unit of work meeting the SLO, power cap included",
    "fgd": "fragmentation gradient descent for fractional tasks (Alibaba FGD, ATC'23)",
    "edf": "earliest deadline first, best-fit placement",
    "sjf": "shortest job first, best-fit placement",
    "cpsat": "exact CP-SAT model (OR-Tools)",
    "milp-cbc": "exact MILP (PuLP + CBC)",
    "milp-highs": "exact MILP (HiGHS)",
    "milp-rins": ("HiGHS on RINS sub-MIPs around the warm start, then on the full model for the time left; "
                  "bound from the LP relaxation or HiGHS"),
    "lns": "CP-SAT large-neighbourhood search from the better of greedy and lp-greedy",
    "pop": "POP-style decomposition by pod/rack, exact backend per part",
}


def register(name: str, target: str, description: str) -> None:
    """Add a method (used by plug-ins; built-ins are listed above)."""
    REGISTRY[name] = target
    DESCRIPTIONS[name] = description


def available(name: str) -> bool:
    """True if the module and function behind ``name`` can be imported."""
    module, func = REGISTRY[name].split(":")
    try:
        return hasattr(importlib.import_module(module), func)
    except ModuleNotFoundError:
        return False


def method_names() -> list[str]:
    """Names of the methods available in this build."""
    return [name for name in REGISTRY if available(name)]


def get_method(name: str) -> Method:
    """The callable behind ``name``; ``ValueError`` listing known names otherwise."""
    if name not in REGISTRY or not available(name):
        raise ValueError(f"unknown method '{name}'; available methods: {', '.join(method_names())}")
    module, func = REGISTRY[name].split(":")
    fn: Method = getattr(importlib.import_module(module), func)
    return fn
