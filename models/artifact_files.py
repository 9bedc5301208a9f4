"""The names of a model artifact's files and their checksum, without the model code.

The registry lists, stages and promotes versions by these names alone, so ``offers models
list`` and the registry's own reads do not import LightGBM (:mod:`models.model` loads it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
