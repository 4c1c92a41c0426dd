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

__all__ = ["CUT_SHORT", "edf_method", "energy_greedy_method", "fgd_method", "greedy_method", "pass_output",
           "policy_decision", "sjf_method"]


#: The message of a pass the time limit cut short.
CUT_SHORT = "time limit reached during the pass: later jobs left unplaced"


def pass_output(decision: Decision, deadline: Deadline) -> MethodOutput:
    """A pass's decision; the message says when the time limit may have cut the pass short."""
    return MethodOutput(decision, Status.FEASIBLE, message=CUT_SHORT if deadline.expired() else "")


def greedy_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """Topology-aware best fit; deterministic, ignores ``hint`` and ``seed``.

    Every heuristic pass here keeps the time limit: the pending jobs not yet considered when
    it is reached are left unplaced (running jobs are kept), so the decision stays feasible.
    """
    return pass_output(greedy_decision(ci, deadline=deadline), deadline)


def policy_decision(ci: CompiledInstance, name: str, deadline: Deadline | None = None) -> Decision:
    """The greedy decision of the policy ``name`` of :data:`~solver.heuristics.policies.POLICIES`."""
    policy = POLICIES[name]
    return greedy_decision(ci, order=policy.order(ci), option_key=policy.score, deadline=deadline)


def energy_greedy_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """Fewest joules per job that still meets its SLO or deadline, power cap included."""
    return pass_output(policy_decision(ci, "energy-greedy", deadline), deadline)


def edf_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """Earliest deadline first, best-fit placement at the cheapest option."""
    return pass_output(policy_decision(ci, "edf", deadline), deadline)


def sjf_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """Shortest job first, best-fit placement at the cheapest option."""
    return pass_output(policy_decision(ci, "sjf", deadline), deadline)


def fgd_method(ci: CompiledInstance, deadline: Deadline, hint: Decision | None, seed: int) -> MethodOutput:
    """Fractional tasks by fragmentation gradient descent, whole-GPU gangs by best fit."""
    return pass_output(greedy_decision(ci, fraction_finder=fgd_finder(ci), deadline=deadline), deadline)
