"""The decision setup's whole-table scans read a chunk at a time and give the whole-table answers.

``DecisionSetup.load`` (the service, ``offers batch`` and every Dask worker run it) needs the
latest purchase and each ended offer's redemptions per exposure. Both come from tables that grow
with members, so they are scanned ``SCAN_ROWS`` rows at a time; with small chunks (several per
table), on Parquet and on CSV, the answers must be those of reading each table whole.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from offerdata.tables import read_table, read_table_chunks
from runtime.decisions import setup as decision_setup


def _csv_copy(data_dir: Path, out: Path) -> Path:
    out.mkdir()
    for path in data_dir.glob("*.parquet"):
        pd.read_parquet(path).to_csv(out / f"{path.stem}.csv", index=False)
    return out


def _whole_popularity(data_dir: Path, offers: set[str]) -> dict[str, float]:
    exposures = read_table(data_dir, "exposures", columns=["offer_id"])["offer_id"].astype(str)
    redemptions = read_table(data_dir, "redemptions", columns=["offer_id"])["offer_id"].astype(str)
    shown = exposures[exposures.isin(offers)].value_counts()
    shown = shown[shown >= decision_setup.MIN_EXPOSURES]
    used = redemptions[redemptions.isin(offers)].value_counts().reindex(shown.index, fill_value=0)
    return {str(k): float(v) for k, v in (used / shown).items()}


def test_chunked_scans_equal_whole_table_reads(syn_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decision_setup, "SCAN_ROWS", 7_000)
    offers = set(read_table(syn_dir, "offers", columns=["offer_id"])["offer_id"].astype(str).tolist()[::2])
    for data_dir in (syn_dir, _csv_copy(syn_dir, tmp_path / "csv")):
        assert sum(1 for _ in read_table_chunks(data_dir, "exposures", ["offer_id"], 7_000)) >= 3
        purchased = read_table(data_dir, "transactions", columns=["purchased_at"])["purchased_at"]
        assert decision_setup.last_purchase(data_dir) == purchased.max()
        expected = _whole_popularity(data_dir, offers)
        assert len(expected) > 10
        assert decision_setup.popularity(data_dir, offers) == expected


def test_chunks_keep_the_contract_types_and_add_missing_columns(syn_dir: Path) -> None:
    whole = read_table(syn_dir, "exposures", columns=["member_id", "exposed_at", "arm"])
    chunks = list(read_table_chunks(syn_dir, "exposures", ["member_id", "exposed_at", "arm"], 10_000))
    together = pd.concat(chunks, ignore_index=True)
    assert list(together.columns) == ["member_id", "exposed_at", "arm"]
    pd.testing.assert_frame_equal(together, whole, check_dtype=True)
