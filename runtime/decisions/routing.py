"""Champion/challenger: which model decides for which member.

A share of members is routed to the registry's ``challenger`` model; the rest get the
``champion``. A member's route is a deterministic hash (:func:`models.policy.challenger_draw`
of the program's ``decisions.challenger.salt`` and the member id), so it is the same in every
worker and after restarts, and a member never flips between models while the share stands.

The share is the program's ``decisions.challenger.share`` unless the registry sets one
(``offers models route --challenger-share S``, :meth:`models.registry.Registry.route`). Each
worker checks the registry's ``aliases.json`` at most once a second (one ``stat``; parsed only
when it changed), so a new share, like a promotion, reaches every worker without a restart.

While the challenger cannot be served (no alias, a rejected artifact, still loading) or is the
champion's own version, every member gets the champion. Each decision carries its model
version, so the decision log, ``offers_decisions_total{model_version}`` and ``offers lift``
(per model version) compare the two.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from models.policy import challenger_draw
from models.registry import Registry, RegistryError
from runtime.decisions.model_holder import CHECK_INTERVAL, ModelHolder, ServingModel

log = logging.getLogger(__name__)


class ModelRouter:
    """The champion and challenger holders of one worker, and the challenger's share of members."""

    def __init__(self, champion: ModelHolder, challenger: ModelHolder, default_share: float, salt: str,
                 check_interval: float = CHECK_INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.champion = champion
        self.challenger = challenger
        self.default_share = default_share
        self.salt = salt
        self.check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last_check = float("-inf")
        self._signature: tuple[int, int, int] | None = None
        self._override: float | None = None

    # -- the share -----------------------------------------------------------------------------
    def share(self) -> float:
        """The challenger's share of members now: the registry's override, else the program's."""
        self._poll()
        return self.default_share if self._override is None else self._override

    def share_source(self) -> str:
        """Where :meth:`share` comes from: ``registry`` (offers models route) or ``program``."""
        self._poll()
        return "program" if self._override is None else "registry"

    def _poll(self) -> None:
        now = self._clock()
        with self._lock:
            if now - self._last_check < self.check_interval:
                return
            self._last_check = now
        path = Path(self.champion.registry_path) / "aliases.json"
        try:
            stat = os.stat(path)
            signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if signature == self._signature:
                return
            override = Registry(self.champion.registry_path).challenger_share()
        except (OSError, RegistryError) as exc:
            log.warning("the challenger share cannot be read from %s: %s", path, exc)
            return
        if override != self._override:
            log.info("challenger share %s (registry), program default %s", override, self.default_share,
                     extra={"pid": os.getpid()})
        self._signature, self._override = signature, override

    # -- routing --------------------------------------------------------------------------------
    def current(self) -> ServingModel | None:
        """The champion (what serves a member outside the challenger's share)."""
        return self.champion.current()

    def challenger_serving(self) -> ServingModel | None:
        """The challenger model this worker would route to now, or None when it routes none."""
        champion = self.champion.serving
        challenger = self.challenger.current()
        if challenger is None or (champion is not None and challenger.version == champion.version):
            return None
        return challenger

    def for_members(self, member_ids: Sequence[str]) -> list[ServingModel | None]:
        """Each member's model: the challenger for members whose draw falls below the share."""
        champion = self.champion.current()
        share = self.share()
        challenger = self.challenger_serving() if share > 0 and champion is not None else None
        if challenger is None:
            return [champion] * len(member_ids)
        return [challenger if challenger_draw(m, self.salt) < share else champion for m in member_ids]
