"""Champion/challenger on live traffic: a deterministic share of members gets the challenger,
every decision says which model made it, and the share changes without a restart."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from flask import Flask

from models.policy import challenger_draw
from models.registry import Registry, RegistryError
from offers_cli.main import cli
from tests.decisions_env import CHANNEL, DecisionEnv, build, close_app, start_app
from tests.service_helpers import DECISIONS_KEY

DECIDE = {"X-API-Key": DECISIONS_KEY}
SALT = "cc-test"


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


@pytest.fixture(scope="module")
def members(env: DecisionEnv) -> list[str]:
    return [str(m) for m in pd.read_parquet(env.data / "members.parquet")["member_id"]][:60]


@pytest.fixture
def registry(env: DecisionEnv, tmp_path: Path) -> Path:
    """A private copy of the shared registry: champion v1, challenger v2 (recalibrated scores)."""
    target = tmp_path / "registry"
    shutil.copytree(env.registry, target)
    reg = Registry(target)
    reg.promote(env.v1)
    reg.promote(env.v2, alias="challenger")
    return target


@pytest.fixture
def app(env: DecisionEnv, registry: Path, tmp_path: Path) -> Iterator[Flask]:
    program = yaml.safe_load(env.program.read_text())
    program.setdefault("decisions", {})["challenger"] = {"share": 0.5, "salt": SALT}
    path = tmp_path / "program.yaml"
    path.write_text(yaml.safe_dump(program))
    app = start_app(env.settings(tmp_path, registry=registry, program=path))
    app.extensions["offers"].decisions.router.check_interval = 0.0  # follow the registry at once
    yield app
    close_app(app)


def versions_of(app: Flask, members: list[str]) -> dict[str, str]:
    client = app.test_client()
    out = {}
    for m in members:
        resp = client.post("/v1/decisions", json={"member_id": m, "channel": CHANNEL}, headers=DECIDE)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        out[m] = resp.get_json()["model_version"]
    return out


def route(registry: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["models", "route", "--registry", str(registry), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_draw_is_deterministic_uniform_and_independent_of_the_holdout() -> None:
    from models.policy import holdout_draw

    ids = [f"member-{i}" for i in range(20_000)]
    draws = np.array([challenger_draw(m, "s") for m in ids])
    assert 0.49 < float(np.mean(draws < 0.5)) < 0.51
    assert challenger_draw("member-7", "s") == challenger_draw("member-7", "s")
    assert challenger_draw("member-7", "s") != challenger_draw("member-7", "t")
    holdout = np.array([holdout_draw(m, "s") for m in ids])
    assert abs(float(np.corrcoef(draws, holdout)[0, 1])) < 0.03


def test_a_share_of_members_gets_the_challenger_and_keeps_it(app: Flask, env: DecisionEnv,
                                                             members: list[str]) -> None:
    first = versions_of(app, members)
    expected = {m: env.v2 if challenger_draw(m, SALT) < 0.5 else env.v1 for m in members}
    assert first == expected
    assert 15 < sum(v == env.v2 for v in first.values()) < 45
    assert versions_of(app, members[:20]) == {m: first[m] for m in members[:20]}  # a member keeps their model
    # the batch endpoint routes member by member and keeps the request's order
    resp = app.test_client().post("/v1/decisions/batch", json={"member_ids": members, "channel": CHANNEL, "n": 2},
                                  headers=DECIDE)
    lines = [json.loads(line) for line in resp.get_data(as_text=True).splitlines()]
    assert [b["member_id"] for b in lines[:-1]] == members
    assert {b["member_id"]: b["model_version"] for b in lines[:-1]} == expected
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    for version in (env.v1, env.v2):
        assert f'model_version="{version}"' in metrics
    # the decision log carries each decision's version
    logged = [json.loads(line) for p in sorted((app.extensions["offers"].settings.event_log).glob("decisions-*.ndjson"))
              for line in p.read_text().splitlines() if line.strip()]
    assert {line["member_id"]: line["model_version"] for line in logged} == expected
    models = app.test_client().get("/v1/models", headers=DECIDE).get_json()
    assert models["routing"]["challenger_share"] == 0.5 and models["routing"]["source"] == "program"
    assert models["routing"]["challenger"]["version"] == env.v2 and models["serving"]["version"] == env.v1


def test_offers_models_route_changes_the_share_without_a_restart(app: Flask, env: DecisionEnv, registry: Path,
                                                                 members: list[str]) -> None:
    assert "0 of members" in route(registry, "--challenger-share", "0")
    assert set(versions_of(app, members).values()) == {env.v1}
    assert "1 of members" in route(registry, "--challenger-share", "1")
    assert set(versions_of(app, members).values()) == {env.v2}
    assert "program's decisions.challenger.share" in route(registry, "--clear")
    assert set(versions_of(app, members).values()) == {env.v1, env.v2}
    assert Registry(registry).challenger_share() is None
    routes = [h for h in json.loads((registry / "aliases.json").read_text())["history"] if "routing" in h]
    assert [h["to"] for h in routes] == [0, 1, None]


def test_a_challenger_that_cannot_be_served_leaves_every_member_with_the_champion(
        env: DecisionEnv, registry: Path, tmp_path: Path, members: list[str]) -> None:
    Registry(registry).promote(env.broken, alias="challenger", check=False)
    Registry(registry).route(1.0)
    app = start_app(env.settings(tmp_path, registry=registry))
    try:
        assert set(versions_of(app, members[:10]).values()) == {env.v1}
        assert app.test_client().get("/v1/models", headers=DECIDE).get_json()["routing"]["challenger"] is None
    finally:
        close_app(app)


def test_the_cli_refuses_a_share_outside_0_1_and_the_registry_too(registry: Path) -> None:
    result = CliRunner().invoke(cli, ["models", "route", "--registry", str(registry), "--challenger-share", "1.5"])
    assert result.exit_code == 2 and "1.5" in result.output
    with pytest.raises(RegistryError, match="share"):
        Registry(registry).route(-0.1)
