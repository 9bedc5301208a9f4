"""The durable event log: append-only NDJSON segments that training reads later.

Layout: ``OFFERS_EVENT_LOG`` is a directory of segments named
``events-<YYYYMMDD>-<host>-<pid>-<seq>.ndjson``. Each process writes its own segments,
so gunicorn workers never interleave or race on rotation. A segment is closed and a new
one started when it would pass ``OFFERS_EVENT_LOG_MAX_BYTES`` or when the UTC day
changes.

Durability: a request's accepted events are written with one ``write`` on an
``O_APPEND`` descriptor; with ``OFFERS_EVENT_LOG_FSYNC=request`` (the default) the file
is fsynced before the service answers, so a 200 means the events are on disk (a new
segment's directory entry is fsynced too). ``none`` leaves flushing to the OS (faster,
loses the last seconds on a power cut). The log is at-least-once: a retried request can
append an event again, so readers de-duplicate by ``event_id`` (docs/events.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from runtime.errors import OffersRuntimeError

FORMAT_VERSION = 1
_SAFE_HOST = str.maketrans({c: "_" for c in "/\\-: "})


class EventLogError(OffersRuntimeError, OSError):
    """The event log cannot be written (disk full, permissions...)."""


class EventLog:
    """Appends records to this process's current segment; thread-safe.

    ``kind`` names the segments (``<kind>-<day>-<host>-<pid>-<seq>.ndjson``): ``events`` for
    feedback events, ``decisions`` for the decision log (:mod:`runtime.decisions.decision_log`),
    so both can share one directory and readers pick their kind by name.
    """

    def __init__(self, directory: Path, max_bytes: int = 64 << 20,
                 fsync: Literal["request", "none"] = "request",
                 clock: Callable[[], float] = time.time, kind: str = "events"):
        self.kind = kind
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._clock = clock
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._day = ""
        self._pid = 0
        self._host = socket.gethostname().translate(_SAFE_HOST)[:32] or "host"

    def check_writable(self) -> None:
        """Create the directory and prove it writable; raise EventLogError otherwise."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise EventLogError(f"the {self.kind} log directory {self.directory} is not writable: {exc}") from exc

    @property
    def current_path(self) -> Path | None:
        return self._path

    def segments(self) -> list[Path]:
        """Every segment in the directory, oldest name first."""
        return sorted(self.directory.glob(f"{self.kind}-*.ndjson"))

    def append(self, records: Sequence[Mapping[str, Any]], sync: bool = True) -> None:
        """Write ``records`` as JSON lines, then fsync per the policy (``sync=False``: leave this
        write's flushing to the OS, for records that can be rebuilt); EventLogError on failure."""
        if not records:
            return
        data = "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n"
                       for r in records).encode("utf-8")
        with self._lock:
            try:
                fd = self._segment_for(len(data))
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                self._size += len(data)
                if self.fsync == "request" and sync:
                    os.fsync(fd)
            except OSError as exc:
                self._close_locked()
                raise EventLogError(f"could not append to the {self.kind} log: {exc}") from exc

    def _segment_for(self, incoming: int) -> int:
        day = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y%m%d")
        pid = os.getpid()
        if (self._fd is not None and pid == self._pid and day == self._day
                and (self._size == 0 or self._size + incoming <= self.max_bytes)):
            return self._fd
        if pid == self._pid:
            self._close_locked()
        else:  # forked: the descriptor belongs to the parent's segment
            self._fd = None
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = f"{self.kind}-{day}-{self._host}-{pid}-"
        taken = [int(p.stem.rsplit("-", 1)[1]) for p in self.directory.glob(stem + "*.ndjson")
                 if p.stem.rsplit("-", 1)[1].isdigit()]
        path = self.directory / f"{stem}{max(taken, default=0) + 1:04d}.ndjson"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._path, self._size, self._day, self._pid = path, os.fstat(self._fd).st_size, day, pid
        if self.fsync == "request":
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return self._fd

    def _close_locked(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    def close(self) -> None:
        with self._lock:
            self._close_locked()


def read_segments(directory: Path, kind: str = "events", key: str = "event_id") -> list[dict[str, Any]]:
    """Every record of ``kind`` in a log directory, oldest segment first, duplicates (by ``key``) dropped.

    A small reference reader for tests and notebooks. Training must read the documented
    format with its own code: the training package never imports the service.
    """
    seen: set[str] = set()
    out = []
    for path in sorted(Path(directory).glob(f"{kind}-*.ndjson")):
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                record = json.loads(line)
                if record[key] not in seen:
                    seen.add(record[key])
                    out.append(record)
    return out
