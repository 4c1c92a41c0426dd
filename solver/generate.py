"""Realistic generated instances in five size families.

Each family mixes GPU types by rack (H100 and A100 NVSwitch nodes, H200, PCIe L4
inference boxes), leaves fragmentation behind running jobs (some non-preemptible),
and mixes training gangs (Philly-like sizes, deadlines on about half), inference
services (Llama models with TTFT/TPOT SLOs) and fractional-GPU tasks (Alibaba 2023
style milli-GPU shares). Generation is deterministic for a given seed.

=========  =====  ======  =====
family     nodes  GPUs    jobs
=========  =====  ======  =====
tiny       <= 3   <= 12   <= 6
small      16     128     60
medium     64     512     300
large      256    2,048   1,000
xl         1,280  10,240  5,000
=========  =====  ======  =====
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from solver.fileformat import SCHEMA_VERSION, instance_dropping_unplaceable
from solver.model import Instance

__all__ = ["FAMILIES", "Family", "generate", "generate_dict"]


@dataclass(frozen=True)
class Family:
    """Size parameters of a generated family."""

    name: str
    nodes: int
    jobs: int
    nodes_per_rack: int
    racks_per_pod: int
    gpus_per_node: int = 8
    running_frac: float = 0.3


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("tiny", 3, 6, 3, 1, gpus_per_node=4, running_frac=0.3),
        Family("small", 16, 60, 4, 2),
        Family("medium", 64, 300, 4, 4),
        Family("large", 256, 1000, 8, 4),
        Family("xl", 1280, 5000, 8, 8),
    )
}

# rack flavours: (node template or explicit type, weight)
_RACK_MIX = (("dgx-h100", 0.4), ("dgx-a100-80", 0.3), ("hgx-h200", 0.1), ("pcie-l4-8", 0.2))
_TINY_TYPES = (("H100-SXM", True), ("A100-80GB", True), ("L4", False))
_GANG_SIZES = np.array([1, 2, 4, 8, 16, 32])
_GANG_P = np.array([0.45, 0.2, 0.15, 0.12, 0.05, 0.03])
_MODELS = (("llama3-8b", 0.5), ("llama2-13b", 0.25), ("llama3-70b", 0.25))
_MFU = 0.4


def _choice(rng: np.random.Generator, items: tuple[tuple[str, float], ...]) -> str:
    names = [n for n, _ in items]
    p = np.array([w for _, w in items])
    return str(names[int(rng.choice(len(names), p=p / p.sum()))])


def _cluster(fam: Family, rng: np.random.Generator) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    if fam.name == "tiny":
        n_nodes = int(rng.integers(2, fam.nodes + 1))
        for v in range(n_nodes):
            gtype, nvlink = _TINY_TYPES[int(rng.integers(0, len(_TINY_TYPES)))]
            if v == 0:
                gtype, nvlink = _TINY_TYPES[0]
            k = fam.gpus_per_node
            nodes.append({"id": f"n{v}", "gpu_type": gtype, "gpu_count": k,
                          "nvlink_domains": [list(range(k))] if nvlink else [[i] for i in range(k)],
                          "numa_domains": [list(range(k))], "host_power_w": 600.0 if nvlink else 250.0,
                          "rack": f"r{v // 2}", "pod": "p0"})
        return nodes
    n_racks = fam.nodes // fam.nodes_per_rack
    flavours = [_choice(rng, _RACK_MIX) for _ in range(n_racks)]
    flavours[0] = "dgx-h100"  # at least one rack of every main type for realism
    if n_racks > 1:
        flavours[1] = "pcie-l4-8"
    if n_racks > 2:
        flavours[2] = "dgx-a100-80"
    for r, tpl in enumerate(flavours):
        for k in range(fam.nodes_per_rack):
            nodes.append({"id": f"r{r}-n{k}", "template": tpl, "rack": f"r{r}", "pod": f"p{r // fam.racks_per_pod}"})
    return nodes


def generate_dict(family: str, seed: int) -> dict[str, Any]:
    """The instance document of ``family`` with ``seed`` (see :func:`generate`)."""
    return _generate(family, seed)[1]


def _generate(family: str, seed: int) -> tuple[Instance, dict[str, Any]]:
    """The validated instance and its document; jobs no GPU type could ever run are dropped."""
    from solver.fileformat import load_catalog, load_llm_models
    from solver.topology import TEMPLATES

    if family not in FAMILIES:
        raise ValueError(f"unknown family '{family}'; known: {', '.join(FAMILIES)}")
    fam = FAMILIES[family]
    rng = np.random.default_rng([seed, list(FAMILIES).index(family)])
    catalog = {t.name: t for t in load_catalog()}
    models = {m.name: m for m in load_llm_models()}
    nodes = _cluster(fam, rng)
    # expand to per-node facts for bookkeeping
    node_type: list[str] = []
    node_domains: list[list[list[int]]] = []
    for n in nodes:
        if "template" in n:
            tpl = TEMPLATES[n["template"]]
            node_type.append(tpl.gpu_type)
            node_domains.append([list(d) for d in tpl.nvlink_domains])
        else:
            node_type.append(n["gpu_type"])
            node_domains.append(n["nvlink_domains"])
    types_present = sorted(set(node_type))
    free: list[list[int]] = [[i for d in doms for i in d] for doms in node_domains]
    now = 0.0
    n_jobs = fam.jobs if family != "tiny" else int(rng.integers(3, fam.jobs + 1))
    n_running = round(fam.running_frac * n_jobs)
    training: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    fractional: list[dict[str, Any]] = []
    gpus_per_node = fam.gpus_per_node
    max_gang = 8 if family == "tiny" else 32
    sizes = _GANG_SIZES[min(max_gang, gpus_per_node * 2) >= _GANG_SIZES]
    sizes_p = _GANG_P[: len(sizes)] / _GANG_P[: len(sizes)].sum()

    def train_job(ident: str, running: bool) -> dict[str, Any] | None:
        n = int(rng.choice(sizes, p=sizes_p))
        mem = float(np.round(rng.uniform(8, 70), 1))
        eligible = [t for t in types_present if catalog[t].memory_gib >= mem]
        if rng.random() < 0.15 and len(eligible) > 1:
            eligible = eligible[:-1]  # some jobs are limited to fewer types
        if not eligible:
            return None
        thr = {t: round(catalog[t].bf16_tflops * _MFU / 1e3 * float(rng.uniform(0.7, 1.0)), 5) for t in eligible}
        hours = float(rng.lognormal(mean=0.0, sigma=1.0))  # on the fastest type
        work = round(hours * 3600 * n * max(thr.values()), 3)
        tp = 1
        big_domains = all(len(d[0]) >= 8 for d, t in zip(node_domains, node_type, strict=True) if t in eligible)
        if n >= 8 and rng.random() < 0.5 and big_domains:
            tp = 8 if rng.random() < 0.5 else 4
        elif n >= 2 and rng.random() < 0.3:
            tp = 2
        job: dict[str, Any] = {"id": ident, "num_gpus": n, "tp": tp, "work": work, "throughput_per_gpu": thr,
                               "memory_gib": mem, "priority": float(rng.choice([1.0, 1.0, 2.0, 4.0])),
                               "preemptible": bool(rng.random() < 0.75),
                               "arrival_s": 0.0 if running else float(np.round(rng.uniform(0, 3600), 1))}
        if rng.random() < 0.5:
            job["deadline_s"] = float(np.round(job["arrival_s"] + hours * 3600 * rng.uniform(0.9, 3.0), 1))
        if n > 1 and rng.random() < 0.2 and tp == 1:
            job["min_gpus"] = max(1, n // 4)
        if running:
            placed = _place_running(n, tp, eligible)
            if placed is None:
                return None
            job["running"] = {"gpus": placed, "migration_cost_s": float(np.round(rng.uniform(60, 600), 1)),
                              "remaining_work": round(work * float(rng.uniform(0.2, 0.9)), 3)}
            job["arrival_s"] = 0.0
            if "deadline_s" in job:
                job["deadline_s"] = max(job["deadline_s"], 0.0)
        return job

    def _place_running(n: int, tp: int, eligible: list[str]) -> list[str] | None:
        # scatter running gangs to leave fragmentation: random node order, any domain
        order = rng.permutation(len(nodes))
        for v in order:
            if node_type[v] not in eligible:
                continue
            doms = [[i for i in d if i in free[v]] for d in node_domains[v]]
            usable = [i for d in doms for i in d[: len(d) // tp * tp]]
            if len(usable) >= n and n <= gpus_per_node:
                start = int(rng.integers(0, len(usable) - n + 1)) // tp * tp
                pick = usable[start:start + n]
                if len(pick) < n:
                    pick = usable[:n]
                for i in pick:
                    free[v].remove(i)
                return [f"{nodes[v]['id']}/{i}" for i in pick]
        return None

    def service(ident: str) -> dict[str, Any]:
        model = _choice(rng, _MODELS)
        m = models[model]
        prompt = float(rng.choice([256, 512, 1024, 2048]))
        output = float(rng.choice([64, 128, 256, 512]))
        rate = float(np.round(rng.uniform(0.5, 6.0) * (8.0 / m.params_b) ** 0.5, 2))
        return {"id": ident, "model": model, "request_rate_rps": rate, "prompt_tokens": prompt,
                "output_tokens": output, "ttft_slo_s": float(rng.choice([1.0, 2.0, 5.0])),
                "tpot_slo_s": float(rng.choice([0.05, 0.1, 0.2])), "priority": float(rng.choice([2.0, 4.0])),
                "arrival_s": float(np.round(rng.uniform(0, 3600), 1))}

    def frac(ident: str, running: bool) -> dict[str, Any] | None:
        milli = int(rng.choice([100, 200, 250, 300, 500, 700, 900]))
        arrival = 0.0 if running else float(np.round(rng.uniform(0, 3600), 1))
        job: dict[str, Any] = {"id": ident, "gpu_milli": milli, "memory_gib": float(np.round(milli / 1000 * 14 + 1, 1)),
                               "duration_s": float(np.round(rng.lognormal(7.5, 1.0), 1)),
                               "priority": 1.0, "arrival_s": arrival}
        if rng.random() < 0.3:
            job["gpu_types"] = [t for t in types_present if catalog[t].memory_gib <= 48] or types_present
        if running:
            cands = [(v, i) for v in range(len(nodes)) for i in free[v]
                     if not job.get("gpu_types") or node_type[v] in job["gpu_types"]]
            if not cands:
                return None
            v, i = cands[int(rng.integers(0, len(cands)))]
            free[v].remove(i)  # simplification: a running fractional task holds its GPU alone
            job["running"] = {"gpus": [f"{nodes[v]['id']}/{i}"]}
        return job

    for k in range(n_jobs):
        running = k < n_running
        u = rng.random()
        if u < 0.55 or (family == "tiny" and u < 0.7):
            j = train_job(f"t{k}", running)
            if j is not None:
                training.append(j)
        elif u < 0.7 and not running:
            services.append(service(f"s{k}"))
        else:
            f = frac(f"f{k}", running)
            if f is not None:
                fractional.append(f)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "kind": "gpuplan.instance",
        "name": f"{family}-s{seed}",
        "description": f"generated by 'gpuplan generate --family {family} --seed {seed}'",
        "now_s": now,
        "cluster": {"nodes": nodes},
        "training_jobs": training,
        "inference_services": services,
        "fractional_tasks": fractional,
        "objective": {"horizon_s": 3600.0, "pue": 1.2},
    }
    inst, doc, _ = instance_dropping_unplaceable(doc, f"<generated {family} seed {seed}>")
    return inst, doc


def generate(family: str, seed: int) -> Instance:
    """A validated :class:`~solver.model.Instance` of ``family`` generated with ``seed``."""
    return _generate(family, seed)[0]
