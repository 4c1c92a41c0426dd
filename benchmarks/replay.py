"""Trace-replay speed and quality: the whole Philly table with heuristic policies, and the
first jobs of Philly through ``solve()``-based policies with solver time per round.

Run ``python -m benchmarks.replay --help``. Results (Markdown + JSON) go to
``benchmarks/results/replay.md`` with the command, the date and the CPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from solver.sim import SimConfig, cluster_from_node_table, simulate

PHILLY = Path("/work/shared/traces/philly")


def row(name: str, part: str, summary: dict[str, Any]) -> dict[str, Any]:
    t = summary["timing"]
    return {
        "part": part, "policy": name, "jobs": summary["jobs"], "completed": summary["completed"],
        "unschedulable": summary["states"]["unschedulable"],
        "jct_mean_s": summary["jct_s"]["mean"], "jct_p50_s": summary["jct_s"]["p50"],
        "jct_p95_s": summary["jct_s"]["p95"], "jct_p99_s": summary["jct_s"]["p99"],
        "queue_mean_s": summary["queue_s"]["mean"], "makespan_s": summary["makespan_s"],
        "utilization": summary["gpu_utilization"], "energy_kwh": summary["energy_kwh"],
        "fragmentation": summary["fragmentation"]["mean_share"], "preemptions": summary["preemptions"],
        "migrations": summary["migrations"], "wall_s": t["wall_s"], "rounds": t["rounds"],
        "solver_s_mean": t["solver_s_per_round_mean"], "solver_s_p95": t["solver_s_per_round_p95"],
        "solver_s_max": t["solver_s_per_round_max"], "statuses": summary["solver_statuses"],
    }


def _f(x: Any, fmt: str) -> str:
    return "" if x is None else format(x, fmt)


def markdown(rows: Sequence[dict[str, Any]], command: str, env: dict[str, str], started: dt.datetime,
             notes: Sequence[str]) -> str:
    lines = [
        "# Trace replay: Philly", "",
        f"Command: `{command}`  ", f"Date (UTC): {started:%Y-%m-%d %H:%M}  ",
        f"CPU: {env.get('cpu')} ({env.get('cores_usable')} usable cores), Python {env.get('python')}", "",
        *notes, "",
        "| part | policy | jobs | done | JCT mean h | p50 h | p95 h | p99 h | queue mean h | makespan d | util | "
        "energy MWh | frag | preempt | migr | wall s | rounds | solver s/round mean / p95 / max |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
        "---: | ---: | --- |",
    ]
    for r in rows:
        h = 3600.0
        solver = (f"{_f(r['solver_s_mean'], '.3f')} / {_f(r['solver_s_p95'], '.3f')} / "
                  f"{_f(r['solver_s_max'], '.3f')}")
        lines.append(
            f"| {r['part']} | {r['policy']} | {r['jobs']} | {r['completed']} | {r['jct_mean_s'] / h:.2f} | "
            f"{r['jct_p50_s'] / h:.2f} | {r['jct_p95_s'] / h:.2f} | {r['jct_p99_s'] / h:.2f} | "
            f"{r['queue_mean_s'] / h:.2f} | {r['makespan_s'] / 86400:.1f} | {100 * r['utilization']:.1f}% | "
            f"{r['energy_kwh'] / 1000:.1f} | {_f(r['fragmentation'], '.3f')} | {r['preemptions']} | "
            f"{r['migrations']} | {r['wall_s']:.1f} | {r['rounds']} | {solver} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--philly", type=Path, default=PHILLY, help="directory with philly.csv and "
                        "cluster_machine_list.csv")
    parser.add_argument("--policies", nargs="*", default=["fifo-backfill", "sjf", "las", "best-fit"],
                        help="heuristic policies replaying the whole table")
    parser.add_argument("--solve-policies", nargs="*", default=["solve:greedy", "solve:auto"],
                        help="solve() policies replaying the first --solve-jobs jobs")
    parser.add_argument("--loaded-machines", type=int, default=56,
                        help="the whole table again on the last N (8-GPU) machines, a loaded cluster")
    parser.add_argument("--solve-jobs", type=int, default=1000)
    parser.add_argument("--solve-machines", type=int, default=40,
                        help="the last N Philly machines (8-GPU ones) form the cluster of the solve() part")
    parser.add_argument("--round-s", type=float, default=3600.0, help="round length of the solve() part")
    parser.add_argument("--time-limit", type=float, default=1.0, help="solve() limit per round")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/replay.md"))
    args = parser.parse_args(argv)
    from benchmarks.snapshot import environment
    from solver.traces import load_philly, load_philly_machines

    started = dt.datetime.now(dt.UTC)
    table = load_philly(args.philly / "philly.csv")
    machines = load_philly_machines(args.philly / "cluster_machine_list.csv")
    full = cluster_from_node_table(machines)
    rows: list[dict[str, Any]] = []
    for name in args.policies:
        s = simulate(table, full, name, SimConfig(progress=True)).summary
        rows.append(row(name, "whole table", s))
        print(json.dumps(rows[-1]), flush=True)
    loaded = cluster_from_node_table(machines.iloc[-args.loaded_machines:])
    for name in args.policies:
        s = simulate(table, loaded, name, SimConfig(progress=True)).summary
        rows.append(row(name, f"whole table, {loaded.num_gpus} GPUs", s))
        print(json.dumps(rows[-1]), flush=True)
    small = cluster_from_node_table(machines.iloc[-args.solve_machines:])
    head = table.iloc[:args.solve_jobs]
    for name in [*args.policies[:1], *args.solve_policies]:
        cfg = SimConfig(round_s=args.round_s, time_limit_s=args.time_limit, event_rounds=False, progress=True)
        s = simulate(head, small, name, cfg).summary
        rows.append(row(name, f"first {args.solve_jobs}", s))
        print(json.dumps(rows[-1]), flush=True)
    notes = [
        f"Whole table: {len(table)} jobs on the {full.num_gpus}-GPU Philly cluster "
        f"({len(full.nodes)} machines, `cluster_machine_list.csv`), trace durations on their own GPUs.",
        f"Whole table, loaded: the same jobs on the last {args.loaded_machines} machines ({loaded.num_gpus} GPUs), "
        "where queues form and the policies differ.",
        f"First {args.solve_jobs} jobs (by submission) on the last {args.solve_machines} machines "
        f"({small.num_gpus} GPUs): solve() policies act every {args.round_s:g} s (rounds only), "
        f"{args.time_limit:g} s limit per round, at most 64 waiting jobs per snapshot; the first heuristic "
        "policy is repeated on this setup for reference.",
        "`wall s` is the whole replay; `solver s/round` the policy's time per scheduling pass.",
    ]
    command = "python -m benchmarks.replay " + " ".join(argv if argv is not None else sys.argv[1:])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(markdown(rows, command.strip(), environment(), started, notes))
    args.output.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    pd.DataFrame(rows).drop(columns=["statuses"]).to_csv(args.output.with_suffix(".csv"), index=False)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
