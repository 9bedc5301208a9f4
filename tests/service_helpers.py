"""Helpers shared by the service tests: settings, apps, stores and server processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from offers_cli.demo import stop_server
from runtime.settings import Settings, settings_for
from runtime.stores.cluster import connect_cluster
from runtime.stores.keys import KeySpace
from runtime.stores.memory import MemoryStore
from runtime.stores.redis_store import RedisStore, connect

ROOT = Path(__file__).resolve().parents[1]

EVENTS_KEY = "events-key-0123456789"
DECISIONS_KEY = "decisions-key-0123456789"
ADMIN_KEY = "admin-key-0123456789abc"
ALL_KEYS = f"{EVENTS_KEY}:events;{DECISIONS_KEY}:decisions;{ADMIN_KEY}:admin"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test app: embedded stores, a private event log, no environment."""
    values: dict[str, Any] = {"event_log": tmp_path / "events", "redis_url": None,
                              "redis_prefix": "t" + uuid.uuid4().hex[:8]}
    values.update(overrides)
    return settings_for(**values)


class RecordingObserver:
    """A StoreObserver that counts what it is told."""

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()
        self.hits = 0
        self.misses = 0

    def store_error(self, operation: str) -> None:
        self.errors[operation] += 1

    def cache_lookup(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1


def make_store(kind: str, redis_url: str | None = None, **kwargs: Any) -> MemoryStore | RedisStore:
    """A store of ``kind`` with a unique key prefix (so tests never see each other's keys)."""
    keys = KeySpace("t" + uuid.uuid4().hex[:8], cluster=kind == "cluster")
    if kind == "memory":
        return MemoryStore(keys=keys, **kwargs)
    assert redis_url is not None
    if kind == "cluster":
        return RedisStore(connect_cluster(redis_url, timeout_ms=2000, connect_timeout_ms=2000, max_connections=128),
                          keys=keys, **kwargs)
    return RedisStore(connect(redis_url, timeout_ms=2000, connect_timeout_ms=2000, max_connections=128),
                      keys=keys, **kwargs)


def all_store_keys(store: MemoryStore | RedisStore) -> dict[str, float | None]:
    """Every key the store holds under its prefix -> seconds to live (None: no TTL)."""
    if isinstance(store, MemoryStore):
        return {k: store.ttl(k) for k in store.keys_alive()}
    out: dict[str, float | None] = {}
    for key in store.client.scan_iter(match=store.keys.pattern(), count=1000):
        ttl = store.client.ttl(key)
        out[key.decode()] = None if ttl < 0 else float(ttl)
    return out


# -- real server processes ------------------------------------------------------
def service_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a server subprocess: no OFFERS_*/REDIS_URL from the shell."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OFFERS_") and k not in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")}
    env.update({"OFFERS_EVENT_LOG": str(tmp_path / "events"), "PYTHONUNBUFFERED": "1",
                "OFFERS_REDIS_PREFIX": "t" + uuid.uuid4().hex[:8]})
    env.update(extra)
    return env


def start_process(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a server in its own process group with output to ``log_path``."""
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_until_healthy(base_url: str, proc: subprocess.Popen[bytes], log_path: Path,
                       deadline_seconds: float = 60) -> None:
    """Poll /healthz until it answers 200; fail with the server's output if it dies."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(base_url + "/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server did not become healthy:\n{log_path.read_text()}")


def stop_process(proc: subprocess.Popen[bytes]) -> int:
    """Stop the server the way ``offers demo`` does (SIGTERM, SIGKILL if it hangs); its exit code."""
    stop_server(proc)
    return proc.returncode


def gunicorn_args(port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", "service/gunicorn_conf.py",
            "--bind", f"127.0.0.1:{port}", "service.wsgi:app"]
