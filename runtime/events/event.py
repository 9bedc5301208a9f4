"""A feedback event as the runtime reads it, whoever parsed it.

The HTTP layer validates request bodies into its pydantic ``Event``
(:mod:`service.events.bodies`); the runtime only needs to read an event's fields, so it
names them here as a :class:`typing.Protocol` and never imports the HTTP schema. Any
object with these attributes (the pydantic model, a test's dataclass, a row read back
from the event log) can be ingested, recorded or redeemed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class FeedbackEvent(Protocol):
    """What happened to a member: an impression, click, redeem, dismiss or transaction."""

    @property
    def event_id(self) -> str: """Unique id chosen by the sender; duplicates are ignored."""
    @property
    def member_id(self) -> str: """The member it happened to."""
    @property
    def type(self) -> str: """impression, click, redeem, dismiss or transaction."""
    @property
    def ts(self) -> datetime: """When it happened (aware)."""
    @property
    def offer_id(self) -> str | None: """The offer (None for a transaction)."""
    @property
    def decision_id(self) -> str | None: """The decision that showed the offer, if known."""
    @property
    def amount_minor(self) -> int | None: """Spend in minor units, when sent that way."""
    @property
    def value(self) -> object: """Spend in major units, when sent that way."""
    @property
    def channel(self) -> str | None: """Where it happened."""
    @property
    def coupon_code(self) -> str | None: """The coupon used, as typed."""
    @property
    def product_id(self) -> str | None: """Transaction: the product of this purchase line."""
    @property
    def basket_id(self) -> str | None: """Transaction: the basket the line belongs to."""
    @property
    def discount_minor(self) -> int | None: """Transaction: the line's discount."""
    @property
    def coupon_discount_minor(self) -> int | None: """Transaction: the coupon's part of the discount."""

    def amount(self, exponent: int) -> int:
        """The spend in minor units of a currency with ``exponent`` decimals (0 when none)."""
        ...
