"""Shared fixtures: the hand-written example files and validators of the JSON Schemas."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from solver.fileformat import data_path, instance_from_dict
from solver.model import Instance
from solver.result import Decision, decision_from_dict

EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "examples"


@pytest.fixture(scope="session")
def schema_validators() -> dict[str, Draft202012Validator]:
    """Validators of ``schemas/*.schema.json`` by name (instance, decision, cluster), sharing one registry."""
    schemas = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(data_path("schemas").glob("*.json"))}
    registry: Registry = Registry().with_resources(
        [(s["$id"], Resource.from_contents(s)) for s in schemas.values()])
    return {name.removesuffix(".schema.json"): Draft202012Validator(s, registry=registry)
            for name, s in schemas.items()}


@pytest.fixture(scope="session")
def schema_errors(schema_validators: dict[str, Draft202012Validator]) -> Callable[[str, Any], list[str]]:
    """``schema_errors(name, doc)``: messages of every violation of schema ``name`` (instance,
    decision, cluster), each prefixed by the JSON path of the offending value."""

    def errors(name: str, doc: Any) -> list[str]:
        return [f"{e.json_path}: {e.message}" for e in schema_validators[name].iter_errors(doc)]

    return errors


@pytest.fixture
def examples_dir() -> Path:
    """``data/examples`` (hand-written instance, cluster spec and decision)."""
    return EXAMPLES


@pytest.fixture
def toy_doc() -> dict[str, Any]:
    """The parsed ``data/examples/toy-instance.json`` (a fresh copy, safe to mutate)."""
    doc: dict[str, Any] = json.loads((EXAMPLES / "toy-instance.json").read_text(encoding="utf-8"))
    return doc


@pytest.fixture
def toy_instance(toy_doc: dict[str, Any]) -> Instance:
    """The toy instance (two TOY-A nodes with split NVLink domains, one TOY-B node)."""
    return instance_from_dict(toy_doc, "toy-instance.json")


@pytest.fixture
def toy_decision() -> Decision:
    """The valid decision ``data/examples/toy-decision.json`` of the toy instance."""
    return decision_from_dict(json.loads((EXAMPLES / "toy-decision.json").read_text(encoding="utf-8")))


# ----------------------------------------------------------------------------- hand-built instances (issue 3)
#: Two GPU types with round figures so that expected optima can be computed by hand:
#: TDP 100 W, idle 10 W, caps 100 W and 50 W, training draws min(cap, 100 W) and slows down
#: by max(1, 100 / cap) (beta = 1), so a 50 W cap halves the speed.
HAND_GPU_TYPES: tuple[dict[str, Any], ...] = tuple(
    {"name": name, "memory_gib": 80, "bf16_tflops": 100, "mem_bw_gbps": 1000, "tdp_w": 100, "idle_w": 10,
     "min_power_cap_w": 50, "max_power_cap_w": 100, "power_cap_levels_w": [100, 50],
     "power_model": {"train_frac": 1.0, "prefill_frac": 1.0, "beta": 1.0}}
    for name in ("HAND-G", "HAND-H"))
#: Objective weights of hand-built instances: 1 per kWh, PUE 1, one-hour horizon, so one
#: watt over the horizon costs exactly 0.001.
HAND_OBJECTIVE: dict[str, Any] = {"energy_per_kwh": 1.0, "slo_violation": 10.0, "tardiness_per_h": 1.0,
                                  "unplaced_per_gpu": 10.0, "migration": 1.0, "horizon_s": 3600.0, "pue": 1.0}


@pytest.fixture
def make_instance() -> Callable[..., Instance]:
    """``make_instance(nodes, training=..., services=..., fractional=..., **top)``: a validated
    instance on the hand GPU types ``HAND-G``/``HAND-H`` and :data:`HAND_OBJECTIVE`.

    ``nodes`` are node dicts of the instance format; ``gpu_type`` defaults to ``HAND-G``,
    ``rack``/``pod`` to ``r0``/``p0``, ``host_power_w`` to 100. ``objective`` entries in
    ``top`` update the default weights; other ``top`` keys (``power_budget_w``, ``name``)
    go to the document as they are.
    """
    from solver.fileformat import SCHEMA_VERSION

    def build(nodes: list[dict[str, Any]], training: list[dict[str, Any]] | None = None,
              services: list[dict[str, Any]] | None = None, fractional: list[dict[str, Any]] | None = None,
              **top: Any) -> Instance:
        full = [{"gpu_type": "HAND-G", "rack": "r0", "pod": "p0", "host_power_w": 100.0, **n} for n in nodes]
        doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "kind": "gpuplan.instance", "name": top.pop("name", "hand"),
            "gpu_types": [dict(t) for t in HAND_GPU_TYPES], "cluster": {"nodes": full},
            "training_jobs": training or [], "inference_services": services or [],
            "fractional_tasks": fractional or [],
            "objective": {**HAND_OBJECTIVE, **top.pop("objective", {})}, **top}
        return instance_from_dict(doc, "<hand-built>")

    return build
