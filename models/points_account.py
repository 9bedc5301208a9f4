"""The points ledger's atomic rule, in pure Python: the in-process store's twin of Redis's Lua script
(:mod:`runtime.stores.points_lua`), and the replay that rebuilds accounts and point-in-time features.

One call applies a member's postings (:class:`models.points.Posting`, as plain dicts) to their
account, in order, all inside one atomic step (the Lua script in Redis; a lock in the
in-process store). The behavioural suite (``tests/test_points_ledger.py``) runs against both and
compares what they return and store, so the two stay the same rule.

The account, as stored (Redis hash ``ofr:p:<member>``; see docs/redis.md):

* ``l<available_at>:<expires_at>`` a **lot**: whole points that become spendable at
  ``available_at`` (0: now) and expire at ``expires_at`` (0: never);
* ``r`` the fraction of a point earned but not yet whole (ledger units, 0 to 9,999);
* ``d`` debt: points a refund took back after they were spent (repaid by the next earns);
* ``n`` the last entry's sequence number; ``E``, ``B``, ``X``, ``A``, ``V`` lifetime points
  earned, burned, expired, adjusted (signed) and reversed.

The steps of a call at ``now``:

1. **expire**: every lot whose ``expires_at`` is at or before ``now`` leaves the account with
   one ``expire`` entry (exact, and lazy: nothing runs until the member's next operation);
2. pending lots whose ``available_at`` has come are merged into the available lot of their
   expiry;
3. each posting, unless its cause was applied before (``duplicate``: nothing changes):
   ``earn`` adds units (whole points to the lot, first repaying debt), ``burn`` takes whole
   points from the available lots, soonest expiring first, and is ``refused`` when they do
   not cover it (the balance never goes negative by a burn), ``adjust`` does either,
   ``reverse`` takes back a refund's share of an earlier earn (from its own lot first, then
   any, then as debt);
4. expire again (points earned already past their expiry leave at once).

Each applied posting and each expiry is an entry, kept in the member's recent entries and
returned, so the caller writes it to the durable log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

UNIT = 10_000
TOTALS = ("E", "B", "X", "A", "V")


def _lots(account: Mapping[str, Any]) -> list[list[int]]:
    """[available_at, expires_at, points] of every lot, debit order: soonest expiry first."""
    out = []
    for name, value in account.items():
        if name.startswith("l"):
            avail, exp = name[1:].split(":")
            out.append([int(avail), int(exp), int(value)])
    out.sort(key=lambda lot: (lot[1] == 0, lot[1], lot[0]))
    return out


def _lot_name(avail: int, exp: int) -> str:
    return f"l{avail}:{exp}"


def _num(account: Mapping[str, Any], name: str) -> int:
    return int(account.get(name, 0) or 0)


def _floor_div(a: int, b: int) -> int:
    return a // b


class Account:
    """One member's account while a call runs (a copy of the hash, written back at the end)."""

    def __init__(self, fields: Mapping[str, Any], now: int):
        self.now = now
        self.f: dict[str, int] = {k: int(v) for k, v in fields.items()}

    def add(self, name: str, delta: int) -> None:
        self.f[name] = self.f.get(name, 0) + delta

    def lots(self) -> list[list[int]]:
        return _lots(self.f)

    def put_lot(self, avail: int, exp: int, points: int) -> None:
        name = _lot_name(avail, exp)
        value = self.f.get(name, 0) + points
        if value > 0:
            self.f[name] = value
        else:
            self.f.pop(name, None)

    def balance(self) -> int:
        return sum(p for a, _, p in self.lots() if a <= self.now) - self.f.get("d", 0)

    def pending(self) -> int:
        return sum(p for a, _, p in self.lots() if a > self.now)

    def take(self, points: int, first: str | None, pending_too: bool) -> int:
        """Take up to ``points`` from the lots (``first`` before the others); returns what is left."""
        order = self.lots()
        if first is not None:
            order.sort(key=lambda lot: _lot_name(lot[0], lot[1]) != first)
        for avail, exp, have in order:
            if points <= 0:
                break
            if avail > self.now and not pending_too:
                continue
            n = min(have, points)
            self.put_lot(avail, exp, -n)
            points -= n
        return points


def post(fields: Mapping[str, Any], causes: MutableMapping[str, str], member_id: str,
         postings: Sequence[Mapping[str, Any]], now: int) -> tuple[dict[str, int], dict[str, Any]]:
    """Apply ``postings`` at ``now`` (see the module docstring).

    ``fields`` is the stored account, ``causes`` the member's applied causes (cause -> JSON
    record), updated in place. Returns the new account fields and the reply: per posting its
    ``status`` (applied, duplicate, refused), the new ``entries`` (oldest first) and the account
    as it now stands.
    """
    acc = Account(fields, now)
    entries: list[dict[str, Any]] = []

    def entry(kind: str, points: int, units: int, cause: str, ts: int, x: int, a: int,
              meta: Mapping[str, Any]) -> dict[str, Any]:
        acc.add("n", 1)
        e = {"seq": acc.f["n"], "member_id": member_id, "kind": kind, "points": points, "units": units,
             "cause": cause, "ts": ts, "at": now, "balance": acc.balance(), "pending": acc.pending(),
             "x": x, "a": a, "m": dict(meta)}
        entries.append(e)
        return e

    def expire() -> None:
        for avail, exp, have in acc.lots():
            if exp != 0 and exp <= now:
                acc.put_lot(avail, exp, -have)
                acc.add("X", have)
                entry("expire", -have, -have * UNIT, f"expire:{avail}:{exp}", exp, exp, avail, {})

    def debit(points: int, first: str | None) -> None:
        left = acc.take(points, first, pending_too=True)
        if left > 0:
            acc.add("d", left)

    expire()
    for avail, exp, have in acc.lots():
        if 0 < avail <= now:
            acc.put_lot(avail, exp, -have)
            acc.put_lot(0, exp, have)
    results: list[dict[str, Any]] = []
    for p in postings:
        cause, kind, units, ts = p["c"], p["k"], int(p["u"]), int(p["ts"])
        x, a, meta = int(p.get("x", 0)), int(p.get("a", 0)), p.get("m", {})
        if cause in causes:
            results.append({"cause": cause, "status": "duplicate", "seq": json.loads(causes[cause])["s"]})
            continue
        record: dict[str, Any] = {}
        if kind == "earn" or (kind == "adjust" and units > 0):
            total = acc.f.get("r", 0) + units if kind == "earn" else units
            points = _floor_div(total, UNIT)
            if kind == "earn":
                acc.f["r"] = total - points * UNIT
            repay = min(acc.f.get("d", 0), points)
            acc.add("d", -repay)
            acc.put_lot(a if a > now else 0, x, points - repay)
            acc.add("E" if kind == "earn" else "A", points)
            record = {"u": units, "l": _lot_name(a if a > now else 0, x), "a": int(p.get("amt", 0)), "ra": 0, "ru": 0}
            e = entry(kind, points, units, cause, ts, x, a, meta)
        elif kind in ("burn", "adjust"):
            points = -units // UNIT
            if points > acc.balance():
                results.append({"cause": cause, "status": "refused", "balance": acc.balance()})
                continue
            acc.take(points, None, pending_too=False)
            if kind == "burn":
                acc.add("B", points)
            else:
                acc.add("A", -points)
            e = entry(kind, -points, units, cause, ts, 0, 0, meta)
        else:  # reverse
            back = -units
            first = None
            of = p.get("of")
            if of is not None:
                orig = json.loads(causes[of]) if of in causes else None
                back = 0
                if orig is not None:
                    refunded = min(orig["ra"] + int(p.get("amt", 0)), orig["a"]) if orig["a"] > 0 else orig["a"]
                    target = orig["u"] if orig["a"] <= 0 else (orig["u"] // orig["a"]) * refunded + \
                        ((orig["u"] % orig["a"]) * refunded) // orig["a"]
                    back = target - orig["ru"]
                    orig["ra"], orig["ru"] = refunded, target
                    causes[of] = json.dumps(orig, separators=(",", ":"))
                    first = orig["l"]
            total = acc.f.get("r", 0) - back
            points = -_floor_div(total, UNIT)
            acc.f["r"] = total + points * UNIT
            debit(points, first)
            acc.add("V", points)
            e = entry("reverse", -points, -back, cause, ts, 0, 0, meta)
        record["s"] = e["seq"]
        causes[cause] = json.dumps(record, separators=(",", ":"))
        results.append({"cause": cause, "status": "applied", "seq": e["seq"], "points": e["points"]})
    expire()
    reply = {"results": results, "entries": entries, **view(acc.f, now)}
    return acc.f, reply


def subscribe(fields: dict[str, int], causes: MutableMapping[str, str], plan: str, term: int, now: int,
              cause: str) -> dict[str, Any]:
    """Start or renew ``plan`` in the account ``fields`` (in place): SUBSCRIBE's twin."""
    if cause in causes:
        return {"status": "duplicate", "expires_at": json.loads(causes[cause])["x"]}
    current = int(fields.get("P" + plan, 0))
    status, start = ("renewed", current) if current > now else ("started", now)
    fields["P" + plan] = start + term
    causes[cause] = json.dumps({"s": 0, "x": start + term}, separators=(",", ":"))
    return {"status": status, "expires_at": start + term}


def active_plans(fields: Mapping[str, Any], now: int) -> frozenset[str]:
    """The plans whose end (``P<plan>`` fields) is after ``now``."""
    return frozenset(name[1:] for name, value in fields.items() if name.startswith("P") and int(value) > now)


def view_at(fields: Mapping[str, Any], member_id: str, now: int) -> dict[str, Any]:
    """A stored account as it stands at ``now``: due expiry applied to a copy (nothing is written)."""
    expired, _ = post(dict(fields), {}, member_id, [], now)
    return view(expired, now)


def view(fields: Mapping[str, Any], now: int) -> dict[str, Any]:
    """The account as the balance endpoint shows it: balance, pending, lots, fraction, debt, totals."""
    acc = Account(fields, now)
    return {"balance": acc.balance(), "pending": acc.pending(), "fraction": acc.f.get("r", 0),
            "debt": acc.f.get("d", 0), "lots": [lot for lot in acc.lots()],
            "totals": {name: acc.f.get(name, 0) for name in TOTALS}}
