"""Example requests and responses for the API document (``/openapi.json``, ``/docs``).

One story throughout, the README's: household 1029 of The Complete Journey asks for its
mail offers on 30 Oct 2017 at 09:00 Chicago time (14:00 UTC), gets coupon 367V-H7H8-MJHY-C
for offer 17-53760020032, and redeems it at the till an hour later. Every example is valid
against the schema it illustrates (tests/test_api_examples.py checks it); times in Coupon
are epoch seconds, money in minor units (cents).
"""

from __future__ import annotations

import json
from typing import Any

#: 2017-10-30T14:00:00Z, when the decision is made and the coupon issued (epoch seconds).
DECIDED_AT = 1509372000
#: 2017-11-20T05:59:59Z, the coupon's last valid moment (the offer's end), epoch seconds.
EXPIRES_AT = 1511157599
#: 2017-10-30T15:12:00Z, when the coupon is redeemed, epoch seconds.
REDEEMED_AT = 1509376320

DECISION_REQUEST: dict[str, Any] = {
    "member_id": "1029", "channel": "mail", "n": 3, "placement": "mailer", "explain": True}

_MEMBER_1029: dict[str, Any] = {
    "member_id": "1029", "known": True, "tier": "Gold", "tier_rank": 2, "since": "2017-06-14T17:42:10-05:00",
    "metric": 708124, "metric_display": "$7,082", "next_tier": None, "delta_to_next": None,
    "delta_to_keep": 9793, "period_end": "2018-07-05T18:21:56-05:00", "projected_tier": "Gold",
    "at_risk": False, "progress": 1.0}

_OFFER_1029: dict[str, Any] = {
    "offer_id": "17-53760020032", "rank": 1, "kind": "amount_off", "title": "Save on Meat - Shelf Stable",
    "text": None, "value": 0.0, "value_unit": "currency_minor", "value_display": None,
    "propensity": 0.084315, "priority": 110.557724, "explored": False, "probability": 1.0, "tier_promo": None,
    "reasons": ["ELIGIBLE_CHANNEL:mail", "MODEL_PROPENSITY", "FEATURE:product_spend=+1.729"],
    "requires_coupon": True, "coupon_code": "367VH7H8MJHYC", "coupon_display": "367V-H7H8-MJHY-C",
    "expires_at": "2017-11-20T05:59:59Z"}

#: The README's sample decision, complete.
DECISION: dict[str, Any] = {
    "decision_id": "d-0b8f2c9e4a1d4f7e9c3b5a6d7e8f9012", "model_version": "20261122-122234-c4ad34",
    "as_of": "2017-10-30T14:00:00Z", "placement": "mailer", "member": _MEMBER_1029, "offers": [_OFFER_1029],
    "excluded": [{"offer_id": "reach_next_tier", "reason": "TOP_TIER_REACHED"},
                 {"offer_id": "14-54589314177", "reason": "DIVERSITY_LIMIT"}],
    "holdout": False, "policy": "personalised", "explored": False, "scores": "computed", "history": "ok",
    "degraded": None, "took_ms": 38.2}

#: ``GET /v1/members/1029/offers?channel=mail&n=3&exclude_offer_ids=keep_tier``: the same
#: member a minute later, scores from the cache, the coupon held for the member handed out
#: again (offers named in exclude_offer_ids are no candidates, so not in ``excluded``).
MEMBER_OFFERS: dict[str, Any] = {
    **DECISION, "decision_id": "d-5e21a7c04b9f4d3c8a61f0e2d7b94c15", "as_of": "2017-10-30T14:01:00Z",
    "placement": None, "offers": [{**_OFFER_1029, "reasons": ["ELIGIBLE_CHANNEL:mail", "MODEL_PROPENSITY"]}],
    "scores": "cache", "took_ms": 6.4}

BATCH_REQUEST: dict[str, Any] = {"member_ids": ["1029", "2469"], "channel": "mail", "n": 3}

_BATCH_ID = "b-7c1e0f9a2d4b4e6f8a3c5d7e9f1a2b3c"
#: The batch's decision lines (``member_id`` plus a decision without ``excluded``).
BATCH_LINES: list[dict[str, Any]] = [
    {"member_id": "1029", **{k: v for k, v in DECISION.items() if k != "excluded"},
     "decision_id": f"{_BATCH_ID}.0", "placement": None, "offers": [{**_OFFER_1029, "reasons": [
         "ELIGIBLE_CHANNEL:mail", "MODEL_PROPENSITY"]}], "took_ms": 11.9},
    {"member_id": "2469", "decision_id": f"{_BATCH_ID}.1", "model_version": "20261122-122234-c4ad34",
     "as_of": "2017-10-30T14:00:00Z", "placement": None,
     "member": {"member_id": "2469", "known": True, "tier": "Silver", "tier_rank": 1,
                "since": "2017-09-02T11:05:37-05:00", "metric": 184550, "metric_display": "$1,846",
                "next_tier": "Gold", "delta_to_next": 175450, "delta_to_keep": 0,
                "period_end": "2018-09-01T11:05:37-05:00", "projected_tier": "Silver", "at_risk": False,
                "progress": 0.5126},
     "offers": [{"offer_id": "18-1082185", "rank": 1, "kind": "amount_off", "title": "Fresh produce savings",
                 "text": None, "value": 0.0, "value_unit": "currency_minor", "value_display": None,
                 "propensity": 0.051207, "priority": 67.142310, "explored": False, "probability": 1.0,
                 "tier_promo": None, "reasons": ["ELIGIBLE_CHANNEL:mail", "MODEL_PROPENSITY"],
                 "requires_coupon": True, "coupon_code": "4KQ9T2WXR8MD1", "coupon_display": "4KQ9-T2WX-R8MD-1",
                 "expires_at": "2017-11-20T05:59:59Z"}],
     "holdout": False, "policy": "personalised", "explored": False, "scores": "cache", "history": "ok",
     "degraded": None, "took_ms": 11.9}]

#: The last line of a batch stream: what the batch did.
BATCH_SUMMARY: dict[str, Any] = {"summary": {
    "batch_id": _BATCH_ID, "members": 2, "decided": 2, "replayed": 0, "offers": 2, "coupons": 2, "degraded": 0,
    "took_ms": 24.6}}

#: The whole NDJSON answer, as the client reads it.
BATCH_NDJSON = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in [*BATCH_LINES, BATCH_SUMMARY])

#: The README's feedback: the redemption and the purchase it came with.
EVENTS_REQUEST: list[dict[str, Any]] = [
    {"event_id": "r-1", "member_id": "1029", "type": "redeem", "offer_id": "17-53760020032",
     "ts": "2017-10-30T08:00:00-05:00"},
    {"event_id": "t-1", "member_id": "1029", "type": "transaction", "ts": "2017-10-30T08:05:00-05:00",
     "amount_minor": 399, "product_id": "1029743", "basket_id": "b-77"}]

EVENTS_RESULT: dict[str, Any] = {"accepted": 2, "duplicates": 0, "results": [
    {"event_id": "r-1", "status": "accepted"}, {"event_id": "t-1", "status": "accepted"}]}

#: ``POST /v1/coupons/367V-H7H8-MJHY-C/redeem`` at the till.
COUPON_CODE = "367V-H7H8-MJHY-C"
REDEEM_REQUEST: dict[str, Any] = {
    "member_id": "1029", "offer_id": "17-53760020032", "event_id": "pos-4471-0093", "channel": "pos"}

REDEEM_RESPONSE: dict[str, Any] = {
    "status": "redeemed", "event_id": "pos-4471-0093", "redeemed_at": "2017-10-30T15:12:00Z",
    "coupon": {"code": "367VH7H8MJHYC", "display": "367V-H7H8-MJHY-C", "member_id": "1029",
               "offer_id": "17-53760020032", "issued_at": DECIDED_AT, "expires_at": EXPIRES_AT,
               "decision_id": "d-0b8f2c9e4a1d4f7e9c3b5a6d7e8f9012", "redeemed_at": REDEEMED_AT,
               "redeemed_event_id": "pos-4471-0093"}}

#: What ``POST /v1/decisions`` answers to ``{"member_id": "1029", "channel": "fax", "n": "3"}``.
PROBLEM_422: dict[str, Any] = {
    "type": "/docs#problem-validation-failed", "title": "Validation failed", "status": 422,
    "detail": "the request is not valid", "instance": "/v1/decisions",
    "request_id": "3f2c9a7e1b6d4e08a5c4d2b1e9f07a63",
    "errors": [{"code": "literal_error", "pointer": "/channel",
                "message": "Input should be 'app', 'web', 'email', 'push', 'sms', 'mail' or 'pos'"},
               {"code": "value_error", "pointer": "/n", "message": "must be a JSON integer"}]}
