r"""The aggregated index sets of the exact model, derived from a :class:`CompiledInstance`.

* **Slots.** Each NVLink domain with two or more GPUs is a slot; the single-GPU domains
  of a node are merged into one slot. GPUs of a slot are interchangeable, so placements
  are integer *counts* per slot, mapped to GPU ids afterwards (:mod:`formulations.decode`).
* **Units** of level :math:`\ell`: NVLink slots (0), nodes (1), racks (2), pods (3); a
  gang of tier :math:`\le \ell` lies inside one unit of level :math:`\ell`.
* **Classes.** The options of a job that share a GPU type, a tensor-parallel degree and
  whether they use one GPU. A class is *tier-dependent* when some option's cost changes
  with the tier; the others are pooled per (type, tp), because only the number of
  tp-groups per slot matters for them.
* **Fractional size classes and patterns.** Fractional tasks with equal (milli, memory)
  are interchangeable for capacity; the maximal multisets of size classes fitting one GPU
  of a type are its patterns.
* **Home classes and patterns.** A GPU holding running fractional tasks (a *home* GPU) is
  filled by one of its class's maximal patterns over its free residents (each at most once;
  the pinned non-preemptible ones always stay) and the size classes that may join it. Home
  GPUs of one type with the same pinned sizes and at most one free resident of the same
  size are one class: their patterns are counted, not chosen per GPU. A home with two or
  more free residents is a class of its own.
* **Symmetry classes.** Nodes of one rack with the same type, domains and host power
  that hold no running work are interchangeable.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from solver.compiled import N_TIERS, CompiledInstance, Option, Terms, inference_terms
from solver.model import FractionalTask, InferenceService

__all__ = ["HomeClass", "HomePattern", "JobClass", "ModelTooLarge", "Slot", "Structure", "maximal_patterns"]

#: Unit levels: NVLink slot, node, rack, pod; tier 4 (anywhere) needs no unit.
LEVELS = (0, 1, 2, 3)
TIER_ANYWHERE = 4
MAX_PATTERNS = 20000
FRAC_CAPACITY = 1000


class ModelTooLarge(Exception):
    """The aggregated model would exceed a size limit (e.g. too many fractional patterns)."""


@dataclass(frozen=True)
class Slot:
    """Interchangeable GPUs of one node: one NVLink domain, or all its single-GPU domains."""

    index: int
    node: int
    type_index: int
    gpus: tuple[int, ...]
    nvlink: bool

    @property
    def capacity(self) -> int:
        return len(self.gpus)

    def usable(self, tp: int) -> int:
        """GPUs usable by tp-groups: ``floor(C / tp) * tp`` (0 if tp-groups cannot sit here)."""
        if tp > 1 and not self.nvlink:
            return 0
        return self.capacity // tp * tp


@dataclass(frozen=True)
class JobClass:
    """Options of job ``job`` on type ``type_index`` with tensor-parallel degree ``tp``."""

    index: int
    job: int
    type_index: int
    tp: int
    options: tuple[int, ...]  # positions in ci.options[job]
    tier_dependent: bool


@dataclass(frozen=True)
class HomePattern:
    """A maximal way to fill one home GPU of a class: room for its free residents at
    ``positions`` and for ``joins[q]`` joining tasks of size class ``q`` (the pinned
    residents' room is reserved in every pattern)."""

    positions: frozenset[int]
    joins: tuple[int, ...]


@dataclass(frozen=True)
class HomeClass:
    """Interchangeable home GPUs: same type, same pinned sizes, free residents of equal sizes
    (at most one each, unless the class has a single home).

    ``free[i]`` lists the free residents (job indices, by position) of ``homes[i]``.
    """

    homes: tuple[int, ...]
    free: tuple[tuple[int, ...], ...]
    patterns: tuple[HomePattern, ...]


class Structure:
    """Slots, units, classes, keep options, fractional patterns and symmetry classes.

    Parameters
    ----------
    ci
        The compiled instance.
    tensor_parallel
        False drops the tensor-parallel family: every class is treated as ``tp = 1``.
    locality
        False drops the locality family: every class is pooled (tier-0 costs).
    pin_running
        False drops the running family: non-preemptible running tasks may leave their home
        GPU too, so home patterns do not reserve their room.
    """

    def __init__(self, ci: CompiledInstance, *, tensor_parallel: bool = True, locality: bool = True,
                 pin_running: bool = True) -> None:
        self.ci = ci
        inst = ci.instance
        self._units: dict[tuple[int, int, int], dict[int | None, list[int]]] = {}
        self.slots: list[Slot] = []
        self.slot_of_gpu: dict[int, int] = {}
        self.node_slots: list[list[int]] = [[] for _ in inst.nodes]
        by_node: dict[int, list[int]] = defaultdict(list)
        for d, v in enumerate(ci.domain_node):
            by_node[v].append(d)
        for v in range(len(inst.nodes)):
            singles: list[int] = []
            for d in by_node[v]:
                dom = ci.domains[d]
                if len(dom) == 1:
                    singles.extend(dom)
                else:
                    self._slot(v, dom, True)
            if singles:
                self._slot(v, tuple(singles), len(singles) == 1)
        self.node_rack = [int(ci.node_rack[v]) for v in range(len(inst.nodes))]
        self.node_pod = [int(ci.node_pod[v]) for v in range(len(inst.nodes))]
        self.node_capacity = [sum(self.slots[s].capacity for s in self.node_slots[v]) for v in range(len(inst.nodes))]

        # running work: whole-GPU occupancy per job and slot, home GPUs of fractional tasks
        self.occupancy: dict[int, dict[int, int]] = {}
        self.home_gpus: list[int] = []
        self.home_of_job: dict[int, int] = {}
        busy_nodes: set[int] = set()
        for j, job in enumerate(ci.jobs):
            if job.running is None:
                continue
            gpus = [ci.gpu_index[g] for g in job.running.gpus]
            busy_nodes.update(int(ci.gpu_node[g]) for g in gpus)
            if isinstance(job, FractionalTask):
                g = gpus[0]
                if g not in self.home_gpus:
                    self.home_gpus.append(g)
                self.home_of_job[j] = self.home_gpus.index(g)
            else:
                occ: dict[int, int] = defaultdict(int)
                for g in gpus:
                    occ[self.slot_of_gpu[g]] += 1
                self.occupancy[j] = dict(occ)
        self.keep_options: dict[int, tuple[int, ...]] = {j: self._keep_options(j) for j in self.occupancy}

        self.tensor_parallel = tensor_parallel
        self.classes: list[JobClass] = []
        self.job_classes: dict[int, list[int]] = defaultdict(list)
        self._build_classes(locality)
        self._build_fractional()
        self.home_classes = self._home_classes(pin_running)
        self.symmetry_classes = self._symmetry_classes(busy_nodes)

    # ------------------------------------------------------------------ slots and units
    def _slot(self, v: int, gpus: tuple[int, ...], nvlink: bool) -> None:
        s = len(self.slots)
        self.slots.append(Slot(s, v, int(self.ci.gpu_type[gpus[0]]), tuple(gpus), nvlink))
        self.node_slots[v].append(s)
        for g in gpus:
            self.slot_of_gpu[g] = s

    def unit(self, level: int, s: int) -> int | None:
        """Unit of slot ``s`` at ``level`` (None: a merged slot is not one NVLink domain)."""
        slot = self.slots[s]
        if level == 0:
            return s if slot.nvlink else None
        if level == 1:
            return slot.node
        if level == 2:
            return self.node_rack[slot.node]
        return self.node_pod[slot.node]

    def units(self, level: int, type_index: int, tp: int) -> dict[int | None, list[int]]:
        """Slots of ``type_index`` usable by ``tp``-groups, grouped by their unit at ``level``."""
        key = (level, type_index, tp)
        if key not in self._units:
            out: dict[int | None, list[int]] = defaultdict(list)
            for slot in self.slots:
                if slot.type_index == type_index and slot.usable(tp) > 0:
                    out[self.unit(level, slot.index)].append(slot.index)
            self._units[key] = dict(out)
        return self._units[key]

    def unit_capacity(self, slots: list[int], tp: int) -> int:
        return sum(self.slots[s].usable(tp) for s in slots)

    def tp_of(self, opt: Option) -> int:
        """Tensor-parallel degree used for slot usability (1 when the family is dropped)."""
        return opt.tp if self.tensor_parallel else 1

    # ------------------------------------------------------------------ jobs
    def _keep_options(self, j: int) -> tuple[int, ...]:
        """Options under which running job ``j`` can stay on its GPUs (type, size, tp-groups fit)."""
        ci = self.ci
        job = ci.jobs[j]
        assert job.running is not None
        gpus = [ci.gpu_index[g] for g in job.running.gpus]
        k = int(ci.gpu_type[gpus[0]])
        per_domain: dict[int, int] = defaultdict(int)
        for g in gpus:
            per_domain[int(ci.gpu_domain[g])] += 1
        out = []
        for i, o in enumerate(ci.options[j]):
            if o.type_index != k or not all(c % o.tp == 0 for c in per_domain.values()):
                continue
            # a service may keep more replicas than it needs (its GPUs stay a whole number of replicas)
            if o.num_gpus == len(gpus) or (isinstance(job, InferenceService) and o.num_gpus < len(gpus)):
                out.append(i)
        return tuple(out)

    def keep_terms(self, j: int, i: int) -> Terms:
        """Cost terms of running job ``j`` kept on its GPUs under option ``i`` (no migration)."""
        ci = self.ci
        job = ci.jobs[j]
        o = ci.options[j][i]
        assert job.running is not None
        n = len(job.running.gpus)
        if isinstance(job, InferenceService) and n != o.num_gpus:
            t = inference_terms(ci.instance, job, ci.instance.gpu_types[o.type_index], o.power_cap_w, n // o.tp)
            assert t is not None
            return t
        return o.terms[self.running_tier(j)][0]

    def running_tier(self, j: int) -> int:
        job = self.ci.jobs[j]
        assert job.running is not None
        return self.ci.tier([self.ci.gpu_index[g] for g in job.running.gpus])

    def may_move(self, j: int) -> bool:
        """Pending jobs are placed freely; running jobs only move if preemptible."""
        job = self.ci.jobs[j]
        return job.running is None or job.preemptible

    def max_capacity(self, level: int, type_index: int, tp: int) -> int:
        """Largest usable capacity of one unit at ``level`` (level 4: the whole type)."""
        if level == 4:
            return self.unit_capacity([s.index for s in self.slots if s.type_index == type_index], tp)
        units = self.units(level, type_index, tp)
        return max((self.unit_capacity(ss, tp) for u, ss in units.items() if u is not None), default=0)

    def tiers(self, opt: Option) -> tuple[int, ...]:
        """Tiers :math:`t` at which option ``opt`` can be placed ("within one unit of level t")."""
        tp = self.tp_of(opt)
        if opt.num_gpus == 1:
            return (0,)
        caps = self._caps(opt.type_index, tp)
        out = tuple(t for t in range(N_TIERS) if caps[t] >= opt.num_gpus)
        if 0 in out and self._node_is_domain(opt.type_index, tp):
            out = tuple(t for t in out if t != 1)  # within one node = within one domain: tier 0 dominates
        return out

    def _node_is_domain(self, k: int, tp: int) -> bool:
        """True if every node of type ``k`` has at most one slot usable by tp-groups, an NVLink one."""
        key = (k, tp)
        if key not in self._node_domain:
            self._node_domain[key] = all(
                sum(1 for s in ss if self.slots[s].usable(tp) > 0) <= 1
                and all(self.slots[s].nvlink for s in ss if self.slots[s].usable(tp) > 0)
                for ss in self.node_slots if ss and self.slots[ss[0]].type_index == k)
        return self._node_domain[key]

    def _caps(self, k: int, tp: int) -> tuple[int, ...]:
        key = (k, tp)
        if key not in self._cap_cache:
            self._cap_cache[key] = tuple(self.max_capacity(t, k, tp) for t in range(N_TIERS))
        return self._cap_cache[key]

    def _build_classes(self, locality: bool) -> None:
        ci = self.ci
        inst = ci.instance
        self._cap_cache: dict[tuple[int, int], tuple[int, ...]] = {}
        self._node_domain: dict[tuple[int, int], bool] = {}
        for j, job in enumerate(ci.jobs):
            if isinstance(job, FractionalTask) or not self.may_move(j):
                continue
            groups: dict[tuple[int, int, bool], list[int]] = defaultdict(list)
            for i, o in enumerate(ci.options[j]):
                if not self.tiers(o):
                    continue
                groups[(o.type_index, self.tp_of(o), o.num_gpus == 1)].append(i)
            for (k, tp, single), opts in sorted(groups.items()):
                migrated = job.running is not None
                dependent = locality and not single and any(
                    ci.options[j][i].cost(inst, t, migrated) != ci.options[j][i].cost(inst, 0, migrated)
                    for i in opts for t in self.tiers(ci.options[j][i]))
                c = JobClass(len(self.classes), j, k, tp, tuple(opts), dependent)
                self.classes.append(c)
                self.job_classes[j].append(c.index)

    # ------------------------------------------------------------------ fractional tasks
    def _build_fractional(self) -> None:
        ci = self.ci
        inst = ci.instance
        self.size_classes: list[tuple[int, float]] = []
        self.size_of_job: dict[int, int] = {}
        for j, job in enumerate(ci.jobs):
            if isinstance(job, FractionalTask):
                key = (job.gpu_milli, job.memory_gib)
                if key not in self.size_classes:
                    self.size_classes.append(key)
                self.size_of_job[j] = self.size_classes.index(key)
        # size classes movable onto each type (pending or preemptible tasks with an option there)
        self.frac_types: dict[int, set[int]] = defaultdict(set)
        for j in self.size_of_job:
            if self.may_move(j):
                for o in ci.options[j]:
                    self.frac_types[o.type_index].add(self.size_of_job[j])
        self.patterns: dict[int, list[tuple[int, ...]]] = {}
        for k, sizes in sorted(self.frac_types.items()):
            mem = inst.gpu_types[k].memory_gib
            self.patterns[k] = maximal_patterns([self.size_classes[i] if i in sizes else None
                                                 for i in range(len(self.size_classes))], mem)

    def _home_classes(self, pin_running: bool) -> list[HomeClass]:
        """Home GPUs grouped into classes, each with its maximal patterns.

        A home's shape is its type, its pinned (non-preemptible) residents' sizes and its free
        residents' sizes; homes of one shape with at most one free resident are one class.
        """
        ci = self.ci
        residents: dict[int, list[int]] = defaultdict(list)
        for j, h in sorted(self.home_of_job.items()):
            residents[h].append(j)

        def size(j: int) -> tuple[int, float]:
            task = ci.jobs[j]
            assert isinstance(task, FractionalTask)
            return task.gpu_milli, task.memory_gib

        Shape = tuple[int, tuple[tuple[int, float], ...], tuple[tuple[int, float], ...]]
        groups: dict[tuple[object, ...], list[tuple[int, tuple[int, ...], Shape]]] = defaultdict(list)
        for h, g in enumerate(self.home_gpus):
            k = int(ci.gpu_type[g])
            pinned = [j for j in residents[h] if pin_running and not ci.jobs[j].preemptible]
            free = tuple(sorted((j for j in residents[h] if j not in pinned
                                 and any(o.type_index == k for o in ci.options[j])), key=lambda j: (size(j), j)))
            shape: Shape = (k, tuple(sorted(size(j) for j in pinned)), tuple(size(j) for j in free))
            groups[shape if len(free) <= 1 else (h,)].append((h, free, shape))
        return [HomeClass(tuple(h for h, _, _ in members), tuple(f for _, f, _ in members),
                          self._home_patterns(*members[0][2]))
                for members in sorted(groups.values())]

    def _home_patterns(self, k: int, pinned: tuple[tuple[int, float], ...],
                       free: tuple[tuple[int, float], ...]) -> tuple[HomePattern, ...]:
        """Maximal fillings of a home GPU of type ``k``: its ``free`` residents' sizes (at most
        once each) and joining size classes, in the room its ``pinned`` residents' sizes leave."""
        milli = float(FRAC_CAPACITY) - sum(m for m, _ in pinned)
        memory = self.ci.instance.gpu_types[k].memory_gib - sum(g for _, g in pinned)
        if milli < 0 or memory < -1e-9:
            return ()
        joinable = self.frac_types.get(k, set())
        nq = len(self.size_classes)
        sizes: list[tuple[int, float] | None] = [self.size_classes[q] if q in joinable else None for q in range(nq)]
        sizes += free
        limits: list[int | None] = [None] * nq + [1] * len(free)
        pats = maximal_patterns(sizes, memory, milli=milli, limits=limits) or [(0,) * len(sizes)]
        return tuple(HomePattern(frozenset(r for r, a in enumerate(pat[nq:]) if a), pat[:nq]) for pat in pats)

    # ------------------------------------------------------------------ symmetry
    def _symmetry_classes(self, busy_nodes: set[int]) -> list[list[int]]:
        inst = self.ci.instance
        groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
        for v, node in enumerate(inst.nodes):
            if v in busy_nodes:
                continue
            shape = tuple((self.slots[s].capacity, self.slots[s].nvlink) for s in self.node_slots[v])
            groups[(self.node_rack[v], node.gpu_type, shape, node.host_power_w)].append(v)
        return [vs for vs in groups.values() if len(vs) > 1]


def maximal_patterns(sizes: list[tuple[int, float] | None], memory_gib: float, *, milli: float = FRAC_CAPACITY,
                     limits: list[int | None] | None = None) -> list[tuple[int, ...]]:
    r"""Maximal multisets of size classes fitting one GPU.

    A pattern :math:`p` counts :math:`a_{p\sigma}` tasks of size class :math:`\sigma`
    with :math:`\sum_\sigma a_{p\sigma} m_\sigma \le` ``milli`` (1000: a whole GPU) and
    :math:`\sum_\sigma a_{p\sigma} \mu_\sigma \le` ``memory_gib``, and
    :math:`a_{p\sigma} \le` ``limits[sigma]`` where given; maximal means no further task
    fits. Every feasible multiset is dominated by a maximal one.

    Parameters
    ----------
    sizes
        ``(milli, memory_gib)`` per size class, None for classes not allowed here.
    memory_gib
        GPU memory available.
    milli
        Milli-GPU available.
    limits
        Largest count per class (None: unlimited).
    """
    lim = limits if limits is not None else [None] * len(sizes)
    idx = [i for i, s in enumerate(sizes) if s is not None and s[0] <= milli and s[1] <= memory_gib + 1e-9]
    out: list[tuple[int, ...]] = []
    counts = [0] * len(sizes)

    def fits(i: int, used_milli: float, used_mem: float) -> bool:
        s = sizes[i]
        assert s is not None
        return used_milli + s[0] <= milli and used_mem + s[1] <= memory_gib + 1e-9

    def below_limit(i: int, n: int) -> bool:
        cap = lim[i]
        return cap is None or n < cap

    def rec(pos: int, used_milli: float, used_mem: float) -> None:
        if pos == len(idx):
            if not any(below_limit(i, counts[i]) and fits(i, used_milli, used_mem) for i in idx):
                out.append(tuple(counts))
                if len(out) > MAX_PATTERNS:
                    raise ModelTooLarge(f"more than {MAX_PATTERNS} fractional packing patterns")
            return
        i = idx[pos]
        s = sizes[i]
        assert s is not None
        n = 0
        while True:
            rec(pos + 1, used_milli + n * s[0], used_mem + n * s[1])
            if not below_limit(i, n) or not fits(i, used_milli + n * s[0], used_mem + n * s[1]):
                break
            n += 1
            counts[i] = n
        counts[i] = 0

    if idx:
        rec(0, 0.0, 0.0)
    return out
