"""One instant in the four forms the code needs, computed once per decision.

A decision happens at one moment, but its steps read time differently:

* ``utc`` - aware UTC datetime: what the API answers (``as_of``) and events carry;
* ``local`` - naive program-local :class:`pandas.Timestamp`: the decision core's ``as_of``
  (validity windows, tiers, birthdays, "this month" are local notions);
* ``epoch`` - UTC epoch seconds: the stores' clock (reservations, coupon expiry, TTLs);
* ``local_seconds`` - local time as int64 seconds: history records and features.

:meth:`Moment.at` derives all four from one aware datetime, so no step converts on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd


@dataclass(frozen=True)
class Moment:
    """An instant as UTC, program-local, epoch seconds and local seconds (module docstring)."""

    utc: datetime
    local: pd.Timestamp
    epoch: int
    local_seconds: int

    @classmethod
    def at(cls, when: datetime | pd.Timestamp, zone: ZoneInfo) -> Moment:
        """The moment ``when`` (aware; naive values are taken as UTC) in a program of ``zone``."""
        ts = pd.Timestamp(when)
        if ts.tzinfo is None:
            ts = ts.tz_localize(UTC)
        local = ts.tz_convert(zone).tz_localize(None)
        utc = when if isinstance(when, datetime) and when.tzinfo is not None else ts.to_pydatetime()
        return cls(utc=utc, local=local, epoch=int(ts.timestamp()), local_seconds=local_seconds(local))


def local_seconds(local: pd.Timestamp) -> int:
    """Naive local time as the int64 seconds history records and features use (floored)."""
    return int(pd.Timestamp(local).as_unit("ns").value // 1_000_000_000)
