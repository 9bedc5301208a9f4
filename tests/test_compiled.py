"""Compiled trees (lleaves) score exactly like LightGBM, or are not used at all."""

from __future__ import annotations

import re
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from models.compiled import CompileError, compile_forest, probe_matrix
from models.model import PropensityModel, sha256_file

pytest.importorskip("lleaves")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small LightGBM binary model with a categorical feature and missing values."""
    rng = np.random.default_rng(3)
    n = 4000
    X = rng.normal(size=(n, 6))
    X[:, 5] = rng.integers(0, 7, size=n)  # categorical codes
    X[rng.random((n, 6)) < 0.1] = np.nan
    logit = 1.5 * np.nan_to_num(X[:, 0]) - np.nan_to_num(X[:, 1]) + (np.nan_to_num(X[:, 5]) % 3 == 1)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1, "min_data_in_leaf": 5},
                        lgb.Dataset(X, y, categorical_feature=[5]), num_boost_round=60)
    path = tmp_path_factory.mktemp("model") / "model.txt"
    booster.save_model(str(path))
    return path


def _booster(path: Path) -> lgb.Booster:
    return lgb.Booster(model_file=str(path))


def test_compiled_trees_reproduce_lightgbm_on_float32_and_float64(model_file: Path, tmp_path: Path) -> None:
    booster = _booster(model_file)
    forest = compile_forest(booster, model_file, sha256_file(model_file), tmp_path)
    rng = np.random.default_rng(0)
    X = rng.normal(scale=2, size=(3000, 6))
    X[:, 5] = rng.integers(-1, 9, size=3000)  # unseen and negative categories too
    X[rng.random(X.shape) < 0.15] = np.nan
    for matrix in (X, X.astype(np.float32), probe_matrix(booster)):
        expected = booster.predict(matrix, num_threads=1)
        np.testing.assert_allclose(forest.predict(matrix), expected, rtol=0, atol=1e-12)


def test_the_cache_is_reused_and_a_damaged_cache_file_is_rebuilt(model_file: Path, tmp_path: Path) -> None:
    booster, sha = _booster(model_file), sha256_file(model_file)
    assert compile_forest(booster, model_file, sha, tmp_path).source == "compiled"
    assert compile_forest(booster, model_file, sha, tmp_path).source == "cache"
    (obj,) = tmp_path.glob("*.o")
    obj.write_bytes(obj.read_bytes()[: obj.stat().st_size // 2])  # truncated: its sha256 no longer matches
    forest = compile_forest(booster, model_file, sha, tmp_path)
    assert forest.source == "compiled"
    probe = probe_matrix(booster)
    np.testing.assert_allclose(forest.predict(probe), booster.predict(probe, num_threads=1), rtol=0, atol=1e-12)
    assert not list(tmp_path.glob("*.tmp*")), "no temporary file is left behind"


def test_trees_that_differ_from_the_booster_by_one_threshold_are_refused(model_file: Path, tmp_path: Path) -> None:
    """The probe puts values on both sides of every threshold, so a nudged one is caught."""
    text = model_file.read_text()
    match = re.search(r"^threshold=([-0-9.e+]+)", text, flags=re.M)
    assert match is not None
    old = float(match.group(1))
    nudged = np.nextafter(old, np.inf) if old != 0 else 1e-300
    altered = tmp_path / "altered.txt"
    altered.write_text(text[: match.start(1)] + repr(float(nudged)) + text[match.end(1):])
    with pytest.raises(CompileError, match="differ from LightGBM"):
        compile_forest(_booster(model_file), altered, sha256_file(altered), tmp_path / "cache")


def test_a_loaded_artifact_scores_the_same_compiled(trained_registry: Path, tmp_path: Path) -> None:
    from models.registry import Registry

    model = PropensityModel.load(Registry(trained_registry).path("champion"))
    probe = probe_matrix(model.booster).astype(np.float32)
    before = model.predict(probe)
    assert model.predictor == "lightgbm"
    assert model.try_compile(tmp_path) is None
    assert model.predictor == "lleaves"
    np.testing.assert_allclose(model.predict(probe), before, rtol=0, atol=1e-12)


def test_a_model_not_loaded_from_an_artifact_is_not_compiled(model_file: Path) -> None:
    from models.model import Calibration

    model = PropensityModel(booster=_booster(model_file), calibration=Calibration())
    assert "artifact" in (model.try_compile() or "")
    assert model.predictor == "lightgbm"


def test_an_unusable_cache_directory_only_costs_the_cache(model_file: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    booster = _booster(model_file)
    forest = compile_forest(booster, model_file, sha256_file(model_file), blocker / "compiled")
    assert forest.source == "compiled"
    probe = probe_matrix(booster)
    np.testing.assert_allclose(forest.predict(probe), booster.predict(probe, num_threads=1), rtol=0, atol=1e-12)


def test_the_cli_and_the_service_share_one_cache_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from models.compiled import default_cache_dir
    from runtime.settings import load_settings

    monkeypatch.delenv("OFFERS_MODEL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "loyalty-offers" / "compiled"
    monkeypatch.setenv("OFFERS_MODEL_CACHE_DIR", str(tmp_path / "shared"))
    assert default_cache_dir() == tmp_path / "shared" == load_settings().model_cache_dir
