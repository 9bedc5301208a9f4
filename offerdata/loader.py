"""Loading a data directory into the feature containers (FeatureVocabulary and History).

Shared by training (which adds labels) and by the service's ``offers materialize``
(which writes each member's history into the online store). Reading goes through
:mod:`offerdata.tables`, so CSV and Parquet both work; callers validate first.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from models.data_contract import CONTROL, TABLES
from models.features import FeatureVocabulary, History, to_seconds
from models.features.history import basket_codes_of
from offerdata.tables import coerce, member_filter, read_table, table_path

TRANSACTION_COLUMNS = ["member_id", "purchased_at", "basket_id", "product_id", "amount_minor", "discount_minor",
                       "coupon_discount_minor"]
#: Members per partition of the distributed paths (consecutive rows of the members table): the
#: unit one Dask task loads with :func:`load_member_range`, which sets a worker's memory.
PARTITION_MEMBERS = 20_000


def load_catalog(data_dir: str | os.PathLike[str]) -> FeatureVocabulary:
    """Products, offers and offer_products of ``data_dir`` as a :class:`FeatureVocabulary`."""
    return FeatureVocabulary.from_frames(read_table(data_dir, "products"), read_table(data_dir, "offers"),
                                      read_table(data_dir, "offer_products"))


def read_sent_exposures(data_dir: str | os.PathLike[str], columns: list[str],
                        member_ids: Collection[str] | None = None, positions: bool = False) -> pd.DataFrame:
    """The exposures that were actually sent: every row but control-arm assignments.

    A control assignment records that a member was deliberately *not* sent an offer; it must
    count neither as an exposure in features nor as a training row of a propensity model.
    With ``member_ids``, only those members' exposures (:func:`offerdata.tables.read_table`).
    With ``positions``, a ``file_row`` column gives each row's position in the whole file, so
    rows read for different members can be put back in file order.
    """
    wanted = [*columns, "arm"]
    frame = (exposures_with_positions(data_dir, wanted, member_ids) if positions
             else read_table(data_dir, "exposures", columns=wanted, member_ids=member_ids))
    sent = frame["arm"].isna() | (frame["arm"].astype("string") != CONTROL)
    keep = [*columns, "file_row"] if positions else columns
    return frame.loc[sent.to_numpy(dtype=bool), keep].reset_index(drop=True)


def exposures_with_positions(data_dir: str | os.PathLike[str], columns: list[str],
                             member_ids: Collection[str] | None) -> pd.DataFrame:
    """The exposures table's ``columns`` (of ``member_ids`` only, when given) with ``file_row``.

    On a Parquet file with a string ``member_id`` only the row groups whose statistics can hold
    those members are read; each group's rows are numbered from the rows of the groups before it.
    """
    path = table_path(data_dir, "exposures")
    wanted = None if member_ids is None else set(member_ids)
    if (wanted and path is not None and path.suffix == ".parquet"
            and pq.read_schema(path).field("member_id").type in (pa.string(), pa.large_string())):
        parquet = pq.ParquetFile(path)
        present = set(parquet.schema_arrow.names)
        cols = list(dict.fromkeys([c for c in columns if c in present] + ["member_id"]))
        leaf = parquet.schema_arrow.get_field_index("member_id")
        low, high = min(wanted), max(wanted)
        parts, offset = [], 0
        for i in range(parquet.num_row_groups):
            n = parquet.metadata.row_group(i).num_rows
            stats = parquet.metadata.row_group(i).column(leaf).statistics
            if stats is not None and stats.has_min_max and (stats.max < low or stats.min > high):
                offset += n
                continue
            part = parquet.read_row_group(i, columns=cols).to_pandas()
            part["file_row"] = np.arange(offset, offset + n, dtype=np.int64)
            parts.append(part[part["member_id"].astype(str).isin(wanted).to_numpy(dtype=bool)])
            offset += n
        if not parts:  # no row group can hold these members: an empty frame of the same columns
            empty = parquet.schema_arrow.empty_table().select(cols).to_pandas()
            parts = [empty.assign(file_row=np.zeros(0, dtype=np.int64))]
        frame = pd.concat(parts, ignore_index=True)
        for col in columns:
            if col not in frame.columns:
                frame[col] = pd.Series([None] * len(frame), dtype="object")
        return coerce(frame, TABLES["exposures"])[[*columns, "file_row"]].reset_index(drop=True)
    frame = read_table(data_dir, "exposures", columns=list(dict.fromkeys([*columns, "member_id"])))
    frame["file_row"] = np.arange(len(frame), dtype=np.int64)
    if wanted is not None:
        frame = frame[frame["member_id"].astype(str).isin(wanted).to_numpy(dtype=bool)]
    return frame[[*columns, "file_row"]].reset_index(drop=True)


def _arrow_codes(column: pa.ChunkedArray, index: pd.Index) -> np.ndarray:
    """Positions in ``index`` of a string column's values, via dictionary encoding (no Python strings per row)."""
    encoded = pc.dictionary_encode(column.cast(pa.string())).combine_chunks()
    lookup = index.get_indexer(pd.Index(encoded.dictionary.to_pylist(), dtype=object))
    return lookup[encoded.indices.to_numpy(zero_copy_only=False)] if len(lookup) else np.zeros(0, dtype=np.int64)


def lines_of(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Line arrays as keyword arguments of :func:`dataclasses.replace` on a History (whose other
    fields are not arrays), for the type checker."""
    return dict(arrays)


def _parquet_lines(path: Path, member_index: pd.Index, catalog: FeatureVocabulary,
                   stable_baskets: bool = False) -> dict[str, np.ndarray]:
    """The purchase-line arrays of a History straight from a Parquet transactions table.

    Large tables (51M rows for 1M synthetic members) would cost several GB as pandas strings;
    Arrow's dictionary encoding maps ids to indices without materialising them.
    """
    present = set(pq.read_schema(path).names)
    return _arrow_lines(pq.read_table(path, columns=[c for c in TRANSACTION_COLUMNS if c in present]),
                        member_index, catalog, stable_baskets)


def _basket_codes(table: pa.Table, stable: bool) -> np.ndarray:
    """Each line's basket code: its dictionary position in ``table`` (cheap), or with ``stable``
    the 64-bit hash of its basket id (:func:`models.features.history.basket_codes_of`), which is
    the same whichever rows were read. Features only compare codes, so either gives the same
    features; the online store keeps the codes, so ``offers materialize`` wants stable ones
    (a partition written by a Dask worker then equals the whole-table write byte for byte)."""
    basket = pc.dictionary_encode(table["basket_id"].cast(pa.string())).combine_chunks()
    indices = basket.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    if not stable:
        return indices
    codes = basket_codes_of(basket.dictionary.to_numpy(zero_copy_only=False).astype(object))
    return codes[indices] if len(indices) else np.zeros(0, dtype=np.int64)


def _arrow_lines(table: pa.Table, member_index: pd.Index, catalog: FeatureVocabulary,
                 stable_baskets: bool = False) -> dict[str, np.ndarray]:
    """The purchase-line arrays of a History from an Arrow transactions table (any subset of rows);
    ``stable_baskets``: hashed basket codes (:func:`_basket_codes`)."""
    present = set(table.column_names)

    def money(name: str) -> np.ndarray:
        if name not in present:
            return np.zeros(table.num_rows)
        return table[name].to_numpy(zero_copy_only=False).astype(np.float64)

    return {
        "line_member": _arrow_codes(table["member_id"], member_index).astype(np.int32),
        "line_time": to_seconds(table["purchased_at"].to_numpy()),
        "line_basket": _basket_codes(table, stable_baskets),
        "line_product": _arrow_codes(table["product_id"], pd.Index(catalog.product_ids, dtype=object)).astype(np.int32),
        "line_amount": np.nan_to_num(money("amount_minor")),
        "line_coupon": np.nan_to_num(money("coupon_discount_minor")),
        "line_discount": np.nan_to_num(money("discount_minor")),
    }


def read_points(data_dir: str | os.PathLike[str], member_ids: Collection[str] | None = None) -> pd.DataFrame | None:
    """The optional ``points`` table (the ledger's calls, :mod:`offerdata.points_export`), or None when
    the data keeps no points ledger (the point-balance features then stay missing)."""
    if table_path(data_dir, "points") is None:
        return None
    return read_table(data_dir, "points", member_ids=member_ids)


def load_history(data_dir: str | os.PathLike[str], catalog: FeatureVocabulary,
                 members: Sequence[str] | None = None,
                 stable_baskets: bool = False) -> tuple[History, pd.DataFrame, pd.DataFrame]:
    """Every (or the listed) member's history, plus the raw exposures and redemptions frames.

    ``stable_baskets``: basket codes that do not depend on the rows read (:func:`_basket_codes`;
    the listed-members and CSV paths always have them)."""
    member_frame = read_table(data_dir, "members", columns=["member_id", "joined_at"])
    path = table_path(data_dir, "transactions")
    if members is None and path is not None and path.suffix == ".parquet":
        exposures = read_sent_exposures(data_dir, ["member_id", "offer_id", "exposed_at", "channel"])
        redemptions = read_table(data_dir, "redemptions", columns=["member_id", "offer_id", "redeemed_at"])
        empty = History.from_frames(catalog, member_frame, pd.DataFrame(columns=TRANSACTION_COLUMNS),
                                    exposures, redemptions, read_points(data_dir))
        lines = _parquet_lines(path, pd.Index(empty.member_ids, dtype=object), catalog, stable_baskets)
        return replace(empty, **lines_of(lines)), exposures, redemptions
    transactions = read_table(data_dir, "transactions", columns=TRANSACTION_COLUMNS)
    exposures = read_sent_exposures(data_dir, ["member_id", "offer_id", "exposed_at", "channel"])
    redemptions = read_table(data_dir, "redemptions", columns=["member_id", "offer_id", "redeemed_at"])
    points = read_points(data_dir)
    if members is not None:
        wanted = set(members)
        points = None if points is None else points[points["member_id"].isin(wanted)]
        member_frame = member_frame[member_frame["member_id"].isin(wanted)]
        transactions = transactions[transactions["member_id"].isin(wanted)]
        exposures = exposures[exposures["member_id"].isin(wanted)]
        redemptions = redemptions[redemptions["member_id"].isin(wanted)]
    history = History.from_frames(catalog, member_frame, transactions, exposures, redemptions, points)
    return history, exposures, redemptions


def load_member_range(data_dir: str | os.PathLike[str], catalog: FeatureVocabulary, lo: int, hi: int,
                      stable_baskets: bool = False) -> History:
    """Members ``lo``..``hi``-1 (rows of the members table) as their own History, read from disk.

    Equal to ``load_history(data_dir, catalog)[0].sorted_by_member().partition(lo, hi)``
    for what the features read, without reading anyone else's history: the members rows
    come from the Parquet row groups holding them, and transactions, exposures and
    redemptions are read with a member filter (:func:`offerdata.tables.member_filter`), so
    on a table clustered by member only the row groups holding these members are decoded.
    Row order within a member is the file's, as in the whole-table load. On Parquet, basket
    codes are dictionary positions within the rows read instead of the whole table; a
    basket's lines belong to one member, so the codes keep their order and equality, which
    is all the features use (they sort by member, time, basket and count basket changes).
    With ``stable_baskets`` the codes are hashes of the basket ids instead, the ones a whole-table
    load with ``stable_baskets`` gives (what the online store keeps).
    """
    members = member_rows(data_dir, lo, hi)
    ids = members["member_id"].astype(str).tolist()
    exposures = read_sent_exposures(data_dir, ["member_id", "offer_id", "exposed_at", "channel"], member_ids=ids)
    redemptions = read_table(data_dir, "redemptions", columns=["member_id", "offer_id", "redeemed_at"],
                             member_ids=ids)
    path = table_path(data_dir, "transactions")
    if path is not None and path.suffix == ".parquet":
        schema = pq.read_schema(path)
        if schema.field("member_id").type in (pa.string(), pa.large_string()):
            # the whole-table load's path: Arrow arrays straight into the line arrays
            cols = [c for c in TRANSACTION_COLUMNS if c in set(schema.names)]
            table = (pq.read_table(path, columns=cols, filters=member_filter(ids)) if ids
                     else schema.empty_table().select(cols))
            empty = History.from_frames(catalog, members, pd.DataFrame(columns=TRANSACTION_COLUMNS), exposures,
                                        redemptions, read_points(data_dir, ids))
            lines = _arrow_lines(table, pd.Index(empty.member_ids, dtype=object), catalog, stable_baskets)
            return replace(empty, **lines_of(lines)).sorted_by_member()
    transactions = read_table(data_dir, "transactions", columns=TRANSACTION_COLUMNS, member_ids=ids)
    return History.from_frames(catalog, members, transactions, exposures, redemptions,
                               read_points(data_dir, ids)).sorted_by_member()


def member_count(data_dir: str | os.PathLike[str]) -> int:
    """Rows of the members table, from the Parquet footer when there is one (nothing else is read)."""
    path = table_path(data_dir, "members")
    if path is not None and path.suffix == ".parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    return len(read_table(data_dir, "members", columns=["member_id"]))


def member_rows(data_dir: str | os.PathLike[str], lo: int, hi: int) -> pd.DataFrame:
    """Rows ``lo``..``hi``-1 of the members table (member_id, joined_at), reading only their row groups."""
    path = table_path(data_dir, "members")
    if path is None or path.suffix != ".parquet":
        return read_table(data_dir, "members", columns=["member_id", "joined_at"]).iloc[lo:hi].reset_index(drop=True)
    meta = pq.ParquetFile(path)
    starts = np.cumsum([0] + [meta.metadata.row_group(i).num_rows for i in range(meta.num_row_groups)])
    groups = [i for i in range(meta.num_row_groups) if starts[i] < hi and starts[i + 1] > lo]
    if not groups:
        return read_table(data_dir, "members", columns=["member_id", "joined_at"]).iloc[0:0]
    present = set(meta.schema_arrow.names)
    table = meta.read_row_groups(groups, columns=[c for c in ("member_id", "joined_at") if c in present])
    first = int(starts[groups[0]])
    frame = table.slice(lo - first, hi - lo).to_pandas()
    if "joined_at" not in frame:
        frame["joined_at"] = pd.Series([None] * len(frame), dtype="object")
    return coerce(frame, TABLES["members"])
