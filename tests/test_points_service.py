"""The points ledger through the service, against a real Redis: earning, refunds, burns, vouchers,
adjustments, replays, the rebuild and report commands, lazy expiry, offers priced in points and
nudges, and the console's member page in a real browser."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from offers_cli.main import cli
from runtime.points.rebuild import read_log, rebuild, replay
from service.state import ServiceState
from tests.decisions_env import close_app
from tests.points_env import (
    ADMIN,
    CLOCK,
    EVENTS,
    NOW,
    PROGRAM,
    every_key_has_a_ttl,
    points_of,
    start_points_app,
    tx,
)
from tests.service_helpers import (
    ADMIN_KEY,
    DECISIONS_KEY,
)
from tests.test_console_browser import browser, page  # noqa: F401 - the real-browser fixtures


@pytest.fixture
def points_app(tmp_path: Path, tiny_dir: Path, redis_url: str) -> Iterator[Flask]:
    program = tmp_path / "program.yaml"
    program.write_text(PROGRAM)
    app = start_points_app(tmp_path, tiny_dir, program, redis_url, CLOCK, "pt" + uuid.uuid4().hex[:8])
    yield app
    close_app(app)


@pytest.mark.redis
def test_service_earns_burns_refunds_and_rebuilds(points_app: Flask, tmp_path: Path) -> None:
    client = points_app.test_client()
    # m3 is Base (spend $0.99 before), with no join date (no signup bonus)
    events = [tx("t1", "m3", 1_000, product_id="p4"),  # FRUIT x3 beats Friday x2: 10 x 3 = 30 points
              tx("t2", "m3", 250, product_id="p1")]    # Friday x2: 2.50 x 2 = 5 points
    resp = client.post("/v1/events", json=events, headers=EVENTS)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    m3 = points_of(points_app, "m3")
    assert m3["balance"] == 35
    assert {e["cause"] for e in m3["entries"]} == {"earn:t1", "earn:t2"}
    # a replayed event never earns twice, even once the event de-duplication forgot it
    state: ServiceState = points_app.extensions["offers"]
    client.post("/v1/events", json=events, headers=EVENTS)
    for ev in events:
        state.store.client.delete(state.store.keys.event(ev["event_id"]))  # type: ignore[attr-defined]
    client.post("/v1/events", json=events, headers=EVENTS)
    assert points_of(points_app, "m3")["balance"] == 35
    # a refund of half the fruit takes back half its 30 points
    refund = tx("t3", "m3", 500, product_id="p4", refund_of="t1")
    assert client.post("/v1/events", json=refund, headers=EVENTS).status_code == 200
    assert points_of(points_app, "m3")["balance"] == 20

    # m1 is Base (spend $6.48 before): $100 on a Friday earns 200; born in March, joined in 2016
    client.post("/v1/events", json=tx("t4", "m1", 10_000, product_id="p2"), headers=EVENTS)
    m1 = points_of(points_app, "m1")
    earn = next(e for e in m1["entries"] if e["cause"] == "earn:t4")
    assert earn["m"]["tier"] == "Base" and earn["points"] == 200
    causes = {e["cause"] for e in m1["entries"]}
    assert {"signup", "birthday:2017"} <= causes  # joined 2016, born in March: both once
    # signup points are earned at the join (2016-01-05), so under a 6-month expiry they are already gone
    signup = next(e for e in m1["entries"] if e["cause"] == "signup")
    assert signup["ts"] == int(datetime(2016, 1, 5, tzinfo=UTC).timestamp())
    assert any(e["kind"] == "expire" and e["points"] == -100 for e in m1["entries"])
    assert m1["balance"] == 50 + 200 and m1["lifetime"]["expired"] == 100

    # redeeming: the key is required, unknown rewards and overdraws are refused, nothing half-done
    no_key = client.post("/v1/members/m3/points/redeem", json={"reward_id": "free_drink"}, headers=EVENTS)
    assert no_key.status_code == 422 and no_key.get_json()["errors"][0]["header"] == "Idempotency-Key"
    unknown = client.post("/v1/members/m3/points/redeem", json={"reward_id": "nope"},
                          headers={**EVENTS, "Idempotency-Key": "k0"})
    assert unknown.status_code == 422 and unknown.get_json()["errors"][0]["pointer"] == "/reward_id"
    over = client.post("/v1/members/m3/points/redeem", json={"reward_id": "free_drink"},
                       headers={**EVENTS, "Idempotency-Key": "k1"})
    assert over.status_code == 409 and over.mimetype == "application/problem+json"
    assert over.get_json()["type"].endswith("points-insufficient") and over.get_json()["needed"] == 150
    assert points_of(points_app, "m3")["balance"] == 20
    voucher = client.post("/v1/members/m1/points/redeem", json={"reward_id": "five_off", "channel": "app"},
                          headers={**EVENTS, "Idempotency-Key": "k2"})
    assert voucher.status_code == 200, voucher.get_data(as_text=True)
    body = voucher.get_json()
    assert body["status"] == "redeemed" and body["coupon"]["offer_id"] == "tea_voucher"
    assert body["balance"] == m1["balance"] - 200
    again = client.post("/v1/members/m1/points/redeem", json={"reward_id": "five_off", "channel": "app"},
                        headers={**EVENTS, "Idempotency-Key": "k2"})
    assert again.headers.get("Idempotent-Replayed") == "true" and again.get_json() == body
    # a donation is a burn, reported per cause
    gift = client.post("/v1/members/m1/points/redeem", json={"reward_id": "trees"},
                       headers={**EVENTS, "Idempotency-Key": "k3"})
    assert gift.status_code == 200 and gift.get_json()["reward"]["cause"] == "One Tree Planted"
    # an admin adjustment needs a reason, and records who made it
    no_reason = client.post("/v1/admin/members/m3/points/adjust", json={"points": 5},
                            headers={**ADMIN, "Idempotency-Key": "a1"})
    assert no_reason.status_code == 422
    adjusted = client.post("/v1/admin/members/m3/points/adjust", json={"points": -5, "reason": "goodwill fix"},
                           headers={**ADMIN, "Idempotency-Key": "a1"})
    assert adjusted.status_code == 200 and adjusted.get_json()["balance"] == 15
    assert adjusted.get_json()["entry"]["m"]["reason"] == "goodwill fix"

    # the rebuild from the durable log matches every live balance
    log_dir = state.settings.event_log
    lines = read_log(log_dir)
    assert {line["rec"] for line in lines} == {"posting", "entry", "refused"}
    result = rebuild(log_dir, state.store, NOW)
    assert result.members == 2 and result.mismatches == {}
    # and a lost entry would show: replaying without one posting changes that member's balance
    dropped = [line for line in lines if not (line["rec"] == "posting" and line["posting"]["c"] == "earn:t2")]
    assert replay(dropped, NOW)["m3"]["balance"] == 15 - 5

    # the same audit as a command: every balance matches; a live balance changed behind the
    # ledger's back is found and the command exits 1
    env = {"REDIS_URL": state.settings.redis_url, "OFFERS_REDIS_PREFIX": state.settings.redis_prefix}
    args = ["points", "rebuild", "--log", str(log_dir), "--at", CLOCK]
    ok = CliRunner().invoke(cli, args, env=env)
    assert ok.exit_code == 0 and "rebuilt 2 members" in ok.output and "every balance matches" in ok.output
    account = state.store.keys.points("m3")[0]  # type: ignore[attr-defined]
    lot = next(k for k in state.store.client.hkeys(account) if k.startswith(b"l"))  # type: ignore[attr-defined]
    state.store.client.hincrby(account, lot, 7)  # type: ignore[attr-defined]
    bad = CliRunner().invoke(cli, [*args, "--json"], env=env)
    assert bad.exit_code == 1, bad.output
    assert json.loads(bad.output)["differing"] == {"m3": {"rebuilt": 15, "live": 22}}
    report = CliRunner().invoke(cli, ["points", "report", "--log", str(log_dir), "--json"])
    assert report.exit_code == 0, report.output
    assert json.loads(report.output) == [
        {"reward_id": "five_off", "kind": "voucher", "cause": None, "redemptions": 1, "points": 200, "members": 1},
        {"reward_id": "trees", "kind": "charity", "cause": "One Tree Planted", "redemptions": 1, "points": 10,
         "members": 1}]
    text = CliRunner().invoke(cli, ["points", "report", "--log", str(log_dir)]).output
    assert "trees (charity) for One Tree Planted: 1 redemptions, 10 points, 1 members" in text
    every_key_has_a_ttl(points_app)
    no_redis = CliRunner().invoke(cli, args, env={"REDIS_URL": "", "OFFERS_REDIS_URL": ""})
    assert no_redis.exit_code == 1 and "set REDIS_URL" in no_redis.output


@pytest.mark.redis
def test_points_expire_lazily_and_exactly(tmp_path: Path, tiny_dir: Path, redis_url: str) -> None:
    program = tmp_path / "program.yaml"
    program.write_text(PROGRAM.replace("signup: 100", "signup: 0").replace("birthday: 50", "birthday: 0"))
    prefix = "pt" + uuid.uuid4().hex[:8]
    app = start_points_app(tmp_path, tiny_dir, program, redis_url, CLOCK, prefix)
    try:  # m2 is Gold (spend $13.99 before): $10 on a Friday earns 10 x 2 x 2
        app.test_client().post("/v1/events", json=tx("x1", "m2", 1_000, product_id="p3"), headers=EVENTS)
        earned = points_of(app, "m2")["balance"]
        assert earned == 40 and points_of(app, "m2")["expiring_soon"] == []
    finally:
        app.extensions["offers"].close()  # keep its Redis keys for the next app
    # six months later (the same Redis): the points are gone, and the expiry is an entry
    later = start_points_app(tmp_path / "later", tiny_dir, program, redis_url, "2017-09-10T00:00:00+00:00", prefix)
    try:
        m2 = points_of(later, "m2")
        assert m2["balance"] == 0 and m2["lifetime"]["expired"] == earned
        assert m2["entries"][0]["kind"] == "expire" and m2["entries"][0]["points"] == -earned
    finally:
        close_app(later)


REWARD_OFFERS = """
  - {id: free_drink_offer, kind: free_item, title: A free drink, value: 4, points_price: 150, points_nudge: 50,
     text: "You're {points_needed} points from a free drink ({points_balance} now)"}
  - {id: use_them, kind: free_item, title: Use your points, value: 1, points_expiring_within_days: 30,
     text: "{points_expiring} points expire on {expiry_date}"}
"""


@pytest.mark.redis
def test_decisions_offer_rewards_the_balance_covers_and_nudge_the_rest(tmp_path: Path, tiny_dir: Path,
                                                                       redis_url: str) -> None:
    program = tmp_path / "program.yaml"
    program.write_text(PROGRAM.replace("offers:\n", "offers:\n" + REWARD_OFFERS.strip("\n") + "\n", 1)
                       .replace("signup: 100", "signup: 0").replace("birthday: 50", "birthday: 0"))
    app = start_points_app(tmp_path, tiny_dir, program, redis_url, CLOCK, "pt" + uuid.uuid4().hex[:8])
    client = app.test_client()
    decisions = {"X-API-Key": DECISIONS_KEY}

    def decide(context: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
        body = {"member_id": "m3", "channel": "app", "n": 5, **({"context": context} if context else {})}
        resp = client.post("/v1/decisions", json=body, headers=decisions)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_json()
        return ({o["offer_id"]: o for o in body["offers"]}, {e["offer_id"]: e["reason"] for e in body["excluded"]},
                body["member"])

    def adjust(points: int, key: str) -> None:
        resp = client.post("/v1/admin/members/m3/points/adjust", json={"points": points, "reason": "test"},
                           headers={**ADMIN, "Idempotency-Key": key})
        assert resp.status_code == 200, resp.get_data(as_text=True)

    try:
        offers, excluded, member = decide()
        assert member["points_balance"] == 0
        assert excluded["free_drink_offer"] == "POINTS_INSUFFICIENT"
        assert excluded["use_them"] == "NO_POINTS_EXPIRING"
        # the balance plus what the current basket earns (a point per dollar, Base) covers the price
        offers, excluded, _ = decide({"cart": {"total": 99}})
        assert excluded["free_drink_offer"] == "POINTS_INSUFFICIENT"  # 99 points: 51 short, beyond the nudge of 50
        offers, _, _ = decide({"cart": {"total": 120}})
        assert "POINTS_NUDGE:30" in offers["free_drink_offer"]["reasons"]  # 30 short after this basket
        offers, _, _ = decide({"cart": {"total": 150}})
        assert "POINTS_WITH_BASKET:150" in offers["free_drink_offer"]["reasons"]
        adjust(120, "a1")  # 30 short of the drink, within the nudge of 50
        offers, excluded, member = decide()
        nudge = offers["free_drink_offer"]
        assert nudge["text"] == "You're 30 points from a free drink (120 now)" and "POINTS_NUDGE:30" in nudge["reasons"]
        assert excluded["use_them"] == "NO_POINTS_EXPIRING"  # adjusted points expire in 6 months
        adjust(40, "a2")
        offers, _, member = decide()
        assert member["points_balance"] == 160 and "POINTS_BALANCE:160" in offers["free_drink_offer"]["reasons"]
        # a purchase of 2016-09-20 earned points that expire on 2017-03-20: within the 30-day window
        old = tx("old-1", "m3", 1_000, ts="2016-09-20T10:00:00Z", product_id="p3")
        assert client.post("/v1/events", json=old, headers=EVENTS).status_code == 200
        offers, _, member = decide()
        assert member["points_balance"] == 170
        assert offers["use_them"]["text"] == "10 points expire on 20 Mar"
    finally:
        close_app(app)


@pytest.mark.slow
@pytest.mark.redis
def test_the_console_member_page_shows_points_read_only_in_a_real_browser(
        points_app: Flask, page: Any, tmp_path: Path) -> None:  # noqa: F811 - the imported fixture
    """Debian's chromium (tests/test_console_browser.py's fixtures): the member page's Points section
    shows the balance and the entries, and looking a member up writes nothing to the ledger; the
    offers page shows each offer's issued and redeemed counts from the lift report."""
    from werkzeug.serving import make_server

    from tests.test_console_browser import sign_in as browser_sign_in

    client = points_app.test_client()
    client.post("/v1/events", json=tx("w1", "m3", 1_000, product_id="p4"), headers=EVENTS)  # 10 x 3 = 30
    client.post("/v1/admin/members/m3/points/adjust", json={"points": 12, "reason": "browser check"},
                headers={**ADMIN, "Idempotency-Key": "b1"})
    state: ServiceState = points_app.extensions["offers"]
    before = state.store.points_entries("m3", 20)
    httpd = make_server("127.0.0.1", 0, points_app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_port}"
    try:
        browser_sign_in(page, base, ADMIN_KEY)
        page.goto(f"{base}/console/members?q=m3&channel=app")
        section = page.get_by_role("region", name="Points")
        assert section.is_visible()
        assert page.locator("#points-balance").inner_text() == "42"
        rows = page.locator("#points-entries tbody tr").all_inner_texts()
        assert len(rows) == 2 and "adjust" in rows[0] and "reason=browser check" in rows[0] and "earn:w1" in rows[1]
        page.screenshot(path=str(tmp_path / "member-points.png"), full_page=True)
        # the offers page's issued / redeemed / rate, from the report offers lift --json writes
        report = state.settings.event_log / "lift.json"
        funnel = [{"offer_id": "c1-o1", "issued": 1200, "redeemed": 90, "rate": 0.075},
                  {"offer_id": "tea_voucher", "issued": 0, "redeemed": 3, "rate": None}]
        report.write_text(json.dumps({"until": "2017-03-10T00:00:00", "rows": [], "funnel": funnel}))
        page.goto(f"{base}/console/offers")
        cells = page.locator("#funnel tbody tr").all_inner_texts()
        assert [c.split("\t") for c in cells] == [["c1-o1", "1,200", "90", "7.5%"], ["tea_voucher", "0", "3", "n/a"]]
        page.screenshot(path=str(tmp_path / "offers-funnel.png"), full_page=True)
        assert page.errors == []
    finally:
        httpd.shutdown()
        thread.join()
    assert state.store.points_entries("m3", 20) == before  # the preview wrote nothing
