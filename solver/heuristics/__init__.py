"""Placement heuristics: fast, deterministic, always feasible.

:mod:`~solver.heuristics.fgd` exposes fragmentation gradient descent on plain
free-capacity arrays (``fragmentation``, ``fgd_select``) for reuse as a policy.
"""

from solver.heuristics.fgd import TaskClass, fgd_finder, fgd_select, fragmentation, workload_classes
from solver.heuristics.greedy import default_order, greedy_decision
from solver.heuristics.state import ClusterState

__all__ = [
    "ClusterState",
    "TaskClass",
    "default_order",
    "fgd_finder",
    "fgd_select",
    "fragmentation",
    "greedy_decision",
    "workload_classes",
]
