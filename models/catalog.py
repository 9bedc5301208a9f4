"""The offer catalog: every offer a decision may consider, as objects and as numpy arrays.

A catalog merges the data contract's ``offers`` table (with ``offer_products`` and
``products`` to learn each offer's category) and the program config's own offers
(promotions such as a birthday reward or an upgrade challenge). Caps the contract
cannot carry come from ``offer_defaults`` per kind; levers from ``decisions.levers``.

Decisions never loop over offers in Python to filter or score them: :class:`Catalog`
keeps one array per attribute (kind code, validity, channel bits, tier and segment
masks, caps, budgets, value per tier, lever per tier...), indexed by catalog position.

Value units follow the contract: percent for ``percent_off``, a multiplier for
``points_multiplier``, currency units (points) for ``bonus_points``, ``tier_challenge``
and ``tier_retention``, and minor money units for every other kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.budgets import BudgetRule
from models.data_contract import CHANNELS, OFFER_KINDS, split_list
from models.program import Budget, OfferSpec, Program
from models.rule_eval import RuleSet
from models.rules import Node, offer_rules
from models.units import UNLIMITED

PERCENT_KINDS = frozenset({"percent_off"})
MULTIPLIER_KINDS = frozenset({"points_multiplier"})
POINT_KINDS = frozenset({"bonus_points", "tier_challenge", "tier_retention"})
MONEY_KINDS = frozenset(OFFER_KINDS) - PERCENT_KINDS - MULTIPLIER_KINDS - POINT_KINDS
KIND_CODE = {k: i for i, k in enumerate(OFFER_KINDS)}
ALL_CHANNELS = (1 << len(CHANNELS)) - 1
NS_MIN, NS_MAX = np.iinfo(np.int64).min + 1, np.iinfo(np.int64).max


def channel_bits(channels: Sequence[str] | frozenset[str] | None) -> int:
    """Bit mask of ``channels`` in :data:`models.data_contract.CHANNELS` order (None: every channel)."""
    if channels is None:
        return ALL_CHANNELS
    return sum(1 << CHANNELS.index(c) for c in channels if c in CHANNELS)


@dataclass(frozen=True)
class OfferCaps:
    """Per-member caps within ``window_days`` (None: over the offer's lifetime); None: no cap."""

    impressions: int | None = None
    issues: int | None = None
    redemptions: int | None = None
    window_days: int | None = None


@dataclass(frozen=True)
class Offer:
    """One offer with its eligibility rules, caps, budget and arbitration attributes."""

    offer_id: str
    kind: str
    title: str
    value: float = 0.0
    text: str | None = None
    campaign_id: str | None = None
    tier_values: Mapping[str, float] = field(default_factory=dict)
    cost_minor: int | None = None
    funder: str | None = None
    cost_share: float = 0.0
    starts_at: pd.Timestamp | None = None
    ends_at: pd.Timestamp | None = None
    channels: frozenset[str] | None = None
    tiers: frozenset[str] | None = None
    segments: frozenset[str] | None = None
    min_spend_minor: int = 0
    min_recent_spend_minor: int = 0
    birthday_month: bool = False
    join_min_days: int | None = None
    join_max_days: int | None = None
    bought_products: frozenset[str] = frozenset()
    bought_categories: frozenset[str] = frozenset()
    category: str | None = None
    caps: OfferCaps = OfferCaps()
    budget_key: str | None = None
    budget_count: int | None = None
    budget_minor: int | None = None
    #: the own budget's period and pacing (:mod:`models.budgets`)
    budget_period: str = "total"
    budget_pacing: str = "none"
    #: ids of the program's shared budgets (``budgets:``) this offer also draws on
    shared_budgets: tuple[str, ...] = ()
    stacking_group: str | None = None
    priority: int = 0
    lever: float = 1.0
    requires_coupon: bool = False
    #: share of eligible members held back from the offer as its randomized control (0: none)
    control_share: float = 0.0
    #: what one send costs, redeemed or not (minor units)
    send_cost_minor: int = 0
    #: margin per conversion (minor units); None: the member value plus margin_rate x basket
    conversion_value_minor: int | None = None
    #: a reward priced in points (0: none): eligible only when the balance covers it
    points_price: int = 0
    #: also eligible, as a nudge, when the balance is at most this many points short
    points_nudge: int = 0
    #: eligible only when some points expire within this many days (None: no such rule)
    points_expiring_days: int | None = None
    #: only for members with one of these paid plans active (None: everyone)
    plans: frozenset[str] | None = None
    #: points offers apply to purchases this many days after reaching the member (None: until the end)
    valid_days: int | None = None
    source: str = "contract"
    #: targeting rules the member must pass (its own, its kind's default, its promotion's)
    rules: tuple[Node, ...] = ()

    @property
    def charge_minor(self) -> int:
        """Money a money budget reserves when this offer is issued (its full cost)."""
        return int(self.cost_minor or 0)

    @property
    def budget_keys(self) -> tuple[str, ...]:
        """Every budget an issue of this offer draws on: its own, then the shared ones."""
        own = () if self.budget_key is None else (self.budget_key,)
        return own + self.shared_budgets


class Catalog:
    """Offers by id plus the per-attribute arrays decisions use. Build with :func:`build_catalog`."""

    def __init__(self, program: Program, offers: Sequence[Offer], popularity: Mapping[str, float] | None = None):
        self.program = program
        self.offers: tuple[Offer, ...] = tuple(offers)
        self.index: dict[str, int] = {o.offer_id: i for i, o in enumerate(self.offers)}
        if len(self.index) != len(self.offers):
            raise ValueError("offer ids must be unique in a catalog")
        self.popularity_map: dict[str, float] = dict(popularity or {})
        self._build_arrays()

    def __len__(self) -> int:
        return len(self.offers)

    def __getitem__(self, offer_id: str) -> Offer:
        return self.offers[self.index[offer_id]]

    def with_popularity(self, popularity: Mapping[str, float]) -> Catalog:
        """A copy whose cold-start fallback uses ``popularity`` (offer id -> response rate, 0-1)."""
        return Catalog(self.program, self.offers, popularity)

    def positions(self, offer_ids: Sequence[str]) -> np.ndarray:
        """Catalog positions of ``offer_ids``; -1 for ids the catalog does not know."""
        get = self.index.get
        return np.fromiter((get(o, -1) for o in offer_ids), dtype=np.int64, count=len(offer_ids))

    def _build_arrays(self) -> None:
        p, offers = self.program, self.offers
        n, tiers = len(offers), p.tier_names
        self.kind = np.array([KIND_CODE[o.kind] for o in offers], dtype=np.int64)
        self.starts = np.array([NS_MIN if o.starts_at is None else o.starts_at.value for o in offers], dtype=np.int64)
        self.ends = np.array([NS_MAX if o.ends_at is None else o.ends_at.value for o in offers], dtype=np.int64)
        self.channel_mask = np.array([channel_bits(o.channels) for o in offers], dtype=np.int64)
        self.tier_ok = np.array([[o.tiers is None or t in o.tiers for t in tiers] for o in offers],
                                dtype=bool).reshape(n, len(tiers))
        segments = sorted({s for o in offers for s in (o.segments or ())})
        self.segment_code = {s: i for i, s in enumerate(segments)}
        self.segment_restricted = np.array([o.segments is not None for o in offers], dtype=bool)
        # one extra, always-False column for members whose segment no offer names
        self.segment_ok = np.array([[o.segments is None or s in o.segments for s in segments] + [o.segments is None]
                                    for o in offers], dtype=bool).reshape(n, len(segments) + 1)
        self.min_recent = np.array([o.min_recent_spend_minor for o in offers], dtype=np.int64)
        self.birthday = np.array([o.birthday_month for o in offers], dtype=bool)
        self.join_min = np.array([np.nan if o.join_min_days is None else o.join_min_days for o in offers])
        self.join_max = np.array([np.nan if o.join_max_days is None else o.join_max_days for o in offers])
        self.join_restricted = ~(np.isnan(self.join_min) & np.isnan(self.join_max))
        self.plan_restricted = np.array([o.plans is not None for o in offers], dtype=bool)
        self.points_price = np.array([o.points_price for o in offers], dtype=np.int64)
        self.points_reach = np.array([o.points_price - o.points_nudge for o in offers], dtype=np.int64)
        self.points_expiring_days = np.array([np.nan if o.points_expiring_days is None else o.points_expiring_days
                                              for o in offers], dtype=np.float64)
        self.needs_bought = np.array([bool(o.bought_products or o.bought_categories) for o in offers], dtype=bool)
        self.cap_impressions = np.array([o.caps.impressions or 0 for o in offers], dtype=np.int64)
        self.cap_issues = np.array([o.caps.issues or 0 for o in offers], dtype=np.int64)
        self.cap_redemptions = np.array([o.caps.redemptions or 0 for o in offers], dtype=np.int64)
        self._build_budgets()
        self.charge = np.array([o.charge_minor for o in offers], dtype=np.int64)
        self.value_by_tier = np.array([[o.tier_values.get(t, o.value) for t in tiers] for o in offers],
                                      dtype=np.float64).reshape(n, len(tiers))
        self.send_cost = np.array([o.send_cost_minor for o in offers], dtype=np.float64)
        self.conversion_value = np.array([np.nan if o.conversion_value_minor is None else o.conversion_value_minor
                                          for o in offers], dtype=np.float64)
        self.retailer_cost = np.array([0.0 if o.cost_minor is None else o.cost_minor * (1.0 - o.cost_share)
                                       for o in offers], dtype=np.float64)
        levers = p.decisions.levers.offer
        self.control_share = np.array([o.control_share for o in offers], dtype=np.float64)
        self.lever = np.array([o.lever * levers.get(o.offer_id, 1.0) for o in offers], dtype=np.float64)
        self.kind_tier_lever = np.array([[p.lever_for(k, t) for t in tiers] for k in OFFER_KINDS], dtype=np.float64)
        self.priority = np.array([o.priority for o in offers], dtype=np.int64)
        self.id_rank = np.argsort(np.argsort(np.array([o.offer_id for o in offers], dtype=object), kind="stable"))
        cats = sorted({o.category for o in offers if o.category})
        groups = sorted({o.stacking_group for o in offers if o.stacking_group})
        self.category_names, self.group_names = tuple(cats), tuple(groups)
        self.category = np.array([cats.index(o.category) if o.category else -1 for o in offers], dtype=np.int64)
        self.group = np.array([groups.index(o.stacking_group) if o.stacking_group else -1 for o in offers],
                              dtype=np.int64)
        self.popularity = np.array([self.popularity_map.get(o.offer_id, np.nan) for o in offers], dtype=np.float64)
        self.requires_coupon = np.array([o.requires_coupon for o in offers], dtype=bool)
        #: every offer's targeting rules, compiled (models.rule_eval)
        self.rules = RuleSet([o.rules for o in offers])

    def _build_budgets(self) -> None:
        """Budget keys, their rules (limits, period, pacing) and the (offer, budget) links.

        Offers sharing an own key share the smallest limit any of them states; a shared budget
        (``budgets:``) takes its limits from the program. ``budget_links`` pairs, by offer
        position, every budget an offer draws on (``link_offer``, ``link_budget`` arrays)."""
        offers, program = self.offers, self.program
        shared = {b.id: b for b in program.budgets}
        keys = sorted({k for o in offers for k in o.budget_keys})
        self.budget_keys: tuple[str, ...] = tuple(keys)
        code = {k: i for i, k in enumerate(keys)}
        self.budget_count_limit = np.full(len(keys), UNLIMITED, dtype=np.int64)
        self.budget_minor_limit = np.full(len(keys), UNLIMITED, dtype=np.int64)
        period = dict.fromkeys(keys, "total")
        pacing = dict.fromkeys(keys, "none")
        for o in offers:
            if o.budget_key is not None:
                b = code[o.budget_key]
                period[o.budget_key], pacing[o.budget_key] = o.budget_period, o.budget_pacing
                if o.budget_count is not None:
                    self.budget_count_limit[b] = min(self.budget_count_limit[b], o.budget_count)
                if o.budget_minor is not None:
                    self.budget_minor_limit[b] = min(self.budget_minor_limit[b], o.budget_minor)
        for key, spec in shared.items():
            if key in code:
                b = code[key]
                period[key], pacing[key] = spec.period, spec.pacing
                if spec.count is not None:
                    self.budget_count_limit[b] = spec.count
                if spec.money is not None:
                    self.budget_minor_limit[b] = program.to_minor(spec.money)
        self.budget_rules: tuple[BudgetRule, ...] = tuple(
            BudgetRule(k, None if self.budget_count_limit[i] >= UNLIMITED else int(self.budget_count_limit[i]),
                       None if self.budget_minor_limit[i] >= UNLIMITED else int(self.budget_minor_limit[i]),
                       period[k], pacing[k]) for i, k in enumerate(keys))
        links = [(i, code[k]) for i, o in enumerate(offers) for k in o.budget_keys]
        self.link_offer = np.array([i for i, _ in links], dtype=np.int64)
        self.link_budget = np.array([b for _, b in links], dtype=np.int64)
        self.budget_links: tuple[tuple[int, ...], ...] = tuple(
            tuple(code[k] for k in o.budget_keys) for o in offers)


def build_catalog(program: Program, offers: pd.DataFrame | None = None,
                  offer_products: pd.DataFrame | None = None, products: pd.DataFrame | None = None,
                  popularity: Mapping[str, float] | None = None) -> Catalog:
    """Build the catalog from the contract's offers table plus the program's own offers.

    Parameters
    ----------
    program
        The program; its ``offers`` are added, its ``offer_defaults`` give contract
        offers their caps, its levers apply.
    offers
        The contract ``offers`` table (optional: a program may define every offer itself).
    offer_products, products
        The contract tables that give each contract offer a category (the category most
        of its products share), used for diversity and for reasons.
    popularity
        Offer id -> observed response rate, the cold-start fallback (see :mod:`models.decision`).
    """
    items: list[Offer] = []
    if offers is not None and len(offers):
        items.extend(_contract_offers(program, offers, _categories(offer_products, products)))
    items.extend(offer_from_spec(program, spec) for spec in program.offers)
    return Catalog(program, items, popularity)


def _categories(offer_products: pd.DataFrame | None, products: pd.DataFrame | None) -> dict[str, str]:
    if offer_products is None or products is None or not len(offer_products):
        return {}
    joined = offer_products.merge(products[["product_id", "category"]], on="product_id", how="left")
    joined = joined.dropna(subset=["category"])
    counts = joined.groupby(["offer_id", "category"]).size().reset_index(name="n")
    top = counts.sort_values(["offer_id", "n", "category"], ascending=[True, False, True]).drop_duplicates("offer_id")
    return dict(zip(top["offer_id"].astype(str), top["category"].astype(str), strict=True))


def _opt(row: Mapping[str, object], name: str) -> object:
    value = row.get(name)
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def _contract_offers(program: Program, frame: pd.DataFrame, categories: Mapping[str, str]) -> list[Offer]:
    out = []
    kind_rules: dict[str, tuple[Node, ...]] = {}  # parsed once per kind
    for row in frame.to_dict("records"):
        kind = str(row["kind"])
        default = program.offer_defaults.get(kind)  # type: ignore[call-overload]
        caps = default.caps if default is not None else None
        tiers = split_list(row.get("tiers"))
        segments = split_list(row.get("segments"))
        channels = split_list(row.get("channels"))
        cost, share, prio, value = (_opt(row, k) for k in ("cost_minor", "cost_share", "priority", "value"))
        send, conversion = _opt(row, "send_cost_minor"), _opt(row, "value_minor")
        offer_id = str(row["offer_id"])
        own = default.budget if default is not None else None
        funder = _opt(row, "funder")
        out.append(Offer(
            offer_id=offer_id, kind=kind, title=str(_opt(row, "title") or offer_id),
            value=float(value) if value is not None else 0.0,  # type: ignore[arg-type]
            campaign_id=str(row["campaign_id"]),
            cost_minor=None if cost is None else int(cost),  # type: ignore[call-overload]
            funder=funder,  # type: ignore[arg-type]
            cost_share=0.0 if share is None else float(share),  # type: ignore[arg-type]
            starts_at=pd.Timestamp(row["starts_at"]), ends_at=pd.Timestamp(row["ends_at"]),
            **_own_budget(program, own, offer_id),
            shared_budgets=shared_budgets(program, offer_id, str(row["campaign_id"]),
                                          None if funder is None else str(funder), kind),
            channels=frozenset(channels) if channels else None,
            tiers=frozenset(tiers) if tiers else None,
            segments=frozenset(segments) if segments else None,
            min_spend_minor=int(_opt(row, "min_spend_minor") or 0),  # type: ignore[call-overload]
            category=categories.get(offer_id),
            caps=_caps(caps),
            stacking_group=_opt(row, "stacking_group"),  # type: ignore[arg-type]
            priority=0 if prio is None else int(prio),  # type: ignore[call-overload]
            requires_coupon=bool(default.requires_coupon) if default is not None else False,
            control_share=float(default.control_share) if default is not None else 0.0,
            send_cost_minor=0 if send is None else int(send),  # type: ignore[call-overload]
            conversion_value_minor=None if conversion is None else int(conversion),  # type: ignore[call-overload]
            rules=kind_rules[kind] if kind in kind_rules else kind_rules.setdefault(kind, offer_rules(program, kind)),
        ))
    return out


def _own_budget(program: Program, budget: Budget | None, offer_id: str) -> dict[str, Any]:
    """An offer's own budget fields from a config ``budget:`` (key: its own, else the offer id)."""
    if budget is None:
        return {}
    money = budget.money
    return {"budget_key": budget.key or offer_id, "budget_count": budget.count,
            "budget_minor": None if money is None else program.to_minor(money),
            "budget_period": budget.period, "budget_pacing": budget.pacing}


def shared_budgets(program: Program, offer_id: str, campaign_id: str | None, funder: str | None,
                   kind: str) -> tuple[str, ...]:
    """Ids of the program's shared budgets (``budgets:``) an offer with these attributes draws on."""
    return tuple(b.id for b in program.budgets if b.selects(offer_id, campaign_id, funder, kind))


def _caps(caps: object) -> OfferCaps:
    if caps is None:
        return OfferCaps()
    return OfferCaps(caps.impressions, caps.issues, caps.redemptions, caps.window_days)  # type: ignore[attr-defined]


def offer_from_spec(program: Program, spec: OfferSpec) -> Offer:
    """Turn a program-config offer into an :class:`Offer` (major money units -> minor)."""
    def value_in_unit(v: float) -> float:
        return float(program.to_minor(v)) if spec.kind in MONEY_KINDS else float(v)

    tiers: frozenset[str] | None = frozenset(spec.tiers) if spec.tiers is not None else None
    if spec.min_tier is not None:
        allowed = frozenset(program.tier_names[program.tier_rank[spec.min_tier]:])
        tiers = allowed if tiers is None else tiers & allowed
    join = spec.days_since_join
    return Offer(
        offer_id=spec.id, kind=spec.kind, title=spec.title, text=spec.text, value=value_in_unit(spec.value),
        tier_values={k: value_in_unit(v) for k, v in spec.tier_values.items()},
        cost_minor=None if spec.cost is None else program.to_minor(spec.cost),
        funder=spec.funder, cost_share=spec.cost_share,
        starts_at=None if spec.starts_at is None else pd.Timestamp(spec.starts_at),
        ends_at=None if spec.ends_at is None else pd.Timestamp(spec.ends_at),
        channels=frozenset(spec.channels) if spec.channels is not None else None,
        tiers=tiers, segments=frozenset(spec.segments) if spec.segments is not None else None,
        min_recent_spend_minor=program.to_minor(spec.min_recent_spend),
        min_spend_minor=program.to_minor(spec.min_spend),
        birthday_month=spec.birthday_month or spec.kind == "birthday",
        join_min_days=None if join is None else join.min, join_max_days=None if join is None else join.max,
        bought_products=frozenset(spec.bought_products), bought_categories=frozenset(spec.bought_categories),
        category=spec.category, caps=_caps(spec.caps),
        **_own_budget(program, spec.budget, spec.id),
        shared_budgets=shared_budgets(program, spec.id, None, spec.funder, spec.kind),
        stacking_group=spec.stacking_group, priority=spec.priority, lever=spec.lever,
        requires_coupon=spec.requires_coupon, control_share=spec.control_share,
        send_cost_minor=program.to_minor(spec.send_cost),
        conversion_value_minor=None if spec.conversion_value is None else program.to_minor(spec.conversion_value),
        points_price=spec.points_price, points_nudge=spec.points_nudge,
        points_expiring_days=spec.points_expiring_within_days,
        plans=None if spec.plans is None else frozenset(spec.plans), valid_days=spec.valid_days,
        source="program", rules=offer_rules(program, spec.kind, _spec_index(program, spec)),
    )


def _spec_index(program: Program, spec: OfferSpec) -> int | None:
    """Where ``spec`` sits in the program's offers (its rule's YAML path); None when it is not there."""
    return next((i for i, s in enumerate(program.offers) if s is spec or s == spec), None)


def with_offers(catalog: Catalog, offers: Sequence[Offer]) -> Catalog:
    """A catalog with ``offers`` added (or replacing offers of the same id)."""
    by_id = {o.offer_id: o for o in catalog.offers}
    by_id.update({o.offer_id: o for o in offers})
    return Catalog(catalog.program, list(by_id.values()), catalog.popularity_map)

