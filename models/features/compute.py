"""The one feature definition for member x offer propensity, offline and online.

:func:`compute_features` takes a :class:`~models.features.history.History` (any set of
members), the :class:`~models.features.history.FeatureCatalog` and a batch of requests
``(member, offer, as_of, channel)`` and returns one float32 row per request, in the
order of :data:`FEATURE_NAMES`. Every aggregate uses only events strictly before the
request's ``as_of``. Training calls it on member partitions with many ``as_of`` values;
serving calls it on one member against many offers; the code path is the same.

Features come in groups:

* member activity: spend, baskets and lines in 7/30/90/365-day windows and overall,
  recency, tenure, average basket, coupon-discount share of spend, department shares;
* member x offer affinity: spend, line count, recent spend, days since the last
  purchase, coupon discounts received and the discounted share of spend on the offer's
  own products, and the same for its categories, manufacturers and brands; past
  exposures to and redemptions of offers sharing its products;
* past offer behaviour: exposures, redemptions, redemption rate (overall and for the
  offer's kind), days since the last redemption;
* tier state under the program config (as of the start of the day): rank, metric,
  distance to the next tier and to keeping the current one, at risk, days to period end;
* offer attributes: kind, value, cost, duration, number of products, campaign type;
* context: channel, day of week, days since the offer started and days left;
* within-group position: the rank and relative size of the offer's own-product and
  category spend among the member's requested offers of the same campaign, which is
  what lets a pointwise model rank one member's coupons.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import sparse

from models.data_contract import CHANNELS, OFFER_KINDS
from models.features.history import FeatureCatalog, History
from models.features.prefix import DAY, PrefixIndex, expand, expansion_size
from models.features.tiers import TIER_FEATURES, tier_features
from models.program import Program

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
                            *OFFER_FEATURES, *CONTEXT_FEATURES, *GROUP_FEATURES]
#: Features LightGBM treats as categorical (integer codes).
CATEGORICAL_FEATURES = ["offer_kind", "campaign_type", "channel"]
CHANNEL_CODES = {c: i for i, c in enumerate(CHANNELS)}
#: Requests that all share one as_of (every serving call) take :mod:`models.features.snapshot`,
#: which gives identical values with plain group sums; False forces the general path (tests).
SNAPSHOT = True


def channel_codes(channels: pd.Series | np.ndarray | list[str]) -> np.ndarray:
    """Integer codes of channel names (-1 for an unknown channel)."""
    return np.array([CHANNEL_CODES.get(str(c), -1) for c in channels], dtype=np.int32)


def _days_since(now: np.ndarray | int, then: np.ndarray) -> np.ndarray:
    """Days from ``then`` to ``now``; NaN where ``then`` is missing (int64 min)."""
    out = (now - then) / DAY
    return np.where(then == np.iinfo(np.int64).min, np.nan, out)


class _LevelMap:
    """Offer <-> item incidence for one affinity level (products, categories, ...)."""

    def __init__(self, catalog: FeatureCatalog, level: str):
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


class _Engine:
    """Per-catalog precomputation shared by every call (level maps, department choice, overlaps)."""

    def __init__(self, catalog: FeatureCatalog):
        self.catalog = catalog
        self.levels = {level: _LevelMap(catalog, level) for level in AFFINITY_LEVELS}
        counts = np.bincount(catalog.product_department, minlength=len(catalog.department_levels))
        counts[0] = -1  # never the unknown department
        self.departments = np.argsort(-counts, kind="stable")[:N_DEPARTMENTS]
        self.n_products = catalog.offer_products.getnnz(axis=1).astype(np.float64)
        # offer -> offers sharing at least one product (for overlap features); symmetric
        inc = catalog.offer_products
        self.offer_overlap = (inc @ inc.T).tocsr()
        self.offer_overlap.data[:] = 1.0
        self.offer_overlap.sort_indices()


_ENGINES: dict[int, _Engine] = {}


def _engine(catalog: FeatureCatalog) -> _Engine:
    key = id(catalog)
    engine = _ENGINES.get(key)
    if engine is None or engine.catalog is not catalog:
        engine = _Engine(catalog)
        _ENGINES.clear()
        _ENGINES[key] = engine
    return engine


def _segment_max(owner: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Max of ``values`` per owner (owner sorted ascending); int64 min where an owner has none."""
    out = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    if len(owner):
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        out[owner[starts]] = np.maximum.reduceat(values, starts)
    return out


def _pair_sums(event_member: np.ndarray, event_item: np.ndarray, event_time: np.ndarray,
               values: dict[str, np.ndarray], item_offers: sparse.csr_matrix, offer_items: sparse.csr_matrix,
               n_items: int, n_offers: int, m: np.ndarray, o: np.ndarray, t: np.ndarray,
               windows: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """Per request (m, o, t): sums over the member's events before t whose item belongs to offer o.

    Returns each value's sum, ``count``, ``last`` (time of the latest such event) and
    ``<value>_<w>d`` window sums. Expands events to offers or requests to items, whichever
    makes fewer pairs; the results are identical because every value is an integer amount.
    """
    n = len(m)
    cost_events = expansion_size(event_item, item_offers)
    cost_requests = expansion_size(o, offer_items)
    out: dict[str, np.ndarray] = {}
    if cost_events <= cost_requests:
        owner, offer = expand(event_item, item_offers)
        keys = event_member[owner].astype(np.int64) * n_offers + offer
        wanted = np.unique(m.astype(np.int64) * n_offers + o)
        keep = np.isin(keys, wanted, assume_unique=False)
        owner, keys = owner[keep], keys[keep]
        idx = PrefixIndex(keys, event_time[owner], {k: v[owner] for k, v in values.items()})
        qkeys = m.astype(np.int64) * n_offers + o
        c = idx.cut(qkeys, t)
        for k in values:
            out[k] = idx.sum(k, c)
        out["count"] = idx.count(c)
        out["last"] = idx.last_time(c)
        for w in windows:
            since = idx.cut(qkeys, t - w * DAY)
            for k in values:
                out[f"{k}_{w}d"] = idx.sum(k, c, since)
        return out
    idx = PrefixIndex(event_member.astype(np.int64) * n_items + event_item, event_time, values)
    owner, item = expand(o, offer_items)
    qkeys = m[owner].astype(np.int64) * n_items + item
    qt = t[owner]
    c = idx.cut(qkeys, qt)
    for k in values:
        out[k] = np.bincount(owner, weights=idx.sum(k, c), minlength=n)
    out["count"] = np.bincount(owner, weights=idx.count(c), minlength=n)
    out["last"] = _segment_max(owner, idx.last_time(c), n)
    for w in windows:
        since = idx.cut(qkeys, qt - w * DAY)
        for k in values:
            out[f"{k}_{w}d"] = np.bincount(owner, weights=idx.sum(k, c, since), minlength=n)
    return out


def member_lines(hist: History, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which members are requested (a mask) and their purchase lines' positions, sorted by
    (member, time, basket): the order basket counting and per-member runs rely on."""
    wanted = np.zeros(hist.n_members, dtype=bool)
    wanted[m] = True
    lm = (hist.line_member >= 0) & wanted[np.maximum(hist.line_member, 0)]
    order = np.lexsort((hist.line_basket[lm], hist.line_time[lm], hist.line_member[lm]))
    return wanted, np.flatnonzero(lm)[order]


def _member_features(eng: _Engine, hist: History, m: np.ndarray, o: np.ndarray, t: np.ndarray,
                     out: dict[str, np.ndarray], program: Program | None) -> None:
    """Activity, history and affinity features for requests (m, o, t), every as_of at once."""
    cat = eng.catalog
    wanted, sel = member_lines(hist, m)
    l_mem, l_time, l_amt = hist.line_member[sel].astype(np.int64), hist.line_time[sel], hist.line_amount[sel]
    l_basket, l_prod = hist.line_basket[sel], hist.line_product[sel]
    l_coupon, l_disc = hist.line_coupon[sel], hist.line_discount[sel]
    new_basket = np.r_[True, (l_mem[1:] != l_mem[:-1]) | (l_basket[1:] != l_basket[:-1])] if len(sel) else np.zeros(0, bool)
    dept = np.where(l_prod >= 0, cat.product_department[np.maximum(l_prod, 0)], 0)
    values = {"amount": l_amt, "coupon": l_coupon, "basket": new_basket.astype(np.float64)}
    for i, d in enumerate(eng.departments):
        values[f"dept{i}"] = l_amt * (dept == d)
    idx = PrefixIndex(l_mem, l_time, values)
    c = idx.cut(m, t)
    if program is not None:
        tier_features(program, l_mem, l_time, l_amt, hist.joined_at, m, t, out)
    spend_all = idx.sum("amount", c)
    for w in WINDOWS:
        since = idx.cut(m, t - w * DAY)
        out[f"spend_{w}d"] = idx.sum("amount", c, since)
        out[f"baskets_{w}d"] = idx.sum("basket", c, since)
    out["spend_all"] = spend_all
    out["baskets_all"] = idx.sum("basket", c)
    out["lines_all"] = idx.count(c)
    last = idx.last_time(c)
    first = idx.first_time(c)
    joined = hist.joined_at[m]
    none = np.iinfo(np.int64).min
    start = np.where(joined == none, first, np.where(first == none, joined, np.minimum(joined, first)))
    out["days_since_last_purchase"] = _days_since(t, last)
    out["tenure_days"] = _days_since(t, start)
    b365, s365 = out["baskets_365d"], out["spend_365d"]
    coupons = idx.sum("coupon", c)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["avg_basket_365d"] = np.where(b365 > 0, s365 / np.maximum(b365, 1), np.nan)
        out["coupon_share"] = np.where(spend_all + coupons > 0, coupons / (spend_all + coupons), np.nan)
        for i in range(len(eng.departments)):
            out[f"dept_share_{i}"] = np.where(spend_all > 0, idx.sum(f"dept{i}", c) / np.maximum(spend_all, 1e-9), np.nan)

    # past offer behaviour: exposures and redemptions strictly before as_of
    n_kinds = len(OFFER_KINDS)
    kind = cat.offer_kind[o].astype(np.int64)
    em = (hist.exp_member >= 0) & (hist.exp_offer >= 0) & wanted[np.maximum(hist.exp_member, 0)]
    rm = (hist.red_member >= 0) & (hist.red_offer >= 0) & wanted[np.maximum(hist.red_member, 0)]
    e_mem, e_off, e_time = hist.exp_member[em].astype(np.int64), hist.exp_offer[em].astype(np.int64), hist.exp_time[em]
    r_mem, r_off, r_time = hist.red_member[rm].astype(np.int64), hist.red_offer[rm].astype(np.int64), hist.red_time[rm]
    e_idx, r_idx = PrefixIndex(e_mem, e_time), PrefixIndex(r_mem, r_time)
    ec, rc = e_idx.cut(m, t), r_idx.cut(m, t)
    n_exp, n_red = e_idx.count(ec), r_idx.count(rc)
    out["exposures_all"] = n_exp
    out["redemptions_all"] = n_red
    out["redemption_rate"] = np.where(n_exp > 0, n_red / np.maximum(n_exp, 1), np.nan)
    out["days_since_last_redemption"] = _days_since(t, r_idx.last_time(rc))
    ek = PrefixIndex(e_mem * n_kinds + cat.offer_kind[e_off], e_time)
    rk = PrefixIndex(r_mem * n_kinds + cat.offer_kind[r_off], r_time)
    qk = m.astype(np.int64) * n_kinds + kind
    k_exp, k_red = ek.count(ek.cut(qk, t)), rk.count(rk.cut(qk, t))
    out["exposures_same_kind"] = k_exp
    out["redemption_rate_same_kind"] = np.where(k_exp > 0, k_red / np.maximum(k_exp, 1), np.nan)

    _affinity(eng, l_mem, l_time, l_amt, l_prod, l_coupon, l_disc, (e_mem, e_off, e_time), (r_mem, r_off, r_time),
              m, o, t, spend_all, out, _pair_sums)


def _affinity(eng: _Engine, l_mem: np.ndarray, l_time: np.ndarray, l_amt: np.ndarray, l_prod: np.ndarray,
              l_coupon: np.ndarray, l_disc: np.ndarray, exposures: tuple[np.ndarray, ...],
              redemptions: tuple[np.ndarray, ...], m: np.ndarray, o: np.ndarray, t: np.ndarray | int,
              spend_all: np.ndarray, out: dict[str, np.ndarray], pair_sums: Callable[..., dict[str, np.ndarray]]) -> None:
    """Member x offer affinity at every level, and overlap with past exposures and redemptions.

    ``pair_sums`` is :func:`_pair_sums` (per-request as_of) or
    :func:`models.features.snapshot.pair_sums_at` (one as_of, events already before it);
    both return the same sums, so the definitions here serve both paths.
    """
    n_off = eng.catalog.n_offers
    known = l_prod >= 0
    for level in AFFINITY_LEVELS:
        lmap = eng.levels[level]
        item = lmap.item_of_product[np.maximum(l_prod, 0)]
        keep = known & (item > 0 if level != "product" else True)
        agg = pair_sums(l_mem[keep], item[keep], l_time[keep],
                        {"spend": l_amt[keep], "coupon": l_coupon[keep], "discount": l_disc[keep]},
                        lmap.item_offers, lmap.offer_items, lmap.n_items, n_off, m, o, t, windows=(90,))
        out[f"{level}_spend"] = agg["spend"]
        out[f"{level}_lines"] = agg["count"]
        out[f"{level}_spend_90d"] = agg["spend_90d"]
        out[f"{level}_days_since"] = _days_since(t, agg["last"])
        out[f"{level}_share"] = np.where(spend_all > 0, agg["spend"] / np.maximum(spend_all, 1e-9), np.nan)
        out[f"{level}_coupon"] = agg["coupon"]
        gross = agg["spend"] + agg["discount"]
        out[f"{level}_discount_share"] = np.where(gross > 0, agg["discount"] / np.where(gross > 0, gross, 1), np.nan)

    # exposures to / redemptions of offers sharing products with the requested offer
    overlap = eng.offer_overlap
    for name, (mem_arr, off_arr, times) in (("overlap_exposures", exposures), ("overlap_redemptions", redemptions)):
        out[name] = pair_sums(mem_arr, off_arr, times, {}, overlap, overlap, n_off, n_off, m, o, t)["count"]


def compute_features(hist: History, catalog: FeatureCatalog, member_idx: np.ndarray, offer_idx: np.ndarray,
                     as_of: np.ndarray, channel: np.ndarray, program: Program | None = None) -> np.ndarray:
    """Feature matrix (float32, ``len(member_idx)`` x ``len(FEATURE_NAMES)``) for the requests.

    Parameters
    ----------
    hist : the members' histories; ``member_idx`` indexes ``hist.member_ids``.
    catalog : products and offers; ``offer_idx`` indexes ``catalog.offer_ids``.
    as_of : int64 seconds; every aggregate uses events strictly before it.
    channel : int32 channel codes (:func:`channel_codes`).
    program : the loyalty program whose tier rules give the tier features; None leaves them NaN.
    """
    member_idx = np.asarray(member_idx, dtype=np.int64)
    offer_idx = np.asarray(offer_idx, dtype=np.int64)
    as_of = np.asarray(as_of, dtype=np.int64)
    n = len(member_idx)
    if (member_idx < 0).any() or (offer_idx < 0).any():
        raise ValueError("compute_features needs known members and offers (index -1 found)")
    eng = _engine(catalog)
    out = {name: np.full(n, np.nan, dtype=np.float64) for name in FEATURE_NAMES}
    if SNAPSHOT and n and (as_of == as_of[0]).all():
        from models.features.snapshot import member_features_at

        member_features_at(eng, hist, member_idx, offer_idx, int(as_of[0]), out, program)
    else:
        _member_features(eng, hist, member_idx, offer_idx, as_of, out, program)

    out["offer_kind"][:] = catalog.offer_kind[offer_idx]
    out["offer_value"][:] = catalog.offer_value[offer_idx]
    out["offer_cost"][:] = catalog.offer_cost[offer_idx]
    out["offer_duration_days"][:] = (catalog.offer_end[offer_idx] - catalog.offer_start[offer_idx]) / DAY
    out["offer_n_products"][:] = eng.n_products[offer_idx]
    out["campaign_type"][:] = catalog.offer_campaign_type[offer_idx]
    out["channel"][:] = np.asarray(channel, dtype=np.float64)
    out["day_of_week"][:] = ((as_of // DAY) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    out["days_since_offer_start"][:] = (as_of - catalog.offer_start[offer_idx]) / DAY
    out["days_to_offer_end"][:] = (catalog.offer_end[offer_idx] - as_of) / DAY
    _group_features(out, member_idx, catalog.offer_campaign[offer_idx], as_of)
    return np.column_stack([out[name] for name in FEATURE_NAMES]).astype(np.float32)


def _group_features(out: dict[str, np.ndarray], member_idx: np.ndarray, campaign: np.ndarray,
                    as_of: np.ndarray) -> None:
    """Rank and relative size of affinity within each (member, campaign, as_of) request group.

    Ranks are pandas' ``rank(method="min", ascending=False)`` (ties share the best rank);
    the relative size is the value over the group's largest one (0 when that is 0).
    Pure numpy: one sort per column, no per-group Python or pandas overhead, which
    matters online where the fixed cost of a group-by dominated a 100-offer request.
    """
    n = len(member_idx)
    if n == 0:
        return
    order = np.lexsort((as_of, campaign, member_idx))
    m, c, t = member_idx[order], campaign[order], as_of[order]
    start = np.empty(n, dtype=bool)
    start[0] = True
    start[1:] = (m[1:] != m[:-1]) | (c[1:] != c[:-1]) | (t[1:] != t[:-1])
    group = np.empty(n, dtype=np.int64)
    group[order] = np.cumsum(start) - 1
    counts = np.bincount(group)
    out["group_size"][:] = counts[group]
    pos = np.arange(n)
    for col, rank_name, rel_name in (("product_spend", "product_spend_rank", "product_spend_rel"),
                                     ("category_spend", "category_spend_rank", "category_spend_rel"),
                                     ("manufacturer_spend", "manufacturer_spend_rank", None)):
        v = out[col]
        by = np.lexsort((-v, group))                 # by group, then value descending
        g, vs = group[by], v[by]
        first = np.empty(n, dtype=bool)
        first[0] = True
        first[1:] = g[1:] != g[:-1]
        tie_start = first.copy()
        tie_start[1:] |= vs[1:] != vs[:-1]
        rank = np.empty(n, dtype=np.float64)
        rank[by] = (np.maximum.accumulate(np.where(tie_start, pos, 0))
                    - np.maximum.accumulate(np.where(first, pos, 0)) + 1)
        out[rank_name][:] = rank
        if rel_name is not None:
            top = np.empty(len(counts), dtype=np.float64)
            top[g[first]] = vs[first]                # the first of each group is its largest
            top = top[group]
            out[rel_name][:] = np.where(top > 0, v / np.where(top > 0, top, 1), 0.0)
