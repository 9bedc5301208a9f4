"""The decision log: every decision the runtime commits, with what the policy saw and chose.

One NDJSON line per decision, in ``decisions-<day>-<host>-<pid>-<seq>.ndjson`` segments
written by the same durable, rotating writer as the event log
(:class:`runtime.events.log.EventLog`, ``kind="decisions"``; by default in the event log's
directory, so ``offers data events --log DIR`` finds both). A line::

    {"v": 1, "decision_id", "ts" (RFC 3339 UTC), "member_id", "channel", "placement",
     "source": "realtime" | "batch" | "offers_batch", "model_version", "policy",
     "holdout", "explored", "seed", "degraded",
     "candidates": [offer ids], "scores": [the model's propensity per candidate, or null],
     "weights": [the policy's value weight per candidate],
     "fallback_scores": {"<candidate index>": propensity} (personalised decisions),
     "shown": [{"i", "offer_id", "rank", "probability", "coupon_code"?}],
     "excluded": {"<REASON>": [candidate indexes]},
     "unshown_probability": 0.0 | null, "control_shares": {offer id: share}}

Every candidate the decision considered is listed once, by index: ``scores`` holds the
model's propensity (null when the model did not score it) and ``weights`` the value weight
the policy ranked it by (priority = propensity x weight: what lets ``offers evaluate
--policy-log`` replay another model's choice), with ``fallback_scores`` the propensity a
personalised decision used for the candidates its model did not score (the offer's
popularity or the member's mean); ``shown`` the returned offers
with the probability with which the policy returned each; ``excluded`` the candidates that
failed a check or lost their reservation, by reason (their probability is 0); every other
candidate was eligible and not picked, with probability ``unshown_probability``: 0 for a
deterministic policy, null for an exploring one (its marginal probability is not computed
yet). ``control_shares`` names the candidates with a randomized control group
(``control_share`` in the program) and its share: those excluded as ``OFFER_CONTROL`` are
the offer's control arm, assigned with that probability. Columns rather than one object per candidate keep a 100-candidate line cheap to
build and about 3 KB long.

The log is written after the decision's commit, outside the store's atomic section; a
failure to write it is logged and counted (``offers_decision_log_failures_total``) but
does not fail a decision whose coupons and reservations are already committed.
Readers de-duplicate by ``decision_id``; a torn last line (a crash mid-write) is reported
with its segment and line by :func:`offerdata.decision_log.read_decisions`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

import numpy as np

from models.eligibility import REASONS
from runtime.decisions.outcome import DecisionRequest, Outcome
from runtime.events.log import EventLog, EventLogError
from runtime.metrics import Metrics

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: ``kind`` of the decision log's segments
KIND = "decisions"


def decision_record(outcome: Outcome, req: DecisionRequest, candidates: Sequence[str],
                    scores: np.ndarray | None, index: Mapping[str, int] | None = None,
                    control_shares: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The log line of one committed decision (module docstring); ``scores`` is the member's
    model propensity per candidate (NaN or None: not scored), ``index`` maps candidate ids to
    their position (built once per call when given)."""
    index = index if index is not None else {o: j for j, o in enumerate(candidates)}
    decision = outcome.decision
    codes = decision.reason_codes()
    excluded: dict[str, list[int]] = {}
    for code in np.unique(codes[codes > 0]).tolist():
        excluded[REASONS[code]] = np.flatnonzero(codes == code).tolist()
    for refused in outcome.refused:  # returned by the decision core, then refused at the write
        j = index.get(refused.offer_id)
        if j is not None:
            excluded.setdefault(refused.reason, []).append(j)
    shown = []
    for issued in outcome.offers:
        entry: dict[str, Any] = {"i": index.get(issued.offer.offer_id), "offer_id": issued.offer.offer_id,
                                 "rank": issued.rank, "probability": round(issued.offer.probability, 6)}
        if issued.coupon is not None:
            entry["coupon_code"] = issued.coupon.code
        shown.append(entry)
    exploring = decision.explored or any(o.offer.probability < 1.0 for o in outcome.offers)
    score_list = None
    fallback: dict[str, float] = {}
    if scores is not None:
        rounded = np.round(np.asarray(scores, dtype=np.float64), 6)
        score_list = [None if v != v else v for v in rounded.tolist()]  # NaN -> null
        if decision.policy == "personalised":
            used = decision.propensities()
            fallback = {str(j): round(float(used[j]), 6) for j in np.flatnonzero(np.isnan(rounded)).tolist()}
    return {"v": FORMAT_VERSION, "decision_id": outcome.decision_id,
            "ts": outcome.as_of.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "member_id": outcome.member_id, "channel": req.channel, "placement": req.placement,
            "source": req.source, "model_version": outcome.model_version, "policy": decision.policy,
            "holdout": decision.holdout, "explored": decision.explored, "seed": decision.seed,
            "degraded": outcome.degraded, "candidates": list(candidates), "scores": score_list,
            "weights": np.round(decision.weights().astype(np.float64), 6).tolist(), "fallback_scores": fallback,
            "shown": shown, "excluded": excluded, "unshown_probability": None if exploring else 0.0,
            "control_shares": dict(control_shares or {})}


class DecisionLog:
    """Appends committed decisions to the durable decision log (module docstring)."""

    def __init__(self, writer: EventLog, metrics: Metrics | None = None):
        if writer.kind != KIND:
            raise ValueError(f"a decision log writes {KIND!r} segments, not {writer.kind!r}")
        self.writer = writer
        self.metrics = metrics

    def append(self, outcomes: Sequence[Outcome], req: DecisionRequest, candidates: Sequence[str],
               scores: np.ndarray | None, control_shares: Mapping[str, float] | None = None) -> None:
        """Log ``outcomes`` (``scores`` is members x candidates, or None; ``control_shares`` the
        offers with a control group and its share); never raises for I/O."""
        index = {o: j for j, o in enumerate(candidates)}
        shares = {o: s for o, s in (control_shares or {}).items() if o in index}
        records = [decision_record(o, req, candidates, None if scores is None else scores[i], index, shares)
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
