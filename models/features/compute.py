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
* offer attributes: kind, value, cost, duration, number of products, campaign type;
* context: channel, day of week, days since the offer started and days left;
* within-group position: the rank and relative size of the offer's own-product and
  category spend among the member's requested offers of the same campaign, which is
  what lets a pointwise model rank one member's coupons.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from models.features.history import DAY, FeatureCatalog, History
from models.schema import CHANNELS, OFFER_KINDS

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

FEATURE_NAMES: list[str] = [*MEMBER_FEATURES, *HISTORY_FEATURES, *AFFINITY_FEATURES, *OFFER_FEATURES,
                            *CONTEXT_FEATURES, *GROUP_FEATURES]
#: Features LightGBM treats as categorical (integer codes).
CATEGORICAL_FEATURES = ["offer_kind", "campaign_type", "channel"]
CHANNEL_CODES = {c: i for i, c in enumerate(CHANNELS)}


def channel_codes(channels: pd.Series | np.ndarray | list[str]) -> np.ndarray:
    """Integer codes of channel names (-1 for an unknown channel)."""
    return np.array([CHANNEL_CODES.get(str(c), -1) for c in channels], dtype=np.int32)


def _days_since(now: np.ndarray, then: np.ndarray) -> np.ndarray:
    """Days from ``then`` to ``now``; NaN where ``then`` is missing (int64 min)."""
    out = (now - then) / DAY
    return np.where(then == np.iinfo(np.int64).min, np.nan, out)


class _LevelMap:
    """Offer -> item incidence for one affinity level (products, categories, ...)."""

    def __init__(self, catalog: FeatureCatalog, level: str):
        incidence = catalog.offer_products
        if level == "product":
            self.item_of_product = np.arange(catalog.n_products, dtype=np.int64)
            self.n_items = catalog.n_products
            offer_item = incidence
        else:
            codes = {"category": catalog.product_category, "manufacturer": catalog.product_manufacturer,
                     "brand": catalog.product_brand}[level].astype(np.int64)
            self.item_of_product = codes
            self.n_items = int(codes.max()) + 1 if len(codes) else 1
            to_item = sparse.csr_matrix((np.ones(len(codes), dtype=np.float32), (np.arange(len(codes)), codes)),
                                        shape=(catalog.n_products, self.n_items))
            offer_item = (incidence @ to_item).tocsr()
            # the unknown level (code 0) says nothing about affinity
            offer_item = offer_item.tolil()
            offer_item[:, 0] = 0
            offer_item = offer_item.tocsr()
            offer_item.eliminate_zeros()
            offer_item.data[:] = 1.0
        self.item_offers = offer_item.T.tocsr()  # items x offers


class _Engine:
    """Per-catalog precomputation shared by every call (level maps, department choice)."""

    def __init__(self, catalog: FeatureCatalog):
        self.catalog = catalog
        self.levels = {level: _LevelMap(catalog, level) for level in AFFINITY_LEVELS}
        counts = np.bincount(catalog.product_department, minlength=len(catalog.department_levels))
        counts[0] = -1  # never the unknown department
        self.departments = np.argsort(-counts, kind="stable")[:N_DEPARTMENTS]
        self.n_products = catalog.offer_products.getnnz(axis=1).astype(np.float64)
        # offer -> offers sharing at least one product (for overlap features)
        inc = catalog.offer_products
        self.offer_overlap = (inc @ inc.T).tocsr()
        self.offer_overlap.data[:] = 1.0


_ENGINES: dict[int, _Engine] = {}


def _engine(catalog: FeatureCatalog) -> _Engine:
    key = id(catalog)
    engine = _ENGINES.get(key)
    if engine is None or engine.catalog is not catalog:
        engine = _Engine(catalog)
        _ENGINES.clear()
        _ENGINES[key] = engine
    return engine


def _pair_lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Values for ``wanted`` keys from sorted unique ``keys``; ``fill`` where absent."""
    pos = np.searchsorted(keys, wanted)
    pos = np.clip(pos, 0, max(len(keys) - 1, 0))
    found = (len(keys) > 0) & (keys[pos] == wanted) if len(keys) else np.zeros(len(wanted), dtype=bool)
    out = np.full(len(wanted), fill, dtype=np.float64)
    out[found] = values[pos[found]]
    return out


def _affinity(level: _LevelMap, members: np.ndarray, products: np.ndarray, amount: np.ndarray,
              coupon: np.ndarray, discount: np.ndarray, times: np.ndarray, as_of: int, n_offers: int,
              req_keys: np.ndarray) -> dict[str, np.ndarray]:
    """Member x offer aggregates at one level for the requested (member*n_offers + offer) keys."""
    items = level.item_of_product[products]
    pair = members.astype(np.int64) * level.n_items + items
    uniq, inv = np.unique(pair, return_inverse=True)
    spend = np.bincount(inv, weights=amount, minlength=len(uniq))
    lines = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
    recent = np.bincount(inv, weights=amount * (times >= as_of - 90 * DAY), minlength=len(uniq))
    coupons = np.bincount(inv, weights=coupon, minlength=len(uniq))
    discounts = np.bincount(inv, weights=discount, minlength=len(uniq))
    last = np.full(len(uniq), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, inv, times)
    pm, pi = np.divmod(uniq, level.n_items)
    # expand each (member, item) aggregate to the offers containing that item
    indptr, offers_of = level.item_offers.indptr, level.item_offers.indices
    per = indptr[pi + 1] - indptr[pi]
    rep = np.repeat(np.arange(len(uniq)), per)
    starts = np.repeat(indptr[pi], per)
    within = np.arange(len(rep)) - np.repeat(np.cumsum(per) - per, per)
    o = offers_of[starts + within]
    key = pm[rep] * n_offers + o
    ukey, kinv = np.unique(key, return_inverse=True)
    out_spend = np.bincount(kinv, weights=spend[rep], minlength=len(ukey))
    out_lines = np.bincount(kinv, weights=lines[rep], minlength=len(ukey))
    out_recent = np.bincount(kinv, weights=recent[rep], minlength=len(ukey))
    out_coupon = np.bincount(kinv, weights=coupons[rep], minlength=len(ukey))
    out_discount = np.bincount(kinv, weights=discounts[rep], minlength=len(ukey))
    out_last = np.full(len(ukey), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(out_last, kinv, last[rep])
    last_req = _pair_lookup(ukey, out_last.astype(np.float64), req_keys, fill=np.nan)
    return {
        "spend": _pair_lookup(ukey, out_spend, req_keys),
        "lines": _pair_lookup(ukey, out_lines, req_keys),
        "spend_90d": _pair_lookup(ukey, out_recent, req_keys),
        "days_since": np.where(np.isnan(last_req), np.nan, (as_of - last_req) / DAY),
        "coupon": _pair_lookup(ukey, out_coupon, req_keys),
        "discount": _pair_lookup(ukey, out_discount, req_keys),
    }


def _one_as_of(eng: _Engine, hist: History, m: np.ndarray, o: np.ndarray, as_of: int,
               out: dict[str, np.ndarray], rows: np.ndarray) -> None:
    """Fill ``out[name][rows]`` for requests (m, o) that share one ``as_of``."""
    cat = eng.catalog
    n_m = hist.n_members
    wanted = np.zeros(n_m, dtype=bool)
    wanted[m] = True
    lm = (hist.line_time < as_of) & wanted[np.maximum(hist.line_member, 0)] & (hist.line_member >= 0)
    l_mem, l_time, l_amt = hist.line_member[lm], hist.line_time[lm], hist.line_amount[lm]
    l_basket, l_prod, l_coupon = hist.line_basket[lm], hist.line_product[lm], hist.line_coupon[lm]
    l_disc = hist.line_discount[lm]

    def per_member(weights: np.ndarray | None, mask: np.ndarray | None = None) -> np.ndarray:
        idx = l_mem if mask is None else l_mem[mask]
        w = weights if mask is None or weights is None else weights[mask]
        return np.bincount(idx, weights=w, minlength=n_m).astype(np.float64)

    def baskets(mask: np.ndarray | None) -> np.ndarray:
        b = l_basket if mask is None else l_basket[mask]
        mem = l_mem if mask is None else l_mem[mask]
        _, first = np.unique(b, return_index=True)
        return np.bincount(mem[first], minlength=n_m).astype(np.float64)

    spend_all = per_member(l_amt)
    for w in WINDOWS:
        win = l_time >= as_of - w * DAY
        out[f"spend_{w}d"][rows] = per_member(l_amt, win)[m]
        out[f"baskets_{w}d"][rows] = baskets(win)[m]
    n_baskets = baskets(None)
    out["spend_all"][rows] = spend_all[m]
    out["baskets_all"][rows] = n_baskets[m]
    out["lines_all"][rows] = per_member(None)[m]
    last = np.full(n_m, np.iinfo(np.int64).min, dtype=np.int64)
    first = np.full(n_m, np.iinfo(np.int64).max, dtype=np.int64)
    np.maximum.at(last, l_mem, l_time)
    np.minimum.at(first, l_mem, l_time)
    first = np.where(first == np.iinfo(np.int64).max, np.iinfo(np.int64).min, first)
    start = np.where(hist.joined_at != np.iinfo(np.int64).min, np.minimum(hist.joined_at, np.where(
        first == np.iinfo(np.int64).min, np.iinfo(np.int64).max, first)), first)
    start = np.where(start == np.iinfo(np.int64).max, np.iinfo(np.int64).min, start)
    out["days_since_last_purchase"][rows] = _days_since(np.int64(as_of), last)[m]
    out["tenure_days"][rows] = _days_since(np.int64(as_of), start)[m]
    win365 = l_time >= as_of - 365 * DAY
    b365 = baskets(win365)
    s365 = per_member(l_amt, win365)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["avg_basket_365d"][rows] = np.where(b365 > 0, s365 / np.maximum(b365, 1), np.nan)[m]
        coupons = per_member(l_coupon)
        out["coupon_share"][rows] = np.where(spend_all + coupons > 0, coupons / (spend_all + coupons), np.nan)[m]
    known = l_prod >= 0
    dept = np.where(known, cat.product_department[np.maximum(l_prod, 0)], 0)
    for i, d in enumerate(eng.departments):
        dspend = per_member(l_amt, dept == d)
        out[f"dept_share_{i}"][rows] = np.where(spend_all > 0, dspend / np.maximum(spend_all, 1e-9), np.nan)[m]

    # past offer behaviour (exposures and redemptions strictly before as_of)
    em = (hist.exp_time < as_of) & (hist.exp_member >= 0) & (hist.exp_offer >= 0)
    rm = (hist.red_time < as_of) & (hist.red_member >= 0) & (hist.red_offer >= 0)
    e_mem, e_off = hist.exp_member[em], hist.exp_offer[em]
    r_mem, r_off, r_time = hist.red_member[rm], hist.red_offer[rm], hist.red_time[rm]
    n_exp = np.bincount(e_mem, minlength=n_m).astype(np.float64)
    n_red = np.bincount(r_mem, minlength=n_m).astype(np.float64)
    out["exposures_all"][rows] = n_exp[m]
    out["redemptions_all"][rows] = n_red[m]
    out["redemption_rate"][rows] = np.where(n_exp > 0, n_red / np.maximum(n_exp, 1), np.nan)[m]
    last_red = np.full(n_m, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last_red, r_mem, r_time)
    out["days_since_last_redemption"][rows] = _days_since(np.int64(as_of), last_red)[m]
    n_kinds = len(OFFER_KINDS)
    kind_exp = np.bincount(e_mem.astype(np.int64) * n_kinds + cat.offer_kind[e_off], minlength=n_m * n_kinds)
    kind_red = np.bincount(r_mem.astype(np.int64) * n_kinds + cat.offer_kind[r_off], minlength=n_m * n_kinds)
    kidx = m.astype(np.int64) * n_kinds + cat.offer_kind[o]
    out["exposures_same_kind"][rows] = kind_exp[kidx]
    out["redemption_rate_same_kind"][rows] = np.where(kind_exp[kidx] > 0, kind_red[kidx] / np.maximum(kind_exp[kidx], 1), np.nan)

    # member x offer affinity at every level
    n_off = cat.n_offers
    req_keys = m.astype(np.int64) * n_off + o
    lk = known
    for level in AFFINITY_LEVELS:
        agg = _affinity(eng.levels[level], l_mem[lk], l_prod[lk], l_amt[lk], l_coupon[lk], l_disc[lk], l_time[lk],
                        as_of, n_off, req_keys)
        out[f"{level}_spend"][rows] = agg["spend"]
        out[f"{level}_lines"][rows] = agg["lines"]
        out[f"{level}_spend_90d"][rows] = agg["spend_90d"]
        out[f"{level}_days_since"][rows] = agg["days_since"]
        tot = spend_all[m]
        out[f"{level}_share"][rows] = np.where(tot > 0, agg["spend"] / np.maximum(tot, 1e-9), np.nan)
        out[f"{level}_coupon"][rows] = agg["coupon"]
        gross = agg["spend"] + agg["discount"]
        out[f"{level}_discount_share"][rows] = np.where(gross > 0, agg["discount"] / np.where(gross > 0, gross, 1), np.nan)

    # exposures to / redemptions of offers sharing products with the requested offer
    for name, mem_arr, off_arr in (("overlap_exposures", e_mem, e_off), ("overlap_redemptions", r_mem, r_off)):
        if len(mem_arr) == 0:
            out[name][rows] = 0.0
            continue
        mo = sparse.csr_matrix((np.ones(len(mem_arr)), (mem_arr, off_arr)), shape=(n_m, n_off))
        reach = (mo @ eng.offer_overlap).tocsr()
        out[name][rows] = np.asarray(reach[m, o]).ravel()


def compute_features(hist: History, catalog: FeatureCatalog, member_idx: np.ndarray, offer_idx: np.ndarray,
                     as_of: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """Feature matrix (float32, ``len(member_idx)`` x ``len(FEATURE_NAMES)``) for the requests.

    Parameters
    ----------
    hist : the members' histories; ``member_idx`` indexes ``hist.member_ids``.
    catalog : products and offers; ``offer_idx`` indexes ``catalog.offer_ids``.
    as_of : int64 seconds; every aggregate uses events strictly before it.
    channel : int32 channel codes (:func:`channel_codes`).
    """
    member_idx = np.asarray(member_idx, dtype=np.int64)
    offer_idx = np.asarray(offer_idx, dtype=np.int64)
    as_of = np.asarray(as_of, dtype=np.int64)
    n = len(member_idx)
    if (member_idx < 0).any() or (offer_idx < 0).any():
        raise ValueError("compute_features needs known members and offers (index -1 found)")
    eng = _engine(catalog)
    out = {name: np.full(n, np.nan, dtype=np.float64) for name in FEATURE_NAMES}
    for t in np.unique(as_of):
        rows = np.flatnonzero(as_of == t)
        _one_as_of(eng, hist, member_idx[rows], offer_idx[rows], int(t), out, rows)

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
    """Rank and relative size of affinity within each (member, campaign, as_of) request group."""
    frame = pd.DataFrame({"m": member_idx, "c": campaign, "t": as_of,
                          "p": out["product_spend"], "k": out["category_spend"], "f": out["manufacturer_spend"]})
    groups = frame.groupby(["m", "c", "t"], sort=False)
    out["group_size"][:] = groups["p"].transform("size").to_numpy(dtype=np.float64)
    for col, rank_name, rel_name in (("p", "product_spend_rank", "product_spend_rel"),
                                     ("k", "category_spend_rank", "category_spend_rel"),
                                     ("f", "manufacturer_spend_rank", None)):
        out[rank_name][:] = groups[col].rank(method="min", ascending=False).to_numpy(dtype=np.float64)
        if rel_name is not None:
            top = groups[col].transform("max").to_numpy(dtype=np.float64)
            out[rel_name][:] = np.where(top > 0, frame[col].to_numpy() / np.where(top > 0, top, 1), 0.0)
