"""Reading and writing documents: exact error messages, JSON Schemas and round-trips.

The malformed-input table starts from the hand-written ``data/examples/toy-instance.json``,
applies a few edits and lists the exact messages the loader must give (field path, reason,
value). Every error of a document is reported at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from solver.errors import InputError
from solver.fileformat import (
    SCHEMA_VERSION,
    data_path,
    instance_from_dict,
    instance_to_dict,
    load_cluster_spec,
    load_document,
    load_instance,
    save_instance,
)
from solver.generate import generate, generate_dict
from solver.model import DEFAULT_TIER_SLOWDOWN, TIER_NAMES, Instance
from solver.result import Attempt, Decision, Placement, Result, Status, decision_from_dict, decision_to_dict
from solver.topology import RACK_TEMPLATES, TEMPLATES

SchemaErrors = Callable[[str, Any], list[str]]
DELETE = object()
TEMPLATE_NAMES = ("['dgx-a100-40', 'dgx-a100-80', 'dgx-h100', 'dgx1-v100', 'hgx-h200', 'mi300x-8', 'pcie-a10-4', "
                  "'pcie-l4-8', 'pcie-t4-4']")


def edit(doc: dict[str, Any], edits: list[tuple[str, Any]]) -> dict[str, Any]:
    """Apply ``(path, value)`` edits: ``a.b[2].c`` sets a field, ``DELETE`` removes it, ``+`` appends."""
    for path, value in edits:
        keys: list[str | int] = []
        for part in path.replace("]", "").split("."):
            name, *idx = part.split("[")
            keys.append(name)
            keys.extend(int(i) for i in idx)
        target: Any = doc
        for k in keys[:-1]:
            target = target[k]
        last = keys[-1]
        if value is DELETE:
            del target[last]
        elif last == "+":
            target.append(value)
        else:
            target[last] = value
    return doc


def errors_of(doc: Any) -> list[str]:
    with pytest.raises(InputError) as info:
        instance_from_dict(doc, "toy.json")
    assert info.value.source == "toy.json"
    return [str(e) for e in info.value.errors]


# (case id, edits of the toy instance, exact messages)
MALFORMED: list[tuple[str, list[tuple[str, Any]], list[str]]] = [
    ("deadline-before-arrival", [("training_jobs[0].deadline_s", -5.0)],
     ["training_jobs[0].deadline_s: must be >= arrival_s (got -5.0)"]),
    ("string-for-integer", [("training_jobs[0].num_gpus", "two")],
     ["training_jobs[0].num_gpus: must be an integer (got 'two')"]),
    ("fractional-integer", [("training_jobs[0].num_gpus", 2.5)],
     ["training_jobs[0].num_gpus: must be an integer (got 2.5)"]),
    ("bool-for-number", [("training_jobs[0].priority", True)],
     ["training_jobs[0].priority: must be a number (got True)"]),
    ("bool-field-string", [("training_jobs[0].preemptible", "no")],
     ["training_jobs[0].preemptible: must be true or false (got 'no')"]),
    ("list-for-object", [("training_jobs[0]", [1, 2])],
     ["training_jobs[0]: must be an object (got [1, 2])"]),
    ("object-for-list", [("training_jobs", {})], ["training_jobs: must be a list (got {})"]),
    ("blank-id", [("training_jobs[0].id", " ")], ["training_jobs[0].id: must be a non-empty string (got ' ')"]),
    ("missing-field", [("training_jobs[0].work", DELETE)], ["training_jobs[0].work: is required"]),
    ("missing-service-fields", [("inference_services[0].ttft_slo_s", DELETE),
                                ("inference_services[0].model", DELETE)],
     ["inference_services[0].model: is required", "inference_services[0].ttft_slo_s: is required"]),
    ("missing-cluster", [("cluster", DELETE)], ["cluster: is required"]),
    ("missing-version", [("schema_version", DELETE)], ["schema_version: is required"]),
    ("future-version", [("schema_version", 2)], ["schema_version: must be 1 (got 2)"]),
    ("wrong-kind", [("kind", "gpuplan.decision")], ["kind: must be 'gpuplan.instance' (got 'gpuplan.decision')"]),
    ("unknown-top-field", [("jobs", [])], ["jobs: unknown field"]),
    ("unknown-job-field", [("training_jobs[0].walltime", 5)], ["training_jobs[0].walltime: unknown field"]),
    ("unknown-objective-field", [("objective.carbon", 1)], ["objective.carbon: unknown field"]),
    ("unknown-capacity-field", [("inference_services[0].capacity.TOY-B.rps", 1)],
     ["inference_services[0].capacity.TOY-B.rps: unknown field"]),
    ("count-outside-rack", [("cluster.nodes[0].count", 2)], ["cluster.nodes[0].count: unknown field"]),
    ("duplicate-job-id", [("training_jobs[1].id", "t1")],
     ["training_jobs[1].id: duplicate id, first used at training_jobs[0] (got 't1')"]),
    ("duplicate-id-across-kinds", [("fractional_tasks[0].id", "s1")],
     ["fractional_tasks[0].id: duplicate id, first used at inference_services[0] (got 's1')"]),
    ("duplicate-node-id", [("cluster.nodes[1].id", "a0"), ("training_jobs[1].running.gpus", ["a0/2"])],
     ["cluster.nodes[1].id: duplicate id, first used at cluster.nodes[0] (got 'a0')"]),
    ("duplicate-gpu-type", [("gpu_types.+", {"name": "TOY-A", "memory_gib": 8, "bf16_tflops": 1, "mem_bw_gbps": 1,
                                             "tdp_w": 100, "idle_w": 10, "min_power_cap_w": 50,
                                             "max_power_cap_w": 100})],
     ["gpu_types[2].name: duplicate name, first used at gpu_types[0] (got 'TOY-A')"]),
    ("zero-gpus", [("cluster.nodes[2].gpu_count", 0)], ["cluster.nodes[2].gpu_count: must be > 0 (got 0)"]),
    ("negative-memory", [("training_jobs[0].memory_gib", -1)],
     ["training_jobs[0].memory_gib: must be > 0 (got -1)"]),
    ("zero-rate", [("inference_services[0].request_rate_rps", 0)],
     ["inference_services[0].request_rate_rps: must be > 0 (got 0)"]),
    ("milli-range", [("fractional_tasks[0].gpu_milli", 1000), ("fractional_tasks[1].gpu_milli", 0)],
     ["fractional_tasks[0].gpu_milli: must be <= 999 (got 1000)",
      "fractional_tasks[1].gpu_milli: must be >= 1 (got 0)"]),
    ("nan", [("training_jobs[0].work", float("nan"))], ["training_jobs[0].work: must be finite (got nan)"]),
    ("infinity", [("objective.horizon_s", float("inf")), ("now_s", float("-inf"))],
     ["now_s: must be finite (got -inf)", "objective.horizon_s: must be finite (got inf)"]),
    ("unknown-type-of-node", [("cluster.nodes[2].gpu_type", "B200")],
     ["cluster.nodes[2].gpu_type: unknown GPU type (got 'B200')"]),
    ("unknown-type-in-throughput", [("training_jobs[0].throughput_per_gpu.B200", 1.0)],
     ["training_jobs[0].throughput_per_gpu.B200: unknown GPU type"]),
    ("unknown-type-in-list", [("fractional_tasks[2].gpu_types", ["TOY-B", "TOY-C"])],
     ["fractional_tasks[2].gpu_types[1]: unknown GPU type (got 'TOY-C')"]),
    ("unknown-llm", [("inference_services[0].model", "gpt5")],
     ["inference_services[0].model: unknown LLM model (got 'gpt5')"]),
    ("unknown-template", [("cluster.nodes.+", {"id": "x", "template": "dgx-b200", "rack": "r", "pod": "p"})],
     [f"cluster.nodes[3].template: unknown node template; known: {TEMPLATE_NAMES} (got 'dgx-b200')"]),
    ("nvlink-index-twice", [("cluster.nodes[0].nvlink_domains", [[0, 1], [1, 2, 3]])],
     ["cluster.nodes[0].nvlink_domains[1][0]: GPU index appears in two groups (got 1)"]),
    ("nvlink-index-missing", [("cluster.nodes[0].nvlink_domains", [[0, 1], [2]])],
     ["cluster.nodes[0].nvlink_domains: must cover every local GPU index 0..3; missing [3]"]),
    ("nvlink-index-range", [("cluster.nodes[0].nvlink_domains", [[0, 1], [2, 3, 4]])],
     ["cluster.nodes[0].nvlink_domains[1][2]: must be <= 3 (got 4)"]),
    ("nvlink-flat-list", [("cluster.nodes[0].nvlink_domains", [0, 1, 2, 3])],
     ["cluster.nodes[0].nvlink_domains: must be a list of lists of local GPU indices (got [0, 1, 2, 3])"]),
    ("nvlink-empty", [("cluster.nodes[0].nvlink_domains", [])],
     ["cluster.nodes[0].nvlink_domains: must cover every local GPU index 0..3 (got [])"]),
    ("running-unknown-node", [("training_jobs[1].running.gpus", ["a9/0"])],
     ["training_jobs[1].running.gpus[0]: unknown GPU id (got 'a9/0')"]),
    ("running-unknown-index", [("training_jobs[1].running.gpus", ["a1/4"])],
     ["training_jobs[1].running.gpus[0]: unknown GPU id (got 'a1/4')"]),
    ("running-not-a-string", [("training_jobs[1].running.gpus", [3])],
     ["training_jobs[1].running.gpus[0]: must be a GPU id string '<node>/<index>' (got 3)"]),
    ("running-gpu-twice-in-job", [("training_jobs[1].running.gpus", ["a1/0", "a1/0"])],
     ["training_jobs[1].running.gpus: lists a GPU twice (got ['a1/0', 'a1/0'])"]),
    ("running-gpu-of-two-jobs", [("training_jobs[0].running", {"gpus": ["a1/0", "a1/1"]})],
     ["training_jobs[1].running.gpus[0]: GPU already used by running job 't1' (got 'a1/0')"]),
    ("running-fraction-on-whole", [("fractional_tasks[0].running", {"gpus": ["a1/0"]})],
     ["fractional_tasks[0].running.gpus[0]: GPU already used by running job 't2' (got 'a1/0')"]),
    ("running-fraction-two-gpus", [("fractional_tasks[0].running", {"gpus": ["a0/2", "a0/3"]})],
     ["fractional_tasks[0].running.gpus: a fractional task runs on exactly one GPU (got ['a0/2', 'a0/3'])"]),
    ("running-two-types", [("training_jobs[0].running", {"gpus": ["a0/0", "b0/0"]})],
     ["training_jobs[0].running.gpus: spans several GPU types (got ['TOY-A', 'TOY-B'])"]),
    ("running-ineligible-type-or-size", [("training_jobs[2].running", {"gpus": ["a0/0", "a0/1", "a0/2"]}),
                                         ("training_jobs[1].running.gpus", ["b0/1"])],
     ["training_jobs[1].running.gpus: runs on a GPU type without a throughput for the job (got 'TOY-B')",
      "training_jobs[2].running.gpus: must hold an allowed gang size [4] (got 3)"]),
    ("never-fits-gang", [("training_jobs[2].num_gpus", 16)],
     ["training_jobs[2]: can never be placed: needs 16 GPUs, more than the cluster has of any eligible type "
      "(got 't3')"]),
    ("never-fits-memory", [("training_jobs[2].memory_gib", 100)],
     ["training_jobs[2]: can never be placed: needs 100 GiB per GPU, more than any eligible GPU type has (got 't3')"]),
    ("never-fits-tp", [("training_jobs[2].tp", 4)],
     ["training_jobs[2]: can never be placed: tp=4 exceeds every NVLink domain of its eligible GPU types (got 't3')"]),
    ("never-fits-fraction", [("fractional_tasks[2].memory_gib", 30)],
     ["fractional_tasks[2]: can never be placed: no allowed GPU type in the cluster has 30 GiB for it (got 'f3')"]),
    ("never-fits-service", [("inference_services[0].capacity.TOY-B.tp", 4)],
     ["inference_services[0]: can never be placed: no GPU type in the cluster meets its TTFT/TPOT SLOs with the "
      "GPUs it has (got 's1')"]),
    ("objective-weights", [("objective.energy_per_kwh", -1), ("objective.pue", 0.9), ("objective.horizon_s", 0),
                           ("objective.allow_power_down", "yes")],
     ["objective.energy_per_kwh: must be >= 0 (got -1)", "objective.horizon_s: must be > 0 (got 0)",
      "objective.pue: must be >= 1 (got 0.9)", "objective.allow_power_down: must be true or false (got 'yes')"]),
    ("objective-not-object", [("objective", 3)], ["objective: must be an object (got 3)"]),
    ("zero-budget", [("power_budget_w", 0)], ["power_budget_w: must be > 0 (got 0)"]),
    ("elastic-range", [("training_jobs[2].min_gpus", 8), ("training_jobs[0].tp", 3)],
     ["training_jobs[0].tp: must divide num_gpus (2) (got 3)", "training_jobs[2].min_gpus: must be <= num_gpus (4) "
      "(got 8)"]),
    ("tier-slowdown-order", [("training_jobs[0].tier_slowdown", [1, 1.2, 1.1, 1.3, 1.4])],
     ["training_jobs[0].tier_slowdown: must be non-decreasing from tight to loose tiers "
      "(got [1, 1.2, 1.1, 1.3, 1.4])"]),
    ("tier-slowdown-length", [("training_jobs[0].tier_slowdown", [1, 1.2])],
     ["training_jobs[0].tier_slowdown: must list 5 factors for tiers ['nvlink', 'node', 'rack', 'pod', 'cluster'] "
      "(got [1, 1.2])"]),
    ("gpu-type-ranges", [("gpu_types[0].idle_w", 500), ("gpu_types[0].min_power_cap_w", 500)],
     ["gpu_types[0].idle_w: must be < tdp_w (400) (got 500.0)",
      "gpu_types[0].min_power_cap_w: must be <= max_power_cap_w (400) (got 500.0)",
      "gpu_types[0].power_cap_levels_w[0]: must be within [min_power_cap_w, max_power_cap_w] = [500, 400] (got 400.0)",
      "gpu_types[0].power_cap_levels_w[1]: must be within [min_power_cap_w, max_power_cap_w] = [500, 400] "
      "(got 300.0)"]),
    ("power-model", [("gpu_types[0].power_model.decode_frac_by_batch", {"0": 0.5, "x": 0.6, "8": 2}),
                     ("gpu_types[0].power_model.beta", 3), ("gpu_types[0].sources", ["x"])],
     ["gpu_types[0].power_model.beta: must be <= 2 (got 3)",
      "gpu_types[0].power_model.decode_frac_by_batch.0: batch size must be an integer >= 1",
      "gpu_types[0].power_model.decode_frac_by_batch.x: batch size must be an integer >= 1",
      "gpu_types[0].power_model.decode_frac_by_batch.8: must be <= 1.5 (got 2)",
      "gpu_types[0].sources: must be a mapping field -> source (got ['x'])"]),
    ("llm-with-work", [("training_jobs[0].llm", {"model": "llama3-8b", "train_tokens_b": 1})],
     ["training_jobs[0].work: must not be given together with llm (it is derived)",
      "training_jobs[0].throughput_per_gpu: must not be given together with llm (it is derived)"]),
    ("llm-fields", [("training_jobs.+", {"id": "L", "num_gpus": 2, "memory_gib": -3,
                                         "llm": {"model": "nope", "train_tokens_b": 0, "mfu": 2, "lr": 1}})],
     ["training_jobs[3].llm.lr: unknown field", "training_jobs[3].memory_gib: must be > 0 (got -3)",
      "training_jobs[3].llm.model: unknown LLM model (got 'nope')",
      "training_jobs[3].llm.train_tokens_b: must be > 0 (got 0)", "training_jobs[3].llm.mfu: must be <= 1 (got 2)"]),
    ("running-fields", [("training_jobs[1].running.power_cap_w", -1),
                        ("training_jobs[1].running.migration_cost_s", -2), ("training_jobs[1].running.pid", 7)],
     ["training_jobs[1].running.pid: unknown field", "training_jobs[1].running.power_cap_w: must be > 0 (got -1)",
      "training_jobs[1].running.migration_cost_s: must be >= 0 (got -2)"]),
    ("running-empty", [("training_jobs[1].running.gpus", [])],
     ["training_jobs[1].running.gpus: must list at least one GPU"]),
    ("free-text-not-string", [("description", 5), ("cluster.name", ["x"]), ("gpu_types[1].sources", {"tdp_w": 100}),
                              ("llm_models", [{"name": "m", "params_b": 1, "n_layers": 1, "hidden": 1, "n_heads": 1,
                                               "n_kv_heads": 1, "d_head": 1, "source": 3}])],
     ["description: must be a string (got 5)", "gpu_types[1].sources.tdp_w: must be a string (got 100)",
      "llm_models[0].source: must be a string (got 3)", "cluster.name: must be a string (got ['x'])"]),
]


@pytest.mark.parametrize(("edits", "expected"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_instance_messages(toy_doc: dict[str, Any], edits: list[tuple[str, Any]],
                                     expected: list[str]) -> None:
    assert errors_of(edit(toy_doc, edits)) == expected


def test_every_error_of_a_document_is_reported_at_once(toy_doc: dict[str, Any]) -> None:
    doc = edit(toy_doc, [("schema_version", 2), ("training_jobs[0].deadline_s", -5.0),
                         ("cluster.nodes[2].gpu_type", "B200"), ("inference_services[0].prompt_tokens", "many"),
                         ("fractional_tasks[1].duration_s", float("nan")), ("objective.pue", 0.5)])
    with pytest.raises(InputError) as info:
        instance_from_dict(doc, "toy.json")
    assert str(info.value) == "\n".join([
        "toy.json: 6 error(s) in input",
        "toy.json: schema_version: must be 1 (got 2)",
        "toy.json: cluster.nodes[2].gpu_type: unknown GPU type (got 'B200')",
        "toy.json: training_jobs[0].deadline_s: must be >= arrival_s (got -5.0)",
        "toy.json: inference_services[0].prompt_tokens: must be a number (got 'many')",
        "toy.json: fractional_tasks[1].duration_s: must be finite (got nan)",
        "toy.json: objective.pue: must be >= 1 (got 0.5)",
    ])


def test_single_error_message_has_no_header(toy_doc: dict[str, Any]) -> None:
    with pytest.raises(InputError) as info:
        instance_from_dict(edit(toy_doc, [("now_s", -1)]), "toy.json")
    assert str(info.value) == "toy.json: now_s: must be >= 0 (got -1)"


def test_document_that_is_not_an_object() -> None:
    assert errors_of([1, 2]) == ["<document>: must be an object (got [1, 2])"]


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("bad.json", '{"schema_version": 1,,}', "not valid JSON: Expecting property name enclosed in double quotes: "
     "line 1 column 22 (char 21)"),
    ("empty.json", "", "not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    ("bad.yaml", "a: [1, 2\nb: 3\n", "not valid YAML: while parsing a flow sequence\n  in \"<unicode string>\", "
     "line 1, column 4:\n    a: [1, 2\n       ^\nexpected ',' or ']', but got ':'\n  in \"<unicode string>\", "
     "line 2, column 2:\n    b: 3\n     ^"),
])
def test_syntax_errors_name_the_file(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_instance(path)
    assert [str(e) for e in info.value.errors] == [f"<document>: {expected}"]
    assert info.value.source == str(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(InputError) as info:
        load_instance(path)
    assert str(info.value) == f"{path}: <document>: file not found"


def test_json_nan_and_infinity_literals_are_reported(toy_doc: dict[str, Any], tmp_path: Path) -> None:
    text = json.dumps(toy_doc).replace('"work": 7200', '"work": NaN').replace('"duration_s": 600', '"duration_s": '
                                                                              "Infinity", 1)
    path = tmp_path / "nan.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_instance(path)
    assert [str(e) for e in info.value.errors] == ["training_jobs[0].work: must be finite (got nan)",
                                                   "fractional_tasks[1].duration_s: must be finite (got inf)"]


def test_empty_yaml_document(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_instance(path)
    assert str(info.value) == f"{path}: <document>: must be an object (got None)"


# ----------------------------------------------------------------------------- cluster specs


def test_cluster_spec_example_expands_templates(examples_dir: Path) -> None:
    nodes, links = load_cluster_spec(examples_dir / "cluster.yaml")
    assert [(n.id, n.gpu_type, n.gpu_count, n.rack, n.pod) for n in nodes] == [
        ("h100-a-n0", "H100-SXM", 8, "h100-a", "train"), ("h100-a-n1", "H100-SXM", 8, "h100-a", "train"),
        ("h100-a-n2", "H100-SXM", 8, "h100-a", "train"), ("h100-a-n3", "H100-SXM", 8, "h100-a", "train"),
        ("h100-b-n0", "H100-SXM", 8, "h100-b", "train"), ("h100-b-n1", "H100-SXM", 8, "h100-b", "train"),
        ("l4-n0", "L4", 8, "l4", "serve"), ("l4-n1", "L4", 8, "l4", "serve"), ("a100-x", "A100-80GB", 4, "l4", "serve"),
    ]
    assert nodes[0].nvlink_domains == (tuple(range(8)),)
    assert nodes[0].numa_domains == ((0, 1, 2, 3), (4, 5, 6, 7))
    assert nodes[0].host_power_w == 2300.0
    assert nodes[6].nvlink_domains == tuple((i,) for i in range(8))
    assert nodes[8].nvlink_domains == ((0, 1), (2, 3))
    assert links.core_bw_gbps == 12.5


def cluster_errors(tmp_path: Path, doc: Any) -> list[str]:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_cluster_spec(path)
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize(("doc", "expected"), [
    ({"pods": [{"id": "p", "racks": [{"id": "r", "template": "rail-b200-rack"}]}]},
     ["pods[0].racks[0].template: unknown rack template; known: ['inference-l4-rack', 'rail-a100-rack', "
      "'rail-h100-rack'] (got 'rail-b200-rack')"]),
    ({"pods": [{"id": "p", "racks": [{"id": "r", "nodes": [{"template": "dgx-b200", "count": 4}]}]}]},
     [f"pods[0].racks[0].nodes[0].template: unknown node template; known: {TEMPLATE_NAMES} (got 'dgx-b200')"]),
    ({"pods": [{"id": "p", "racks": [{"id": "r", "nodes": [{"template": "dgx-h100", "rack": "r9"}]}]}]},
     ["pods[0].racks[0].nodes[0].rack: unknown field"]),
    ({"pods": [{"id": "p", "racks": [{"id": "r", "nodes": [{"template": "dgx-h100", "count": 0}]}]}]},
     ["pods[0].racks[0].nodes[0].count: must be > 0 (got 0)"]),
    ({"pods": [{"racks": [{"id": "r", "nodes": [{"template": "dgx-h100"}]}]}]}, ["pods[0].id: is required"]),
    ({"pods": [{"id": "p"}]}, ["pods[0].racks: is required"]),
    ({"nodes": []}, ["nodes: the cluster has no nodes"]),
    ({"schema_version": 3, "kind": "cluster", "nodes": [{"id": "n", "template": "pcie-t4-4", "rack": "r", "pod": "p"}],
      "links": {"leaf_bw_gbps": 0}},
     ["schema_version: must be 1 (got 3)", "kind: must be 'gpuplan.cluster' (got 'cluster')",
      "links.leaf_bw_gbps: must be > 0 (got 0)"]),
    ({"nodes": [{"id": "n", "gpu_type": "H100-SXM", "rack": "r"}]},
     ["nodes[0].gpu_count: is required", "nodes[0].pod: is required"]),
    ({"nodes": [{"id": "n", "template": "pcie-t4-4", "rack": "r", "pod": "p"},
                {"id": "n", "template": "pcie-t4-4", "rack": "r", "pod": "p"}]},
     ["nodes[1].id: duplicate id, first used at nodes[0] (got 'n')"]),
    ({"nodes": [{"id": "r-n0", "template": "pcie-t4-4", "rack": "r", "pod": "p"}],
      "pods": [{"id": "p", "racks": [{"id": "r", "template": "rail-h100-rack",
                                      "nodes": [{"id": "r-n1", "template": "pcie-t4-4"}, {"template": "dgx-h100"}]}]}]},
     ["pods[0].racks[0].template.id: duplicate id, first used at nodes[0] (got 'r-n0')",
      "pods[0].racks[0].nodes[0].id: duplicate id, first used at pods[0].racks[0].template (got 'r-n1')"]),
    ({"pods": [{"id": "p", "racks": [{"id": "r", "template": "rail-h100-rack", "nodes": [{"gpu_count": 2}]}]}]},
     ["pods[0].racks[0].nodes[0].gpu_type: is required"]),
])
def test_cluster_spec_errors(tmp_path: Path, doc: Any, expected: list[str]) -> None:
    assert cluster_errors(tmp_path, doc) == expected


def test_template_with_other_gpu_count_gets_singleton_domains(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"nodes": [{"id": "n", "template": "dgx-h100", "gpu_count": 4, "rack": "r",
                                           "pod": "p"}]}), encoding="utf-8")
    (node,), _ = load_cluster_spec(path)
    assert (node.gpu_type, node.gpu_count, node.nvlink_domains, node.numa_domains) == (
        "H100-SXM", 4, ((0,), (1,), (2,), (3,)), ((0, 1, 2, 3),))


# ----------------------------------------------------------------------------- decisions


@pytest.mark.parametrize(("doc", "expected"), [
    ({"placements": []}, ["schema_version: is required"]),
    ({"schema_version": 1}, ["placements: is required"]),
    ({"schema_version": 1, "kind": "gpuplan.instance", "placements": [], "extra": 1},
     ["extra: unknown field", "kind: must be 'gpuplan.decision' (got 'gpuplan.instance')"]),
    ({"schema_version": 1, "placements": [{"job": "t1", "gpus": ["a0/0", 3], "power_cap_w": 0, "tp": 0, "x": 1}],
      "powered_off_nodes": [5]},
     ["placements[0].x: unknown field", "placements[0].gpus[1]: must be a GPU id string (got 3)",
      "placements[0].power_cap_w: must be > 0 (got 0)", "placements[0].tp: must be > 0 (got 0)",
      "powered_off_nodes[0]: must be a node id string (got 5)"]),
    ({"schema_version": 1, "placements": [{"gpus": ["a0/0"], "power_cap_w": float("nan")}]},
     ["placements[0].job: is required", "placements[0].power_cap_w: must be finite (got nan)"]),
])
def test_malformed_decision_messages(doc: Any, expected: list[str]) -> None:
    with pytest.raises(InputError) as info:
        decision_from_dict(doc, "d.json")
    assert [str(e) for e in info.value.errors] == expected


# ----------------------------------------------------------------------------- JSON Schemas


def schema(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(data_path("schemas", f"{name}.schema.json").read_text(encoding="utf-8"))
    return doc


@pytest.mark.parametrize("name", ["instance", "decision", "cluster"])
def test_schemas_are_valid_draft_2020_12(name: str) -> None:
    doc = schema(name)
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == f"https://gpuplan.invalid/schemas/{SCHEMA_VERSION}/{name}.schema.json"


def test_schema_enumerations_follow_the_code() -> None:
    cluster, decision = schema("cluster")["$defs"], schema("decision")
    assert sorted(cluster["templateName"]["enum"]) == sorted(TEMPLATES)
    assert sorted(cluster["rackTemplateName"]["enum"]) == sorted(RACK_TEMPLATES)
    assert decision["properties"]["status"]["enum"] == [s.value for s in Status]
    assert decision["$defs"]["attempt"]["properties"]["status"]["enum"] == [s.value for s in Status]
    training = schema("instance")["$defs"]["trainingJob"]["properties"]
    assert training["tier_slowdown"]["default"] == list(DEFAULT_TIER_SLOWDOWN)
    assert len(training["tier_slowdown"]["default"]) == len(TIER_NAMES)


@pytest.mark.parametrize("family", ["tiny", "small", "medium", "large"])
def test_generated_instances_match_the_schema(family: str, schema_errors: SchemaErrors) -> None:
    doc = generate_dict(family, 0)
    assert schema_errors("instance", doc) == []
    assert schema_errors("instance", instance_to_dict(instance_from_dict(doc))) == []


@pytest.mark.parametrize(("schema", "name"), [("instance", "toy-instance.json"), ("instance", "llm-instance.yaml"),
                                              ("cluster", "cluster.yaml"), ("decision", "toy-decision.json")])
def test_examples_match_the_schema(schema: str, name: str, examples_dir: Path, schema_errors: SchemaErrors) -> None:
    assert schema_errors(schema, load_document(examples_dir / name)) == []


def test_examples_load(examples_dir: Path) -> None:
    assert load_instance(examples_dir / "toy-instance.json").name == "toy"
    inst = load_instance(examples_dir / "llm-instance.yaml")
    assert [j.id for j in inst.jobs()] == ["pretrain-8b", "finetune", "chat", "notebook"]


def test_result_document_matches_the_decision_schema(toy_instance: Instance, schema_errors: SchemaErrors) -> None:
    result = Result(Status.FEASIBLE, 3.5, 3.0, 0.25, "greedy",
                    Decision((Placement("t1", ("a0/0", "a0/1"), 400.0, 0.0, 2),), ("b0",)),
                    {"energy_kwh": 1.0}, (Attempt("greedy", Status.FEASIBLE, 3.5, None, 0.25, "ok"),), "toy")
    doc = result.to_dict()
    assert schema_errors("decision", doc) == []
    assert decision_from_dict(doc) == result.decision


# Structural defects: the schema rejects them, and so does the loader.
STRUCTURAL: list[tuple[str, list[tuple[str, Any]]]] = [
    ("unknown-top-field", [("jobs", [])]),
    ("missing-version", [("schema_version", DELETE)]),
    ("wrong-version", [("schema_version", 2)]),
    ("wrong-kind", [("kind", "x")]),
    ("missing-cluster", [("cluster", DELETE)]),
    ("unknown-node-field", [("cluster.nodes[0].speed", 1)]),
    ("count-outside-rack", [("cluster.nodes[0].count", 2)]),
    ("node-without-rack", [("cluster.nodes[0].rack", DELETE)]),
    ("node-without-type", [("cluster.nodes[0].gpu_type", DELETE)]),
    ("unknown-template", [("cluster.nodes[0].template", "dgx-b200")]),
    ("string-count", [("cluster.nodes[0].gpu_count", "4")]),
    ("flat-partition", [("cluster.nodes[0].nvlink_domains", [0, 1, 2, 3])]),
    ("empty-partition", [("cluster.nodes[0].nvlink_domains", [])]),
    ("negative-index", [("cluster.nodes[0].nvlink_domains", [[0, 1], [2, -3]])]),
    ("job-not-object", [("training_jobs[0]", "t1")]),
    ("missing-work", [("training_jobs[0].work", DELETE)]),
    ("empty-throughput", [("training_jobs[0].throughput_per_gpu", {})]),
    ("llm-and-work", [("training_jobs[0].llm", {"model": "llama3-8b", "train_tokens_b": 1})]),
    ("llm-unknown-field", [("training_jobs[0].work", DELETE), ("training_jobs[0].throughput_per_gpu", DELETE),
                           ("training_jobs[0].llm", {"model": "llama3-8b", "train_tokens_b": 1, "x": 1})]),
    ("zero-gpus", [("training_jobs[0].num_gpus", 0)]),
    ("float-gpus", [("training_jobs[0].num_gpus", 1.5)]),
    ("bool-gpus", [("training_jobs[0].num_gpus", True)]),
    ("negative-arrival", [("training_jobs[0].arrival_s", -1)]),
    ("string-preemptible", [("training_jobs[0].preemptible", "yes")]),
    ("short-tier-slowdown", [("training_jobs[0].tier_slowdown", [1, 1])]),
    ("slowdown-below-one", [("training_jobs[0].tier_slowdown", [0.5, 1, 1, 1, 1])]),
    ("running-without-gpus", [("training_jobs[1].running.gpus", DELETE)]),
    ("running-empty-gpus", [("training_jobs[1].running.gpus", [])]),
    ("running-gpu-twice", [("training_jobs[1].running.gpus", ["a1/0", "a1/0"])]),
    ("running-gpu-number", [("training_jobs[1].running.gpus", [0])]),
    ("running-unknown-field", [("training_jobs[1].running.pid", 1)]),
    ("service-missing-model", [("inference_services[0].model", DELETE)]),
    ("service-zero-tpot", [("inference_services[0].tpot_slo_s", 0)]),
    ("capacity-missing-tp", [("inference_services[0].capacity.TOY-B.tp", DELETE)]),
    ("capacity-unknown-field", [("inference_services[0].capacity.TOY-B.rps", 1)]),
    ("milli-too-large", [("fractional_tasks[0].gpu_milli", 1000)]),
    ("fraction-two-running-gpus", [("fractional_tasks[0].running", {"gpus": ["a0/2", "a0/3"]})]),
    ("objective-unknown-field", [("objective.carbon", 1)]),
    ("pue-below-one", [("objective.pue", 0.9)]),
    ("negative-weight", [("objective.migration", -1)]),
    ("zero-horizon", [("objective.horizon_s", 0)]),
    ("gpu-type-missing-tdp", [("gpu_types[0].tdp_w", DELETE)]),
    ("gpu-type-unknown-field", [("gpu_types[0].fp8_tflops", 1)]),
    ("power-model-batch-zero", [("gpu_types[0].power_model.decode_frac_by_batch", {"0": 0.5})]),
    ("power-model-unknown-field", [("gpu_types[0].power_model.gamma", 1)]),
    ("sources-not-mapping", [("gpu_types[0].sources", ["x"])]),
    ("budget-zero", [("power_budget_w", 0)]),
    ("description-not-text", [("description", 5)]),
    ("cluster-name-not-text", [("cluster.name", ["x"])]),
    ("source-not-text", [("gpu_types[0].sources", {"tdp_w": 400})]),
    ("llm-source-not-text", [("llm_models", [{"name": "m", "params_b": 1, "n_layers": 1, "hidden": 1, "n_heads": 1,
                                              "n_kv_heads": 1, "d_head": 1, "source": 3}])]),
]


@pytest.mark.parametrize("edits", [c[1] for c in STRUCTURAL], ids=[c[0] for c in STRUCTURAL])
def test_schema_and_loader_both_reject_structural_defects(toy_doc: dict[str, Any], edits: list[tuple[str, Any]],
                                                          schema_errors: SchemaErrors) -> None:
    doc = edit(toy_doc, edits)
    assert schema_errors("instance", doc) != []
    with pytest.raises(InputError):
        instance_from_dict(doc)


@pytest.mark.parametrize("doc", [
    {"schema_version": 1},
    {"schema_version": 2, "placements": []},
    {"schema_version": 1, "placements": [], "extra": 1},
    {"schema_version": 1, "placements": [{"job": "t1", "gpus": ["a0/0"]}]},
    {"schema_version": 1, "placements": [{"job": "t1", "gpus": ["a0/0"], "power_cap_w": 400, "tp": 0}]},
    {"schema_version": 1, "placements": [{"job": "t1", "gpus": [0], "power_cap_w": 400}]},
    {"schema_version": 1, "placements": [{"job": "t1", "gpus": ["a0/0"], "power_cap_w": 400, "when": 0}]},
    {"schema_version": 1, "placements": [], "powered_off_nodes": [1]},
])
def test_schema_and_loader_both_reject_bad_decisions(doc: Any, schema_errors: SchemaErrors) -> None:
    assert schema_errors("decision", doc) != []
    with pytest.raises(InputError):
        decision_from_dict(doc)


@pytest.mark.parametrize("doc", [
    {"nodes": []},
    {"nodes": [{"id": "n", "template": "pcie-t4-4", "rack": "r", "pod": "p", "count": 2}]},
    {"pods": [{"id": "p", "racks": [{"id": "r", "nodes": [{"template": "dgx-h100", "pod": "q"}]}]}]},
    {"pods": [{"id": "p", "racks": [{"id": "r", "template": "rail-b200-rack"}]}]},
    {"pods": [{"id": "p", "racks": [{"nodes": [{"template": "dgx-h100"}]}]}]},
    {"schema_version": 2, "nodes": [{"id": "n", "template": "pcie-t4-4", "rack": "r", "pod": "p"}]},
    {"nodes": [{"id": "n", "template": "pcie-t4-4", "rack": "r", "pod": "p"}], "links": {"core_bw_gbps": -1}},
])
def test_schema_and_loader_both_reject_bad_cluster_specs(tmp_path: Path, doc: Any,
                                                         schema_errors: SchemaErrors) -> None:
    assert schema_errors("cluster", doc) != []
    assert cluster_errors(tmp_path, doc) != []


# ----------------------------------------------------------------------------- round-trips


def json_round_trip(inst: Instance) -> Instance:
    text = json.dumps(instance_to_dict(inst), allow_nan=False)
    return instance_from_dict(json.loads(text))


@pytest.mark.parametrize(("family", "seed"), [("tiny", 0), ("tiny", 1), ("tiny", 2), ("small", 0), ("small", 1),
                                              ("medium", 0), ("large", 0)])
def test_instance_round_trip_of_generated_families(family: str, seed: int) -> None:
    inst = generate(family, seed)
    again = json_round_trip(inst)
    assert again == inst
    assert instance_to_dict(again) == instance_to_dict(inst)


@pytest.mark.parametrize("name", ["toy-instance.json", "llm-instance.yaml"])
def test_instance_round_trip_of_examples(name: str, examples_dir: Path, tmp_path: Path) -> None:
    inst = load_instance(examples_dir / name)
    assert json_round_trip(inst) == inst
    save_instance(inst, tmp_path / "saved.json")
    assert load_instance(tmp_path / "saved.json") == inst
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved.json"]  # no temporary file left behind


def test_llm_training_job_is_derived_and_round_trips(examples_dir: Path) -> None:
    inst = load_instance(examples_dir / "llm-instance.yaml")
    job = inst.training_jobs[0]
    # work = 6 P D = 6 * 8.03e9 * 2e9 FLOP = 96,360 PFLOP; throughput = TFLOP/s * mfu / 1000 PFLOP/s per GPU
    assert job.work == pytest.approx(96_360.0, rel=1e-12)
    assert job.throughput_per_gpu == (("H100-SXM", pytest.approx(989 * 0.4 / 1e3)), ("L4", pytest.approx(121 * 0.4 /
                                                                                                           1e3)))
    # memory = 18 bytes/param sharded over 8 GPUs + 4 GiB activations
    assert job.memory_gib == pytest.approx(18 * 8.03e9 / 8 / 2**30 + 4.0, rel=1e-12)
    assert job.model == "llama3-8b"
    assert json_round_trip(inst).training_jobs[0] == job


def test_decision_round_trip(toy_decision: Decision) -> None:
    doc = json.loads(json.dumps(decision_to_dict(toy_decision)))
    assert decision_from_dict(doc) == toy_decision
    assert toy_decision.placement("t1") == Placement("t1", ("a0/0", "a0/1"), 400.0, 0.0, 2)
    assert toy_decision.placement("t3") is None


def test_result_round_trip_through_a_file(toy_instance: Instance, tmp_path: Path) -> None:
    from solver.result import load_decision
    from solver.solve import solve

    result = solve(toy_instance, "greedy", time_limit_s=10)
    assert result.decision is not None
    result.save(tmp_path / "r.json")
    assert load_decision(tmp_path / "r.json") == result.decision
    saved = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert saved["status"] == result.status.value
    assert saved["objective"] == result.objective
    assert saved["metrics"] == result.metrics
