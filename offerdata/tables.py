"""Finding, reading and writing the contract's tables in a data directory.

Every table is one file, ``<name>.parquet`` or ``<name>.csv``; Parquet wins when
both exist. Readers return pandas frames typed by :mod:`models.data_contract`, and
:func:`duckdb_source` gives the SQL expression DuckDB scans for large tables.
Writers go through a temporary file and an atomic rename, so a reader never sees
a half-written table.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from models.data_contract import OPTIONAL_TABLES, TABLES, Table
from offerdata.errors import DataDirError


def table_path(data_dir: str | os.PathLike[str], name: str) -> Path | None:
    """Return the file holding table ``name`` in ``data_dir``, or None when there is none."""
    base = Path(data_dir)
    for ext in (".parquet", ".csv"):
        path = base / f"{name}{ext}"
        if path.is_file():
            return path
    return None


def require_table(data_dir: str | os.PathLike[str], name: str) -> Path:
    """Return the file holding table ``name``; raise DataDirError naming what is missing."""
    if not Path(data_dir).is_dir():
        raise DataDirError(f"data directory {str(data_dir)!r} does not exist")
    path = table_path(data_dir, name)
    if path is None:
        raise DataDirError(f"data directory {str(data_dir)!r} has no {name}.parquet or {name}.csv")
    return path


def duckdb_source(path: Path) -> str:
    """The DuckDB table function that scans ``path``; CSV is read as text so types are ours to check."""
    quoted = str(path).replace("'", "''")
    if path.suffix == ".csv":
        return f"read_csv('{quoted}', all_varchar=true, header=true)"
    return f"read_parquet('{quoted}')"


def coerce(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Cast columns to the contract's logical types (ids to str, money to int64, times to datetime)."""
    out = frame.copy()
    for col in table.columns:
        if col.name not in out.columns:
            continue
        series = out[col.name]
        if col.type == "string":
            out[col.name] = series.astype("string")
        elif col.type == "int":
            out[col.name] = pd.to_numeric(series).astype("Int64" if col.nullable else "int64")
        elif col.type == "float":
            out[col.name] = pd.to_numeric(series).astype("float64")
        elif col.type == "timestamp":
            out[col.name] = pd.to_datetime(series).astype("datetime64[ns]")
        elif col.type == "bool":
            out[col.name] = series.astype("boolean")
    return out


def member_filter(member_ids: Collection[str]) -> list[tuple[str, str, Any]]:
    """A pyarrow ``filters`` list selecting ``member_ids``: their min/max range, then the set.

    The range lets Parquet skip row groups by their ``member_id`` statistics, so a table
    clustered by member (``offers data synthetic`` writes one so) is read only where the
    members are; the set keeps exactly them. File order is kept.
    """
    ids = sorted(set(member_ids))
    return [("member_id", ">=", ids[0]), ("member_id", "<=", ids[-1]), ("member_id", "in", ids)]


def _only_members(frame: pd.DataFrame, member_ids: Collection[str]) -> pd.DataFrame:
    keep = frame["member_id"].astype(str).isin(set(member_ids)).to_numpy(dtype=bool)
    return frame.loc[keep].reset_index(drop=True)


def read_table(
    data_dir: str | os.PathLike[str], name: str, columns: Iterable[str] | None = None,
    member_ids: Collection[str] | None = None,
) -> pd.DataFrame:
    """Read table ``name`` from ``data_dir`` as a pandas frame typed by the contract.

    Optional columns the file lacks are added as nulls, so callers can rely on every
    contract column being present. With ``member_ids``, only those members' rows are
    read (in file order); a Parquet file with a string ``member_id`` is filtered while
    it is read (:func:`member_filter`), anything else after.
    """
    table = TABLES[name] if name in TABLES else OPTIONAL_TABLES[name]
    path = require_table(data_dir, name)
    wanted = list(columns) if columns is not None else None
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=True)
        if member_ids is not None:
            frame = _only_members(frame, member_ids)
        if wanted is not None:
            frame = frame[[c for c in wanted if c in frame.columns]]
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        present = set(schema.names)
        cols = None if wanted is None else [c for c in wanted if c in present]
        if member_ids is None:
            frame = pd.read_parquet(path, columns=cols)
        elif member_ids and schema.field("member_id").type in (pa.string(), pa.large_string()):
            frame = pq.read_table(path, columns=cols, filters=member_filter(member_ids)).to_pandas()
        else:  # no member wanted, or ids stored as another type: filter after reading
            keep = cols if cols is None or "member_id" in cols else [*cols, "member_id"]
            frame = _only_members(pd.read_parquet(path, columns=keep), member_ids)
            frame = frame if cols is None else frame[cols]
    for col in table.columns:
        if col.name not in frame.columns and (wanted is None or col.name in wanted):
            frame[col.name] = pd.Series([None] * len(frame), dtype="object")
    return coerce(frame, table)


def read_table_chunks(data_dir: str | os.PathLike[str], name: str, columns: list[str],
                      rows: int = 1_000_000) -> Iterator[pd.DataFrame]:
    """Table ``name``'s ``columns``, typed as :func:`read_table` types them, ``rows`` at a time.

    For whole-table scans that reduce as they go (a maximum, counts): memory is set by
    ``rows``, not by the table, and every value is the one ``read_table`` gives.
    """
    table = TABLES[name] if name in TABLES else OPTIONAL_TABLES[name]
    path = require_table(data_dir, name)
    if path.suffix == ".csv":
        present = set(pd.read_csv(path, dtype=str, nrows=0).columns)
        cols = [c for c in columns if c in present]
        chunks: Iterable[pd.DataFrame] = pd.read_csv(path, dtype=str, keep_default_na=True, usecols=cols,
                                                     chunksize=rows)
    else:
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        cols = [c for c in columns if c in set(parquet.schema_arrow.names)]
        chunks = (batch.to_pandas() for batch in parquet.iter_batches(batch_size=rows, columns=cols))
    for chunk in chunks:
        yield coerce(chunk.reindex(columns=columns), table)  # a column the file lacks: all missing


def write_table(frame: pd.DataFrame, data_dir: str | os.PathLike[str], name: str) -> Path:
    """Write ``frame`` as ``<data_dir>/<name>.parquet`` atomically (temp file, then rename)."""
    target = Path(data_dir) / f"{name}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, target)
    return target


@contextmanager
def staged_directory(target: str | os.PathLike[str], tag: str) -> Iterator[Path]:
    """A fresh temporary directory beside ``target`` to fill, renamed to ``target`` when the block
    ends without error (a previous ``target`` is replaced whole), removed when it fails: readers
    see the old directory or the complete new one, never part of it."""
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{tag}")
    tmp.mkdir()
    try:
        yield tmp
        old = final.with_name(f".{final.name}.old-{tag}")
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
