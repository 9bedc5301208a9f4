"""The live catalog's change log: one append-only NDJSON file, the durable record of every change.

Layout: ``OFFERS_CATALOG_DIR`` (default ``$OFFERS_EVENT_LOG/catalog``) holds ``changes.ndjson``,
one JSON object per line and per change, numbered 1, 2, 3... (``version``), and
``changes.lock``, the lock file writers take.

Why a file and not Redis: every Redis key has a TTL and Redis may lose its data (docs/redis.md);
a lost "pause" would issue an offer marketing stopped. Why one file for every writer (unlike the
event log's per-process segments): a change's version must be the next one after the change it
was checked against, so writers serialise on an exclusive ``flock`` of the lock file, read the
log, check (``If-Match``, validation), and append one line with one ``write`` on an ``O_APPEND``
descriptor, fsynced (and the directory too when the file is new) before the lock is released
and the API answers. A writer that died mid-line leaves a last line without its newline: readers
ignore it and the next writer cuts it off under the lock, so nothing half-written is ever read.

Readers (every worker) never lock: they ``stat`` the file (:meth:`CatalogLog.signature`) and
read it again when it changed. Changes are rare (people editing offers), so the file stays small
and is read whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from runtime.errors import OffersRuntimeError

LOG_NAME = "changes.ndjson"
LOCK_NAME = "changes.lock"
FORMAT_VERSION = 1


class CatalogLogError(OffersRuntimeError, OSError):
    """The change log cannot be read or written (permissions, disk full, a corrupt line)."""


@dataclass(frozen=True)
class ChangeRecord:
    """One change of one offer, as a line of the log.

    ``offer`` is the offer's whole definition after the change (program YAML keys), or None
    when the offer's definition is the data's (a status change of a data-catalog offer);
    ``status`` is ``active``, ``paused`` or ``retired``; ``change`` is what the request asked
    (its body), kept for the audit trail.
    """

    version: int
    at: str
    who: str
    op: str
    offer_id: str
    status: str
    offer: dict[str, Any] | None = None
    change: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as its JSON object (also the audit entry the API shows)."""
        return {"v": FORMAT_VERSION, "version": self.version, "at": self.at, "who": self.who, "op": self.op,
                "offer_id": self.offer_id, "status": self.status, "offer": self.offer, "change": self.change}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChangeRecord:
        """Parse one line's object; KeyError/TypeError/ValueError when it is not a change record."""
        offer = data["offer"]
        if offer is not None and not isinstance(offer, dict):
            raise ValueError("offer must be an object or null")
        return cls(version=int(data["version"]), at=str(data["at"]), who=str(data["who"]), op=str(data["op"]),
                   offer_id=str(data["offer_id"]), status=str(data["status"]), offer=offer,
                   change=dict(data.get("change") or {}))


def _json_default(value: object) -> object:
    """Request bodies carry fractions as Decimal (service.http); the log writes them as numbers."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


class CatalogLog:
    """Reads and appends the change log of one directory (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self.path = self.directory / LOG_NAME

    def check_writable(self) -> None:
        """Create the directory and prove it writable; CatalogLogError otherwise."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with (self.directory / LOCK_NAME).open("a"):
                pass
        except OSError as exc:
            raise CatalogLogError(f"the catalog directory {self.directory} is not writable: {exc}") from exc

    def signature(self) -> tuple[int, int, int] | None:
        """(inode, size, mtime ns) of the log, None when there is none yet: what readers poll."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CatalogLogError(f"the catalog change log {self.path} cannot be read: {exc}") from exc
        return st.st_ino, st.st_size, st.st_mtime_ns

    def read(self) -> list[ChangeRecord]:
        """Every complete change in version order; a torn last line (no newline) is left out.

        Raises CatalogLogError for an unreadable file or a complete line that is not a change
        record (a hand-edited file): serving a catalog with a change silently skipped is worse.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise CatalogLogError(f"the catalog change log {self.path} cannot be read: {exc}") from exc
        return _parse(raw, self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The writers' exclusive lock (released when the process dies, so never stale)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CatalogLogError(f"the catalog directory {self.directory} is not writable: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def append(self, build: Callable[[list[ChangeRecord], int], ChangeRecord]) -> ChangeRecord:
        """Append the change ``build(records, next_version)`` returns, under the writers' lock.

        ``build`` sees every change so far and the version the new one gets; it raises to refuse
        (validation, a stale ``If-Match``), and then nothing is written. The line is on disk
        (fsynced) when this returns.
        """
        with self._locked():
            try:
                raw = self.path.read_bytes() if self.path.exists() else b""
            except OSError as exc:
                raise CatalogLogError(f"the catalog change log {self.path} cannot be read: {exc}") from exc
            complete = raw[:raw.rfind(b"\n") + 1]
            records = _parse(complete, self.path)
            record = build(records, (records[-1].version if records else 0) + 1)
            line = json.dumps(record.to_dict(), separators=(",", ":"), sort_keys=True, default=_json_default)
            self._write(line.encode() + b"\n", torn=len(raw) - len(complete), new=not raw)
            return record

    def _write(self, data: bytes, torn: int, new: bool) -> None:
        """One O_APPEND write of a whole line, after cutting a torn tail; fsync file (and directory)."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if torn:
                    os.ftruncate(fd, os.fstat(fd).st_size - torn)
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(f"short write ({written} of {len(data)} bytes)")
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:
                dir_fd = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            raise CatalogLogError(f"the catalog change log {self.path} cannot be written: {exc}") from exc


def _parse(raw: bytes, path: Path) -> list[ChangeRecord]:
    """The complete lines of ``raw`` as change records (a last line without newline is ignored)."""
    out: list[ChangeRecord] = []
    lines = raw.split(b"\n")[:-1]  # the part after the last newline is torn (or empty)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = ChangeRecord.from_dict(json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise CatalogLogError(f"{path} line {number} is not a catalog change: {exc}") from None
        expected = (out[-1].version if out else 0) + 1
        if record.version != expected:
            raise CatalogLogError(f"{path} line {number} has version {record.version}, expected {expected}")
        out.append(record)
    return out
