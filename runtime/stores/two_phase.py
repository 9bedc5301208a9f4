"""Reservations in two slots: budgets first, then the member, then give back what was not used.

In Redis Cluster a Lua script may only touch keys of one slot. A decision's budgets (shared
by every member) and its member caps and contact counters (one member's) cannot be one
script, so :class:`TwoPhaseReservations` reserves them in a fixed order, each step atomic on
its own:

1. **Budgets** - one ``RESERVE_BUDGETS`` call (the ``{budgets}`` slot) for every request that
   draws on a budget, of one decision or of a whole batch chunk, in member order. A request
   is granted only when all its budgets fit (limits and paced allowances); skipped when no
   request has a budget.
2. **Member** - the member's ``COMMIT`` (``RESERVE`` for :meth:`reserve`) with the requests
   whose budgets were granted: contact caps, member caps, coupons, score cache. A batch
   chunk sends every member's call in one pipeline.
3. **Give back** - the budget reservations of requests the member step refused, or answered
   with a coupon the member already held (which reserved its budgets when first issued), in
   one ``RELEASE_BUDGETS`` call; skipped when there are none.

Why it never over-issues: each counter is only ever checked and incremented inside one
atomic script, and step 3 only decrements what step 1 added. Between steps 1 and 3 a budget
may count an issue that is then given back, so a concurrent decision may be refused a budget
that ends up unspent (it errs towards under-issuing, by at most the requests in flight).
When step 2 fails (the store went away), step 1's reservations are given back (best effort)
before the error is raised; when only step 3 fails, the decision stands and the budgets keep
the unused reservations. Round trips: 1 for a decision without budgeted offers, 2 with them, 3 when
something has to be given back (docs/redis.md, Reservations).

The stores implement the primitives (:meth:`_reserve_budgets`, :meth:`_release_budgets`,
:meth:`_member_reserve`, :meth:`_member_commit_many`, :meth:`_member_release`).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence

from runtime.stores.interfaces import Reservations, StoreUnavailable
from runtime.stores.values import (
    BudgetClaim,
    BudgetCounter,
    CacheWrite,
    CapRequest,
    CapResult,
    CommitResult,
    ContactLimit,
    CouponWrite,
)

#: One budget step answer: (granted, reason, first budget's counter after or as found).
BudgetAnswer = tuple[bool, str | None, BudgetCounter | None]
Commit = tuple[str, Sequence[CapRequest], Sequence[CouponWrite | None], CacheWrite | None]

log = logging.getLogger(__name__)


class TwoPhaseReservations(Reservations):
    """:class:`Reservations` as the budgets-then-member protocol (module docstring)."""

    # -- primitives ------------------------------------------------------------------------
    @abstractmethod
    def _reserve_budgets(self, requests: Sequence[CapRequest]) -> list[BudgetAnswer]:
        """Step 1: reserve every request's budgets (all or none per request), in order, atomically."""

    @abstractmethod
    def _release_budgets(self, claims: Sequence[BudgetClaim]) -> None:
        """Step 3: give back one reservation of each claim, atomically."""

    @abstractmethod
    def _member_reserve(self, member_id: str, requests: Sequence[CapRequest], now: int) -> list[CapResult]:
        """Step 2 of :meth:`reserve`: the member caps of ``requests``, atomically."""

    @abstractmethod
    def _member_commit_many(self, commits: Sequence[Commit], now: int,
                            contacts: Sequence[Sequence[ContactLimit]]) -> list[CommitResult]:
        """Step 2 of a commit: each member's contact caps, member caps, coupons and cache,
        atomically per member (one pipeline for all on Redis)."""

    @abstractmethod
    def _member_release(self, member_id: str, results: Sequence[CapResult]) -> None:
        """Undo granted member reservations (their issue and impression counters)."""

    # -- the protocol ------------------------------------------------------------------------
    def _budget_step(self, requests: Sequence[Sequence[CapRequest]]) -> dict[tuple[int, int], BudgetAnswer]:
        """Step 1 for requests[i][j]: the answer of every request with a budget, by (i, j)."""
        flat = [(i, j) for i, reqs in enumerate(requests) for j, r in enumerate(reqs) if r.claims]
        if not flat:
            return {}
        answers = self._reserve_budgets([requests[i][j] for i, j in flat])
        return dict(zip(flat, answers, strict=True))

    def _give_back(self, claims: list[BudgetClaim]) -> None:
        """Step 3. Best effort: when the store went away after step 2, the decision stands and
        the budgets keep the unused reservations (they err towards under-issuing, never over)."""
        if not claims:
            return
        try:
            self._release_budgets(claims)
        except StoreUnavailable as exc:
            log.warning("%d budget reservation(s) not given back: %s", len(claims), exc)

    def _give_back_quietly(self, requests: Sequence[Sequence[CapRequest]],
                           answers: dict[tuple[int, int], BudgetAnswer]) -> None:
        """After step 2 failed: give back step 1's grants, best effort (the store may be away)."""
        self._give_back([c for (i, j), a in answers.items() if a[0] for c in requests[i][j].claims])

    def reserve(self, member_id: str, requests: Sequence[CapRequest], now: int) -> list[CapResult]:
        if not requests:
            return []
        answers = self._budget_step([requests])
        passed = [j for j in range(len(requests)) if answers.get((0, j), (True, None, None))[0]]
        try:
            member = dict(zip(passed, self._member_reserve(member_id, [requests[j] for j in passed], now),
                              strict=True))
        except StoreUnavailable:
            self._give_back_quietly([requests], answers)
            raise
        out: list[CapResult] = []
        back: list[BudgetClaim] = []
        for j, req in enumerate(requests):
            granted, reason, counter = answers.get((0, j), (True, None, None))
            if not granted:
                out.append(CapResult(request=req, granted=False, reason=reason, issued_at=now, budget=counter))
                continue
            m = member[j]
            if not m.granted:
                back.extend(req.claims)
            out.append(CapResult(request=req, granted=m.granted, reason=m.reason, issued_at=now,
                                 budget=counter if m.granted else None))
        self._give_back(back)
        return out

    def release(self, member_id: str, results: Sequence[CapResult]) -> None:
        granted = [r for r in results if r.granted and r.reserved]
        if not granted:
            return
        self._member_release(member_id, granted)
        self._give_back([c for r in granted for c in r.request.claims])

    def commit_decision(self, member_id: str, requests: Sequence[CapRequest],
                        coupons: Sequence[CouponWrite | None], now: int,
                        cache: CacheWrite | None = None, contact: Sequence[ContactLimit] = ()) -> CommitResult:
        if not requests and cache is None:
            return CommitResult([], [], False)
        return self.commit_many([(member_id, requests, coupons, cache)], now, [contact])[0]

    def commit_many(self, commits: Sequence[Commit], now: int,
                    contacts: Sequence[Sequence[ContactLimit]] | None = None) -> list[CommitResult]:
        contacts = contacts if contacts is not None else [()] * len(commits)
        requests = [c[1] for c in commits]
        answers = self._budget_step(requests)
        passed = [[j for j in range(len(reqs)) if answers.get((i, j), (True, None, None))[0]]
                  for i, reqs in enumerate(requests)]
        todo = [(m, [reqs[j] for j in p], [coupons[j] for j in p], cache)
                for (m, reqs, coupons, cache), p in zip(commits, passed, strict=True)]
        try:
            results = self._member_commit_many(todo, now, contacts)
        except StoreUnavailable:
            self._give_back_quietly(requests, answers)
            raise
        out: list[CommitResult] = []
        back: list[BudgetClaim] = []
        for i, (reqs, p, result) in enumerate(zip(requests, passed, results, strict=True)):
            caps: list[CapResult] = []
            stored: list[bool] = []
            reused: list[bytes | None] = []
            by_j = dict(zip(p, range(len(p)), strict=True))
            for j, req in enumerate(reqs):
                granted, reason, counter = answers.get((i, j), (True, None, None))
                if not granted:
                    caps.append(CapResult(request=req, granted=False, reason=reason, issued_at=now, budget=counter))
                    stored.append(False)
                    reused.append(None)
                    continue
                k = by_j[j]
                m = result.caps[k]
                again = result.coupons_reused[k] if result.coupons_reused else None
                if (not m.granted or not m.reserved) and (i, j) in answers:
                    back.extend(req.claims)  # refused, or a held coupon whose budget was spent at its issue
                keep = m.granted and m.reserved
                caps.append(CapResult(request=req, granted=m.granted, reason=m.reason, issued_at=m.issued_at,
                                      budget=counter if keep else None, reserved=m.reserved))
                stored.append(result.coupons_stored[k])
                reused.append(again)
            out.append(CommitResult(caps=caps, coupons_stored=stored, cache_written=result.cache_written,
                                    coupons_reused=reused))
        self._give_back(back)
        return out
