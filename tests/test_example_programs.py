"""The example programs reproduce their real counterparts for hand-built members."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.program import Program, load_program
from models.tiers import TierState, member_tier_state

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "programs"


def example(name: str) -> Program:
    return load_program(EXAMPLES / f"{name}.yaml")


def state(program: Program, purchases: list[tuple[str, float]], as_of: str) -> TierState:
    """Tier state from (timestamp, dollars) purchases."""
    times = np.array([pd.Timestamp(t) for t, _ in purchases], dtype="datetime64[ns]")
    cents = np.array([round(d * 100) for _, d in purchases], dtype=np.int64)
    return member_tier_state(program, times, cents, pd.Timestamp(as_of))


def visits(n: int, start: str = "2024-01-02", every_days: int = 7, dollars: float = 5.0) -> list[tuple[str, float]]:
    first = pd.Timestamp(start)
    return [(str(first + pd.Timedelta(days=every_days * i)), dollars) for i in range(n)]


# -- Starbucks-like: stars per visit, Gold at 30 stars in 12 months --------------------------

def test_starbucks_gold_at_30_stars_within_12_months() -> None:
    sbux = example("starbucks")
    gold = state(sbux, visits(30), "2024-08-01")
    assert (gold.tier, gold.metric, gold.next_tier) == ("Gold", 30, None)
    green = state(sbux, visits(29), "2024-08-01")
    assert (green.tier, green.metric, green.delta_to_next) == ("Green", 29, 1)
    assert state(sbux, visits(4), "2024-08-01").tier == "Welcome"


def test_starbucks_stars_count_visits_not_dollars_and_expire_after_12_months() -> None:
    sbux = example("starbucks")
    big_spender = state(sbux, [("2024-03-01 08:00", 900.0)] * 3, "2024-04-01")  # one visit, 3 lines
    assert (big_spender.tier, big_spender.metric) == ("Welcome", 1)
    lapsed = state(sbux, visits(30, start="2023-01-02"), "2024-08-01")  # all older than 12 months
    assert (lapsed.tier, lapsed.metric) == ("Welcome", 0)
    gold = state(sbux, visits(30, start="2023-09-01"), "2024-08-01")
    # the oldest star (2023-09-01) leaves 365 days later, on 2024-08-31 (2024 is a leap year)
    assert gold.tier == "Gold" and gold.period_end == pd.Timestamp("2024-08-31")
    assert gold.delta_to_keep == 1


# -- MAC-Select-like: calendar-year spend, $0 / $150 / $500, one tier down -------------------

def test_mac_select_tiers_by_calendar_year_spend() -> None:
    mac = example("mac_select")
    assert state(mac, [("2024-02-01", 149.99)], "2024-06-01").tier == "Select"
    devoted = state(mac, [("2024-02-01", 100.0), ("2024-05-01", 50.0)], "2024-06-01")
    assert (devoted.tier, devoted.since) == ("Devoted", pd.Timestamp("2024-05-01"))
    assert devoted.delta_to_next == 35000 and devoted.next_tier == "Obsessed"
    obsessed = state(mac, [("2024-02-01", 520.0)], "2024-06-01")
    assert obsessed.tier == "Obsessed" and obsessed.delta_to_keep == 0


def test_mac_select_status_lasts_through_next_year_then_drops_one_tier() -> None:
    mac = example("mac_select")
    purchases = [("2023-03-01", 600.0)]
    held = state(mac, purchases, "2024-11-15")
    assert held.tier == "Obsessed" and held.delta_to_keep == 50000
    assert held.period_end.date() == pd.Timestamp("2024-12-31").date()
    assert held.at_risk and held.projected_tier == "Devoted"
    assert state(mac, purchases, "2025-02-01").tier == "Devoted"
    assert state(mac, purchases, "2026-02-01").tier == "Select"
    requalified = state(mac, [*purchases, ("2024-10-01", 510.0)], "2025-02-01")
    # requalifying in 2024 keeps Obsessed through 2025, held continuously since 2023
    assert requalified.tier == "Obsessed" and requalified.since == pd.Timestamp("2023-03-01")
    assert requalified.delta_to_keep == 50000  # nothing spent in 2025 yet


# -- Tesco- and CVS-like: no earned tiers ---------------------------------------------------

def test_cashback_programs_have_one_tier_and_their_earn_rate() -> None:
    tesco, cvs = example("tesco_clubcard"), example("cvs_extracare")
    for program in (tesco, cvs):
        s = state(program, [("2024-01-05", 80.0)], "2024-03-01")
        assert s.tier == program.tier_names[0] and s.next_tier is None and not s.at_risk
    # 1% back at Tesco, 2% back at CVS: points per major unit times the value of a point
    assert tesco.currency.earn_rate * tesco.currency.point_value == 0.01
    assert cvs.currency.earn_rate * cvs.currency.point_value == 0.02


# -- The Complete Journey and synthetic defaults -------------------------------------------

def test_completejourney_thresholds_and_grace() -> None:
    cj = example("completejourney")
    assert cj.threshold_units.tolist() == [0, 120_000, 360_000]
    silver = state(cj, [("2017-01-10", 1300.0)], "2017-06-01")
    assert silver.tier == "Silver" and silver.delta_to_next == 230_000
    in_grace = state(cj, [("2017-01-10", 1300.0)], "2018-01-20")  # left the window on 2018-01-10
    assert in_grace.tier == "Silver" and in_grace.metric == 0 and in_grace.at_risk
    assert state(cj, [("2017-01-10", 1300.0)], "2018-02-15").tier == "Bronze"


def test_synthetic_program_matches_the_generator_constants() -> None:
    synth = example("synthetic")
    assert synth.tier_names == ("Bronze", "Silver", "Gold")
    assert synth.threshold_units.tolist() == [0, 30_000, 70_000]
    assert synth.tier_policy.window.days == 365
