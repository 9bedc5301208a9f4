"""Offline scoring of (member, offer, as_of) pairs with a registered model, for backtests and audiences.

Each pair is scored from point-in-time features as of its own ``as_of``. Unknown offers are
refused (they cannot be scored); unknown members are scored as cold-start members with an
empty history. The output is written atomically: a temporary file renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.compiled import default_cache_dir
from models.features import channel_codes, to_seconds
from models.model import PropensityModel
from models.program import Program
from models.registry import Registry
from training.dataset import Dataset, load_dataset
from training.train import TrainingError, feature_matrix

REQUIRED = ("member_id", "offer_id", "as_of")


def read_pairs(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a PAIRS file (Parquet or CSV) and check its columns and timestamps."""
    p = Path(path)
    if not p.is_file():
        raise TrainingError(f"pairs file {str(path)!r} does not exist")
    frame = pd.read_csv(p, dtype=str) if p.suffix.lower() == ".csv" else pd.read_parquet(p)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise TrainingError(f"{p.name}: missing column(s) {', '.join(missing)}; needs {', '.join(REQUIRED)}")
    as_of = pd.to_datetime(frame["as_of"], errors="coerce")
    bad = frame.loc[as_of.isna(), "as_of"]
    if len(bad):
        raise TrainingError(f"{p.name}: {len(bad)} as_of value(s) are not timestamps (e.g. {bad.iloc[0]!r})")
    frame = frame.copy()
    frame["as_of"] = as_of.astype("datetime64[ns]")
    frame["member_id"] = frame["member_id"].astype(str)
    frame["offer_id"] = frame["offer_id"].astype(str)
    return frame


#: From this many rows on, compiling the trees (a few seconds, once per model) pays for itself.
COMPILE_ROWS = 200_000


def all_pairs(data_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Every member x every offer of ``data_dir`` at its decision moment (``decision_moment.txt``)."""
    from offerdata.directory import decision_moment
    from offerdata.tables import read_table

    moment = decision_moment(data_dir)
    if moment is None:
        raise TrainingError(f"{data_dir} has no decision_moment.txt: pass --pairs with an as_of per pair")
    members = read_table(data_dir, "members", columns=["member_id"])["member_id"].astype(str).to_numpy()
    offers = read_table(data_dir, "offers", columns=["offer_id"])["offer_id"].astype(str).to_numpy()
    return pd.DataFrame({"member_id": np.repeat(members, len(offers)), "offer_id": np.tile(offers, len(members)),
                         "as_of": pd.Timestamp(moment).tz_localize(None)}).astype({"as_of": "datetime64[ns]"})


def score_uplift_pairs(data_dir: str | os.PathLike[str], path: Path, pairs: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` plus ``propensity`` (treated-arm outcome probability) and ``uplift`` from an uplift model.

    Uplift models read members' attributes, which have no history: ``as_of`` does not change them.
    """
    from models.uplift import load_uplift
    from offerdata.attributes import read_attributes
    from offerdata.validate import require_valid

    model = load_uplift(path)
    require_valid(data_dir)
    unknown = sorted(set(pairs["offer_id"]) - set(model.learners))
    if unknown:
        raise TrainingError(f"{len(unknown)} offer id(s) in the pairs have no uplift model "
                            f"(e.g. {', '.join(map(repr, unknown[:3]))})")
    features = model.features(read_attributes(data_dir))
    out = pairs.copy()
    out["propensity"], out["uplift"] = np.nan, np.nan
    for offer_id, rows in out.groupby("offer_id").groups.items():
        X = features.reindex(out.loc[rows, "member_id"].to_numpy()).to_numpy(dtype=np.float64)
        uplift, propensity = model.predict_offer(str(offer_id), X)
        out.loc[rows, "propensity"], out.loc[rows, "uplift"] = propensity, uplift
    out["model_version"] = model.version
    return out


def pair_features(ds: Dataset, pairs: pd.DataFrame, program: Program | None, progress: bool = False,
                  client: Any = None) -> np.ndarray:
    """Point-in-time features of (member_id, offer_id, as_of[, channel]) pairs whose offers
    ``ds``'s catalog knows (channel ``app`` when the pairs have none); narrows ``ds``'s history
    to the pairs' members."""
    ds.history = ds.history.with_members(pairs["member_id"].to_numpy())
    channel = pairs["channel"] if "channel" in pairs else pd.Series(["app"] * len(pairs))
    rows = pd.DataFrame({"m": ds.history.member_index(pairs["member_id"]), "o": ds.catalog.offer_index(pairs["offer_id"]),
                         "as_of": to_seconds(pairs["as_of"]), "ch": channel_codes(channel)})
    return feature_matrix(ds, rows, program, progress, client)


def score_pairs(data_dir: str | os.PathLike[str], registry: str | os.PathLike[str], pairs: pd.DataFrame,
                version: str = "champion", progress: bool = False) -> pd.DataFrame:
    """``pairs`` plus a ``propensity`` column (and ``uplift`` for uplift models) from the model ``version`` names.

    In-process: the whole history is loaded. On a Dask cluster, :func:`training.cluster_score.cluster_score`
    scores partition by partition on the workers instead.
    """
    from models.uplift import is_uplift

    path = Registry(registry).path(version)
    if is_uplift(path):
        return score_uplift_pairs(data_dir, path, pairs)
    model = PropensityModel.load(path)
    ds = load_dataset(data_dir)
    o = ds.catalog.offer_index(pairs["offer_id"])
    if (o < 0).any():
        unknown = pairs.loc[o < 0, "offer_id"].unique()
        raise TrainingError(f"{len(unknown)} offer id(s) in the pairs are not in the catalog "
                            f"(e.g. {', '.join(map(repr, unknown[:3]))})")
    X = pair_features(ds, pairs, model.program, progress)
    if len(X) >= COMPILE_ROWS:  # same scores; compiled trees score large files ~6x faster
        model.try_compile(default_cache_dir())
    out = pairs.copy()
    out["propensity"] = model.predict(X) if len(X) else np.zeros(0)
    out["model_version"] = model.version
    return out


def write_frame(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write Parquet (or CSV for a .csv path) atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    if target.suffix.lower() == ".csv":
        frame.to_csv(tmp, index=False)
    else:
        frame.to_parquet(tmp, index=False)
    os.replace(tmp, target)
    return target
