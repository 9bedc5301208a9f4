"""The year's campaign calendar: what runs when, whom it aims at, and its offers.

Six campaign types run through the simulated year (see docs/synthetic.md):

* ``personalized``: every two weeks from February, 8-12 category offers of five kinds,
  each member reached chosen by affinity for the campaign's offers;
* ``supplier_funded``: monthly, brand offers a supplier pays for (``funder``, ``cost_share``);
* ``partner``: quarterly, category offers co-funded by a partner business;
* ``tier_exclusive``: four a year, early access, free shipping and points offers for Silver/Gold;
* ``seasonal``: four themed mass mailings (barbecue, back to school, Thanksgiving, holidays);
* ``birthday``: monthly, one store-wide offer for members born that month.

Each offer targets a category, a department, a supplier brand inside a category, or
the whole store. The calendar comes from its own seeded stream (offer_catalog.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from offerdata.synthetic.params import DAY, OPT_IN_CHANNELS, SEGMENTS, YEAR
from offerdata.synthetic.products import ProductCatalog

#: What a point is worth when redeemed, in cents; members earn one point per dollar.
POINT_VALUE_CENTS = 1.0
SHIPPING_FEE_CENTS = 599
PARTNERS: tuple[str, ...] = ("FuelStop", "StreamBox", "Skyway Air", "CityGym")

SEASONS: tuple[tuple[str, str, int, tuple[str, ...]], ...] = (
    ("Summer barbecue", f"{YEAR}-06-16", 21, ("BEEF", "CHICKEN", "BEER", "SOFT DRINKS", "CONDIMENTS", "SALTY SNACKS")),
    ("Back to school", f"{YEAR}-08-11", 21, ("BREAKFAST CEREAL", "SALTY SNACKS", "JUICE", "BREAD", "DELI MEATS")),
    ("Thanksgiving", f"{YEAR}-11-10", 17, ("BAKING", "CANNED GOODS", "WINE", "VEGETABLES", "CAKES & PIES")),
    ("Holidays", f"{YEAR}-12-08", 24, ("COOKIES & CRACKERS", "WINE", "SPIRITS", "CANDY", "CHEESE")),
)


@dataclass(frozen=True)
class Target:
    """What an offer applies to: its products, the categories they span, a label for titles."""

    label: str
    categories: tuple[int, ...]
    rows: np.ndarray  # catalog rows of the target's products
    brand: int | None = None  # set when the target is one supplier brand
    group: str | None = None  # stacking group shared by discounts on the same target


@dataclass(frozen=True)
class OfferSpec:
    """One offer before it gets an id: kind, target, face value, cost and eligibility."""

    kind: str
    target: Target
    value: float
    cost: int  # expected cost per redemption, cents
    depth: float  # worth to the member as a share of a typical target purchase, 0-1
    title: str
    funder: str | None = None
    cost_share: float | None = None
    tiers: tuple[str, ...] | None = None
    segment: str | None = None


@dataclass
class Campaign:
    """One campaign: when it runs, whom it reaches and how many of its offers each member sees."""

    campaign_type: str
    name: str
    start: int  # seconds since the start of the year, 00:00 of the first day
    end: int  # 23:59:59 of the last day
    channels: tuple[str, ...]
    reach: float  # share of eligible members reached
    per_member: tuple[int, int]  # min and max offers shown to a reached member
    targeting: float  # how strongly reach and offer choice follow affinity (0 = at random)
    send_days: float  # exposures spread over this many days after the start
    birth_month: int = 0  # birthday campaigns: only members born this month
    offers: list[OfferSpec] = field(default_factory=list)

    @property
    def channel_mask(self) -> int:
        """Bit mask of the campaign's channels over OPT_IN_CHANNELS."""
        return sum(1 << OPT_IN_CHANNELS.index(c) for c in self.channels)


def _seconds(day: str | dt.date) -> int:
    """Seconds from 1 January of the simulated year to 00:00 of ``day``."""
    date = dt.date.fromisoformat(day) if isinstance(day, str) else day
    return (date - dt.date(YEAR, 1, 1)).days * DAY


def _campaign(campaign_type: str, name: str, start: str | dt.date, days: int, *,
              channels: tuple[str, ...], reach: float, per_member: tuple[int, int],
              targeting: float, send_days: float, birth_month: int = 0) -> Campaign:
    """A campaign running ``days`` whole days from ``start``."""
    begin = _seconds(start)
    return Campaign(campaign_type, name, begin, begin + days * DAY - 1, channels, reach, per_member,
                    targeting, send_days, birth_month)


def _first_monday(month: int) -> dt.date:
    """The first Monday of ``month`` in the simulated year."""
    day = dt.date(YEAR, month, 1)
    return day + dt.timedelta(days=(7 - day.weekday()) % 7)


class _Targets:
    """Picks offer targets from the catalog."""

    def __init__(self, catalog: ProductCatalog, gen: np.random.Generator):
        """Targets drawn from ``catalog`` with ``gen``; categories weighted by sqrt(popularity)."""
        self.catalog = catalog
        self.gen = gen
        weight = np.sqrt(catalog.category_popularity)
        self.category_weight = weight / weight.sum()

    def _random_category(self) -> int:
        """A category index, popular ones more often (but not overwhelmingly)."""
        return int(self.gen.choice(len(self.category_weight), p=self.category_weight))

    def category(self, name: str | None = None) -> Target:
        """A category target: ``name`` or one drawn at random."""
        cat = self.catalog
        c = cat.category_names.index(name) if name is not None else self._random_category()
        return Target(cat.category_names[c].title(), (c,), np.flatnonzero(cat.category == c),
                      group=f"category:{cat.category_names[c]}")

    def department(self, name: str | None = None) -> Target:
        """A department target: ``name`` or one at random."""
        cat = self.catalog
        d = cat.department_names.index(name) if name is not None else int(self.gen.integers(len(cat.department_names)))
        return Target(cat.department_names[d].title(),
                      tuple(int(c) for c in np.flatnonzero(cat.category_department == d)),
                      np.flatnonzero(cat.department == d), group=f"department:{cat.department_names[d]}")

    def brand(self) -> Target:
        """A supplier brand inside a category, one that has at least three products there."""
        cat = self.catalog
        while True:
            c = self._random_category()
            brands, counts = np.unique(cat.brand[(cat.category == c) & ~cat.private], return_counts=True)
            if (counts >= 3).any():
                b = int(self.gen.choice(brands[counts >= 3]))
                return Target(f"{cat.brand_names[b]} {cat.category_names[c].title()}", (c,),
                              np.flatnonzero((cat.category == c) & (cat.brand == b)), brand=b,
                              group=f"brand:{cat.brand_names[b]}:{cat.category_names[c]}")

    def store(self) -> Target:
        """The whole store."""
        return Target("your next shop", tuple(range(len(self.catalog.category_names))),
                      np.arange(self.catalog.n_products))


def _money(cents: float) -> str:
    """``$1.50`` for 150 cents."""
    return f"${cents / 100:,.2f}"


def make_offer(kind: str, target: Target, catalog: ProductCatalog, gen: np.random.Generator, *,
               funder: str | None = None, cost_share: float | None = None,
               tiers: tuple[str, ...] | None = None, segment: str | None = None) -> OfferSpec:
    """One offer of ``kind`` on ``target``: face value, cost per redemption, depth and title.

    Values follow the contract's units: percent for percent_off, partner and early_access;
    cents for amount_off, birthday, free_item (the item's price) and free_shipping (the fee);
    a multiplier for points_multiplier; points for bonus_points.
    """
    price = float(catalog.price[target.rows].mean())
    label = target.label
    if kind in ("percent_off", "partner", "early_access"):
        value = float(gen.choice([10, 15, 20, 25, 30] if kind == "percent_off" else [10, 15, 20]))
        depth, cost = value / 100, price * value / 100
        title = f"{value:.0f}% off {label}"
        if kind == "early_access":
            title = f"Early access: {title}"
        elif kind == "partner":
            title = f"{funder}: {title}"
    elif kind == "amount_off":
        value = float(gen.choice([v for v in (50, 75, 100, 150, 200, 300) if v <= 0.6 * price] or [50]))
        depth, cost = value / price, value
        title = f"{_money(value)} off {label}"
    elif kind == "birthday":
        value = 500.0
        depth, cost = value / price, value
        title = f"Happy birthday: {_money(value)} off {label}"
    elif kind == "free_item":
        value = float(round(price))
        depth, cost = 0.5, value
        title = f"Buy one, get one free: {label}"
    elif kind == "points_multiplier":
        value = float(gen.choice([2, 3, 4, 5]))
        cost = (value - 1) * price / 100 * POINT_VALUE_CENTS
        depth = (value - 1) * POINT_VALUE_CENTS / 100
        title = f"{value:.0f}x points on {label}"
    elif kind == "bonus_points":
        value = float(gen.choice([100, 200, 250, 500]))
        depth, cost = value * POINT_VALUE_CENTS / price, value * POINT_VALUE_CENTS
        title = f"{value:.0f} bonus points on {label}"
    elif kind == "free_shipping":
        value = float(SHIPPING_FEE_CENTS)
        depth, cost = 0.25, value
        title = f"Free shipping on {label} orders"
    else:
        raise ValueError(f"no synthetic recipe for offer kind {kind!r}")
    return OfferSpec(kind, target, value, round(cost), min(1.0, depth), title, funder, cost_share,
                     tiers, segment)


def _share(gen: np.random.Generator, low: float, high: float) -> float:
    """A funder's cost share between ``low`` and ``high``, in steps of 5%."""
    return float(np.round(gen.uniform(low, high) * 20) / 20)


def schedule(catalog: ProductCatalog, gen: np.random.Generator) -> list[Campaign]:
    """Every campaign of the year with its offers, in start order."""
    targets = _Targets(catalog, gen)
    campaigns: list[Campaign] = []

    start = dt.date(YEAR, 2, 3)
    while start <= dt.date(YEAR, 12, 15):
        camp = _campaign("personalized", f"Your coupons {start:%d %b}", start, 14,
                         channels=("app", "email", "push"), reach=0.25, per_member=(2, 4),
                         targeting=1.0, send_days=2.0)
        kinds = gen.choice(["percent_off", "amount_off", "free_item", "points_multiplier", "bonus_points"],
                           p=[0.3, 0.3, 0.1, 0.15, 0.15], size=int(gen.integers(8, 13)))
        for kind in kinds:
            target = targets.department() if gen.random() < 0.15 else targets.category()
            segment = str(gen.choice(SEGMENTS[:-1])) if gen.random() < 0.1 else None
            camp.offers.append(make_offer(str(kind), target, catalog, gen, segment=segment))
        campaigns.append(camp)
        start += dt.timedelta(days=14)

    for month in range(2, 13):
        camp = _campaign("supplier_funded", f"Brand savings {month:02d}", _first_monday(month), 28,
                         channels=("email", "app", "web"), reach=0.15, per_member=(1, 2),
                         targeting=1.0, send_days=3.0)
        for _ in range(int(gen.integers(3, 6))):
            target = targets.brand()
            assert target.brand is not None
            kind = "amount_off" if gen.random() < 0.6 else "percent_off"
            camp.offers.append(make_offer(kind, target, catalog, gen, funder=catalog.brand_names[target.brand],
                                          cost_share=_share(gen, 0.5, 1.0)))
        campaigns.append(camp)

    for month, partner in zip((3, 6, 9, 11), PARTNERS, strict=True):
        camp = _campaign("partner", f"{partner} partnership", _first_monday(month), 30,
                         channels=("email", "web", "mail"), reach=0.2, per_member=(1, 2),
                         targeting=0.0, send_days=3.0)
        for _ in range(int(gen.integers(2, 4))):
            camp.offers.append(make_offer("partner", targets.category(), catalog, gen, funder=partner,
                                          cost_share=_share(gen, 0.3, 0.7)))
        campaigns.append(camp)

    upper, gold = ("Silver", "Gold"), ("Gold",)
    tier_plan = (
        ("Gold double points", f"{YEAR}-04-07", 21,
         [("points_multiplier", targets.department("GROCERY"), gold),
          ("bonus_points", targets.category(), gold)]),
        ("Members' summer preview", f"{YEAR}-07-07", 14,
         [("early_access", targets.category(), upper), ("early_access", targets.category(), upper),
          ("free_shipping", targets.department("HOUSEHOLD"), gold)]),
        ("Autumn perks", f"{YEAR}-10-06", 21,
         [("free_shipping", targets.department("PET"), upper),
          ("points_multiplier", targets.category(), gold)]),
        ("Black Friday early access", f"{YEAR}-11-17", 14,
         [("early_access", targets.category(), upper), ("early_access", targets.department(), upper),
          ("early_access", targets.category(), gold)]),
    )
    for name, day, days, plan in tier_plan:
        camp = _campaign("tier_exclusive", name, day, days, channels=("app", "push", "email"),
                         reach=0.7, per_member=(1, 3), targeting=0.5, send_days=1.0)
        for kind, target, tiers in plan:
            camp.offers.append(make_offer(kind, target, catalog, gen, tiers=tiers))
        campaigns.append(camp)

    for name, day, days, categories in SEASONS:
        camp = _campaign("seasonal", name, day, days, channels=("mail", "email", "app", "web", "sms"),
                         reach=0.5, per_member=(2, 3), targeting=0.0, send_days=3.0)
        for category in categories:
            kind = "percent_off" if gen.random() < 0.5 else "amount_off"
            camp.offers.append(make_offer(kind, targets.category(category), catalog, gen))
        campaigns.append(camp)

    for month in range(1, 13):
        first = dt.date(YEAR, month, 1)
        days = (dt.date(YEAR + (month == 12), month % 12 + 1, 1) - first).days
        camp = _campaign("birthday", f"Birthday {first:%B}", first, days, channels=("email", "app", "sms"),
                         reach=0.95, per_member=(1, 1), targeting=0.0, send_days=1.0, birth_month=month)
        camp.offers.append(make_offer("birthday", targets.store(), catalog, gen))
        campaigns.append(camp)

    campaigns.sort(key=lambda c: (c.start, c.campaign_type))
    return campaigns
