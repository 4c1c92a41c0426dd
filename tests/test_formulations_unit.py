"""Exact-value checks of the exact models on hand-built instances, per constraint family.

Hand data: GPU type ``G`` (TDP 100 W, idle 10 W, caps 100/50 W, training at the cap,
slowdown ``(100/c)^1``), host 100 W per node, PUE 1 and a one-hour horizon, so one watt
held for the horizon costs 0.001 and an idle 2-GPU node costs 0.12. A training job with
work ``W`` on ``n`` GPUs runs ``W / n`` s at 100 W and ``2 W / n`` s at 50 W.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import solver
from formulations import FAMILIES, OBJECTIVE_TERMS, lower_bound
from formulations.cpsat import solve_cpsat
from formulations.milp import cbc_log_bound, solve_cbc, solve_highs
from formulations.model import ExactModel
from formulations.structure import maximal_patterns
from solver.compiled import CompiledInstance
from solver.fileformat import SCHEMA_VERSION
from solver.generate import generate
from solver.heuristics import greedy_decision
from solver.methods import MethodOutput
from solver.model import FractionalTask, Instance
from solver.result import Decision, Placement, Status
from solver.stop import Deadline

Backend = Callable[..., MethodOutput]
BACKENDS: dict[str, Backend] = {"cpsat": solve_cpsat, "milp-highs": solve_highs, "milp-cbc": solve_cbc}

GPU_G = {"name": "G", "memory_gib": 80, "bf16_tflops": 100, "mem_bw_gbps": 1000, "tdp_w": 100, "idle_w": 10,
         "min_power_cap_w": 50, "max_power_cap_w": 100, "power_cap_levels_w": [100, 50],
         "power_model": {"train_frac": 1.0, "prefill_frac": 1.0, "beta": 1.0}}


def instance(nodes: list[dict[str, Any]], training: list[dict[str, Any]] | None = None,
             fractional: list[dict[str, Any]] | None = None, **top: Any) -> Instance:
    """A validated hand instance; node dicts need ``id`` and ``gpu_count`` (one NVLink domain)."""
    full = []
    for n in nodes:
        k = n["gpu_count"]
        full.append({"gpu_type": "G", "rack": "r0", "pod": "p0", "host_power_w": 100.0,
                     "nvlink_domains": [list(range(k))], "numa_domains": [list(range(k))], **n})
    doc = {"schema_version": SCHEMA_VERSION, "kind": "gpuplan.instance", "name": "unit",
           "gpu_types": [GPU_G], "cluster": {"nodes": full}, "training_jobs": training or [],
           "fractional_tasks": fractional or [],
           "objective": {"energy_per_kwh": 1.0, "slo_violation": 10.0, "tardiness_per_h": 1.0,
                         "unplaced_per_gpu": 10.0, "migration": 1.0, "horizon_s": 3600.0, "pue": 1.0,
                         **top.pop("objective", {})}, **top}
    return solver.instance_from_dict(doc, "<unit>")


def train(ident: str, n: int, work: float, **extra: Any) -> dict[str, Any]:
    return {"id": ident, "num_gpus": n, "work": work, "throughput_per_gpu": {"G": 1.0}, "memory_gib": 10, **extra}


def run(inst: Instance, backend: Backend = solve_cpsat, skip: frozenset[str] = frozenset()) -> MethodOutput:
    return backend(CompiledInstance(inst), Deadline(20.0), None, 0, skip_families=skip, num_workers=1)


def two_jobs_one_node(**top: Any) -> Instance:
    return instance([{"id": "n0", "gpu_count": 2}], [train("a", 2, 7200), train("b", 2, 7200)], **top)


# ---------------------------------------------------------------------------------- families
@pytest.mark.parametrize("name", list(BACKENDS))
def test_gpu_capacity(name: str) -> None:
    """One 2-GPU node, two 2-GPU jobs (0.08 each at 50 W): one must stay unplaced (20)."""
    inst = two_jobs_one_node(objective={"allow_power_down": False})
    out = run(inst, BACKENDS[name])
    assert out.status is Status.OPTIMAL
    assert out.objective == pytest.approx(0.12 + 0.08 + 20.0, abs=1e-9)
    assert out.bound == pytest.approx(out.objective, abs=1e-6)
    assert solver.check(inst, out.decision).objective == pytest.approx(out.objective, abs=1e-9)
    assert run(inst, BACKENDS[name], frozenset({"gpu_capacity"})).objective == pytest.approx(0.12 + 0.16, abs=1e-9)


def test_gang() -> None:
    """Without the gang rows a job is 'placed' on no GPUs, and the unused node is off."""
    inst = two_jobs_one_node()
    assert run(inst).objective == pytest.approx(20.2, abs=1e-9)
    skipped = run(inst, skip=frozenset({"gang"}))
    assert skipped.objective == pytest.approx(0.16, abs=1e-9)
    assert not solver.check(inst, skipped.decision).valid


def test_assignment() -> None:
    """Without 'at most one option' a 2-GPU job runs twice (tier 0 and tier 2, both 0.08 at
    50 W as the energy is capped at the horizon) and collects its penalty of 20 twice."""
    inst = instance([{"id": "n0", "gpu_count": 2}, {"id": "n1", "gpu_count": 2}], [train("a", 2, 3600)])
    assert run(inst).objective == pytest.approx(0.12 + 0.08, abs=1e-9)
    assert run(inst, skip=frozenset({"assignment"})).objective == pytest.approx(
        20.0 - 40.0 + 0.24 + 0.08 + 0.08, abs=1e-9)


def test_tensor_parallel() -> None:
    """tp=2 groups cannot use a 1-GPU domain: a 4-GPU job on domains {0,1,2},{3} stays unplaced."""
    inst = instance([{"id": "n0", "gpu_count": 4, "nvlink_domains": [[0, 1, 2], [3]]}],
                    [train("a", 4, 3600, tp=2)])
    assert run(inst).objective == pytest.approx(40.0, abs=1e-9)
    skipped = run(inst, skip=frozenset({"tensor_parallel"}))
    assert skipped.objective < 1.0
    assert "tensor_parallel_domain" in solver.check(inst, skipped.decision).kinds()


def test_locality() -> None:
    """A 4-GPU job over two 2-GPU nodes of one rack runs at tier 2 (x1.05): 0.08 x 1.05 + 0.24."""
    inst = instance([{"id": "n0", "gpu_count": 2}, {"id": "n1", "gpu_count": 2}], [train("a", 4, 3600)])
    out = run(inst)
    assert out.objective == pytest.approx(0.24 + 0.08 * 1.05, abs=1e-9)
    assert solver.check(inst, out.decision).objective == pytest.approx(out.objective, abs=1e-9)
    assert run(inst, skip=frozenset({"locality"})).objective == pytest.approx(0.24 + 0.08, abs=1e-9)


def test_locality_prefers_one_node() -> None:
    """With a free 4-GPU node the same job stays at tier 0 and the 2-GPU nodes are powered down."""
    inst = instance([{"id": "n0", "gpu_count": 2}, {"id": "n1", "gpu_count": 2}, {"id": "n2", "gpu_count": 4}],
                    [train("a", 4, 3600)])
    out = run(inst)
    assert out.objective == pytest.approx(0.14 + 0.08, abs=1e-9)
    assert set(out.decision.powered_off_nodes) == {"n0", "n1"}


def test_running() -> None:
    """A non-preemptible running job keeps its GPU; without the family it is preempted instead."""
    running = train("r", 1, 1800, preemptible=False, running={"gpus": ["n0/0"]})
    inst = instance([{"id": "n0", "gpu_count": 2}], [running, train("p", 2, 7200)])
    out = run(inst)
    assert out.objective == pytest.approx(0.12 + 0.04 + 20.0, abs=1e-9)
    assert out.decision.placement("r").gpus == ("n0/0",)
    assert run(inst, skip=frozenset({"running"})).objective == pytest.approx(10.0 + 0.12 + 0.08, abs=1e-9)


def test_migration_cost() -> None:
    """A preemptible running job blocking a tp=2 gang migrates to the other node (weight 1)."""
    running = train("r", 1, 1800, running={"gpus": ["n0/0"], "migration_cost_s": 60.0})
    inst = instance([{"id": "n0", "gpu_count": 2}, {"id": "n1", "gpu_count": 1}],
                    [running, train("p", 2, 7200, tp=2)], objective={"allow_power_down": False})
    out = run(inst)
    assert out.decision.placement("r").gpus == ("n1/0",)
    # r at 50 W: 3600 s + 60 s capped at the horizon -> 40 W x 1 h; plus one migration
    assert out.objective == pytest.approx(0.12 + 0.11 + 0.08 + 0.04 + 1.0, abs=1e-9)


def test_node_power() -> None:
    """Two nodes, one 1-GPU job: one node is powered down; without the family both are."""
    inst = instance([{"id": "n0", "gpu_count": 2}, {"id": "n1", "gpu_count": 2}], [train("a", 1, 1800)])
    out = run(inst)
    assert out.objective == pytest.approx(0.12 + 0.04, abs=1e-9)
    assert len(out.decision.powered_off_nodes) == 1
    assert run(inst, skip=frozenset({"node_power"})).objective == pytest.approx(0.04, abs=1e-9)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_single_gpus_take_free_gpus_of_powered_nodes(name: str) -> None:
    """Four 2-GPU nodes (n0's host draws 200 W), a 2-GPU tp-2 job and three 1-GPU jobs: n0 off,
    the others on (0.36), p at 50 W (0.08), the singles 0.04 each. The singles are counted per
    type, so decoding must put them on free GPUs of powered nodes (not n0, first in slot order),
    away from p's node."""
    nodes = [{"id": f"n{v}", "gpu_count": 2, "host_power_w": 200.0 if v == 0 else 100.0} for v in range(4)]
    inst = instance(nodes, [train("p", 2, 7200, tp=2), *(train(f"s{i}", 1, 1800) for i in range(3))])
    out = run(inst, BACKENDS[name])
    assert out.status is Status.OPTIMAL
    assert out.objective == pytest.approx(0.36 + 0.08 + 3 * 0.04, abs=1e-9)
    assert solver.check(inst, out.decision).objective == pytest.approx(out.objective, abs=1e-9)
    assert out.decision.powered_off_nodes == ("n0",)
    used = [g for p in out.decision.placements for g in p.gpus]
    assert len(used) == len(set(used)) == 5
    assert not {g.split("/")[0] for g in used} & set(out.decision.powered_off_nodes)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_power_budget(name: str) -> None:
    """200 W forbids the 100 W cap (120 + 180 W): the job runs at 50 W and misses its deadline."""
    job = train("a", 2, 3600, deadline_s=2000.0)
    inst = instance([{"id": "n0", "gpu_count": 2}], [job], power_budget_w=200.0)
    out = run(inst, BACKENDS[name])
    assert out.objective == pytest.approx(0.12 + 0.08 + 10.0 + 1600 / 3600, abs=1e-9)
    assert out.decision.placement("a").power_cap_w == 50.0
    free = instance([{"id": "n0", "gpu_count": 2}], [job])
    assert run(free, BACKENDS[name]).objective == pytest.approx(0.12 + 0.09, abs=1e-9)
    assert run(inst, BACKENDS[name], frozenset({"power_budget"})).objective == pytest.approx(0.21, abs=1e-9)


def test_fractional_capacity() -> None:
    """Two 600-milli tasks cannot share one GPU (one pays 10 x 0.6); without the family both run
    and no shared GPU is even counted (so the node stays off)."""
    tasks = [{"id": f"f{i}", "gpu_milli": 600, "memory_gib": 5, "duration_s": 3600} for i in range(2)]
    inst = instance([{"id": "n0", "gpu_count": 1}], fractional=tasks)
    out = run(inst)
    assert out.objective == pytest.approx(0.11 + 0.054 + 6.0, abs=1e-9)
    skipped = run(inst, skip=frozenset({"fractional_capacity"}))
    assert skipped.objective == pytest.approx(0.108, abs=1e-9)
    assert "fractional_capacity" in solver.check(inst, skipped.decision).kinds()


def test_fractional_joins_running_task() -> None:
    """A pending 300-milli task joins the GPU of a running 600-milli task (no second node)."""
    tasks = [{"id": "r", "gpu_milli": 600, "memory_gib": 5, "duration_s": 3600, "running": {"gpus": ["n0/0"]}},
             {"id": "p", "gpu_milli": 300, "memory_gib": 5, "duration_s": 3600}]
    inst = instance([{"id": "n0", "gpu_count": 1}, {"id": "n1", "gpu_count": 1}], fractional=tasks)
    out = run(inst)
    assert out.objective == pytest.approx(0.11 + 0.054 + 0.027, abs=1e-9)
    assert out.decision.placement("p").gpus == ("n0/0",)


def test_symmetry_keeps_the_optimum() -> None:
    """Symmetry rows only order interchangeable nodes: the optimum is the same without them."""
    nodes = [{"id": f"n{i}", "gpu_count": 2} for i in range(3)]
    inst = instance(nodes, [train("a", 2, 7200), train("b", 1, 1800), train("c", 1, 3600)])
    with_rows, without = run(inst), run(inst, skip=frozenset({"symmetry"}))
    assert with_rows.status is Status.OPTIMAL and without.status is Status.OPTIMAL
    assert with_rows.objective == pytest.approx(without.objective, abs=1e-9)
    assert with_rows.objective == pytest.approx(0.24 + 0.08 + 0.04 + 0.04, abs=1e-9)


# ---------------------------------------------------------------------------------- contracts
@pytest.mark.parametrize("name", list(BACKENDS))
def test_infeasible(name: str) -> None:
    """A budget below the idle power of nodes that cannot be powered down is infeasible."""
    inst = instance([{"id": "n0", "gpu_count": 2}], [train("a", 1, 1800)], power_budget_w=50.0,
                    objective={"allow_power_down": False})
    out = run(inst, BACKENDS[name])
    assert out.status is Status.INFEASIBLE and out.decision is None


@pytest.mark.parametrize("name", list(BACKENDS))
def test_nothing_to_decide(name: str) -> None:
    """No jobs and no power-down: the model has no variables; the answer is the idle node."""
    inst = instance([{"id": "n0", "gpu_count": 2}], [], objective={"allow_power_down": False})
    out = run(inst, BACKENDS[name])
    assert out.status is Status.OPTIMAL
    assert out.objective == pytest.approx(0.12, abs=1e-12) and out.bound == pytest.approx(0.12, abs=1e-12)
    assert lower_bound(CompiledInstance(inst), Deadline(5.0)) == pytest.approx(0.12, abs=1e-12)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_tiny_generated_match_greedy_bound_and_checker(name: str) -> None:
    """On generated tiny instances every backend proves an optimum no worse than greedy."""
    for seed in range(3):
        inst = solver.generate("tiny", seed)
        ci = CompiledInstance(inst)
        out = BACKENDS[name](ci, Deadline(20.0), None, seed, num_workers=1)
        assert out.status is Status.OPTIMAL
        checked = solver.check(inst, out.decision)
        assert checked.valid
        assert checked.objective == pytest.approx(out.objective, abs=1e-6)
        assert solver.check(inst, greedy_decision(ci)).objective >= checked.objective - 1e-6
        lp = lower_bound(ci, Deadline(10.0))
        assert lp is not None and lp <= checked.objective + 1e-6


def test_hint_is_a_feasible_assignment_of_equal_cost() -> None:
    """The warm start of the small family satisfies every row and keeps the greedy cost."""
    inst = solver.generate("small", 1)
    ci = CompiledInstance(inst)
    model = ExactModel(ci)
    greedy = greedy_decision(ci)
    x = model.values_of(greedy)
    assert model.lm.violated(x) == []
    assert model.lm.evaluate(x) == pytest.approx(solver.check(inst, greedy).objective, abs=1e-6)
    assert solver.check(inst, model.decode(x)).objective == pytest.approx(model.lm.evaluate(x), abs=1e-6)


def test_defined_variables_substitute_exactly() -> None:
    """Each slot's free GPUs ``free[s]`` are defined by its gpu_capacity equality; the rows CP-SAT
    gets have them replaced by their definition, which leaves every row's slack unchanged at any
    assignment that satisfies the definitions (here the warm start, with power-down)."""
    ci = CompiledInstance(solver.generate("small", 1))
    model = ExactModel(ci)
    lm = model.lm
    assert lm.defined and set(lm.defined) == set(model.var.free.values())
    x = model.values_of(greedy_decision(ci))
    changed = 0
    for r in lm.rows:
        sub = lm.substituted(r)
        if sub is not r:
            changed += 1
            assert not set(sub.index) & set(lm.defined)
            before = sum(a * x[i] for i, a in zip(r.index, r.value, strict=True))
            after = sum(a * x[i] for i, a in zip(sub.index, sub.value, strict=True))
            assert after - sub.hi == pytest.approx(before - r.hi, abs=1e-9)
    assert changed == 2 * len(model.var.singles.keys() | {k for k, _ in model.var.pattern})  # both type rows


def test_identical_jobs_choose_in_rank_order() -> None:
    """Two identical pending jobs (a, b) and a third with a deadline (c, late at 50 W): one class
    of two, one symmetry row, a warm start reordered to satisfy it, and the optimum of every
    backend unchanged. One 2-GPU node: a and b at 50 W (0.04 each), c unplaced (10); placing c
    at 100 W (0.045) instead of a or b costs 0.005 more."""
    inst = instance([{"id": "n0", "gpu_count": 2}],
                    [train("a", 1, 1800), train("b", 1, 1800), train("c", 1, 1800, deadline_s=2000.0)],
                    objective={"allow_power_down": False})
    ci = CompiledInstance(inst)
    model = ExactModel(ci)
    assert [[ci.jobs[x].id for x in (0, 1)]] == [["a", "b"]]
    assert [len(m) for m in model._constraints.identical] == [2]
    rank_rows = [r for r in model.lm.rows if r.family == "symmetry"]
    assert len(rank_rows) == 1 and rank_rows[0].lo == 0.0
    b_only = Decision((Placement("b", ("n0/0",), 50.0, inst.now_s, 1),))
    x = model.values_of(b_only)  # b placed, a not: swapped into rank order
    assert model.lm.violated(x) == []
    assert model.lm.evaluate(x) == pytest.approx(solver.check(inst, b_only).objective, abs=1e-9)
    for backend in BACKENDS.values():
        out = run(inst, backend)
        assert out.status is Status.OPTIMAL
        assert out.objective == pytest.approx(0.12 + 0.04 + 0.04 + 10.0, abs=1e-9)
        assert {p.job for p in out.decision.placements} == {"a", "b"}


def test_names_are_shared() -> None:
    assert FAMILIES[:3] == ("assignment", "gang", "tensor_parallel")
    assert OBJECTIVE_TERMS == ("energy", "slo", "tardiness", "unplaced", "migration")
    model = ExactModel(CompiledInstance(solver.generate("small", 0)))
    assert {r.family for r in model.lm.rows} <= set(FAMILIES)
    assert set(model.lm.terms) <= set(OBJECTIVE_TERMS)


def test_empty_decision_hint() -> None:
    inst = two_jobs_one_node()
    out = solve_cpsat(CompiledInstance(inst), Deadline(10.0), Decision(), 0, num_workers=1)
    assert out.objective == pytest.approx(20.2, abs=1e-9)


# ---------------------------------------------------------------------------------- pieces
def test_maximal_patterns() -> None:
    assert sorted(maximal_patterns([(500, 1.0), (300, 1.0)], 80.0)) == [(0, 3), (1, 1), (2, 0)]
    assert maximal_patterns([(500, 30.0), None], 40.0) == [(1, 0)]
    # a resident (limit 1) beside a class, in the room a pinned task leaves (600 milli)
    assert sorted(maximal_patterns([(500, 1.0), (300, 1.0)], 80.0, limits=[1, None])) == [(0, 3), (1, 1)]
    assert sorted(maximal_patterns([(500, 1.0), (300, 1.0)], 80.0, milli=600, limits=[1, None])) == [(0, 2), (1, 0)]
    assert maximal_patterns([(500, 1.0)], 80.0, milli=400) == []


def test_home_patterns_are_maximal_fillings() -> None:
    """Medium s0's home classes: interchangeable homes, and every pattern fits and is maximal."""
    ci = CompiledInstance(generate("medium", 0))
    model = ExactModel(ci)
    st = model.st
    assert sorted(h for hc in st.home_classes for h in hc.homes) == list(range(47))
    assert len(st.home_classes) == 20
    assert sum(len(hc.patterns) for hc in st.home_classes) == len(model.var.hpat)

    def size(j: int) -> tuple[int, float]:
        task = ci.jobs[j]
        assert isinstance(task, FractionalTask)
        return task.gpu_milli, task.memory_gib

    for hc in st.home_classes:
        k = int(ci.gpu_type[st.home_gpus[hc.homes[0]]])
        memory = ci.instance.gpu_types[k].memory_gib
        assert {(int(ci.gpu_type[st.home_gpus[h]]), tuple(size(j) for j in free))
                for h, free in zip(hc.homes, hc.free, strict=True)} == {(k, tuple(size(j) for j in hc.free[0]))}
        assert len(hc.homes) == 1 or len(hc.free[0]) <= 1
        for pat in hc.patterns:
            items = [size(hc.free[0][r]) for r in pat.positions]
            items += [st.size_classes[q] for q, a in enumerate(pat.joins) for _ in range(a)]
            milli, mem = sum(m for m, _ in items), sum(g for _, g in items)
            assert milli <= 1000 and mem <= memory + 1e-9
            addable = [st.size_classes[q] for q in st.frac_types.get(k, ())]
            addable += [size(j) for r, j in enumerate(hc.free[0]) if r not in pat.positions]
            assert not any(milli + m <= 1000 and mem + g <= memory + 1e-9 for m, g in addable)


def test_lp_bound_medium_s0() -> None:
    """The home patterns lift the LP relaxation of medium s0 from 377.18 (knapsack rows) to 377.96."""
    bound = lower_bound(CompiledInstance(generate("medium", 0)), Deadline(60.0))
    assert bound == pytest.approx(377.96075, abs=1e-4)


def test_cbc_log_bound() -> None:
    stopped = "Result - Stopped on time limit\n\nObjective value:                12.5\nLower bound:  11.25\n"
    assert cbc_log_bound(stopped) == ("Stopped on time limit", 11.25)
    optimal = "Result - Optimal solution found\n\nObjective value:                7.00000000\n"
    assert cbc_log_bound(optimal) == ("Optimal solution found", 7.0)
