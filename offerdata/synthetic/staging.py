"""Writing every table of a data directory at once, all or nothing.

Tables are streamed into a hidden staging directory next to the target, one
``pyarrow.parquet.ParquetWriter`` per table and one row group per chunk; only when
every table is complete are the files moved into the target with ``os.replace``. A
failure (or Ctrl-C) removes the staging directory and leaves the target untouched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq


class StagedTables:
    """A context manager holding one open Parquet writer per table in a staging directory."""

    def __init__(self, out_dir: str | os.PathLike[str], schemas: dict[str, pa.Schema]):
        """Prepare to write ``schemas`` (table name -> Arrow schema) into ``out_dir``."""
        self.out = Path(out_dir)
        self.schemas = schemas
        self.rows = dict.fromkeys(schemas, 0)
        self.staging: Path | None = None
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")
        self.pending: Future[None] | None = None

    def __enter__(self) -> StagedTables:
        """Create the staging directory beside the target and open every writer (empty tables too)."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.out.name}-synthetic-", dir=self.out.parent))
        for name, schema in self.schemas.items():
            self.writers[name] = pq.ParquetWriter(self.staging / f"{name}.parquet", schema,
                                                  compression="snappy")
        return self

    def write(self, name: str, table: pa.Table) -> None:
        """Append ``table`` to table ``name`` as one or more row groups."""
        if table.num_rows:
            self.writers[name].write_table(table, row_group_size=1 << 20)
            self.rows[name] += table.num_rows

    def submit(self, tables: dict[str, pa.Table]) -> None:
        """Write ``tables`` (name -> rows) in the background, after the previous batch finished."""
        self.wait()
        self.pending = self.pool.submit(self._write_all, tables)

    def _write_all(self, tables: dict[str, pa.Table]) -> None:
        """Write one batch of tables, in order."""
        for name, table in tables.items():
            self.write(name, table)

    def wait(self) -> None:
        """Block until the batch in flight is written; re-raise its error, if any."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Finish writing, then publish the files on success or discard them on failure."""
        assert self.staging is not None
        failed = exc_type is not None
        try:
            try:
                self.wait()
            except BaseException:
                failed = True
                if exc_type is None:
                    raise  # the background write failed: that is the error to report
            finally:
                self.pool.shutdown(wait=True)
                for writer in self.writers.values():
                    writer.close()
            if not failed:
                self.out.mkdir(parents=True, exist_ok=True)
                for name in self.schemas:
                    os.replace(self.staging / f"{name}.parquet", self.out / f"{name}.parquet")
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
