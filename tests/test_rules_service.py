"""Targeting rules end to end: request context through the Flask app (in-process store and real
Redis), member attributes from the data, the batch endpoint and ``offers batch`` against
real-time decisions, and a malformed rule refused by the CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from flask import Flask

from offers_cli.main import cli
from tests.decisions_env import CHANNEL, CLOCK, DecisionEnv, build, close_app, start_app
from tests.service_helpers import DECISIONS_KEY

DECIDE = {"X-API-Key": DECISIONS_KEY}
#: The clock, 2025-11-12 12:00 UTC, is a Wednesday.
RULE_OFFERS = """
  - id: mobile_order
    kind: bonus_points
    title: Order ahead in the app
    value: 50
    lever: 40
    rule: {field: context.device, eq: app}
  - id: basket_builder
    kind: bonus_points
    title: 100 points on a $20 basket
    value: 100
    lever: 40
    rule:
      all:
        - {field: context.cart.total, gte: 20}
        - {not: {field: context.cart.categories, contains: tobacco}}
  - id: home_store
    kind: bonus_points
    title: Your store's midweek treat
    value: 80
    lever: 40
    rule:
      all:
        - {field: member.attr_favourite_store, eq: S1}
        - {field: time.day_of_week, in: [tue, wed]}
  - id: rainy_day
    kind: bonus_points
    title: Rainy day bonus
    value: 30
    lever: 40
    rule: {field: context.weather, eq: rain}
targeting:
  attributes: {attr_favourite_store: string}
  context: {weather: string, temperature: number}
"""


@pytest.fixture(scope="module")
def rules_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[DecisionEnv, Path, Path, set[str], list[str]]:
    """The shared decision environment's data with a favourite-store attribute, and its program
    with rule offers (exploration off, so a slate is the ranking)."""
    env = build(tmp_path_factory.mktemp("decisions"))
    root = tmp_path_factory.mktemp("rules")
    data = root / "data"
    shutil.copytree(env.data, data)
    (data / "members.parquet").unlink()  # a copy of its own, not the shared file
    table = pq.read_table(env.data / "members.parquet")
    stores = ["S1" if i % 3 == 0 else None if i % 7 == 0 else "S2" for i in range(table.num_rows)]
    pq.write_table(table.append_column("attr_favourite_store", pa.array(stores, pa.string())),
                   data / "members.parquet")
    ids = [str(m) for m in table.column("member_id").to_pylist()]
    text = env.program.read_text().replace("exploration: {share: 0.1", "exploration: {share: 0.0")
    program = root / "program.yaml"
    program.write_text(text.replace("\noffers:\n", "\noffers:\n" + RULE_OFFERS.split("targeting:")[0].lstrip("\n"), 1)
                       + "targeting:" + RULE_OFFERS.split("targeting:")[1])
    s1 = {m for m, s in zip(ids, stores, strict=True) if s == "S1"}
    return env, data, program, s1, ids


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def app(request: pytest.FixtureRequest, rules_env: tuple[DecisionEnv, Path, Path, set[str], list[str]],
        tmp_path: Path) -> Iterator[Flask]:
    env, data, program, _, _ = rules_env
    env.promote(env.v1)
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    app = start_app(env.settings(tmp_path, data=data, program=program, redis_url=redis_url))
    yield app
    close_app(app)


def post(app: Flask, member: str, context: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
    body: dict[str, Any] = {"member_id": member, "channel": CHANNEL, "n": 10}
    if context is not None:
        body["context"] = context
    resp = app.test_client().post("/v1/decisions", json=body, headers=DECIDE)
    assert resp.status_code == status, resp.get_data(as_text=True)
    out: dict[str, Any] = resp.get_json()
    return out


def rule_view(decision: dict[str, Any]) -> dict[str, str]:
    """Offer id -> "offered" or the failing clause, for the rule offers."""
    out = {o["offer_id"]: "offered" for o in decision["offers"]}
    out.update({e["offer_id"]: e.get("clause", e["reason"]) for e in decision["excluded"]})
    return {k: v for k, v in out.items() if k in {"mobile_order", "basket_builder", "home_store", "rainy_day"}}


def test_request_context_decides_which_rule_offers_a_member_gets(app: Flask, rules_env: Any) -> None:
    member = sorted(rules_env[3])[0]  # favourite store S1, on a Wednesday
    bare = rule_view(post(app, member))
    assert bare["home_store"] == "offered"
    assert bare["mobile_order"].endswith(".rule: context.device == app")
    assert bare["mobile_order"].startswith("offers[")
    assert bare["basket_builder"].endswith(".rule.all[0]: context.cart.total >= 20")
    assert bare["rainy_day"].endswith(".rule: context.weather == rain")

    cart = {"lines": [{"product_id": "p1", "quantity": 2, "price": 6.5, "category": "snacks"},
                      {"product_id": "p2", "price": 7.0}]}
    full = rule_view(post(app, member, {"device": "app", "store_id": "S1", "cart": cart, "weather": "rain",
                                        "temperature": 11.5}))
    assert full == {"mobile_order": "offered", "basket_builder": "offered", "home_store": "offered",
                    "rainy_day": "offered"}
    smoker = {"lines": [*cart["lines"], {"product_id": "p3", "price": 9, "category": "tobacco"}]}
    assert rule_view(post(app, member, {"cart": smoker}))["basket_builder"].endswith(
        ".rule.all[1].not: not (context.cart.categories contains tobacco)")
    assert rule_view(post(app, member, {"cart": {"total": 19.99}}))["basket_builder"].endswith(
        "context.cart.total >= 20")

    other = next(m for m in rules_env[4] if m not in rules_env[3])
    assert rule_view(post(app, other))["home_store"].endswith(".rule.all[0]: member.attr_favourite_store == S1")


#: Bad contexts, the pointer and code of the error each gets.
BAD_CONTEXTS: list[tuple[dict[str, Any], str, str]] = [
    ({"basket_id": "b1"}, "/context/basket_id", "unknown_context_key"),
    ({"weather": 3}, "/context/weather", "type_error"),
    ({"temperature": "warm"}, "/context/temperature", "type_error"),
    ({"temperature": True}, "/context/temperature", "type_error"),
    ({"device": 7}, "/context/device", "string_type"),
    ({"cart": {"total": "20"}}, "/context/cart/total", "value_error"),
    ({"cart": {"lines": [{"product_id": "p1", "quantity": 0}]}}, "/context/cart/lines/0/quantity",
     "greater_than_equal"),
    ({"cart": {"lines": [{"sku": "p1"}]}}, "/context/cart/lines/0/sku", "extra_forbidden"),
]


def test_undeclared_or_ill_typed_context_is_a_422_naming_the_key(app: Flask) -> None:
    """Invalid bodies get the service's 422 problem+json, the key named by its JSON pointer."""
    for context, pointer, code in BAD_CONTEXTS:
        for path, body in (("/v1/decisions", {"member_id": "1", "channel": CHANNEL, "context": context}),
                           ("/v1/decisions/batch", {"member_ids": ["1"], "channel": CHANNEL, "context": context})):
            resp = app.test_client().post(path, json=body, headers=DECIDE)
            assert resp.status_code == 422, resp.get_data(as_text=True)
            assert resp.mimetype == "application/problem+json"
            errors = resp.get_json()["errors"]
            assert any(e["pointer"] == pointer and e["code"] == code for e in errors), (context, errors)


def test_batch_endpoint_and_offers_batch_apply_the_same_rules_as_real_time(
        app: Flask, rules_env: Any, tmp_path: Path) -> None:
    env, data, program, s1, ids = rules_env
    members = ids[:60]
    context = {"device": "app", "cart": {"total": 25}}
    realtime = {m: rule_view(post(app, m, context)) for m in members}
    resp = app.test_client().post("/v1/decisions/batch", headers=DECIDE, json={
        "member_ids": members, "channel": CHANNEL, "n": 10, "include_excluded": True, "context": context})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    lines = [json.loads(line) for line in resp.get_data(as_text=True).splitlines()]
    batch = {d["member_id"]: rule_view(d) for d in lines if "summary" not in d}
    assert batch == realtime
    assert {m for m, v in realtime.items() if v["home_store"] == "offered"} == s1 & set(members)

    audience = tmp_path / "audience.csv"
    pd.DataFrame({"member_id": members}).to_csv(audience, index=False)
    out = tmp_path / "decisions.parquet"
    result = CliRunner().invoke(cli, ["batch", "--registry", str(env.registry), "--data", str(data),
                                      "--members", str(audience), "--out", str(out), "--program", str(program),
                                      "--as-of", CLOCK, "--channel", CHANNEL, "--n", "10"])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    offline = {str(m) for m in frame.loc[frame["offer_id"] == "home_store", "member_id"]}
    assert offline == {m for m, v in realtime.items() if v["home_store"] == "offered"}
    assert not set(frame["offer_id"]) & {"mobile_order", "basket_builder", "rainy_day"}  # no request context


def test_a_malformed_rule_stops_the_cli_with_its_path_and_reason(rules_env: Any, tmp_path: Path) -> None:
    env, data, program, _, _ = rules_env
    bad = tmp_path / "bad.yaml"
    bad.write_text(program.read_text().replace("{field: context.device, eq: app}",
                                               "{field: context.device, gte: app}"))
    audience = tmp_path / "audience.csv"
    audience.write_text("member_id\n1\n")
    result = CliRunner().invoke(cli, ["batch", "--registry", str(env.registry), "--data", str(data),
                                      "--members", str(audience), "--out", str(tmp_path / "o.parquet"),
                                      "--program", str(bad), "--as-of", CLOCK])
    assert result.exit_code == 1, result.output
    assert "rule.gte (line" in result.output and "operator 'gte' does not apply to context.device" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o.parquet").exists()
