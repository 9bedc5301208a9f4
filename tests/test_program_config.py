"""Program config validation: good configs load, every error names its key path and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.program import ProgramConfigError, load_program, parse_program

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "programs"

BASE = """\
name: Test
currency:
  name: points
  earn_rate: 1
tier_policy:
  metric: spend
  window:
    type: calendar_year
tiers:
  - name: Bronze
    threshold: 0
  - name: Silver
    threshold: 150
  - name: Gold
    threshold: 500
"""


def _error(text: str) -> ProgramConfigError:
    with pytest.raises(ProgramConfigError) as info:
        parse_program(text)
    return info.value


def test_base_config_loads_and_converts_major_units_to_minor() -> None:
    program = parse_program(BASE)
    assert program.tier_names == ("Bronze", "Silver", "Gold")
    assert program.threshold_units.tolist() == [0, 15000, 50000]
    assert program.money(4150) == "$42"  # rounded up to whole dollars


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_program_loads(path: Path) -> None:
    program = load_program(path)
    assert program.tiers[0].threshold == 0


def test_load_program_accepts_text_and_path(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(BASE)
    assert load_program(file) == load_program(BASE) == load_program(str(file))


def test_non_increasing_threshold_names_key_and_line() -> None:
    err = _error(BASE.replace("threshold: 500", "threshold: 100"))
    assert str(err.issues[0][0]) == "tiers[2].threshold"
    assert err.issues[0][1] == 15
    assert "tiers[2].threshold (line 15): must be greater than tiers[1].threshold (150)" in str(err)


def test_unknown_key_is_reported_with_its_line() -> None:
    err = _error(BASE.replace("  earn_rate: 1\n", "  earn_rate: 1\n  earn_rat: 2\n"))
    assert err.issues == [("currency.earn_rat", 5, "unknown key")]


def test_wrong_type_and_missing_key() -> None:
    err = _error(BASE.replace("earn_rate: 1", "earn_rate: lots").replace("  - name: Gold\n", "  - nam: Gold\n"))
    paths = {path: line for path, line, _ in err.issues}
    assert paths["currency.earn_rate"] == 4
    assert paths["tiers[2].nam"] == 14
    assert paths["tiers[2].name"] == 14  # the item that lacks it


def test_discriminated_values_name_the_data_path_not_the_validator() -> None:
    err = _error(BASE.replace("type: calendar_year", "type: fortnightly"))
    assert err.issues[0][:2] == ("tier_policy.window.type", 8)


def test_rolling_window_needs_days_and_one_down_needs_calendar_year() -> None:
    text = BASE.replace("type: calendar_year", "type: rolling").replace(
        "  metric: spend\n", "  metric: spend\n  downgrade: {policy: one_down}\n")
    err = _error(text)
    messages = {path: msg for path, _, msg in err.issues}
    assert "needs days" in messages["tier_policy.window.days"]
    assert "calendar_year" in messages["tier_policy.downgrade.policy"]


def test_entry_tier_must_start_at_zero_and_names_be_unique() -> None:
    err = _error(BASE.replace("threshold: 0", "threshold: 10").replace("name: Gold", "name: Silver"))
    messages = {path: msg for path, _, msg in err.issues}
    assert "must be 0" in messages["tiers[0].threshold"]
    assert "duplicate" in messages["tiers[2].name"]


def test_offer_errors_point_into_the_offer() -> None:
    text = BASE + """\
offers:
  - id: a
    kind: percent_off
    title: A
    tiers: [Bronze, Platinum]
    text: "Hello {name}"
  - id: a
    kind: partner
    title: B
    budget: {money: 100}
"""
    err = _error(text)
    got = {path: (line, msg) for path, line, msg in err.issues}
    assert got["offers[0].tiers[1]"][0] == 20 and "Platinum" in got["offers[0].tiers[1]"][1]
    assert "{name}" in got["offers[0].text"][1]
    assert got["offers[1].id"][0] == 22
    assert "funder" in got["offers[1].funder"][1]
    assert "cost" in got["offers[1].budget.money"][1]


def test_negative_and_out_of_range_values() -> None:
    text = BASE + "decisions:\n  exploration: {share: 1.5}\n  holdout: {share: 1.0}\n"
    err = _error(text)
    paths = {path for path, _, _ in err.issues}
    assert paths == {"decisions.exploration.share", "decisions.holdout.share"}


def test_yaml_syntax_error_is_a_config_error() -> None:
    err = _error("name: [unclosed\n")
    assert "invalid YAML" in str(err)


def test_points_thresholds_convert_exactly() -> None:
    text = BASE.replace("metric: spend", "metric: points_earned").replace("earn_rate: 1", "earn_rate: 1.25")
    program = parse_program(text)
    # 150 points at 1.25 points per dollar need exactly $120.00
    assert program.threshold_units.tolist() == [0, 12000, 40000]
    assert program.metric_from_units([11999, 12000]).tolist() == [149, 150]
