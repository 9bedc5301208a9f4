"""Compact encodings of the online store: byte-for-byte agreement of Redis (Lua) and the
in-process twins, and the layouts' round trips (counters, score vectors)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from service.stores import CapRequest, StateEvent, codec
from service.stores.base import RECENT_LIMIT, OfferCounter
from service.stores.memory import MemoryStore
from service.stores.redis_store import RedisStore
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


@pytest.mark.redis
def test_lua_and_python_write_the_same_bytes(redis_url: str) -> None:
    redis_store = make_store("redis", redis_url, wall_clock=lambda: float(T0))
    memory = make_store("memory", wall_clock=lambda: float(T0))
    assert isinstance(redis_store, RedisStore) and isinstance(memory, MemoryStore)
    try:
        _activity(redis_store)
        _activity(memory)
        key = redis_store.keys.state("m1")
        raw = redis_store.client.hgetall(key)
        assert raw == memory._get(memory.keys.state("m1"))
        assert codec.decode_counter(raw[b"Io1"]).total >= 12 and len(codec.decode_counter(raw[b"Io1"]).recent) == 8
        assert redis_store.client.object("encoding", key) == b"listpack"
    finally:
        redis_store.close()


@pytest.mark.parametrize("total, recent", [(0, ()), (1, (T0,)), (300, (T0, T0, T0 + 1, T0 + 2**21)),
                                           (2**40, tuple(T0 + 3600 * i for i in range(RECENT_LIMIT)))])
def test_counters_round_trip(total: int, recent: tuple[int, ...]) -> None:
    blob = codec.encode_counter(total, recent)
    assert codec.decode_counter(blob) == OfferCounter(total, recent)
    if recent:
        assert len(blob) <= 1 + 5 + 3 * (len(recent) - 1) + (5 if total >= 2**28 else 2)


def test_score_vectors_keep_probabilities_closely_and_other_scores_exactly() -> None:
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.random(10_000) ** 8, [0.0, 1.0, 5e-8, 1e-7, 0.003]]).astype(np.float32)
    blob = codec.encode_scores(p)
    assert len(blob) == 1 + 3 * len(p)
    got = codec.decode_scores(blob)
    assert got is not None and got.dtype == np.float32
    big = p >= codec.LOG_FLOOR
    np.testing.assert_allclose(got[big], p[big], rtol=codec.LOG_MAX_RELATIVE_ERROR, atol=0)
    assert np.all(np.abs(got[~big] - p[~big]) <= codec.LOG_FLOOR)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(got[order]) >= 0)  # the order of propensities is kept
    other = np.array([-1.0, 2.5, np.nan], dtype=np.float32)
    assert codec.decode_scores(codec.encode_scores(other)).tobytes() == other.tobytes()  # type: ignore[union-attr]
    assert codec.decode_scores(b"") is None and codec.decode_scores(b"?abc") is None


def test_a_release_counts_down_what_a_reservation_counted() -> None:
    fields: dict[bytes, bytes] = {}
    req = CapRequest("o1", count_impression=True)
    granted, _, _ = codec.reserve_one(fields, None, req, T0)
    assert granted and set(fields) == {b"So1", b"Io1"}
    codec.release_one(fields, req, T0)
    assert fields == {}
