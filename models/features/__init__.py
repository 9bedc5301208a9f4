"""Point-in-time member x offer features: one definition for training and serving."""

from models.features.compute import (
    CATEGORICAL_FEATURES,
    FEATURE_NAMES,
    channel_codes,
    compute_features,
)
from models.features.history import FeatureVocabulary, History, to_seconds

__all__ = ["CATEGORICAL_FEATURES", "FEATURE_NAMES", "FeatureVocabulary", "History", "channel_codes",
           "compute_features", "to_seconds"]
