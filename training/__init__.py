"""Training, evaluation and offline scoring of propensity models (the notebook API).

>>> from training import train_propensity, evaluate_version, score_pairs
>>> result = train_propensity("data/cj", "registry", train_end="2017-08-01")   # doctest: +SKIP
>>> result.version, result.headline                                             # doctest: +SKIP
"""

import models  # noqa: F401  (first: OpenMP's wait policy before LightGBM loads, models/openmp.py)
from training.evaluate import evaluate_version
from training.score import score_pairs
from training.train import TrainingError, TrainResult, train_propensity

__all__ = ["TrainResult", "TrainingError", "evaluate_version", "score_pairs", "train_propensity"]
