"""The offers page's pause and edit forms through Flask's test client: admin only, CSRF-protected,
and a change made there is what the API and the next decision see."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from runtime.apikeys import digest
from tests.decisions_env import CHANNEL, FLASH, DecisionEnv, build, close_app, start_app
from tests.service_helpers import ADMIN_KEY, DECISIONS_KEY
from tests.test_console import KEYS, SUPPORT_KEY, sign_in, token

ADMIN = {"X-API-Key": ADMIN_KEY}


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


@pytest.fixture
def app(env: DecisionEnv, tmp_path: Path) -> Iterator[Flask]:
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path, api_keys=KEYS))
    yield app
    close_app(app)


def live_status(client: FlaskClient, offer_id: str) -> str:
    listed = client.get("/v1/admin/offers", headers=ADMIN).get_json()["offers"]
    return str(next(o["status"] for o in listed if o["offer_id"] == offer_id))


def test_support_sees_no_forms_and_is_refused_when_posting(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, SUPPORT_KEY)
    page = client.get("/console/offers")
    assert page.status_code == 200 and "/status" not in page.text and "/edit" not in page.text
    csrf = token(page.text)
    assert client.post(f"/console/offers/{FLASH}/status", data={"status": "paused", "csrf_token": csrf}
                       ).status_code == 403
    assert client.get(f"/console/offers/{FLASH}/edit").status_code == 403
    assert client.post(f"/console/offers/{FLASH}/edit", data={"definition": "title: x", "version": "0",
                                                              "csrf_token": csrf}).status_code == 403
    assert live_status(client, FLASH) == "active"


def test_admin_pauses_with_the_csrf_token_and_the_decision_follows(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, ADMIN_KEY)
    page = client.get("/console/offers")
    assert f'action="/console/offers/{FLASH}/status"' in page.text
    assert client.post(f"/console/offers/{FLASH}/status", data={"status": "paused"}).status_code == 403
    assert live_status(client, FLASH) == "active"
    done = client.post(f"/console/offers/{FLASH}/status", data={"status": "paused", "csrf_token": token(page.text)})
    assert done.status_code == 303
    page = client.get(done.headers["Location"])
    assert f"{FLASH} paused" in page.text and 'class="live-paused">paused' in page.text
    assert f"Resume {FLASH}" in page.text
    assert live_status(client, FLASH) == "paused"
    history = client.get(f"/v1/admin/offers/{FLASH}/history", headers=ADMIN).get_json()["changes"]
    assert history[-1]["who"] == f"console:{digest(ADMIN_KEY).hex()[:8]}" and history[-1]["op"] == "pause"
    decision = client.post("/v1/decisions", json={"member_id": "M00000002", "channel": CHANNEL},
                           headers={"X-API-Key": DECISIONS_KEY}).get_json()
    assert {"offer_id": FLASH, "reason": "OFFER_PAUSED"} in decision["excluded"]
    assert client.post(f"/console/offers/{FLASH}/status", data={"status": "gone", "csrf_token": token(page.text)}
                       ).status_code == 422


def test_admin_edits_a_definition_and_mistakes_are_shown_not_saved(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, ADMIN_KEY)
    form = client.get(f"/console/offers/{FLASH}/edit")
    assert form.status_code == 200 and "title: Flash bonus" in form.text and 'name="version" value="0"' in form.text
    csrf = token(form.text)
    text = form.text.split('spellcheck="false">')[1].split("</textarea>")[0]
    bad = client.post(f"/console/offers/{FLASH}/edit", data={
        "definition": text.replace("lever: 50", "lever: -1"), "version": "0", "csrf_token": csrf})
    assert bad.status_code == 422 and "lever: Input should be greater than or equal to 0" in bad.text
    broken = client.post(f"/console/offers/{FLASH}/edit", data={"definition": "title: [", "version": "0",
                                                                "csrf_token": csrf})
    assert broken.status_code == 422 and "Not valid YAML" in broken.text
    assert client.get("/v1/admin/offers", headers=ADMIN).get_json()["version"] == 0
    saved = client.post(f"/console/offers/{FLASH}/edit", data={
        "definition": text.replace("title: Flash bonus", "title: Flash bonus (edited)"), "version": "0",
        "csrf_token": csrf})
    assert saved.status_code == 303, saved.text
    offer = client.get(f"/v1/admin/offers/{FLASH}", headers=ADMIN).get_json()
    assert offer["title"] == "Flash bonus (edited)" and offer["definition"]["lever"] == 50
    stale = client.post(f"/console/offers/{FLASH}/edit", data={"definition": text, "version": "0",
                                                               "csrf_token": csrf})
    assert stale.status_code == 409 and "someone else changed it" in stale.text
