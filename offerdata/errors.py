"""The data package's root error, in a module of its own so that naming it (the CLI's error
handling does, for every command) does not import pandas or pyarrow."""

from __future__ import annotations

from models.errors import OffersError


class DataDirError(OffersError):
    """A data directory or one of its tables cannot be used."""
