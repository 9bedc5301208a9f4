"""Point-in-time features: no look-ahead, and the online vector equals the offline one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.features import FEATURE_NAMES, channel_codes, compute_features, to_seconds
from models.features.online import catalog_fingerprint, history_from_records, records_from_history
from offerdata.loader import load_catalog, load_history
from tests.factory import tiny_tables, write_tiny

COL = {n: i for i, n in enumerate(FEATURE_NAMES)}


def features_for(data: Path, member: str, offers: list[str], as_of: str) -> np.ndarray:
    catalog = load_catalog(data)
    hist, _, _ = load_history(data, catalog)
    n = len(offers)
    return compute_features(hist, catalog, np.repeat(hist.member_index([member]), n), catalog.offer_index(offers),
                            np.full(n, to_seconds(pd.Series([pd.Timestamp(as_of)]))[0]), channel_codes(["app"] * n))


def test_only_events_strictly_before_as_of_count(tiny_dir: Path) -> None:
    # m2 bought p3 (the product of offer c1-o2) on 2017-02-10 09:15 and redeemed c1-o2 at that moment
    before = features_for(tiny_dir, "m2", ["c1-o2"], "2017-02-10 09:15")[0]
    after = features_for(tiny_dir, "m2", ["c1-o2"], "2017-02-10 09:16")[0]
    assert before[COL["product_spend"]] == 0 and after[COL["product_spend"]] == 1200
    assert before[COL["redemptions_all"]] == 0 and after[COL["redemptions_all"]] == 1
    assert before[COL["product_coupon"]] == 0 and after[COL["product_coupon"]] == 100
    # exposures at as_of itself are not "before"
    at_start = features_for(tiny_dir, "m2", ["c1-o2"], "2017-02-01")[0]
    assert at_start[COL["exposures_all"]] == 0


def test_future_data_never_changes_a_vector(tmp_path: Path) -> None:
    tables = tiny_tables()
    base = write_tiny(tmp_path / "a", tables)
    later = tiny_tables()
    extra = later["transactions"].iloc[[0]].copy()
    extra["purchased_at"] = pd.Timestamp("2017-03-15")
    extra["basket_id"] = "b-future"
    later["transactions"] = pd.concat([later["transactions"], extra], ignore_index=True)
    changed = write_tiny(tmp_path / "b", later)
    a = features_for(base, "m1", ["c1-o1", "c1-o2"], "2017-03-01")
    b = features_for(changed, "m1", ["c1-o1", "c1-o2"], "2017-03-01")
    np.testing.assert_array_equal(a, b)


def online_equals_offline(data: Path, as_of: pd.Timestamp, members: list[str]) -> int:
    """Compare each member's online vector (records round trip, one member) with the batch one."""
    catalog = load_catalog(data)
    hist, _, _ = load_history(data, catalog)
    offers = list(catalog.offer_ids)
    t = to_seconds(pd.Series([as_of]))[0]
    m_idx = hist.member_index(members)
    n = len(offers)
    # offline: every member at once, as training computes it
    offline = compute_features(hist, catalog, np.repeat(m_idx, n), np.tile(np.arange(n), len(members)),
                               np.full(n * len(members), t), channel_codes(["app"] * n * len(members)))
    checked = 0
    for k, (member, m) in enumerate(zip(members, m_idx, strict=True)):
        blob = records_from_history(hist, int(m))
        single = history_from_records(member, blob, int(hist.joined_at[m]))
        online = compute_features(single, catalog, np.zeros(n, dtype=np.int64), np.arange(n), np.full(n, t),
                                  channel_codes(["app"] * n))
        np.testing.assert_array_equal(online, offline[k * n:(k + 1) * n], err_msg=f"member {member}")
        checked += 1
    assert catalog_fingerprint(catalog) == catalog_fingerprint(load_catalog(data))
    return checked


def test_online_vector_equals_offline_tiny(tiny_dir: Path) -> None:
    assert online_equals_offline(tiny_dir, pd.Timestamp("2017-02-20"), ["m1", "m2", "m3"]) == 3


@pytest.mark.slow
def test_online_vector_equals_offline_complete_journey(cj_dir: Path) -> None:
    members = ["1", "105", "1029", "2469", "1238"]
    assert online_equals_offline(cj_dir, pd.Timestamp("2017-09-04"), members) == len(members)


def test_truncated_records_are_refused() -> None:
    with pytest.raises(ValueError, match="not whole records"):
        history_from_records("m1", b"\x00" * 7)


def test_member_partitions_give_the_same_features(syn_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import training.train as train_module
    from training.dataset import load_dataset

    ds = load_dataset(syn_dir, validate=False)
    rows = ds.exposures.iloc[::7]
    whole = train_module.feature_matrix(ds, rows)
    monkeypatch.setattr(train_module, "PARTITION_MEMBERS", 97)
    np.testing.assert_array_equal(train_module.feature_matrix(ds, rows), whole)


def _group_reference(out: dict[str, np.ndarray], m: np.ndarray, c: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """The within-group features as the pandas group-by definition gives them."""
    frame = pd.DataFrame({"m": m, "c": c, "t": t, "p": out["product_spend"], "k": out["category_spend"],
                          "f": out["manufacturer_spend"]})
    groups = frame.groupby(["m", "c", "t"], sort=False)
    ref = {"group_size": groups["p"].transform("size").to_numpy(dtype=float)}
    for col, rank_name, rel_name in (("p", "product_spend_rank", "product_spend_rel"),
                                     ("k", "category_spend_rank", "category_spend_rel"),
                                     ("f", "manufacturer_spend_rank", None)):
        ref[rank_name] = groups[col].rank(method="min", ascending=False).to_numpy(dtype=float)
        if rel_name is not None:
            top = groups[col].transform("max").to_numpy(dtype=float)
            ref[rel_name] = np.where(top > 0, frame[col].to_numpy() / np.where(top > 0, top, 1), 0.0)
    return ref


def test_group_features_match_the_pandas_group_by_definition() -> None:
    """The numpy within-group ranks equal pandas' rank(method="min", descending), ties included."""
    from models.features.compute import group_features

    rng = np.random.default_rng(3)
    for _ in range(100):
        n = int(rng.integers(1, 300))
        m, c = rng.integers(0, 5, n), rng.integers(0, 4, n)
        t = rng.integers(0, 3, n).astype(np.int64) * 86_400
        out = {name: np.full(n, np.nan) for name in FEATURE_NAMES}
        for col in ("product_spend", "category_spend", "manufacturer_spend"):
            out[col] = np.where(rng.random(n) < 0.5, 0.0, rng.integers(0, 5, n) * 1.5)  # many ties and zeros
        ref = _group_reference(out, m, c, t)
        group_features(out, m, c, t)
        for name, expected in ref.items():
            np.testing.assert_allclose(out[name], expected, err_msg=name)


@pytest.mark.parametrize("n_members", [1, 40])
def test_one_moment_path_equals_the_general_path(syn_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                 n_members: int) -> None:
    """Requests sharing one as_of (serving) take the snapshot path; it must give the general path's matrix."""
    import models.features.compute as compute
    from models.program import load_program

    catalog = load_catalog(syn_dir)
    hist = load_history(syn_dir, catalog)[0]
    program = load_program(Path(__file__).resolve().parents[1] / "examples" / "programs" / "synthetic.yaml")
    rng = np.random.default_rng(n_members)
    for quantile in (0.05, 0.5, 0.97):
        members = rng.choice(hist.n_members, n_members, replace=False)
        offers = rng.choice(catalog.n_offers, min(97, catalog.n_offers), replace=False)
        m, o = np.repeat(members, len(offers)), np.tile(offers, n_members)
        as_of = np.full(len(m), int(np.quantile(hist.line_time, quantile)), dtype=np.int64)
        channel = channel_codes(["app"] * len(m))
        monkeypatch.setattr(compute, "SNAPSHOT", True)
        fast = compute_features(hist, catalog, m, o, as_of, channel, program)
        monkeypatch.setattr(compute, "SNAPSHOT", False)
        general = compute_features(hist, catalog, m, o, as_of, channel, program)
        np.testing.assert_array_equal(fast, general)
        assert np.isfinite(fast[:, FEATURE_NAMES.index("product_spend")]).all()
