"""Trace-replay simulator: hand-computed micro traces, capacity replay, samples, CLI."""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from solver.model import DEFAULT_TIER_SLOWDOWN
from solver.sim import SimConfig, cluster_from_node_table, load_carbon_intensity, simulate
from solver.sim.api import SimResult
from solver.sim.capacity import FragmentationModel, FreeCapacity
from solver.sim.cluster import SimCluster, load_sim_cluster
from solver.sim.policies import BASELINES, make_policy, policy_names
from solver.sim.workload import jobs_from_table

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"

# V100 at its maximum cap: training power min(300, 0.95 * 300) = 285 W, idle 36 W, host 400 W.
V100_EXTRA_W = 285.0 - 36.0
NODE_IDLE_W = 400.0 + 36.0
PUE = 1.2


def nodes(*specs: tuple[str, str, int]) -> SimCluster:
    """A cluster from (node id, trace GPU name, GPUs) triples."""
    table = pd.DataFrame({
        "node_id": [s[0] for s in specs], "gpu_type": [s[1] for s in specs],
        "num_gpus": np.array([s[2] for s in specs], dtype=np.int64),
        "gpu_memory_gib": [np.nan] * len(specs), "cpu_milli": [np.nan] * len(specs),
        "memory_mib": [np.nan] * len(specs)})
    return cluster_from_node_table(table)


def jobs(rows: list[tuple[str, float, float, int]], milli: int = 1000, **extra: Any) -> pd.DataFrame:
    """A canonical job table from (id, submit s, duration s, GPUs) rows."""
    n = len(rows)
    kind = "training" if milli == 1000 else "fractional"
    df = pd.DataFrame({
        "job_id": [r[0] for r in rows], "kind": [kind] * n, "submit_time_s": [float(r[1]) for r in rows],
        "duration_s": [float(r[2]) for r in rows], "num_gpus": np.array([r[3] for r in rows], dtype=np.int64),
        "gpu_milli": np.full(n, milli, dtype=np.int64), "gpu_types": [""] * n, "priority": [1.0] * n,
        "deadline_s": [np.nan] * n, "model": [""] * n, "work_steps": [np.nan] * n, "user": [""] * n,
        "status": [""] * n})
    for k, v in extra.items():
        df[k] = v
    return df


def by_id(result: SimResult, column: str) -> dict[str, float]:
    return dict(zip(result.jobs["job_id"], result.jobs[column], strict=True))


def replay_capacity(result: SimResult) -> None:
    """Replay the event log: no GPU ever holds more than 1000 milli-GPU."""
    used: dict[str, int] = defaultdict(int)
    for e in result.events:
        sign = {"start": 1, "migrate_in": 1, "finish": -1, "preempt": -1, "migrate_out": -1}.get(e["event"], 0)
        for g in e["gpus"]:
            used[g] += sign * e["milli"]
            assert 0 <= used[g] <= 1000, f"GPU {g} holds {used[g]} milli at t={e['t_s']}"
    assert all(v == 0 for v in used.values())


def starts_and_finishes(result: SimResult) -> None:
    """Every job starts (preemptions + 1) times and finishes once."""
    starts: dict[str, int] = defaultdict(int)
    finishes: dict[str, int] = defaultdict(int)
    for e in result.events:
        starts[e["job"]] += e["event"] == "start"
        finishes[e["job"]] += e["event"] == "finish"
    for row in result.jobs.itertuples():
        if row.state == "done":
            assert finishes[row.job_id] == 1
            assert starts[row.job_id] == row.preemptions + 1


# --------------------------------------------------------------------------- hand-computed traces
THREE = [("a", 0.0, 100.0, 1), ("b", 1.0, 30.0, 1), ("c", 2.0, 10.0, 1)]


def test_fifo_against_sjf_on_three_jobs() -> None:
    cluster = nodes(("n0", "V100", 1))
    fifo = simulate(jobs(THREE), cluster, "fifo")
    sjf = simulate(jobs(THREE), cluster, "sjf")
    # FIFO: a 0-100, b 100-130, c 130-140; SJF: a 0-100, c 100-110, b 110-140
    assert by_id(fifo, "end_s") == {"a": 100.0, "b": 130.0, "c": 140.0}
    assert by_id(sjf, "end_s") == {"a": 100.0, "b": 140.0, "c": 110.0}
    assert fifo.summary["jct_s"]["mean"] == pytest.approx((100 + 129 + 138) / 3)
    assert sjf.summary["jct_s"]["mean"] == pytest.approx((100 + 139 + 108) / 3)
    assert fifo.summary["queue_s"]["mean"] == pytest.approx((0 + 99 + 128) / 3)
    assert fifo.summary["makespan_s"] == 140.0
    assert fifo.summary["jct_s"]["p50"] == 129.0
    for r in (fifo, sjf):
        replay_capacity(r)
        starts_and_finishes(r)


def test_until_stops_the_clock_and_start_filters_submissions() -> None:
    cluster = nodes(("n0", "V100", 1))
    result = simulate(jobs(THREE), cluster, "fifo", until_s=120.0)
    assert result.summary["states"] == {"pending": 0, "waiting": 1, "running": 1, "done": 1, "unschedulable": 0}
    assert result.summary["simulated_span_s"] == 120.0
    late = simulate(jobs(THREE), cluster, "fifo", start_s=1.0)
    assert late.summary["jobs"] == 2
    assert late.summary["dropped"] == {"outside_window": 1}
    assert by_id(late, "end_s") == {"b": 31.0, "c": 41.0}


def test_energy_and_carbon_integrals(tmp_path: Path) -> None:
    csv = tmp_path / "ci.csv"
    csv.write_text("Datetime (UTC),Carbon Intensity gCO₂eq/kWh (direct)\n2023-01-01 00:00:00,100\n"
                   "2023-01-01 01:00:00,200\n")
    carbon = load_carbon_intensity(csv)
    result = simulate(jobs(THREE), nodes(("n0", "V100", 1)), "fifo", carbon=carbon)
    power_kw = PUE * (NODE_IDLE_W + V100_EXTRA_W) / 1000.0  # busy for all 140 s
    assert result.summary["energy_kwh"] == pytest.approx(power_kw * 140 / 3600)
    assert result.summary["carbon_kg"] == pytest.approx(power_kw * 140 / 3600 * 100 / 1000)
    assert result.summary["gpu_utilization"] == pytest.approx(1.0)
    # across the hour boundary: half an hour at 100 g/kWh, half an hour at 200 g/kWh
    assert carbon.integral(1800, 5400) / 3600 == pytest.approx(150.0)


def test_tiresias_las_preempts_a_job_past_its_threshold() -> None:
    trace = jobs([("a", 0.0, 20000.0, 1), ("b", 5000.0, 100.0, 1)])
    result = simulate(trace, nodes(("n0", "V100", 1)), "las", round_s=60.0, migration_cost_s=60.0)
    # b arrives at 5000 (a busy); at the 5040 s round a has 5040 GPU-s > 3600 -> lower queue, preempted.
    # b runs 5040-5140; a restarts at 5140, loses 60 s, then runs its remaining 14960 s.
    assert by_id(result, "end_s") == {"a": 5140.0 + 60.0 + 14960.0, "b": 5140.0}
    assert by_id(result, "preemptions") == {"a": 1, "b": 0}
    assert result.summary["preemptions"] == 1
    replay_capacity(result)
    starts_and_finishes(result)


def test_gang_over_two_nodes_pays_the_rack_tier_slowdown() -> None:
    result = simulate(jobs([("g", 0.0, 100.0, 2)]), nodes(("n0", "V100", 1), ("n1", "V100", 1)), "fifo")
    assert by_id(result, "end_s")["g"] == pytest.approx(100.0 * DEFAULT_TIER_SLOWDOWN[2])


def test_best_fit_consolidation_waits_for_one_node() -> None:
    cluster = nodes(("n0", "V100", 2), ("n1", "V100", 2))
    trace = jobs([("x", 0.0, 50.0, 1), ("y", 0.0, 80.0, 1), ("g", 1.0, 10.0, 2)])
    ff = simulate(trace, cluster, "fifo")
    bf = simulate(trace, cluster, "best-fit")
    # first fit: x and y share n0, g gets n1 at t=1; best fit packs x and y on n0 too
    assert by_id(ff, "start_s")["g"] == 1.0
    assert by_id(bf, "start_s")["g"] == 1.0
    trace2 = jobs([("x", 0.0, 50.0, 1), ("y", 0.0, 80.0, 1), ("z", 0.5, 60.0, 1), ("g", 1.0, 10.0, 2)])
    # x (0-50) and y (0-80) on n0, z (0.5-60.5) on n1. At 50 one GPU is free on each node:
    # best fit waits for a whole node (n1 at 60.5); first fit spreads g over both at 50 and
    # runs 10 s x 1.05 (rack tier)
    bf2 = simulate(trace2, cluster, "best-fit")
    ff2 = simulate(trace2, cluster, "fifo-backfill")
    assert by_id(bf2, "start_s")["g"] == 60.5
    assert by_id(bf2, "end_s")["g"] == 70.5
    assert by_id(ff2, "start_s")["g"] == 50.0
    assert by_id(ff2, "end_s")["g"] == pytest.approx(50.0 + 10.0 * DEFAULT_TIER_SLOWDOWN[2])


def test_gavel_puts_the_job_on_the_fastest_type() -> None:
    cluster = nodes(("t", "T4", 1), ("v", "V100", 1))
    cfg = SimConfig(reference_gpu_type="V100")
    fifo = simulate(jobs([("j", 0.0, 100.0, 1)]), cluster, "fifo", cfg)
    gavel = simulate(jobs([("j", 0.0, 100.0, 1)]), cluster, "gavel", cfg)
    assert by_id(gavel, "end_s")["j"] == pytest.approx(100.0)
    assert by_id(fifo, "end_s")["j"] == pytest.approx(100.0 * 125.0 / 65.0)  # T4 first in cluster order
    assert by_id(gavel, "gpu_type")["j"] == "V100"


def test_fractional_tasks_share_a_gpu() -> None:
    trace = jobs([("f1", 0.0, 100.0, 1), ("f2", 0.0, 50.0, 1), ("f3", 0.0, 10.0, 1)], milli=400)
    result = simulate(trace, nodes(("n0", "T4", 1)), "fgd")
    # two shares of 400 fit one GPU; the third waits for f2 to finish at 50
    assert by_id(result, "start_s") == {"f1": 0.0, "f2": 0.0, "f3": 50.0}
    replay_capacity(result)


def test_fragmentation_of_a_node_by_hand() -> None:
    cluster = nodes(("n0", "T4", 2))
    cap = FreeCapacity(cluster)
    trace = jobs([("a", 0.0, 1.0, 1), ("b", 0.0, 1.0, 1)], milli=600)
    trace.loc[1, "gpu_milli"] = 1000
    trace.loc[1, "kind"] = "training"
    wl = jobs_from_table(trace, cluster)
    model = FragmentationModel.from_jobs(wl.jobs, 1)
    cap.take(wl.jobs[1], (0, (0,)))  # GPU 0 fully used
    first = wl.jobs[0]
    first.milli = 500
    cap.take(first, (0, (1,)))  # GPU 1: 500 free
    # class 600 milli: 500 free < 600 -> all 500 fragmented; class whole GPU: no free GPU -> 500
    frag, free = model.cluster_fragmentation(cap)
    assert (frag, free) == (500.0, 500.0)


def test_inference_service_slo_attainment_by_hand() -> None:
    from solver.model import InferenceService
    from solver.sim.inference import ServiceLoad

    # one replica = one V100 serving at most 1 req/s within the SLOs (explicit capacity table)
    svc = InferenceService(id="chat", model="llama3-8b", request_rate_rps=1.0, prompt_tokens=100.0,
                           output_tokens=100.0, ttft_slo_s=2.0, tpot_slo_s=0.1, capacity=(("V100", 1, 1.0),))
    load = pd.DataFrame({"interval_start_s": [0.0, 10.0], "rate_rps": [1.0, 3.0],
                         "mean_prompt_tokens": [100.0, 100.0], "mean_output_tokens": [100.0, 100.0]})
    result = simulate(jobs([("a", 0.0, 15.0, 1)]), nodes(("n0", "V100", 2)), "fifo",
                      services=[ServiceLoad(svc, load, 10.0)])
    inf = result.summary["inference"]["chat"]
    # interval 0: 10 requests, 1 replica, all served; interval 1: 30 requests, 3 replicas wanted but
    # job a holds the other GPU until 15 -> 1 replica serves 10 of them: 20 / 40 meet the SLOs
    assert inf["requests"] == pytest.approx(40.0)
    assert inf["slo_attainment"] == pytest.approx(0.5)
    assert inf["intervals_short_of_replicas"] == 1
    assert inf["replica_hours"] == pytest.approx(20.0 / 3600.0)
    replay_capacity(result)


def test_trace_gpu_names_map_to_catalog_or_ad_hoc_types() -> None:
    from solver.fileformat import load_catalog
    from solver.sim.cluster import resolve_gpu_type

    cat = {t.name: t for t in load_catalog()}
    assert resolve_gpu_type("V100M32", math.nan, cat) == cat["V100"]
    v16 = resolve_gpu_type("v100m16", math.nan, cat)
    assert (v16.name, v16.memory_gib, v16.bf16_tflops) == ("V100M16", 16.0, cat["V100"].bf16_tflops)
    g2 = resolve_gpu_type("G2", math.nan, cat)
    assert (g2.name, g2.tdp_w) == ("G2", cat["T4"].tdp_w)
    philly = resolve_gpu_type("", 12.0, cat)
    assert (philly.name, philly.memory_gib) == ("GPU-12GB", 12.0)
    assert resolve_gpu_type("k80", math.nan, cat) == cat["K80"]
    with pytest.raises(ValueError, match="neither a known trace name"):
        resolve_gpu_type("TPUv4", math.nan, cat)


# --------------------------------------------------------------------------- solve() policies
def test_solve_greedy_policy_replays_consistently() -> None:
    cluster = nodes(("n0", "V100", 2), ("n1", "V100", 2))
    trace = jobs([(f"j{k}", 30.0 * k, 200.0 + 50 * k, 1 + k % 2) for k in range(6)])
    result = simulate(trace, cluster, "solve:greedy", round_s=60.0, time_limit_s=5.0)
    assert result.summary["states"]["done"] == 6
    assert result.summary["timing"]["rounds"] > 0
    assert set(result.summary["solver_statuses"]) <= {"feasible", "optimal"}
    jct = by_id(result, "jct_s")
    for row in trace.itertuples():
        assert jct[row.job_id] >= row.duration_s - 1e-6  # never faster than the trace on the reference type
    replay_capacity(result)
    starts_and_finishes(result)


def test_policy_registry() -> None:
    names = policy_names()
    assert {"fifo", "sjf", "las", "gavel", "best-fit", "fgd", "solve:greedy"} <= set(names)
    assert set(BASELINES) <= set(names)
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("round-robin")
    with pytest.raises(ValueError, match="unknown method"):
        make_policy("solve:nope")


# --------------------------------------------------------------------------- samples and CLI
SAMPLE_RUNS = [
    ("philly:" + str(SAMPLES / "philly" / "philly.csv"),
     "philly-machines:" + str(SAMPLES / "philly" / "cluster_machine_list.csv"), "las"),
    ("openb:" + str(SAMPLES / "alibaba-gpu-v2023-openb" / "openb_pod_list_default.csv"),
     "openb-nodes:" + str(SAMPLES / "alibaba-gpu-v2023-openb" / "openb_node_list_gpu_node.csv"), "fgd"),
    ("pai:" + str(SAMPLES / "alibaba-gpu-v2020-pai" / "pai_task_table.csv"),
     "pai:" + str(SAMPLES / "alibaba-gpu-v2020-pai" / "pai_machine_spec.csv"), "best-fit"),
    ("csv:" + str(SAMPLES / "canonical" / "jobs.csv"),
     "pai:" + str(SAMPLES / "alibaba-gpu-v2020-pai" / "pai_machine_spec.csv"), "fifo-backfill"),
]


@pytest.mark.parametrize(("trace", "cluster", "policy"), SAMPLE_RUNS)
def test_sample_files_through_the_simulator(trace: str, cluster: str, policy: str) -> None:
    result = simulate(trace, load_sim_cluster(cluster), policy)
    states = result.summary["states"]
    assert states["waiting"] == states["running"] == 0
    assert states["done"] + states["unschedulable"] == result.summary["jobs"] > 0
    replay_capacity(result)
    starts_and_finishes(result)


def test_gavel_sample_with_throughputs(tmp_path: Path) -> None:
    from solver.traces import load_gavel_throughputs

    spec = tmp_path / "cluster.yaml"
    spec.write_text("nodes:\n  - {id: v0, gpu_type: V100, gpu_count: 4, rack: r0, pod: p0}\n"
                    "  - {id: k0, gpu_type: K80, gpu_count: 4, rack: r0, pod: p0}\n")
    tp = load_gavel_throughputs(SAMPLES / "gavel" / "simulation_throughputs.json")
    result = simulate("gavel:" + str(SAMPLES / "gavel" / "traces" / "msr" / "seed=0"), spec, "gavel", throughputs=tp)
    assert result.summary["states"]["done"] > 0
    assert result.summary["states"]["done"] + result.summary["states"]["unschedulable"] == result.summary["jobs"]
    replay_capacity(result)


def test_cli_writes_deterministic_outputs(tmp_path: Path) -> None:
    from solver.cli import main

    args = ["simulate", "--trace", SAMPLE_RUNS[0][0], "--cluster", SAMPLE_RUNS[0][1], "--policy", "sjf", "-q"]
    assert main([*args, "--output", str(tmp_path / "a")]) == 0
    assert main([*args, "--output", str(tmp_path / "b"), "--no-plot"]) == 0
    for name in ("jobs.csv", "events.jsonl", "timeline.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    sa = json.loads((tmp_path / "a" / "summary.json").read_text())
    sb = json.loads((tmp_path / "b" / "summary.json").read_text())
    sa.pop("timing")
    sb.pop("timing")
    assert sa == sb
    assert (tmp_path / "a" / "timeline.png").exists()
    assert main(["simulate", "--trace", SAMPLE_RUNS[0][0], "--cluster", "nowhere.yaml", "-o", str(tmp_path)]) == 2


# --------------------------------------------------------------------------- real traces (opt-in)
TRACES = os.environ.get("GPUPLAN_TRACES")


@pytest.mark.skipif(not TRACES, reason="GPUPLAN_TRACES is not set")
def test_philly_prefix_replay() -> None:
    root = Path(str(TRACES))
    result = simulate(f"philly:{root / 'philly' / 'philly.csv'}",
                      f"philly-machines:{root / 'philly' / 'cluster_machine_list.csv'}", "fifo-backfill", limit=3000)
    assert result.summary["completed"] == 3000
    assert math.isfinite(result.summary["jct_s"]["p99"])
    replay_capacity(result)
