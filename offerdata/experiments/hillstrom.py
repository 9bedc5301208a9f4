"""Kevin Hillstrom's MineThatData e-mail experiment (``hillstrom.csv.zip``) as a contract directory.

64,000 customers were randomized (a third each) to a men's e-mail, a women's e-mail or none;
outcomes over the next two weeks are ``visit``, ``conversion`` and ``spend``. Member ids are
the 0-based row numbers as text; the offers are ``mens_email`` and ``womens_email``. The split
is a seeded random permutation: the first ``test_fraction`` of it is the test split.

The outcome is a visit: each visiting customer gets one transaction whose amount is their
spend (0 when they did not buy), so visit = a transaction in the window, conversion = a
positive amount and spend = the amount. Each e-mail costs $0.10 per send; its value per
conversion (visit) is the mean spend per visit of its treatment arm in the *train* split,
so both splits carry the same value and nothing is learnt from the test split.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from offerdata.experiments.contract import (
    Experiment,
    ExperimentOffer,
    program_yaml,
    write_experiment,
)
from offerdata.experiments.source import SourceUnavailable, open_zip
from offerdata.tables import DataDirError

ARMS = {"Mens E-Mail": "mens_email", "Womens E-Mail": "womens_email", "No E-Mail": None}
TITLES = {"mens_email": "Men's merchandise e-mail", "womens_email": "Women's merchandise e-mail"}
SEND_COST_MINOR = 10
START = pd.Timestamp("2008-03-03 09:00:00")
ATTRIBUTES = ("recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel")


class SplitError(DataDirError, ValueError):
    """A test fraction outside (0, 1)."""


def read_all(source: Path | None) -> pd.DataFrame:
    """Every row of hillstrom.csv, in file order."""
    with open_zip("hillstrom.csv.zip", source) as zf:
        try:
            with zf.open("hillstrom.csv") as fh:
                frame = pd.read_csv(fh)
        except KeyError as exc:
            raise SourceUnavailable(f"{source or 'hillstrom.csv.zip'} has no hillstrom.csv") from exc
    expected = {*ATTRIBUTES, "segment", "visit", "conversion", "spend"}
    if not expected <= set(frame.columns):
        raise SourceUnavailable(f"hillstrom.csv: missing column(s) {sorted(expected - set(frame.columns))}")
    return frame


def held_out_mask(n: int, test_fraction: float, seed: int) -> np.ndarray:
    """Which of ``n`` rows are in the test split: the first ``test_fraction`` of a seeded permutation."""
    if not 0.0 < test_fraction < 1.0:
        raise SplitError(f"--test-fraction must lie strictly between 0 and 1 (got {test_fraction})")
    order = np.random.default_rng(seed).permutation(n)
    mask = np.zeros(n, dtype=bool)
    mask[order[: round(n * test_fraction)]] = True
    return mask


def experiment(frame: pd.DataFrame, rows: np.ndarray, train: np.ndarray) -> Experiment:
    """The rows ``rows`` as an :class:`Experiment`; values come from the ``train`` rows."""
    units = pd.DataFrame({"member_id": frame.index.astype(str)})
    for name in ATTRIBUTES:
        col = frame[name]
        units[f"attr_{name}"] = col.astype("float64") if pd.api.types.is_numeric_dtype(col) else col.astype(str)
    units["offer"] = frame["segment"].map(ARMS)
    units["outcome"] = (frame["visit"] == 1) | (frame["conversion"] == 1)
    units["amount_minor"] = (frame["spend"] * 100).round().astype("int64")
    offers = []
    for offer_id in ("mens_email", "womens_email"):
        arm = train & (units["offer"] == offer_id).to_numpy() & units["outcome"].to_numpy()
        value = round(float(units.loc[arm, "amount_minor"].mean())) if arm.any() else 0
        offers.append(ExperimentOffer(offer_id, TITLES[offer_id], SEND_COST_MINOR, value))
    return Experiment("hillstrom", units.loc[rows].reset_index(drop=True), tuple(offers), START, 14,
                      {"treatment": 1 / 3, "control": 1 / 3}, program_yaml("hillstrom"))


def write_hillstrom(out_dir: str | os.PathLike[str], split: str, test_fraction: float, seed: int,
                    source: Path | None = None) -> dict[str, int]:
    """Import one split into ``out_dir``; the test split's visits go to holdout_transactions."""
    frame = read_all(source).reset_index(drop=True)
    test = held_out_mask(len(frame), test_fraction, seed)
    rows = test if split == "test" else ~test
    return write_experiment(experiment(frame, rows, ~test), out_dir, held_out=split == "test")
