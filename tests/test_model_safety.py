"""A corrupt model never crashes a process: refused by the registry and the service, and a
worker whose champion is bad serves the last-known-good model (issue 12, item 1).

``env.broken`` is the issue's reproduction: a model file cut to half its length whose
sha256 was recorded in its metadata. LightGBM aborts (SIGABRT) the process that parses it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models.features import FEATURE_NAMES
from models.model import ArtifactError, PropensityModel
from models.model_probe import ProbeFailed, probe_model
from models.modelfile import ModelFileError, check_model_text
from models.registry import Registry, RegistryError
from tests.decisions_env import CHANNEL, DecisionEnv, build, close_app, start_app
from tests.service_helpers import ADMIN_KEY, DECISIONS_KEY, ROOT

DECIDE = {"X-API-Key": DECISIONS_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


def model_bytes(env: DecisionEnv, version: str) -> bytes:
    return (env.registry / "versions" / version / "model.txt").read_bytes()


# -- the checks themselves ---------------------------------------------------------------------
def test_a_real_model_passes_both_checks_and_damage_is_named(env: DecisionEnv) -> None:
    data = model_bytes(env, env.v1)
    trees = check_model_text(data, FEATURE_NAMES)
    assert trees > 10 and probe_model(data, len(FEATURE_NAMES)) == trees
    lines = data.split(b"\n")
    tree_line = lines.index(b"Tree=3")
    cases = {
        "tree 1": data[: data.index(b"Tree=2") - 40],  # cut inside a tree
        "end of trees": data[: data.index(b"end of trees")],
        "pandas_categorical": data[:-12],
        "tree 3": b"\n".join(lines[:tree_line + 5] + lines[tree_line + 6:]),  # a deleted line
        "feature names": data.replace(b"spend_7d", b"spend_8d", 1),
    }
    for expected, damaged in cases.items():
        with pytest.raises(ModelFileError, match=expected):
            check_model_text(damaged, FEATURE_NAMES)


def test_the_child_probe_survives_what_kills_lightgbm(env: DecisionEnv) -> None:
    """The structural check is bypassed here: the child itself is killed, the caller is not."""
    half = model_bytes(env, env.broken)
    with pytest.raises(ProbeFailed, match="crashed"):
        probe_model(half, len(FEATURE_NAMES))
    with pytest.raises(ProbeFailed, match="cannot load"):
        probe_model(b"tree\nversion=v4\n", len(FEATURE_NAMES))


def test_loading_the_issue_reproduction_is_refused_not_fatal(env: DecisionEnv) -> None:
    with pytest.raises(ArtifactError, match="not a loadable LightGBM model"):
        PropensityModel.load(env.registry / "versions" / env.broken)


# -- the registry ---------------------------------------------------------------------------------
def test_offers_models_promote_refuses_a_corrupt_model(env: DecisionEnv, tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(env.registry, registry)
    Registry(registry).promote(env.v1, check=False)
    run = subprocess.run([sys.executable, "-m", "offers_cli.main", "models", "promote", "--registry", str(registry),
                          env.broken], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, (run.returncode, run.stderr)
    assert f"version {env.broken} cannot be served, so it is not promoted" in run.stderr
    assert "not a loadable LightGBM model" in run.stderr and "Traceback" not in run.stderr
    assert Registry(registry).aliases()["champion"] == env.v1
    with pytest.raises(RegistryError, match="not promoted"):
        Registry(registry).promote(env.broken, alias="challenger")
    assert Registry(registry).aliases()["challenger"] is None
    assert Registry(registry).promote(env.v2) == env.v2  # a good one still is


def test_offers_models_rollback_refuses_to_restore_a_corrupt_model(env: DecisionEnv, tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(env.registry, registry)
    reg = Registry(registry)
    reg.promote(env.broken, check=False)  # served once, went bad on disk since
    reg.promote(env.v2)
    run = subprocess.run([sys.executable, "-m", "offers_cli.main", "models", "rollback", "--registry", str(registry)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, (run.returncode, run.stderr)
    assert "champion is not rolled back" in run.stderr and "Traceback" not in run.stderr
    assert Registry(registry).aliases()["champion"] == env.v2
    reg.promote(env.v1)
    assert reg.rollback() == env.v2  # a good earlier version is restored


# -- the service -------------------------------------------------------------------------------------
def test_a_reload_refuses_a_corrupt_champion_and_the_old_model_keeps_serving(env: DecisionEnv,
                                                                             tmp_path: Path) -> None:
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path))
    try:
        client = app.test_client()
        env.promote(env.broken)
        resp = client.post("/v1/models/reload", headers=ADMIN)
        assert resp.status_code == 409 and resp.content_type == "application/problem+json"
        problem = resp.get_json()
        assert problem["type"].endswith("model-rejected")
        assert "not a loadable LightGBM model" in problem["detail"] and env.v1 in problem["detail"]
        decided = client.post("/v1/decisions", json={"member_id": "M00000002", "channel": CHANNEL}, headers=DECIDE)
        assert decided.status_code == 200 and decided.get_json()["model_version"] == env.v1
        assert client.get("/readyz").status_code == 200
    finally:
        env.promote(env.v1)
        close_app(app)


def test_a_worker_starting_with_a_corrupt_champion_serves_the_last_known_good(env: DecisionEnv,
                                                                             tmp_path: Path) -> None:
    env.promote(env.v1)
    env.promote(env.broken)  # went bad after its promotion (or promoted before this check existed)
    try:
        app = start_app(env.settings(tmp_path))
        try:
            client = app.test_client()
            ready = client.get("/readyz")
            assert ready.status_code == 200 and ready.get_json()["checks"]["model"]["ok"] is True
            decided = client.post("/v1/decisions", json={"member_id": "M00000002", "channel": CHANNEL},
                                  headers=DECIDE)
            assert decided.status_code == 200 and decided.get_json()["model_version"] == env.v1
            serving = client.get("/v1/models", headers=DECIDE).get_json()["serving"]
            assert serving["version"] == env.v1 and serving["last_known_good_for"] == env.broken
            metrics = client.get("/metrics").get_data(as_text=True)
            assert "offers_model_last_known_good 1.0" in metrics
            assert 'offers_model_reloads_total{result="last_known_good"} 1.0' in metrics
            # a good champion again: swapped in by the next request's check, the alarm goes off
            holder = app.extensions["offers"].decisions.holder
            holder.check_interval = 0.0
            env.promote(env.v2)
            client.get("/v1/models", headers=DECIDE)
            assert holder.wait_idle()
            serving = client.get("/v1/models", headers=DECIDE).get_json()["serving"]
            assert serving["version"] == env.v2 and serving["last_known_good_for"] is None
            assert "offers_model_last_known_good 0.0" in client.get("/metrics").get_data(as_text=True)
        finally:
            close_app(app)
    finally:
        env.promote(env.v1)


def test_without_any_loadable_champion_the_model_is_not_ready(env: DecisionEnv, tmp_path: Path) -> None:
    """A registry whose only champion ever was corrupt: nothing to fall back to, 503, never a crash."""
    registry = tmp_path / "registry"
    (registry / "versions").mkdir(parents=True)
    shutil.copytree(env.registry / "versions" / env.broken, registry / "versions" / env.broken)
    Registry(registry).promote(env.broken, check=False)
    app = start_app(env.settings(tmp_path, registry=registry))
    try:
        client = app.test_client()
        ready = client.get("/readyz").get_json()
        assert ready["checks"]["model"]["ok"] is False
        assert "not a loadable LightGBM model" in ready["checks"]["model"]["detail"]
        resp = client.post("/v1/decisions", json={"member_id": "M00000002", "channel": CHANNEL}, headers=DECIDE)
        assert resp.status_code == 503 and "not loaded" in json.loads(resp.data)["detail"]
    finally:
        close_app(app)
