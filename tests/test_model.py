"""The problem model is immutable, picklable and indexed once; compiled arrays are read-only."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from solver.compiled import CompiledInstance
from solver.generate import generate
from solver.model import Instance, PowerModel, TrainingJob


def test_instance_and_its_parts_are_frozen(toy_instance: Instance) -> None:
    parts: list[tuple[object, str]] = [
        (toy_instance, "name"), (toy_instance.gpu_types[0], "tdp_w"), (toy_instance.gpu_types[0].power_model, "beta"),
        (toy_instance.llm_models[0], "params_b"), (toy_instance.nodes[0], "gpu_count"), (toy_instance.links,
                                                                                          "pcie_bw_gbps"),
        (toy_instance.training_jobs[0], "num_gpus"), (toy_instance.training_jobs[1].running, "gpus"),
        (toy_instance.inference_services[0], "request_rate_rps"), (toy_instance.fractional_tasks[0], "gpu_milli"),
        (toy_instance.objective, "pue"),
    ]
    for obj, attr in parts:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, 0)
    assert isinstance(toy_instance.nodes, tuple)
    assert isinstance(toy_instance.nodes[0].nvlink_domains, tuple)
    assert isinstance(toy_instance.training_jobs[0].throughput_per_gpu, tuple)


@pytest.mark.parametrize("protocol", [pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_instance_pickles_with_its_lookup_tables(toy_instance: Instance, protocol: int) -> None:
    again = pickle.loads(pickle.dumps(toy_instance, protocol=protocol))
    assert again == toy_instance
    assert again.job("t2").running is not None
    assert again.node("b0").gpu_type == "TOY-B"
    assert again.gpu_type("TOY-A").idle_w == 50.0
    assert again.llm_model("llama3-8b").n_kv_heads == 8


def test_generated_instance_pickles() -> None:
    inst = generate("small", 3)
    assert pickle.loads(pickle.dumps(inst)) == inst


def test_lookups_and_sizes(toy_instance: Instance) -> None:
    assert [j.id for j in toy_instance.jobs()] == ["t1", "t2", "t3", "s1", "f1", "f2", "f3"]
    assert toy_instance.num_gpus == 10
    assert toy_instance.nodes[0].gpu_ids() == ("a0/0", "a0/1", "a0/2", "a0/3")
    assert toy_instance.has_gpu_type("TOY-B") and not toy_instance.has_gpu_type("H100-SXM")
    with pytest.raises(KeyError):
        toy_instance.job("nope")


def test_replace_reindexes(toy_instance: Instance) -> None:
    fewer = toy_instance.replace(training_jobs=toy_instance.training_jobs[:1])
    assert [j.id for j in fewer.jobs()] == ["t1", "s1", "f1", "f2", "f3"]
    with pytest.raises(KeyError):
        fewer.job("t2")
    assert toy_instance.job("t2").id == "t2"  # the original is untouched


def test_remaining_work_and_gang_sizes(toy_instance: Instance) -> None:
    t1, t2, _ = toy_instance.training_jobs
    assert (t1.remaining_work, t2.remaining_work) == (7200.0, 1800.0)
    job = TrainingJob("e", num_gpus=12, work=1.0, throughput_per_gpu=(("X", 1.0),), memory_gib=1.0, min_gpus=2, tp=2)
    assert job.gpu_counts() == (2, 4, 8, 12)
    assert dataclasses.replace(job, min_gpus=None).gpu_counts() == (12,)
    assert dataclasses.replace(job, tp=4).gpu_counts() == (4, 8, 12)


def test_power_model_arithmetic() -> None:
    pm = PowerModel()
    # log2 interpolation between batch 8 (0.69) and 32 (0.78): batch 16 is half way
    assert pm.decode_frac(16) == pytest.approx(0.735, rel=1e-12)
    assert (pm.decode_frac(0.5), pm.decode_frac(1000)) == (0.64, 0.90)
    assert pm.slowdown(600.0, 300.0) == pytest.approx(2.0**0.75, rel=1e-12)
    assert pm.slowdown(200.0, 300.0) == 1.0


def test_compiled_arrays_are_read_only(toy_instance: Instance) -> None:
    ci = CompiledInstance(toy_instance)
    arrays = {"gpu_node": ci.gpu_node, "gpu_domain": ci.gpu_domain, "gpu_type": ci.gpu_type,
              "node_rack": ci.node_rack, "node_pod": ci.node_pod, "unplaced_penalty": ci.unplaced_penalty}
    for name, arr in arrays.items():
        assert isinstance(arr, np.ndarray)
        assert not arr.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 1
    assert ci.gpu_ids[:5] == ("a0/0", "a0/1", "a0/2", "a0/3", "a1/0")
    assert ci.gpu_domain.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 5]
    assert ci.gpu_node.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert ci.node_rack.tolist() == [0, 1, 2]
    assert ci.node_pod.tolist() == [0, 0, 1]
    # unplaced penalty w_U * priority * GPUs: t1 5*1*2, t2 5*1*1, t3 5*2*4, s1 5*1*2 (2 replicas of tp 1 on TOY-B),
    # fractional tasks 5 * milli / 1000; t1 also pays the lateness it cannot avoid: on 2 TOY-A at 400 W it ends
    # at 3600 s, 0.5 h after its deadline, so + w_V 10 + w_T 2 * 0.5 h
    assert ci.unplaced_penalty.tolist() == pytest.approx([21.0, 5.0, 40.0, 10.0, 2.5, 3.0, 2.0], rel=1e-12)
    # 1.25 PUE * (400 W host + 4 x 50 W idle) * 1 h = 0.75 kWh
    assert ci.node_energy_kwh(0) == pytest.approx(0.75, rel=1e-12)
