"""One supported time range (models.timerange), strict types, and what the document states.

Timestamps outside 1970-01-01T00:00:00Z .. 2200-01-01T00:00:00Z get a 422 naming the
field from every endpoint, before anything reaches Redis or the event log; the CLI refuses
them; ``offers data events`` skips and reports a log line outside it. Strings are not
numbers and booleans are not integers. /readyz shows no filesystem path and access logs
show no coupon code.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from offers_cli.main import cli
from runtime.settings import SettingsError, settings_for
from service.app import create_app
from tests.service_helpers import ADMIN_KEY, ALL_KEYS, DECISIONS_KEY, EVENTS_KEY, make_settings

pytestmark = pytest.mark.redis

CLOCK = "2025-11-12T12:00:00+00:00"
OUTSIDE = ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00",
           "1000-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z"]
EVENTS = {"X-API-Key": EVENTS_KEY}
DECIDE = {"X-API-Key": DECISIONS_KEY}


@pytest.fixture
def app(tmp_path: Path, redis_url: str) -> Iterator[Flask]:
    app = create_app(make_settings(tmp_path, redis_url=redis_url, clock=CLOCK, api_keys=ALL_KEYS))
    yield app
    state = app.extensions["offers"]
    keys = list(state.store.client.scan_iter(match=state.store.keys.pattern()))
    if keys:
        state.store.client.delete(*keys)
    state.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _written(app: Flask) -> tuple[list[str], list[bytes]]:
    """(event log lines, Redis keys of the app) : what a request left behind."""
    state = app.extensions["offers"]
    lines = [line for f in sorted(Path(state.settings.event_log).glob("*.ndjson"))
             for line in f.read_text().splitlines() if line.strip()]
    return lines, list(state.store.client.scan_iter(match=state.store.keys.pattern()))


def _problem(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body: dict[str, Any] = resp.get_json()
    return body


def _event(event_id: str, ts: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "member_id": "m1", "type": "transaction", "ts": ts,
            "amount_minor": 100, **extra}


# -- events -------------------------------------------------------------------------------
@pytest.mark.parametrize("ts", OUTSIDE)
def test_an_event_outside_the_range_is_422_and_nothing_is_written(app: Flask, client: FlaskClient,
                                                                   ts: str) -> None:
    body = {"events": [_event("ok-1", "2025-11-11T09:00:00Z"), _event("bad-1", ts)]}
    problem = _problem(client.post("/v1/events", json=body, headers=EVENTS))
    assert [e["pointer"] for e in problem["errors"]] == ["/events/1/ts"]
    assert "1970-01-01T00:00:00Z" in problem["errors"][0]["message"]
    assert _written(app) == ([], [])  # neither the good event nor the bad one: all or nothing


@pytest.mark.parametrize(("field", "value"), [
    ("ts", "1509271200"), ("amount_minor", True), ("amount_minor", "100"), ("value", "12.50"),
    ("value", True), ("discount_minor", 1.5)])
def test_event_fields_are_strictly_typed(app: Flask, client: FlaskClient, field: str, value: Any) -> None:
    ev = _event("e-1", "2025-11-11T09:00:00Z")
    if field == "value":
        del ev["amount_minor"]
    ev[field] = value
    problem = _problem(client.post("/v1/events", json=ev, headers=EVENTS))
    assert [e["pointer"] for e in problem["errors"]] == [f"/{field}"]
    assert _written(app) == ([], [])


def test_integral_json_numbers_are_integers(client: FlaskClient) -> None:
    resp = client.post("/v1/events", data='{"event_id": "e-2", "member_id": "m1", "type": "transaction", '
                                          '"ts": "2025-11-11T09:00:00Z", "amount_minor": 250.0}',
                       content_type="application/json", headers=EVENTS)
    assert resp.status_code == 200, resp.get_data(as_text=True)


# -- decisions: body, query and batch -----------------------------------------------------
@pytest.mark.parametrize("ts", OUTSIDE)
def test_a_decision_as_of_outside_the_range_is_422(app: Flask, client: FlaskClient, ts: str) -> None:
    body = {"member_id": "m1", "channel": "app", "context": {"as_of": ts}}
    problem = _problem(client.post("/v1/decisions", json=body, headers=DECIDE))
    assert [e["pointer"] for e in problem["errors"]] == ["/context/as_of"]
    problem = _problem(client.get("/v1/members/m1/offers", query_string={"as_of": ts}, headers=DECIDE))
    assert [e["parameter"] for e in problem["errors"]] == ["as_of"]
    resp = client.post("/v1/decisions/batch", json={"member_ids": ["m1", "m2"], "channel": "email",
                                                     "context": {"as_of": ts}}, headers=DECIDE)
    problem = _problem(resp)  # refused before streaming starts: a problem, not a 200 stream
    assert [e["pointer"] for e in problem["errors"]] == ["/context/as_of"]
    assert _written(app) == ([], [])


@pytest.mark.parametrize(("field", "value"), [("n", "5"), ("n", True), ("n", 2.5), ("explain", "true")])
def test_decision_fields_are_strictly_typed(client: FlaskClient, field: str, value: Any) -> None:
    body = {"member_id": "m1", "channel": "app", field: value}
    problem = _problem(client.post("/v1/decisions", json=body, headers=DECIDE))
    assert [e["pointer"] for e in problem["errors"]] == [f"/{field}"]


def test_the_document_states_the_rules_validation_enforces(client: FlaskClient) -> None:
    """The requests the fuzzer found valid under the document but refused are now invalid in it."""
    doc = client.get("/openapi.json").get_json()
    query = {p["name"]: p for p in doc["paths"]["/v1/members/{member_id}/offers"]["get"]["parameters"]}
    assert re.search(query["placement"]["schema"]["pattern"], "") is None  # ?placement= is invalid
    assert _problem(client.get("/v1/members/m1/offers?placement=", headers=DECIDE))["errors"][0][
        "parameter"] == "placement"
    idem = next(p for p in doc["paths"]["/v1/events"]["post"]["parameters"] if p["name"] == "Idempotency-Key")
    assert re.search(idem["schema"]["pattern"], "a b") is None
    event = doc["components"]["schemas"]["Event"]
    rule = event["allOf"][0]
    assert rule["if"]["properties"]["type"] == {"const": "transaction"}
    assert "offer_id" in rule["else"]["required"]  # a click without offer_id is invalid in the document
    assert event["properties"]["ts"]["pattern"] == r"^(19[7-9][0-9]|2[01][0-9]{2})-"
    assert event["properties"]["value"]["anyOf"][0]["type"] == "number"  # not a string


# -- operations ---------------------------------------------------------------------------
def test_readyz_shows_no_filesystem_path(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    secret = tmp_path / "registry" / "models"
    app.extensions["offers"].readiness.flag("model", detail=f"no model can be served: registry "
                                                           f"'{secret}' has no champion")
    body = client.get("/readyz").get_json()
    assert str(tmp_path) not in json.dumps(body)
    assert body["checks"]["model"]["detail"] == "no model can be served: registry '<path>' has no champion"


def test_access_logs_mask_coupon_codes(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="service.access"):
        resp = client.get("/v1/admin/coupons/367v-h7h8-mjhy-c", headers={"X-API-Key": ADMIN_KEY})
    assert resp.status_code in (404, 422)
    lines = [r for r in caplog.records if r.name == "service.access"]
    assert lines and all("367" not in r.getMessage() and "367" not in r.path for r in lines)  # type: ignore[attr-defined]
    assert lines[-1].path == "/v1/admin/coupons/***"  # type: ignore[attr-defined]


# -- settings and CLI ---------------------------------------------------------------------
@pytest.mark.parametrize("clock", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00", "1000-01-01"])
def test_a_clock_outside_the_range_stops_the_service(tmp_path: Path, clock: str) -> None:
    with pytest.raises(SettingsError, match="OFFERS_CLOCK"):
        settings_for(event_log=tmp_path / "events", clock=clock)


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_train_end_outside_the_range_is_a_usage_error(tiny_dir: Path, tmp_path: Path, command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--data", str(tiny_dir), "--registry", str(tmp_path / "reg"),
                                      "--train-end", "0001-01-01"])
    assert result.exit_code == 2
    assert "--train-end" in result.output and "1970-01-01" in result.output


def test_offers_data_events_skips_and_reports_lines_outside_the_range(tiny_dir: Path, tmp_path: Path) -> None:
    """A log with a line the old service accepted (1000-01-01) no longer crashes the merge."""
    log = tmp_path / "log"
    log.mkdir()
    good = {"v": 1, "event_id": "i-1", "member_id": "new-member", "type": "click", "offer_id": "o1",
            "ts": "2024-06-15T16:00:00Z", "received_at": "2024-06-15T16:00:01Z", "request_id": "r"}
    old = {**good, "event_id": "t-old", "type": "transaction", "product_id": "p1", "amount_minor": 5,
           "ts": "1000-01-01T00:00:00Z"}
    (log / "events-20240615-h-1-0001.ndjson").write_text(
        json.dumps(good) + "\n" + json.dumps(old) + "\n" + "{not json\n")
    result = CliRunner().invoke(cli, ["data", "events", "--log", str(log), "--data", str(tiny_dir),
                                      "--out", str(tmp_path / "out")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "events-20240615-h-1-0001.ndjson line 2: ts '1000-01-01T00:00:00Z' is outside" in result.output
    assert "events-20240615-h-1-0001.ndjson line 3: not JSON" in result.output
    assert "2 unusable lines skipped" in result.output
    assert (tmp_path / "out" / "transactions.parquet").exists()
