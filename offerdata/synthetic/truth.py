"""Ground truth for closed-loop simulations: how much each offer really changes each segment.

The synthetic generator's history has no causal truth to check an estimate against. A
:class:`Truth` plants one: for every (offer, member segment) the probability ``effect`` that a
member shown the offer redeems it on an extra visit they would not otherwise have made, with
a basket of ``basket_minor`` on average. Without offers, a member visits with the segment's
``base_visit`` probability. So, for a member shown a slate of offers, the true incremental
effects are, in expectation:

* redemptions and visits: the sum of the slate's ``effect`` values;
* spend: that sum times ``basket_minor``.

:meth:`Truth.respond` draws one member's events from this truth (seeded), in the event API's
shape, so that a simulation can send them to the real service: the loop is decisions from the
service, responses from the truth, events back into the service and its logs, then
``offers lift`` and ``offers evaluate --policy-log`` against the known answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Truth:
    """Planted incremental effects per (offer, segment) and the baseline behaviour."""

    effect: dict[tuple[str, str], float]
    base_visit: dict[str, float]
    basket_minor: float = 2_000.0

    def slate_effect(self, offers: Sequence[str], segment: str) -> float:
        """Expected incremental redemptions (= visits) of a member of ``segment`` shown ``offers``."""
        return float(sum(self.effect.get((o, segment), 0.0) for o in offers))

    def respond(self, member_id: str, segment: str, offers: Sequence[str], rng: np.random.Generator,
                ts: str, tag: str) -> list[dict[str, Any]]:
        """One member's events after being shown ``offers``: perhaps a baseline visit, and for
        each offer perhaps a redemption with its own extra visit (event ids prefixed ``tag``)."""
        events: list[dict[str, Any]] = []

        def visit(suffix: str) -> None:
            amount = int(max(1, rng.gamma(2.0, self.basket_minor / 2.0)))
            events.append({"event_id": f"{tag}-{member_id}-{suffix}", "member_id": member_id, "type": "transaction",
                           "amount_minor": amount, "basket_id": f"{tag}-{member_id}-{suffix}", "ts": ts})

        if rng.random() < self.base_visit.get(segment, 0.0):
            visit("base")
        for offer in offers:
            if rng.random() < self.effect.get((offer, segment), 0.0):
                events.append({"event_id": f"{tag}-{member_id}-r-{offer}", "member_id": member_id,
                               "type": "redeem", "offer_id": offer, "ts": ts})
                visit(f"o-{offer}")
        return events


def make_truth(offers: Sequence[str], segments: Sequence[str], seed: int, low: float = 0.01,
               high: float = 0.25) -> Truth:
    """A seeded truth: each offer's effect drawn in [low, high], scaled per segment by a factor
    in [0.4, 1.6] (so that effects differ by offer and by segment); baseline visits 20-40%."""
    rng = np.random.default_rng(seed)
    per_offer = {o: float(rng.uniform(low, high)) for o in sorted(set(offers))}
    per_segment = {s: float(rng.uniform(0.4, 1.6)) for s in sorted(set(segments))}
    effect = {(o, s): min(0.9, e * f) for o, e in per_offer.items() for s, f in per_segment.items()}
    base = {s: float(rng.uniform(0.2, 0.4)) for s in per_segment}
    return Truth(effect=effect, base_visit=base)
