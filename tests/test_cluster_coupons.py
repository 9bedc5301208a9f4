"""Coupons on a real Redis Cluster: a code names its holder's slot, issuance and redemption are
one script in that slot, and redemptions spanning slots are all or nothing, never twice.

The store suite (tests/test_service_stores.py) runs every coupon case on the cluster too; this
file covers what only a cluster has: codes' slot markers and calls spanning several slots.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from runtime.coupons.codes import Coupon, generate, has_valid_check, issue_coupon, normalise
from runtime.settings import load_settings
from runtime.stores import build_store
from runtime.stores.keys import KeySpace
from runtime.stores.redis_store import RedisStore
from runtime.stores.slots import marker_for, marker_slot, member_slot, slot_tag
from runtime.stores.values import (
    CLAIM_MEMBER,
    CLAIM_MISSING,
    CLAIM_OK,
    CLAIM_REDEEMED,
    CapRequest,
    CouponClaim,
)
from tests.redis_cluster import RedisClusterServers

T0 = 1_717_200_000


def test_a_slot_marker_and_tag_put_a_coupon_in_its_holders_slot() -> None:
    keys = KeySpace(cluster=True)
    assert {marker_slot(marker_for(s)) for s in range(0, 16384, 7)} == set(range(0, 16384, 7))
    assert marker_slot("ZZZ") is None and marker_slot("AB") is None  # 32767 > the last slot
    for s in (0, 1, 5461, 16383):
        assert key_slot(f"x:{{{slot_tag(s)}}}:y".encode()) == s
    for member in ("1029", "M00000002", "a" * 64):
        code = generate("SPR", marker=keys.code_marker(member))
        assert has_valid_check(code) and len(code) == 3 + 12 + 3 + 1
        assert key_slot(keys.coupon(code).encode()) == key_slot(keys.wallet(member).encode()) == member_slot(member)
        assert keys.coupon(normalise("-".join([code[:5], code[5:]]).lower())) == keys.coupon(code)
    # the single-Redis layout is unchanged: no marker, a plain key
    assert KeySpace().code_marker("1029") == "" and KeySpace().coupon("C0DE") == "ofr:k:C0DE"
    with pytest.raises(ValueError, match="slot marker"):
        generate(marker="U!")


@pytest.fixture
def store(redis_cluster: RedisClusterServers) -> Iterator[RedisStore]:
    s = build_store(load_settings({"REDIS_URL": redis_cluster.url, "OFFERS_REDIS_PREFIX": "cpn"}))
    assert isinstance(s, RedisStore) and s.keys.cluster
    yield s
    for key in list(s.client.scan_iter(match="cpn:*", count=1000)):
        s.client.delete(key)
    s.close()


def issued(store: RedisStore, members: list[str], offer: str = "o1") -> dict[str, str]:
    """A coupon per member, issued through the decision commit (its code drawn for the member)."""
    from runtime.coupons.issuance import CouponSpec, commit

    out = {}
    for m in members:
        [one], _ = commit(store, m, [(CapRequest(offer), CouponSpec(ttl_seconds=3600))], T0, f"d-{m}")
        assert one.coupon is not None and one.cap.granted
        out[m] = one.coupon.code
    return out


def claim(code: str, member: str, event: str, offer: str = "o1") -> CouponClaim:
    return CouponClaim(code=code, member_id=member, offer_id=offer, at=T0 + 5, event_id=event)


def redeemed(store: RedisStore, code: str) -> bool:
    record = store.get_coupon(code)
    return record is not None and Coupon.from_bytes(record).redeemed


@pytest.mark.redis
def test_codes_issued_on_a_cluster_are_found_and_redeemed_in_one_slot(store: RedisStore) -> None:
    members = [f"m{i}" for i in range(12)]
    codes = issued(store, members)
    slots = {member_slot(m) for m in members}
    assert len(slots) == len(members)  # spread over the cluster
    for m, code in codes.items():
        assert marker_slot(code[-4:-1]) == member_slot(m)
        assert store.get_coupon(code) is not None
    also = issue_coupon(store, "m0", "o2", T0, T0 + 60)  # the code-only path issues in the slot too
    assert key_slot(store.keys.coupon(also.code).encode()) == member_slot("m0")
    [ok] = store.redeem_coupons([claim(codes["m3"], "m3", "r1")])
    assert ok.status == CLAIM_OK and redeemed(store, codes["m3"])


@pytest.mark.redis
def test_a_batch_over_several_members_is_all_or_nothing(store: RedisStore) -> None:
    codes = issued(store, ["a", "b", "c"])
    # one refused claim (another member's code) and nothing is made for the others
    mixed = store.redeem_coupons([claim(codes["a"], "a", "e1"), claim(codes["b"], "c", "e2")])
    assert [r.status for r in mixed] == [CLAIM_OK, CLAIM_MEMBER]
    assert not redeemed(store, codes["a"]) and not redeemed(store, codes["b"])
    unknown = store.redeem_coupons([claim(codes["a"], "a", "e1"), claim("0000000000000000", "b", "e3")])
    assert [r.status for r in unknown] == [CLAIM_OK, CLAIM_MISSING] and not redeemed(store, codes["a"])
    # every claim good: each member's slot redeems its own, and all are made
    good = store.redeem_coupons([claim(codes[m], m, f"g-{m}") for m in "abc"])
    assert all(r.status == CLAIM_OK for r in good) and all(redeemed(store, codes[m]) for m in "abc")
    # undone across slots too
    store.unredeem_coupons([claim(codes[m], m, f"g-{m}") for m in "abc"])
    assert not any(redeemed(store, codes[m]) for m in "abc")


def race(store: RedisStore, codes: dict[str, str], shared: str, own: dict[str, str]) -> dict[str, list[str]]:
    """Batches named by ``own`` (name -> its own member) redeem their member's code and the
    ``shared`` member's code at once; each batch's statuses."""
    start = threading.Barrier(len(own))
    got: dict[str, list[str]] = {}

    def redeem(name: str) -> None:
        start.wait()
        results = store.redeem_coupons([claim(codes[own[name]], own[name], f"{name}-own"),
                                        claim(codes[shared], shared, name)])
        got[name] = [r.status for r in results]

    threads = [threading.Thread(target=redeem, args=(name,)) for name in own]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


@pytest.mark.redis
def test_concurrent_batches_over_shared_codes_never_redeem_twice_and_leave_refused_ones_unmade(
        store: RedisStore) -> None:
    """Two batches race for one member's code, each with another member's code beside it: the
    shared code is redeemed once; the losing batch makes none of its claims (a later slot
    refusing undoes the earlier one)."""
    for round_ in range(15):
        x, shared, y = f"r{round_}x", f"r{round_}shared", f"r{round_}y"
        codes = issued(store, [x, shared, y])
        got = race(store, codes, shared, {f"X{round_}": x, f"Y{round_}": y})
        winners = [n for n, s in got.items() if s == [CLAIM_OK, CLAIM_OK]]
        assert len(winners) <= 1, got  # the shared code once at most
        assert all(s[1] in (CLAIM_OK, CLAIM_REDEEMED) for s in got.values()), got
        assert redeemed(store, codes[shared]) == bool(winners)
        for name, own in ((f"X{round_}", x), (f"Y{round_}", y)):
            assert redeemed(store, codes[own]) == (name in winners), (round_, got)
