"""Targeting rules compiled to array operations over a batch of members.

:class:`RuleSet` compiles every rule of a catalog once, when the catalog is built:

* comparisons are deduplicated across all rules by (field, operator, literal), so each
  distinct test runs once per call, as one numpy operation over all members;
* rules are deduplicated by *shape* (the same tree over the same tests, whatever their
  YAML paths), so the 300 catalog offers of a kind sharing ``offer_defaults`` rules cost
  one evaluation, not 300.

:meth:`RuleSet.evaluate` then reads each field once into an array (member fields from
the :class:`~models.member.MemberContext` list, time fields from the decision moment,
context fields from the request: one value broadcast over the members), runs the tests,
and combines them shape by shape with ``&``, ``|`` and ``~``: no member-by-member
interpretation of the tree. For each (member, rule) it also gives the *failing clause*:
the first false child of an ``all`` (followed down), or the ``any``/``not``/comparison
that is false itself. Decisions report it with ``RULE_NOT_MET``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.member import MemberContext
from models.request_context import EMPTY_CONTEXT, RequestContext
from models.rules import BoolNode, Compare, Node, describe, walk
from models.units import DAY_NS

#: A shape: ("leaf", test index) or (op, child shapes...).
Shape = tuple[object, ...]


@dataclass(frozen=True)
class _Values:
    """One field over the members: numbers (float64, NaN missing), strings (with a presence
    mask), sets (tuple of frozensets, None missing), or one value all members share."""

    kind: str  # "num", "str", "set" or "one"
    data: Any
    present: np.ndarray


class RuleSet:
    """Every offer's rules, compiled (see the module docstring). Offer ``p`` passes when its
    shape ``shape_of[p]`` evaluates true (-1: the offer has no rule)."""

    def __init__(self, rules_by_offer: Sequence[tuple[Node, ...]]):
        tests: dict[tuple[object, ...], int] = {}
        self.tests: list[Compare] = []
        shapes: dict[Shape, int] = {}
        self.shapes: list[Shape] = []
        self.shape_of = np.full(len(rules_by_offer), -1, dtype=np.int64)
        #: per offer, its clauses' descriptions in shape pre-order (for the failing clause)
        self.clauses: list[tuple[str, ...]] = []
        for p, rules in enumerate(rules_by_offer):
            if not rules:
                self.clauses.append(())
                continue
            root: Node = rules[0] if len(rules) == 1 else BoolNode("all", rules, (), "")
            shape = self._shape(root, tests)
            if shape not in shapes:
                shapes[shape] = len(self.shapes)
                self.shapes.append(shape)
            self.shape_of[p] = shapes[shape]
            self.clauses.append(tuple(describe(n) if n.path else "" for n in walk(root)))
        #: each field the tests read, with its type
        self.fields = {t.field: t.type for t in self.tests}

    def __bool__(self) -> bool:
        """Whether any offer has a rule."""
        return bool(self.shapes)

    def _shape(self, node: Node, tests: dict[tuple[object, ...], int]) -> Shape:
        """``node``'s shape, registering its comparisons (deduplicated) in :attr:`tests`."""
        if isinstance(node, Compare):
            if node.key not in tests:
                tests[node.key] = len(self.tests)
                self.tests.append(node)
            return ("leaf", tests[node.key])
        return (node.op, *(self._shape(c, tests) for c in node.children))

    def evaluate(self, members: Sequence[MemberContext], as_of: pd.Timestamp, thresholds: np.ndarray,
                 request: RequestContext | None) -> tuple[np.ndarray, np.ndarray]:
        """(ok, failing) for every shape and member, each (shapes x members): ``ok`` whether the
        rule holds, ``failing`` the pre-order index of its failing clause (-1 where it holds).

        ``thresholds`` are the tier thresholds in metric units (for ``member.tier_progress``).
        The failing clauses are only worked out for the shapes some member fails.
        """
        m = len(members)
        ctx = request or EMPTY_CONTEXT
        values = {f: read_field(f, ftype, members, as_of, thresholds, ctx) for f, ftype in self.fields.items()}
        yes, no = np.ones(m, dtype=bool), np.zeros(m, dtype=bool)  # shared, never written to
        results = [(yes if _scalar_test(t, v.data) else no) if (v := values[t.field]).kind == "one"
                   else _test(t, v) for t in self.tests]
        ok = np.empty((len(self.shapes), m), dtype=bool)
        failing = np.full((len(self.shapes), m), -1, dtype=np.int64)
        for s, shape in enumerate(self.shapes):
            ok[s] = _holds(shape, results)
            if not ok[s].all():
                failing[s] = _combine(shape, results, 0)[1]
        return ok, failing


def _holds(shape: Shape, results: list[np.ndarray]) -> np.ndarray:
    """Whether ``shape`` holds, per member."""
    head = shape[0]
    if head == "leaf":
        return results[int(shape[1])]  # type: ignore[call-overload]
    parts = [_holds(child, results) for child in shape[1:]]  # type: ignore[arg-type]
    if head == "not":
        return ~parts[0]
    if len(parts) == 1:
        return parts[0]
    return (np.logical_and if head == "all" else np.logical_or).reduce(parts)


def _combine(shape: Shape, results: list[np.ndarray], index: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(holds, failing pre-order index, next index) of ``shape`` whose root has pre-order ``index``."""
    head = shape[0]
    if head == "leaf":
        ok = results[int(shape[1])]  # type: ignore[call-overload]
        return ok, np.where(ok, -1, index), index + 1
    nxt = index + 1
    parts = []
    for child in shape[1:]:
        c_ok, c_fail, nxt = _combine(child, results, nxt)  # type: ignore[arg-type]
        parts.append((c_ok, c_fail))
    if head == "all":
        ok = parts[0][0].copy()
        failing = parts[0][1].copy()
        for c_ok, c_fail in parts[1:]:
            np.copyto(failing, c_fail, where=ok & ~c_ok)
            ok &= c_ok
        return ok, failing, nxt
    ok = ~parts[0][0] if head == "not" else np.logical_or.reduce([p[0] for p in parts])
    return ok, np.where(ok, -1, index), nxt


_COMPARE = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "lte": operator.le, "gt": operator.gt,
            "gte": operator.ge}


def _scalar_test(t: Compare, value: Any) -> bool:
    """One comparison on a value every member shares (time, request context); None is missing."""
    if t.op == "exists":
        return (value is not None) == t.value
    if value is None:
        return False
    op, x = t.op, t.value
    if op == "contains":
        return not frozenset(x).isdisjoint(value)
    if op in ("in", "not_in"):
        return (value in x) == (op == "in")
    if op == "between":
        return bool(x[0] <= value <= x[1])
    return bool(_COMPARE[op](value, x))


def _test(t: Compare, v: _Values) -> np.ndarray:
    """One comparison over the members' values: false where the value is missing."""
    if t.op == "exists":
        return v.present if t.value else ~v.present
    if v.kind == "set":
        wanted = frozenset(t.value)
        sets: tuple[frozenset[str] | None, ...] = v.data
        return np.fromiter((s is not None and not wanted.isdisjoint(s) for s in sets), dtype=bool, count=len(sets))
    a, op, x = v.data, t.op, t.value
    if op in ("in", "not_in"):
        out = (a[:, None] == np.asarray(x)[None, :]).any(axis=1)
        if op == "not_in":
            out = ~out
    elif op == "between":
        out = (a >= x[0]) & (a <= x[1])
    else:
        out = _COMPARE[op](a, x)
    return np.asarray(out, dtype=bool) & v.present


def _num(values: Sequence[float | None] | np.ndarray) -> _Values:
    """Numbers per member, NaN where missing."""
    data = np.asarray(values, dtype=np.float64)
    return _Values("num", data, ~np.isnan(data))


def _one(value: Any) -> _Values:
    """A value every member shares (None: missing), tested once in Python and broadcast."""
    return _Values("one", value, np.empty(0, dtype=bool))


def _strs(values: Sequence[str | None]) -> _Values:
    """Strings per member, with a presence mask (None: missing)."""
    return _Values("str", np.array([v or "" for v in values], dtype=str),
                   np.array([v is not None for v in values], dtype=bool))


def _as_text(value: Any) -> str | None:
    """An attribute value as text: a CSV column of digits arrives as floats (1234.0 -> "1234")."""
    if value is None or isinstance(value, str):
        return value
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


def read_field(name: str, ftype: str, members: Sequence[MemberContext], as_of: pd.Timestamp,
               thresholds: np.ndarray, request: RequestContext) -> _Values:
    """Field ``name`` (of type ``ftype``) over ``members``: member fields per member, time and
    context fields as one value (broadcast by the tests). ``as_of`` is the naive local decision time."""
    if name.startswith("time."):
        part = name.removeprefix("time.")
        value = (as_of.day_of_week if part == "day_of_week" else as_of.hour if part == "hour" else as_of.day
                 if part == "day" else as_of.month if part == "month" else as_of.date().toordinal())
        return _one(float(value))
    if name.startswith("context."):
        return _context_field(name.removeprefix("context."), ftype, request)
    return _member_field(name.removeprefix("member."), ftype, members, as_of, thresholds)


def _context_field(part: str, ftype: str, ctx: RequestContext) -> _Values:
    """A ``context.*`` field: one value for the whole call (None where the request did not say)."""
    lines = ctx.cart_lines
    if part == "cart.total":
        total = ctx.cart_total
        return _one(None if total is None else float(total))
    if part in ("cart.quantity", "cart.lines"):
        return _one(None if lines is None else float(sum(x.quantity for x in lines)) if part == "cart.quantity"
                    else float(len(lines)))
    if part in ("cart.product_ids", "cart.categories"):
        if lines is None:
            return _one(None)
        return _one(frozenset(x.product_id if part == "cart.product_ids" else x.category or "" for x in lines) - {""})
    if part in ("store_id", "device", "location"):
        return _one(getattr(ctx, part))
    value = ctx.value(part)  # a declared key, validated against its type by the HTTP layer
    if ftype == "string":
        return _one(_as_text(value))
    if ftype == "boolean":
        return _one(value if isinstance(value, bool) else None)
    return _one(None if value is None or isinstance(value, str | bool) else float(value))


def _member_field(part: str, ftype: str, members: Sequence[MemberContext], as_of: pd.Timestamp,
                  thresholds: np.ndarray) -> _Values:
    """A ``member.*`` field over the members, one array (sets: one tuple) for the whole batch."""
    tiers = [m.tier for m in members]
    if part == "tier" or part == "tier_rank":
        return _num([np.nan if t is None else t.tier_rank for t in tiers])
    if part == "tier_progress":
        return _num([np.nan if t is None else 1.0 if t.next_tier is None
                     else min(t.metric / max(int(thresholds[t.tier_rank + 1]), 1), 1.0) for t in tiers])
    if part == "tier_at_risk":
        return _num([np.nan if t is None else float(t.at_risk) for t in tiers])
    if part == "segment":
        return _strs([m.segment for m in members])
    if part == "birth_month":
        return _num([np.nan if m.birth_month is None else m.birth_month for m in members])
    if part == "days_since_join":
        return _num([np.nan if m.joined_at is None or pd.isna(m.joined_at)
                     else (as_of - pd.Timestamp(m.joined_at)).value / DAY_NS for m in members])
    if part == "recent_spend":
        return _num([m.recent_spend_minor for m in members])
    if part == "typical_basket":
        return _num([np.nan if m.typical_basket_minor is None else m.typical_basket_minor for m in members])
    if part == "points_balance":
        return _num([np.nan if m.points_balance is None else m.points_balance for m in members])
    if part in ("plans", "channels", "bought_products", "bought_categories"):
        sets = tuple(getattr(m, part) for m in members)
        return _Values("set", sets, np.array([s is not None for s in sets], dtype=bool))
    # a declared attribute column: numbers (and booleans, stored as 1.0/0.0) or strings
    raw = [m.attribute(part) for m in members]
    if ftype == "string":
        return _strs([_as_text(v) for v in raw])
    return _num([np.nan if v is None or isinstance(v, str) else float(v) for v in raw])
