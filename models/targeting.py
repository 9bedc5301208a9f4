"""What targeting rules may read: the built-in fields, and the program's declared extras.

A rule (:mod:`models.rules`) compares *fields*. The built-in ones are listed in
:data:`BUILTIN_FIELDS` with their type; a program adds two kinds in its ``targeting``
section:

* ``attributes``: the members table's typed custom columns (``attr_<name>``, see
  docs/data.md), read as ``member.attr_<name>``;
* ``context``: custom request-context keys, read as ``context.<name>``, which decision
  requests may then send (any other key is refused with a 400).

Types decide which operators a field takes (:data:`OPERATORS`) and how a literal is
read: ``money`` literals are major units (like every amount in the YAML), ``tier``
literals are tier names, ``weekday`` literals ``mon`` to ``sun``, ``date`` literals
``YYYY-MM-DD`` in the program's timezone.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from models.data_contract import ATTRIBUTE_NAME_RE

FieldType = Literal["number", "money", "string", "boolean", "tier", "weekday", "date", "set"]
AttributeType = Literal["number", "string", "boolean"]
ContextType = Literal["number", "money", "string", "boolean"]

#: Every field a rule can read without declaring it, with its type.
BUILTIN_FIELDS: dict[str, FieldType] = {
    "member.tier": "tier",
    "member.tier_rank": "number",
    "member.tier_progress": "number",
    "member.tier_at_risk": "boolean",
    "member.segment": "string",
    "member.birth_month": "number",
    "member.days_since_join": "number",
    "member.recent_spend": "money",
    "member.typical_basket": "money",
    "member.points_balance": "number",
    "member.plans": "set",
    "member.channels": "set",
    "member.bought_products": "set",
    "member.bought_categories": "set",
    "time.day_of_week": "weekday",
    "time.hour": "number",
    "time.day": "number",
    "time.month": "number",
    "time.date": "date",
    "context.store_id": "string",
    "context.device": "string",
    "context.location": "string",
    "context.cart.total": "money",
    "context.cart.quantity": "number",
    "context.cart.lines": "number",
    "context.cart.product_ids": "set",
    "context.cart.categories": "set",
}

#: The request context's built-in keys (a declared key must not take one of these names).
BUILTIN_CONTEXT_KEYS = frozenset({"as_of", "store_id", "device", "location", "cart"})

_ORDERED = ("eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "between", "exists")
_EQUALITY = ("eq", "ne", "in", "not_in", "exists")
#: The operators each field type takes.
OPERATORS: dict[str, tuple[str, ...]] = {
    "number": _ORDERED, "money": _ORDERED, "tier": _ORDERED, "date": _ORDERED,
    "string": _EQUALITY, "weekday": _EQUALITY,
    "boolean": ("eq", "ne", "exists"),
    "set": ("contains", "exists"),
}
ALL_OPERATORS = frozenset(op for ops in OPERATORS.values() for op in ops)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CONTEXT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class Targeting(BaseModel):
    """The ``targeting`` section: attribute columns and custom context keys rules may read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: members-table attribute columns (``attr_<name>``) by type
    attributes: dict[str, AttributeType] = {}
    #: custom request-context keys by type
    context: dict[str, ContextType] = {}

    def field_type(self, name: str) -> FieldType | None:
        """The type of field ``name``; None when no rule may read it."""
        if name in BUILTIN_FIELDS:
            return BUILTIN_FIELDS[name]
        if name.startswith("member."):
            return self.attributes.get(name.removeprefix("member."))
        if name.startswith("context."):
            return self.context.get(name.removeprefix("context."))
        return None

    def fields(self) -> list[str]:
        """Every field a rule of this program may read, sorted."""
        return sorted({*BUILTIN_FIELDS, *(f"member.{a}" for a in self.attributes),
                       *(f"context.{c}" for c in self.context)})


def targeting_problems(targeting: Targeting) -> list[tuple[tuple[str | int, ...], str]]:
    """Declarations that cannot work: attribute names outside the contract's pattern, context
    keys that are not simple names or that shadow a built-in key."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    out.extend((("targeting", "attributes", name), "an attribute column is named attr_ followed by lower-case "
                                                   "letters, digits or _")
               for name in targeting.attributes if not re.match(ATTRIBUTE_NAME_RE, name))
    for name in targeting.context:
        if name in BUILTIN_CONTEXT_KEYS:
            out.append((("targeting", "context", name), f"{name!r} is a built-in context key"))
        elif not _CONTEXT_NAME.match(name):
            out.append((("targeting", "context", name), "a context key is a lower-case letter followed by up to 39 "
                                                        "lower-case letters, digits or _"))
    return out
