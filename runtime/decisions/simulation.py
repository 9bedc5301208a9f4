"""``offers simulate``: what a program change would do, on a sample of members, before it goes live.

A marketer edits the program config (a new offer, a tighter rule, a budget) and wants to see
the effect before launch. Each config - the current one and the new one - decides for the same
sample at the same moment with the same exploration seeds, through the one decision path
(:class:`runtime.decisions.pipeline.DecisionPipeline`) on its own in-process store
(:class:`runtime.stores.memory.MemoryStore`) holding the sample's histories. Reservations are
made in that store, so member caps, budgets and contact rules bind across the sample as they
would live, and nothing reaches the online store: no coupon code leaves, no counter moves.

The comparison per side: members reached (at least one offer), offers issued per offer, the
budget burn (issues and money reserved per budget key against its limit) and why offers were
left out (reason codes). :func:`compare` lines the two sides up by offer and by budget.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from models.budgets import paced, period_id
from models.catalog import Catalog
from models.policy import seed_for
from runtime.decisions.audience import read_members
from runtime.decisions.materialize import load_members, materialize
from runtime.decisions.model_holder import FixedModel
from runtime.decisions.outcome import DecisionRequest, Outcome
from runtime.decisions.pipeline import DecisionPipeline
from runtime.decisions.setup import DecisionSetup
from runtime.stores.memory import MemoryStore

CHUNK = 1000


@dataclass
class BudgetBurn:
    """What one budget would reserve in its period at the decision moment: issues and money
    (minor units), against its limits and, for a paced budget, what pacing releases by then."""

    key: str
    count: int = 0
    minor: int = 0
    limit_count: int | None = None
    limit_minor: int | None = None
    period: str = "total"
    pacing: str = "none"
    paced_count: int | None = None
    paced_minor: int | None = None


@dataclass
class SideResult:
    """One config's decisions for the sample."""

    label: str
    program: str
    members: int = 0
    reached: int = 0
    issued: Counter[str] = field(default_factory=Counter)
    excluded: Counter[str] = field(default_factory=Counter)
    budgets: dict[str, BudgetBurn] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """Both sides and the sample's decision moment."""

    current: SideResult
    new: SideResult
    as_of: datetime
    channel: str
    model_version: str | None
    #: minor units per major unit of the new program's currency (money columns are minor units)
    minor_units: int = 100


def budget_limits(catalog: Catalog, local: pd.Timestamp) -> dict[str, BudgetBurn]:
    """An empty burn per budget of the catalog (offers' own, shared, funders'), with its limits,
    the period containing the decision moment and what pacing releases by then."""
    out: dict[str, BudgetBurn] = {}
    for rule in catalog.budget_rules:
        count, minor = paced(rule, local)
        out[rule.key] = BudgetBurn(rule.key, limit_count=rule.count, limit_minor=rule.minor,
                                   period=period_id(rule.period, local), pacing=rule.pacing,
                                   paced_count=count, paced_minor=minor)
    return out


def tally(side: SideResult, catalog: Catalog, outcomes: Sequence[Outcome]) -> None:
    """Add ``outcomes`` to ``side``: reach, issues per offer, budget burn and exclusion reasons."""
    for outcome in outcomes:
        side.members += 1
        side.reached += bool(outcome.offers)
        for issued in outcome.offers:
            offer = catalog[issued.offer.offer_id]
            side.issued[offer.offer_id] += 1
            side.titles.setdefault(offer.offer_id, offer.title)
            for key in offer.budget_keys:  # an issue counts in every budget it draws on
                burn = side.budgets.setdefault(key, BudgetBurn(key))
                burn.count += 1
                burn.minor += offer.charge_minor
        for excluded in outcome.excluded:
            side.excluded[excluded.reason] += 1


def run_side(label: str, data_dir: str | os.PathLike[str], program: str | os.PathLike[str] | None,
             members: Sequence[str], as_of: str, channel: str, n: int | None, seed: int,
             model: object | None, progress: Callable[[int], None] | None = None
             ) -> tuple[SideResult, datetime, DecisionSetup]:
    """Decide for ``members`` under ``program`` on a fresh in-process store; see the module docstring."""
    setup = DecisionSetup.load(data_dir, program, as_of)
    hist, loaded = load_members(setup, data_dir, list(members))
    store = MemoryStore(wall_clock=lambda: setup.clock.now().timestamp())
    materialize(store, setup, hist, loaded)
    del hist, loaded
    holder = FixedModel(model, setup.clock.now) if model is not None else None  # type: ignore[arg-type]
    pipeline = DecisionPipeline(setup, store, holder)
    when = setup.clock.now()
    req = DecisionRequest(member_id="", channel=channel, n=n, placement="offers simulate", as_of=when,
                          source="offers_simulate")
    side = SideResult(label, str(program) if program is not None else "(data default)",
                      budgets=budget_limits(setup.catalog, setup.local(when)))
    for lo in range(0, len(members), CHUNK):
        ids = list(members[lo:lo + CHUNK])
        outcomes = pipeline.decide_many(ids, req, [f"sim-{label}-{lo + i}" for i in range(len(ids))],
                                        [seed_for(seed, m) for m in ids])
        tally(side, setup.catalog, outcomes)
        if progress is not None:
            progress(len(ids))
    return side, when, setup


def simulate(data_dir: str | os.PathLike[str], members_file: str | os.PathLike[str],
             new_program: str | os.PathLike[str], current_program: str | os.PathLike[str] | None,
             as_of: str, channel: str = "app", n: int | None = None, seed: int = 0, model: object | None = None,
             progress: Callable[[int], None] | None = None) -> Comparison:
    """Both configs' decisions for the sample in ``members_file`` (same moment, seeds and model)."""
    members = read_members(members_file)
    current, when, _ = run_side("current", data_dir, current_program, members, as_of, channel, n, seed, model,
                                progress)
    new, _, setup = run_side("new", data_dir, new_program, members, as_of, channel, n, seed, model, progress)
    return Comparison(current, new, when, channel, getattr(model, "version", None),
                      setup.program.currency.minor_units)


def compare(result: Comparison) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Rows per offer (issued under each config and the change) and per budget (burn under each)."""
    cur, new = result.current, result.new
    offers = sorted(set(cur.issued) | set(new.issued), key=lambda o: (-new.issued[o], -cur.issued[o], o))
    offer_rows: list[dict[str, object]] = [
        {"offer_id": o, "title": new.titles.get(o) or cur.titles.get(o, ""), "current": cur.issued[o],
         "new": new.issued[o], "change": new.issued[o] - cur.issued[o]} for o in offers]
    budget_rows: list[dict[str, object]] = []
    for key in sorted(set(cur.budgets) | set(new.budgets)):
        c, w = cur.budgets.get(key, BudgetBurn(key)), new.budgets.get(key, BudgetBurn(key))
        budget_rows.append({"budget": key, "period": w.period, "pacing": w.pacing, "current_count": c.count,
                            "new_count": w.count, "limit_count": w.limit_count, "paced_count": w.paced_count,
                            "current_minor": c.minor, "new_minor": w.minor, "limit_minor": w.limit_minor,
                            "paced_minor": w.paced_minor})
    return offer_rows, budget_rows
