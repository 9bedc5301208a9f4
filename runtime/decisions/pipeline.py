"""A decision from request to committed outcome, for one member or a batch (no Flask here).

:class:`DecisionPipeline` has one decision path, :meth:`~DecisionPipeline.decide_many`, for
any number of members at one moment::

    request -> ONE read (state, cached scores, budgets, history records, profile)
            -> cached scores for (model version, channel, candidates), else features from
               the members' history records + model.predict (+ pred_contrib to explain);
               an uplift model scores uplift and propensity from the profiles' attributes
            -> decide_members() (models.decision)
            -> ONE write (reservations, coupons, score cache: runtime.coupons.issuance)
            -> the decision log (runtime.decisions.decision_log)

A real-time decision is that path with one member (one round trip each way); the batch
endpoint and ``offers batch`` pass chunks (one pipelined read and write per chunk).

Failures of the store do not fail a decision: it is computed without the member's
history, cache or counters (a cold-start decision), nothing is reserved and no coupon is
issued; the outcome says ``degraded="store_unavailable"``. Limits that cannot be
checked count as reached, so nothing is over-issued: offers with a global budget are
excluded as ``BUDGET_EXHAUSTED`` and offers with a member issue cap as
``MEMBER_CAP_REACHED`` (when the read failed, the decision core excludes them and fills
the slate with others; when only the write failed, they are dropped from the slate).
The next request simply tries the store again, so decisions recover by themselves.

A store that answers but lost its data (Redis restarted empty, a failover to an empty
replica) is told apart by its generation marker, read in the same round trip as the
member: without it, every cap and budget counter may have been reset, so offers with any
member cap or a budget are excluded (``MEMBER_CAP_REACHED``, ``FREQUENCY_CAPPED``,
``BUDGET_EXHAUSTED``) while the others are still issued with coupons, and the outcome says
``degraded="store_data_lost"`` until ``offers materialize`` writes a new marker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np

from models.decision import Excluded, decide_members
from models.features import FEATURE_NAMES, History
from models.features.online import history_from_records
from models.model import PropensityModel
from models.policy import seed_for
from models.units import NO_TIME
from models.uplift import UpliftModel
from runtime.catalog.live import REASONS as WITHHELD_REASONS
from runtime.coupons.issuance import CouponSpec, Issued, commit, commit_many
from runtime.decisions import campaign_limits
from runtime.decisions.catalog_change import CatalogUpgrader
from runtime.decisions.decision_log import DecisionLog
from runtime.decisions.limits import DecisionLimits
from runtime.decisions.members import MemberInputs, member_inputs
from runtime.decisions.model_holder import ServingModel
from runtime.decisions.outcome import (
    STORE_DATA_LOST,
    STORE_UNAVAILABLE,
    UNKNOWN_MEMBER,
    DecisionRequest,
    Outcome,
)
from runtime.decisions.scoring import (
    expand,
    expand_contributions,
    feature_rows,
    predict,
    stack,
    uplift_scores,
    with_accounts,
)
from runtime.decisions.setup import DecisionSetup, Universe
from runtime.drift import DriftMonitor
from runtime.errors import NotReady
from runtime.metrics import Metrics
from runtime.stores import (
    BudgetCounter,
    BudgetRef,
    CacheWrite,
    CapRequest,
    ContactLimit,
    MemberBundle,
    MemberProfile,
    MemberState,
    Store,
    StoreUnavailable,
)

log = logging.getLogger(__name__)

#: What the log and /readyz tell an operator to run when the store lost its data.
RECOVERY_HINT = ("the online store has no generation marker: Redis lost its data (restarted without "
                 "persistence, or failed over to an empty replica) or was never loaded. Capped and "
                 "budgeted offers are withheld until you run `offers materialize --data DIR [--registry REG] "
                 "[--program P] [--clock C]` against this REDIS_URL (docs/redis.md, Recovery)")


@dataclass
class _Member:
    """One member's reads, turned into a history."""

    member_id: str
    hist: History
    history: str
    profile: MemberProfile | None
    state: MemberState | None
    bundle: MemberBundle | None


class ModelSource(Protocol):
    """Where the pipeline gets its models: the service's ModelRouter (champion and challenger),
    a ModelHolder (follows the champion) or an offline job's FixedModel (one pinned version)."""

    def current(self) -> ServingModel | None:
        """The champion to score with now; None while none is loaded."""
        ...

    def for_members(self, member_ids: Sequence[str]) -> list[ServingModel | None]:
        """The model that decides for each member (champion/challenger routing)."""
        ...


class DecisionPipeline:
    """Runs decisions against a decision setup, a store and (optionally) a model source."""

    def __init__(self, setup: DecisionSetup, store: Store, holder: ModelSource | None = None,
                 metrics: Metrics | None = None, decision_log: DecisionLog | None = None,
                 drift: DriftMonitor | None = None):
        self.setup = setup
        self.store = store
        #: reservations, refusals and the counters used when the store cannot be trusted
        self.limits = DecisionLimits(setup)
        self.holder = holder
        self.metrics = metrics
        #: where committed decisions are logged (None: not logged)
        self.decision_log = decision_log
        #: the rolling sample of live scores and features behind the drift metrics (None: none kept)
        self.drift = drift
        #: offers with a randomized control group, and its share (for the decision log)
        self.control_shares = {o.offer_id: o.control_share for o in setup.catalog.offers if o.control_share > 0}
        #: read members' points accounts with them (offers priced in points, nudges)
        self._points = setup.program.points.enabled
        #: translates and upgrades histories written under an earlier catalog
        self.upgrader = CatalogUpgrader(setup, store)
        #: whether the last read found the store without its generation marker (logged on change)
        self.data_lost = False

    def with_setup(self, setup: DecisionSetup) -> DecisionPipeline:
        """A pipeline deciding with ``setup`` (a live catalog change) and everything else of this one:
        store, models, metrics, logs, drift and the history upgrader (same vocabulary)."""
        out = DecisionPipeline(setup, self.store, self.holder, self.metrics, self.decision_log, self.drift)
        out.upgrader, out.data_lost = self.upgrader, self.data_lost
        return out

    # -- shared steps -------------------------------------------------------------------
    def serving(self) -> ServingModel | None:
        """The model to score with; NotReady while a configured registry has none loaded."""
        if self.holder is None:
            return None
        current = self.holder.current()
        if current is None:
            raise NotReady("the model is not loaded yet")
        return current

    def _models(self, member_ids: Sequence[str]) -> list[ServingModel | None]:
        """Each member's model (champion or challenger); NotReady while the champion is not loaded."""
        if self.holder is None:
            return [None] * len(member_ids)
        models = self.holder.for_members(member_ids)
        if any(m is None for m in models):
            raise NotReady("the model is not loaded yet")
        return models


    def _candidates(self, universe: Universe, exclude: Sequence[str]) -> tuple[list[str], np.ndarray]:
        keep = np.ones(len(universe.offer_ids), dtype=bool)
        if exclude:
            drop = set(exclude)
            keep = np.array([o not in drop for o in universe.offer_ids], dtype=bool)
        return [o for o, k in zip(universe.offer_ids, keep, strict=True) if k], keep

    def _member(self, member_id: str, bundle: MemberBundle | None) -> _Member:
        """One member's history from their bundle; a history written under an earlier catalog
        is translated by product and offer id and upgraded in the background (catalog_change)."""
        profile = bundle.profile if bundle is not None else None
        state = bundle.state if bundle is not None else None
        status, records = "none", None
        if bundle is not None and bundle.history:
            status, records = "ok", bundle.history
        joined = profile.joined_at if profile is not None and profile.joined_at is not None else NO_TIME
        try:
            hist = history_from_records(member_id, records, joined)
        except ValueError as exc:
            log.error("unreadable history records of %s: %s", member_id, exc)
            hist, status = history_from_records(member_id, None, joined), "stale"
        if bundle is not None and profile is not None and profile.fingerprint != self.setup.fingerprint \
                and status != "stale":
            moved = self.upgrader.translate(hist, profile)
            if moved is None:
                status, hist = "stale", history_from_records(member_id, None, joined)
                log.warning("member %s has history records under catalog %s, whose ids are not stored; re-run "
                            "offers materialize", member_id, profile.fingerprint)
            else:
                hist = moved
                self.upgrader.schedule(member_id, moved, profile, bundle.history_length)
        return _Member(member_id, hist, status, profile, state, bundle)

    def read_inputs(self, member_ids: Sequence[str], when: datetime | None = None
                    ) -> list[tuple[MemberInputs, MemberBundle | None, History]]:
        """Members' decision inputs at ``when`` (tier, counters, profile facts, points, challenge
        progress) with their stored bundles and histories, in one store read. The points ledger's
        earn rules read the tier, the offers issued and the purchases from them, the same way a
        decision does."""
        moment = self.setup.moment(when)
        bundles: list[MemberBundle | None] = list(self.store.fetch_members(member_ids, points=self._points))
        members = [self._member(m, b) for m, b in zip(member_ids, bundles, strict=True)]
        hist = stack([m.hist for m in members])
        inputs = member_inputs(self.setup, hist, moment.local, [m.profile for m in members],
                               [m.state for m in members], [b.points if b is not None else None for b in bundles])
        return list(zip(inputs, bundles, [m.hist for m in members], strict=True))

    def _check_generation(self, bundles: Sequence[MemberBundle | None]) -> str | None:
        """``STORE_DATA_LOST`` when the store answered without its generation marker, else None.

        Logs an error saying what to run when the store is first found without it, and once
        more when a marker is back, so a wipe is loud but not one line per decision.
        """
        read = next((b for b in bundles if b is not None), None)
        if read is None:
            return None
        lost = read.generation is None
        if lost != self.data_lost:
            self.data_lost = lost
            if lost:
                log.error("%s", RECOVERY_HINT)
            else:
                log.warning("the online store has a generation marker again (%s): caps and budgets are "
                            "trusted again", read.generation)
        return STORE_DATA_LOST if lost else None

    def _record(self, outcome: Outcome) -> None:
        if self.metrics is None:
            return
        self.metrics.record_decision(outcome.decision.policy, outcome.decision.holdout,
                                     outcome.model_version or "none")
        if outcome.degraded:
            self.metrics.record_degraded(outcome.degraded)

    # -- the one decision path ----------------------------------------------------------------
    def decide(self, req: DecisionRequest, decision_id: str) -> Outcome:
        """Decide for one member: :meth:`decide_many` with that member, seeded by the decision id."""
        return self.decide_many([req.member_id], req, [decision_id], [seed_for(decision_id)])[0]

    def decide_without_commit(self, req: DecisionRequest, decision_id: str) -> Outcome:
        """The decision :meth:`decide` would make now, without its write: nothing reserved,
        no coupon issued, no score cache written, no decision counted in the metrics.

        Why: the operator console shows a member's current decision to support staff; looking
        a member up must not spend their caps, the program's budgets or real coupon codes.
        Offers keep the rank they would get when every reservation is granted; coupon offers
        show no code (none was issued).
        """
        return self.decide_many([req.member_id], req, [decision_id], [seed_for(decision_id)], commit_it=False)[0]

    def decide_chunk(self, member_ids: Sequence[str], req: DecisionRequest, decision_ids: Sequence[str],
                     seed: int = 0) -> list[Outcome]:
        """Decide for several members at once (``req.member_id`` is ignored): :meth:`decide_many`
        with member ``m`` seeded by ``seed_for(seed, m)``, as :func:`models.decision.decide_batch`."""
        return self.decide_many(member_ids, req, decision_ids, [seed_for(seed, m) for m in member_ids])

    def decide_many(self, member_ids: Sequence[str], req: DecisionRequest, decision_ids: Sequence[str],
                    seeds: Sequence[int], commit_it: bool = True) -> list[Outcome]:
        """Decide for ``member_ids`` at one moment: read -> features -> predict -> decide -> commit.

        Every decision the runtime makes goes through here: a real-time decision is one
        member, the batch endpoint and ``offers batch`` pass chunks. Each step is one call for
        all the members (one store read, one feature matrix, one model call, one
        :func:`~models.decision.decide_members`, one store write). Budgets are consumed in
        member order (and reserved atomically against concurrent traffic when committed).
        ``commit_it`` False computes the same decisions without the write (see
        :meth:`decide_without_commit`). Store failures degrade instead of failing (module docstring).

        With champion/challenger routing (:mod:`runtime.decisions.routing`), each model's
        members are decided as one group; the outcomes come back in the order of ``member_ids``.
        """
        models = self._models(member_ids)
        if all(m is models[0] for m in models):
            return self._decide_group(member_ids, req, decision_ids, seeds, commit_it, models[0])
        groups: dict[str, list[int]] = {}
        for i, m in enumerate(models):
            groups.setdefault(m.version if m is not None else "", []).append(i)
        out: list[Outcome | None] = [None] * len(member_ids)
        for idx in groups.values():
            decided = self._decide_group([member_ids[i] for i in idx], req, [decision_ids[i] for i in idx],
                                         [seeds[i] for i in idx], commit_it, models[idx[0]])
            for i, outcome in zip(idx, decided, strict=True):
                out[i] = outcome
        return [o for o in out if o is not None]

    def _decide_group(self, member_ids: Sequence[str], req: DecisionRequest, decision_ids: Sequence[str],
                      seeds: Sequence[int], commit_it: bool, serving: ServingModel | None) -> list[Outcome]:
        """:meth:`decide_many` for members who all get the model ``serving`` (None: no model)."""
        started = time.perf_counter()
        moment = self.setup.moment(req.as_of)
        local, now = moment.local, moment.epoch
        universe = self.setup.universe(local)
        by_uplift = serving is not None and isinstance(serving.model, UpliftModel)
        slot = (universe.slot(serving.version, req.channel)  # uplift scores are not cached: cheap to compute
                if serving is not None and not by_uplift and req.as_of is None and len(universe.scorable) else None)
        refs = campaign_limits.budget_refs(self.setup.catalog, local, universe.offer_ids)
        bundles, budgets, degraded = self._read(member_ids, slot, refs)
        degraded = self._check_generation(bundles[:1]) or degraded
        withheld = [self.limits.withheld(b) for b in bundles]
        # coupon offers withheld from unknown members leave the candidates, so others fill the slate
        # (when every member of the call is withheld; otherwise they are refused after the decision)
        no_coupons = (tuple(o for o in universe.offer_ids if self.setup.catalog[o].requires_coupon)
                      if all(withheld) else ())
        paused = self.setup.withheld  # paused and retired offers: scored (cache intact), never issued
        stopped = tuple(o for o in universe.offer_ids if o in paused) if paused else ()
        candidates, keep = self._candidates(universe, (*req.exclude, *no_coupons, *stopped))
        members = [self._member(m, b) for m, b in zip(member_ids, bundles, strict=True)]
        hist = stack([m.hist for m in members])
        accounts = [m.bundle.points if m.bundle is not None else None for m in members]
        if self.setup.program.points.enabled:  # the point-balance features read the accounts just fetched
            hist = with_accounts(hist, accounts, now)
        inputs = member_inputs(self.setup, hist, local, [m.profile for m in members], [m.state for m in members],
                               accounts)

        n = len(members)
        props = contrib = uplift = None
        full: np.ndarray | None = None
        scores = ["none"] * n
        caches: list[CacheWrite | None] = [None] * n
        model = serving.model if serving is not None else None
        if isinstance(model, UpliftModel):
            full, by_offer, scored = uplift_scores(model, universe, [m.profile for m in members])
            scores = ["computed" if s else "none" for s in scored.tolist()]
            if scored.any():
                props, uplift = full[:, keep], by_offer[:, keep]
        elif serving is not None and isinstance(model, PropensityModel) and len(universe.scorable):
            full = np.full((n, len(universe.offer_ids)), np.nan)
            todo = []
            for i, (m, inp) in enumerate(zip(members, inputs, strict=True)):
                if not inp.context.known_history:
                    continue
                cached = m.bundle.scores if m.bundle is not None else None
                if cached is not None and len(cached) == len(universe.scorable) and not req.explain:
                    full[i] = expand(universe, np.asarray(cached, dtype=np.float64))[0]
                    scores[i] = "cache"
                else:
                    todo.append(i)
            if todo:
                X = feature_rows(self.setup, hist, np.asarray(todo), universe, local, req.channel,
                                 model.program)
                computed = predict(model, X, len(todo))
                if self.drift is not None and commit_it and req.as_of is None:  # live traffic only
                    self.drift.observe(serving.version, model.metadata.get("reference"),
                                       model.feature_names, X, computed.ravel())
                full[todo] = expand(universe, computed)
                if req.explain:
                    contrib = expand_contributions(universe, model.contributions(X), n, todo)[:, keep]
                for i, row in zip(todo, computed, strict=True):
                    scores[i] = "computed"
                    bundle = members[i].bundle
                    if slot is not None and bundle is not None:
                        caches[i] = CacheWrite(slot, row.astype(np.float32), bundle.history_length)
            if scores.count("none") < n:
                props = full[:, keep]

        counters = [inp.counters if degraded is None else self.limits.untrusted() if degraded == STORE_DATA_LOST
                    else self.limits.unchecked(inp.counters) for inp in inputs]
        decisions = decide_members(self.setup.catalog, [inp.context for inp in inputs], candidates, props,
                                   as_of=local, channel=req.channel, counters=counters,
                                   budgets=self.limits.usage(budgets if degraded is None else None, local),
                                   contributions=contrib, feature_names=FEATURE_NAMES if contrib is not None else None,
                                   seeds=seeds, max_offers=req.n, uplift=uplift, request=req.context)
        issued: Sequence[Sequence[Issued] | None] = [None] * n
        quiet = campaign_limits.quiet(self.setup.program, req.channel, local)
        if degraded != STORE_UNAVAILABLE:
            requests = [[] if quiet else self.limits.requests(d, now, local, w)
                        for d, w in zip(decisions, withheld, strict=True)]
            if not commit_it:
                issued = [self.limits.granted_unreserved(r, now) for r in requests]
            else:
                try:
                    issued = self._commit(members, requests, decision_ids, caches, now,
                                          campaign_limits.contact_limits(self.setup.program, req.channel, local))
                except StoreUnavailable as exc:
                    log.warning("%d decision(s) not committed: %s", n, exc)
                    degraded = STORE_UNAVAILABLE
        took = (time.perf_counter() - started) * 1000 / max(n, 1)
        excluded = set(req.exclude)
        unknown = tuple(Excluded(o, UNKNOWN_MEMBER) for o in no_coupons if o not in excluded)
        unknown += tuple(Excluded(o, WITHHELD_REASONS[paused[o]]) for o in stopped if o not in excluded)
        out = []
        for i, (m, d) in enumerate(zip(members, decisions, strict=True)):
            offers, refused = self.limits.apply(d, issued[i], withheld[i], quiet)
            outcome = Outcome(decision_id=decision_ids[i], member_id=m.member_id, as_of=moment.utc,
                              model_version=serving.version if serving else None, decision=d, offers=offers,
                              refused=(*refused, *unknown), member=inputs[i].context, scores=scores[i],
                              history=m.history, degraded=degraded, placement=req.placement, took_ms=took)
            if commit_it:
                self._record(outcome)
            out.append(outcome)
        if commit_it and self.decision_log is not None:
            self.decision_log.append(out, req, candidates, None if full is None else full[:, keep],
                                     self.control_shares)
        return out

    def _read(self, member_ids: Sequence[str], slot: str | None, refs: Sequence[BudgetRef],
              ) -> tuple[list[MemberBundle | None], Mapping[BudgetRef, BudgetCounter] | None, str | None]:
        """The read step: each member's bundle and the budget counters of the current periods
        (``refs``), in one round trip for one member (``fetch_member`` carries the budgets) and two
        for a chunk; ``STORE_UNAVAILABLE`` (and nothing read) when the store cannot be reached."""
        try:
            if len(member_ids) == 1:
                bundle = self.store.fetch_member(member_ids[0], slot, refs, points=self._points)
                return [bundle], bundle.budgets, None
            return (list(self.store.fetch_members(member_ids, slot, points=self._points)),
                    self.store.budget_usage(refs), None)
        except StoreUnavailable as exc:
            log.warning("deciding without the store: %s", exc)
            return [None] * len(member_ids), None, STORE_UNAVAILABLE

    def _commit(self, members: Sequence[_Member], requests: Sequence[list[tuple[CapRequest, CouponSpec | None]]],
                decision_ids: Sequence[str], caches: Sequence[CacheWrite | None], now: int,
                contact: Sequence[ContactLimit]) -> list[Sequence[Issued]]:
        """The write step: reservations (budgets first, then each member's caps and ``contact``
        caps: runtime.stores.two_phase), coupons and score caches of every member; one round
        trip for one member without budgets, one pipeline for a chunk's member steps."""
        if len(members) == 1:
            issued, _ = commit(self.store, members[0].member_id, requests[0], now, decision_ids[0], caches[0],
                               contact)
            return [issued]
        return list(commit_many(self.store, [
            (m.member_id, r, did, cache)
            for m, r, did, cache in zip(members, requests, decision_ids, caches, strict=True)], now, contact))
