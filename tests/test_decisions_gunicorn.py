"""Decisions from a real gunicorn with several workers, real Redis, real HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from models.policy import challenger_draw
from models.registry import Registry
from tests.conftest import RedisServer, free_port
from tests.decisions_env import CHANNEL, CLOCK, DecisionEnv, build
from tests.service_helpers import (
    ADMIN_KEY,
    ALL_KEYS,
    DECISIONS_KEY,
    ROOT,
    gunicorn_args,
    service_env,
    start_process,
    stop_process,
    wait_until_healthy,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis]
DECIDE = {"X-API-Key": DECISIONS_KEY}


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


def wait_ready(base: str, deadline_seconds: float = 120) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if requests.get(base + "/readyz", timeout=5).status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(requests.get(base + "/readyz", timeout=5).text)


@contextmanager
def serve(env: DecisionEnv, tmp_path: Path, redis_url: str, workers: int = 2, log_level: str = "WARNING",
          before_start: Callable[[], None] | None = None, registry: Path | None = None) -> Iterator[tuple[str, Any]]:
    """Materialize into Redis with the CLI, then run gunicorn on the same key prefix; yields the
    base URL and the servers' environment.

    ``before_start`` runs between the two (e.g. to make the champion a corrupt version);
    ``registry`` replaces the shared environment's registry for the servers.
    """
    port = free_port()
    environ = service_env(tmp_path, REDIS_URL=redis_url, OFFERS_API_KEYS=ALL_KEYS, OFFERS_WORKERS=str(workers),
                          OFFERS_DATA=str(env.data), OFFERS_REGISTRY=str(registry or env.registry),
                          OFFERS_PROGRAM=str(env.program), OFFERS_CLOCK=CLOCK, OFFERS_LOG_LEVEL=log_level)
    materialize_cli(env, environ)
    if before_start is not None:
        before_start()
    log = tmp_path / "gunicorn.log"
    proc = start_process(gunicorn_args(port), environ, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, proc, log)
        wait_ready(base)
        yield base, environ
    finally:
        stop_process(proc)


def materialize_cli(env: DecisionEnv, environ: dict[str, str]) -> None:
    """``offers materialize`` (the real CLI) into the Redis and key prefix of ``environ``."""
    subprocess.run([sys.executable, "-m", "offers_cli.main", "materialize", "--data", str(env.data),
                    "--registry", str(env.registry), "--program", str(env.program), "--channel", CHANNEL],
                   env=environ, cwd=ROOT, check=True, capture_output=True, timeout=300)


class Traffic:
    """Threads posting decisions until stopped, recording (status, model_version, degraded)."""

    def __init__(self, base: str, threads: int = 3):
        self.base = base
        self.seen: list[tuple[int, str | None, str | None]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, i: int) -> None:
        session = requests.Session()
        k = 0
        while not self.stop.is_set():
            member = f"M{(i * 300 + k) % 1000 + 1:08d}"
            try:
                resp = session.post(self.base + "/v1/decisions", json={"member_id": member, "channel": CHANNEL},
                                    headers=DECIDE, timeout=30)
                body = resp.json() if resp.headers.get("Content-Type", "").endswith("json") else {}
                row = (resp.status_code, body.get("model_version"), body.get("degraded"))
            except requests.RequestException as exc:
                row = (0, None, repr(exc))
            with self.lock:
                self.seen.append(row)
            k += 1

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def wait_for(self, predicate: Any, deadline_seconds: float = 120) -> None:
        deadline = time.monotonic() + deadline_seconds
        while not predicate(list(self.seen)):
            assert time.monotonic() < deadline, f"traffic never reached the expected state: {self.seen[-5:]}"
            time.sleep(0.05)


def test_a_reload_under_load_converges_every_worker(env: DecisionEnv, tmp_path: Path, redis_url: str) -> None:
    env.promote(env.v1)
    try:
        with serve(env, tmp_path, redis_url, workers=2) as (base, _), Traffic(base) as traffic:
            traffic.wait_for(lambda seen: len(seen) >= 30)
            env.promote(env.v2)
            reload = requests.post(base + "/v1/models/reload", headers={"X-API-Key": ADMIN_KEY}, timeout=60)
            assert reload.status_code == 200 and reload.json()["serving"]["version"] == env.v2
            mark = len(traffic.seen)
            # the other worker converges by itself: 60 decisions in a row from the new model
            traffic.wait_for(lambda seen, mark=mark: len(seen) > mark + 60
                             and all(v == env.v2 for _, v, _ in seen[-60:]))
            traffic.stop.set()
            # and each of the two workers says so itself
            serving: dict[int, str] = {}
            predictors: set[str] = set()
            deadline = time.monotonic() + 60
            while len(serving) < 2 and time.monotonic() < deadline:
                listed = requests.get(base + "/v1/models", headers=DECIDE, timeout=10).json()
                serving[listed["worker"]] = listed["serving"]["version"]
                predictors.add(listed["serving"]["predictor"])
            assert len(serving) == 2 and set(serving.values()) == {env.v2}
            assert predictors == {"lleaves"}, "both workers compiled the trees after the fork (one shared cache)"
        statuses = {s for s, _, _ in traffic.seen}
        assert statuses == {200}, [row for row in traffic.seen if row[0] != 200][:5]
        versions = [v for _, v, _ in traffic.seen]
        assert versions[0] == env.v1 and versions[-1] == env.v2
    finally:
        env.promote(env.v1)


def test_redis_restarting_under_gunicorn_fails_no_request(env: DecisionEnv, tmp_path: Path,
                                                          private_redis: RedisServer) -> None:
    env.promote(env.v1)
    with serve(env, tmp_path, private_redis.url, workers=2) as (base, environ):
        with Traffic(base) as traffic:
            traffic.wait_for(lambda seen: len(seen) >= 20)
            private_redis.stop()
            mark = len(traffic.seen)
            traffic.wait_for(lambda seen, mark=mark: sum(d == "store_unavailable" for _, _, d in seen[mark:]) >= 20)
            private_redis.start()  # empty: every worker sees the lost data (issue 12.3)
            mark = len(traffic.seen)
            traffic.wait_for(lambda seen, mark=mark: sum(d == "store_data_lost" for _, _, d in seen[mark:]) >= 20)
            materialize_cli(env, environ)  # the documented recovery: one command
            mark = len(traffic.seen)
            traffic.wait_for(lambda seen, mark=mark: sum(d is None for _, _, d in seen[mark:]) >= 20)
        assert {s for s, _, _ in traffic.seen} == {200}, [r for r in traffic.seen if r[0] != 200][:5]
        metrics = requests.get(base + "/metrics", timeout=10).text
        assert 'offers_decisions_degraded_total{reason="store_unavailable"}' in metrics


def test_workers_whose_champion_is_corrupt_serve_the_last_known_good(env: DecisionEnv, tmp_path: Path,
                                                                     redis_url: str) -> None:
    """The issue's crash loop: a champion LightGBM aborts on, workers starting and restarting.

    Every worker (the two first ones, and the one that replaces a killed worker) serves the
    previous champion, no decision fails, /readyz stays 200 and no worker dies by itself.
    """
    env.promote(env.v1)
    try:
        with serve(env, tmp_path, redis_url, workers=2, log_level="INFO",
                   before_start=lambda: env.promote(env.broken)) as (base, _):
            def two_workers() -> dict[int, dict[str, Any]]:
                """Worker pid -> what it serves, once two workers answered /v1/models."""
                seen: dict[int, dict[str, Any]] = {}
                deadline = time.monotonic() + 120
                while len(seen) < 2 and time.monotonic() < deadline:
                    listed = requests.get(base + "/v1/models", headers=DECIDE, timeout=10).json()
                    seen[listed["worker"]] = listed["serving"]
                assert len(seen) == 2, seen
                return seen

            first = two_workers()
            killed = next(iter(first))
            os.kill(killed, signal.SIGKILL)  # a restart while the champion is still corrupt
            after = two_workers()
            assert killed not in after  # the replacement answers
            for serving in [*first.values(), *after.values()]:
                assert serving["version"] == env.v1 and serving["last_known_good_for"] == env.broken, serving
            with Traffic(base) as traffic:
                traffic.wait_for(lambda seen: len(seen) >= 60)
            assert requests.get(base + "/readyz", timeout=10).status_code == 200
            metrics = requests.get(base + "/metrics", timeout=10).text
            assert "offers_model_last_known_good 1.0" in metrics
        assert {s for s, _, _ in traffic.seen} == {200}, [r for r in traffic.seen if r[0] != 200][:5]
        assert {v for _, v, _ in traffic.seen} == {env.v1}
        log = (tmp_path / "gunicorn.log").read_text()
        assert log.count("Booting worker") == 3, "two workers and one replacement: no crash loop"
        assert log.count("LAST-KNOWN-GOOD") >= 3 and "SIGABRT" not in log
    finally:
        env.promote(env.v1)


def test_every_worker_routes_the_challenger_share_and_follows_offers_models_route(
        env: DecisionEnv, tmp_path: Path, redis_url: str) -> None:
    """Champion/challenger under gunicorn: both workers route the same members to the challenger
    (a deterministic hash), and a new share set with the CLI reaches both without a restart."""
    registry = tmp_path / "registry"
    shutil.copytree(env.registry, registry)
    Registry(registry).promote(env.v1)
    Registry(registry).promote(env.v2, alias="challenger")

    def route(share: str) -> None:
        subprocess.run([sys.executable, "-m", "offers_cli.main", "models", "route", "--registry", str(registry),
                        "--challenger-share", share], cwd=ROOT, check=True, capture_output=True, timeout=120)

    def workers_report(share: float) -> dict[int, dict[str, Any]]:
        """Worker pid -> its routing, once both workers report ``share`` with the challenger loaded."""
        seen: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            listed = requests.get(base + "/v1/models", headers=DECIDE, timeout=10).json()
            seen[listed["worker"]] = listed["routing"]
            ready = [r for r in seen.values() if r["challenger_share"] == share and r["challenger"]]
            if len(ready) == 2:
                return seen
        raise AssertionError(f"the workers never both routed {share}: {seen}")

    route("0.5")
    members = [f"M{i:08d}" for i in range(1, 81)]
    expected = {m: env.v2 if challenger_draw(m, "challenger") < 0.5 else env.v1 for m in members}
    with serve(env, tmp_path, redis_url, workers=2, registry=registry) as (base, _):
        assert {r["challenger"]["version"] for r in workers_report(0.5).values()} == {env.v2}
        for _ in range(2):  # a fresh connection per request: both workers answer
            got = {m: requests.post(base + "/v1/decisions", json={"member_id": m, "channel": CHANNEL},
                                    headers=DECIDE, timeout=30).json()["model_version"] for m in members}
            assert got == expected
        assert 20 < sum(v == env.v2 for v in got.values()) < 60
        route("1")
        workers_report(1.0)
        for m in members[:20]:
            resp = requests.post(base + "/v1/decisions", json={"member_id": m, "channel": CHANNEL},
                                 headers=DECIDE, timeout=30)
            assert resp.json()["model_version"] == env.v2
