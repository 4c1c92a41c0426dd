"""Core sub-commands: generate, validate, solve, check, methods, catalog, demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from solver.cli import EXIT_INVALID, EXIT_OK

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the core commands to the ``gpuplan`` parser."""
    from solver.generate import FAMILIES

    p = sub.add_parser("generate", help="write a generated instance",
                       description="Generate a realistic instance: mixed GPU types and racks, fragmentation "
                       "left by running jobs, training + inference + fractional work, deadlines.")
    p.add_argument("--family", required=True, choices=list(FAMILIES), help="size family")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--output", "-o", required=True, type=Path, help="instance JSON file to write")
    p.set_defaults(run=_generate)

    p = sub.add_parser("validate", help="validate an instance file and print its size",
                       description="Read an instance, report every invalid field (exit 2) or print a summary.")
    p.add_argument("instance", type=Path)
    p.set_defaults(run=_validate)

    p = sub.add_parser("solve", help="solve a snapshot instance",
                       description="Solve an instance within a time limit; the decision is checked by the "
                       "independent checker before it is written.")
    p.add_argument("instance", type=Path, help="instance JSON/YAML file")
    p.add_argument("--method", "-m", default="auto", help="solve method (see 'gpuplan methods'; default auto)")
    p.add_argument("--time-limit", "-t", type=float, default=10.0, help="wall-clock limit in seconds (default 10)")
    p.add_argument("--hint", type=Path, help="previous decision JSON used as a warm start")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", "-o", type=Path, help="decision JSON file to write")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    p.set_defaults(run=_solve)

    p = sub.add_parser("check", help="check a decision against an instance",
                       description="Verify capacity, gangs, GPU types, NVLink groups, running jobs and power "
                       "caps, and recompute the objective and metrics. Exit 0 valid, 1 invalid, 2 unreadable.")
    p.add_argument("instance", type=Path)
    p.add_argument("decision", type=Path)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=_check)

    p = sub.add_parser("methods", help="list the solve methods")
    p.set_defaults(run=_methods)

    p = sub.add_parser("catalog", help="list GPU types with their figures and sources")
    p.add_argument("--sources", action="store_true", help="print the source of every figure")
    p.set_defaults(run=_catalog)

    p = sub.add_parser("demo", help="generate, solve with every method, check and summarize",
                       description="The main job on bundled data: generate instances, solve them with the "
                       "heuristics and the exact models side by side, check every decision and write a report.")
    p.add_argument("--output", "-o", type=Path, default=Path("demo-output"), help="directory for the report")
    p.add_argument("--time-limit", "-t", type=float, default=10.0, help="per-method limit in seconds")
    p.add_argument("--quick", action="store_true", help="one small instance only")
    p.set_defaults(run=_demo)


def _generate(args: argparse.Namespace) -> int:
    from solver.fileformat import write_json
    from solver.generate import generate_dict

    doc = generate_dict(args.family, args.seed)
    write_json(doc, args.output)
    print(f"wrote {args.output}: {len(doc['cluster']['nodes'])} nodes, {len(doc['training_jobs'])} training jobs, "
          f"{len(doc['inference_services'])} inference services, {len(doc['fractional_tasks'])} fractional tasks")
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from solver.fileformat import load_instance

    inst = load_instance(args.instance)
    running = sum(1 for j in inst.jobs() if j.running is not None)
    print(f"{args.instance}: valid instance '{inst.name}': {len(inst.nodes)} nodes, {inst.num_gpus} GPUs "
          f"({', '.join(t.name for t in inst.gpu_types)}), {len(inst.jobs())} jobs ({running} running)")
    return EXIT_OK


def _solve(args: argparse.Namespace) -> int:
    from solver.fileformat import load_instance
    from solver.result import load_decision
    from solver.solve import solve

    inst = load_instance(args.instance)
    hint = load_decision(args.hint) if args.hint else None
    result = solve(inst, args.method, time_limit_s=args.time_limit, hint=hint, seed=args.seed)
    if args.output:
        result.save(args.output)
    if not args.quiet:
        print(result.summary())
        if args.output:
            print(f"wrote {args.output}")
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from solver.checker import check
    from solver.fileformat import load_instance
    from solver.result import load_decision

    inst = load_instance(args.instance)
    dec = load_decision(args.decision)
    report = check(inst, dec)
    if args.json:
        print(json.dumps({"valid": report.valid, "objective": report.objective, "metrics": report.metrics,
                          "violations": [{"kind": v.kind, "job": v.job, "message": v.message}
                                         for v in report.violations]}, indent=1))
    else:
        if report.valid:
            print(f"valid: objective {report.objective:.6f}")
        else:
            print(f"INVALID: {len(report.violations)} violation(s)")
            for v in report.violations:
                print(f"  {v}")
        for key, value in report.metrics.items():
            print(f"  {key:<20} {value:.6g}")
    return EXIT_OK if report.valid else EXIT_INVALID


def _methods(args: argparse.Namespace) -> int:
    from solver.methods import DESCRIPTIONS, method_names

    for name in method_names():
        print(f"{name:<14} {DESCRIPTIONS.get(name, '')}")
    return EXIT_OK


def _catalog(args: argparse.Namespace) -> int:
    from solver.fileformat import load_catalog

    print(f"{'type':<11}{'mem GiB':>8}{'TFLOP/s':>9}{'HBM GB/s':>9}{'TDP W':>7}{'idle W':>7}  cap levels W")
    for t in load_catalog():
        print(f"{t.name:<11}{t.memory_gib:>8g}{t.bf16_tflops:>9g}{t.mem_bw_gbps:>9g}{t.tdp_w:>7g}{t.idle_w:>7g}  "
              f"{', '.join(f'{c:g}' for c in t.power_cap_levels_w)}")
        if args.sources:
            for k, v in t.sources:
                print(f"    {k}: {v}")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from solver.demo import run_demo

    return run_demo(args.output, args.time_limit, quick=args.quick, stream=sys.stdout)


