"""Trace-replay simulator: replay public traces through gpuplan's policies and ``solve()``.

See ``docs/simulator.md``. Entry points: :func:`simulate` (Python) and ``gpuplan simulate``.
"""

from solver.sim.api import SimResult, simulate, write_outputs
from solver.sim.carbon import CarbonIntensity, load_carbon_intensity
from solver.sim.cluster import TRACE_GPU_TYPES, SimCluster, cluster_from_node_table, load_sim_cluster
from solver.sim.engine import SimConfig, Simulation
from solver.sim.policies import BASELINES, make_policy, policy_names

__all__ = [
    "BASELINES",
    "TRACE_GPU_TYPES",
    "CarbonIntensity",
    "SimCluster",
    "SimConfig",
    "SimResult",
    "Simulation",
    "cluster_from_node_table",
    "load_carbon_intensity",
    "load_sim_cluster",
    "make_policy",
    "policy_names",
    "simulate",
    "write_outputs",
]
