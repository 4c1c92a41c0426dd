"""Versioned JSON (and YAML) files: instances, cluster specs, decisions and the catalog.

Reading validates every field and reports *all* problems at once as an
:class:`~solver.errors.InputError` naming the file, the field path, the value and the
reason, e.g. ``training_jobs[3].deadline_s: must be >= arrival_s (got -5)``. Writing
produces documents that read back to equal objects (``schema_version`` 1).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from solver.errors import Collector, InputError
from solver.model import (
    DEFAULT_TIER_SLOWDOWN,
    TIER_NAMES,
    FractionalTask,
    GpuType,
    InferenceService,
    Instance,
    Job,
    LinkSpec,
    LlmModel,
    Node,
    ObjectiveWeights,
    PowerModel,
    Running,
    TrainingJob,
)
from solver.topology import RACK_TEMPLATES, TEMPLATES

__all__ = [
    "SCHEMA_VERSION",
    "data_path",
    "instance_from_dict",
    "instance_to_dict",
    "load_catalog",
    "load_cluster_spec",
    "load_document",
    "load_instance",
    "load_llm_models",
    "save_instance",
]

SCHEMA_VERSION = 1
INSTANCE_KIND = "gpuplan.instance"
CLUSTER_KIND = "gpuplan.cluster"
_Missing = object()


def data_path(*parts: str) -> Path:
    """Path of a bundled data file (``data/catalog``, ``schemas``), installed or in a checkout."""
    try:
        base = resources.files("solver") / "_data"
        candidate = Path(str(base.joinpath(*parts)))
        if candidate.exists():
            return candidate
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover
        pass
    root = Path(__file__).resolve().parent.parent
    top = "schemas" if parts and parts[0] == "schemas" else "data"
    rest = parts[1:] if top == "schemas" else parts
    return root.joinpath(top, *rest) if top == "data" else root.joinpath("schemas", *rest)


def load_document(path: str | Path) -> Any:
    """Parse a JSON or YAML file; unreadable files raise :class:`InputError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(p), [_fe("", "file not found")]) from None
    except OSError as exc:
        raise InputError(str(p), [_fe("", f"cannot read file: {exc.strerror}")]) from None
    try:
        if p.suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, yaml.YAMLError, ValueError) as exc:
        kind = "YAML" if p.suffix in (".yaml", ".yml") else "JSON"
        raise InputError(str(p), [_fe("", f"not valid {kind}: {exc}")]) from None


def _reject_constant(name: str) -> float:
    return float(name.lower().replace("infinity", "inf"))


def _fe(path: str, reason: str) -> Any:
    from solver.errors import FieldError

    return FieldError(path or "<document>", reason)


# ----------------------------------------------------------------------------- readers


class _Reader:
    """Typed, path-aware accessors that record errors instead of raising."""

    def __init__(self, col: Collector) -> None:
        self.col = col

    def obj(self, value: Any, path: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.col.add(path or "<document>", "must be an object", value)
            return None
        return value

    def unknown(self, obj: Mapping[str, Any], path: str, allowed: set[str]) -> None:
        for key in obj:
            if key not in allowed:
                self.col.add(_join(path, key), "unknown field")

    def lst(self, obj: Mapping[str, Any], key: str, path: str, required: bool = False) -> list[Any]:
        if key not in obj or obj[key] is None:
            if required:
                self.col.add(_join(path, key), "is required")
            return []
        value = obj[key]
        if not isinstance(value, list):
            self.col.add(_join(path, key), "must be a list", value)
            return []
        return value

    def string(self, obj: Mapping[str, Any], key: str, path: str, default: Any = _Missing) -> Any:
        p = _join(path, key)
        if key not in obj or obj[key] is None:
            if default is _Missing:
                self.col.add(p, "is required")
                return None
            return default
        value = obj[key]
        if not isinstance(value, str) or not value.strip():
            self.col.add(p, "must be a non-empty string", value)
            return None
        return value

    def boolean(self, obj: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = obj.get(key, default)
        if not isinstance(value, bool):
            self.col.add(_join(path, key), "must be true or false", value)
            return default
        return value

    def number(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        *,
        default: Any = _Missing,
        minimum: float | None = None,
        positive: bool = False,
        integer: bool = False,
        maximum: float | None = None,
    ) -> Any:
        p = _join(path, key)
        if key not in obj or obj[key] is None:
            if default is _Missing:
                self.col.add(p, "is required")
                return None
            return default
        return self.check_number(obj[key], p, minimum=minimum, positive=positive, integer=integer,
                                 maximum=maximum)

    def check_number(
        self,
        value: Any,
        p: str,
        *,
        minimum: float | None = None,
        positive: bool = False,
        integer: bool = False,
        maximum: float | None = None,
    ) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.col.add(p, "must be an integer" if integer else "must be a number", value)
            return None
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            self.col.add(p, "must be finite", value)
            return None
        if integer and not float(value).is_integer():
            self.col.add(p, "must be an integer", value)
            return None
        if positive and value <= 0:
            self.col.add(p, "must be > 0", value)
            return None
        if minimum is not None and value < minimum:
            self.col.add(p, f"must be >= {_fmt(minimum)}", value)
            return None
        if maximum is not None and value > maximum:
            self.col.add(p, f"must be <= {_fmt(maximum)}", value)
            return None
        return int(value) if integer else float(value)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _unique_ids(r: _Reader, items: list[tuple[str, str | None]], seen: dict[str, str]) -> None:
    for path, ident in items:
        if ident is None:
            continue
        if ident in seen:
            r.col.add(_join(path, "id"), f"duplicate id, first used at {seen[ident]}", ident)
        else:
            seen[ident] = path


# ----------------------------------------------------------------------------- catalog


def _gpu_type(r: _Reader, raw: Any, path: str, defaults: Mapping[str, Any]) -> GpuType | None:
    o = r.obj(raw, path)
    if o is None:
        return None
    r.unknown(o, path, {"name", "memory_gib", "bf16_tflops", "mem_bw_gbps", "tdp_w", "idle_w",
                        "min_power_cap_w", "max_power_cap_w", "power_cap_levels_w",
                        "nvlink_bw_gbps", "power_model", "sources"})
    name = r.string(o, "name", path)
    mem = r.number(o, "memory_gib", path, positive=True)
    tflops = r.number(o, "bf16_tflops", path, positive=True)
    bw = r.number(o, "mem_bw_gbps", path, positive=True)
    tdp = r.number(o, "tdp_w", path, positive=True)
    idle = r.number(o, "idle_w", path, minimum=0)
    cmin = r.number(o, "min_power_cap_w", path, positive=True)
    cmax = r.number(o, "max_power_cap_w", path, positive=True)
    nvbw = r.number(o, "nvlink_bw_gbps", path, default=0.0, minimum=0)
    if idle is not None and tdp is not None and idle >= tdp:
        r.col.add(_join(path, "idle_w"), f"must be < tdp_w ({_fmt(tdp)})", idle)
    if cmin is not None and cmax is not None and cmin > cmax:
        r.col.add(_join(path, "min_power_cap_w"), f"must be <= max_power_cap_w ({_fmt(cmax)})", cmin)
    levels: list[float] = []
    raw_levels = r.lst(o, "power_cap_levels_w", path)
    for i, v in enumerate(raw_levels):
        lp = f"{_join(path, 'power_cap_levels_w')}[{i}]"
        x = r.check_number(v, lp, positive=True)
        if x is None:
            continue
        if cmin is not None and cmax is not None and not cmin <= x <= cmax:
            r.col.add(lp, f"must be within [min_power_cap_w, max_power_cap_w] = [{_fmt(cmin)}, {_fmt(cmax)}]", x)
            continue
        levels.append(x)
    if not raw_levels and cmax is not None:
        levels = [cmax]
    pm_raw = o.get("power_model", defaults.get("power_model", {}))
    pm = _power_model(r, pm_raw, _join(path, "power_model"))
    sources_raw = o.get("sources", {})
    sources: tuple[tuple[str, str], ...] = ()
    if isinstance(sources_raw, dict):
        sources = tuple(sorted((str(k), str(v)) for k, v in sources_raw.items()))
        for k in sources_raw:
            _text(r, sources_raw, k, _join(path, "sources"))
    elif sources_raw is not None:
        r.col.add(_join(path, "sources"), "must be a mapping field -> source", sources_raw)
    if None in (name, mem, tflops, bw, tdp, idle, cmin, cmax) or pm is None:
        return None
    return GpuType(
        name=name, memory_gib=mem, bf16_tflops=tflops, mem_bw_gbps=bw, tdp_w=tdp, idle_w=idle,
        min_power_cap_w=cmin, max_power_cap_w=cmax,
        power_cap_levels_w=tuple(sorted(set(levels), reverse=True)), nvlink_bw_gbps=nvbw,
        power_model=pm, sources=sources,
    )


def _power_model(r: _Reader, raw: Any, path: str) -> PowerModel | None:
    o = r.obj(raw, path)
    if o is None:
        return None
    r.unknown(o, path, {"train_frac", "prefill_frac", "decode_frac_by_batch", "beta", "idle_ctx_extra_w"})
    d = PowerModel()
    train = r.number(o, "train_frac", path, default=d.train_frac, positive=True, maximum=1.5)
    prefill = r.number(o, "prefill_frac", path, default=d.prefill_frac, positive=True, maximum=1.5)
    beta = r.number(o, "beta", path, default=d.beta, minimum=0, maximum=2)
    extra = r.number(o, "idle_ctx_extra_w", path, default=d.idle_ctx_extra_w, minimum=0)
    table = o.get("decode_frac_by_batch")
    batches, fracs = d.decode_batches, d.decode_fracs
    if table is not None:
        tp = _join(path, "decode_frac_by_batch")
        if not isinstance(table, dict) or not table:
            r.col.add(tp, "must be a non-empty mapping batch -> fraction", table)
        else:
            pts: list[tuple[int, float]] = []
            for k, v in table.items():
                try:
                    b = int(k)
                except (TypeError, ValueError):
                    b = 0
                if b < 1:
                    r.col.add(f"{tp}.{k}", "batch size must be an integer >= 1")
                    continue
                f = r.check_number(v, f"{tp}.{k}", positive=True, maximum=1.5)
                if f is not None and b >= 1:
                    pts.append((b, f))
            pts.sort()
            if pts:
                batches = tuple(b for b, _ in pts)
                fracs = tuple(f for _, f in pts)
    if None in (train, prefill, beta, extra):
        return None
    return PowerModel(train_frac=train, prefill_frac=prefill, decode_batches=batches,
                      decode_fracs=fracs, beta=beta, idle_ctx_extra_w=extra)


def _gpu_type_to_dict(t: GpuType) -> dict[str, Any]:
    pm = t.power_model
    return {
        "name": t.name, "memory_gib": t.memory_gib, "bf16_tflops": t.bf16_tflops,
        "mem_bw_gbps": t.mem_bw_gbps, "tdp_w": t.tdp_w, "idle_w": t.idle_w,
        "min_power_cap_w": t.min_power_cap_w, "max_power_cap_w": t.max_power_cap_w,
        "power_cap_levels_w": list(t.power_cap_levels_w), "nvlink_bw_gbps": t.nvlink_bw_gbps,
        "power_model": {
            "train_frac": pm.train_frac, "prefill_frac": pm.prefill_frac,
            "decode_frac_by_batch": {str(b): f for b, f in zip(pm.decode_batches, pm.decode_fracs, strict=True)},
            "beta": pm.beta, "idle_ctx_extra_w": pm.idle_ctx_extra_w,
        },
        "sources": dict(t.sources),
    }


def _llm_model(r: _Reader, raw: Any, path: str) -> LlmModel | None:
    o = r.obj(raw, path)
    if o is None:
        return None
    r.unknown(o, path, {"name", "params_b", "n_layers", "hidden", "n_heads", "n_kv_heads", "d_head", "source"})
    name = r.string(o, "name", path)
    _text(r, o, "source", path)
    vals = [r.number(o, k, path, positive=True, integer=k != "params_b")
            for k in ("params_b", "n_layers", "hidden", "n_heads", "n_kv_heads", "d_head")]
    if name is None or None in vals:
        return None
    return LlmModel(name, vals[0], vals[1], vals[2], vals[3], vals[4], vals[5], str(o.get("source", "")))


def _llm_to_dict(m: LlmModel) -> dict[str, Any]:
    return {"name": m.name, "params_b": m.params_b, "n_layers": m.n_layers, "hidden": m.hidden,
            "n_heads": m.n_heads, "n_kv_heads": m.n_kv_heads, "d_head": m.d_head, "source": m.source}


def load_catalog(path: str | Path | None = None) -> tuple[GpuType, ...]:
    """GPU types of the bundled catalog (``data/catalog/gpu_types.yaml``) or of ``path``."""
    p = Path(path) if path is not None else data_path("catalog", "gpu_types.yaml")
    doc = load_document(p)
    col = Collector(str(p))
    r = _Reader(col)
    o = r.obj(doc, "")
    types: list[GpuType] = []
    if o is not None:
        defaults = o.get("defaults", {}) or {}
        seen: dict[str, str] = {}
        for i, raw in enumerate(r.lst(o, "gpu_types", "", required=True)):
            t = _gpu_type(r, raw, f"gpu_types[{i}]", defaults)
            if t is not None:
                _unique_name(r, t.name, f"gpu_types[{i}]", seen)
                types.append(t)
    col.raise_if_any()
    return tuple(types)


def load_llm_models(path: str | Path | None = None) -> tuple[LlmModel, ...]:
    """LLM architectures of the bundled catalog (``data/catalog/llm_models.yaml``) or ``path``."""
    p = Path(path) if path is not None else data_path("catalog", "llm_models.yaml")
    doc = load_document(p)
    col = Collector(str(p))
    r = _Reader(col)
    o = r.obj(doc, "")
    models: list[LlmModel] = []
    if o is not None:
        seen: dict[str, str] = {}
        for i, raw in enumerate(r.lst(o, "models", "", required=True)):
            m = _llm_model(r, raw, f"models[{i}]")
            if m is not None:
                _unique_name(r, m.name, f"models[{i}]", seen)
                models.append(m)
    col.raise_if_any()
    return tuple(models)


def _text(r: _Reader, o: Mapping[str, Any], key: str, path: str) -> None:
    """Record an error if the optional free-text field ``key`` is present but not a string."""
    if key in o and not isinstance(o[key], str):
        r.col.add(_join(path, key), "must be a string", o[key])


def _unique_name(r: _Reader, name: str, path: str, seen: dict[str, str]) -> None:
    if name in seen:
        r.col.add(_join(path, "name"), f"duplicate name, first used at {seen[name]}", name)
    seen[name] = path


# ----------------------------------------------------------------------------- cluster


Groups = tuple[tuple[int, ...], ...]


def _partition(r: _Reader, raw: Any, path: str, n: int, default: Groups) -> Groups:
    if raw is None:
        return default
    if not isinstance(raw, list) or not all(isinstance(g, list) for g in raw):
        r.col.add(path, "must be a list of lists of local GPU indices", raw)
        return default
    if not any(raw):
        r.col.add(path, f"must cover every local GPU index 0..{n - 1}", raw)
        return default
    groups: list[tuple[int, ...]] = []
    seen: set[int] = set()
    for k, grp in enumerate(raw):
        cur: list[int] = []
        for m, v in enumerate(grp):
            x = r.check_number(v, f"{path}[{k}][{m}]", minimum=0, integer=True, maximum=n - 1)
            if x is None:
                continue
            if x in seen:
                r.col.add(f"{path}[{k}][{m}]", "GPU index appears in two groups", x)
                continue
            seen.add(x)
            cur.append(x)
        if cur:
            groups.append(tuple(cur))
    missing = sorted(set(range(n)) - seen)
    if missing and len(seen) > 0:
        r.col.add(path, f"must cover every local GPU index 0..{n - 1}; missing {missing}")
    return tuple(groups) if groups else default


def _node(r: _Reader, raw: Any, path: str, rack: str | None, pod: str | None,
          known_types: set[str]) -> Node | None:
    o = r.obj(raw, path)
    if o is None:
        return None
    r.unknown(o, path, {"id", "template", "gpu_type", "gpu_count", "nvlink_domains", "numa_domains",
                        "host_power_w", *(("rack", "pod") if rack is None else ())})
    tname = o.get("template")
    tpl = None
    if tname is not None:
        tpl = TEMPLATES.get(tname) if isinstance(tname, str) else None
        if tpl is None:
            r.col.add(_join(path, "template"), f"unknown node template; known: {sorted(TEMPLATES)}", tname)
            return None
    ident = r.string(o, "id", path)
    gtype = r.string(o, "gpu_type", path, default=tpl.gpu_type if tpl else _Missing)
    if gtype is not None and gtype not in known_types:
        r.col.add(_join(path, "gpu_type"), "unknown GPU type", gtype)
        gtype = None
    count = r.number(o, "gpu_count", path, default=tpl.gpu_count if tpl else _Missing, positive=True, integer=True)
    host = r.number(o, "host_power_w", path, default=tpl.host_power_w if tpl else 0.0, minimum=0)
    rk = rack if rack is not None else r.string(o, "rack", path)
    pd = pod if pod is not None else r.string(o, "pod", path)
    if ident is None or gtype is None or count is None or host is None or rk is None or pd is None:
        return None
    nv_default = tpl.nvlink_domains if tpl and tpl.gpu_count == count else tuple((i,) for i in range(count))
    numa_default = tpl.numa_domains if tpl and tpl.gpu_count == count else (tuple(range(count)),)
    nv = _partition(r, o.get("nvlink_domains"), _join(path, "nvlink_domains"), count, nv_default)
    numa = _partition(r, o.get("numa_domains"), _join(path, "numa_domains"), count, numa_default)
    return Node(id=ident, gpu_type=gtype, gpu_count=count, nvlink_domains=nv, numa_domains=numa,
                host_power_w=host, rack=rk, pod=pd, template=tname or "")


def _cluster(r: _Reader, raw: Any, path: str, known_types: set[str]) -> tuple[list[Node], LinkSpec]:
    o = r.obj(raw, path)
    if o is None:
        return [], LinkSpec()
    r.unknown(o, path, {"name", "links", "nodes", "pods"})
    _text(r, o, "name", path)
    links = LinkSpec()
    if "links" in o:
        lo = r.obj(o["links"], _join(path, "links"))
        if lo is not None:
            lp = _join(path, "links")
            r.unknown(lo, lp, {"pcie_bw_gbps", "leaf_bw_gbps", "spine_bw_gbps", "core_bw_gbps"})
            vals = {k: r.number(lo, k, lp, default=getattr(links, k), positive=True)
                    for k in ("pcie_bw_gbps", "leaf_bw_gbps", "spine_bw_gbps", "core_bw_gbps")}
            if None not in vals.values():
                links = LinkSpec(**vals)
    nodes: list[Node] = []
    where: list[str] = []  # document path of each node, for messages
    for i, raw_node in enumerate(r.lst(o, "nodes", path)):
        n = _node(r, raw_node, f"{_join(path, 'nodes')}[{i}]", None, None, known_types)
        if n is not None:
            nodes.append(n)
            where.append(f"{_join(path, 'nodes')}[{i}]")
    for i, raw_pod in enumerate(r.lst(o, "pods", path)):
        pp = f"{_join(path, 'pods')}[{i}]"
        po = r.obj(raw_pod, pp)
        if po is None:
            continue
        r.unknown(po, pp, {"id", "racks"})
        pod_id = r.string(po, "id", pp)
        for k, raw_rack in enumerate(r.lst(po, "racks", pp, required=True)):
            rp = f"{pp}.racks[{k}]"
            ro = r.obj(raw_rack, rp)
            if ro is None:
                continue
            r.unknown(ro, rp, {"id", "nodes", "template"})
            rack_id = r.string(ro, "id", rp)
            entries = list(r.lst(ro, "nodes", rp))
            rt = ro.get("template")
            offset = 0  # entries expanded from the rack template come first
            if rt is not None:
                if rt not in RACK_TEMPLATES:
                    r.col.add(_join(rp, "template"), f"unknown rack template; known: {sorted(RACK_TEMPLATES)}", rt)
                else:
                    entries = [{"template": t, "count": c} for t, c in RACK_TEMPLATES[rt]] + entries
                    offset = len(RACK_TEMPLATES[rt])
            if pod_id is None or rack_id is None:
                continue
            idx = 0
            for m, entry in enumerate(entries):
                ep = _join(rp, "template") if m < offset else f"{rp}.nodes[{m - offset}]"
                eo = r.obj(entry, ep)
                if eo is None:
                    continue
                count = r.number(eo, "count", ep, default=1, positive=True, integer=True) or 1
                for _ in range(count):
                    e = dict(eo)
                    e.pop("count", None)
                    if count > 1 or "id" not in e:
                        e["id"] = f"{rack_id}-n{idx}" if "id" not in eo else f"{eo['id']}-{idx}"
                    idx += 1
                    n = _node(r, e, ep, rack_id, pod_id, known_types)
                    if n is not None:
                        nodes.append(n)
                        where.append(ep)
    if not nodes and not r.col.errors:
        r.col.add(_join(path, "nodes"), "the cluster has no nodes")
    seen: dict[str, str] = {}
    _unique_ids(r, list(zip(where, [n.id for n in nodes], strict=True)), seen)
    return nodes, links


def load_cluster_spec(path: str | Path, gpu_types: tuple[GpuType, ...] | None = None) -> tuple[list[Node], LinkSpec]:
    """Nodes and links of a cluster spec (YAML or JSON with ``pods``/``racks`` or ``nodes``)."""
    types = gpu_types if gpu_types is not None else load_catalog()
    doc = load_document(path)
    col = Collector(str(path))
    if isinstance(doc, dict):
        doc = dict(doc)
        version, kind = doc.pop("schema_version", SCHEMA_VERSION), doc.pop("kind", CLUSTER_KIND)
        if version != SCHEMA_VERSION:
            col.add("schema_version", f"must be {SCHEMA_VERSION}", version)
        if kind != CLUSTER_KIND:
            col.add("kind", f"must be '{CLUSTER_KIND}'", kind)
    nodes, links = _cluster(_Reader(col), doc, "", {t.name for t in types})
    col.raise_if_any()
    return nodes, links


def _node_to_dict(n: Node) -> dict[str, Any]:
    return {"id": n.id, "gpu_type": n.gpu_type, "gpu_count": n.gpu_count,
            "nvlink_domains": [list(d) for d in n.nvlink_domains],
            "numa_domains": [list(d) for d in n.numa_domains], "host_power_w": n.host_power_w,
            "rack": n.rack, "pod": n.pod, **({"template": n.template} if n.template else {})}


# ----------------------------------------------------------------------------- work


def _running(r: _Reader, raw: Any, path: str) -> Running | None:
    o = r.obj(raw, path)
    if o is None:
        return None
    r.unknown(o, path, {"gpus", "power_cap_w", "migration_cost_s", "remaining_work", "started_s"})
    gpus = [g for g in r.lst(o, "gpus", path, required=True)]
    for i, g in enumerate(gpus):
        if not isinstance(g, str):
            r.col.add(f"{path}.gpus[{i}]", "must be a GPU id string '<node>/<index>'", g)
    if len(set(map(str, gpus))) != len(gpus):
        r.col.add(_join(path, "gpus"), "lists a GPU twice", gpus)
    cap = r.number(o, "power_cap_w", path, default=None, positive=True)
    mig = r.number(o, "migration_cost_s", path, default=0.0, minimum=0)
    rem = r.number(o, "remaining_work", path, default=None, positive=True)
    started = r.number(o, "started_s", path, default=0.0)
    if not gpus:
        if "gpus" in o:
            r.col.add(_join(path, "gpus"), "must list at least one GPU")
        return None
    return Running(gpus=tuple(str(g) for g in gpus), power_cap_w=cap, migration_cost_s=mig or 0.0,
                   remaining_work=rem, started_s=started or 0.0)


def _type_list(r: _Reader, o: Mapping[str, Any], key: str, path: str, known: set[str]) -> tuple[str, ...]:
    out: list[str] = []
    for i, v in enumerate(r.lst(o, key, path)):
        if not isinstance(v, str) or v not in known:
            r.col.add(f"{_join(path, key)}[{i}]", "unknown GPU type", v)
        else:
            out.append(v)
    return tuple(out)


_TRAIN_KEYS = {"id", "num_gpus", "min_gpus", "tp", "work", "throughput_per_gpu", "memory_gib",
               "tier_slowdown", "arrival_s", "deadline_s", "priority", "preemptible", "running",
               "model", "llm"}


def _training(r: _Reader, raw: Any, path: str, types: Mapping[str, GpuType],
              models: Mapping[str, LlmModel]) -> TrainingJob | None:
    o = r.obj(raw, path)
    if o is None:
        return None
    r.unknown(o, path, _TRAIN_KEYS)
    ident = r.string(o, "id", path)
    n = r.number(o, "num_gpus", path, positive=True, integer=True)
    nmin = r.number(o, "min_gpus", path, default=None, positive=True, integer=True)
    tp = r.number(o, "tp", path, default=1, positive=True, integer=True)
    if n is not None and nmin is not None and nmin > n:
        r.col.add(_join(path, "min_gpus"), f"must be <= num_gpus ({n})", nmin)
    if n is not None and tp is not None and n % tp:
        r.col.add(_join(path, "tp"), f"must divide num_gpus ({n})", tp)
    arrival = r.number(o, "arrival_s", path, default=0.0, minimum=0)
    deadline = r.number(o, "deadline_s", path, default=None)
    if deadline is not None and arrival is not None and deadline < arrival:
        r.col.add(_join(path, "deadline_s"), "must be >= arrival_s", deadline)
    priority = r.number(o, "priority", path, default=1.0, positive=True)
    preempt = r.boolean(o, "preemptible", path, True)
    model = r.string(o, "model", path, default="")
    work: float | None
    thr: list[tuple[str, float]] = []
    mem: float | None
    if "llm" in o:
        lp = _join(path, "llm")
        lo = r.obj(o["llm"], lp)
        work, mem = None, None
        if lo is not None:
            from solver.perf import training_flops, training_memory_gib

            r.unknown(lo, lp, {"model", "train_tokens_b", "mfu"})
            for key in ("work", "throughput_per_gpu"):
                if key in o:
                    r.col.add(_join(path, key), "must not be given together with llm (it is derived)")
            given_mem = r.number(o, "memory_gib", path, default=None, positive=True)
            mname = r.string(lo, "model", lp)
            if mname is not None and mname not in models:
                r.col.add(_join(lp, "model"), "unknown LLM model", mname)
                mname = None
            tokens = r.number(lo, "train_tokens_b", lp, positive=True)
            mfu = r.number(lo, "mfu", lp, default=0.4, positive=True, maximum=1)
            if mname is not None and tokens is not None and mfu is not None and n is not None:
                m = models[mname]
                work = training_flops(m.params_b, tokens) / 1e15  # PFLOP
                thr = [(t.name, t.bf16_tflops * mfu / 1e3) for t in types.values()]  # PFLOP/s per GPU
                mem = given_mem or training_memory_gib(m.params_b, nmin or n)
                model = model or mname
    else:
        work = r.number(o, "work", path, positive=True)
        mem = r.number(o, "memory_gib", path, positive=True)
        tp_raw = o.get("throughput_per_gpu")
        tpath = _join(path, "throughput_per_gpu")
        if not isinstance(tp_raw, dict) or not tp_raw:
            r.col.add(tpath, "must be a non-empty mapping GPU type -> work units/s per GPU", tp_raw)
        else:
            for k, v in tp_raw.items():
                if k not in types:
                    r.col.add(f"{tpath}.{k}", "unknown GPU type")
                    continue
                x = r.check_number(v, f"{tpath}.{k}", positive=True)
                if x is not None:
                    thr.append((k, x))
    slow_raw = o.get("tier_slowdown")
    slow: tuple[float, ...] = DEFAULT_TIER_SLOWDOWN
    if slow_raw is not None:
        sp = _join(path, "tier_slowdown")
        if not isinstance(slow_raw, list) or len(slow_raw) != len(TIER_NAMES):
            r.col.add(sp, f"must list {len(TIER_NAMES)} factors for tiers {list(TIER_NAMES)}", slow_raw)
        else:
            vals = [r.check_number(v, f"{sp}[{i}]", minimum=1) for i, v in enumerate(slow_raw)]
            if None not in vals:
                if any(b < a for a, b in itertools.pairwise(vals)):
                    r.col.add(sp, "must be non-decreasing from tight to loose tiers", slow_raw)
                else:
                    slow = tuple(vals)
    running = _running(r, o["running"], _join(path, "running")) if o.get("running") is not None else None
    if None in (ident, n, tp, arrival, priority) or work is None or mem is None:
        return None
    return TrainingJob(id=ident, num_gpus=n, work=work, throughput_per_gpu=tuple(sorted(thr)), memory_gib=mem,
                       min_gpus=nmin, tp=tp, tier_slowdown=slow, arrival_s=arrival, deadline_s=deadline,
                       priority=priority, preemptible=preempt, running=running, model=model or "")


def _inference(r: _Reader, raw: Any, path: str, types: Mapping[str, GpuType],
               models: Mapping[str, LlmModel]) -> InferenceService | None:
    o = r.obj(raw, path)
    if o is None:
        return None
    r.unknown(o, path, {"id", "model", "request_rate_rps", "prompt_tokens", "output_tokens", "ttft_slo_s",
                        "tpot_slo_s", "gpu_types", "capacity", "priority", "arrival_s", "preemptible", "running"})
    ident = r.string(o, "id", path)
    model = r.string(o, "model", path)
    if model is not None and model not in models:
        r.col.add(_join(path, "model"), "unknown LLM model", model)
        model = None
    rate = r.number(o, "request_rate_rps", path, positive=True)
    pt = r.number(o, "prompt_tokens", path, positive=True)
    ot = r.number(o, "output_tokens", path, positive=True)
    ttft = r.number(o, "ttft_slo_s", path, positive=True)
    tpot = r.number(o, "tpot_slo_s", path, positive=True)
    allowed = _type_list(r, o, "gpu_types", path, set(types))
    cap: list[tuple[str, int, float]] = []
    if o.get("capacity") is not None:
        cp = _join(path, "capacity")
        co = r.obj(o["capacity"], cp)
        for k, v in (co or {}).items():
            if k not in types:
                r.col.add(f"{cp}.{k}", "unknown GPU type")
                continue
            vo = r.obj(v, f"{cp}.{k}")
            if vo is None:
                continue
            r.unknown(vo, f"{cp}.{k}", {"tp", "max_rps_per_replica"})
            t = r.number(vo, "tp", f"{cp}.{k}", positive=True, integer=True)
            rps = r.number(vo, "max_rps_per_replica", f"{cp}.{k}", positive=True)
            if t is not None and rps is not None:
                cap.append((k, t, rps))
    priority = r.number(o, "priority", path, default=1.0, positive=True)
    arrival = r.number(o, "arrival_s", path, default=0.0, minimum=0)
    preempt = r.boolean(o, "preemptible", path, True)
    running = _running(r, o["running"], _join(path, "running")) if o.get("running") is not None else None
    if None in (ident, model, rate, pt, ot, ttft, tpot, priority, arrival):
        return None
    return InferenceService(id=ident, model=model, request_rate_rps=rate, prompt_tokens=pt, output_tokens=ot,
                            ttft_slo_s=ttft, tpot_slo_s=tpot, gpu_types=allowed, capacity=tuple(sorted(cap)),
                            priority=priority, arrival_s=arrival, preemptible=preempt, running=running)


def _fractional(r: _Reader, raw: Any, path: str, types: Mapping[str, GpuType]) -> FractionalTask | None:
    o = r.obj(raw, path)
    if o is None:
        return None
    r.unknown(o, path, {"id", "gpu_milli", "memory_gib", "duration_s", "gpu_types", "priority", "arrival_s",
                        "preemptible", "running"})
    ident = r.string(o, "id", path)
    milli = r.number(o, "gpu_milli", path, integer=True, minimum=1, maximum=999)
    mem = r.number(o, "memory_gib", path, positive=True)
    dur = r.number(o, "duration_s", path, positive=True)
    allowed = _type_list(r, o, "gpu_types", path, set(types))
    priority = r.number(o, "priority", path, default=1.0, positive=True)
    arrival = r.number(o, "arrival_s", path, default=0.0, minimum=0)
    preempt = r.boolean(o, "preemptible", path, True)
    running = _running(r, o["running"], _join(path, "running")) if o.get("running") is not None else None
    if running is not None and len(running.gpus) != 1:
        r.col.add(_join(path, "running.gpus"), "a fractional task runs on exactly one GPU", list(running.gpus))
    if None in (ident, milli, mem, dur, priority, arrival):
        return None
    return FractionalTask(id=ident, gpu_milli=milli, memory_gib=mem, duration_s=dur, gpu_types=allowed,
                          priority=priority, arrival_s=arrival, preemptible=preempt, running=running)


def _objective(r: _Reader, raw: Any, path: str) -> ObjectiveWeights:
    d = ObjectiveWeights()
    if raw is None:
        return d
    o = r.obj(raw, path)
    if o is None:
        return d
    keys = ("energy_per_kwh", "slo_violation", "tardiness_per_h", "unplaced_per_gpu", "migration")
    r.unknown(o, path, {*keys, "horizon_s", "pue", "allow_power_down"})
    vals: dict[str, Any] = {k: r.number(o, k, path, default=getattr(d, k), minimum=0) for k in keys}
    vals["horizon_s"] = r.number(o, "horizon_s", path, default=d.horizon_s, positive=True)
    vals["pue"] = r.number(o, "pue", path, default=d.pue, minimum=1)
    vals["allow_power_down"] = r.boolean(o, "allow_power_down", path, d.allow_power_down)
    if None in vals.values():
        return d
    return ObjectiveWeights(**vals)


# ----------------------------------------------------------------------------- instance

_TOP_KEYS = {"schema_version", "kind", "name", "now_s", "gpu_types", "llm_models", "cluster", "training_jobs",
             "inference_services", "fractional_tasks", "objective", "power_budget_w", "description"}


def instance_from_dict(doc: Any, source: str = "<instance>") -> Instance:
    """Validate a parsed instance document and build the :class:`Instance`.

    Raises
    ------
    InputError
        Listing every invalid field, each with path, value and reason.
    """
    col = Collector(source)
    r = _Reader(col)
    o = r.obj(doc, "")
    if o is None:
        col.raise_if_any()
        raise AssertionError  # pragma: no cover
    r.unknown(o, "", _TOP_KEYS)
    version = o.get("schema_version")
    if "schema_version" not in o:
        col.add("schema_version", "is required")
    elif version != SCHEMA_VERSION:
        col.add("schema_version", f"must be {SCHEMA_VERSION}", version)
    if o.get("kind", INSTANCE_KIND) != INSTANCE_KIND:
        col.add("kind", f"must be '{INSTANCE_KIND}'", o.get("kind"))
    name = r.string(o, "name", "", default="instance") or "instance"
    _text(r, o, "description", "")
    now = r.number(o, "now_s", "", default=0.0, minimum=0)
    catalog = {t.name: t for t in load_catalog()}
    seen: dict[str, str] = {}
    for i, raw in enumerate(r.lst(o, "gpu_types", "")):
        t = _gpu_type(r, raw, f"gpu_types[{i}]", {})
        if t is not None:
            _unique_name(r, t.name, f"gpu_types[{i}]", seen)
            catalog[t.name] = t
        elif isinstance(raw, dict) and isinstance(raw.get("name"), str):  # known name: no cascade of errors
            catalog.setdefault(raw["name"], GpuType(raw["name"], 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, (1.0,)))
    models = {m.name: m for m in load_llm_models()}
    seen = {}
    for i, raw in enumerate(r.lst(o, "llm_models", "")):
        m = _llm_model(r, raw, f"llm_models[{i}]")
        if m is not None:
            _unique_name(r, m.name, f"llm_models[{i}]", seen)
            models[m.name] = m
        elif isinstance(raw, dict) and isinstance(raw.get("name"), str):  # known name: no cascade of errors
            models.setdefault(raw["name"], LlmModel(raw["name"], 1.0, 1, 1, 1, 1, 1))
    if "cluster" not in o:
        col.add("cluster", "is required")
        nodes: list[Node] = []
        links = LinkSpec()
    else:
        nodes, links = _cluster(r, o["cluster"], "cluster", set(catalog))
    training = [_training(r, x, f"training_jobs[{i}]", catalog, models)
                for i, x in enumerate(r.lst(o, "training_jobs", ""))]
    inference = [_inference(r, x, f"inference_services[{i}]", catalog, models)
                 for i, x in enumerate(r.lst(o, "inference_services", ""))]
    fractional = [_fractional(r, x, f"fractional_tasks[{i}]", catalog)
                  for i, x in enumerate(r.lst(o, "fractional_tasks", ""))]
    objective = _objective(r, o.get("objective"), "objective")
    budget = r.number(o, "power_budget_w", "", default=None, positive=True)
    ids: dict[str, str] = {}
    _unique_ids(r, [(f"training_jobs[{i}]", j.id if j else None) for i, j in enumerate(training)]
                + [(f"inference_services[{i}]", j.id if j else None) for i, j in enumerate(inference)]
                + [(f"fractional_tasks[{i}]", j.id if j else None) for i, j in enumerate(fractional)], ids)
    col.raise_if_any()
    used_types = {n.gpu_type for n in nodes}
    used_types |= {name for j in training if j for name, _ in j.throughput_per_gpu if name in used_types}
    used_models = {s.model for s in inference if s}
    inst = Instance(
        name=name,
        gpu_types=tuple(catalog[t] for t in sorted(used_types)),
        llm_models=tuple(models[m] for m in sorted(used_models)),
        nodes=tuple(nodes), links=links,
        training_jobs=tuple(_restrict_types(j, used_types) for j in training if j),
        inference_services=tuple(j for j in inference if j),
        fractional_tasks=tuple(j for j in fractional if j),
        objective=objective, power_budget_w=budget, now_s=now or 0.0,
    )
    _cross_check(inst, col)
    col.raise_if_any()
    return inst


def _restrict_types(job: TrainingJob, used: set[str]) -> TrainingJob:
    kept = tuple((k, v) for k, v in job.throughput_per_gpu if k in used)
    if kept == job.throughput_per_gpu:
        return job
    from dataclasses import replace

    return replace(job, throughput_per_gpu=kept)


def _cross_check(inst: Instance, col: Collector) -> None:
    """Checks that need the whole instance: GPU ids, running sets, jobs that never fit."""
    from solver.compiled import _type_stats, options_exist

    stats = _type_stats(inst)
    gpu_node: dict[str, str] = {}
    for n in inst.nodes:
        for g in n.gpu_ids():
            gpu_node[g] = n.id
    owner: dict[str, str] = {}
    milli: dict[str, int] = {}
    groups: tuple[tuple[str, tuple[Job, ...]], ...] = (
        ("training_jobs", inst.training_jobs), ("inference_services", inst.inference_services),
        ("fractional_tasks", inst.fractional_tasks))
    for key, jobs in groups:
        for i, j in enumerate(jobs):
            path = f"{key}[{i}]"
            if j.running is not None:
                types = set()
                for m, g in enumerate(j.running.gpus):
                    gp = f"{path}.running.gpus[{m}]"
                    if g not in gpu_node:
                        col.add(gp, "unknown GPU id", g)
                        continue
                    types.add(inst.node(gpu_node[g]).gpu_type)
                    if isinstance(j, FractionalTask):
                        milli[g] = milli.get(g, 0) + j.gpu_milli
                        if g in owner:
                            col.add(gp, f"GPU already used by running job '{owner[g]}'", g)
                        elif milli[g] > 1000:
                            col.add(gp, "fractional shares on this GPU exceed 1000 milli-GPU", g)
                    else:
                        if g in owner or g in milli:
                            col.add(gp, f"GPU already used by running job '{owner.get(g, 'a fractional task')}'", g)
                        owner[g] = j.id
                if len(types) > 1:
                    col.add(f"{path}.running.gpus", "spans several GPU types", sorted(types))
                elif types and isinstance(j, TrainingJob):
                    (tname,) = types
                    if j.throughput(tname) is None:
                        col.add(f"{path}.running.gpus", "runs on a GPU type without a throughput for the job", tname)
                    if len(j.running.gpus) not in j.gpu_counts():
                        col.add(f"{path}.running.gpus", f"must hold an allowed gang size {list(j.gpu_counts())}",
                                len(j.running.gpus))
            reason = options_exist(inst, j, stats)
            if reason:
                col.add(path, f"can never be placed: {reason}", j.id)


def instance_dropping_unplaceable(doc: dict[str, Any], source: str) -> tuple[Instance, dict[str, Any], tuple[str, ...]]:
    """Validate ``doc``, removing jobs that no GPU type of the cluster can ever run.

    Used where such jobs are an expected outcome rather than an input error (generated
    instances, what-if variants). Any other error is raised as usual.

    Returns
    -------
    tuple
        The instance, the document without the removed jobs, and the removed job ids.
    """
    import re

    try:
        return instance_from_dict(doc, source), doc, ()
    except InputError as err:
        drop: dict[str, set[int]] = {}
        for e in err.errors:
            m = re.fullmatch(r"(\w+)\[(\d+)\]", e.path)
            if m is None or "can never be placed" not in e.reason:
                raise
            drop.setdefault(m.group(1), set()).add(int(m.group(2)))
    kept = dict(doc)
    dropped: list[str] = []
    for key, idx in drop.items():
        dropped += [doc[key][i]["id"] for i in sorted(idx)]
        kept[key] = [j for i, j in enumerate(doc[key]) if i not in idx]
    return instance_from_dict(kept, source), kept, tuple(dropped)


def load_instance(path: str | Path) -> Instance:
    """Read and validate an instance file (JSON or YAML)."""
    return instance_from_dict(load_document(path), str(path))


def instance_to_dict(inst: Instance) -> dict[str, Any]:
    """The JSON document of ``inst`` (self-contained: the GPU types and models it uses)."""

    def running(rn: Running | None) -> dict[str, Any] | None:
        if rn is None:
            return None
        return {"gpus": list(rn.gpus), "power_cap_w": rn.power_cap_w, "migration_cost_s": rn.migration_cost_s,
                "remaining_work": rn.remaining_work, "started_s": rn.started_s}

    def drop_none(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if v is not None}

    ob = inst.objective
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": INSTANCE_KIND,
        "name": inst.name,
        "now_s": inst.now_s,
        "gpu_types": [_gpu_type_to_dict(t) for t in inst.gpu_types],
        "llm_models": [_llm_to_dict(m) for m in inst.llm_models],
        "cluster": {"links": vars(inst.links).copy(), "nodes": [_node_to_dict(n) for n in inst.nodes]},
        "training_jobs": [drop_none({
            "id": j.id, "num_gpus": j.num_gpus, "min_gpus": j.min_gpus, "tp": j.tp, "work": j.work,
            "throughput_per_gpu": dict(j.throughput_per_gpu), "memory_gib": j.memory_gib,
            "tier_slowdown": list(j.tier_slowdown), "arrival_s": j.arrival_s, "deadline_s": j.deadline_s,
            "priority": j.priority, "preemptible": j.preemptible, "running": running(j.running),
            "model": j.model or None}) for j in inst.training_jobs],
        "inference_services": [drop_none({
            "id": s.id, "model": s.model, "request_rate_rps": s.request_rate_rps,
            "prompt_tokens": s.prompt_tokens, "output_tokens": s.output_tokens, "ttft_slo_s": s.ttft_slo_s,
            "tpot_slo_s": s.tpot_slo_s, "gpu_types": list(s.gpu_types) or None,
            "capacity": {k: {"tp": t, "max_rps_per_replica": v} for k, t, v in s.capacity} or None,
            "priority": s.priority, "arrival_s": s.arrival_s, "preemptible": s.preemptible,
            "running": running(s.running)}) for s in inst.inference_services],
        "fractional_tasks": [drop_none({
            "id": f.id, "gpu_milli": f.gpu_milli, "memory_gib": f.memory_gib, "duration_s": f.duration_s,
            "gpu_types": list(f.gpu_types) or None, "priority": f.priority, "arrival_s": f.arrival_s,
            "preemptible": f.preemptible, "running": running(f.running)}) for f in inst.fractional_tasks],
        "objective": {k: getattr(ob, k) for k in ob.__dataclass_fields__},
        "power_budget_w": inst.power_budget_w,
    }


def save_instance(inst: Instance, path: str | Path) -> None:
    """Write ``inst`` as JSON (atomically: a temporary file renamed into place)."""
    write_json(instance_to_dict(inst), path)


def write_json(doc: Any, path: str | Path) -> None:
    """Write ``doc`` as indented JSON atomically (no partial file on error)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    text = json.dumps(doc, indent=1, allow_nan=False)
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(p)

