"""Each worker follows the change log by itself: a ``stat`` at most every half second, then a swap.

Like the model holder (:mod:`runtime.decisions.model_holder`), a change reaches one worker
(the one that answered the admin request, which applies it at once: :meth:`CatalogFollower.refresh`)
and every other worker notices it by itself. :meth:`CatalogFollower.poll` runs when a request
asks for the decider; at most once per :data:`CHECK_INTERVAL` it ``stat``s the log (inode, size,
mtime) and, when that changed, reads it and builds the new :class:`~runtime.catalog.live.LiveCatalog`
in the request's thread (a few milliseconds for thousands of offers), then hands it to
``on_change``, which swaps the worker's decision setup. So a request that arrives half a second
after a change is decided with it, without a restart, in every worker.

A log that cannot be read while serving (a corrupt line, a vanished mount) keeps the last good
catalog and logs an error each time it is found so; at start-up it stops the worker from
becoming ready instead (serving a paused offer because its pause was unreadable is worse).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from models.catalog import Catalog
from runtime.catalog.changelog import CatalogLog, CatalogLogError
from runtime.catalog.live import LiveCatalog, apply_changes

log = logging.getLogger(__name__)

#: Seconds between two checks of the change log by one worker.
CHECK_INTERVAL = 0.5


class CatalogFollower:
    """Holds one worker's live catalog and follows the change log (see the module docstring).

    Raises CatalogLogError from the constructor when the log cannot be read at start-up.
    """

    def __init__(self, changes: CatalogLog, base: Catalog,
                 on_change: Callable[[LiveCatalog], None] | None = None,
                 check_interval: float = CHECK_INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.changes = changes
        self.base = base
        self.on_change = on_change
        self.check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last_check = clock()
        self._signature = changes.signature()
        self.current: LiveCatalog = apply_changes(base, changes.read())

    def poll(self) -> LiveCatalog:
        """The live catalog, first re-read when the log changed (checked at most once per interval)."""
        now = self._clock()
        if now - self._last_check < self.check_interval:
            return self.current
        self._last_check = now
        try:
            signature = self.changes.signature()
        except CatalogLogError as exc:
            log.error("catalog change log unreadable, keeping version %d: %s", self.current.version, exc)
            return self.current
        if signature == self._signature:
            return self.current
        return self.refresh()

    def refresh(self) -> LiveCatalog:
        """Read the log now and swap in its catalog when its version changed (after a change here)."""
        with self._lock:
            try:
                signature = self.changes.signature()
                records = self.changes.read()
            except CatalogLogError as exc:
                log.error("catalog change log unreadable, keeping version %d: %s", self.current.version, exc)
                return self.current
            self._signature = signature
            version = records[-1].version if records else 0
            if version == self.current.version:
                return self.current
            live = apply_changes(self.base, records)
            self.current = live
            log.info("catalog version %d applied (%d offers, %d withheld)", live.version, len(live.catalog),
                     len(live.withheld))
            if self.on_change is not None:
                self.on_change(live)
            return live
