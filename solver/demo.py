"""``gpuplan demo``: what gpuplan does, end to end, on bundled and generated data.

1. **Snapshot scheduling, exact vs heuristic.** Generated instances are solved by the
   heuristics and the exact models under the same time limit; every decision is re-checked
   by the independent checker; the report shows objective, proven bound, gap, energy,
   SLO violations and runtime side by side.
2. **A short trace replay.** The bundled (generated) Philly-format sample is replayed on a
   small cluster with baseline policies and a ``solve()`` policy.
3. **Capacity what-if.** Add nodes, cap power, set a power budget, tighten SLOs.

Everything is written to the output directory: ``report.md``, ``results.csv``, instances,
decisions, the replay outputs, ``whatif.csv`` and plots.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, TextIO

from solver.checker import check
from solver.fileformat import data_path, save_instance
from solver.generate import generate
from solver.methods import method_names
from solver.solve import solve

__all__ = ["run_demo"]

DEMO_INSTANCES = (("small", 0), ("medium", 0))
DEMO_METHODS = ("greedy", "lp-greedy", "energy-greedy", "fgd", "lns", "cpsat", "milp-highs", "milp-cbc", "auto")
REPLAY_POLICIES = ("fifo", "sjf", "las", "best-fit", "solve:greedy", "solve:lp-greedy")
WHATIF = ("add-nodes=dgx-h100:4", "power-cap=0.7", "power-budget=40", "tighten-slo=0.5")


def _fmt(x: Any, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def run_demo(out: Path, time_limit_s: float, quick: bool = False, stream: TextIO | None = None) -> int:
    """Run the demo and write its report to ``out``; returns the exit code."""
    out.mkdir(parents=True, exist_ok=True)
    report: list[str] = ["# gpuplan demo", ""]

    def say(text: str = "") -> None:
        if stream is not None:
            print(text, file=stream, flush=True)

    available = set(method_names())
    methods = [m for m in DEMO_METHODS if m in available]
    instances = DEMO_INSTANCES[:1] if quick else DEMO_INSTANCES
    say(f"gpuplan demo: {len(instances)} generated snapshot instance(s) x {len(methods)} methods, "
        f"{time_limit_s:g} s limit each; every decision is re-checked by the independent checker.")

    # 1. snapshot scheduling
    rows: list[dict[str, Any]] = []
    report += ["## 1. Snapshot scheduling: heuristics vs exact models", "",
               f"Time limit {time_limit_s:g} s per method (model building included). `gap` is the proven gap "
               "of the method itself; `optimal` means the proven bound equals the checked objective.", ""]
    for family, seed in instances:
        inst = generate(family, seed)
        save_instance(inst, out / f"{inst.name}.json")
        head = (f"{inst.name}: {len(inst.nodes)} nodes, {inst.num_gpus} GPUs "
                f"({', '.join(t.name for t in inst.gpu_types)}), {len(inst.jobs())} jobs "
                f"({sum(j.running is not None for j in inst.jobs())} running)")
        say(f"\n== {head}")
        report += [f"### {head}", "",
                   "| method | status | objective | bound | gap | energy kWh | SLO viol. | unplaced | runtime s |",
                   "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for m in methods:
            res = solve(inst, m, time_limit_s=time_limit_s)
            if res.decision is not None:
                res.save(out / f"{inst.name}.{m}.decision.json")
                assert check(inst, res.decision).valid
            met = res.metrics
            row = {"instance": inst.name, "method": m, "status": res.status.value, "objective": res.objective,
                   "bound": res.bound, "gap": res.gap, "runtime_s": round(res.runtime_s, 3),
                   **{k: met.get(k) for k in ("energy_kwh", "slo_violations", "unplaced", "migrations",
                                              "gpus_used")}}
            rows.append(row)
            gap = "-" if res.gap is None else f"{100 * res.gap:.2f}%"
            line = (f"| {m} | {res.status.value} | {_fmt(res.objective, '.3f')} | {_fmt(res.bound, '.3f')} | "
                    f"{gap} | {_fmt(met.get('energy_kwh'), '.2f')} | {_fmt(met.get('slo_violations'), '.0f')} | "
                    f"{_fmt(met.get('unplaced'), '.0f')} | {res.runtime_s:.2f} |")
            report.append(line)
            say(f"  {m:<14} {res.status.value:<11} objective {_fmt(res.objective, '10.3f')}  bound "
                f"{_fmt(res.bound, '10.3f')}  gap {gap:>7}  energy {_fmt(met.get('energy_kwh'), '7.2f')} kWh  "
                f"unplaced {_fmt(met.get('unplaced'), '.0f'):>3}  {res.runtime_s:5.2f} s")
        report.append("")
    with (out / "results.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _plot_methods(rows, out / "methods.png")
    report += ["![objective and proven bound per method](methods.png)", ""]

    # 2. trace replay
    report += _replay(out, say, quick)
    # 3. what-if
    report += _whatif(out, instances[0], say, min(time_limit_s, 5.0))

    (out / "report.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    say(f"\nwrote {out / 'report.md'}, {out / 'results.csv'} and the instances, decisions, replay and what-if "
        f"outputs in {out}/")
    return 0


def _plot_methods(rows: list[dict[str, Any]], path: Path) -> None:
    """Objective (bars) and proven bound (markers) of every method, one panel per instance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["instance"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        sub = [r for r in rows if r["instance"] == name]
        xs = range(len(sub))
        ax.bar(xs, [r["objective"] or 0 for r in sub], color="#4477aa", label="objective (checked)")
        bx = [i for i, r in enumerate(sub) if r["bound"] is not None]
        ax.scatter(bx, [sub[i]["bound"] for i in bx], color="#cc3311", marker="_", s=400, label="proven bound")
        ax.set_xticks(list(xs), [r["method"] for r in sub], rotation=30, ha="right", fontsize=8)
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _replay(out: Path, say: Any, quick: bool) -> list[str]:
    try:
        from solver.sim import simulate, write_outputs
    except ImportError:  # pragma: no cover - the simulator ships with gpuplan
        return []
    trace = data_path("samples", "philly", "philly.csv")
    machines = data_path("samples", "philly", "cluster_machine_list.csv")
    if not trace.exists() or not machines.exists():
        return []
    say(f"\n== trace replay: Philly-format sample ({trace.name}) on the sample machine list")
    width = max(len(p) for p in REPLAY_POLICIES)
    say("  " + f"{'policy':<{width}}  " + "  ".join(f"{h:>10}" for h in ("jobs", "avg JCT h", "p95 JCT h", "queue h",
                                                                     "makespan h", "energy kWh", "util", "wall s")))
    lines = ["## 2. Trace replay (generated Philly-format sample)", "",
             "| policy | jobs | avg JCT h | p95 JCT h | avg queue h | makespan h | energy kWh | util | wall s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for policy in REPLAY_POLICIES[:3] if quick else REPLAY_POLICIES:
        res = simulate(f"philly:{trace}", f"philly-machines:{machines}", policy)
        write_outputs(res, out / "replay" / policy.replace(":", "-"))
        s = res.summary

        def get(*keys: str, s: dict[str, Any] = s) -> Any:
            cur: Any = s
            for k in keys:
                if not isinstance(cur, dict) or k not in cur:
                    return None
                cur = cur[k]
            return cur

        jct = get("jct_s") or {}
        row = (policy, get("jobs"), _h(jct.get("mean")), _h(jct.get("p95")), _h(get("queue_s", "mean")),
               _h(get("makespan_s")), get("energy_kwh"), get("gpu_utilization"), get("timing", "wall_s"))
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
        say("  " + f"{policy:<{width}}  " + "  ".join(f"{_cell(v):>10}" for v in row[1:]))
    lines.append("")
    return lines


def _h(seconds: Any) -> Any:
    return None if seconds is None else seconds / 3600.0


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _whatif(out: Path, family_seed: tuple[str, int], say: Any, time_limit_s: float) -> list[str]:
    from solver.whatif import format_table, parse_scenario, run_whatif

    inst = generate(*family_seed)
    method = "auto" if "auto" in method_names() else "greedy"
    say(f"\n== capacity what-if on {inst.name} ({method}, {time_limit_s:g} s each)")
    rows = run_whatif(inst, [parse_scenario(s) for s in WHATIF], method, time_limit_s, out / "whatif")
    table = format_table(rows)
    say(table)
    return ["## 3. Capacity what-if", "", f"Instance {inst.name}, method {method}.", "", "```", table, "```", ""]
