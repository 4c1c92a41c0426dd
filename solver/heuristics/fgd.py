r"""Fragmentation gradient descent (FGD) for fractional-GPU tasks.

After Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing Workloads with
Fragmentation Gradient Descent" (USENIX ATC'23), implemented from the paper's idea.

The *fragmentation* of a node with respect to a workload is the expected amount of its
free GPU capacity that a task drawn from the workload cannot use. With task classes
:math:`m` of popularity :math:`p_m` (:class:`TaskClass`) and free capacity
:math:`f_g \in [0, 1000]` milli-GPU on each GPU :math:`g` of node :math:`n`:

.. math::
    F_n = \sum_m p_m \, F_n(m), \qquad
    F_n(m) = \begin{cases}
        \sum_g f_g & \text{the node's GPU type is not allowed for } m \\
        \sum_g f_g \, [f_g < r_m] & m \text{ asks for a share } r_m < 1000 \\
        \sum_g f_g \, [f_g < 1000] & m \text{ asks for } k_m \text{ whole GPUs and }
            |\{g: f_g = 1000\}| \ge \min(k_m, G_n) \\
        \sum_g f_g & \text{otherwise}
    \end{cases}

(:math:`G_n` GPUs on the node; a gang larger than a node is judged on its per-node
share). FGD places each task on the GPU whose node's fragmentation grows least
(steepest descent of :math:`\sum_n F_n`); only the chosen node changes, so the
increase is computed per candidate GPU in a few vectorized passes.

Complexity: O(classes x GPUs) per task (candidate GPUs that are interchangeable, same
node and same free share, are evaluated once).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from solver.compiled import CompiledInstance
from solver.heuristics.greedy import FractionFinder
from solver.heuristics.state import ClusterState
from solver.model import FractionalTask

__all__ = ["FULL_MILLI", "TaskClass", "fgd_finder", "fgd_select", "fragmentation", "workload_classes"]

FULL_MILLI = 1000
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TaskClass:
    """One kind of request of the workload.

    ``milli`` is the share of one GPU (``1000`` for whole-GPU work), ``gpus`` the number
    of whole GPUs (1 for a share), ``types`` the allowed GPU type indices (None: any)
    and ``weight`` the popularity :math:`p_m` (the weights of a workload sum to 1).
    """

    milli: int
    gpus: int
    types: frozenset[int] | None
    weight: float

    def allows(self, type_index: int) -> bool:
        return self.types is None or type_index in self.types


def workload_classes(ci: CompiledInstance) -> tuple[TaskClass, ...]:
    """The task classes of the instance's jobs (running and pending), weighted by count.

    A job's class is its request (share, or the smallest gang of its options) and the
    GPU types of its options; jobs without options are left out.
    """
    counts: Counter[tuple[int, int, frozenset[int]]] = Counter()
    for j, job in enumerate(ci.jobs):
        opts = ci.options[j]
        if not opts:
            continue
        types = frozenset(o.type_index for o in opts)
        if isinstance(job, FractionalTask):
            counts[(job.gpu_milli, 1, types)] += 1
        else:
            counts[(FULL_MILLI, min(o.num_gpus for o in opts), types)] += 1
    total = sum(counts.values())
    n_types = len(ci.instance.gpu_types)
    return tuple(TaskClass(milli, gpus, None if len(types) == n_types else types, c / total)
                 for (milli, gpus, types), c in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                                      sorted(kv[0][2]))))


def fragmentation(free_milli: Sequence[int] | IntArray, type_index: int, classes: Sequence[TaskClass]) -> float:
    """Fragmentation :math:`F_n` (milli-GPU) of one node with GPUs of ``type_index``.

    Parameters
    ----------
    free_milli
        Free share of each GPU of the node, 0 to 1000 milli-GPU (0 for a GPU used whole).
    type_index
        GPU type of the node.
    classes
        The workload (see :func:`workload_classes`).
    """
    f = np.asarray(free_milli, dtype=np.int64)
    total = float(f.sum())
    full = int((f == FULL_MILLI).sum())
    out = 0.0
    for m in classes:
        if not m.allows(type_index):
            frag = total
        elif m.milli < FULL_MILLI:
            frag = float(f[f < m.milli].sum())
        else:
            frag = total - FULL_MILLI * full if full >= min(m.gpus, len(f)) else total
        out += m.weight * frag
    return out


def fgd_select(
    free_milli: IntArray,
    gpu_node: IntArray,
    node_type: IntArray,
    candidates: IntArray,
    milli: int,
    classes: Sequence[TaskClass],
) -> int | None:
    """The candidate GPU whose node's fragmentation grows least when ``milli`` is placed on it.

    Parameters
    ----------
    free_milli
        Free share of every GPU of the cluster (milli-GPU; 0 for GPUs used whole).
    gpu_node
        Node index of every GPU.
    node_type
        GPU type index of every node.
    candidates
        GPU indices that can host the task (free share, memory and type already checked).
    milli
        The task's share.
    classes
        The workload.

    Returns
    -------
    int or None
        The GPU index (ties to the lowest index), None without candidates.
    """
    if len(candidates) == 0:
        return None
    cand = np.sort(np.asarray(candidates, dtype=np.int64))
    # interchangeable GPUs (same node, same free share): keep the lowest index of each
    key = gpu_node[cand] * (FULL_MILLI + 1) + free_milli[cand]
    _, first = np.unique(key, return_index=True)
    cand = cand[np.sort(first)]
    n_nodes = len(node_type)
    node_sum = np.bincount(gpu_node, weights=free_milli, minlength=n_nodes).astype(np.int64)
    node_full = np.bincount(gpu_node, weights=(free_milli == FULL_MILLI), minlength=n_nodes).astype(np.int64)
    node_size = np.bincount(gpu_node, minlength=n_nodes)
    f = free_milli[cand]
    v = gpu_node[cand]
    ctype = node_type[v]
    s_before, full_before = node_sum[v], node_full[v]
    s_after = s_before - milli
    full_after = full_before - (f == FULL_MILLI)
    f_after = f - milli
    delta = np.zeros(len(cand))
    for m in classes:
        if m.milli < FULL_MILLI:
            d = np.where(f_after < m.milli, f_after, 0) - np.where(f < m.milli, f, 0)
        else:
            k = np.minimum(m.gpus, node_size[v])
            before = np.where(full_before >= k, s_before - FULL_MILLI * full_before, s_before)
            after = np.where(full_after >= k, s_after - FULL_MILLI * full_after, s_after)
            d = after - before
        if m.types is not None:
            d = np.where(np.isin(ctype, list(m.types)), d, -milli)
        delta += m.weight * d
    return int(cand[int(np.argmin(delta))])


def fgd_finder(ci: CompiledInstance, classes: Sequence[TaskClass] | None = None) -> FractionFinder:
    """A fractional-task chooser for :func:`~solver.heuristics.greedy.greedy_decision` that applies FGD.

    Candidates are GPUs of an allowed type, not used whole, with enough free share
    and memory; the workload defaults to :func:`workload_classes` of ``ci``.
    """
    work = tuple(classes) if classes is not None else workload_classes(ci)
    inst = ci.instance
    type_mem = np.array([t.memory_gib for t in inst.gpu_types])
    gpu_mem = type_mem[ci.gpu_type]
    node_type = np.array([ci.type_index[n.gpu_type] for n in inst.nodes], dtype=np.int64)
    gpu_node = np.asarray(ci.gpu_node, dtype=np.int64)

    def find(state: ClusterState, j: int, types: set[int]) -> int | None:
        job = ci.jobs[j]
        assert isinstance(job, FractionalTask)
        free = np.where(state.whole_used, 0, FULL_MILLI - state.milli_used).astype(np.int64)
        ok = (np.isin(ci.gpu_type, list(types)) & (free >= job.gpu_milli)
              & (state.mem_used + job.memory_gib <= gpu_mem + 1e-9))
        return fgd_select(free, gpu_node, node_type, np.flatnonzero(ok), job.gpu_milli, work)

    return find
