"""Mutable free-capacity bookkeeping shared by the placement heuristics.

:class:`ClusterState` tracks free whole GPUs per NVLink domain, node, rack and pod,
and fractional shares per GPU, and finds the *tightest* placement of a gang:
one NVLink domain, else one node, else one rack, else one pod, else anywhere, each
level choosing the candidate with the least sufficient free capacity (best fit).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from solver.compiled import CompiledInstance

__all__ = ["ClusterState"]


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

    # ------------------------------------------------------------------ queries
    def free_in(self, domains: list[int], tp: int) -> int:
        """GPUs usable in ``tp``-sized groups over ``domains``."""
        return sum(len(self.domain_free[d]) // tp * tp for d in domains)

    def find_gang(self, type_index: int, n: int, tp: int) -> list[int] | None:
        """Tightest set of ``n`` free GPUs of one type in ``tp``-groups, or None."""
        ci = self.ci
        doms = self.type_domains.get(type_index, [])
        if not doms:
            return None
        # tier 0: one NVLink domain, best fit
        best, best_free = -1, 1 << 30
        for d in doms:
            f = len(self.domain_free[d])
            if n <= f < best_free:
                best, best_free = d, f
                if f == n:
                    break
        if best >= 0:
            return self.domain_free[best][:n]
        # group candidate domains by node, rack, pod
        by_node: dict[int, list[int]] = defaultdict(list)
        for d in doms:
            if len(self.domain_free[d]) >= tp:
                by_node[ci.domain_node[d]].append(d)
        # tier 1: one node
        cand = [(self.free_in(ds, tp), v) for v, ds in by_node.items()]
        fits = [(f, v) for f, v in cand if f >= n]
        if fits:
            _, v = min(fits)
            return self._take(by_node[v], n, tp)
        node_free = dict((v, f) for f, v in cand)
        for level in (ci.node_rack, ci.node_pod, None):
            groups: dict[int, list[int]] = defaultdict(list)
            for v in by_node:
                groups[0 if level is None else int(level[v])].append(v)
            fits = [(sum(node_free[v] for v in vs), k) for k, vs in groups.items()]
            fits = [(f, k) for f, k in fits if f >= n]
            if fits:
                _, k = min(fits)
                # fewest nodes: fullest-free nodes first
                nodes = sorted(groups[k], key=lambda v: (-node_free[v], v))
                doms_sorted = [d for v in nodes for d in sorted(by_node[v], key=self._free_desc)]
                return self._take(doms_sorted, n, tp)
        return None

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
        else a free GPU on the busiest node. None when nothing fits."""
        ci = self.ci
        ok = ~self.whole_used & np.isin(ci.gpu_type, list(type_indices))
        share = ok & (self.milli_used > 0) & (self.milli_used + milli <= 1000)
        if share.any():
            idx = np.flatnonzero(share)
            mems = np.array([mem_cap[int(ci.gpu_type[g])] for g in idx])
            idx = idx[self.mem_used[idx] + mem_gib <= mems + 1e-9]
            if len(idx):
                return int(idx[np.argmax(self.milli_used[idx])])
        free = np.flatnonzero(ok & (self.milli_used == 0))
        if not len(free):
            return None
        mems = np.array([mem_cap[int(ci.gpu_type[g])] for g in free])
        free = free[mems >= mem_gib]
        if not len(free):
            return None
        busy = self.node_used[ci.gpu_node[free]]
        return int(free[np.argmax(busy)])

    # ------------------------------------------------------------------ updates
    def take_whole(self, gpus: list[int]) -> None:
        ci = self.ci
        for g in gpus:
            assert not self.whole_used[g] and self.milli_used[g] == 0
            self.whole_used[g] = True
            self.domain_free[int(ci.gpu_domain[g])].remove(g)
            self.node_used[int(ci.gpu_node[g])] += 1

    def take_fraction(self, g: int, milli: int, mem_gib: float) -> None:
        ci = self.ci
        if self.milli_used[g] == 0:
            self.domain_free[int(ci.gpu_domain[g])].remove(g)
            self.node_used[int(ci.gpu_node[g])] += 1
        self.milli_used[g] += milli
        self.mem_used[g] += mem_gib

    def is_free(self, gpus: list[int]) -> bool:
        return not any(self.whole_used[g] or self.milli_used[g] for g in gpus)
