"""gpuplan: exact and heuristic scheduling of LLM work on GPU clusters.

The public API::

    import solver
    inst = solver.load_instance("instance.json")
    result = solver.solve(inst, method="greedy", time_limit_s=10)
    report = solver.check(inst, result.decision)
"""

from solver.checker import CheckReport, Violation, check
from solver.compiled import CompiledInstance
from solver.errors import FieldError, InputError
from solver.fileformat import (
    instance_from_dict,
    instance_to_dict,
    load_catalog,
    load_instance,
    save_instance,
)
from solver.generate import FAMILIES, generate
from solver.model import (
    FractionalTask,
    GpuType,
    InferenceService,
    Instance,
    LinkSpec,
    LlmModel,
    Node,
    ObjectiveWeights,
    Running,
    TrainingJob,
)
from solver.result import Attempt, Decision, Placement, Result, Status, load_decision
from solver.solve import solve

__all__ = [
    "FAMILIES",
    "Attempt",
    "CheckReport",
    "CompiledInstance",
    "Decision",
    "FieldError",
    "FractionalTask",
    "GpuType",
    "InferenceService",
    "InputError",
    "Instance",
    "LinkSpec",
    "LlmModel",
    "Node",
    "ObjectiveWeights",
    "Placement",
    "Result",
    "Running",
    "Status",
    "TrainingJob",
    "Violation",
    "check",
    "generate",
    "instance_from_dict",
    "instance_to_dict",
    "load_catalog",
    "load_decision",
    "load_instance",
    "save_instance",
    "solve",
]

__version__ = "0.1.0"
