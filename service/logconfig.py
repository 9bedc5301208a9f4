"""Structured JSON logs: one object per line on stderr, with the request id.

Every record gets ``time, level, logger, message`` and ``request_id`` (null outside a
request); ``extra=`` fields are added as keys. One access line per request is logged by
:mod:`service.http` on the ``service.access`` logger. Configuring is idempotent, so tests
can build many apps.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from service.requestid import request_id

FORMAT = "%(levelname)s %(name)s %(message)s"
RENAME = {"levelname": "level", "name": "logger"}


class RequestIdFilter(logging.Filter):
    """Adds the current request id to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id()
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (pytest swaps it between tests)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def json_formatter() -> JsonFormatter:
    """JSON lines with an RFC 3339 UTC ``time`` first."""
    return JsonFormatter(FORMAT, rename_fields=RENAME, timestamp="time")


def configure_logging(level: str = "INFO") -> None:
    """Send the root logger's records to stderr as JSON lines, once per process."""
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(json_formatter())
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    root.setLevel(level)
