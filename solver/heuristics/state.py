"""Mutable free-capacity bookkeeping shared by the placement heuristics.

:class:`ClusterState` tracks free whole GPUs per NVLink domain, node, rack and pod,
and fractional shares per GPU, and finds the *tightest* placement of a gang:
one NVLink domain, else one node, else one rack, else one pod, else anywhere, each
level choosing the candidate with the least sufficient free capacity (best fit).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import numpy.typing as npt

from solver.compiled import CompiledInstance

__all__ = ["ClusterState"]

_BIG = np.int64(1) << 40


class ClusterState:
    """Free capacity of a cluster during a greedy pass (GPU indices of the compiled form)."""

    def __init__(self, ci: CompiledInstance) -> None:
        self.ci = ci
        n_gpus = len(ci.gpu_ids)
        self.whole_used = np.zeros(n_gpus, dtype=bool)
        self.milli_used = np.zeros(n_gpus, dtype=np.int64)
        self.mem_used = np.zeros(n_gpus, dtype=np.float64)
        self.domain_free: list[list[int]] = [list(d) for d in ci.domains]  # free GPU indices per domain
        inst = ci.instance
        self.node_used = np.zeros(len(inst.nodes), dtype=np.int64)  # GPUs holding any work
        # domains of each type, and nodes/racks/pods of each type
        self.type_domains: dict[int, list[int]] = defaultdict(list)
        for d, dom in enumerate(ci.domains):
            self.type_domains[int(ci.gpu_type[dom[0]])].append(d)
        self.node_domains: dict[int, list[int]] = defaultdict(list)
        for d, v in enumerate(ci.domain_node):
            self.node_domains[v].append(d)
        self.dom_free = np.array([len(d) for d in ci.domains], dtype=np.int64)  # free GPUs per domain
        self._type_dom = {t: np.array(ds, dtype=np.int64) for t, ds in self.type_domains.items()}
        dom_node = np.asarray(ci.domain_node, dtype=np.int64)
        self._type_dom_node = {t: dom_node[ds] for t, ds in self._type_dom.items()}
        # per set of allowed types: (GPU mask, node mask)
        self._type_mask: dict[frozenset[int], tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]] = {}
        self.node_free = np.array([n.gpu_count for n in inst.nodes], dtype=np.int64)  # GPUs with no work
        self._node_type = np.array([ci.type_index[n.gpu_type] for n in inst.nodes], dtype=np.int64)
        self._shared: set[int] = set()  # GPUs holding fractional work
        self._shared_idx: npt.NDArray[np.int64] | None = None  # sorted(self._shared), rebuilt when it grows

    # ------------------------------------------------------------------ queries
    def free_in(self, domains: list[int], tp: int) -> int:
        """GPUs usable in ``tp``-sized groups over ``domains``."""
        return sum(len(self.domain_free[d]) // tp * tp for d in domains)

    def find_gang(self, type_index: int, n: int, tp: int) -> list[int] | None:
        """Tightest set of ``n`` free GPUs of one type in ``tp``-groups, or None.

        Vectorized over the type's NVLink domains (free counts in ``dom_free``): O(domains)
        array work per call. Ties go to the lowest domain, node, rack or pod index.
        """
        ci = self.ci
        doms = self._type_dom.get(type_index)
        if doms is None:
            return None
        free = self.dom_free[doms]
        # tier 0: one NVLink domain, best fit (fewest free GPUs that suffice)
        ok = free >= n
        if ok.any():
            best = int(doms[int(np.argmin(np.where(ok, free, _BIG)))])
            return self.domain_free[best][:n]
        usable = free // tp * tp
        nodes = self._type_dom_node[type_index]
        node_free = np.bincount(nodes, weights=usable, minlength=len(ci.instance.nodes)).astype(np.int64)
        # tier 1: one node
        ok_nodes = node_free >= n
        if ok_nodes.any():
            v = int(np.argmin(np.where(ok_nodes, node_free, _BIG)))
            return self._take([d for d in self.node_domains[v] if len(self.domain_free[d]) >= tp], n, tp)
        has = np.flatnonzero(node_free > 0)
        for level in (ci.node_rack, ci.node_pod, None):
            group = np.zeros(len(has), dtype=np.int64) if level is None else level[has]
            sums = np.bincount(group, weights=node_free[has]).astype(np.int64)
            ok_groups = sums >= n
            if ok_groups.any():
                k = int(np.argmin(np.where(ok_groups, sums, _BIG)))
                members = has[group == k]
                # fewest nodes: fullest-free nodes first
                members = members[np.lexsort((members, -node_free[members]))]
                doms_sorted = [d for v in members for d in self._node_doms(int(v), tp)]
                return self._take(doms_sorted, n, tp)
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

        Shared GPUs are scanned among the GPUs already holding fractional work (vectorized)
        and free GPUs per node (``node_free``), without Python loops over GPUs. Ties go to
        the lowest GPU index.
        """
        ci = self.ci
        key = frozenset(type_indices)
        masks = self._type_mask.get(key)
        if masks is None:
            masks = (np.isin(ci.gpu_type, list(type_indices)), np.isin(self._node_type, list(type_indices)))
            self._type_mask[key] = masks
        type_mem = np.array([mem_cap.get(k, 0.0) for k in range(len(ci.instance.gpu_types))])
        if self._shared:
            if self._shared_idx is None or len(self._shared_idx) != len(self._shared):
                self._shared_idx = np.array(sorted(self._shared), dtype=np.int64)
            idx = self._shared_idx
            used = self.milli_used[idx]
            fit = (masks[0][idx] & ~self.whole_used[idx] & (used + milli <= 1000)
                   & (self.mem_used[idx] + mem_gib <= type_mem[ci.gpu_type[idx]] + 1e-9))
            if fit.any():
                idx = idx[fit]
                return int(idx[np.argmax(self.milli_used[idx])])
        mask = masks[1]
        node_mem = type_mem[self._node_type]
        cand = np.flatnonzero(mask & (self.node_free > 0) & (node_mem >= mem_gib))
        if not len(cand):
            return None
        v = int(cand[np.argmax(self.node_used[cand])])
        return min(min(self.domain_free[d]) for d in self.node_domains[v] if self.domain_free[d])

    # ------------------------------------------------------------------ updates
    def take_whole(self, gpus: list[int]) -> None:
        ci = self.ci
        for g in gpus:
            assert not self.whole_used[g] and self.milli_used[g] == 0
            self.whole_used[g] = True
            d = int(ci.gpu_domain[g])
            self.domain_free[d].remove(g)
            self.dom_free[d] -= 1
            self.node_used[int(ci.gpu_node[g])] += 1
            self.node_free[int(ci.gpu_node[g])] -= 1

    def take_fraction(self, g: int, milli: int, mem_gib: float) -> None:
        ci = self.ci
        if self.milli_used[g] == 0:
            d = int(ci.gpu_domain[g])
            self.domain_free[d].remove(g)
            self.dom_free[d] -= 1
            self.node_used[int(ci.gpu_node[g])] += 1
            self.node_free[int(ci.gpu_node[g])] -= 1
            self._shared.add(g)
        self.milli_used[g] += milli
        self.mem_used[g] += mem_gib

    def is_free(self, gpus: list[int]) -> bool:
        return not any(self.whole_used[g] or self.milli_used[g] for g in gpus)
