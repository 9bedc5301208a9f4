"""What a member costs in Redis (the figure docs/redis.md quotes), re-measured."""

from __future__ import annotations

import pytest

from service.stores.footprint import measure

pytestmark = pytest.mark.redis


def test_a_realistic_member_stays_compact(redis_client: object) -> None:
    fp = measure(redis_client)  # type: ignore[arg-type]
    # a year of activity: 4 scalars, 12 months, 30 offers (56 counters in one field per offer)
    assert fp.state_fields == 46
    assert fp.state_encoding == "listpack"  # compact: below hash-max-listpack-entries (128)
    assert fp.cache_bytes < 100 * 4 + 400  # 100 offers at 3 bytes (log-scale codes) plus key overhead
    assert fp.total < 4096, fp
