"""What-if scenarios: parsing, exact effects on the instance, side-by-side solving."""

from __future__ import annotations

import pytest

import solver
from solver.errors import InputError
from solver.whatif import apply_scenario, format_table, parse_scenario, run_whatif


@pytest.fixture(scope="module")
def small() -> solver.Instance:
    return solver.generate("small", 0)


def test_add_nodes_adds_a_rack_of_the_template(small: solver.Instance) -> None:
    variant, impossible = apply_scenario(small, parse_scenario("add-nodes=dgx-h100:4"))
    assert impossible == ()
    assert variant.num_gpus == small.num_gpus + 32
    new = [n for n in variant.nodes if n.rack == "whatif-dgx-h100"]
    assert [n.id for n in new] == [f"whatif-dgx-h100-n{k}" for k in range(4)]
    assert {(n.gpu_type, n.gpu_count, n.nvlink_domains) for n in new} == {("H100-SXM", 8, (tuple(range(8)),))}


def test_power_cap_keeps_only_levels_below_the_fraction(small: solver.Instance) -> None:
    variant, _ = apply_scenario(small, parse_scenario("power-cap=0.75"))
    levels = {t.name: t.power_cap_levels_w for t in variant.gpu_types}
    assert levels["H100-SXM"] == (500.0,)  # 0.75 x 700 = 525 W: only the 500 W level remains
    assert levels["A100-80GB"] == (280.0,)  # 0.75 x 400 = 300 W
    assert levels["L4"] == (50.0,)  # 0.75 x 72 = 54 W
    assert all(t.max_power_cap_w == max(t.power_cap_levels_w) for t in variant.gpu_types)


def test_budget_price_and_pue(small: solver.Instance) -> None:
    variant, _ = apply_scenario(small, parse_scenario("power-budget=40,energy-price=2,pue=1.5"))
    assert variant.power_budget_w == 40_000.0
    assert variant.objective.energy_per_kwh == 2.0
    assert variant.objective.pue == 1.5


def test_tighten_slo_scales_deadlines_and_drops_services_that_cannot_meet_them(small: solver.Instance) -> None:
    variant, impossible = apply_scenario(small, parse_scenario("tighten-slo=0.01"))
    # a 1% TPOT budget is below every single-sequence decode step: no service can be served
    assert set(impossible) == {s.id for s in small.inference_services}
    assert variant.inference_services == ()
    for old, new in zip(small.training_jobs, variant.training_jobs, strict=True):
        if old.deadline_s is None:
            assert new.deadline_s is None
        else:
            assert new.deadline_s == pytest.approx(max(old.arrival_s, old.deadline_s * 0.01))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grow=3", "--scenario: scenario[0]: must be KEY=VALUE with KEY in"),
        ("add-nodes=nope:2", "--scenario: scenario[0].add-nodes: unknown node template 'nope'"),
        ("power-cap=1.5", "--scenario: scenario[0].power-cap: power-cap fraction must be in (0, 1] (got 1.5)"),
        ("pue=1.2,power-budget=-3", "--scenario: scenario[1].power-budget: power budget must be > 0 kW"),
    ],
)
def test_bad_scenarios_are_input_errors(text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_scenario(text)
    assert str(err.value).startswith(message)


def test_run_whatif_solves_every_variant_and_adding_gpus_places_more(small: solver.Instance, tmp_path) -> None:
    rows = run_whatif(small, [parse_scenario("add-nodes=dgx-h100:8")], "greedy", 10.0, tmp_path)
    assert [r["scenario"] for r in rows] == ["baseline", "add-nodes=dgx-h100:8"]
    assert rows[0]["gpus_total"] == 128 and rows[1]["gpus_total"] == 192
    assert rows[1]["unplaced"] < rows[0]["unplaced"]
    assert (tmp_path / "whatif.csv").exists() and (tmp_path / "whatif.png").exists()
    table = format_table(rows)
    assert table.splitlines()[0].startswith("scenario") and "add-nodes=dgx-h100:8" in table
