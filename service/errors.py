"""Service errors and their one renderer: RFC 9457 ``application/problem+json``.

Exception tree (each class knows its HTTP status and problem type)::

    ServiceError                      500  base; never raised for client mistakes
    ├── BadRequest                    400  the request cannot be understood
    │   └── MalformedJSON             400  the body is not JSON (detail says where)
    ├── Unauthorized                  401  no API key, or an unknown one
    ├── Forbidden                     403  the key lacks the scope; admin not enabled
    ├── NotFound                      404  unknown route or resource
    ├── MethodNotAllowed              405  route exists, method does not (Allow header)
    ├── Conflict                      409  a request with this Idempotency-Key is in flight
    │   ├── ArtifactRejected          409  the champion model cannot be served; the old one still is
    │   ├── CouponAlreadyRedeemed     409  the coupon was redeemed before (``redeemed_at`` says when)
    │   └── CouponExpired             409  the coupon expired before this redemption
    ├── PreconditionFailed            412  If-Match names a version the resource no longer has
    ├── PayloadTooLarge               413  body above OFFERS_MAX_BODY_BYTES
    ├── UnsupportedMediaType          415  body is not application/json
    ├── ValidationFailed              422  well-formed JSON, invalid content; ``errors`` name fields
    │   └── IdempotencyKeyReused      422  same Idempotency-Key, different request
    └── ServiceUnavailable            503  a dependency (Redis, the model) is not there; Retry-After

Every response body has ``type, title, status, detail, instance, request_id`` and, for
field problems, ``errors: [{pointer, code, message}]`` where ``pointer`` is an RFC 6901
JSON pointer into the request body (``/events/3/ts``). Problems with a path or query
parameter or a header carry ``parameter`` or ``header`` instead of ``pointer``. A problem
type may add members of its own (RFC 9457 extensions, ``extensions``), such as
``redeemed_at``.

:func:`register_error_handlers` maps werkzeug's HTTP errors (404, 405, 413, 415...) onto
the same shape; anything else is a bug, logged with its traceback and rendered as a
problem 500 that reveals nothing but the request id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from flask import Flask, Response, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from models.errors import OffersError
from runtime.errors import NotReady
from runtime.stores import StoreUnavailable
from service.request_log import logged_path
from service.requestid import request_id
from service.validation import describe_pattern

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class FieldError:
    """One offending field: where it is, a machine code and a sentence for people."""

    code: str
    message: str
    pointer: str | None = None
    parameter: str | None = None
    header: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class ServiceError(OffersError):
    """Base of every error the service renders as a problem; subclasses set the status."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(self, detail: str, errors: Sequence[FieldError] = (),
                 headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = tuple(errors)
        self.headers = dict(headers or {})
        #: Extension members of the problem document (never overriding the standard ones).
        self.extensions: dict[str, Any] = {}

    @property
    def type(self) -> str:
        """Problem type URI (relative: documented on the service's /docs page)."""
        return f"/docs#problem-{self.slug}"


class BadRequest(ServiceError):
    status, slug, title = 400, "bad-request", "Bad request"


class MalformedJSON(BadRequest):
    slug, title = "malformed-json", "Malformed JSON"


class Unauthorized(ServiceError):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str, errors: Sequence[FieldError] = ()):
        super().__init__(detail, errors, headers={"WWW-Authenticate": 'ApiKey realm="offers"'})


class Forbidden(ServiceError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(ServiceError):
    status, slug, title = 404, "not-found", "Not found"


class MethodNotAllowed(ServiceError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(ServiceError):
    status, slug, title = 409, "conflict", "Conflict"


class ArtifactRejected(Conflict):
    slug, title = "model-rejected", "Model artifact rejected"


class CouponAlreadyRedeemed(Conflict):
    slug, title = "coupon-already-redeemed", "Coupon already redeemed"


class CouponExpired(Conflict):
    slug, title = "coupon-expired", "Coupon expired"


class PointsInsufficient(Conflict):
    slug, title = "points-insufficient", "Not enough points"


class ReferralRefusedProblem(Conflict):
    slug, title = "referral-refused", "Referral refused"


class PreconditionFailed(ServiceError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(ServiceError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(ServiceError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(ServiceError):
    status, slug, title = 422, "validation-failed", "Validation failed"


class IdempotencyKeyReused(ValidationFailed):
    slug, title = "idempotency-key-reused", "Idempotency key reused with a different request"


class ServiceUnavailable(ServiceError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"

    def __init__(self, detail: str, retry_after: int = 1):
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


#: Every problem class, for the docs page.
PROBLEM_TYPES: tuple[type[ServiceError], ...] = (
    BadRequest, MalformedJSON, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict,
    ArtifactRejected, CouponAlreadyRedeemed, CouponExpired, PointsInsufficient, ReferralRefusedProblem, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, ValidationFailed, IdempotencyKeyReused,
    ServiceUnavailable, ServiceError)


def json_pointer(loc: Iterable[str | int]) -> str:
    """RFC 6901 pointer for a location path: ('events', 3, 'ts') -> '/events/3/ts'."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)


def field_errors(exc: ValidationError, prefix: Sequence[str | int] = ()) -> list[FieldError]:
    """Pydantic errors as FieldErrors pointing into the request body under ``prefix``."""
    out = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "string_pattern_mismatch":
            message = "must be " + describe_pattern(str(err.get("ctx", {}).get("pattern", "")))
        out.append(FieldError(code=err["type"], message=message,
                              pointer=json_pointer([*prefix, *loc])))
    return out


def problem_body(status: int, type_uri: str, title: str, detail: str,
                 errors: Sequence[FieldError] = ()) -> dict[str, Any]:
    """The problem document for the current request."""
    body: dict[str, Any] = {
        "type": type_uri,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
        "request_id": request_id(),
    }
    if errors:
        body["errors"] = [e.to_dict() for e in errors]
    return body


def problem_response(err: ServiceError) -> Response:
    """Render a ServiceError as an ``application/problem+json`` response."""
    body = problem_body(err.status, err.type, err.title, err.detail, err.errors)
    body.update({k: v for k, v in err.extensions.items() if k not in body})
    resp = Response(json.dumps(body), status=err.status, mimetype=PROBLEM_JSON)
    for name, value in err.headers.items():
        resp.headers[name] = value
    return resp


_HTTP_MAP: dict[int, type[ServiceError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed,
    409: Conflict, 413: PayloadTooLarge, 415: UnsupportedMediaType, 422: ValidationFailed,
}


def _from_http_exception(exc: HTTPException) -> Response:
    code = exc.code or 500
    if code == 404:
        err: ServiceError = NotFound(f"no resource at {request.path}")
    elif code == 405:
        allowed = sorted(getattr(exc, "valid_methods", None) or [])
        err = MethodNotAllowed(f"{request.method} is not allowed on {request.path}; "
                               f"allowed: {', '.join(allowed)}")
        if allowed:
            err.headers["Allow"] = ", ".join(allowed)
    elif code == 413:
        err = PayloadTooLarge("the request body is larger than this service accepts")
    elif code in _HTTP_MAP:
        err = _HTTP_MAP[code](exc.description or exc.name)
    else:
        # Other werkzeug errors keep their status with a generic problem body.
        body = problem_body(code, "about:blank", exc.name, exc.description or exc.name)
        return Response(json.dumps(body), status=code, mimetype=PROBLEM_JSON)
    return problem_response(err)


def register_error_handlers(app: Flask) -> None:
    """Render every error raised while handling a request as problem+json."""

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        if exc.status >= 500 and not isinstance(exc, ServiceUnavailable):
            log.error("internal error: %s", exc.detail, exc_info=exc)
        return problem_response(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        return _from_http_exception(exc)

    @app.errorhandler(StoreUnavailable)
    def _store_unavailable(exc: StoreUnavailable) -> Response:
        """The online store could not be reached: 503 with Retry-After, wherever it happened.

        Endpoints that can say more (retry with the same event ids) convert it themselves.
        """
        log.warning("online store unavailable on %s: %s", request.path, exc)
        return problem_response(ServiceUnavailable("the online store is unavailable; retry shortly"))

    @app.errorhandler(NotReady)
    def _not_ready(exc: NotReady) -> Response:
        """The model or decision setup is still loading: 503, retry shortly."""
        return problem_response(ServiceUnavailable(f"{exc}; retry shortly"))

    @app.errorhandler(Exception)
    def _bug(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, logged_path())
        return problem_response(ServiceError(
            "the service failed to handle this request; the error is logged under its request_id"))
