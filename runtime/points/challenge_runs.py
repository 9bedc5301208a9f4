"""Which challenge runs a member is in, and their progress, from the stored state and history.

A run of a challenge starts when a decision issued its presenting offer to the member (the
latest issue in the state's counter: a new issue starts a new run) and lasts ``window_days``.
Progress is counted by :func:`models.challenges.progress` over the member's purchase lines
(their history records, plus the events being ingested when a purchase arrives). Decisions
show it (``{progress}``, ``{target}`` in offer texts), the points view lists it, and ingest
pays the reward once a run completes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from models.challenges import Progress, Purchases, progress
from models.features import History
from runtime.decisions.setup import DecisionSetup, local_time
from runtime.events.event import FeedbackEvent
from runtime.stores import MemberState


def purchases_of(setup: DecisionSetup, hist: History, member: int, before: int | None = None) -> Purchases:
    """Member ``member``'s purchase lines of ``hist`` (before local second ``before``, if given) with
    their product categories."""
    sel = hist.line_member == member
    if before is not None:
        sel &= hist.line_time < before
    products = hist.line_product[sel]
    fc = setup.features
    levels = np.asarray(fc.category_levels, dtype=object)
    cats = levels[np.asarray(fc.product_category)[np.maximum(products, 0)]].copy()
    cats[products < 0] = None
    return Purchases(hist.line_time[sel].astype(np.int64), hist.line_amount[sel], cats,
                     hist.line_basket[sel].astype(np.int64))


def event_purchases(setup: DecisionSetup, events: Sequence[FeedbackEvent], exponent: int,
                    category: dict[str, str]) -> Purchases:
    """Transaction events (not yet in the history) as purchase lines; each basket id its own code."""
    lines = [e for e in events if e.type == "transaction" and getattr(e, "refund_of", None) is None]
    if not lines:
        return Purchases.empty()
    baskets = {b: -(i + 1) for i, b in enumerate(dict.fromkeys(e.basket_id or e.event_id for e in lines))}
    return Purchases(
        np.array([setup.seconds(setup.local(e.ts)) for e in lines], dtype=np.int64),
        np.array([float(e.amount(exponent)) for e in lines]),
        np.array([category.get(str(e.product_id)) if e.product_id is not None else None for e in lines], dtype=object),
        np.array([baskets[e.basket_id or e.event_id] for e in lines], dtype=np.int64))


def runs(setup: DecisionSetup, state: MemberState | None, lines: Purchases) -> tuple[Progress, ...]:
    """The member's current run of every challenge they were given, with its progress."""
    challenges = setup.program.points.challenges
    if not challenges or state is None:
        return ()
    out = []
    minor = setup.program.currency.minor_units
    for ch in challenges:
        counter = state.counters.get(("issue", ch.offer))
        if counter is None or not counter.recent:
            continue
        start = setup.seconds(local_time(pd.Timestamp(max(counter.recent), unit="s", tz="UTC"), setup.zone))
        out.append(progress(ch, lines, start, minor))
    return tuple(out)
