r"""Performance, power and memory models of LLM work on a GPU type.

Inference capacity (per replica of model :math:`M` with tensor-parallel degree :math:`t`
on GPU type :math:`X` under power cap :math:`c`):

* usable memory per GPU :math:`U = 0.9\,mem_X - 2` GiB; weights per GPU :math:`W/t`;
  KV cache per token and GPU :math:`\kappa/t`; :math:`t` is the smallest power of two
  dividing the KV-head count with :math:`W/t + 16 \cdot ctx \cdot \kappa / t \le U`.
* decode step time at batch :math:`b` (memory-bound roofline, calibrated on the H100
  profile in ``../shared/data/gpu-profiles``: 7B decode at batch 1 measured 5.54 ms vs a
  4.03 ms roofline, efficiency 0.73):
  :math:`\tau(b) = (W + b \cdot ctx \cdot \kappa) / (t \cdot BW_X \cdot \eta_{bw} \cdot \eta_{tp}(t))
  \cdot s_X(d_{dec}(b), c)`;
  the largest :math:`b` with :math:`\tau(b) \le` TPOT SLO and the KV cache fitting is used.
* prefill rate :math:`t \cdot F_X \cdot \eta_{pf} / (2P) / s_X(d_{pf}, c)` tokens/s
  (7B on H100 measured 40-44k tok/s = MFU about 0.6 of the 989 TFLOP/s datasheet peak).
* one replica serves :math:`r_{max} = \rho / (p / R_{pf} + o / R_{dec})` requests/s with
  :math:`p, o` prompt and output tokens and target utilization :math:`\rho = 0.8`;
  TTFT requires :math:`p / R_{pf} \le TTFT/2` (half the budget kept for queueing).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from solver.model import GpuType, InferenceService, LlmModel

__all__ = [
    "InferenceSizing",
    "size_inference",
    "training_memory_gib",
]

GIB = float(2**30)
BW_EFFICIENCY = 0.73
PREFILL_MFU = 0.60
TARGET_UTILIZATION = 0.8
MIN_CONCURRENCY = 16
MAX_TP = 8
MAX_BATCH = 256  # vLLM default max_num_seqs


def usable_memory_gib(gpu: GpuType) -> float:
    """Memory a serving engine can use on one GPU: 0.9 x memory - 2 GiB (research F.3)."""
    return 0.9 * gpu.memory_gib - 2.0


def tp_efficiency(tp: int) -> float:
    """Scaling efficiency of tensor parallelism: 0.9 per doubling (assumption)."""
    return 0.9 ** math.log2(tp) if tp > 1 else 1.0


@dataclass(frozen=True)
class InferenceSizing:
    """How one service runs on one GPU type at one power cap."""

    gpu_type: str
    power_cap_w: float
    tp: int
    replicas: int
    max_rps_per_replica: float
    batch: int
    busy_power_w: float
    active_power_w: float
    utilization: float

    @property
    def num_gpus(self) -> int:
        return self.tp * self.replicas


def min_tp(model: LlmModel, gpu: GpuType, context_tokens: float) -> int | None:
    """Smallest TP degree whose weights and minimum KV cache fit, or None."""
    usable = usable_memory_gib(gpu) * GIB
    t = 1
    while t <= MAX_TP:
        if model.n_kv_heads % t == 0 or t <= model.n_kv_heads:
            need = (model.weight_bytes + MIN_CONCURRENCY * context_tokens * model.kv_bytes_per_token) / t
            if need <= usable:
                return t
        t *= 2
    return None


def _decode_step_s(model: LlmModel, gpu: GpuType, tp: int, batch: int, ctx: float, cap_w: float) -> float:
    bytes_moved = model.weight_bytes + batch * ctx * model.kv_bytes_per_token
    bw = tp * gpu.mem_bw_gbps * 1e9 * BW_EFFICIENCY * tp_efficiency(tp)
    demand = gpu.power_model.decode_frac(batch) * gpu.tdp_w
    return bytes_moved / bw * gpu.power_model.slowdown(demand, cap_w)


def size_inference(
    service: InferenceService, model: LlmModel, gpu: GpuType, cap_w: float
) -> InferenceSizing | None:
    """Replicas, TP degree and power of ``service`` on ``gpu`` under ``cap_w``.

    Returns None when no configuration meets the SLOs (a prompt too long for the TTFT
    budget, a TPOT below the single-sequence step time, or weights that do not fit in
    one NVLink domain of at most 8 GPUs).
    """
    explicit = {name: (tp, rps) for name, tp, rps in service.capacity}
    if explicit:
        if gpu.name not in explicit:
            return None
        tp, rps_max = explicit[gpu.name]
        # An explicit table is given at full power; a cap slows prefill-dominated work.
        rps_max = rps_max / gpu.power_model.slowdown(gpu.power_model.prefill_frac * gpu.tdp_w, cap_w)
        batch = MIN_CONCURRENCY
        prefill_share = 0.5
    else:
        profile = replica_profile(model, gpu, cap_w, service.prompt_tokens, service.output_tokens,
                                  service.ttft_slo_s, service.tpot_slo_s)
        if profile is None:
            return None
        tp, rps_max, batch, prefill_share = profile
    replicas = max(1, math.ceil(service.request_rate_rps / rps_max - 1e-9))
    utilization = replica_utilization(service.request_rate_rps, replicas, rps_max)
    pm = gpu.power_model
    busy_w = prefill_share * min(cap_w, pm.prefill_frac * gpu.tdp_w) + (1 - prefill_share) * min(
        cap_w, pm.decode_frac(batch) * gpu.tdp_w
    )
    return InferenceSizing(
        gpu_type=gpu.name,
        power_cap_w=cap_w,
        tp=tp,
        replicas=replicas,
        max_rps_per_replica=rps_max,
        batch=batch,
        busy_power_w=busy_w,
        active_power_w=min(cap_w, gpu.idle_w + pm.idle_ctx_extra_w
                           + utilization * max(0.0, busy_w - gpu.idle_w - pm.idle_ctx_extra_w)),
        utilization=utilization,
    )


@functools.lru_cache(maxsize=8192)
def replica_profile(model: LlmModel, gpu: GpuType, cap_w: float, prompt_tokens: float, output_tokens: float,
                    ttft_slo_s: float, tpot_slo_s: float) -> tuple[int, float, int, float] | None:
    """Rate-independent sizing of one replica: (TP degree, max requests/s at the SLO, batch,
    prefill share of busy time), or None when the SLOs cannot be met.

    A pure function of its (hashable, frozen) arguments, memoized because many services
    share a model, GPU type, cap and request shape.
    """
    ctx = prompt_tokens + output_tokens
    tp_min = min_tp(model, gpu, ctx)
    if tp_min is None:
        return None
    tp = tp_min
    usable = usable_memory_gib(gpu) * GIB * tp
    kv_room = usable - model.weight_bytes
    batch_mem = int(kv_room // (ctx * model.kv_bytes_per_token))
    if batch_mem < 1:
        return None
    if _decode_step_s(model, gpu, tp, 1, ctx, cap_w) > tpot_slo_s:
        return None
    lo, hi = 1, min(batch_mem, MAX_BATCH)
    while lo < hi:  # largest batch meeting TPOT
        mid = (lo + hi + 1) // 2
        if _decode_step_s(model, gpu, tp, mid, ctx, cap_w) <= tpot_slo_s:
            lo = mid
        else:
            hi = mid - 1
    batch = lo
    decode_tps = batch / _decode_step_s(model, gpu, tp, batch, ctx, cap_w)
    prefill_demand = gpu.power_model.prefill_frac * gpu.tdp_w
    prefill_tps = (
        tp * gpu.bf16_tflops * 1e12 * PREFILL_MFU * tp_efficiency(tp) / (2.0 * model.params_b * 1e9)
    ) / gpu.power_model.slowdown(prefill_demand, cap_w)
    prefill_s = prompt_tokens / prefill_tps
    if prefill_s > 0.5 * ttft_slo_s:
        return None
    decode_s = output_tokens / decode_tps
    return tp, TARGET_UTILIZATION / (prefill_s + decode_s), batch, prefill_s / (prefill_s + decode_s)


def replica_utilization(rate_rps: float, replicas: int, max_rps_per_replica: float) -> float:
    """Busy fraction of each replica: rate / (replicas x full-speed capacity)."""
    return rate_rps / (replicas * max_rps_per_replica / TARGET_UTILIZATION)


def serving_power_w(gpu: GpuType, sizing: InferenceSizing, utilization: float) -> float:
    """Per-GPU power of a replica busy a fraction ``utilization`` of the time."""
    ctx_idle = gpu.idle_w + gpu.power_model.idle_ctx_extra_w
    return min(sizing.power_cap_w, ctx_idle + utilization * max(0.0, sizing.busy_power_w - ctx_idle))


def training_memory_gib(params_b: float, num_gpus: int, activation_gib: float = 4.0) -> float:
    r"""Per-GPU memory of sharded mixed-precision Adam training (DeepSpeed estimator).

    .. math:: m = 18 P / N + a

    with 18 bytes per parameter sharded over :math:`N` GPUs (research E.1) and
    :math:`a` GiB of activations with recomputation.
    """
    return 18.0 * params_b * 1e9 / num_gpus / GIB + activation_gib


def training_flops(params_b: float, tokens_b: float) -> float:
    """Training compute :math:`6 P D` in FLOPs (research E.1)."""
    return 6.0 * params_b * 1e9 * tokens_b * 1e9
