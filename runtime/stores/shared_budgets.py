"""An in-process store whose budget counters live in another, shared store (Redis).

``offers batch`` on a Dask cluster decides each member partition on its own worker, each with
its own in-process :class:`~runtime.stores.memory.MemoryStore` holding the partition's members
(their caps and contact counters belong to one member, so one partition owns them). A budget
is shared by the whole audience, so :class:`SharedBudgetStore` sends every budget read and
reservation to one shared store: the budget scripts of :mod:`runtime.stores.two_phase` run
there, atomically, whichever worker calls them, and a budget of K issues at most K across
every partition (:mod:`runtime.decisions.cluster_batch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runtime.stores.memory import MemoryStore
from runtime.stores.redis_store import RedisStore
from runtime.stores.values import BudgetClaim, BudgetCounter, BudgetRef, CapRequest


class SharedBudgetStore(MemoryStore):
    """A :class:`MemoryStore` for members whose budget primitives are ``budgets``'s (a RedisStore)."""

    def __init__(self, budgets: RedisStore, **kwargs: Any):
        super().__init__(**kwargs)
        self.budgets = budgets

    def _budget(self, ref: BudgetRef) -> BudgetCounter:
        """A budget counter, read from the shared store (a one-member read carries the budgets)."""
        return self.budgets.budget_usage([ref])[ref]

    def budget_usage(self, refs: Sequence[BudgetRef]) -> dict[BudgetRef, BudgetCounter]:
        """The shared counters (a chunk's read step)."""
        return self.budgets.budget_usage(refs)

    def _reserve_budgets(self, requests: Sequence[CapRequest]) -> list[tuple[bool, str | None, BudgetCounter | None]]:
        """Step 1 of two_phase in the shared store: one atomic script for the whole chunk."""
        return self.budgets._reserve_budgets(requests)

    def _release_budgets(self, claims: Sequence[BudgetClaim]) -> None:
        """Step 3 of two_phase in the shared store: give back what the member step refused."""
        self.budgets._release_budgets(claims)

    def close(self) -> None:
        """Close the shared store's connections too."""
        self.budgets.close()
        super().close()
