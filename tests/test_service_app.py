"""The app's plumbing through Flask's test client: problems, auth, limits, operations, logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import create_app
from service.state import ServiceState
from tests.service_helpers import ADMIN_KEY, ALL_KEYS, DECISIONS_KEY, EVENTS_KEY, make_settings

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance", "request_id"}
EVENT = {"event_id": "e1", "member_id": "m1", "type": "transaction",
         "ts": "2024-06-15T12:00:00Z", "amount_minor": 1000}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(make_settings(tmp_path, api_keys=ALL_KEYS, max_body_bytes=16384))
    yield app
    app.extensions["offers"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def events_headers(key: str = EVENTS_KEY) -> dict[str, str]:
    return {"X-API-Key": key}


def assert_problem(resp: object, status: int, slug: str | None = None) -> dict[str, object]:
    assert resp.status_code == status, resp.get_data(as_text=True)  # type: ignore[attr-defined]
    assert resp.mimetype == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = resp.get_json(force=True)  # type: ignore[attr-defined]
    assert set(body) >= PROBLEM_FIELDS, body
    assert body["status"] == status
    assert body["request_id"] == resp.headers["X-Request-ID"]  # type: ignore[attr-defined]
    if slug is not None:
        assert body["type"] == f"/docs#problem-{slug}"
    return body


# -- problems for everything a client can get wrong -------------------------------------
def test_unknown_route_is_a_404_problem(client: FlaskClient) -> None:
    body = assert_problem(client.get("/v1/nope"), 404, "not-found")
    assert body["instance"] == "/v1/nope"


def test_wrong_method_is_a_405_problem_with_allow(client: FlaskClient) -> None:
    resp = client.get("/v1/events", headers=events_headers())
    assert_problem(resp, 405, "method-not-allowed")
    assert "POST" in resp.headers["Allow"]
    assert_problem(client.delete("/healthz"), 405)


def test_malformed_json_is_a_400_saying_where(client: FlaskClient) -> None:
    resp = client.post("/v1/events", data='{"event_id": "e1",\n "x": }',
                       content_type="application/json", headers=events_headers())
    body = assert_problem(resp, 400, "malformed-json")
    assert "line 2" in str(body["detail"])


@pytest.mark.parametrize("data", ["", "   ", "[1, NaN]", '{"a": Infinity}', "\xff\xfe",
                                  "[" * 5000 + "]" * 5000, "1" * 5000],
                         ids=["empty", "blank", "nan", "infinity", "not-utf8", "too-deep", "huge-int"])
def test_unreadable_bodies_are_400(client: FlaskClient, data: str) -> None:
    raw = data.encode("latin-1") if data.startswith("\xff") else data.encode()
    resp = client.post("/v1/events", data=raw, content_type="application/json",
                       headers=events_headers())
    assert_problem(resp, 400, "malformed-json")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(client: FlaskClient, content_type: str | None) -> None:
    resp = client.post("/v1/events", data=json.dumps(EVENT), content_type=content_type,
                       headers=events_headers())
    assert_problem(resp, 415, "unsupported-media-type")


def test_json_suffix_media_types_are_accepted(client: FlaskClient) -> None:
    resp = client.post("/v1/events", data=json.dumps(EVENT), headers=events_headers(),
                       content_type="application/vnd.offers+json; charset=utf-8")
    assert resp.status_code == 200


def test_a_body_above_the_limit_is_413(client: FlaskClient) -> None:
    big = {**EVENT, "padding": "x" * 20000}
    resp = client.post("/v1/events", json=big, headers=events_headers())
    assert_problem(resp, 413, "payload-too-large")


def test_a_body_without_length_above_the_limit_is_413(app: Flask) -> None:
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    body = json.dumps({"events": [EVENT] * 200}).encode()  # about 24 KB
    environ = EnvironBuilder(path="/v1/events", method="POST", data=body,
                             content_type="application/json",
                             headers=list(events_headers().items())).get_environ()
    del environ["CONTENT_LENGTH"]  # as a chunked upload arrives
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input_terminated"] = True  # what a server that de-chunks sets
    app_iter, status, headers = run_wsgi_app(app, environ, buffered=True)
    assert status.startswith("413")
    assert headers["Content-Type"] == "application/problem+json"
    assert json.loads(b"".join(app_iter))["status"] == 413


@pytest.mark.parametrize("body, pointer", [
    ("just a string", ""),
    ({**EVENT, "member_id": "has space"}, "/member_id"),
    ({**EVENT, "member_id": "a:b"}, "/member_id"),
    ({**EVENT, "event_id": "x" * 200}, "/event_id"),
    ({**EVENT, "type": "click", "offer_id": "o/1"}, "/offer_id"),
    ({**EVENT, "decision_id": "{d}"}, "/decision_id"),
    ({**EVENT, "member_id": "m1\n"}, "/member_id"),
])
def test_bad_ids_are_422_naming_the_field(client: FlaskClient, body: object, pointer: str) -> None:
    resp = client.post("/v1/events", json=body, headers=events_headers())
    problem = assert_problem(resp, 422, "validation-failed")
    assert pointer in [e.get("pointer") for e in problem["errors"]], problem  # type: ignore[attr-defined]


def test_a_bug_is_a_logged_500_problem_without_internals(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals")

    with caplog.at_level(logging.ERROR):
        resp = app.test_client().get("/boom")
    body = assert_problem(resp, 500, "internal-error")
    assert "secret" not in json.dumps(body)
    assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in caplog.records)
    assert any(getattr(r, "request_id", None) == body["request_id"] for r in caplog.records)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["event_id", "member_id", "type", "ts", "offer_id", "events", "value",
                         "amount_minor", "coupon_code", "x"]), inner, max_size=6),
    max_leaves=20))
def test_no_json_body_can_cause_a_500(client: FlaskClient, body: object) -> None:
    resp = client.post("/v1/events", json=body, headers=events_headers())
    # json=None sends no body at all (415); infinities are serialised as Infinity (400)
    assert resp.status_code in (200, 400, 413, 415, 422), resp.get_data(as_text=True)
    if resp.status_code != 200:
        assert resp.mimetype == "application/problem+json"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300), path=st.text(max_size=30))
def test_no_bytes_or_path_can_cause_a_500(client: FlaskClient, raw: bytes, path: str) -> None:
    assert client.post("/v1/events", data=raw, content_type="application/json",
                       headers=events_headers()).status_code in (200, 400, 422)
    assert client.get("/v1/admin/members/" + path.replace("?", "").replace("#", "") + "/state",
                      headers={"X-API-Key": ADMIN_KEY}).status_code in (200, 404, 405, 422, 308)


# -- authentication and scopes --------------------------------------------------------------
def test_missing_key_is_401_with_a_challenge(client: FlaskClient) -> None:
    resp = client.post("/v1/events", json=EVENT)
    assert_problem(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("ApiKey")


def test_unknown_key_is_401(client: FlaskClient) -> None:
    assert_problem(client.post("/v1/events", json=EVENT, headers={"X-API-Key": "x" * 30}), 401)


def test_malformed_authorization_header_is_401_naming_the_header(client: FlaskClient) -> None:
    resp = client.post("/v1/events", json=EVENT, headers={"Authorization": f"Bearer {EVENTS_KEY}"})
    body = assert_problem(resp, 401)
    assert body["errors"] == [{"header": "Authorization", "code": "bad_scheme",
                               "message": "expected 'ApiKey <key>'"}]


@pytest.mark.parametrize("headers", [{"Authorization": f"ApiKey {EVENTS_KEY}"},
                                     {"Authorization": f"apikey {EVENTS_KEY}"},
                                     {"X-API-Key": EVENTS_KEY}])
def test_both_key_headers_work(client: FlaskClient, headers: dict[str, str]) -> None:
    assert client.post("/v1/events", json=EVENT, headers=headers).status_code == 200


def test_a_key_without_the_scope_is_403(client: FlaskClient) -> None:
    assert_problem(client.post("/v1/events", json=EVENT, headers={"X-API-Key": DECISIONS_KEY}),
                   403, "forbidden")
    assert_problem(client.post("/v1/events", json=EVENT, headers={"X-API-Key": ADMIN_KEY}), 403)
    assert_problem(client.get("/v1/admin/members/m1/state", headers=events_headers()), 403)


def test_admin_key_reads_admin_endpoints(client: FlaskClient) -> None:
    resp = client.get("/v1/admin/members/m1/state", headers={"X-API-Key": ADMIN_KEY})
    assert resp.status_code == 200
    assert resp.get_json()["state"]["member_id"] == "m1"


def test_without_any_keys_events_are_open_but_admin_is_closed(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    c = app.test_client()
    assert c.post("/v1/events", json=EVENT).status_code == 200
    assert_problem(c.get("/v1/admin/members/m1/state"), 403, "forbidden")
    assert_problem(c.get("/v1/admin/members/m1/state", headers={"X-API-Key": ADMIN_KEY}), 403)
    app.extensions["offers"].close()


def test_admin_stays_closed_when_no_key_has_the_admin_scope(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, api_keys=f"{EVENTS_KEY}:events,decisions"))
    c = app.test_client()
    for headers in ({}, events_headers(), {"X-API-Key": ADMIN_KEY}):
        assert_problem(c.get("/v1/admin/members/m1/state", headers=headers), 403)
        assert_problem(c.delete("/v1/admin/members/m1/cache", headers=headers), 403)
    app.extensions["offers"].close()


def test_admin_path_ids_are_validated(client: FlaskClient) -> None:
    body = assert_problem(client.get("/v1/admin/members/bad%20id/state",
                                     headers={"X-API-Key": ADMIN_KEY}), 422)
    assert body["errors"][0]["parameter"] == "member_id"  # type: ignore[index]


def test_admin_drops_a_members_cache(app: Flask, client: FlaskClient) -> None:
    state: ServiceState = app.extensions["offers"]
    state.store.put_scores("m1", "v1", [0.5])
    assert client.delete("/v1/admin/members/m1/cache", headers={"X-API-Key": ADMIN_KEY}).status_code == 204
    assert state.store.fetch_member("m1", "v1").scores is None


# -- request ids and logs ---------------------------------------------------------------------
def test_request_id_is_honoured_or_generated(client: FlaskClient) -> None:
    resp = client.get("/v1/nope", headers={"X-Request-ID": "req-123.abc"})
    assert resp.headers["X-Request-ID"] == "req-123.abc"
    assert resp.get_json(force=True)["request_id"] == "req-123.abc"
    resp = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert resp.headers["X-Request-ID"] != "bad id with spaces"
    assert len(resp.headers["X-Request-ID"]) == 32


def test_access_log_lines_are_json_with_the_request_id(client: FlaskClient,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    from service.logconfig import json_formatter

    with caplog.at_level(logging.INFO, logger="service.access"):
        client.get("/healthz", headers={"X-Request-ID": "trace-me"})
    records = [r for r in caplog.records if r.name == "service.access"]
    assert records
    line = json.loads(json_formatter().format(records[-1]))
    assert line["request_id"] == "trace-me"
    assert line["status"] == 200 and line["path"] == "/healthz" and line["level"] == "INFO"
    assert "time" in line and "duration_ms" in line


# -- operational endpoints ------------------------------------------------------------------------
def test_healthz_and_readyz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json()["checks"]["stores"]["ok"] is True


def test_readiness_waits_for_every_registered_check(app: Flask, client: FlaskClient) -> None:
    state: ServiceState = app.extensions["offers"]
    flag = state.readiness.flag("model", detail="loading model v3")
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["model"] == {"ok": False, "detail": "loading model v3"}
    flag.set(True, "v3 warm")
    assert client.get("/readyz").status_code == 200

    def broken() -> bool:
        raise RuntimeError("catalog missing")

    state.readiness.register("catalog", broken)
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["catalog"]["detail"] == "catalog missing"
    state.readiness.unregister("catalog")
    assert client.get("/readyz").status_code == 200


def test_metrics_expose_latency_cache_errors_decisions_and_events(app: Flask, client: FlaskClient) -> None:
    state: ServiceState = app.extensions["offers"]
    client.post("/v1/events", json=EVENT, headers=events_headers())
    state.store.put_scores("m9", "v1", [0.1])
    state.store.fetch_member("m9", "v1")
    state.store.fetch_member("m8", "v1")
    state.metrics.record_decision("model", holdout=False, model_version="v1")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'offers_http_request_duration_seconds_count{endpoint="/v1/events",method="POST",status="200"} 1.0' in text
    assert 'offers_score_cache_lookups_total{result="hit"} 1.0' in text
    assert 'offers_score_cache_lookups_total{result="miss"} 1.0' in text
    assert 'offers_decisions_total{holdout="false",model_version="v1",policy="model"} 1.0' in text
    assert 'offers_events_total{status="accepted",type="transaction"} 1.0' in text
    assert "# TYPE offers_redis_errors_total counter" in text


def test_unknown_paths_share_one_metrics_label(client: FlaskClient) -> None:
    for i in range(3):
        client.get(f"/random/{i}")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'endpoint="unmatched",method="GET",status="404"} 3.0' in text
    assert "/random/" not in text


def test_openapi_documents_every_route(app: Flask, client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):
            continue  # the operator console is HTML pages for people, not part of the JSON API
        path = rule.rule.replace("<", "{").replace(">", "}")
        methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
        assert path in doc["paths"], path
        assert methods <= set(doc["paths"][path]), (path, methods)
    assert not any(p.startswith("/console") for p in doc["paths"])
    event = doc["components"]["schemas"]["Event"]
    assert {"event_id", "member_id", "type", "ts"} <= set(event["required"])


def test_docs_page_is_self_contained_html(client: FlaskClient) -> None:
    resp = client.get("/docs")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    for path in ("/v1/events", "/readyz", "/v1/admin/coupons/{code}"):
        assert path in page
    assert 'id="schema-Event"' in page and 'id="problem-validation-failed"' in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "``" not in page  # docstring literals render as <code>, not raw RST markup


def test_openapi_accepts_paths_from_other_parts(app: Flask, client: FlaskClient) -> None:
    state: ServiceState = app.extensions["offers"]
    state.openapi.add_path("/v1/decisions", {"post": {"summary": "Decide <offers>",
                                                      "responses": {"200": {"description": "ok"}}}})
    assert "/v1/decisions" in client.get("/openapi.json").get_json()["paths"]
    assert "Decide &lt;offers&gt;" in client.get("/docs").get_data(as_text=True)
