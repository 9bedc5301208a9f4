"""The operator console through Flask's test client: sign-in, sessions, CSRF, scopes, and
that looking a member up shows the decision POST /v1/decisions makes, without committing it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.console.session import COOKIE
from tests.decisions_env import CHANNEL, FLASH, DecisionEnv, build, close_app, start_app
from tests.service_helpers import (
    ADMIN_KEY,
    ALL_KEYS,
    DECISIONS_KEY,
    EVENTS_KEY,
    all_store_keys,
    make_settings,
)

SUPPORT_KEY = "support-key-0123456789"
KEYS = f"{ALL_KEYS};{SUPPORT_KEY}:support"
MEMBER = "M00000002"
PAGES = ["/console/", "/console/members", f"/console/members?q={MEMBER}", "/console/offers", "/console/models"]


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


@pytest.fixture
def app(env: DecisionEnv, tmp_path: Path) -> Iterator[Flask]:
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path, api_keys=KEYS))
    yield app
    close_app(app)
    env.promote(env.v1)


def token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def sign_in(client: FlaskClient, key: str) -> None:
    page = client.get("/console/login")
    answer = client.post("/console/login", data={"api_key": key, "csrf_token": token(page.text)})
    assert answer.status_code == 303, answer.text


def test_nothing_is_reachable_without_signing_in(app: Flask) -> None:
    client = app.test_client()
    for page in [*PAGES, f"/console/models/{'v'}/report", "/console/models/confirm?action=rollback"]:
        answer = client.get(page)
        assert answer.status_code == 302 and "/console/login" in answer.headers["Location"], page
    for form in ["/console/models/promote", "/console/models/rollback", "/console/logout"]:
        assert client.post(form, data={"version": "x"}).status_code == 401


def test_sign_in_sets_a_signed_httponly_strict_cookie_with_an_expiry(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/console/login")
    assert page.status_code == 200 and 'label for="api_key"' in page.text
    answer = client.post("/console/login", data={"api_key": ADMIN_KEY, "csrf_token": token(page.text)})
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=28800" in cookie
    assert ADMIN_KEY not in cookie
    for page_url in PAGES:
        assert client.get(page_url).status_code == 200, page_url


def test_a_tampered_cookie_or_another_secret_is_no_session(app: Flask, env: DecisionEnv, tmp_path: Path) -> None:
    client = app.test_client()
    sign_in(client, ADMIN_KEY)
    value = client.get_cookie(COOKIE, path="/console")
    assert value is not None
    forged = ("A" if value.value[0] != "A" else "B") + value.value[1:]  # another payload, same signature
    client.set_cookie(COOKIE, forged, path="/console")
    assert client.get("/console/offers").status_code == 302
    other = create_other(env, tmp_path)
    other_client = other.test_client()
    other_client.set_cookie(COOKIE, value.value, path="/console")
    assert other_client.get("/console/").status_code == 302  # its per-process secret differs


def create_other(env: DecisionEnv, tmp_path: Path) -> Flask:
    from service.app import create_app

    return create_app(make_settings(tmp_path / "other", api_keys=KEYS))


@pytest.mark.parametrize("key", [DECISIONS_KEY, EVENTS_KEY, "not-a-configured-key-000"])
def test_keys_without_a_console_scope_cannot_sign_in(app: Flask, key: str) -> None:
    client = app.test_client()
    page = client.get("/console/login")
    answer = client.post("/console/login", data={"api_key": key, "csrf_token": token(page.text)})
    assert answer.status_code == 401 and "cannot sign in" in answer.text
    assert client.get("/console/").status_code == 302


def test_the_sign_in_form_needs_its_token(app: Flask) -> None:
    client = app.test_client()
    client.get("/console/login")
    answer = client.post("/console/login", data={"api_key": ADMIN_KEY, "csrf_token": "forged"})
    assert answer.status_code == 403 and "expired" in answer.text


def test_without_console_keys_the_console_is_closed(tmp_path: Path) -> None:
    from service.app import create_app

    for keys in ("", f"{DECISIONS_KEY}:decisions"):
        client = create_app(make_settings(tmp_path, api_keys=keys)).test_client()
        for url in ["/console/", "/console/login", "/console/members?q=1"]:
            answer = client.get(url)
            assert answer.status_code == 403 and "console is closed" in answer.text, (keys, url)
        assert client.post("/console/login", data={"api_key": ADMIN_KEY}).status_code == 403


def test_forms_without_the_csrf_token_are_refused(app: Flask, env: DecisionEnv) -> None:
    client = app.test_client()
    sign_in(client, ADMIN_KEY)
    for form in ["/console/models/promote", "/console/models/rollback", "/console/logout"]:
        answer = client.post(form, data={"version": env.v2})
        assert answer.status_code == 403 and "security token" in answer.text, form
    assert client.get("/console/").status_code == 200  # still signed in: logout was refused too
    registry_alias = client.get("/console/models").text
    assert f"Champion: {env.v1}" in registry_alias


def test_support_is_read_only(app: Flask, env: DecisionEnv) -> None:
    client = app.test_client()
    sign_in(client, SUPPORT_KEY)
    models = client.get("/console/models")
    assert models.status_code == 200 and "(read-only)" in models.text and "promote" not in models.text.lower()
    assert client.get("/console/models/confirm?action=rollback").status_code == 403
    answer = client.post("/console/models/promote", data={"version": env.v2, "csrf_token": token(models.text)})
    assert answer.status_code == 403 and "admin" in answer.text
    assert f"Champion: {env.v1}" in client.get("/console/models").text


def test_admin_promotes_after_confirming_and_a_corrupt_model_is_refused(app: Flask, env: DecisionEnv) -> None:
    client = app.test_client()
    sign_in(client, ADMIN_KEY)
    confirm = client.get(f"/console/models/confirm?action=promote&version={env.v2}")
    assert confirm.status_code == 200 and "Yes, promote" in confirm.text
    done = client.post("/console/models/promote", data={"version": env.v2, "csrf_token": token(confirm.text)},
                       follow_redirects=True)
    assert done.status_code == 200 and f"Champion: {env.v2}" in done.text and f"now serves {env.v2}" in done.text
    refused = client.post("/console/models/promote", data={"version": env.bad, "csrf_token": token(done.text)})
    assert refused.status_code == 409 and "Not promoted" in refused.text and f"Champion: {env.v2}" in refused.text
    back = client.post("/console/models/rollback", data={"csrf_token": token(done.text)}, follow_redirects=True)
    assert f"Champion: {env.v1}" in back.text and f"now serves {env.v1}" in back.text
    unknown = client.post("/console/models/promote", data={"version": "../../etc", "csrf_token": token(done.text)})
    assert unknown.status_code == 404 and "no version" in unknown.text
    report = client.get(f"/console/models/{env.v1}/report")
    assert report.status_code == 200 and report.mimetype == "text/html" and b"<img" in report.data
    report.close()


def offers_shown(html: str) -> list[str]:
    """Offer ids of the decision table, in rank order."""
    table = html.split('id="decision-offers"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'data-offer-id="([^"]+)"', table)


def test_member_page_shows_the_decision_without_committing_it(app: Flask, env: DecisionEnv) -> None:
    client = app.test_client()
    sign_in(client, SUPPORT_KEY)
    store = app.extensions["offers"].store
    budget = [(FLASH, "total")]

    def footprint() -> tuple[set[str], object]:
        """The store's keys and the flash budget's use (TTLs tick with the wall clock)."""
        return set(all_store_keys(store)), store.budget_usage(budget)

    assert app.extensions["offers"].decisions is not None  # the decision component is wired
    before = footprint()
    page = client.get(f"/console/members?q={MEMBER}&channel={CHANNEL}")
    assert page.status_code == 200, page.text
    shown = offers_shown(page.text)
    assert shown and 'id="tier"' in page.text and 'id="excluded"' in page.text
    assert footprint() == before  # nothing reserved, no coupon, no cache written
    answer = client.post("/v1/decisions", json={"member_id": MEMBER, "channel": CHANNEL},
                         headers={"X-API-Key": DECISIONS_KEY}).get_json()
    assert footprint() != before  # the real decision did commit
    if "(explored)" not in page.text.split('id="decision-offers"', 1)[1]:
        assert FLASH in shown  # the budgeted bonus tops a greedy slate (lever 50)
    if not answer["explored"]:
        assert any(o.get("coupon_code") for o in answer["offers"])  # the real decision issued codes
    # a preview and the real decision right after it rank the same offers, unless either drew
    # an exploration slot (seeded by its decision id: 10% of decisions in synthetic.yaml)
    compared = 0
    for _ in range(20):
        if "(explored)" not in page.text.split('id="decision-offers"', 1)[1] and not answer["explored"]:
            assert [o["offer_id"] for o in answer["offers"]] == shown
            compared += 1
        page = client.get(f"/console/members?q={MEMBER}&channel={CHANNEL}")
        shown = offers_shown(page.text)
        answer = client.post("/v1/decisions", json={"member_id": MEMBER, "channel": CHANNEL},
                             headers={"X-API-Key": DECISIONS_KEY}).get_json()
    assert compared >= 5


def test_member_page_finds_a_member_by_coupon_code_and_replays_a_date(app: Flask) -> None:
    client = app.test_client()
    answer = client.post("/v1/decisions", json={"member_id": MEMBER, "channel": CHANNEL},
                         headers={"X-API-Key": DECISIONS_KEY}).get_json()
    code = next(o["coupon_code"] for o in answer["offers"] if o.get("coupon_code"))
    sign_in(client, SUPPORT_KEY)
    page = client.get(f"/console/members?q={code}&channel={CHANNEL}&as_of=2025-10-01T09:30")
    assert page.status_code == 200 and f"Member {MEMBER}" in page.text and "2025-10-01T09:30:00Z" in page.text


@pytest.mark.parametrize("query, status, text", [
    ("m 1", 422, "neither a known coupon code nor a member id"),
    (f"{MEMBER}&as_of=yesterday", 422, "as_of"),
    (f"{MEMBER}&as_of=2300-01-01T00:00", 422, "as_of"),
    (f"{MEMBER}&channel=fax", 422, "channel"),
])
def test_member_page_mistakes_get_a_clear_message(app: Flask, query: str, status: int, text: str) -> None:
    client = app.test_client()
    sign_in(client, SUPPORT_KEY)
    page = client.get(f"/console/members?q={query}")
    assert page.status_code == status and text in page.text and 'role="alert"' in page.text


def test_offers_page_shows_status_caps_and_budget_burn(app: Flask) -> None:
    client = app.test_client()
    client.post("/v1/decisions", json={"member_id": MEMBER, "channel": CHANNEL}, headers={"X-API-Key": DECISIONS_KEY})
    sign_in(client, SUPPORT_KEY)
    page = client.get("/console/offers")
    assert page.status_code == 200
    assert f'data-offer-id="{FLASH}"' in page.text and "<svg" in page.text and 'role="img"' in page.text
    assert "10%" in page.text  # one of the flash budget's 10 issues is reserved
    assert "active" in page.text


def test_logout_ends_the_session(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, ADMIN_KEY)
    home = client.get("/console/")
    assert client.post("/console/logout", data={"csrf_token": token(home.text)}).status_code == 303
    assert client.get("/console/").status_code == 302


@pytest.mark.redis
def test_a_decision_without_commit_writes_nothing_to_redis(env: DecisionEnv, tmp_path: Path, redis_url: str) -> None:
    """The console's dry run on the real Redis store: the same offers as a committed decision
    (same decision id, so the same exploration draw), no key written; the commit then writes."""
    from runtime.decisions.outcome import DecisionRequest

    env.promote(env.v1)
    app = start_app(env.settings(tmp_path, redis_url=redis_url))
    try:
        decider = app.extensions["offers"].decisions.require()
        store = app.extensions["offers"].store
        request = DecisionRequest(member_id=MEMBER, channel=CHANNEL, explain=True)
        before = set(all_store_keys(store)), store.budget_usage([(FLASH, "total")])
        preview = decider.decide_without_commit(request, "d-console-test")
        assert (set(all_store_keys(store)), store.budget_usage([(FLASH, "total")])) == before
        assert all(o.coupon is None for o in preview.offers)
        committed = decider.decide(request, "d-console-test")
        assert [o.offer.offer_id for o in committed.offers] == [o.offer.offer_id for o in preview.offers]
        assert any(o.coupon is not None for o in committed.offers)
        assert store.budget_usage([(FLASH, "total")]) != before[1]
    finally:
        close_app(app)


def test_pages_without_decisions_or_registry_say_why_instead_of_failing(tmp_path: Path) -> None:
    """A service without OFFERS_DATA or OFFERS_REGISTRY: each page is a 503 page saying what to set."""
    from service.app import create_app

    client = create_app(make_settings(tmp_path, api_keys=KEYS)).test_client()
    sign_in(client, ADMIN_KEY)
    for url, text in [(f"/console/members?q={MEMBER}", "OFFERS_DATA"), ("/console/offers", "OFFERS_DATA"),
                      ("/console/models", "OFFERS_REGISTRY"), ("/console/models/v1/report", "OFFERS_REGISTRY")]:
        answer = client.get(url)
        assert answer.status_code == 503 and answer.mimetype == "text/html" and text in answer.text, url


def test_model_page_shows_the_drift_of_live_traffic(app: Flask, env: DecisionEnv) -> None:
    """Issue 19 with issue 14's drift: the served model's rolling sample PSI, score and features."""
    import pandas as pd

    client = app.test_client()
    sign_in(client, SUPPORT_KEY)
    assert "No live traffic sampled yet" in client.get("/console/models").text
    for member in [str(m) for m in pd.read_parquet(env.data / "members.parquet")["member_id"]][:20]:
        resp = client.post("/v1/decisions", json={"member_id": member, "channel": CHANNEL},
                           headers={"X-API-Key": DECISIONS_KEY})
        assert resp.status_code == 200
    page = client.get("/console/models").text
    snapshot = app.extensions["offers"].decisions.decider.drift.snapshot(env.v1)
    assert snapshot is not None and f"{snapshot['rows']:,} sampled rows" in page
    assert f"score PSI\n    {snapshot['score']:.3f}" in page
    best = max((v, k) for k, v in snapshot["features"].items() if v == v)
    assert f"<td>{best[1]}</td><td>{best[0]:.3f}</td>" in page


def test_lift_page_shows_the_latest_lift_report(app: Flask, tmp_path: Path) -> None:
    """Issue 19's lift page: no report yet (the command to make one), a real report's figures,
    and a corrupt report named as such, never an error page."""
    import json

    from tests.test_lift import simulated_outcomes
    from training.lift import LiftReport, measure

    client = app.test_client()
    sign_in(client, SUPPORT_KEY)
    path = tmp_path / "events" / "lift.json"
    empty = client.get("/console/lift")
    assert empty.status_code == 200 and "No lift report yet" in empty.text and str(path) in empty.text
    rows, srm = measure(simulated_outcomes(4), 0.2, 0.9, 0)
    report = LiftReport(since="2025-11-01T00:00:00", until="2025-12-01T00:00:00", decisions=3500, members=3000,
                        rows=rows, sample_ratio=srm, confidence=0.9)
    path.write_text(json.dumps(report.to_json()))
    page = client.get("/console/lift").text
    spend = next(r for r in rows if r.group == "all" and r.metric == "spend_minor")
    assert f"{spend.incremental_total:,.0f} ({spend.lift:,.3f} per treated member" in page
    assert "3,500 decisions" in page and "90% intervals" in page and page.count('<svg class="chart"') == 3
    assert "sample ratio mismatch" not in page
    path.write_text('{"rows": [{"group": "all"')
    torn = client.get("/console/lift")
    assert torn.status_code == 200 and "cannot be read" in torn.text
