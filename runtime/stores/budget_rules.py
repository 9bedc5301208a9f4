"""The budget scripts' rules in Python (twins of :mod:`.budgets_lua`), for the in-process store.

:func:`refusal` is the check of ``RESERVE_BUDGETS`` for one request (every claim must fit its
limit and its paced allowance), :func:`charged` and :func:`released` the counters after a
reservation and after giving one back. ``tests/test_budget_protocol.py`` and the store
behaviour suite run both implementations against the same expectations; change them together.
"""

from __future__ import annotations

from collections.abc import Sequence

from runtime.stores.values import BUDGET_EXHAUSTED, BUDGET_PACED, BudgetClaim, BudgetCounter


def _over(limit: int | None, value: int) -> bool:
    return limit is not None and value > limit


def refusal(claims: Sequence[BudgetClaim], current: Sequence[BudgetCounter]) -> str | None:
    """Why a request drawing on ``claims`` (with these counters) is refused, None when it fits.

    ``BUDGET_EXHAUSTED`` when any claim's limit would be passed, else ``BUDGET_PACED`` when any
    claim's paced allowance would be (the Lua ``RESERVE_BUDGETS`` check).
    """
    reason = None
    for claim, cur in zip(claims, current, strict=True):
        if _over(claim.count_limit, cur.count + 1) or _over(claim.minor_limit, cur.minor + claim.charge_minor):
            return BUDGET_EXHAUSTED
        if _over(claim.paced_count, cur.count + 1) or _over(claim.paced_minor, cur.minor + claim.charge_minor):
            reason = BUDGET_PACED
    return reason


def charged(claim: BudgetClaim, cur: BudgetCounter) -> BudgetCounter:
    """The counter after one issue of ``claim`` is reserved."""
    return BudgetCounter(cur.count + 1, cur.minor + claim.charge_minor)


def released(claim: BudgetClaim, cur: BudgetCounter) -> BudgetCounter:
    """The counter after one reservation of ``claim`` is given back (never below zero)."""
    return BudgetCounter(cur.count - min(1, cur.count), cur.minor - min(claim.charge_minor, cur.minor))
