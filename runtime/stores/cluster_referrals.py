"""Referral links on a Redis Cluster: the referee's and the referrer's hashes are in two slots.

On one Redis, ``LINK`` (:mod:`runtime.stores.referrals_lua`) checks and records a link in one
script. On a cluster a script may touch one slot only, so :func:`link_across_slots` makes the
link in three steps, each atomic in its slot:

1. **Reserve** (``LINK_RESERVE``, the referrer's slot): refuse a self-referral, a direct loop
   (the referrer was referred by the referee) and a referrer at ``max_per_member``; else count a
   place in ``n`` and mark it ``r:<referee>`` in the referrer's hash.
2. **Set** (``LINK_SET``, the referee's slot): refuse a referee already referred by someone else,
   and a loop in flight: the referee's own hash marks the referrer as one of *its* referees
   (``r:<referrer>``: the opposite link was reserved or made); else record ``by`` and ``at``.
3. **Give back** (``LINK_RELEASE``, the referrer's slot) when step 2 refused: the place and its
   mark are removed, so the limit counts only links made.

Why the limit holds: places are only counted inside step 1's script, one at a time per
referrer, and step 3 gives back only a place step 1 counted. Between steps 1 and 3 a refused
link holds a place, so a concurrent referee may be refused ``limit`` although a place ends up
free (it errs towards refusing). Why two members cannot refer each other: whichever of the two
opposite links reaches step 2 second finds the other's mark in its own hash (each step 1 runs
before its step 2), so at most one of them is made; if both step 2s find a mark, both are
refused. Two identical requests racing share one place (the mark) and are both answered
``linked``. Longer loops are checked by the caller walking the referrer's chain, as on one Redis.

Before step 1, one read of the referee's hash answers ``already_referred`` for a referee with a
referrer, as one Redis does (also for a repeated request), and before ``limit`` when both apply.
"""

from __future__ import annotations

from collections.abc import Callable

#: (script, key, args) -> the script's reply as text
RunScript = Callable[[str, str, list[str | int]], str]


def link_across_slots(referee_id: str, referrer_id: str, now: int, limit: int, ttl: int,
                      referee_key: str, referrer_key: str, referee_by: str | None, run: RunScript) -> str:
    """The three steps of the module docstring; ``referee_by`` is the referee's ``by`` just read."""
    if referee_id == referrer_id:
        return "self"
    if referee_by:
        return "already_referred"
    status = run("reserve", referrer_key, [referee_id, referrer_id, now, limit, ttl])
    if status != "reserved":
        return status
    status = run("set", referee_key, [referee_id, referrer_id, now, ttl])
    if status != "linked":
        run("release", referrer_key, [referee_id])
    return status
