"""The ranking floor (issue 15, part 5): the blend and heuristic candidates, the rule that picks
between them and the tree variant, and the stacked-calibration artifact they are served in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.compiled import probe_matrix
from models.features import FEATURE_NAMES
from models.model import (
    MEMBER_LEVEL_FEATURES,
    ArtifactError,
    Calibration,
    PropensityModel,
    StackedCalibration,
    parse_calibration,
    sha256_file,
)
from models.registry import Registry
from training.metrics import ranking
from training.selection import HEURISTIC_BAR, STACKED_ORDER, below, floor
from training.train import TIE_BREAK, fit_blend, fit_heuristic, fit_member, fit_member_model

SPEND = FEATURE_NAMES.index("product_spend")


def _figures(model: tuple[float, float], blend: tuple[float, float],
             bar: tuple[float, float] = (0.35, 0.62)) -> dict[str, dict[str, float]]:
    """Pooled validation figures of the candidates, as fit_propensity records them."""
    def row(h1: float, h3: float) -> dict[str, float]:
        return {"hit@1": h1, "hit@3": h3, "groups": 200}

    return {"binary_monotone": row(*model), "blend": row(*blend), "heuristic": row(*bar),
            HEURISTIC_BAR: row(*bar)}


def test_a_variant_not_below_the_heuristic_is_served_as_is() -> None:
    chosen, reason = floor(_figures(model=(0.40, 0.62), blend=(0.45, 0.70)), "binary_monotone")
    assert chosen == "binary_monotone" and "not below" in reason  # a tie is not a loss


@pytest.mark.parametrize("model", [(0.30, 0.70), (0.40, 0.60), (0.30, 0.60)])
def test_a_variant_below_the_heuristic_is_not_served_the_blend_is_when_it_holds(model: tuple[float, float]) -> None:
    chosen, reason = floor(_figures(model=model, blend=(0.36, 0.62)), "binary_monotone")
    assert chosen == "blend"
    assert "binary_monotone is below the heuristic" in reason


def test_when_the_blend_loses_too_the_heuristic_is_served() -> None:
    chosen, reason = floor(_figures(model=(0.30, 0.70), blend=(0.36, 0.61)), "binary_monotone")
    assert chosen == "heuristic" and "blend is below the heuristic on hit@3" in reason
    assert below({"hit@1": 0.3, "hit@3": 0.7}, {"hit@1": 0.35, "hit@3": 0.62}) == ["hit@1"]


def _rows(n_groups: int = 300, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows with a spend column, raw tree scores, labels and groups of a toy campaign.

    The redeemed offer tends to be the one with the largest spend; the trees see it too, more noisily.
    """
    rng = np.random.default_rng(seed)
    n = n_groups * size
    X = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float32)
    spend = np.where(rng.random(n) < 0.5, 0.0, rng.gamma(2.0, 20.0, n))
    X[:, SPEND] = spend
    groups = np.repeat(np.arange(n_groups), size)
    utility = np.log1p(spend) + rng.normal(0, 1.0, n)
    y = np.zeros(n, dtype=np.int64)
    for g in range(n_groups):
        rows = np.flatnonzero(groups == g)
        if rng.random() < 0.3:
            y[rows[np.argmax(utility[rows])]] = 1
    raw = 1 / (1 + np.exp(-(np.log1p(spend) + rng.normal(0, 2.0, n) - 5)))
    return X, raw, y, groups


def test_the_served_heuristic_ranks_exactly_as_the_heuristic() -> None:
    X, raw, y, groups = _rows()
    heuristic = fit_heuristic(X, y, np.ones(len(y)))
    assert heuristic.method == "heuristic" and heuristic.a == TIE_BREAK == 0.0 and heuristic.c > 0
    p = heuristic.apply(raw, X)
    spend = X[:, SPEND].astype(np.float64)
    order = np.argsort(-spend, kind="stable")
    assert np.all(np.diff(p[order]) <= 0)
    same = spend[:, None] == spend[None, :200]  # equal spends get equal scores: ties stay ties
    assert np.array_equal(p[:, None] == p[None, :200], same)
    assert ranking(y, p, groups) == ranking(y, spend, groups)  # the evaluation's own figures, exactly
    # calibrated: the mean prediction matches the base rate it was fitted on
    assert abs(p.mean() - y.mean()) < 0.01


def test_the_blend_weighs_trees_and_spend_and_ranks_at_least_as_well_as_either_here() -> None:
    X, raw, y, groups = _rows()
    blend = fit_blend(raw, X, y, np.ones(len(y)))
    assert blend.method == "blend" and blend.a > 0 and blend.c > 0
    hit = {name: ranking(y, s, groups)["hit@1"]
           for name, s in {"blend": blend.apply(raw, X), "trees": raw, "spend": X[:, SPEND]}.items()}
    assert hit["blend"] >= max(hit["trees"], hit["spend"]) - 0.02


@pytest.fixture
def blend_artifact(tmp_path: Path, trained_registry: Path) -> tuple[Path, PropensityModel]:
    """The shared trained model re-saved with a blend calibration (no retraining)."""
    model = PropensityModel.load(Registry(trained_registry).path("champion"))
    model.calibration = StackedCalibration(a=0.9, c=0.3, b=-0.7, method="blend")
    art = model.save(tmp_path / "blend")
    return art, model


def test_a_blend_artifact_round_trips_and_the_compiled_trees_serve_the_same_scores(
        blend_artifact: tuple[Path, PropensityModel], tmp_path: Path) -> None:
    art, original = blend_artifact
    meta = json.loads((art / "metadata.json").read_text())
    assert meta["calibration"] == {"method": "blend", "a": 0.9, "b": -0.7, "spend_weight": 0.3,
                                   "feature": "product_spend"}
    loaded = PropensityModel.load(art)
    assert loaded.calibration == original.calibration
    probe = probe_matrix(loaded.booster).astype(np.float32)
    probe[:, SPEND] = np.abs(np.nan_to_num(probe[:, SPEND]))
    expected = original.predict(probe)
    served = loaded.predict(probe)
    np.testing.assert_array_equal(served, expected)
    # the spend term is in the served score: same trees, another spend, another probability
    more = probe.copy()
    more[:, SPEND] += 100
    assert np.all(loaded.predict(more) > served)
    assert loaded.try_compile(tmp_path / "cache") is None and loaded.predictor == "lleaves"
    np.testing.assert_allclose(loaded.predict(probe), expected, rtol=0, atol=1e-12)


def test_explanations_of_a_blend_add_up_to_the_served_log_odds(blend_artifact: tuple[Path, PropensityModel]) -> None:
    art, _ = blend_artifact
    model = PropensityModel.load(art)
    X = probe_matrix(model.booster)[:64].astype(np.float32)
    X[:, SPEND] = np.abs(np.nan_to_num(X[:, SPEND]))
    p = model.predict(X)
    raw = model.raw_score(X)
    inside = (raw > 1e-6) & (raw < 1 - 1e-6)  # the logit clip leaves the extremes alone
    contrib = model.contributions(X)
    np.testing.assert_allclose(contrib.sum(axis=1)[inside], np.log(p / (1 - p))[inside], atol=1e-6)


def test_an_old_platt_artifact_still_loads(tmp_path: Path, trained_registry: Path) -> None:
    art = tmp_path / "old"
    shutil.copytree(Registry(trained_registry).path("champion"), art)
    meta = json.loads((art / "metadata.json").read_text())
    meta["calibration"] = {"a": 0.8, "b": 0.4}  # format 1 as first written: no method
    (art / "metadata.json").write_text(json.dumps(meta))
    model = PropensityModel.load(art)
    assert model.calibration == Calibration(0.8, 0.4)
    X = probe_matrix(model.booster)[:16].astype(np.float32)
    np.testing.assert_allclose(model.predict(X), Calibration(0.8, 0.4).apply(model.raw_score(X)))


@pytest.mark.parametrize(("calibration", "match"), [
    ({"method": "blend", "a": 1.0, "b": 0.0, "feature": "product_spend"}, "'spend_weight' must be a number"),
    ({"method": "blend", "a": "heavy", "b": 0.0, "spend_weight": 1.0, "feature": "product_spend"},
     "'a' must be a number"),
    ({"method": "heuristic", "a": 1e-9, "b": 0.0, "spend_weight": float("nan"), "feature": "product_spend"},
     "not finite"),
    ({"method": "blend", "a": 1.0, "b": 0.0, "spend_weight": 1.0, "feature": "category_spend"},
     "feature must be 'product_spend'"),
    ({"method": "isotonic", "a": 1.0}, "unknown calibration method"),
    ([1.0, 0.0], "expected an object"),
    ({"method": "platt", "a": [1], "b": 0.0}, "'a' must be a number"),
])
def test_a_malformed_calibration_is_refused_with_artifact_error(blend_artifact: tuple[Path, PropensityModel],
                                                                calibration: object, match: str) -> None:
    art, _ = blend_artifact
    meta = json.loads((art / "metadata.json").read_text())
    meta["calibration"] = calibration
    (art / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match=match):
        PropensityModel.load(art)


def test_a_stacked_calibration_needs_the_features() -> None:
    cal = parse_calibration({"method": "heuristic", "a": 1e-9, "b": -5.0, "spend_weight": 0.5,
                             "feature": "product_spend"}, "here")
    with pytest.raises(ValueError, match="needs the feature matrix"):
        cal.apply(np.array([0.1]))


def test_training_records_every_candidate_and_the_choice(trained_registry: Path) -> None:
    meta = PropensityModel.load(Registry(trained_registry).path("champion")).metadata
    sel = meta["metrics"]["selection"]
    assert set(sel["candidates"]) >= {"binary_monotone", "binary", "blend", "heuristic", HEURISTIC_BAR}
    assert set(sel["candidates"]) >= {"member", "blend_member"}
    assert sel["chosen"] in {sel["variant"], *STACKED_ORDER} and sel["reason"]
    assert meta["variant"] == sel["chosen"] and meta["booster_variant"] == sel["variant"]
    served = meta["calibration"]
    assert served == sel["calibrations"][sel["chosen"]]
    figures = {k: sel["candidates"][k] for k in (sel["variant"], *STACKED_ORDER, HEURISTIC_BAR)}
    assert all(np.isfinite(f["roc_auc"]) for f in figures.values())
    assert floor(figures, sel["variant"])[0] == sel["chosen"]


def test_the_floor_serves_the_highest_validation_auc_among_candidates_not_below_the_heuristic() -> None:
    figures = _figures(model=(0.30, 0.70), blend=(0.36, 0.62))
    auc = {"binary_monotone": 0.93, "blend": 0.90, "heuristic": 0.82, HEURISTIC_BAR: 0.82}
    figures = {k: v | {"roc_auc": auc[k]} for k, v in figures.items()}
    figures["member"] = figures["heuristic"] | {"roc_auc": 0.91}  # ranks as the heuristic, higher AUC
    chosen, reason = floor(figures, "binary_monotone")
    assert chosen == "member" and "binary_monotone is below" in reason and "highest validation ROC-AUC" in reason
    figures["blend"]["hit@1"] = 0.20  # an AUC win never excuses a ranking loss
    figures["member"]["roc_auc"] = 0.80
    assert floor(figures, "binary_monotone")[0] == "heuristic"


def _member_rows(n_members: int = 200, size: int = 8, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Toy rows where members differ (a member-level activity column drives redemption) and offers
    differ by spend (often 0, so many ties); member-level columns are equal within each group."""
    X, _, _, groups = _rows(n_members, size, seed)
    rng = np.random.default_rng(seed)
    activity = rng.gamma(2.0, 50.0, n_members)
    X[:, FEATURE_NAMES.index("spend_90d")] = activity[groups]
    X[:, FEATURE_NAMES.index("offer_value")] = rng.random(len(X))  # an offer feature it must not read
    logit_p = -4 + 0.02 * activity[groups] + 0.5 * np.log1p(X[:, SPEND])
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-logit_p))).astype(np.int64)
    return X, y, groups


def test_the_member_term_never_reorders_a_members_offers() -> None:
    X, y, groups = _member_rows()
    w = np.ones(len(y))
    everything = np.ones(len(y), dtype=bool)
    member = fit_member_model(X, y, w, everything, None, rounds=30)
    used = {n for n, k in zip(member.feature_name(), member.feature_importance("split"), strict=True) if k}
    assert used and used <= {*MEMBER_LEVEL_FEATURES, "product_spend"}
    m = member.predict(X)
    cal = fit_member(m, X, y, w)
    assert cal.method == "member" and cal.a == 0.0 and cal.d > 0 and cal.c > 0
    p = cal.apply(np.full(len(y), 0.5), X, m)
    spend = X[:, SPEND].astype(np.float64)
    for g in range(groups.max() + 1):
        rows = np.flatnonzero(groups == g)
        s, q = spend[rows], p[rows]
        assert np.array_equal(s[:, None] > s[None, :], q[:, None] > q[None, :])  # same order
        assert np.array_equal(s[:, None] == s[None, :], q[:, None] == q[None, :])  # same ties
    assert ranking(y, p, groups) == ranking(y, spend, groups)  # hit@k exactly the heuristic's
    # ... while members move against each other: the pooled ranking is no longer spend's
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(y, p) > roc_auc_score(y, spend) + 0.05


@pytest.fixture
def member_artifact(tmp_path: Path, trained_registry: Path) -> tuple[Path, PropensityModel]:
    """The shared trained model re-saved with a member model and a member calibration."""
    model = PropensityModel.load(Registry(trained_registry).path("champion"))
    X, y, _ = _member_rows()
    model.member_booster = fit_member_model(X, y, np.ones(len(y)), np.ones(len(y), dtype=bool), None, rounds=30)
    model.calibration = StackedCalibration(a=0.0, c=0.4, b=-3.0, method="member", d=0.8)
    return model.save(tmp_path / "member"), model


def test_a_member_artifact_round_trips_through_predict_and_the_compiled_path(
        member_artifact: tuple[Path, PropensityModel], tmp_path: Path) -> None:
    art, original = member_artifact
    meta = json.loads((art / "metadata.json").read_text())
    assert meta["calibration"]["method"] == "member" and meta["calibration"]["member_weight"] == 0.8
    assert set(meta["member_model"]) == {"text", "sha256", "features"}  # the artifact stays two files
    assert {"model.txt", "metadata.json"} <= {p.name for p in art.iterdir()}
    assert not [p for p in art.iterdir() if "member" in p.name]
    loaded = PropensityModel.load(art)
    assert loaded.calibration == original.calibration and loaded.member_booster is not None
    X, _, _ = _member_rows(40)
    expected = original.predict(X)
    np.testing.assert_array_equal(loaded.predict(X), expected)
    assert loaded.try_compile(tmp_path / "cache") is None
    assert loaded.predictor == "lleaves" and loaded.member_compiled is not None
    np.testing.assert_allclose(loaded.predict(X), expected, rtol=0, atol=1e-12)
    p = loaded.predict(X)
    contrib = loaded.contributions(X)  # explanations still add up to the served log-odds
    np.testing.assert_allclose(contrib.sum(axis=1), np.log(p / (1 - p)), atol=1e-6)


def _edit(art: Path, change: Any) -> None:
    meta = json.loads((art / "metadata.json").read_text())
    change(meta)
    (art / "metadata.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(("change", "match"), [
    (lambda m: m.pop("member_model"), "'member_model' is missing"),
    (lambda m: m.update(member_model=["member_model.txt"]), "'member_model' is not an object"),
    (lambda m: m["member_model"].pop("text"), "malformed 'member_model'"),
    (lambda m: m["member_model"].update(text="tree\nnot a model"), "checksum mismatch"),
    (lambda m: m["member_model"].update(sha256="0" * 64), "checksum mismatch"),
    (lambda m: m["calibration"].pop("member_weight"), "'member_weight' must be a number"),
    (lambda m: m["calibration"].update(member_weight=-1.0), "could reorder"),
    (lambda m: m["calibration"].update(a=0.5), "could reorder"),
    (lambda m: m["calibration"].update(spend_weight=0.0), "could reorder"),
])
def test_malformed_member_metadata_is_refused_with_artifact_error(member_artifact: tuple[Path, PropensityModel],
                                                                  change: Any, match: str) -> None:
    art, _ = member_artifact
    _edit(art, change)
    with pytest.raises(ArtifactError, match=match):
        PropensityModel.load(art)


def test_a_member_model_reading_offer_features_is_refused(member_artifact: tuple[Path, PropensityModel]) -> None:
    art, _ = member_artifact
    full = (art / "model.txt").read_text()  # the full trees split on offer features
    _edit(art, lambda m: m["member_model"].update(text=full, sha256=sha256_file(art / "model.txt")))
    with pytest.raises(ArtifactError, match="splits on offer-level features"):
        PropensityModel.load(art)
