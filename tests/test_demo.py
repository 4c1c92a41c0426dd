"""The demo runs end to end and writes its report (quick mode)."""

from __future__ import annotations

import csv
from pathlib import Path

import solver
from solver.demo import run_demo


def test_quick_demo_writes_a_checked_report(tmp_path: Path) -> None:
    assert run_demo(tmp_path, 2.0, quick=True) == 0
    report = (tmp_path / "report.md").read_text()
    for heading in ("## 1. Snapshot scheduling", "## 2. Trace replay", "## 3. Capacity what-if"):
        assert heading in report
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert {r["instance"] for r in rows} == {"small-s0"}
    assert "greedy" in {r["method"] for r in rows}
    inst = solver.load_instance(tmp_path / "small-s0.json")
    for r in rows:
        if r["objective"]:
            decision = solver.load_decision(tmp_path / f"small-s0.{r['method']}.decision.json")
            assert solver.check(inst, decision).valid
    assert (tmp_path / "methods.png").exists()
    assert (tmp_path / "whatif" / "whatif.csv").exists()
