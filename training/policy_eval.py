"""``offers evaluate --policy-log``: what a registered model's policy would have earned on logged traffic.

The decision log records, for every personalised decision, each candidate's value weight,
which candidates were eligible, and the exact probability with which the policy returned its
first offer. So the first slot of each decision is a contextual-bandit round with a known
propensity, and another model's policy can be replayed on it offline:

1. the candidates eligible for the first slot are those the decision did not exclude (the
   diversity limits only bind from the second pick on, so their exclusions still count);
2. the target model scores them at the decision's time with point-in-time features
   (:func:`training.score.score_pairs`); candidates it cannot score (offers only the program
   knows) keep the fallback propensity the decision logged;
3. its policy's first offer is the eligible candidate with the highest propensity x weight,
   the deterministic (greedy) policy: what the model would show without exploration;
4. the reward of a decision is 1 when the member redeemed its first offer within
   ``window`` days (the data's redemptions plus the event log's ``redeem`` events).

:func:`models.ope.estimate` then gives the logged policy's value and the IPS, SNIPS and DR
estimates (the target model's propensity is DR's reward model). Only personalised decisions
count: holdout and cold-start members get the same offers whichever model is deployed. A
decision whose first pick was refused at commit (rank 1 not shown) has no first-slot
propensity and is skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.ope import OffPolicyResult, estimate
from offerdata.decision_log import iter_decisions
from offerdata.tables import read_table
from training.lift import log_events, read_redemptions
from training.train import TrainingError

#: Days after a decision in which a redemption of its first offer counts.
WINDOW_DAYS = 14
#: Rewards among low-propensity matches below which the intervals are flagged as unreliable.
MIN_RARE_REWARDS = 10
#: Decisions evaluated at most (a seeded random sample beyond): each is scored on every eligible
#: candidate, so a month of traffic would otherwise need its whole feature matrix in memory.
MAX_DECISIONS = 50_000


@dataclass
class PolicyEvaluation:
    """The result of one evaluation, ready for printing or JSON."""

    version: str
    logged_versions: dict[str, int]
    window_days: int
    skipped: dict[str, int]
    result: OffPolicyResult
    #: matched decisions the logging policy made with probability under 0.5 (weight over 2), and
    #: the rewards among them: where the target disagrees with the logging policy's usual choice,
    #: these alone inform the estimate
    rare_matches: int = 0
    rare_rewards: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The evaluation as JSON-ready data."""
        r = self.result
        return {"version": self.version, "logged_versions": self.logged_versions, "window_days": self.window_days,
                "decisions": r.decisions, "matches": r.matches, "effective_sample_size": r.effective_sample_size,
                "rare_matches": self.rare_matches, "rare_rewards": self.rare_rewards, "skipped": self.skipped,
                "estimates": [asdict(e) for e in r.estimates], "notes": self.notes}


def first_slot_rounds(log_dir: str | os.PathLike[str], timezone: str, since: pd.Timestamp | None = None,
                      until: pd.Timestamp | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The personalised decisions of the log as first-slot rounds, and how many were skipped why.

    A round: decision_id, member_id, at (program-local time), channel, model_version, action
    (the first offer), propensity, and per eligible candidate its id, weight, logged score and
    logged fallback propensity.
    """
    records, _, _ = iter_decisions(log_dir)
    skipped = {"not_personalised": 0, "no_weights": 0, "first_pick_refused": 0, "outside_window": 0}
    rounds = []
    for rec in records:
        if rec.get("policy") != "personalised" or not rec.get("shown"):
            skipped["not_personalised"] += 1
            continue
        weights, candidates = rec.get("weights"), rec.get("candidates")
        if not isinstance(weights, list) or not isinstance(candidates, list) or len(weights) != len(candidates):
            skipped["no_weights"] += 1  # logged before weights were
            continue
        first = [s for s in rec["shown"] if s.get("rank") == 1]
        if not first or not isinstance(first[0].get("probability"), int | float) or first[0]["probability"] <= 0:
            skipped["first_pick_refused"] += 1
            continue
        at = pd.Timestamp(rec["ts"]).tz_convert(timezone).tz_localize(None)
        if (since is not None and at < since) or (until is not None and at >= until):
            skipped["outside_window"] += 1
            continue
        out = {j for reason, idx in (rec.get("excluded") or {}).items() if reason != "DIVERSITY_LIMIT" for j in idx}
        eligible = [j for j in range(len(candidates)) if j not in out]
        scores = rec.get("scores") or [None] * len(candidates)
        fallback = rec.get("fallback_scores") or {}
        rounds.append({"decision_id": rec["decision_id"], "member_id": rec["member_id"], "at": at,
                       "channel": rec["channel"], "model_version": rec.get("model_version") or "none",
                       "action": first[0]["offer_id"], "propensity": float(first[0]["probability"]),
                       "offers": [candidates[j] for j in eligible], "weights": [float(weights[j]) for j in eligible],
                       "scores": [scores[j] for j in eligible],
                       "fallback": [fallback.get(str(j)) for j in eligible]})
    return rounds, skipped


def redemptions(data_dir: str | os.PathLike[str], log_dir: str | os.PathLike[str], timezone: str) -> pd.DataFrame:
    """Every redemption naming its offer (member_id, offer_id, at in program-local time): the
    data's and the event log's (:func:`training.lift.read_redemptions`)."""
    out = read_redemptions(data_dir, log_events(log_dir), timezone).dropna(subset=["offer_id"])
    return out.astype({"member_id": str, "offer_id": str})


def rewards(rounds: pd.DataFrame, redeemed: pd.DataFrame, window_days: int) -> np.ndarray:
    """1.0 where the member redeemed the round's first offer within ``window_days`` of the decision."""
    if rounds.empty:
        return np.zeros(0)
    pairs = rounds[["decision_id", "member_id", "action", "at"]].merge(
        redeemed.rename(columns={"offer_id": "action", "at": "redeemed_at"}), on=["member_id", "action"], how="left")
    delta = pairs["redeemed_at"] - pairs["at"]
    pairs["hit"] = (delta >= pd.Timedelta(0)) & (delta < pd.Timedelta(days=window_days))
    hit = pairs.groupby("decision_id")["hit"].any()
    return rounds["decision_id"].map(hit).fillna(False).to_numpy(dtype=np.float64)


def target_scores(rounds: pd.DataFrame, data_dir: str | os.PathLike[str], registry: str | os.PathLike[str],
                  version: str) -> tuple[list[np.ndarray], str]:
    """Each round's eligible candidates' propensities under ``version`` (the logged fallback where
    the model cannot score an offer, 0 when there is none), and the version's id."""
    from training.score import score_pairs

    known = set(read_table(data_dir, "offers", columns=["offer_id"])["offer_id"].astype(str))
    rows = [(i, k, m, o, at, ch) for i, (m, offers, at, ch) in
            enumerate(zip(rounds["member_id"], rounds["offers"], rounds["at"], rounds["channel"], strict=True))
            for k, o in enumerate(offers) if o in known]
    pairs = pd.DataFrame(rows, columns=["round", "slot", "member_id", "offer_id", "as_of", "channel"])
    scored = score_pairs(data_dir, registry, pairs, version) if len(pairs) else pairs.assign(propensity=[])
    resolved = str(scored["model_version"].iloc[0]) if len(scored) else version
    out = [np.array([np.nan if f is None else float(f) for f in fb]) for fb in rounds["fallback"]]
    for i, k, p in zip(scored["round"], scored["slot"], scored["propensity"], strict=True):
        out[i][k] = p
    return [np.nan_to_num(a, nan=0.0) for a in out], resolved


def evaluate_policy(log_dir: str | os.PathLike[str], data_dir: str | os.PathLike[str],
                    registry: str | os.PathLike[str], version: str, timezone: str,
                    since: pd.Timestamp | None = None, until: pd.Timestamp | None = None,
                    window_days: int = WINDOW_DAYS, confidence: float = 0.95, reps: int = 200,
                    seed: int = 0, max_decisions: int = MAX_DECISIONS) -> PolicyEvaluation:
    """The logged policy's first-slot redemption rate and ``version``'s IPS, SNIPS and DR estimates,
    over at most ``max_decisions`` decisions of the window (a seeded random sample beyond)."""
    if not any(Path(log_dir).glob("decisions-*.ndjson")):
        raise TrainingError(f"{log_dir} holds no decision log (decisions-*.ndjson)")
    found, skipped = first_slot_rounds(log_dir, timezone, since, until)
    rounds = pd.DataFrame(found, columns=["decision_id", "member_id", "at", "channel", "model_version", "action",
                                          "propensity", "offers", "weights", "scores", "fallback"])
    notes = []
    if rounds.empty:
        notes.append("no personalised decision with a logged first-slot propensity in the window")
    if len(rounds) > max_decisions:
        notes.append(f"evaluated a random sample of {max_decisions:,} of the window's {len(rounds):,} decisions")
        rounds = rounds.sample(max_decisions, random_state=seed).reset_index(drop=True)
    q, resolved = target_scores(rounds, data_dir, registry, version)
    choice, q_target, q_logged = [], np.zeros(len(rounds)), np.zeros(len(rounds))
    for i, (offers, weights, action) in enumerate(zip(rounds["offers"], rounds["weights"], rounds["action"],
                                                      strict=True)):
        priority = q[i] * np.asarray(weights)
        best = int(np.argmax(priority)) if len(priority) else -1
        choice.append(offers[best] if best >= 0 else None)
        q_target[i] = q[i][best] if best >= 0 else 0.0
        q_logged[i] = q[i][offers.index(action)] if action in offers else 0.0
    match = np.array([c == a for c, a in zip(choice, rounds["action"], strict=True)], dtype=np.float64)
    reward = rewards(rounds, redemptions(data_dir, log_dir, timezone), window_days)
    result = estimate(reward, rounds["propensity"].to_numpy(dtype=np.float64), match, q_target, q_logged,
                      confidence, reps, seed)
    deterministic = bool(len(rounds)) and bool((rounds["propensity"] >= 1.0 - 1e-9).all())
    if deterministic and result.matches < result.decisions:
        notes.append("the logged policy never explored: IPS and SNIPS only see decisions where the target "
                     "agrees with it; DR leans on the target model's own scores elsewhere")
    propensity = rounds["propensity"].to_numpy(dtype=np.float64)
    rare = (match > 0) & (propensity < 0.5)
    rare_rewards = float(reward[rare].sum())
    if not deterministic and result.matches < result.decisions and rare_rewards < MIN_RARE_REWARDS:
        notes.append(f"only {rare_rewards:.0f} reward(s) among the {int(rare.sum())} decisions where the logged "
                     "policy explored into the candidate's choice: the estimate rests on a few heavily weighted "
                     "rounds and its intervals are likely too narrow (log more traffic or explore more)")
    return PolicyEvaluation(resolved, rounds["model_version"].value_counts().to_dict(), window_days, skipped,
                            result, int(rare.sum()), rare_rewards, notes)


def write_json(evaluation: PolicyEvaluation, path: str | os.PathLike[str]) -> None:
    """Write the evaluation as JSON."""
    Path(path).write_text(json.dumps(evaluation.to_json(), indent=2, default=str), encoding="utf-8")
