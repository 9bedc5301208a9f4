"""What each member x offer feature is: names, the catalog index they need, and how every
feature is derived from a member's aggregates. Defined once, evaluated two ways.

:mod:`models.features.compute` evaluates the aggregates for requests with any ``as_of``
(training: prefix sums and binary searches); :mod:`models.features.snapshot` evaluates
them when every request shares one ``as_of`` (serving: plain group sums). Both hand a
:class:`MemberAggregates` and a pair-sum function to :func:`member_features`, which turns
them into feature columns, so a feature's definition lives only here and the two
strategies can only differ in how they sum, never in what they compute.

Features come in groups:

* member activity: spend, baskets and lines in 7/30/90/365-day windows and overall,
  recency, tenure, average basket, coupon-discount share of spend, department shares;
* member x offer affinity: spend, line count, recent spend, days since the last
  purchase, coupon discounts received and the discounted share of spend on the offer's
  own products, and the same for its categories, manufacturers and brands; past
  exposures to and redemptions of offers sharing its products;
* past offer behaviour: exposures, redemptions, redemption rate (overall and for the
  offer's kind), days since the last redemption;
* tier state under the program config (:mod:`models.features.tier_features`);
* the points account at the request's moment (:mod:`models.features.points_features`);
* offer attributes, context (channel, day of week, offer age and time left) and
  within-group position (:mod:`models.features.compute`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import pandas as pd
from scipy import sparse

from models.data_contract import CHANNELS
from models.features.history import FeatureVocabulary, History
from models.features.points_features import POINTS_FEATURES
from models.features.prefix import DAY
from models.features.tier_features import TIER_FEATURES
from models.units import NO_TIME

WINDOWS = (7, 30, 90, 365)
N_DEPARTMENTS = 10
AFFINITY_LEVELS = ("product", "category", "manufacturer", "brand")

MEMBER_FEATURES = [
    *(f"spend_{w}d" for w in WINDOWS), "spend_all",
    *(f"baskets_{w}d" for w in WINDOWS), "baskets_all", "lines_all",
    "days_since_last_purchase", "tenure_days", "avg_basket_365d", "coupon_share",
    *(f"dept_share_{i}" for i in range(N_DEPARTMENTS)),
]
HISTORY_FEATURES = [
    "exposures_all", "redemptions_all", "redemption_rate", "days_since_last_redemption",
    "exposures_same_kind", "redemption_rate_same_kind",
]
AFFINITY_FEATURES = [
    name
    for level in AFFINITY_LEVELS
    for name in (f"{level}_spend", f"{level}_lines", f"{level}_spend_90d", f"{level}_days_since",
                 f"{level}_share", f"{level}_coupon", f"{level}_discount_share")
] + ["overlap_exposures", "overlap_redemptions"]
OFFER_FEATURES = ["offer_kind", "offer_value", "offer_cost", "offer_duration_days", "offer_n_products",
                  "campaign_type"]
CONTEXT_FEATURES = ["channel", "day_of_week", "days_since_offer_start", "days_to_offer_end"]
GROUP_FEATURES = ["group_size", "product_spend_rank", "product_spend_rel", "category_spend_rank",
                  "category_spend_rel", "manufacturer_spend_rank"]

FEATURE_NAMES: list[str] = [*MEMBER_FEATURES, *HISTORY_FEATURES, *AFFINITY_FEATURES, *TIER_FEATURES,
                            *POINTS_FEATURES, *OFFER_FEATURES, *CONTEXT_FEATURES, *GROUP_FEATURES]
#: Features LightGBM treats as categorical (integer codes).
CATEGORICAL_FEATURES = ["offer_kind", "campaign_type", "channel"]
CHANNEL_CODES = {c: i for i, c in enumerate(CHANNELS)}

#: ``pair_sums(event_member, event_item, event_time, values, item_offers, offer_items, n_items,
#: n_offers, m, o, t, windows=())``: per request, sums over the member's events before ``t``
#: whose item belongs to offer ``o`` (each value, ``count``, ``last``, ``<value>_<w>d``)
PairSums = Callable[..., dict[str, np.ndarray]]


def channel_codes(channels: pd.Series | np.ndarray | list[str]) -> np.ndarray:
    """Integer codes of channel names (-1 for an unknown channel).

    A long column (a training set's 800,000 exposures) is factorized first, so each distinct
    channel is looked up once; a decision's short list stays a plain loop, cheaper at that size.
    """
    if len(channels) < 4096:
        return np.array([CHANNEL_CODES.get(str(c), -1) for c in channels], dtype=np.int32)
    codes, uniques = pd.factorize(pd.Series(channels, copy=False), use_na_sentinel=False)
    table = np.array([CHANNEL_CODES.get(str(u), -1) for u in uniques], dtype=np.int32)
    return table[codes]


def days_since(now: np.ndarray | int, then: np.ndarray) -> np.ndarray:
    """Days from ``then`` to ``now``; NaN where ``then`` is missing (:data:`NO_TIME`)."""
    out = (now - then) / DAY
    return np.where(then == NO_TIME, np.nan, out)


class LevelMap:
    """Offer <-> item incidence for one affinity level (products, categories, ...)."""

    def __init__(self, catalog: FeatureVocabulary, level: str):
        incidence = catalog.offer_products
        if level == "product":
            self.item_of_product = np.arange(catalog.n_products, dtype=np.int64)
            self.n_items = max(catalog.n_products, 1)
            offer_item = incidence.tocsr()
        else:
            codes = {"category": catalog.product_category, "manufacturer": catalog.product_manufacturer,
                     "brand": catalog.product_brand}[level].astype(np.int64)
            self.item_of_product = codes
            self.n_items = int(codes.max()) + 1 if len(codes) else 1
            to_item = sparse.csr_matrix((np.ones(len(codes), dtype=np.float32), (np.arange(len(codes)), codes)),
                                        shape=(catalog.n_products, self.n_items))
            # the unknown level (code 0) says nothing about affinity: drop that column
            keep = np.ones(self.n_items, dtype=np.float32)
            keep[0] = 0.0
            offer_item = (incidence @ to_item @ sparse.diags(keep)).tocsr()
            offer_item.eliminate_zeros()
            offer_item.data[:] = 1.0
        offer_item.sort_indices()
        self.offer_items = offer_item            # offers x items
        self.item_offers = offer_item.T.tocsr()  # items x offers
        self.item_offers.sort_indices()


class VocabularyIndex:
    """Per-catalog precomputation shared by every call: level maps, the departments whose
    shares are features, offers' product counts and which offers share products."""

    def __init__(self, catalog: FeatureVocabulary):
        self.catalog = catalog
        self.levels = {level: LevelMap(catalog, level) for level in AFFINITY_LEVELS}
        counts = np.bincount(catalog.product_department, minlength=len(catalog.department_levels))
        counts[0] = -1  # never the unknown department
        self.departments = np.argsort(-counts, kind="stable")[:N_DEPARTMENTS]
        self.n_products = catalog.offer_products.getnnz(axis=1).astype(np.float64)
        # offer -> offers sharing at least one product (for overlap features); symmetric
        inc = catalog.offer_products
        self.offer_overlap = (inc @ inc.T).tocsr()
        self.offer_overlap.data[:] = 1.0
        self.offer_overlap.sort_indices()


_INDEXES: dict[int, VocabularyIndex] = {}


def vocabulary_index(catalog: FeatureVocabulary) -> VocabularyIndex:
    """The :class:`VocabularyIndex` of ``catalog``, built once and reused while it is the current one."""
    key = id(catalog)
    index = _INDEXES.get(key)
    if index is None or index.catalog is not catalog:
        index = VocabularyIndex(catalog)
        _INDEXES.clear()
        _INDEXES[key] = index
    return index


def member_lines(hist: History, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which members are requested (a mask) and their purchase lines' positions, sorted by
    (member, time, basket): the order basket counting and per-member runs rely on."""
    wanted = np.zeros(hist.n_members, dtype=bool)
    wanted[m] = True
    lm = (hist.line_member >= 0) & wanted[np.maximum(hist.line_member, 0)]
    order = np.lexsort((hist.line_basket[lm], hist.line_time[lm], hist.line_member[lm]))
    return wanted, np.flatnonzero(lm)[order]


class MemberAggregates(Protocol):
    """Per request, a member's aggregates over events strictly before the request's as_of.

    Line values are ``amount``, ``coupon``, ``basket`` (1 on a basket's first line) and
    ``dept<i>`` (amount in the i-th feature department); ``days`` limits a sum to the
    last ``days`` days. Times are int64 seconds, :data:`NO_TIME` when there is none.
    """

    def line_sum(self, name: str, days: int | None = None) -> np.ndarray:
        """Sum of a line value per request."""
        ...

    def line_count(self) -> np.ndarray:
        """Purchase lines per request."""
        ...

    def line_last(self) -> np.ndarray:
        """Time of the latest purchase line."""
        ...

    def line_first(self) -> np.ndarray:
        """Time of the first purchase line."""
        ...

    def offer_history(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Exposures, redemptions, last redemption time, and exposures and redemptions of offers
        of the requested offer's kind."""
        ...


def member_features(index: VocabularyIndex, agg: MemberAggregates, joined: np.ndarray, t: np.ndarray | int,
                    out: dict[str, np.ndarray]) -> np.ndarray:
    """Activity and past-offer features from the aggregates; returns ``spend_all`` (affinity shares use it).

    ``joined`` is each request's member join time (:data:`NO_TIME` when unknown).
    """
    spend_all = agg.line_sum("amount")
    for w in WINDOWS:
        out[f"spend_{w}d"] = agg.line_sum("amount", w)
        out[f"baskets_{w}d"] = agg.line_sum("basket", w)
    out["spend_all"] = spend_all
    out["baskets_all"] = agg.line_sum("basket")
    out["lines_all"] = agg.line_count()
    first = agg.line_first()
    start = np.where(joined == NO_TIME, first, np.where(first == NO_TIME, joined, np.minimum(joined, first)))
    out["days_since_last_purchase"] = days_since(t, agg.line_last())
    out["tenure_days"] = days_since(t, start)
    b365, s365 = out["baskets_365d"], out["spend_365d"]
    coupons = agg.line_sum("coupon")
    with np.errstate(divide="ignore", invalid="ignore"):
        out["avg_basket_365d"] = np.where(b365 > 0, s365 / np.maximum(b365, 1), np.nan)
        out["coupon_share"] = np.where(spend_all + coupons > 0, coupons / (spend_all + coupons), np.nan)
        for i in range(len(index.departments)):
            out[f"dept_share_{i}"] = np.where(spend_all > 0, agg.line_sum(f"dept{i}") / np.maximum(spend_all, 1e-9),
                                              np.nan)
    n_exp, n_red, last_red, k_exp, k_red = agg.offer_history()
    out["exposures_all"] = n_exp
    out["redemptions_all"] = n_red
    out["redemption_rate"] = np.where(n_exp > 0, n_red / np.maximum(n_exp, 1), np.nan)
    out["days_since_last_redemption"] = days_since(t, last_red)
    out["exposures_same_kind"] = k_exp
    out["redemption_rate_same_kind"] = np.where(k_exp > 0, k_red / np.maximum(k_exp, 1), np.nan)
    return spend_all


def affinity_features(index: VocabularyIndex, lines: tuple[np.ndarray, ...], exposures: tuple[np.ndarray, ...],
                      redemptions: tuple[np.ndarray, ...], m: np.ndarray, o: np.ndarray, t: np.ndarray | int,
                      spend_all: np.ndarray, out: dict[str, np.ndarray], pair_sums: PairSums) -> None:
    """Member x offer affinity at every level, and overlap with past exposures and redemptions.

    ``lines`` is (member, time, amount, product, coupon, discount) of the purchase lines the
    strategy's ``pair_sums`` may sum; ``exposures`` and ``redemptions`` are (member, offer, time).
    """
    l_mem, l_time, l_amt, l_prod, l_coupon, l_disc = lines
    n_off = index.catalog.n_offers
    known = l_prod >= 0
    for level in AFFINITY_LEVELS:
        lmap = index.levels[level]
        item = lmap.item_of_product[np.maximum(l_prod, 0)]
        keep = known & (item > 0 if level != "product" else True)
        agg = pair_sums(l_mem[keep], item[keep], l_time[keep],
                        {"spend": l_amt[keep], "coupon": l_coupon[keep], "discount": l_disc[keep]},
                        lmap.item_offers, lmap.offer_items, lmap.n_items, n_off, m, o, t, windows=(90,))
        out[f"{level}_spend"] = agg["spend"]
        out[f"{level}_lines"] = agg["count"]
        out[f"{level}_spend_90d"] = agg["spend_90d"]
        out[f"{level}_days_since"] = days_since(t, agg["last"])
        out[f"{level}_share"] = np.where(spend_all > 0, agg["spend"] / np.maximum(spend_all, 1e-9), np.nan)
        out[f"{level}_coupon"] = agg["coupon"]
        gross = agg["spend"] + agg["discount"]
        out[f"{level}_discount_share"] = np.where(gross > 0, agg["discount"] / np.where(gross > 0, gross, 1), np.nan)

    # exposures to / redemptions of offers sharing products with the requested offer
    overlap = index.offer_overlap
    for name, (mem_arr, off_arr, times) in (("overlap_exposures", exposures), ("overlap_redemptions", redemptions)):
        out[name] = pair_sums(mem_arr, off_arr, times, {}, overlap, overlap, n_off, n_off, m, o, t)["count"]
