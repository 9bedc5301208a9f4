"""What a decision request says about the moment it is made: store, cart, device, location.

The HTTP layer validates a request's ``context`` into a :class:`RequestContext`; rules
(:mod:`models.rules`) read it as ``context.store_id``, ``context.cart.total`` and so on.
Every member of one call shares it (a batch request has one context), so the rule
engine treats its fields as scalars broadcast over the members.

Money is in minor units here (the request gives major units; the HTTP layer converts).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CartLine:
    """One line of the member's current cart."""

    product_id: str
    quantity: int = 1
    #: unit price in minor units; None when the caller did not say
    price_minor: int | None = None
    category: str | None = None


@dataclass(frozen=True)
class RequestContext:
    """The request's context; None (or an empty tuple) where the caller gave nothing.

    ``cart_total_minor`` is the caller's cart total, else the sum of the lines' prices
    times quantities when every line has a price, else None. ``custom`` holds the
    program's declared context keys (``targeting.context``) as (name, value) pairs.
    """

    store_id: str | None = None
    device: str | None = None
    location: str | None = None
    cart_lines: tuple[CartLine, ...] | None = None
    cart_total_minor: int | None = None
    custom: tuple[tuple[str, str | float | bool], ...] = ()

    @property
    def cart_total(self) -> int | None:
        """The cart total in minor units: given, or summed from priced lines (None: unknown)."""
        if self.cart_total_minor is not None:
            return self.cart_total_minor
        lines = self.cart_lines
        if not lines or any(line.price_minor is None for line in lines):
            return None
        return sum(int(line.price_minor or 0) * line.quantity for line in lines)

    def value(self, name: str) -> str | float | bool | None:
        """A custom key's value, None when absent."""
        for key, value in self.custom:
            if key == name:
                return value
        return None


#: No context at all: every context field is missing.
EMPTY_CONTEXT = RequestContext()
