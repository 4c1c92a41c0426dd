"""Tests of the trace loaders (:mod:`solver.traces`).

Sample tests read the synthetic files committed under ``data/samples`` (written by
:func:`solver.traces.write_samples`). Real-trace tests read the directory named by the
``GPUPLAN_TRACES`` environment variable (the public-trace collection, same layout) and are
skipped when it is unset.
"""

from __future__ import annotations

import gzip
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from solver.traces import (
    CANONICAL_COLUMNS,
    LOAD_COLUMNS,
    LOADERS,
    NODE_COLUMNS,
    PROFILE_COLUMNS,
    REQUEST_COLUMNS,
    TraceFormatError,
    load_azure,
    load_gavel,
    load_gavel_throughputs,
    load_generic_csv,
    load_openb,
    load_openb_nodes,
    load_pai_machines,
    load_pai_tasks,
    load_philly,
    load_philly_machines,
    load_sia,
    load_sia_profiles,
    load_trace,
    requests_to_load,
    validate_job_table,
    validate_node_table,
    validate_request_table,
    write_samples,
)
from solver.traces.samples import SAMPLE_FILES

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
PHILLY = SAMPLES / "philly" / "philly.csv"
GAVEL_DIR = SAMPLES / "gavel" / "traces" / "msr" / "seed=0"
OPENB = SAMPLES / "alibaba-gpu-v2023-openb"
PAI = SAMPLES / "alibaba-gpu-v2020-pai"
SIA = SAMPLES / "pollux-sia"
AZURE = SAMPLES / "azure-llm-inference-2023"
CANONICAL = SAMPLES / "canonical" / "jobs.csv"


def _concat(chunks: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = list(chunks)
    assert frames, "no chunks"
    assert all(isinstance(f, pd.DataFrame) for f in frames)
    return pd.concat(frames)


# --------------------------------------------------------------------------- samples


def test_samples_are_reproducible(tmp_path: Path) -> None:
    written = write_samples(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == list(SAMPLE_FILES)
    for rel in SAMPLE_FILES:
        new, old = (tmp_path / rel).read_bytes(), (SAMPLES / rel).read_bytes()
        if rel.endswith(".gz"):
            new, old = gzip.decompress(new), gzip.decompress(old)
        assert new == old, rel


def test_canonical_columns() -> None:
    assert CANONICAL_COLUMNS == (
        "job_id", "kind", "submit_time_s", "duration_s", "num_gpus", "gpu_milli", "gpu_types",
        "priority", "deadline_s", "model", "work_steps", "user", "status",
    )  # fmt: skip
    assert NODE_COLUMNS == (
        "node_id", "gpu_type", "num_gpus", "gpu_memory_gib", "cpu_milli", "memory_mib",
    )  # fmt: skip
    assert REQUEST_COLUMNS == ("request_id", "timestamp_s", "prompt_tokens", "output_tokens")
    assert set(LOADERS) == {"philly", "gavel", "openb", "pai", "sia", "azure", "csv"}


def test_philly_sample() -> None:
    df = load_philly(PHILLY)
    validate_job_table(df)
    assert list(df.columns) == [*CANONICAL_COLUMNS, "gpu_time_s"]
    assert len(df) == 30  # the trailing empty line is not a row
    assert df.attrs["origin"] == pd.Timestamp("2017-10-01 00:00:00")
    assert df["submit_time_s"].is_monotonic_increasing
    assert list(df.index) == list(range(30))
    first = df.iloc[0]
    assert (first["job_id"], first["submit_time_s"], first["duration_s"]) == ("3", 0.0, 120.0)
    assert (first["num_gpus"], first["gpu_milli"], first["user"]) == (8, 1000, "d4e5f6")
    by_id = df.set_index("job_id")
    assert by_id.loc["0", "submit_time_s"] == 216_000.0  # 2017-10-03 12:00:00
    assert by_id.loc["0", "duration_s"] == 3600.0
    assert by_id.loc["7", "submit_time_s"] == 604_000.0
    assert by_id.loc["7", "num_gpus"] == 16
    assert by_id.loc["7", "gpu_time_s"] == 1_382_400.0
    assert (df["gpu_time_s"] == df["duration_s"] * df["num_gpus"]).all()
    assert set(df["kind"]) == {"training"}
    assert set(df["gpu_types"]) == {""}
    assert df["priority"].eq(1.0).all() and df["deadline_s"].isna().all()
    assert df["num_gpus"].dtype == np.int64 and df["submit_time_s"].dtype == np.float64


def test_philly_unsorted_chunked_limit() -> None:
    plain = load_philly(PHILLY, sort=False)
    assert list(plain["job_id"]) == [str(i) for i in range(30)]
    chunked = _concat(load_philly(PHILLY, chunksize=7, sort=False))
    pd.testing.assert_frame_equal(chunked, plain)
    # sorted chunks: sorted within each chunk, same rows overall, global origin
    chunks = list(load_philly(PHILLY, chunksize=7))
    assert [len(c) for c in chunks] == [7, 7, 7, 7, 2]
    assert all(c["submit_time_s"].is_monotonic_increasing for c in chunks)
    assert all(c.attrs["origin"] == pd.Timestamp("2017-10-01") for c in chunks)
    merged = pd.concat(chunks).sort_values("submit_time_s", kind="stable")
    assert sorted(merged["job_id"]) == sorted(plain["job_id"])
    limited = load_philly(PHILLY, limit=5)
    assert len(limited) == 5 and limited.attrs["origin"] == pd.Timestamp("2017-10-01")
    assert list(limited["job_id"]) == ["3", "4", "2", "0", "1"]
    assert _concat(load_philly(PHILLY, chunksize=2, limit=5)).shape[0] == 5
    shifted = load_philly(PHILLY, origin="2017-09-30 00:00:00")
    assert shifted["submit_time_s"].iloc[0] == 86_400.0


def test_philly_machines_sample() -> None:
    nodes = load_philly_machines(SAMPLES / "philly" / "cluster_machine_list.csv")
    validate_node_table(nodes)
    assert list(nodes.columns) == list(NODE_COLUMNS)
    assert list(nodes["node_id"]) == ["m0", "m1", "m10", "m11", "m2", "m3"]
    assert list(nodes["num_gpus"]) == [2, 2, 2, 2, 8, 8]
    assert list(nodes["gpu_memory_gib"]) == [12.0, 12.0, 12.0, 12.0, 24.0, 24.0]
    assert nodes["cpu_milli"].isna().all() and set(nodes["gpu_type"]) == {""}


def test_gavel_throughputs_sample() -> None:
    tp = load_gavel_throughputs(SAMPLES / "gavel" / "simulation_throughputs.json")
    assert list(tp.columns) == [
        "job_type", "scale_factor", "gpu_type", "consolidated", "throughput_steps_per_s",
    ]  # fmt: skip
    assert len(tp) == 30  # 5 (job type, scale) keys x 3 GPU types x consolidated or not
    assert tp["consolidated"].dtype == bool and tp["scale_factor"].dtype == np.int64
    index = tp.set_index(["job_type", "scale_factor", "gpu_type", "consolidated"])
    value = index["throughput_steps_per_s"]
    assert value[("ResNet-18 (batch size 32)", 1, "v100", True)] == 10.0
    assert value[("ResNet-18 (batch size 32)", 2, "p100", False)] == pytest.approx(9.6)
    assert value[("A3C", 1, "k80", True)] == 1.0
    assert set(tp["gpu_type"]) == {"v100", "p100", "k80"}


def test_gavel_trace_sample() -> None:
    df = load_gavel(GAVEL_DIR)
    validate_job_table(df)
    assert len(df) == 20
    assert df["submit_time_s"].is_monotonic_increasing
    assert df["user"].value_counts().to_dict() == {"aaa111": 12, "bbb222": 8}
    assert list(df["job_id"][:2]) == ["aaa111-0", "bbb222-0"]
    row = df.iloc[0]
    assert row["model"] == "ResNet-18 (batch size 32)" and row["num_gpus"] == 2
    assert row["work_steps"] == 312_773.0 and math.isnan(row["duration_s"])
    assert df.iloc[1]["model"] == "A3C" and df.iloc[1]["submit_time_s"] == 6.0
    one = load_gavel(GAVEL_DIR / "aaa111.trace.gz")
    assert len(one) == 12 and one["submit_time_s"].is_monotonic_increasing
    chunks = list(load_gavel(GAVEL_DIR, chunksize=5))
    assert [len(c) for c in chunks] == [5, 5, 2, 5, 3]  # chunks never span files
    unsorted = load_gavel(GAVEL_DIR, sort=False)
    pd.testing.assert_frame_equal(_concat(load_gavel(GAVEL_DIR, chunksize=5, sort=False)), unsorted)
    assert len(load_gavel(GAVEL_DIR, limit=15)) == 15
    assert list(load_gavel(GAVEL_DIR, limit=15, sort=False)["user"]).count("bbb222") == 3


def test_gavel_ten_field_sample() -> None:
    df = load_gavel(SAMPLES / "gavel" / "traces" / "physical_cluster" / "small_test.trace")
    validate_job_table(df)
    assert list(df["submit_time_s"]) == [0.0, 0.0, 30.0, 60.0, 60.0]
    assert list(df["priority"]) == [1.0, 2.0, 1.0, 1.0, 1.0]
    assert list(df["num_gpus"]) == [1, 1, 2, 2, 1]
    np.testing.assert_array_equal(df["slo"], [np.nan, 1.2, np.nan, 2.0, np.nan])


def test_openb_sample() -> None:
    df = load_openb(OPENB / "openb_pod_list_default.csv")
    validate_job_table(df)
    assert list(df.columns) == [
        *CANONICAL_COLUMNS, "cpu_milli", "memory_mib", "qos", "pod_phase", "scheduled_time_s",
        "deletion_time_s",
    ]  # fmt: skip
    assert len(df) == 30
    assert df["kind"].value_counts().to_dict() == {"training": 17, "fractional": 10, "cpu": 3}
    assert df["duration_s"].isna().sum() == 7  # the Pending pods
    assert (df.loc[df["duration_s"].isna(), "status"] == "Pending").all()
    cpu, frac, multi, pending = (df.iloc[i] for i in range(4))
    assert (cpu["kind"], cpu["num_gpus"], cpu["gpu_milli"]) == ("cpu", 0, 0)
    assert cpu["duration_s"] == 5388.0  # deletion 5400 - scheduled 12
    assert (cpu["cpu_milli"], cpu["memory_mib"], cpu["qos"]) == (32000, 65536, "BE")
    assert (frac["kind"], frac["num_gpus"], frac["gpu_milli"]) == ("fractional", 1, 460)
    assert frac["duration_s"] == 88_500.0
    assert (multi["kind"], multi["num_gpus"], multi["gpu_milli"]) == ("training", 8, 1000)
    assert multi["gpu_types"] == "V100M16|V100M32" and multi["duration_s"] == 86_990.0
    assert pending["gpu_types"] == "T4" and math.isnan(pending["scheduled_time_s"])
    assert pending["status"] == "Pending" and pending["pod_phase"] == "Pending"
    pd.testing.assert_frame_equal(
        _concat(load_openb(OPENB / "openb_pod_list_default.csv", chunksize=8)), df
    )


def test_openb_five_column_variant() -> None:
    df = load_openb(OPENB / "openb_pod_list_multigpu20.csv")
    validate_job_table(df)
    assert len(df) == 10 and (df["submit_time_s"] == 0.0).all()
    assert df["duration_s"].isna().all() and set(df["qos"]) == {""}
    assert df["kind"].value_counts().to_dict() == {"training": 6, "fractional": 2, "cpu": 2}
    assert df["num_gpus"].sum() == 20
    assert list(df["job_id"]) == [f"openb-pod-{i:04d}" for i in range(10)]  # file order kept


def test_openb_nodes_sample() -> None:
    every = load_openb_nodes(OPENB / "openb_node_list_all_node.csv")
    gpu = load_openb_nodes(OPENB / "openb_node_list_gpu_node.csv")
    validate_node_table(every)
    assert (len(every), every["num_gpus"].sum()) == (10, 41)
    assert (len(gpu), gpu["num_gpus"].sum()) == (8, 41)
    assert list(every["gpu_type"][:3]) == ["", "", "P100"]
    by_type = gpu.set_index("gpu_type")
    assert by_type.loc["V100M32", "gpu_memory_gib"] == 32.0
    assert by_type.loc["V100M16", "gpu_memory_gib"] == 16.0
    assert by_type["gpu_memory_gib"].isna()["A10"]
    assert by_type.loc["A10", "cpu_milli"] == 128_000.0


def test_pai_machines_sample() -> None:
    nodes = load_pai_machines(PAI / "pai_machine_spec.csv")
    validate_node_table(nodes)
    assert (len(nodes), nodes["num_gpus"].sum()) == (12, 56)
    first = nodes.iloc[0]
    assert (first["gpu_type"], first["num_gpus"]) == ("CPU", 0)
    assert (first["cpu_milli"], first["memory_mib"]) == (96_000.0, 512 * 1024.0)
    v100m32 = nodes.loc[nodes["gpu_type"] == "V100M32", "gpu_memory_gib"]
    assert v100m32.tolist() == [32.0, 32.0]
    assert len(nodes["node_id"].iloc[0]) == 24


def test_pai_tasks_sample(tmp_path: Path) -> None:
    df = load_pai_tasks(PAI / "pai_task_table.csv", sort=False)
    validate_job_table(df)
    assert len(df) == 20
    row = df.set_index("job_id")
    assert tuple(row.loc["job012/ps", ["kind", "num_gpus", "gpu_milli"]]) == ("training", 2, 750)
    assert tuple(row.loc["job015/ps", ["num_gpus", "gpu_milli"]]) == (8, 1000)
    assert tuple(row.loc["job006/ps", ["kind", "gpu_milli"]]) == ("fractional", 250)
    assert tuple(row.loc["job001/worker", ["kind", "num_gpus"]]) == ("cpu", 0)
    assert row["duration_s"].isna()["job005/worker"]
    assert row.loc["job005/worker", "status"] == "Running"
    assert row.loc["job006/ps", "cpu_milli"] == 1000.0  # plan_cpu 100 % of a core
    assert row.loc["job006/ps", "memory_mib"] == 30.0 * 1024
    assert load_pai_tasks(PAI / "pai_task_table.csv")["submit_time_s"].is_monotonic_increasing
    # a task that never started: error by default, dropped and counted on request
    lines = (PAI / "pai_task_table.csv").read_text().splitlines()
    lines[3] = "job003,ps,4,Waiting,,,1200,2.0,200,V100"
    bad = tmp_path / "pai_task_table.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceFormatError, match=r"row 3 \(line 4\), column 'start_time'"):
        load_pai_tasks(bad)
    kept = load_pai_tasks(bad, drop_unstarted=True)
    assert len(kept) == 19 and kept.attrs["dropped"] == 1


def test_sia_sample() -> None:
    path = SIA / "sia_workloads" / "philly" / "workload-1.csv"
    df = load_sia(path)
    validate_job_table(df)
    assert list(df.columns) == [*CANONICAL_COLUMNS, "batch_size"]
    assert len(df) == 20 and df["num_gpus"].sum() == 98
    assert list(df["job_id"][:3]) == ["bert-0", "cifar10-1", "imagenet-2"]
    assert (df["submit_time_s"].iloc[1], df["num_gpus"].iloc[1]) == (1569.0, 12)
    assert (df["model"].iloc[1], df["batch_size"].iloc[1]) == ("cifar10", 2048)
    assert df["duration_s"].isna().all()
    pd.testing.assert_frame_equal(
        _concat(load_sia(path, chunksize=6, sort=False)), load_sia(path, sort=False)
    )


def test_sia_profiles_sample() -> None:
    prof = load_sia_profiles(SIA / "profiles")
    assert list(prof.columns) == list(PROFILE_COLUMNS)
    # placements.csv duplicates placements-aws.csv and is skipped; scalability/validation unused
    assert prof.groupby(["application", "cluster"]).size().to_dict() == {
        ("cifar10", "aws"): 18, ("cifar10", "azure"): 18, ("gpt_pmp", "rtx"): 3,
    }  # fmt: skip
    key = ["application", "cluster", "placement", "local_bsz"]
    match = prof[(prof[key] == pd.Series(["cifar10", "azure", "44", 128], index=key)).all(axis=1)]
    assert len(match) == 1
    row = match.iloc[0]
    assert (row["gpu_type"], row["num_nodes"], row["num_gpus"]) == ("V100", 2, 8)
    assert row["step_time_s"] == pytest.approx(0.0441)
    assert row["sync_time_s"] == pytest.approx(0.008)
    gpt = prof[prof["application"] == "gpt_pmp"]
    assert list(gpt["placement"]) == ["8", "8", "88"] and list(gpt["num_gpus"]) == [8, 8, 16]
    assert set(gpt["gpu_type"]) == {"RTX2080Ti"}


def test_azure_sample() -> None:
    req = load_azure(AZURE / "AzureLLMInferenceTrace_conv.csv")
    validate_request_table(req)
    assert list(req.columns) == list(REQUEST_COLUMNS)
    assert len(req) == 40
    assert req.attrs["origin"] == pd.Timestamp("2023-11-16 18:15:46.6805900")
    assert req["timestamp_s"].is_monotonic_increasing
    assert tuple(req.iloc[0][["request_id", "timestamp_s"]]) == ("0", 0.0)
    assert tuple(req.iloc[0][["prompt_tokens", "output_tokens"]]) == (4000, 800)
    assert req["timestamp_s"].iloc[1] == pytest.approx(7.5789928, abs=1e-9)  # 100-ns kept
    assert req["timestamp_s"].iloc[-1] == pytest.approx(292.5793286, abs=1e-9)
    code = load_azure(AZURE / "AzureLLMInferenceTrace_code.csv")
    assert len(code) == 25 and code.attrs["origin"] == pd.Timestamp("2023-11-16 18:17:03.97996")
    pd.testing.assert_frame_equal(
        _concat(load_azure(AZURE / "AzureLLMInferenceTrace_conv.csv", chunksize=9)), req
    )


def test_requests_to_load() -> None:
    req = load_azure(AZURE / "AzureLLMInferenceTrace_conv.csv")
    load = requests_to_load(req, interval_s=60.0)
    assert list(load.columns) == list(LOAD_COLUMNS)
    assert list(load["interval_start_s"]) == [0.0, 60.0, 120.0, 180.0, 240.0]
    assert (load["rate_rps"] * 60).round().astype(int).tolist() == [7, 9, 4, 13, 7]
    first = req[req["timestamp_s"] < 60]
    assert load["mean_prompt_tokens"].iloc[0] == pytest.approx(first["prompt_tokens"].mean())
    assert load["p95_output_tokens"].iloc[0] == pytest.approx(
        np.percentile(first["output_tokens"], 95)
    )
    gaps = requests_to_load(req, interval_s=5.0)
    assert (gaps["rate_rps"] == 0).any()
    assert gaps.loc[gaps["rate_rps"] == 0, "mean_prompt_tokens"].isna().all()
    assert gaps["rate_rps"].sum() * 5.0 == pytest.approx(40)
    with pytest.raises(ValueError, match="interval_s"):
        requests_to_load(req, interval_s=0.0)
    assert requests_to_load(req.iloc[:0]).empty


def test_generic_csv_sample_and_roundtrip(tmp_path: Path) -> None:
    df = load_generic_csv(CANONICAL)
    validate_job_table(df)
    assert len(df) == 20 and list(df.columns) == [*CANONICAL_COLUMNS, "cpu_milli"]
    assert df["kind"].value_counts().to_dict() == dict.fromkeys(
        ["training", "inference", "fractional", "cpu"], 5
    )
    assert df["duration_s"].isna()[5]
    assert df.loc[0, "gpu_types"] == "A100|H100" and df.loc[0, "priority"] == 2.0
    assert df.loc[1, "deadline_s"] == 100_391.0 and df.loc[3, "model"] == ""
    assert df["cpu_milli"].dtype == np.float64
    # any loader's output written with to_csv reads back identically
    for original in (load_philly(PHILLY), load_openb(OPENB / "openb_pod_list_default.csv")):
        path = tmp_path / "jobs.csv"
        original.to_csv(path, index=False)
        back = load_generic_csv(path)
        pd.testing.assert_frame_equal(
            back[list(CANONICAL_COLUMNS)], original[list(CANONICAL_COLUMNS)], check_dtype=True
        )
    pd.testing.assert_frame_equal(_concat(load_generic_csv(CANONICAL, chunksize=6)), df)


# --------------------------------------------------------------------------- errors


def _bad_philly(tmp_path: Path, row: int, text: str) -> Path:
    lines = PHILLY.read_text().splitlines()
    lines[row + 1] = text
    path = tmp_path / "philly.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_philly_bad_rows_are_reported(tmp_path: Path) -> None:
    path = _bad_philly(tmp_path, 2, "2017-10-02 22:57:00,-5.0,8,-40.0,0f9e8d")
    with pytest.raises(TraceFormatError) as info:
        load_philly(path)
    message = str(info.value)
    assert "philly.csv" in message and "row 2 (line 4)" in message
    assert "'duration'" in message and "-5.0" in message
    assert isinstance(info.value, ValueError)
    assert (info.value.row, info.value.column) == (2, "duration")
    path = _bad_philly(tmp_path, 4, "2017-10-02 16:39:38,53143.0,,425144.0,a1b2c3")
    with pytest.raises(TraceFormatError, match=r"row 4 \(line 6\), column 'num_gpus': is missing"):
        load_philly(path)
    path = _bad_philly(tmp_path, 1, "yesterday,1.0,1,1.0,x")
    with pytest.raises(TraceFormatError, match=r"row 1 .*'timestamp'.*yesterday"):
        load_philly(path)
    with pytest.raises(TraceFormatError, match="row 1"):  # chunked: raised while iterating
        list(load_philly(path, chunksize=4))


def test_other_bad_rows(tmp_path: Path) -> None:
    lines = (OPENB / "openb_pod_list_default.csv").read_text().splitlines()
    lines[2] = "openb-pod-0001,6000,12288,1,1460,,LS,Running,1500,90000,1500"
    bad = tmp_path / "openb_pod_list_x.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceFormatError, match=r"row 1 \(line 3\), column 'gpu_milli'.*1460"):
        load_openb(bad)
    lines = (OPENB / "openb_pod_list_default.csv").read_text().splitlines()
    lines[1] = "openb-pod-0000,32000,65536,0,0,,BE,Succeeded,0,5,12"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceFormatError, match=r"row 0 .*'deletion_time'"):
        load_openb(bad)
    sia = tmp_path / "workload-9.csv"
    sia.write_text("name,time,application,num_replicas,batch_size\na-0,1.0,bert,nan,96\n")
    with pytest.raises(TraceFormatError, match=r"workload-9.csv: row 0 .*'num_replicas'"):
        load_sia(sia)
    azure = tmp_path / "az.csv"
    azure.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00.1,-3,4\n")
    with pytest.raises(TraceFormatError, match=r"az.csv: row 0 .*'ContextTokens'.*-3"):
        load_azure(azure)


def test_generic_csv_errors(tmp_path: Path) -> None:
    text = CANONICAL.read_text().splitlines()
    path = tmp_path / "jobs.csv"
    path.write_text("\n".join([text[0], text[1], text[2].replace("inference", "serving")]) + "\n")
    with pytest.raises(TraceFormatError, match=r"jobs.csv: row 1 \(line 3\), column 'kind'"):
        load_generic_csv(path)
    path.write_text("\n".join([text[0], text[1].replace(",1,1000,", ",1.5,1000,")]) + "\n")
    with pytest.raises(TraceFormatError, match=r"row 0 \(line 2\), column 'num_gpus'.*integer"):
        load_generic_csv(path)
    path.write_text("\n".join([text[0], text[1].replace(",0.0,", ",soon,", 1)]) + "\n")
    with pytest.raises(TraceFormatError, match=r"column 'submit_time_s': is not a number"):
        load_generic_csv(path)
    path.write_text("\n".join([text[0].replace("status", "state"), text[1]]) + "\n")
    with pytest.raises(TraceFormatError, match=r"jobs.csv: column 'status': column is missing"):
        load_generic_csv(path)
    path.write_text("\n".join([text[0], text[1], text[1]]) + "\n")
    with pytest.raises(TraceFormatError, match=r"row 1 .*'job_id': duplicate"):
        load_generic_csv(path)


def test_validate_job_table_errors() -> None:
    df = load_philly(PHILLY)
    validate_job_table(df)
    bad = df.copy()
    bad.loc[4, "duration_s"] = -1.0
    with pytest.raises(ValueError, match=r"row 4, column 'duration_s': must be >= 0"):
        validate_job_table(bad)
    bad = df.copy()
    bad.loc[2, "kind"] = "cpu"
    with pytest.raises(ValueError, match=r"row 2, column 'num_gpus': must be 0 for kind 'cpu'"):
        validate_job_table(bad)
    bad = df.copy()
    bad.loc[6, "submit_time_s"] = np.nan
    with pytest.raises(ValueError, match=r"row 6, column 'submit_time_s'"):
        validate_job_table(bad)
    with pytest.raises(ValueError, match="column 'status': column is missing"):
        validate_job_table(df.drop(columns="status"))
    with pytest.raises(ValueError, match="column 'num_gpus': must have an integer dtype"):
        validate_job_table(df.astype({"num_gpus": float}))
    swapped = df[["kind", "job_id", *CANONICAL_COLUMNS[2:]]]
    with pytest.raises(ValueError, match="in this order"):
        validate_job_table(swapped)
    with pytest.raises(ValueError, match=r"row 0, column 'gpu_milli': must be >= 1 for GPU"):
        validate_job_table(df.assign(gpu_milli=0))
    with pytest.raises(ValueError, match=r"row 0, column 'gpu_milli': must be < 1000 for kind"):
        validate_job_table(df.assign(kind="fractional", num_gpus=1))
    with pytest.raises(ValueError, match=r"row 0, column 'job_id': must be a string"):
        validate_job_table(df.assign(job_id=pd.Series([17, *df["job_id"][1:]], dtype=object)))
    with pytest.raises(ValueError, match="column 'job_id': must have a string dtype"):
        validate_job_table(df.assign(job_id=range(len(df))))


def test_load_trace_registry() -> None:
    df = load_trace(f"philly:{PHILLY}")
    pd.testing.assert_frame_equal(df, load_philly(PHILLY))
    assert len(load_trace(f"openb:{OPENB / 'openb_pod_list_default.csv'}", limit=4)) == 4
    assert len(load_trace(f"gavel:{GAVEL_DIR}")) == 20
    assert len(load_trace(f"pai:{PAI / 'pai_task_table.csv'}")) == 20
    assert len(load_trace(f"sia:{SIA / 'sia_workloads' / 'philly' / 'workload-1.csv'}")) == 20
    assert len(load_trace(f"azure:{AZURE / 'AzureLLMInferenceTrace_code.csv'}")) == 25
    assert len(load_trace(f"CSV:{CANONICAL}")) == 20
    chunks = load_trace(f"csv:{CANONICAL}", chunksize=8)
    assert [len(c) for c in chunks] == [8, 8, 4]
    with pytest.raises(ValueError, match=r"^trace 'philly:/x/y.csv': file not found$"):
        load_trace("philly:/x/y.csv")
    with pytest.raises(ValueError, match=r"trace 'helios:/x': unknown format 'helios'"):
        load_trace("helios:/x")
    with pytest.raises(ValueError, match="FORMAT:PATH"):
        load_trace(str(PHILLY.name))
    with pytest.raises(ValueError, match=r"no \*\.trace"):
        load_trace(f"gavel:{SAMPLES / 'philly'}")
    with pytest.raises(ValueError, match="chunksize"):
        load_trace(f"philly:{PHILLY}", chunksize=0)


# --------------------------------------------------------------------------- real traces


@pytest.fixture(scope="module")
def real() -> Path:
    root = os.environ.get("GPUPLAN_TRACES")
    if not root:
        pytest.skip("GPUPLAN_TRACES is not set")
    return Path(root)


def test_real_philly(real: Path) -> None:
    df = load_philly(real / "philly" / "philly.csv")
    validate_job_table(df)
    assert len(df) == 82_247
    assert df.attrs["origin"] == pd.Timestamp("2017-09-04 10:30:41")
    last = pd.Timestamp("2017-12-22 08:02:11") - pd.Timestamp("2017-09-04 10:30:41")
    assert df["submit_time_s"].max() == last.total_seconds()
    assert df["submit_time_s"].is_monotonic_increasing
    counts = df["num_gpus"].value_counts()
    assert (counts[1], counts[2], counts[4], counts[8], counts[16], counts[32]) == (
        76_627, 1_818, 1_870, 1_643, 199, 67,
    )  # fmt: skip
    assert {12, 24, 64, 128} <= set(counts.index)
    assert (df["duration_s"].min(), df["duration_s"].max()) == (1.0, 4_628_226.0)
    assert df["duration_s"].median() == 1_144.0
    assert (df["gpu_time_s"] == df["duration_s"] * df["num_gpus"]).all()
    assert df["user"].nunique() == 15
    assert df["user"].value_counts()[["6214e9", "11cb48"]].tolist() == [41_226, 16_091]
    chunked = _concat(load_philly(real / "philly" / "philly.csv", chunksize=30_000, sort=False))
    assert len(chunked) == 82_247 and chunked.attrs["origin"] == df.attrs["origin"]


def test_real_philly_machines(real: Path) -> None:
    nodes = load_philly_machines(real / "philly" / "cluster_machine_list.csv")
    assert (len(nodes), nodes["num_gpus"].sum()) == (552, 2_490)
    assert nodes.groupby(["num_gpus", "gpu_memory_gib"]).size().to_dict() == {
        (2, 12.0): 321, (8, 24.0): 231,
    }  # fmt: skip


def test_real_gavel(real: Path) -> None:
    seed0 = load_gavel(real / "gavel" / "traces" / "msr" / "seed=0")
    validate_job_table(seed0)
    assert len(seed0) == 15_264
    counts = seed0["num_gpus"].value_counts().to_dict()
    assert {k: counts[k] for k in (1, 2, 4, 8, 16, 32)} == {
        1: 10_480, 2: 463, 4: 2_044, 8: 1_916, 16: 255, 32: 91,
    }  # fmt: skip
    assert set(counts) == {1, 2, 4, 7, 8, 12, 16, 20, 24, 32, 64}
    per_vc = seed0["user"].value_counts()
    assert per_vc[["11cb48", "0e4a51", "795a4c"]].tolist() == [2_000, 1_181, 3]
    assert len(per_vc) == 15
    assert 125 < seed0["submit_time_s"].max() / 86_400 < 126
    seed1 = load_gavel(real / "gavel" / "traces" / "msr" / "seed=1", sort=False)
    unsorted0 = load_gavel(real / "gavel" / "traces" / "msr" / "seed=0", sort=False)
    assert (seed1["num_gpus"] == unsorted0["num_gpus"]).all()
    assert (seed1["submit_time_s"] == unsorted0["submit_time_s"]).all()
    tp = load_gavel_throughputs(real / "gavel" / "simulation_throughputs.json")
    assert tp["job_type"].nunique() == 26
    per_worker = tp.groupby(["gpu_type", "consolidated"]).size().to_dict()
    assert per_worker == {
        ("k80", False): 77, ("k80", True): 83, ("p100", False): 83, ("p100", True): 83,
        ("v100", False): 83, ("v100", True): 83,
    }  # fmt: skip
    assert set(tp["scale_factor"]) == {1, 2, 4, 8}
    assert set(seed0["model"]) <= set(tp["job_type"])


def test_real_openb(real: Path) -> None:
    folder = real / "alibaba-gpu-v2023-openb"
    df = load_openb(folder / "openb_pod_list_default.csv")
    validate_job_table(df)
    assert len(df) == 8_152
    assert df["num_gpus"].value_counts().to_dict() == {1: 6_989, 0: 1_088, 8: 44, 2: 16, 4: 15}
    assert (df["kind"] == "fractional").sum() == 3_078
    assert df["status"].value_counts().to_dict() == {
        "Running": 5_193, "Failed": 1_870, "Pending": 897, "Succeeded": 192,
    }  # fmt: skip
    assert df["duration_s"].isna().sum() == 897
    assert (df["submit_time_s"].min(), df["submit_time_s"].max()) == (0.0, 12_901_761.0)
    assert df["deletion_time_s"].max() == 12_902_960.0
    assert (df.loc[df["num_gpus"] > 1, "gpu_milli"] == 1000).all()
    assert (load_openb(folder / "openb_pod_list_gpuspec33.csv")["gpu_types"] != "").sum() == 2_388
    assert len(load_openb(folder / "openb_pod_list_multigpu50.csv")) == 9_061
    assert len(load_openb(folder / "openb_pod_list_cpu300.csv")) == 10_094
    every = load_openb_nodes(folder / "openb_node_list_all_node.csv")
    gpu = load_openb_nodes(folder / "openb_node_list_gpu_node.csv")
    validate_node_table(every)
    assert (len(every), every["num_gpus"].sum(), (every["num_gpus"] == 0).sum()) == (
        1_523, 6_212, 310,
    )  # fmt: skip
    assert (len(gpu), gpu["num_gpus"].sum()) == (1_213, 6_212)
    assert every["gpu_type"].value_counts().to_dict() == {
        "G2": 549, "T4": 404, "": 310, "P100": 134, "V100M16": 55, "G3": 39, "V100M32": 30,
        "A10": 2,
    }  # fmt: skip


def test_real_pai_machines(real: Path) -> None:
    nodes = load_pai_machines(real / "alibaba-gpu-v2020-pai" / "pai_machine_spec.csv")
    validate_node_table(nodes)
    assert (len(nodes), nodes["num_gpus"].sum()) == (1_897, 6_742)
    table = nodes.groupby("gpu_type")["num_gpus"].agg(["size", "sum"])
    assert table.to_dict("index") == {
        "CPU": {"size": 83, "sum": 0}, "MISC": {"size": 280, "sum": 2_240},
        "P100": {"size": 798, "sum": 1_596}, "T4": {"size": 497, "sum": 994},
        "V100": {"size": 104, "sum": 832}, "V100M32": {"size": 135, "sum": 1_080},
    }  # fmt: skip


def test_real_sia(real: Path) -> None:
    folder = real / "pollux-sia"
    assert len(list(folder.glob("*_workloads/**/workload-*.csv"))) == 168
    pollux = load_sia(folder / "pollux_workloads" / "workloads" / "workload-1.csv")
    validate_job_table(pollux)
    assert len(pollux) == 160 and pollux["submit_time_s"].max() <= 8 * 3600
    assert len(load_sia(folder / "sia_workloads" / "newtrace" / "workload-1.csv")) == 960
    big = load_sia(folder / "sia_workloads" / "scale" / "scale_32x" / "workload-1.csv")
    validate_job_table(big)
    assert len(big) == 5_120
    prof = load_sia_profiles(folder / "profiles")
    clusters = prof.groupby("application")["cluster"].unique().map(sorted).to_dict()
    assert set(clusters) == {
        "bert",
        "cifar10",
        "deepspeech2",
        "gpt_pmp",
        "imagenet",
        "ncf",
        "yolov3",
    }
    assert clusters["gpt_pmp"] == ["dgx-ext", "rtx"]
    assert clusters["bert"] == ["aws", "azure", "dgx", "dgx-ext", "quad", "rtx"]
    assert (prof["step_time_s"] > 0).all()
    assert set(pollux["model"]) <= set(prof["application"])


def test_real_azure(real: Path) -> None:
    folder = real / "azure-llm-inference-2023"
    expected = {
        # file: rows, span s, (mean, median, max) prompt, (mean, max) output, req/s
        "conv": (19_366, 58 * 60 + 22, (1_155, 1_020, 14_050), (211, 1_000), 5.5),
        "code": (8_819, 57 * 60 + 16, (2_048, 1_469, 7_437), (28, 1_899), 2.6),
    }
    for name, (rows, span, prompt, output, rate) in expected.items():
        req = load_azure(folder / f"AzureLLMInferenceTrace_{name}.csv")
        validate_request_table(req)
        assert len(req) == rows
        assert req["timestamp_s"].iloc[0] == 0.0
        assert round(req["timestamp_s"].iloc[-1]) == span
        assert round(req["prompt_tokens"].mean()) == prompt[0]
        assert req["prompt_tokens"].median() == prompt[1]
        assert req["prompt_tokens"].max() == prompt[2]
        assert round(req["output_tokens"].mean()) == output[0]
        assert req["output_tokens"].max() == output[1]
        assert round(rows / req["timestamp_s"].iloc[-1], 1) == rate
        load = requests_to_load(req, interval_s=60.0)
        assert len(load) == span // 60 + 1
        assert load["rate_rps"].sum() * 60 == pytest.approx(rows)
    conv = load_azure(folder / "AzureLLMInferenceTrace_conv.csv")
    assert conv.attrs["origin"] == pd.Timestamp("2023-11-16 18:15:46.6805900")
