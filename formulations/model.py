r"""The exact model: build it once, translate a decision into variable values, and back.

:class:`ExactModel` builds the backend-neutral :class:`~formulations.linear.LinearModel`
(structure, variables, constraint families, objective terms), turns a
:class:`~solver.result.Decision` into a full assignment (the warm start of every
backend, canonicalized for the symmetry-breaking rows) and maps a solver's assignment to
exact GPU ids deterministically (:meth:`ExactModel.decode`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from formulations.constraints import Constraints
from formulations.linear import LinearModel
from formulations.objective import Objective
from formulations.structure import TIER_ANYWHERE, Structure
from formulations.variables import Variables, make_variables
from solver.compiled import CompiledInstance, Option
from solver.model import FractionalTask
from solver.result import Decision, Placement
from solver.stop import Deadline

__all__ = ["ExactModel"]


class ExactModel:
    """The exact snapshot model of ``ci`` as a :class:`LinearModel`.

    Parameters
    ----------
    ci
        Compiled instance.
    deadline
        Building raises :class:`~formulations.linear.BuildTimeout` once it expires.
    skip_families
        Constraint families to drop (tests show each one changes the answer).
    """

    def __init__(self, ci: CompiledInstance, deadline: Deadline | None = None,
                 skip_families: frozenset[str] = frozenset()) -> None:
        self.ci = ci
        self.st = Structure(ci, tensor_parallel="tensor_parallel" not in skip_families,
                            locality="locality" not in skip_families, pin_running="running" not in skip_families)
        self.lm = LinearModel(deadline, skip_families)
        self.var: Variables = make_variables(self.lm, self.st)
        self.lm.check_time()
        Objective(self.lm, self.st, self.var).add_objective()  # first: the symmetry rows compare costs
        self._constraints = Constraints(self.lm, self.st, self.var)
        self._constraints.add_constraints()

    def placement_columns(self) -> list[int]:
        """Variables that say how each job runs (option, tier, keep, fractional choice)."""
        var = self.var
        return [*var.z.values(), *var.keep.values(), *var.fkeep.values(), *var.fshare.values()]

    # ------------------------------------------------------------------ decision -> values
    def values_of(self, decision: Decision) -> npt.NDArray[np.float64]:
        """A full assignment representing ``decision`` (entries it cannot express stay 0)."""
        ci, st, var = self.ci, self.st, self.var
        x = np.zeros(self.lm.num_vars)
        groups: dict[tuple[int, int, int], int] = defaultdict(int)  # (tier, slot, tp)
        pool: dict[tuple[int, int, int], int] = defaultdict(int)
        within: dict[tuple[int, int, int, int, int], int] = defaultdict(int)  # (tier, first slot, k, n, tp)
        bins: dict[int, list[int]] = defaultdict(list)
        join: dict[int, list[int]] = defaultdict(lambda: [0] * len(st.size_classes))  # home -> joins per class
        stays: dict[int, set[int]] = defaultdict(set)  # home -> residents kept
        home_index = {g: h for h, g in enumerate(st.home_gpus)}
        used_nodes: set[int] = set()
        for p in decision.placements:
            j = ci.job_index.get(p.job)
            if j is None or not p.gpus or any(g not in ci.gpu_index for g in p.gpus):
                continue
            job = ci.jobs[j]
            gpus = [ci.gpu_index[g] for g in p.gpus]
            used_nodes.update(int(ci.gpu_node[g]) for g in gpus)
            k = int(ci.gpu_type[gpus[0]])
            if isinstance(job, FractionalTask):
                g = gpus[0]
                if g in home_index:
                    h = home_index[g]
                    x[var.home_used[h]] = 1
                    if st.home_of_job.get(j) == h and j in var.fkeep:
                        x[var.fkeep[j]] = 1
                        stays[h].add(j)
                    elif (j, k) in var.fshare:
                        x[var.fshare[j, k]] = 1
                        join[h][st.size_of_job[j]] += 1
                elif (j, k) in var.fshare:
                    x[var.fshare[j, k]] = 1
                    bins[g].append(j)
                continue
            if job.running is not None and set(p.gpus) == set(job.running.gpus):
                # the hint's cap, else the kept option that dominates it (same tp, cheapest cap)
                kept = next((i for i in st.keep_options.get(j, ()) if ci.options[j][i].tp == p.tp
                             and abs(ci.options[j][i].power_cap_w - p.power_cap_w) < 1e-6
                             and (j, i) in var.keep), None)
                if kept is None:
                    kept = next((i for i in st.keep_options.get(j, ()) if ci.options[j][i].tp == p.tp
                                 and (j, i) in var.keep), None)
                if kept is not None:
                    x[var.keep[j, kept]] = 1
                    continue
            i = next((i for i, o in enumerate(ci.options[j]) if o.type_index == k and o.num_gpus == len(gpus)
                      and abs(o.power_cap_w - p.power_cap_w) < 1e-6 and o.tp == p.tp), None)
            if i is None:
                continue
            c_index = var.class_of.get((j, i))
            if c_index is None:
                continue
            c = st.classes[c_index]
            per_slot: dict[int, int] = defaultdict(int)
            for g in gpus:
                per_slot[st.slot_of_gpu[g]] += 1
            # the hint's cap, or the cap that dominates it at that tier (same GPUs, cheaper)
            same = [ii for ii in c.options if ci.options[j][ii].num_gpus == len(gpus)]
            if c.tier_dependent:
                tier = ci.tier(gpus)
                ts = [(t, z) for t, z in var.tiers_of(j, i) if t >= tier]
                if not ts or min(ts)[0] != tier:
                    ts = [(t, z) for ii in same for t, z in var.tiers_of(j, ii) if t >= tier] or ts
                if not ts:
                    continue
                t, z = min(ts)
                x[z] = 1
                if t == TIER_ANYWHERE:
                    for s, n in per_slot.items():
                        pool[c.type_index, c.tp, s] += n // c.tp
                else:
                    within[t, min(per_slot), c.type_index, len(gpus), c.tp] += 1
                    for s, n in per_slot.items():
                        groups[t, s, c.tp] += n // c.tp
            else:
                z0 = var.z.get((j, i, 0))
                if z0 is None:
                    z0 = next(var.z[j, ii, 0] for ii in same if (j, ii, 0) in var.z)
                x[z0] = 1
                for s, n in per_slot.items():
                    pool[c.type_index, c.tp, s] += n // c.tp
        pattern: dict[tuple[int, int], int] = defaultdict(int)
        for g, jobs in bins.items():
            k = int(ci.gpu_type[g])
            need = [0] * len(st.size_classes)
            for j in jobs:
                need[st.size_of_job[j]] += 1
            p_index = next((p for p, pat in enumerate(st.patterns.get(k, []))
                            if all(a >= b for a, b in zip(pat, need, strict=True))), None)
            if p_index is not None:
                pattern[k, p_index] += 1
        on = {v: 1 for v in range(len(ci.instance.nodes))}
        for nid in decision.powered_off_nodes:
            v = next((v for v, n in enumerate(ci.instance.nodes) if n.id == nid), None)
            if v is not None and v not in used_nodes:
                on[v] = 0
        # canonical order of interchangeable nodes (matches the symmetry rows, whose loads leave
        # out pooled single GPUs and newly shared ones)
        slot_map = {s.index: s.index for s in st.slots}
        node_map = {v: v for v in on}
        load: dict[int, int] = defaultdict(int)
        for (_, s, tp), n in groups.items():
            load[st.slots[s].node] += n * tp
        for (_, tp, s), n in pool.items():
            if tp > 1:
                load[st.slots[s].node] += n * tp
        if "symmetry" not in self.lm.skip_families:
            for nodes in st.symmetry_classes:
                order = sorted(nodes, key=lambda v: (-load[v], -on[v], v))
                for new, old in zip(nodes, order, strict=True):
                    node_map[old] = new
                    for a, b in zip(st.node_slots[old], st.node_slots[new], strict=True):
                        slot_map[a] = b
        for (t, s, tp), n in groups.items():
            if (t, slot_map[s], tp) in var.groups:
                x[var.groups[t, slot_map[s], tp]] += n
        for (t, s, k, n, tp), count in within.items():
            u = st.unit(t, slot_map[s])
            if u is not None and (t, u, k, n, tp) in var.within:
                x[var.within[t, u, k, n, tp]] += count
        for (k, tp, s), n in pool.items():
            if tp == 1 and k in var.singles:
                x[var.singles[k]] += n
            elif (k, tp, slot_map[s]) in var.pool:
                x[var.pool[k, tp, slot_map[s]]] += n
        for key, n in pattern.items():
            x[var.pattern[key]] = n
        for hci, hc in enumerate(st.home_classes):  # per used home, the first pattern with room for its filling
            for home, free in zip(hc.homes, hc.free, strict=True):
                if not x[var.home_used[home]]:
                    continue
                positions = {r for r, jr in enumerate(free) if jr in stays[home]}
                p_home = next((pi for pi, hp in enumerate(hc.patterns) if positions <= hp.positions
                               and all(a >= b for a, b in zip(hp.joins, join[home], strict=True))), None)
                if p_home is not None:
                    x[var.hpat[hci, p_home]] += 1
        for v, flag in on.items():
            if v in var.on:
                x[var.on[node_map[v]]] = flag
        for members in self._constraints.identical:  # identical jobs: choices in decreasing rank (symmetry rows)
            ranks = sorted((next((r + 1 for r, xi in enumerate(cols) if x[xi] > 0.5), 0) for cols in members),
                           reverse=True)
            for cols, r in zip(members, ranks, strict=True):
                x[cols] = 0.0
                if r:
                    x[cols[r - 1]] = 1.0
        for s2, f in var.free.items():  # defined by the slot's gpu_capacity equality
            x[f] = st.slots[s2].capacity - sum(a * x[i] for i, a in self._constraints.slot_usage(s2).items())
        return np.clip(x, self.lm.lb, self.lm.ub)

    # ------------------------------------------------------------------ values -> decision
    def decode(self, values: npt.ArrayLike) -> Decision:
        """Map an assignment to exact GPU ids, deterministically (slot and job order).

        Whole-GPU groups take the free GPUs of their slot (a migrating job prefers GPUs
        it does not already hold); then pooled single GPUs and new shared GPUs take free GPUs
        of their type on powered nodes, in slot order; new shared GPUs are filled pattern by
        pattern.
        Assignments that break skipped families still yield a decision (the checker
        then reports what is wrong).
        """
        ci, st, var = self.ci, self.st, self.var
        inst = ci.instance
        val = np.rint(np.asarray(values, dtype=np.float64)).astype(np.int64)
        placements: dict[int, Placement] = {}
        taken: set[int] = set()
        for (j, i), x in var.keep.items():
            if val[x]:
                job = ci.jobs[j]
                assert job.running is not None
                gpus = sorted((ci.gpu_index[g] for g in job.running.gpus), key=lambda g: (int(ci.gpu_domain[g]), g))
                taken.update(gpus)
                o = ci.options[j][i]
                placements[j] = self._placement(j, gpus, o.power_cap_w, o.tp)
        for j, x in var.fkeep.items():
            if val[x]:
                taken.add(st.home_gpus[st.home_of_job[j]])
        for h, x in var.home_used.items():
            if val[x]:
                taken.add(st.home_gpus[h])
        free = {s.index: [g for g in s.gpus if g not in taken] for s in st.slots}

        def take(s: int, n: int, avoid: frozenset[int]) -> list[int]:
            pick = [g for g in free[s] if g not in avoid][:n]
            pick += [g for g in free[s] if g in avoid][: n - len(pick)]
            for g in pick:
                free[s].remove(g)
            if len(pick) < n:  # only when a capacity family was skipped
                pick += list(st.slots[s].gpus[: n - len(pick)])
            return pick

        powered: dict[int, list[int]] = defaultdict(list)  # type -> slots on powered nodes, in order
        for slot in st.slots:
            if slot.node not in var.on or val[var.on[slot.node]]:
                powered[slot.type_index].append(slot.index)
        first: dict[int, int] = defaultdict(int)  # type -> its first powered slot with a free GPU

        def take_any(k: int, n: int, avoid: frozenset[int]) -> list[int]:
            """``n`` free GPUs of type ``k`` on powered nodes, in slot order (``gpu_capacity``'s
            type row says there are enough); GPUs in ``avoid`` only if no other is left."""
            slots = powered[k]
            pick: list[int] = []
            for later in (False, True):
                i = first[k]
                while len(pick) < n and i < len(slots):
                    got = [g for g in free[slots[i]] if (g in avoid) == later][: n - len(pick)]
                    for g in got:
                        free[slots[i]].remove(g)
                    pick += got
                    i += 1
            while first[k] < len(slots) and not free[slots[first[k]]]:
                first[k] += 1
            if len(pick) < n:  # only when a capacity family was skipped
                pick += [g for slot in st.slots if slot.type_index == k for g in slot.gpus][: n - len(pick)]
            return pick

        def avoid_of(j: int) -> frozenset[int]:
            run = ci.jobs[j].running
            return frozenset(ci.gpu_index[g] for g in run.gpus) if run is not None else frozenset()

        pooled: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)  # (k, tp) -> [(job, option)]
        tiered: dict[tuple[int, int, int, int], list[tuple[int, int]]] = defaultdict(list)  # (t, k, n, tp)
        for (j, i, t), x in sorted(var.z.items()):
            if not val[x]:
                continue
            c = st.classes[var.class_of[j, i]]
            if c.tier_dependent and t != TIER_ANYWHERE:
                tiered[t, c.type_index, ci.options[j][i].num_gpus, c.tp].append((j, i))
            else:
                pooled[c.type_index, c.tp].append((j, i))

        def groups_of(queue: list[int], j: int, o: Option, tp: int, k: int) -> list[int]:
            placed: list[int] = []
            for _ in range(o.num_gpus // tp):
                s = queue.pop(0) if queue else next(sl.index for sl in st.slots if sl.type_index == k)
                placed += take(s, tp, avoid_of(j))
            return placed

        # tier-t gangs: jobs to units by the counts, then each takes its groups from the unit's slots
        unit_jobs: dict[tuple[int, int, int, int], list[tuple[int, int]]] = defaultdict(list)  # (t, u, k, tp)
        within_of: dict[tuple[int, int, int, int], list[int]] = defaultdict(list)  # (t, k, n, tp) -> units
        for (tt, u, kk, nn, pp), x in sorted(var.within.items()):
            within_of[tt, kk, nn, pp] += [u] * int(val[x])
        groups_of_unit: dict[tuple[int, int | None, int, int], list[int]] = defaultdict(list)  # (t, u, k, tp) -> slots
        for (tt, s, pp), x in sorted(var.groups.items()):
            groups_of_unit[tt, st.unit(tt, s), st.slots[s].type_index, pp] += [s] * int(val[x])
        for (t, k, n, tp), jobs in sorted(tiered.items()):
            units = within_of.get((t, k, n, tp), [])
            for r, ji in enumerate(jobs):
                unit_jobs[t, units[r] if r < len(units) else -1, k, tp].append(ji)
        for (t, u, k, tp), jobs in sorted(unit_jobs.items()):
            queue = list(groups_of_unit.get((t, u, k, tp), []))
            for j, i in jobs:
                o = ci.options[j][i]
                placements[j] = self._placement(j, groups_of(queue, j, o, tp, k), o.power_cap_w, o.tp)
        for (k, tp), jobs in sorted(pooled.items(), key=lambda kv: (kv[0][1] == 1, kv[0])):  # single GPUs last
            queue = [s for s in range(len(st.slots)) for _ in range(int(val[var.pool[k, tp, s]])
                                                                      if (k, tp, s) in var.pool else 0)]
            for j, i in jobs:
                o = ci.options[j][i]
                gpus = take_any(k, o.num_gpus, avoid_of(j)) if tp == 1 else groups_of(queue, j, o, tp, k)
                placements[j] = self._placement(j, gpus, o.power_cap_w, o.tp)
        self._decode_fractional(val, placements, take_any)
        off: tuple[str, ...] = ()
        if inst.objective.allow_power_down:
            off = tuple(inst.nodes[v].id for v, x in var.on.items() if not val[x])
        return Decision(tuple(placements[j] for j in sorted(placements)), off)

    def _decode_fractional(self, val: npt.NDArray[np.int64], placements: dict[int, Placement],
                           take_any: Callable[[int, int, frozenset[int]], list[int]]) -> None:
        ci, st, var = self.ci, self.st, self.var
        for j, x in var.fkeep.items():
            if val[x]:
                placements[j] = self._placement(j, [st.home_gpus[st.home_of_job[j]]], None, 1)
        # rooms of the newly shared GPUs (one entry per GPU, its pattern's counts per class)
        new_room: dict[int, list[tuple[int, list[int]]]] = {}  # type -> [(GPU, room per class)]
        for k, pats in st.patterns.items():
            rooms = [list(pats[p]) for p in range(len(pats)) for _ in range(int(val[var.pattern[k, p]]))]
            new_room[k] = list(zip(take_any(k, len(rooms), frozenset()), rooms, strict=False))
        filled: dict[int, tuple[int, ...]] = {}  # used home -> joins its pattern has room for
        for hci, hc in enumerate(st.home_classes):
            left = [pi for pi in range(len(hc.patterns)) for _ in range(int(val[var.hpat[hci, pi]]))]
            used = []
            for home, free in zip(hc.homes, hc.free, strict=True):
                if val[var.home_used[home]]:
                    used.append((home, {r for r, jr in enumerate(free) if jr in var.fkeep and val[var.fkeep[jr]]}))
            for home, positions in sorted(used, key=lambda hk: (-len(hk[1]), hk[0])):  # keeping residents first
                pick = next((pi for pi in left if positions <= hc.patterns[pi].positions), left[0] if left else None)
                if pick is not None:  # (None only when the fractional family was skipped)
                    left.remove(pick)
                    filled[home] = hc.patterns[pick].joins
        room_home = {(h, q): a for h in sorted(filled) for q, a in enumerate(filled[h])}
        homes_with_room: dict[tuple[int, int], list[int]] = defaultdict(list)  # (type, class) -> homes, in order
        for (home, cls), a in room_home.items():
            if a > 0:
                homes_with_room[int(ci.gpu_type[st.home_gpus[home]]), cls].append(home)
        # the tasks of a class shared on a type fill the new GPUs' room first, then the homes'
        # (fractional_capacity: their number fits the sum); a task avoids its own old GPU
        for (j, k), x in sorted(var.fshare.items()):
            if not val[x]:
                continue
            q = st.size_of_job[j]
            own = st.home_of_job.get(j)
            b = next((b for b, (g, r) in enumerate(new_room.get(k, [])) if r[q] > 0), None)
            if b is not None:
                g, r = new_room[k][b]
                r[q] -= 1
                placements[j] = self._placement(j, [g], None, 1)
                continue
            homes = homes_with_room.get((k, q), [])
            h = next((h for h in homes if h != own), homes[0] if homes else None)
            if h is not None:
                room_home[h, q] -= 1
                if not room_home[h, q]:
                    homes.remove(h)
                placements[j] = self._placement(j, [st.home_gpus[h]], None, 1)
                continue
            # only when the fractional family was skipped
            fallback = [g for g, _ in new_room.get(k, [])] + [s.gpus[0] for s in st.slots if s.type_index == k]
            placements[j] = self._placement(j, [fallback[0]], None, 1)

    def _placement(self, j: int, gpus: list[int], cap_w: float | None, tp: int) -> Placement:
        ci = self.ci
        if cap_w is None:  # fractional: the option of the GPU's type
            k = int(ci.gpu_type[gpus[0]])
            cap_w = next(o.power_cap_w for o in ci.options[j] if o.type_index == k)
        return Placement(ci.jobs[j].id, tuple(ci.gpu_ids[g] for g in gpus), cap_w, ci.instance.now_s, tp)
