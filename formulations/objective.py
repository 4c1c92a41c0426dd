r"""The objective terms of the exact model, one private method each, added when weighted.

.. math::
    Z = \sum_j \pi_j + \sum_v w_E E_v o_v
        + \sum_{j,i,t} (c_{jit} - \pi_j) z_{jit} + \sum_{j,i} (c_{ji}^{keep} - \pi_j) \kappa_{ji}
        + \sum_{j,k} (c_{jk} - \pi_j) x_{jk} + \sum_j (c_j^{keep} - \pi_j) \kappa_j

with :math:`c` the weighted option cost at the tier (energy, SLO, tardiness,
migration) and :math:`\pi_j` the unplaced penalty: placing a job removes its penalty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from formulations.linear import LinearModel
from formulations.structure import Structure
from formulations.variables import Variables
from solver.compiled import Terms

__all__ = ["OBJECTIVE_TERMS", "Objective"]

#: Objective terms, identical in every backend.
OBJECTIVE_TERMS: tuple[str, ...] = ("energy", "slo", "tardiness", "unplaced", "migration")


class Objective:
    """Adds the weighted objective terms to a :class:`LinearModel`."""

    def __init__(self, lm: LinearModel, st: Structure, var: Variables) -> None:
        self.lm, self.st, self.var = lm, st, var
        self.ci = st.ci
        self.w = self.ci.instance.objective

    def add_objective(self) -> None:
        """Each term only when its weight is positive."""
        weighted: tuple[tuple[float, Callable[[], None]], ...] = (
            (self.w.energy_per_kwh, self._energy),
            (self.w.slo_violation, self._slo),
            (self.w.tardiness_per_h, self._tardiness),
            (self.w.unplaced_per_gpu, self._unplaced),
            (self.w.migration, self._migration),
        )
        for weight, add in weighted:
            if weight > 0:
                add()
        per_job: dict[int, list[int]] = {}
        for j, x, _, _ in self.placements():
            per_job.setdefault(j, []).append(x)
        self.lm.exclusive = [per_job[j] for j in sorted(per_job)]

    def placements(self) -> Iterator[tuple[int, int, Terms, bool]]:
        """``(job, variable, terms, migrated)`` of every variable that places a job."""
        ci, st, var = self.ci, self.st, self.var
        for (j, i, t), x in var.z.items():
            migrated = ci.jobs[j].running is not None
            yield j, x, ci.options[j][i].terms[t][int(migrated)], migrated
        for (j, i), x in var.keep.items():
            yield j, x, st.keep_terms(j, i), False
        for j, x in var.fkeep.items():
            k = int(ci.gpu_type[st.home_gpus[st.home_of_job[j]]])
            yield j, x, next(o for o in ci.options[j] if o.type_index == k).terms[0][0], False
        for (j, k), x in var.fshare.items():
            migrated = ci.jobs[j].running is not None
            yield j, x, next(o for o in ci.options[j] if o.type_index == k).terms[0][int(migrated)], migrated

    def _energy(self) -> None:
        r""":math:`w_E (\sum_v E_v o_v + \sum E_{jit} z_{jit} + \dots)`; nodes that cannot be
        powered down contribute a constant."""
        lm, ci = self.lm, self.ci
        for v in range(len(ci.instance.nodes)):
            e = self.w.energy_per_kwh * ci.node_energy_kwh(v)
            if v in self.var.on:
                lm.add_cost("energy", self.var.on[v], e)
            else:
                lm.constant += e
        for _, x, t, _ in self.placements():
            lm.add_cost("energy", x, self.w.energy_per_kwh * t.energy_kwh)

    def _slo(self) -> None:
        r""":math:`w_V \sum [\text{late}_{jit}] z_{jit}` (deadline missed at that tier and cap)."""
        for _, x, t, _ in self.placements():
            self.lm.add_cost("slo", x, self.w.slo_violation * float(t.late))

    def _tardiness(self) -> None:
        r""":math:`w_T \sum T^{h}_{jit} z_{jit}` (hours past the deadline)."""
        for _, x, t, _ in self.placements():
            self.lm.add_cost("tardiness", x, self.w.tardiness_per_h * t.tardiness_h)

    def _unplaced(self) -> None:
        r""":math:`\sum_j \pi_j (1 - \text{placed}_j)`: a constant minus :math:`\pi_j` per placement."""
        pen = self.ci.unplaced_penalty
        self.lm.constant += float(pen.sum())
        for j, x, _, _ in self.placements():
            self.lm.add_cost("unplaced", x, -float(pen[j]))

    def _migration(self) -> None:
        r""":math:`w_M` per running job placed on other GPUs."""
        for _, x, _, migrated in self.placements():
            if migrated:
                self.lm.add_cost("migration", x, self.w.migration)
