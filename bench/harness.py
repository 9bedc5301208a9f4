"""Shared machinery of the HTTP and Redis benchmarks (bench_serving, bench_events, bench_batch,
bench_redis_memory).

* :class:`RedisServer` starts a private ``redis-server`` on a free loopback port (no
  persistence), so a benchmark neither disturbs nor is disturbed by the Redis the tests
  use, and ``INFO memory`` counts only what the benchmark wrote.
* :class:`Gunicorn` starts ``gunicorn -c python:service.gunicorn_conf APP`` -- the service's
  own configuration -- on a free loopback port, waits until it is ready, and stops it.
* :func:`wrk_run` drives one URL with wrk (``bench/load.lua``) at a fixed number of
  connections, optionally paced below the maximum throughput; :func:`max_then_half`
  measures the maximum throughput and then p50/p99 at half of it.

Only loopback addresses are used; every load run is bounded in time and stops by itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOAD_LUA = ROOT / "bench" / "load.lua"
#: An API key with the decisions and events scopes, given to the benchmarked service.
API_KEY = "bench-0123456789abcdef0123456789abcdef"
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def load_average() -> str:
    """The 1/5/15-minute load averages, to show how busy the machine was."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds consumed so far by the processes ``pids`` (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15)
    return total


def require_wrk() -> str:
    """The wrk binary, or exit with how to install it."""
    found = shutil.which("wrk")
    if found is None:
        sys.exit("wrk is not installed: apt-get install wrk (Debian's package), then re-run")
    return found


# -- HTTP helpers ------------------------------------------------------------------------------
def http(method: str, url: str, body: object | None = None, headers: Mapping[str, str] | None = None,
         timeout: float = 60.0) -> tuple[int, bytes]:
    """One request with the standard library; returns (status, body) whatever the status."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", "X-API-Key": API_KEY, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def metric_sum(base_url: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus metric's samples (all workers merged) whose labels match."""
    _, text = http("GET", base_url + "/metrics")
    total = 0.0
    for line in text.decode().splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m is None or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


# -- Redis ---------------------------------------------------------------------------------------
class RedisServer:
    """A private redis-server on a free loopback port, without persistence (context manager)."""

    def pids(self) -> list[int]:
        """The server's pid (for :func:`cpu_seconds`)."""
        return [self.proc.pid] if self.proc is not None else []

    def __init__(self, workdir: Path, maxmemory_policy: str = "noeviction", config: Sequence[str] = ()):
        """``config``: extra redis-server arguments, e.g. ``("--hash-max-listpack-value", "512")``."""
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redis-", dir=workdir))
        self.policy = maxmemory_policy
        self.config = tuple(config)
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def __enter__(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("redis-server is not installed: apt-get install redis-server")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--maxmemory-policy", self.policy, "--protected-mode", "yes", *self.config],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis.from_url(self.url())
        for _ in range(100):
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def effective_workers(workers: int | None) -> int:
    """``workers``, else what service.gunicorn_conf starts by default (cores + 1, at most 8)."""
    from runtime.settings import default_workers

    return workers or default_workers()


# -- gunicorn --------------------------------------------------------------------------------------
class Gunicorn:
    """``gunicorn -c python:service.gunicorn_conf APP`` on a free loopback port (context manager).

    ``env`` adds ``OFFERS_*`` settings; the worker count is the configuration's default
    (cores + 1) unless ``workers`` is given. The server's log goes to ``log``.
    """

    def __init__(self, app: str, env: Mapping[str, str], log: Path, workers: int | None = None,
                 ready_path: str = "/readyz", ready_timeout: float = 300.0):
        self.app = app
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("OFFERS_") and k not in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")}
        self.env.update({"OFFERS_BIND": f"{HOST}:{self.port}", "PYTHONPATH": str(ROOT), **env})
        if workers is not None:
            self.env["OFFERS_WORKERS"] = str(workers)
        self.log = log
        self.ready_path = ready_path
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def workers(self) -> int:
        """How many workers the configuration starts."""
        return effective_workers(int(self.env["OFFERS_WORKERS"]) if "OFFERS_WORKERS" in self.env else None)

    def worker_pids(self) -> list[int]:
        """The pids of the master's children (the workers)."""
        if self.proc is None:
            return []
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def pids(self) -> list[int]:
        """The master's and the workers' pids (for :func:`cpu_seconds`)."""
        return ([self.proc.pid] if self.proc is not None else []) + self.worker_pids()

    def __enter__(self) -> Gunicorn:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf", self.app],
            cwd=ROOT, env=self.env, stdout=out, stderr=out, start_new_session=True)
        out.close()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Until ``ready_path`` answers 200 twenty times in a row (every worker loaded)."""
        deadline = time.monotonic() + self.ready_timeout
        streak = 0
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}; see {self.log}")
            try:
                status, _ = http("GET", self.base + self.ready_path, timeout=5)
            except OSError:
                status = 0
            streak = streak + 1 if status == 200 else 0
            if streak >= 20:
                return
            time.sleep(0.05 if streak else 0.5)
        raise RuntimeError(f"{self.app} not ready after {self.ready_timeout:.0f} s; see {self.log}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own process group only
            self.proc.wait(10)


# -- wrk ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadResult:
    """One wrk run: throughput, latency (ms) and errors."""

    requests: int
    seconds: float
    rps: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    non_2xx: int
    connections: int
    pace_ms: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def wrk_run(base_url: str, path: str, bodies: Path | None, seconds: float, connections: int = 16,
            threads: int = 2, pace_ms: float = 0.0, timeout_s: int = 10) -> LoadResult:
    """One bounded wrk run against ``base_url + path`` (POST lines of ``bodies``, GET if None).

    ``{{n}}`` in a body becomes a value unique to the request and to this run.
    """
    wrk = require_wrk()
    argv = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
            "--timeout", f"{timeout_s}s", "-s", str(LOAD_LUA), base_url, "--", path,
            str(bodies) if bodies is not None else "-", f"{pace_ms:.0f}", str(threads), API_KEY,
            uuid.uuid4().hex[:8]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + timeout_s + 60, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    r = json.loads(line[len("WRKJSON "):])
    secs = r["duration_us"] / 1e6
    errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
    return LoadResult(requests=r["requests"], seconds=secs, rps=r["requests"] / secs, mean_ms=r["mean_us"] / 1000,
                      p50_ms=r["p50_us"] / 1000, p90_ms=r["p90_us"] / 1000, p99_ms=r["p99_us"] / 1000,
                      max_ms=r["max_us"] / 1000, errors=errors, non_2xx=r["status"], connections=connections,
                      pace_ms=pace_ms)


@dataclass(frozen=True)
class Measured:
    """A load run and the CPU the server and Redis spent per request in it."""

    load: LoadResult
    server_cpu_ms: float
    redis_cpu_ms: float

    @property
    def cpu_ms(self) -> float:
        return self.server_cpu_ms + self.redis_cpu_ms


def measured(server: Gunicorn, redis_server: RedisServer | None, run_once: Callable[[], LoadResult]) -> Measured:
    """Run ``run_once`` and charge the server's (and Redis') user + system CPU time to its requests."""
    procs, rpids = server.pids(), (redis_server.pids() if redis_server is not None else [])
    a, b = cpu_seconds(procs), cpu_seconds(rpids)
    load = run_once()
    n = max(1, load.requests)
    return Measured(load, (cpu_seconds(procs) - a) / n * 1000, (cpu_seconds(rpids) - b) / n * 1000)


def paced(base_url: str, path: str, bodies: Path | None, target_rps: float, seconds: float,
          connections: int = 16, threads: int = 2, before_each: Callable[[], None] | None = None) -> LoadResult:
    """A run held near ``target_rps``: a short calibration run, then the measured one.

    Each connection waits ``pace`` ms (on average) between a response and its next
    request, so the offered rate is ``connections * 1000 / (pace + latency)``. The
    calibration run measures the latency at about that rate; the measured run subtracts it.
    ``before_each`` runs before both runs.
    """
    period_ms = connections * 1000.0 / target_rps
    if before_each is not None:
        before_each()
    probe = wrk_run(base_url, path, bodies, max(2.0, seconds / 4), connections, threads, pace_ms=period_ms)
    pace = max(1.0, period_ms - probe.mean_ms)
    if before_each is not None:
        before_each()
    return wrk_run(base_url, path, bodies, seconds, connections, threads, pace_ms=pace)


def max_then_half(base_url: str, path: str, bodies: Path | None, seconds: float, connections: int = 16,
                  threads: int = 2, before_each: Callable[[], None] | None = None) -> tuple[LoadResult, LoadResult]:
    """Maximum throughput (unpaced, ``connections`` in flight), then p50/p99 at half of it.

    ``before_each`` (a callable) runs before each of the measured runs, e.g. to empty a cache.
    """
    if before_each is not None:
        before_each()
    top = wrk_run(base_url, path, bodies, seconds, connections, threads)
    half = paced(base_url, path, bodies, top.rps / 2, seconds, connections, threads, before_each)
    return top, half


def fmt_ms(x: float) -> str:
    """Milliseconds with sensible precision."""
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"
