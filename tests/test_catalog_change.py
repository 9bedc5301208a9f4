"""A catalog change keeps every member's history (issue 12, item 4).

Histories store products and offers by position; a new offer moves positions. The service
translates a history written under an earlier catalog by id, serves the member with it
(same tier, same features, not a cold start) and rewrites it under the new catalog in the
background.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.features.history import FeatureVocabulary
from models.features.online import (
    catalog_fingerprint,
    catalog_ids,
    history_from_records,
    ids_from_catalog_ids,
    records_from_history,
    remap,
)
from tests.conftest import RedisServer
from tests.decisions_env import CHANNEL, DecisionEnv, build, close_app, start_app
from tests.service_helpers import DECISIONS_KEY

DECIDE = {"X-API-Key": DECISIONS_KEY}
MEMBERS = [f"M0000{i:04d}" for i in range(1, 41)]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


def _bare(products: list[str], offers: list[str]) -> Any:
    """A stand-in with just what the online layout reads: ids and their lookups."""
    class Ids:
        product_ids = np.array(products, dtype=object)
        offer_ids = np.array(offers, dtype=object)
        product_index = FeatureVocabulary.product_index
        offer_index = FeatureVocabulary.offer_index
    return Ids()


def test_remap_matches_products_and_offers_by_id_and_forgets_retired_ones() -> None:
    old = _bare(["p1", "p2", "p3"], ["o1", "o2", "o3"])
    new = _bare(["p0", "p1", "p3", "p2"], ["o0", "o3", "o1"])  # added p0/o0, retired o2, moved all
    hist = dataclasses.replace(history_from_records("m", None), **{
                      "line_member": np.zeros(3, np.int32), "line_time": np.array([1, 2, 3]),
                      "line_basket": np.array([7, 7, 8]), "line_product": np.array([0, 2, -1], np.int32),
                      "line_amount": np.array([1.0, 2.0, 3.0]), "line_coupon": np.zeros(3),
                      "line_discount": np.zeros(3),
                      "exp_member": np.zeros(3, np.int32), "exp_time": np.array([1, 2, 3]),
                      "exp_offer": np.array([0, 1, 2], np.int32),
                      "red_member": np.zeros(1, np.int32), "red_time": np.array([5]),
                      "red_offer": np.array([2], np.int32)})  # type: ignore[arg-type]
    blob = catalog_ids(old)
    products, offers = ids_from_catalog_ids(blob, catalog_fingerprint(old))
    moved = remap(hist, products, offers, new)
    assert moved.line_product.tolist() == [1, 2, -1]            # p1, p3, unknown stays unknown
    assert moved.exp_offer.tolist() == [2, -1, 1]                # o1, o2 retired, o3
    assert moved.red_offer.tolist() == [1]
    assert moved.line_amount.tolist() == [1.0, 2.0, 3.0] and moved.line_time.tolist() == [1, 2, 3]
    # the ids are checked against the fingerprint they are stored under
    with pytest.raises(ValueError, match="do not match"):
        ids_from_catalog_ids(blob, catalog_fingerprint(new))
    assert history_from_records("m", records_from_history(moved, 0)).exp_offer.tolist() == [2, -1, 1]


def with_a_new_offer(env: DecisionEnv, out: Path) -> Path:
    """A copy of the data with one more offer, listed first so every offer's position moves."""
    shutil.copytree(env.data, out)
    offers = pd.read_parquet(out / "offers.parquet")
    new = offers.iloc[[0]].copy()
    new["offer_id"] = "A000-new"
    new["title"] = "Added this week"
    pd.concat([new, offers], ignore_index=True).to_parquet(out / "offers.parquet", index=False)
    return out


def decide(app: Any, member: str) -> dict[str, Any]:
    resp = app.test_client().post("/v1/decisions", json={"member_id": member, "channel": CHANNEL}, headers=DECIDE)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body: dict[str, Any] = resp.get_json()
    return body


@pytest.mark.redis
def test_adding_an_offer_serves_every_member_with_their_history(env: DecisionEnv, tmp_path: Path,
                                                                 private_redis: RedisServer) -> None:
    env.promote(env.v1)
    before_app = start_app(env.settings(tmp_path / "a", redis_url=private_redis.url, redis_prefix="cat"))
    try:
        before = {m: decide(before_app, m) for m in MEMBERS}
        old_fp = before_app.extensions["offers"].decisions.setup.fingerprint  # type: ignore[union-attr]
    finally:
        before_app.extensions["offers"].close()
    assert {b["history"] for b in before.values()} == {"ok"}

    changed = with_a_new_offer(env, tmp_path / "changed")
    # the new catalog's service, without re-materializing
    app = start_app(env.settings(tmp_path / "b", redis_url=private_redis.url, redis_prefix="cat", data=changed),
                    materialize_redis=False)
    try:
        service = app.extensions["offers"].decisions
        assert service.setup is not None and service.setup.fingerprint != old_fp
        after = {m: decide(app, m) for m in MEMBERS}
        # figure for the issue: members served cold (or as stale) after the catalog change
        cold = [m for m, b in after.items() if b["history"] != "ok" or b["policy"] != before[m]["policy"]]
        assert cold == [], [(after[m]["history"], after[m]["policy"], after[m]["degraded"]) for m in cold[:3]]
        assert {m: b["member"]["tier"] for m, b in after.items()} == {m: b["member"]["tier"] for m, b in
                                                                      before.items()}
        assert {m: b["member"]["metric"] for m, b in after.items()} == {m: b["member"]["metric"] for m, b in
                                                                        before.items()}
        # the histories are rewritten under the new catalog in the background
        assert service.decider is not None
        service.decider.upgrader.drain()
        store = service.state.store
        profiles = [store.fetch_member(m).profile for m in MEMBERS]
        assert {p.fingerprint for p in profiles if p is not None} == {service.setup.fingerprint}
        again = {m: decide(app, m) for m in MEMBERS}
        assert {m: b["member"]["tier"] for m, b in again.items()} == {m: b["member"]["tier"] for m, b in
                                                                      before.items()}
    finally:
        close_app(app)
