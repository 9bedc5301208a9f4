"""Training's error: the input cannot be trained on (kept apart so every training module can raise it)."""

from __future__ import annotations

from models.errors import OffersError


class TrainingError(OffersError):
    """Training cannot proceed on this input (bad cut-off, no positives, ...)."""
