"""orjson behind the service's responses and the logs' lines: same documents as the standard encoder.

The service's answers (``service.json_provider``) and every event, decision and ledger line
(``runtime.events.log.json_line``) are encoded by orjson for speed; these tests pin that what
they write parses to what the standard library would have written, with Flask's conventions,
and that values orjson refuses still encode through the fallback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import math
import uuid
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.events.log import json_line
from service.json_provider import FastJSONProvider

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 63), max_value=2 ** 64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30)


@dataclasses.dataclass
class Point:
    x: int
    when: dt.date


def providers() -> tuple[FastJSONProvider, DefaultJSONProvider]:
    app = Flask(__name__)
    return FastJSONProvider(app), DefaultJSONProvider(app)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_responses_parse_to_what_the_standard_encoder_writes(value: Any) -> None:
    fast, standard = providers()
    assert json.loads(fast.dumps(value)) == json.loads(standard.dumps(value))
    assert json.loads(json_line({"v": value})) == {"v": value}
    assert json_line({"v": value}).endswith(b"\n") and json_line({"v": value}).count(b"\n") == 1


def test_keys_sorted_and_flask_fallbacks_kept() -> None:
    """Sorted keys and compact separators as Flask writes them; dates as HTTP dates, dataclasses,
    decimals and UUIDs through Flask's own fallback; a real response carries the same text."""
    fast, standard = providers()
    doc = {"b": 1, "a": [dt.datetime(2024, 6, 15, 12, 0, tzinfo=dt.UTC), dt.date(2024, 6, 15)],
           "c": Point(1, dt.date(2024, 1, 2)), "d": decimal.Decimal("1.50"), "e": uuid.UUID(int=7)}
    assert fast.dumps(doc, separators=(",", ":")) == standard.dumps(doc, separators=(",", ":"))
    app = Flask(__name__)
    app.json = FastJSONProvider(app)
    with app.app_context():
        body = app.json.response(doc).get_data(as_text=True)
    assert body == standard.dumps(doc, separators=(",", ":")) + "\n"


def test_values_orjson_refuses_fall_back_to_the_standard_encoder() -> None:
    fast, standard = providers()
    huge = {"n": 2 ** 80, "x": [1, 2]}
    assert fast.dumps(huge) == standard.dumps(huge)
    assert json.loads(json_line(huge)) == huge
    with pytest.raises(TypeError):  # neither encoder knows it: the same error as before
        fast.dumps({"s": {1, 2}})


def test_non_finite_floats_become_null_instead_of_invalid_json() -> None:
    fast, _ = providers()
    assert json.loads(fast.dumps({"a": math.nan, "b": math.inf})) == {"a": None, "b": None}


def test_log_lines_take_numpy_values() -> None:
    line = json_line({"scores": np.array([0.25, 0.5]), "n": np.int64(3), "p": np.float64(0.125)})
    assert json.loads(line) == {"scores": [0.25, 0.5], "n": 3, "p": 0.125}
