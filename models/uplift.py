"""The uplift model artifact: per offer, a meta-learner's LightGBM boosters, and how it scores.

Training (``training.uplift``) fits the learners; this module holds what serving, batch and
evaluation share: the fitted learner, the artifact's layout, its checked loader and the
encoding of member attributes into the model's features. It lives in the core so the runtime
can serve uplift models without importing the training package.

Layout of a version directory::

    model.txt        manifest: one line per booster file with its sha256 (the registry hashes it)
    metadata.json    objective "uplift", features, category levels, per-offer method and economics
    boosters/<offer index>-<role>.txt

``models.model.PropensityModel.load`` refuses such a version with a message naming it an uplift
model; :func:`load_uplift` is its loader, checking every booster's checksum before LightGBM
reads it (LightGBM aborts the process on a malformed model file).

Learners (``method``):

* ``t_learner``: one classifier per arm; uplift = P(y | x, treated) - P(y | x, control).
* ``class_transformation``: a classifier of z = treated·y + control·(1 - y), weighted by
  inverse arm probabilities; uplift = 2 P(z | x) - 1. A treated-arm classifier is kept beside
  it, so every uplift model also scores a propensity.
* ``x_learner`` (Künzel et al. 2019): the T-learner's two arm models, then a regression of
  each arm's imputed effect (treated: y - P(y | x, control); control: P(y | x, treated) - y);
  uplift = g x effect_control + (1 - g) x effect_treated, with g the treated share.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.model import METADATA_FILE, MODEL_FILE, ArtifactError, load_checked_booster, sha256_file

OBJECTIVE = "uplift"
FORMAT_VERSION = "uplift-1"
Method = Literal["t_learner", "class_transformation", "x_learner"]
#: The boosters each method needs, by role.
ROLES: dict[str, frozenset[str]] = {"t_learner": frozenset({"treated", "control"}),
                                    "class_transformation": frozenset({"treated", "z"}),
                                    "x_learner": frozenset({"treated", "control", "effect_treated",
                                                            "effect_control"})}


@dataclass
class UpliftLearner:
    """One offer's fitted uplift model: its method and boosters (``treated``, ``control`` or ``z``)."""

    method: Method
    boosters: dict[str, lgb.Booster] = field(default_factory=dict)
    #: share of units in the treatment arm at training (the X-learner's weight of its two effects)
    treated_share: float = 0.5

    def _predict(self, role: str, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.boosters[role].predict(X, num_threads=1), dtype=float)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(uplift, p_treated)`` for the rows of ``X`` (single-threaded, as serving requires)."""
        p1 = self._predict("treated", X)
        if self.method == "t_learner":
            return p1 - self._predict("control", X), p1
        if self.method == "x_learner":
            g = self.treated_share  # randomized arms: the propensity score is this constant
            return g * self._predict("effect_control", X) + (1 - g) * self._predict("effect_treated", X), p1
        return 2.0 * self._predict("z", X) - 1.0, p1


def encode_attributes(attributes: pd.DataFrame, feature_names: Sequence[str],
                      categories: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """A float feature frame (indexed by member_id) of a ``member_id`` + ``attr_*`` frame.

    Columns named in ``categories`` become their level's index (unseen levels and missing
    values NaN); the others are numbers (a value that is not one is NaN). An attribute the
    frame lacks is NaN for every member, so a member with no attributes still scores.
    """
    index = pd.Index(attributes["member_id"].astype(str), name="member_id")
    out = pd.DataFrame(index=index)
    for name in feature_names:
        if name not in attributes:
            out[name] = np.nan
            continue
        col = attributes[name]
        if name in categories:
            codes = pd.Categorical(col.astype("object").where(col.notna(), None).map(
                lambda v: None if v is None else str(v)), categories=list(categories[name])).codes
            out[name] = np.where(codes < 0, np.nan, codes.astype(np.float64))
        else:
            out[name] = pd.to_numeric(col, errors="coerce").astype(np.float64).to_numpy()
    return out


@dataclass
class UpliftModel:
    """Every offer's uplift learner, the feature encoding and the training metadata."""

    learners: dict[str, UpliftLearner]
    feature_names: list[str]
    categories: dict[str, list[str]]
    metadata: dict[str, Any] = field(default_factory=dict)

    #: Uplift models read member attributes, not the program's tier features.
    program = None
    #: No compiled trees: a handful of small boosters per offer.
    compiled = None

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "unversioned"))

    @property
    def predictor(self) -> str:
        """How it scores, for /v1/models: LightGBM boosters per offer (never compiled)."""
        return "uplift_boosters"

    @property
    def offer_ids(self) -> list[str]:
        """The offers this model scores, in the artifact's order."""
        return list(self.learners)

    def features(self, attributes: pd.DataFrame) -> pd.DataFrame:
        """The feature frame (indexed by member_id) of an attributes frame, encoded as at training."""
        return encode_attributes(attributes, self.feature_names, self.categories)

    def predict_offer(self, offer_id: str, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(uplift, p_treated)`` of one offer for feature rows ``X``."""
        return self.learners[offer_id].predict(X)

    def economics(self, offer_id: str) -> tuple[int | None, int]:
        """``(value_minor, send_cost_minor)`` the offer was trained with (value None: unknown)."""
        spec = self.metadata.get("offers", {}).get(offer_id, {})
        value = spec.get("value_minor")
        return (None if value is None else int(value)), int(spec.get("send_cost_minor") or 0)

    def save(self, directory: Path) -> None:
        """Write the boosters, the manifest and metadata.json into ``directory``."""
        (directory / "boosters").mkdir(parents=True, exist_ok=True)
        offers: dict[str, Any] = {}
        manifest: list[str] = []
        for i, (offer_id, learner) in enumerate(self.learners.items()):
            files = {}
            for role, booster in learner.boosters.items():
                rel = f"boosters/{i:04d}-{role}.txt"
                booster.save_model(str(directory / rel))
                files[role] = {"file": rel, "sha256": sha256_file(directory / rel)}
                manifest.append(f"{files[role]['sha256']}  {rel}  {offer_id}")
            offers[offer_id] = {**self.metadata.get("offers", {}).get(offer_id, {}), "method": learner.method,
                                "treated_share": learner.treated_share, "boosters": files}
        (directory / MODEL_FILE).write_text("\n".join(manifest) + "\n")
        meta = {**self.metadata, "objective": OBJECTIVE, "format_version": FORMAT_VERSION,
                "feature_names": self.feature_names, "categories": self.categories, "offers": offers}
        (directory / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))


def is_uplift(directory: str | os.PathLike[str]) -> bool:
    """Whether the version in ``directory`` is an uplift model (by its metadata)."""
    try:
        meta = json.loads((Path(directory) / METADATA_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(meta, dict) and meta.get("objective") == OBJECTIVE


def load_uplift(directory: str | os.PathLike[str]) -> UpliftModel:
    """Load and check an uplift version; ArtifactError naming what is wrong."""
    path = Path(directory)
    try:
        meta = json.loads((path / METADATA_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path / METADATA_FILE}: cannot read the metadata ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("objective") != OBJECTIVE or meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path.name} is not an uplift model of format {FORMAT_VERSION}")
    try:
        names = [str(n) for n in meta["feature_names"]]
        categories = {str(k): [str(v) for v in levels] for k, levels in dict(meta.get("categories", {})).items()}
        learners = {}
        for offer_id, spec in dict(meta.get("offers", {})).items():
            if spec.get("method") not in ROLES:
                raise ArtifactError(f"{path.name}: offer {offer_id!r} has an unknown method {spec.get('method')!r}")
            boosters = {}
            for role, entry in dict(spec.get("boosters", {})).items():
                # checksum, structural check and a child-process first load (a corrupt file
                # would abort this process inside LightGBM)
                objectives = ("regression",) if str(role).startswith("effect_") else ("binary",)
                boosters[str(role)] = load_checked_booster(path / entry["file"], entry["sha256"], names, objectives)
            needed = ROLES[spec["method"]]
            if not needed <= set(boosters):
                raise ArtifactError(f"{path.name}: offer {offer_id!r} lacks boosters {sorted(needed - set(boosters))}")
            share = float(spec.get("treated_share", 0.5))
            if not 0.0 < share < 1.0:
                raise ArtifactError(f"{path.name}: offer {offer_id!r} has a treated share {share} outside (0, 1)")
            learners[str(offer_id)] = UpliftLearner(spec["method"], boosters, share)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"{path / METADATA_FILE}: malformed uplift metadata ({exc!r})") from exc
    if not learners:
        raise ArtifactError(f"{path.name}: an uplift model with no offers")
    return UpliftModel(learners, names, categories, meta)


def load_serving_model(directory: str | os.PathLike[str]) -> Any:
    """The model of a registry version, whichever objective it was trained for.

    A :class:`~models.model.PropensityModel` or an :class:`UpliftModel`; both refuse a corrupt
    or mismatched artifact with ArtifactError. Serving, ``offers batch`` and ``offers
    materialize`` load through here so either kind of champion can decide.
    """
    from models.model import PropensityModel

    return load_uplift(directory) if is_uplift(directory) else PropensityModel.load(directory)
