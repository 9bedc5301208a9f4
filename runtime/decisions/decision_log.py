"""The decision log: every decision the runtime commits, with what the policy saw and chose.

One NDJSON line per decision, in ``decisions-<day>-<host>-<pid>-<seq>.ndjson`` segments
written by the same durable, rotating writer as the event log
(:class:`runtime.events.log.EventLog`, ``kind="decisions"``; by default in the event log's
directory, so ``offers data events --log DIR`` finds both). A line::

    {"v": 1, "decision_id", "ts" (RFC 3339 UTC), "member_id", "channel", "placement",
     "source": "realtime" | "batch" | "offers_batch", "model_version", "policy",
     "holdout", "explored", "seed", "degraded",
     "candidates": [{"offer_id", "score", "shown", "rank"?, "probability", "reason"?,
                     "coupon_code"?}]}

Every candidate the decision considered is listed: ``score`` is the model's propensity
(null when the model did not score it), ``shown`` whether it was returned, ``probability``
the probability with which the policy returned it (the policy's own figure for a shown
offer; 0 for a candidate that failed a check or lost its reservation, and for an eligible
one a deterministic policy did not pick; null for an eligible one an exploring policy
did not pick, whose marginal probability is not computed yet), ``reason`` why it was
excluded, ``coupon_code`` the code issued with it.

The log is written after the decision's commit, outside the store's atomic section; a
failure to write it is logged and counted (``offers_decision_log_failures_total``) but
does not fail a decision whose coupons and reservations are already committed.
Readers de-duplicate by ``decision_id``; a torn last line (a crash mid-write) is reported
with its segment and line by :func:`offerdata.decision_log.read_decisions`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from runtime.decisions.outcome import DecisionRequest, Outcome
from runtime.events.log import EventLog, EventLogError
from runtime.metrics import Metrics

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: ``kind`` of the decision log's segments
KIND = "decisions"


def decision_record(outcome: Outcome, req: DecisionRequest, candidates: Sequence[str],
                    scores: np.ndarray | None) -> dict[str, Any]:
    """The log line of one committed decision (module docstring); ``scores`` is the member's
    model propensity per candidate (NaN or None: not scored)."""
    shown = {issued.offer.offer_id: issued for issued in outcome.offers}
    reasons = {e.offer_id: e.reason for e in outcome.excluded}
    exploring = outcome.decision.explored or any(o.offer.explored for o in outcome.offers) \
        or _explores(outcome)
    rows = []
    for j, offer_id in enumerate(candidates):
        score = None if scores is None or math.isnan(float(scores[j])) else round(float(scores[j]), 6)
        row: dict[str, Any] = {"offer_id": offer_id, "score": score}
        issued = shown.get(offer_id)
        if issued is not None:
            row.update(shown=True, rank=issued.rank, probability=round(float(issued.offer.probability), 6))
            if issued.coupon is not None:
                row["coupon_code"] = issued.coupon.code
        elif offer_id in reasons:
            row.update(shown=False, probability=0.0, reason=reasons[offer_id])
        else:
            row.update(shown=False, probability=None if exploring else 0.0)
        rows.append(row)
    return {"v": FORMAT_VERSION, "decision_id": outcome.decision_id, "ts": _utc_text(outcome),
            "member_id": outcome.member_id, "channel": req.channel, "placement": req.placement,
            "source": req.source, "model_version": outcome.model_version, "policy": outcome.decision.policy,
            "holdout": outcome.decision.holdout, "explored": outcome.decision.explored,
            "seed": outcome.decision.seed, "degraded": outcome.degraded, "candidates": rows}


def _explores(outcome: Outcome) -> bool:
    """Whether the decision's policy draws at random (any shown offer with probability below 1)."""
    return any(o.offer.probability < 1.0 for o in outcome.offers)


def _utc_text(outcome: Outcome) -> str:
    """``outcome.as_of`` as RFC 3339 UTC (``...Z``)."""
    from datetime import UTC

    return outcome.as_of.astimezone(UTC).isoformat().replace("+00:00", "Z")


class DecisionLog:
    """Appends committed decisions to the durable decision log (module docstring)."""

    def __init__(self, writer: EventLog, metrics: Metrics | None = None):
        if writer.kind != KIND:
            raise ValueError(f"a decision log writes {KIND!r} segments, not {writer.kind!r}")
        self.writer = writer
        self.metrics = metrics

    def append(self, outcomes: Sequence[Outcome], req: DecisionRequest, candidates: Sequence[str],
               scores: np.ndarray | None) -> None:
        """Log ``outcomes`` (``scores`` is members x candidates, or None); never raises for I/O."""
        records = [decision_record(o, req, candidates, None if scores is None else scores[i])
                   for i, o in enumerate(outcomes)]
        try:
            self.writer.append(records)
        except EventLogError as exc:
            log.error("%d decision(s) not logged: %s", len(records), exc)
            if self.metrics is not None:
                self.metrics.record_decision_log_failure(len(records))

    def close(self) -> None:
        """Close the current segment."""
        self.writer.close()
