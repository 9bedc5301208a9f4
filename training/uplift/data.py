"""An experiment's units for uplift modelling: features, arm and outcome per (member, offer).

For each offer, the units are the members with a ``treatment`` or ``control`` exposure to it
(the first per member). The outcome is whether the member has a transaction inside the offer's
validity window, and ``amount`` its total (minor units). Training reads ``transactions``;
evaluation of a held-out split reads ``holdout_transactions`` (``outcomes="holdout"``), which
nothing else reads. Features are the members' ``attr_*`` columns (offerdata.attributes):
numbers as they are, strings as integer category codes fixed at training time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from models.data_contract import CONTROL
from models.uplift import encode_attributes
from offerdata.attributes import attribute_kinds, read_attributes
from offerdata.tables import DataDirError, read_table, table_path
from offerdata.validate import require_valid


@dataclass
class Units:
    """Every (member, offer) unit of an experiment: ``member_id``, ``offer_id``, ``t``, ``y``, ``amount``."""

    frame: pd.DataFrame
    attributes: pd.DataFrame  # member_id + attr_* columns, typed
    offers: pd.DataFrame      # offer_id, send_cost_minor, value_minor, starts_at, ends_at


def has_control_arm(data_dir: str | os.PathLike[str]) -> bool:
    """Whether any exposure in ``data_dir`` is a control assignment (then training defaults to uplift)."""
    exposures = read_table(data_dir, "exposures", columns=["arm"])
    return bool((exposures["arm"].astype("string") == CONTROL).any())


def load_units(data_dir: str | os.PathLike[str], outcomes: Literal["transactions", "holdout", "none"] = "transactions",
               validate: bool = True) -> Units:
    """Validate ``data_dir`` and build its units; ``outcomes`` names the table the outcomes come from."""
    if validate:
        require_valid(data_dir)
    exposures = read_table(data_dir, "exposures", columns=["member_id", "offer_id", "exposed_at", "arm"])
    exposures = exposures.sort_values("exposed_at", kind="stable").drop_duplicates(["member_id", "offer_id"])
    offers = read_table(data_dir, "offers", columns=["offer_id", "starts_at", "ends_at", "send_cost_minor", "value_minor"])
    units = exposures.merge(offers[["offer_id", "starts_at", "ends_at"]], on="offer_id")
    units["t"] = (units["arm"].astype("string") != CONTROL).fillna(True).astype(np.int8).to_numpy()
    units["y"], units["amount"] = np.int8(0), 0.0
    if outcomes != "none":
        table = "holdout_transactions" if outcomes == "holdout" else "transactions"
        if table_path(data_dir, table) is None:
            raise DataDirError(f"{data_dir}: no {table} table: this directory holds no held-out outcomes to evaluate on")
        tx = read_table(data_dir, table, columns=["member_id", "purchased_at", "amount_minor"])
        hit = units[["member_id", "offer_id", "starts_at", "ends_at"]].reset_index().merge(tx, on="member_id")
        hit = hit[(hit["purchased_at"] >= hit["starts_at"]) & (hit["purchased_at"] <= hit["ends_at"])]
        per_unit = hit.groupby("index")["amount_minor"].agg(["size", "sum"])
        units.loc[per_unit.index, "y"] = (per_unit["size"] > 0).astype(np.int8)
        units.loc[per_unit.index, "amount"] = per_unit["sum"].astype(float)
    frame = units[["member_id", "offer_id", "t", "y", "amount"]].reset_index(drop=True)
    return Units(frame, read_attributes(data_dir), offers.reset_index(drop=True))


def encode(attributes: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Attributes as a float feature frame indexed by member_id; string columns become category codes.

    Each string column's levels are fixed here, at training, and travel in the artifact; the
    frame itself comes from :func:`models.uplift.encode_attributes`, the encoding serving uses,
    so training and serving cannot encode a member differently. Returns the frame and the levels.
    """
    kinds = attribute_kinds(attributes)
    levels = {name: sorted(str(v) for v in pd.unique(attributes[name].dropna()))
              for name, kind in kinds.items() if kind != "numeric"}
    return encode_attributes(attributes, list(kinds), levels), levels
