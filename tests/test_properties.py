"""Hypothesis properties over generated instances (derandomized: the same examples every run).

* generated instances load, validate against the JSON Schema and round-trip;
* greedy decisions always pass the independent checker, which agrees with the result;
* mutations of a valid decision (a GPU moved onto a used one, a GPU dropped from a gang,
  a power cap out of range) are caught.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from solver.checker import check
from solver.fileformat import instance_from_dict, instance_to_dict
from solver.generate import generate_dict
from solver.model import FractionalTask, InferenceService, Instance, TrainingJob
from solver.result import Decision, Placement, Status
from solver.solve import solve

PROPERTY = settings(derandomize=True, max_examples=12, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
families = st.sampled_from(["tiny", "small"])
seeds = st.integers(min_value=0, max_value=10_000)


def solved(family: str, seed: int) -> tuple[Instance, Decision]:
    inst = instance_from_dict(generate_dict(family, seed), f"<{family} {seed}>")
    result = solve(inst, "greedy", time_limit_s=10)
    assert result.decision is not None, result.summary()
    return inst, result.decision


@PROPERTY
@given(family=families, seed=seeds)
def test_generated_instances_load_and_validate(family: str, seed: int,
                                               schema_errors: Callable[[str, Any], list[str]]) -> None:
    doc = generate_dict(family, seed)
    assert schema_errors("instance", doc) == []
    inst = instance_from_dict(doc)
    assert inst.name == f"{family}-s{seed}"
    assert len(inst.nodes) <= (3 if family == "tiny" else 16)
    again = instance_from_dict(json.loads(json.dumps(instance_to_dict(inst), allow_nan=False)))
    assert again == inst


@PROPERTY
@given(family=families, seed=seeds)
def test_greedy_decisions_pass_the_checker(family: str, seed: int) -> None:
    inst = instance_from_dict(generate_dict(family, seed))
    result = solve(inst, "greedy", time_limit_s=10)
    assert result.status == Status.FEASIBLE
    assert result.decision is not None
    report = check(inst, result.decision)
    assert report.violations == ()
    assert report.objective == result.objective
    assert report.metrics == result.metrics


def gpu_type_of(inst: Instance, gpu: str) -> str:
    return inst.node(gpu.rsplit("/", 1)[0]).gpu_type


def whole(inst: Instance, p: Placement) -> bool:
    return not isinstance(inst.job(p.job), FractionalTask)


@PROPERTY
@given(family=families, seed=st.integers(0, 30), data=st.data())
def test_moving_a_gpu_onto_a_used_one_is_caught(family: str, seed: int, data: st.DataObject) -> None:
    inst, dec = solved(family, seed)
    movers = [p for p in dec.placements if whole(inst, p)]
    assume(movers)
    p = data.draw(st.sampled_from(movers), label="moved placement")
    k = data.draw(st.integers(0, len(p.gpus) - 1), label="GPU index")
    kind = gpu_type_of(inst, p.gpus[k])
    used = sorted({g for q in dec.placements if q.job != p.job for g in q.gpus if gpu_type_of(inst, g) == kind})
    assume(used)
    target = data.draw(st.sampled_from(used), label="target GPU")
    gpus = (*p.gpus[:k], target, *p.gpus[k + 1:])
    mutated = Decision(tuple(dataclasses.replace(q, gpus=gpus) if q is p else q for q in dec.placements),
                       dec.powered_off_nodes)
    assert "gpu_capacity" in check(inst, mutated).kinds()


@PROPERTY
@given(family=families, seed=st.integers(0, 30), data=st.data())
def test_dropping_a_gpu_of_a_gang_is_caught(family: str, seed: int, data: st.DataObject) -> None:
    inst, dec = solved(family, seed)
    gangs = [p for p in dec.placements if len(p.gpus) > 1]
    assume(gangs)
    p = data.draw(st.sampled_from(gangs), label="gang")
    job = inst.job(p.job)
    k = data.draw(st.integers(0, len(p.gpus) - 1), label="dropped GPU")
    gpus = (*p.gpus[:k], *p.gpus[k + 1:])
    if isinstance(job, TrainingJob):
        assume(len(gpus) not in job.gpu_counts())  # an elastic job may legally shrink to an allowed size
    mutated = Decision(tuple(dataclasses.replace(q, gpus=gpus) if q is p else q for q in dec.placements),
                       dec.powered_off_nodes)
    kinds = check(inst, mutated).kinds()
    expected = "inference_capacity" if isinstance(job, InferenceService) and p.tp == 1 else "gang_size"
    assert expected in kinds


@PROPERTY
@given(family=families, seed=st.integers(0, 30), data=st.data())
def test_power_cap_out_of_range_is_caught(family: str, seed: int, data: st.DataObject) -> None:
    inst, dec = solved(family, seed)
    p = data.draw(st.sampled_from(dec.placements), label="placement")
    gpu = inst.gpu_type(gpu_type_of(inst, p.gpus[0]))
    above = data.draw(st.booleans(), label="above the range")
    excess = data.draw(st.floats(min_value=1.0, max_value=500.0), label="excess W")
    cap = gpu.max_power_cap_w + excess if above else max(1.0, gpu.min_power_cap_w - excess)
    assume(cap < gpu.min_power_cap_w or cap > gpu.max_power_cap_w)
    mutated = Decision(tuple(dataclasses.replace(q, power_cap_w=cap) if q is p else q for q in dec.placements),
                       dec.powered_off_nodes)
    assert "power_cap_range" in check(inst, mutated).kinds()
