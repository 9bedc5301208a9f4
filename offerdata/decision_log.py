"""Reading the service's decision log: the offers each decision showed, as exposures.

The runtime appends one NDJSON line per committed decision to ``decisions-*.ndjson``
segments (format in :mod:`runtime.decisions.decision_log`; this package reads the
documented format with its own code and never imports the runtime). Every candidate a
decision *showed* (returned to the app, or put in a campaign's e-mail) is an exposure:
``exposure_id`` ``<decision_id>:<offer_id>``, its decision's time and channel, arm
``treatment`` and ``arm_probability`` the probability with which it was shown (the policy's,
times 1 - the offer's control share). An offer held back as its randomized control group
(``OFFER_CONTROL``) is an exposure with arm ``control`` and the control share as probability.
So a campaign sent through the batch endpoint or ``offers batch`` without any impression
events still becomes training data.

A line that is not JSON, lacks an id, or has a ``ts`` outside the supported range is
skipped and reported as ``"<segment> line <n>: <problem>"`` (a torn last line after a crash
is one of these); decisions are de-duplicated by ``decision_id``, first kept.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from models.timerange import DESCRIPTION, in_range

COLUMNS = ["exposure_id", "member_id", "offer_id", "exposed_at_utc", "channel", "decision_id", "arm",
           "arm_probability"]


def _problem(record: object) -> str | None:
    """Why a decision line cannot be read (None when it can)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for key in ("decision_id", "member_id", "channel"):
        if not isinstance(record.get(key), str):
            return f"{key} is missing"
    if not isinstance(record.get("shown"), list):
        return "shown is missing"
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


def _probability(value: object) -> float | None:
    """A logged probability when it is a usable propensity, in (0, 1]."""
    return float(value) if isinstance(value, int | float) and 0.0 < float(value) <= 1.0 else None


def _exposures(record: dict[str, Any]) -> list[dict[str, object]]:
    """One decision's exposures: its shown offers (treatment) and its offers held back as their
    control group (``OFFER_CONTROL``; control, with the control share as probability)."""
    raw_shares, raw_candidates = record.get("control_shares"), record.get("candidates")
    shares: dict[str, Any] = raw_shares if isinstance(raw_shares, dict) else {}
    candidates: list[Any] = raw_candidates if isinstance(raw_candidates, list) else []
    base = {"member_id": record["member_id"], "exposed_at_utc": record["ts"], "channel": record["channel"],
            "decision_id": record["decision_id"]}
    out: list[dict[str, object]] = []
    for cand in record["shown"]:
        if isinstance(cand, dict) and isinstance(cand.get("offer_id"), str):
            p = _probability(cand.get("probability"))
            share = _share(shares.get(cand["offer_id"]))
            out.append({**base, "exposure_id": f"{record['decision_id']}:{cand['offer_id']}",
                        "offer_id": cand["offer_id"], "arm": "treatment",
                        "arm_probability": None if p is None else p * (1.0 - share)})
    excluded = record.get("excluded")
    held = excluded.get("OFFER_CONTROL", []) if isinstance(excluded, dict) else []
    for j in held:
        if isinstance(j, int) and 0 <= j < len(candidates) and isinstance(candidates[j], str):
            offer = candidates[j]
            out.append({**base, "exposure_id": f"{record['decision_id']}:{offer}", "offer_id": offer,
                        "arm": "control", "arm_probability": _probability(shares.get(offer))})
    return out


def _share(value: object) -> float:
    """A logged control share in [0, 1) (0 when absent or unusable)."""
    return float(value) if isinstance(value, int | float) and 0.0 <= float(value) < 1.0 else 0.0


def iter_decisions(directory: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], int, list[str]]:
    """Every readable logged decision in ``directory``, de-duplicated by ``decision_id`` (first kept).

    Returns (decision records, duplicates dropped, rejected lines as ``"<segment> line <n>:
    <problem>"``). A directory without decision segments gives no records.
    """
    records: list[dict[str, Any]] = []
    rejected: list[str] = []
    seen: set[str] = set()
    duplicates = 0
    for segment in sorted(Path(directory).glob("decisions-*.ndjson")):
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
                if record["decision_id"] in seen:
                    duplicates += 1
                    continue
                seen.add(record["decision_id"])
                records.append(record)
    return records, duplicates, rejected


def read_decisions(directory: str | os.PathLike[str]) -> tuple[pd.DataFrame, int, int, list[str]]:
    """The shown offers of every logged decision in ``directory`` as exposure rows (UTC times).

    Returns (exposures with :data:`COLUMNS`, decisions read, duplicate decisions dropped,
    rejected lines). A directory without decision segments gives an empty frame.
    """
    records, duplicates, rejected = iter_decisions(directory)
    rows = [row for record in records for row in _exposures(record)]
    return pd.DataFrame(rows, columns=COLUMNS), len(records), duplicates, rejected
