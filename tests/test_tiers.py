"""The tier engine: hand-built cases, a brute-force reference, and batch == single."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.program import parse_program
from models.tiers import member_tier_state, tier_state_from_row, tier_state_list, tier_states

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-01-01")


def program(window: str = "{type: rolling, days: 30}", policy: str = "to_eligible", grace: int = 0,
            metric: str = "spend", extra: str = ""):
    return parse_program(f"""
name: t
currency: {{name: points, earn_rate: 2{extra}}}
tier_policy:
  metric: {metric}
  window: {window}
  downgrade: {{policy: {policy}, grace_days: {grace}}}
tiers:
  - {{name: Bronze, threshold: 0}}
  - {{name: Silver, threshold: 100}}
  - {{name: Gold, threshold: 300}}
""")


def frame(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    """(member, day offset from T0, amount in minor units) -> transactions frame."""
    return pd.DataFrame({
        "member_id": [r[0] for r in rows],
        "purchased_at": [T0 + r[1] * DAY for r in rows],
        "amount_minor": np.array([r[2] for r in rows], dtype=np.int64),
    })


# -- hand-built cases -----------------------------------------------------------------------

def test_rolling_window_counts_only_strictly_before_as_of_and_within_window() -> None:
    p = program()
    tx = frame([("a", 0, 5000), ("a", 10, 6000), ("a", 40, 99999)])
    s = tier_states(p, tx, T0 + 40 * DAY).loc["a"]  # window [day 10, day 40)
    assert s["metric"] == 6000 and s["tier"] == "Bronze"
    s = tier_states(p, tx, T0 + 30 * DAY).loc["a"]  # window [day 0, day 30): both count
    assert s["metric"] == 11000 and s["tier"] == "Silver"
    assert s["since"] == T0 + 10 * DAY
    assert s["delta_to_next"] == 30000 - 11000
    # day-0 purchase leaves just after day 30: the tier lapses then, and 5000 more keeps it
    assert s["period_end"] == T0 + 30 * DAY
    assert s["delta_to_keep"] == 10000 - 6000


def test_rolling_grace_keeps_the_tier_and_dates_the_demotion() -> None:
    p = program(grace=10)
    tx = frame([("a", 0, 12000)])
    in_grace = tier_states(p, tx, T0 + 35 * DAY).loc["a"]
    assert in_grace["tier"] == "Silver" and in_grace["metric"] == 0
    assert in_grace["period_end"] == T0 + 40 * DAY
    assert in_grace["delta_to_keep"] == 10000 and bool(in_grace["at_risk"])
    after = tier_states(p, tx, T0 + 41 * DAY).loc["a"]
    assert after["tier"] == "Bronze" and after["since"] == T0 + 40 * DAY


def test_no_downgrade_policy_keeps_the_best_tier_ever() -> None:
    p = program(policy="none")
    s = tier_states(p, frame([("a", 0, 40000)]), T0 + 400 * DAY).loc["a"]
    assert s["tier"] == "Gold" and s["metric"] == 0 and pd.isna(s["period_end"])
    assert s["delta_to_keep"] == 0 and not s["at_risk"] and s["since"] == T0


def test_calendar_year_status_holds_through_next_year_then_drops_one_tier() -> None:
    p = program(window="{type: calendar_year}", policy="one_down")
    tx = frame([("a", 10, 35000)])  # Gold in 2024
    by_year = {y: tier_states(p, tx, pd.Timestamp(f"{y}-06-01")).loc["a"] for y in (2024, 2025, 2026, 2027)}
    assert [by_year[y]["tier"] for y in by_year] == ["Gold", "Gold", "Silver", "Bronze"]
    assert by_year[2025]["delta_to_keep"] == 30000 and by_year[2025]["since"] == T0 + 10 * DAY
    assert by_year[2025]["period_end"] == pd.Timestamp("2025-12-31 23:59:59.999999999")
    assert bool(by_year[2025]["at_risk"]) and by_year[2025]["projected_tier"] == "Silver"
    assert by_year[2026]["since"] == pd.Timestamp("2026-01-01")


def test_calendar_year_to_eligible_with_grace() -> None:
    p = program(window="{type: calendar_year}", grace=30)
    tx = frame([("a", 10, 35000), ("a", 380, 12000)])  # Gold in 2024, Silver-level spend in 2025
    assert tier_states(p, tx, pd.Timestamp("2026-01-15")).loc["a"]["tier"] == "Gold"  # grace
    s = tier_states(p, tx, pd.Timestamp("2026-01-15")).loc["a"]
    assert s["period_end"] == pd.Timestamp("2026-01-30 23:59:59.999999999")
    assert tier_states(p, tx, pd.Timestamp("2026-02-15")).loc["a"]["tier"] == "Silver"


def test_lifetime_window_never_drops() -> None:
    p = program(window="{type: lifetime}")
    tx = frame([("a", 0, 20000), ("a", 500, 20000)])
    s = tier_states(p, tx, T0 + 2000 * DAY).loc["a"]
    assert s["tier"] == "Gold" and s["since"] == T0 + 500 * DAY and s["metric"] == 40000


def test_points_metric_floors_the_window_total() -> None:
    p = program(metric="points_earned")  # 2 points per dollar: Silver at 100 points = $50
    s = tier_states(p, frame([("a", 0, 2550), ("a", 1, 2449)]), T0 + 2 * DAY).loc["a"]
    assert s["metric"] == 99 and s["tier"] == "Bronze" and s["delta_to_next"] == 1
    s = tier_states(p, frame([("a", 0, 2550), ("a", 1, 2450)]), T0 + 2 * DAY).loc["a"]
    assert s["metric"] == 100 and s["tier"] == "Silver"


def test_members_without_transactions_and_join_dates() -> None:
    p = program()
    tx = frame([("a", 0, 100)])
    tx["joined_at"] = T0 - 5 * DAY
    out = tier_states(p, tx, T0 + DAY, members=["a", "ghost"])
    assert out.loc["ghost", "tier"] == "Bronze" and out.loc["ghost", "metric"] == 0
    assert pd.isna(out.loc["ghost", "since"]) and out.loc["a", "since"] == T0 - 5 * DAY
    assert list(out.index) == ["a", "ghost"]
    top = tier_states(p, frame([("b", 0, 99999)]), T0 + DAY).loc["b"]
    assert top["next_tier"] is None and pd.isna(top["delta_to_next"])


def test_aware_as_of_is_converted_to_program_time() -> None:
    p = parse_program("name: t\ntimezone: America/New_York\ntier_policy: {window: {type: lifetime}}\n"
                      "tiers: [{name: A, threshold: 0}, {name: B, threshold: 1}]")
    tx = frame([("a", 0, 100)])  # 2024-01-01 00:00 local
    utc = pd.Timestamp("2024-01-01 03:00", tz="UTC")  # 22:00 the day before in New York
    assert tier_states(p, tx, utc).loc["a"]["tier"] == "A"


# -- brute-force reference ------------------------------------------------------------------

def reference_rolling(days: list[int], amounts: list[int], as_of: int, width: int, grace: int,
                      thresholds: list[int]) -> tuple[int, int, int | None]:
    """Rank, metric and period-end day by direct sums over day-resolution events."""
    def metric(s: float) -> int:
        return sum(a for d, a in zip(days, amounts, strict=True) if s - width <= d < s)

    def rank(x: float) -> int:
        return max(i for i, t in enumerate(thresholds) if x >= t)

    points = [as_of - grace, as_of] + [d + 0.5 for d in days if as_of - grace <= d < as_of]
    r = rank(max(metric(s) for s in points))
    end = None
    if r > 0 and metric(as_of) >= thresholds[r]:
        window = sorted((d, a) for d, a in zip(days, amounts, strict=True) if as_of - width <= d < as_of)
        remaining = metric(as_of)
        for d, a in window:  # oldest first, they leave the window one after the other
            remaining -= a
            if remaining < thresholds[r]:
                end = d + width + grace
                break
    return r, metric(as_of), end


events = st.lists(st.tuples(st.integers(0, 120), st.sampled_from([0, 2500, 5000, 10000, 20000])),
                  max_size=25)


@settings(max_examples=150, deadline=None)
@given(events=events, as_of=st.integers(0, 130), grace=st.sampled_from([0, 5, 30]))
def test_rolling_engine_matches_brute_force(events: list[tuple[int, int]], as_of: int, grace: int) -> None:
    merged: dict[int, int] = {}
    for d, a in events:
        merged[d] = merged.get(d, 0) + a
    days, amounts = list(merged), list(merged.values())
    p = program(grace=grace)
    state = member_tier_state(p, np.array([T0 + d * DAY for d in days], dtype="datetime64[ns]"),
                              np.array(amounts), T0 + as_of * DAY)
    rank, metric, end = reference_rolling(days, amounts, as_of, 30, grace, [0, 10000, 30000])
    assert (state.tier_rank, state.metric) == (rank, metric)
    if end is not None:
        assert state.period_end == T0 + end * DAY


def reference_calendar(spend_by_year: dict[int, int], year: int, thresholds: list[int], policy: str) -> int:
    """Year-by-year simulation: status earned in a year holds through the next."""
    def rank(x: int) -> int:
        return max(i for i, t in enumerate(thresholds) if x >= t)

    carry = 0
    for y in range(min([*spend_by_year, year]), year):
        earned = rank(spend_by_year.get(y, 0))
        status = max(earned, carry)
        if earned >= status or policy == "none":
            carry = status
        elif policy == "one_down":
            carry = max(earned, status - 1)
        else:
            carry = earned
    return max(carry, rank(spend_by_year.get(year, 0)))


@settings(max_examples=150, deadline=None)
@given(events=st.lists(st.tuples(st.integers(0, 4 * 365), st.sampled_from([0, 5000, 15000, 30000])),
                       max_size=20),
       as_of=st.integers(0, 5 * 365), policy=st.sampled_from(["none", "one_down", "to_eligible"]))
def test_calendar_engine_matches_year_by_year_simulation(events: list[tuple[int, int]], as_of: int,
                                                         policy: str) -> None:
    p = program(window="{type: calendar_year}", policy=policy)
    cutoff = T0 + as_of * DAY
    by_year: dict[int, int] = {}
    for d, a in events:
        when = T0 + d * DAY
        if when < cutoff:
            by_year[when.year] = by_year.get(when.year, 0) + a
    state = member_tier_state(p, np.array([T0 + d * DAY for d, _ in events], dtype="datetime64[ns]"),
                              np.array([a for _, a in events], dtype=np.int64), cutoff)
    assert state.tier_rank == reference_calendar(by_year, cutoff.year, [0, 10000, 30000], policy)
    assert state.metric == by_year.get(cutoff.year, 0)


# -- vectorised == single -------------------------------------------------------------------

WINDOWS = ["{type: rolling, days: 30}", "{type: calendar_year}", "{type: lifetime}"]


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 800),
                               st.integers(0, 40000)), max_size=40),
       as_of=st.integers(0, 900), window=st.sampled_from(WINDOWS),
       policy=st.sampled_from(["none", "to_eligible"]), grace=st.sampled_from([0, 7]),
       metric=st.sampled_from(["spend", "points_earned"]))
def test_batch_and_single_member_states_are_identical(rows: list[tuple[str, int, int]], as_of: int, window: str,
                                                      policy: str, grace: int, metric: str) -> None:
    p = program(window=window, policy=policy, grace=grace, metric=metric)
    tx = frame(rows)
    cutoff = T0 + as_of * DAY
    members = ["a", "b", "c", "d"]
    batch = tier_states(p, tx, cutoff, members=members)
    for m in members:
        mine = tx[tx["member_id"] == m]
        single = member_tier_state(p, mine["purchased_at"].to_numpy(), mine["amount_minor"].to_numpy(), cutoff)
        assert tier_state_from_row(batch.loc[m]) == single
    codes = pd.Categorical(tx["member_id"], categories=members).codes.astype(np.int64)
    listed = tier_state_list(p, codes, tx["purchased_at"].to_numpy().astype("datetime64[ns]").view(np.int64),
                             tx["amount_minor"].to_numpy(), len(members), cutoff)
    assert listed == [tier_state_from_row(batch.loc[m]) for m in members]


def test_visit_based_points_count_distinct_purchase_moments() -> None:
    p = program(metric="points_earned", extra=", earn_basis: visit")  # 2 points per visit
    tx = frame([("a", 0, 100), ("a", 0, 100), ("a", 1, 0)] + [("a", d, 100) for d in range(2, 50)])
    s = tier_states(p, tx, T0 + 10 * DAY).loc["a"]
    assert s["metric"] == 2 * 10  # days 0..9 in the 30-day window: 10 visits
    assert s["tier"] == "Bronze" and s["delta_to_next"] == 80


@pytest.mark.parametrize("n", [0, 1])
def test_empty_inputs(n: int) -> None:
    p = program()
    tx = frame([("a", 0, 100)] * n)
    out = tier_states(p, tx, T0, members=["a"])
    assert out.loc["a", "tier"] == "Bronze" and out.loc["a", "metric"] == 0
