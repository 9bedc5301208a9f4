"""The member features of :mod:`models.features.compute` when every request has one as_of.

Serving always asks at one moment: a real-time decision scores one member's candidate
offers at "now", and a batch chunk scores many members at the same "now". Then "events
strictly before as_of" is a single mask, and every point-in-time aggregate becomes a plain
group sum (``np.bincount``) over the events that pass it: no sort by (key, time), no prefix
sums, no binary searches per window. The definitions are those of
:func:`models.features.compute._member_features`, feature by feature, and
``tests/test_features.py`` checks that both give identical matrices, so this is an
evaluation strategy of the one feature definition, not a second definition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from models.data_contract import OFFER_KINDS
from models.features.history import History
from models.features.prefix import DAY, expand, expansion_size
from models.features.tiers import tier_features
from models.program import Program

if TYPE_CHECKING:  # compute imports this module lazily; at run time the import goes the other way
    from models.features.compute import _Engine

_NONE = np.iinfo(np.int64).min


def _max_by(owner: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Largest of ``values`` per owner in ``0..n-1``; int64 min where an owner has none."""
    out = np.full(n, _NONE, dtype=np.int64)
    np.maximum.at(out, owner, values)
    return out


def pair_sums_at(event_member: np.ndarray, event_item: np.ndarray, event_time: np.ndarray,
                 values: dict[str, np.ndarray], item_offers: sparse.csr_matrix, offer_items: sparse.csr_matrix,
                 n_items: int, n_offers: int, m: np.ndarray, o: np.ndarray, t: int,
                 windows: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """Per request (m, o): sums over the member's events (all before ``t``) whose item belongs to offer o.

    The same outputs as ``compute._pair_sums`` (each value's sum, ``count``, ``last`` and
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
    last = _max_by(inv, times, k)
    got = np.where(found, last[pos], _NONE) if k else np.full(len(qkeys), _NONE)
    out["last"] = got if per_request is None else _max_by(per_request, got, n)
    for w, mask in windowed.items():
        for name, v in weights.items():
            out[f"{name}_{w}d"] = gather(np.bincount(inv, weights=v * mask, minlength=k))
    return out


def member_features_at(eng: _Engine, hist: History, m: np.ndarray, o: np.ndarray, t: int,
                       out: dict[str, np.ndarray], program: Program | None) -> None:
    """Activity, history, tier and affinity features for requests (m, o), all at as_of ``t``."""
    from models.features.compute import WINDOWS, _affinity, _days_since, member_lines

    cat = eng.catalog
    n_m = hist.n_members
    t_all = np.full(len(m), t, dtype=np.int64)
    wanted, sel = member_lines(hist, m)
    l_mem, l_time, l_amt = hist.line_member[sel].astype(np.int64), hist.line_time[sel], hist.line_amount[sel]
    if program is not None:
        tier_features(program, l_mem, l_time, l_amt, hist.joined_at, m, t_all, out)
    l_basket = hist.line_basket[sel]
    new_basket = (np.r_[True, (l_mem[1:] != l_mem[:-1]) | (l_basket[1:] != l_basket[:-1])]
                  if len(sel) else np.zeros(0, bool))
    before = l_time < t
    l_mem, l_time, l_amt = l_mem[before], l_time[before], l_amt[before]
    l_prod, new_basket = hist.line_product[sel][before], new_basket[before].astype(np.float64)
    l_coupon, l_disc = hist.line_coupon[sel][before], hist.line_discount[sel][before]

    def per_member(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(l_mem, weights=weights, minlength=n_m).astype(np.float64)[m]

    spend_all = per_member(l_amt)
    for w in WINDOWS:
        recent = l_time >= t - w * DAY
        out[f"spend_{w}d"] = per_member(l_amt * recent)
        out[f"baskets_{w}d"] = per_member(new_basket * recent)
    out["spend_all"] = spend_all
    out["baskets_all"] = per_member(new_basket)
    out["lines_all"] = per_member()
    last, neg_first = _max_by(l_mem, l_time, n_m)[m], _max_by(l_mem, -l_time, n_m)[m]
    first = np.where(neg_first == _NONE, _NONE, -neg_first)
    joined = hist.joined_at[m]
    start = np.where(joined == _NONE, first, np.where(first == _NONE, joined, np.minimum(joined, first)))
    out["days_since_last_purchase"] = _days_since(t, last)
    out["tenure_days"] = _days_since(t, start)
    b365, s365 = out["baskets_365d"], out["spend_365d"]
    coupons = per_member(l_coupon)
    dept = np.where(l_prod >= 0, cat.product_department[np.maximum(l_prod, 0)], 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["avg_basket_365d"] = np.where(b365 > 0, s365 / np.maximum(b365, 1), np.nan)
        out["coupon_share"] = np.where(spend_all + coupons > 0, coupons / (spend_all + coupons), np.nan)
        for i, d in enumerate(eng.departments):
            out[f"dept_share_{i}"] = np.where(spend_all > 0, per_member(l_amt * (dept == d))
                                              / np.maximum(spend_all, 1e-9), np.nan)

    # past offer behaviour: exposures and redemptions strictly before as_of
    n_kinds = len(OFFER_KINDS)
    em = (hist.exp_member >= 0) & (hist.exp_offer >= 0) & (hist.exp_time < t) & wanted[np.maximum(hist.exp_member, 0)]
    rm = (hist.red_member >= 0) & (hist.red_offer >= 0) & (hist.red_time < t) & wanted[np.maximum(hist.red_member, 0)]
    e_mem, e_off, e_time = hist.exp_member[em].astype(np.int64), hist.exp_offer[em].astype(np.int64), hist.exp_time[em]
    r_mem, r_off, r_time = hist.red_member[rm].astype(np.int64), hist.red_offer[rm].astype(np.int64), hist.red_time[rm]
    n_exp = np.bincount(e_mem, minlength=n_m).astype(np.float64)[m]
    n_red = np.bincount(r_mem, minlength=n_m).astype(np.float64)[m]
    out["exposures_all"] = n_exp
    out["redemptions_all"] = n_red
    out["redemption_rate"] = np.where(n_exp > 0, n_red / np.maximum(n_exp, 1), np.nan)
    out["days_since_last_redemption"] = _days_since(t, _max_by(r_mem, r_time, n_m)[m])
    qk = m.astype(np.int64) * n_kinds + cat.offer_kind[o].astype(np.int64)
    k_exp = np.bincount(e_mem * n_kinds + cat.offer_kind[e_off], minlength=n_m * n_kinds).astype(np.float64)[qk]
    k_red = np.bincount(r_mem * n_kinds + cat.offer_kind[r_off], minlength=n_m * n_kinds).astype(np.float64)[qk]
    out["exposures_same_kind"] = k_exp
    out["redemption_rate_same_kind"] = np.where(k_exp > 0, k_red / np.maximum(k_exp, 1), np.nan)

    _affinity(eng, l_mem, l_time, l_amt, l_prod, l_coupon, l_disc, (e_mem, e_off, e_time),
              (r_mem, r_off, r_time), m, o, t, spend_all, out, pair_sums_at)
