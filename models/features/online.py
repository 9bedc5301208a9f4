"""A member's history as fixed-width binary records, for the online store.

The service keeps each member's events as one byte string of :data:`RECORD` records
(purchase lines, exposures, redemptions). Fixed-width records let an event be added
with an atomic Redis ``APPEND`` (no read-modify-write), and decoding is a single
``np.frombuffer``. :func:`history_from_records` turns the bytes back into a one-member
:class:`~models.features.history.History`, so online features go through exactly the
code path training uses; :func:`records_from_history` writes them at materialization.

Product and offer indices refer to one :class:`FeatureCatalog`; the blob is only valid
with the catalog whose :func:`catalog_fingerprint` it was written under, which the
service stores beside it.
"""

from __future__ import annotations

import hashlib

import numpy as np

from models.features.history import FeatureCatalog, History, basket_codes_of

LINE, EXPOSURE, REDEMPTION = 0, 1, 2
RECORD = np.dtype([("time", "<i8"), ("kind", "<i4"), ("index", "<i4"), ("amount", "<f4"),
                   ("coupon", "<f4"), ("discount", "<f4"), ("basket", "<i8")])
NO_TIME = np.iinfo(np.int64).min


def catalog_fingerprint(catalog: FeatureCatalog) -> str:
    """A short hash of the product and offer id orders: records are only valid under it."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, catalog.product_ids)).encode())
    digest.update(b"\x1e")
    digest.update("\x1f".join(map(str, catalog.offer_ids)).encode())
    return digest.hexdigest()[:16]


def basket_code(basket_id: str) -> int:
    """An int64 code for an online event's basket id; only equality within one member matters."""
    return int(basket_codes_of(np.array([basket_id], dtype=object))[0])


def encode(kind: int, time: np.ndarray, index: np.ndarray, amount: np.ndarray | None = None,
           coupon: np.ndarray | None = None, discount: np.ndarray | None = None,
           basket: np.ndarray | None = None) -> bytes:
    """Records of one kind as bytes (missing money columns are zero)."""
    n = len(time)
    rec = np.zeros(n, dtype=RECORD)
    rec["time"], rec["kind"], rec["index"] = time, kind, index
    for name, values in (("amount", amount), ("coupon", coupon), ("discount", discount), ("basket", basket)):
        if values is not None:
            rec[name] = values
    return rec.tobytes()


def records_from_history(hist: History, member: int) -> bytes:
    """Every event of member index ``member`` in ``hist`` as record bytes (for materialization)."""
    lm = hist.line_member == member
    em = hist.exp_member == member
    rm = hist.red_member == member
    return b"".join([
        encode(LINE, hist.line_time[lm], hist.line_product[lm], hist.line_amount[lm], hist.line_coupon[lm],
               hist.line_discount[lm], hist.line_basket[lm]),
        encode(EXPOSURE, hist.exp_time[em], hist.exp_offer[em]),
        encode(REDEMPTION, hist.red_time[rm], hist.red_offer[rm]),
    ])


def history_from_records(member_id: str, records: bytes | None, joined_at: int = NO_TIME) -> History:
    """A one-member :class:`History` from record bytes (None or empty: a member without history)."""
    if len(records or b"") % RECORD.itemsize:
        raise ValueError(f"history of {member_id!r} is {len(records or b'')} bytes, not a whole number of records")
    rec = np.frombuffer(records or b"", dtype=RECORD)
    lines, exps, reds = (rec[rec["kind"] == k] for k in (LINE, EXPOSURE, REDEMPTION))
    zeros = np.zeros

    def member(n: int) -> np.ndarray:
        return zeros(n, dtype=np.int32)

    return History(
        member_ids=np.array([member_id], dtype=object),
        joined_at=np.array([joined_at], dtype=np.int64),
        line_member=member(len(lines)), line_time=lines["time"].astype(np.int64),
        line_basket=lines["basket"].astype(np.int64), line_product=lines["index"].astype(np.int32),
        line_amount=lines["amount"].astype(np.float64), line_coupon=lines["coupon"].astype(np.float64),
        line_discount=lines["discount"].astype(np.float64),
        exp_member=member(len(exps)), exp_time=exps["time"].astype(np.int64), exp_offer=exps["index"].astype(np.int32),
        red_member=member(len(reds)), red_time=reds["time"].astype(np.int64), red_offer=reds["index"].astype(np.int32),
    )


def member_records(hist: History) -> list[bytes]:
    """Every member's records (``records_from_history(hist, i)`` for each ``i``), in one pass.

    Sorting each event kind by member once (stably, so a member's records keep their
    order) makes materializing many members linear instead of one scan per member.
    """
    parts: list[list[bytes]] = [[] for _ in range(hist.n_members)]
    for kind, members, columns in (
            (LINE, hist.line_member, (hist.line_time, hist.line_product, hist.line_amount, hist.line_coupon,
                                      hist.line_discount, hist.line_basket)),
            (EXPOSURE, hist.exp_member, (hist.exp_time, hist.exp_offer)),
            (REDEMPTION, hist.red_member, (hist.red_time, hist.red_offer))):
        order = np.argsort(members, kind="stable")
        sorted_members = members[order]
        blob = encode(kind, *(c[order] for c in columns))
        bounds = np.searchsorted(sorted_members, np.arange(hist.n_members + 1))
        size = RECORD.itemsize
        for m in range(hist.n_members):
            lo, hi = bounds[m], bounds[m + 1]
            parts[m].append(blob[lo * size:hi * size])
    return [b"".join(p) for p in parts]
