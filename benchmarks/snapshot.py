r"""Snapshot benchmark: every method on every generated instance, one table per run.

For each family and seed the instance is generated (not timed), then each method is run
through :func:`solver.solve` with the same time limit; ``runtime_s`` is what ``solve``
measured (compilation, model building and solving), ``wall_s`` the wall clock around
the call. Any method name of :mod:`solver.methods` works, heuristics included, so the
same run gives the exact backends' gaps (issue 3) and every heuristic's gap on every
family (issue 4).

The reference of an instance is its best proven bound over all methods,
:math:`b^* = \max_m b_m`; the gap of method :math:`m` against it is

.. math:: g_m = \frac{z_m - b^*}{\max(|z_m|, 10^{-9})}

(``gap_best``), next to the method's own gap :math:`(z_m - b_m)/|z_m|` (``gap``) and the
excess over the best objective any method found, :math:`(z_m - z^*)/|z^*|` (``excess_best``).
Without any proven bound on an instance ``gap_best`` is empty.

With ``--solver-seeds`` each method runs once per solver seed (the ``seed`` argument of
:func:`solver.solve`: CP-SAT's, HiGHS's and the heuristics' randomness) and the reference
:math:`b^*` is over every run on the instance; the summary then counts runs, so it shows
how often a stochastic method reaches a target, not one lucky run.

Outputs, next to each other: ``<stem>.md`` (header with the exact command, date, CPU,
cores and package versions; per-instance table; per-family summary; the gap matrix
method x family), ``<stem>.csv`` (one row per run, written as runs finish) and
``<stem>.png`` (gap to the best bound against runtime, per method).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

import solver
from solver.generate import FAMILIES
from solver.methods import REGISTRY, available, method_names
from solver.result import relative_gap

__all__ = ["Row", "environment", "provenance", "register", "run_snapshot", "summarize", "write_report"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_METHODS = ("greedy", "cpsat", "milp-cbc", "milp-highs")
#: Distributions whose versions are recorded in every report.
PACKAGES = ("gpuplan", "ortools", "pulp", "highspy", "numpy", "networkx", "pandas", "matplotlib")
GAP_TOL = 1e-6


@dataclass(frozen=True)
class Row:
    """One method on one instance. Gaps are fractions (0.01 = 1%); None when unknown."""

    family: str
    seed: int
    instance: str
    gpus: int
    jobs: int
    method: str
    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    gap_best: float | None
    excess_best: float | None
    runtime_s: float
    wall_s: float
    energy_kwh: float | None
    unplaced: int | None
    message: str = ""
    solver_seed: int = 0
    build_s: float | None = None

    @property
    def solve_s(self) -> float | None:
        """Seconds of ``runtime_s`` after the build (None when the build time is unknown)."""
        return None if self.build_s is None else max(0.0, self.runtime_s - self.build_s)


Solve = Callable[..., "solver.Result"]


def run_instance(inst: solver.Instance, family: str, seed: int, methods: Sequence[str], time_limit_s: float,
                 solve: Solve = solver.solve, on_row: Callable[[Row], None] | None = None,
                 solver_seeds: Sequence[int] = (0,)) -> list[Row]:
    """Run ``methods`` on ``inst`` once per solver seed; rows carry ``gap_best`` against the best bound
    of all of these runs."""
    rows: list[Row] = []
    for method, solver_seed in itertools.product(methods, solver_seeds):
        start = time.perf_counter()
        res = solve(inst, method, time_limit_s=time_limit_s, seed=solver_seed)
        wall_s = time.perf_counter() - start
        m = res.metrics
        message = next((a.message for a in res.attempts if a.message), "")
        row = Row(family, seed, inst.name, inst.num_gpus, len(inst.jobs()), method, res.status.value,
                  res.objective, res.bound, res.gap, None, None, res.runtime_s, wall_s,
                  m.get("energy_kwh"), int(m["unplaced"]) if "unplaced" in m else None, message, solver_seed,
                  res.build_s)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    best = max((r.bound for r in rows if r.bound is not None), default=None)
    found = min((r.objective for r in rows if r.objective is not None), default=None)
    return [replace(r, gap_best=relative_gap(r.objective, best), excess_best=_excess(r.objective, found))
            for r in rows]


def _excess(objective: float | None, best: float | None) -> float | None:
    """Relative excess :math:`(z - z^*) / \\max(|z^*|, 10^{-9})` over the best objective found."""
    if objective is None or best is None:
        return None
    return (objective - best) / max(abs(best), 1e-9)


def run_snapshot(families: Sequence[str], seeds: Sequence[int], methods: Sequence[str], time_limit_s: float,
                 progress: bool = True, on_row: Callable[[Row], None] | None = None,
                 solver_seeds: Sequence[int] = (0,)) -> list[Row]:
    """Every method (once per solver seed) on ``generate(family, seed)`` for each family and seed, in
    that order."""
    rows: list[Row] = []
    with tqdm(total=len(families) * len(seeds) * len(methods) * len(solver_seeds), disable=not progress,
              unit="solve", file=sys.stderr) as bar:
        for family in families:
            for seed in seeds:
                inst = solver.generate(family, seed)

                def step(row: Row) -> None:
                    bar.set_postfix_str(f"{row.instance} {row.method} (seed {row.solver_seed}) {row.status}")
                    bar.update()
                    if on_row is not None:
                        on_row(row)

                rows.extend(run_instance(inst, family, seed, methods, time_limit_s, on_row=step,
                                         solver_seeds=solver_seeds))
    return rows


# ----------------------------------------------------------------------------- summaries
@dataclass(frozen=True)
class Summary:
    """Per family and method: runs, decisions found, proven optima, gap and runtime statistics."""

    family: str
    method: str
    runs: int
    solved: int
    optimal: int
    median_gap_best: float | None
    max_gap_best: float | None
    median_runtime_s: float
    max_runtime_s: float


def summarize(rows: Iterable[Row]) -> list[Summary]:
    """One :class:`Summary` per (family, method), in first-seen order."""
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        groups[(r.family, r.method)].append(r)
    out = []
    for (family, method), rs in groups.items():
        gaps = [r.gap_best for r in rs if r.gap_best is not None]
        times = [r.runtime_s for r in rs]
        out.append(Summary(family, method, len(rs), sum(r.objective is not None for r in rs),
                           sum(r.status == "optimal" for r in rs),
                           statistics.median(gaps) if gaps else None, max(gaps) if gaps else None,
                           statistics.median(times), max(times)))
    return out


def environment() -> dict[str, str]:
    """CPU model, core counts, OS, Python and package versions of this machine."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {"cpu": cpu, "cores": str(os.cpu_count()),
           "cores_usable": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()),
           "os": platform.platform(), "python": platform.python_version()}
    for name in PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = "not installed"
    return env


# ----------------------------------------------------------------------------- output
def _num(x: float | None, fmt: str = ".4f") -> str:
    return "" if x is None or not math.isfinite(x) else format(x, fmt)


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.3f}%"


def _table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


def provenance(command: str, env: dict[str, str], started: dt.datetime, run: str) -> list[str]:
    """The header lines every report carries: command, date (with ``run``, what was run), CPU, versions."""
    return [
        f"- command: `{command}`",
        f"- date: {started:%Y-%m-%d %H:%M:%S} UTC; {run}",
        f"- CPU: {env['cpu']}; {env['cores']} cores ({env['cores_usable']} usable); {env['os']}",
        "- versions: " + ", ".join(f"{k} {env[k]}" for k in ("python", *PACKAGES)),
    ]


def markdown(rows: Sequence[Row], command: str, env: dict[str, str], time_limit_s: float, started: dt.datetime,
             note: str = "", plot_name: str | None = None) -> str:
    """The Markdown report of ``rows`` (see the module docstring)."""
    lines = [f"# Snapshot benchmark {started:%Y-%m-%d}", ""]
    if note:
        lines += [f"> **{note}**", ""]
    solver_seeds = sorted({r.solver_seed for r in rows})
    run = f"time limit {time_limit_s:g} s per method and instance"
    if solver_seeds != [0]:
        run += "; solver seeds " + " ".join(map(str, solver_seeds)) + " (one run each)"
    lines += provenance(command, env, started, run)
    lines += [
        "",
        "`runtime` is what `solver.solve` measured (compile, build and solve), `wall` the clock around it; "
        "`build` is the part of `runtime` before the search started (compiling the instance and, for the exact "
        "methods, building the model and making the warm start), `solve` the rest. "
        "`gap` is against the method's own proven bound, `gap to best` against the best bound any method "
        "proved on the instance (empty when no bound is known), `over best found` the excess over the "
        "best objective any method found on the instance.",
        "",
        "## Per-family summary",
        "",
    ]
    lines += _table(
        ("family", "method", "runs", "with decision", "proven optimal", "median gap to best", "max gap to best",
         "median runtime s", "max runtime s"),
        ((s.family, s.method, str(s.runs), str(s.solved), str(s.optimal), _pct(s.median_gap_best),
          _pct(s.max_gap_best), _num(s.median_runtime_s, ".2f"), _num(s.max_runtime_s, ".2f"))
         for s in summarize(rows)))
    families = list(dict.fromkeys(r.family for r in rows))
    methods = list(dict.fromkeys(r.method for r in rows))
    cell = {(s.family, s.method): s for s in summarize(rows)}
    lines += ["", "## Gap to the best bound, method x family (median / max)", ""]
    lines += _table(("method", *families), (
        (m, *(f"{_pct(cell[(f, m)].median_gap_best)} / {_pct(cell[(f, m)].max_gap_best)}"
              if (f, m) in cell and cell[(f, m)].median_gap_best is not None else "n/a" for f in families))
        for m in methods))
    if plot_name:
        lines += ["", f"![gap to the best bound against runtime]({plot_name})"]
    lines += ["", "## Runs", ""]
    seeded = solver_seeds != [0]  # the solver-seed column only when --solver-seeds was used
    lines += _table(
        ("instance", "GPUs", "jobs", "method", *(("solver seed",) if seeded else ()), "status", "objective", "bound",
         "gap", "gap to best", "over best found", "build s", "solve s", "runtime s", "wall s", "energy kWh",
         "unplaced"),
        ((r.instance, str(r.gpus), str(r.jobs), r.method, *((str(r.solver_seed),) if seeded else ()), r.status,
          _num(r.objective), _num(r.bound), _pct(r.gap), _pct(r.gap_best), _pct(r.excess_best),
          _num(r.build_s, ".2f"), _num(r.solve_s, ".2f"), _num(r.runtime_s, ".2f"), _num(r.wall_s, ".2f"),
          _num(r.energy_kwh, ".2f"),
          "" if r.unplaced is None else str(r.unplaced)) for r in rows))
    messages = [(r.instance, r.method, r.message) for r in rows if r.message and r.status in ("error", "no_solution")]
    if messages:
        lines += ["", "## Messages of failed runs", ""]
        lines += [f"- {i} {m}: {msg}" for i, m, msg in messages]
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Row], path: Path) -> bool:
    """Scatter of gap to the best bound (%) against runtime per method; False if nothing to plot."""
    points = [(r.method, r.family, r.runtime_s, 100 * r.gap_best) for r in rows if r.gap_best is not None]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = dict(zip(dict.fromkeys(f for _, f, _, _ in points), "osD^v<>ph*", strict=False))
    colors = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, method in enumerate(dict.fromkeys(m for m, _, _, _ in points)):
        for family, marker in markers.items():
            xs = [t for m, f, t, _ in points if m == method and f == family]
            ys = [g for m, f, _, g in points if m == method and f == family]
            if xs:
                ax.scatter(xs, ys, marker=marker, color=colors(k % 20), alpha=0.8, label=f"{method} ({family})")
    ax.set_xscale("log")
    ax.set_xlabel("runtime (s, build + solve; log scale)")
    ax.set_ylabel("gap to best proven bound (%)")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_ylim(0.0, 2.0 * max(g for _, _, _, g in points) + 1e-3)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_report(rows: Sequence[Row], output: Path, command: str, time_limit_s: float, started: dt.datetime,
                 note: str = "", env: dict[str, str] | None = None) -> list[Path]:
    """Write ``output`` (.md), the CSV and the PNG next to it; returns the paths written."""
    output.parent.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = output.with_suffix(".csv"), output.with_suffix(".png")
    write_csv(rows, csv_path)
    written = [csv_path]
    has_plot = plot(rows, png_path)
    if has_plot:
        written.append(png_path)
    output.write_text(markdown(rows, command, env or environment(), time_limit_s, started, note,
                               png_path.name if has_plot else None), encoding="utf-8")
    return [output, *written]


CSV_FIELDS = tuple(f.name for f in fields(Row))


def write_csv(rows: Iterable[Row], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow(asdict(r))


class _CsvStream:
    """Appends rows to a partial CSV as runs finish, so that a long run loses nothing."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fh: TextIO = path.open("w", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.fh, fieldnames=CSV_FIELDS)
        self.writer.writeheader()

    def __call__(self, row: Row) -> None:
        self.writer.writerow(asdict(row))
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


# ----------------------------------------------------------------------------- command line
def register(sub: Any) -> None:
    """Add the ``snapshot`` command to the ``python -m benchmarks`` parser."""
    p = sub.add_parser(
        "snapshot", help="run methods on generated instances and write a results table",
        description="Run every method on every generated instance (family x seed) through solver.solve with "
        "one time limit, and write a Markdown table, a CSV and a gap-vs-runtime plot with the command, date, "
        "CPU and package versions.",
)
    p.add_argument("--families", nargs="+", default=["medium", "large"], choices=list(FAMILIES),
                   help="instance families (default: medium large)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="generator seeds (default: 0 1 2 3 4)")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   help="method names of the registry ('gpuplan methods' lists them); 'all' runs every "
                   "available method (default: greedy cpsat milp-cbc milp-highs)")
    p.add_argument("--solver-seeds", nargs="+", type=int, default=[0],
                   help="run each method once per solver seed (CP-SAT's, HiGHS's and the heuristics' random "
                   "seed) to measure run-to-run variation; the summary counts every run (default: 0)")
    p.add_argument("--time-limit", type=float, default=10.0, help="seconds per method and instance (default: 10)")
    p.add_argument("--output", "-o", type=Path, default=None,
                   help="Markdown file to write; the CSV and PNG go next to it "
                   "(default: benchmarks/results/snapshot-<date>.md)")
    p.add_argument("--note", default="", help="a line shown at the top of the report (e.g. 'smoke run')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=main_snapshot)


def resolve_methods(names: Sequence[str]) -> list[str]:
    """``names`` checked against the method registry (``all`` = every available method)."""
    if list(names) == ["all"]:
        return method_names()
    unknown = [m for m in names if m not in REGISTRY]
    missing = [m for m in names if m in REGISTRY and not available(m)]
    if unknown or missing:
        raise SystemExit(f"error: unknown method(s) {unknown}, not importable {missing}; available: "
                         f"{', '.join(method_names())}")
    return list(names)


def main_snapshot(args: argparse.Namespace) -> int:
    """Run the benchmark described by ``args`` and write the report (see :func:`register`)."""
    methods = resolve_methods(args.methods)
    if not args.time_limit > 0:
        raise SystemExit("error: --time-limit must be > 0")
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    output: Path = args.output or RESULTS_DIR / f"snapshot-{started:%Y-%m-%d}.md"
    command = "python -m benchmarks " + shlex.join(args.argv)
    stream = _CsvStream(output.with_suffix(".partial.csv"))
    try:
        rows = run_snapshot(args.families, args.seeds, methods, args.time_limit, progress=not args.no_progress,
                            on_row=stream, solver_seeds=args.solver_seeds)
    finally:
        stream.close()
    paths = write_report(rows, output, command, args.time_limit, started, args.note)
    stream.path.unlink()
    for path in paths:
        print(f"wrote {path}")
    return 0
