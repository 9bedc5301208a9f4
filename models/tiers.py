"""Member tier state: tier, since when, the metric, deltas to the next and to keep, projection.

One implementation serves both callers: :func:`tier_states` computes every member at
one ``as_of`` from a transactions frame (training, batch), :func:`member_tier_state`
computes one member from two arrays (serving). Both run :func:`tier_arrays`, which is
numpy throughout: transactions become per-member sorted events and every window sum
is a difference of one cumulative sum, found with ``searchsorted`` on a composite
(member, time-rank) key. No Python loop runs per transaction or per member.

Semantics (docs/program-config.md explains them for members of the public):

* Only transactions strictly before ``as_of`` count (point-in-time safe for training).
* The metric is qualifying spend (``amount_minor``, negatives clipped to 0) or points
  earned at the base rate (no tier multipliers or bonuses), floored on the window total.
* ``rolling`` windows: the metric is the sum over ``[as_of - days, as_of)``. A member holds
  the best tier their metric reached during the last ``grace_days``; policy ``none`` keeps
  the best tier ever reached. ``period_end`` is the last moment the tier is held if the
  member buys nothing more; ``delta_to_keep`` is what to add before then to hold it longer.
* ``calendar_year`` windows: a tier reached in a year holds through the next year; at the
  year end the member keeps it, drops one tier (``one_down``), drops to what the year's
  metric earned (``to_eligible``) or keeps it forever (``none``); the drop takes effect
  ``grace_days`` into the new year. ``period_end`` is 31 Dec (or the grace end).
* ``lifetime`` windows: the metric only grows; tiers never drop.
* ``since`` is when the member last entered the tier: the purchase that crossed its
  threshold, or the moment a downgrade took effect; for the entry tier the join date
  (or first purchase) when the member was never demoted.
* ``projected_tier`` extrapolates the member's pace (trailing window for rolling,
  trailing 365 days for calendar years) to ``period_end``; ``at_risk`` means it is lower.

Why one module of about 420 lines: rolling, calendar and lifetime windows share the event
arrays, the threshold ranking and the downgrade rule, and are vectorized over all members
together; the entry points (:func:`tier_states`, :func:`tier_state_list`) and the window
arithmetic are read together when a tier looks wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.program import Program
from models.units import DAY_NS, NO_TIME

NAT = NO_TIME  # the int64 view of NaT

COLUMNS = ("tier", "tier_rank", "since", "metric", "next_tier", "delta_to_next", "delta_to_keep",
           "period_end", "projected_tier", "at_risk")


@dataclass(frozen=True)
class TierState:
    """One member's tier state at a point in time (see the module docstring for semantics).

    ``metric``, ``delta_to_next`` and ``delta_to_keep`` are in the metric's unit: minor
    units for spend programs, currency units (points, stars) for points programs.
    ``delta_to_next`` and ``next_tier`` are None at the top tier; ``since`` and
    ``period_end`` are None when unknown or not applicable.
    """

    tier: str
    tier_rank: int
    since: pd.Timestamp | None
    metric: int
    next_tier: str | None
    delta_to_next: int | None
    delta_to_keep: int
    period_end: pd.Timestamp | None
    projected_tier: str
    at_risk: bool


def tier_states(program: Program, transactions: pd.DataFrame, as_of: pd.Timestamp,
                members: Sequence[str] | None = None,
                joined_at: pd.Series | None = None) -> pd.DataFrame:
    """Tier state of many members at one ``as_of``, vectorised.

    Parameters
    ----------
    program
        The loyalty program whose tier policy applies.
    transactions
        Columns ``member_id`` (str), ``purchased_at`` (datetime64), ``amount_minor`` (int);
        an optional ``joined_at`` column gives each member's join date. Rows at or after
        ``as_of`` are ignored.
    as_of
        The moment of evaluation (naive local time, or zone-aware and converted to the
        program's timezone).
    members
        Members to report, in this order; default: every member in ``transactions``,
        sorted. Members without transactions get the entry tier.
    joined_at
        Join dates indexed by member id (overrides the ``joined_at`` column).

    Returns
    -------
    pandas.DataFrame
        One row per member, indexed by ``member_id``, with the columns of :class:`TierState`.
    """
    ids = (pd.Index(members, dtype=object) if members is not None
           else pd.Index(np.sort(transactions["member_id"].astype(str).unique()), dtype=object))
    codes = pd.Categorical(transactions["member_id"].astype(str), categories=ids).codes.astype(np.int64)
    keep = codes >= 0
    times = _ns(transactions["purchased_at"].to_numpy())[keep]
    amounts = transactions["amount_minor"].to_numpy(dtype=np.int64)[keep]
    if joined_at is None and "joined_at" in transactions.columns:
        joined_at = transactions.groupby("member_id", sort=False)["joined_at"].first()
    joined = None
    if joined_at is not None:
        joined = _ns(pd.to_datetime(joined_at.reindex(ids)).to_numpy())
    arrays = tier_arrays(program, codes[keep], times, amounts, len(ids), _as_of_ns(program, as_of), joined)
    frame = pd.DataFrame(_columns(program, arrays), index=ids)
    frame.index.name = "member_id"
    return frame


def member_tier_state(program: Program, purchased_at: np.ndarray, amount_minor: np.ndarray,
                      as_of: pd.Timestamp, joined_at: pd.Timestamp | None = None) -> TierState:
    """Tier state of one member from their purchase times and amounts (same engine as
    :func:`tier_states`, so both give identical values)."""
    times = _ns(np.asarray(purchased_at))
    joined = None if joined_at is None or pd.isna(joined_at) else np.array([pd.Timestamp(joined_at).value])
    return tier_state_list(program, np.zeros(len(times), dtype=np.int64), times,
                           np.asarray(amount_minor, dtype=np.int64), 1, as_of, joined)[0]


def tier_state_list(program: Program, codes: np.ndarray, times_ns: np.ndarray, amount_minor: np.ndarray,
                    n: int, as_of: pd.Timestamp, joined_ns: np.ndarray | None = None) -> list[TierState]:
    """Tier states of members ``0..n-1`` as :class:`TierState` objects, without a DataFrame.

    ``codes`` gives each purchase's member, ``times_ns`` its int64 nanoseconds (naive
    local), ``joined_ns`` each member's join date (:data:`NAT` when unknown). The same
    engine as :func:`tier_states`; batch decisions use it to avoid a row per member.
    """
    arrays = tier_arrays(program, np.asarray(codes, dtype=np.int64), np.asarray(times_ns, dtype=np.int64),
                          np.asarray(amount_minor, dtype=np.int64), n, _as_of_ns(program, as_of), joined_ns)
    v = tier_numbers(program, arrays)
    names = program.tier_names

    def moment(ns: int) -> pd.Timestamp | None:
        return None if ns == NAT else pd.Timestamp(ns, unit="ns")

    return [TierState(tier=str(names[rank]), tier_rank=rank, since=moment(since), metric=metric,
                      next_tier=str(names[rank + 1]) if dn >= 0 else None, delta_to_next=dn if dn >= 0 else None,
                      delta_to_keep=keep, period_end=moment(end), projected_tier=str(names[proj]),
                      at_risk=risk)
            for rank, since, metric, dn, keep, end, proj, risk in zip(
                v["rank"].tolist(), v["since"].tolist(), np.asarray(v["metric"]).astype(np.int64).tolist(),
                np.asarray(v["delta_to_next"]).astype(np.int64).tolist(), v["delta_to_keep"].tolist(),
                v["period_end"].tolist(), v["projected"].tolist(), v["at_risk"].tolist(), strict=True)]


def tier_state_from_row(row: pd.Series) -> TierState:
    """A :class:`TierState` from one row of :func:`tier_states` (for batch decisions)."""
    return _state(**{name: row[name] for name in COLUMNS})


def _state(**v: object) -> TierState:
    def ts(x: object) -> pd.Timestamp | None:
        return None if x is None or pd.isna(x) else pd.Timestamp(x)

    def opt(x: object) -> object:
        return None if x is None or pd.isna(x) else x

    dn = opt(v["delta_to_next"])
    return TierState(tier=str(v["tier"]), tier_rank=int(v["tier_rank"]), since=ts(v["since"]),  # type: ignore[call-overload]
                     metric=int(v["metric"]), next_tier=opt(v["next_tier"]),  # type: ignore[call-overload,arg-type]
                     delta_to_next=None if dn is None else int(dn),  # type: ignore[call-overload]
                     delta_to_keep=int(v["delta_to_keep"]), period_end=ts(v["period_end"]),  # type: ignore[call-overload]
                     projected_tier=str(v["projected_tier"]), at_risk=bool(v["at_risk"]))


def _ns(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).astype("datetime64[ns]").view(np.int64)


def _as_of_ns(program: Program, as_of: pd.Timestamp) -> int:
    ts = pd.Timestamp(as_of)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(program.timezone).tz_localize(None)
    return int(ts.as_unit("ns").value)


def tier_numbers(program: Program, a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The engine's arrays as plain numbers, without pandas (for features and serving).

    ``rank`` and ``projected`` are tier ranks (``at_risk``: projected below rank), ``metric``, ``delta_to_next`` (-1 at the top
    tier) and ``delta_to_keep`` are in the metric's unit, ``since`` and ``period_end`` are
    int64 nanoseconds (:data:`NAT` when unknown).
    """
    top = len(program.tier_names) - 1
    rank = a["rank"].astype(np.int64)
    metric = program.metric_from_units(a["metric_units"])
    thr = program.threshold_metric
    has_next = rank < top
    nxt = np.minimum(rank + 1, top)
    keep_base = program.metric_from_units(np.maximum(a["keep_base"], 0))
    projected = np.minimum(a["projected"], top).astype(np.int64)
    return {
        "rank": rank,
        "metric": metric,
        "delta_to_next": np.where(has_next, np.maximum(thr[nxt] - metric, 0), -1),
        "delta_to_keep": np.where(a["keep_base"] >= 0, np.maximum(thr[rank] - keep_base, 0), 0).astype(np.int64),
        "projected": projected,
        "at_risk": projected < rank,
        "since": a["since"].astype(np.int64),
        "period_end": a["period_end"].astype(np.int64),
    }


def _columns(program: Program, a: dict[str, np.ndarray]) -> dict[str, object]:
    """Turn engine arrays (ranks, units, ns) into the public columns."""
    names = np.asarray(program.tier_names, dtype=object)
    v = tier_numbers(program, a)
    rank, has_next = v["rank"], v["delta_to_next"] >= 0
    return {
        "tier": names[rank],
        "tier_rank": rank,
        "since": pd.to_datetime(v["since"].view("datetime64[ns]")),
        "metric": v["metric"],
        "next_tier": np.where(has_next, names[np.minimum(rank + 1, len(names) - 1)], None),
        "delta_to_next": _masked(v["delta_to_next"], has_next),
        "delta_to_keep": v["delta_to_keep"],
        "period_end": pd.to_datetime(v["period_end"].view("datetime64[ns]")),
        "projected_tier": names[v["projected"]],
        "at_risk": v["at_risk"],
    }


def _masked(values: np.ndarray, valid: np.ndarray) -> pd.arrays.IntegerArray:
    out = pd.array(values.astype(np.int64), dtype="Int64")
    out[~valid] = pd.NA
    return out


class _Events:
    """Per-member sorted, de-duplicated purchase events with a cumulative sum and a seeker."""

    def __init__(self, codes: np.ndarray, times: np.ndarray, units: np.ndarray, n: int, visits: bool):
        order = np.lexsort((times, codes))
        codes, times, units = codes[order], times[order], units[order]
        if len(codes):
            new = np.empty(len(codes), dtype=bool)
            new[0] = True
            new[1:] = (codes[1:] != codes[:-1]) | (times[1:] != times[:-1])
            starts = np.flatnonzero(new)
            units = np.ones(len(starts), np.int64) if visits else np.add.reduceat(units, starts)
            codes, times = codes[starts], times[starts]
        self.code, self.t, self.u = codes, times, units
        self.cum0 = np.concatenate(([0], np.cumsum(units))).astype(np.int64)
        self.utimes = np.unique(times)
        self.k = len(self.utimes) + 1
        self.key = codes * self.k + np.searchsorted(self.utimes, times)
        members = np.arange(n, dtype=np.int64)
        self.start = np.searchsorted(codes, members, "left")
        self.end = np.searchsorted(codes, members, "right")

    def seek(self, m: np.ndarray, bound: np.ndarray | int, strict: bool = False) -> np.ndarray:
        """Index of member ``m``'s first event at or after ``bound`` (after, when strict)."""
        r = np.searchsorted(self.utimes, bound, "right" if strict else "left")
        return np.searchsorted(self.key, m * self.k + r, "left")

    def window_sum(self, m: np.ndarray, at: np.ndarray | int, width: int) -> np.ndarray:
        """Units of member ``m`` in ``[at - width, at)``."""
        return self.cum0[self.seek(m, at)] - self.cum0[self.seek(m, np.asarray(at) - width)]

    def last_where(self, cond: np.ndarray, n: int, first: bool = False) -> np.ndarray:
        """Per member, the index of the last (or first) event where ``cond`` holds, else -1."""
        idx = np.flatnonzero(cond)
        if first:
            out = np.full(n, len(self.t), dtype=np.int64)
            np.minimum.at(out, self.code[idx], idx)
            return np.where(out == len(self.t), -1, out)
        out = np.full(n, -1, dtype=np.int64)
        np.maximum.at(out, self.code[idx], idx)
        return out

    def time_at(self, idx: np.ndarray, shift: int = 0) -> np.ndarray:
        """``t[idx] + shift`` where ``idx >= 0``, NaT elsewhere (safe when there are no events)."""
        if not len(self.t):
            return np.full(len(idx), NAT, dtype=np.int64)
        return np.where(idx >= 0, self.t[np.maximum(idx, 0)] + shift, NAT)

    def cross_up(self, m: np.ndarray, start: np.ndarray, threshold: np.ndarray) -> np.ndarray:
        """Time of the event at which member ``m``'s running sum from index ``start`` reaches
        ``threshold`` (> 0, and reached by the member's last event)."""
        if not len(self.t):
            return np.full(len(m), NAT, dtype=np.int64)
        j = np.searchsorted(self.cum0, self.cum0[start] + threshold, "left")
        return self.t[np.clip(j - 1, 0, len(self.t) - 1)]


def tier_arrays(program: Program, codes: np.ndarray, times: np.ndarray, amounts: np.ndarray, n: int,
                 as_of: int, joined: np.ndarray | None) -> dict[str, np.ndarray]:
    """The engine: ranks, since, metric, keep base, period end and projection as arrays."""
    before = times < as_of
    visits = program.counts_visits
    ev = _Events(codes[before], times[before], np.maximum(amounts[before], 0), n, visits)
    members = np.arange(n, dtype=np.int64)
    has_events = ev.end > ev.start
    first = np.full(n, NAT, dtype=np.int64)
    first[has_events] = ev.t[ev.start[has_events]]
    base_since = first if joined is None else np.where(joined != NAT, joined, first)
    thr = program.threshold_units
    window = program.tier_policy.window
    if window.type == "rolling":
        return _rolling(program, ev, members, as_of, window.days * DAY_NS, base_since, thr)  # type: ignore[operator]
    if window.type == "calendar_year":
        return _calendar(program, ev, members, as_of, base_since, thr)
    total = ev.cum0[ev.end] - ev.cum0[ev.start]
    rank = _rank(thr, total)
    since = np.where(rank > 0, ev.cross_up(members, ev.start, thr[rank]), base_since)
    return {"rank": rank, "since": since, "metric_units": total, "keep_base": np.full(n, -1),
            "period_end": np.full(n, NAT), "projected": rank}


def _rank(thr: np.ndarray, units: np.ndarray) -> np.ndarray:
    return np.searchsorted(thr, units, "right").astype(np.int64) - 1


def _rolling(program: Program, ev: _Events, m: np.ndarray, as_of: int, width: int,
             base_since: np.ndarray, thr: np.ndarray) -> dict[str, np.ndarray]:
    n, top = len(m), len(thr) - 1
    policy = program.tier_policy.downgrade.policy
    grace = program.tier_policy.downgrade.grace_days * DAY_NS
    now = ev.window_sum(m, as_of, width)
    j = np.arange(len(ev.t))
    peak = ev.cum0[j + 1] - ev.cum0[ev.seek(ev.code, ev.t - width, strict=True)]  # (t-W, t]
    before = ev.cum0[j] - ev.cum0[ev.seek(ev.code, ev.t - width)]  # [t-W, t)
    if policy == "none":
        best = np.zeros(n, dtype=np.int64)
        np.maximum.at(best, ev.code, peak)
    else:
        best = ev.window_sum(m, as_of - grace, width) if grace else now.copy()
        recent = ev.t >= as_of - grace
        np.maximum.at(best, ev.code[recent], peak[recent])
    rank = _rank(thr, best)
    t_k = thr[rank][ev.code]
    up = ev.last_where((before < t_k) & (peak >= t_k) & (rank[ev.code] > 0), n, first=policy == "none")
    since = ev.time_at(up)
    period_end = np.full(n, NAT)
    keep_base = np.full(n, -1, dtype=np.int64)
    projected = rank.copy()
    if policy == "none":
        return {"rank": rank, "since": np.where(rank > 0, since, base_since), "metric_units": now,
                "keep_base": keep_base, "period_end": period_end, "projected": projected}
    expiry = ev.t + width  # an event leaves the window just after this moment
    leaving = ev.cum0[ev.seek(ev.code, expiry)] - ev.cum0[j]  # [t, t+W)
    after = ev.cum0[ev.seek(ev.code, expiry, strict=True)] - ev.cum0[j + 1]  # (t, t+W]
    t_next = thr[np.minimum(rank + 1, top)][ev.code]
    down_next = ev.last_where((leaving >= t_next) & (after < t_next) & (expiry + grace < as_of)
                              & (rank[ev.code] < top), n)
    demoted = ev.time_at(down_next, width + grace)
    since = np.where(rank > 0, np.maximum(since, demoted), np.where(down_next >= 0, demoted, base_since))
    # period end and delta to keep, for members above the entry tier
    t_own = thr[rank]
    holding = (rank > 0) & (now >= t_own)
    a = ev.seek(m, as_of - width)
    jj = np.searchsorted(ev.cum0, ev.cum0[a] + now - t_own, "right")
    lapse = (ev.t[np.clip(jj - 1, 0, len(ev.t) - 1)] + width) if len(ev.t) else np.zeros(n, np.int64)
    remaining = now - ev.cum0[np.minimum(jj, len(ev.cum0) - 1)] + ev.cum0[a]
    in_grace = (rank > 0) & ~holding
    down_own = ev.last_where((leaving >= t_own[ev.code]) & (after < t_own[ev.code]) & (expiry <= as_of), n)
    grace_end = np.where(down_own >= 0, ev.time_at(down_own, width + grace), as_of)
    period_end = np.where(holding, lapse + grace, np.where(in_grace, grace_end, NAT))
    keep_base = np.where(holding, remaining, np.where(in_grace, now, -1))
    pace = now / width
    horizon = (np.where(rank > 0, period_end, as_of) - as_of).astype(np.float64)
    projected = np.where(rank > 0, _rank(thr, np.maximum(keep_base, 0) + pace * horizon), rank)
    return {"rank": rank, "since": since, "metric_units": now, "keep_base": keep_base,
            "period_end": period_end, "projected": projected}


def _year_start(year: int) -> int:
    return int(np.datetime64(f"{year:04d}-01-01", "ns").view(np.int64))


def _downgrade(policy: str, status: np.ndarray, earned: np.ndarray) -> np.ndarray:
    """The tier carried into the next period from ``status`` after a period that earned ``earned``."""
    if policy == "none":
        return status
    if policy == "one_down":
        return np.where(earned >= status, status, np.maximum(earned, status - 1))
    return np.where(earned >= status, status, earned)


def _calendar(program: Program, ev: _Events, m: np.ndarray, as_of: int, base_since: np.ndarray,
              thr: np.ndarray) -> dict[str, np.ndarray]:
    n = len(m)
    policy = program.tier_policy.downgrade.policy
    grace = program.tier_policy.downgrade.grace_days * DAY_NS
    year = int(pd.Timestamp(as_of).year)
    ev_year = ev.t.view("datetime64[ns]").astype("datetime64[Y]").astype(np.int64) + 1970
    y0 = int(min(ev_year.min(), year)) if len(ev_year) else year
    ny = year - y0 + 1
    flat = np.zeros(n * ny, dtype=np.int64)
    np.add.at(flat, ev.code * ny + (ev_year - y0), ev.u)
    per_year = flat.reshape(n, ny)
    carry = np.zeros(n, dtype=np.int64)
    end_prev = np.zeros(n, dtype=np.int64)
    since_prev = base_since.copy()
    for yi in range(ny - 1):
        start = _year_start(y0 + yi)
        earned = _rank(thr, per_year[:, yi])
        status_end = np.maximum(earned, carry)
        since_carry = np.where(carry == end_prev, since_prev, start + grace)
        up = earned > carry
        cross = ev.cross_up(m, ev.seek(m, start), thr[earned])
        since_prev = np.where(up, cross, since_carry)
        carry, end_prev = _downgrade(policy, status_end, earned), status_end
    start, end = _year_start(year), _year_start(year + 1) - 1
    metric = per_year[:, -1]
    earned = _rank(thr, metric)
    in_grace = (as_of < start + grace) & (end_prev > np.maximum(carry, earned))
    floor = np.where(in_grace, end_prev, carry)
    rank = np.maximum(earned, floor)
    since_carry = np.where(carry == end_prev, since_prev, start + grace)
    since_floor = np.where(in_grace, since_prev, since_carry)
    cross = ev.cross_up(m, ev.seek(m, start), thr[earned])
    since = np.where(earned > floor, cross, since_floor)
    period_end = np.where(in_grace, start + grace - 1, end)
    keep_base = np.where((rank > 0) & (policy != "none"), metric, -1)
    pace = ev.window_sum(m, as_of, 365 * DAY_NS) / (365 * DAY_NS)
    reached = _rank(thr, metric + pace * (period_end - as_of))
    projected = np.where(in_grace, np.maximum(reached, carry),
                         _downgrade(policy, np.maximum(rank, reached), reached))
    return {"rank": rank, "since": since, "metric_units": metric, "keep_base": keep_base,
            "period_end": period_end, "projected": projected}
