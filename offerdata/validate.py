"""Checking a data directory against the loyalty data contract.

:func:`validate` scans every table with DuckDB (out of core, so 100M-row
transaction files are fine) and returns a :class:`Report` listing every problem
with its table, column, check, number of affected rows and one example value.
Nothing downstream (training, materialization, batch decisions) runs on a
directory whose report is not clean: :func:`require_valid` raises instead.

Checks, in order; later checks on a column are skipped once an earlier one made
the column unusable:

1. ``missing_table`` / ``missing_column``: a table file or a required column is absent.
2. ``wrong_type``: a Parquet column has a physical type of the wrong family.
3. ``unparsable``: text that is not a valid value of the column's type (timestamps, numbers).
4. ``null``: nulls in a non-nullable column.
5. ``duplicate``: a primary key value appears more than once.
6. ``dangling``: a reference to a row that does not exist (unknown member, product,
   offer; a redemption of an offer never exposed to that member).
7. Domain rules: ``negative`` quantities and money, ``window_inverted`` offers,
   ``unknown_value`` kinds, channels and experiment arms, ``out_of_range`` birth months, cost
   shares and arm probabilities, ``bad_name`` / ``wrong_type`` member attribute columns,
   ``control_redemption``, ``before_exposure`` and ``outside_window`` redemptions.

The optional ``holdout_transactions`` table (an experiment's held-out outcomes) gets the same
checks as ``transactions`` when it is present.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from models.data_contract import (
    ARMS,
    ATTRIBUTE_NAME_RE,
    ATTRIBUTE_PREFIX,
    CHANNELS,
    CONTROL,
    LIST_SEPARATOR,
    OFFER_KINDS,
    OPTIONAL_TABLES,
    TABLES,
    Column,
    Table,
)
from offerdata.tables import DataDirError, duckdb_source, table_path

_SQL_TYPE = {"string": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "timestamp": "TIMESTAMP", "bool": "BOOLEAN"}
_INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
_ACCEPTED = {
    "string": {"VARCHAR"},
    "int": _INT_TYPES,
    "float": _INT_TYPES | {"FLOAT", "DOUBLE"},
    "timestamp": {"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "TIMESTAMP WITH TIME ZONE", "DATE", "VARCHAR"},
    "bool": {"BOOLEAN"},
}


@dataclass(frozen=True)
class Problem:
    """One contract violation: where it is, what rule it breaks, how many rows, one example."""

    table: str
    column: str | None
    check: str
    rows: int
    example: str | None
    message: str

    def render(self) -> str:
        where = self.table if self.column is None else f"{self.table}.{self.column}"
        example = "" if self.example is None else f" (e.g. {self.example})"
        return f"{where} [{self.check}] {self.rows:,} row(s): {self.message}{example}"


@dataclass
class Report:
    """The outcome of validating one data directory."""

    data_dir: str
    problems: list[Problem] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        """Human-readable summary: row counts, then one line per problem."""
        lines = [f"data directory: {self.data_dir}"]
        for name, count in self.row_counts.items():
            lines.append(f"  {name:<15} {count:>12,} rows")
        if self.ok:
            lines.append("OK: the directory satisfies the data contract")
        else:
            lines.append(f"FAILED: {len(self.problems)} problem(s)")
            lines.extend(f"  - {p.render()}" for p in self.problems)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"data_dir": self.data_dir, "ok": self.ok, "row_counts": self.row_counts,
                "problems": [asdict(p) for p in self.problems]}


class DataDirInvalid(DataDirError):
    """A data directory does not satisfy the contract; carries the full report."""

    def __init__(self, report: Report):
        self.report = report
        super().__init__(report.render())


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _example(value: Any) -> str | None:
    return None if value is None else repr(value if isinstance(value, str) else str(value))


class _Validator:
    """Runs the checks for one directory on one DuckDB connection."""

    def __init__(self, data_dir: Path, con: duckdb.DuckDBPyConnection):
        self.data_dir = data_dir
        self.con = con
        self.problems: list[Problem] = []
        self.row_counts: dict[str, int] = {}
        self.usable: dict[str, set[str]] = {}  # table -> columns fit for value checks

    def add(self, table: str, column: str | None, check: str, rows: int, example: Any, message: str) -> None:
        self.problems.append(Problem(table, column, check, int(rows), _example(example), message))

    def scalar(self, sql: str) -> tuple[Any, ...]:
        row = self.con.execute(sql).fetchone()
        assert row is not None
        return tuple(row)

    def by_parts(self, template: str, *tables: str) -> tuple[Any, ...]:
        """Run a counting query over disjoint parts of its keys and add the parts up.

        ``template`` holds ``{part(COLUMNS)}`` wherever a side of the query is filtered to the
        current part (every side by the same key, so equal keys meet in the same part). Its
        first values must add up over parts (counts, sums); the last is an example, the first
        part's that has one. Why: a GROUP BY or join over 73M string keys (3M synthetic members'
        exposures) does not fit DuckDB's capped memory at once, even spilling; a part of
        :data:`ROWS_PER_PART` rows of the largest table does. Tables that small run in one part.
        """
        n = max(1, -(-max(self.row_counts.get(t, 0) for t in tables) // ROWS_PER_PART))
        total: list[Any] = []
        for i in range(n):
            sql = re.sub(r"\{part\(([^)]*)\)\}", "TRUE" if n == 1 else rf"hash(\1) % {n} = {i}", template)
            row = self.scalar(sql)
            if not total:
                total = list(row)
                continue
            total[:-1] = [(a or 0) + (b or 0) for a, b in zip(total[:-1], row[:-1], strict=True)]
            total[-1] = total[-1] if total[-1] is not None else row[-1]
        return tuple(total)

    # -- structure -------------------------------------------------------------------------
    def load(self, table: Table, optional: bool = False) -> None:
        """Register raw and typed views for ``table`` and run the structural checks."""
        path = table_path(self.data_dir, table.name)
        if path is None and optional:
            return
        if path is None:
            self.add(table.name, None, "missing_table", 0, None,
                     f"no {table.name}.parquet or {table.name}.csv in the directory")
            return
        raw = f"raw_{table.name}"
        try:
            self.con.execute(f"CREATE TEMP VIEW {raw} AS SELECT * FROM {duckdb_source(path)}")
            described = self.con.execute(f"DESCRIBE {raw}").fetchall()
        except duckdb.Error as exc:
            self.add(table.name, None, "unreadable", 0, None, f"cannot read {path.name}: {exc}")
            return
        types = {row[0]: str(row[1]).upper() for row in described}
        self.row_counts[table.name] = int(self.scalar(f"SELECT count(*) FROM {raw}")[0])
        usable: set[str] = set()
        select: list[str] = []
        for col in table.columns:
            if col.name not in types:
                if col.required:
                    self.add(table.name, col.name, "missing_column", self.row_counts[table.name], None,
                             f"required column {col.name!r} ({col.type}) is missing")
                continue
            if self._typed(table, col, raw, types[col.name]):
                usable.add(col.name)
                select.append(self._cast(col, types[col.name]))
        self.usable[table.name] = usable
        if table.name == "members":
            self._attributes(raw, types, path.suffix == ".csv")
        body = ", ".join(select) if select else "NULL AS _empty"
        self.con.execute(f"CREATE TEMP VIEW v_{table.name} AS SELECT {body} FROM {raw}")

    def _attributes(self, raw: str, types: dict[str, str], is_csv: bool) -> None:
        """Check members' ``attr_*`` columns: a well-formed name and a scalar type (see offerdata.attributes)."""
        for name, actual in types.items():
            if not name.startswith(ATTRIBUTE_PREFIX):
                continue
            if not re.match(ATTRIBUTE_NAME_RE, name):
                self.add("members", name, "bad_name", self.row_counts["members"], name,
                         "attribute columns are named attr_ then lower-case letters, digits or _")
                continue
            base = actual.split("(")[0]
            scalar = set().union(*_ACCEPTED.values()) | {'"NULL"', "NULL"}
            if not is_csv and base not in scalar and not base.startswith("DECIMAL"):
                self.add("members", name, "wrong_type", self.row_counts["members"], None,
                         f"attribute column has type {actual}; expected string, int, float, bool or timestamp")

    @staticmethod
    def _cast(col: Column, actual: str) -> str:
        if col.type == "timestamp" and actual.startswith("TIMESTAMP WITH"):
            return f"CAST({_q(col.name)} AS TIMESTAMP) AS {_q(col.name)}"
        return f"TRY_CAST({_q(col.name)} AS {_SQL_TYPE[col.type]}) AS {_q(col.name)}"

    def _typed(self, table: Table, col: Column, raw: str, actual: str) -> bool:
        """Check type family, parseability and nulls of one column; True when it is usable."""
        is_csv = self.con.execute(f"SELECT 1 FROM duckdb_views() WHERE view_name = '{raw}' AND sql ILIKE '%read_csv%'").fetchone()
        base = actual.split("(")[0]
        if base == '"NULL"' or base == "NULL":
            # an all-null column (Parquet null type) carries no values to mistype
            if not col.nullable:
                self.add(table.name, col.name, "null", self.row_counts[table.name], None,
                         "null in a non-nullable column")
            return True
        if not is_csv and base not in _ACCEPTED[col.type] and not base.startswith("DECIMAL"):
            self.add(table.name, col.name, "wrong_type", self.row_counts[table.name], None,
                     f"column has type {actual}, expected {col.type}")
            return False
        if not is_csv and base.startswith("DECIMAL") and col.type != "float":
            self.add(table.name, col.name, "wrong_type", self.row_counts[table.name], None,
                     f"column has type {actual}, expected {col.type}")
            return False
        name = _q(col.name)
        target = _SQL_TYPE[col.type]
        ok = True
        if base == "VARCHAR" and col.type != "string":
            if col.type == "int":
                # Integers must not carry a fractional part: '2.5' is unparsable, not 2.
                bad = f"{name} IS NOT NULL AND (TRY_CAST({name} AS {target}) IS NULL OR TRY_CAST({name} AS DOUBLE) <> TRY_CAST({name} AS {target}))"
            else:
                bad = f"{name} IS NOT NULL AND TRY_CAST({name} AS {target}) IS NULL"
            count, example = self.scalar(f"SELECT count(*), any_value({name}) FROM {raw} WHERE {bad}")
            if count:
                self.add(table.name, col.name, "unparsable", count, example,
                         f"values cannot be parsed as {col.type}")
                ok = False
        if not col.nullable:
            (count,) = self.scalar(f"SELECT count(*) FROM {raw} WHERE {name} IS NULL")
            if count:
                self.add(table.name, col.name, "null", count, None, "null in a non-nullable column")
        return ok

    # -- keys and references ----------------------------------------------------------------
    def has(self, table: str, *columns: str) -> bool:
        return table in self.usable and all(c in self.usable[table] for c in columns)

    def keys(self, table: Table) -> None:
        if not table.key or not self.has(table.name, *table.key):
            return
        cols = ", ".join(_q(c) for c in table.key)
        label = " + ".join(table.key)
        dup_rows, groups, example = self.by_parts(
            f"SELECT coalesce(sum(n), 0), count(*), any_value(k) FROM ("
            f"SELECT concat_ws(' / ', {cols}) AS k, count(*) AS n FROM v_{table.name} "
            f"WHERE {' AND '.join(_q(c) + ' IS NOT NULL' for c in table.key)} AND {{part({cols})}} "
            f"GROUP BY {cols} HAVING count(*) > 1)", table.name)
        if groups:
            self.add(table.name, label, "duplicate", dup_rows, example,
                     f"{groups:,} {label} value(s) appear more than once")

    def references(self, table: Table) -> None:
        for local, target, remote in table.references:
            if not self.has(table.name, *local) or not self.has(target, *remote):
                continue
            cond = " AND ".join(f"t.{_q(a)} = r.{_q(b)}" for a, b in zip(local, remote, strict=True))
            nonnull = " AND ".join(f"t.{_q(a)} IS NOT NULL" for a in local)
            shown = "concat_ws(' / ', " + ", ".join(f"t.{_q(a)}" for a in local) + ")"
            mine = ", ".join(f"t.{_q(a)}" for a in local)
            theirs = ", ".join(f"r.{_q(b)}" for b in remote)
            count, example = self.by_parts(
                f"SELECT count(*), any_value({shown}) FROM v_{table.name} t WHERE {nonnull} AND {{part({mine})}} "
                f"AND NOT EXISTS (SELECT 1 FROM v_{target} r WHERE {cond} AND {{part({theirs})}})",
                table.name, target)
            if count:
                if target == "exposures":
                    msg = "redemption of an offer never exposed to that member"
                else:
                    msg = f"references a {'/'.join(remote)} that is not in {target}"
                self.add(table.name, "+".join(local), "dangling", count, example, msg)

    # -- domain rules ------------------------------------------------------------------------
    def rule(self, table: str, column: str, check: str, needs: tuple[str, ...], where: str,
             shown: str, message: str) -> None:
        if not self.has(table, *needs):
            return
        count, example = self.scalar(f"SELECT count(*), any_value({shown}) FROM v_{table} WHERE {where}")
        if count:
            self.add(table, column, check, count, example, message)

    def domain_rules(self) -> None:
        for col in ("quantity", "amount_minor", "discount_minor", "coupon_discount_minor"):
            self.rule("transactions", col, "negative", (col,), f"{col} < 0", col,
                      f"{col} is negative")
        self.rule("offers", "ends_at", "window_inverted", ("starts_at", "ends_at", "offer_id"),
                  "ends_at < starts_at", "offer_id", "validity window ends before it starts")
        kinds = ", ".join(_lit(k) for k in OFFER_KINDS)
        self.rule("offers", "kind", "unknown_value", ("kind",), f"kind NOT IN ({kinds})", "kind",
                  "unknown offer kind; expected one of " + ", ".join(OFFER_KINDS))
        for col in ("value", "cost_minor", "min_spend_minor", "send_cost_minor", "value_minor"):
            self.rule("offers", col, "negative", (col,), f"{col} < 0", col, f"{col} is negative")
        self.rule("offers", "cost_share", "out_of_range", ("cost_share",),
                  "cost_share < 0 OR cost_share > 1", "cost_share", "cost_share must lie in [0, 1]")
        channels = ", ".join(_lit(c) for c in CHANNELS)
        self.rule("exposures", "channel", "unknown_value", ("channel",), f"channel NOT IN ({channels})",
                  "channel", "unknown channel; expected one of " + ", ".join(CHANNELS))
        self.rule("offers", "channels", "unknown_value", ("channels",),
                  f"trim(channels) <> '' AND NOT list_has_all([{channels}], string_split("
                  f"trim(regexp_replace(channels, '\\s*\\|\\s*', '|', 'g'), ' |'), {_lit(LIST_SEPARATOR)}))",
                  "channels", "unknown channel in the list; expected items from " + ", ".join(CHANNELS))
        arms = ", ".join(_lit(a) for a in ARMS)
        self.rule("exposures", "arm", "unknown_value", ("arm",), f"arm NOT IN ({arms})", "arm",
                  "unknown experiment arm; expected one of " + ", ".join(ARMS))
        self.rule("exposures", "arm_probability", "out_of_range", ("arm_probability",),
                  "arm_probability <= 0 OR arm_probability > 1", "arm_probability",
                  "arm_probability must lie in (0, 1]")
        for col in ("quantity", "amount_minor", "discount_minor", "coupon_discount_minor"):
            self.rule("holdout_transactions", col, "negative", (col,), f"{col} < 0", col, f"{col} is negative")
        self.rule("members", "birth_month", "out_of_range", ("birth_month",),
                  "birth_month < 1 OR birth_month > 12", "birth_month", "birth_month must lie in 1-12")
        self._redemption_timing()

    def _redemption_timing(self) -> None:
        if self.has("redemptions", "member_id", "offer_id") and self.has("exposures", "member_id", "offer_id", "arm"):
            count, example = self.by_parts(
                "SELECT count(*), any_value(r.redemption_id) FROM v_redemptions r "
                "WHERE {part(r.member_id, r.offer_id)} AND NOT EXISTS ("
                "SELECT 1 FROM v_exposures e WHERE e.member_id = r.member_id AND e.offer_id = r.offer_id "
                f"AND coalesce(e.arm, '') <> {_lit(CONTROL)} AND {{part(e.member_id, e.offer_id)}})",
                "redemptions", "exposures")
            if count:
                self.add("redemptions", "member_id+offer_id", "control_redemption", count, example,
                         "redemption of an offer the member was only assigned to as control (never sent)")
        if self.has("redemptions", "member_id", "offer_id", "redeemed_at") and self.has(
                "exposures", "member_id", "offer_id", "exposed_at"):
            count, example = self.by_parts(
                "SELECT count(*), any_value(r.redemption_id) FROM v_redemptions r JOIN ("
                "SELECT member_id, offer_id, min(exposed_at) AS first_seen FROM v_exposures "
                "WHERE {part(member_id, offer_id)} GROUP BY ALL"
                ") e USING (member_id, offer_id) WHERE r.redeemed_at < e.first_seen AND {part(r.member_id, r.offer_id)}",
                "redemptions", "exposures")
            if count:
                self.add("redemptions", "redeemed_at", "before_exposure", count, example,
                         "redeemed before the member was first exposed to the offer")
        if self.has("redemptions", "offer_id", "redeemed_at") and self.has("offers", "offer_id", "starts_at", "ends_at"):
            count, example = self.scalar(
                "SELECT count(*), any_value(r.redemption_id) FROM v_redemptions r JOIN v_offers o USING (offer_id) "
                "WHERE r.redeemed_at < o.starts_at OR r.redeemed_at > o.ends_at")
            if count:
                self.add("redemptions", "redeemed_at", "outside_window", count, example,
                         "redeemed outside the offer's validity window")


def validate(data_dir: str | os.PathLike[str]) -> Report:
    """Check ``data_dir`` against the contract and return every problem found."""
    path = Path(data_dir)
    if not path.is_dir():
        raise DataDirError(f"data directory {str(data_dir)!r} does not exist")
    spill = tempfile.TemporaryDirectory(prefix="offers-validate-")
    con = duckdb.connect(":memory:")
    try:
        bound_memory(con, spill.name)
        v = _Validator(path, con)
        for table in TABLES.values():
            v.load(table)
        for table in OPTIONAL_TABLES.values():
            v.load(table, optional=True)
        everything = [*TABLES.values(), *OPTIONAL_TABLES.values()]
        for table in everything:
            v.keys(table)
        for table in everything:
            v.references(table)
        v.domain_rules()
        return Report(str(path), v.problems, v.row_counts)
    except duckdb.OutOfMemoryException as exc:
        raise DataDirError(f"validating {path} needs more memory than OFFERS_DUCKDB_MEMORY={duckdb_memory()} allows; "
                           f"raise it (e.g. OFFERS_DUCKDB_MEMORY=4GB): {str(exc).splitlines()[0]}") from exc
    finally:
        con.close()
        spill.cleanup()


#: Rows of the largest table one part of a key check or a join reads (:meth:`_Validator.by_parts`):
#: 73M exposures' ids took 884 MB in 8 parts of 9M under a 1GB cap, and failed in one.
ROWS_PER_PART = 4_000_000

#: DuckDB's memory for validating a directory (``OFFERS_DUCKDB_MEMORY``); beyond it, it spills to disk.
DEFAULT_DUCKDB_MEMORY = "1GB"


def duckdb_memory() -> str:
    """The memory DuckDB may use to validate a directory: ``OFFERS_DUCKDB_MEMORY``, else the default."""
    return os.environ.get("OFFERS_DUCKDB_MEMORY", "").strip() or DEFAULT_DUCKDB_MEMORY


def bound_memory(con: duckdb.DuckDBPyConnection, spill_dir: str) -> None:
    """Cap DuckDB's memory and let it spill to ``spill_dir``.

    Why: DuckDB takes up to 80% of the machine's memory by default. Checking the keys of 51M
    purchase lines (1M synthetic members) peaked at 2.4 GB and grows with the data; with a cap
    the client of a Dask run stays bounded (docs/scale-out.md), at some speed.
    """
    limit = duckdb_memory()
    try:
        con.execute(f"SET memory_limit = {_lit(limit)}")
    except duckdb.Error as exc:
        raise DataDirError(f"OFFERS_DUCKDB_MEMORY={limit!r} is not a memory size DuckDB understands "
                           "(e.g. 1GB, 512MB)") from exc
    con.execute(f"SET temp_directory = {_lit(spill_dir)}")


def require_valid(data_dir: str | os.PathLike[str]) -> Report:
    """Validate ``data_dir`` and raise :class:`DataDirInvalid` unless it is clean."""
    report = validate(data_dir)
    if not report.ok:
        raise DataDirInvalid(report)
    return report
