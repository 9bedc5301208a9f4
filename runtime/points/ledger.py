"""The points ledger: earn from events, redeem rewards, adjust, and show a member's points.

:class:`PointsLedger` joins the pure rules (:mod:`models.points`), the store's atomic posting
(:meth:`runtime.stores.interfaces.PointsStore.post_points`) and the durable log. Every call
follows the same order, so nothing is lost and nothing is applied twice:

1. the postings are computed (what the events earn, the reward's burn, the signup and
   birthday bonuses due);
2. they are appended to the durable log (``points-*.ndjson`` segments beside the events),
   before anything changes: a log failure changes nothing;
3. the store applies them atomically, each cause at most once (a retry after a failure is
   a duplicate, never a second earn or burn);
4. the outcome (the entries, and any refused burn) is appended to the log too: fsynced only
   when it holds a refusal, which the rebuild needs; the entries are an audit trail the
   postings and the store can rebuild, so the OS flushes them.

The log therefore holds every posting ever intended and what became of it;
:mod:`runtime.points.rebuild` replays it into balances and compares them with the store.

Line kinds of the ``points`` log (JSON, one per line): ``{"rec": "posting", "member_id",
"at", "call", "posting": {...}}`` (``call`` is shared by the postings one store call applied), ``{"rec": "entry", ...the entry}`` and ``{"rec": "refused",
"member_id", "cause", "at"}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.points import UNIT, Posting, bonus_postings
from models.program import Program
from runtime.events.log import EventLog

#: Segment kind of the points log (``points-<day>-<host>-<pid>-<seq>.ndjson``).
KIND = "points"
#: Entries kept per member in the store (the log keeps all).
KEEP = 20


def wire(p: Posting) -> dict[str, object]:
    """A posting as the store scripts read it (short keys)."""
    out: dict[str, object] = {"c": p.cause, "k": p.kind, "u": p.units, "ts": p.ts, "x": p.expires_at,
                              "a": p.available_at, "m": dict(p.meta)}
    if p.of is not None:
        out["of"] = p.of
    if p.amount_minor:
        out["amt"] = p.amount_minor
    return out


@dataclass(frozen=True)
class MemberFacts:
    """What the ledger needs to know about a member for bonuses: join time (epoch s) and birth month."""

    joined_at: int | None = None
    birth_month: int | None = None


@dataclass(frozen=True)
class PostOutcome:
    """The store's reply to one member's postings."""

    reply: Mapping[str, Any]

    @property
    def results(self) -> list[dict[str, Any]]:
        return list(self.reply["results"])

    @property
    def entries(self) -> list[dict[str, Any]]:
        return list(self.reply["entries"])

    def status(self, cause: str) -> dict[str, Any]:
        """The result of the posting with ``cause``."""
        return next(r for r in self.results if r["cause"] == cause)


@dataclass
class PointsLedger:
    """The ledger of one program over a store and a log (see the module docstring)."""

    program: Program
    store: Any  # runtime.stores.interfaces.PointsStore
    log: EventLog
    zone: Any  # ZoneInfo
    keep: int = KEEP
    rewards: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.rewards = {r.id: r for r in self.program.points.rewards}

    def post(self, member_id: str, postings: Sequence[Posting], now: int,
             facts: MemberFacts | None = None) -> PostOutcome:
        """Log, apply and log the outcome of ``postings`` (plus the bonuses due) for one member.

        Raises EventLogError before anything changed when the log cannot be written, and
        StoreUnavailable when the store cannot be reached (the postings are logged; a retry
        applies them once).
        """
        return self.post_many({member_id: postings}, now, {member_id: facts} if facts else None)[member_id]

    def post_many(self, postings: Mapping[str, Sequence[Posting]], now: int,
                  facts: Mapping[str, MemberFacts] | None = None) -> dict[str, PostOutcome]:
        """:meth:`post` for several members: one log write for all their postings, one store round
        trip (each member's postings one atomic call), one log write for the outcomes."""
        facts = facts or {}
        due = {m: [wire(p) for p in self.bonuses(now, facts.get(m)) + list(ps)] for m, ps in postings.items()}
        calls = {m: uuid.uuid4().hex[:16] for m in due}
        lines = [{"rec": "posting", "member_id": m, "at": now, "call": calls[m], "posting": w}
                 for m, ws in due.items() for w in ws]
        if lines:
            self.log.append(lines)
        replies = self.store.post_points_many(list(due.items()), now, self.keep)
        out = {m: PostOutcome(reply) for m, reply in zip(due, replies, strict=True)}
        after: list[Mapping[str, object]] = []
        for m, o in out.items():
            after += [{"rec": "entry", **e} for e in o.entries]
            after += [{"rec": "refused", "member_id": m, "cause": r["cause"], "at": now}
                      for r in o.results if r["status"] == "refused"]
        if after:
            self.log.append(after, sync=any(line["rec"] == "refused" for line in after))
        return out

    def bonuses(self, now: int, facts: MemberFacts | None) -> list[Posting]:
        """The signup and birthday postings due now (each cause is applied once)."""
        if facts is None:
            return []
        return bonus_postings(self.program, self.zone, now, facts.joined_at, facts.birth_month)

    def redeem_posting(self, reward_id: str, key: str, now: int, channel: str | None = None) -> Posting:
        """The burn of one reward, caused by the request's idempotency key."""
        reward = self.rewards[reward_id]
        meta: dict[str, object] = {"reward_id": reward.id, "reward_kind": reward.kind}
        if reward.cause:
            meta["charity"] = reward.cause
        if channel:
            meta["channel"] = channel
        return Posting(f"redeem:{key}", "burn", -reward.points * UNIT, now, meta=meta)

    def adjust_posting(self, points: int, reason: str, actor: str, key: str, now: int) -> Posting:
        """An admin adjustment (signed whole points) with its reason and who made it."""
        from models.points import expiry_at

        expires = expiry_at(self.program.points, now, self.zone) if points > 0 else 0
        return Posting(f"adjust:{key}", "adjust", points * UNIT, now, expires_at=expires,
                       meta={"reason": reason, "actor": actor})

    def view(self, member_id: str, now: int, facts: MemberFacts | None = None, last: int = 10) -> dict[str, Any]:
        """The member's points: balance, pending, expiring soon, lifetime totals, last entries.

        Due expiry and bonuses are applied first (and logged), so what is shown is exact now.
        """
        outcome = self.post(member_id, [], now, facts)
        reply = outcome.reply
        soon = now + self.program.points.expiring_soon_days * 86_400
        expiring = [{"points": pts, "expires_at": x} for a, x, pts in reply["lots"]
                    if x and x <= soon and a <= now]
        totals = reply["totals"]
        return {"member_id": member_id, "balance": reply["balance"], "pending": reply["pending"],
                "fraction": reply["fraction"] / UNIT, "debt": reply["debt"],
                "expiring_soon": expiring,
                "expiring_soon_total": sum(e["points"] for e in expiring),
                "lifetime": {"earned": totals["E"], "burned": totals["B"], "expired": totals["X"],
                             "adjusted": totals["A"], "reversed": totals["V"]},
                "entries": self.store.points_entries(member_id, last)}
