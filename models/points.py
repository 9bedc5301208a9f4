"""What a purchase earns, and when points expire: the ledger's rules as pure functions.

The store (:mod:`runtime.stores.points_lua` and its Python twin) keeps balances and applies
postings atomically; this module only decides which postings an event makes, so the live
service and the rebuild from the event log (:mod:`runtime.points.rebuild`) compute the very
same postings.

Amounts are integers. A posting's ``units`` are ten-thousandths of a point (:data:`UNIT`), so
a 99-cent line at one point per dollar earns 9,900 units and nothing is lost to rounding: the
store keeps each member's fraction and moves whole points into the balance as they complete.
Burns and adjustments are whole points (multiples of :data:`UNIT`).

Every posting carries its **cause**, the key that makes it idempotent: the same cause is
never applied twice, so a replayed event never earns twice:

* ``earn:<event_id>`` a purchase line's base earn, with its multipliers;
* ``visit:<ts>`` the earn of a visit (``currency.earn_basis: visit``): once per distinct purchase
  time, exactly the visits the tier engine counts (a basket's lines share their time);
* ``bonus:<offer_id>:<issued_at>`` a bonus-points offer, once per issue;
* ``refund:<event_id>`` the reversal of (a share of) an earlier earn;
* ``signup`` and ``birthday:<year>`` the program's bonuses;
* ``redeem:<key>`` and ``adjust:<key>`` burns and admin adjustments (the request's key).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from zoneinfo import ZoneInfo

from models.points_config import WEEKDAYS, PointsSettings
from models.program import Program

#: Ledger units per point: postings and the stored fraction count ten-thousandths of a point.
UNIT = 10_000
DAY = 86_400
#: The kinds of ledger entries.
KINDS = ("earn", "burn", "expire", "adjust", "reverse")


@dataclass(frozen=True)
class Posting:
    """One movement to apply to a member's points (see the module docstring for causes).

    ``units`` is signed (ten-thousandths of a point). An ``earn`` remembers ``amount_minor``, the
    purchase it was for; a ``reverse`` posting with ``of`` (a refund) takes back the share
    ``amount_minor`` / that purchase of the units that cause earned, exactly and at most all of
    them however many refunds follow; without ``of`` it takes back ``-units``. ``expires_at`` and
    ``available_at`` (epoch seconds, 0: never / at once) place earned points in their lot.
    ``meta`` is what the entry shows: rule, offer, event, reward, reason, actor.
    """

    cause: str
    kind: str
    units: int
    ts: int
    expires_at: int = 0
    available_at: int = 0
    of: str | None = None
    amount_minor: int = 0
    meta: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class PointsOffer:
    """A points offer of the catalog: ``bonus_points`` (value in points) or ``points_multiplier``
    (value is the factor), active from ``starts`` to ``ends`` (epoch seconds, None: open)."""

    offer_id: str
    kind: str
    value: float
    category: str | None = None
    starts: int | None = None
    ends: int | None = None
    #: seconds after reaching the member that it applies (None: until it ends)
    valid_seconds: int | None = None
    #: the smallest basket it applies to, in minor units (0: any purchase)
    min_spend_minor: int = 0

    def active(self, ts: int) -> bool:
        return (self.starts is None or self.starts <= ts) and (self.ends is None or ts < self.ends)


@dataclass(frozen=True)
class PurchaseLine:
    """A transaction event as the earn rules see it (epoch seconds, minor units)."""

    event_id: str
    member_id: str
    ts: int
    amount_minor: int
    category: str | None = None
    basket_id: str | None = None
    refund_of: str | None = None
    #: the whole basket's spend (minor units) when known: the lines of its basket that arrived
    #: together; None: the line is its own basket
    basket_minor: int | None = None

    @property
    def basket_spend(self) -> int:
        """What a basket-size condition compares: the basket's spend, else this line's."""
        return self.amount_minor if self.basket_minor is None else self.basket_minor


@dataclass(frozen=True)
class EarnContext:
    """The member at the purchase: tier, and when each offer was issued or shown to them."""

    tier: str
    offered: Mapping[str, Sequence[int]] = field(default_factory=dict)
    #: paid plans active for the member
    plans: frozenset[str] = frozenset()


def expiry_at(settings: PointsSettings, ts: int, zone: ZoneInfo) -> int:
    """When points earned at ``ts`` expire (epoch seconds; 0: never)."""
    exp = settings.expiry
    if exp.type == "none":
        return 0
    day = dt.datetime.fromtimestamp(ts, zone).date()
    if exp.type == "rolling":
        months = day.month - 1 + int(exp.months or 0)
        year, month = day.year + months // 12, months % 12 + 1
        end = dt.date(year, month, min(day.day, _month_days(year, month)))
    else:
        year = day.year + exp.years
        end = dt.date(year, exp.month, min(exp.day, _month_days(year, exp.month))) + dt.timedelta(days=1)
        if end <= day:  # earned after this year's expiry day: it is next year's
            end = dt.date(year + 1, exp.month, min(exp.day, _month_days(year + 1, exp.month))) + dt.timedelta(days=1)
    return _midnight(end, zone)


def available_at(settings: PointsSettings, ts: int, zone: ZoneInfo) -> int:
    """When points earned at ``ts`` can be spent: the local midnight ``pending_days`` later (0: at once)."""
    if settings.pending_days == 0:
        return 0
    day = dt.datetime.fromtimestamp(ts, zone).date() + dt.timedelta(days=settings.pending_days)
    return _midnight(day, zone)


def _midnight(day: dt.date, zone: ZoneInfo) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())


def _month_days(year: int, month: int) -> int:
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    return (nxt - dt.timedelta(days=1)).day


def _first_weekend(day: dt.date) -> bool:
    """The month's first Saturday, or the Sunday right after it."""
    if day.weekday() == 5:
        return day.day <= 7
    return day.weekday() == 6 and 2 <= day.day <= 8


def line_factor(program: Program, offers: Sequence[PointsOffer], line: PurchaseLine, ctx: EarnContext,
                zone: ZoneInfo) -> tuple[Fraction, list[str]]:
    """The multiplier of one purchase line and the names of the rules and offers behind it.

    Rules match when every condition they give holds; multiplier offers count when active at
    the purchase and issued or shown to the member before it (and in their category, if any).
    ``points.combine`` takes the largest factor or their product.
    """
    settings = program.points
    day = dt.datetime.fromtimestamp(line.ts, zone).date()
    factors: list[tuple[Fraction, str]] = []
    for m in settings.multipliers:
        if m.days_of_week and WEEKDAYS[day.weekday()] not in m.days_of_week:
            continue
        if m.first_weekend_of_month and not _first_weekend(day):
            continue
        if m.dates and day not in m.dates:
            continue
        if m.categories and line.category not in m.categories:
            continue
        if m.tiers is not None and ctx.tier not in m.tiers:
            continue
        if m.plans is not None and not (ctx.plans & set(m.plans)):
            continue
        factors.append((Fraction(str(m.factor)), m.name))
    for o in offers:
        if o.kind == "points_multiplier" and o.value > 0 and _offered(o, line, ctx) is not None:
            factors.append((Fraction(str(o.value)), o.offer_id))
    if not factors:
        return Fraction(1), []
    if settings.combine == "max":
        best = max(factors, key=lambda f: f[0])
        return best[0], [best[1]]
    return math.prod((f for f, _ in factors), start=Fraction(1)), [n for _, n in factors]


def _offered(offer: PointsOffer, line: PurchaseLine, ctx: EarnContext) -> int | None:
    """The latest time the offer reached the member at or before the purchase, when it applies:
    active then, in its category (if any), on a basket of at least its minimum spend, and within
    its validity after reaching the member."""
    if not offer.active(line.ts) or (offer.category is not None and line.category != offer.category):
        return None
    if line.basket_spend < offer.min_spend_minor:
        return None
    times = [t for t in ctx.offered.get(offer.offer_id, ()) if t <= line.ts]
    if not times or (offer.valid_seconds is not None and line.ts >= max(times) + offer.valid_seconds):
        return None
    return max(times)


def base_rate(program: Program, tier: str, plans: frozenset[str] = frozenset()) -> Fraction:
    """Points per major unit (or per visit) for a member of ``tier`` with ``plans`` active: the
    currency's rate times the tier's and every active plan's ``earn_multiplier``."""
    multiplier = next((t.earn_multiplier for t in program.tiers if t.name == tier), 1.0)
    rate = program.earn_fraction * Fraction(str(multiplier))
    for plan in program.points.plans:
        if plan.id in plans:
            rate *= Fraction(str(plan.earn_multiplier))
    return rate


def basket_points(program: Program, tiers: Sequence[str], plans: Sequence[frozenset[str]],
                  basket_minor: int | None) -> list[int]:
    """Whole points each member (by tier and active plans) would earn on the current basket of
    ``basket_minor`` at the base rate: what a reward's price may count on top of the balance when
    the decision request carries the cart ("your balance plus this basket covers a free drink").

    Day, category and offer multipliers are left out (they depend on the lines and the moment of
    payment), so the figure never promises more than the purchase earns. All 0 without a points
    ledger or a known, positive basket."""
    if basket_minor is None or basket_minor <= 0 or not program.points.enabled:
        return [0] * len(tiers)
    out = []
    for tier, active in zip(tiers, plans, strict=True):
        rate = base_rate(program, tier, active)
        whole = rate if program.currency.earn_basis == "visit" else rate * basket_minor / program.currency.minor_units
        out.append(math.floor(whole))
    return out


def earn_postings(program: Program, offers: Sequence[PointsOffer], line: PurchaseLine, ctx: EarnContext,
                  zone: ZoneInfo) -> list[Posting]:
    """The postings one transaction event makes (module docstring for the causes).

    A refund (``refund_of`` set, negative amount) reverses its share of that purchase's earn.
    A negative amount without ``refund_of`` reverses at today's rate. Spend-based programs
    earn per line; visit-based ones once per distinct purchase time (a visit, as the tier engine
    counts them). Bonus-points offers are fulfilled once
    per issue by a purchase while they are active.
    """
    settings = program.points
    exp, avail = expiry_at(settings, line.ts, zone), available_at(settings, line.ts, zone)
    meta_base: dict[str, object] = {"event_id": line.event_id, "tier": ctx.tier}
    if line.refund_of is not None and line.amount_minor < 0:
        return [Posting(f"refund:{line.event_id}", "reverse", 0, line.ts, of=f"earn:{line.refund_of}",
                        amount_minor=-line.amount_minor, meta={**meta_base, "refund_of": line.refund_of})]
    factor, names = line_factor(program, offers, line, ctx, zone)
    rate = base_rate(program, ctx.tier, ctx.plans) * factor
    meta = {**meta_base, "rule": "+".join(["base", *names]), "factor": float(factor)}
    out: list[Posting] = []
    if program.currency.earn_basis == "visit":
        if line.amount_minor > 0:
            out.append(Posting(f"visit:{line.ts}", "earn", math.floor(rate * UNIT), line.ts, exp, avail,
                               meta={**meta, "basket_id": line.basket_id}))
    else:
        units = math.floor(rate * line.amount_minor * UNIT / program.currency.minor_units) \
            if line.amount_minor >= 0 else -math.floor(rate * -line.amount_minor * UNIT / program.currency.minor_units)
        if units > 0:
            out.append(Posting(f"earn:{line.event_id}", "earn", units, line.ts, exp, avail,
                               amount_minor=line.amount_minor, meta=meta))
        elif units < 0:
            out.append(Posting(f"earn:{line.event_id}", "reverse", units, line.ts, meta=meta))
    if line.amount_minor > 0:
        for o in offers:
            if o.kind != "bonus_points" or o.value <= 0:
                continue
            issued = _offered(o, line, ctx)
            if issued is not None:
                out.append(Posting(f"bonus:{o.offer_id}:{issued}", "earn", round(o.value * UNIT), line.ts, exp, avail,
                                   meta={**meta_base, "rule": "offer", "offer_id": o.offer_id}))
    return out


def bonus_postings(program: Program, zone: ZoneInfo, now: int, joined_at: int | None,
                   birth_month: int | None) -> list[Posting]:
    """The signup and birthday bonuses due at ``now`` (idempotent by cause, so posting them at
    every ledger operation grants each once): signup once, dated at the join; birthday once a
    year, in the member's birth month."""
    settings = program.points
    out: list[Posting] = []
    if settings.signup and joined_at is not None and joined_at <= now:
        out.append(Posting("signup", "earn", settings.signup * UNIT, joined_at,
                           expiry_at(settings, joined_at, zone), 0, meta={"rule": "signup"}))
    if settings.birthday and birth_month is not None:
        today = dt.datetime.fromtimestamp(now, zone)
        if today.month == birth_month:
            out.append(Posting(f"birthday:{today.year}", "earn", settings.birthday * UNIT, now,
                               expiry_at(settings, now, zone), 0, meta={"rule": "birthday"}))
    return out
