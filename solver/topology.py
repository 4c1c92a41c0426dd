"""Cluster topology: node templates, cluster specs, the networkx graph and locality tiers.

The topology is a tree ``cluster -> pod -> rack -> node -> NVLink domain -> GPU`` whose
edges carry the bandwidth of the link they model (GB/s per GPU, one direction). The
locality tier of a set of GPUs is the level of their lowest common ancestor in that
tree, so it follows from the graph and not from hard-coded rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import networkx as nx

from solver.model import TIER_NAMES, GpuType, LinkSpec, Node

__all__ = [
    "TEMPLATES",
    "NodeTemplate",
    "TopologyIndex",
    "build_graph",
    "tier_of",
]


@dataclass(frozen=True)
class NodeTemplate:
    """A common machine: GPU type and count, NVLink and NUMA groups, host power.

    ``host_power_w`` is the average non-GPU power of a powered server; it is an
    assumption derived from the server TDP minus the GPU TDPs at 50% utilization
    (research F.1: DGX-H100 10.2 kW - 5.6 kW, DGX-A100 6.5 kW - 3.2 kW, SplitwiseSim).
    """

    name: str
    gpu_type: str
    gpu_count: int
    nvlink_domains: tuple[tuple[int, ...], ...]
    numa_domains: tuple[tuple[int, ...], ...]
    host_power_w: float
    description: str


def _all(n: int) -> tuple[tuple[int, ...], ...]:
    return (tuple(range(n)),)


def _single(n: int) -> tuple[tuple[int, ...], ...]:
    return tuple((i,) for i in range(n))


def _halves(n: int) -> tuple[tuple[int, ...], ...]:
    return (tuple(range(n // 2)), tuple(range(n // 2, n)))


TEMPLATES: dict[str, NodeTemplate] = {
    t.name: t
    for t in (
        NodeTemplate("dgx-h100", "H100-SXM", 8, _all(8), _halves(8), 2300.0,
                     "DGX/HGX H100: 8 H100 SXM on NVSwitch (one 8-GPU NVLink domain)"),
        NodeTemplate("hgx-h200", "H200", 8, _all(8), _halves(8), 2300.0,
                     "HGX H200: 8 H200 on NVSwitch"),
        NodeTemplate("dgx-a100-80", "A100-80GB", 8, _all(8), _halves(8), 1650.0,
                     "DGX A100 80GB: 8 A100 SXM4 on NVSwitch"),
        NodeTemplate("dgx-a100-40", "A100-40GB", 8, _all(8), _halves(8), 1650.0,
                     "DGX A100 40GB: 8 A100 SXM4 on NVSwitch"),
        NodeTemplate("dgx1-v100", "V100", 8, _halves(8), _halves(8), 1100.0,
                     "DGX-1 V100: hybrid cube-mesh, modelled as two fully linked quads"),
        NodeTemplate("mi300x-8", "MI300X", 8, _all(8), _halves(8), 2300.0,
                     "8 MI300X OAM on Infinity Fabric (all-to-all)"),
        NodeTemplate("pcie-l4-8", "L4", 8, _single(8), _halves(8), 450.0,
                     "PCIe box with 8 L4 (no NVLink)"),
        NodeTemplate("pcie-t4-4", "T4", 4, _single(4), _halves(4), 350.0,
                     "PCIe box with 4 T4 (no NVLink)"),
        NodeTemplate("pcie-a10-4", "A10", 4, _single(4), _halves(4), 400.0,
                     "PCIe box with 4 A10 (no NVLink)"),
    )
}

#: Rack templates: a list of (node template, count); racks are rail-optimized leaves.
RACK_TEMPLATES: dict[str, tuple[tuple[str, int], ...]] = {
    "rail-h100-rack": (("dgx-h100", 4),),
    "rail-a100-rack": (("dgx-a100-80", 4),),
    "inference-l4-rack": (("pcie-l4-8", 8),),
}


def build_graph(nodes: Sequence[Node], gpu_types: dict[str, GpuType], links: LinkSpec) -> nx.Graph:
    """The topology tree as an undirected networkx graph.

    Graph nodes are strings ``cluster``, ``pod:<id>``, ``rack:<id>``, ``node:<id>``,
    ``nvlink:<node>:<k>`` and ``gpu:<node>/<i>``, each with a ``level`` attribute
    (``cluster``, ``pod``, ``rack``, ``node``, ``nvlink``, ``gpu``). Edges carry
    ``bandwidth_gbps``: NVLink (or PCIe for singleton domains) between a GPU and its
    domain, PCIe between a domain and its node, leaf between node and rack, spine
    between rack and pod, core between pod and cluster. GPU nodes carry their
    ``gpu_type`` and ``numa`` (index of the node's NUMA / PCIe-root group).
    """
    # nodes and edges are collected in the order of a node-by-node construction and added in bulk
    nodes_out: list[tuple[str, dict[str, object]]] = [("cluster", {"level": "cluster"})]
    edges: list[tuple[str, str, dict[str, float]]] = []
    seen: set[str] = set()
    for node in nodes:
        pod, rack, nid = f"pod:{node.pod}", f"rack:{node.rack}", f"node:{node.id}"
        if pod not in seen:
            seen.add(pod)
            nodes_out.append((pod, {"level": "pod"}))
            edges.append(("cluster", pod, {"bandwidth_gbps": links.core_bw_gbps}))
        if rack not in seen:
            seen.add(rack)
            nodes_out.append((rack, {"level": "rack"}))
            edges.append((pod, rack, {"bandwidth_gbps": links.spine_bw_gbps}))
        nodes_out.append((nid, {"level": "node", "gpu_type": node.gpu_type, "host_power_w": node.host_power_w}))
        edges.append((rack, nid, {"bandwidth_gbps": links.leaf_bw_gbps}))
        gtype = gpu_types.get(node.gpu_type)
        nv_bw = gtype.nvlink_bw_gbps if gtype is not None else 0.0
        numa_of = {i: k for k, dom in enumerate(node.numa_domains) for i in dom}
        for k, domain in enumerate(node.nvlink_domains):
            dom = f"nvlink:{node.id}:{k}"
            nodes_out.append((dom, {"level": "nvlink"}))
            edges.append((nid, dom, {"bandwidth_gbps": links.pcie_bw_gbps}))
            bw = nv_bw if len(domain) > 1 and nv_bw > 0 else links.pcie_bw_gbps
            for i in domain:
                gpu = f"gpu:{node.id}/{i}"
                nodes_out.append((gpu, {"level": "gpu", "gpu_type": node.gpu_type, "numa": numa_of.get(i, 0)}))
                edges.append((dom, gpu, {"bandwidth_gbps": bw}))
    g = nx.Graph()
    g.add_nodes_from(nodes_out)
    g.add_edges_from(edges)
    return g


class TopologyIndex:
    """Ancestor chains of every GPU, read from the topology graph.

    ``chain[gpu_id]`` lists the GPU's ancestors from its NVLink domain up to the
    cluster root; the tier of a GPU set is the position in :data:`TIER_NAMES` of the
    level of their lowest common ancestor.
    """

    def __init__(self, graph: nx.Graph) -> None:
        self.level_of: dict[str, str] = {n: d["level"] for n, d in graph.nodes(data=True)}
        # breadth-first from the root (the parents networkx's bfs_predecessors gives); the chain of
        # a graph node is itself and its ancestors, shared by its children
        adj = dict(graph.adjacency())
        parent: dict[str, str] = {}
        up: dict[str, tuple[str, ...]] = {"cluster": ("cluster",)}
        queue = ["cluster"]
        for u in queue:
            above = up[u]
            for v in adj[u]:
                if v not in up:
                    parent[v] = u
                    up[v] = (v, *above)
                    queue.append(v)
        self.chain: dict[str, tuple[str, ...]] = {}
        for n, level in self.level_of.items():
            if level == "gpu":
                self.chain[n[len("gpu:"):]] = up[parent[n]]

    def tier(self, gpu_ids: Iterable[str]) -> int:
        """Locality tier (index into :data:`TIER_NAMES`) of a non-empty GPU set."""
        chains = [self.chain[g] for g in gpu_ids]
        first = chains[0]
        for depth, ancestor in enumerate(first):
            if all(c[depth] == ancestor for c in chains[1:]):
                return TIER_NAMES.index(self.level_of[ancestor])
        return len(TIER_NAMES) - 1  # pragma: no cover - the root is common to all

    def domain(self, gpu_id: str) -> str:
        """The NVLink domain graph node of ``gpu_id``."""
        return self.chain[gpu_id][0]


def tier_of(graph: nx.Graph, gpu_ids: Iterable[str]) -> int:
    """Convenience wrapper: tier of ``gpu_ids`` in ``graph`` (builds an index)."""
    return TopologyIndex(graph).tier(gpu_ids)
