"""The points ledger of a running service: earning on ingest, redeeming, adjusting, showing.

Built by the service once its decision engine is loaded (the earn rules need the program,
the catalog and the tier engine). The HTTP layer (:mod:`service.points`) and event ingest
(:func:`runtime.events.ingest.ingest`) call it; it never imports Flask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from models import points_account
from runtime.coupons.codes import Coupon, issue_coupon
from runtime.decisions.limits import COUPON_DAYS
from runtime.decisions.pipeline import DecisionPipeline
from runtime.errors import OffersRuntimeError
from runtime.events.event import FeedbackEvent
from runtime.events.log import EventLog
from runtime.points.challenge_runs import runs
from runtime.points.earning import Earning
from runtime.points.ledger import KIND, MemberFacts, PointsLedger
from runtime.points.referrals import ReferralInfo, link, member_code
from runtime.stores import Store

DAY = 86_400


def _epoch(setup: Any, local_seconds: int) -> int:
    """Local program seconds as epoch seconds."""
    return int(setup.epoch(pd.Timestamp(local_seconds, unit="s")))


class UnknownPlan(OffersRuntimeError, LookupError):
    """The plan id is not in the program's ``points.plans``."""


class UnknownReward(OffersRuntimeError, LookupError):
    """The reward id is not in the program's ``points.rewards``."""


class InsufficientPoints(OffersRuntimeError):
    """The balance does not cover the reward (nothing was burned)."""

    def __init__(self, balance: int, needed: int):
        super().__init__(f"the balance ({balance}) does not cover {needed} points")
        self.balance = balance
        self.needed = needed


@dataclass(frozen=True)
class Redemption:
    """A redeemed reward: the burn's entry (None for a replay of an earlier burn), the balance,
    and the voucher's coupon."""

    status: str
    reward: Any
    entry: dict[str, Any] | None
    balance: int
    coupon: Coupon | None


class PointsService:
    """The ledger bound to one loaded decision engine and store (see the module docstring)."""

    def __init__(self, pipeline: DecisionPipeline, store: Store, log_dir: Path, exponent: int,
                 now: Callable[[], datetime], log_max_bytes: int = 64 << 20,
                 fsync: Literal["request", "none"] = "request"):
        self.earning = Earning(pipeline)
        self.program = pipeline.setup.program
        self.store = store
        self.exponent = exponent
        self._now = now
        self.ledger = PointsLedger(self.program, store, EventLog(log_dir, log_max_bytes, fsync, kind=KIND),
                                   pipeline.setup.zone)

    def now(self) -> int:
        return int(self._now().timestamp())

    def follow(self, pipeline: DecisionPipeline) -> None:
        """Earn by ``pipeline``'s catalog from now on: after a live catalog change (runtime.catalog),
        a points offer created live pays like one loaded at start-up."""
        self.earning = Earning(pipeline)

    def earn(self, events: Sequence[FeedbackEvent]) -> None:
        """Post what new transaction events earn (ingest calls this before updating the state)."""
        postings, facts = self.earning.postings(events, self.exponent, self._now())
        if postings:
            self.ledger.post_many(postings, self.now(), facts)

    def facts(self, member_id: str) -> MemberFacts:
        """The member's join time and birth month from the stored profile (one read)."""
        bundle = self.store.fetch_members([member_id])[0]
        return self.earning.facts(bundle.profile if bundle is not None else None)

    def view(self, member_id: str, last: int = 10) -> dict[str, Any]:
        """Balance, pending, expiring soon, lifetime totals, the last entries (expiry applied) and
        the member's challenge runs with their progress."""
        setup = self.earning.pipeline.setup
        member = self.earning.read([member_id], self._now())[member_id]
        state, lines = member.state, member.lines
        out = self.ledger.view(member_id, self.now(), member.facts, last)
        titles = {c.id: c.title for c in self.program.points.challenges}
        account = self.store.points_account(member_id) if self.program.points.plans else {}
        out["plans"] = [{"plan": p.id, "title": p.title, "expires_at": int(account.get("P" + p.id, 0)) or None,
                         "active": int(account.get("P" + p.id, 0)) > self.now()} for p in self.program.points.plans
                        if "P" + p.id in account]
        out["challenges"] = [{"challenge_id": r.challenge_id, "title": titles[r.challenge_id],
                              "progress": r.progress, "target": r.target, "completed": r.completed,
                              "started_at": _epoch(setup, r.started_at), "ends_at": _epoch(setup, r.ends_at)}
                             for r in runs(setup, state, lines)]
        return out

    def redeem(self, member_id: str, reward_id: str, key: str, channel: str | None = None) -> Redemption:
        """Burn a reward's points once per ``key``; a voucher reward then issues its coupon.

        Raises UnknownReward, InsufficientPoints (nothing burned), StoreUnavailable,
        EventLogError.
        """
        reward = self.ledger.rewards.get(reward_id)
        if reward is None:
            raise UnknownReward(reward_id)
        now = self.now()
        posting = self.ledger.redeem_posting(reward_id, key, now, channel)
        outcome = self.ledger.post(member_id, [posting], now, self.facts(member_id))
        result = outcome.status(posting.cause)
        balance = int(outcome.reply["balance"])
        if result["status"] == "refused":
            raise InsufficientPoints(int(result["balance"]), reward.points)
        entry = next((e for e in outcome.entries if e["cause"] == posting.cause), None)
        coupon = None
        if reward.kind == "voucher" and result["status"] == "applied":
            coupon = issue_coupon(self.store, member_id, str(reward.offer), now, self._voucher_end(reward.offer, now))
        return Redemption(str(result["status"]), reward, entry, balance, coupon)

    def _voucher_end(self, offer_id: str, now: int) -> int:
        """A voucher's coupon lives until its offer ends, else :data:`COUPON_DAYS` days."""
        offer = self.earning.pipeline.setup.catalog[offer_id]
        if offer.ends_at is not None:
            end = self.earning.pipeline.setup.epoch(offer.ends_at)
            if end > now:
                return end
        return now + COUPON_DAYS * DAY

    def peek(self, member_id: str, last: int = 10) -> dict[str, Any]:
        """The member's points as the view shows them, read-only (due expiry applied to a copy,
        bonuses not granted, nothing written): for the operator console's member page."""
        now = self.now()
        account = self.store.points_account(member_id)
        view = points_account.view_at(account, member_id, now)
        soon = now + self.program.points.expiring_soon_days * DAY
        return {"balance": view["balance"], "pending": view["pending"], "debt": view["debt"],
                "expiring_soon_total": sum(p for a, x, p in view["lots"] if x and x <= soon and a <= now),
                "lifetime": view["totals"], "entries": self.store.points_entries(member_id, last),
                "plans": sorted(points_account.active_plans(account, now))}

    def subscribe(self, member_id: str, plan_id: str, key: str) -> dict[str, Any]:
        """Start or renew a paid plan once per ``key`` (its fee is taken by the caller's checkout);
        the plan line is logged first. Raises UnknownPlan, StoreUnavailable, EventLogError."""
        plan = next((p for p in self.program.points.plans if p.id == plan_id), None)
        if plan is None:
            raise UnknownPlan(plan_id)
        now, cause = self.now(), f"plan:{key}"
        fee = self.program.to_minor(plan.fee)
        self.ledger.log.append([{"rec": "plan", "member_id": member_id, "plan": plan.id, "cause": cause,
                                 "fee_minor": fee, "at": now}])
        reply = self.store.subscribe_plan(member_id, plan.id, plan.term_days * DAY, now, cause)
        return {"plan": plan.id, "title": plan.title, "status": reply["status"], "expires_at": reply["expires_at"],
                "fee_minor": fee}

    def referral_code(self, member_id: str) -> ReferralInfo:
        """The member's referral code (drawn the first time) and counts."""
        return member_code(self.store, member_id)

    def refer(self, referee_id: str, code: str) -> str:
        """Link a new member to the holder of ``code`` (module runtime.points.referrals); the referrer.

        Raises UnknownReferralCode, ReferralRefused."""
        rules = self.program.points.referrals
        assert rules is not None
        [(inputs, bundle, _)] = self.earning.pipeline.read_inputs([referee_id], self._now())
        bought = bool(inputs.context.has_history) or (bundle is not None and bundle.state.purchases > 0)
        return link(self.store, referee_id, code, self.now(), rules.max_per_member, bought)

    def adjust(self, member_id: str, points: int, reason: str, actor: str, key: str) -> dict[str, Any]:
        """An admin adjustment once per ``key``; a debit the balance does not cover is refused.

        Returns the status, the entry and the balance. Raises InsufficientPoints.
        """
        now = self.now()
        posting = self.ledger.adjust_posting(points, reason, actor, key, now)
        outcome = self.ledger.post(member_id, [posting], now, self.facts(member_id))
        result = outcome.status(posting.cause)
        if result["status"] == "refused":
            raise InsufficientPoints(int(result["balance"]), -points)
        entry = next((e for e in outcome.entries if e["cause"] == posting.cause), None)
        return {"status": result["status"], "entry": entry, "balance": outcome.reply["balance"]}
