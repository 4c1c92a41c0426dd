"""The independent checker on the hand-written toy instance.

Toy instance (``data/examples/toy-instance.json``): nodes ``a0``, ``a1`` with 4 TOY-A GPUs
each in NVLink pairs ``{0,1}``, ``{2,3}`` (host 400 W, idle 50 W/GPU, caps 200-400 W,
training draws the cap), node ``b0`` with 2 TOY-B PCIe GPUs (host 100 W, idle 20 W/GPU,
24 GiB, caps 50-100 W). Objective: w_E 1/kWh, w_V 10, w_T 2/h, w_U 5/GPU, w_M 1,
horizon 1 h, PUE 1.25. The valid decision ``toy-decision.json`` places t1, t2, s1, f1.
Every case below breaks exactly one rule and must be reported with exactly its kind.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from solver.checker import VIOLATION_KINDS, check
from solver.compiled import CompiledInstance
from solver.generate import generate
from solver.model import Instance
from solver.result import Decision, Placement
from solver.solve import solve
from solver.topology import TopologyIndex, build_graph

KWH = 3.6e6  # J per kWh


def changed(dec: Decision, *, drop: tuple[str, ...] = (), put: tuple[Placement, ...] = (),
            off: tuple[str, ...] = ()) -> Decision:
    """``dec`` without the placements of ``drop`` and of the jobs in ``put``, plus ``put`` and ``off``."""
    replaced = {p.job for p in put} | set(drop)
    kept = tuple(p for p in dec.placements if p.job not in replaced)
    return Decision(kept + put, dec.powered_off_nodes + off)


def P(job: str, gpus: str, cap: float, tp: int = 1, start: float = 0.0) -> Placement:
    return Placement(job, tuple(gpus.split()), cap, start, tp)


# (kind, changes to the valid toy decision, message of the violation)
CASES: list[tuple[str, dict[str, tuple[object, ...]], str]] = [
    ("unknown_job", {"put": (P("zz", "a0/2", 400),)}, "[unknown_job] zz: no such job in the instance"),
    ("duplicate_placement", {"put": (P("f1", "a1/1", 400), P("f1", "a0/3", 400))},
     "[duplicate_placement] f1: placed twice"),
    ("unknown_gpu", {"put": (P("f1", "a1/9", 400),)}, "[unknown_gpu] f1: unknown GPU ids ['a1/9']"),
    ("duplicate_gpu", {"put": (P("t1", "a0/0 a0/0", 400, tp=2),)}, "[duplicate_gpu] t1: lists a GPU twice"),
    ("gpu_capacity", {"put": (P("f1", "a0/0", 400),)}, "[gpu_capacity] f1: GPU a0/0 is already used whole by 't1'"),
    ("fractional_capacity", {"put": (P("f2", "a1/1", 400),)},
     "[fractional_capacity] f1,f2: GPU a1/1 holds 1100 milli-GPU (> 1000)"),
    ("memory", {"drop": ("s1",), "put": (P("f1", "b0/0", 100), P("f3", "b0/0", 100))},
     "[memory] f1,f3: GPU b0/0 holds 26 GiB (> 24)"),
    ("mixed_gpu_types", {"put": (P("t1", "a0/0 b0/0", 400, tp=2),)},
     "[mixed_gpu_types] t1: spans GPU types ['TOY-A', 'TOY-B']; a gang uses one type"),
    ("ineligible_gpu_type", {"put": (P("f3", "a0/2", 400),)},
     "[ineligible_gpu_type] f3: TOY-A is not among its GPU types ['TOY-B']"),
    ("gang_size", {"put": (P("t3", "a0/2 a0/3", 400),)}, "[gang_size] t3: gets 2 GPUs; allowed sizes [4]"),
    ("tensor_parallel_domain", {"put": (P("t1", "a0/1 a0/2", 400, tp=2),)},
     "[tensor_parallel_domain] t1: tensor-parallel group ['a0/1', 'a0/2'] spans several NVLink domains"),
    ("inference_capacity", {"put": (P("s1", "b0/0", 100),)},
     "[inference_capacity] s1: needs 2 replicas x tp=1 on TOY-B at 100 W; got 1 GPUs with tp=1"),
    ("power_cap_range", {"put": (P("t1", "a0/0 a0/1", 450, tp=2),)},
     "[power_cap_range] t1: power cap 450 W outside TOY-A's allowed range [200, 400] W"),
    ("non_preemptible_moved", {"put": (P("t2", "a1/2", 400),)},
     "[non_preemptible_moved] t2: non-preemptible running job must keep its GPUs ['a1/0']"),
    ("powered_off_node_used", {"off": ("a1",)}, "[powered_off_node_used] node 'a1' is powered down but runs work"),
    ("unknown_node", {"off": ("zz",)}, "[unknown_node] powered-off node 'zz' does not exist"),
    ("start_time", {"put": (P("f1", "a1/1", 400, start=10.0),)},
     "[start_time] f1: starts at 10 s, but a snapshot decision starts jobs now (0 s)"),
]


def test_the_example_decision_is_valid(toy_instance: Instance, toy_decision: Decision) -> None:
    report = check(toy_instance, toy_decision)
    assert report.violations == ()
    assert report.valid


def test_every_violation_kind_has_a_case() -> None:
    assert sorted({c[0] for c in CASES} | {"power_down_not_allowed", "power_budget"}) == sorted(VIOLATION_KINDS)


@pytest.mark.parametrize(("kind", "changes", "message"), CASES, ids=[c[0] for c in CASES])
def test_violation_is_caught_with_its_kind(toy_instance: Instance, toy_decision: Decision, kind: str,
                                           changes: dict[str, tuple[object, ...]], message: str) -> None:
    report = check(toy_instance, changed(toy_decision, **changes))  # type: ignore[arg-type]
    assert [str(v) for v in report.violations] == [message]
    assert report.kinds() == {kind}
    assert not report.valid


def test_preempting_a_non_preemptible_job(toy_instance: Instance, toy_decision: Decision) -> None:
    report = check(toy_instance, changed(toy_decision, drop=("t2",)))
    assert [str(v) for v in report.violations] == [
        "[non_preemptible_moved] t2: non-preemptible running job was preempted"]


def test_empty_gpu_list(toy_instance: Instance, toy_decision: Decision) -> None:
    report = check(toy_instance, changed(toy_decision, put=(Placement("f1", (), 400.0),)))
    assert [str(v) for v in report.violations] == ["[duplicate_gpu] f1: has no GPUs"]


def test_power_down_not_allowed(toy_instance: Instance) -> None:
    inst = toy_instance.replace(objective=dataclasses.replace(toy_instance.objective, allow_power_down=False))
    report = check(inst, Decision((P("t2", "a1/0", 400),), ("b0",)))
    assert [str(v) for v in report.violations] == [
        "[power_down_not_allowed] node 'b0' powered down but the objective forbids it"]


def test_power_budget(toy_instance: Instance, toy_decision: Decision) -> None:
    report = check(toy_instance.replace(power_budget_w=2000.0), toy_decision)
    assert [str(v) for v in report.violations] == [
        "[power_budget] cluster power 2687.8 W exceeds the budget 2000.0 W"]
    assert check(toy_instance.replace(power_budget_w=2687.8), toy_decision).valid


def test_several_violations_are_all_listed(toy_instance: Instance, toy_decision: Decision) -> None:
    dec = changed(toy_decision, put=(P("t2", "a1/2", 400), P("f1", "a0/0", 100, start=5.0)), off=("zz",))
    assert sorted(check(toy_instance, dec).kinds()) == [
        "gpu_capacity", "non_preemptible_moved", "power_cap_range", "start_time", "unknown_node"]


# ----------------------------------------------------------------------------- recomputed metrics


def test_metrics_of_the_example_decision_by_hand(toy_instance: Instance, toy_decision: Decision) -> None:
    pue, hour = 1.25, 3600.0
    # Idle: every node is powered: (400 + 4*50) + (400 + 4*50) + (100 + 2*20) = 1340 W for 1 h.
    idle = pue * 1340.0 * hour / KWH  # 1.675 kWh
    # t1: 2 TOY-A at the 400 W cap, tier 0 (one NVLink pair): slowdown 1, T = 7200 / (2 * 1.0) = 3600 s;
    # active power above idle 2 * (400 - 50) = 700 W; finishes at 3600 s, 1800 s after its deadline: 0.5 h late.
    t1 = pue * 700.0 * 3600.0 / KWH  # 0.875 kWh
    # t2 keeps its GPU (no migration): T = 1800 remaining / 2.0 = 900 s at 350 W above idle.
    t2 = pue * 350.0 * 900.0 / KWH  # 0.109375 kWh
    # s1: capacity table 1 rps per replica at full power -> 2 replicas of tp 1, utilization 2 / (2 * 1 / 0.8) = 0.8.
    # Busy power: half prefill at min(100, 1.0 * 100) = 100 W, half decode at batch 16: 0.735 * 100 = 73.5 W
    # -> 86.75 W; per GPU 60 (idle 20 + context 40) + 0.8 * (86.75 - 60) = 81.4 W; above idle 2 * 61.4 = 122.8 W.
    s1 = pue * 122.8 * hour / KWH  # 0.1535 kWh
    # f1: half of one TOY-A at full training power: 0.5 * (400 - 50) = 175 W for its 1800 s.
    f1 = pue * 175.0 * 1800.0 / KWH  # 0.109375 kWh
    # Unplaced: t3 5 * 2 (priority) * 4 GPUs = 40, f2 5 * 0.6 = 3, f3 5 * 0.4 = 2.
    unplaced = 40.0 + 3.0 + 2.0
    objective = idle + (t1 + 10.0 * 1 + 2.0 * 0.5) + t2 + s1 + f1 + unplaced
    assert objective == pytest.approx(58.92225, rel=1e-12)
    report = check(toy_instance, toy_decision)
    assert report.objective == pytest.approx(objective, rel=1e-12)
    assert report.metrics == pytest.approx({
        "objective": objective, "energy_kwh": idle + t1 + t2 + s1 + f1, "energy_active_kwh": t1 + t2 + s1 + f1,
        "energy_idle_kwh": idle, "slo_violations": 1.0, "tardiness_h": 0.5, "unplaced": 3.0, "unplaced_gpus": 5.0,
        "preemptions": 0.0, "migrations": 0.0, "power_w": 1340.0 + 700.0 + 350.0 + 122.8 + 175.0,
        "gpus_used": 6.0, "gpus_total": 10.0, "nodes_powered_off": 0.0,
    }, rel=1e-12)


def test_metrics_with_nodes_powered_down(toy_instance: Instance) -> None:
    report = check(toy_instance, Decision((P("t2", "a1/0", 400),), ("a0", "b0")))
    assert report.valid
    idle = 1.25 * 600.0 * 3600.0 / KWH  # only a1: 400 + 4 * 50 W -> 0.75 kWh
    t2 = 1.25 * 350.0 * 900.0 / KWH
    # unplaced t1: 5 * 2 GPUs + the lateness it cannot avoid (it would end 0.5 h late at best): 10 + 2 * 0.5;
    # t3 40; s1 5 * 2 GPUs (fewest it needs: 2 replicas on TOY-B); f1 2.5, f2 3, f3 2
    unplaced = (10.0 + 10.0 + 1.0) + 40.0 + 10.0 + 2.5 + 3.0 + 2.0
    assert report.objective == pytest.approx(idle + t2 + unplaced, rel=1e-12)
    assert report.metrics["unplaced"] == 6.0
    assert report.metrics["nodes_powered_off"] == 2.0
    assert report.metrics["power_w"] == pytest.approx(600.0 + 350.0, rel=1e-12)


def test_metrics_of_a_migration_and_a_lower_cap(toy_instance: Instance, toy_decision: Decision) -> None:
    t2 = dataclasses.replace(toy_instance.training_jobs[1], preemptible=True)
    inst = toy_instance.replace(training_jobs=(toy_instance.training_jobs[0], t2, toy_instance.training_jobs[2]))
    base = check(inst, toy_decision)
    moved = check(inst, changed(toy_decision, put=(P("t2", "a1/2", 400), P("t1", "a0/0 a0/1", 300, tp=2))))
    assert moved.valid
    assert moved.metrics["migrations"] == 1.0
    # t2 migrated: 900 s + 100 s migration cost at 350 W; energy + w_M * 1
    d_t2 = 1.25 * 350.0 * (1000.0 - 900.0) / KWH + 1.0
    # t1 at 300 W: slowdown (400 / 300)^1 -> T = 4800 s, power 2 * (300 - 50) = 500 W for the 1 h horizon;
    # tardiness (4800 - 1800) / 3600 h instead of 0.5 h
    d_t1 = 1.25 * (500.0 - 700.0) * 3600.0 / KWH + 2.0 * ((4800.0 - 1800.0) / 3600.0 - 0.5)
    assert moved.objective - base.objective == pytest.approx(d_t2 + d_t1, rel=1e-9)
    assert moved.metrics["tardiness_h"] == pytest.approx(3000.0 / 3600.0, rel=1e-12)


def test_invalid_placements_are_left_out_of_the_energy(toy_instance: Instance, toy_decision: Decision) -> None:
    bad = check(toy_instance, changed(toy_decision, put=(P("t1", "a0/0 a0/1", 450, tp=2),)))
    good = check(toy_instance, toy_decision)
    assert bad.metrics["energy_active_kwh"] == pytest.approx(good.metrics["energy_active_kwh"] - 0.875, rel=1e-12)


# ----------------------------------------------------------------------------- tiers


def random_subsets(ci: CompiledInstance, rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """GPU index subsets drawn inside a random NVLink domain, node, rack, pod or the whole cluster."""
    scopes = [ci.gpu_domain, ci.gpu_node, ci.node_rack[ci.gpu_node], ci.node_pod[ci.gpu_node],
              np.zeros(len(ci.gpu_ids), dtype=np.int64)]
    out = []
    for _ in range(count):
        key = scopes[int(rng.integers(len(scopes)))]
        members = np.flatnonzero(key == key[int(rng.integers(len(key)))])
        size = int(rng.integers(1, min(len(members), 9) + 1))
        out.append(rng.choice(members, size=size, replace=False))
    return out


# tiny-0: three whole-node NVLink domains in one pod (no node or cluster tier); small and medium: every tier
@pytest.mark.parametrize(("family", "seed", "seen"), [("tiny", 0, {0, 2, 3}), ("small", 0, {0, 1, 2, 3, 4}),
                                                     ("medium", 1, {0, 1, 2, 3, 4})])
def test_compiled_tier_agrees_with_the_topology_graph(family: str, seed: int, seen: set[int]) -> None:
    inst = generate(family, seed)
    ci = CompiledInstance(inst)
    topo = TopologyIndex(build_graph(inst.nodes, {t.name: t for t in inst.gpu_types}, inst.links))
    tiers = []
    for subset in random_subsets(ci, np.random.default_rng(seed), 300):
        expected = topo.tier(ci.gpu_ids[g] for g in subset)
        assert ci.tier(subset) == expected
        tiers.append(expected)
    assert set(tiers) == seen


def test_tiers_of_the_toy_cluster(toy_instance: Instance) -> None:
    ci = CompiledInstance(toy_instance)
    idx = ci.gpu_index
    cases = {("a0/0", "a0/1"): 0, ("a0/1", "a0/2"): 1, ("a0/0", "a1/0"): 3, ("a0/0", "b0/0"): 4, ("b0/0", "b0/1"): 1,
             ("a0/3",): 0}
    for gpus, tier in cases.items():
        assert ci.tier([idx[g] for g in gpus]) == tier
        assert ci.topology.tier(gpus) == tier


def test_compiled_check_reuses_the_report_of_the_same_decision() -> None:
    inst = generate("small", 0)
    ci = CompiledInstance(inst)
    decision = solve(inst, "greedy", time_limit_s=30).decision
    assert decision is not None
    first = ci.check(decision)
    again = ci.check(decision, inst)
    assert again == first == check(inst, decision)
    again.metrics["objective"] = -1.0  # each caller gets its own metrics
    assert ci.check(decision).metrics == first.metrics
    broken = Decision(decision.placements + decision.placements[:1], decision.powered_off_nodes)
    assert ci.check(broken).kinds() == check(inst, broken).kinds() == {"duplicate_placement"}


@pytest.mark.parametrize("family", ["tiny", "medium"])
def test_topology_index_matches_networkx_bfs(family: str) -> None:
    import networkx as nx

    inst = generate(family, 0)
    graph = build_graph(inst.nodes, {t.name: t for t in inst.gpu_types}, inst.links)
    assert nx.is_tree(graph)
    parent = dict(nx.bfs_predecessors(graph, "cluster"))
    topo = TopologyIndex(graph)
    for n, level in graph.nodes(data="level"):
        if level != "gpu":
            continue
        chain, cur = [], parent[n]
        while True:
            chain.append(cur)
            if cur == "cluster":
                break
            cur = parent[cur]
        assert topo.chain[n[len("gpu:"):]] == tuple(chain)
