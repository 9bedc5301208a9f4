"""Budgets with periods, pacing, shared (campaign, funder, kind) budgets, and the contact policy.

Pure rules (periods, pacing curves, config errors) are checked directly; reservations run
against the real Redis and the in-process store alike (the ``make`` fixture of the store
suite), and decisions through the real pipeline on synthetic data, with every time injected
(``as_of``): nothing here depends on today's date or on timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import redis

from models.budgets import (
    GRACE_SECONDS,
    BudgetRule,
    allowance,
    counter_ttl,
    paced,
    period_id,
    released_share,
)
from models.catalog import build_catalog
from models.program import ProgramConfigError, parse_program
from offerdata.synthetic.generator import generate
from runtime.decisions import campaign_limits
from runtime.decisions.outcome import DecisionRequest, Outcome
from runtime.decisions.pipeline import DecisionPipeline
from runtime.decisions.setup import DecisionSetup
from runtime.stores import (
    BUDGET_EXHAUSTED,
    BUDGET_PACED,
    CONTACT_CAPPED,
    MEMBER_CAP_REACHED,
    BudgetClaim,
    BudgetCounter,
    CapRequest,
    ContactLimit,
    Store,
)
from runtime.stores.redis_store import RedisStore
from tests.service_helpers import all_store_keys, make_store

T0 = int(datetime(2025, 11, 12, 12, tzinfo=UTC).timestamp())


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make(request: pytest.FixtureRequest) -> Iterator[object]:
    """A factory of stores of each kind (the real Redis, the in-process twin); drops what it made."""
    made: list[Store] = []
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    def factory() -> Store:
        s = make_store(request.param, url, wall_clock=lambda: float(T0))
        made.append(s)
        return s

    yield factory
    for s in made:
        if isinstance(s, RedisStore):
            drop(s)
BASE = """
name: Budget test
timezone: America/New_York
tier_policy: {metric: spend, window: {type: rolling, days: 365}}
tiers: [{name: Bronze, threshold: 0}, {name: Gold, threshold: 700}]
decisions: {max_offers: 2, min_net_value: null}
"""


# -- periods and pacing (pure) -------------------------------------------------------------
def test_period_ids_follow_the_local_calendar() -> None:
    t = pd.Timestamp("2024-12-30 23:30")  # a Monday in ISO week 1 of 2025
    assert [period_id(p, t) for p in ("day", "week", "month", "total")] == [
        "d2024-12-30", "w2025-01", "m2024-12", "total"]
    assert period_id("day", t + pd.Timedelta(minutes=31)) == "d2024-12-31"


def test_counter_ttl_outlives_the_period() -> None:
    assert released_share("total", pd.Timestamp("2024-06-03")) == 1.0
    # a period's counter outlives the period by the grace, measured from the reservation
    assert counter_ttl("day", pd.Timestamp("2024-06-03 18:00"), 999) == 6 * 3600 + GRACE_SECONDS
    assert counter_ttl("total", pd.Timestamp("2024-06-03 18:00"), 999) == 999


def test_pacing_curves() -> None:
    # even: ceil(L x f); front_loaded: ceil(L x (2f - f^2)); none: L
    assert [allowance(100, "even", f) for f in (0.0, 0.001, 0.25, 0.5, 1.0)] == [0, 1, 25, 50, 100]
    assert [allowance(100, "front_loaded", f) for f in (0.001, 0.25, 0.5, 0.75, 1.0)] == [1, 44, 75, 94, 100]
    assert allowance(100, "none", 0.1) == 100
    # slots: hours of a day, days of a week or a month; a slot's share is released at its start
    assert released_share("day", pd.Timestamp("2024-06-03 00:00")) == 1 / 24
    assert released_share("day", pd.Timestamp("2024-06-03 23:59:59")) == 1.0
    assert released_share("week", pd.Timestamp("2024-06-05 12:00")) == 3 / 7  # Wednesday
    assert released_share("month", pd.Timestamp("2024-02-29 08:00")) == 1.0
    rule = BudgetRule("b", count=8, minor=10_000, period="day", pacing="even")
    assert paced(rule, pd.Timestamp("2024-06-03 03:00")) == (2, 1667)


# -- config ---------------------------------------------------------------------------------
def test_budgets_and_contact_policy_parse_into_the_catalog() -> None:
    program = parse_program(BASE + """
offer_defaults:
  partner: {budget: {count: 50, period: week}}
budgets:
  - {id: sunmill, funder: Sunmill, money: 20, period: month, pacing: even}
  - {id: c7, campaign: C7, count: 3, period: day}
contact_policy:
  caps: [{period: week, max_offers: 3}, {channel: email, period: day, max_contacts: 1}]
  quiet_hours: [{channel: sms, start: "21:00", end: "08:00"}]
offers:
  - {id: flash, kind: bonus_points, title: Flash, value: 5, cost: 2, funder: Sunmill,
     budget: {count: 4, period: day, pacing: front_loaded}}
""")
    offers = pd.DataFrame([
        {"offer_id": "p1", "campaign_id": "C7", "kind": "partner", "starts_at": "2025-01-01", "ends_at": "2025-12-31",
         "title": "P1", "cost_minor": 300, "funder": "Sunmill"},
        {"offer_id": "a1", "campaign_id": "C8", "kind": "amount_off", "starts_at": "2025-01-01",
         "ends_at": "2025-12-31", "title": "A1", "cost_minor": 100, "funder": None}])
    catalog = build_catalog(program, offers)
    assert catalog["p1"].budget_keys == ("p1", "sunmill", "c7")
    assert catalog["a1"].budget_keys == ()
    assert catalog["flash"].budget_keys == ("flash", "sunmill")
    rules = {r.key: r for r in catalog.budget_rules}
    assert rules["sunmill"] == BudgetRule("sunmill", None, 2000, "month", "even")
    assert rules["p1"] == BudgetRule("p1", 50, None, "week", "none")
    assert rules["flash"] == BudgetRule("flash", 4, None, "day", "front_loaded")
    local = pd.Timestamp("2025-11-12 06:00")
    claims = campaign_limits.claims(catalog, catalog["flash"], local)
    assert [(c.key, c.period, c.count_limit, c.minor_limit, c.paced_count, c.paced_minor, c.charge_minor)
            for c in claims] == [("flash", "d2025-11-12", 4, None, 2, None, 200),
                                 ("sunmill", "m2025-11", None, 2000, None, 800, 200)]
    assert [c.name for c in program.contact_policy.caps_for("email")] == ["all.week", "email.day"]
    assert campaign_limits.contact_limits(program, "app", local) == (ContactLimit("all.week", "w2025-46", 3, None),)
    assert campaign_limits.quiet(program, "sms", pd.Timestamp("2025-11-12 22:00"))
    assert campaign_limits.quiet(program, "sms", pd.Timestamp("2025-11-12 07:59"))
    assert not campaign_limits.quiet(program, "sms", pd.Timestamp("2025-11-12 08:00"))
    assert not campaign_limits.quiet(program, "email", pd.Timestamp("2025-11-12 22:00"))


@pytest.mark.parametrize("extra, where", [
    ("budgets: [{id: b, count: 3}]", "budgets[0] (line 7): needs exactly one of offers, campaign, funder, kind"),
    ("budgets: [{id: b, funder: X, campaign: Y, count: 3}]", "budgets[0] (line 7): needs exactly one of offers, campaign, funder, kind (has campaign, funder)"),
    ("budgets: [{id: b, funder: X}]", "budgets[0] (line 7): a budget needs count and/or money"),
    ("budgets: [{id: b, funder: X, count: 3, pacing: even}]",
     "budgets[0].pacing (line 7): pacing needs a day, week or month period"),
    ("budgets: [{id: b, kind: coupon, count: 3}]", "budgets[0].kind (line 7): unknown offer kind 'coupon'"),
    ("budgets: [{id: b, funder: X, count: 3, period: year}]", "budgets[0].period (line 7): Input should be"),
    ("offers: [{id: o, kind: bonus_points, title: O, budget: {count: 3, pacing: even}}]",
     "offers[0].budget.pacing (line 7): pacing needs a day, week or month period"),
    ("contact_policy: {caps: [{period: day}]}",
     "contact_policy.caps[0] (line 7): a contact cap needs max_offers and/or max_contacts"),
    ("contact_policy: {caps: [{channel: fax, period: day, max_offers: 1}]}",
     "contact_policy.caps[0].channel (line 7): unknown channel 'fax'"),
    ("contact_policy: {quiet_hours: [{start: '21:00', end: '21:00'}]}",
     "contact_policy.quiet_hours[0].end (line 7): must differ from start"),
])
def test_bad_budget_and_contact_config_names_the_path(extra: str, where: str) -> None:
    with pytest.raises(ProgramConfigError) as err:
        parse_program(BASE + extra + "\n")
    assert where in str(err.value)


# -- reservations against both stores --------------------------------------------------------
def claim(key: str, period: str = "total", count: int | None = None, minor: int | None = None, charge: int = 0,
          paced_count: int | None = None, ttl: int | None = None) -> BudgetClaim:
    return BudgetClaim(key, period, count, minor, charge, ttl, paced_count=paced_count)


def test_an_issue_draws_on_every_budget_or_none(make: object) -> None:
    store: Store = make()  # type: ignore[operator]
    own, funder = claim("o1", count=10), claim("sunmill", minor=500, charge=200)
    req = CapRequest("o1", charge_minor=200, budgets=(own, funder))
    got = [store.reserve(f"m{i}", [req], now=T0)[0] for i in range(3)]
    assert [r.granted for r in got] == [True, True, False]
    assert got[2].reason == BUDGET_EXHAUSTED
    # the refused issue left the offer's own budget untouched
    assert store.budget_usage([own.ref, funder.ref]) == {own.ref: BudgetCounter(2, 0),
                                                         funder.ref: BudgetCounter(2, 400)}


def test_pacing_refuses_as_paced_and_the_limit_as_exhausted(make: object) -> None:
    store: Store = make()  # type: ignore[operator]
    slow = CapRequest("o1", budgets=(claim("b", "d2025-11-12", count=3, paced_count=1),))
    full = CapRequest("o1", budgets=(claim("b", "d2025-11-12", count=3, paced_count=3),))
    assert store.reserve("m1", [slow], now=T0)[0].granted
    assert store.reserve("m2", [slow], now=T0)[0].reason == BUDGET_PACED
    assert [store.reserve(m, [full], now=T0)[0].granted for m in ("m3", "m4", "m5")] == [True, True, False]
    assert store.reserve("m6", [full], now=T0)[0].reason == BUDGET_EXHAUSTED


def test_each_period_has_its_own_counter_living_past_its_end(make: object) -> None:
    store: Store = make()  # type: ignore[operator]
    day1 = CapRequest("o1", budgets=(claim("b", "d2025-11-12", count=1, ttl=3600 + GRACE_SECONDS),))
    day2 = CapRequest("o1", budgets=(claim("b", "d2025-11-13", count=1, ttl=86400 + GRACE_SECONDS),))
    assert store.reserve("m1", [day1], now=T0)[0].granted
    assert store.reserve("m2", [day1], now=T0)[0].reason == BUDGET_EXHAUSTED
    assert store.reserve("m2", [day2], now=T0)[0].granted
    ttls = {k: v for k, v in all_store_keys(store).items() if ":b:" in k}  # type: ignore[arg-type]
    assert len(ttls) == 2 and all(v is not None for v in ttls.values())
    day1_key = next(k for k in ttls if k.endswith("d2025-11-12"))
    assert 3600 + GRACE_SECONDS - 5 <= ttls[day1_key] <= 3600 + GRACE_SECONDS  # type: ignore[operator]
    assert "{budgets}" in day1_key


def test_a_member_refusal_gives_the_budget_back(make: object) -> None:
    store: Store = make()  # type: ignore[operator]
    req = CapRequest("o1", member_limit=1, budgets=(claim("b", count=5),))
    first = store.commit_decision("m1", [req], [None], T0)
    again = store.commit_decision("m1", [req], [None], T0)
    assert first.caps[0].granted and first.caps[0].budget == BudgetCounter(1, 0)
    assert again.caps[0].reason == MEMBER_CAP_REACHED and again.caps[0].budget is None
    assert store.budget_usage([("b", "total")])[("b", "total")] == BudgetCounter(1, 0)
    store.release("m1", first.caps)
    assert store.budget_usage([("b", "total")])[("b", "total")] == BudgetCounter(0, 0)


def test_contact_caps_count_offers_and_slates(make: object) -> None:
    store: Store = make()  # type: ignore[operator]
    week = ContactLimit("all.week", "w2025-46", max_offers=3)
    email = ContactLimit("email.day", "d2025-11-12", max_contacts=1)
    reqs = [CapRequest("o1"), CapRequest("o2")]
    first = store.commit_decision("m1", reqs, [None, None], T0, contact=(week, email))
    assert [c.granted for c in first.caps] == [True, True]  # one slate: one contact, two offers
    second = store.commit_decision("m1", reqs, [None, None], T0, contact=(week, email))
    assert [c.reason for c in second.caps] == [CONTACT_CAPPED, CONTACT_CAPPED]  # a second e-mail today
    app = store.commit_decision("m1", reqs, [None, None], T0, contact=(week,))
    assert [c.reason for c in app.caps] == [None, CONTACT_CAPPED]  # the week's third offer, not a fourth
    next_week = store.commit_decision("m1", reqs, [None, None], T0, contact=(ContactLimit("all.week", "w2025-47", 3),))
    assert [c.granted for c in next_week.caps] == [True, True]
    # a capped request reserves nothing: its budget is given back too
    budgeted = CapRequest("o3", budgets=(claim("b", count=9),))
    capped = store.commit_decision("m1", [budgeted], [None], T0, contact=(email,))
    assert capped.caps[0].reason == CONTACT_CAPPED
    assert store.budget_usage([("b", "total")])[("b", "total")] == BudgetCounter(0, 0)
    assert store.fetch_member("m1").state.counter("issue", "o3").total == 0


def run_threads(n: int, work: object) -> None:
    """Run ``work(t)`` in ``n`` threads released together."""
    start = threading.Barrier(n)

    def go(t: int) -> None:
        start.wait()
        work(t)  # type: ignore[operator]

    threads = [threading.Thread(target=go, args=(t,)) for t in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.mark.redis
def test_200_concurrent_decisions_against_a_budget_of_25_issue_exactly_25(redis_url: str) -> None:
    """Real Redis, 40 threads, 200 members each deciding once: the budget gives exactly 25 issues."""
    store = make_store("redis", redis_url)
    try:
        budget = claim("hot", "w2025-46", count=25, ttl=86400)
        granted: list[str] = []
        lock = threading.Lock()

        def work(t: int) -> None:
            for k in range(5):
                member = f"m{t * 5 + k}"
                result = store.commit_decision(member, [CapRequest("o1", member_limit=1, budgets=(budget,))],
                                               [None], T0)
                with lock:
                    granted.extend(member for c in result.caps if c.granted)

        run_threads(40, work)
        assert len(granted) == 25 and len(set(granted)) == 25
        assert store.budget_usage([budget.ref])[budget.ref] == BudgetCounter(25, 0)
    finally:
        drop(store)


@pytest.mark.redis
def test_concurrent_decisions_never_pass_a_member_cap_nor_leak_budget(redis_url: str) -> None:
    """Real Redis, 40 threads, 200 decisions over 20 members (issue cap 2 per offer, at most 3
    offers a week) and a budget of 25: no member passes a cap, the budget never passes 25, and
    its counter equals the issues granted (every refused member step gave its budget back)."""
    store = make_store("redis", redis_url)
    try:
        budget = claim("hot", "w2025-46", count=25, ttl=86400)
        week = ContactLimit("all.week", "w2025-46", max_offers=3)
        granted: list[tuple[str, str]] = []
        lock = threading.Lock()

        def work(t: int) -> None:
            for k in range(5):
                member = f"m{(t * 5 + k) % 20}"
                reqs = [CapRequest("o1", member_limit=2, budgets=(budget,)), CapRequest("o2", member_limit=2)]
                result = store.commit_decision(member, reqs, [None, None], T0, contact=(week,))
                with lock:
                    granted.extend((member, c.request.offer_id) for c in result.caps if c.granted)

        run_threads(40, work)
        hot = [g for g in granted if g[1] == "o1"]
        assert 0 < len(hot) <= 25
        assert store.budget_usage([budget.ref])[budget.ref] == BudgetCounter(len(hot), 0)
        per_member = {m: sum(1 for g in granted if g[0] == m) for m in {g[0] for g in granted}}
        assert max(per_member.values()) <= 3  # the contact policy: 3 offers a week
        for m, n in per_member.items():
            state = store.fetch_member(m).state
            issued = [state.counter("issue", o).total for o in ("o1", "o2")]
            assert max(issued) <= 2 and sum(issued) == n
    finally:
        drop(store)


def drop(store: RedisStore) -> None:
    """Delete a Redis store's keys and close it."""
    keys = list(store.client.scan_iter(match=store.keys.pattern()))
    if keys:
        store.client.delete(*keys)
    store.close()


# -- decisions through the pipeline -----------------------------------------------------------
PIPELINE_PROGRAM = BASE + """
contact_policy:
  caps: [{period: week, max_offers: 3}, {channel: email, period: day, max_contacts: 1}]
  quiet_hours: [{channel: sms, start: "21:00", end: "08:00"}]
offers:
  - id: flash
    kind: bonus_points
    title: Flash
    value: 5000
    cost: 2
    lever: 50
    priority: 9
    budget: {count: 4, period: day, pacing: even}
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("budget-data")
    generate(out, 1000, seed=3)
    return out


@pytest.fixture
def pipeline(data_dir: Path, tmp_path: Path, make: object) -> Iterator[DecisionPipeline]:
    path = tmp_path / "program.yaml"
    path.write_text(PIPELINE_PROGRAM)
    setup = DecisionSetup.load(data_dir, path, "2025-11-12T12:00:00+00:00")
    store: Store = make()  # type: ignore[operator]
    store.put_generation("test")
    yield DecisionPipeline(setup, store)


def decide(p: DecisionPipeline, member: str, at: str, channel: str = "app", n: int = 2) -> Outcome:
    when = pd.Timestamp(at).tz_localize("America/New_York").tz_convert(UTC).to_pydatetime()
    return p.decide(DecisionRequest(member_id=member, channel=channel, n=n, as_of=when), f"d-{member}-{at}")


def reason(outcome: Outcome, offer_id: str) -> str | None:
    """The offer's reason when not returned, None when returned."""
    if any(o.offer.offer_id == offer_id for o in outcome.offers):
        return None
    return next(e.reason for e in outcome.excluded if e.offer_id == offer_id)


def test_even_pacing_across_a_day_and_into_the_next(pipeline: DecisionPipeline) -> None:
    """A daily budget of 4 paced evenly (local New York days, hourly slots): 1 in the 05:00 slot,
    2 in the 11:00 slot, 4 in the last hour; the next day starts a counter of its own."""
    got = [reason(decide(pipeline, f"u{i}", at), "flash") for i, at in enumerate([
        "2025-11-12 05:00", "2025-11-12 05:30", "2025-11-12 11:00", "2025-11-12 11:30",
        "2025-11-12 23:00", "2025-11-12 23:30", "2025-11-12 23:59", "2025-11-13 00:10"])]
    assert got == [None, "BUDGET_PACED", None, "BUDGET_PACED", None, None, "BUDGET_EXHAUSTED", None]
    usage = pipeline.store.budget_usage([("flash", "d2025-11-12"), ("flash", "d2025-11-13")])
    assert [c.count for c in usage.values()] == [4, 1]


def test_contact_policy_and_quiet_hours_in_real_time_and_batch(pipeline: DecisionPipeline) -> None:
    first = decide(pipeline, "c1", "2025-11-12 10:00", channel="email")
    assert len(first.offers) == 2
    again = decide(pipeline, "c1", "2025-11-12 15:00", channel="email")
    assert again.offers == () and {r.reason for r in again.refused} == {"CONTACT_CAPPED"}
    app = decide(pipeline, "c1", "2025-11-12 16:00", channel="app")
    assert len(app.offers) == 1 and [r.reason for r in app.refused] == ["CONTACT_CAPPED"]
    night = decide(pipeline, "c2", "2025-11-12 22:00", channel="sms")
    assert night.offers == () and {r.reason for r in night.refused} == {"QUIET_HOURS"}
    assert pipeline.store.fetch_member("c2").state.counters == {}  # nothing reserved in quiet hours
    # batch: a chunk of members commits through the same policy
    when = pd.Timestamp("2025-11-13 10:00").tz_localize("America/New_York").tz_convert(UTC).to_pydatetime()
    req = DecisionRequest(member_id="", channel="email", n=2, as_of=when, source="batch")
    chunk = pipeline.decide_chunk(["c1", "c3"], req, ["b1", "b2"])
    assert [len(o.offers) for o in chunk] == [0, 2]  # c1 already had 3 offers this week
    assert {r.reason for r in chunk[0].refused} == {"CONTACT_CAPPED"}


class CountingConnection(redis.Connection):
    """A connection that counts what it sends: one send is one round trip (a pipeline packs its
    commands into one)."""

    sent = 0

    def send_packed_command(self, command: object, check_health: bool = True) -> None:
        """Count, then send."""
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)  # type: ignore[arg-type]


@pytest.mark.redis
def test_round_trips_of_a_decision_write(redis_url: str) -> None:
    """The write of one decision (docs/redis.md, Round trips): 1 without budgets, 2 with a
    budgeted offer (budgets, then the member), 3 when the member step refuses a budgeted offer."""
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    store = RedisStore(redis.Redis(connection_pool=pool), keys=make_store("memory").keys)
    try:
        budgeted = CapRequest("o1", member_limit=1, budgets=(claim("b", count=9),))
        plain = CapRequest("o2")
        store.commit_decision("warm", [budgeted, plain], [None, None], T0)  # loads the scripts
        store.release("warm", store.reserve("warm", [budgeted], T0))

        def trips(member: str, reqs: list[CapRequest]) -> int:
            before = CountingConnection.sent
            store.commit_decision(member, reqs, [None] * len(reqs), T0, contact=(ContactLimit("all.day", "d", 5),))
            return CountingConnection.sent - before

        assert trips("m1", [plain]) == 1
        assert trips("m1", [budgeted, plain]) == 2
        assert trips("m1", [budgeted]) == 3  # the member cap refuses: the budget is given back
        assert store.budget_usage([("b", "total")])[("b", "total")] == BudgetCounter(2, 0)  # warm + m1
    finally:
        drop(store)


def test_the_tesco_like_program_shares_brand_x_budget_across_its_offers() -> None:
    """Brand X's monthly budget covers its program offers and its coupons from the data; each
    partner coupon from the data also has its own monthly count (offer_defaults)."""
    program = parse_program((Path(__file__).resolve().parents[1] / "examples/programs/tesco_clubcard.yaml").read_text())
    offers = pd.DataFrame([{"offer_id": "bx9", "campaign_id": "C9", "kind": "partner", "starts_at": "2024-01-01",
                            "ends_at": "2024-12-31", "title": "Brand X biscuits", "cost_minor": 100,
                            "funder": "Brand X"}])
    catalog = build_catalog(program, offers)
    assert catalog["brand_switch_coffee"].budget_keys == ("brand-x-monthly",)
    assert catalog["brand_x_tea"].budget_keys == ("brand-x-monthly",)
    assert catalog["bx9"].budget_keys == ("bx9", "brand-x-monthly")
    local = pd.Timestamp("2024-06-10 09:30")  # the 10th of 30 days: a third of the month released
    bx9 = campaign_limits.claims(catalog, catalog["bx9"], local)
    assert [(c.key, c.period, c.count_limit, c.minor_limit, c.paced_minor) for c in bx9] == [
        ("bx9", "m2024-06", 20000, None, None), ("brand-x-monthly", "m2024-06", None, 500000, 166667)]
