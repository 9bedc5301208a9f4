"""Compact encodings of the online store: byte-for-byte agreement of Redis (Lua) and the
in-process twins, and the layouts' round trips (counters, offer fields, months, score vectors)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from runtime.stores import CapRequest, StateEvent, encoding, rules_python
from runtime.stores.memory import MemoryStore
from runtime.stores.redis_store import RedisStore
from runtime.stores.values import OFFER_VALUE_MAX, RECENT_LIMIT, OfferCounter
from tests.service_helpers import make_store

T0 = int(datetime(2024, 6, 15, 12, tzinfo=UTC).timestamp())


def _activity(store: MemoryStore | RedisStore) -> None:
    """Events, reservations and a release that exercise every counter path."""
    events = [StateEvent(f"e{i}", "m1", kind, T0 + i * 977 + (i % 3) * 86_400 * 40, offer, amount, "202406")
              for i, (kind, offer, amount) in enumerate(
                  [("impression", "o1", 0)] * 12 + [("click", "o1", 0), ("transaction", None, 1234),
                                                     ("redeem", "o2", 0), ("dismiss", "o-3", 0)])]
    store.apply_events(events)
    granted = store.reserve("m1", [CapRequest("o1"), CapRequest("o2", count_impression=True)], T0 + 10**6)
    store.reserve("m1", [CapRequest("o1")], T0 + 10**6 + 5)
    store.release("m1", granted[1:])


@contextmanager
def _twins(redis_url: str, activity: Callable[[MemoryStore | RedisStore], None]
           ) -> Iterator[tuple[RedisStore, MemoryStore, str, dict[Any, Any]]]:
    """Run ``activity`` on a Redis store and on the in-process twin; check both wrote the
    same state hash for m1, and give (redis store, twin, state key, raw hash)."""
    redis_store = make_store("redis", redis_url, wall_clock=lambda: float(T0))
    memory = make_store("memory", wall_clock=lambda: float(T0))
    assert isinstance(redis_store, RedisStore) and isinstance(memory, MemoryStore)
    try:
        activity(redis_store)
        activity(memory)
        key = redis_store.keys.state("m1")
        raw = redis_store.client.hgetall(key)
        assert raw == memory._get(memory.keys.state("m1"))
        yield redis_store, memory, key, raw
    finally:
        redis_store.close()


@pytest.mark.redis
def test_lua_and_python_write_the_same_bytes(redis_url: str) -> None:
    with _twins(redis_url, _activity) as (redis_store, _, key, raw):
        impressions = encoding.decode_counter(encoding.get_counter(raw, "I", "o1"))
        assert impressions.total >= 12 and len(impressions.recent) == 8
        assert set(encoding.split_offer(raw[b"oo1"])) == {"I", "C", "S"}  # one field per offer
        assert encoding.decode_month(raw[b"m202406"]) == (1234, 1)  # one field per month
        assert redis_store.client.object("encoding", key) == b"listpack"


def _crowded(store: MemoryStore | RedisStore) -> None:
    """Every subject of one offer with 8 timestamps a day apart: too much for one field."""
    events = [StateEvent(f"b{code}{k}", "m1", kind, T0 - 86_400 * (40 * i + k), "big")
              for i, (code, kind) in enumerate([("I", "impression"), ("C", "click"), ("R", "redeem"),
                                                 ("D", "dismiss")])
              for k in range(RECENT_LIMIT + 1)]
    events += [StateEvent(f"t{k}", "m1", "transaction", T0 - k, None, amount, month)
               for k, (amount, month) in enumerate([(2**40, "202406"), (-5, "202405"), (3, "202405")])]
    store.apply_events(events)
    granted = store.reserve("m1", [CapRequest("big", count_impression=True)], T0 + 1)
    store.reserve("m1", [CapRequest("big")], T0 + 2)
    store.release("m1", granted)


@pytest.mark.redis
def test_a_crowded_offer_spills_counters_to_their_own_fields_alike(redis_url: str) -> None:
    with _twins(redis_url, _crowded) as (redis_store, memory, key, raw):
        assert all(len(v) <= OFFER_VALUE_MAX for v in raw.values())
        assert redis_store.client.object("encoding", key) == b"listpack"
        spilled = {n for n in raw if n[:1].isupper()}
        assert spilled and all(n.endswith(b"big") for n in spilled)
        state = redis_store.fetch_member("m1").state
        for subject in ("impression", "click", "redeem", "dismiss"):
            assert state.counter(subject, "big").total == RECENT_LIMIT + 1
            # the released reservation's impression took its timestamp with it
            assert len(state.counter(subject, "big").recent) == RECENT_LIMIT - (subject == "impression")
        assert state.counter("issue", "big").total == 1 and state.counter("issue", "big").recent == (T0 + 2,)
        assert state.monthly_spend == {"202406": 2**40, "202405": -2}
        assert state.monthly_purchases == {"202406": 1, "202405": 2}
        assert state == memory.fetch_member("m1").state


def test_offer_fields_and_months_round_trip() -> None:
    parts = {"I": encoding.encode_counter(3, (T0, T0 + 60, T0 + 3600)), "S": encoding.encode_counter(1, (T0,)),
             "D": encoding.encode_counter(2, ())}
    blob = encoding.join_offer(parts)
    assert len(blob) == sum(len(b) for b in parts.values()) + 3  # a tag byte per subject
    assert encoding.split_offer(blob) == parts and encoding.split_offer(None) == {}
    for spend, n in [(0, 0), (2537, 2), (-1, 1), (2**45, 10**6)]:
        assert encoding.decode_month(encoding.encode_month(spend, n)) == (spend, n)
    assert encoding.decode_month(None) == (0, 0)


def test_the_previous_layout_reads_on_and_moves_when_written() -> None:
    fields: dict[bytes, bytes] = {b"Io1": encoding.encode_counter(2, (T0, T0 + 1)), b"s:202406": b"700",
                                  b"p:202406": b"2", b"s:202001": b"5", b"p:202001": b"1"}
    state = encoding.decode_state("m1", fields)
    assert state.counter("impression", "o1") == OfferCounter(2, (T0, T0 + 1))
    assert state.monthly_spend == {"202406": 700, "202001": 5}
    rules_python.apply_event(fields, StateEvent("e1", "m1", "impression", T0 + 2, "o1"), "202206")
    rules_python.apply_event(fields, StateEvent("e2", "m1", "transaction", T0, None, 300, "202406"), "202206")
    assert b"Io1" not in fields and b"s:202001" not in fields  # moved to o<offer>; trimmed
    state = encoding.decode_state("m1", fields)
    assert state.counter("impression", "o1") == OfferCounter(3, (T0, T0 + 1, T0 + 2))
    assert state.monthly_spend == {"202406": 1000} and state.monthly_purchases == {"202406": 3}


@pytest.mark.parametrize("total, recent", [(0, ()), (1, (T0,)), (300, (T0, T0, T0 + 1, T0 + 2**21)),
                                           (2**40, tuple(T0 + 3600 * i for i in range(RECENT_LIMIT)))])
def test_counters_round_trip(total: int, recent: tuple[int, ...]) -> None:
    blob = encoding.encode_counter(total, recent)
    assert encoding.decode_counter(blob) == OfferCounter(total, recent)
    if recent:
        assert len(blob) <= 1 + 5 + 3 * (len(recent) - 1) + (5 if total >= 2**28 else 2)


def test_score_vectors_keep_probabilities_closely_and_other_scores_exactly() -> None:
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.random(10_000) ** 8, [0.0, 1.0, 5e-8, 1e-7, 0.003]]).astype(np.float32)
    blob = encoding.encode_scores(p)
    assert len(blob) == 1 + 3 * len(p)
    got = encoding.decode_scores(blob)
    assert got is not None and got.dtype == np.float32
    big = p >= encoding.LOG_FLOOR
    np.testing.assert_allclose(got[big], p[big], rtol=encoding.LOG_MAX_RELATIVE_ERROR, atol=0)
    assert np.all(np.abs(got[~big] - p[~big]) <= encoding.LOG_FLOOR)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(got[order]) >= 0)  # the order of propensities is kept
    other = np.array([-1.0, 2.5, np.nan], dtype=np.float32)
    assert encoding.decode_scores(encoding.encode_scores(other)).tobytes() == other.tobytes()  # type: ignore[union-attr]
    assert encoding.decode_scores(b"") is None and encoding.decode_scores(b"?abc") is None


def test_a_release_counts_down_what_a_reservation_counted() -> None:
    fields: dict[bytes, bytes] = {}
    req = CapRequest("o1", count_impression=True)
    granted, _ = rules_python.reserve_one(fields, req, T0)
    assert granted and set(fields) == {b"oo1"} and set(encoding.split_offer(fields[b"oo1"])) == {"I", "S"}
    rules_python.release_one(fields, req, T0)
    assert fields == {}
