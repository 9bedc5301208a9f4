"""The member features of :mod:`models.features.definitions` when every request shares one as_of.

Serving always asks at one moment: a real-time decision scores one member's candidate
offers at "now", and a batch chunk scores many members at the same "now". Then "events
strictly before as_of" is a single mask, and every point-in-time aggregate becomes a plain
group sum (``np.bincount``) over the events that pass it: no sort by (key, time), no prefix
sums, no binary searches per window. :class:`SnapshotAggregates` and :func:`pair_sums_at`
are this strategy's answers to the aggregates the feature definitions read; the
definitions themselves are shared with :mod:`models.features.compute`, and
``tests/test_features.py`` checks that both strategies give identical matrices.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from models.data_contract import OFFER_KINDS
from models.features.definitions import (
    VocabularyIndex,
    affinity_features,
    member_features,
    member_lines,
)
from models.features.history import History
from models.features.prefix import DAY, expand, expansion_size
from models.features.tier_features import tier_features
from models.program import Program
from models.units import NO_TIME


def max_by(owner: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Largest of ``values`` per owner in ``0..n-1``; int64 min where an owner has none."""
    out = np.full(n, NO_TIME, dtype=np.int64)
    np.maximum.at(out, owner, values)
    return out


def pair_sums_at(event_member: np.ndarray, event_item: np.ndarray, event_time: np.ndarray,
                 values: dict[str, np.ndarray], item_offers: sparse.csr_matrix, offer_items: sparse.csr_matrix,
                 n_items: int, n_offers: int, m: np.ndarray, o: np.ndarray, t: int,
                 windows: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """Per request (m, o): sums over the member's events (all before ``t``) whose item belongs to offer o.

    The same outputs as :func:`models.features.compute.pair_sums` (each value's sum, ``count``, ``last`` and
    ``<value>_<w>d`` window sums), expanding events to offers or requests to items,
    whichever makes fewer pairs.
    """
    n = len(m)
    in_window = {w: event_time >= t - w * DAY for w in windows}
    if expansion_size(event_item, item_offers) <= expansion_size(o, offer_items):
        owner, offer = expand(event_item, item_offers)
        keys = event_member[owner].astype(np.int64) * n_offers + offer
        times = event_time[owner]
        weights = {k: v[owner] for k, v in values.items()}
        windowed = {w: mask[owner] for w, mask in in_window.items()}
        qkeys, per_request = m.astype(np.int64) * n_offers + o, None
    else:
        keys = event_member.astype(np.int64) * n_items + event_item
        times, weights, windowed = event_time, values, in_window
        per_request, item = expand(o, offer_items)
        qkeys = m[per_request].astype(np.int64) * n_items + item
    uniq, inv = np.unique(keys, return_inverse=True)
    pos = np.minimum(np.searchsorted(uniq, qkeys), max(len(uniq) - 1, 0))
    found = (uniq[pos] == qkeys) if len(uniq) else np.zeros(len(qkeys), dtype=bool)

    def gather(per_key: np.ndarray) -> np.ndarray:
        got = np.where(found, per_key[pos], 0.0) if len(uniq) else np.zeros(len(qkeys))
        return got if per_request is None else np.bincount(per_request, weights=got, minlength=n)

    k = len(uniq)
    out = {name: gather(np.bincount(inv, weights=v, minlength=k)) for name, v in weights.items()}
    out["count"] = gather(np.bincount(inv, minlength=k).astype(np.float64))
    last = max_by(inv, times, k)
    got = np.where(found, last[pos], NO_TIME) if k else np.full(len(qkeys), NO_TIME)
    out["last"] = got if per_request is None else max_by(per_request, got, n)
    for w, mask in windowed.items():
        for name, v in weights.items():
            out[f"{name}_{w}d"] = gather(np.bincount(inv, weights=v * mask, minlength=k))
    return out


class SnapshotAggregates:
    """:class:`~models.features.definitions.MemberAggregates` when every request's as_of is ``t``:
    the lines, exposures and redemptions before ``t`` are masked once and summed per member."""

    def __init__(self, index: VocabularyIndex, hist: History, wanted: np.ndarray, sel: np.ndarray, m: np.ndarray,
                 o: np.ndarray, t: int):
        cat = index.catalog
        self.n_m, self.m, self.o, self.t = hist.n_members, m, o, t
        l_mem, l_time = hist.line_member[sel].astype(np.int64), hist.line_time[sel]
        l_basket = hist.line_basket[sel]
        new_basket = (np.r_[True, (l_mem[1:] != l_mem[:-1]) | (l_basket[1:] != l_basket[:-1])]
                      if len(sel) else np.zeros(0, bool))
        before = l_time < t
        self.l_mem, self.l_time, self.l_amt = l_mem[before], l_time[before], hist.line_amount[sel][before]
        self.l_prod, self.new_basket = hist.line_product[sel][before], new_basket[before].astype(np.float64)
        self.l_coupon, self.l_disc = hist.line_coupon[sel][before], hist.line_discount[sel][before]
        dept = np.where(self.l_prod >= 0, cat.product_department[np.maximum(self.l_prod, 0)], 0)
        self._dept = {f"dept{i}": d for i, d in enumerate(index.departments)}
        self._dept_codes = dept
        em = (hist.exp_member >= 0) & (hist.exp_offer >= 0) & (hist.exp_time < t) & wanted[np.maximum(hist.exp_member, 0)]
        rm = (hist.red_member >= 0) & (hist.red_offer >= 0) & (hist.red_time < t) & wanted[np.maximum(hist.red_member, 0)]
        self.exposures = (hist.exp_member[em].astype(np.int64), hist.exp_offer[em].astype(np.int64), hist.exp_time[em])
        self.redemptions = (hist.red_member[rm].astype(np.int64), hist.red_offer[rm].astype(np.int64),
                            hist.red_time[rm])
        self.offer_kind = cat.offer_kind

    def _per_member(self, weights: np.ndarray | None = None) -> np.ndarray:
        """A per-member group sum, read out per request."""
        return np.bincount(self.l_mem, weights=weights, minlength=self.n_m).astype(np.float64)[self.m]

    def line_sum(self, name: str, days: int | None = None) -> np.ndarray:
        """Sum of a line value before ``t`` (within ``days`` of it when given)."""
        if name in self._dept:
            values = self.l_amt * (self._dept_codes == self._dept[name])
        else:
            values = {"amount": self.l_amt, "coupon": self.l_coupon, "basket": self.new_basket}[name]
        if days is not None:
            values = values * (self.l_time >= self.t - days * DAY)
        return self._per_member(values)

    def line_count(self) -> np.ndarray:
        """Purchase lines before ``t``."""
        return self._per_member()

    def line_last(self) -> np.ndarray:
        """Latest purchase line before ``t``."""
        return max_by(self.l_mem, self.l_time, self.n_m)[self.m]

    def line_first(self) -> np.ndarray:
        """First purchase line before ``t``."""
        neg_first = max_by(self.l_mem, -self.l_time, self.n_m)[self.m]
        return np.where(neg_first == NO_TIME, NO_TIME, -neg_first)

    def offer_history(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Exposures, redemptions, last redemption, and same-kind exposures and redemptions."""
        n_m, m = self.n_m, self.m
        (e_mem, e_off, _), (r_mem, r_off, r_time) = self.exposures, self.redemptions
        n_kinds = len(OFFER_KINDS)
        qk = m.astype(np.int64) * n_kinds + self.offer_kind[self.o].astype(np.int64)
        k_exp = np.bincount(e_mem * n_kinds + self.offer_kind[e_off], minlength=n_m * n_kinds).astype(np.float64)[qk]
        k_red = np.bincount(r_mem * n_kinds + self.offer_kind[r_off], minlength=n_m * n_kinds).astype(np.float64)[qk]
        return (np.bincount(e_mem, minlength=n_m).astype(np.float64)[m],
                np.bincount(r_mem, minlength=n_m).astype(np.float64)[m],
                max_by(r_mem, r_time, n_m)[m], k_exp, k_red)


def features_at(index: VocabularyIndex, hist: History, m: np.ndarray, o: np.ndarray, t: int,
                out: dict[str, np.ndarray], program: Program | None) -> None:
    """Activity, history, tier and affinity features for requests (m, o), all at as_of ``t``."""
    wanted, sel = member_lines(hist, m)
    if program is not None:
        tier_features(program, hist.line_member[sel].astype(np.int64), hist.line_time[sel], hist.line_amount[sel],
                      hist.joined_at, m, np.full(len(m), t, dtype=np.int64), out)
    agg = SnapshotAggregates(index, hist, wanted, sel, m, o, t)
    spend_all = member_features(index, agg, hist.joined_at[m], t, out)
    lines = (agg.l_mem, agg.l_time, agg.l_amt, agg.l_prod, agg.l_coupon, agg.l_disc)
    affinity_features(index, lines, agg.exposures, agg.redemptions, m, o, t, spend_all, out, pair_sums_at)
