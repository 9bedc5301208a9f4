"""Writing one randomized experiment as a contract data directory.

An :class:`Experiment` is a frame of units (one row per member: attributes, the arm of each
offer, the outcome) plus the offers. :func:`write_experiment` maps it into the contract:

* ``members``: ``member_id`` and the ``attr_*`` attributes;
* ``offers``: one per treatment, valid over the outcome window, with ``send_cost_minor``
  and ``value_minor``; one product per experiment (``offer_products`` links them);
* ``exposures``: a ``treatment`` row for each member sent an offer, and a ``control`` row
  for each member of the control group, for every offer (the control is shared);
* the outcome: one transaction one day into the window for each member with an outcome.
  A training split writes them to ``transactions``; a test split to ``holdout_transactions``,
  which training, features and decisions never read;
* ``program.yaml`` (one tier, one offer per member) and ``decision_moment.txt`` (the moment
  the experiment's offers went out), so later commands need no other flags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from offerdata.tables import write_table

PROGRAM_FILE = "program.yaml"
MOMENT_FILE = "decision_moment.txt"


@dataclass(frozen=True)
class ExperimentOffer:
    """One treatment of the experiment and its economics."""

    offer_id: str
    title: str
    send_cost_minor: int
    value_minor: int


@dataclass(frozen=True)
class Experiment:
    """A randomized experiment, ready to write.

    ``units`` has ``member_id``, ``attr_*`` columns, ``offer`` (the offer id the member was
    sent, or None for control), ``outcome`` (bool) and ``amount_minor`` (the outcome's value).
    """

    name: str
    units: pd.DataFrame
    offers: tuple[ExperimentOffer, ...]
    starts_at: pd.Timestamp
    window_days: int
    arm_probability: dict[str, float | None]
    program_yaml: str


def _tables(exp: Experiment) -> dict[str, pd.DataFrame]:
    """The contract tables of ``exp`` (the outcome under the key ``outcomes``)."""
    u = exp.units
    start = exp.starts_at
    end = start + pd.Timedelta(days=exp.window_days) - pd.Timedelta(seconds=1)
    product = f"{exp.name}-product"
    members = u[["member_id", *[c for c in u.columns if c.startswith("attr_")]]].reset_index(drop=True)
    offers = pd.DataFrame({
        "offer_id": [o.offer_id for o in exp.offers], "campaign_id": exp.name, "kind": "amount_off",
        "starts_at": start, "ends_at": end, "title": [o.title for o in exp.offers],
        "send_cost_minor": pd.array([o.send_cost_minor for o in exp.offers], dtype="Int64"),
        "value_minor": pd.array([o.value_minor for o in exp.offers], dtype="Int64"),
    })
    rows = []
    control = u.loc[u["offer"].isna(), "member_id"]
    for o in exp.offers:
        sent = u.loc[u["offer"] == o.offer_id, "member_id"]
        for arm, ids in (("treatment", sent), ("control", control)):
            rows.append(pd.DataFrame({"member_id": ids.to_numpy(), "offer_id": o.offer_id, "arm": arm,
                                      "arm_probability": exp.arm_probability.get(arm)}))
    exposures = pd.concat(rows, ignore_index=True)
    exposures.insert(0, "exposure_id", [f"x{i:07d}" for i in range(len(exposures))])
    exposures["exposed_at"] = start
    exposures["channel"] = "email"
    exposures["arm_probability"] = exposures["arm_probability"].astype("float64")
    hit = u.loc[u["outcome"].astype(bool)]
    outcomes = pd.DataFrame({
        "member_id": hit["member_id"].to_numpy(), "purchased_at": start + pd.Timedelta(days=1),
        "basket_id": [f"b-{m}" for m in hit["member_id"]], "product_id": product, "quantity": 1,
        "amount_minor": hit["amount_minor"].astype("int64").to_numpy(), "discount_minor": 0,
    })
    return {
        "members": members,
        "products": pd.DataFrame({"product_id": [product], "department": [exp.name], "category": [exp.name],
                                  "brand": [exp.name]}),
        "offers": offers,
        "offer_products": pd.DataFrame({"offer_id": [o.offer_id for o in exp.offers], "product_id": product}),
        "exposures": exposures,
        "redemptions": pd.DataFrame({"redemption_id": pd.Series(dtype="string"),
                                     "member_id": pd.Series(dtype="string"), "offer_id": pd.Series(dtype="string"),
                                     "redeemed_at": pd.Series(dtype="datetime64[ns]")}),
        "outcomes": outcomes,
    }


def write_experiment(exp: Experiment, out_dir: str | os.PathLike[str], held_out: bool) -> dict[str, int]:
    """Write ``exp`` into ``out_dir``; a ``held_out`` split's outcomes go to ``holdout_transactions``.

    Returns the row count of every table written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = _tables(exp)
    outcomes = tables.pop("outcomes")
    empty = outcomes.iloc[0:0]
    tables["transactions"] = empty if held_out else outcomes
    stale = out / "holdout_transactions.parquet"
    if held_out:
        tables["holdout_transactions"] = outcomes
    elif stale.exists():
        stale.unlink()  # a re-import as a training split must not keep an old test split's outcomes
    for name, frame in tables.items():
        write_table(frame, out, name)
    (out / PROGRAM_FILE).write_text(exp.program_yaml)
    (out / MOMENT_FILE).write_text(exp.starts_at.isoformat() + "\n")
    return {name: len(frame) for name, frame in tables.items()}


def program_yaml(name: str, timezone: str = "UTC") -> str:
    """A one-tier program deciding at most one offer per member, with no holdout or exploration."""
    return (f"# Written by `offers data {name}`: one tier, at most one offer per member.\n"
            f"name: {name} experiment\ntimezone: {timezone}\n"
            "tier_policy:\n  metric: spend\n  window: {type: lifetime}\n"
            "tiers:\n  - {name: Member, threshold: 0}\n"
            "decisions:\n  max_offers: 1\n  holdout: {share: 0.0}\n  exploration: {share: 0.0}\n")
