"""Referrals on a real Redis Cluster: codes in their holder's slot, and links between two members'
slots made in three one-slot steps that keep the limit and never let two members refer each other."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from redis.crc import key_slot

from runtime.points.referrals import member_code
from runtime.settings import load_settings
from runtime.stores import build_store
from runtime.stores.redis_store import RedisStore
from runtime.stores.slots import member_slot
from tests.redis_cluster import RedisClusterServers

pytestmark = pytest.mark.redis
T0 = 1_717_200_000


@pytest.fixture
def store(redis_cluster: RedisClusterServers) -> Iterator[RedisStore]:
    s = build_store(load_settings({"REDIS_URL": redis_cluster.url, "OFFERS_REDIS_PREFIX": "ref"}))
    assert isinstance(s, RedisStore) and s.cluster
    yield s
    for key in list(s.client.scan_iter(match="ref:*", count=1000)):
        s.client.delete(key)
    s.close()


def at_once(calls: list[Callable[[], str]]) -> list[str]:
    """Run ``calls`` in threads released together; their replies in order."""
    start = threading.Barrier(len(calls))
    out: list[str] = [""] * len(calls)

    def run(i: int) -> None:
        start.wait()
        out[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_a_referral_code_lives_in_its_holders_slot(store: RedisStore) -> None:
    for member in ("p1", "M00000002", "1029"):
        info = member_code(store, member)
        assert key_slot(store.keys.referral_code(info.code).encode()) == member_slot(member)
        assert store.referral_owner(info.code) == member
        assert member_code(store, member).code == info.code  # one code per member


def test_links_across_slots_refuse_as_one_redis_does(store: RedisStore) -> None:
    assert member_slot("a") != member_slot("b")
    assert store.link_referral("a", "a", T0, 0) == "self"
    assert store.link_referral("b", "a", T0, 0) == "linked"
    assert store.link_referral("b", "a", T0, 0) == "already_referred"  # a repeat
    assert store.link_referral("b", "c", T0, 0) == "already_referred"
    assert store.link_referral("a", "b", T0, 0) == "loop"  # b was referred by a
    assert store.link_referral("d", "a", T0, 2) == "linked"
    assert store.link_referral("e", "a", T0, 2) == "limit"
    fields = store.referrals(["a", "b", "d", "e"])
    assert fields[0]["n"] == "2" and fields[1]["by"] == "a" and fields[2]["by"] == "a" and "by" not in fields[3]
    assert all(store.client.ttl(store.keys.referral(m)) > 0 for m in "abd")
    assert not store.client.exists(store.keys.referral("e"))  # a refused referee gets no record


def test_a_referrers_limit_holds_under_concurrent_links(store: RedisStore) -> None:
    for round_ in range(5):
        referrer = f"p{round_}"
        referees = [f"n{round_}-{i}" for i in range(12)]
        got = at_once([lambda m=m, p=referrer: store.link_referral(m, p, T0, 5)  # type: ignore[misc]
                       for m in referees])
        assert got.count("linked") == 5 and set(got) <= {"linked", "limit"}, got
        fields = store.referrals([referrer, *referees])
        assert fields[0]["n"] == "5"
        linked = {m for m, f in zip(referees, fields[1:], strict=True) if f.get("by") == referrer}
        assert linked == {m for m, s in zip(referees, got, strict=True) if s == "linked"}
        assert {k.removeprefix("r:") for k in fields[0] if k.startswith("r:")} == linked  # no place left held


def test_two_members_never_refer_each_other(store: RedisStore) -> None:
    for round_ in range(20):
        a, b = f"x{round_}", f"y{round_}"
        got = at_once([lambda a=a, b=b: store.link_referral(a, b, T0, 0),  # type: ignore[misc]
                       lambda a=a, b=b: store.link_referral(b, a, T0, 0)])  # type: ignore[misc]
        assert got.count("linked") <= 1 and set(got) <= {"linked", "loop"}, got
        fa, fb = store.referrals([a, b])
        assert not (fa.get("by") == b and fb.get("by") == a)
        made = (fa.get("by") == b) + (fb.get("by") == a)
        assert made == got.count("linked")
        assert int(fa.get("n") or 0) + int(fb.get("n") or 0) == made  # refused places were given back
