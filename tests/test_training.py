"""Training, evaluation, scoring and the registry: the Python API and the CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from models.model import ArtifactError, PropensityModel
from models.registry import Registry, RegistryError
from offers_cli.main import cli
from tests.factory import tiny_tables, write_tiny
from training.train import TrainingError, train_propensity


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "offers_cli.main", *args], capture_output=True, text=True,
                          check=False)


def test_trained_model_beats_random_and_is_registered(trained_registry: Path) -> None:
    reg = Registry(trained_registry)
    champion = reg.resolve("champion")
    model = PropensityModel.load(reg.path(champion))
    meta = model.metadata
    assert meta["version"] == champion
    assert set(meta) >= {"feature_names", "categorical_features", "train_end", "training_window",
                         "data_fingerprint", "metrics", "library_versions", "program_config_sha256",
                         "model_sha256", "calibration"}
    metrics = meta["metrics"]
    # the synthetic program carries a real affinity signal: the model must find it
    assert metrics["model"]["roc_auc"] > metrics["random"]["roc_auc"] + 0.1
    assert metrics["model"]["hit@1"] > metrics["random"]["hit@1"]
    assert metrics["model"]["log_loss"] < metrics["model"]["log_loss_prior"]
    assert 0 <= metrics["model"]["ece"] < 0.05
    assert metrics["member_campaign_model"]["roc_auc"] > 0.6
    assert metrics["member_campaign_model"]["groups"] == metrics["member_campaign"]["groups"]
    lo, hi = metrics["model"]["ci95"]["roc_auc"]
    assert lo <= metrics["model"]["roc_auc"] <= hi
    report = (reg.path(champion) / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 5 and "product_spend" in report
    # a document, not a dump: tables, no Python dicts, JSON or 16-digit floats
    assert "<pre>" not in report and "{'" not in report and '{"' not in report
    assert not re.search(r"\d\.\d{6,}", re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", report))
    assert "<th>hit@1</th>" in report and "<th>exposures</th>" in report


@pytest.mark.slow
def test_cli_train_evaluate_score_and_models(tmp_path: Path, syn_dir: Path) -> None:
    reg = tmp_path / "reg"
    trained = run("train", "--data", str(syn_dir), "--registry", str(reg), "--bootstrap", "10")
    assert trained.returncode == 0, trained.stderr
    assert "version " in trained.stdout and "hit@1" in trained.stdout and "product_spend" in trained.stdout
    version = trained.stdout.split("version ")[1].split()[0]

    evaluated = run("evaluate", "--data", str(syn_dir), "--registry", str(reg), "--bootstrap", "0", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    body = json.loads(evaluated.stdout)
    assert body["version"] == version and body["model"]["roc_auc"] > 0.6

    exposures = pd.read_parquet(syn_dir / "exposures.parquet").head(50)
    pairs = pd.DataFrame({"member_id": exposures["member_id"], "offer_id": exposures["offer_id"],
                          "as_of": exposures["exposed_at"].astype(str)})
    pairs.loc[len(pairs)] = {"member_id": "brand-new-member", "offer_id": exposures["offer_id"].iloc[0],
                             "as_of": "2025-06-01 12:00:00"}
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    scored = run("score", "--data", str(syn_dir), "--registry", str(reg), "--pairs", str(tmp_path / "pairs.csv"),
                 "--out", str(tmp_path / "out.parquet"))
    assert scored.returncode == 0, scored.stderr
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert len(out) == len(pairs) and out["propensity"].between(0, 1).all()
    assert list(out.columns[:3]) == ["member_id", "offer_id", "as_of"]

    listed = run("models", "list", "--registry", str(reg))
    assert f"{version} [champion]" in listed.stdout
    shown = run("models", "show", "--registry", str(reg), version)
    assert json.loads(shown.stdout)["version"] == version


def test_promote_and_rollback_are_atomic_and_reversible(tmp_path: Path, trained_registry: Path) -> None:
    reg_dir = tmp_path / "reg"
    shutil.copytree(trained_registry, reg_dir)
    reg = Registry(reg_dir)
    first = reg.resolve("champion")
    # a second version: the same artifact registered again under a new id
    with reg.staging() as staged:
        for f in ("model.txt", "metadata.json"):
            shutil.copy(reg.path(first) / f, staged / f)
        second = reg.register(staged, now=pd.Timestamp("2030-01-01", tz="UTC").to_pydatetime())
    runner = CliRunner()
    result = runner.invoke(cli, ["models", "promote", "--registry", str(reg_dir), second])
    assert result.exit_code == 0 and reg.resolve("champion") == second
    runner.invoke(cli, ["models", "promote", "--registry", str(reg_dir), "--alias", "challenger", first])
    assert reg.aliases() == {"champion": second, "challenger": first}
    result = runner.invoke(cli, ["models", "rollback", "--registry", str(reg_dir)])
    assert result.exit_code == 0 and reg.resolve("champion") == first
    again = runner.invoke(cli, ["models", "rollback", "--registry", str(reg_dir)])
    assert again.exit_code == 1 and "no version before" in again.output
    assert not list(reg_dir.glob(".aliases-*")) and not list(reg_dir.glob(".staging-*"))


@pytest.mark.parametrize("damage", ["truncate", "features", "metadata"])
def test_corrupt_or_mismatched_artifacts_are_refused(tmp_path: Path, trained_registry: Path, damage: str) -> None:
    src = Registry(trained_registry).path("champion")
    art = tmp_path / "art"
    shutil.copytree(src, art)
    if damage == "truncate":
        text = (art / "model.txt").read_bytes()
        (art / "model.txt").write_bytes(text[: len(text) // 2])
        match = "checksum mismatch"
    elif damage == "features":
        meta = json.loads((art / "metadata.json").read_text())
        meta["feature_names"] = [*meta["feature_names"][:-1], "something_else"]
        (art / "metadata.json").write_text(json.dumps(meta))
        match = "do not match the code's"
    else:
        (art / "metadata.json").write_text("{not json")
        match = "not valid JSON"
    with pytest.raises(ArtifactError, match=match):
        PropensityModel.load(art)


def test_promote_refuses_a_corrupt_version(tmp_path: Path, trained_registry: Path) -> None:
    reg_dir = tmp_path / "reg"
    shutil.copytree(trained_registry, reg_dir)
    version = Registry(reg_dir).resolve("champion")
    (reg_dir / "versions" / version / "model.txt").write_text("garbage")
    result = CliRunner().invoke(cli, ["models", "promote", "--registry", str(reg_dir), "--alias", "challenger", version])
    assert result.exit_code == 1 and "checksum mismatch" in result.output
    assert Registry(reg_dir).aliases()["challenger"] is None


def test_bad_inputs_fail_cleanly_and_write_nothing(tmp_path: Path, syn_dir: Path, trained_registry: Path) -> None:
    # a missing registry
    missing = run("evaluate", "--data", str(syn_dir), "--registry", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert not (tmp_path / "nope").exists()
    # --train-end outside the data
    outside = run("train", "--data", str(syn_dir), "--registry", str(tmp_path / "r1"), "--train-end", "1999-01-01")
    assert outside.returncode == 1 and "lies outside the data" in outside.stderr
    assert not (tmp_path / "r1" / "versions").exists() or not any((tmp_path / "r1" / "versions").iterdir())
    # data failing validation
    tables = tiny_tables()
    tables["transactions"].loc[0, "quantity"] = -2
    bad = write_tiny(tmp_path / "bad", tables)
    failed = run("train", "--data", str(bad), "--registry", str(tmp_path / "r2"))
    assert failed.returncode == 1 and "quantity is negative" in failed.stderr
    # an unknown offer in PAIRS, and an unparsable as_of
    pd.DataFrame({"member_id": ["x"], "offer_id": ["no-such-offer"], "as_of": ["2025-06-01"]}).to_csv(
        tmp_path / "p.csv", index=False)
    unknown = run("score", "--data", str(syn_dir), "--registry", str(trained_registry), "--pairs",
                  str(tmp_path / "p.csv"), "--out", str(tmp_path / "o.parquet"))
    assert unknown.returncode == 1 and "not in the catalog" in unknown.stderr and "no-such-offer" in unknown.stderr
    assert not (tmp_path / "o.parquet").exists()
    pd.DataFrame({"member_id": ["x"], "offer_id": ["y"], "as_of": ["soon"]}).to_csv(tmp_path / "q.csv", index=False)
    unparsable = run("score", "--data", str(syn_dir), "--registry", str(trained_registry), "--pairs",
                     str(tmp_path / "q.csv"), "--out", str(tmp_path / "o.parquet"))
    assert unparsable.returncode == 1 and "not timestamps" in unparsable.stderr


def test_api_refuses_unknown_config_and_unknown_versions(tmp_path: Path, syn_dir: Path, trained_registry: Path) -> None:
    with pytest.raises(TrainingError, match="does not exist"):
        train_propensity(syn_dir, tmp_path / "r", config=tmp_path / "missing.yaml")
    with pytest.raises(RegistryError, match="unknown model version"):
        Registry(trained_registry).resolve("20990101-000000-abcdef")


def test_negative_sampling_keeps_positives_and_restores_the_base_rate() -> None:
    from training.design import apply_training_rate, training_rate
    from training.train import sample_test_members, sample_training_rows

    rng = pd.Series(range(100_000))
    rows = pd.DataFrame({"label": (rng % 50 == 0).astype("int8"), "member_id": (rng // 20).astype(str),
                         "offer_id": (rng % 20).astype(str)})
    sampled = sample_training_rows(rows, limit=20_000, seed=3)
    # each row's draw is its own: sampling two halves at the whole's rate keeps the same rows
    rate = training_rate(len(rows), int(rows["label"].sum()), 20_000)
    halves = pd.concat([apply_training_rate(rows.iloc[:40_000], rate, 3), apply_training_rate(rows.iloc[40_000:], rate, 3)],
                       ignore_index=True)
    pd.testing.assert_frame_equal(halves, sampled)
    assert not sample_training_rows(rows, limit=20_000, seed=4).equals(sampled)
    assert len(sampled) < 25_000
    assert sampled["label"].sum() == rows["label"].sum()
    weighted_negatives = sampled.loc[sampled["label"] == 0, "weight"].sum()
    assert abs(weighted_negatives - (rows["label"] == 0).sum()) / (rows["label"] == 0).sum() < 0.03
    assert (sample_training_rows(rows, limit=200_000)["weight"] == 1).all()
    test = sample_test_members(rows, limit=30_000)
    assert 20_000 < len(test) < 40_000
    # whole members only: every sampled member keeps all 20 of its rows
    assert (test.groupby("member_id").size() == 20).all()


def test_bootstrap_auc_table_equals_the_pass_over_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The members table that makes bootstrap AUCs a matrix product gives the row-by-row values."""
    import training.metrics as metrics

    rng = np.random.default_rng(5)
    member = rng.integers(0, 60, 4000)
    y = (rng.random(4000) < 0.05 + 0.05 * (member % 2)).astype(int)
    score = np.round(rng.random(4000) + 0.3 * y, 2)  # many ties
    group = member * 10 + rng.integers(0, 4, 4000)
    table = metrics.bootstrap(y, score, group, member, reps=50)
    monkeypatch.setattr(metrics, "_PAIR_TABLE_LIMIT", 0)
    rows = metrics.bootstrap(y, score, group, member, reps=50)
    assert table.keys() == rows.keys()
    for name in table:
        np.testing.assert_allclose(table[name], rows[name], rtol=1e-12)
    assert table["roc_auc"][0] < metrics.pooled(y, score, False)["roc_auc"] < table["roc_auc"][1]


def test_popularity_baseline_counts_overlapping_redemptions_strictly_before(syn_dir: Path) -> None:
    """The popularity baseline equals its definition, evaluated row by row on continuous-time data."""
    from models.features.definitions import vocabulary_index
    from training.baselines import Redemptions, popularity
    from training.dataset import load_dataset

    ds = load_dataset(syn_dir, validate=False)
    rows = ds.exposures.sample(400, random_state=0)
    hist, overlap = ds.history, vocabulary_index(ds.catalog).offer_overlap.toarray()
    valid = hist.red_offer >= 0
    expected = [overlap[o, hist.red_offer[valid & (hist.red_time < t)]].sum()
                for o, t in zip(rows["o"].to_numpy(), rows["as_of"].to_numpy(), strict=True)]
    assert rows["as_of"].nunique() > 100
    np.testing.assert_array_equal(popularity(ds.catalog, Redemptions.of_history(hist), rows), expected)
