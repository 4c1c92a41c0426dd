"""Time budgets: a small protocol object every method polls (PyVRP ``stop`` style)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["Deadline"]


@dataclass
class Deadline:
    """A wall-clock budget of ``limit_s`` seconds started at construction."""

    limit_s: float
    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining(self) -> float:
        return max(0.0, self.limit_s - self.elapsed())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def sub(self, fraction: float, at_most: float | None = None) -> Deadline:
        """A child budget: ``fraction`` of what remains (capped by ``at_most``)."""
        s = self.remaining() * fraction
        return Deadline(min(s, at_most) if at_most is not None else s)
