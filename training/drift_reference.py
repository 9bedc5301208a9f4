"""The drift reference a model is registered with (see :mod:`models.drift`).

Serving scores every member it is asked about against every offer valid at that moment, not
the exposures a model is fit on (offers someone chose to send). So the reference is built
from that serving population at the training cut-off: a seeded sample of members who had
joined by then x the offers valid then, each row with a channel drawn from the exposures'
channel mix (:func:`training.design.reference_plan` chooses the rows; the design computes
their features with the training rows'). When no offer is valid at the cut-off (a data set
whose campaigns all ended), the held-out exposures stand in, and the reference says so in
``population``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.drift import build_reference
from models.features import FEATURE_NAMES
from models.model import PropensityModel


def model_reference(cut: pd.Timestamp, model: PropensityModel, X_reference: np.ndarray | None,
                    held_out_X: np.ndarray) -> dict[str, Any]:
    """The reference of ``model``: features and calibrated scores of the serving population at
    ``cut`` (``X_reference``), else (None) of the held-out exposures."""
    if X_reference is not None and len(X_reference):
        X, population = X_reference, f"members x offers valid at {cut.isoformat()}"
    else:
        X, population = held_out_X, "held-out exposures (no offer was valid at the cut-off)"
    reference = build_reference(X, model.predict(X) if len(X) else np.zeros(0), FEATURE_NAMES)
    reference["population"] = population
    return reference
