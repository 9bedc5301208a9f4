"""Referrals: codes, links between a referrer and the member they brought, and their rewards.

A member asks for their code (one per member, kept as long as their state). A new member
quotes it (``link``): the link is recorded once, atomically, unless it is a self-referral, a
loop (the referrer was, directly or up their chain, referred by this member), the new member
was already referred or has already bought, or the referrer reached ``max_per_member``.
The referee's first purchase line of at least ``min_purchase`` within ``window_days`` of the
link pays both (:func:`referral_postings`): causes ``referral:referee`` on the referee's
account and ``referral:<referee>`` on the referrer's, so each is paid once, like every posting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from models.points import UNIT, Posting, available_at, expiry_at
from models.program import Program
from runtime.coupons.codes import generate
from runtime.errors import OffersRuntimeError
from runtime.events.event import FeedbackEvent
from runtime.stores import Store

#: How far up a referrer's chain the loop check walks.
MAX_CHAIN = 20
CODE_PREFIX = "R"
DAY = 86_400


class UnknownReferralCode(OffersRuntimeError, LookupError):
    """No member holds this referral code."""


class ReferralRefused(OffersRuntimeError):
    """The link was refused; ``reason`` says why (self, loop, already_referred, not_new, limit)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ReferralInfo:
    """A member's code, how many members they referred, and who referred them."""

    member_id: str
    code: str
    referrals_made: int
    referred_by: str | None


def member_code(store: Store, member_id: str) -> ReferralInfo:
    """The member's referral code (drawn the first time), with their referral counts."""
    code = ""
    while not code:  # a drawn code collides practically never; then draw again
        code = store.claim_referral_code(member_id, generate(CODE_PREFIX, marker=store.keys.code_marker(member_id)))
    fields = store.referrals([member_id])[0]
    return ReferralInfo(member_id, code, int(fields.get("n") or 0), fields.get("by") or None)


def link(store: Store, referee_id: str, code: str, now: int, limit: int, has_bought: bool) -> str:
    """Record that ``referee_id`` was referred by the holder of ``code``; returns the referrer.

    Raises UnknownReferralCode, or ReferralRefused with the reason (module docstring).
    """
    referrer = store.referral_owner(code)
    if referrer is None:
        raise UnknownReferralCode(code)
    if referrer == referee_id:
        raise ReferralRefused("self")
    if has_bought:
        raise ReferralRefused("not_new")
    ancestor = referrer
    for _ in range(MAX_CHAIN):  # A referred B who referred C: C cannot refer A
        ancestor = store.referrals([ancestor])[0].get("by") or ""
        if not ancestor:
            break
        if ancestor == referee_id:
            raise ReferralRefused("loop")
    status = store.link_referral(referee_id, referrer, now, limit)
    if status != "linked":
        raise ReferralRefused(status)
    return referrer


def referral_postings(program: Program, zone: ZoneInfo, links: Mapping[str, Mapping[str, str]],
                      events: Sequence[FeedbackEvent], exponent: int) -> dict[str, list[Posting]]:
    """The rewards the referees' qualifying purchases pay, by member (referees and referrers)."""
    rules = program.points.referrals
    out: dict[str, list[Posting]] = {}
    if rules is None:
        return out
    minimum = program.to_minor(rules.min_purchase)
    for ev in events:
        fields = links.get(ev.member_id) or {}
        referrer, linked = fields.get("by"), int(fields.get("at") or 0)
        ts = int(ev.ts.timestamp())
        if (ev.type != "transaction" or not referrer or getattr(ev, "refund_of", None) is not None
                or ev.amount(exponent) < minimum or not linked <= ts < linked + rules.window_days * DAY):
            continue
        x, a = expiry_at(program.points, ts, zone), available_at(program.points, ts, zone)
        meta = {"rule": "referral", "event_id": ev.event_id, "referee": ev.member_id, "referrer": referrer}
        if rules.referee_points:
            out.setdefault(ev.member_id, []).append(
                Posting("referral:referee", "earn", rules.referee_points * UNIT, ts, x, a, meta=meta))
        if rules.referrer_points:
            out.setdefault(referrer, []).append(
                Posting(f"referral:{ev.member_id}", "earn", rules.referrer_points * UNIT, ts, x, a, meta=meta))
    return out
