r"""Fast free-capacity bookkeeping of the simulated cluster and the placement rules.

:class:`FreeCapacity` tracks, per GPU, the free share in milli-GPU (1000 = idle), per node the
fully free GPUs and the free CPU and memory. Every placement goes through :meth:`take` and
:meth:`release`, which assert the capacity rules the snapshot checker enforces: a whole-GPU
gang only on fully free GPUs, fractional shares summing to at most 1000 per GPU, CPU and
memory within the node. GPU indices are those of :class:`solver.compiled.CompiledInstance`
(nodes in order, local GPU index within a node).

Placers (:data:`PLACERS`) choose GPUs for one job:

- ``first-fit``: the first node (in node order) with room; fractional tasks on the first GPU
  with enough free share.
- ``best-fit``: the node with the fewest free GPUs that still fits (consolidation);
  fractional tasks on the GPU with the least sufficient free share.
- ``fgd``: fragmentation gradient descent (Weng et al., ATC'23): the GPU/node whose choice
  increases the expected fragmentation :math:`F = \sum_n \sum_m p_m F_n(m)` the least, with
  :math:`F_n(m)` the free GPU capacity of node :math:`n` a task of class :math:`m` cannot use
  (all of it when :math:`m` does not fit on :math:`n`, else the free shares of GPUs with less
  free capacity than :math:`m` needs), and :math:`p_m` the popularity of class :math:`m` in
  the target workload.

A gang larger than every node of its type spreads over several nodes (fullest-free nodes
first); without ``consolidate`` so does a gang that finds no single node with room. Tasks
with CPU or memory requests (Kubernetes pods) never span nodes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

from solver.sim.cluster import SimCluster
from solver.sim.workload import SimJob

__all__ = ["PLACERS", "FragmentationModel", "FreeCapacity", "Placer", "Slot"]

FULL = 1000
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: A placement: the node charged with the CPU/memory request and the GPU indices.
Slot = tuple[int, tuple[int, ...]]


class FreeCapacity:
    """Free GPU shares, whole GPUs, CPU and memory of every node."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        type_index = {t.name: k for k, t in enumerate(cluster.gpu_types)}
        n_nodes = len(cluster.nodes)
        self.node_type: IntArray = np.array([type_index[n.gpu_type] for n in cluster.nodes], dtype=np.int64)
        sizes = np.array([n.gpu_count for n in cluster.nodes], dtype=np.int64)
        self.node_size = sizes
        self.node_first: IntArray = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        n_gpus = int(sizes.sum())
        self.gpu_node: IntArray = np.repeat(np.arange(n_nodes, dtype=np.int64), sizes)
        self.gpu_type: IntArray = self.node_type[self.gpu_node]
        self.free_milli: IntArray = np.full(n_gpus, FULL, dtype=np.int64)
        self.max_gpus = int(sizes.max()) if n_nodes else 0
        # padded node x local-GPU matrix of free shares (-1 for missing GPUs)
        self.node_free: IntArray = np.full((n_nodes, max(self.max_gpus, 1)), -1, dtype=np.int64)
        for v, s in enumerate(sizes):
            self.node_free[v, :s] = FULL
        self.node_full_free: IntArray = sizes.copy()
        inf = [math.inf] * n_nodes
        self.cpu_free: FloatArray = np.array(cluster.node_cpu_milli or inf, dtype=np.float64)
        self.mem_free: FloatArray = np.array(cluster.node_memory_mib or inf, dtype=np.float64)
        self.type_total: IntArray = np.bincount(self.node_type, weights=sizes, minlength=len(type_index)).astype(
            np.int64)
        self.type_max_node: IntArray = np.zeros(len(type_index), dtype=np.int64)
        np.maximum.at(self.type_max_node, self.node_type, sizes)
        self._nodes_of: dict[frozenset[int], IntArray] = {}
        self._gpus_of: dict[frozenset[int], IntArray] = {}
        self.busy_milli = 0

    # ------------------------------------------------------------------ lookups
    def nodes_of(self, types: Iterable[int]) -> IntArray:
        """Node indices whose GPU type is in ``types`` (cached)."""
        key = frozenset(types)
        if key not in self._nodes_of:
            self._nodes_of[key] = np.flatnonzero(np.isin(self.node_type, list(key)))
        return self._nodes_of[key]

    def gpus_of(self, types: Iterable[int]) -> IntArray:
        """GPU indices whose type is in ``types`` (cached)."""
        key = frozenset(types)
        if key not in self._gpus_of:
            self._gpus_of[key] = np.flatnonzero(np.isin(self.gpu_type, list(key)))
        return self._gpus_of[key]

    def fits_ever(self, job: SimJob) -> bool:
        """True if some allowed type could host ``job`` on an empty cluster."""
        if job.num_gpus == 0:
            return bool((np.asarray(self.cluster.node_cpu_milli) >= job.cpu_milli).any())
        return any(self.type_total[k] >= job.num_gpus for k in job.throughput)

    def full_free_gpus(self, v: int, n: int) -> tuple[int, ...]:
        """The first ``n`` fully free GPUs of node ``v``."""
        local = np.flatnonzero(self.node_free[v] == FULL)[:n]
        return tuple(int(self.node_first[v] + i) for i in local)

    # ------------------------------------------------------------------ updates
    def take(self, job: SimJob, slot: Slot) -> None:
        """Charge ``job`` on ``slot``; raises AssertionError if a capacity rule breaks."""
        v, gpus = slot
        for g in gpus:
            free = int(self.free_milli[g])
            assert free >= job.milli and (job.milli < FULL or free == FULL), f"GPU {g} over capacity"
            if free == FULL:
                self.node_full_free[self.gpu_node[g]] -= 1
            self.free_milli[g] = free - job.milli
            self.node_free[self.gpu_node[g], g - self.node_first[self.gpu_node[g]]] = free - job.milli
        assert self.cpu_free[v] >= job.cpu_milli - 1e-9 and self.mem_free[v] >= job.memory_mib - 1e-9
        self.cpu_free[v] -= job.cpu_milli
        self.mem_free[v] -= job.memory_mib
        self.busy_milli += job.milli * len(gpus)

    def release(self, job: SimJob, slot: Slot) -> None:
        """Undo :meth:`take`."""
        v, gpus = slot
        for g in gpus:
            free = int(self.free_milli[g]) + job.milli
            assert free <= FULL
            self.free_milli[g] = free
            self.node_free[self.gpu_node[g], g - self.node_first[self.gpu_node[g]]] = free
            if free == FULL:
                self.node_full_free[self.gpu_node[g]] += 1
        self.cpu_free[v] += job.cpu_milli
        self.mem_free[v] += job.memory_mib
        self.busy_milli -= job.milli * len(gpus)


# ---------------------------------------------------------------------- placers
Placer = Callable[[FreeCapacity, SimJob, Sequence[int], bool], Slot | None]


def _node_ok(cap: FreeCapacity, nodes: IntArray, job: SimJob) -> npt.NDArray[np.bool_]:
    return (cap.cpu_free[nodes] >= job.cpu_milli - 1e-9) & (cap.mem_free[nodes] >= job.memory_mib - 1e-9)


def _cpu_only(cap: FreeCapacity, job: SimJob, best: bool) -> Slot | None:
    nodes = np.arange(len(cap.node_type))
    ok = np.flatnonzero(_node_ok(cap, nodes, job))
    if not len(ok):
        return None
    if best:
        return int(ok[np.argmin(cap.cpu_free[ok])]), ()
    return int(ok[0]), ()


def _spread(cap: FreeCapacity, job: SimJob, types: Sequence[int]) -> Slot | None:
    """A gang over several nodes of one type, fullest-free nodes first (fewest nodes)."""
    for t in types:
        nodes = cap.nodes_of([t])
        free = cap.node_full_free[nodes]
        if int(free.sum()) < job.num_gpus:
            continue
        order = nodes[np.lexsort((nodes, -free))]
        gpus: list[int] = []
        for v in order:
            if cap.node_full_free[v] == 0:
                break
            gpus.extend(cap.full_free_gpus(int(v), job.num_gpus - len(gpus)))
            if len(gpus) == job.num_gpus:
                return int(cap.gpu_node[gpus[0]]), tuple(gpus)
    return None


def _whole(cap: FreeCapacity, job: SimJob, types: Sequence[int], consolidate: bool, best: bool) -> Slot | None:
    for t in types if not best else [None]:
        nodes = cap.nodes_of([t] if t is not None else types)
        ok = nodes[(cap.node_full_free[nodes] >= job.num_gpus) & _node_ok(cap, nodes, job)]
        if len(ok):
            v = int(ok[np.argmin(cap.node_full_free[ok])]) if best else int(ok[0])
            return v, cap.full_free_gpus(v, job.num_gpus)
    if job.cpu_milli or job.memory_mib:
        return None  # a task with host requests (a pod) runs on one node
    if consolidate and any(cap.type_max_node[t] >= job.num_gpus for t in types):
        return None
    big = [t for t in types if cap.type_max_node[t] < job.num_gpus] if consolidate else list(types)
    return _spread(cap, job, big)


def _fraction(cap: FreeCapacity, job: SimJob, types: Sequence[int], best: bool) -> Slot | None:
    gpus = cap.gpus_of(types)
    ok = gpus[cap.free_milli[gpus] >= job.milli]
    if len(ok) and (job.cpu_milli or job.memory_mib):
        ok = ok[_node_ok(cap, cap.gpu_node[ok], job)]
    if not len(ok):
        return None
    g = int(ok[np.argmin(cap.free_milli[ok])]) if best else int(ok[0])
    return int(cap.gpu_node[g]), (g,)


def _fit(cap: FreeCapacity, job: SimJob, types: Sequence[int], consolidate: bool, best: bool) -> Slot | None:
    """A CPU-only, whole-GPU or fractional slot for ``job``, tightest if ``best`` else first."""
    if job.num_gpus == 0:
        return _cpu_only(cap, job, best=best)
    if job.whole:
        return _whole(cap, job, types, consolidate, best=best)
    return _fraction(cap, job, types, best=best)


def first_fit(cap: FreeCapacity, job: SimJob, types: Sequence[int], consolidate: bool) -> Slot | None:
    """First node (node order) with room; types tried in the given order."""
    return _fit(cap, job, types, consolidate, best=False)


def best_fit(cap: FreeCapacity, job: SimJob, types: Sequence[int], consolidate: bool) -> Slot | None:
    """Tightest node (fewest free GPUs) or tightest GPU share over all allowed types."""
    return _fit(cap, job, types, consolidate, best=True)


@dataclass(frozen=True)
class FragmentationModel:
    """Task classes of the target workload: milli-GPU, GPU count, CPU, allowed types, popularity.

    Classes are the ``max_classes`` most frequent (milli, GPUs, CPU, types) combinations of
    the workload's GPU tasks, popularity renormalized over them. A class whose CPU request
    exceeds a node's free CPU cannot use any of that node's GPUs (FGD's "lack CPU" case).
    """

    milli: IntArray
    count: IntArray
    cpu_milli: FloatArray
    type_ok: npt.NDArray[np.bool_]  # classes x types
    popularity: FloatArray

    @staticmethod
    def from_jobs(jobs: Iterable[SimJob], n_types: int, max_classes: int = 64) -> FragmentationModel:
        """Classes of the GPU jobs, weighted by frequency."""
        counts: Counter[tuple[int, int, float, frozenset[int]]] = Counter()
        for j in jobs:
            if j.num_gpus:
                counts[(j.milli, j.num_gpus, j.cpu_milli, frozenset(j.throughput))] += 1
        if not counts:
            counts[(FULL, 1, 0.0, frozenset(range(n_types)))] = 1
        keys = sorted(counts, key=lambda k: (-counts[k], k[0], k[1], k[2], sorted(k[3])))[:max_classes]
        total = sum(counts[k] for k in keys)
        ok = np.zeros((len(keys), n_types), dtype=bool)
        for c, k in enumerate(keys):
            ok[c, list(k[3])] = True
        return FragmentationModel(np.array([k[0] for k in keys], dtype=np.int64),
                                  np.array([k[1] for k in keys], dtype=np.int64),
                                  np.array([k[2] for k in keys], dtype=np.float64), ok,
                                  np.array([counts[k] / total for k in keys]))

    def node_fragmentation(self, free: IntArray, types: IntArray, cpu_free: FloatArray) -> FloatArray:
        """Expected unusable free milli-GPU :math:`\\sum_m p_m F_n(m)` of each row of ``free``."""
        f = np.clip(free, 0, None)
        total = f.sum(axis=1)
        ge = free[:, :, None] >= self.milli[None, None, :]
        usable = (f[:, :, None] * ge).sum(axis=1)
        fits = ((ge.sum(axis=1) >= self.count[None, :]) & self.type_ok[:, types].T
                & (cpu_free[:, None] >= self.cpu_milli[None, :] - 1e-9))
        frag = np.where(fits, total[:, None] - usable, total[:, None])
        result: FloatArray = frag @ self.popularity
        return result

    def cluster_fragmentation(self, cap: FreeCapacity) -> tuple[float, float]:
        """Fragmented and total free milli-GPU of the cluster."""
        frag = self.node_fragmentation(cap.node_free, cap.node_type, cap.cpu_free)
        return float(frag.sum()), float(np.clip(cap.node_free, 0, None).sum())


def make_fgd(model: FragmentationModel) -> Placer:
    """The FGD placer for the target workload ``model``."""

    def fgd(cap: FreeCapacity, job: SimJob, types: Sequence[int], consolidate: bool) -> Slot | None:
        nodes = cap.nodes_of(types) if job.num_gpus else np.arange(len(cap.node_type))
        nodes = nodes[_node_ok(cap, nodes, job)]
        if job.num_gpus == 0:  # CPU-only pod: steer it to where its CPU strands the fewest GPUs
            if not len(nodes):
                return None
            rows = cap.node_free[nodes]
            cand_node, cand_local = nodes, np.full(len(nodes), -1)
        elif job.whole:
            nodes = nodes[cap.node_full_free[nodes] >= job.num_gpus]
            if not len(nodes):
                return _whole(cap, job, types, consolidate, best=True)
            rows = cap.node_free[nodes].copy()
            # take the first k fully free GPUs of each node
            full = rows == FULL
            taken = full & (np.cumsum(full, axis=1) <= job.num_gpus)
            rows[taken] -= FULL
            cand_node, cand_local = nodes, np.full(len(nodes), -1)
        else:
            sub = cap.node_free[nodes]
            vi, li = np.nonzero(sub >= job.milli)
            if not len(vi):
                return None
            cand_node, cand_local = nodes, li
            cand_node = nodes[vi]
            rows = sub[vi].copy()
            rows[np.arange(len(vi)), li] -= job.milli
        ctype = cap.node_type[cand_node]
        cpu = cap.cpu_free[cand_node]
        cpu_key = np.where(np.isfinite(cpu), cpu, -1.0)
        key = np.column_stack([ctype, cpu_key, np.sort(rows, axis=1), np.sort(cap.node_free[cand_node], axis=1)])
        uniq, inverse = np.unique(key, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        t = uniq[:, 0].astype(np.int64)
        c = np.where(uniq[:, 1] < 0, np.inf, uniq[:, 1])
        g = cap.node_free.shape[1]
        after = uniq[:, 2:2 + g].astype(np.int64)
        before = uniq[:, 2 + g:].astype(np.int64)
        delta = (model.node_fragmentation(after, t, c - job.cpu_milli)
                 - model.node_fragmentation(before, t, c))
        best = int(np.argmin(delta[inverse]))  # first minimum: lowest node, then lowest GPU
        v = int(cand_node[best])
        if job.num_gpus == 0:
            return v, ()
        if job.whole:
            return v, cap.full_free_gpus(v, job.num_gpus)
        return v, (int(cap.node_first[v] + cand_local[best]),)

    return fgd


#: Placer name -> placer (FGD needs a workload model: see :func:`make_fgd`).
PLACERS: Final[Mapping[str, Placer]] = MappingProxyType({"first-fit": first_fit, "best-fit": best_fit})
