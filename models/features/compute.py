"""Point-in-time member x offer features for requests with any ``as_of`` (training's path).

:func:`compute_features` takes a :class:`~models.features.history.History` (any set of
members), the :class:`~models.features.history.FeatureVocabulary` and a batch of requests
``(member, offer, as_of, channel)`` and returns one float32 row per request, in the
order of :data:`~models.features.definitions.FEATURE_NAMES`. Every aggregate uses only
events strictly before the request's ``as_of``.

What each feature is lives in :mod:`models.features.definitions`; this module is one of
its two evaluation strategies: :class:`PrefixAggregates` and :func:`pair_sums` answer
"sum before as_of" for many different ``as_of`` values at once with prefix sums and
binary searches (:mod:`models.features.prefix`). Requests that all share one ``as_of``
(every serving call) take the other strategy, :mod:`models.features.snapshot`, which
gives identical values with plain group sums. The offer, context and within-group
features need no history and are computed here for both.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np
from scipy import sparse

from models.data_contract import OFFER_KINDS
from models.features.definitions import (
    CATEGORICAL_FEATURES,
    FEATURE_NAMES,
    HISTORY_FEATURES,
    MEMBER_FEATURES,
    VocabularyIndex,
    affinity_features,
    channel_codes,
    member_features,
    member_lines,
    vocabulary_index,
)
from models.features.history import FeatureVocabulary, History
from models.features.points_features import points_features
from models.features.prefix import DAY, PrefixIndex, expand, expansion_size
from models.features.snapshot import features_at
from models.features.tier_features import tier_features
from models.program import Program
from models.units import NO_TIME

__all__ = ["CATEGORICAL_FEATURES", "FEATURE_NAMES", "HISTORY_FEATURES", "MEMBER_FEATURES", "channel_codes",
           "compute_features", "group_features", "member_lines", "pair_sums"]

#: Requests that all share one as_of (every serving call) take :mod:`models.features.snapshot`,
#: which gives identical values with plain group sums; False forces the general path (tests).
SNAPSHOT = True


def segment_max(owner: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Max of ``values`` per owner (owner sorted ascending); int64 min where an owner has none."""
    out = np.full(n, NO_TIME, dtype=np.int64)
    if len(owner):
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        out[owner[starts]] = np.maximum.reduceat(values, starts)
    return out


def pair_sums(event_member: np.ndarray, event_item: np.ndarray, event_time: np.ndarray,
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
    out["last"] = segment_max(owner, idx.last_time(c), n)
    for w in windows:
        since = idx.cut(qkeys, qt - w * DAY)
        for k in values:
            out[f"{k}_{w}d"] = np.bincount(owner, weights=idx.sum(k, c, since), minlength=n)
    return out


class PrefixAggregates:
    """:class:`~models.features.definitions.MemberAggregates` for requests (m, t) with any as_of:
    prefix sums over each member's lines, exposures and redemptions, cut at every as_of."""

    def __init__(self, index: VocabularyIndex, hist: History, wanted: np.ndarray, sel: np.ndarray, m: np.ndarray,
                 o: np.ndarray, t: np.ndarray):
        cat = index.catalog
        l_mem, l_time, l_amt = hist.line_member[sel].astype(np.int64), hist.line_time[sel], hist.line_amount[sel]
        l_basket, l_prod = hist.line_basket[sel], hist.line_product[sel]
        new_basket = (np.r_[True, (l_mem[1:] != l_mem[:-1]) | (l_basket[1:] != l_basket[:-1])]
                      if len(sel) else np.zeros(0, bool))
        dept = np.where(l_prod >= 0, cat.product_department[np.maximum(l_prod, 0)], 0)
        values = {"amount": l_amt, "coupon": hist.line_coupon[sel], "basket": new_basket.astype(np.float64)}
        for i, d in enumerate(index.departments):
            values[f"dept{i}"] = l_amt * (dept == d)
        self.m, self.o, self.t = m, o, t
        self.lines = PrefixIndex(l_mem, l_time, values)
        self.cut = self.lines.cut(m, t)
        self._since: dict[int, object] = {}
        em = (hist.exp_member >= 0) & (hist.exp_offer >= 0) & wanted[np.maximum(hist.exp_member, 0)]
        rm = (hist.red_member >= 0) & (hist.red_offer >= 0) & wanted[np.maximum(hist.red_member, 0)]
        self.exposures = (hist.exp_member[em].astype(np.int64), hist.exp_offer[em].astype(np.int64), hist.exp_time[em])
        self.redemptions = (hist.red_member[rm].astype(np.int64), hist.red_offer[rm].astype(np.int64),
                            hist.red_time[rm])
        self.offer_kind = cat.offer_kind

    def line_sum(self, name: str, days: int | None = None) -> np.ndarray:
        """Sum of a line value before each as_of (within ``days`` of it when given)."""
        if days is None:
            return self.lines.sum(name, self.cut)
        since = self._since.get(days)
        if since is None:
            since = self._since[days] = self.lines.cut(self.m, self.t - days * DAY)
        return self.lines.sum(name, self.cut, since)  # type: ignore[arg-type]

    def line_count(self) -> np.ndarray:
        """Purchase lines before each as_of."""
        return self.lines.count(self.cut)

    def line_last(self) -> np.ndarray:
        """Latest purchase line before each as_of."""
        return self.lines.last_time(self.cut)

    def line_first(self) -> np.ndarray:
        """First purchase line before each as_of."""
        return self.lines.first_time(self.cut)

    def offer_history(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Exposures, redemptions, last redemption, and same-kind exposures and redemptions."""
        m, o, t = self.m, self.o, self.t
        (e_mem, e_off, e_time), (r_mem, r_off, r_time) = self.exposures, self.redemptions
        e_idx, r_idx = PrefixIndex(e_mem, e_time), PrefixIndex(r_mem, r_time)
        ec, rc = e_idx.cut(m, t), r_idx.cut(m, t)
        n_kinds = len(OFFER_KINDS)
        ek = PrefixIndex(e_mem * n_kinds + self.offer_kind[e_off], e_time)
        rk = PrefixIndex(r_mem * n_kinds + self.offer_kind[r_off], r_time)
        qk = m.astype(np.int64) * n_kinds + self.offer_kind[o].astype(np.int64)
        return (e_idx.count(ec), r_idx.count(rc), r_idx.last_time(rc), ek.count(ek.cut(qk, t)),
                rk.count(rk.cut(qk, t)))


def _features_any_as_of(index: VocabularyIndex, hist: History, m: np.ndarray, o: np.ndarray, t: np.ndarray,
                        out: dict[str, np.ndarray], program: Program | None) -> None:
    """Activity, history, tier and affinity features for requests (m, o, t), every as_of at once."""
    wanted, sel = member_lines(hist, m)
    agg = PrefixAggregates(index, hist, wanted, sel, m, o, t)
    l_mem, l_time, l_amt = hist.line_member[sel].astype(np.int64), hist.line_time[sel], hist.line_amount[sel]
    if program is not None:
        tier_features(program, l_mem, l_time, l_amt, hist.joined_at, m, t, out)
    spend_all = member_features(index, agg, hist.joined_at[m], t, out)
    lines = (l_mem, l_time, l_amt, hist.line_product[sel], hist.line_coupon[sel], hist.line_discount[sel])
    affinity_features(index, lines, agg.exposures, agg.redemptions, m, o, t, spend_all, out, pair_sums)


def compute_features(hist: History, catalog: FeatureVocabulary, member_idx: np.ndarray, offer_idx: np.ndarray,
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
    index = vocabulary_index(catalog)
    out = {name: np.full(n, np.nan, dtype=np.float64) for name in FEATURE_NAMES}
    if SNAPSHOT and n and (as_of == as_of[0]).all():
        features_at(index, hist, member_idx, offer_idx, int(as_of[0]), out, program)
    else:
        _features_any_as_of(index, hist, member_idx, offer_idx, as_of, out, program)

    zone = ZoneInfo(program.timezone if program is not None else "UTC")
    points_features(hist.points, member_idx, as_of, zone, out)
    out["offer_kind"][:] = catalog.offer_kind[offer_idx]
    out["offer_value"][:] = catalog.offer_value[offer_idx]
    out["offer_cost"][:] = catalog.offer_cost[offer_idx]
    out["offer_duration_days"][:] = (catalog.offer_end[offer_idx] - catalog.offer_start[offer_idx]) / DAY
    out["offer_n_products"][:] = index.n_products[offer_idx]
    out["campaign_type"][:] = catalog.offer_campaign_type[offer_idx]
    out["channel"][:] = np.asarray(channel, dtype=np.float64)
    out["day_of_week"][:] = ((as_of // DAY) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    out["days_since_offer_start"][:] = (as_of - catalog.offer_start[offer_idx]) / DAY
    out["days_to_offer_end"][:] = (catalog.offer_end[offer_idx] - as_of) / DAY
    group_features(out, member_idx, catalog.offer_campaign[offer_idx], as_of)
    return np.column_stack([out[name] for name in FEATURE_NAMES]).astype(np.float32)


def group_features(out: dict[str, np.ndarray], member_idx: np.ndarray, campaign: np.ndarray,
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
