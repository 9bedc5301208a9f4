"""Coupon codes (format, check character, normalisation), issuance and the admin lookup."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from runtime.coupons.codes import (
    ALPHABET,
    InvalidCouponCode,
    check_character,
    display,
    find_coupon,
    generate,
    has_valid_check,
    issue_coupon,
    normalise,
)
from runtime.coupons.issuance import CouponSpec, issue
from runtime.stores import MEMBER_CAP_REACHED, CapRequest, StoreUnavailable
from runtime.stores.memory import MemoryStore
from service.app import create_app
from service.state import ServiceState
from tests.service_helpers import ADMIN_KEY, make_settings

NOW = 1_717_000_000


def test_alphabet_is_crockford_without_look_alikes() -> None:
    assert len(ALPHABET) == 32 and len(set(ALPHABET)) == 32
    assert not set("ILOU") & set(ALPHABET)
    assert ALPHABET.upper() == ALPHABET


def test_generated_codes_have_the_documented_shape() -> None:
    code = generate("SPR")
    assert re.fullmatch(r"SPR[0-9A-HJKMNP-TV-Z]{13}", code)
    assert has_valid_check(code)
    assert code[-1] == check_character(code[:-1])
    assert display(code, "SPR") == f"SPR-{code[3:7]}-{code[7:11]}-{code[11:15]}-{code[15]}"
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{13}", generate())


def test_codes_do_not_repeat() -> None:
    codes = {generate() for _ in range(20_000)}
    assert len(codes) == 20_000


def test_every_single_character_mistake_is_caught() -> None:
    code = generate("AB")
    for i, right in enumerate(code):
        for wrong in ALPHABET:
            if wrong != right:
                assert not has_valid_check(code[:i] + wrong + code[i + 1:]), (i, wrong)


def test_most_swaps_of_neighbours_are_caught() -> None:
    caught = total = 0
    for _ in range(200):
        code = generate()
        for i in range(len(code) - 1):
            if code[i] != code[i + 1]:
                total += 1
                caught += not has_valid_check(code[:i] + code[i + 1] + code[i] + code[i + 2:])
    assert caught / total > 0.9


def test_normalisation_strips_separators_folds_case_and_maps_look_alikes() -> None:
    code = generate("SPR")
    assert normalise(display(code, "SPR")) == code
    assert normalise(" " + display(code, "SPR").lower().replace("-", " ") + " ") == code
    zero_one = "0" * 11 + "1"
    code = zero_one + check_character(zero_one)
    assert normalise(code.replace("0", "o").replace("1", "l")) == code
    assert normalise(code.replace("1", "I")) == code


@pytest.mark.parametrize("text, message", [("UUUUUUU", "only"), ("AB", "short"),
                                           ("ABCD-EFGH-JKMN", "check"), ("AB*CD#EF", "only")])
def test_malformed_codes_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidCouponCode, match=message):
        normalise(text)


def test_prefixes_use_the_code_alphabet() -> None:
    with pytest.raises(ValueError, match="prefix"):
        generate("SUMMER")  # U is not in the alphabet
    with pytest.raises(ValueError, match="prefix"):
        generate("TOOLONGPREFIX")


def test_issued_coupons_are_stored_until_they_expire_and_found_as_typed() -> None:
    store = MemoryStore()
    coupon = issue_coupon(store, "m1", "o1", NOW, NOW + 3600, prefix="XMAS", decision_id="d1")
    assert coupon.display.startswith("XMAS-") and coupon.member_id == "m1"
    found = find_coupon(store, coupon.display.lower())
    assert found == coupon
    assert store.ttl(store.keys.coupon(coupon.code)) == pytest.approx(3600, abs=2)
    with pytest.raises(InvalidCouponCode):
        find_coupon(store, coupon.code[:-1] + ("0" if coupon.code[-1] != "0" else "1"))


def test_a_colliding_code_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    taken = issue_coupon(store, "m1", "o1", NOW, NOW + 60).code
    fresh = generate()
    draws = iter([taken, fresh])
    monkeypatch.setattr("runtime.coupons.codes.generate", lambda prefix="", length=12, marker="": next(draws))
    assert issue_coupon(store, "m2", "o1", NOW, NOW + 60).code == fresh
    assert find_coupon(store, taken).member_id == "m1"  # type: ignore[union-attr]


# -- issuance: caps, budgets and coupons together ----------------------------------------------
def test_issue_reserves_and_attaches_coupons() -> None:
    store = MemoryStore()
    offers = [(CapRequest("o1", member_limit=1), CouponSpec(ttl_seconds=86400, prefix="W")),
              (CapRequest("o2"), None)]
    first = issue(store, "m1", offers, NOW, decision_id="d1")
    assert [i.granted for i in first] == [True, True]
    assert first[0].coupon is not None and first[0].coupon.decision_id == "d1"
    assert first[1].coupon is None
    again = issue(store, "m1", offers, NOW + 1)
    assert again[0].cap.reason == MEMBER_CAP_REACHED and again[0].coupon is None


class _CouponsDown(MemoryStore):
    """A real in-process store whose coupon writes fail, as when Redis drops mid-request."""

    def put_coupon(self, code: str, record: bytes, ttl_seconds: int) -> bool:
        raise StoreUnavailable("coupon write failed")


def test_a_failed_issue_releases_its_reservations() -> None:
    store = _CouponsDown()
    offers = [(CapRequest("o1", member_limit=1, budget_key="b", budget_count_limit=1),
               CouponSpec(ttl_seconds=60))]
    with pytest.raises(StoreUnavailable):
        issue(store, "m1", offers, NOW)
    assert store.fetch_member("m1").state.counter("issue", "o1").total == 0
    assert store.budget_usage([("b", "total")])[("b", "total")].count == 0


# -- the admin lookup -----------------------------------------------------------------------------
@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(make_settings(tmp_path, api_keys=f"{ADMIN_KEY}:admin"))
    yield app
    app.extensions["offers"].close()


def test_admin_looks_up_coupons_by_any_typed_form(app: Flask) -> None:
    state: ServiceState = app.extensions["offers"]
    coupon = issue_coupon(state.store, "m1", "o1", NOW, 2_000_000_000, prefix="SPR")
    client = app.test_client()
    headers = {"X-API-Key": ADMIN_KEY}
    resp = client.get(f"/v1/admin/coupons/{coupon.display.lower()}", headers=headers)
    assert resp.status_code == 200 and resp.get_json()["code"] == coupon.code
    bad = client.get("/v1/admin/coupons/SPR-0000-0000", headers=headers)
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["parameter"] == "code"
    unknown = generate("SPR")
    assert client.get(f"/v1/admin/coupons/{unknown}", headers=headers).status_code == 404
