"""Defaults a data directory carries for the commands that read it.

An importer may write ``program.yaml`` (the program config) and ``decision_moment.txt`` (one
ISO 8601 timestamp: when decisions and scores are made) into the directory it creates.
``offers train``, ``offers score`` and ``offers batch`` use them when no ``--config`` /
``--program`` / ``--as-of`` is given, so a directory is self-describing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from offerdata.experiments.contract import MOMENT_FILE, PROGRAM_FILE
from offerdata.tables import DataDirError


def default_program(data_dir: str | os.PathLike[str]) -> Path | None:
    """``DIR/program.yaml`` when the directory has one."""
    path = Path(data_dir) / PROGRAM_FILE
    return path if path.is_file() else None


def decision_moment(data_dir: str | os.PathLike[str]) -> pd.Timestamp | None:
    """The timestamp in ``DIR/decision_moment.txt``, or None without one; DataDirError when unparsable."""
    path = Path(data_dir) / MOMENT_FILE
    if not path.is_file():
        return None
    text = path.read_text().strip()
    try:
        return pd.Timestamp(text)
    except ValueError as exc:
        raise DataDirError(f"{path}: {text!r} is not an ISO 8601 timestamp") from exc
