"""What a member costs in Redis (the figure docs/redis.md quotes), re-measured.

The member is written as of fixed moments, never today's date: a purchase history spread
back from the wall clock once spanned 13 calendar months early in a month (issue 12).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runtime.stores.footprint import MEASURED_AT, measure

pytestmark = pytest.mark.redis

MOMENTS = [
    MEASURED_AT,
    datetime(2027, 3, 2, 10, tzinfo=UTC),  # early in a month
    datetime(2027, 1, 1, 0, 0, tzinfo=UTC),  # New Year's Day, midnight
    datetime(2028, 2, 29, 23, 59, tzinfo=UTC),  # leap day, last minute
    datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
]


@pytest.mark.parametrize("now", MOMENTS, ids=[m.strftime("%Y-%m-%dT%H%M") for m in MOMENTS])
def test_a_realistic_member_stays_compact(redis_client: object, now: datetime) -> None:
    fp = measure(redis_client, now=now)  # type: ignore[arg-type]
    # a year of activity: 4 scalars, 12 months, 30 offers (56 counters in one field per offer)
    assert fp.state_fields == 46
    assert fp.state_encoding == "listpack"  # compact: below hash-max-listpack-entries (128)
    assert fp.cache_bytes < 100 * 4 + 400  # 100 offers at 3 bytes (log-scale codes) plus key overhead
    assert fp.total < 4096, fp


def test_a_light_member_spans_three_months(redis_client: object) -> None:
    for now in MOMENTS:
        fp = measure(redis_client, profile="light", now=now)  # type: ignore[arg-type]
        assert fp.state_fields == 4 + 3 + 5, (now, fp)  # scalars, 3 spend months, 5 offers
