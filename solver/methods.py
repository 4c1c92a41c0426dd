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
    the checker's objective).
    """

    decision: Decision | None
    status: Status
    bound: float | None = None
    message: str = ""
    objective: float | None = None
    attempts: tuple[Attempt, ...] = ()


Method = Callable[[CompiledInstance, Deadline, Decision | None, int], MethodOutput]

#: name -> "module:function"; resolved lazily by :func:`get_method`.
REGISTRY: dict[str, str] = {
    "greedy": "solver.heuristics.methods:greedy_method",
}

DESCRIPTIONS: dict[str, str] = {
    "greedy": "topology-aware best fit (tightest NVLink domain, node, rack, pod), exact marginal cost",
}


def register(name: str, target: str, description: str) -> None:
    """Add a method (used by plug-ins; built-ins are listed above)."""
    REGISTRY[name] = target
    DESCRIPTIONS[name] = description


def method_names() -> list[str]:
    return list(REGISTRY)


def get_method(name: str) -> Method:
    """The callable behind ``name``; ``ValueError`` listing known names otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown method '{name}'; known methods: {', '.join(REGISTRY)}")
    module, func = REGISTRY[name].split(":")
    fn: Method = getattr(importlib.import_module(module), func)
    return fn
