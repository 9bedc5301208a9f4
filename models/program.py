"""Loyalty program configuration: the typed model of a program YAML file and its loader.

A program file names the loyalty currency and earn rate, the tiers and how members
qualify for them, the decision settings (levers, diversity, exploration, holdout),
the tier-aware promotions and the program's own offers. docs/program-config.md is
the reference for every key.

Units, because they are easy to get wrong:

* Money in YAML is in **major units** (dollars: ``threshold: 150``, ``cost: 2.5``);
  the loaded objects and everything downstream use integer **minor units** (cents),
  like the data contract. :meth:`Program.to_minor` does the conversion.
* Tier thresholds are in the qualifying metric's unit: major money units for
  ``metric: spend``, currency units (points, stars) for ``metric: points_earned``.
* Internally the tier engine counts *qualifying units*: minor units of spend, or
  visits when the currency is earned per visit. :attr:`Program.threshold_units`
  holds each tier's threshold in those units, computed exactly (no float rounding).

Errors: :func:`load_program` raises :class:`ProgramConfigError` listing every problem
as ``"tiers[1].threshold (line 14): must be greater than tiers[0].threshold (150)"``.

Why one module of about 480 lines: it is the program file's schema, one pydantic model per
YAML section in the order docs/program-config.md documents them, plus the checks that
span sections (tiers against offers, templates against fields). Split, a reader would
have to assemble the schema from several files to answer "what keys does a program have".
"""

from __future__ import annotations

import datetime as dt
import math
import string
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.budgets import Pacing, Period
from models.data_contract import CHANNELS, OFFER_KINDS
from models.errors import CoreError
from models.limits_config import ContactPolicy, SharedBudget, limits_problems
from models.points_config import PointsSettings, points_problems
from models.rules import rule_problems
from models.targeting import Targeting
from models.yamlnodes import YamlSyntaxError, format_path, line_of, parse_with_lines, resolve

OfferKind = Literal[
    "percent_off", "amount_off", "points_multiplier", "bonus_points", "free_item", "free_shipping",
    "tier_challenge", "tier_retention", "birthday", "partner", "charity", "early_access",
]
assert set(OfferKind.__args__) == set(OFFER_KINDS)  # type: ignore[attr-defined]

#: The largest number a config may give (money, counts, multipliers, days): far beyond any real
#: program, and small enough that money in minor units and times in seconds fit the catalog's int64
#: arrays, so a valid config (or a live catalog edit) can always be served.
MAX_NUMBER = 10**12
Share = Annotated[float, Field(ge=0.0, lt=1.0)]
NonNeg = Annotated[float, Field(ge=0.0, le=MAX_NUMBER)]
Positive = Annotated[float, Field(gt=0.0, le=MAX_NUMBER)]
PosInt = Annotated[int, Field(gt=0, le=MAX_NUMBER)]
NonNegInt = Annotated[int, Field(ge=0, le=MAX_NUMBER)]

#: Placeholders a member-facing text template may use (see docs/program-config.md).
TEMPLATE_FIELDS = frozenset({"amount", "deadline", "tier", "next_tier", "value", "currency",
                             "days_left", "title", "points_balance", "points_needed", "points_expiring",
                             "expiry_date", "progress", "target"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Currency(_Strict):
    """The loyalty currency and how members earn it."""

    name: str = "points"
    earn_rate: Positive = 1.0
    earn_basis: Literal["spend", "visit"] = "spend"
    point_value: NonNeg = 0.01
    money: str = "USD"
    symbol: str = "$"
    minor_units: PosInt = 100


class Window(_Strict):
    """The qualification window of the tier metric."""

    type: Literal["rolling", "calendar_year", "lifetime"]
    days: PosInt | None = None


class Downgrade(_Strict):
    """What happens when a member stops qualifying for their tier."""

    policy: Literal["none", "one_down", "to_eligible"] = "to_eligible"
    grace_days: NonNegInt = 0


class TierPolicy(_Strict):
    """How members qualify: the metric, its window and the downgrade policy."""

    metric: Literal["spend", "points_earned"] = "spend"
    window: Window
    downgrade: Downgrade = Downgrade()


class TierDef(_Strict):
    """One tier: its name, threshold on the qualifying metric and earn multiplier."""

    name: str = Field(min_length=1)
    threshold: NonNeg
    earn_multiplier: Positive = 1.0
    perks: tuple[str, ...] = ()


class Caps(_Strict):
    """Per-member caps within a window of ``window_days`` (None: the offer's lifetime)."""

    impressions: PosInt | None = None
    issues: PosInt | None = None
    redemptions: PosInt | None = None
    window_days: PosInt | None = None


class Budget(_Strict):
    """A global budget: a count of issues and/or money (major units) per ``period`` in the program
    timezone, spent at the ``pacing`` pace (:mod:`models.budgets`); shared by ``key``."""

    count: PosInt | None = None
    money: Positive | None = None
    key: str | None = None
    period: Period = "total"
    pacing: Pacing = "none"


class JoinWindow(_Strict):
    """Eligibility on days since the member joined (inclusive bounds)."""

    min: NonNegInt | None = None
    max: NonNegInt | None = None


class OfferSpec(_Strict):
    """An offer the program itself defines (promotions such as a birthday reward)."""

    id: str = Field(min_length=1)
    kind: OfferKind
    title: str
    text: str | None = None
    value: NonNeg = 0.0
    tier_values: dict[str, NonNeg] = {}
    cost: NonNeg | None = None
    funder: str | None = None
    cost_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    #: what sending the offer costs, redeemed or not (a printed coupon, an SMS, a send fee)
    send_cost: NonNeg = 0.0
    #: margin the business makes per conversion; None: the offer's value to the member plus
    #: ``margin_rate`` x basket stands in for it
    conversion_value: NonNeg | None = None
    channels: tuple[str, ...] | None = None
    tiers: tuple[str, ...] | None = None
    min_tier: str | None = None
    segments: tuple[str, ...] | None = None
    min_recent_spend: NonNeg = 0.0
    #: the smallest basket (major units) the offer applies to; points offers earn only on such baskets
    min_spend: NonNeg = 0.0
    birthday_month: bool = False
    days_since_join: JoinWindow | None = None
    bought_products: tuple[str, ...] = ()
    bought_categories: tuple[str, ...] = ()
    category: str | None = None
    caps: Caps = Caps()
    budget: Budget | None = None
    stacking_group: str | None = None
    priority: Annotated[int, Field(ge=-MAX_NUMBER, le=MAX_NUMBER)] = 0
    lever: NonNeg = 1.0
    requires_coupon: bool = False
    #: share of the members eligible for the offer held back from it as its randomized control
    control_share: Share = 0.0
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    #: a reward priced in points: eligible only when the member's balance covers it
    points_price: NonNegInt = 0
    #: with points_price: also shown (as a nudge) when the balance is at most this many points short
    points_nudge: NonNegInt = 0
    #: eligible only when some of the member's points expire within this many days (an expiry nudge)
    points_expiring_within_days: PosInt | None = None
    #: only for members with one of these paid plans (points.plans) active
    plans: tuple[str, ...] | None = None
    #: points offers (bonus_points, points_multiplier): days after reaching the member that they
    #: apply to purchases (None: until the offer ends); "Double Star Day" is 1
    valid_days: PosInt | None = None
    #: a targeting rule (models.rules): all/any/not over comparisons; checked at load
    rule: dict[str, Any] | None = None


class OfferDefault(_Strict):
    """Defaults applied to every catalog offer of one kind (contract offers carry no caps)."""

    caps: Caps = Caps()
    requires_coupon: bool = False
    #: share of the members eligible for an offer of this kind held back as its randomized control
    control_share: Share = 0.0
    #: a targeting rule every offer of this kind must also pass (models.rules)
    rule: dict[str, Any] | None = None
    #: a budget for every catalog offer of this kind: its own (keyed by the offer id), or one
    #: shared by all of them when ``key`` is given
    budget: Budget | None = None


class Levers(_Strict):
    """Business levers: multipliers on the value term, per kind, per member tier, per offer."""

    kind: dict[str, NonNeg] = {}
    tier: dict[str, NonNeg | dict[str, NonNeg]] = {}
    offer: dict[str, NonNeg] = {}


class Diversity(_Strict):
    """At most this many offers per product category and per stacking group in a decision."""

    per_category: PosInt = 2
    per_stacking_group: PosInt = 1


class Exploration(_Strict):
    """Which share of decisions explore, and how."""

    share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    method: Literal["epsilon_greedy", "thompson"] = "epsilon_greedy"
    concentration: Positive = 20.0


class Holdout(_Strict):
    """The member-level control group: ``fallback`` gives it the non-personalised policy
    (business as usual), ``nothing`` gives it no offer at all."""

    share: Share = 0.0
    salt: str = "holdout"
    treatment: Literal["fallback", "nothing"] = "fallback"


class Challenger(_Strict):
    """Champion/challenger: the share of members whose decisions the registry's ``challenger``
    model makes (a deterministic hash of ``salt`` and the member id, so a member keeps their
    model across requests, workers and restarts). ``offers models route`` overrides the share
    in the registry, which every worker follows within a second, without a restart."""

    share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    salt: str = "challenger"


class DecisionSettings(_Strict):
    """Arbitration settings: slate size, value model, levers, diversity, policy."""

    max_offers: PosInt = 5
    margin_rate: NonNeg = 0.25
    default_basket: Positive = 30.0
    fallback_prior: Annotated[float, Field(gt=0.0, le=1.0)] = 0.02
    #: "no offer" is an option: a personalised candidate whose expected net value (major units
    #: per send: uplift x value - cost, or propensity x value - cost) is below this is not sent
    #: (COST_EXCEEDS_VALUE); None sends whatever ranks best
    min_net_value: float | None = 0.0
    levers: Levers = Levers()
    diversity: Diversity = Diversity()
    exploration: Exploration = Exploration()
    holdout: Holdout = Holdout()
    challenger: Challenger = Challenger()


class UpgradeChallenge(_Strict):
    """When an upgrade challenge is shown: reachable and with enough time left."""

    reach_multiple: Positive = 1.5
    min_days_left: NonNegInt = 7
    horizon_days: PosInt = 30
    text: str | None = None
    #: a targeting rule every upgrade challenge must also pass (models.rules)
    rule: dict[str, Any] | None = None


class RetentionNudge(_Strict):
    """When a retention nudge is shown: the tier period ends within ``window_days``."""

    window_days: PosInt = 30
    text: str | None = None
    #: a targeting rule every retention nudge must also pass (models.rules)
    rule: dict[str, Any] | None = None


class Promotions(_Strict):
    """Settings of the tier mechanics that depend on the member's tier state."""

    upgrade_challenge: UpgradeChallenge = UpgradeChallenge()
    retention_nudge: RetentionNudge = RetentionNudge()


class CouponSettings(_Strict):
    """Who may be issued coupon codes."""

    #: Issue codes to member ids the online store knows nothing about (no state, history
    #: or profile). Off by default: a mistyped id then gets no real codes.
    unknown_members: bool = False


class Program(_Strict):
    """A validated loyalty program. Build it with :func:`load_program`."""

    name: str
    timezone: str = "UTC"
    currency: Currency = Currency()
    tier_policy: TierPolicy
    tiers: tuple[TierDef, ...] = Field(min_length=1)
    decisions: DecisionSettings = DecisionSettings()
    promotions: Promotions = Promotions()
    coupons: CouponSettings = CouponSettings()
    offer_defaults: dict[OfferKind, OfferDefault] = {}
    offers: tuple[OfferSpec, ...] = ()
    #: the points ledger's earning, rewards and expiry (:mod:`models.points_config`)
    points: PointsSettings = PointsSettings()
    #: attribute columns and custom request-context keys rules may read (:mod:`models.targeting`)
    targeting: Targeting = Targeting()
    #: budgets shared by the offers they select: offer ids, a campaign, a funder, a kind (:mod:`models.limits_config`)
    budgets: tuple[SharedBudget, ...] = ()
    #: caps across offers per member and channel, and quiet hours (:mod:`models.limits_config`)
    contact_policy: ContactPolicy = ContactPolicy()

    # -- derived values -------------------------------------------------------------------
    @cached_property
    def tier_names(self) -> tuple[str, ...]:
        """Tier names by rank (0 is the entry tier)."""
        return tuple(t.name for t in self.tiers)

    @cached_property
    def tier_rank(self) -> dict[str, int]:
        """Rank of each tier name."""
        return {name: i for i, name in enumerate(self.tier_names)}

    @cached_property
    def earn_fraction(self) -> Fraction:
        """The earn rate as an exact fraction (currency units per major unit or per visit)."""
        return Fraction(str(self.currency.earn_rate))

    @property
    def counts_visits(self) -> bool:
        """True when qualifying units are visits (points earned per visit)."""
        return self.tier_policy.metric == "points_earned" and self.currency.earn_basis == "visit"

    @cached_property
    def threshold_units(self) -> np.ndarray:
        """Tier thresholds in qualifying units (minor units of spend, or visits), int64."""
        out = [self._units_for(t.threshold) for t in self.tiers]
        return np.asarray(out, dtype=np.int64)

    @cached_property
    def threshold_metric(self) -> np.ndarray:
        """Tier thresholds in metric units (minor units for spend, currency units for points)."""
        if self.tier_policy.metric == "spend":
            return self.threshold_units.copy()
        return np.asarray([math.ceil(t.threshold) for t in self.tiers], dtype=np.int64)

    def _units_for(self, threshold: float) -> int:
        if self.tier_policy.metric == "spend":
            return self.to_minor(threshold)
        points = Fraction(str(threshold))
        per_unit = self.earn_fraction if self.counts_visits else self.earn_fraction / self.currency.minor_units
        return math.ceil(points / per_unit)

    def metric_from_units(self, units: np.ndarray) -> np.ndarray:
        """Qualifying units -> metric units (points are floored from the window total), int64."""
        units = np.asarray(units, dtype=np.int64)
        if self.tier_policy.metric == "spend":
            return units
        num, den = self.earn_fraction.numerator, self.earn_fraction.denominator
        if not self.counts_visits:
            den *= self.currency.minor_units
        return (units * num) // den

    def to_minor(self, major: float) -> int:
        """Major money units (as written in YAML) -> integer minor units, exactly."""
        return round(Fraction(str(major)) * self.currency.minor_units)

    def money(self, minor: int, *, round_up: bool = True) -> str:
        """Format minor units for members: whole major units, rounded up ("$42")."""
        per = self.currency.minor_units
        whole = -(-int(minor) // per) if round_up else int(minor) // per
        return f"{self.currency.symbol}{whole:,}"

    def format_metric(self, value: int) -> str:
        """Format an amount of the qualifying metric for members ("$42" or "12 stars")."""
        if self.tier_policy.metric == "spend":
            return self.money(value)
        name = self.currency.name
        if int(value) == 1 and name.endswith("s"):
            name = name[:-1]
        return f"{int(value):,} {name}"

    def lever_for(self, kind: str, tier: str) -> float:
        """The kind lever times the member-tier lever for offers of ``kind``."""
        lev = self.decisions.levers
        tier_lever = lev.tier.get(tier, 1.0)
        if isinstance(tier_lever, dict):
            tier_lever = tier_lever.get(kind, 1.0)
        return float(lev.kind.get(kind, 1.0)) * float(tier_lever)


class ProgramConfigError(CoreError, ValueError):
    """A program config is invalid; ``issues`` lists (path, line, message) for each problem."""

    def __init__(self, issues: list[tuple[str, int | None, str]], source: str = "<string>"):
        self.issues = issues
        self.source = source
        lines = [f"{path} (line {line}): {msg}" if line else f"{path}: {msg}" for path, line, msg in issues]
        super().__init__(f"invalid program config {source}:\n  " + "\n  ".join(lines))


def load_program(text_or_path: str | Path) -> Program:
    """Parse and validate a program config from YAML text or a file path.

    Parameters
    ----------
    text_or_path
        YAML text, or a :class:`pathlib.Path` (or a string ending in ``.yaml``/``.yml``
        without a newline) naming a file to read.

    Raises
    ------
    ProgramConfigError
        With every problem found, each naming the key path and its line.
    """
    source = "<string>"
    if isinstance(text_or_path, Path) or (
            "\n" not in text_or_path and text_or_path.endswith((".yaml", ".yml"))):
        source = str(text_or_path)
        text = Path(text_or_path).read_text()
    else:
        text = text_or_path
    return parse_program(text, source=source)


def parse_program(text: str, source: str = "<string>") -> Program:
    """Validate YAML ``text`` as a program config (pure: no file access). See :func:`load_program`."""
    try:
        data, lines = parse_with_lines(text)
    except YamlSyntaxError as exc:
        raise ProgramConfigError([("<document>", None, str(exc))], source) from exc
    if not isinstance(data, dict):
        raise ProgramConfigError([("<document>", 1, "a program config must be a YAML mapping")], source)
    try:
        program = Program.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            path = resolve(data, err["loc"])
            issues.append((format_path(path), line_of(lines, path), _message(err)))
        raise ProgramConfigError(issues, source) from None
    problems = semantic_problems(program)
    if problems:
        raise ProgramConfigError(
            [(format_path(p), line_of(lines, p), msg) for p, msg in problems], source)
    return program


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def semantic_problems(program: Program) -> list[tuple[tuple[str | int, ...], str]]:
    """Cross-field checks pydantic cannot express per field; each as (data path, message)."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    window = program.tier_policy.window
    if window.type == "rolling" and window.days is None:
        out.append((("tier_policy", "window", "days"), "a rolling window needs days"))
    if window.type != "rolling" and window.days is not None:
        out.append((("tier_policy", "window", "days"), f"days only applies to rolling windows, not {window.type}"))
    if program.tier_policy.downgrade.policy == "one_down" and window.type != "calendar_year":
        out.append((("tier_policy", "downgrade", "policy"),
                    "one_down needs periodic reviews: use it with a calendar_year window"))
    out.extend(_tier_problems(program))
    names = set(program.tier_names)
    for name, value in program.decisions.levers.tier.items():
        if name not in names:
            out.append((("decisions", "levers", "tier", name), f"unknown tier {name!r}"))
        elif isinstance(value, dict):
            out.extend((("decisions", "levers", "tier", name, k), f"unknown offer kind {k!r}")
                       for k in value if k not in OFFER_KINDS)
    out.extend((("decisions", "levers", "kind", k), f"unknown offer kind {k!r}")
               for k in program.decisions.levers.kind if k not in OFFER_KINDS)
    for key in ("upgrade_challenge", "retention_nudge"):
        text = getattr(program.promotions, key).text
        if text is not None:
            out.extend((("promotions", key, "text"), msg) for msg in template_problems(text))
    seen: set[str] = set()
    for i, spec in enumerate(program.offers):
        if spec.id in seen:
            out.append((("offers", i, "id"), f"duplicate offer id {spec.id!r}"))
        seen.add(spec.id)
        out.extend((("offers", i, *p), msg) for p, msg in _offer_problems(spec, names))
    plan_ids = {p.id for p in program.points.plans}
    for i, spec in enumerate(program.offers):
        out.extend((("offers", i, "plans", j), f"unknown plan {p!r}")
                   for j, p in enumerate(spec.plans or ()) if p not in plan_ids)
    if not program.points.enabled:
        out.extend((("offers", i, "points_price" if spec.points_price else "points_expiring_within_days"),
                    "needs the points ledger (points.enabled: true)")
                   for i, spec in enumerate(program.offers)
                   if spec.points_price or spec.points_expiring_within_days is not None)
    offers = {spec.id: (str(spec.kind), spec.requires_coupon) for spec in program.offers}
    out.extend((("points", *p), msg) for p, msg in points_problems(program.points, names, offers))
    out.extend(rule_problems(program))
    out.extend(_budget_problems(program))
    return out


def _budget_problems(program: Program) -> list[tuple[tuple[str | int, ...], str]]:
    """Budgets' cross-field checks: pacing needs a period, offers sharing a key agree on its
    period and pacing, and the ``budgets:`` and ``contact_policy:`` sections' own checks."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    periods: dict[str, tuple[str, str]] = {}
    owned: list[tuple[tuple[str | int, ...], str, Budget]] = [
        (("offer_defaults", kind, "budget"), d.budget.key or "", d.budget)
        for kind, d in program.offer_defaults.items() if d.budget is not None]
    owned += [(("offers", i, "budget"), spec.budget.key or spec.id, spec.budget)
              for i, spec in enumerate(program.offers) if spec.budget is not None]
    for path, key, budget in owned:
        if budget.pacing != "none" and budget.period == "total":
            out.append(((*path, "pacing"), "pacing needs a day, week or month period"))
        if key and periods.setdefault(key, (budget.period, budget.pacing)) != (budget.period, budget.pacing):
            out.append(((*path, "period"), f"offers sharing budget {key!r} must agree on its period and pacing"))
    out.extend(limits_problems(program.budgets, program.contact_policy, frozenset(OFFER_KINDS),
                               frozenset(k for _, k, _ in owned if k)))
    return out


def _tier_problems(program: Program) -> list[tuple[tuple[str | int, ...], str]]:
    out: list[tuple[tuple[str | int, ...], str]] = []
    tiers = program.tiers
    if tiers[0].threshold != 0:
        out.append((("tiers", 0, "threshold"), "the entry tier's threshold must be 0"))
    for i in range(1, len(tiers)):
        if tiers[i].threshold <= tiers[i - 1].threshold:
            out.append((("tiers", i, "threshold"),
                        f"must be greater than tiers[{i - 1}].threshold ({tiers[i - 1].threshold:g})"))
    seen: set[str] = set()
    for i, tier in enumerate(tiers):
        if tier.name in seen:
            out.append((("tiers", i, "name"), f"duplicate tier name {tier.name!r}"))
        seen.add(tier.name)
    return out


def _offer_problems(spec: OfferSpec, tiers: set[str]) -> list[tuple[tuple[str | int, ...], str]]:
    out: list[tuple[tuple[str | int, ...], str]] = []
    for j, name in enumerate(spec.tiers or ()):
        if name not in tiers:
            out.append((("tiers", j), f"unknown tier {name!r}"))
    if spec.min_tier is not None and spec.min_tier not in tiers:
        out.append((("min_tier",), f"unknown tier {spec.min_tier!r}"))
    out.extend((("tier_values", name), f"unknown tier {name!r}") for name in spec.tier_values if name not in tiers)
    out.extend((("channels", j), f"unknown channel {c!r}; one of {', '.join(CHANNELS)}")
               for j, c in enumerate(spec.channels or ()) if c not in CHANNELS)
    if spec.budget is not None and spec.budget.money is not None and spec.cost is None:
        out.append((("budget", "money"), "a money budget needs the offer's cost"))
    if spec.kind == "partner" and not spec.funder:
        out.append((("funder",), "a partner offer needs its funder"))
    if spec.starts_at and spec.ends_at and spec.ends_at < spec.starts_at:
        out.append((("ends_at",), "must not be before starts_at"))
    if spec.points_nudge and not spec.points_price:
        out.append((("points_nudge",), "a nudge needs the reward's points_price"))
    if spec.points_price and spec.requires_coupon:
        out.append((("requires_coupon",), "an offer priced in points must not carry a coupon (it would skip the "
                                          "burn): sell the coupon as a points.rewards voucher instead"))
    if spec.kind == "tier_challenge" and len(tiers) < 2:
        out.append((("kind",), "a tier challenge needs at least two tiers"))
    if spec.text is not None:
        out.extend((("text",), msg) for msg in template_problems(spec.text))
    if spec.days_since_join and None not in (spec.days_since_join.min, spec.days_since_join.max) \
            and spec.days_since_join.max < spec.days_since_join.min:  # type: ignore[operator]
        out.append((("days_since_join", "max"), "must not be below min"))
    return out


def template_problems(text: str) -> list[str]:
    """Problems with a member-facing text template: unknown or malformed placeholders."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        return [f"malformed template: {exc}"]
    return [f"unknown placeholder {{{f}}}; use {', '.join(sorted(TEMPLATE_FIELDS))}"
            for f in fields if f not in TEMPLATE_FIELDS]


def validate_offer(program: Program, data: object) -> OfferSpec:
    """Validate one offer mapping (the keys of an entry of ``offers:``) as the program file's
    loader would: the field checks of :class:`OfferSpec`, then every program-wide check
    (:func:`semantic_problems`: known tiers, channels and plans, the points ledger...) on the
    program with this offer in place of any offer of its id.

    Why: the live catalog (``PUT /v1/admin/offers/{id}``) accepts offers written exactly as
    in the YAML file, and must refuse what the loader refuses, with no second validator.

    Raises
    ------
    ProgramConfigError
        With every problem, each path relative to the offer (``caps.issues``, ``tiers[0]``);
        a problem elsewhere in the program that this offer causes keeps its full path.
    """
    if not isinstance(data, dict):
        raise ProgramConfigError([("<offer>", None, "an offer must be a mapping of the offer keys")], "offer")
    try:
        spec = OfferSpec.model_validate(data)
    except ValidationError as exc:
        raise ProgramConfigError([(format_path(resolve(data, err["loc"])), None, _message(err))
                                  for err in exc.errors()], "offer") from None
    others = tuple(s for s in program.offers if s.id != spec.id)
    candidate = program.model_copy(update={"offers": (*others, spec)})
    issues: list[tuple[str, int | None, str]] = []
    for path, msg in semantic_problems(candidate):
        if path[:2] == ("offers", len(others)):
            issues.append((format_path(path[2:]), None, msg))
        elif path[:1] != ("offers",):
            issues.append((format_path(path), None, msg))
    if issues:
        raise ProgramConfigError(issues, f"offer {spec.id!r}")
    return spec
