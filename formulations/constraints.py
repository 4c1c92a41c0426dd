r"""The constraint families of the exact model, one private method each.

The math of every family is in ``docs/formulations.md``; each method's docstring repeats
it. Notation: :math:`z_{jit}` option :math:`i` of job :math:`j` within level :math:`t`,
:math:`\kappa_{ji}` keep, :math:`w_{tuk n\tau}` tier-:math:`t` gangs of size :math:`n` inside
unit :math:`u`, :math:`g_{ts\tau}` their tp-groups in slot :math:`s`, :math:`P_{k\tau s}`
pooled tp-groups (:math:`\tau > 1`), :math:`P_k` pooled single GPUs, :math:`y_{kp}` newly shared
GPUs by pattern, :math:`f_s` free GPUs of slot :math:`s`, :math:`o_v` node on, :math:`n_i` the
option's GPUs, :math:`\tau` its tp degree, :math:`C_s` slot capacity.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from formulations.linear import Expr, LinearModel
from formulations.structure import TIER_ANYWHERE, Structure
from formulations.variables import Variables, counted_types
from solver.compiled import Option

__all__ = ["FAMILIES", "Constraints"]

#: Constraint families, in the order they are added; identical in every backend.
FAMILIES: tuple[str, ...] = (
    "assignment",
    "gang",
    "tensor_parallel",
    "locality",
    "gpu_capacity",
    "fractional_capacity",
    "running",
    "node_power",
    "power_budget",
    "symmetry",
)


def _add_to(expr: Expr, other: Expr, scale: float = 1.0) -> None:
    for i, a in other.items():
        expr[i] = expr.get(i, 0.0) + scale * a


class Constraints:
    """Adds every constraint family of :data:`FAMILIES` to a :class:`LinearModel`."""

    def __init__(self, lm: LinearModel, st: Structure, var: Variables) -> None:
        self.lm, self.st, self.var = lm, st, var
        self.ci = st.ci
        #: Classes of identical pending jobs (see :meth:`_symmetry`): per class, per job in
        #: index order, its placement variables in a common rank order.
        self.identical: list[list[list[int]]] = []

    def add_constraints(self) -> None:
        """The families, in order (a skipped family's rows are dropped by the model)."""
        self._assignment()
        self._gang()
        self._tensor_parallel()
        self._locality()
        self._gpu_capacity()
        self._fractional_capacity()
        self._running()
        self._node_power()
        self._power_budget()
        self._symmetry()

    # ------------------------------------------------------------------ helpers
    def slot_usage(self, s: int) -> Expr:
        r"""GPUs of slot :math:`s` in use, apart from pooled single GPUs and newly shared ones (which
        only the type's row counts): :math:`\sum_{t,\tau} \tau g_{ts\tau} + \sum_{\tau > 1} \tau P_{k\tau s}
        + \sum_{h \in s} u_h + \sum_j occ_{js} \sum_i \kappa_{ji}`."""
        st, var = self.st, self.var
        if not hasattr(self, "_usage"):
            usage: dict[int, Expr] = defaultdict(dict)
            for (_, s2, tp), x in var.groups.items():
                usage[s2][x] = float(tp)
            for (_, tp, s2), x in var.pool.items():
                usage[s2][x] = float(tp)
            for h, x in var.home_used.items():
                usage[st.slot_of_gpu[st.home_gpus[h]]][x] = 1.0
            for (j, _), x in var.keep.items():
                for s2, n in st.occupancy[j].items():
                    usage[s2][x] = float(n)
            self._usage = usage
        return self._usage.get(s, {})

    def node_load(self, v: int) -> Expr:
        out: Expr = {}
        for s in self.st.node_slots[v]:
            _add_to(out, self.slot_usage(s))
        return out

    # ------------------------------------------------------------------ families
    def _assignment(self) -> None:
        r"""Each job runs at most one option: :math:`\sum_i \kappa_{ji} + \sum_{i,t} z_{jit} \le 1`;
        fractional: :math:`\kappa_j + \sum_k x_{jk} \le 1`."""
        per_job: dict[int, Expr] = defaultdict(dict)
        for (j, _, _), x in self.var.z.items():
            per_job[j][x] = 1.0
        for (j, _), x in self.var.keep.items():
            per_job[j][x] = 1.0
        for j, x in self.var.fkeep.items():
            per_job[j][x] = 1.0
        for (j, _), x in self.var.fshare.items():
            per_job[j][x] = 1.0
        for j in sorted(per_job):
            self.lm.add("assignment", per_job[j], hi=1.0)

    def _gang(self) -> None:
        r"""All-or-nothing gangs on one type, placed anywhere (tier 4 or tier-free):
        :math:`\sum_s \tau P_{k\tau s} = \sum_{(j,i,t) \in \text{pool}(k,\tau)} n_i z_{jit}` for
        :math:`\tau > 1`, :math:`P_k = \sum_{(j,i,t) \in \text{pool}(k,1)} n_i z_{jit}`."""
        st, var, ci = self.st, self.var, self.ci
        per_pool: dict[tuple[int, int], Expr] = defaultdict(dict)
        for (j, i, t), x in var.z.items():
            c = st.classes[var.class_of[j, i]]
            if not c.tier_dependent or t == TIER_ANYWHERE:
                per_pool[c.type_index, c.tp][x] = -float(ci.options[j][i].num_gpus)
        for (k, tp, _), x in var.pool.items():
            per_pool[k, tp][x] = float(tp)
        for k, x in var.singles.items():
            per_pool[k, 1][x] = 1.0
        for key in sorted(per_pool):
            self.lm.add("gang", per_pool[key], lo=0.0, hi=0.0)

    def _tensor_parallel(self) -> None:
        r"""Tensor-parallel groups inside one NVLink domain.

        Enforced by construction: placements count whole tp-groups :math:`g_{cs}` and
        :math:`P_{k\tau s}`, which exist only in slots that are one NVLink domain with
        :math:`C_s \ge \tau` (bounds :math:`g_{cs} \le \lfloor C_s/\tau \rfloor`). Dropping the
        family (``skip_families``) builds the structure with every :math:`\tau = 1`.
        """

    def _locality(self) -> None:
        r"""A gang of tier :math:`t \le 3` lies inside one unit of level :math:`t`.

        Gangs of equal type :math:`k`, size :math:`n` and tp degree :math:`\tau` are
        interchangeable, so only their number per unit is decided:

        .. math::
            \sum_u w_{tukn\tau} = \sum_{i:(k,n,\tau)} z_{jit}, \qquad
            \sum_n \frac{n}{\tau} w_{tukn\tau} = \sum_{s \in u} g_{ts\tau} \quad \forall t, u, k, \tau.

        Any split of a unit's tier-:math:`t` groups among its tier-:math:`t` gangs keeps
        every gang inside the unit, so the aggregation is exact.
        """
        st, var, ci = self.st, self.var, self.ci
        count: dict[tuple[int, int, int, int], Expr] = defaultdict(dict)
        for (j, i, t), x in var.z.items():
            c = st.classes[var.class_of[j, i]]
            if c.tier_dependent and t != TIER_ANYWHERE:
                count[t, c.type_index, ci.options[j][i].num_gpus, c.tp][x] = -1.0
        flow: dict[tuple[int, int, int, int], Expr] = defaultdict(dict)
        for (t, u, k, n, tp), x in var.within.items():
            count[t, k, n, tp][x] = 1.0
            flow[t, u, k, tp][x] = float(n // tp)
        for (t, s, tp), x in var.groups.items():
            slot = st.slots[s]
            unit = st.unit(t, s)
            flow[t, -1 if unit is None else unit, slot.type_index, tp][x] = -1.0
        for key in sorted(count):
            self.lm.add("locality", count[key], lo=0.0, hi=0.0)
        for fkey in sorted(flow):
            self.lm.add("locality", flow[fkey], lo=0.0, hi=0.0)

    def counted(self, k: int) -> Expr:
        r"""GPUs of type :math:`k` counted per type only: :math:`P_k + \sum_p y_{kp}`."""
        var = self.var
        expr: Expr = {var.singles[k]: 1.0} if k in var.singles else {}
        for p in range(len(self.st.patterns.get(k, ()))):
            expr[var.pattern[k, p]] = 1.0
        return expr

    def _gpu_capacity(self) -> None:
        r"""Whole GPUs of a slot: :math:`\text{usage}_s \le C_s` (kept running jobs, new groups,
        home GPUs), as :math:`\text{usage}_s + f_s = C_s` in types whose pooled single GPUs and
        newly shared GPUs are counted per type; those fit on the free GPUs of their type:
        :math:`P_k + \sum_p y_{kp} \le \sum_{s \in k} f_s`.

        Both take one GPU each and fit any free GPU of the type, so the type's free GPUs are
        all they need (exact); ``node_power`` restricts them to powered nodes. :math:`f_s` is
        defined by its slot's equality, so it adds no choice.
        """
        st, var, lm = self.st, self.var, self.lm
        for slot in st.slots:
            if slot.index in var.free:
                lm.define(var.free[slot.index], "gpu_capacity", self.slot_usage(slot.index), float(slot.capacity))
            else:
                lm.add("gpu_capacity", self.slot_usage(slot.index), hi=float(slot.capacity))
        for k in counted_types(self.var, self.st):
            expr = self.counted(k)
            for slot in st.slots:
                if slot.type_index == k:
                    expr[var.free[slot.index]] = -1.0
            lm.add("gpu_capacity", expr, hi=0.0)

    def _fractional_capacity(self) -> None:
        r"""Milli-GPU and memory of shared GPUs, through packing patterns.

        Newly shared GPUs of type :math:`k` (Gilmore-Gomory patterns :math:`y_{kp}`) and home
        classes :math:`c` (patterns :math:`\Lambda_{cp}` over the free-resident positions
        :math:`r` and the joining classes, counted over the class's homes :math:`H_c`) give
        room to the tasks of each size class :math:`q` shared on type :math:`k`:

        .. math::
            \sum_{j \in q} x_{jk} \le \sum_p a_{pq} y_{kp} + \sum_{c \in k} \sum_p a_{cpq} \Lambda_{cp},

            \sum_{h \in H_c} u_h = \sum_p \Lambda_{cp}, \quad
            \sum_{h \in H_c} \kappa_{j(h, r)} \le \sum_{p \ni r} \Lambda_{cp}, \quad
            \kappa_j \le u_{h(j)}.

        One row per :math:`(k, q)` for both kinds of shared GPU: the two rooms are
        non-negative integers, so any count up to their sum splits into a part that fits the
        new GPUs and a part that fits the homes, and which tasks of a class go where changes
        neither cost nor power. Separate variables for the two (the first version) gave every
        solution many equal-cost copies. The newly shared GPUs, :math:`\sum_p y_{kp}` of them,
        take free GPUs of the type (``gpu_capacity``'s type row).
        """
        st, var, ci = self.st, self.var, self.ci
        lm = self.lm
        room: dict[tuple[int, int], Expr] = defaultdict(dict)  # (type, class) -> tasks minus room
        for (j, k), x in var.fshare.items():
            room[k, st.size_of_job[j]][x] = 1.0
        for k, pats in st.patterns.items():
            for q in sorted(st.frac_types[k]):
                for p, pat in enumerate(pats):
                    if pat[q]:
                        room[k, q][var.pattern[k, p]] = -float(pat[q])
        # home GPUs: the used homes of a class are filled by its patterns (counted), which give room
        # to joining tasks and to the residents at their positions
        for (c, pi), x in var.hpat.items():
            hc = st.home_classes[c]
            k = int(ci.gpu_type[st.home_gpus[hc.homes[0]]])
            for q, a in enumerate(hc.patterns[pi].joins):
                if a and (k, q) in room:
                    room[k, q][x] = -float(a)
        for key in sorted(room):
            lm.add("fractional_capacity", room[key], hi=0.0)
        for c, hc in enumerate(st.home_classes):
            used: Expr = {var.home_used[h]: 1.0 for h in hc.homes}
            for pi in range(len(hc.patterns)):
                used[var.hpat[c, pi]] = -1.0
            lm.add("fractional_capacity", used, lo=0.0, hi=0.0)
            for r in range(len(hc.free[0])):
                room_r: Expr = {var.fkeep[free[r]]: 1.0 for free in hc.free if free[r] in var.fkeep}
                for pi, home_pat in enumerate(hc.patterns):
                    if r in home_pat.positions:
                        room_r[var.hpat[c, pi]] = -1.0
                lm.add("fractional_capacity", room_r, hi=0.0)
        for j, x in var.fkeep.items():  # a kept task keeps its home GPU in use
            lm.add("fractional_capacity", {x: 1.0, var.home_used[st.home_of_job[j]]: -1.0}, hi=0.0)

    def _running(self) -> None:
        r"""Non-preemptible running jobs stay where they are: :math:`\sum_i \kappa_{ji} = 1`
        (whole GPUs), :math:`\kappa_j = 1` (fractional)."""
        st, var, ci = self.st, self.var, self.ci
        for j, job in enumerate(ci.jobs):
            if job.running is None or job.preemptible:
                continue
            if j in st.size_of_job:
                expr: Expr = {var.fkeep[j]: 1.0} if j in var.fkeep else {}
            else:
                expr = {x: 1.0 for (jj, _), x in var.keep.items() if jj == j}
            if not expr:
                self.lm.infeasible_reason = f"running job '{job.id}' cannot stay on its GPUs"
                continue
            self.lm.add("running", expr, lo=1.0, hi=1.0)

    def _node_power(self) -> None:
        r"""A node runs work only if powered: :math:`\sum_{s \in v} \text{usage}_s \le C_v o_v`; the GPUs
        counted per type fit on the free GPUs of powered nodes (a node that is off has
        :math:`f_s = C_s`): :math:`P_k + \sum_p y_{kp} \le \sum_{s \in k} (f_s - C_s (1 - o_{v(s)}))`."""
        st, var, lm = self.st, self.var, self.lm
        for v, x in var.on.items():
            expr = self.node_load(v)
            expr[x] = -float(st.node_capacity[v])
            lm.add("node_power", expr, hi=0.0)
        if not var.on:
            return
        for k in counted_types(self.var, self.st):
            expr = self.counted(k)
            cap = 0.0
            for slot in st.slots:
                if slot.type_index == k:
                    expr[var.free[slot.index]] = -1.0
                    o = var.on[slot.node]
                    expr[o] = expr.get(o, 0.0) - float(slot.capacity)
                    cap += float(slot.capacity)
            lm.add("node_power", expr, hi=-cap)

    def _power_budget(self) -> None:
        r"""Cluster power: :math:`\sum_v P^{idle}_v o_v + \sum p_{ji} (z, \kappa, x) \le B` (watts)."""
        ci, var = self.ci, self.var
        inst = ci.instance
        if inst.power_budget_w is None:
            return
        expr: Expr = {}
        fixed = 0.0
        for v in range(len(inst.nodes)):
            if v in var.on:
                expr[var.on[v]] = ci.node_idle_power_w(v)
            else:
                fixed += ci.node_idle_power_w(v)
        for (j, i, t), x in var.z.items():
            expr[x] = ci.options[j][i].terms[t][0].power_w
        for (j, i), x in var.keep.items():
            expr[x] = self.st.keep_terms(j, i).power_w
        for j, x in var.fkeep.items():
            expr[x] = self._frac_option(j, self.st.home_gpus[self.st.home_of_job[j]]).terms[0][0].power_w
        for (j, k), x in var.fshare.items():
            expr[x] = next(o for o in ci.options[j] if o.type_index == k).terms[0][0].power_w
        self.lm.add("power_budget", expr, hi=inst.power_budget_w - fixed)

    def _frac_option(self, j: int, gpu: int) -> Option:
        k = int(self.ci.gpu_type[gpu])
        return next(o for o in self.ci.options[j] if o.type_index == k)

    def _symmetry(self) -> None:
        r"""Interchangeable nodes :math:`v_1, \dots, v_m` (same rack, type, domains, host power,
        no running work) are used in order: :math:`\text{load}_{v_r} \ge \text{load}_{v_{r+1}}`,
        :math:`o_{v_r} \ge o_{v_{r+1}}`. Identical pending jobs :math:`j_1 < \dots < j_m` (same
        options, costs and power) choose in decreasing rank: with the placement variables
        :math:`x_{j,1}, \dots, x_{j,R}` of a job in a common order,
        :math:`\sum_r r\, x_{j_a r} \ge \sum_r r\, x_{j_{a+1} r}` (0 when unplaced)."""
        var = self.var
        for nodes in self.st.symmetry_classes:
            for a, b in itertools.pairwise(nodes):
                expr = self.node_load(a)
                _add_to(expr, self.node_load(b), -1.0)
                self.lm.add("symmetry", expr, lo=0.0)
                if a in var.on:
                    self.lm.add("symmetry", {var.on[a]: 1.0, var.on[b]: -1.0}, lo=0.0)
        if "assignment" in self.lm.skip_families:  # the ranks need "at most one choice per job"
            return
        self.identical = self._identical_jobs()
        for jobs in self.identical:
            for cols_a, cols_b in itertools.pairwise(jobs):
                expr = {x: float(r + 1) for r, x in enumerate(cols_a)}
                for r, x in enumerate(cols_b):
                    expr[x] = -float(r + 1)
                self.lm.add("symmetry", expr, lo=0.0)

    def _identical_jobs(self) -> list[list[list[int]]]:
        """Pending jobs that any solution can swap: same kind and size class, the same options
        (type, GPUs, tp, cap, power at every tier) and the same objective coefficient on every
        placement variable (exact float equality, so no two different jobs are ever grouped)."""
        ci, st, var = self.ci, self.st, self.var
        cost = self.lm.objective_array()
        cols: dict[int, dict[tuple[int, int, int], int]] = defaultdict(dict)
        for (j, i, t), x in var.z.items():
            cols[j][0, i, t] = x
        for (j, k), x in var.fshare.items():
            cols[j][1, k, 0] = x
        groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
        for j in sorted(cols):
            job = ci.jobs[j]
            if job.running is not None:
                continue
            keys = sorted(cols[j])
            options = tuple((o.type_index, o.num_gpus, o.tp, o.power_cap_w, tuple(t[0].power_w for t in o.terms))
                            for o in ci.options[j])
            signature = (type(job).__name__, st.size_of_job.get(j), float(ci.unplaced_penalty[j]), options,
                         tuple((key, float(cost[cols[j][key]])) for key in keys))
            groups[signature].append(j)
        return [[[cols[j][key] for key in sorted(cols[j])] for j in jobs] for jobs in groups.values() if len(jobs) > 1]
