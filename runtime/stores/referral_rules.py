"""Referral links in Python: the in-process store's twins of :mod:`.referrals_lua` (same rules)."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any


def link(referee: dict[str, Any], referrer: dict[str, Any], referee_id: str, referrer_id: str, now: int,
         limit: int) -> str:
    """Record the link in the two members' referral fields (updated in place); the status as LINK returns."""
    if referee_id == referrer_id:
        return "self"
    if referrer.get("by") == referee_id:
        return "loop"
    if "by" in referee:
        return "already_referred"
    if limit > 0 and int(referrer.get("n", 0)) >= limit:
        return "limit"
    referee.update(by=referrer_id, at=now)
    referrer["n"] = int(referrer.get("n", 0)) + 1
    return "linked"


def claim_code(member: MutableMapping[str, Any], codes: MutableMapping[str, str], member_id: str,
               candidate: str) -> str:
    """The member's code (the candidate if they had none and it is free), '' when it is taken."""
    if "code" in member:
        return str(member["code"])
    if candidate in codes:
        return ""
    codes[candidate] = member_id
    member["code"] = candidate
    return candidate
