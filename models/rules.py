"""Targeting rules as expressions: parsing and validating the ``rule:`` trees of a program.

A rule is a boolean tree written in YAML::

    rule:
      all:
        - {field: context.device, eq: app}
        - any:
            - {field: context.cart.total, gte: 20}
            - {field: member.tier, gte: Gold}
        - not: {field: time.day_of_week, in: [sat, sun]}

``all`` and ``any`` take a non-empty list of rules, ``not`` one rule, and a comparison is
a mapping with ``field`` and exactly one operator (:data:`models.targeting.OPERATORS`:
``eq``, ``ne``, ``in``, ``not_in``, ``lt``, ``lte``, ``gt``, ``gte``, ``between``,
``contains``, ``exists``). The field's type decides the operators and how the literal is
read (:mod:`models.targeting`). A comparison on a missing value (no tier, no cart, an
attribute the member lacks) is false, whatever the operator, except ``exists: false``.

:func:`parse_rule` turns the YAML data into frozen :class:`Compare` and :class:`BoolNode`
trees whose every node knows its YAML path and a readable text, or returns each problem
as (path, reason); :func:`rule_problems` checks every rule of a program at load.
:mod:`models.rule_eval` compiles the trees to array operations.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.targeting import ALL_OPERATORS, OPERATORS, WEEKDAYS, Targeting, targeting_problems
from models.yamlnodes import format_path

if TYPE_CHECKING:
    from models.program import Program

Path = tuple[str | int, ...]
Problem = tuple[Path, str]
#: Deepest nesting of all/any/not a rule may have.
MAX_DEPTH = 12
_TEXT_LIMIT = 160


@dataclass(frozen=True)
class Compare:
    """A comparison leaf: ``field`` ``op`` ``value``, the value normalised for evaluation.

    Numbers, money (minor units), tiers (ranks), weekdays (0 = Monday) and dates (proleptic
    ordinals) are floats; strings stay strings; ``in``/``not_in``/``contains`` take a tuple,
    ``between`` a (low, high) pair, ``exists`` a bool.
    """

    field: str
    type: str
    op: str
    value: Any
    path: Path
    text: str

    @property
    def key(self) -> tuple[str, str, Any]:
        """What makes two comparisons the same test (their paths aside)."""
        return (self.field, self.op, self.value)


@dataclass(frozen=True)
class BoolNode:
    """``all``, ``any`` or ``not`` over child rules (``not`` has exactly one)."""

    op: str
    children: tuple[Node, ...]
    path: Path
    text: str


Node = Compare | BoolNode


@dataclass(frozen=True)
class Literals:
    """What reading a literal needs from the program: money in minor units and tier ranks."""

    to_minor: Callable[[float], int]
    tier_rank: Mapping[str, int]


def parse_rule(data: Any, path: Path, targeting: Targeting, literals: Literals) -> tuple[Node | None, list[Problem]]:
    """Parse and validate one rule at YAML ``path``; (tree, []) or (None, problems)."""
    problems: list[Problem] = []
    node = _node(data, path, targeting, literals, problems, 0)
    return (node if not problems else None), problems


def _node(data: Any, path: Path, tg: Targeting, lit: Literals, problems: list[Problem], depth: int) -> Node | None:
    """One rule at ``path``: a boolean node or a comparison (problems recorded, None on any)."""
    if not isinstance(data, dict) or not data:
        problems.append((path, "a rule is a mapping: all, any, not, or a comparison {field: ..., <operator>: ...}"))
        return None
    if depth > MAX_DEPTH:
        problems.append((path, f"rules nest at most {MAX_DEPTH} levels deep"))
        return None
    bool_keys = [k for k in ("all", "any", "not") if k in data]
    if bool_keys:
        if len(data) != 1:
            other = sorted(str(k) for k in data if k != bool_keys[0])
            problems.append((path, f"{bool_keys[0]!r} must be alone in its mapping (also found {', '.join(other)}); "
                                   "nest the others inside it"))
            return None
        op = bool_keys[0]
        return _bool(op, data[op], (*path, op), tg, lit, problems, depth)
    return _compare(data, path, tg, lit, problems)


def _bool(op: str, items: Any, path: Path, tg: Targeting, lit: Literals, problems: list[Problem],
          depth: int) -> Node | None:
    """``all``/``any`` over a non-empty list, or ``not`` over one rule."""
    if op == "not":
        child = _node(items, path, tg, lit, problems, depth + 1)
        return None if child is None else BoolNode("not", (child,), path, _clip(f"not ({child.text})"))
    if not isinstance(items, list) or not items:
        problems.append((path, f"{op!r} takes a non-empty list of rules"))
        return None
    children = [_node(item, (*path, i), tg, lit, problems, depth + 1) for i, item in enumerate(items)]
    if any(c is None for c in children):
        return None
    kids = tuple(c for c in children if c is not None)
    joiner = " and " if op == "all" else " or "
    return BoolNode(op, kids, path, _clip(f"{op}({joiner.join(c.text for c in kids)})"))


def _compare(data: dict[str, Any], path: Path, tg: Targeting, lit: Literals, problems: list[Problem]) -> Node | None:
    """A comparison: a known field, exactly one operator its type takes, a literal of that type."""
    field = data.get("field")
    if not isinstance(field, str):
        problems.append(((*path, "field"), "a comparison needs field: the name of what it reads"
                         if field is None else "field must be a field name"))
        return None
    ftype = tg.field_type(field)
    if ftype is None:
        hint = ("declare it under targeting.attributes" if field.startswith("member.attr_")
                else "declare it under targeting.context" if field.startswith("context.") else
                "fields: " + ", ".join(tg.fields()))
        problems.append(((*path, "field"), f"unknown field {field!r}; {hint}"))
        return None
    ops = [k for k in data if k != "field"]
    unknown = [k for k in ops if k not in ALL_OPERATORS]
    allowed = OPERATORS[ftype]
    if unknown:
        problems.append(((*path, str(unknown[0])), f"unknown operator {unknown[0]!r}; a {ftype} field takes "
                                                   + ", ".join(allowed)))
        return None
    if len(ops) != 1:
        problems.append((path, "a comparison takes exactly one operator" + (f", not {', '.join(ops)}" if ops else "")))
        return None
    op = ops[0]
    if op not in allowed:
        problems.append(((*path, op), f"operator {op!r} does not apply to {field} ({ftype}); use "
                                      + ", ".join(allowed)))
        return None
    raw = data[op]
    value = _literal_for(ftype, op, raw, (*path, op), lit, problems)
    if value is None:
        return None
    return Compare(field, ftype, op, value, path, _clip(_text(field, op, raw)))


def _literal_for(ftype: str, op: str, raw: Any, path: Path, lit: Literals, problems: list[Problem]) -> Any:
    """The normalised literal of ``op`` on a ``ftype`` field, or None (problem recorded)."""
    if op == "exists":
        if not isinstance(raw, bool):
            problems.append((path, "exists takes true or false"))
            return None
        return raw
    if op in ("in", "not_in", "contains"):
        items = raw if isinstance(raw, list) else [raw] if op == "contains" else None
        if not items:
            problems.append((path, f"{op} takes a non-empty list" + (" (or one value)" if op == "contains" else "")))
            return None
        values = [_scalar("string" if ftype == "set" else ftype, v, (*path, i) if isinstance(raw, list) else path,
                          lit, problems) for i, v in enumerate(items)]
        return None if any(v is None for v in values) else tuple(values)
    if op == "between":
        if not isinstance(raw, list) or len(raw) != 2:
            problems.append((path, "between takes [low, high]"))
            return None
        lo, hi = (_scalar(ftype, v, (*path, i), lit, problems) for i, v in enumerate(raw))
        if lo is None or hi is None:
            return None
        if lo > hi:
            problems.append((path, f"between's low ({raw[0]}) is above its high ({raw[1]})"))
            return None
        return (lo, hi)
    return _scalar(ftype, raw, path, lit, problems)


def _scalar(ftype: str, raw: Any, path: Path, lit: Literals, problems: list[Problem]) -> Any:
    """One literal of type ``ftype``, normalised (see :class:`Compare`), or None."""
    def bad(expected: str) -> None:
        problems.append((path, f"expected {expected}, got {raw!r} ({type(raw).__name__})"))

    is_number = isinstance(raw, int | float) and not isinstance(raw, bool)
    if ftype in ("number", "money"):
        if not is_number:
            return bad("a number" + (" (major money units)" if ftype == "money" else ""))
        return float(lit.to_minor(raw)) if ftype == "money" else float(raw)
    if ftype in ("string", "set"):
        if isinstance(raw, str):
            return raw
        if isinstance(raw, int) and not isinstance(raw, bool):
            return str(raw)  # an unquoted id such as a store number
        return bad("a string")
    if ftype == "boolean":
        return raw if isinstance(raw, bool) else bad("true or false")
    if ftype == "tier":
        if raw not in lit.tier_rank:
            return bad("a tier name (" + ", ".join(lit.tier_rank) + ")")
        return float(lit.tier_rank[raw])
    if ftype == "weekday":
        day = str(raw).lower()[:3] if isinstance(raw, str) else None
        if day not in WEEKDAYS:
            return bad("a day of the week (" + ", ".join(WEEKDAYS) + ")")
        return float(WEEKDAYS.index(day))
    if ftype == "date":
        if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
            return float(raw.toordinal())
        try:
            return float(dt.date.fromisoformat(str(raw)).toordinal()) if isinstance(raw, str) else bad("a date")
        except ValueError:
            return bad("a date (YYYY-MM-DD)")
    return bad(ftype)  # pragma: no cover - every FieldType is handled above


_SYMBOL = {"eq": "==", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def _text(field: str, op: str, raw: Any) -> str:
    """A comparison as people read it: ``context.cart.total >= 20``."""
    def show(v: Any) -> str:
        return f"[{', '.join(map(str, v))}]" if isinstance(v, list) else str(v)

    if op in _SYMBOL:
        return f"{field} {_SYMBOL[op]} {show(raw)}"
    if op == "between":
        return f"{field} between {raw[0]} and {raw[1]}"
    if op == "exists":
        return f"{field} {'exists' if raw else 'is missing'}"
    if op == "contains":
        return f"{field} contains {'any of ' if isinstance(raw, list) and len(raw) > 1 else ''}{show(raw)}"
    return f"{field} {'in' if op == 'in' else 'not in'} {show(raw)}"


def _clip(text: str) -> str:
    """Shorten a clause's text for responses (a long ``any`` would otherwise bloat every exclusion)."""
    return text if len(text) <= _TEXT_LIMIT else text[:_TEXT_LIMIT - 3] + "..."


def describe(node: Node) -> str:
    """A failing clause as the decision JSON names it: ``offers[2].rule.all[0]: context.device == app``."""
    return f"{format_path(node.path)}: {node.text}"


def literals(program: Program) -> Literals:
    """How ``program`` reads rule literals (its money's minor units, its tier ranks)."""
    return Literals(program.to_minor, program.tier_rank)


def rule_sources(program: Program, kind: str, spec_index: int | None) -> list[tuple[Any, Path]]:
    """The raw rules an offer of ``kind`` must pass, with their YAML paths: its own (a
    program offer at ``offers[spec_index]``), its kind's ``offer_defaults`` rule, and for the
    tier mechanics the promotion's rule."""
    out: list[tuple[Any, Path]] = []
    if spec_index is not None and program.offers[spec_index].rule is not None:
        out.append((program.offers[spec_index].rule, ("offers", spec_index, "rule")))
    default = program.offer_defaults.get(kind)  # type: ignore[call-overload]
    if default is not None and default.rule is not None:
        out.append((default.rule, ("offer_defaults", kind, "rule")))
    promo = {"tier_challenge": "upgrade_challenge", "tier_retention": "retention_nudge"}.get(kind)
    if promo is not None and getattr(program.promotions, promo).rule is not None:
        out.append((getattr(program.promotions, promo).rule, ("promotions", promo, "rule")))
    return out


def offer_rules(program: Program, kind: str, spec_index: int | None = None) -> tuple[Node, ...]:
    """The parsed rules an offer must pass (see :func:`rule_sources`); a program that loaded
    has only valid rules, so a problem here is a bug and raises."""
    lit = literals(program)
    out = []
    for data, path in rule_sources(program, kind, spec_index):
        node, problems = parse_rule(data, path, program.targeting, lit)
        if node is None:
            raise ValueError(f"invalid rule at {format_path(path)}: {problems}")
        out.append(node)
    return tuple(out)


def rule_problems(program: Program) -> list[Problem]:
    """Every problem with the program's rules and targeting declarations, as (path, reason)."""
    out = targeting_problems(program.targeting)
    lit = literals(program)
    places: list[tuple[Any, Path]] = [(spec.rule, ("offers", i, "rule")) for i, spec in enumerate(program.offers)]
    places += [(d.rule, ("offer_defaults", kind, "rule")) for kind, d in program.offer_defaults.items()]
    places += [(getattr(program.promotions, p).rule, ("promotions", p, "rule"))
               for p in ("upgrade_challenge", "retention_nudge")]
    for data, path in places:
        if data is not None:
            out.extend(parse_rule(data, path, program.targeting, lit)[1])
    return out


def walk(node: Node) -> Sequence[Node]:
    """``node`` and its descendants in document (pre-)order."""
    out: list[Node] = [node]
    if isinstance(node, BoolNode):
        for child in node.children:
            out.extend(walk(child))
    return out
