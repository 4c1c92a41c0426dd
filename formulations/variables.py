r"""Typed containers of the model's variables (all integer; binary when the bound is 1).

======================  ==========================================================
``z[j, i, t]``          job ``j`` runs option ``i`` placed within one unit of level
                        ``t`` (tier :math:`\le t`); pooled options only have ``t = 0``
``keep[j, i]``          running job ``j`` stays on its GPUs under option ``i``
``within[t, u, k, n, tp]`` number of tier-``t`` gangs of ``n`` GPUs (type ``k``, tp degree
                        ``tp``) placed inside unit ``u`` of level ``t`` (``t <= 3``)
``groups[t, s, tp]``    tp-groups in slot ``s`` that belong to tier-``t`` gangs
``pool[k, tp, s]``      tp-groups (``tp > 1``) in slot ``s`` of gangs placed anywhere (tier 4,
                        or classes whose cost does not depend on the tier)
``singles[k]``          GPUs of type ``k`` held by the 1-GPU groups (``tp = 1``) of gangs
                        placed anywhere: any free GPU of the type on a powered node will do,
                        so only their number is decided
``on[v]``               node ``v`` is powered (only when power-down is allowed)
``fkeep[j]``            running fractional task ``j`` stays on its GPU
``fshare[j, k]``        fractional task ``j`` on a shared GPU of type ``k``: a newly shared one
                        or a home GPU (of a running task); only the counts per size class
                        decide which (same cost, same power)
``pattern[k, p]``       newly shared GPUs of type ``k`` packed with pattern ``p``
``hpat[c, p]``          home GPUs of home class ``c`` filled by its pattern ``p``
``home_used[h]``        home GPU ``h`` holds fractional work (newly shared GPUs are
                        counted by ``pattern`` only: any free GPU of the type will do)
``free[s]``             GPUs of slot ``s`` left free by the slot's own groups, kept jobs and
                        home GPUs (defined by an equality; only in types with ``singles`` or
                        ``pattern``, whose GPUs are counted per type)
======================  ==========================================================

Dominated variables are not created (no power budget; the argument needs "at most one
option per job"). Per job, GPU count, tp degree and tier only the cheapest cap gets a
``z``. A tier whose cheapest cost is no lower than that of a higher tier gets none either:
a gang within one unit of level ``t`` is also within the unit of level ``t' > t`` that
contains it, so any solution can take the higher tier's variable at no higher cost (the
tier slowdowns are non-decreasing, so the two costs are equal; a gang's tier changes its
cost only when it makes it late).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from formulations.linear import LinearModel
from formulations.structure import TIER_ANYWHERE, Structure
from solver.compiled import weighted
from solver.model import FractionalTask

__all__ = ["Variables", "counted_types", "make_variables"]


@dataclass
class Variables:
    """Index maps from model entities to variable indices of a :class:`LinearModel`."""

    z: dict[tuple[int, int, int], int] = field(default_factory=dict)
    keep: dict[tuple[int, int], int] = field(default_factory=dict)
    within: dict[tuple[int, int, int, int, int], int] = field(default_factory=dict)
    groups: dict[tuple[int, int, int], int] = field(default_factory=dict)
    pool: dict[tuple[int, int, int], int] = field(default_factory=dict)
    singles: dict[int, int] = field(default_factory=dict)
    on: dict[int, int] = field(default_factory=dict)
    fkeep: dict[int, int] = field(default_factory=dict)
    fshare: dict[tuple[int, int], int] = field(default_factory=dict)
    pattern: dict[tuple[int, int], int] = field(default_factory=dict)
    hpat: dict[tuple[int, int], int] = field(default_factory=dict)
    home_used: dict[int, int] = field(default_factory=dict)
    free: dict[int, int] = field(default_factory=dict)
    class_of: dict[tuple[int, int], int] = field(default_factory=dict)
    _tiers: dict[tuple[int, int], list[tuple[int, int]]] = field(default_factory=dict)

    def tiers_of(self, j: int, i: int) -> list[tuple[int, int]]:
        """``(t, z[j, i, t])`` pairs of option ``i`` of job ``j``."""
        if not self._tiers:
            for (jj, ii, t), x in self.z.items():
                self._tiers.setdefault((jj, ii), []).append((t, x))
        return self._tiers.get((j, i), [])


def counted_types(var: Variables, st: Structure) -> list[int]:
    """GPU types whose pooled single GPUs or newly shared GPUs are counted per type (and whose
    slots get a ``free`` variable)."""
    return sorted(set(var.singles) | set(st.patterns))


def make_variables(lm: LinearModel, st: Structure) -> Variables:
    """Create every variable of the model for structure ``st``."""
    ci = st.ci
    inst = ci.instance
    var = Variables()
    # slot capacity also bounds the group counts; dropping gpu_capacity lifts those bounds
    loose = "gpu_capacity" in lm.skip_families
    demand = sum(max(o.num_gpus for o in opts) for opts in ci.options if opts)
    type_gpus = [0] * len(inst.gpu_types)
    for s in st.slots:
        type_gpus[s.type_index] += s.capacity
    # Without a power budget the cap only changes the cost: per (GPUs, tp, tier) only the
    # cheapest cap can be optimal, the other caps are dominated and get no variable. (The
    # argument needs "at most one option per job": not when the assignment family is dropped.)
    dominate = ((inst.power_budget_w is None or "power_budget" in lm.skip_families)
                and "assignment" not in lm.skip_families)
    for j, opts in st.keep_options.items():
        cheapest: dict[tuple[int, int], int] = {}
        for i in opts:
            key = (ci.options[j][i].tp, 0) if dominate else (i, 1)
            cost = weighted(inst, st.keep_terms(j, i), False)
            if key not in cheapest or cost < weighted(inst, st.keep_terms(j, cheapest[key]), False) - 1e-12:
                cheapest[key] = i
        for i in sorted(cheapest.values()):
            var.keep[j, i] = lm.var(f"keep[{j},{i}]", 1)
    sizes: set[tuple[int, int, int, int]] = set()  # (tier, type, n, tp) of tier-dependent options
    pools: set[tuple[int, int]] = set()
    for c in st.classes:
        migrated = ci.jobs[c.job].running is not None
        best: dict[tuple[int, int], tuple[float, int]] = {}  # (GPUs or option, tier) -> (cost, option)
        for i in c.options:
            var.class_of[c.job, i] = c.index
            o = ci.options[c.job][i]
            for t in st.tiers(o) if c.tier_dependent else (0,):
                key = (o.num_gpus if dominate else -1 - i, t)
                cost = o.cost(inst, t, migrated)
                if key not in best or cost < best[key][0] - 1e-12:
                    best[key] = (cost, i)
        if dominate:  # a tier costing no less than a higher one is dominated (see module docstring)
            for key in [(n, t) for (n, t), (cost, _) in best.items()
                        if any(n2 == n and t2 > t and cost2 <= cost + 1e-12 for (n2, t2), (cost2, _) in best.items())]:
                del best[key]
        for (_, t), (_, i) in sorted(best.items(), key=lambda kv: (kv[1][1], kv[0][1])):
            o = ci.options[c.job][i]
            var.z[c.job, i, t] = lm.var(f"z[{c.job},{i},{t}]", 1)
            if c.tier_dependent and t < TIER_ANYWHERE:
                sizes.add((t, c.type_index, o.num_gpus, c.tp))
            else:
                pools.add((c.type_index, c.tp))
    for t, k, n, tp in sorted(sizes):
        for u, slots in st.units(t, k, tp).items():
            cap = st.unit_capacity(slots, tp)
            if u is not None and cap >= n:
                var.within[t, u, k, n, tp] = lm.var(f"within[{t},{u},{k},{n},{tp}]", (demand if loose else cap) // n)
                for si in slots:
                    if (t, si, tp) not in var.groups:
                        ub = demand if loose else st.slots[si].usable(tp)
                        var.groups[t, si, tp] = lm.var(f"groups[{t},{si},{tp}]", ub // tp)
    for k, tp in sorted(pools):
        if tp == 1:  # 1-GPU groups fit any free GPU of the type: one count (gpu_capacity's type row)
            var.singles[k] = lm.var(f"singles[{k}]", demand if loose else type_gpus[k])
            continue
        for slot in st.slots:
            if slot.type_index == k and slot.usable(tp) > 0:
                ub = demand if loose else slot.usable(tp)
                var.pool[k, tp, slot.index] = lm.var(f"pool[{k},{tp},{slot.index}]", ub // tp)
    if inst.objective.allow_power_down:
        for v in range(len(inst.nodes)):
            var.on[v] = lm.var(f"on[{v}]", 1)
    # fractional tasks
    for j in st.size_of_job:
        job = ci.jobs[j]
        assert isinstance(job, FractionalTask)
        if j in st.home_of_job:
            h = st.home_gpus[st.home_of_job[j]]
            if any(o.type_index == int(ci.gpu_type[h]) for o in ci.options[j]):
                var.fkeep[j] = lm.var(f"fkeep[{j}]", 1)
        if not st.may_move(j):
            continue
        for o in ci.options[j]:
            var.fshare[j, o.type_index] = lm.var(f"fshare[{j},{o.type_index}]", 1)
    for k, pats in st.patterns.items():
        for p in range(len(pats)):
            var.pattern[k, p] = lm.var(f"pattern[{k},{p}]", type_gpus[k])
    for h in range(len(st.home_gpus)):
        var.home_used[h] = lm.var(f"home_used[{h}]", 1)
    counted = set(counted_types(var, st))
    for s in st.slots:
        if s.type_index in counted:
            var.free[s.index] = lm.var(f"free[{s.index}]", s.capacity)
    for hci, hc in enumerate(st.home_classes):
        for p in range(len(hc.patterns)):
            var.hpat[hci, p] = lm.var(f"hpat[{hci},{p}]", len(hc.homes))
    return var
