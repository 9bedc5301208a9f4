"""The offer catalog: the calendar's offers as contract tables plus the arrays draws need.

Offer ids are ``C<campaign>-<offer>`` (``C012-03``), campaigns numbered in start order,
so the offers of one campaign are one contiguous range. ``offer_products`` lists the
products of each offer's target. Everything comes from the campaigns stream of the
seed, so every chunk of members sees the same catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from offerdata.synthetic import ids
from offerdata.synthetic.campaigns import Campaign, OfferSpec, schedule
from offerdata.synthetic.params import SEGMENTS, STREAM_CAMPAIGNS, TIER_NAMES, rng, to_datetime
from offerdata.synthetic.products import ProductCatalog

#: The mean private-label propensity (Beta(2, 5)); national-brand affinity is relative to it.
MEAN_PRIVATE_PROPENSITY = 2 / 7
_PRIORITY = {"birthday": 4, "tier_exclusive": 3, "supplier_funded": 2, "partner": 2, "seasonal": 1,
             "personalized": 0}
#: Kinds that take money off the shelf price; they share a stacking group per target.
_PRICE_KINDS = {"percent_off", "amount_off", "free_item", "partner", "early_access", "birthday"}


@dataclass(frozen=True)
class OfferCatalog:
    """Every offer of the year with the arrays exposure and redemption draws need."""

    campaigns: list[Campaign]
    offers: pa.Table  # the contract's offers table
    offer_products: pa.Table  # the contract's offer_products table
    campaign: np.ndarray  # campaign index per offer
    campaign_offers: np.ndarray  # offers of campaign c are campaign_offers[c]:campaign_offers[c + 1]
    kind: np.ndarray  # kind name per offer (object array)
    value: np.ndarray  # face value
    depth: np.ndarray  # worth to the member as a share of a typical target purchase, 0-1
    lift_weights: np.ndarray  # (offers, categories): member preferences @ this.T = affinity lift
    national_brand: np.ndarray  # bool: the target is one supplier's brand
    tier_ok: np.ndarray  # (offers, tiers) bool
    segment_ok: np.ndarray  # (offers, segments) bool
    product_start: np.ndarray  # offsets into product_rows, per offer (+1 sentinel)
    product_rows: np.ndarray  # catalog rows of the offers' products, grouped by offer
    starts: np.ndarray  # seconds
    ends: np.ndarray  # seconds
    offer_id: pa.Array
    offer_id_bytes: np.ndarray  # the same ids as a fixed-width byte matrix

    @property
    def n_offers(self) -> int:
        """Number of offers in the catalog."""
        return len(self.kind)


def _offers_table(specs: list[OfferSpec], campaign_of: np.ndarray, campaigns: list[Campaign],
                  offer_id: pa.Array, starts: np.ndarray, ends: np.ndarray) -> pa.Table:
    """The contract's ``offers`` rows; min_spend_minor stays null (no offer sets one)."""
    camp = [campaigns[c] for c in campaign_of]
    return pa.table({
        "offer_id": offer_id,
        "campaign_id": pa.array([f"C{c + 1:03d}" for c in campaign_of], pa.string()),
        "kind": pa.array([s.kind for s in specs], pa.string()),
        "starts_at": pa.array(to_datetime(starts), pa.timestamp("ns")),
        "ends_at": pa.array(to_datetime(ends), pa.timestamp("ns")),
        "title": pa.array([s.title for s in specs], pa.string()),
        "campaign_type": pa.array([c.campaign_type for c in camp], pa.string()),
        "value": pa.array([s.value for s in specs], pa.float64()),
        "cost_minor": pa.array([s.cost for s in specs], pa.int64()),
        "channels": pa.array(["|".join(c.channels) for c in camp], pa.string()),
        "tiers": pa.array(["|".join(s.tiers) if s.tiers else None for s in specs], pa.string()),
        "segments": pa.array([s.segment for s in specs], pa.string()),
        "min_spend_minor": pa.nulls(len(specs), pa.int64()),
        "funder": pa.array([s.funder for s in specs], pa.string()),
        "cost_share": pa.array([s.cost_share for s in specs], pa.float64()),
        "stacking_group": pa.array([s.target.group if s.kind in _PRICE_KINDS else None for s in specs],
                                   pa.string()),
        "priority": pa.array([_PRIORITY[c.campaign_type] for c in camp], pa.int64()),
    })


def build_offers(catalog: ProductCatalog, seed: int) -> OfferCatalog:
    """Generate the year's campaigns and offers for ``seed`` from the campaigns stream."""
    campaigns = schedule(catalog, rng(seed, 0, STREAM_CAMPAIGNS))
    specs = [spec for camp in campaigns for spec in camp.offers]
    campaign_of = np.repeat(np.arange(len(campaigns)), [len(c.offers) for c in campaigns])
    number = np.concatenate([np.arange(len(c.offers)) for c in campaigns])
    offer_id = pa.array([f"C{c + 1:03d}-{k + 1:02d}" for c, k in zip(campaign_of, number, strict=True)],
                        pa.string())
    n = len(specs)

    weights = np.zeros((n, len(catalog.category_names)))
    for i, spec in enumerate(specs):
        weights[i, list(spec.target.categories)] = 1.0
    # Lift = the member's share of the target / the average member's share of it.
    lift_weights = weights / (weights @ catalog.category_popularity)[:, None]
    tier_ok = np.array([[spec.tiers is None or t in spec.tiers for t in TIER_NAMES] for spec in specs])
    segment_ok = np.array([[spec.segment is None or s == spec.segment for s in SEGMENTS] for spec in specs])

    product_lists = [np.sort(spec.target.rows) for spec in specs]
    product_start = np.concatenate(([0], np.cumsum([len(p) for p in product_lists])))
    product_rows = np.concatenate(product_lists)
    starts = np.array([campaigns[c].start for c in campaign_of], dtype=np.int64)
    ends = np.array([campaigns[c].end for c in campaign_of], dtype=np.int64)
    offer_of_row = np.repeat(np.arange(n), np.diff(product_start))
    offer_products = pa.table({
        "offer_id": offer_id.take(pa.array(offer_of_row)),
        "product_id": catalog.product_id.take(pa.array(product_rows)),
    }).sort_by([("offer_id", "ascending"), ("product_id", "ascending")])
    return OfferCatalog(
        campaigns=campaigns,
        offers=_offers_table(specs, campaign_of, campaigns, offer_id, starts, ends),
        offer_products=offer_products,
        campaign=campaign_of,
        campaign_offers=np.searchsorted(campaign_of, np.arange(len(campaigns) + 1)),
        kind=np.array([s.kind for s in specs], dtype=object),
        value=np.array([s.value for s in specs], dtype=np.float64),
        depth=np.array([s.depth for s in specs], dtype=np.float64),
        lift_weights=lift_weights,
        national_brand=np.array([s.target.brand is not None for s in specs]),
        tier_ok=tier_ok,
        segment_ok=segment_ok,
        product_start=product_start,
        product_rows=product_rows,
        starts=starts,
        ends=ends,
        offer_id=offer_id,
        offer_id_bytes=ids.from_arrow(offer_id),
    )
