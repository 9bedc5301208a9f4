"""The service clock: the ``as_of`` of every decision (``OFFERS_CLOCK``).

Three modes:

``wall`` (default)
    The machine's clock: decisions are for now.
``data``
    Just after the latest transaction in ``OFFERS_DATA`` (so that transaction counts):
    a data set from the past is served as if it were today.
an ISO 8601 timestamp
    A fixed moment, e.g. ``2017-10-30T09:00:00-05:00`` (The Complete Journey's campaign
    18 starts on 30 Oct 2017). A timestamp without an offset is local time in the
    program's time zone, like the data contract's timestamps.

Whatever the mode, a request may pass ``context.as_of`` to replay a decision at another
moment; features and tier states only ever use events strictly before ``as_of``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd

from models.timerange import DESCRIPTION, in_range
from runtime.errors import OffersRuntimeError
from runtime.settings import check_clock_spec


class ClockError(OffersRuntimeError, ValueError):
    """``OFFERS_CLOCK`` is not wall, data or a timestamp, or ``data`` has no transactions."""


def _checked(spec: str) -> str:
    try:
        return check_clock_spec(spec)
    except ValueError as exc:
        raise ClockError(f"OFFERS_CLOCK {exc} (got {spec!r})") from None


def aware(value: str | pd.Timestamp | datetime, zone: ZoneInfo) -> datetime:
    """A timezone-aware UTC datetime; naive values are local time in ``zone``."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize(zone, ambiguous=True, nonexistent="shift_forward")
    return ts.tz_convert(UTC).to_pydatetime()


class ServiceClock:
    """Gives the decision time; see the module docstring for the modes."""

    def __init__(self, spec: str, zone: ZoneInfo, latest_transaction: datetime | None = None,
                 wall: Callable[[], float] = time.time):
        self.spec = _checked(spec)
        self._wall = wall
        self.fixed: datetime | None = None
        if self.spec == "data":
            if latest_transaction is None:
                raise ClockError("OFFERS_CLOCK=data needs transactions in OFFERS_DATA")
            self.fixed = pd.Timestamp(latest_transaction).to_pydatetime() + pd.Timedelta(seconds=1)
        elif self.spec != "wall":
            self.fixed = aware(self.spec, zone)
            if not in_range(self.fixed):
                raise ClockError(f"OFFERS_CLOCK must be {DESCRIPTION} (got {spec!r})")

    @property
    def mode(self) -> str:
        return "wall" if self.fixed is None else ("data" if self.spec == "data" else "fixed")

    def now(self) -> datetime:
        """The current decision time (timezone-aware, UTC)."""
        if self.fixed is not None:
            return self.fixed
        return datetime.fromtimestamp(self._wall(), UTC)

    def describe(self) -> str:
        return "wall clock" if self.fixed is None else f"{self.mode} clock at {self.fixed.isoformat()}"
