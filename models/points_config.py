"""The ``points:`` section of a program config: earning, rewards and expiry of the ledger.

It lives beside :mod:`models.program` (which includes it as :attr:`Program.points`) because
it is a schema of its own: the earn multipliers, the signup and birthday bonuses, the
rewards priced in points, and how points expire. The base earn rate stays where it always
was (``currency.earn_rate`` per major unit, or per visit, times the tier's
``earn_multiplier``). docs/program-config.md documents every key; :mod:`models.points`
turns a transaction into ledger postings with these rules.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NonNegInt = Annotated[int, Field(ge=0)]
PosInt = Annotated[int, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Multiplier(_Strict):
    """An earn multiplier: every condition given must hold for a purchase line (AND).

    ``days_of_week`` (local), ``first_weekend_of_month`` (the month's first Saturday and the
    Sunday after it), ``dates`` (one-off days such as Double Star Days), ``categories`` (the
    line's product category) and ``tiers`` (the member's tier).
    """

    name: str = Field(min_length=1)
    factor: Annotated[float, Field(gt=0.0, le=100.0)]
    days_of_week: tuple[Weekday, ...] = ()
    first_weekend_of_month: bool = False
    dates: tuple[dt.date, ...] = ()
    categories: tuple[str, ...] = ()
    tiers: tuple[str, ...] | None = None
    #: only for members with one of these paid plans active
    plans: tuple[str, ...] | None = None


class Plan(_Strict):
    """A paid membership (Amazon Prime, REI, CVS CarePass): a fee buys ``term_days`` of benefits.

    Buying it again renews it from its current end (or from now when it lapsed). While active,
    the member earns ``earn_multiplier`` times the base rate, multipliers and offers may be
    restricted to it (``plans:``), and it lapses by itself at the end of the term.
    """

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    title: str
    fee: Annotated[float, Field(ge=0.0)]
    term_days: PosInt
    earn_multiplier: Annotated[float, Field(gt=0.0, le=100.0)] = 1.0


class Reward(_Strict):
    """Something a member buys with points.

    ``item`` (a free drink: fulfilled by the caller), ``voucher`` (issues a coupon of the
    program offer named by ``offer``) or ``charity`` (a donation to ``cause``, reported per
    cause).
    """

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    title: str
    points: PosInt
    kind: Literal["item", "voucher", "charity"] = "item"
    offer: str | None = None
    cause: str | None = None


class Challenge(_Strict):
    """A gamified goal presented by a program offer, rewarded once per run (:mod:`models.challenges`)."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    title: str
    goal: Literal["purchases", "new_category", "streak", "category_spend"]
    target: Annotated[float, Field(gt=0)]
    window_days: PosInt = 7
    #: the program offer that presents it: a run starts when a decision issues it to a member
    offer: str
    reward_points: PosInt
    category: str | None = None
    period: Literal["day", "week"] = "day"


class Referrals(_Strict):
    """Member-get-member: both earn when the referee makes a first qualifying purchase."""

    referee_points: NonNegInt = 0
    referrer_points: NonNegInt = 0
    #: the qualifying purchase line's amount (major units)
    min_purchase: Annotated[float, Field(ge=0.0)] = 0.0
    #: days after the link within which the qualifying purchase must come
    window_days: PosInt = 90
    #: referrals one member may make (0: no limit)
    max_per_member: NonNegInt = 0


class Expiry(_Strict):
    """When earned points expire.

    ``rolling``: ``months`` after the day they were earned (local midnight);
    ``calendar``: at the end of the earning year's ``month``/``day`` (local), ``years`` later;
    ``none``: never.
    """

    type: Literal["none", "rolling", "calendar"] = "none"
    months: PosInt | None = None
    month: Annotated[int, Field(ge=1, le=12)] = 12
    day: Annotated[int, Field(ge=1, le=31)] = 31
    years: NonNegInt = 0


class PointsSettings(_Strict):
    """The ledger's rules; ``enabled: false`` (the default) keeps the ledger off."""

    enabled: bool = False
    multipliers: tuple[Multiplier, ...] = ()
    #: how several multipliers of one line combine: the largest, or their product
    combine: Literal["max", "multiply"] = "max"
    signup: NonNegInt = 0
    birthday: NonNegInt = 0
    #: days before earned points can be spent (returns window); shown as pending until then
    pending_days: NonNegInt = 0
    #: the window of "expiring soon" in the balance view
    expiring_soon_days: PosInt = 30
    expiry: Expiry = Expiry()
    rewards: tuple[Reward, ...] = ()
    challenges: tuple[Challenge, ...] = ()
    #: member-get-member rewards (None: no referral program)
    referrals: Referrals | None = None
    #: paid memberships
    plans: tuple[Plan, ...] = ()


def points_problems(points: PointsSettings, tiers: set[str],
                    offers: dict[str, tuple[str, bool]]) -> list[tuple[tuple[str | int, ...], str]]:
    """Cross-field checks of the points section, as (data path under ``points``, message).

    ``offers`` maps each program offer id to (kind, requires_coupon).
    """
    out: list[tuple[tuple[str | int, ...], str]] = []
    exp = points.expiry
    if exp.type == "rolling" and exp.months is None:
        out.append((("expiry", "months"), "a rolling expiry needs months"))
    if exp.type != "rolling" and exp.months is not None:
        out.append((("expiry", "months"), f"months only applies to a rolling expiry, not {exp.type}"))
    if exp.type == "calendar":
        try:
            dt.date(2001 if not (exp.month == 2 and exp.day == 29) else 2000, exp.month, exp.day)
        except ValueError:
            out.append((("expiry", "day"), f"month {exp.month} has no day {exp.day}"))
    plan_ids = [p.id for p in points.plans]
    out.extend((("plans", i, "id"), f"duplicate plan id {p!r}") for i, p in enumerate(plan_ids) if p in plan_ids[:i])
    for i, m in enumerate(points.multipliers):
        out.extend((("multipliers", i, "tiers", j), f"unknown tier {t!r}")
                   for j, t in enumerate(m.tiers or ()) if t not in tiers)
        out.extend((("multipliers", i, "plans", j), f"unknown plan {p!r}")
                   for j, p in enumerate(m.plans or ()) if p not in plan_ids)
    seen: set[str] = set()
    for i, r in enumerate(points.rewards):
        if r.id in seen:
            out.append((("rewards", i, "id"), f"duplicate reward id {r.id!r}"))
        seen.add(r.id)
        if r.kind == "voucher":
            if r.offer is None:
                out.append((("rewards", i, "offer"), "a voucher reward needs the program offer it issues"))
            elif r.offer not in offers:
                out.append((("rewards", i, "offer"), f"unknown program offer {r.offer!r}"))
            elif not offers[r.offer][1]:
                out.append((("rewards", i, "offer"), f"offer {r.offer!r} must have requires_coupon: true"))
        elif r.offer is not None:
            out.append((("rewards", i, "offer"), "only a voucher reward issues an offer"))
        if r.kind == "charity" and not r.cause:
            out.append((("rewards", i, "cause"), "a charity reward needs its cause"))
    seen = set()
    presenting: set[str] = set()
    for i, c in enumerate(points.challenges):
        if c.id in seen:
            out.append((("challenges", i, "id"), f"duplicate challenge id {c.id!r}"))
        seen.add(c.id)
        if c.offer not in offers:
            out.append((("challenges", i, "offer"), f"unknown program offer {c.offer!r}"))
        elif c.offer in presenting:
            out.append((("challenges", i, "offer"), f"offer {c.offer!r} already presents another challenge"))
        presenting.add(c.offer)
        if c.goal == "category_spend" and not c.category:
            out.append((("challenges", i, "category"), "a category_spend challenge needs its category"))
        if c.goal in ("purchases", "new_category", "streak") and c.target != int(c.target):
            out.append((("challenges", i, "target"), f"a {c.goal} target is a whole number"))
    return out
