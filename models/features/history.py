"""Integer-coded, time-sorted member histories and the offer catalog the features read.

Features are computed from two containers:

* :class:`FeatureVocabulary`: products (category, department, brand and manufacturer codes) and
  offers (attributes plus a sparse offer x product incidence matrix). One per data set
  or serving process.
* :class:`History`: every member's purchase lines, exposures and redemptions as numpy
  arrays keyed by a member index, sorted by time. Training builds one for a partition of
  members; serving builds one for a single member from its online state. The feature
  code never sees anything else, which is what makes online and offline vectors equal.

Timestamps are int64 seconds since the epoch (local program time); "before as_of"
means strictly smaller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from models.data_contract import OFFER_KINDS
from models.features.points_features import PointsBook, PostingsBook

UNKNOWN = "<unknown>"


def to_seconds(values: pd.Series | np.ndarray | pd.DatetimeIndex) -> np.ndarray:
    """Datetimes to int64 seconds since the epoch (NaT becomes the int64 minimum)."""
    arr = np.asarray(pd.to_datetime(values), dtype="datetime64[ns]")
    out = arr.astype("datetime64[s]").astype(np.int64)
    out[np.isnat(arr)] = np.iinfo(np.int64).min
    return out


def basket_codes_of(basket_ids: np.ndarray) -> np.ndarray:
    """Stable int64 codes of basket ids (64-bit hash), identical offline and online."""
    if len(basket_ids) == 0:
        return np.zeros(0, dtype=np.int64)
    return pd.util.hash_array(np.asarray(basket_ids, dtype=object)).view(np.int64)


def _codes(values: pd.Series, levels: list[str]) -> np.ndarray:
    """Map values to positions in ``levels``; unknown/null values map to level 0 (UNKNOWN).

    Each distinct value is looked up once (``pd.factorize``), not each row: a products table
    has about 100,000 rows but a few thousand distinct categories or brands, and iterating an
    Arrow-backed string column row by row in Python took seconds per load.
    """
    index = {v: i for i, v in enumerate(levels)}
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    # the last entry is what a null maps to (code -1): UNKNOWN's position, as fillna(UNKNOWN) gave
    table = np.array([index.get(str(u), 0) for u in uniques] + [index.get(UNKNOWN, 0)], dtype=np.int32)
    return table[codes]


def _levels(series: pd.Series) -> list[str]:
    """UNKNOWN, then the column's distinct non-null values as text, sorted (each distinct value
    converted once)."""
    return [UNKNOWN, *sorted({str(u) for u in pd.unique(series.dropna())} - {UNKNOWN})]


@dataclass
class FeatureVocabulary:
    """Products and offers, integer-coded, with the offer x product incidence matrix."""

    product_ids: np.ndarray            # str, position = product index
    product_category: np.ndarray       # int32 codes into category_levels
    product_department: np.ndarray
    product_brand: np.ndarray
    product_manufacturer: np.ndarray
    category_levels: list[str]
    department_levels: list[str]
    brand_levels: list[str]
    manufacturer_levels: list[str]
    offer_ids: np.ndarray              # str, position = offer index
    offer_campaign: np.ndarray         # str campaign ids
    offer_kind: np.ndarray             # int32 index into OFFER_KINDS
    offer_value: np.ndarray            # float64, NaN when unknown
    offer_cost: np.ndarray             # float64 minor units, NaN when unknown
    offer_start: np.ndarray            # int64 seconds
    offer_end: np.ndarray              # int64 seconds
    offer_campaign_type: np.ndarray    # int32 codes into campaign_type_levels
    campaign_type_levels: list[str]
    offer_products: sparse.csr_matrix  # offers x products, 1 where the offer applies

    @property
    def n_offers(self) -> int:
        return len(self.offer_ids)

    @property
    def n_products(self) -> int:
        return len(self.product_ids)

    def offer_index(self, offer_ids: pd.Series | np.ndarray | list[str]) -> np.ndarray:
        """Positions of ``offer_ids``; -1 for offers the catalog does not know."""
        lookup = pd.Index(self.offer_ids)
        return np.asarray(lookup.get_indexer(pd.Index(np.asarray(offer_ids, dtype=object))), dtype=np.int64)

    def product_index(self, product_ids: pd.Series | np.ndarray) -> np.ndarray:
        """Positions of ``product_ids``; -1 for products the catalog does not know."""
        lookup = pd.Index(self.product_ids)
        return np.asarray(lookup.get_indexer(pd.Index(np.asarray(product_ids, dtype=object))), dtype=np.int64)

    @classmethod
    def from_frames(cls, products: pd.DataFrame, offers: pd.DataFrame, offer_products: pd.DataFrame) -> FeatureVocabulary:
        """Build the catalog from the contract's products, offers and offer_products tables."""
        manufacturer = products["manufacturer_id"] if "manufacturer_id" in products else pd.Series([None] * len(products))
        cat_l, dep_l, br_l, man_l = (_levels(products["category"]), _levels(products["department"]),
                                     _levels(products["brand"]), _levels(manufacturer))
        offers = offers.reset_index(drop=True)
        ctype = offers["campaign_type"] if "campaign_type" in offers else pd.Series([None] * len(offers))
        ct_l = _levels(ctype)
        product_ids = products["product_id"].astype(str).to_numpy()
        offer_ids = offers["offer_id"].astype(str).to_numpy()
        p_index = pd.Index(product_ids)
        o_index = pd.Index(offer_ids)
        rows = o_index.get_indexer(offer_products["offer_id"].astype(str))
        cols = p_index.get_indexer(offer_products["product_id"].astype(str))
        keep = (rows >= 0) & (cols >= 0)
        incidence = sparse.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
                                      shape=(len(offer_ids), len(product_ids)))
        incidence.data[:] = 1.0  # duplicates summed by the constructor collapse back to 1
        kind_index = {k: i for i, k in enumerate(OFFER_KINDS)}

        def numeric(name: str) -> np.ndarray:
            if name not in offers:
                return np.full(len(offers), np.nan)
            return pd.to_numeric(offers[name], errors="coerce").to_numpy(dtype=np.float64)

        return cls(
            product_ids=product_ids,
            product_category=_codes(products["category"], cat_l),
            product_department=_codes(products["department"], dep_l),
            product_brand=_codes(products["brand"], br_l),
            product_manufacturer=_codes(manufacturer, man_l),
            category_levels=cat_l, department_levels=dep_l, brand_levels=br_l, manufacturer_levels=man_l,
            offer_ids=offer_ids,
            offer_campaign=offers["campaign_id"].astype(str).to_numpy(),
            offer_kind=np.array([kind_index.get(k, 0) for k in offers["kind"].astype(str)], dtype=np.int32),
            offer_value=numeric("value"),
            offer_cost=numeric("cost_minor"),
            offer_start=to_seconds(offers["starts_at"]),
            offer_end=to_seconds(offers["ends_at"]),
            offer_campaign_type=_codes(ctype, ct_l),
            campaign_type_levels=ct_l,
            offer_products=incidence,
        )


@dataclass
class History:
    """Purchase lines, exposures and redemptions of a set of members, integer-coded.

    ``member_ids[i]`` is the member with index ``i``; every event array carries that
    index. Arrays need not be sorted: features filter by time explicitly.
    """

    member_ids: np.ndarray        # str
    joined_at: np.ndarray         # int64 seconds per member (int64 min when unknown)
    line_member: np.ndarray       # int32
    line_time: np.ndarray         # int64 seconds
    line_basket: np.ndarray       # int64 basket code (unique per basket within the history)
    line_product: np.ndarray      # int32 product index (-1 unknown)
    line_amount: np.ndarray       # float64 minor units paid
    line_coupon: np.ndarray       # float64 minor units of coupon discount
    line_discount: np.ndarray     # float64 minor units of total discount (shelf, loyalty, coupons)
    exp_member: np.ndarray        # int32
    exp_time: np.ndarray          # int64 seconds
    exp_offer: np.ndarray         # int32 offer index (-1 unknown)
    red_member: np.ndarray        # int32
    red_time: np.ndarray          # int64 seconds
    red_offer: np.ndarray         # int32 offer index (-1 unknown)
    #: the members' points ledger (None: the data keeps none; :mod:`models.features.points_features`)
    points: PointsBook | None = None

    @property
    def n_members(self) -> int:
        return len(self.member_ids)

    def member_index(self, member_ids: pd.Series | np.ndarray | list[str]) -> np.ndarray:
        """Positions of ``member_ids`` in this history; -1 for members it does not hold."""
        return np.asarray(pd.Index(self.member_ids).get_indexer(pd.Index(np.asarray(member_ids, dtype=object))),
                          dtype=np.int64)

    def sorted_by_member(self) -> History:
        """A copy whose line, exposure and redemption arrays are ordered by member index.

        Sorting once lets :meth:`partition` cut a member range out by binary search.
        """
        def take(prefix: str, order: np.ndarray) -> dict[str, np.ndarray]:
            return {k: v[order] for k, v in self.__dict__.items() if k.startswith(prefix)}

        return History(member_ids=self.member_ids, joined_at=self.joined_at,
                       **take("line_", np.argsort(self.line_member, kind="stable")),
                       **take("exp_", np.argsort(self.exp_member, kind="stable")),
                       **take("red_", np.argsort(self.red_member, kind="stable")), points=self.points)

    @property
    def is_sorted_by_member(self) -> bool:
        """Whether every event array is ordered by member index (what :meth:`partition` needs)."""
        return all(bool((np.diff(a) >= 0).all()) for a in (self.line_member, self.exp_member, self.red_member))

    def partition(self, lo: int, hi: int) -> History:
        """Members ``lo``..``hi``-1 as their own History (indices rebased to start at 0).

        Needs :meth:`sorted_by_member` order; each partition is then an independent unit of
        work (the shape a distributed engine's map over partitions needs).
        """
        def cut(prefix: str) -> dict[str, np.ndarray]:
            members = self.__dict__[f"{prefix}member"]
            a, b = np.searchsorted(members, [lo, hi], side="left")
            part = {k: v[a:b] for k, v in self.__dict__.items() if k.startswith(prefix)}
            part[f"{prefix}member"] = (part[f"{prefix}member"] - lo).astype(np.int32)
            return part

        return History(member_ids=self.member_ids[lo:hi], joined_at=self.joined_at[lo:hi],
                       **cut("line_"), **cut("exp_"), **cut("red_"),
                       points=None if self.points is None else self.points.take(np.arange(lo, hi)))

    def with_members(self, member_ids: np.ndarray | list[str]) -> History:
        """A copy that also holds ``member_ids`` it lacked, with empty histories (cold start)."""
        known = set(self.member_ids)
        new = [m for m in pd.unique(np.asarray(member_ids, dtype=object)) if m not in known]
        if not new:
            return self
        return History(**{**self.__dict__,
                          "points": None if self.points is None else self.points.extended(len(new)),
                          "member_ids": np.concatenate([self.member_ids, np.asarray(new, dtype=object)]),
                          "joined_at": np.concatenate([self.joined_at, np.full(len(new), np.iinfo(np.int64).min)])})

    @classmethod
    def from_frames(cls, catalog: FeatureVocabulary, members: pd.DataFrame, transactions: pd.DataFrame,
                    exposures: pd.DataFrame, redemptions: pd.DataFrame, points: pd.DataFrame | None = None) -> History:
        """Build a history from contract frames (any subset of members, e.g. one partition);
        ``points``, the contract's optional points table, gives the point-balance features."""
        member_ids = members["member_id"].astype(str).to_numpy()
        m_index = pd.Index(member_ids)
        joined = to_seconds(members["joined_at"]) if "joined_at" in members else np.full(
            len(members), np.iinfo(np.int64).min)
        coupon = (transactions["coupon_discount_minor"] if "coupon_discount_minor" in transactions
                  else pd.Series(np.zeros(len(transactions))))
        basket_codes = basket_codes_of(transactions["basket_id"].astype(str).to_numpy(dtype=object))
        return cls(
            member_ids=member_ids,
            joined_at=joined,
            line_member=m_index.get_indexer(transactions["member_id"].astype(str)).astype(np.int32),
            line_time=to_seconds(transactions["purchased_at"]),
            line_basket=np.asarray(basket_codes, dtype=np.int64),
            line_product=catalog.product_index(transactions["product_id"].astype(str)).astype(np.int32),
            line_amount=pd.to_numeric(transactions["amount_minor"]).to_numpy(dtype=np.float64),
            line_coupon=pd.to_numeric(coupon).fillna(0).to_numpy(dtype=np.float64),
            line_discount=pd.to_numeric(transactions["discount_minor"]).fillna(0).to_numpy(dtype=np.float64),
            exp_member=m_index.get_indexer(exposures["member_id"].astype(str)).astype(np.int32),
            exp_time=to_seconds(exposures["exposed_at"]),
            exp_offer=catalog.offer_index(exposures["offer_id"].astype(str)).astype(np.int32),
            red_member=m_index.get_indexer(redemptions["member_id"].astype(str)).astype(np.int32),
            red_time=to_seconds(redemptions["redeemed_at"]),
            red_offer=catalog.offer_index(redemptions["offer_id"].astype(str)).astype(np.int32),
            points=None if points is None else PostingsBook.from_frame(points, member_ids),
        )

