"""The contract's ``points`` table from the service's durable points log, for training.

The ledger writes every call (a member's postings applied in one atomic step) to
``points-*.ndjson`` segments beside the events (docs/points.md). Training needs the balance a
member had at any past moment, so ``offers data events`` turns those calls into rows, in the
order the store applied them (:func:`runtime.points.rebuild.ordered_calls`, the order the
rebuild replays), and :class:`models.features.points_features.PostingsBook` replays them with
the ledger's own rule. Refused burns are left out, as the store refused them.

A data directory merged before keeps its earlier rows: the new log's calls are added, a call
already in the table (same member, moment and postings: the same log read twice) is kept once,
and each member's calls are renumbered in applied order. Replaying a cause twice would be
harmless anyway: the ledger applies each cause at most once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from runtime.points.rebuild import ordered_calls, read_log

COLUMNS = ["member_id", "call", "applied_at", "postings"]


def log_calls(log_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The points log's calls as ``points`` rows (member_id, call, applied_at, postings JSON)."""
    rows = []
    for member, calls in ordered_calls(read_log(Path(log_dir))).items():
        for n, (at, postings) in enumerate(calls):
            rows.append((member, n, at, json.dumps(postings, separators=(",", ":"), sort_keys=True)))
    return pd.DataFrame(rows, columns=COLUMNS)


def merged_points(previous: pd.DataFrame | None, new: pd.DataFrame | None) -> pd.DataFrame:
    """``previous`` rows then ``new`` ones, a repeated call kept once, renumbered per member by
    (moment, earlier table first, call order)."""
    parts = [f[COLUMNS].assign(source=i) for i, f in enumerate((previous, new)) if f is not None and len(f)]
    if not parts:
        return pd.DataFrame({"member_id": pd.Series(dtype=str), "call": pd.Series(dtype="int64"),
                             "applied_at": pd.Series(dtype="int64"), "postings": pd.Series(dtype=str)})
    frame = pd.concat(parts, ignore_index=True)
    frame["member_id"] = frame["member_id"].astype(str)
    frame["applied_at"] = frame["applied_at"].astype("int64")
    frame = frame.sort_values(["member_id", "applied_at", "source", "call"], kind="stable")
    frame = frame.drop_duplicates(["member_id", "applied_at", "postings"], keep="first")
    frame["call"] = frame.groupby("member_id").cumcount().astype("int64")
    return frame[COLUMNS].reset_index(drop=True)
