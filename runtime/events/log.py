"""The durable event log: append-only NDJSON segments that training reads later.

Layout: ``OFFERS_EVENT_LOG`` is a directory of segments named
``events-<YYYYMMDD>-<host>-<pid>-<seq>.ndjson``. Each process writes its own segments,
so gunicorn workers never interleave or race on rotation. A segment is closed and a new
one started when it would pass ``OFFERS_EVENT_LOG_MAX_BYTES`` or when the UTC day
changes.

Durability: a request's accepted events are written with one ``write`` on an
``O_APPEND`` descriptor; with ``OFFERS_EVENT_LOG_FSYNC=request`` (the default) the file
is fsynced before the service answers, so a 200 means the events are on disk (a new
segment's directory entry is fsynced too). ``interval`` is a group commit: the write still
happens before the answer (so a crash of the process loses nothing: the data is in the
kernel's page cache), and a background thread of the writing process fsyncs the segment at
most ``interval`` seconds later (a new segment's directory entry when it is created), so the
request never waits for the disk and a power cut loses at most that interval. The decision log uses it by default (its lines are written
after the decision is committed and never fail it). ``none`` leaves flushing to the OS
(loses the last seconds on a power cut). The log is at-least-once: a retried request can
append an event again, so readers de-duplicate by ``event_id`` (docs/events.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from runtime.errors import OffersRuntimeError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_LINE_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
#: how a log makes its appends durable (module docstring)
FsyncPolicy = Literal["request", "interval", "none"]
_SAFE_HOST = str.maketrans({c: "_" for c in "/\\-: "})


def json_line(record: Mapping[str, Any]) -> bytes:
    """One record as a compact UTF-8 JSON line. orjson writes it (a 100-candidate decision line
    in about 4 us instead of 48 with the standard library); a value orjson refuses (an integer
    beyond 64 bits, an unknown type) falls back to the standard encoder, so nothing that could
    be logged before fails now."""
    try:
        return orjson.dumps(record, option=_LINE_OPTIONS)
    except orjson.JSONEncodeError:
        return (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


class EventLogError(OffersRuntimeError, OSError):
    """The event log cannot be written (disk full, permissions...)."""


class EventLog:
    """Appends records to this process's current segment; thread-safe.

    ``kind`` names the segments (``<kind>-<day>-<host>-<pid>-<seq>.ndjson``): ``events`` for
    feedback events, ``decisions`` for the decision log (:mod:`runtime.decisions.decision_log`),
    so both can share one directory and readers pick their kind by name.
    """

    def __init__(self, directory: Path, max_bytes: int = 64 << 20,
                 fsync: FsyncPolicy = "request",
                 clock: Callable[[], float] = time.time, kind: str = "events", interval: float = 1.0):
        if interval <= 0:
            raise ValueError(f"the fsync interval must be positive, not {interval}")
        self.kind = kind
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._day = ""
        self._pid = 0
        self._host = socket.gethostname().translate(_SAFE_HOST)[:32] or "host"
        self._dirty = False  # written since the last fsync ("interval")
        self._flusher: threading.Thread | None = None
        self._flusher_pid = 0
        self._stop = threading.Event()

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
        data = b"".join(map(json_line, records))
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
                elif self.fsync == "interval":
                    self._dirty = True
                    self._start_flusher_locked()
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
        if self.fsync != "none":  # the new segment's name survives a power cut too
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return self._fd

    def _start_flusher_locked(self) -> None:
        """Start this process's fsync thread if it is not running (threads do not survive a
        fork, so a forked worker starts its own on its first append)."""
        pid = os.getpid()
        if (self._flusher is not None and self._flusher_pid == pid and self._flusher.is_alive()
                and not self._stop.is_set()):  # a thread told to stop by close() syncs nothing more
            return
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_every, args=(self._stop,),
                                         name=f"{self.kind}-log-fsync", daemon=True)
        self._flusher_pid = pid
        self._flusher.start()

    def _flush_every(self, stop: threading.Event) -> None:
        """fsync every ``interval`` while appends keep coming; end after an idle round (the next
        append starts a new thread), so an idle log holds no thread."""
        while not stop.wait(self.interval):
            with self._lock:
                if not self._dirty:
                    if self._flusher is threading.current_thread():
                        self._flusher = None
                    return
            self.flush()

    def flush(self) -> None:
        """fsync what was written since the last fsync. The disk wait happens on a duplicate
        descriptor outside the lock, so appends go on meanwhile; a failure is logged (no request
        is waiting for it) and the data is fsynced again on the next round."""
        with self._lock:
            if not self._dirty or self._fd is None or self._pid != os.getpid():
                return
            try:
                fd = os.dup(self._fd)
            except OSError as exc:
                log.error("could not fsync the %s log %s: %s", self.kind, self._path, exc)
                return
            self._dirty = False
        try:
            os.fsync(fd)
        except OSError as exc:
            self._dirty = True
            log.error("could not fsync the %s log %s: %s", self.kind, self._path, exc)
        finally:
            os.close(fd)

    def _close_locked(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                if self._dirty and self._pid == os.getpid():
                    os.fsync(self._fd)  # a rotated or closed segment leaves nothing unsynced
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        self._dirty = False

    def close(self) -> None:
        """fsync anything still unsynced, close the segment and stop the fsync thread."""
        self._stop.set()
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
