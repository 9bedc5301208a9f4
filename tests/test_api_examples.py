"""The API document reads as a document: every schema field described, the main
operations illustrated, and every example valid against its own schema.

Examples are checked with jsonschema_rs (schemathesis' own validator, JSON Schema 2020-12
with formats), ``$ref`` resolved against the document's components. Two examples are also
replayed against the app, so they show what the service really answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from flask import Flask

from service import openapi_examples as examples
from service.app import create_app
from tests.service_helpers import make_settings

#: (path, method, where): the examples the issue asks for. ``where`` is ``request``,
#: ``parameter:<name>`` or a response status.
REQUIRED_EXAMPLES = [
    ("/v1/decisions", "post", "request"), ("/v1/decisions", "post", "200"), ("/v1/decisions", "post", "422"),
    ("/v1/members/{member_id}/offers", "get", "200"),
    ("/v1/decisions/batch", "post", "request"), ("/v1/decisions/batch", "post", "200"),
    ("/v1/events", "post", "request"), ("/v1/events", "post", "200"),
    ("/v1/coupons/{code}/redeem", "post", "request"), ("/v1/coupons/{code}/redeem", "post", "200"),
]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    app = create_app(make_settings(tmp_path_factory.mktemp("docs")))
    yield app
    app.extensions["offers"].close()


@pytest.fixture(scope="module")
def doc(app: Flask) -> dict[str, Any]:
    return app.test_client().get("/openapi.json").get_json()


def _undescribed(schema: dict[str, Any], where: str) -> Iterator[str]:
    """Every property under ``schema`` (nested objects, items, maps) without a description."""
    for name, prop in (schema.get("properties") or {}).items():
        if "description" not in prop:
            yield f"{where}.{name}"
        yield from _undescribed(prop, f"{where}.{name}")
        for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
            if isinstance(prop.get(key), dict):
                yield from _undescribed(prop[key], f"{where}.{name}{suffix}")


def _media(doc: dict[str, Any]) -> Iterator[tuple[str, str, str, str, dict[str, Any]]]:
    """(path, method, where, media type, media object) of every request and response body."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                yield path, method, "request", media, content
            for status, resp in op.get("responses", {}).items():
                for media, content in resp.get("content", {}).items():
                    yield path, method, status, media, content


def _errors(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    """Why ``value`` does not validate against ``schema`` (refs into the document's components)."""
    validator = jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]},
                                                   validate_formats=True)
    return [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(value)]


def test_every_component_schema_property_has_a_description(doc: dict[str, Any]) -> None:
    missing = [p for name, schema in doc["components"]["schemas"].items() for p in _undescribed(schema, name)]
    assert not missing, f"{len(missing)} properties without a description: {missing}"


def test_the_main_operations_carry_examples(doc: dict[str, Any]) -> None:
    found = {(path, method, where) for path, method, where, _, content in _media(doc) if "example" in content}
    assert [r for r in REQUIRED_EXAMPLES if r not in found] == []
    code = next(p for p in doc["paths"]["/v1/coupons/{code}/redeem"]["post"]["parameters"] if p["name"] == "code")
    assert code["example"] == examples.COUPON_CODE


def test_every_example_validates_against_its_schema(doc: dict[str, Any]) -> None:
    checked, failures = 0, []
    for path, method, where, media, content in _media(doc):
        if "example" not in content:
            continue
        value = content["example"]
        if media == "application/x-ndjson":
            # one document per line: decisions (the schema), then the summary line
            lines = [json.loads(line) for line in value.splitlines()]
            assert set(lines[-1]) == {"summary"} and lines[-1]["summary"]["members"] == len(lines) - 1
            values = lines[:-1]
        else:
            values = [value]
        for v in values:
            failures += [f"{method} {path} {where}: {e}" for e in _errors(doc, content["schema"], v)]
            checked += 1
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                if "example" in param:
                    failures += [f"{method} {path} {param['name']}: {e}"
                                 for e in _errors(doc, param["schema"], param["example"])]
                    checked += 1
    assert failures == []
    assert checked >= len(REQUIRED_EXAMPLES) + 2  # two batch lines, one parameter


def test_the_validator_would_catch_a_bad_example(doc: dict[str, Any]) -> None:
    """The check above can fail: a decision without its id, a coupon time as text."""
    decision = {k: v for k, v in examples.DECISION.items() if k != "decision_id"}
    assert _errors(doc, {"$ref": "#/components/schemas/Decision"}, decision)
    coupon = {**examples.REDEEM_RESPONSE["coupon"], "issued_at": "2017-10-30T14:00:00Z"}
    assert _errors(doc, {"$ref": "#/components/schemas/Coupon"}, coupon)


def test_the_events_example_is_what_the_service_answers(app: Flask) -> None:
    resp = app.test_client().post("/v1/events", json=examples.EVENTS_REQUEST)
    assert resp.status_code == 200
    assert resp.get_json() == examples.EVENTS_RESULT


def test_the_422_example_is_what_the_service_answers(app: Flask) -> None:
    resp = app.test_client().post("/v1/decisions", json={"member_id": "1029", "channel": "fax", "n": "3"},
                                  headers={"X-Request-ID": examples.PROBLEM_422["request_id"]})
    assert resp.status_code == 422
    assert resp.get_json() == examples.PROBLEM_422


def test_the_docs_page_shows_the_examples_and_descriptions(app: Flask) -> None:
    html = app.test_client().get("/docs").get_data(as_text=True)
    assert "367V-H7H8-MJHY-C" in html and "&quot;summary&quot;" in html
    assert "epoch seconds" in html and "minor units" in html
