"""Starbucks's promotion take-home experiment (``starbucks.zip``) as a contract directory.

``data/Training.csv`` (84,534 rows) is the train split, ``data/Test.csv`` (41,650) the test
split. ``Promotion`` (Yes/No) is the randomized arm, ``purchase`` the outcome, ``V1``-``V7`` the
features. Member ids are the ``ID`` column as text; the one offer is ``promotion``, costing
$0.15 per send, with a margin of $10 per purchase (the product's price, as the exercise counts
it). The take-home gives no dates: the promotion goes out on 2018-01-01 and the outcome window
is 7 days.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from offerdata.experiments.contract import (
    Experiment,
    ExperimentOffer,
    program_yaml,
    write_experiment,
)
from offerdata.experiments.source import SourceUnavailable, open_zip

OFFER_ID = "promotion"
PRICE_MINOR, SEND_COST_MINOR = 1000, 15
START = pd.Timestamp("2018-01-01 09:00:00")
FILES = {"train": "data/Training.csv", "test": "data/Test.csv"}


def read_split(split: str, source: Path | None) -> pd.DataFrame:
    """The raw rows of one split (``train`` or ``test``)."""
    with open_zip("starbucks.zip", source) as zf:
        try:
            with zf.open(FILES[split]) as fh:
                frame = pd.read_csv(fh)
        except KeyError as exc:
            raise SourceUnavailable(f"{source or 'starbucks.zip'} has no {FILES[split]}") from exc
    expected = {"ID", "Promotion", "purchase", *(f"V{i}" for i in range(1, 8))}
    if not expected <= set(frame.columns):
        raise SourceUnavailable(f"{FILES[split]}: missing column(s) {sorted(expected - set(frame.columns))}")
    return frame


def experiment(frame: pd.DataFrame) -> Experiment:
    """The raw rows as an :class:`Experiment` (V1-V7 become attr_v1..attr_v7)."""
    units = pd.DataFrame({"member_id": frame["ID"].astype(str)})
    for i in range(1, 8):
        units[f"attr_v{i}"] = frame[f"V{i}"].astype("float64")
    units["offer"] = frame["Promotion"].map({"Yes": OFFER_ID, "No": None})
    units["outcome"] = frame["purchase"].astype(int) == 1
    units["amount_minor"] = PRICE_MINOR
    offer = ExperimentOffer(OFFER_ID, "Starbucks promotion", SEND_COST_MINOR, PRICE_MINOR)
    return Experiment("starbucks-promo", units, (offer,), START, 7, {"treatment": None, "control": None},
                      program_yaml("starbucks-promo"))


def write_starbucks(out_dir: str | os.PathLike[str], split: str, source: Path | None = None) -> dict[str, int]:
    """Import one split into ``out_dir``; the test split's purchases go to holdout_transactions."""
    return write_experiment(experiment(read_split(split, source)), out_dir, held_out=split == "test")
