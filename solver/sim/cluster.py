"""The simulated cluster: a cluster spec file or a trace's node table, mapped to GPU types.

A trace names its GPUs in its own way. :data:`TRACE_GPU_TYPES` maps each trace name to a
catalog type (``data/catalog/gpu_types.yaml``) and, where the trace's model differs from the
catalog entry or is anonymised, to an *ad-hoc* :class:`~solver.model.GpuType` derived from a
catalog base with its own name and memory:

==============  ===========================  ==============================================
trace name      simulated type               note
==============  ===========================  ==============================================
``V100``        ``V100``                     catalog (32 GiB SXM2)
``V100M32``     ``V100``                     catalog
``V100M16``     ``V100M16`` (ad hoc)         V100 with 16 GiB
``P100``        ``P100``                     catalog
``T4``          ``T4``                       catalog
``A10``         ``A10``                      catalog
``K80``         ``K80``                      catalog
``G2``, ``G3``  ``G2``, ``G3`` (ad hoc)      anonymised in the openb trace; compute and
                                             power of a T4 assumed, memory 16 GiB
``MISC``        ``MISC`` (ad hoc)            PAI's mixed bucket; T4 figures assumed
``A100``        ``A100-80GB``                generic spelling in job constraints
``H100``        ``H100-SXM``                 generic spelling in job constraints
``v100``...     catalog upper case           Gavel spells types in lower case
``""`` + mem    ``GPU-<mem>GB`` (ad hoc)     unnamed types (Philly): P100 compute and
                                             power, the node table's memory
==============  ===========================  ==============================================

Trace nodes have no rack or pod: :func:`cluster_from_node_table` groups consecutive nodes
into racks of ``nodes_per_rack`` (default 8) and pods of ``racks_per_pod`` (default 4)
racks, with one NVLink domain per node (all GPUs of a trace node form one domain). CPU-only
nodes (0 GPUs) are kept only for their CPU and memory when the caller asks for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Final

import numpy as np
import pandas as pd

from solver.fileformat import load_catalog, load_cluster_spec, load_llm_models
from solver.model import GpuType, LinkSpec, LlmModel, Node

__all__ = [
    "TRACE_GPU_TYPES",
    "SimCluster",
    "cluster_from_node_table",
    "load_sim_cluster",
    "resolve_gpu_type",
]


@dataclass(frozen=True)
class _TypeMap:
    """How one trace GPU name becomes a simulated type: a catalog base, renamed if ad hoc."""

    base: str
    name: str | None = None  # None: the catalog type itself
    memory_gib: float | None = None


#: Trace GPU name -> simulated type (see the module docstring).
TRACE_GPU_TYPES: Final[Mapping[str, _TypeMap]] = MappingProxyType({
    "V100": _TypeMap("V100"),
    "V100M32": _TypeMap("V100"),
    "V100M16": _TypeMap("V100", "V100M16", 16.0),
    "P100": _TypeMap("P100"),
    "T4": _TypeMap("T4"),
    "A10": _TypeMap("A10"),
    "K80": _TypeMap("K80"),
    "G2": _TypeMap("T4", "G2", 16.0),
    "G3": _TypeMap("T4", "G3", 16.0),
    "MISC": _TypeMap("T4", "MISC", 16.0),
    "A100": _TypeMap("A100-80GB"),
    "H100": _TypeMap("H100-SXM"),
})
#: Catalog base of GPU types a trace leaves unnamed (Philly): the type is named by its memory.
UNNAMED_BASE: Final[str] = "P100"


def resolve_gpu_type(trace_name: str, memory_gib: float, catalog: Mapping[str, GpuType]) -> GpuType:
    """The simulated :class:`GpuType` of a trace GPU name (case-insensitive).

    Parameters
    ----------
    trace_name
        GPU name as the trace spells it (``""`` when the trace does not record it).
    memory_gib
        Per-GPU memory from the node table (NaN if unknown); names an unnamed type.
    catalog
        Catalog types by name.

    Raises
    ------
    ValueError
        For a name neither in :data:`TRACE_GPU_TYPES` nor in the catalog.
    """
    upper = {k.upper(): v for k, v in TRACE_GPU_TYPES.items()}
    cat_upper = {k.upper(): t for k, t in catalog.items()}
    key = trace_name.strip().upper()
    if not key:
        mem = 0.0 if math.isnan(memory_gib) else memory_gib
        base = catalog[UNNAMED_BASE]
        return replace(base, name=f"GPU-{mem:g}GB", memory_gib=mem or base.memory_gib)
    if key in upper:
        m = upper[key]
        base = catalog[m.base]
        if m.name is None:
            return base
        return replace(base, name=m.name, memory_gib=m.memory_gib or base.memory_gib)
    if key in cat_upper:
        return cat_upper[key]
    raise ValueError(f"GPU type '{trace_name}' is neither a known trace name ({sorted(TRACE_GPU_TYPES)}) "
                     f"nor a catalog type ({sorted(catalog)})")


@dataclass(frozen=True)
class SimCluster:
    """Nodes, GPU types and links of the simulated cluster, plus optional CPU/memory capacity.

    ``node_cpu_milli`` and ``node_memory_mib`` (one entry per node, ``inf`` when unknown) let
    traces with CPU/memory requests (openb) be placed as their own simulator did.
    ``aliases`` maps trace GPU names to simulated type names (for the jobs' ``gpu_types``).
    """

    nodes: tuple[Node, ...]
    gpu_types: tuple[GpuType, ...]
    links: LinkSpec = field(default_factory=LinkSpec)
    llm_models: tuple[LlmModel, ...] = ()
    node_cpu_milli: tuple[float, ...] = ()
    node_memory_mib: tuple[float, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)

    @property
    def num_gpus(self) -> int:
        return sum(n.gpu_count for n in self.nodes)

    def type_name(self, trace_name: str) -> str | None:
        """Simulated type name of a trace GPU name, or None if the cluster has no such type."""
        key = trace_name.strip().upper()
        for alias, name in self.aliases.items():
            if alias.upper() == key:
                return name
        names = {t.name.upper(): t.name for t in self.gpu_types}
        if key in names:
            return names[key]
        for alias, m in TRACE_GPU_TYPES.items():
            if alias.upper() == key:
                target = (m.name or m.base).upper()
                return names.get(target)
        return None


def cluster_from_node_table(
    table: pd.DataFrame,
    *,
    nodes_per_rack: int = 8,
    racks_per_pod: int = 4,
    host_power_w: float = 400.0,
    keep_cpu_nodes: bool = False,
    catalog: tuple[GpuType, ...] | None = None,
) -> SimCluster:
    """A :class:`SimCluster` from a canonical node table.

    Parameters
    ----------
    table
        Canonical node table (``node_id, gpu_type, num_gpus, gpu_memory_gib, cpu_milli,
        memory_mib``).
    nodes_per_rack, racks_per_pod
        Grouping of consecutive nodes into racks and pods (traces record neither).
    host_power_w
        Non-GPU power of a powered node (W); an assumption for a generic 2-socket server.
    keep_cpu_nodes
        Keep nodes without GPUs (else they are dropped).
    catalog
        GPU types to map to (the bundled catalog by default).
    """
    cat = {t.name: t for t in (catalog if catalog is not None else load_catalog())}
    types: dict[str, GpuType] = {}
    aliases: dict[str, str] = {}
    nodes: list[Node] = []
    cpu: list[float] = []
    mem: list[float] = []
    k = 0
    ids = [str(x) for x in table["node_id"].to_numpy()]
    names = [str(x) for x in table["gpu_type"].to_numpy()]
    counts = table["num_gpus"].to_numpy(dtype=np.int64)
    mems = table["gpu_memory_gib"].to_numpy(dtype=float)
    cpus = table["cpu_milli"].to_numpy(dtype=float)
    rams = table["memory_mib"].to_numpy(dtype=float)
    for node_id, name, n_raw, mem_gib, cpu_m, ram in zip(ids, names, counts, mems, cpus, rams, strict=True):
        n = int(n_raw)
        if n == 0 and not keep_cpu_nodes:
            continue
        t = resolve_gpu_type(name, float(mem_gib), cat)
        if t.name in types and types[t.name] != t:
            raise ValueError(f"node {node_id}: GPU type {t.name} maps to two different definitions")
        types[t.name] = t
        aliases[name or t.name] = t.name
        rack = k // nodes_per_rack
        pod = rack // racks_per_pod
        domains = (tuple(range(n)),) if n else ()
        nodes.append(Node(id=node_id, gpu_type=t.name, gpu_count=n, nvlink_domains=domains,
                          numa_domains=domains, host_power_w=host_power_w, rack=f"rack{rack}", pod=f"pod{pod}"))
        cpu.append(float(cpu_m) if math.isfinite(cpu_m) else math.inf)
        mem.append(float(ram) if math.isfinite(ram) else math.inf)
        k += 1
    if not nodes:
        raise ValueError("the node table has no GPU nodes")
    return SimCluster(tuple(nodes), tuple(types.values()), LinkSpec(), load_llm_models(),
                      tuple(cpu), tuple(mem), aliases)


def _openb(path: Path) -> pd.DataFrame:
    from solver.traces import load_openb_nodes
    return load_openb_nodes(path)


def _philly(path: Path) -> pd.DataFrame:
    from solver.traces import load_philly_machines
    return load_philly_machines(path)


def _pai(path: Path) -> pd.DataFrame:
    from solver.traces import load_pai_machines
    return load_pai_machines(path)


#: ``FORMAT:PATH`` node-table formats accepted by ``--cluster``.
NODE_TABLE_LOADERS: Final[Mapping[str, Callable[[Path], pd.DataFrame]]] = MappingProxyType({
    "openb-nodes": _openb,
    "philly-machines": _philly,
    "pai": _pai,
    "pai-machines": _pai,
})


def load_sim_cluster(spec: str | Path) -> SimCluster:
    """The cluster named by ``--cluster``: a spec file, or ``FORMAT:PATH`` of a node table.

    Formats: see :data:`NODE_TABLE_LOADERS`. A plain path is read with
    :func:`solver.fileformat.load_cluster_spec` (YAML/JSON).
    """
    text = str(spec)
    fmt, sep, rest = text.partition(":")
    if sep and fmt.lower() in NODE_TABLE_LOADERS:
        path = Path(rest)
        if not path.exists():
            raise ValueError(f"cluster {text!r}: file not found")
        return cluster_from_node_table(NODE_TABLE_LOADERS[fmt.lower()](path))
    path = Path(text)
    if not path.exists():
        raise ValueError(f"cluster {text!r}: file not found (or unknown node-table format; "
                         f"known: {sorted(NODE_TABLE_LOADERS)})")
    catalog = load_catalog()
    nodes, links = load_cluster_spec(path, catalog)
    used = {n.gpu_type for n in nodes}
    types = tuple(t for t in catalog if t.name in used)
    inf = tuple(math.inf for _ in nodes)
    return SimCluster(tuple(nodes), types, links, load_llm_models(), inf, inf, {})
