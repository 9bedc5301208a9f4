"""The serving model of one worker: loaded after the fork, warmed, hot-swapped.

Every gunicorn worker builds its own app after forking (the config never preloads:
LightGBM/OpenMP is not fork-safe), so each worker owns one :class:`ModelHolder`.

Loading
    :meth:`ModelHolder.load` resolves the registry's ``champion`` alias, loads the
    artifact (:meth:`models.model.PropensityModel.load` refuses a corrupt or mismatched
    one with :class:`~models.model.ArtifactError`) and warms it by scoring a real feature
    matrix (the caller's ``warm`` function) before it is handed to requests, so no
    request pays for LightGBM's first call. Predictions are single-threaded.

Swapping
    The serving model is one reference; a swap replaces it after the new model is loaded
    and warm. Requests in flight keep the object they started with, so nothing is
    dropped. A bad artifact is refused and the old model keeps serving.

Converging across workers
    A reload request reaches one worker. Every worker therefore also checks the
    champion alias by itself, at most once per :attr:`check_interval` (1 s) and only
    when asked for the model (:meth:`ModelHolder.current`); the check is one ``stat`` of
    ``aliases.json`` (the file is only parsed when it changed). When the alias names
    another version, the worker loads and warms it in a background thread and swaps it
    in; until then it keeps serving the old one. A version that failed to load is not
    retried until the alias changes again or a reload is forced.

Last-known-good
    A worker that starts (or restarts) while the champion cannot be served does not go
    without a model: it serves the most recent earlier champion that it can prove
    loadable (the alias history, :meth:`models.registry.Registry.earlier`; every
    candidate goes through the same checks), logs it as an error and says so in
    :attr:`ServingModel.stands_in_for`, which the service exports as a metric and in
    ``/readyz``. When the alias names a good version again, it is swapped in as usual.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from models.model import ArtifactError, PropensityModel
from models.registry import Registry, RegistryError
from models.uplift import UpliftModel, load_serving_model
from runtime.errors import OffersRuntimeError

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0
#: Earlier champions tried, most recent first, when the champion cannot be served.
MAX_LAST_GOOD = 5


class ModelRejected(OffersRuntimeError):
    """The champion cannot be served (missing, corrupt, mismatched); the old model stays."""

    def __init__(self, version: str | None, reason: str):
        super().__init__(reason)
        self.version = version
        self.reason = reason


@dataclass(frozen=True)
class ServingModel:
    """A loaded, warmed model and when it started serving."""

    model: PropensityModel | UpliftModel
    version: str
    loaded_at: datetime
    load_ms: float
    #: The champion this version stands in for (last-known-good), None when it is the champion.
    stands_in_for: str | None = None


@dataclass(frozen=True)
class ReloadResult:
    """What a forced reload did: the serving model, the one before, and whether it changed."""

    serving: ServingModel
    previous: str | None
    changed: bool


class ModelHolder:
    """Holds, checks and swaps one worker's serving model (see the module docstring)."""

    def __init__(self, registry: Path, warm: Callable[[PropensityModel | UpliftModel], None],
                 on_swap: Callable[[ServingModel], None] | None = None,
                 on_reject: Callable[[str | None, str], None] | None = None,
                 check_interval: float = CHECK_INTERVAL, clock: Callable[[], float] = time.monotonic,
                 alias: str = "champion"):
        self.registry_path = Path(registry)
        #: the registry alias this holder follows: ``champion``, or ``challenger`` (which has no
        #: last-known-good: while it cannot be served, its members get the champion)
        self.alias = alias
        self.check_interval = check_interval
        self._warm = warm
        self._on_swap = on_swap
        self._on_reject = on_reject
        self._clock = clock
        self._serving: ServingModel | None = None
        self._load_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._last_check = float("-inf")
        self._signature: tuple[int, int, int] | None = None
        self._rejected: dict[str, str] = {}
        self._pending: str | None = None

    # -- reading -----------------------------------------------------------------------
    def current(self) -> ServingModel | None:
        """The serving model (None before the first load); checks the alias now and then."""
        self.poll()
        return self._serving

    @property
    def serving(self) -> ServingModel | None:
        """The serving model, without checking the registry."""
        return self._serving

    def registry(self) -> Registry:
        return Registry(self.registry_path)

    def champion(self) -> str:
        """The version this holder's alias (the champion, by default) names now; RegistryError when none."""
        return self.registry().resolve(self.alias)

    def for_members(self, member_ids: Sequence[str]) -> list[ServingModel | None]:
        """The serving model for each member: this holder's one model for all of them."""
        current = self.current()
        return [current] * len(member_ids)

    # -- loading ------------------------------------------------------------------------
    def _load(self, version: str) -> ServingModel:
        started = time.perf_counter()
        try:
            model = load_serving_model(self.registry().path(version))
            self._warm(model)
        except (ArtifactError, RegistryError, OSError, ValueError) as exc:
            self._rejected[version] = str(exc)
            if self._on_reject is not None:
                self._on_reject(version, str(exc))
            raise ModelRejected(version, str(exc)) from exc
        return ServingModel(model=model, version=model.version, loaded_at=datetime.now(UTC),
                            load_ms=(time.perf_counter() - started) * 1000)

    def _swap(self, new: ServingModel) -> None:
        old = self._serving
        self._serving = new
        self._rejected.pop(new.version, None)
        if new.stands_in_for is not None:
            log.error("serving LAST-KNOWN-GOOD model %s because the champion %s cannot be served: %s",
                      new.version, new.stands_in_for, self._rejected.get(new.stands_in_for, "no champion"),
                      extra={"model_version": new.version, "pid": os.getpid()})
        else:
            log.info("serving model %s (was %s), loaded and warmed in %.0f ms", new.version,
                     old.version if old else None, new.load_ms,
                     extra={"model_version": new.version, "pid": os.getpid()})
        if self._on_swap is not None:
            self._on_swap(new)

    def load(self) -> ReloadResult:
        """Load the champion now (forced: also retries a version that failed before).

        Raises
        ------
        ModelRejected
            When there is no champion or its artifact cannot be served; the model that
            was serving keeps serving.
        """
        with self._load_lock:
            previous = self._serving
            try:
                version = self.champion()
            except RegistryError as exc:
                if self._on_reject is not None:
                    self._on_reject(None, str(exc))
                raise ModelRejected(None, str(exc)) from exc
            if previous is not None and previous.version == version:
                return ReloadResult(previous, previous.version, False)
            try:
                new = self._load(version)
            except ModelRejected:
                if self._serving is None and self.alias == "champion":
                    self._fall_back(version)
                raise
            self._swap(new)
            return ReloadResult(new, previous.version if previous else None, True)

    def _fall_back(self, champion: str) -> ServingModel | None:
        """Serve the most recent earlier champion that loads, while ``champion`` cannot (see the module docstring).

        Called with the load lock held and nothing serving; None when no earlier version loads.
        """
        try:
            candidates = self.registry().earlier("champion")
        except RegistryError:
            return None
        for version in [v for v in candidates if v not in self._rejected][:MAX_LAST_GOOD]:
            try:
                loaded = self._load(version)
            except ModelRejected:
                continue
            new = ServingModel(model=loaded.model, version=loaded.version, loaded_at=loaded.loaded_at,
                               load_ms=loaded.load_ms, stands_in_for=champion)
            self._swap(new)
            return new
        log.error("the champion %s cannot be served and no earlier champion loads: no model to serve", champion)
        return None

    # -- converging -------------------------------------------------------------------------
    def poll(self) -> None:
        """At most once per interval: if the champion alias changed, swap in the background."""
        now = self._clock()
        with self._state_lock:
            if now - self._last_check < self.check_interval or self._pending is not None:
                return
            self._last_check = now
        try:
            stat = os.stat(self.registry_path / "aliases.json")
        except OSError:
            return
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        serving = self._serving
        if signature == self._signature and serving is not None:
            return
        try:
            version = self.champion()
        except RegistryError:
            return
        self._signature = signature
        if (serving is not None and serving.version == version) or version in self._rejected:
            return
        with self._state_lock:
            if self._pending is not None:
                return
            self._pending = version
        threading.Thread(target=self._background, args=(version,), name="offers-model-swap",
                         daemon=True).start()

    def _background(self, version: str) -> None:
        try:
            with self._load_lock:
                serving = self._serving
                if serving is not None and serving.version == version:
                    return
                try:
                    self._swap(self._load(version))
                except ModelRejected as exc:
                    log.error("%s %s cannot be served, keeping %s: %s", self.alias, version,
                              serving.version if serving else None, exc.reason)
                    if serving is None and self.alias == "champion":
                        self._fall_back(version)
        finally:
            with self._state_lock:
                self._pending = None

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until no background swap is running (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._state_lock:
                if self._pending is None:
                    return True
            time.sleep(0.01)
        return False


class FixedModel:
    """A model source that always serves one loaded model (``offers batch --version V``).

    The pipeline asks its model source for :meth:`current`; the service's
    :class:`ModelHolder` follows the registry's champion, an offline job pins one version.
    """

    def __init__(self, model: PropensityModel, clock: Callable[[], datetime] | None = None):
        now = clock() if clock is not None else datetime.now(UTC)
        self._serving = ServingModel(model=model, version=model.version, loaded_at=now, load_ms=0.0)

    def current(self) -> ServingModel:
        """The pinned model."""
        return self._serving

    def for_members(self, member_ids: Sequence[str]) -> list[ServingModel | None]:
        """The pinned model for every member."""
        return [self._serving] * len(member_ids)
