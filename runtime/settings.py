"""Typed service settings read from ``OFFERS_*`` environment variables.

Every setting is one environment variable, validated when the app starts; a bad value
fails start-up with :class:`SettingsError`, whose message names the variable
(``OFFERS_MAX_BODY_BYTES: Input should be a valid integer (got 'lots')``). Nothing is
read at import time: :func:`load_settings` reads the environment when it is called.

Variables (defaults in brackets)
--------------------------------
OFFERS_REGISTRY            model registry directory [unset]; must be a directory when set
OFFERS_DATA                data directory [unset]; must be a directory when set
OFFERS_PROGRAM             program config file [unset: a one-tier default]; must be a file when set
OFFERS_CLOCK               decision time: ``wall``, ``data`` (just after the latest transaction in
                           OFFERS_DATA) or an ISO 8601 timestamp [wall]
OFFERS_REDIS_URL, REDIS_URL
                           Redis URL [unset: embedded in-process stores, one per worker];
                           ``redis+cluster://HOST:PORT`` (any node) for a Redis Cluster
OFFERS_REDIS_CLUSTER       ``true``: the Redis URL names a node of a Redis Cluster [false]
OFFERS_REDIS_PREFIX        prefix of every Redis key [ofr]
OFFERS_REDIS_TIMEOUT_MS    socket read/write timeout [100]
OFFERS_REDIS_CONNECT_TIMEOUT_MS  connect timeout [100]
OFFERS_REDIS_MAX_CONNECTIONS     pool size per worker [16]
OFFERS_API_KEYS            ``key:scope,scope;key:scope`` (see :mod:`service.auth`) [unset]
OFFERS_CONSOLE_SECRET      key signing the operator console's session cookies (at least 32 characters)
                           [unset: a random one per process, so console sessions end at a restart
                           and each gunicorn worker knows only its own; set one shared value when
                           running several workers]
OFFERS_CONSOLE_SESSION_SECONDS   lifetime of a console session [28800, 8 hours]
OFFERS_MAX_BODY_BYTES      largest request body accepted [1048576]
OFFERS_MAX_EVENTS_PER_REQUEST    largest event batch [1000]
OFFERS_CACHE_TTL_SECONDS   lifetime of cached propensity vectors [3600]
OFFERS_STATE_TTL_SECONDS   lifetime of a member's online state after its last write [34560000, 400 days]
OFFERS_EVENT_DEDUP_TTL_SECONDS   how long an event_id is remembered [604800, 7 days]
OFFERS_IDEMPOTENCY_TTL_SECONDS   how long an Idempotency-Key is remembered, 24-72 h [172800]
OFFERS_BUDGET_TTL_SECONDS  default lifetime of a budget counter [34560000]
OFFERS_EVENT_LOG           directory of the durable event log [$XDG_STATE_HOME/offers/events]
OFFERS_EVENT_LOG_MAX_BYTES segment size before rotation [67108864]
OFFERS_EVENT_LOG_FSYNC     ``request`` (fsync before answering) or ``none`` [request]
OFFERS_DECISION_LOG_FSYNC  ``interval`` (fsync by a background thread), ``request``, ``none`` or ``off`` [interval]
OFFERS_DECISION_LOG_FSYNC_MS  the longest time a logged decision waits for its fsync (``interval``) [1000]
OFFERS_CATALOG_DIR         the live catalog's change log (admin offer edits), shared by every worker and
                           host [$OFFERS_EVENT_LOG/catalog]
OFFERS_TIMEZONE            IANA zone deciding calendar months of spend counters [UTC]
OFFERS_CURRENCY_EXPONENT   minor-unit digits of the currency, for event ``value`` [2]
OFFERS_LOG_LEVEL           DEBUG, INFO, WARNING or ERROR [INFO]
OFFERS_BIND                gunicorn bind address [127.0.0.1:8000]
OFFERS_WORKERS             gunicorn workers [unset: cores + 1, at most 8]
OFFERS_WORKER_TIMEOUT      seconds a request (a streamed batch included) may run before gunicorn
                           restarts its worker [120]
OFFERS_COMPILE_MODEL       score with the model's trees compiled by lleaves, once they reproduce
                           LightGBM on a probe; ``false`` keeps Booster.predict [true]
OFFERS_MODEL_CACHE_DIR     where compiled trees are cached [$XDG_CACHE_HOME/loyalty-offers/compiled]
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from redis.connection import parse_url

from models.compiled import default_cache_dir
from models.timerange import OutOfRange, check_moment
from runtime.apikeys import ApiKey, parse_api_keys
from runtime.errors import OffersRuntimeError
from runtime.stores.cluster import CLUSTER_SCHEMES, is_cluster_url, node_url

ENV_PREFIX = "OFFERS_"
#: Settings read from a variable other than ``OFFERS_<FIELD>``, first match wins.
ALIASES: dict[str, tuple[str, ...]] = {"redis_url": ("OFFERS_REDIS_URL", "REDIS_URL")}
#: Settings whose values may hold secrets: errors never repeat them.
SECRET_FIELDS = frozenset({"redis_url", "api_keys", "console_secret"})


class SettingsError(OffersRuntimeError, ValueError):
    """A setting has a bad value; the message names the environment variable."""


CLOCK_MODES = ("wall", "data")


def check_clock_spec(spec: str) -> str:
    """Normalise an ``OFFERS_CLOCK`` value: ``wall``, ``data`` or an ISO 8601 timestamp."""
    text = spec.strip()
    if text.lower() in CLOCK_MODES:
        return text.lower()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be 'wall', 'data' or an ISO 8601 timestamp such as "
                         "2017-10-30T09:00:00-05:00") from None
    # a local time is checked as UTC here; the clock checks it again once its zone is known
    try:
        check_moment(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))
    except OutOfRange as exc:
        raise ValueError(str(exc)) from None
    return text


def _default_event_log() -> Path:
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "offers" / "events"


def env_names(field: str) -> tuple[str, ...]:
    """The environment variables a settings field is read from, in priority order."""
    return ALIASES.get(field, (ENV_PREFIX + field.upper(),))


#: Most gunicorn workers started without ``OFFERS_WORKERS``.
MAX_DEFAULT_WORKERS = 8


def default_workers(cores: int | None = None) -> int:
    """Workers without ``OFFERS_WORKERS``: cores + 1, capped at :data:`MAX_DEFAULT_WORKERS`.

    Scoring is CPU-bound: one worker per core keeps the cores busy and the spare one covers a
    worker waiting on Redis (gunicorn's 2 x cores + 1 is for I/O-bound apps).
    """
    cores = cores or os.cpu_count() or 1
    return min(cores + 1, MAX_DEFAULT_WORKERS)


class Settings(BaseSettings):
    """Everything the service reads from its environment, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True,
                                      validate_by_name=True, validate_by_alias=True)

    registry: Path | None = None
    data: Path | None = None
    program: Path | None = None
    clock: str = "wall"

    redis_url: str | None = Field(default=None, validation_alias=AliasChoices(*ALIASES["redis_url"]))
    redis_prefix: str = Field(default="ofr", pattern=r"^[a-z][a-z0-9_]{0,15}$")
    redis_timeout_ms: int = Field(default=100, ge=1, le=10_000)
    redis_connect_timeout_ms: int = Field(default=100, ge=1, le=10_000)
    redis_max_connections: int = Field(default=16, ge=1, le=1024)
    #: the URL names a Redis Cluster node (also implied by a ``redis+cluster://`` URL)
    redis_cluster: bool = False

    api_keys: Annotated[tuple[ApiKey, ...], NoDecode] = ()
    console_secret: SecretStr | None = Field(default=None, min_length=32)
    console_session_seconds: int = Field(default=8 * 3600, ge=60, le=7 * 86400)

    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20)
    max_events_per_request: int = Field(default=1000, ge=1, le=100_000)
    cache_ttl_seconds: int = Field(default=3600, ge=1)
    state_ttl_seconds: int = Field(default=400 * 86400, ge=60)
    event_dedup_ttl_seconds: int = Field(default=7 * 86400, ge=60)
    idempotency_ttl_seconds: int = Field(default=48 * 3600, ge=24 * 3600, le=72 * 3600)
    budget_ttl_seconds: int = Field(default=400 * 86400, ge=60)

    event_log: Path = Field(default_factory=_default_event_log)
    event_log_max_bytes: int = Field(default=64 << 20, ge=4096)
    event_log_fsync: Literal["request", "none"] = "request"
    #: the decision log's directory; None: the event log's (segments are named apart)
    decision_log: Path | None = None
    #: ``interval``: written before the answer, fsynced by a background thread at most
    #: ``decision_log_fsync_ms`` later (a group commit; a crash of the process loses nothing, a
    #: power cut at most the interval); ``request``: fsync before answering; ``none``: leave
    #: flushing to the OS; ``off``: no decision log
    decision_log_fsync: Literal["request", "interval", "none", "off"] = "interval"
    decision_log_fsync_ms: int = Field(default=1000, ge=1, le=60_000)
    #: the ``offers lift --json`` report the console's lift page shows; None: ``lift.json`` in
    #: the decision log's directory
    lift_report: Path | None = None
    #: the live catalog's change log directory (runtime.catalog); None: ``catalog`` in the event log's
    catalog_dir: Path | None = None

    timezone: str = "UTC"
    currency_exponent: int = Field(default=2, ge=0, le=4)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    bind: str = Field(default="127.0.0.1:8000", min_length=1)
    workers: int | None = Field(default=None, ge=1, le=256)
    worker_timeout: int = Field(default=120, ge=10, le=3600)
    compile_model: bool = True
    model_cache_dir: Path = Field(default_factory=default_cache_dir)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit values first, then the environment; no .env files or secret dirs.
        return (init_settings, env_settings)

    @property
    def catalog_directory(self) -> Path:
        """Where the live catalog's change log is: ``OFFERS_CATALOG_DIR``, else beside the event log."""
        return self.catalog_dir if self.catalog_dir is not None else self.event_log / "catalog"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        return parse_api_keys(value) if isinstance(value, str) else value

    @field_validator("registry", "data")
    @classmethod
    def _must_be_directory(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a directory" if value.exists() else f"{value} does not exist")
        return value

    @field_validator("program")
    @classmethod
    def _must_be_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file" if value.exists() else f"{value} does not exist")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("redis://", "rediss://", "unix://", *CLUSTER_SCHEMES)):
            raise ValueError("must start with redis://, rediss://, unix:// or redis+cluster://")
        try:
            parse_url(node_url(value))
        except ValueError as exc:
            raise ValueError(f"is not a valid Redis URL: {exc}") from None
        return value

    @model_validator(mode="after")
    def _cluster(self) -> Settings:
        """A cluster needs a TCP URL to a node and database 0 (a cluster has no other)."""
        if not self.redis_is_cluster:
            return self
        name = "OFFERS_REDIS_CLUSTER" if self.redis_cluster else "REDIS_URL"
        if self.redis_url is None:
            raise ValueError(f"{name}: needs REDIS_URL (a node of the cluster) to be set")
        if self.redis_url.startswith("unix://"):
            raise ValueError(f"{name}: a cluster is reached over TCP, not unix://")
        if int(parse_url(node_url(self.redis_url)).get("db") or 0) != 0:
            raise ValueError(f"{name}: a Redis Cluster has only database 0 (REDIS_URL names another)")
        return self

    @property
    def redis_is_cluster(self) -> bool:
        """True when the store is a Redis Cluster (``OFFERS_REDIS_CLUSTER`` or a ``redis+cluster://`` URL)."""
        return self.redis_cluster or (self.redis_url is not None and is_cluster_url(self.redis_url))

    @field_validator("clock")
    @classmethod
    def _clock(cls, value: str) -> str:
        return check_clock_spec(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone") from exc
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @property
    def zone(self) -> ZoneInfo:
        """The program's time zone as a ZoneInfo."""
        return ZoneInfo(self.timezone)

    def fixed_clock(self) -> datetime | None:
        """``OFFERS_CLOCK``'s moment (aware, UTC) when it is a timestamp, else None.

        A timestamp without an offset is local time in ``OFFERS_TIMEZONE``; once the catalog
        has loaded, the decision engine's clock (in the program's zone) takes over.
        """
        if self.clock in CLOCK_MODES:
            return None
        moment = datetime.fromisoformat(self.clock)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        return moment.astimezone(UTC)

    @property
    def embedded_stores(self) -> bool:
        """True when no Redis is configured: stores live in the worker's memory."""
        return self.redis_url is None


class _IsolatedSettings(Settings):
    """Settings built only from explicit values, never from the process environment."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _error_message(exc: ValidationError, present: Mapping[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        names = env_names(field) if field in Settings.model_fields else (field,)
        names = tuple(n for n in names if n in present) or names
        shown = err.get("input")
        got = (f" (got {shown!r})" if isinstance(shown, str | int | float)
               and field not in SECRET_FIELDS else "")
        message = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a check across settings: its message names the variables
            lines.append(message)
            continue
        lines.append(f"{' or '.join(names)}: {message}{got}")
    return "; ".join(lines)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings.

    Parameters
    ----------
    environ
        Variables to read instead of ``os.environ`` (tests pass a dict so the
        developer's shell cannot leak in). ``None`` reads the process environment.

    Raises
    ------
    SettingsError
        When a value is invalid; the message names the variable.
    """
    try:
        if environ is None:
            return Settings()
        values: dict[str, Any] = {}
        for field in Settings.model_fields:
            for name in env_names(field):
                if name in environ:
                    values[field] = environ[name]
                    break
        return _IsolatedSettings(**values)
    except ValidationError as exc:
        raise SettingsError(_error_message(exc, os.environ if environ is None else environ)) from None


def settings_for(**values: Any) -> Settings:
    """Settings from explicit field values only (no environment); for tests and notebooks.

    Raises
    ------
    SettingsError
        When a value is invalid.
    """
    try:
        return _IsolatedSettings(**values)
    except ValidationError as exc:
        raise SettingsError(_error_message(exc, {})) from None


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``OFFERS_*`` variables that match no setting (likely typos), for a start-up warning."""
    env = os.environ if environ is None else environ
    known = {n for f in Settings.model_fields for n in env_names(f)}
    # Variables other parts of the project read (tests, benchmarks) are not typos.
    known |= {"OFFERS_TEST_REDIS_URL"}
    return sorted(n for n in env if n.startswith(ENV_PREFIX) and n not in known)
