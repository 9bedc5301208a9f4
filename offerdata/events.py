"""Turning the service's durable event log into contract rows, so training sees live feedback.

The service appends every accepted event to NDJSON segments (docs/events.md). This
module reads them (de-duplicating by ``event_id``, keeping the first, as the log is
at-least-once) and merges them into a copy of a data directory:

* ``transaction`` events with a ``product_id`` become purchase lines (quantity 1),
* the decision log's shown offers become exposures with their arm and probability
  (:mod:`offerdata.decision_log`; ``exposure_id`` = ``<decision_id>:<offer_id>``), and an
  ``impression`` event of a logged decision's offer confirms that exposure rather than
  adding another,
* other ``impression`` events become exposures (``exposure_id`` = ``event_id``),
* ``redeem`` events become redemptions (``redemption_id`` = ``event_id``),
* the points log's calls become the optional ``points`` table (:mod:`offerdata.points_export`),
  from which training computes point-balance features,
* members seen only in events (or only in the points log) are added to ``members``.

Clicks and dismissals have no place in the contract and are counted, not merged;
transactions without a product are counted and skipped. Log times are UTC; they are
converted to the program's local time (``timezone``), the contract's convention. The
merged directory is written to a staging directory and moved into place, then it must
pass validation like any other input.

A log line that cannot be merged (not JSON, no id, a ``ts`` outside the supported time
range of :mod:`models.timerange`) is skipped and reported with its segment and line
number; the merge goes on with the other lines.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from models.data_contract import OPTIONAL_TABLES, TABLES
from models.timerange import DESCRIPTION, in_range
from offerdata.decision_log import read_decisions
from offerdata.points_export import log_calls, merged_points
from offerdata.tables import DataDirError, coerce, read_table, table_path, write_table


@dataclass
class MergeSummary:
    """What the merge read, added and skipped."""

    events: int = 0
    duplicates: int = 0
    decisions: int = 0
    duplicate_decisions: int = 0
    #: "<segment> line <n>: <problem>" for every line skipped as unusable
    rejected: list[str] = field(default_factory=list)
    added: dict[str, int] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)


#: Clock skew allowed before an event's ``ts`` counts as stamped in the future (after the service
#: received it): the service's ``future_timestamp`` data-quality counter and ``offers monitor``.
FUTURE_TOLERANCE_SECONDS = 300


def _problem(record: object) -> str | None:
    """Why a log line cannot be merged (None when it can): not an object, no id, bad ``ts``."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for key in ("event_id", "member_id", "type"):
        if not isinstance(record.get(key), str):
            return f"{key} is missing"
    ts = record.get("ts")
    try:
        moment = datetime.fromisoformat(ts) if isinstance(ts, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        return f"ts {ts!r} is not an RFC 3339 timestamp with an offset"
    if not in_range(moment):
        return f"ts {ts!r} is outside the supported range ({DESCRIPTION})"
    return None


def read_log(directory: str | os.PathLike[str]) -> tuple[pd.DataFrame, int, list[str]]:
    """Every usable event in the log directory's segments, de-duplicated by event_id (first kept).

    Returns (events, duplicates dropped, rejected lines). A line that is not JSON, lacks an
    id or has a ``ts`` outside models.timerange's range is skipped and reported as
    ``"<segment> line <n>: <problem>"``; it never stops the merge.
    """
    path = Path(directory)
    if not path.is_dir():
        raise DataDirError(f"event log directory {str(directory)!r} does not exist")
    records = []
    rejected: list[str] = []
    for segment in sorted(path.glob("events-*.ndjson")):
        with open(segment, encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    rejected.append(f"{segment.name} line {number}: not JSON ({exc.msg})")
                    continue
                problem = _problem(record)
                if problem is not None:
                    rejected.append(f"{segment.name} line {number}: {problem}")
                    continue
                records.append(record)
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return frame, 0, rejected
    before = len(frame)
    frame = frame.drop_duplicates("event_id", keep="first").reset_index(drop=True)
    return frame, before - len(frame), rejected


def _local(ts: pd.Series, timezone: str) -> pd.Series:
    return pd.to_datetime(ts, utc=True).dt.tz_convert(timezone).dt.tz_localize(None).astype("datetime64[ns]")


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series([None] * len(frame), index=frame.index)


def event_rows(events: pd.DataFrame, timezone: str, summary: MergeSummary) -> dict[str, pd.DataFrame]:
    """Contract rows (transactions, exposures, redemptions) from de-duplicated log events."""
    if events.empty:
        return {}
    kind = events["type"]
    for name in ("click", "dismiss"):
        summary.skipped[name] = int((kind == name).sum())
    tx = events[kind == "transaction"]
    has_product = _col(tx, "product_id").notna()
    summary.skipped["transaction without product_id"] = int((~has_product).sum())
    tx = tx[has_product]
    basket = _col(tx, "basket_id").fillna(tx["event_id"])
    transactions = pd.DataFrame({
        "member_id": tx["member_id"].astype(str), "purchased_at": _local(tx["ts"], timezone),
        "basket_id": basket.astype(str), "product_id": _col(tx, "product_id").astype(str), "quantity": 1,
        "amount_minor": pd.to_numeric(_col(tx, "amount_minor")).fillna(0).astype("int64"),
        "discount_minor": pd.to_numeric(_col(tx, "discount_minor")).fillna(0).astype("int64"),
        "coupon_discount_minor": pd.to_numeric(_col(tx, "coupon_discount_minor")).fillna(0).astype("int64"),
    })
    imp = events[kind == "impression"]
    exposures = pd.DataFrame({
        "exposure_id": imp["event_id"].astype(str), "member_id": imp["member_id"].astype(str),
        "offer_id": _col(imp, "offer_id").astype(str), "exposed_at": _local(imp["ts"], timezone),
        "channel": _col(imp, "channel").fillna("app").astype(str), "decision_id": _col(imp, "decision_id"),
    })
    red = events[kind == "redeem"]
    redemptions = pd.DataFrame({
        "redemption_id": red["event_id"].astype(str), "member_id": red["member_id"].astype(str),
        "offer_id": _col(red, "offer_id").astype(str), "redeemed_at": _local(red["ts"], timezone),
    })
    return {"transactions": transactions, "exposures": exposures, "redemptions": redemptions}


def decision_exposures(log_dir: str | os.PathLike[str], decision_dir: str | os.PathLike[str] | None,
                       rows: dict[str, pd.DataFrame], offers: set[str], timezone: str,
                       summary: MergeSummary) -> None:
    """Add the decision log's shown offers to ``rows["exposures"]``, in place.

    Impressions of a logged decision's offer are dropped (the decision's exposure covers
    them); shown offers the data's offers table lacks (the program's own offers) are
    counted, not merged, like impressions of them.
    """
    shown, decisions, duplicates, rejected = read_decisions(decision_dir or log_dir)
    summary.decisions, summary.duplicate_decisions = decisions, duplicates
    summary.rejected.extend(rejected)
    if shown.empty:
        return
    known = shown["offer_id"].isin(offers)
    summary.skipped["shown offer not in the data's offers"] = int((~known).sum())
    shown = shown[known]
    exposures = rows.get("exposures", pd.DataFrame(columns=["exposure_id", "decision_id", "offer_id"]))
    logged = set(zip(shown["decision_id"], shown["offer_id"], strict=True))
    confirmed = pd.Series([(d, o) in logged for d, o in zip(exposures["decision_id"], exposures["offer_id"],
                                                            strict=True)], index=exposures.index, dtype=bool)
    summary.skipped["impression of a logged decision"] = int(confirmed.sum())
    from_log = pd.DataFrame({
        "exposure_id": shown["exposure_id"], "member_id": shown["member_id"], "offer_id": shown["offer_id"],
        "exposed_at": _local(shown["exposed_at_utc"], timezone), "channel": shown["channel"],
        "decision_id": shown["decision_id"], "arm": shown["arm"], "arm_probability": shown["arm_probability"]})
    rows["exposures"] = pd.concat([exposures[~confirmed], from_log], ignore_index=True)


def points_rows(data_dir: str | os.PathLike[str], log_dir: str | os.PathLike[str],
                summary: MergeSummary) -> pd.DataFrame | None:
    """The ``points`` table the merged directory gets: the data's own (if any) plus the points
    log's calls (:mod:`offerdata.points_export`); None when neither exists."""
    previous = read_table(data_dir, "points") if table_path(data_dir, "points") is not None else None
    has_log = any(Path(log_dir).glob("points-*.ndjson"))
    if previous is None and not has_log:
        return None
    merged = merged_points(previous, log_calls(log_dir) if has_log else None)
    summary.added["points"] = len(merged) - (0 if previous is None else len(previous))
    return merged


def merge_events(data_dir: str | os.PathLike[str], log_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                 timezone: str = "UTC", decision_dir: str | os.PathLike[str] | None = None) -> MergeSummary:
    """Write ``data_dir`` plus the log's events and decisions into ``out_dir`` (atomically).

    Decisions are read from ``decision_dir`` (default: ``log_dir``, where the service
    writes both by default). Returns what was merged.
    """
    events, duplicates, rejected = read_log(log_dir)
    summary = MergeSummary(events=len(events), duplicates=duplicates, rejected=rejected)
    rows = event_rows(events, timezone, summary)
    offers = set(read_table(data_dir, "offers")["offer_id"].astype(str))
    decision_exposures(log_dir, decision_dir, rows, offers, timezone, summary)
    points = points_rows(data_dir, log_dir, summary)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".events-", dir=out.parent))
    try:
        members = read_table(data_dir, "members")
        seen = {m for f in rows.values() for m in f["member_id"]} | set(() if points is None else points["member_id"])
        new_ids = sorted(seen - set(members["member_id"]))
        if new_ids:
            members = pd.concat([members, pd.DataFrame({"member_id": new_ids})], ignore_index=True)
        summary.added["members"] = len(new_ids)
        for name in TABLES:
            frame = members if name == "members" else read_table(data_dir, name)
            if name in rows and len(rows[name]):
                extra = rows[name].reindex(columns=frame.columns.union(rows[name].columns, sort=False))
                frame = pd.concat([frame, extra], ignore_index=True)
                summary.added[name] = len(rows[name])
            write_table(coerce(frame, TABLES[name]), staging, name)
        names = list(TABLES)
        if points is not None:
            write_table(coerce(points, OPTIONAL_TABLES["points"]), staging, "points")
            names.append("points")
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.replace(staging / f"{name}.parquet", out / f"{name}.parquet")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary
