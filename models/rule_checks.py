"""Targeting rules in a decision: which (member, candidate) cells fail their offer's rules.

The catalog compiles its offers' rules once (:class:`models.rule_eval.RuleSet`); here a
call's members are evaluated against them and the result is spread over the call's
candidates, with the failing clause of each failing cell, for ``RULE_NOT_MET``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from models.catalog import Catalog
from models.member import MemberContext
from models.request_context import RequestContext


def rule_checks(catalog: Catalog, cand: np.ndarray, members: Sequence[MemberContext], as_of: pd.Timestamp,
                request: RequestContext | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(fails, clause) over members x candidates, or None when no candidate has a rule.

    ``fails`` is True where the member fails the candidate's rules; ``clause`` is then the
    failing clause's index in the offer's ``RuleSet.clauses`` (-1 elsewhere). Unknown ids
    (``cand`` -1) have no rule.
    """
    rules = catalog.rules
    if not rules:
        return None
    shape = np.where(cand >= 0, rules.shape_of[np.maximum(cand, 0)], -1)
    ruled = shape >= 0
    if not ruled.any():
        return None
    ok, failing = rules.evaluate(members, as_of, catalog.program.threshold_metric, request)
    cols = np.flatnonzero(ruled)
    m, c = len(members), len(cand)
    fails = np.zeros((m, c), dtype=bool)
    clause = np.full((m, c), -1, dtype=np.int64)
    fails[:, cols] = ~ok[shape[cols]].T
    clause[:, cols] = failing[shape[cols]].T
    return fails, clause


def failing_clause(catalog: Catalog, position: int, clause: int) -> str | None:
    """The text of clause ``clause`` of the offer at catalog ``position``
    (``offers[2].rule.all[0]: context.device == app``); None when there is none."""
    names = catalog.rules.clauses[position]
    return names[clause] if 0 <= clause < len(names) and names[clause] else None
