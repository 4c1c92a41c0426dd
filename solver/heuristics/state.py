"""Mutable free-capacity bookkeeping shared by the placement heuristics.

:class:`ClusterState` tracks free whole GPUs per NVLink domain, node, rack and pod,
and fractional shares per GPU, and finds the *tightest* placement of a gang:
one NVLink domain, else one node, else one rack, else one pod, else anywhere, each
level choosing the candidate with the least sufficient free capacity (best fit).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import defaultdict

import numpy as np

from solver.compiled import CompiledInstance

__all__ = ["ClusterState"]

_BIG = np.int64(1) << 40


class ClusterState:
    """Free capacity of a cluster during a greedy pass (GPU indices of the compiled form).

    Besides the arrays read by the heuristics (``whole_used``, ``milli_used``,
    ``mem_used``, ``dom_free``, ``node_used``, ``node_free``), it keeps, per GPU type,
    the domains bucketed by their number of free GPUs (sorted by index) and the type's
    total of free GPUs, so that the common queries (a gang that fits in one NVLink
    domain, or a type with too few free GPUs) take no array work; and, per type, the
    GPUs holding fractional work bucketed by load and the nodes with a free GPU bucketed
    by their number of GPUs holding work, so that :meth:`find_fraction` looks at the
    best candidates first. Every bucket is a list sorted by index (ties go to the lowest).
    """

    def __init__(self, ci: CompiledInstance) -> None:
        self.ci = ci
        n_gpus = len(ci.gpu_ids)
        self.whole_used = np.zeros(n_gpus, dtype=bool)
        self.milli_used = np.zeros(n_gpus, dtype=np.int64)
        self.mem_used = np.zeros(n_gpus, dtype=np.float64)
        self.domain_free: list[list[int]] = [list(d) for d in ci.domains]  # free GPU indices per domain
        inst = ci.instance
        self.node_used = np.zeros(len(inst.nodes), dtype=np.int64)  # GPUs holding any work
        self._gpu_domain: list[int] = ci.gpu_domain.tolist()
        self._gpu_node: list[int] = ci.gpu_node.tolist()
        # domains of each type, and nodes/racks/pods of each type
        self.type_domains: dict[int, list[int]] = defaultdict(list)
        self._dom_type: list[int] = []
        for d, dom in enumerate(ci.domains):
            t = int(ci.gpu_type[dom[0]])
            self.type_domains[t].append(d)
            self._dom_type.append(t)
        self.node_domains: dict[int, list[int]] = defaultdict(list)
        for d, v in enumerate(ci.domain_node):
            self.node_domains[v].append(d)
        self.dom_free = np.array([len(d) for d in ci.domains], dtype=np.int64)  # free GPUs per domain
        self._type_dom = {t: np.array(ds, dtype=np.int64) for t, ds in self.type_domains.items()}
        dom_node = np.asarray(ci.domain_node, dtype=np.int64)
        self._type_dom_node = {t: dom_node[ds] for t, ds in self._type_dom.items()}
        # per type: domains by number of free GPUs (each list sorted), and the free GPUs in all
        self._buckets: dict[int, list[list[int]]] = {}
        self._type_free: dict[int, int] = {}
        for t, ds in self.type_domains.items():
            buckets: list[list[int]] = [[] for _ in range(max(len(ci.domains[d]) for d in ds) + 1)]
            for d in ds:  # ascending, so every bucket is sorted
                buckets[len(ci.domains[d])].append(d)
            self._buckets[t] = buckets
            self._type_free[t] = sum(len(ci.domains[d]) for d in ds)
        self.node_free = np.array([n.gpu_count for n in inst.nodes], dtype=np.int64)  # GPUs with no work
        self._shared: set[int] = set()  # GPUs holding fractional work
        self._gpu_type: list[int] = ci.gpu_type.tolist()
        self._mem_used: list[float] = [0.0] * n_gpus  # mem_used as Python floats (same values)
        # per type: the shared GPUs by load (milli-GPU; each list sorted) and the loads present (sorted)
        self._frac_by_load: dict[int, dict[int, list[int]]] = defaultdict(dict)
        self._frac_loads: dict[int, list[int]] = defaultdict(list)
        # per type: the nodes with a free GPU by node_used (each list sorted) and the counts present (sorted)
        self._node_by_used: dict[int, dict[int, list[int]]] = defaultdict(dict)
        self._node_useds: dict[int, list[int]] = defaultdict(list)
        for v, node in enumerate(inst.nodes):
            if node.gpu_count > 0:
                self._move(self._node_by_used, self._node_useds, ci.type_index[node.gpu_type], v, None, 0)

    # ------------------------------------------------------------------ queries
    def free_in(self, domains: list[int], tp: int) -> int:
        """GPUs usable in ``tp``-sized groups over ``domains``."""
        return sum(len(self.domain_free[d]) // tp * tp for d in domains)

    def find_gang(self, type_index: int, n: int, tp: int) -> list[int] | None:
        """Tightest set of ``n`` free GPUs of one type in ``tp``-groups, or None.

        Vectorized over the type's NVLink domains (free counts in ``dom_free``): O(domains)
        array work per call, none when one domain suffices. Ties go to the lowest domain,
        node, rack or pod index.
        """
        found = self.find_gang_tier(type_index, n, tp)
        return None if found is None else found[0]

    def find_gang_tier(self, type_index: int, n: int, tp: int) -> tuple[list[int], int] | None:
        """:meth:`find_gang` and the locality tier of the GPUs it finds.

        The tier is the level that answered (0 one NVLink domain ... 4 the cluster),
        which equals :meth:`CompiledInstance.tier` of the GPUs: a level is only reached
        when no candidate of the level below has ``n`` usable GPUs, so the GPUs span
        several candidates of that lower level.
        """
        buckets = self._buckets.get(type_index)
        if buckets is None or self._type_free[type_index] < n:
            return None
        # tier 0: one NVLink domain, best fit (fewest free GPUs that suffice), lowest index
        for c in range(max(n, 0), len(buckets)):
            if buckets[c]:
                return self.domain_free[buckets[c][0]][:n], 0
        ci = self.ci
        doms = self._type_dom[type_index]
        free = self.dom_free[doms]
        usable = free // tp * tp
        nodes = self._type_dom_node[type_index]
        node_free = np.bincount(nodes, weights=usable, minlength=len(ci.instance.nodes)).astype(np.int64)
        # tier 1: one node
        ok_nodes = node_free >= n
        if ok_nodes.any():
            v = int(np.argmin(np.where(ok_nodes, node_free, _BIG)))
            return self._take([d for d in self.node_domains[v] if len(self.domain_free[d]) >= tp], n, tp), 1
        has = np.flatnonzero(node_free > 0)
        for tier, level in ((2, ci.node_rack), (3, ci.node_pod), (4, None)):
            group = np.zeros(len(has), dtype=np.int64) if level is None else level[has]
            sums = np.bincount(group, weights=node_free[has]).astype(np.int64)
            ok_groups = sums >= n
            if ok_groups.any():
                k = int(np.argmin(np.where(ok_groups, sums, _BIG)))
                members = has[group == k]
                # fewest nodes: fullest-free nodes first
                members = members[np.lexsort((members, -node_free[members]))]
                doms_sorted = [d for v in members for d in self._node_doms(int(v), tp)]
                return self._take(doms_sorted, n, tp), tier
        return None

    def _node_doms(self, v: int, tp: int) -> list[int]:
        """Domains of node ``v`` with at least ``tp`` free GPUs, most free first (stable)."""
        return sorted((d for d in self.node_domains[v] if len(self.domain_free[d]) >= tp), key=self._free_desc)

    def _free_desc(self, d: int) -> int:
        return -len(self.domain_free[d])

    def _take(self, domains: list[int], n: int, tp: int) -> list[int]:
        out: list[int] = []
        for d in domains:
            free = self.domain_free[d]
            k = min(len(free) // tp * tp, n - len(out))
            out.extend(free[:k])
            if len(out) == n:
                return out
        raise AssertionError("capacity accounting is inconsistent")  # pragma: no cover

    def find_fraction(
        self, type_indices: set[int], milli: int, mem_gib: float, mem_cap: dict[int, float]
    ) -> int | None:
        """Best-fit GPU for a fractional share: the most loaded shared GPU that fits,
        else a free GPU on the busiest node. None when nothing fits.

        Shared GPUs are scanned by load, most loaded first, among the GPUs already holding
        fractional work of an allowed type, and nodes by their number of GPUs holding work,
        without Python loops over all GPUs or nodes. Ties go to the lowest GPU (node) index.
        """
        best: tuple[int, int] | None = None  # (-load, GPU)
        for t in type_indices:
            by_load = self._frac_by_load.get(t)
            if not by_load:
                continue
            cap = mem_cap.get(t, 0.0) + 1e-9
            mem = self._mem_used
            loads = self._frac_loads[t]
            for i in range(bisect_left(loads, 1000 - milli + 1) - 1, -1, -1):
                load = loads[i]
                if best is not None and load < -best[0]:
                    break
                g = next((g for g in by_load[load] if mem[g] + mem_gib <= cap), None)
                if g is not None:
                    if best is None or (-load, g) < best:
                        best = (-load, g)
                    break
        if best is not None:
            return best[1]
        pick: tuple[int, int] | None = None  # (-node_used, node)
        for t in type_indices:
            by_used = self._node_by_used.get(t)
            if not by_used or not mem_cap.get(t, 0.0) >= mem_gib:
                continue
            used = self._node_useds[t][-1]
            cand = (-used, by_used[used][0])
            if pick is None or cand < pick:
                pick = cand
        if pick is None:
            return None
        v = pick[1]
        return min(min(self.domain_free[d]) for d in self.node_domains[v] if self.domain_free[d])

    # ------------------------------------------------------------------ updates
    @staticmethod
    def _move(by_key: dict[int, dict[int, list[int]]], keys: dict[int, list[int]], t: int, item: int,
              old: int | None, new: int | None) -> None:
        """Move ``item`` of type ``t`` from bucket ``old`` to bucket ``new`` (None: absent)."""
        buckets = by_key[t]
        if old is not None:
            lst = buckets[old]
            del lst[bisect_left(lst, item)]
            if not lst:
                del buckets[old]
                ks = keys[t]
                del ks[bisect_left(ks, old)]
        if new is not None:
            target = buckets.get(new)
            if target is None:
                buckets[new] = [item]
                insort(keys[t], new)
            else:
                insort(target, item)

    def _take_from_domain(self, g: int) -> None:
        """Remove GPU ``g`` from its domain's free list and every count above it."""
        d = self._gpu_domain[g]
        free = self.domain_free[d]
        c = len(free)
        free.remove(g)
        t = self._dom_type[d]
        buckets = self._buckets[t]
        lst = buckets[c]
        del lst[bisect_left(lst, d)]
        insort(buckets[c - 1], d)
        self._type_free[t] -= 1
        self.dom_free[d] -= 1
        v = self._gpu_node[g]
        used = int(self.node_used[v])
        self.node_used[v] += 1
        self.node_free[v] -= 1
        self._move(self._node_by_used, self._node_useds, t, v, used, used + 1 if self.node_free[v] > 0 else None)

    def take_whole(self, gpus: list[int]) -> None:
        """Mark ``gpus`` (free, unshared) as used whole."""
        for g in gpus:
            assert not self.whole_used[g] and self.milli_used[g] == 0
            self.whole_used[g] = True
            self._take_from_domain(g)

    def take_fraction(self, g: int, milli: int, mem_gib: float) -> None:
        """Add a fractional share of ``milli`` milli-GPU and ``mem_gib`` GiB to GPU ``g``."""
        t = self._gpu_type[g]
        old: int | None = int(self.milli_used[g])
        if g not in self._shared:
            assert old == 0
            self._take_from_domain(g)
            self._shared.add(g)
            old = None
        self.milli_used[g] += milli
        self.mem_used[g] += mem_gib
        self._mem_used[g] = float(self.mem_used[g])
        self._move(self._frac_by_load, self._frac_loads, t, g, old, int(self.milli_used[g]))

    def is_free(self, gpus: list[int]) -> bool:
        """True when none of ``gpus`` holds any work."""
        return not any(self.whole_used[g] or self.milli_used[g] for g in gpus)
