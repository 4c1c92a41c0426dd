"""``gpuplan whatif``: capacity-planning scenarios solved side by side.

A scenario is a small, named change of a snapshot instance: add GPUs, cap power,
set a cluster power budget, tighten SLOs, change the energy price or PUE. Each
variant is solved with the same method and time limit and the checked metrics are
shown next to the baseline, as a table and as a bar chart.

Jobs a scenario makes impossible anywhere (e.g. an SLO no GPU type meets) are counted
as unplaced and listed in the ``impossible`` column.

Scenario syntax (repeat ``--scenario``)::

    add-nodes=TEMPLATE:COUNT      add COUNT nodes of a node template in a new rack
    power-cap=FRACTION            allow only power caps <= FRACTION x TDP (e.g. 0.7)
    power-budget=KW               cluster IT power budget in kW
    tighten-slo=FACTOR            deadlines and TTFT/TPOT SLOs x FACTOR (< 1 tightens)
    energy-price=WEIGHT           objective weight per kWh
    pue=VALUE                     facility PUE
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from solver.errors import FieldError, InputError
from solver.model import Instance, Node

__all__ = ["Scenario", "apply_scenario", "parse_scenario", "register", "run_whatif"]


@dataclass(frozen=True)
class Scenario:
    """A named instance transformation."""

    name: str
    apply: Callable[[Instance], Instance]


def _add_nodes(arg: str) -> Callable[[Instance], Instance]:
    from solver.topology import TEMPLATES

    tpl_name, _, count_text = arg.partition(":")
    if tpl_name not in TEMPLATES:
        raise ValueError(f"unknown node template '{tpl_name}'; known: {', '.join(sorted(TEMPLATES))}")
    count = int(count_text or "1")
    if count < 1:
        raise ValueError(f"node count must be >= 1 (got {count})")

    def apply(inst: Instance) -> Instance:
        from solver.fileformat import load_catalog

        tpl = TEMPLATES[tpl_name]
        types = {t.name: t for t in inst.gpu_types}
        if tpl.gpu_type not in types:
            types[tpl.gpu_type] = {t.name: t for t in load_catalog()}[tpl.gpu_type]
        pod = inst.nodes[-1].pod if inst.nodes else "p0"
        rack = f"whatif-{tpl_name}"
        new = tuple(Node(f"{rack}-n{k}", tpl.gpu_type, tpl.gpu_count, tpl.nvlink_domains, tpl.numa_domains,
                         tpl.host_power_w, rack, pod, tpl.name) for k in range(count))
        return inst.replace(nodes=inst.nodes + new, gpu_types=tuple(types.values()))

    return apply


def _power_cap(arg: str) -> Callable[[Instance], Instance]:
    frac = float(arg)
    if not 0 < frac <= 1:
        raise ValueError(f"power-cap fraction must be in (0, 1] (got {frac})")

    def apply(inst: Instance) -> Instance:
        types = []
        for t in inst.gpu_types:
            limit = max(t.min_power_cap_w, frac * t.tdp_w)
            levels = tuple(c for c in t.power_cap_levels_w if c <= limit + 1e-9) or (limit,)
            types.append(replace(t, power_cap_levels_w=levels, max_power_cap_w=max(levels)))
        return inst.replace(gpu_types=tuple(types))

    return apply


def _power_budget(arg: str) -> Callable[[Instance], Instance]:
    kw = float(arg)
    if kw <= 0:
        raise ValueError(f"power budget must be > 0 kW (got {kw})")
    return lambda inst: inst.replace(power_budget_w=kw * 1000.0)


def _tighten(arg: str) -> Callable[[Instance], Instance]:
    f = float(arg)
    if f <= 0:
        raise ValueError(f"SLO factor must be > 0 (got {f})")

    def apply(inst: Instance) -> Instance:
        jobs = tuple(replace(j, deadline_s=None if j.deadline_s is None
                             else max(j.arrival_s, inst.now_s + max(0.0, j.deadline_s - inst.now_s) * f))
                     for j in inst.training_jobs)
        svcs = tuple(replace(s, ttft_slo_s=s.ttft_slo_s * f, tpot_slo_s=s.tpot_slo_s * f)
                     for s in inst.inference_services)
        return inst.replace(training_jobs=jobs, inference_services=svcs)

    return apply


def _objective_field(field: str) -> Callable[[str], Callable[[Instance], Instance]]:
    def make(arg: str) -> Callable[[Instance], Instance]:
        changes: dict[str, Any] = {field: float(arg)}
        return lambda inst: inst.replace(objective=replace(inst.objective, **changes))

    return make


#: scenario keyword -> factory of the instance transformation
SCENARIOS: dict[str, Callable[[str], Callable[[Instance], Instance]]] = {
    "add-nodes": _add_nodes,
    "power-cap": _power_cap,
    "power-budget": _power_budget,
    "tighten-slo": _tighten,
    "energy-price": _objective_field("energy_per_kwh"),
    "pue": _objective_field("pue"),
}


def parse_scenario(text: str) -> Scenario:
    """Parse ``KEY=VALUE[,KEY=VALUE...]`` into a :class:`Scenario` (several changes compose)."""
    steps: list[Callable[[Instance], Instance]] = []
    for i, part in enumerate(text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or key not in SCENARIOS:
            raise InputError("--scenario", [FieldError(f"scenario[{i}]", f"must be KEY=VALUE with KEY in "
                                                       f"{sorted(SCENARIOS)}", part)])
        try:
            steps.append(SCENARIOS[key](value))
        except ValueError as exc:
            raise InputError("--scenario", [FieldError(f"scenario[{i}].{key}", str(exc), value)]) from None

    def apply(inst: Instance) -> Instance:
        for step in steps:
            inst = step(inst)
        return inst

    return Scenario(text, apply)


def apply_scenario(inst: Instance, scenario: Scenario) -> tuple[Instance, tuple[str, ...]]:
    """The scenario's variant of ``inst``, re-validated, and the jobs it can no longer run.

    A scenario may make a job impossible anywhere (e.g. an SLO no GPU type meets after
    tightening). Such jobs are removed from the variant and returned by id, so the
    comparison counts them as unplaced instead of failing.
    """
    from solver.fileformat import instance_dropping_unplaceable, instance_to_dict

    variant, _, dropped = instance_dropping_unplaceable(instance_to_dict(scenario.apply(inst)),
                                                        f"<scenario {scenario.name}>")
    return variant, dropped


METRICS = ("objective", "energy_kwh", "slo_violations", "tardiness_h", "unplaced", "gpus_used", "power_w")


def run_whatif(inst: Instance, scenarios: list[Scenario], method: str, time_limit_s: float,
               out: Path | None = None) -> list[dict[str, Any]]:
    """Solve the baseline and every scenario; return one row of checked metrics each."""
    from solver.solve import solve

    rows: list[dict[str, Any]] = []
    for sc in [Scenario("baseline", lambda i: i), *scenarios]:
        variant, impossible = apply_scenario(inst, sc)
        res = solve(variant, method, time_limit_s=time_limit_s)
        row: dict[str, Any] = {"scenario": sc.name, "status": res.status.value, "gap": res.gap,
                               "gpus_total": variant.num_gpus}
        row.update({k: res.metrics.get(k) for k in METRICS})
        # jobs the scenario made impossible count as unplaced (their penalty is not in the objective)
        row["impossible"] = len(impossible)
        if row["unplaced"] is not None:
            row["unplaced"] += len(impossible)
        rows.append(row)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with (out / "whatif.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        _plot(rows, out / "whatif.png")
    return rows


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["scenario"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, label in zip(axes, ("energy_kwh", "unplaced", "slo_violations"),
                              ("energy (kWh over horizon)", "unplaced jobs", "SLO violations"), strict=True):
        ax.bar(range(len(rows)), [r[key] or 0 for r in rows], color="#4477aa")
        ax.set_xticks(range(len(rows)), names, rotation=25, ha="right", fontsize=8)
        ax.set_title(label)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Side-by-side text table of the scenarios."""
    head = f"{'scenario':<34}{'status':<10}{'objective':>11}{'energy kWh':>11}{'SLO viol':>9}{'unplaced':>9}" \
           f"{'GPUs':>12}{'peak kW':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        def num(k: str, fmt: str, r: dict[str, Any] = r) -> str:
            return "-" if r.get(k) is None else format(r[k], fmt)

        lines.append(f"{r['scenario'][:33]:<34}{r['status']:<10}{num('objective', '.2f'):>11}"
                     f"{num('energy_kwh', '.2f'):>11}{num('slo_violations', '.0f'):>9}{num('unplaced', '.0f'):>9}"
                     f"{num('gpus_used', '.0f') + '/' + str(r['gpus_total']):>12}"
                     f"{(r['power_w'] or 0) / 1000:>9.1f}")
    return "\n".join(lines)


def register(sub: Any) -> None:
    """Add ``gpuplan whatif``."""
    p = sub.add_parser("whatif", help="solve capacity-planning scenarios side by side",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("instance", type=Path, help="baseline instance JSON/YAML")
    p.add_argument("--scenario", "-s", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                   help="a scenario (repeatable); changes joined by commas apply together")
    p.add_argument("--method", "-m", default="greedy", help="solve method (default greedy)")
    p.add_argument("--time-limit", "-t", type=float, default=10.0, help="per-scenario limit in seconds")
    p.add_argument("--output", "-o", type=Path, help="directory for whatif.csv and whatif.png")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from solver.fileformat import load_instance

    inst = load_instance(args.instance)
    scenarios = [parse_scenario(s) for s in args.scenario]
    rows = run_whatif(inst, scenarios, args.method, args.time_limit, args.output)
    print(format_table(rows))
    if args.output:
        print(f"wrote {args.output / 'whatif.csv'} and {args.output / 'whatif.png'}")
    return 0
