"""Decisions, statuses and solve results, with their JSON form.

A :class:`Decision` says, for each placed job, which GPUs it gets, at which power cap,
and which nodes are powered down. A :class:`Result` wraps the checked decision with
the solver's status, objective, proven bound, gap, runtime and every attempt made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from solver.errors import Collector
from solver.fileformat import SCHEMA_VERSION, _Reader, load_document, write_json

__all__ = ["Attempt", "Decision", "Placement", "Result", "Status", "decision_from_dict", "load_decision"]

DECISION_KIND = "gpuplan.decision"
#: Fields a saved :class:`Result` adds to the decision document (informative; not read back).
RESULT_FIELDS = ("instance", "status", "objective", "bound", "gap", "runtime_s", "build_s", "solve_s", "method",
                 "metrics", "attempts")


class Status(StrEnum):
    """Outcome of a solve.

    ``optimal`` only when the proven bound equals the objective (within 1e-6 relative);
    ``feasible`` a checked decision without that proof; ``infeasible`` proven to have
    no feasible decision; ``no_solution`` nothing found within the time limit;
    ``error`` the method failed (the message is in the attempt).
    """

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    NO_SOLUTION = "no_solution"
    ERROR = "error"


@dataclass(frozen=True)
class Placement:
    """GPUs, power cap and start time of one job.

    For an inference service, ``gpus`` is a sequence of ``tp``-sized replicas (every
    ``tp`` consecutive ids form one tensor-parallel group); for a training job, of
    ``tp``-sized tensor-parallel groups.
    """

    job: str
    gpus: tuple[str, ...]
    power_cap_w: float
    start_s: float = 0.0
    tp: int = 1


@dataclass(frozen=True)
class Decision:
    """Placements of every placed job and the nodes powered down.

    Jobs without a placement are unplaced (pending jobs) or preempted (running jobs).
    """

    placements: tuple[Placement, ...] = ()
    powered_off_nodes: tuple[str, ...] = ()

    def placement(self, job_id: str) -> Placement | None:
        for p in self.placements:
            if p.job == job_id:
                return p
        return None


@dataclass(frozen=True)
class Attempt:
    """One method run inside a solve (a portfolio makes several).

    ``build_s``: seconds of ``runtime_s`` spent before the method's solver started (the exact
    model built and the warm start made); None for a method without a separate build.
    """

    method: str
    status: Status
    objective: float | None
    bound: float | None
    runtime_s: float
    message: str = ""
    build_s: float | None = None


@dataclass(frozen=True)
class Result:
    """What :func:`solver.solve` returns: always a result, never an exception for
    infeasibility or time-outs.

    ``decision`` has passed the independent checker whenever it is not None;
    ``metrics`` are the checker's recomputation, not the solver's claims. ``build_s`` is
    the part of ``runtime_s`` spent before the search started: compiling the instance and,
    for the exact methods, building the model and making the warm start; ``solve_s`` the rest.
    """

    status: Status
    objective: float | None
    bound: float | None
    runtime_s: float
    method: str
    decision: Decision | None
    metrics: dict[str, float] = field(default_factory=dict)
    attempts: tuple[Attempt, ...] = ()
    instance_name: str = ""
    build_s: float = 0.0

    @property
    def solve_s(self) -> float:
        """Seconds of ``runtime_s`` after the build (``runtime_s - build_s``)."""
        return max(0.0, self.runtime_s - self.build_s)

    @property
    def gap(self) -> float | None:
        """Relative gap :math:`(z - b) / \\max(|z|, 10^{-9})`, None without a bound."""
        return relative_gap(self.objective, self.bound)

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [f"instance {self.instance_name}  method {self.method}  status {self.status.value}"]
        if self.objective is not None:
            b = "n/a" if self.bound is None else f"{self.bound:.4f}"
            g = "n/a" if self.gap is None else f"{100 * self.gap:.3f}%"
            lines.append(f"objective {self.objective:.4f}  bound {b}  gap {g}  runtime {self.runtime_s:.2f}s"
                         f" (build {self.build_s:.2f}s, solve {self.solve_s:.2f}s)")
        if self.metrics:
            m = self.metrics
            lines.append(
                f"energy {m.get('energy_kwh', 0):.2f} kWh  SLO violations {m.get('slo_violations', 0):.0f}  "
                f"unplaced {m.get('unplaced', 0):.0f}  migrations {m.get('migrations', 0):.0f}  "
                f"GPUs used {m.get('gpus_used', 0):.0f}/{m.get('gpus_total', 0):.0f}  "
                f"peak power {m.get('power_w', 0) / 1000:.1f} kW")
        for a in self.attempts:
            obj = "-" if a.objective is None else f"{a.objective:.4f}"
            lines.append(f"  attempt {a.method:<12} {a.status.value:<11} obj {obj:>14}  {a.runtime_s:.2f}s"
                         + (f"  {a.message}" if a.message else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = decision_to_dict(self.decision or Decision())
        d.update({
            "instance": self.instance_name, "status": self.status.value, "objective": self.objective,
            "bound": self.bound, "gap": self.gap, "runtime_s": self.runtime_s, "build_s": self.build_s,
            "solve_s": self.solve_s, "method": self.method, "metrics": self.metrics,
            "attempts": [{"method": a.method, "status": a.status.value, "objective": a.objective,
                          "bound": a.bound, "runtime_s": a.runtime_s, "build_s": a.build_s, "message": a.message}
                         for a in self.attempts],
        })
        return d

    def save(self, path: str | Path) -> None:
        """Write the result as a decision JSON file (atomic)."""
        write_json(self.to_dict(), path)


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """Relative gap between an objective and a lower bound (minimization)."""
    if objective is None or bound is None:
        return None
    return max(0.0, (objective - bound) / max(abs(objective), 1e-9))


def decision_to_dict(dec: Decision) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": DECISION_KIND,
        "placements": [{"job": p.job, "gpus": list(p.gpus), "power_cap_w": p.power_cap_w, "start_s": p.start_s,
                        "tp": p.tp} for p in dec.placements],
        "powered_off_nodes": list(dec.powered_off_nodes),
    }


def decision_from_dict(doc: Any, source: str = "<decision>") -> Decision:
    """Validate the shape of a decision document (the checker judges its content)."""
    col = Collector(source)
    r = _Reader(col)
    o = r.obj(doc, "")
    if o is None:
        col.raise_if_any()
        raise AssertionError  # pragma: no cover
    r.unknown(o, "", {"schema_version", "kind", "placements", "powered_off_nodes", *RESULT_FIELDS})
    if "schema_version" not in o:
        col.add("schema_version", "is required")
    elif o.get("schema_version") != SCHEMA_VERSION:
        col.add("schema_version", f"must be {SCHEMA_VERSION}", o.get("schema_version"))
    if o.get("kind", DECISION_KIND) != DECISION_KIND:
        col.add("kind", f"must be '{DECISION_KIND}'", o.get("kind"))
    placements: list[Placement] = []
    for i, raw in enumerate(r.lst(o, "placements", "", required=True)):
        p = f"placements[{i}]"
        po = r.obj(raw, p)
        if po is None:
            continue
        r.unknown(po, p, {"job", "gpus", "power_cap_w", "start_s", "tp", "gpu_type"})
        job = r.string(po, "job", p)
        gpus = r.lst(po, "gpus", p, required=True)
        for k, g in enumerate(gpus):
            if not isinstance(g, str):
                col.add(f"{p}.gpus[{k}]", "must be a GPU id string", g)
        cap = r.number(po, "power_cap_w", p, positive=True)
        start = r.number(po, "start_s", p, default=0.0)
        tp = r.number(po, "tp", p, default=1, positive=True, integer=True)
        if job is not None and cap is not None and start is not None and tp is not None:
            placements.append(Placement(job, tuple(str(g) for g in gpus), cap, start, tp))
    off = r.lst(o, "powered_off_nodes", "")
    for k, nid in enumerate(off):
        if not isinstance(nid, str):
            col.add(f"powered_off_nodes[{k}]", "must be a node id string", nid)
    col.raise_if_any()
    return Decision(tuple(placements), tuple(off))


def load_decision(path: str | Path) -> Decision:
    """Read a decision (or result) JSON file."""
    return decision_from_dict(load_document(path), str(path))

