"""Turning one chunk's arrays into the contract's Arrow tables, with the exact contract types.

Ids are fixed-width byte matrices (see ids.py) rather than Python string formatting,
so a chunk of a million lines costs milliseconds:

* members ``M00000042``; baskets ``B00000042-0007`` (member, trip number; offer-driven
  trips are numbered from 1000); exposures ``C012-03:M00000042`` (offer, member);
  redemptions ``R:C012-03:M00000042``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from models.data_contract import TABLES
from offerdata.synthetic import ids
from offerdata.synthetic.baskets import Lines, Visits
from offerdata.synthetic.exposures import Exposures
from offerdata.synthetic.members import MemberChunk, id_bytes, member_numbers, store_ids
from offerdata.synthetic.offer_catalog import OfferCatalog
from offerdata.synthetic.params import OPT_IN_CHANNELS, to_datetime
from offerdata.synthetic.products import ProductCatalog
from offerdata.synthetic.redemptions import Redemptions

_ARROW = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(),
          "timestamp": pa.timestamp("ns"), "bool": pa.bool_()}


def schema(name: str) -> pa.Schema:
    """The Arrow schema of contract table ``name``: every contract column, in contract order."""
    table = TABLES[name]
    return pa.schema([pa.field(c.name, _ARROW[c.type], nullable=c.nullable) for c in table.columns])


def conform(table: pa.Table, name: str) -> pa.Table:
    """Reorder and cast ``table`` to the contract schema; absent optional columns become nulls."""
    target = schema(name)
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names
               else pa.nulls(table.num_rows, f.type) for f in target]
    return pa.Table.from_arrays(columns, schema=target)


def basket_ids(members: MemberChunk, member: np.ndarray, seq: np.ndarray) -> pa.Array:
    """``B<member number>-<trip number>`` for each (chunk row, trip number)."""
    prefix = ids.concat(id_bytes("B", member_numbers(members.first, members.size)),
                        ids.literal("-", members.size))
    return ids.to_arrow(ids.concat(ids.gather(prefix, member), ids.digits(seq, 4)))


def pair_ids(prefix: str, members: MemberChunk, member: np.ndarray, offers: OfferCatalog,
             offer: np.ndarray) -> pa.Array:
    """``<prefix><offer_id>:<member_id>`` for each (chunk row, offer index) pair."""
    n = len(member)
    return ids.to_arrow(ids.concat(ids.literal(prefix, n), ids.gather(offers.offer_id_bytes, offer),
                                   ids.literal(":", n), ids.gather(members.member_id_bytes, member)))


def transactions_table(members: MemberChunk, visits: Visits, lines: Lines, red: Redemptions,
                       catalog: ProductCatalog) -> pa.Table:
    """Purchase lines plus redemption lines, sorted by member, time and basket."""
    member = np.concatenate((visits.member[lines.visit], red.member))
    time = np.concatenate((visits.time[lines.visit], red.time))
    seq = np.concatenate((visits.seq[lines.visit], red.seq))
    # One integer key (member, time, trip): the purchase lines are already in order, so a
    # stable sort only has to merge the few redemption lines in.
    if len(member) and (member.max() >= 1 << 26 or seq.max() >= 1 << 11 or time.max() >= 1 << 26):
        raise OverflowError("chunk too large for the (member, time, trip) sort key")
    order = np.argsort((member << 37) | (time << 11) | seq, kind="stable")
    member, time, seq = member[order], time[order], seq[order]
    product = np.concatenate((lines.product, red.product))[order]
    discount = np.concatenate((lines.discount, red.coupon))[order]
    coupon = np.concatenate((np.zeros(len(lines.product), dtype=np.int64), red.coupon))[order]
    amount = np.concatenate((lines.amount, red.gross - red.coupon))[order]
    quantity = np.concatenate((lines.quantity, red.quantity))[order]
    store = np.concatenate((visits.store[lines.visit], red.store))[order]
    return conform(pa.table({
        "member_id": members.member_id.take(pa.array(member)),
        "purchased_at": pa.array(to_datetime(time), pa.timestamp("ns")),
        "basket_id": basket_ids(members, member, seq),
        "product_id": catalog.product_id.take(pa.array(product)),
        "quantity": pa.array(quantity, pa.int64()),
        "amount_minor": pa.array(amount, pa.int64()),
        "discount_minor": pa.array(discount, pa.int64()),
        "coupon_discount_minor": pa.array(coupon, pa.int64()),
        "store_id": store_ids().take(pa.array(store)),
    }), "transactions")


def exposures_table(members: MemberChunk, exp: Exposures, offers: OfferCatalog) -> pa.Table:
    """The chunk's exposures; ``decision_id`` stays null (they did not come from the service)."""
    return conform(pa.table({
        "exposure_id": pair_ids("", members, exp.member, offers, exp.offer),
        "member_id": members.member_id.take(pa.array(exp.member)),
        "offer_id": offers.offer_id.take(pa.array(exp.offer)),
        "exposed_at": pa.array(to_datetime(exp.time), pa.timestamp("ns")),
        "channel": pa.array(OPT_IN_CHANNELS, pa.string()).take(pa.array(exp.channel)),
    }), "exposures")


def redemptions_table(members: MemberChunk, red: Redemptions, offers: OfferCatalog) -> pa.Table:
    """The chunk's redemptions, each naming the basket its line was added to."""
    return conform(pa.table({
        "redemption_id": pair_ids("R:", members, red.member, offers, red.offer),
        "member_id": members.member_id.take(pa.array(red.member)),
        "offer_id": offers.offer_id.take(pa.array(red.offer)),
        "redeemed_at": pa.array(to_datetime(red.time), pa.timestamp("ns")),
        "basket_id": basket_ids(members, red.member, red.seq),
        "discount_minor": pa.array(red.discount, pa.int64()),
    }), "redemptions")

