"""Issue 14's closed loop: the real service decides, a planted truth responds, the events flow
back, and ``offers lift`` and ``offers evaluate --policy-log`` recover the truth."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench.closed_loop import coverage, lift_round, ope_round
from models.registry import Registry
from offerdata.synthetic.truth import make_truth
from tests.decisions_env import DecisionEnv, build, start_app
from tests.service_helpers import DECISIONS_KEY, EVENTS_KEY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


@pytest.fixture(scope="module")
def population(env: DecisionEnv) -> tuple[list[str], dict[str, str], list[str]]:
    frame = pd.read_parquet(env.data / "members.parquet")
    members = frame["member_id"].astype(str).tolist()
    offers = pd.read_parquet(env.data / "offers.parquet")["offer_id"].astype(str).tolist()
    return members, dict(zip(members, frame["segment"].astype(str), strict=True)), offers


def factory(env: DecisionEnv, registry: Path) -> Any:
    def make(program: Path, workdir: Path) -> tuple[Any, dict[str, str], dict[str, str], Path]:
        app = start_app(env.settings(workdir, program=program, registry=registry))
        return app, {"X-API-Key": DECISIONS_KEY}, {"X-API-Key": EVENTS_KEY}, workdir / "events"
    return make


def test_the_truth_is_seeded_and_responses_follow_it() -> None:
    truth = make_truth(["a", "b"], ["s1", "s2"], seed=3)
    assert truth == make_truth(["b", "a"], ["s2", "s1"], seed=3)
    assert truth.slate_effect(["a", "b"], "s1") == pytest.approx(truth.effect["a", "s1"] + truth.effect["b", "s1"])
    rng = np.random.default_rng(0)
    n = 20_000
    redeemed = sum(any(e["type"] == "redeem" for e in truth.respond(f"m{i}", "s1", ["a"], rng, "2025-01-01T00:00:00Z",
                                                                    "t")) for i in range(n))
    p = truth.effect["a", "s1"]
    assert abs(redeemed / n - p) < 4 * np.sqrt(p * (1 - p) / n)


def test_lift_intervals_cover_the_planted_truth_over_seeds(env: DecisionEnv, tmp_path: Path,
                                                           population: tuple[list[str], dict[str, str], list[str]]
                                                           ) -> None:
    members, segments, offers = population
    registry = tmp_path / "registry"
    shutil.copytree(env.registry, registry)
    Registry(registry).promote(env.v1, check=False)
    rounds = [lift_round(factory(env, registry), env.program, env.data, members, segments, offers, seed,
                         tmp_path / f"round-{seed}") for seed in range(6)]
    table = coverage(rounds)
    overall = table.loc["all"]
    for metric in ("redemptions", "visits"):
        row = overall.loc[metric]
        assert row["coverage"] >= 4 / 6, table  # nominal 90%
        assert abs(row["mean_lift"] - row["mean_truth"]) < 0.35 * row["mean_truth"], table  # no large bias
    assert all(r["srm_ok"] for r in rounds)


def test_off_policy_estimates_track_the_candidates_deployed_value(
        env: DecisionEnv, tmp_path: Path, population: tuple[list[str], dict[str, str], list[str]]) -> None:
    members, segments, offers = population
    registry = tmp_path / "registry"
    shutil.copytree(env.registry, registry)
    reg = Registry(registry)
    rounds = [ope_round(factory(env, registry), lambda v: reg.promote(v, check=False), env.v1, env.v2, env.program,
                        env.data, registry, members, segments, offers, seed=seed, workdir=tmp_path / f"ope-{seed}")
              for seed in (11, 12, 13)]
    for out in rounds:
        assert out["decisions"] > 300 and 0 < out["matches"] < out["decisions"]
    for name in ("DR", "SNIPS"):
        assert sum(out[name]["covered"] for out in rounds) >= 2, rounds
        errors = [out[name]["value"] - out["deployed_value"] for out in rounds]
        assert abs(float(np.mean(errors))) < 0.03, rounds  # on average the estimate tracks the deployed value
