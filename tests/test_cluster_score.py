"""``offers score`` on a real two-worker Dask ``LocalCluster`` equals the in-process scores.

``training.cluster_score`` reads and scores one member partition per task on the workers; the
client never loads a history (loading one is made to fail in the test process). Partitions are
made small (500 members, 4 tasks plus one for members outside the members table), so the rows
come from several tasks and are put back in the in-process order.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from offerdata import loader
from offers_cli.main import cli
from training import cluster_score as cluster_score_module
from training.cluster_score import cluster_score, member_blocks
from training.dataset import load_dataset
from training.errors import TrainingError
from training.score import all_pairs, score_pairs

pytestmark = pytest.mark.slow  # a LocalCluster and the session's trained registry


@pytest.fixture
def small_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Partitions of 500 members, and workers scoring 64 rows at a time (blocks of whole members)."""
    monkeypatch.setattr(loader, "PARTITION_MEMBERS", 500)
    monkeypatch.setattr(cluster_score_module, "BLOCK_ROWS", 64)


def _no_history_on_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a whole history, or any member range, fails in this (the client's) process."""
    import training.dataset

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the client loaded a history")

    for module, name in ((loader, "load_history"), (loader, "load_member_range"), (training.dataset, "load_history")):
        monkeypatch.setattr(module, name, refuse)


def _pairs(syn_dir: Path) -> pd.DataFrame:
    """Exposure-time pairs over every partition, in shuffled order, two cold-start members and a channel column."""
    exposures = load_dataset(syn_dir).exposures.sample(900, random_state=5)
    pairs = pd.DataFrame({"member_id": exposures["member_id"].astype(str).to_numpy(),
                          "offer_id": exposures["offer_id"].astype(str).to_numpy(),
                          "as_of": exposures["exposed_at"].to_numpy(dtype="datetime64[ns]"),
                          "channel": np.where(np.arange(900) % 3 == 0, "email", "app")})
    cold = pairs.head(2).assign(member_id=["never-seen-1", "never-seen-2"])
    return pd.concat([pairs.iloc[:450], cold, pairs.iloc[450:]], ignore_index=True).assign(row=np.arange(902))


def test_scored_pairs_equal_the_in_process_scores(dask_client: object, syn_dir: Path, trained_registry: Path,
                                                  small_partitions: None, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Given pairs: one file in the pairs' order, and a directory of parts, both with the in-process scores."""
    pairs = _pairs(syn_dir)
    local = score_pairs(syn_dir, trained_registry, pairs)
    assert local["propensity"].nunique() > 100
    _no_history_on_the_client(monkeypatch)
    rows, version = cluster_score(dask_client, syn_dir, trained_registry, "champion", pairs, tmp_path / "s.parquet")
    assert (rows, version) == (len(pairs), local["model_version"].iloc[0])
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), local)
    cluster_score(dask_client, syn_dir, trained_registry, "champion", pairs, tmp_path / "parts")
    parts = sorted((tmp_path / "parts").glob("part-*.parquet"))
    assert len(parts) == 5  # 2,000 members in partitions of 500, and the cold-start members
    together = pd.concat([pd.read_parquet(p) for p in parts]).sort_values("row").reset_index(drop=True)
    pd.testing.assert_frame_equal(together, local)
    assert not list(tmp_path.glob(".parts*")), "the staging directory was left behind"


def test_every_member_by_every_offer_equals_the_in_process_scores(dask_client: object, syn_dir: Path,
                                                                  trained_registry: Path, small_partitions: None,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pairs each worker builds its members x offers at the decision moment; same rows, same order."""
    data = tmp_path / "data"
    shutil.copytree(syn_dir, data)
    (data / "decision_moment.txt").write_text("2024-06-01T09:00:00Z\n")
    local = score_pairs(data, trained_registry, all_pairs(data))
    _no_history_on_the_client(monkeypatch)
    rows, _ = cluster_score(dask_client, data, trained_registry, "champion", None, tmp_path / "all.parquet")
    assert rows == len(local) == 2000 * local["offer_id"].nunique()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "all.parquet"), local)
    cluster_score(dask_client, data, trained_registry, "champion", None, tmp_path / "all")
    parts = sorted((tmp_path / "all").glob("part-*.parquet"))
    assert len(parts) == 4
    pd.testing.assert_frame_equal(pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True), local)


def test_cli_scores_on_a_scheduler_and_refuses_bad_input(dask_client: Any, syn_dir: Path, trained_registry: Path,
                                                         tmp_path: Path) -> None:
    """``offers score --scheduler``: part files written; an unknown offer and a file in a directory's
    place are one-line errors (exit 1) and leave nothing behind."""
    address = dask_client.scheduler.address
    pairs = _pairs(syn_dir).drop(columns="row").head(50)
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    base = ["score", "--data", str(syn_dir), "--registry", str(trained_registry), "--pairs", str(tmp_path / "pairs.csv"),
            "--scheduler", address]
    ok = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "out")])
    assert ok.exit_code == 0, ok.output
    assert "scored 50 pairs with" in ok.output
    assert len(pd.concat([pd.read_parquet(p) for p in (tmp_path / "out").glob("part-*.parquet")])) == 50

    pairs.assign(offer_id=["no-such-offer", *pairs["offer_id"].iloc[1:]]).to_csv(tmp_path / "bad.csv", index=False)
    bad = CliRunner().invoke(cli, [*base[:-3], str(tmp_path / "bad.csv"), *base[-2:], "--out", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "not in the catalog" in bad.output and "'no-such-offer'" in bad.output
    assert not (tmp_path / "x").exists()

    (tmp_path / "taken").write_text("a file")
    taken = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "taken")])
    assert taken.exit_code == 1 and "is a file" in taken.output
    assert (tmp_path / "taken").read_text() == "a file"


def test_unknown_offer_is_refused_before_any_task(dask_client: object, syn_dir: Path, trained_registry: Path,
                                                  tmp_path: Path) -> None:
    pairs = _pairs(syn_dir).head(5).assign(offer_id="nope")
    with pytest.raises(TrainingError, match="not in the catalog"):
        cluster_score(dask_client, syn_dir, trained_registry, "champion", pairs, tmp_path / "s.parquet")
    assert not (tmp_path / "s.parquet").exists()


def test_blocks_hold_whole_members() -> None:
    """A member's rows are never split between blocks (its group features read them together)."""
    m = np.array([3, 1, 3, 2, 2, 2, 1, 0, 3, 0])
    blocks = member_blocks(m, 3)
    assert sorted(np.concatenate(blocks).tolist()) == list(range(len(m)))
    for block in blocks:
        assert set(np.flatnonzero(np.isin(m, m[block])).tolist()) == set(block.tolist())
        assert (np.diff(block) > 0).all()
    assert [sorted(set(m[b].tolist())) for b in blocks] == [[0, 1], [2], [3]]
    assert member_blocks(np.zeros(0, dtype=np.int64), 3) == []
