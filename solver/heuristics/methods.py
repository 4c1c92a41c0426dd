"""Heuristic methods wrapped in the method protocol of :mod:`solver.methods`."""

from __future__ import annotations

from solver.compiled import CompiledInstance
from solver.heuristics.greedy import greedy_decision
from solver.methods import MethodOutput
from solver.result import Decision, Status
from solver.stop import Deadline

__all__ = ["greedy_method"]


def greedy_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """Topology-aware best fit; deterministic, ignores ``hint`` and ``seed``."""
    return MethodOutput(greedy_decision(ci), Status.FEASIBLE)
