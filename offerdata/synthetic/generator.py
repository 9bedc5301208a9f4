"""``generate``: the synthetic program end to end, one fixed-size chunk of members at a time.

The catalog (products, campaigns, offers) is built once from its own streams. Then
each chunk of :data:`CHUNK_MEMBERS` members is generated from streams seeded by
``[seed, chunk_index, stream]`` (members, baskets, exposures, redemptions), written
as row groups and dropped, so memory depends on the chunk size, not on N.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from tqdm import tqdm

from offerdata.synthetic.baskets import generate_baskets
from offerdata.synthetic.exposures import affinity_lift, generate_exposures
from offerdata.synthetic.members import generate_members, members_table
from offerdata.synthetic.offer_catalog import build_offers
from offerdata.synthetic.output import (
    conform,
    exposures_table,
    redemptions_table,
    schema,
    transactions_table,
)
from offerdata.synthetic.params import (
    CHUNK_MEMBERS,
    MAX_MEMBERS,
    MIN_MEMBERS,
    TIER_THRESHOLDS_MINOR,
)
from offerdata.synthetic.products import build_products
from offerdata.synthetic.redemptions import generate_redemptions
from offerdata.synthetic.staging import StagedTables

TABLE_ORDER = ("members", "products", "transactions", "offers", "offer_products", "exposures",
               "redemptions")


def tier_of_spend(spend_minor: np.ndarray) -> np.ndarray:
    """Tier rank (0 Bronze, 1 Silver, 2 Gold) for trailing-12-month spend in minor units."""
    return np.searchsorted(np.asarray(TIER_THRESHOLDS_MINOR), spend_minor, side="right") - 1


def generate(out_dir: str | os.PathLike[str], n_members: int, seed: int = 0,
             progress: bool = False) -> dict[str, int]:
    """Write a synthetic loyalty program of ``n_members`` members into ``out_dir``.

    All seven contract tables are written as Parquet, atomically: nothing appears in
    ``out_dir`` unless every table completed. The same (``n_members``, ``seed``) always
    gives the same files. Returns the number of rows written per table.
    """
    if not MIN_MEMBERS <= n_members <= MAX_MEMBERS:
        raise ValueError(f"n_members must lie between {MIN_MEMBERS:,} and {MAX_MEMBERS:,}, got {n_members:,}")
    catalog = build_products(seed)
    offers = build_offers(catalog, seed)
    with StagedTables(out_dir, {name: schema(name) for name in TABLE_ORDER}) as out, \
            tqdm(total=n_members, unit="member", unit_scale=True, desc="synthetic",
                 disable=not progress, file=sys.stderr) as bar:
        out.write("products", conform(catalog.to_table(), "products"))
        out.write("offers", conform(offers.offers, "offers"))
        out.write("offer_products", conform(offers.offer_products, "offer_products"))
        for chunk_index, first in enumerate(range(0, n_members, CHUNK_MEMBERS)):
            count = min(CHUNK_MEMBERS, n_members - first)
            members = generate_members(seed, chunk_index, first, count, catalog.category_popularity)
            visits, lines = generate_baskets(members, catalog, seed, chunk_index)
            spend = np.bincount(visits.member[lines.visit], weights=lines.amount, minlength=count)
            tier = tier_of_spend(spend)
            lift = affinity_lift(members, offers)
            exposures = generate_exposures(members, tier, lift, offers, seed, chunk_index)
            red = generate_redemptions(members, tier, lift, exposures, visits, offers, catalog,
                                       seed, chunk_index)
            out.submit({
                "members": conform(members_table(members), "members"),
                "transactions": transactions_table(members, visits, lines, red, catalog),
                "exposures": exposures_table(members, exposures, offers),
                "redemptions": redemptions_table(members, red, offers),
            })
            bar.update(count)
        out.wait()
        rows = dict(out.rows)
    return {name: rows[name] for name in TABLE_ORDER}
