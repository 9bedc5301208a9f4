"""A decision request's ``context`` as the decision core's :class:`RequestContext`.

The body's built-in keys (``store_id``, ``device``, ``location``, ``cart``) are validated
by :class:`~service.decisions.bodies.DecisionContext`; the custom keys depend on the
program (``targeting.context``), so they are checked here: an undeclared key, or a value
of the wrong type, is a 400 naming the key (``/context/<key>``). Money arrives in major
units and leaves in minor units.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

from models.program import Program
from models.request_context import CartLine, RequestContext
from service.decisions.bodies import DecisionContext
from service.errors import FieldError, ValidationFailed

_EXPECTED = {"number": "a number", "money": "a number (major money units)", "string": "a string of 1-128 characters",
             "boolean": "true or false"}


def _fits(kind: str, value: Any) -> bool:
    """Whether a JSON value has the declared type (strict: a boolean is not a number)."""
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str) and 1 <= len(value) <= 128
    # the body's fractions arrive as Decimal (service.http.read_json)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return False
    return -(10**15) <= value <= 10**15


def declared_context_schema(program: Program) -> dict[str, dict[str, Any]]:
    """JSON schemas of the program's custom context keys (``targeting.context``), for the served
    OpenAPI document: the same types :func:`_fits` accepts, so the document and the validation agree."""
    number = {"type": "number", "minimum": -(10**15), "maximum": 10**15}
    by_kind: dict[str, dict[str, Any]] = {
        "number": number, "money": number, "string": {"type": "string", "minLength": 1, "maxLength": 128},
        "boolean": {"type": "boolean"}}
    return {key: {**by_kind[kind], "description": f"A custom context key the program declares ({kind}; "
                                                  f"rules: context.{key})."}
            for key, kind in sorted(program.targeting.context.items())}


def _minor(program: Program, major: Any) -> int:
    """Major money units (a JSON number: int or Decimal) -> minor units, exactly."""
    return round(Fraction(str(major)) * program.currency.minor_units)


def request_context(ctx: DecisionContext | None, program: Program, pointer: str = "/context") -> RequestContext | None:
    """The rules' view of ``ctx``; ValidationFailed naming every undeclared or ill-typed custom key."""
    if ctx is None:
        return None
    declared = program.targeting.context
    errors: list[FieldError] = []
    custom: list[tuple[str, str | float | bool]] = []
    for key, value in sorted((ctx.model_extra or {}).items()):
        kind = declared.get(key)
        if kind is None:
            known = ", ".join(["as_of", "store_id", "device", "location", "cart", *sorted(declared)])
            errors.append(FieldError(code="unknown_context_key", pointer=f"{pointer}/{key}",
                                     message=f"unknown context key {key!r}; the program's context keys are {known} "
                                             "(declare custom keys under targeting.context)"))
        elif value is not None and not _fits(kind, value):
            errors.append(FieldError(code="type_error", pointer=f"{pointer}/{key}",
                                     message=f"{key} is declared as {kind}: expected {_EXPECTED[kind]}"))
        elif value is not None:
            number = kind in ("number", "money")
            custom.append((key, _minor(program, value) if kind == "money" else float(value) if number else value))
    if errors:
        raise ValidationFailed("the request's context is not valid", errors)
    cart = ctx.cart
    lines = None if cart is None else tuple(
        CartLine(product_id=line.product_id, quantity=line.quantity, category=line.category,
                 price_minor=None if line.price is None else _minor(program, line.price)) for line in cart.lines)
    total = None if cart is None or cart.total is None else _minor(program, cart.total)
    return RequestContext(store_id=ctx.store_id, device=ctx.device, location=ctx.location, cart_lines=lines,
                          cart_total_minor=total, custom=tuple(custom))
