"""What the decision endpoints accept: request bodies and query parameters, validated.

``POST /v1/decisions`` takes :class:`DecisionBody`; ``GET /v1/members/{id}/offers`` the
same fields as query parameters (:func:`parse_query`); ``POST /v1/decisions/batch``
:class:`BatchBody`. Unknown fields are rejected; every problem names its field with a
JSON pointer (bodies) or as a ``parameter`` (queries).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError

from models.data_contract import CHANNELS
from models.timerange import DESCRIPTION
from service.errors import FieldError, ValidationFailed, field_errors
from service.events.bodies import Money, Timestamp, json_integer
from service.validation import MemberId, OfferId, Placement

Channel = Literal[CHANNELS]  # type: ignore[valid-type]
#: Largest slate a request may ask for.
MAX_OFFERS = 50
#: The slate size under strict validation: a JSON integer, never "5" or true.
SlateSize = Annotated[int, Field(ge=1, le=MAX_OFFERS), Strict(False), BeforeValidator(json_integer)]
#: Most offer ids a request may exclude.
MAX_EXCLUDED = 500
#: Most members in one batch request.
MAX_BATCH = 10_000


#: Most lines a request's cart may have.
MAX_CART_LINES = 500
#: A context label (store id, device, location, a custom string key): 1-128 characters.
Label = Annotated[str, Field(min_length=1, max_length=128)]
#: A cart line's quantity: a JSON integer.
Quantity = Annotated[int, Field(ge=1, le=100_000), Strict(False), BeforeValidator(json_integer)]


class CartLine(BaseModel):
    """One line of the member's current cart."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    product_id: Label = Field(description="The product's id, as in the data's products table.")
    quantity: Quantity = Field(1, description="Units of the product (default 1).")
    price: Money | None = Field(None, description="Unit price in major money units (dollars); with every line "
                                                  "priced and no total, the cart's total is their sum.")
    category: Label | None = Field(None, description="The product's category, for rules on "
                                                     "context.cart.categories.")


class Cart(BaseModel):
    """The member's current cart, for rules on ``context.cart.*``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    lines: list[CartLine] = Field(default_factory=list, max_length=MAX_CART_LINES,
                                  description=f"Up to {MAX_CART_LINES} lines.")
    total: Money | None = Field(None, description="The cart's total in major money units (dollars); default the "
                                                  "sum of the lines' prices.")


class DecisionContext(BaseModel):
    """Context of a decision: the moment, and what targeting rules read (``context.*`` fields).

    Besides the keys below, a request may send the custom keys the program declares under
    ``targeting.context`` (checked against their declared types); any other key is refused.
    """

    # custom keys are accepted only when the program declares them: the served document lists them
    # (service.decisions.context.declared_context_schema) and refuses any other
    model_config = ConfigDict(extra="allow", frozen=True, strict=True,
                              json_schema_extra={"additionalProperties": False})

    as_of: Timestamp | None = Field(None, description=(
        f"Decide as of this moment (RFC 3339 with an offset, {DESCRIPTION}) instead of the service clock, "
        "e.g. to replay a past decision; features and tiers use only events strictly before it. "
        "Replays neither read nor write the score cache."))
    store_id: Label | None = Field(None, description="The store the member is in or ordering from "
                                                     "(rules: context.store_id).")
    device: Label | None = Field(None, description="The device or app asking, e.g. app, web, kiosk "
                                                   "(rules: context.device).")
    location: Label | None = Field(None, description="Where the member is, as a label such as a region or "
                                                     "postcode (rules: context.location).")
    cart: Cart | None = Field(None, description="The member's current cart (rules: context.cart.total, "
                                                ".quantity, .lines, .product_ids, .categories).")


class _Common(BaseModel):
    # strict: a string is not a number and a boolean is not an integer
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    channel: Channel = Field(description="Where the offers will be shown: " + ", ".join(CHANNELS) + ".")
    placement: Placement | None = Field(None, description="Where in the channel (a label such as "
                                                          "home_banner); echoed back and logged.")
    n: SlateSize | None = Field(None, description="Slate size; default the program's decisions.max_offers.")
    context: DecisionContext | None = Field(None, description="Optional context: as_of to replay a past "
                                                              "moment; store_id, device, location, cart and "
                                                              "the program's declared keys for targeting rules.")
    exclude_offer_ids: list[OfferId] = Field(default_factory=list, max_length=MAX_EXCLUDED,
                                             description="Offers not to return (e.g. already on screen).")


class DecisionBody(_Common):
    """``POST /v1/decisions``: one member's next best offers."""

    member_id: MemberId = Field(description="The member to decide for; an unknown member gets a cold-start "
                                            "decision, never an error.")
    explain: bool = Field(False, description="Add the top LightGBM feature contributions of each "
                                             "personalised offer to its reasons (computes fresh scores).")


class BatchBody(_Common):
    """``POST /v1/decisions/batch``: decisions for a list of members, streamed as NDJSON."""

    member_ids: list[MemberId] = Field(min_length=1, max_length=MAX_BATCH,
                                       json_schema_extra={"uniqueItems": True},
                                       description=f"1-{MAX_BATCH:,} distinct member ids.")
    include_excluded: bool = Field(False, description="Also list each member's excluded offers "
                                                      "(large: every candidate that did not make it).")


def parse_body(model: type[BaseModel], body: Any) -> Any:
    """Validate a JSON body; ValidationFailed naming every bad field by pointer."""
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object", [FieldError(
            code="type_error", pointer="", message="expected an object")])
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ValidationFailed("the request is not valid", field_errors(exc)) from None


def check_distinct(body: BatchBody) -> None:
    """Batch member ids must be distinct (each gets one decision, one set of coupons)."""
    seen: dict[str, int] = {}
    errors = []
    for i, member_id in enumerate(body.member_ids):
        if member_id in seen:
            errors.append(FieldError(code="duplicate", pointer=f"/member_ids/{i}",
                                     message=f"{member_id!r} is already at /member_ids/{seen[member_id]}"))
        else:
            seen[member_id] = i
    if errors:
        raise ValidationFailed("member_ids must be distinct", errors[:100])


def parse_query(member_id: str, args: Any) -> DecisionBody:
    """``GET /v1/members/{member_id}/offers`` query parameters as a :class:`DecisionBody`.

    ``channel`` (default ``app``), ``n``, ``placement``, ``explain`` (true/false),
    ``as_of`` (RFC 3339) and ``exclude_offer_ids`` (comma-separated).
    """
    known = {"channel", "n", "placement", "explain", "as_of", "exclude_offer_ids"}
    errors = [FieldError(code="unknown_parameter", parameter=name, message=f"unknown query parameter {name!r}")
              for name in args if name not in known]
    values: dict[str, Any] = {"member_id": member_id, "channel": args.get("channel", "app")}
    if "n" in args:
        text = args["n"]
        values["n"] = int(text) if text.isascii() and text.isdigit() and len(text) < 10 else text
    if "placement" in args:
        values["placement"] = args["placement"]
    if "explain" in args:
        flag = args["explain"].lower()
        if flag not in ("true", "false", "1", "0"):
            errors.append(FieldError(code="bool_parsing", parameter="explain", message="must be true or false"))
        values["explain"] = flag in ("true", "1")
    if "as_of" in args:
        values["context"] = {"as_of": args["as_of"]}
    if "exclude_offer_ids" in args:
        values["exclude_offer_ids"] = [o for o in args["exclude_offer_ids"].split(",") if o]
    try:
        body = DecisionBody.model_validate(values)
    except ValidationError as exc:
        for err in field_errors(exc):
            parts = [p for p in (err.pointer or "").split("/") if p]
            name = "as_of" if parts[:1] == ["context"] else (parts[0] if parts else "")
            name = "member_id" if name == "member_id" else name
            errors.append(FieldError(code=err.code, message=err.message, parameter=name or None))
        body = None
    if errors:
        raise ValidationFailed("the request is not valid", errors)
    assert body is not None
    return body
