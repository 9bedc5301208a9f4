"""The API document and the validation agree: schemathesis fuzzes every operation.

Every operation of ``/openapi.json`` (endpoints added later are covered by themselves)
is called in-process (WSGI) on an app with decisions loaded and a real Redis, with
examples valid under the document (which must be accepted: any 2xx, or a 4xx the
document allows for reasons outside the schema such as an unknown member) and examples
that break it (which must be refused with a 4xx), and every schemathesis check: no 5xx,
responses, status codes, content types and headers as documented. Bounded by
:data:`EXAMPLES` examples per operation and mode (``OFFERS_FUZZ_EXAMPLES`` overrides it
for a deeper run), without shrinking; no clock is involved, so a slow machine only takes
longer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.failures import FailureGroup

from runtime.coupons.codes import ALPHABET, check_character
from tests.decisions_env import DecisionEnv, build, close_app, start_app
from tests.service_helpers import ADMIN_KEY, DECISIONS_KEY, EVENTS_KEY

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: Examples per operation and generation mode (the issue's run used 200 per operation).
EXAMPLES = int(os.environ.get("OFFERS_FUZZ_EXAMPLES", "50"))
#: Latest event time the service accepts: its clock (tests.decisions_env.CLOCK) plus 24 h.
LATEST_TS = "2025-11-13T12:00:00Z"
KEYS = {"decisions": DECISIONS_KEY, "events": EVENTS_KEY, "admin": ADMIN_KEY}


def _valid_code(text: str) -> str:
    """A coupon code with a correct check character made from ``text``'s letters and digits."""
    payload = "".join(ALPHABET[ord(c) % 32] for c in text if c.isalnum())[:20].ljust(5, "7")
    return payload + check_character(payload)


def _conform(body: Any, latest: str) -> Any:
    """Make a schema-valid event body meet the rules JSON Schema cannot state.

    Each is documented in the field's description and has tests of its own
    (tests/test_service_events.py): ``ts`` at most 24 h after the service clock, a coupon
    code's check character, ``coupon_discount_minor`` within ``discount_minor``, ``value``
    with at most 2 decimals and agreeing with ``amount_minor``.
    """
    events = body if isinstance(body, list) else body.get("events", [body]) if isinstance(body, dict) else []
    for ev in events:
        if not isinstance(ev, dict):
            continue
        if isinstance(ev.get("ts"), str) and ev["ts"] > latest:
            ev["ts"] = latest
        if isinstance(ev.get("coupon_code"), str):
            ev["coupon_code"] = _valid_code(ev["coupon_code"])
        if isinstance(ev.get("coupon_discount_minor"), int) and isinstance(ev.get("discount_minor"), int):
            ev["coupon_discount_minor"] = min(ev["coupon_discount_minor"], ev["discount_minor"])
        if ev.get("value") is not None:
            ev["value"] = round(ev["value"], 2) if ev.get("amount_minor") is None else ev["amount_minor"] / 100
    return body


def _send(case: Any, positive: bool, headers: dict[str, str], number: int) -> None:
    """Send one generated case and run every check on the answer."""
    key = (case.headers or {}).get("Idempotency-Key")
    if positive and isinstance(key, str):
        # a key names one request: another body under the same key is 422 by design
        case.headers["Idempotency-Key"] = f"{number}-{key}"[:255]
    if positive and case.operation.path == "/v1/events":
        case.body = _conform(case.body, LATEST_TS)
    if positive and case.operation.path in ("/v1/admin/coupons/{code}", "/v1/coupons/{code}/redeem"):
        case.path_parameters["code"] = _valid_code(case.path_parameters["code"])
    if positive and case.operation.path == "/v1/admin/offers/{offer_id}":
        _send_offer_change(case, headers)
        return
    case.call_and_validate(headers=headers)


def _send_offer_change(case: Any, headers: dict[str, str]) -> None:
    """A schema-valid live-catalog change, with the two things JSON Schema cannot state left to
    their own tests (tests/test_catalog_api.py): an If-Match version is state (a stale one is a
    412), and an offer's cross-field rules (a partner offer needs a funder, tiers the program
    knows...) are the program's own validation, refused as the documented 422 ``invalid_offer``.
    Every other check still runs on the answer, a 5xx included."""
    (case.headers or {}).pop("If-Match", None)
    response = case.call(headers=headers)
    errors = response.json().get("errors", []) if response.status_code == 422 else []
    semantic = bool(errors) and all(e.get("code") == "invalid_offer" for e in errors)
    case.validate_response(response, excluded_checks=[positive_data_acceptance] if semantic else None,
                           headers=headers)


def _fuzz_one(operation: Any, mode: GenerationMode, headers: dict[str, str], examples: int,
              counter: list[int]) -> None:
    """Run ``examples`` cases of one operation in one mode; raise schemathesis' failure report."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, phases=[Phase.explicit, Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    def run(case: Any) -> None:
        counter[0] += 1
        _send(case, mode is GenerationMode.POSITIVE, headers, counter[0])

    run()


def fuzz(app: Flask, examples: int) -> tuple[int, list[str]]:
    """Fuzz every operation of the app's document; (requests sent, failures found)."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    counter = [0]
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        scope = operation.definition.raw.get("x-scope")
        headers = {"X-API-Key": KEYS[scope]} if scope else {}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz_one(operation, mode, headers, examples, counter)
            except Unsatisfiable:  # nothing to break in this mode (no parameters, no body)
                continue
            except (Exception, FailureGroup) as exc:  # one report per operation and mode
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    return counter[0], failures


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Flask]:
    env: DecisionEnv = build(tmp_path_factory.mktemp("decisions"))
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path_factory.mktemp("fuzz"), redis_url=redis_url))
    yield app
    close_app(app)


def test_every_operation_agrees_with_the_document(fuzz_app: Flask) -> None:
    calls, failures = fuzz(fuzz_app, EXAMPLES)
    print(f"schemathesis: {calls} requests, {len(failures)} failures")
    assert not failures, "\n\n".join(failures)
