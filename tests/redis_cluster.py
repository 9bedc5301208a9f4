"""A real Redis Cluster for the tests: 3 masters and 3 replicas started in a temp directory.

``redis-server --cluster-enabled yes`` on ports 7100-7105 (masters 7100-7102; another range per
pytest-xdist worker, see :data:`PORTS`), joined by
``redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes``. A short
``cluster-node-timeout`` lets a replica take over a killed master within a few seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry


def _worker_index() -> int:
    """This pytest-xdist worker's number (``gw3`` -> 3), 0 outside xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


#: The ports the cluster's nodes listen on (the first three start as masters): 7100-7105, and
#: under pytest-xdist ten ports further per worker (gw1: 7110-7115), so parallel workers each
#: run a cluster of their own instead of finding the ports taken. (Grouping the cluster's tests
#: on one worker with ``--dist loadgroup`` silently stopped working with pytest 9.2:
#: pytest-dev/pytest-xdist#1386.)
PORTS = tuple(range(7100 + 10 * _worker_index(), 7106 + 10 * _worker_index()))
#: Milliseconds before the cluster calls a silent master failed and promotes its replica.
NODE_TIMEOUT_MS = 1000
#: Longest wait for the cluster to form or to heal; a wait, never an assertion on timing.
WAIT_SECONDS = 60


def _node(port: int) -> redis.Redis:
    """A client of one node that fails at once (redis-py would otherwise retry with back-off)."""
    return redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))


def _ping(port: int) -> bool:
    try:
        return bool(_node(port).ping())
    except redis.RedisError:
        return False


def _info(port: int) -> dict[str, str]:
    """CLUSTER INFO of one node as a dict (empty when it does not answer)."""
    try:
        raw = _node(port).execute_command("CLUSTER INFO")
    except redis.RedisError:
        return {}
    if isinstance(raw, dict):  # redis-py parses CLUSTER INFO
        return {str(k): str(v) for k, v in raw.items()}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.split() if ":" in line)


class RedisClusterServers:
    """The six redis-server processes of a test cluster, which a test may kill and restart."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The service's URL for the cluster (any node; redis-py discovers the others)."""
        return f"redis+cluster://127.0.0.1:{PORTS[0]}"

    def start_node(self, port: int) -> None:
        """Start (or restart, keeping its nodes.conf) the node on ``port``."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        node_dir = self.workdir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
             "--save", "", "--appendonly", "no", "--dir", str(node_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait(lambda: _ping(port), f"redis-server on port {port} did not answer")

    def start(self) -> None:
        """Start six nodes and join them into a cluster of 3 masters with one replica each."""
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed (Debian: apt-get install redis-server)")
        busy = [p for p in PORTS if _ping(p)]
        if busy:
            raise RuntimeError(f"ports {busy} already answer: another Redis is using the cluster's ports")
        for port in PORTS:
            self.start_node(port)
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in PORTS),
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=WAIT_SECONDS)
        self.wait_healthy()

    def wait_healthy(self) -> None:
        """Wait until every running node says the cluster is ok with 3 masters serving all slots."""
        def healthy() -> bool:
            infos = [_info(p) for p, proc in self.procs.items() if proc.poll() is None]
            return bool(infos) and all(i.get("cluster_state") == "ok" and i.get("cluster_size") == "3"
                                       and i.get("cluster_slots_ok") == "16384" for i in infos)

        self._wait(healthy, "the Redis Cluster did not become healthy")

    def wait_replicated(self) -> None:
        """Wait until every master has a replica online at the master's replication offset.

        Redis replicates asynchronously: a write a master acknowledged but had not yet sent
        is lost when a replica takes over. Waiting here makes "before the kill" mean
        "replicated", which is what the failover test's no-over-issue claim rests on."""
        def caught_up() -> bool:
            for port in self.master_ports():
                info = _node(port).info("replication")
                replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
                offset = info.get("master_repl_offset")
                if not replicas or any(r.get("state") != "online" or r.get("offset") != offset for r in replicas):
                    return False
            return True

        self._wait(caught_up, "the replicas did not catch up with their masters")

    def wait_taken_over(self, dead: int) -> None:
        """Wait until a replica took over the slots of the killed master on ``dead`` (all nodes agree)."""
        def taken_over() -> bool:
            for port, proc in self.procs.items():
                if proc.poll() is not None:
                    continue
                try:
                    slots = _node(port).execute_command("CLUSTER SLOTS")
                except redis.RedisError:
                    return False
                if any(int(master[1]) == dead for _, _, master, *_ in slots):
                    return False
            return True

        self._wait(taken_over, f"no replica took over the slots of the master on port {dead}")
        self.wait_healthy()

    def master_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot now (asked of a live node)."""
        live = next(p for p, proc in self.procs.items() if proc.poll() is None)
        slot = key_slot(key.encode())
        for start, end, master, *_ in _node(live).execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(master[1])
        raise RuntimeError(f"no master serves slot {slot}")

    def master_ports(self) -> list[int]:
        """The ports of the running nodes that are masters now."""
        out = []
        for port, proc in self.procs.items():
            if proc.poll() is None:
                role = _node(port).execute_command("ROLE")[0]
                if (role.decode() if isinstance(role, bytes) else role) == "master":
                    out.append(port)
        return sorted(out)

    def kill(self, port: int) -> None:
        """SIGKILL one node (a crashed master: no goodbye to the cluster)."""
        proc = self.procs[port]
        proc.kill()
        proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop every node."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            proc.wait(timeout=10)
        self.procs.clear()

    @staticmethod
    def _wait(ready: object, message: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not ready():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise RuntimeError(message)
            time.sleep(0.05)
