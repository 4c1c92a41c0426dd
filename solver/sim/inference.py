r"""Inference services that follow a request load, and their latency (SLO) model.

A :class:`ServiceLoad` is an LLM service template (model, TTFT/TPOT SLOs, allowed GPU types)
plus a load profile: request rate and mean prompt/output tokens per interval (e.g.
:func:`solver.traces.requests_to_load` of the Azure LLM inference trace).

Autoscaling. At the start of each interval :math:`k` the simulator sizes the service with
:func:`solver.perf.size_inference` at the interval's rate :math:`\lambda_k` and token means
on its GPU type (the type needing the fewest GPUs, chosen at the first interval) at the full
power cap: TP degree :math:`t` and the rate :math:`\mu` one replica sustains while meeting
both SLOs (continuous batching up to the largest batch meeting the TPOT, prefill within half
the TTFT, at the target utilization of :mod:`solver.perf`). It then adds replicas on free
GPUs (whole ``t``-GPU groups inside one NVLink domain, first fit) or releases surplus ones,
before the policy runs; services have priority over batch work but never preempt it.

Latency model (load against capacity per interval). With :math:`R_k` replicas the capacity is
:math:`C_k = R_k \mu`; of the :math:`\lambda_k \Delta` requests of the interval a share
:math:`\min(1, C_k / \lambda_k)` meets its TTFT and TPOT SLOs and the rest misses them
(queueing beyond capacity). SLO attainment is

.. math:: A = \frac{\sum_k \lambda_k \Delta \min(1, C_k/\lambda_k)}{\sum_k \lambda_k \Delta}.

Power of a replica GPU: :func:`solver.perf.serving_power_w` at utilization
:math:`\lambda_k / (R_k \mu / u^*)` (capped at 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from solver.model import GpuType, InferenceService, LlmModel
from solver.perf import TARGET_UTILIZATION, InferenceSizing, serving_power_w, size_inference

__all__ = ["ServiceLoad", "ServiceState", "service_from_requests"]


@dataclass(frozen=True)
class ServiceLoad:
    """A service template and its per-interval load (``interval_start_s``, ``rate_rps``,
    ``mean_prompt_tokens``, ``mean_output_tokens``)."""

    service: InferenceService
    load: pd.DataFrame
    interval_s: float

    def interval(self, k: int) -> tuple[float, float, float]:
        """Rate (req/s) and mean prompt/output tokens of interval ``k`` (template tokens if empty)."""
        row = self.load.iloc[k]
        p = float(row["mean_prompt_tokens"])
        o = float(row["mean_output_tokens"])
        svc = self.service
        return (float(row["rate_rps"]), p if math.isfinite(p) and p > 0 else svc.prompt_tokens,
                o if math.isfinite(o) and o > 0 else svc.output_tokens)


def service_from_requests(requests: pd.DataFrame, *, service_id: str, model: str, ttft_slo_s: float,
                          tpot_slo_s: float, interval_s: float = 60.0,
                          gpu_types: tuple[str, ...] = ()) -> ServiceLoad:
    """A :class:`ServiceLoad` from a canonical request table (Azure trace)."""
    from solver.traces import requests_to_load

    load = requests_to_load(requests, interval_s)
    prompt = float(requests["prompt_tokens"].mean()) if len(requests) else 512.0
    output = float(requests["output_tokens"].mean()) if len(requests) else 128.0
    svc = InferenceService(id=service_id, model=model, request_rate_rps=float(load["rate_rps"].mean() or 0.0),
                           prompt_tokens=prompt, output_tokens=output, ttft_slo_s=ttft_slo_s,
                           tpot_slo_s=tpot_slo_s, gpu_types=gpu_types)
    return ServiceLoad(svc, load, interval_s)


@dataclass
class ServiceState:
    """Mutable replay state of one service: replicas, sizing and SLO accounting."""

    spec: ServiceLoad
    type_index: int = -1
    replicas: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)
    sizing: InferenceSizing | None = None
    rate_rps: float = 0.0
    power_w: float = 0.0
    requests: float = 0.0
    requests_ok: float = 0.0
    replica_s: float = 0.0
    intervals: int = 0
    short_intervals: int = 0

    def account(self, dt_s: float) -> None:
        """Book ``dt_s`` seconds of the current interval into the SLO and replica counters."""
        n = self.rate_rps * dt_s
        cap = len(self.replicas) * (self.sizing.max_rps_per_replica if self.sizing else 0.0)
        self.requests += n
        self.requests_ok += n * (min(1.0, cap / self.rate_rps) if self.rate_rps > 0 else 1.0)
        self.replica_s += len(self.replicas) * dt_s

    def size(self, gpu_types: tuple[GpuType, ...], model: LlmModel, k: int) -> InferenceSizing | None:
        """Sizing of interval ``k`` on the service's type (chosen at the first call)."""
        rate, prompt, output = self.spec.interval(k)
        svc = replace(self.spec.service, request_rate_rps=max(rate, 1e-9), prompt_tokens=prompt,
                      output_tokens=output)
        best: tuple[int, int, InferenceSizing] | None = None
        candidates = [self.type_index] if self.type_index >= 0 else range(len(gpu_types))
        for t in candidates:
            gpu = gpu_types[t]
            if svc.gpu_types and gpu.name not in svc.gpu_types:
                continue
            sz = size_inference(svc, model, gpu, gpu.max_power_cap_w)
            if sz is not None and (best is None or sz.num_gpus < best[0]):
                best = (sz.num_gpus, t, sz)
        if best is None:
            return None
        self.type_index = best[1]
        self.rate_rps = rate
        return best[2]

    def update_power(self, gpu_types: tuple[GpuType, ...]) -> float:
        """Extra (active minus idle) power of the replicas (W) at the current rate."""
        if self.sizing is None or not self.replicas:
            return 0.0
        gpu = gpu_types[self.type_index]
        util = min(1.0, self.rate_rps / (len(self.replicas) * self.sizing.max_rps_per_replica / TARGET_UTILIZATION))
        per_gpu = serving_power_w(gpu, self.sizing, util) - gpu.idle_w
        return float(np.float64(per_gpu) * len(self.replicas) * self.sizing.tp)
