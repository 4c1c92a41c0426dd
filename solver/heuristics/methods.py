"""Heuristic methods wrapped in the method protocol of :mod:`solver.methods`.

All are deterministic and ignore ``hint`` and ``seed``; they run in about
O(jobs x options x candidate placements) and always return a feasible decision.
"""

from __future__ import annotations

from solver.compiled import CompiledInstance
from solver.heuristics.fgd import fgd_finder
from solver.heuristics.greedy import greedy_decision
from solver.heuristics.policies import POLICIES
from solver.methods import MethodOutput
from solver.result import Decision, Status
from solver.stop import Deadline

__all__ = ["edf_method", "energy_greedy_method", "fgd_method", "greedy_method", "policy_decision", "sjf_method"]


def greedy_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """Topology-aware best fit; deterministic, ignores ``hint`` and ``seed``.

    The pass always completes (``auto`` uses the deadline-aware pass of
    :func:`~solver.heuristics.greedy.greedy_decision` instead).
    """
    return MethodOutput(greedy_decision(ci), Status.FEASIBLE)


def policy_decision(ci: CompiledInstance, name: str) -> Decision:
    """The greedy decision of the policy ``name`` of :data:`~solver.heuristics.policies.POLICIES`."""
    policy = POLICIES[name]
    return greedy_decision(ci, order=policy.order(ci), option_key=policy.score)


def energy_greedy_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """Fewest joules per job that still meets its SLO or deadline, power cap included."""
    return MethodOutput(policy_decision(ci, "energy-greedy"), Status.FEASIBLE)


def edf_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """Earliest deadline first, best-fit placement at the cheapest option."""
    return MethodOutput(policy_decision(ci, "edf"), Status.FEASIBLE)


def sjf_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """Shortest job first, best-fit placement at the cheapest option."""
    return MethodOutput(policy_decision(ci, "sjf"), Status.FEASIBLE)


def fgd_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """Fractional tasks by fragmentation gradient descent, whole-GPU gangs by best fit."""
    return MethodOutput(greedy_decision(ci, fraction_finder=fgd_finder(ci)), Status.FEASIBLE)
