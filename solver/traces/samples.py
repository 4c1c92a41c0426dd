"""Small synthetic files in each supported trace format, for tests, docs and demos.

No row is copied from a real trace: every value is either written by hand below or drawn from
a :func:`numpy.random.default_rng` with a fixed seed. The files mimic the real formats (file
names, headers or their absence, separators, quoting, gzip, value spelling, a trailing empty
line in ``philly.csv``) and use the folder layout of the public-trace collection, so the same
relative paths work for samples and real traces:

====================================================================  ======  ===============
file (relative to the samples directory)                              rows    loader
====================================================================  ======  ===============
``philly/philly.csv``                                                 30      load_philly
``philly/cluster_machine_list.csv``                                   6       load_philly_machines
``gavel/simulation_throughputs.json``                                 5 jobs  load_gavel_throughputs
``gavel/traces/msr/seed=0/aaa111.trace.gz``                           12      load_gavel
``gavel/traces/msr/seed=0/bbb222.trace.gz``                           8       load_gavel
``gavel/traces/physical_cluster/small_test.trace``                    5       load_gavel
``alibaba-gpu-v2023-openb/openb_pod_list_default.csv``                30      load_openb
``alibaba-gpu-v2023-openb/openb_pod_list_multigpu20.csv``             10      load_openb
``alibaba-gpu-v2023-openb/openb_node_list_all_node.csv``              10      load_openb_nodes
``alibaba-gpu-v2023-openb/openb_node_list_gpu_node.csv``              8       load_openb_nodes
``alibaba-gpu-v2020-pai/pai_machine_spec.csv`` (+ ``.header``)        12      load_pai_machines
``alibaba-gpu-v2020-pai/pai_task_table.csv`` (+ ``.header``)          20      load_pai_tasks
``pollux-sia/sia_workloads/philly/workload-1.csv``                    20      load_sia
``pollux-sia/profiles/<app>/placements*.csv``                         2 apps  load_sia_profiles
``azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv``          40      load_azure
``azure-llm-inference-2023/AzureLLMInferenceTrace_code.csv``          25      load_azure
``canonical/jobs.csv``                                                20      load_generic_csv
====================================================================  ======  ===============

Regenerate with
``python -c "from solver.traces import write_samples; write_samples('data/samples')"``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final

import numpy as np

from solver.traces._io import PathLike

__all__ = ["SAMPLE_FILES", "SEED", "write_samples"]

SEED: Final[int] = 20240611
"""Seed of the random generator used for the sample files."""

SAMPLE_FILES: Final[tuple[str, ...]] = (
    "philly/philly.csv",
    "philly/cluster_machine_list.csv",
    "gavel/simulation_throughputs.json",
    "gavel/traces/msr/seed=0/aaa111.trace.gz",
    "gavel/traces/msr/seed=0/bbb222.trace.gz",
    "gavel/traces/physical_cluster/small_test.trace",
    "alibaba-gpu-v2023-openb/openb_pod_list_default.csv",
    "alibaba-gpu-v2023-openb/openb_pod_list_multigpu20.csv",
    "alibaba-gpu-v2023-openb/openb_node_list_all_node.csv",
    "alibaba-gpu-v2023-openb/openb_node_list_gpu_node.csv",
    "alibaba-gpu-v2020-pai/pai_machine_spec.csv",
    "alibaba-gpu-v2020-pai/pai_machine_spec.header",
    "alibaba-gpu-v2020-pai/pai_task_table.csv",
    "alibaba-gpu-v2020-pai/pai_task_table.header",
    "pollux-sia/sia_workloads/philly/workload-1.csv",
    "pollux-sia/profiles/cifar10/placements.csv",
    "pollux-sia/profiles/cifar10/placements-aws.csv",
    "pollux-sia/profiles/cifar10/placements-azure.csv",
    "pollux-sia/profiles/cifar10/scalability-aws.csv",
    "pollux-sia/profiles/cifar10/validation-128.csv",
    "pollux-sia/profiles/gpt_pmp/placements-rtx.csv",
    "azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv",
    "azure-llm-inference-2023/AzureLLMInferenceTrace_code.csv",
    "canonical/jobs.csv",
)
"""Every file :func:`write_samples` writes, relative to its directory."""


def _write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if rel.endswith(".gz"):
        with (
            path.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
        ):
            gz.write(text.encode("utf-8"))
    else:
        path.write_text(text, encoding="utf-8", newline="\n")
    return path


def _csv(header: str | None, rows: Sequence[Sequence[object]], sep: str = ",") -> str:
    lines = [] if header is None else [header]
    lines += [sep.join(str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def _philly(rng: np.random.Generator) -> tuple[str, str]:
    base = np.datetime64("2017-10-01T00:00:00", "s")
    clusters = ["a1b2c3", "d4e5f6", "0f9e8d"]
    rows: list[list[object]] = []
    for i in range(30):
        if i == 0:
            when, dur, gpus, vc = base + np.timedelta64(216000, "s"), 3600, 1, "a1b2c3"
        elif i == 3:
            when, dur, gpus, vc = base, 120, 8, "d4e5f6"
        elif i == 7:
            when, dur, gpus, vc = base + np.timedelta64(604000, "s"), 86400, 16, "0f9e8d"
        else:
            when = base + np.timedelta64(int(rng.integers(1, 600_000)), "s")
            dur = int(rng.integers(1, 200_000))
            gpus = int(rng.choice([1, 1, 1, 1, 2, 4, 8]))
            vc = str(rng.choice(clusters))
        stamp = str(when).replace("T", " ")
        rows.append([stamp, f"{float(dur):.1f}", gpus, f"{float(dur * gpus):.1f}", vc])
    jobs = _csv("timestamp,duration,num_gpus,gpu_time,cluster", rows) + "\n"
    machines = _csv(
        "machineId, number of GPUs, single GPU mem",
        [
            ["m0", 2, " 12GB"],
            ["m1", 2, " 12GB"],
            ["m10", 2, " 12GB"],
            ["m11", 2, " 12GB"],
            ["m2", 8, " 24GB"],
            ["m3", 8, " 24GB"],
        ],
    )
    return jobs, machines


_GAVEL_JOBS: Final[tuple[tuple[str, tuple[int, ...]], ...]] = (
    ("ResNet-18 (batch size 32)", (1, 2)),
    ("Transformer (batch size 64)", (1, 2)),
    ("A3C", (1,)),
)
_GAVEL_COMMANDS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "ResNet-18 (batch size 32)": (
            "python3 main.py --data_dir=%s/cifar10 --batch_size 32 ",
            "--num_steps",
        ),
        "Transformer (batch size 64)": (
            "python3 train.py -data %s/multi30k.pt -batch_size 64",
            "-step",
        ),
        "A3C": ("python3 main.py --env PongDeterministic-v4 --workers 4", "--max-steps"),
    }
)


def _gavel(rng: np.random.Generator) -> tuple[str, str, str, str]:
    speed = {"v100": 1.0, "p100": 0.6, "k80": 0.25}
    data: dict[str, dict[str, dict[str, object]]] = {}
    for worker in ("k80", "p100", "v100"):
        for consolidated in (True, False):
            name = worker if consolidated else f"{worker}_unconsolidated"
            entries: dict[str, dict[str, object]] = {}
            for job, scales in _GAVEL_JOBS:
                for scale in scales:
                    base = 10.0 if job.startswith("ResNet") else 4.0
                    value = base * speed[worker] * scale * (1.0 if consolidated else 0.8)
                    key = f"('{job}', {scale})"
                    entry: dict[str, object] = {"null": round(value, 6)}
                    if scale == 1:
                        entry["('A3C', 1)"] = [round(value / 2, 6), round(value / 3, 6)]
                    entries[key] = entry
            data[name] = entries
    throughputs = json.dumps(data, indent=4) + "\n"

    def trace(n: int, first: float) -> str:
        rows: list[list[object]] = []
        t = first
        for i in range(n):
            job = _GAVEL_JOBS[int(rng.integers(0, len(_GAVEL_JOBS)))][0]
            command, flag = _GAVEL_COMMANDS[job]
            scale = 1 if i % 4 else int(rng.choice([2, 4, 8]))
            steps = int(rng.integers(1_000, 500_000))
            rows.append([job, f"cd %s/workloads && {command}", flag, 1, steps, f"{t:.6f}", scale])
            t += float(rng.integers(0, 3_600))
        return _csv(None, rows, sep="\t")

    vc_a = trace(12, 0.0)
    vc_b = trace(8, 6.0)
    physical_rows = [
        [
            "ResNet-18 (batch size 32)",
            "python3 main.py --batch_size 32",
            "image_classification",
            "--num_steps",
            1,
            4000,
            1,
            1,
            "-1.000000",
            0,
        ],
        ["A3C", "python3 main.py --workers 4", "rl", "--max-steps", 1, 2500, 1, 2, "1.200000", 0],
        [
            "Transformer (batch size 64)",
            "python3 train.py -batch_size 64",
            "translation",
            "-step",
            1,
            900,
            2,
            1,
            "-1.000000",
            30,
        ],
        [
            "ResNet-18 (batch size 32)",
            "python3 main.py --batch_size 32",
            "image_classification",
            "--num_steps",
            1,
            12000,
            2,
            1,
            "2.000000",
            60,
        ],
        ["A3C", "python3 main.py --workers 4", "rl", "--max-steps", 1, 700, 1, 1, "-1.000000", 60],
    ]
    physical = _csv(None, physical_rows, sep="\t")
    return throughputs, vc_a, vc_b, physical


def _openb(rng: np.random.Generator) -> tuple[str, str, str, str]:
    header = (
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
        "creation_time,deletion_time,scheduled_time"
    )
    fixed: dict[int, list[object]] = {
        0: [32000, 65536, 0, 0, "", "BE", "Succeeded", 0, 5400, 12],
        1: [6000, 12288, 1, 460, "", "LS", "Running", 1500, 90000, 1500],
        2: [64000, 262144, 8, 1000, "V100M16|V100M32", "Guaranteed", "Running", 3000, 90000, 3010],
        3: [12000, 16384, 1, 1000, "T4", "BE", "Pending", 4000, 4600, ""],
    }
    rows: list[list[object]] = []
    t = 4000
    for i in range(30):
        if i in fixed:
            values = fixed[i]
        else:
            t += int(rng.integers(0, 2_000))
            num_gpu = int(rng.choice([0, 1, 1, 1, 1, 2, 4]))
            milli = (
                0
                if num_gpu == 0
                else (int(rng.choice([250, 500, 1000, 1000])) if num_gpu == 1 else 1000)
            )
            spec = str(rng.choice(["", "", "", "G2|P100", "T4"])) if num_gpu else ""
            phase = str(rng.choice(["Running", "Failed", "Succeeded", "Pending"]))
            sched: object = "" if phase == "Pending" else t + int(rng.integers(0, 30))
            end = (t if sched == "" else int(str(sched))) + int(rng.integers(1, 50_000))
            values = [
                int(rng.choice([2000, 4000, 8000])),
                int(rng.choice([4096, 16384, 30517])),
                num_gpu,
                milli,
                spec,
                str(rng.choice(["LS", "BE", "Burstable"])),
                phase,
                t,
                end,
                sched,
            ]
        rows.append([f"openb-pod-{i:04d}", *values])
    pods = _csv(header, rows)
    multi_rows = [
        [f"openb-pod-{i:04d}", 8000, 30517, n, m]
        for i, (n, m) in enumerate(
            [
                (1, 1000),
                (1, 460),
                (0, 0),
                (2, 1000),
                (4, 1000),
                (8, 1000),
                (1, 250),
                (1, 1000),
                (2, 1000),
                (0, 0),
            ]
        )
    ]
    multi = _csv("name,cpu_milli,memory_mib,num_gpu,gpu_milli", multi_rows)
    gpu_nodes = [
        [64000, 262144, 2, "P100"],
        [64000, 262144, 2, "P100"],
        [96000, 786432, 8, "G2"],
        [96000, 786432, 8, "G2"],
        [96000, 393216, 4, "T4"],
        [96000, 393216, 8, "V100M16"],
        [96000, 786432, 8, "V100M32"],
        [128000, 786432, 1, "A10"],
    ]
    all_rows = [[f"openb-node-{i:04d}", 32000, 262144, 0, ""] for i in range(2)]
    all_rows += [[f"openb-node-{i + 2:04d}", *n] for i, n in enumerate(gpu_nodes)]
    node_header = "sn,cpu_milli,memory_mib,gpu,model"
    gpu_rows = [[f"openb-node-{i:04d}", *n] for i, n in enumerate(gpu_nodes)]
    return pods, multi, _csv(node_header, all_rows), _csv(node_header, gpu_rows)


def _pai(rng: np.random.Generator) -> tuple[str, str, str, str]:
    kinds = [
        ("CPU", 0, 96, 512),
        ("P100", 2, 64, 512),
        ("T4", 2, 96, 512),
        ("MISC", 8, 96, 512),
        ("V100M32", 8, 96, 384),
        ("V100", 8, 96, 384),
    ]
    machines: list[list[object]] = []
    for i in range(12):
        gpu_type, gpus, cpu, mem = kinds[i % len(kinds)]
        ident = "".join(f"{int(v):06x}" for v in rng.integers(0, 16**6, size=4))
        machines.append([ident, gpu_type, cpu, mem, gpus])
    spec = _csv(None, machines)
    tasks: list[list[object]] = []
    for i in range(20):
        start = 5_000_000 + int(rng.integers(0, 100_000))
        plan_gpu: object = rng.choice(["", "25", "50", "100", "200", "800", "150"])
        end: object = start + int(rng.integers(10, 40_000))
        status = "Terminated"
        if i == 5:
            end, status = "", "Running"
        gpu_type = "" if plan_gpu == "" else str(rng.choice(["V100", "P100", "T4", "MISC"]))
        tasks.append(
            [
                f"job{i:03d}",
                "worker" if i % 3 else "ps",
                int(rng.choice([1, 1, 2, 4])),
                status,
                f"{float(start):.1f}",
                end if end == "" else f"{float(int(str(end))):.1f}",
                int(rng.choice([100, 600, 1200])),
                f"{float(rng.choice([2, 4.5, 30])):.1f}",
                plan_gpu,
                gpu_type,
            ]
        )
    task_table = _csv(None, tasks)
    return (
        spec,
        "machine,gpu_type,cap_cpu,cap_mem,cap_gpu\n",
        task_table,
        "job_name,task_name,inst_num,status,start_time,end_time,plan_cpu,plan_mem,"
        "plan_gpu,gpu_type\n",
    )


def _sia(rng: np.random.Generator) -> dict[str, str]:
    apps = [("cifar10", 2048), ("imagenet", 1600), ("bert", 96), ("deepspeech2", 320)]
    rows: list[list[object]] = []
    t = 0.0
    for i in range(20):
        app, bsz = apps[int(rng.integers(0, len(apps)))]
        t += float(rng.integers(0, 1_500))
        rows.append([f"{app}-{i}", f"{t:.1f}", app, int(rng.choice([1, 2, 4, 8, 12])), bsz])
    out = {
        "pollux-sia/sia_workloads/philly/workload-1.csv": _csv(
            "name,time,application,num_replicas,batch_size", rows
        )
    }

    def placements(scale: float, order: str) -> str:
        prows: list[dict[str, object]] = []
        for placement in ("1", "2", "4", "11", "22", "44"):
            gpus = sum(int(c) for c in placement)
            for bsz in (32, 64, 128):
                step = scale * (0.02 + bsz / 2000.0) * (1.0 + 0.05 * (len(placement) - 1))
                sync = scale * 0.001 * gpus * len(placement)
                prows.append(
                    {
                        "placement": placement,
                        "local_bsz": bsz,
                        "step_time": f"{step:.6f}",
                        "sync_time": f"{sync:.6f}",
                    }
                )
        cols = order.split(",")
        return _csv(order, [[r[c] for c in cols] for r in prows])

    aws = placements(1.0, "placement,local_bsz,step_time,sync_time")
    out["pollux-sia/profiles/cifar10/placements.csv"] = aws
    out["pollux-sia/profiles/cifar10/placements-aws.csv"] = aws
    out["pollux-sia/profiles/cifar10/placements-azure.csv"] = placements(
        0.5, "local_bsz,step_time,sync_time,placement"
    )
    out["pollux-sia/profiles/cifar10/scalability-aws.csv"] = _csv(
        "num_nodes,num_replicas,local_bsz,step_time,sync_time", [[1, 1, 32, "0.036000", "0.0"]]
    )
    out["pollux-sia/profiles/cifar10/validation-128.csv"] = _csv(
        "progress,iteration,metric,grad_sqr,grad_var", [[390.0, 390, 0.45, 1.5, 20.0]]
    )
    out["pollux-sia/profiles/gpt_pmp/placements-rtx.csv"] = _csv(
        "local_bsz,step_time,sync_time,placement",
        [[1, "0.099", "0.3275", "8"], [2, "0.198", "0.3275", "8"], [1, "0.099", "0.435", "88"]],
    )
    return out


def _azure(rng: np.random.Generator, n: int, start: str, prompt: int, output: int) -> str:
    base = np.datetime64(start, "ns")
    offsets = np.sort(rng.integers(0, 300 * 10**9, size=n - 1) // 100 * 100)
    rows: list[list[object]] = []
    for i, off in enumerate([0, *offsets.tolist()]):
        stamp = str(base + np.timedelta64(int(off), "ns")).replace("T", " ")[:27]
        rows.append([stamp, int(rng.integers(1, prompt)), int(rng.integers(1, output))])
        if i == 0:
            rows[0][1:] = [prompt, output]
    return _csv("TIMESTAMP,ContextTokens,GeneratedTokens", rows)


def _canonical(rng: np.random.Generator) -> str:
    header = (
        "job_id,kind,submit_time_s,duration_s,num_gpus,gpu_milli,gpu_types,priority,"
        "deadline_s,model,work_steps,user,status,cpu_milli"
    )
    rows: list[list[object]] = []
    kinds = ["training", "inference", "fractional", "cpu"]
    t = 0.0
    for i in range(20):
        kind = kinds[i % 4]
        gpus = {
            "training": int(rng.choice([1, 2, 4, 8])),
            "inference": 1,
            "fractional": 1,
            "cpu": 0,
        }[kind]
        milli = {"fractional": 500, "cpu": 0}.get(kind, 1000)
        duration = "" if i == 5 else f"{float(rng.integers(60, 86_400)):.1f}"
        deadline = f"{t + 100_000:.1f}" if kind == "inference" else ""
        steps = f"{float(rng.integers(100, 10_000)):.1f}" if kind == "training" else ""
        rows.append(
            [
                f"job-{i:03d}",
                kind,
                f"{t:.1f}",
                duration,
                gpus,
                milli,
                "A100|H100" if i % 5 == 0 else "",
                "2.0" if i % 7 == 0 else "1.0",
                deadline,
                "llama-7b" if kind != "cpu" else "",
                steps,
                f"team{i % 3}",
                "" if i % 2 else "done",
                int(rng.choice([1000, 4000, 8000])),
            ]
        )
        t += float(rng.integers(0, 600))
    return _csv(header, rows)


def write_samples(directory: PathLike) -> list[Path]:
    """Write the synthetic sample files (see the module docstring) into ``directory``.

    The output is deterministic (fixed seed, gzip without timestamps), so rewriting the
    committed ``data/samples`` reproduces it byte for byte.

    Parameters
    ----------
    directory
        Target directory; created if missing. Existing sample files are overwritten.

    Returns
    -------
    list[pathlib.Path]
        The written files, in :data:`SAMPLE_FILES` order.
    """
    root = Path(directory)
    rng = np.random.default_rng(SEED)
    texts: dict[str, str] = {}
    texts["philly/philly.csv"], texts["philly/cluster_machine_list.csv"] = _philly(rng)
    (
        texts["gavel/simulation_throughputs.json"],
        texts["gavel/traces/msr/seed=0/aaa111.trace.gz"],
        texts["gavel/traces/msr/seed=0/bbb222.trace.gz"],
        texts["gavel/traces/physical_cluster/small_test.trace"],
    ) = _gavel(rng)
    openb = "alibaba-gpu-v2023-openb/"
    (
        texts[openb + "openb_pod_list_default.csv"],
        texts[openb + "openb_pod_list_multigpu20.csv"],
        texts[openb + "openb_node_list_all_node.csv"],
        texts[openb + "openb_node_list_gpu_node.csv"],
    ) = _openb(rng)
    pai = "alibaba-gpu-v2020-pai/"
    (
        texts[pai + "pai_machine_spec.csv"],
        texts[pai + "pai_machine_spec.header"],
        texts[pai + "pai_task_table.csv"],
        texts[pai + "pai_task_table.header"],
    ) = _pai(rng)
    texts.update(_sia(rng))
    azure = "azure-llm-inference-2023/"
    texts[azure + "AzureLLMInferenceTrace_conv.csv"] = _azure(
        rng, 40, "2023-11-16T18:15:46.6805900", 4000, 800
    )
    texts[azure + "AzureLLMInferenceTrace_code.csv"] = _azure(
        rng, 25, "2023-11-16T18:17:03.9799600", 7000, 60
    )
    texts["canonical/jobs.csv"] = _canonical(rng)
    if set(texts) != set(SAMPLE_FILES):  # pragma: no cover - guards edits of this module
        raise AssertionError(sorted(set(texts) ^ set(SAMPLE_FILES)))
    return [_write(root, rel, texts[rel]) for rel in SAMPLE_FILES]
