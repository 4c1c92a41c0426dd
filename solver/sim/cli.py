"""``gpuplan simulate``: replay a trace on a cluster with a policy and write the outputs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``simulate`` command to the ``gpuplan`` parser."""
    p = sub.add_parser(
        "simulate", help="replay a trace through a scheduling policy",
        description="Event-driven trace replay: arrivals, completions and scheduling rounds; each round of a "
        "solve:<method> policy calls the same solve() a scheduler calls. Writes jobs.csv, events.jsonl, "
        "summary.json, timeline.csv and timeline.png to --output. See docs/simulator.md.",
        epilog="examples:\n"
        "  gpuplan simulate --trace philly:philly.csv --cluster philly-machines:cluster_machine_list.csv \\\n"
        "      --policy fifo --output out/\n"
        "  gpuplan simulate --trace openb:openb_pod_list_default.csv \\\n"
        "      --cluster openb-nodes:openb_node_list_gpu_node.csv --policy fgd --output out/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trace", required=True, help="FORMAT:PATH of a job trace (philly, gavel, openb, pai, sia, csv)")
    p.add_argument("--cluster", required=True,
                   help="cluster spec file (YAML/JSON) or a node table FORMAT:PATH "
                   "(openb-nodes, philly-machines, pai)")
    p.add_argument("--policy", "-p", default="fifo",
                   help="baseline (fifo, fifo-backfill, sjf, las, gavel, best-fit, fgd) or solve:<method>")
    p.add_argument("--round-s", type=float, default=60.0, help="scheduling round length in seconds (default 60)")
    p.add_argument("--start", type=float, help="replay jobs submitted at or after this trace time (s)")
    p.add_argument("--until", type=float, help="stop the replay at this trace time (s)")
    p.add_argument("--limit", type=int, help="replay only the first N jobs (by submission time)")
    p.add_argument("--seed", type=int, default=0, help="seed passed to solve() (default 0)")
    p.add_argument("--time-limit", type=float, default=10.0, help="solve() limit per round in seconds (default 10)")
    p.add_argument("--migration-cost-s", type=float, default=60.0,
                   help="progress lost by a restart or migration (default 60 s)")
    p.add_argument("--max-pending", type=int, default=64, help="waiting jobs per solve() snapshot (default 64)")
    p.add_argument("--rounds-only", action="store_true",
                   help="round-based policies (las, solve:*) act only every --round-s, not on arrivals/completions")
    p.add_argument("--power-down", action="store_true", help="let solve() policies power idle nodes down")
    p.add_argument("--reference-gpu-type", help="GPU type the trace durations refer to (default: most numerous)")
    p.add_argument("--throughputs", type=Path,
                   help="Gavel simulation_throughputs.json: per-type throughputs for jobs given in steps")
    p.add_argument("--service", action="append", default=[], metavar="azure:PATH",
                   help="an inference service following this request trace (repeatable)")
    p.add_argument("--service-model", default="llama3-8b", help="LLM of the services (default llama3-8b)")
    p.add_argument("--ttft-slo-s", type=float, default=2.0, help="services' TTFT SLO (default 2 s)")
    p.add_argument("--tpot-slo-s", type=float, default=0.1, help="services' TPOT SLO (default 0.1 s)")
    p.add_argument("--service-interval-s", type=float, default=60.0, help="load interval (default 60 s)")
    p.add_argument("--carbon", type=Path, help="hourly carbon-intensity CSV (Electricity Maps export)")
    p.add_argument("--carbon-offset-h", type=int, default=0, help="hours of the carbon file before time 0")
    p.add_argument("--output", "-o", required=True, type=Path, help="output directory")
    p.add_argument("--no-plot", action="store_true", help="skip timeline.png")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no summary")
    p.set_defaults(run=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    from solver.cli import EXIT_OK
    from solver.sim.api import simulate, write_outputs
    from solver.sim.carbon import load_carbon_intensity
    from solver.sim.engine import SimConfig

    carbon = load_carbon_intensity(args.carbon, offset_h=args.carbon_offset_h) if args.carbon else None
    cfg = SimConfig(round_s=args.round_s, start_s=args.start, until_s=args.until, limit=args.limit, seed=args.seed,
                    time_limit_s=args.time_limit, migration_cost_s=args.migration_cost_s,
                    max_pending=args.max_pending, power_down=args.power_down, event_rounds=not args.rounds_only,
                    reference_gpu_type=args.reference_gpu_type, progress=not args.quiet)
    throughputs = None
    if args.throughputs:
        from solver.traces import load_gavel_throughputs

        throughputs = load_gavel_throughputs(args.throughputs)
    services = []
    for k, spec in enumerate(args.service):
        from solver.sim.inference import service_from_requests
        from solver.traces import load_trace

        services.append(service_from_requests(
            load_trace(spec), service_id=f"svc{k}", model=args.service_model, ttft_slo_s=args.ttft_slo_s,
            tpot_slo_s=args.tpot_slo_s, interval_s=args.service_interval_s))
    result = simulate(args.trace, args.cluster, args.policy, cfg, carbon=carbon, throughputs=throughputs,
                      services=services)
    paths = write_outputs(result, args.output, plot=not args.no_plot)
    if not args.quiet:
        s = result.summary
        jct = s["jct_s"]
        mean = "n/a" if jct["mean"] is None else f"{jct['mean']:.0f}"
        print(f"policy {s['policy']}: {s['completed']}/{s['jobs']} jobs completed, mean JCT {mean} s, "
              f"utilization {100 * s['gpu_utilization']:.1f}%, energy {s['energy_kwh']:.1f} kWh, "
              f"{s['preemptions']} preemptions, {s['migrations']} migrations, wall {s['timing']['wall_s']:.1f} s")
        print("wrote " + ", ".join(str(p) for p in paths))
    return EXIT_OK
