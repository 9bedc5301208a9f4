"""The loyalty data contract: which tables a program exports and what each column means.

A program exports a directory with one file per table, ``<table>.parquet`` or
``<table>.csv``. This module is the single source of truth for the tables, their
columns, logical types and nullability; docs/data.md is written from the same
facts and a test keeps the two in step.

Conventions
-----------
* Identifiers are strings (``member_id`` "1029", ``offer_id`` "26-51380041013").
* Money is integer minor units of the program's currency (cents for USD), never floats.
* Timestamps without a zone are local time in the program's timezone.
* List-valued columns (``channels``, ``tiers``, ``segments``) are ``|``-separated strings.
* Members may carry any number of typed ``attr_<name>`` attribute columns (string, int,
  float, bool or timestamp, from the Parquet type; see :mod:`offerdata.attributes`).
* Exposures carry an experiment ``arm``: ``treatment`` (sent; the default when null) or
  ``control`` (assigned to the offer's control group and deliberately not sent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

LogicalType = Literal["string", "int", "float", "timestamp", "bool"]

#: Offer kinds the catalog understands (see shared/reference/domain.md).
OFFER_KINDS: tuple[str, ...] = (
    "percent_off",
    "amount_off",
    "points_multiplier",
    "bonus_points",
    "free_item",
    "free_shipping",
    "tier_challenge",
    "tier_retention",
    "birthday",
    "partner",
    "charity",
    "early_access",
)

#: Channels an exposure or an offer may name.
CHANNELS: tuple[str, ...] = ("app", "web", "email", "push", "sms", "mail", "pos")

LIST_SEPARATOR = "|"
ATTRIBUTE_PREFIX = "attr_"
#: Pattern an attribute column's name must match: ``attr_`` then lower-case letters, digits, ``_``.
ATTRIBUTE_NAME_RE = r"^attr_[a-z0-9_]+$"
#: Experiment arms an exposure may name; null means ``treatment``.
ARMS: tuple[str, ...] = ("treatment", "control")
TREATMENT, CONTROL = ARMS


@dataclass(frozen=True)
class Column:
    """One column of a contract table."""

    name: str
    type: LogicalType
    nullable: bool
    description: str
    required: bool = True


@dataclass(frozen=True)
class Table:
    """One table of the contract: its columns, primary key and foreign keys."""

    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    #: (local columns, referenced table, referenced columns)
    references: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...] = field(default=())

    def column(self, name: str) -> Column:
        """Return the column called ``name``; KeyError when the contract has none."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def required_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.required)


MEMBERS = Table(
    name="members",
    description="One row per loyalty member.",
    key=("member_id",),
    columns=(
        Column("member_id", "string", False, "Stable member identifier."),
        Column("joined_at", "timestamp", True, "When the member enrolled; null when unknown.", required=False),
        Column("birth_month", "int", True, "Birth month 1-12, for birthday offers; null when unknown.", required=False),
        Column("segment", "string", True, "Marketing segment the program assigns, if any.", required=False),
        Column("home_store_id", "string", True, "The member's usual store or region.", required=False),
        Column("channels", "string", True, "Channels the member opted in to, `|`-separated (app|email|push).", required=False),
    ),
)

PRODUCTS = Table(
    name="products",
    description="The product hierarchy used for affinities and offer targeting.",
    key=("product_id",),
    columns=(
        Column("product_id", "string", False, "Stable product identifier (SKU or UPC)."),
        Column("department", "string", True, "Top level of the hierarchy (GROCERY, DRUG GM)."),
        Column("category", "string", True, "Product category (SOFT DRINKS, CHEESE)."),
        Column("brand", "string", True, "Brand or label (National, Private, a supplier brand)."),
        Column("manufacturer_id", "string", True, "Supplier or manufacturer, for supplier-funded offers.", required=False),
    ),
)

TRANSACTIONS = Table(
    name="transactions",
    description="Purchase line items: one row per product in a basket.",
    key=(),
    references=(
        (("member_id",), "members", ("member_id",)),
        (("product_id",), "products", ("product_id",)),
    ),
    columns=(
        Column("member_id", "string", False, "The buying member."),
        Column("purchased_at", "timestamp", False, "When the basket was paid."),
        Column("basket_id", "string", False, "Basket (receipt) identifier shared by its lines."),
        Column("product_id", "string", False, "The product bought."),
        Column("quantity", "int", False, "Units bought; never negative (returns are not part of the contract)."),
        Column("amount_minor", "int", False, "Amount paid for the line after discounts, in minor units."),
        Column("discount_minor", "int", False, "Total discount on the line from every source (shelf, loyalty, coupons), in minor units, >= 0."),
        Column("coupon_discount_minor", "int", True, "Part of the discount that came from coupons, in minor units.", required=False),
        Column("store_id", "string", True, "Store where the basket was paid.", required=False),
    ),
)

OFFERS = Table(
    name="offers",
    description="The offer catalog: every offer that was or can be shown to members.",
    key=("offer_id",),
    columns=(
        Column("offer_id", "string", False, "Stable offer identifier."),
        Column("campaign_id", "string", False, "Campaign the offer belongs to."),
        Column("kind", "string", False, "One of the offer kinds: " + ", ".join(OFFER_KINDS) + "."),
        Column("starts_at", "timestamp", False, "Start of the validity window."),
        Column("ends_at", "timestamp", False, "End of the validity window; never before starts_at."),
        Column("title", "string", True, "Member-facing title.", required=False),
        Column("campaign_type", "string", True, "Campaign type (for example the Complete Journey's Type A/B/C).", required=False),
        Column("value", "float", True, "Face value in the kind's unit: percent for percent_off, minor units for amount_off, multiplier, points.", required=False),
        Column("cost_minor", "int", True, "Expected cost to the business per redemption, in minor units.", required=False),
        Column("send_cost_minor", "int", True, "Cost of one send (an exposure in the treatment arm), in minor units; null means 0.", required=False),
        Column("value_minor", "int", True, "Margin the business makes per conversion (the outcome an uplift model predicts), in minor units.", required=False),
        Column("channels", "string", True, "Channels the offer may be shown on, `|`-separated; null means all.", required=False),
        Column("tiers", "string", True, "Tiers the offer is restricted to, `|`-separated; null means all.", required=False),
        Column("segments", "string", True, "Segments the offer is restricted to, `|`-separated; null means all.", required=False),
        Column("min_spend_minor", "int", True, "Minimum basket spend to redeem, in minor units.", required=False),
        Column("funder", "string", True, "Who funds the offer (a supplier brand, a partner); null means the retailer.", required=False),
        Column("cost_share", "float", True, "Share of the cost the funder pays, 0-1.", required=False),
        Column("stacking_group", "string", True, "Offers in one group are mutually exclusive in a decision.", required=False),
        Column("priority", "int", True, "Business priority; higher wins ties.", required=False),
    ),
)

OFFER_PRODUCTS = Table(
    name="offer_products",
    description="Which products an offer applies to.",
    key=("offer_id", "product_id"),
    references=(
        (("offer_id",), "offers", ("offer_id",)),
        (("product_id",), "products", ("product_id",)),
    ),
    columns=(
        Column("offer_id", "string", False, "The offer."),
        Column("product_id", "string", False, "A product the offer applies to."),
    ),
)

EXPOSURES = Table(
    name="exposures",
    description="Which member was offered which offer, when and on which channel.",
    key=("exposure_id",),
    references=(
        (("member_id",), "members", ("member_id",)),
        (("offer_id",), "offers", ("offer_id",)),
    ),
    columns=(
        Column("exposure_id", "string", False, "Unique exposure identifier."),
        Column("member_id", "string", False, "The member who saw or received the offer."),
        Column("offer_id", "string", False, "The offer shown."),
        Column("exposed_at", "timestamp", False, "When the offer was shown or delivered."),
        Column("channel", "string", False, "Channel of the exposure: " + ", ".join(CHANNELS) + "."),
        Column("decision_id", "string", True, "Decision that produced the exposure, when it came from this service.", required=False),
        Column("arm", "string", True, "Experiment arm: treatment (the offer was sent) or control (assigned to the offer's control group, not sent); null means treatment.", required=False),
        Column("arm_probability", "float", True, "Probability with which the member was assigned this arm, in (0, 1], when known.", required=False),
    ),
)

REDEMPTIONS = Table(
    name="redemptions",
    description="Offer redemptions; every one must follow an exposure of the same offer to the same member.",
    key=("redemption_id",),
    references=(
        (("member_id",), "members", ("member_id",)),
        (("offer_id",), "offers", ("offer_id",)),
        (("member_id", "offer_id"), "exposures", ("member_id", "offer_id")),
    ),
    columns=(
        Column("redemption_id", "string", False, "Unique redemption identifier."),
        Column("member_id", "string", False, "The redeeming member."),
        Column("offer_id", "string", False, "The redeemed offer."),
        Column("redeemed_at", "timestamp", False, "When the offer was redeemed."),
        Column("basket_id", "string", True, "Basket the redemption was applied to.", required=False),
        Column("discount_minor", "int", True, "Discount granted, in minor units.", required=False),
    ),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (MEMBERS, PRODUCTS, TRANSACTIONS, OFFERS, OFFER_PRODUCTS, EXPOSURES, REDEMPTIONS)
}

HOLDOUT_TRANSACTIONS = Table(
    name="holdout_transactions",
    description=("Optional. The outcomes of a held-out experiment split, kept apart from `transactions`: "
                 "training, features and decisions never read them; only evaluation does. Same columns as `transactions`."),
    key=(),
    references=TRANSACTIONS.references,
    columns=TRANSACTIONS.columns,
)

POINTS = Table(
    name="points",
    description=("Optional. The points ledger's calls, in the order the store applied them (written by "
                 "`offers data events` from the service's points log): replayed by the ledger's own rule, they "
                 "give the point-balance features at any past moment."),
    key=("member_id", "call"),
    references=((("member_id",), "members", ("member_id",)),),
    columns=(
        Column("member_id", "string", False, "The member whose account the call changed."),
        Column("call", "int", False, "The call's position among the member's calls (0, 1, ...), in applied order."),
        Column("applied_at", "int", False, "When the store applied the call, UTC epoch seconds (the ledger's clock)."),
        Column("postings", "string", False, "The call's postings as a JSON list, as the points log records them "
                                            "(cause, kind, units, expiry, availability)."),
    ),
)

#: Tables a directory may hold but need not: validated when present.
OPTIONAL_TABLES: dict[str, Table] = {HOLDOUT_TRANSACTIONS.name: HOLDOUT_TRANSACTIONS, POINTS.name: POINTS}


def split_list(value: object) -> tuple[str, ...]:
    """Split a ``|``-separated list column value into its items (empty for null/blank)."""
    if value is None or (isinstance(value, float) and value != value):
        return ()
    text = str(value).strip()
    if not text:
        return ()
    return tuple(item.strip() for item in text.split(LIST_SEPARATOR) if item.strip())
