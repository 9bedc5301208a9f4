"""A member's history as a compact byte string, for the online store.

The service keeps each member's events (purchase lines, exposures, redemptions) as one
byte string of two parts:

* an optional **base**, written by ``offers materialize``: :data:`BASE_MAGIC`, the
  compressed length (uint32) and a zlib-compressed columnar encoding of every record
  (per kind, in order; times delta-coded, integers in the narrowest width that holds
  them, money as integers when that is lossless, basket codes as a per-member table
  plus ordinals): about 6 bytes per record on the benchmark program instead of 36;
* a **tail** of fixed-width :data:`RECORD` records, one per event, added by the store
  with an atomic Redis ``APPEND`` (no read-modify-write). A record starts with its kind
  (0-2), the base with :data:`BASE_MAGIC`, so a history that events created alone (no
  base) reads too.

:func:`history_from_records` decompresses the base, adds the tail and returns a
one-member :class:`~models.features.history.History` equal to the one the records were
written from (every column exact), so online features go through exactly the code path
training uses; :func:`records_from_history` and :func:`member_records` write bases at
materialization, :func:`encode` tail records for events, :func:`compact` folds a tail
into the base.

Product and offer indices refer to one :class:`FeatureVocabulary`; the bytes are only valid
with the catalog whose :func:`catalog_fingerprint` they were written under, which the
service stores beside them. The fingerprint includes :data:`LAYOUT`, so bytes written
under an earlier layout read as stale (re-materialize), never as garbage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from models.features.history import FeatureVocabulary, History

LINE, EXPOSURE, REDEMPTION = 0, 1, 2
#: Version of the byte layout below, part of :func:`catalog_fingerprint`.
LAYOUT = 2
#: One event's tail record (33 bytes, packed); it starts with the kind (0-2).
RECORD = np.dtype([("kind", "u1"), ("time", "<i8"), ("index", "<i4"), ("amount", "<f4"),
                   ("coupon", "<f4"), ("discount", "<f4"), ("basket", "<i8")])
#: First byte of a compressed base (never a record's kind).
BASE_MAGIC = 0xB2
_BASE_HEAD = struct.Struct("<BI")      # magic, compressed length
_COUNTS = struct.Struct("<III")        # lines, exposures, redemptions
_FLOAT32 = 0x20                        # column type code: raw float32 (others: int itemsize)
_ZLIB_LEVEL = 6
NO_TIME = np.iinfo(np.int64).min


def catalog_fingerprint(catalog: FeatureVocabulary) -> str:
    """A short hash of the record layout and the product and offer id orders: records are only valid under it."""
    digest = hashlib.sha256()
    digest.update(f"layout {LAYOUT}\x1d".encode())
    digest.update("\x1f".join(map(str, catalog.product_ids)).encode())
    digest.update(b"\x1e")
    digest.update("\x1f".join(map(str, catalog.offer_ids)).encode())
    return digest.hexdigest()[:16]


def basket_code(basket_id: str) -> int:
    """An int64 code for an online event's basket id, the one :func:`basket_codes_of` gives.

    Hashes the one value directly (``categorize=False``: pandas documents the same hashes,
    and factorizing first only pays off for arrays with repeated values), about 10x faster
    per event than going through the bulk path.
    """
    return int(pd.util.hash_array(np.array([basket_id], dtype=object), categorize=False).view(np.int64)[0])


# -- tail records ----------------------------------------------------------------------
def encode(kind: int, time: np.ndarray, index: np.ndarray, amount: np.ndarray | None = None,
           coupon: np.ndarray | None = None, discount: np.ndarray | None = None,
           basket: np.ndarray | None = None) -> bytes:
    """Tail records of one kind as bytes (missing money columns are zero): what an event appends."""
    n = len(time)
    rec = np.zeros(n, dtype=RECORD)
    rec["time"], rec["kind"], rec["index"] = time, kind, index
    for name, values in (("amount", amount), ("coupon", coupon), ("discount", discount), ("basket", basket)):
        if values is not None:
            rec[name] = values
    return rec.tobytes()


# -- columns of the base -------------------------------------------------------------------
_WIDTHS = tuple((w, -(1 << (8 * w - 1)), (1 << (8 * w - 1)) - 1, np.dtype(f"<i{w}")) for w in (1, 2, 4))


def _pack_ints(values: np.ndarray) -> bytes:
    """Integers in the narrowest little-endian signed width that holds them, after a width byte."""
    v = np.asarray(values, dtype=np.int64)
    lo, hi = (int(v.min()), int(v.max())) if len(v) else (0, 0)
    for width, least, most, dtype in _WIDTHS:
        if lo >= least and hi <= most:
            return bytes([width]) + v.astype(dtype).tobytes()
    return b"\x08" + v.astype("<i8").tobytes()


def _pack_money(values: np.ndarray) -> bytes:
    """A float32 column as integers when that is exact (bit for bit), else as raw float32."""
    f = np.asarray(values, dtype=np.float32)
    if len(f) and np.all(np.isfinite(f)) and float(np.abs(f).max()) < 2.0**31:
        as_int = np.round(f).astype(np.int64)
        if np.array_equal(as_int.astype(np.float32).view(np.uint32), f.view(np.uint32)):
            return _pack_ints(as_int)
    return bytes([_FLOAT32]) + f.astype("<f4").tobytes()


def _delta(t: np.ndarray) -> np.ndarray:
    """Differences to the previous value (the first to 0); int64 wrap-around is undone by cumsum."""
    t = np.asarray(t, dtype=np.int64)
    return np.diff(t, prepend=np.int64(0)) if len(t) else t


def _basket_table(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct basket codes in order of first appearance, and each line's position in them."""
    codes = np.asarray(codes, dtype=np.int64)
    uniq, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    return uniq[order], rank[inverse]


class _Reader:
    """Reads the columns :func:`_pack_ints` and :func:`_pack_money` wrote, in order."""

    def __init__(self, payload: bytes):
        self.buf, self.pos = payload, 0

    def column(self, n: int) -> np.ndarray:
        """The next column of ``n`` values (int64, or float32 for raw money)."""
        if self.pos >= len(self.buf):
            raise ValueError("history base ends early")
        code = self.buf[self.pos]
        dtype = np.dtype("<f4") if code == _FLOAT32 else np.dtype(f"<i{code}") if code in (1, 2, 4, 8) else None
        if dtype is None:
            raise ValueError(f"unknown column type {code} in history base")
        start, self.pos = self.pos + 1, self.pos + 1 + n * dtype.itemsize
        if self.pos > len(self.buf):
            raise ValueError("history base ends early")
        values = np.frombuffer(self.buf, dtype=dtype, count=n, offset=start)
        return values if code == _FLOAT32 else values.astype(np.int64)


def _base(line: Sequence[np.ndarray], exp: Sequence[np.ndarray], red: Sequence[np.ndarray]) -> bytes:
    """The compressed base of one member's columns (time, index[, amount, coupon, discount, basket])."""
    lt, lp, la, lc, ld, lb = line
    table, ordinal = _basket_table(lb)
    parts = [_COUNTS.pack(len(lt), len(exp[0]), len(red[0])),
             _pack_ints(_delta(lt)), _pack_ints(lp), _pack_money(la), _pack_money(lc), _pack_money(ld),
             _pack_ints(np.array([len(table)])), _pack_ints(_delta(table)), _pack_ints(ordinal)]
    for t, index in (exp, red):
        parts += [_pack_ints(_delta(t)), _pack_ints(index)]
    packed = zlib.compress(b"".join(parts), _ZLIB_LEVEL)
    return _BASE_HEAD.pack(BASE_MAGIC, len(packed)) + packed


def _read_base(blob: bytes) -> tuple[dict[str, np.ndarray], int]:
    """The columns of a blob's base (empty when it has none), and where its tail starts."""
    if not blob or blob[0] != BASE_MAGIC:
        return {}, 0
    if len(blob) < _BASE_HEAD.size:
        raise ValueError("history base header is cut short")
    _, size = _BASE_HEAD.unpack_from(blob)
    end = _BASE_HEAD.size + size
    try:
        payload = zlib.decompress(blob[_BASE_HEAD.size:end])
    except zlib.error as exc:
        raise ValueError(f"history base does not decompress: {exc}") from exc
    if len(payload) < _COUNTS.size:
        raise ValueError("history base is cut short")
    nl, ne, nr = _COUNTS.unpack_from(payload)
    r = _Reader(payload)
    r.pos = _COUNTS.size
    cols = {"lt": np.cumsum(r.column(nl)), "lp": r.column(nl), "la": r.column(nl), "lc": r.column(nl),
            "ld": r.column(nl)}
    n_table = int(r.column(1)[0])
    table = np.cumsum(r.column(n_table))
    cols["lb"] = table[r.column(nl)]
    cols["et"], cols["eo"] = np.cumsum(r.column(ne)), r.column(ne)
    cols["rt"], cols["ro"] = np.cumsum(r.column(nr)), r.column(nr)
    if r.pos != len(payload):
        raise ValueError("history base has trailing bytes")
    return cols, end


def records_from_history(hist: History, member: int) -> bytes:
    """Every event of member index ``member`` in ``hist`` as a compressed base (for materialization).

    A member without events gets empty bytes.
    """
    lm, em, rm = hist.line_member == member, hist.exp_member == member, hist.red_member == member
    if not (lm.any() or em.any() or rm.any()):
        return b""
    return _base((hist.line_time[lm], hist.line_product[lm], hist.line_amount[lm], hist.line_coupon[lm],
                  hist.line_discount[lm], hist.line_basket[lm]),
                 (hist.exp_time[em], hist.exp_offer[em]), (hist.red_time[rm], hist.red_offer[rm]))


def history_from_records(member_id: str, records: bytes | None, joined_at: int = NO_TIME) -> History:
    """A one-member :class:`History` from a base and/or tail records (None or empty: no history).

    Raises ValueError for bytes that are not this layout.
    """
    blob = bytes(records or b"")
    cols, start = _read_base(blob)
    if (len(blob) - start) % RECORD.itemsize:
        raise ValueError(f"history of {member_id!r}: {len(blob) - start} tail bytes are not whole records")
    tail = np.frombuffer(blob, dtype=RECORD, offset=start)
    if len(tail) and int(tail["kind"].max()) > REDEMPTION:
        raise ValueError(f"history of {member_id!r}: unknown record kind (another layout?)")
    lines, exps, reds = (tail[tail["kind"] == k] for k in (LINE, EXPOSURE, REDEMPTION))

    def both(key: str, rows: np.ndarray, field: str, dtype: type) -> np.ndarray:
        """The base's column ``key`` followed by the tail's ``field``. (Money in the base is
        float32 or integers that are exactly its float32 values, so float64 is exact.)"""
        head = cols.get(key)
        out: np.ndarray = rows[field].astype(dtype)
        return out if head is None else np.concatenate([np.asarray(head).astype(dtype), out])

    line_time = both("lt", lines, "time", np.int64)
    exp_time = both("et", exps, "time", np.int64)
    red_time = both("rt", reds, "time", np.int64)
    return History(
        member_ids=np.array([member_id], dtype=object),
        joined_at=np.array([joined_at], dtype=np.int64),
        line_member=np.zeros(len(line_time), dtype=np.int32), line_time=line_time,
        line_basket=both("lb", lines, "basket", np.int64), line_product=both("lp", lines, "index", np.int32),
        line_amount=both("la", lines, "amount", np.float64), line_coupon=both("lc", lines, "coupon", np.float64),
        line_discount=both("ld", lines, "discount", np.float64),
        exp_member=np.zeros(len(exp_time), dtype=np.int32), exp_time=exp_time,
        exp_offer=both("eo", exps, "index", np.int32),
        red_member=np.zeros(len(red_time), dtype=np.int32), red_time=red_time,
        red_offer=both("ro", reds, "index", np.int32),
    )


def compact(member_id: str, records: bytes | None) -> bytes:
    """The same history with its tail folded into one compressed base (empty stays empty)."""
    hist = history_from_records(member_id, records)
    return records_from_history(hist, 0)


def member_records(hist: History) -> list[bytes]:
    """Every member's compressed base (``records_from_history(hist, i)`` for each ``i``), in one pass.

    Sorting each event kind by member once (stably, so a member's records keep their
    order) makes materializing many members linear instead of one scan per member.
    """
    n = hist.n_members
    kinds = []
    for members, columns in ((hist.line_member, (hist.line_time, hist.line_product, hist.line_amount,
                                                 hist.line_coupon, hist.line_discount, hist.line_basket)),
                             (hist.exp_member, (hist.exp_time, hist.exp_offer)),
                             (hist.red_member, (hist.red_time, hist.red_offer))):
        order = np.argsort(members, kind="stable")
        bounds = np.searchsorted(members[order], np.arange(n + 1))
        kinds.append(([np.asarray(c)[order] for c in columns], bounds))
    out = []
    for m in range(n):
        parts = [[c[b[m]:b[m + 1]] for c in cols] for cols, b in kinds]
        out.append(_base(*parts) if any(len(p[0]) for p in parts) else b"")
    return out


# -- catalog changes -------------------------------------------------------------------------
def catalog_ids(catalog: FeatureVocabulary) -> bytes:
    """The product and offer ids, in index order, of the catalog a history's indices refer to.

    Stored beside the histories under the catalog's :func:`catalog_fingerprint`, so a history
    written under an earlier catalog can be read under a new one (:func:`remap`): ids do not
    change when offers are added or retired, positions do.
    """
    text = "\x1f".join(map(str, catalog.product_ids)) + "\x1e" + "\x1f".join(map(str, catalog.offer_ids))
    return zlib.compress(f"layout {LAYOUT}\x1d{text}".encode(), _ZLIB_LEVEL)


def ids_from_catalog_ids(blob: bytes, fingerprint: str) -> tuple[np.ndarray, np.ndarray]:
    """(product ids, offer ids) of :func:`catalog_ids` bytes, checked against ``fingerprint``.

    Raises ValueError when the bytes are not that catalog's (another layout, corrupt).
    """
    try:
        head, _, text = zlib.decompress(blob).decode().partition("\x1d")
    except (zlib.error, UnicodeDecodeError) as exc:
        raise ValueError(f"catalog {fingerprint}: unreadable ids ({exc})") from exc
    products, _, offers = text.partition("\x1e")
    p = np.array(products.split("\x1f") if products else [], dtype=object)
    o = np.array(offers.split("\x1f") if offers else [], dtype=object)
    digest = hashlib.sha256()
    digest.update(f"{head}\x1d".encode())
    digest.update(products.encode() + b"\x1e" + offers.encode())
    if head != f"layout {LAYOUT}" or digest.hexdigest()[:16] != fingerprint:
        raise ValueError(f"catalog {fingerprint}: the stored ids do not match its fingerprint")
    return p, o


def remap(hist: History, old_products: np.ndarray, old_offers: np.ndarray, catalog: FeatureVocabulary) -> History:
    """``hist`` (indices under the catalog of ``old_products``/``old_offers``) with indices under ``catalog``.

    Products and offers are matched by id; one the new catalog no longer has (retired)
    becomes -1 (unknown), which features, tiers and caps already ignore. Purchases, times,
    money and baskets are untouched, so tiers and spend are exactly as before.
    """
    def translate(index: np.ndarray, old_ids: np.ndarray, new_index: np.ndarray) -> np.ndarray:
        table = np.append(new_index, -1).astype(np.int32)  # position -1 (unknown) stays unknown
        idx = np.asarray(index, dtype=np.int64)
        return table[np.where((idx >= 0) & (idx < len(old_ids)), idx, -1)]

    products = catalog.product_index(old_products) if len(old_products) else np.zeros(0, dtype=np.int64)
    offers = catalog.offer_index(old_offers) if len(old_offers) else np.zeros(0, dtype=np.int64)
    return dataclasses.replace(
        hist, line_product=translate(hist.line_product, old_products, products),
        exp_offer=translate(hist.exp_offer, old_offers, offers),
        red_offer=translate(hist.red_offer, old_offers, offers))
