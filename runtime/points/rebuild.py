"""Rebuilding every balance from the durable log, and checking it against the live store.

The points log (:mod:`runtime.points.ledger`) holds every posting before it was applied and
what became of it. Replaying each member's postings in the order they were made (by ``at``,
then by log order), through the same rule the store runs (:mod:`models.points_account`),
skipping causes the store refused, gives each member's account from nothing. A balance that
differs from the live one means an entry was lost or applied twice: the rebuild is the
ledger's audit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models import points_account
from runtime.points.ledger import KIND


@dataclass
class Rebuilt:
    """Every member's account replayed from the log, and how it compares with the store."""

    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    mismatches: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def members(self) -> int:
        return len(self.accounts)


def read_log(log_dir: Path) -> list[dict[str, Any]]:
    """Every line of the points segments in ``log_dir`` (oldest segment first; blank lines skipped)."""
    out: list[dict[str, Any]] = []
    for path in sorted(Path(log_dir).glob(f"{KIND}-*.ndjson")):
        with path.open(encoding="utf-8") as fh:
            out.extend(json.loads(line) for line in fh if line.strip())
    return out


def burns_by_reward(lines: Sequence[Mapping[str, Any]], since: int | None = None,
                    until: int | None = None) -> list[dict[str, Any]]:
    """Points redeemed per reward (and charity cause) between ``since`` and ``until`` (epoch s,
    by when the ledger applied them), from the log's entries, each counted once: redemptions,
    points and distinct members per reward."""
    seen: set[tuple[str, int]] = set()
    groups: dict[tuple[str, str, str], tuple[list[int], set[str]]] = {}
    for line in lines:
        if line.get("rec") != "entry" or line.get("kind") != "burn":
            continue
        member, at = str(line["member_id"]), int(line["at"])
        if (member, int(line["seq"])) in seen or (since is not None and at < since) \
                or (until is not None and at >= until):
            continue
        seen.add((member, int(line["seq"])))
        meta = line.get("m") or {}
        key = (str(meta.get("reward_id", "")), str(meta.get("reward_kind", "")), str(meta.get("charity", "")))
        counts, members = groups.setdefault(key, ([0, 0], set()))
        counts[0] += 1
        counts[1] -= int(line["points"])
        members.add(member)
    return [{"reward_id": r, "kind": k, "cause": c or None, "redemptions": counts[0], "points": counts[1],
             "members": len(members)} for (r, k, c), (counts, members) in sorted(groups.items())]


def ordered_calls(lines: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[int, list[dict[str, Any]]]]]:
    """Each member's ledger calls from log lines, as (moment, postings), in the order the store applied them.

    A posting the store refused at that moment (a burn the balance did not cover) is left out;
    the same cause posted again later (a retry) is kept. Calls are ordered by their moment, then by
    the entry number the store gave their first posting (the outcome lines record it; several
    workers write separate segments, so the log's own order says nothing across them), then by
    the log's order. Both the rebuild and the points table for training (``offers data events``)
    read the ledger through this one ordering."""
    refused = {(r["member_id"], r["cause"], r["at"]) for r in lines if r.get("rec") == "refused"}
    applied = {(str(r["member_id"]), r["cause"]): int(r["seq"]) for r in lines
               if r.get("rec") == "entry" and r.get("kind") != "expire"}
    calls: dict[str, dict[str, list[Any]]] = {}
    for i, line in enumerate(lines):
        if line.get("rec") == "posting" and (line["member_id"], line["posting"]["c"], line["at"]) not in refused:
            member = str(line["member_id"])
            by_call = calls.setdefault(member, {})
            call = by_call.setdefault(str(line.get("call", i)), [int(line["at"]), float("inf"), i, []])
            call[1] = min(call[1], applied.get((member, line["posting"]["c"]), float("inf")))
            call[3].append(line["posting"])
    return {member: [(c[0], c[3]) for c in sorted(by_call.values(), key=lambda c: (c[0], c[1], c[2]))]
            for member, by_call in calls.items()}


def replay(lines: Sequence[Mapping[str, Any]], now: int) -> dict[str, dict[str, Any]]:
    """Each member's account (:func:`models.points_account.view`) at ``now`` from log lines,
    replaying :func:`ordered_calls` through the store's own rule."""
    out = {}
    for member_id, calls in ordered_calls(lines).items():
        fields: dict[str, int] = {}
        causes: dict[str, str] = {}
        for at, group in calls:
            fields, _ = points_account.post(fields, causes, member_id, group, at)
        fields, _ = points_account.post(fields, causes, member_id, [], now)
        out[member_id] = points_account.view(fields, now)
    return out


def rebuild(log_dir: Path, store: Any, now: int) -> Rebuilt:
    """Replay the points log of ``log_dir`` and compare each member's balance and pending points
    with the live store at ``now``. Read-only: one read per member, nothing written."""
    lines = read_log(log_dir)
    result = Rebuilt(replay(lines, now))
    for member_id, account in result.accounts.items():
        live = points_account.view_at(store.points_account(member_id), member_id, now)
        if (live["balance"], live["pending"]) != (account["balance"], account["pending"]):
            result.mismatches[member_id] = (int(account["balance"]), int(live["balance"]))
    return result
