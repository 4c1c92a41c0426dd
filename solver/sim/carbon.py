r"""Hourly carbon intensity and its time integral.

Reads an Electricity Maps hourly export (``Datetime (UTC)``, ``Carbon Intensity gCO₂eq/kWh
(direct)`` or ``(LCA)``). The simulation clock :math:`t = 0` maps to the first hour of the
file plus ``offset_h``; a replay longer than the file wraps around. Carbon of a constant
power :math:`P` (kW, PUE included) over :math:`[t_0, t_1)` is

.. math:: C = \frac{P}{3600} \int_{t_0}^{t_1} I(t)\,dt \quad [\mathrm{g}]

with :math:`I` the piecewise-constant hourly intensity (gCO2eq/kWh).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["CarbonIntensity", "load_carbon_intensity"]

HOUR_S = 3600.0


@dataclass(frozen=True)
class CarbonIntensity:
    """Hourly intensities (gCO2eq/kWh) from ``start`` (UTC)."""

    hourly_g_per_kwh: npt.NDArray[np.float64]
    start: str = ""

    def __post_init__(self) -> None:
        if len(self.hourly_g_per_kwh) == 0:
            raise ValueError("carbon intensity series is empty")

    def _cumulative(self, t_s: float) -> float:
        """:math:`\\int_0^t I` in (g/kWh)·s, wrapping around the series."""
        n = len(self.hourly_g_per_kwh)
        period = n * HOUR_S
        total = float(self.hourly_g_per_kwh.sum()) * HOUR_S
        wraps, rest = divmod(t_s, period)
        h = int(rest // HOUR_S)
        partial = float(self.hourly_g_per_kwh[:h].sum()) * HOUR_S + float(self.hourly_g_per_kwh[h]) * (
            rest - h * HOUR_S) if h < n else total
        return wraps * total + partial

    def integral(self, t0_s: float, t1_s: float) -> float:
        """:math:`\\int_{t_0}^{t_1} I(t)\\,dt` in (gCO2eq/kWh)·s."""
        return self._cumulative(t1_s) - self._cumulative(t0_s)

    def grams(self, power_kw: float, t0_s: float, t1_s: float) -> float:
        """Emissions (g) of ``power_kw`` held over ``[t0_s, t1_s)``."""
        return power_kw * self.integral(t0_s, t1_s) / HOUR_S


def load_carbon_intensity(path: str | Path, *, column: str = "direct", offset_h: int = 0) -> CarbonIntensity:
    """Read an hourly carbon-intensity CSV.

    Parameters
    ----------
    path
        Electricity Maps hourly CSV (or any CSV with a ``Datetime (UTC)`` column and a column
        whose name contains ``Carbon Intensity`` and ``column``).
    column
        ``"direct"`` or ``"LCA"``.
    offset_h
        Hours of the file skipped before simulation time 0.
    """
    df = pd.read_csv(path)
    cols = [c for c in df.columns if "carbon intensity" in c.lower() and column.lower() in c.lower()]
    if not cols:
        raise ValueError(f"{path}: no 'Carbon Intensity ... ({column})' column; columns: {list(df.columns)}")
    values = pd.to_numeric(df[cols[0]], errors="coerce").to_numpy(dtype=float)
    if np.isnan(values).any():
        bad = int(np.flatnonzero(np.isnan(values))[0])
        raise ValueError(f"{path}: row {bad}, column '{cols[0]}': not a number ({df[cols[0]].iloc[bad]!r})")
    start = str(df.iloc[offset_h, 0]) if "datetime" in str(df.columns[0]).lower() and offset_h < len(df) else ""
    return CarbonIntensity(values[offset_h:].astype(np.float64), start)
