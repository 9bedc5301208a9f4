"""Arbitration: from propensities to a ranked, diverse, affordable slate.

Priority is the expected net value of sending the offer. For a propensity model it follows
Pega's P x C x V x L (the context weight C is folded into the levers)::

    priority = propensity x (member_value + margin_rate x basket) x levers
               - propensity x retailer_cost - send_cost

For an uplift model only the conversions the offer causes earn (see :func:`net_values`)::

    priority = uplift x value x levers - propensity x retailer_cost - send_cost

* ``member_value`` is what the offer is worth to the member in minor units: the face
  value for money kinds, ``percent x basket`` for percent off, the extra points of a
  multiplier on a typical basket (times the tier's earn multiplier) or the points of a
  bonus, valued at the program's ``point_value``.
* ``margin_rate x basket`` is the business value of the visit a redemption brings.
* ``levers`` = the offer's lever x ``levers.offer[id]`` x ``levers.kind[kind]`` x
  ``levers.tier[member tier]`` (a number, or a number per kind).
* ``retailer_cost`` = ``cost_minor x (1 - cost_share)``: the part the retailer pays,
  so supplier-funded offers cost less; zero when the cost is unknown.
* ``send_cost``: what one send costs, redeemed or not (the contract's ``send_cost_minor``).
* ``value`` of a conversion: the offer's ``conversion_value`` (the contract's ``value_minor``)
  when known, else ``member_value + margin_rate x basket``.

So priority = propensity x *weight* - send_cost, with the weight computed here per member
and candidate. A priority below ``decisions.min_net_value`` means sending costs more than it
earns: the decision core leaves the offer out (``COST_EXCEEDS_VALUE``), so "no offer" wins. Ties break deterministically: higher priority, then the offer's business
``priority``, then higher member value, then the offer id.

Diversity: at most ``per_category`` offers of one product category and
``per_stacking_group`` of one stacking group per decision; budgets must still fit.
"""

from __future__ import annotations

import numpy as np

from models.caps import BudgetState
from models.catalog import KIND_CODE, Catalog
from models.eligibility import MemberArrays

_PERCENT, _MULT = KIND_CODE["percent_off"], KIND_CODE["points_multiplier"]
_IS_POINTS = np.zeros(len(KIND_CODE), dtype=bool)
_IS_POINTS[[KIND_CODE[k] for k in ("bonus_points", "tier_challenge", "tier_retention")]] = True


def member_values(catalog: Catalog, pos: np.ndarray, ma: MemberArrays) -> tuple[np.ndarray, np.ndarray]:
    """Face value (kind unit, tier-differentiated) and member value in minor units.

    Returns two (members x candidates) float arrays.
    """
    p = catalog.program
    face = catalog.value_by_tier[pos][:, ma.tier_rank].T
    kind = catalog.kind[pos][None, :]
    basket = ma.basket[:, None]
    point_minor = p.currency.point_value * p.currency.minor_units
    per_basket = p.currency.earn_rate if p.counts_visits else p.currency.earn_rate * basket / p.currency.minor_units
    mult = np.array([t.earn_multiplier for t in p.tiers])[ma.tier_rank][:, None]
    minor = np.where(kind == _PERCENT, face / 100.0 * basket,
                     np.where(kind == _MULT, (face - 1.0) * per_basket * mult * point_minor,
                              np.where(_IS_POINTS[kind], face * point_minor, face)))
    return face, minor


def value_terms(catalog: Catalog, pos: np.ndarray, ma: MemberArrays,
                value_minor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (member, candidate): the levers and what one conversion is worth, levers applied.

    A conversion is worth the offer's ``conversion_value`` when the data or config gives one
    (an experiment's margin per purchase), else the member value plus ``margin_rate x basket``.
    """
    d = catalog.program.decisions
    levers = catalog.lever[pos][None, :] * catalog.kind_tier_lever[catalog.kind[pos]][:, ma.tier_rank].T
    conversion = catalog.conversion_value[pos][None, :]
    per_conversion = np.where(np.isnan(conversion), value_minor + d.margin_rate * ma.basket[:, None], conversion)
    return levers, per_conversion * levers


def weights(catalog: Catalog, pos: np.ndarray, ma: MemberArrays, value_minor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (member, candidate): the levers and the priority weight (priority = propensity x weight - send cost)."""
    levers, value = value_terms(catalog, pos, ma, value_minor)
    return levers, value - catalog.retailer_cost[pos][None, :]


def net_values(catalog: Catalog, pos: np.ndarray, propensity: np.ndarray, weight: np.ndarray,
               value: np.ndarray, uplift: np.ndarray | None) -> np.ndarray:
    """Expected net value of sending each candidate (members x candidates, minor units).

    Where an uplift model scored the candidate (``uplift`` not NaN), only the conversions the
    offer causes earn its value, while every redemption costs the retailer its share and every
    send its send cost::

        net = uplift x value - propensity x retailer_cost - send_cost

    Elsewhere the propensity model's expected value: ``propensity x weight - send_cost``.
    """
    send = catalog.send_cost[pos][None, :]
    net = propensity * weight - send
    if uplift is None:
        return net
    incremental = uplift * value - propensity * catalog.retailer_cost[pos][None, :] - send
    return np.where(np.isnan(uplift), net, incremental)


def order(catalog: Catalog, pos: np.ndarray, priority: np.ndarray, value_minor: np.ndarray) -> np.ndarray:
    """Rank position of each candidate (0 is best) under the deterministic tie-breaking.

    ``priority`` and ``value_minor`` are one member's (candidates,) or a batch's
    (members, candidates); ranks run along the last axis, so a batch is ranked in one
    stable sort with the same keys as member by member.
    """
    shape = np.broadcast_shapes(np.shape(priority), np.shape(value_minor), np.shape(pos))
    keys = tuple(np.broadcast_to(k, shape) for k in
                 (catalog.id_rank[pos], -np.asarray(value_minor), -catalog.priority[pos], -np.asarray(priority)))
    ranked = np.lexsort(keys, axis=-1)
    out = np.empty(shape, dtype=np.int64)
    np.put_along_axis(out, ranked, np.broadcast_to(np.arange(shape[-1]), shape), axis=-1)
    return out


class Slate:
    """The offers chosen so far for one member, and which candidates may still join."""

    def __init__(self, catalog: Catalog, pos: np.ndarray, eligible: np.ndarray, budget: BudgetState):
        div = catalog.program.decisions.diversity
        self.catalog, self.pos, self.budget = catalog, pos, budget
        self.open = eligible.copy()
        self.category = catalog.category[pos]
        self.group = catalog.group[pos]
        self.cat_left = np.full(len(catalog.category_names) + 1, div.per_category, dtype=np.int64)
        self.group_left = np.full(len(catalog.group_names) + 1, div.per_stacking_group, dtype=np.int64)
        self.cat_left[-1] = self.group_left[-1] = np.iinfo(np.int64).max  # no category / group
        self.chosen: list[int] = []

    def feasible(self) -> np.ndarray:
        """Candidates (by column) that are eligible, not chosen, within diversity and budget."""
        ok = self.open & (self.cat_left[self.category] > 0) & (self.group_left[self.group] > 0)
        if self.catalog.budget_keys and ok.any():
            ok &= self.budget.affordable(self.pos)
        return ok

    def add(self, col: int) -> None:
        """Put column ``col`` in the slate, using up its diversity allowance and budget."""
        self.chosen.append(col)
        self.open[col] = False
        self.cat_left[self.category[col]] -= 1
        self.group_left[self.group[col]] -= 1
        self.budget.consume(int(self.pos[col]))


def greedy(catalog: Catalog, pos: np.ndarray, eligible: np.ndarray, rank: np.ndarray, budget: BudgetState,
           n: int) -> list[int]:
    """The exploit slate: best-ranked feasible candidate, slot after slot (columns)."""
    slate = Slate(catalog, pos, eligible, budget)
    big = np.iinfo(np.int64).max
    for _ in range(n):
        feasible = slate.feasible()
        if not feasible.any():
            break
        slate.add(int(np.argmin(np.where(feasible, rank, big))))
    return slate.chosen


def saturated(catalog: Catalog, pos: np.ndarray, cols: list[int]) -> np.ndarray:
    """Columns whose category or stacking group the chosen ``cols`` have filled."""
    div = catalog.program.decisions.diversity
    cat, grp = catalog.category[pos], catalog.group[pos]
    chosen = np.asarray(cols, dtype=np.int64)
    cat_n = np.bincount(cat[chosen][cat[chosen] >= 0], minlength=len(catalog.category_names) + 1)
    grp_n = np.bincount(grp[chosen][grp[chosen] >= 0], minlength=len(catalog.group_names) + 1)
    return ((cat >= 0) & (cat_n[cat] >= div.per_category)) | ((grp >= 0) & (grp_n[grp] >= div.per_stacking_group))
