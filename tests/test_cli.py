"""The ``gpuplan`` command line through :func:`solver.cli.main`: exit codes 0 / 1 / 2, messages
that name the file and field, no traceback and no output file on bad input."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from solver.cli import build_parser, main
from solver.fileformat import load_instance


def subcommands() -> list[str]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    raise AssertionError("no sub-commands")  # pragma: no cover


@pytest.fixture
def toy_files(tmp_path: Path, examples_dir: Path) -> tuple[Path, Path]:
    """Copies of the toy instance and its valid decision in ``tmp_path``."""
    inst, dec = tmp_path / "toy.json", tmp_path / "toy-decision.json"
    shutil.copy(examples_dir / "toy-instance.json", inst)
    shutil.copy(examples_dir / "toy-decision.json", dec)
    return inst, dec


def test_generate_validate_solve_check(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       schema_errors: Callable[[str, Any], list[str]]) -> None:
    inst, dec = tmp_path / "tiny.json", tmp_path / "tiny-decision.json"
    assert main(["generate", "--family", "tiny", "--seed", "3", "--output", str(inst)]) == 0
    doc = json.loads(inst.read_text(encoding="utf-8"))
    out = capsys.readouterr().out
    assert out == (f"wrote {inst}: {len(doc['cluster']['nodes'])} nodes, {len(doc['training_jobs'])} training jobs, "
                   f"{len(doc['inference_services'])} inference services, {len(doc['fractional_tasks'])} fractional "
                   "tasks\n")
    assert schema_errors("instance", doc) == []

    assert main(["validate", str(inst)]) == 0
    loaded = load_instance(inst)
    assert capsys.readouterr().out.startswith(f"{inst}: valid instance 'tiny-s3': {len(loaded.nodes)} nodes, ")

    assert main(["solve", str(inst), "--method", "greedy", "--time-limit", "10", "--output", str(dec)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("instance tiny-s3  method greedy  status feasible\n")
    assert out.endswith(f"wrote {dec}\n")
    result = json.loads(dec.read_text(encoding="utf-8"))
    assert schema_errors("decision", result) == []
    assert (result["status"], result["method"], result["instance"]) == ("feasible", "greedy", "tiny-s3")

    assert main(["check", str(inst), str(dec)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"valid: objective {result['objective']:.6f}\n")


def test_validate_example(toy_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    inst, _ = toy_files
    assert main(["validate", str(inst)]) == 0
    assert capsys.readouterr().out == (f"{inst}: valid instance 'toy': 3 nodes, 10 GPUs (TOY-A, TOY-B), 7 jobs "
                                       "(1 running)\n")


def test_check_valid_decision_prints_metrics(toy_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", *map(str, toy_files)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "valid: objective 58.922250"
    assert "  energy_kwh           2.92225" in lines
    assert "  unplaced             3" in lines


def test_check_invalid_decision_lists_every_violation(toy_files: tuple[Path, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    inst, dec = toy_files
    doc = json.loads(dec.read_text(encoding="utf-8"))
    doc["placements"][1]["gpus"] = ["a1/2"]  # t2 is non-preemptible
    doc["placements"][3]["power_cap_w"] = 100  # f1 on TOY-A: range 200-400 W
    doc["powered_off_nodes"] = ["zz"]
    dec.write_text(json.dumps(doc), encoding="utf-8")
    assert main(["check", str(inst), str(dec)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [
        "INVALID: 3 violation(s)",
        "  [non_preemptible_moved] t2: non-preemptible running job must keep its GPUs ['a1/0']",
        "  [power_cap_range] f1: power cap 100 W outside TOY-A's allowed range [200, 400] W",
        "  [unknown_node] powered-off node 'zz' does not exist",
    ]
    assert main(["check", "--json", str(inst), str(dec)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert [v["kind"] for v in report["violations"]] == ["non_preemptible_moved", "power_cap_range", "unknown_node"]


def assert_input_error(code: int, capsys: pytest.CaptureFixture[str], expected_err: str) -> None:
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == expected_err
    assert "Traceback" not in captured.err + captured.out


def test_solve_bad_instance_exits_2_without_output(toy_files: tuple[Path, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    inst, _ = toy_files
    doc = json.loads(inst.read_text(encoding="utf-8"))
    doc["training_jobs"][0]["deadline_s"] = -5.0
    doc["cluster"]["nodes"][2]["gpu_type"] = "B200"
    inst.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "out.json"
    code = main(["solve", str(inst), "--method", "greedy", "--output", str(out)])
    assert_input_error(code, capsys, f"error: {inst}: 2 error(s) in input\n"
                       f"{inst}: cluster.nodes[2].gpu_type: unknown GPU type (got 'B200')\n"
                       f"{inst}: training_jobs[0].deadline_s: must be >= arrival_s (got -5.0)\n")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy-decision.json", "toy.json"]


def test_unreadable_files_exit_2(toy_files: tuple[Path, Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    inst, _ = toy_files
    missing = tmp_path / "missing.json"
    assert_input_error(main(["validate", str(missing)]), capsys, f"error: {missing}: <document>: file not found\n")
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1', encoding="utf-8")
    assert_input_error(main(["check", str(inst), str(broken)]), capsys,
                       f"error: {broken}: <document>: not valid JSON: Expecting ',' delimiter: line 1 column 21 "
                       "(char 20)\n")
    bad_dec = tmp_path / "bad-decision.json"
    bad_dec.write_text(json.dumps({"schema_version": 1, "placements": [{"job": "t1", "gpus": "a0/0",
                                                                        "power_cap_w": 400}]}), encoding="utf-8")
    assert_input_error(main(["check", str(inst), str(bad_dec)]), capsys,
                       f"error: {bad_dec}: placements[0].gpus: must be a list (got 'a0/0')\n")


def test_generate_unknown_family_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.json"
    with pytest.raises(SystemExit) as info:
        main(["generate", "--family", "huge", "--output", str(out)])
    assert info.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err
    assert not out.exists()


def test_solve_rejects_a_non_positive_time_limit(toy_files: tuple[Path, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    code = main(["solve", str(toy_files[0]), "--time-limit", "0", "--output", str(out)])
    assert_input_error(code, capsys, "error: time_limit_s must be > 0 (got 0.0)\n")
    assert not out.exists()


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert capsys.readouterr().out.startswith("usage: gpuplan")


@pytest.mark.parametrize("command", subcommands())
def test_help_of_every_subcommand(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: gpuplan {command}")


def test_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("generate", "validate", "solve", "check"):
        assert command in out
