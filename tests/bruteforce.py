r"""Brute-force oracle: the exact optimum of a tiny snapshot instance by enumeration.

The oracle shares no code with the exact formulations nor with the option lists of
:class:`solver.compiled.CompiledInstance` that feed them. It reads the instance data,
enumerates for every job either *unplaced* or a concrete placement (GPU type, gang size,
power-cap level, exact GPU ids), and prices every placement with the independent checker
:func:`solver.checker.check`. Only the interaction between jobs is the oracle's own
arithmetic: exclusive whole GPUs, fractional shares and memory per GPU, powered nodes and
the cluster power budget. The best decision found is checked once more as a whole.

Decomposition of the objective used by the search (every number comes from ``check``):

.. math::
    Z(x) = Z_0 + \sum_{j \text{ placed}} \delta_j(p_j) + \sum_{v \text{ powered}} e_v

with :math:`Z_0` the objective of the empty decision with every node powered down (all
unplaced penalties), :math:`\delta_j(p) = Z(\{p\}) - Z(\emptyset)` the change of the
objective when placement :math:`p` of job :math:`j` is added (its weighted energy,
tardiness, lateness, migration minus its unplaced penalty) and :math:`e_v` the weighted
idle energy of powering node :math:`v`. When power-down is forbidden every node is in
:math:`Z_0` and :math:`e_v = 0`; otherwise the optimum powers down every node without
work, so a node is powered exactly when a placement uses it. Cluster power is
:math:`P_0 + \sum_{v \text{ powered}} P^{idle}_v + \sum_j \pi_j(p_j) \le B`.

Enumeration rules (each is the checker's rule, or a dominance argument):

* training jobs: every eligible GPU type with enough memory, every allowed gang size
  (:meth:`~solver.model.TrainingJob.gpu_counts`), every discrete power-cap level of the
  type (the problem's caps are the catalogue's levels; the checker only checks the range);
  GPU sets whose count in each NVLink domain is a multiple of ``tp`` (a tensor-parallel
  group lies in one domain);
* inference services: per type and cap level, the TP degree and replica count of
  :func:`solver.perf.size_inference`. More replicas than needed are never cheaper
  (replicas x per-GPU power :math:`r\,t\,\min(c, a + b/r) = \min(r t c, t(a r + b))`
  grows with :math:`r`, and a superset of GPUs is never less constrained), so extra
  replicas are enumerated only for a running service's own GPUs (keeping them avoids the
  migration);
* fractional tasks: one GPU of an allowed type whose summed milli-GPU stays <= 1000 and
  summed memory fits, at the type's maximum cap (its cost does not depend on the cap);
* running jobs: keeping the same GPU set is no migration, any other set is one; a
  non-preemptible running job may only keep its GPUs (any cap level).

Symmetry: two free GPUs are interchangeable when they lie in the same NVLink domain (or
are singleton domains of the same node), have the same fractional load, and belong to
the current GPU sets of the same running jobs. Swapping them is an automorphism of the
instance that preserves the partial decision, so only the first GPUs of each class are
enumerated. A branch is cut when its cost plus a lower bound of the jobs still open
(each job's cheapest placement on the empty cluster, or 0 if it may stay unplaced) cannot
beat the incumbent. Both reductions keep the optimum exact.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from solver.checker import check
from solver.model import FractionalTask, InferenceService, Instance, Job, TrainingJob
from solver.perf import size_inference
from solver.result import Decision, Placement

__all__ = ["OracleResult", "brute_force"]

#: Size limits of the oracle (the issue's "tiny": <= 3 nodes x 4 GPUs, <= 6 jobs).
MAX_GPUS = 16
MAX_JOBS = 8
FEAS_TOL = 1e-6


@dataclass(frozen=True)
class OracleResult:
    """Exact optimum of an instance, or ``objective is None`` when it is infeasible.

    ``placements_priced`` counts the distinct placements priced by the checker and
    ``search_nodes`` the branches visited.
    """

    objective: float | None
    decision: Decision | None
    placements_priced: int
    search_nodes: int

    @property
    def feasible(self) -> bool:
        return self.objective is not None


@dataclass(frozen=True)
class _Shape:
    """A way to run a job before choosing GPUs: type, GPU count, TP degree, cap levels."""

    gpu_type: str
    num_gpus: int
    tp: int
    caps_w: tuple[float, ...]
    home_only: bool = False


@dataclass(frozen=True)
class _Choice:
    """A priced placement: GPU indices (TP groups consecutive), cap, delta, power, nodes."""

    gpus: tuple[int, ...]
    cap_w: float
    tp: int
    delta: float
    power_w: float
    nodes: frozenset[int]


@dataclass
class _Cluster:
    """GPU index tables of the instance, built from the node list (not the compiled form)."""

    inst: Instance
    gpu_ids: list[str] = field(default_factory=list)
    gpu_node: list[int] = field(default_factory=list)
    gpu_domain: list[int] = field(default_factory=list)
    gpu_type: list[str] = field(default_factory=list)
    domain_size: list[int] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for v, node in enumerate(self.inst.nodes):
            base = len(self.gpu_ids)
            dom_of = {}
            for dom in node.nvlink_domains:
                d = len(self.domain_size)
                self.domain_size.append(len(dom))
                for i in dom:
                    dom_of[i] = d
            for i in range(node.gpu_count):
                self.gpu_ids.append(f"{node.id}/{i}")
                self.gpu_node.append(v)
                self.gpu_domain.append(dom_of[i])
                self.gpu_type.append(node.gpu_type)
            self.index.update({g: base + i for i, g in enumerate(node.gpu_ids())})


def _shapes(inst: Instance, job: Job, cl: _Cluster) -> list[_Shape]:
    """Every (type, count, tp, caps) a job could run with, from the data alone."""
    present = [t for t in inst.gpu_types if t.name in set(cl.gpu_type)]
    out: list[_Shape] = []
    for gpu in present:
        levels = tuple(sorted(gpu.power_cap_levels_w))
        if isinstance(job, TrainingJob):
            if job.throughput(gpu.name) is None or job.memory_gib > gpu.memory_gib:
                continue
            out.extend(_Shape(gpu.name, n, job.tp, levels) for n in job.gpu_counts())
        elif isinstance(job, InferenceService):
            if job.gpu_types and gpu.name not in job.gpu_types:
                continue
            by_size: dict[tuple[int, int], list[float]] = defaultdict(list)
            for cap in levels:
                sz = size_inference(job, inst.llm_model(job.model), gpu, cap)
                if sz is None:
                    continue
                by_size[(sz.num_gpus, sz.tp)].append(cap)
                home = len(job.running.gpus) if job.running is not None else 0
                if home > sz.num_gpus and home % sz.tp == 0:
                    by_size[(-home, sz.tp)].append(cap)  # extra replicas, own GPUs only
            out.extend(_Shape(gpu.name, abs(n), tp, tuple(caps), home_only=n < 0)
                       for (n, tp), caps in by_size.items())
        else:
            if (job.gpu_types and gpu.name not in job.gpu_types) or job.memory_gib > gpu.memory_gib:
                continue
            out.append(_Shape(gpu.name, 1, 1, (gpu.max_power_cap_w,)))
    return out


class _Search:
    """Depth-first branch and bound over jobs with symmetry-reduced GPU choices."""

    def __init__(self, inst: Instance, symmetry: bool) -> None:
        self.inst = inst
        self.symmetry = symmetry
        self.cl = _Cluster(inst)
        self.jobs = list(inst.jobs())
        if len(self.cl.gpu_ids) > MAX_GPUS or len(self.jobs) > MAX_JOBS:
            raise ValueError(f"brute force is for tiny instances (<= {MAX_GPUS} GPUs, <= {MAX_JOBS} jobs); "
                             f"'{inst.name}' has {len(self.cl.gpu_ids)} GPUs and {len(self.jobs)} jobs")
        self.mem_of = {t.name: t.memory_gib for t in inst.gpu_types}
        self.home: list[frozenset[int]] = [
            frozenset(self.cl.index[g] for g in j.running.gpus) if j.running is not None else frozenset()
            for j in self.jobs]
        self.label = [frozenset(k for k, h in enumerate(self.home) if g in h) for g in range(len(self.cl.gpu_ids))]
        self.shapes = [_shapes(inst, j, self.cl) for j in self.jobs]
        self.power_down = inst.objective.allow_power_down
        all_nodes = tuple(n.id for n in inst.nodes)
        on = check(inst, Decision())
        self.ref_objective, self.ref_power_w = on.objective, on.metrics["power_w"]
        base = check(inst, Decision((), all_nodes if self.power_down else ()))
        self.base_objective, self.base_power_w = base.objective, base.metrics["power_w"]
        self.node_kwh_cost: list[float] = []
        self.node_power_w: list[float] = []
        for v in range(len(inst.nodes)):
            if self.power_down:
                r = check(inst, Decision((), all_nodes[:v] + all_nodes[v + 1:]))
                self.node_kwh_cost.append(r.objective - base.objective)
                self.node_power_w.append(r.metrics["power_w"] - base.metrics["power_w"])
            else:
                self.node_kwh_cost.append(0.0)
                self.node_power_w.append(0.0)
        self.budget_w = inst.power_budget_w if inst.power_budget_w is not None else math.inf
        self.priced: dict[tuple[int, tuple[int, ...], float], tuple[bool, float, float]] = {}
        n_gpus = len(self.cl.gpu_ids)
        self.whole = [False] * n_gpus
        self.milli = [0] * n_gpus
        self.mem = [0.0] * n_gpus
        self.node_users = [0] * len(inst.nodes)
        self.search_nodes = 0

    # ------------------------------------------------------------------ pricing
    def price(self, j: int, gpus: tuple[int, ...], cap_w: float, tp: int) -> tuple[bool, float, float]:
        """(valid, objective delta, power delta) of one placement, from the checker."""
        key = (j, gpus, cap_w)
        if key not in self.priced:
            p = Placement(self.jobs[j].id, tuple(self.cl.gpu_ids[g] for g in gpus), cap_w, self.inst.now_s, tp)
            r = check(self.inst, Decision((p,)))
            ok = not any(v.job == p.job for v in r.violations)
            self.priced[key] = (ok, r.objective - self.ref_objective, r.metrics["power_w"] - self.ref_power_w)
        return self.priced[key]

    # ------------------------------------------------------------------ enumeration
    def _classes(self, j: int, shape: _Shape) -> list[tuple[int, list[int]]]:
        """Interchangeable usable GPUs of ``shape``'s type: (domain, GPU indices) per class."""
        cl = self.cl
        groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
        for g in range(len(cl.gpu_ids)):
            if cl.gpu_type[g] != shape.gpu_type:
                continue
            if not self._usable(j, g):
                continue
            d = cl.gpu_domain[g]
            place: tuple[object, ...] = ("node", cl.gpu_node[g]) if cl.domain_size[d] == 1 else ("domain", d)
            identity = () if self.symmetry else (g,)
            groups[(*place, self.label[g], self.milli[g], self.mem[g], *identity)].append(g)
        return [(cl.gpu_domain[gs[0]] if key[0] == "domain" else -1, gs) for key, gs in groups.items()]

    def gpu_sets(self, j: int, shape: _Shape) -> Iterator[tuple[int, ...]]:
        """GPU sets of ``shape`` up to symmetry; TP groups consecutive, each in one domain."""
        job = self.jobs[j]
        home = self.home[j]
        must_keep = job.running is not None and not job.preemptible
        if must_keep or shape.home_only:
            if len(home) == shape.num_gpus and all(
                    self.cl.gpu_type[g] == shape.gpu_type and self._usable(j, g) for g in home):
                yield self._ordered(home)
            return
        classes = self._classes(j, shape)
        for counts in _compositions(shape.num_gpus, [len(gs) for _, gs in classes]):
            per_domain: dict[int, int] = defaultdict(int)
            ok = True
            for (d, _), c in zip(classes, counts, strict=True):
                if c and d < 0 and shape.tp > 1:
                    ok = False
                    break
                if d >= 0:
                    per_domain[d] += c
            if not ok or any(c % shape.tp for c in per_domain.values()):
                continue
            yield self._ordered([g for (_, gs), c in zip(classes, counts, strict=True) for g in gs[:c]])

    def _usable(self, j: int, g: int) -> bool:
        """Can job ``j`` take (a share of) GPU ``g`` now? Whole GPUs must be free; a
        fractional share must fit the GPU's remaining milli-GPU and memory."""
        job = self.jobs[j]
        if self.whole[g]:
            return False
        if isinstance(job, FractionalTask):
            return (self.milli[g] + job.gpu_milli <= 1000
                    and self.mem[g] + job.memory_gib <= self.mem_of[self.cl.gpu_type[g]] + 1e-9)
        return self.milli[g] == 0

    def _ordered(self, gpus: frozenset[int] | list[int]) -> tuple[int, ...]:
        return tuple(sorted(gpus, key=lambda g: (self.cl.gpu_domain[g], g)))

    def choices(self, j: int) -> list[_Choice]:
        """Priced placements of job ``j`` in the current state, best first, Pareto caps only."""
        out: list[_Choice] = []
        for shape in self.shapes[j]:
            for gpus in self.gpu_sets(j, shape):
                priced = [(cap, *self.price(j, gpus, cap, shape.tp)) for cap in shape.caps_w]
                valid = [(cap, dz, pw) for cap, ok, dz, pw in priced if ok]
                nodes = frozenset(self.cl.gpu_node[g] for g in gpus)
                for cap, dz, pw in valid:
                    if any((dz2 <= dz and pw2 <= pw) and (dz2, pw2) != (dz, pw) for _, dz2, pw2 in valid):
                        continue  # dominated cap: costs more and draws more
                    out.append(_Choice(gpus, cap, shape.tp, dz, pw, nodes))
        out.sort(key=lambda c: (c.delta + sum(self.node_kwh_cost[v] for v in c.nodes if not self.node_users[v]),
                                c.power_w, c.gpus, c.cap_w))
        return out

    # ------------------------------------------------------------------ search
    def apply(self, j: int, c: _Choice, sign: int) -> None:
        job = self.jobs[j]
        for g in c.gpus:
            if isinstance(job, FractionalTask):
                self.milli[g] += sign * job.gpu_milli
                self.mem[g] += sign * job.memory_gib
            else:
                self.whole[g] = sign > 0
        for v in c.nodes:
            self.node_users[v] += sign

    def run(self) -> OracleResult:
        order = sorted(range(len(self.jobs)), key=self._order_key)
        must = [self.jobs[j].running is not None and not self.jobs[j].preemptible for j in order]
        # lower bound of each job: its cheapest placement on the empty cluster (0 if it may stay out)
        floor = []
        for j, forced in zip(order, must, strict=True):
            deltas = [c.delta for c in self.choices(j)]
            best = min(deltas, default=math.inf)
            floor.append(best if forced else min(0.0, best))
        rest = [sum(floor[k:]) for k in range(len(order) + 1)]
        best_z = math.inf
        best_pick: list[_Choice | None] = []
        picked: list[_Choice | None] = []

        def dfs(k: int, z: float, power_w: float) -> None:
            nonlocal best_z, best_pick
            self.search_nodes += 1
            if z + rest[k] >= best_z - 1e-9:
                return
            if k == len(order):
                best_z, best_pick = z, list(picked)
                return
            j = order[k]
            for c in self.choices(j):
                new = [v for v in c.nodes if not self.node_users[v]]
                dz = c.delta + sum(self.node_kwh_cost[v] for v in new)
                dp = c.power_w + sum(self.node_power_w[v] for v in new)
                if power_w + dp > self.budget_w + FEAS_TOL:
                    continue
                self.apply(j, c, +1)
                picked.append(c)
                dfs(k + 1, z + dz, power_w + dp)
                picked.pop()
                self.apply(j, c, -1)
            if not must[k]:
                picked.append(None)
                dfs(k + 1, z, power_w)
                picked.pop()

        p0 = self.base_power_w
        if p0 <= self.budget_w + FEAS_TOL:
            dfs(0, self.base_objective, p0)
        if best_z == math.inf:
            return OracleResult(None, None, len(self.priced), self.search_nodes)
        decision = self._decision(order, best_pick)
        report = check(self.inst, decision)
        if not report.valid or abs(report.objective - best_z) > 1e-9 * max(1.0, abs(best_z)):
            raise AssertionError(f"oracle inconsistent with the checker on '{self.inst.name}': search value "
                                 f"{best_z!r}, checked {report.objective!r}, violations {report.violations}")
        return OracleResult(report.objective, decision, len(self.priced), self.search_nodes)

    def _order_key(self, j: int) -> tuple[int, float]:
        job = self.jobs[j]
        forced = job.running is not None and not job.preemptible
        size = job.gpu_milli / 1000 if isinstance(job, FractionalTask) else max(
            (s.num_gpus for s in self.shapes[j]), default=0)
        return (0 if forced else 1, -float(size))

    def _decision(self, order: list[int], picks: list[_Choice | None]) -> Decision:
        placements = []
        used: set[int] = set()
        for j, c in zip(order, picks, strict=True):
            if c is None:
                continue
            used |= c.nodes
            placements.append(Placement(self.jobs[j].id, tuple(self.cl.gpu_ids[g] for g in c.gpus), c.cap_w,
                                        self.inst.now_s, c.tp))
        placements.sort(key=lambda p: p.job)
        off = tuple(n.id for v, n in enumerate(self.inst.nodes) if v not in used) if self.power_down else ()
        return Decision(tuple(placements), off)


def _compositions(total: int, sizes: list[int]) -> Iterator[tuple[int, ...]]:
    """Vectors ``c`` with ``0 <= c[i] <= sizes[i]`` and ``sum(c) == total``."""
    if not sizes:
        if total == 0:
            yield ()
        return
    room = sum(sizes[1:])
    for c in range(max(0, total - room), min(sizes[0], total) + 1):
        for tail in _compositions(total - c, sizes[1:]):
            yield (c, *tail)


def brute_force(inst: Instance, *, symmetry: bool = True) -> OracleResult:
    """Exact optimum of a tiny ``inst`` by symmetry-reduced exhaustive search.

    Parameters
    ----------
    inst
        At most 16 GPUs and 8 jobs (``ValueError`` otherwise).
    symmetry
        Enumerate one GPU set per symmetry class (default). False enumerates every GPU
        set, to test that the reduction keeps the optimum.

    Returns
    -------
    OracleResult
        The optimal objective and a decision attaining it (checked by
        :func:`solver.checker.check`), or ``objective=None`` if no decision satisfies
        every constraint (e.g. a non-preemptible running job over the power budget).
    """
    return _Search(inst, symmetry).run()

