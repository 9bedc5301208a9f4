"""``offers batch`` and ``offers materialize`` on a real ``dask.distributed`` cluster (issue 18).

One module-scoped ``LocalCluster`` of two single-threaded worker processes serves every test
(the CLI reaches it through ``--scheduler``; one test starts its own with ``--workers 2``).
Models come from the session fixtures (``trained_registry``, and the decision tests' shared
environment for a budgeted program), so nothing is trained here. Partitions are made small
(300 or 100 members) so the few thousand test members span several tasks on both workers.

* batch: the same rows, offers and scores as the in-process batch, for a shuffled audience
  with cold-start members mixed in and a whole chunk of them; a partitioned Parquet output
  equal to the single file; a failing task leaves no output; a budget of K issues exactly K
  across ten partitions, reserved in a real Redis, whose run counters are gone afterwards;
  no Redis for a budgeted program is a clear CLI error.
* materialize: ``--workers 2`` writes exactly the keys, types and values of the in-process
  run into a real Redis, every key with a TTL.
* a bad scheduler address is a one-line error for both commands; the in-process path never
  imports dask.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from offerdata import loader
from offers_cli.main import cli
from runtime.decisions.audience import run
from runtime.decisions.cluster_batch import run_on_cluster, write_parts
from runtime.settings import settings_for
from tests.conftest import free_port
from tests.decisions_env import CHANNEL, CLOCK, FLASH, FLASH_BUDGET, DecisionEnv, build

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def budget_env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    """The decision tests' environment: a program whose ``flash_bonus`` has a total budget of 10."""
    return build(tmp_path_factory.mktemp("decisions"))


def _audience(syn_dir: Path, path: Path) -> list[str]:
    """Every member shuffled, 5 unknown ids among them, then a block of 1,995 unknown ids
    (so one in-process chunk of 1,000 is all unknown members)."""
    ids = [str(m) for m in pd.read_parquet(syn_dir / "members.parquet")["member_id"]]
    rng = np.random.default_rng(5)
    ids = [ids[i] for i in rng.permutation(len(ids))]
    for k, at in enumerate([3, 700, 1500, 1999, 2001]):
        ids.insert(at, f"stranger-{k}")
    ids += [f"cold-{k}" for k in range(1995)]
    pd.DataFrame({"member_id": ids}).to_csv(path, index=False)
    return ids


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["member_id", "rank"]).reset_index(drop=True)


def test_batch_on_the_cluster_decides_as_in_process(dask_client: Any, syn_dir: Path, trained_registry: Path,
                                                    tmp_path: Path) -> None:
    members = tmp_path / "audience.csv"
    wanted = _audience(syn_dir, members)
    local = run(syn_dir, trained_registry, members, tmp_path / "local.parquet", as_of="data", seed=3,
                decision_log=tmp_path / "local-log")
    remote = run_on_cluster(dask_client, syn_dir, trained_registry, members, tmp_path / "remote.parquet",
                            settings_for(), as_of="data", seed=3, partition_members=300,
                            decision_log=tmp_path / "remote-log")
    assert (remote.members, remote.unknown, remote.offers) == (local.members, local.unknown, local.offers)
    assert local.unknown == 2000 and local.offers > 0
    a, b = pd.read_parquet(local.out), pd.read_parquet(remote.out)
    assert a["member_id"].nunique() > 1500, "most members get offers"
    assert set(b["member_id"]) & {f"stranger-{k}" for k in range(5)}, "cold starts get offers too"
    pd.testing.assert_frame_equal(_sorted(b), _sorted(a), check_exact=True)
    assert set(b["member_id"]) <= set(wanted)
    # the workers log every decision, in segments of their own, as the in-process run does
    logs = [_logged(tmp_path / name) for name in ("local-log", "remote-log")]
    assert len(logs[0]) == len(wanted) and logs[1] == logs[0]
    assert len(list((tmp_path / "remote-log").glob("decisions-*.ndjson"))) == 2, "one segment per worker"


def _logged(directory: Path) -> list[tuple[str, tuple[str, ...], str]]:
    """Each logged decision's member, shown offers and source, sorted (decision ids name the run)."""
    lines = [json.loads(line) for f in directory.glob("decisions-*.ndjson") for line in f.read_text().splitlines()]
    return sorted((d["member_id"], tuple(s["offer_id"] for s in d["shown"]), d["source"]) for d in lines)


def test_partitioned_output_through_the_cli(dask_client: Any, syn_dir: Path, trained_registry: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "PARTITION_MEMBERS", 300)
    members = tmp_path / "audience.csv"
    _audience(syn_dir, members)
    args = ["batch", "--registry", str(trained_registry), "--data", str(syn_dir), "--members", str(members),
            "--as-of", "data", "--seed", "3"]
    single = tmp_path / "one.parquet"
    assert CliRunner().invoke(cli, [*args, "--out", str(single)]).exit_code == 0
    out = tmp_path / "parts"
    out.mkdir()
    (out / "part-99999.parquet").write_text("a previous run's directory is replaced whole")
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--scheduler", dask_client.scheduler.address])
    assert result.exit_code == 0, result.output
    parts = sorted(p.name for p in out.iterdir())
    assert parts == [f"part-{i:05d}.parquet" for i in range(len(parts))] and len(parts) == 7 + 1  # 7 partitions, 1 chunk of unknown members
    pd.testing.assert_frame_equal(_sorted(pd.read_parquet(out)), _sorted(pd.read_parquet(single)), check_exact=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audience.csv", "one.parquet", "parts"]


def _boom(_: int) -> None:
    raise RuntimeError("a worker failed")


def _frame(_: int) -> tuple[pd.DataFrame, int]:
    from runtime.decisions.audience import offer_rows

    return offer_rows([], 100), 0


def test_a_failed_task_leaves_no_output(dask_client: Any, tmp_path: Path) -> None:
    from distributed import as_completed

    good = dask_client.submit(_frame, 0, key="offers-batch-t-0", pure=False)
    good.result()
    bad = dask_client.submit(_boom, 1, key="offers-batch-t-1", pure=False)
    with pytest.raises(RuntimeError, match="a worker failed"):
        write_parts(tmp_path / "out", "t", as_completed([good, bad]),
                     {"model_version": "v", "as_of": "t", "channel": "email"}, None)
    assert list(tmp_path.iterdir()) == []


def _budgeted_batch(dask_client: Any, budget_env: DecisionEnv, tmp_path: Path, redis_url: str,
                    monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Path, pd.DataFrame]:
    """``offers batch`` of every member on the cluster, 100-member partitions, counting budgets at ``redis_url``."""
    monkeypatch.setattr(loader, "PARTITION_MEMBERS", 100)
    monkeypatch.setenv("REDIS_URL", redis_url)
    members = [str(m) for m in pd.read_parquet(budget_env.data / "members.parquet")["member_id"]]
    audience = tmp_path / "audience.txt"
    audience.write_text("\n".join(members))
    out = tmp_path / "decisions.parquet"
    args = ["batch", "--registry", str(budget_env.registry), "--data", str(budget_env.data), "--members",
            str(audience), "--out", str(out), "--program", str(budget_env.program), "--as-of", CLOCK,
            "--channel", CHANNEL, "--scheduler", dask_client.scheduler.address]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    flashes = frame[frame["offer_id"] == FLASH]
    assert len(flashes) == FLASH_BUDGET and flashes["member_id"].is_unique
    assert frame["member_id"].nunique() > 500, "every partition decided"
    return args, out, frame


@pytest.mark.redis
def test_a_budget_holds_across_partitions_in_redis(dask_client: Any, budget_env: DecisionEnv, tmp_path: Path,
                                                   redis_client: Any, redis_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    redis_client.set("ofr:unrelated", b"kept", ex=600)
    args, out, _ = _budgeted_batch(dask_client, budget_env, tmp_path, redis_url, monkeypatch)
    # the run counted in its own keys, deleted at the end; the online store was not touched
    assert redis_client.keys("*") == [b"ofr:unrelated"]

    monkeypatch.delenv("REDIS_URL")
    monkeypatch.delenv("OFFERS_REDIS_URL", raising=False)
    out.unlink()
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1 and "set REDIS_URL" in refused.output and "Traceback" not in refused.output
    assert not out.exists()


@pytest.mark.slow
def test_a_budget_holds_across_partitions_on_a_redis_cluster(dask_client: Any, budget_env: DecisionEnv, tmp_path: Path,
                                                             redis_cluster: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The same batch against a real 3-master Redis Cluster: the budget's counters share one slot
    (``{budgets}``), every partition's worker reserves through it, and exactly K are issued."""
    from redis.cluster import RedisCluster

    _budgeted_batch(dask_client, budget_env, tmp_path, redis_cluster.url, monkeypatch)
    from tests.redis_cluster import PORTS

    nodes = RedisCluster(host="127.0.0.1", port=PORTS[0])
    try:
        left = [k for k in nodes.keys(target_nodes=RedisCluster.PRIMARIES) if k.startswith(b"ofrb")]
    finally:
        nodes.close()
    assert left == [], "the run's own budget keys are deleted at the end"


def _dump(redis_client: Any) -> dict[bytes, tuple[bytes, Any, int]]:
    """Every key of the database: its type, value and TTL in seconds."""
    out = {}
    for key in redis_client.keys("*"):
        kind = redis_client.type(key)
        value: Any = {b"string": redis_client.get, b"hash": redis_client.hgetall,
                      b"set": redis_client.smembers, b"list": lambda k: redis_client.lrange(k, 0, -1),
                      b"zset": lambda k: redis_client.zrange(k, 0, -1, withscores=True)}[kind](key)
        out[key] = (kind, value, int(redis_client.ttl(key)))
    return out


@pytest.mark.redis
def test_materialize_with_workers_writes_what_in_process_writes(syn_dir: Path, trained_registry: Path,
                                                                redis_client: Any, redis_url: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "PARTITION_MEMBERS", 300)
    monkeypatch.setenv("REDIS_URL", redis_url)
    args = ["materialize", "--data", str(syn_dir), "--registry", str(trained_registry), "--clock", "data"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    local = _dump(redis_client)
    since = time.monotonic()
    redis_client.flushdb()
    second = CliRunner().invoke(cli, [*args, "--workers", "2"])
    assert second.exit_code == 0, second.output
    assert "from 7 partition(s)" in second.output
    remote = _dump(redis_client)
    elapsed = time.monotonic() - since + 2
    assert len(local) > 2 * 2000, "histories, profiles and cached scores"
    assert "cached 0 " not in first.output and first.output.split("cached ")[1].split(" ")[0] == \
        second.output.split("cached ")[1].split(" ")[0]
    generation = [k for k in local if k.startswith(b"ofr:g")]
    assert len(generation) == 1 and local[generation[0]][1] != remote[generation[0]][1]
    assert set(remote) == set(local)
    for key, (kind, value, ttl) in local.items():
        other = remote[key]
        assert ttl > 0 and other[2] > 0, f"{key!r} has no TTL"
        assert abs(other[2] - ttl) <= elapsed, key
        assert other[0] == kind, key
        if key not in generation:
            assert other[1] == value, key


def test_bad_scheduler_is_a_one_line_error(tmp_path: Path, syn_dir: Path, trained_registry: Path,
                                           redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFERS_DASK_CONNECT_TIMEOUT", "1")
    monkeypatch.setenv("REDIS_URL", redis_url)
    address = f"tcp://127.0.0.1:{free_port()}"
    members = tmp_path / "audience.txt"
    members.write_text("m1\n")
    for args in (["batch", "--registry", str(trained_registry), "--data", str(syn_dir), "--members", str(members),
                  "--out", str(tmp_path / "out.parquet")],
                 ["materialize", "--data", str(syn_dir)]):
        result = CliRunner().invoke(cli, [*args, "--scheduler", address])
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: cannot connect to the Dask scheduler") and \
            result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "out.parquet").exists()


def test_in_process_batch_and_materialize_never_import_dask() -> None:
    code = ("import sys, offers_cli.main, offers_cli.batch, offers_cli.materialize, runtime.decisions.cluster_batch, "
            "runtime.decisions.cluster_materialize, runtime.decisions.audience; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ})
