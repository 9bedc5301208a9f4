"""The project's sentinels and unit constants, defined once.

Arrays of times are int64 (seconds or nanoseconds); "no time" must be a value no real time
takes and that sorts before every real time, so "before as_of" tests stay plain
comparisons. Limits that never bind, and counters that make every cap count as reached,
need the same care: they must survive addition without overflowing int64.

* :data:`NO_TIME` - no time (a member who never joined, an event that never happened),
  in seconds or nanoseconds alike: int64's minimum, which is also NaT's int64 view.
* :data:`UNLIMITED` - a count or money limit that never binds (an offer without a budget).
  A quarter of int64's maximum, so limit + charge never overflows.
* :data:`ALL_USED` - budget usage that leaves nothing (a store that cannot be read
  counts as exhausted): an eighth of int64's maximum, so it exceeds any limit below
  :data:`UNLIMITED` and adding a charge never overflows.
* :data:`CAP_REACHED` - a cap counter that reaches every member cap (caps the store could
  not confirm count as reached).
* :data:`DAY_SECONDS`, :data:`DAY_NS` - one day.
"""

from __future__ import annotations

import numpy as np

NO_TIME: int = int(np.iinfo(np.int64).min)
UNLIMITED: int = int(np.iinfo(np.int64).max // 4)
ALL_USED: int = int(np.iinfo(np.int64).max // 8)
CAP_REACHED: int = 10**9
DAY_SECONDS: int = 86_400
DAY_NS: int = DAY_SECONDS * 10**9


def is_unlimited(limit: int | np.integer) -> bool:
    """Whether a stored limit is the "never binds" sentinel (or beyond it)."""
    return int(limit) >= UNLIMITED
