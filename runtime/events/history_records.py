"""Feedback events as history records, so the next decision's features see them at once.

:class:`HistoryRecorder` encodes an accepted event as one fixed-width record
(:mod:`models.features.online`), which the events endpoint's atomic store call appends
to the member's history:

* ``transaction`` -> a purchase LINE: its product (index -1 when the catalog does not
  know it, or no ``product_id`` was sent: it still counts as spend), ``amount_minor``,
  ``discount_minor``, ``coupon_discount_minor`` and the basket (``basket_id``, else the
  event is a basket of its own);
* ``impression`` -> an EXPOSURE of the offer, ``redeem`` -> a REDEMPTION;
* ``click``, ``dismiss``, and offers the feature catalog does not know (the program's
  own offers) -> nothing (features do not read them; cap counters still count them).

Times are local program time, like the data contract's timestamps. Records carry the
catalog fingerprint they were encoded under; the store appends them only to a history
written under the same catalog.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from models.features import FeatureVocabulary
from models.features.online import EXPOSURE, LINE, REDEMPTION, basket_code, encode
from runtime.events.event import FeedbackEvent


def local_seconds(ts: datetime, zone: ZoneInfo) -> int:
    """An aware time as int64 local seconds (the clock of history records)."""
    offset = ts.astimezone(zone).utcoffset()
    return int(ts.timestamp()) + (int(offset.total_seconds()) if offset is not None else 0)


class HistoryRecorder:
    """Encodes events for one feature catalog and time zone (see the module docstring)."""

    def __init__(self, features: FeatureVocabulary, fingerprint: str, zone: ZoneInfo):
        self.features = features
        self.fingerprint = fingerprint
        self.zone = zone
        self._products = {str(p): i for i, p in enumerate(features.product_ids)}
        self._offers = {str(o): i for i, o in enumerate(features.offer_ids)}

    def knows_product(self, product_id: str | None) -> bool:
        """Whether the feature vocabulary has this product (None: the event names none)."""
        return product_id is None or product_id in self._products

    def record(self, ev: FeedbackEvent, exponent: int) -> bytes:
        """The record bytes for ``ev`` (empty when the event adds nothing to the history)."""
        t = np.array([local_seconds(ev.ts, self.zone)], dtype=np.int64)
        if ev.type == "transaction":
            product = self._products.get(ev.product_id, -1) if ev.product_id is not None else -1
            return encode(LINE, t, np.array([product]), amount=np.array([ev.amount(exponent)]),
                          coupon=np.array([ev.coupon_discount_minor or 0]),
                          discount=np.array([ev.discount_minor or 0]),
                          basket=np.array([basket_code(ev.basket_id or ev.event_id)]))
        kind = {"impression": EXPOSURE, "redeem": REDEMPTION}.get(ev.type)
        offer = self._offers.get(ev.offer_id or "", -1)
        if kind is None or offer < 0:
            return b""
        return encode(kind, t, np.array([offer]))
