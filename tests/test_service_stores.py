"""One behavioural suite for the online store, run against Redis and the in-process store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from runtime.coupons.codes import Coupon
from runtime.stores import (
    BUDGET_EXHAUSTED,
    CLAIM_AGAIN,
    CLAIM_EXPIRED,
    CLAIM_MEMBER,
    CLAIM_MISSING,
    CLAIM_OFFER,
    CLAIM_OK,
    CLAIM_REDEEMED,
    MEMBER_CAP_REACHED,
    RECENT_LIMIT,
    BudgetCounter,
    CacheWrite,
    CapRequest,
    CouponClaim,
    CouponWrite,
    MemberProfile,
    MemberWrite,
    StateEvent,
    Store,
    StoredResponse,
    TTLs,
    encoding,
)
from runtime.stores.keys import KeySpace, build_key
from runtime.stores.memory import MemoryStore
from runtime.stores.redis_store import RedisStore
from tests.service_helpers import RecordingObserver, all_store_keys, make_store

T0 = int(datetime(2024, 6, 15, 12, tzinfo=UTC).timestamp())


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("cluster", marks=pytest.mark.redis)])
def store_kind(request: pytest.FixtureRequest) -> str:
    """memory (in-process), redis (one server) or cluster (a 3-master Redis Cluster)."""
    return str(request.param)


@pytest.fixture
def make(store_kind: str, request: pytest.FixtureRequest) -> Iterator[object]:
    """A factory of stores of the current kind; closes what it made."""
    made: list[Store] = []
    url = {"memory": None, "redis": lambda: request.getfixturevalue("redis_url"),
           "cluster": lambda: request.getfixturevalue("redis_cluster").url}[store_kind]
    url = url() if url is not None else None

    def factory(**kwargs: object) -> Store:
        kwargs.setdefault("wall_clock", lambda: float(T0))
        s = make_store(store_kind, url, **kwargs)
        made.append(s)
        return s

    yield factory
    for s in made:
        if isinstance(s, RedisStore):
            keys = list(s.client.scan_iter(match=s.keys.pattern()))
            if keys:
                s.client.delete(*keys)
        s.close()


@pytest.fixture
def store(make: object) -> Store:
    return make()  # type: ignore[operator]


def codes_for(store: Store) -> Callable[..., str]:
    """Coupon codes in the store's key layout: on a cluster a code carries its holder's slot marker
    before its (here dummy) check character, as issued codes do (runtime.stores.slots)."""

    def code(name: str, member: str = "m1") -> str:
        marker = store.keys.code_marker(member)
        return f"{name}{marker}0" if marker else name

    return code


def txn(event_id: str, member: str = "m1", ts: int = T0, amount: int = 1000,
        month: str = "202406") -> StateEvent:
    return StateEvent(event_id=event_id, member_id=member, type="transaction", ts=ts,
                      amount_minor=amount, month=month)


def offer_event(event_id: str, kind: str, offer: str = "o1", member: str = "m1",
                ts: int = T0) -> StateEvent:
    return StateEvent(event_id=event_id, member_id=member, type=kind, ts=ts, offer_id=offer,
                      month="202406")


# -- keys ---------------------------------------------------------------------------
def test_keys_are_built_by_one_function_under_the_prefix() -> None:
    assert build_key("ofr", "state", "1029") == "ofr:s:1029"
    assert build_key("ofr", "budget", "supplier-x", "2024-06") == "ofr:b:supplier-x:2024-06"
    keys = KeySpace("app2")
    assert [keys.state("m"), keys.cache("m"), keys.event("e"), keys.budget("b", "p"),
            keys.coupon("C0DE"), keys.idempotency("ab12")] == [
        "app2:s:m", "app2:c:m", "app2:e:e", "app2:b:{budgets}:b:p", "app2:k:C0DE", "app2:i:ab12"]
    assert keys.pattern() == "app2:*"


@pytest.mark.parametrize("parts", [("a:b",), ("a b",), ("{m}",), ("",), ("a\n",), ()])
def test_no_id_can_forge_another_key(parts: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        build_key("ofr", "state", *parts)


def test_unknown_key_kinds_and_bad_prefixes_are_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        build_key("ofr", "secrets", "x")
    with pytest.raises(ValueError, match="prefix"):
        KeySpace("has:colon")


# -- state and events --------------------------------------------------------------
def test_unknown_member_has_an_empty_state(store: Store) -> None:
    bundle = store.fetch_member("nobody", "v1")
    assert not bundle.state.exists
    assert bundle.state.spend_minor == 0 and bundle.state.last_seen is None
    assert bundle.scores is None and not bundle.cache_hit


def test_transactions_update_spend_recency_and_months(store: Store) -> None:
    applied = store.apply_events([txn("e1", amount=1250, ts=T0 - 100),
                                  txn("e2", amount=750, ts=T0, month="202406"),
                                  txn("e3", amount=500, ts=T0 - 40 * 86400, month="202405")])
    assert applied == [True, True, True]
    s = store.fetch_member("m1").state
    assert s.exists
    assert s.spend_minor == 2500 and s.purchases == 3
    assert s.last_seen == T0 and s.last_purchase == T0
    assert s.monthly_spend == {"202406": 2000, "202405": 500}
    assert s.monthly_purchases == {"202406": 2, "202405": 1}
    assert s.spend_in_months("202406", "202406") == 2000


def test_offer_events_count_per_subject_and_offer(store: Store) -> None:
    store.apply_events([offer_event("i1", "impression"), offer_event("i2", "impression", ts=T0 + 5),
                        offer_event("c1", "click"), offer_event("r1", "redeem", offer="o2"),
                        offer_event("d1", "dismiss", offer="o3")])
    s = store.fetch_member("m1").state
    assert s.counter("impression", "o1").total == 2
    assert s.counter("impression", "o1").recent == (T0, T0 + 5)
    assert s.counter("click", "o1").total == 1
    assert s.counter("redeem", "o2").total == 1
    assert s.counter("dismiss", "o3").total == 1
    assert s.counter("redeem", "o1").total == 0
    assert s.last_seen == T0 + 5 and s.purchases == 0


def test_counters_keep_the_newest_timestamps_in_order(store: Store) -> None:
    times = [T0 + d for d in (50, 10, 90, 30, 70, 20, 80, 40, 60, 0, 100)]
    store.apply_events([offer_event(f"e{i}", "impression", ts=t) for i, t in enumerate(times)])
    c = store.fetch_member("m1").state.counter("impression", "o1")
    assert c.total == len(times)
    assert c.recent == tuple(sorted(times)[-RECENT_LIMIT:])
    assert c.reached(3, since=T0 + 80) and not c.reached(4, since=T0 + 80)


def test_duplicate_events_are_applied_once(store: Store) -> None:
    assert store.apply_events([txn("dup"), txn("dup")]) == [True, False]
    assert store.apply_events([txn("dup"), txn("new")]) == [False, True]
    assert store.fetch_member("m1").state.purchases == 2
    assert store.events_seen(["dup", "new", "never"], ["m1"] * 3) == [True, True, False]
    assert store.events_seen([]) == [] and store.apply_events([]) == []


def test_events_older_than_the_kept_months_do_not_create_month_counters(store: Store) -> None:
    store.apply_events([txn("old", month="202001", ts=T0 - 4 * 365 * 86400)])
    s = store.fetch_member("m1").state
    assert s.spend_minor == 1000 and s.monthly_spend == {}


def test_a_new_month_trims_months_beyond_the_window(make: object) -> None:
    clock = {"now": float(T0)}
    store: Store = make(wall_clock=lambda: clock["now"])  # type: ignore[operator]
    store.apply_events([txn("a", month="202406")])
    clock["now"] = float(datetime(2026, 9, 1, tzinfo=UTC).timestamp())  # cutoff 202409
    store.apply_events([txn("b", month="202609")])
    assert store.fetch_member("m1").state.monthly_spend == {"202609": 1000}


# -- score cache ------------------------------------------------------------------
def test_scores_round_trip_as_float32_per_model_version(store: Store) -> None:
    scores = np.linspace(0, 1, 100)
    store.put_scores("m1", "v1", scores)
    got = store.fetch_member("m1", "v1").scores
    assert got is not None and got.dtype == np.float32 and got.shape == (100,)
    # probabilities are kept as 3-byte log-scale codes: within 5.4e-7 relative, 0 and 1 exact, order kept
    np.testing.assert_allclose(got, scores.astype(np.float32), rtol=encoding.LOG_MAX_RELATIVE_ERROR, atol=0)
    assert got[0] == 0 and got[-1] == 1 and np.all(np.diff(got) > 0)
    assert store.fetch_member("m1", "v2").scores is None
    assert store.fetch_member("m1").scores is None


def test_scores_that_are_not_probabilities_round_trip_exactly(store: Store) -> None:
    scores = np.array([7.0, -0.25, 1.5, 0.5], dtype=np.float32)
    store.put_scores("m1", "v1", scores)
    got = store.fetch_member("m1", "v1").scores
    assert got is not None and got.dtype == np.float32 and got.tolist() == scores.tolist()


def test_cache_lookups_are_reported(make: object) -> None:
    obs = RecordingObserver()
    store: Store = make(observer=obs)  # type: ignore[operator]
    store.put_scores("m1", "v1", [0.5])
    store.fetch_member("m1", "v1")
    store.fetch_member("m2", "v1")
    store.fetch_members(["m1", "m2", "m3"], "v1")
    store.fetch_member("m1")  # no model version: no lookup
    assert (obs.hits, obs.misses) == (2, 3)


def test_batch_reads_and_writes_many_members(store: Store) -> None:
    members = [f"m{i}" for i in range(50)]
    store.put_scores_many("v1", {m: [i / 100, 1.0] for i, m in enumerate(members)})
    store.apply_events([txn(f"t{i}", member=m, amount=i) for i, m in enumerate(members)])
    bundles = store.fetch_members([*members, "ghost"], "v1")
    assert [b.state.member_id for b in bundles] == [*members, "ghost"]
    # the events invalidated every member's cache
    assert all(b.scores is None for b in bundles)
    assert [b.state.spend_minor for b in bundles[:50]] == list(range(50))
    store.put_scores_many("v1", {m: [i / 100, 1.0] for i, m in enumerate(members)})
    bundles = store.fetch_members(members, "v1")
    assert [round(float(b.scores[0]), 2) for b in bundles] == [i / 100 for i in range(50)]  # type: ignore[index]


def test_an_event_invalidates_the_members_cached_scores(store: Store) -> None:
    store.put_scores("m1", "v1", [0.1, 0.2])
    store.put_scores("m1", "v2", [0.3])
    store.put_scores("m2", "v1", [0.4])
    store.apply_events([offer_event("e1", "click")])
    assert store.fetch_member("m1", "v1").scores is None
    assert store.fetch_member("m1", "v2").scores is None
    assert store.fetch_member("m2", "v1").scores is not None


def test_invalidate_drops_every_version(store: Store) -> None:
    store.put_scores("m1", "v1", [0.1])
    store.put_scores("m1", "v2", [0.2])
    store.invalidate("m1")
    assert store.fetch_member("m1", "v1").scores is None
    assert store.fetch_member("m1", "v2").scores is None


def test_cached_scores_expire(make: object) -> None:
    store: Store = make(ttls=TTLs(cache=1))  # type: ignore[operator]
    store.put_scores("m1", "v1", [0.1])
    assert store.fetch_member("m1", "v1").scores is not None
    time.sleep(2.1)
    assert store.fetch_member("m1", "v1").scores is None


# -- caps and budgets ------------------------------------------------------------------
def test_member_lifetime_cap(store: Store) -> None:
    req = CapRequest("o1", member_limit=2)
    results = [store.reserve("m1", [req], now=T0 + i)[0] for i in range(3)]
    assert [r.granted for r in results] == [True, True, False]
    assert results[2].reason == MEMBER_CAP_REACHED
    assert store.fetch_member("m1").state.counter("issue", "o1").total == 2
    assert store.reserve("m2", [req], now=T0)[0].granted


def test_member_windowed_cap(store: Store) -> None:
    req = CapRequest("o1", member_limit=1, member_window_seconds=3600)
    assert store.reserve("m1", [req], now=T0)[0].granted
    assert not store.reserve("m1", [req], now=T0 + 3599)[0].granted
    assert store.reserve("m1", [req], now=T0 + 3601)[0].granted


def test_budget_limits_count_and_money(store: Store, store_kind: str) -> None:
    req = CapRequest("o1", budget_key="supplier", budget_period="2024-06",
                     budget_minor_limit=1000, charge_minor=400)
    results = [store.reserve(f"m{i}", [req], now=T0)[0] for i in range(3)]
    assert [r.granted for r in results] == [True, True, False]
    assert [r.budget for r in results] == [BudgetCounter(1, 400), BudgetCounter(2, 800),
                                           BudgetCounter(2, 800)]
    assert results[2].reason == BUDGET_EXHAUSTED
    # another offer drawing on the same budget sees what the first consumed
    other = CapRequest("o2", budget_key="supplier", budget_period="2024-06", budget_count_limit=3)
    assert store.reserve("m1", [other], now=T0)[0].budget == BudgetCounter(3, 800)
    assert not store.reserve("m2", [other], now=T0)[0].granted
    assert store.budget_usage([("supplier", "2024-06"), ("supplier", "2024-07")]) == {
        ("supplier", "2024-06"): BudgetCounter(3, 800), ("supplier", "2024-07"): BudgetCounter()}
    bundle = store.fetch_member("m9", "v1", budgets=[("supplier", "2024-06"), ("none", "total")])
    assert bundle.budgets == {("supplier", "2024-06"): BudgetCounter(3, 800),
                              ("none", "total"): BudgetCounter()}


def test_several_requests_in_one_call_are_checked_one_by_one(store: Store, store_kind: str) -> None:
    reqs = [CapRequest("o1", member_limit=1, budget_key="b", budget_count_limit=5),
            CapRequest("o1", member_limit=1),
            CapRequest("o2", budget_key="b", budget_count_limit=1),
            CapRequest("o3")]
    results = store.reserve("m1", reqs, now=T0)
    assert [(r.granted, r.reason) for r in results] == [
        (True, None), (False, MEMBER_CAP_REACHED), (False, BUDGET_EXHAUSTED), (True, None)]
    assert results[0].budget == BudgetCounter(1, 0) and results[1].budget is None
    assert results[3].budget is None


def test_a_reservation_can_count_the_impression_too(store: Store) -> None:
    granted = store.reserve("m1", [CapRequest("o1", count_impression=True)], now=T0)
    s = store.fetch_member("m1").state
    assert s.counter("issue", "o1").total == 1 and s.counter("impression", "o1").recent == (T0,)
    store.release("m1", granted)
    s = store.fetch_member("m1").state
    assert s.counter("issue", "o1").total == 0 and s.counter("impression", "o1").total == 0


def test_release_undoes_granted_reservations(store: Store, store_kind: str) -> None:
    req = CapRequest("o1", member_limit=1, budget_key="b", budget_count_limit=1, charge_minor=250)
    granted = store.reserve("m1", [req], now=T0)
    assert granted[0].granted
    assert not store.reserve("m2", [req], now=T0)[0].granted  # budget used up
    store.release("m1", granted)
    assert store.budget_usage([("b", "total")]) == {("b", "total"): BudgetCounter(0, 0)}
    assert store.fetch_member("m1").state.counter("issue", "o1").total == 0
    assert store.reserve("m1", [req], now=T0 + 1)[0].granted


def test_windowed_caps_beyond_the_kept_timestamps_err_towards_reached(store: Store) -> None:
    req = CapRequest("o1", member_limit=RECENT_LIMIT + 2, member_window_seconds=86400)
    results = [store.reserve("m1", [req], now=T0 + i)[0].granted for i in range(RECENT_LIMIT + 3)]
    # exact up to RECENT_LIMIT, then the lifetime total counts (an upper bound)
    assert sum(results) == RECENT_LIMIT + 2
    counter = store.fetch_member("m1").state.counter("issue", "o1")
    assert counter.count_since(T0) == RECENT_LIMIT + 2
    # once the kept timestamps leave the window, the count is exact again
    assert counter.count_since(T0 + RECENT_LIMIT + 5) == 0


def test_member_state_counts_feed_cap_counters(store: Store) -> None:
    store.apply_events([offer_event("a", "impression", ts=T0 - 40 * 86400),
                        offer_event("b", "impression", ts=T0 - 86400),
                        offer_event("c", "impression", offer="o2", ts=T0 - 86400)])
    s = store.fetch_member("m1").state
    windows = {"o1": 30 * 86400, "o2": None, "o3": 86400}
    assert s.counts("impression", T0, windows) == {"o1": 1, "o2": 1}


def test_cap_requests_are_checked() -> None:
    with pytest.raises(ValueError, match="budget_key"):
        CapRequest("o1", budget_count_limit=3)
    with pytest.raises(ValueError, match="window"):
        CapRequest("o1", member_limit=1, member_window_seconds=0)
    CapRequest("o1", member_limit=1000)  # lifetime caps may be large


@pytest.mark.parametrize("budget, member_limit, expect", [(10, None, 10), (None, 3, 3)])
def test_100_concurrent_reservations_never_over_issue(make: object, budget: int | None,
                                                     member_limit: int | None, expect: int,
                                                     store_kind: str) -> None:
    store: Store = make()  # type: ignore[operator]
    req = CapRequest("hot", member_limit=member_limit,
                     budget_key="hot-budget" if budget is not None else None,
                     budget_count_limit=budget)
    start = threading.Barrier(100)
    results: list[bool] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        member = f"m{i}" if budget is not None else "same-member"
        start.wait()
        ok = store.reserve(member, [req], now=T0)[0].granted
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 100
    assert sum(results) == expect
    if budget is not None:
        assert store.budget_usage([("hot-budget", "total")]) == {
            ("hot-budget", "total"): BudgetCounter(budget, 0)}
    else:
        assert store.fetch_member("same-member").state.counter("issue", "hot").total == expect


# -- coupons and idempotency ------------------------------------------------------------
def test_coupon_records_are_unique(store: Store) -> None:
    assert store.put_coupon("ABC123", b'{"m":"m1"}', 60)
    assert not store.put_coupon("ABC123", b"other", 60)
    assert store.get_coupon("ABC123") == b'{"m":"m1"}'
    assert store.get_coupon("NOPE") is None


def test_idempotency_claim_finish_and_abort(store: Store) -> None:
    assert store.idempotency_begin("k1", "h1", 30) is None
    pending = store.idempotency_begin("k1", "h1", 30)
    assert pending is not None and pending.in_flight and pending.request_hash == "h1"
    store.idempotency_finish("k1", StoredResponse("h1", 200, b'{"ok":true}', "application/json"))
    done = store.idempotency_begin("k1", "h2", 30)
    assert done == StoredResponse("h1", 200, b'{"ok":true}', "application/json")
    assert store.idempotency_begin("k2", "h", 30) is None
    store.idempotency_abort("k2")
    assert store.idempotency_begin("k2", "h", 30) is None


# -- history records and profiles ---------------------------------------------------------
PROFILE = MemberProfile(fingerprint="fp1", joined_at=1_400_000_000, segment="family", birth_month=3,
                        channels=("app", "email"))


def record_event(event_id: str, record: bytes, fingerprint: str = "fp1", member: str = "m1",
                 kind: str = "transaction") -> StateEvent:
    return StateEvent(event_id=event_id, member_id=member, type=kind, ts=T0, amount_minor=100,
                      offer_id=None if kind == "transaction" else "o1", month="202406",
                      record=record, fingerprint=fingerprint)


def test_materialized_history_and_profile_come_back_in_the_one_read(store: Store) -> None:
    store.put_scores("m1", "v1", [0.5])
    store.put_members([MemberWrite("m1", b"r" * 36, PROFILE),
                       MemberWrite("m2", b"", MemberProfile(fingerprint="fp1"))])
    bundle = store.fetch_member("m1", "v1", budgets=[("b", "total")])
    assert bundle.history == b"r" * 36 and bundle.history_length == 36
    assert bundle.profile == PROFILE
    assert bundle.scores is None  # re-materializing drops the cached scores
    assert bundle.budgets == {("b", "total"): BudgetCounter()}
    bare = store.fetch_members(["m2", "ghost"], "v1")
    assert bare[0].profile == MemberProfile(fingerprint="fp1") and bare[0].history == b""
    assert bare[1].profile is None and bare[1].history is None


def test_events_append_records_under_the_same_fingerprint_only(store: Store) -> None:
    store.put_members([MemberWrite("m1", b"a" * 4, PROFILE)])
    store.apply_events([record_event("e1", b"b" * 4), record_event("e1", b"x" * 4),  # duplicate
                        record_event("e2", b"c" * 4, fingerprint="other"),  # another catalog
                        record_event("e3", b"", kind="click")])
    assert store.fetch_member("m1").history == b"aaaabbbb"
    # a member never materialized starts a history (and a profile) with their first event
    store.apply_events([record_event("e4", b"d" * 4, member="new", kind="redeem")])
    fresh = store.fetch_member("new")
    assert fresh.history == b"dddd" and fresh.profile == MemberProfile(fingerprint="fp1")
    assert fresh.state.counter("redeem", "o1").total == 1


def test_a_commit_reserves_stores_coupons_and_caches_in_one_call(store: Store, store_kind: str) -> None:
    c = codes_for(store)
    store.put_members([MemberWrite("m1", b"h" * 8, PROFILE)])
    requests = [CapRequest("o1", member_limit=1), CapRequest("o2", budget_key="b", budget_count_limit=1)]
    coupons = [coupon_write(c("CODE1")), None]
    cache = CacheWrite("v1|app|x", np.array([0.25, 0.5], dtype=np.float32), history_length=8)
    first = store.commit_decision("m1", requests, coupons, T0, cache)
    assert [c.granted for c in first.caps] == [True, True]
    assert first.coupons_stored == [True, False] and first.cache_written
    assert store.get_coupon(c("CODE1")) == coupons[0].record  # type: ignore[union-attr]
    got = store.fetch_member("m1", "v1|app|x").scores
    assert got is not None and got.tolist() == pytest.approx([0.25, 0.5], rel=encoding.LOG_MAX_RELATIVE_ERROR)
    again = store.commit_decision("m1", requests, [None, coupon_write(c("CODE2"), offer="o2")], T0)
    assert [c.reason for c in again.caps] == [MEMBER_CAP_REACHED, BUDGET_EXHAUSTED]
    assert again.coupons_stored == [False, False] and store.get_coupon(c("CODE2")) is None
    assert store.fetch_member("m1").state.counter("issue", "o1").total == 1


def test_a_commit_never_caches_scores_an_event_made_stale(store: Store) -> None:
    store.put_members([MemberWrite("m1", b"h" * 8, PROFILE)])
    read = store.fetch_member("m1", "v1")
    store.apply_events([record_event("e1", b"n" * 4)])  # arrives between read and write
    cache = CacheWrite("v1", np.array([0.5], dtype=np.float32), read.history_length)
    assert not store.commit_decision("m1", [], [], T0, cache).cache_written
    assert store.fetch_member("m1", "v1").scores is None


def test_a_colliding_coupon_code_is_not_overwritten(store: Store, store_kind: str) -> None:
    c = codes_for(store)
    assert store.put_coupon(c("TAKEN"), b"first", 60)
    result = store.commit_decision("m1", [CapRequest("o1")], [CouponWrite(c("TAKEN"), b"second", 60)], T0)
    assert result.caps[0].granted and result.coupons_stored == [False]
    assert store.get_coupon(c("TAKEN")) == b"first"


def test_commits_for_many_members(store: Store, store_kind: str) -> None:
    c = codes_for(store)
    members = [f"m{i}" for i in range(20)]
    commits = [(m, [CapRequest("o1", budget_key="b", budget_count_limit=5)],
                [CouponWrite(c(f"C{i}", m), b"r", 60)], CacheWrite("v1", np.array([i], dtype=np.float32), 0))
               for i, m in enumerate(members)]
    results = store.commit_many([*commits, ("idle", [], [], None)], T0)
    assert sum(r.caps[0].granted for r in results[:20]) == 5 and results[20].caps == []
    assert [r.coupons_stored[0] for r in results[:20]] == [r.caps[0].granted for r in results[:20]]
    assert all(r.cache_written for r in results[:20])
    assert store.fetch_member("m7", "v1").scores.tolist() == [7.0]  # type: ignore[union-attr]


# -- held coupons and redemptions -------------------------------------------------------------
def coupon_write(code: str, member: str = "m1", offer: str = "o1", ttl: int = 600) -> CouponWrite:
    record = Coupon(code=code, display=code, member_id=member, offer_id=offer, issued_at=T0,
                    expires_at=T0 + ttl).to_bytes()
    return CouponWrite(code, record, ttl)


def claim(code: str, event: str = "r1", member: str = "m1", offer: str = "o1", at: int = T0 + 1) -> CouponClaim:
    return CouponClaim(code=code, member_id=member, offer_id=offer, at=at, event_id=event)


def test_a_member_holding_a_live_coupon_gets_it_again_without_a_new_reservation(store: Store, store_kind: str) -> None:
    c = codes_for(store)
    request = CapRequest("o1", budget_key="b", budget_count_limit=5)
    first = store.commit_decision("m1", [request], [coupon_write(c("C1"))], T0)
    assert first.coupons_stored == [True] and first.coupons_reused == [None]
    again = store.commit_decision("m1", [request], [coupon_write(c("C2"))], T0 + 60)
    assert again.caps[0].granted and not again.caps[0].reserved
    assert again.coupons_stored == [False] and store.get_coupon(c("C2")) is None
    assert Coupon.from_bytes(again.coupons_reused[0] or b"").code == c("C1")
    # nothing was counted for the second one, and releasing it undoes nothing
    store.release("m1", again.caps)
    assert store.fetch_member("m1").state.counter("issue", "o1").total == 1
    assert store.budget_usage([("b", "total")])[("b", "total")].count == 1
    # another member, or a coupon past its expiry, gets a new code
    assert store.commit_decision("m2", [request], [coupon_write(c("C3", "m2"), member="m2")], T0).coupons_stored == [True]
    late = store.commit_decision("m1", [request], [coupon_write(c("C4"))], T0 + 600)
    assert late.coupons_stored == [True] and late.coupons_reused == [None]
    # a held code never makes an offer whose issue cap is reached come back
    capped = CapRequest("o9", member_limit=1)
    assert store.commit_decision("m1", [capped], [coupon_write(c("C5"), offer="o9")], T0).coupons_stored == [True]
    refused = store.commit_decision("m1", [capped], [coupon_write(c("C6"), offer="o9")], T0 + 1)
    assert refused.caps[0].reason == MEMBER_CAP_REACHED and refused.coupons_reused == [None]


def test_a_redeemed_coupon_is_not_handed_out_again(store: Store, store_kind: str) -> None:
    c = codes_for(store)
    store.commit_decision("m1", [CapRequest("o1")], [coupon_write(c("C1"))], T0)
    [result] = store.redeem_coupons([claim(c("C1"))])
    assert result.status == CLAIM_OK and result.ok
    redeemed = Coupon.from_bytes(store.get_coupon(c("C1")) or b"")
    assert redeemed.redeemed_at == T0 + 1 and redeemed.redeemed_event_id == "r1"
    after = store.commit_decision("m1", [CapRequest("o1")], [coupon_write(c("C2"))], T0 + 2)
    assert after.coupons_stored == [True] and after.coupons_reused == [None]


def test_redemptions_check_member_offer_expiry_and_first_use(store: Store, store_kind: str) -> None:
    c = codes_for(store)
    store.commit_decision("m1", [CapRequest("o1")], [coupon_write(c("C1"), ttl=600)], T0)
    def status(c: CouponClaim) -> str:
        return store.redeem_coupons([c])[0].status
    assert status(claim(c("NOPE"))) == CLAIM_MISSING
    assert status(claim(c("C1"), member="m2")) == CLAIM_MEMBER
    assert status(claim(c("C1"), offer="o2")) == CLAIM_OFFER
    assert status(claim(c("C1"), at=T0 + 600)) == CLAIM_EXPIRED
    assert status(claim(c("C1"), event="r1")) == CLAIM_OK
    assert status(claim(c("C1"), event="r1")) == CLAIM_AGAIN  # the same event again: a retry
    second = store.redeem_coupons([claim(c("C1"), event="r2", at=T0 + 5)])[0]
    assert second.status == CLAIM_REDEEMED and Coupon.from_bytes(second.record or b"").redeemed_at == T0 + 1


def test_redemptions_are_all_or_nothing_and_can_be_undone(store: Store, store_kind: str) -> None:
    c = codes_for(store)
    for code in ("C1", "C2"):
        store.commit_decision("m1", [CapRequest(code)], [coupon_write(c(code), offer=code)], T0)
    mixed = store.redeem_coupons([claim(c("C1"), offer="C1"), claim(c("C2"), offer="C2", member="m9")])
    assert [r.status for r in mixed] == [CLAIM_OK, CLAIM_MEMBER]
    assert Coupon.from_bytes(store.get_coupon(c("C1")) or b"").redeemed_at is None  # nothing written
    # one code twice in a call by two events: the second is refused
    twice = store.redeem_coupons([claim(c("C1"), offer="C1", event="a"), claim(c("C1"), offer="C1", event="b")])
    assert [r.status for r in twice] == [CLAIM_OK, CLAIM_REDEEMED]
    done = store.redeem_coupons([claim(c("C1"), offer="C1", event="a")])
    assert done[0].status == CLAIM_OK
    store.unredeem_coupons([claim(c("C1"), offer="C1", event="other")])  # not the redeeming event: no-op
    assert Coupon.from_bytes(store.get_coupon(c("C1")) or b"").redeemed
    store.unredeem_coupons([claim(c("C1"), offer="C1", event="a")])
    assert not Coupon.from_bytes(store.get_coupon(c("C1")) or b"").redeemed
    # back in the wallet: the next decision hands it out again
    again = store.commit_decision("m1", [CapRequest("C1")], [coupon_write(c("C9"), offer="C1")], T0 + 2)
    assert Coupon.from_bytes(again.coupons_reused[0] or b"").code == c("C1")


def race_redemptions(store: Store, code: str) -> list[str]:
    """Two threads redeem one code at once (different events); the statuses they got."""
    start = threading.Barrier(2)
    got: list[str] = []

    def redeem(event: str) -> None:
        start.wait()
        got.append(store.redeem_coupons([claim(code, event=event, offer=code)])[0].status)

    threads = [threading.Thread(target=redeem, args=(e,)) for e in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def test_two_concurrent_redemptions_of_one_code_give_one_success(store: Store, store_kind: str) -> None:
    c = codes_for(store)
    for round_ in range(20):
        code = c(f"R{round_}")
        store.commit_decision("m1", [CapRequest(code)], [coupon_write(code, offer=code)], T0)
        assert sorted(race_redemptions(store, code)) == [CLAIM_OK, CLAIM_REDEEMED]


def test_side_records_round_trip(store: Store) -> None:
    store.records_put({"d1": b"line-1", "d2": b"line-2"})
    assert store.records_get(["d1", "nope", "d2"]) == [b"line-1", None, b"line-2"]
    assert store.records_get([]) == []


# -- every key has a TTL --------------------------------------------------------------------
def test_every_key_written_has_a_ttl(store: Store) -> None:
    c = codes_for(store)
    store.apply_events([txn("e1"), offer_event("e2", "impression")])
    store.put_scores("m2", "v1", [0.5])
    store.reserve("m3", [CapRequest("o1", member_limit=1)], now=T0)
    store.put_coupon(c("CODE1"), b"x", 3600)
    store.idempotency_begin("k", "h", 30)
    store.put_members([MemberWrite("m4", b"r" * 36, PROFILE)])
    store.apply_events([record_event("e3", b"s" * 36, member="m5")])
    store.commit_decision("m6", [CapRequest("o1")], [None], T0, CacheWrite("v1", np.array([0.1], dtype=np.float32), 0))
    store.reserve("m3", [CapRequest("o2", member_limit=1, budget_key="b", budget_count_limit=9)], now=T0)
    store.commit_decision("m6", [CapRequest("o1", budget_key="b2")], [CouponWrite(c("CODE2", "m6"), b"x", 60)], T0,
                          CacheWrite("v1", np.array([0.1], dtype=np.float32), 0))
    store.records_put({"r": b"x"})
    store.put_generation("g1")
    store.commit_decision("m7", [CapRequest("o1")], [coupon_write(c("CODE3", "m7"), member="m7")], T0)
    store.redeem_coupons([claim(c("CODE3", "m7"), member="m7")])
    store.unredeem_coupons([claim(c("CODE3", "m7"), member="m7")])
    keys = all_store_keys(store)  # type: ignore[arg-type]
    kinds = {k.split(":")[1] for k in keys}
    assert kinds == {"s", "c", "e", "k", "i", "h", "m", "g", "b", "w"}
    assert all(ttl is not None and ttl > 0 for ttl in keys.values()), keys


def test_the_generation_marker_comes_back_with_every_member_read(store: Store) -> None:
    # a store that never got a marker (or lost it) says so in the same read as the member
    assert store.fetch_member("m1").generation is None
    assert all(b.generation is None for b in store.fetch_members(["m1", "m2"], "v1"))
    assert store.generation() is None
    store.put_generation("fp-1")
    assert store.fetch_member("m1", "v1", [("b", "total")]).generation == "fp-1"
    assert [b.generation for b in store.fetch_members(["m1", "m2"], "v1")] == ["fp-1", "fp-1"]
    assert [b.generation for b in store.fetch_members(["m1"])] == ["fp-1"]
    assert store.generation(renew=True) == "fp-1"
    store.put_generation("fp-2")  # a new materialization replaces it
    assert store.fetch_member("m1").generation == "fp-2"


def test_memory_store_is_the_in_process_kind() -> None:
    assert MemoryStore().kind == "memory"
