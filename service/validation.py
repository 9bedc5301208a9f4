"""Identifier formats, in one place: every id the API accepts is checked against these.

The patterns keep ids safe to embed in Redis keys, log lines and file names: ASCII
letters and digits plus a few punctuation marks, never ``:``, braces, ``/`` or
whitespace, starting with a letter or digit, and bounded in length. Each pattern has a
pydantic type (``MemberId``...) for request models, and :func:`is_valid` and
:func:`describe` for path parameters and other callers. Python-side checks use
``fullmatch``: ``$`` alone would accept a trailing newline.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

#: name -> (compiled pattern, human description used in error messages)
PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {
    "member_id": (re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$"),
                  "1-64 characters: letters, digits and . _ @ + -, starting with a letter or digit"),
    "offer_id": (re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
                 "1-64 characters: letters, digits and . _ -, starting with a letter or digit"),
    "event_id": (re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
                 "1-128 characters: letters, digits and . _ -, starting with a letter or digit"),
    "decision_id": (re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
                    "1-128 characters: letters, digits and . _ -, starting with a letter or digit"),
    "product_id": (re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
                   "1-64 characters: letters, digits and . _ -, starting with a letter or digit"),
    "basket_id": (re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
                  "1-128 characters: letters, digits and . _ -, starting with a letter or digit"),
    "placement": (re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
                  "1-64 characters: letters, digits and . _ -, starting with a letter or digit"),
    "model_version": (re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$"),
                      "1-64 characters: letters, digits and . _ @ + -"),
    # Loose shape of a coupon code as typed by a person (separators and any case);
    # runtime.coupons.codes normalises it and verifies the check character.
    "coupon_code": (re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{3,62}[A-Za-z0-9]$"),
                    "5-64 letters and digits, optionally grouped with '-' or spaces"),
    "request_id": (re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"),
                   "1-128 characters: letters, digits and . _ : -"),
}

#: Idempotency-Key: 1-255 printable ASCII characters (a UUID is recommended).
IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,255}")


def _pattern(name: str) -> str:
    return PATTERNS[name][0].pattern


MemberId = Annotated[str, StringConstraints(pattern=_pattern("member_id"))]
OfferId = Annotated[str, StringConstraints(pattern=_pattern("offer_id"))]
EventId = Annotated[str, StringConstraints(pattern=_pattern("event_id"))]
DecisionId = Annotated[str, StringConstraints(pattern=_pattern("decision_id"))]
ModelVersion = Annotated[str, StringConstraints(pattern=_pattern("model_version"))]
ProductId = Annotated[str, StringConstraints(pattern=_pattern("product_id"))]
BasketId = Annotated[str, StringConstraints(pattern=_pattern("basket_id"))]
Placement = Annotated[str, StringConstraints(pattern=_pattern("placement"))]
CouponCodeText = Annotated[str, StringConstraints(pattern=_pattern("coupon_code"))]


def is_valid(kind: str, value: object) -> bool:
    """True when ``value`` is a string matching the ``kind`` pattern."""
    return isinstance(value, str) and PATTERNS[kind][0].fullmatch(value) is not None


def describe(kind: str) -> str:
    """What a valid ``kind`` looks like, for error messages."""
    return PATTERNS[kind][1]


def describe_pattern(pattern: str) -> str:
    """The description of a pattern from :data:`PATTERNS`, else the pattern itself."""
    for compiled, description in PATTERNS.values():
        if compiled.pattern == pattern:
            return description
    return f"text matching {pattern}"
