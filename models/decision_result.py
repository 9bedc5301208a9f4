"""What a decision returns: ranked offers, exclusions and counter increments, built lazily.

:mod:`models.decision` decides; this module holds its results. The arbitration leaves,
per member, arrays (the candidates' reason codes and the chosen columns). A
:class:`RankedOffer` exists for each *returned* offer only; ``Decision.excluded`` and
``Decision.increments`` are built from the arrays the first time they are read (see
:mod:`models.decision` for why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from models.arbitration import saturated
from models.caps import CounterIncrement, increments
from models.catalog import Catalog
from models.eligibility import CODE, REASONS
from models.rule_checks import failing_clause


@dataclass(frozen=True)
class RankedOffer:
    """One offer in a decision, with how it was scored, chosen and why."""

    offer_id: str
    rank: int
    kind: str
    title: str
    text: str | None
    value: float
    value_minor: float
    propensity: float
    priority: float
    explored: bool
    probability: float
    tier_promo: str | None
    reasons: tuple[str, ...]
    requires_coupon: bool
    fallback: bool
    #: the uplift model's incremental conversion probability (None: no uplift model scored it)
    uplift: float | None = None
    #: what one send costs (minor units)
    send_cost_minor: float = 0.0


class Excluded(NamedTuple):
    """A candidate that did not make it, with its reason code (see :data:`REASONS`)."""

    offer_id: str
    reason: str


@dataclass(frozen=True, eq=False)
class ArbitrationArrays:
    """What the arbitration left for one member, kept as arrays until someone asks.

    ``ids`` and ``pos`` (candidate ids and their catalog positions, 0 for unknown ids) are
    shared by every member of a call; ``codes`` is this member's reason code per candidate
    (0: eligible), ``chosen`` the returned columns in rank order and ``weights`` the value
    weight the policy multiplied each candidate's propensity by (its priority is the product;
    the decision log keeps them so that another model's policy can be replayed offline),
    ``propensities`` the propensity the policy used (the model's, or its fallback), and
    ``clauses`` each candidate's failing rule clause (-1: none; None: no candidate has rules).
    """

    catalog: Catalog
    ids: Sequence[str]
    pos: np.ndarray
    codes: np.ndarray
    chosen: tuple[int, ...]
    weights: np.ndarray
    propensities: np.ndarray
    clauses: np.ndarray | None = None

    def rule_clauses(self) -> dict[str, str]:
        """Offer id -> the failing clause, for the candidates excluded as ``RULE_NOT_MET``."""
        if self.clauses is None:
            return {}
        out = {}
        for j in np.flatnonzero(self.codes == CODE["RULE_NOT_MET"]).tolist():
            text = failing_clause(self.catalog, int(self.pos[j]), int(self.clauses[j]))
            if text is not None:
                out[self.ids[j]] = text
        return out

    def excluded(self) -> tuple[Excluded, ...]:
        """The candidates that failed a check, in candidate order, then those an eligible
        candidate lost to the diversity limits (a full category or stacking group)."""
        bad = np.flatnonzero(self.codes)
        ids = self.ids
        out = [Excluded(ids[j], REASONS[code]) for j, code in zip(bad.tolist(), self.codes[bad].tolist(), strict=True)]
        if self.chosen:
            chosen = list(self.chosen)
            full = saturated(self.catalog, self.pos, chosen) & (self.codes == 0)
            full[chosen] = False
            out.extend(Excluded(ids[j], "DIVERSITY_LIMIT") for j in np.flatnonzero(full).tolist())
        return tuple(out)

    def reason_codes(self) -> np.ndarray:
        """Each candidate's reason code (0: eligible), with ``DIVERSITY_LIMIT`` for the eligible
        candidates the diversity limits shut out: :meth:`excluded` as one int array, for logs."""
        codes = self.codes.copy()
        if self.chosen:
            chosen = list(self.chosen)
            full = saturated(self.catalog, self.pos, chosen) & (codes == 0)
            full[chosen] = False
            codes[full] = REASONS.index("DIVERSITY_LIMIT")
        return codes

    def increments(self) -> tuple[CounterIncrement, ...]:
        """The counters the returned offers increment, offer by offer in rank order."""
        return tuple(inc for col in self.chosen for inc in increments(self.catalog, int(self.pos[col])))


_FIELDS = ("member_id", "offers", "excluded", "holdout", "policy", "explored", "cold_start", "fallback",
           "increments", "seed")


@dataclass(frozen=True, eq=False, repr=False)
class Decision:
    """The outcome for one member: offers in rank order, exclusions, flags and increments.

    ``excluded`` and ``increments`` are built on first read (see the module docstring);
    equality, hashing and ``repr`` cover them as if they were fields.
    """

    member_id: str
    offers: tuple[RankedOffer, ...]
    holdout: bool
    policy: str
    explored: bool
    cold_start: bool
    fallback: bool
    seed: int
    _arrays: ArbitrationArrays

    @cached_property
    def excluded(self) -> tuple[Excluded, ...]:
        """Candidates that did not make it, each with its reason code."""
        return self._arrays.excluded()

    def reason_codes(self) -> np.ndarray:
        """Each candidate's reason code (:data:`models.eligibility.REASONS`; 0: eligible)."""
        return self._arrays.reason_codes()

    def weights(self) -> np.ndarray:
        """Each candidate's value weight under this decision's policy (priority = propensity x weight)."""
        return self._arrays.weights

    def propensities(self) -> np.ndarray:
        """Each candidate's propensity as the policy used it (the model's, else its fallback)."""
        return self._arrays.propensities

    @cached_property
    def rule_clauses(self) -> dict[str, str]:
        """Offer id -> the rule clause that failed, for candidates excluded as ``RULE_NOT_MET``
        (``offers[2].rule.all[0]: context.device == app``)."""
        return self._arrays.rule_clauses()

    @cached_property
    def increments(self) -> tuple[CounterIncrement, ...]:
        """The counters returning these offers increments."""
        return self._arrays.increments()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Decision)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"Decision({', '.join(f'{name}={getattr(self, name)!r}' for name in _FIELDS)})"


def decisions_frame(decisions: Sequence[Decision]) -> pd.DataFrame:
    """A tidy frame: one row per returned offer (for campaign exports and analysis)."""
    rows = [{"member_id": d.member_id, "rank": o.rank, "offer_id": o.offer_id, "kind": o.kind, "text": o.text,
             "priority": o.priority, "propensity": o.propensity, "probability": o.probability,
             "explored": o.explored, "tier_promo": o.tier_promo, "fallback": o.fallback,
             "holdout": d.holdout, "policy": d.policy}
            for d in decisions for o in d.offers]
    columns = ["member_id", "rank", "offer_id", "kind", "text", "priority", "propensity", "probability",
               "explored", "tier_promo", "fallback", "holdout", "policy"]
    return pd.DataFrame(rows, columns=columns)
