"""Histories written under an earlier catalog: read them through ids, upgrade them in the background.

A member's history records products and offers by their position in the catalog it was
written under (:mod:`models.features.online`), and the profile keeps that catalog's
fingerprint. When marketers add, change or retire offers, positions move but ids do not.
``offers materialize`` and every service at start-up store their catalog's ids under its
fingerprint (:func:`models.features.online.catalog_ids`), so a history under another
fingerprint is translated by id (:func:`models.features.online.remap`) instead of being
ignored: the member keeps their tier, features and caps.

The translated history is then written back under the current catalog by one background
thread (:meth:`CatalogUpgrader.schedule`), only if the stored history did not change in the
meantime (:meth:`Store.upgrade_member`), so events that arrive later append under the new
catalog. Only a history whose catalog ids are no longer stored (or unreadable) is truly
incompatible: it reads as ``stale`` until ``offers materialize`` runs.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

import numpy as np

from models.features import History
from models.features.online import catalog_ids, ids_from_catalog_ids, records_from_history, remap
from runtime.decisions.setup import DecisionSetup
from runtime.stores import MemberProfile, MemberWrite, Store, StoreError

log = logging.getLogger(__name__)

#: Upgrades waiting for the background thread; more are dropped (the next read schedules them again).
QUEUE_LIMIT = 10_000


class CatalogUpgrader:
    """Translates histories of earlier catalogs and rewrites them under the engine's, in the background."""

    def __init__(self, setup: DecisionSetup, store: Store):
        self.setup = setup
        self.store = store
        self._ids: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Callable[[], None]] = queue.Queue(QUEUE_LIMIT)
        self._pending: set[str] = set()
        self._thread: threading.Thread | None = None
        self.upgraded = 0

    def publish(self) -> None:
        """Store this catalog's ids under its fingerprint (start-up and materialize), renewing their TTL."""
        self.store.put_catalog(self.setup.fingerprint, catalog_ids(self.setup.features))

    def _old_ids(self, fingerprint: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The ids of an earlier catalog: read from the store once per worker, then remembered."""
        with self._lock:
            if fingerprint in self._ids:
                return self._ids[fingerprint]
        blob = self.store.get_catalog(fingerprint)  # may raise StoreUnavailable: the caller decides
        ids = None
        if blob is not None:
            try:
                ids = ids_from_catalog_ids(blob, fingerprint)
            except ValueError as exc:
                log.error("%s", exc)
        with self._lock:
            if ids is not None or blob is not None:
                self._ids[fingerprint] = ids
        return ids

    def translate(self, hist: History, profile: MemberProfile) -> History | None:
        """``hist`` (written under ``profile.fingerprint``) under the engine's catalog; None when
        that catalog's ids are unknown (a truly incompatible history)."""
        try:
            ids = self._old_ids(profile.fingerprint)
        except StoreError as exc:
            log.warning("catalog %s ids unavailable: %s", profile.fingerprint, exc)
            return None
        return None if ids is None else remap(hist, ids[0], ids[1], self.setup.features)

    def schedule(self, member_id: str, hist: History, profile: MemberProfile, history_length: int) -> None:
        """Rewrite a translated history under the engine's catalog, in the background thread."""
        with self._lock:
            if member_id in self._pending:
                return
            self._pending.add(member_id)
        write = MemberWrite(member_id, b"", MemberProfile(
            fingerprint=self.setup.fingerprint, joined_at=profile.joined_at, segment=profile.segment,
            birth_month=profile.birth_month, channels=profile.channels))

        def run() -> None:
            try:
                records = records_from_history(hist, 0)
                done = self.store.upgrade_member(MemberWrite(member_id, records, write.profile), history_length,
                                                 profile.fingerprint)
                if done:
                    self.upgraded += 1
            except StoreError as exc:
                log.warning("upgrading the history of %s to catalog %s failed: %s", member_id,
                            self.setup.fingerprint, exc)
            finally:
                with self._lock:
                    self._pending.discard(member_id)

        try:
            self._queue.put_nowait(run)
        except queue.Full:
            with self._lock:
                self._pending.discard(member_id)
            return
        self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="offers-catalog-upgrades", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            try:
                task()
            finally:
                self._queue.task_done()

    def drain(self) -> None:
        """Wait until every scheduled upgrade ran (tests, shutdown)."""
        self._queue.join()
