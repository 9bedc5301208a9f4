"""Redis Cluster: settings, the slot rules of the key layout, and `offers materialize` into a cluster.

The store's behaviour on a cluster is the store suite's (tests/test_service_stores.py, the
``cluster`` parameter); a master dying under load is tests/test_redis_cluster_failover.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import redis
from click.testing import CliRunner
from redis.crc import key_slot

from offers_cli.main import cli
from runtime.settings import SettingsError, load_settings
from runtime.stores import StateEvent, build_store
from runtime.stores.keys import KeySpace
from runtime.stores.redis_store import RedisStore
from tests.redis_cluster import RedisClusterServers

MEMBER = "1029"


@pytest.mark.parametrize("env, names", [
    ({"REDIS_URL": "redis+cluster://127.0.0.1:7100"}, None),
    ({"REDIS_URL": "redis://127.0.0.1:7100", "OFFERS_REDIS_CLUSTER": "true"}, None),
    ({"OFFERS_REDIS_CLUSTER": "true"}, "OFFERS_REDIS_CLUSTER: needs REDIS_URL"),
    ({"REDIS_URL": "redis+cluster://127.0.0.1:7100/3"}, "REDIS_URL: a Redis Cluster has only database 0"),
    ({"REDIS_URL": "unix:///run/redis.sock", "OFFERS_REDIS_CLUSTER": "1"}, "OFFERS_REDIS_CLUSTER: a cluster is "
                                                                          "reached over TCP"),
    ({"REDIS_URL": "redis+cluster://127.0.0.1:port"}, "REDIS_URL: is not a valid Redis URL"),
    ({"REDIS_URL": "cluster://127.0.0.1:7100"}, "must start with redis://, rediss://, unix:// or redis+cluster://"),
    ({"REDIS_URL": "redis://h:1", "OFFERS_REDIS_CLUSTER": "sometimes"}, "OFFERS_REDIS_CLUSTER: Input should be a "
                                                                       "valid boolean"),
])
def test_cluster_settings_are_validated_with_a_clear_error(env: dict[str, str], names: str | None) -> None:
    if names is None:
        settings = load_settings(env)
        assert settings.redis_is_cluster
        store = build_store(settings)  # no connection is opened yet
        assert isinstance(store, RedisStore) and store.cluster and store.keys.cluster
        return
    with pytest.raises(SettingsError, match=re.escape(names)):
        load_settings(env)


def test_a_single_redis_keeps_its_key_layout() -> None:
    settings = load_settings({"REDIS_URL": "redis://127.0.0.1:6379/4"})
    assert not settings.redis_is_cluster
    keys = KeySpace()
    assert [keys.state(MEMBER), keys.history(MEMBER), keys.event("e1", MEMBER), keys.wallet(MEMBER)] == [
        "ofr:s:1029", "ofr:h:1029", "ofr:e:e1", "ofr:w:1029"]


def test_every_key_of_a_member_is_in_the_members_slot_on_a_cluster() -> None:
    keys = KeySpace(cluster=True)
    member_keys = [keys.state(MEMBER), keys.cache(MEMBER), keys.history(MEMBER), keys.profile(MEMBER),
                   keys.wallet(MEMBER), keys.referral(MEMBER), keys.event("evt-77", MEMBER), *keys.points(MEMBER)]
    assert member_keys[:3] == ["ofr:s:{1029}", "ofr:c:{1029}", "ofr:h:{1029}"]
    assert keys.event("evt-77", MEMBER) == "ofr:e:{1029}:evt-77"
    assert {key_slot(k.encode()) for k in member_keys} == {key_slot(b"1029")}
    # members spread over the slots, so over the masters
    assert len({key_slot(KeySpace(cluster=True).state(f"m{i}").encode()) for i in range(100)}) > 90
    with pytest.raises(ValueError, match="member id"):
        keys.event("evt-77")
    with pytest.raises(ValueError):
        keys.state("{1029}")  # an id cannot choose another member's slot


@pytest.mark.redis
def test_offers_materialize_writes_every_member_into_the_cluster(
        syn_dir: Path, redis_cluster: RedisClusterServers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_cluster.url)
    monkeypatch.setenv("OFFERS_REDIS_PREFIX", "mat")
    monkeypatch.delenv("OFFERS_REDIS_URL", raising=False)
    monkeypatch.delenv("OFFERS_REDIS_CLUSTER", raising=False)
    result = CliRunner().invoke(cli, ["materialize", "--data", str(syn_dir), "--clock", "data"])
    assert result.exit_code == 0, result.output
    members = pd.read_parquet(syn_dir / "members.parquet")["member_id"].astype(str).tolist()
    assert f"wrote {len(members):,} members" in result.output

    store = build_store(load_settings())
    assert isinstance(store, RedisStore) and store.cluster
    try:
        assert store.generation() is not None
        bundles = store.fetch_members(members)  # one cluster pipeline over all the masters
        assert sum(b.history is not None for b in bundles) == len(members)
        assert all(b.profile is not None and b.generation == bundles[0].generation for b in bundles)
        # every master holds a share of the members' keys
        per_master = {port: redis.Redis(port=port).dbsize() for port in redis_cluster.master_ports()}
        assert len(per_master) == 3 and min(per_master.values()) > len(members) // 2, per_master
        # an event batch over members of every master is applied, one script per member, in one call
        applied = store.apply_events([StateEvent(event_id=f"e{i}", member_id=m, type="transaction", ts=1_500_000_000,
                                                 amount_minor=100, month="201707")
                                      for i, m in enumerate(members[:30])] + [
            StateEvent(event_id="e0", member_id=members[0], type="transaction", ts=1_500_000_000,
                       amount_minor=100, month="201707")])
        assert applied == [True] * 30 + [False]
        assert [b.state.purchases for b in store.fetch_members(members[:30])] == [1] * 30
    finally:
        keys = list(store.client.scan_iter(match="mat:*", count=1000))  # type: ignore[attr-defined]
        for key in keys:
            store.client.delete(key)  # type: ignore[attr-defined]
        store.close()
