"""``POST /v1/decisions/batch``: decisions for up to 10,000 members, streamed as NDJSON.

For email tools and other campaign senders. The body is
:class:`~service.decisions.bodies.BatchBody`; the answer (``application/x-ndjson``) has
one line per member, in request order, each a decision document as ``POST
/v1/decisions`` returns it plus ``member_id`` (without ``excluded`` unless
``include_excluded``), and a last line ``{"summary": {...}}``. A stream that ends
without the summary was cut off: retry with the same ``Idempotency-Key``.

Members are decided :data:`CHUNK` at a time: one pipelined read, one feature matrix and
one model call, ``decide_batch`` (budgets consumed in member order), and one pipelined
write in which every member's reservations and coupons are atomic, so caps and budgets
hold across the batch and against concurrent real-time traffic. Every member with a
coupon-bearing offer gets codes of their own.

Idempotency: with an ``Idempotency-Key``, each member's line is stored (for
``OFFERS_IDEMPOTENCY_TTL_SECONDS``) as soon as it is decided. A retry with the same key
and body streams the stored lines (same decisions, same coupon codes) and decides only
the members the first attempt did not reach; the same key with another body is 422, and
a retry while the first attempt is still streaming is 409 with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterator

from flask import Blueprint, Response, request, stream_with_context

from models.policy import seed_for
from runtime.decisions.outcome import DecisionRequest
from runtime.decisions.outcome_json import outcome_json
from runtime.errors import NotReady
from runtime.stores import Store, StoredResponse, StoreUnavailable
from service.auth import require_scope
from service.decisions.bodies import BatchBody, check_distinct, parse_body
from service.decisions.context import request_context
from service.errors import (
    Conflict,
    FieldError,
    IdempotencyKeyReused,
    ServiceUnavailable,
    ValidationFailed,
)
from service.http import read_json
from service.idempotency import HEADER, scoped_key
from service.requestid import request_id
from service.state import current_decisions, current_state
from service.validation import IDEMPOTENCY_KEY

log = logging.getLogger(__name__)
bp = Blueprint("batch", __name__)

NDJSON = "application/x-ndjson"
#: Members decided together (one read, one model call, one write).
CHUNK = 200
#: How long a running batch holds its Idempotency-Key before a retry may take over.
LOCK_SECONDS = 900


def _line(document: dict[str, object]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def _member_record(header: str, member_id: str) -> str:
    return hashlib.sha256(f"{header}\n{member_id}".encode()).hexdigest()


def _claim(store: Store) -> tuple[str | None, str, bool]:
    """Claim the Idempotency-Key (when given).

    Returns (record key or None, body hash, whether a finished batch is being replayed).
    """
    body_hash = hashlib.sha256(request.get_data(cache=True)).hexdigest()
    key = request.headers.get(HEADER)
    if key is None:
        return None, body_hash, False
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ValidationFailed("the Idempotency-Key header is not valid", [FieldError(
            code="invalid_idempotency_key", header=HEADER,
            message="1-255 printable ASCII characters (a UUID is recommended)")])
    header = scoped_key(key)
    try:
        existing = store.idempotency_begin(header, body_hash, LOCK_SECONDS)
    except StoreUnavailable as exc:
        raise ServiceUnavailable("idempotency records are unavailable; retry shortly") from exc
    if existing is not None:
        if existing.request_hash != body_hash:
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body",
                                       [FieldError(code="idempotency_key_reused", header=HEADER,
                                                   message="use a new key for a different request")])
        if existing.in_flight:
            raise Conflict("a batch with this Idempotency-Key is still being streamed",
                           headers={"Retry-After": "5"})
        return header, body_hash, True  # finished before: replay from the stored lines
    return header, body_hash, False


def _offers_and_coupons(line: bytes) -> tuple[int, int]:
    """How many offers and coupon codes a stored (replayed) NDJSON line carries."""
    offers = json.loads(line).get("offers") or []
    return len(offers), sum(1 for o in offers if o.get("coupon_code"))


@bp.post("/v1/decisions/batch")
@require_scope("decisions")
def post_batch() -> Response:
    """Stream one decision per member (see the module docstring)."""
    body: BatchBody = parse_body(BatchBody, read_json())
    check_distinct(body)
    decider = current_decisions().require()
    context = request_context(body.context, decider.setup.program)  # 400 before anything is claimed
    decider.serving()  # NotReady: 503 (service.errors)
    store = current_state().store
    header, body_hash, replay = _claim(store)
    batch_id = "b-" + (hashlib.sha256(header.encode()).hexdigest()[:32] if header else uuid.uuid4().hex)
    req = DecisionRequest(member_id="", channel=body.channel, n=body.n, placement=body.placement, source="batch",
                          as_of=body.context.as_of if body.context is not None else None,
                          exclude=tuple(body.exclude_offer_ids),
                          context=context)
    program = decider.setup.program
    index = {m: i for i, m in enumerate(body.member_ids)}
    rid = request_id()

    def generate() -> Iterator[bytes]:
        started = time.perf_counter()
        counts: dict[str, float] = {"members": len(body.member_ids), "decided": 0, "replayed": 0, "offers": 0,
                                    "coupons": 0, "degraded": 0}
        finished = False
        try:
            for lo in range(0, len(body.member_ids), CHUNK):
                chunk = body.member_ids[lo:lo + CHUNK]
                stored: list[bytes | None] = [None] * len(chunk)
                if header is not None:
                    try:
                        stored = store.records_get([_member_record(header, m) for m in chunk])
                    except StoreUnavailable:
                        log.warning("batch %s: stored lines unavailable, deciding afresh (degraded)", batch_id)
                todo = [m for m, s in zip(chunk, stored, strict=True) if s is None]
                fresh: dict[str, bytes] = {}
                if todo:
                    outcomes = decider.decide_chunk(todo, req, [f"{batch_id}.{index[m]}" for m in todo],
                                                    seed=seed_for(batch_id, lo))
                    for o in outcomes:
                        doc = {"member_id": o.member_id, **outcome_json(program, o, body.include_excluded)}
                        fresh[o.member_id] = _line(doc)
                        counts["offers"] += len(o.offers)
                        counts["coupons"] += sum(1 for x in o.offers if x.coupon is not None)
                        counts["degraded"] += o.degraded is not None
                    counts["decided"] += len(outcomes)
                    keep = {_member_record(header, o.member_id): fresh[o.member_id] for o in outcomes
                            if o.degraded is None} if header is not None else {}
                    if keep:
                        try:
                            store.records_put(keep)
                        except StoreUnavailable:
                            log.warning("batch %s: could not store lines for replay", batch_id)
                counts["replayed"] += len(chunk) - len(todo)
                for line in stored:
                    if line is not None:  # a replayed line counts its offers and coupons too
                        offers, coupons = _offers_and_coupons(line)
                        counts["offers"] += offers
                        counts["coupons"] += coupons
                for m, s in zip(chunk, stored, strict=True):
                    yield s if s is not None else fresh[m]
            counts["took_ms"] = round((time.perf_counter() - started) * 1000, 1)
            yield _line({"summary": {"batch_id": batch_id, **counts}})
            finished = True
        except NotReady as exc:
            yield _line({"error": {"title": "Service unavailable", "detail": str(exc), "request_id": rid}})
        except Exception:
            log.exception("batch %s failed mid-stream", batch_id)
            yield _line({"error": {"title": "Internal server error", "request_id": rid,
                                   "detail": "the batch stopped; retry with the same Idempotency-Key"}})
        finally:
            if header is not None and not replay:
                try:
                    if finished:
                        store.idempotency_finish(header, StoredResponse(body_hash, 200, b"", NDJSON))
                    else:
                        store.idempotency_abort(header)
                except StoreUnavailable:
                    log.warning("batch %s: could not update its idempotency record", batch_id)

    return Response(stream_with_context(generate()), mimetype=NDJSON)
