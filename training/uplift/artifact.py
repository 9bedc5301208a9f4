"""The uplift model artifact: per offer, a meta-learner's LightGBM boosters, in a registry version.

Layout of a version directory::

    model.txt        manifest: one line per booster file with its sha256 (the registry hashes it)
    metadata.json    objective "uplift", features, category levels, per-offer method and economics
    boosters/<offer index>-<role>.txt

``models.model.PropensityModel.load`` refuses such a version with a message naming it an uplift
model; :func:`load_uplift` is its loader, checking every booster's checksum before LightGBM
reads it (LightGBM aborts the process on a malformed model file).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.model import METADATA_FILE, MODEL_FILE, ArtifactError, load_checked_booster, sha256_file
from training.uplift.data import encode
from training.uplift.learners import UpliftLearner

OBJECTIVE = "uplift"
FORMAT_VERSION = "uplift-1"


@dataclass
class UpliftModel:
    """Every offer's uplift learner, the feature encoding and the training metadata."""

    learners: dict[str, UpliftLearner]
    feature_names: list[str]
    categories: dict[str, list[str]]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "unversioned"))

    def features(self, attributes: pd.DataFrame) -> pd.DataFrame:
        """The feature frame (indexed by member_id) of an attributes frame, encoded as at training."""
        frame, _ = encode(attributes, self.categories)
        for name in self.feature_names:
            if name not in frame:
                frame[name] = np.nan  # an attribute missing here is unknown for every member
        return frame[self.feature_names]

    def predict(self, offer_id: str, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(uplift, p_treated)`` of one offer for feature rows ``X``."""
        return self.learners[offer_id].predict(X)

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
                                "boosters": files}
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
    learners = {}
    for offer_id, spec in meta.get("offers", {}).items():
        boosters = {}
        for role, entry in spec.get("boosters", {}).items():
            # checksum, structural check and a child-process first load (a corrupt file
            # would abort this process inside LightGBM)
            boosters[role] = load_checked_booster(path / entry["file"], entry["sha256"],
                                                  list(meta["feature_names"]))
        learners[offer_id] = UpliftLearner(spec["method"], boosters)
    return UpliftModel(learners, list(meta["feature_names"]), dict(meta.get("categories", {})), meta)
