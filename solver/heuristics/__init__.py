"""Placement heuristics: fast, deterministic, always feasible."""

from solver.heuristics.greedy import default_order, greedy_decision
from solver.heuristics.state import ClusterState

__all__ = ["ClusterState", "default_order", "greedy_decision"]
