"""The one supported time range: every timestamp the product accepts lies inside it.

From 1970-01-01T00:00:00Z (inclusive) to 2200-01-01T00:00:00Z (exclusive). Every
component holds it: pandas' nanosecond timestamps (1677-2262), the online store's
non-negative integer epoch seconds, the data contract's local times in any zone (a day
of margin on both sides of pandas' limits) and Python's ``datetime`` after any offset
(year 1 with +14:00 would underflow). The API refuses anything outside it with a 422
naming the field, the CLI with a message and a non-zero exit, and ``offers data events``
reports a log line outside it with its file and line number.
"""

from __future__ import annotations

from datetime import UTC, datetime

from models.errors import CoreError

#: First supported moment (inclusive).
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
#: End of the supported range (exclusive).
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)
#: The range in words, for error messages and documentation.
DESCRIPTION = "between 1970-01-01T00:00:00Z (inclusive) and 2200-01-01T00:00:00Z (exclusive)"
#: JSON Schema ``pattern`` for the year of an RFC 3339 text in the range (1970-2199).
YEAR_PATTERN = r"^(19[7-9][0-9]|2[01][0-9]{2})-"


class OutOfRange(CoreError, ValueError):
    """A timestamp outside the supported range (the message says which range)."""


def check_moment(moment: datetime) -> datetime:
    """Return ``moment`` when it is aware and inside the range; raise OutOfRange otherwise.

    Why: a moment outside it crashes pandas, the store's epoch seconds or the offset
    arithmetic somewhere downstream; refusing it at the edge keeps that from happening.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise OutOfRange("the timestamp needs a UTC offset")
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise OutOfRange(f"the timestamp must be {DESCRIPTION}") from None
    if not MIN_TIME <= utc < MAX_TIME:
        raise OutOfRange(f"the timestamp must be {DESCRIPTION}")
    return moment


def in_range(moment: datetime) -> bool:
    """True when :func:`check_moment` accepts ``moment``."""
    try:
        check_moment(moment)
    except OutOfRange:
        return False
    return True


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date or timestamp inside the range; naive values are read as UTC.

    For command-line options (``--train-end``, ``--as-of``): raises OutOfRange naming the
    problem, which the CLI turns into a message and a non-zero exit.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise OutOfRange(f"{text!r} is not an ISO 8601 date or timestamp such as 2017-08-01") from None
    return check_moment(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))
