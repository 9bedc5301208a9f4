"""What a feedback event looks like, and how a request body becomes a list of them.

A body is one event object, ``{"events": [...]}``, or a bare list of events. Each
event: ``event_id``, ``member_id``, ``type`` (impression, click, redeem, dismiss,
transaction), ``ts`` (RFC 3339 with an offset), and optionally ``offer_id``,
``decision_id``, ``amount_minor`` (integer minor units) or ``value`` (a decimal in major
units, converted with ``OFFERS_CURRENCY_EXPONENT``), ``currency``, ``channel``,
``coupon_code``, and for transactions (one purchase line each) ``product_id``,
``basket_id``, ``discount_minor`` and ``coupon_discount_minor``. Impressions, clicks,
redemptions and dismissals must name their ``offer_id``; transactions must carry an
amount. Unknown fields are rejected.

Every problem is reported with a JSON pointer into the body as sent
(``/events/3/ts`` for a batch object, ``/3/ts`` for a bare list, ``/ts`` for one event);
a batch is accepted whole or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from models.data_contract import CHANNELS
from models.timerange import DESCRIPTION, YEAR_PATTERN, OutOfRange, check_moment
from runtime.coupons.codes import InvalidCouponCode, normalise
from service.errors import FieldError, ValidationFailed, field_errors, json_pointer
from service.validation import (
    BasketId,
    CouponCodeText,
    DecisionId,
    EventId,
    MemberId,
    OfferId,
    ProductId,
)

#: How far in the future an event's ts may be (client clock skew).
MAX_FUTURE = timedelta(hours=24)
#: Largest amount accepted on one event, in minor units.
MAX_AMOUNT_MINOR = 10**12
#: RFC 3339 date-time with an offset (``T`` or a space between date and time).
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339_text(value: Any) -> Any:
    """Accept only RFC 3339 text: pydantic alone would read ``"1509271200"`` as epoch seconds."""
    if not isinstance(value, str) or RFC3339.fullmatch(value) is None:
        raise ValueError("must be an RFC 3339 string with an offset such as 2024-06-15T12:00:00Z")
    return value


def _supported(value: datetime) -> datetime:
    """Refuse moments outside models.timerange's range (they would crash pandas or Redis)."""
    try:
        return check_moment(value)
    except OutOfRange as exc:
        raise ValueError(str(exc)) from None


def _json_number(value: Any) -> Any:
    """Money as a JSON number only (a string or a boolean is not a number), 0 to MAX_AMOUNT_MINOR."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError("must be a JSON number such as 12.50")
    if not 0 <= value <= MAX_AMOUNT_MINOR:
        raise ValueError(f"must be between 0 and {MAX_AMOUNT_MINOR}")
    return Decimal(value)


def json_integer(value: Any) -> Any:
    """An integer as JSON Schema means it (``5`` or ``5.0``); a string or a boolean is not one."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a JSON integer")
    return value


#: Minor units of money under strict validation: JSON integers only, never ``"5"`` or ``true``.
Amount = Annotated[int, Field(ge=0, le=MAX_AMOUNT_MINOR), Strict(False), BeforeValidator(json_integer)]
#: A timestamp field: RFC 3339 text with an offset, inside the supported range.
Timestamp = Annotated[AwareDatetime, Strict(False), BeforeValidator(_rfc3339_text), AfterValidator(_supported),
                      WithJsonSchema({"type": "string", "format": "date-time", "pattern": YEAR_PATTERN,
                                      "description": f"RFC 3339 with an offset, {DESCRIPTION}."})]
#: Money as a decimal JSON number (the body's fractions are parsed as Decimal).
Money = Annotated[Decimal, Strict(False), BeforeValidator(_json_number),
                  WithJsonSchema({"type": "number", "minimum": 0, "maximum": MAX_AMOUNT_MINOR})]
EventType = Literal["impression", "click", "redeem", "dismiss", "transaction"]
Channel = Literal[CHANNELS]  # type: ignore[valid-type]


_TRANSACTION_ONLY = ("product_id", "basket_id", "discount_minor", "coupon_discount_minor", "refund_of")
#: The rules across fields that JSON Schema can state, for the API document (``_rules`` checks them).
EVENT_CONDITIONS: dict[str, Any] = {"allOf": [{
    "if": {"properties": {"type": {"const": "transaction"}}, "required": ["type"]},
    "then": {"anyOf": [{"required": ["amount_minor"], "properties": {"amount_minor": {"type": "integer"}}},
                       {"required": ["value"], "properties": {"value": {"type": "number"}}}]},
    "else": {"required": ["offer_id"], "properties": {
        "offer_id": {"type": "string"}, **{name: {"type": "null"} for name in _TRANSACTION_ONLY}}},
}]}


class Event(BaseModel):
    """One feedback event as the API accepts it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, json_schema_extra=EVENT_CONDITIONS)

    event_id: EventId = Field(description="Unique id chosen by the sender; duplicates are ignored.")
    member_id: MemberId = Field(description="The member it happened to.")
    type: EventType = Field(description="impression (an offer was shown), click, redeem (an offer was used), "
                                        "dismiss, or transaction (one purchase line).")
    ts: Timestamp = Field(description=f"When it happened, RFC 3339 with an offset, {DESCRIPTION}.")
    offer_id: OfferId | None = Field(None, description="The offer; required unless type is transaction.")
    decision_id: DecisionId | None = Field(None, description="The decision that showed the offer.")
    amount_minor: Amount | None = Field(None,
                                     description="Money in integer minor units (cents).")
    value: Money | None = Field(None,
                                  description="Money as a decimal in major units; alternative to amount_minor.")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")
    channel: Channel | None = Field(None, description="Where it happened: " + ", ".join(CHANNELS) + ".")
    coupon_code: CouponCodeText | None = Field(None, description="The coupon used, as typed (case and '-' or "
                                                                 "spaces do not matter; the check character "
                                                                 "must be right). A redeem with a code redeems "
                                                                 "that coupon once.")
    product_id: ProductId | None = Field(None, description="Transaction: the product of this purchase line.")
    basket_id: BasketId | None = Field(None, description="Transaction: the basket (receipt) the line belongs "
                                                         "to; default: the event is a basket of its own.")
    discount_minor: Amount | None = Field(None,
                                       description="Transaction: total discount on the line, minor units.")
    coupon_discount_minor: Amount | None = Field(None,
                                              description="Transaction: the part of the discount that came "
                                                          "from coupons, minor units.")
    refund_of: EventId | None = Field(None, description="Transaction: this line returns (refunds) the "
                                                        "transaction event with this event_id; its amount "
                                                        "is the money given back, and the points that "
                                                        "purchase earned are reversed in proportion.")

    def amount(self, exponent: int) -> int:
        """The money of the event in minor units (0 when it has none)."""
        if self.amount_minor is not None:
            return self.amount_minor
        if self.value is not None:
            return int(self.value.scaleb(exponent))
        return 0


class EventBatch(BaseModel):
    """The ``{"events": [...]}`` form of a request body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    events: list[Event] = Field(min_length=1, description="The events, accepted or refused together.")


_EVENT_LIST = TypeAdapter(list[Event])


def _rules(ev: Event, where: Sequence[str | int], exponent: int, now: datetime) -> list[FieldError]:
    """Checks across fields, each naming the field it is about."""
    errors = []

    def err(field: str, code: str, message: str) -> None:
        errors.append(FieldError(code=code, message=message, pointer=json_pointer([*where, field])))

    if ev.type != "transaction" and ev.offer_id is None:
        err("offer_id", "missing", f"a {ev.type} event must name its offer_id")
    if ev.type == "transaction" and ev.amount_minor is None and ev.value is None:
        err("amount_minor", "missing", "a transaction needs amount_minor (or value)")
    if ev.type != "transaction":
        for name in _TRANSACTION_ONLY:
            if getattr(ev, name) is not None:
                err(name, "not_allowed", f"{name} belongs to transaction events only")
    if (ev.coupon_discount_minor is not None and ev.discount_minor is not None
            and ev.coupon_discount_minor > ev.discount_minor):
        err("coupon_discount_minor", "too_large", "coupon_discount_minor is part of discount_minor")
    if ev.value is not None:
        exponent_of = ev.value.as_tuple().exponent
        if isinstance(exponent_of, int) and -exponent_of > exponent:
            err("value", "too_precise", f"value has more than {exponent} decimal places")
        elif ev.amount_minor is not None and ev.amount(exponent) != int(ev.value.scaleb(exponent)):
            err("value", "mismatch", "value and amount_minor disagree")
    if ev.ts - now > MAX_FUTURE:
        err("ts", "in_future", "ts is more than 24 hours in the future")
    if ev.coupon_code is not None:
        try:
            normalise(ev.coupon_code)
        except InvalidCouponCode as exc:
            err("coupon_code", "invalid_coupon_code", str(exc))
    return errors


def parse_events(body: Any, max_events: int, exponent: int,
                 now: datetime | None = None) -> list[Event]:
    """Validate a request body into events; raise ValidationFailed naming every bad field."""
    now = now or datetime.now(UTC)
    where: tuple[str, ...] | None
    if isinstance(body, list):
        items, where = body, ()
    elif isinstance(body, dict) and "events" in body:
        items, where = body["events"], ("events",)
    elif isinstance(body, dict):
        items, where = None, None
    else:
        raise ValidationFailed("the body must be an event object, {\"events\": [...]} or a list",
                               [FieldError(code="type_error", pointer="",
                                           message="expected an object or an array")])
    if isinstance(items, list) and len(items) > max_events:
        raise ValidationFailed(f"at most {max_events} events per request", [FieldError(
            code="too_long", pointer=json_pointer(where or ()),
            message=f"{len(items)} events; the limit is {max_events}")])
    try:
        if items is None:
            events = [Event.model_validate(body)]
            prefixes: list[tuple[str | int, ...]] = [()]
        elif where == ():
            if not body:
                raise ValidationFailed("the list of events is empty", [FieldError(
                    code="too_short", pointer="", message="send at least one event")])
            events = _EVENT_LIST.validate_python(body)
            prefixes = [(i,) for i in range(len(events))]
        else:
            events = EventBatch.model_validate(body).events
            prefixes = [("events", i) for i in range(len(events))]
    except ValidationError as exc:
        raise ValidationFailed("some events are not valid", field_errors(exc)) from None
    errors = [e for ev, p in zip(events, prefixes, strict=True) for e in _rules(ev, p, exponent, now)]
    if errors:
        raise ValidationFailed("some events are not valid", errors)
    return events


class RedeemBody(BaseModel):
    """The body of ``POST /v1/coupons/{code}/redeem`` (service/checkout.py): who redeems the
    coupon, for which offer (both must match the coupon)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    member_id: MemberId = Field(description="The member redeeming: must be the coupon's holder.")
    offer_id: OfferId = Field(description="The offer redeemed: must be the coupon's offer.")
    event_id: EventId | None = Field(None, description="Id of the redeem event to record; default a new "
                                                       "unique id. Retrying with the id that redeemed the "
                                                       "coupon answers 200 again.")
    decision_id: DecisionId | None = Field(None, description="The decision that showed the offer.")
    channel: Channel | None = Field(None, description="Where it was redeemed (e.g. pos).")
