"""A file-based model registry: immutable versions plus ``champion``/``challenger`` aliases.

Layout::

    REG/
      versions/<version>/   one model artifact each (see models.model), never modified
      aliases.json          {"aliases": {"champion": v, "challenger": v}, "routing": {"challenger_share": s},
                            "history": [...]}
      .lock                 flock taken around every read-modify-write of aliases.json

Every change is atomic: a new version is built in a staging directory inside REG and
renamed into ``versions/``; aliases.json is written to a temporary file, fsynced and
renamed over the old one. ``promote`` refuses a version whose artifact cannot be served
(a corrupt or truncated model file is proven unloadable without loading it here) and
records the alias's previous target in the history so ``rollback`` can restore it; the
service reads that history to find its last-known-good model. Training writes; the
service only reads.
"""

from __future__ import annotations

import builtins
import datetime as dt
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.artifact_files import METADATA_FILE, MODEL_FILE, sha256_file
from models.errors import RegistryError

ALIASES = ("champion", "challenger")
VERSION_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")


@dataclass(frozen=True)
class VersionInfo:
    """One registered version: its id, when it was made, headline metrics and aliases."""

    version: str
    created_at: str
    metrics: dict[str, Any]
    aliases: tuple[str, ...]
    train_end: str | None


class Registry:
    """A model registry rooted at a directory."""

    def __init__(self, root: str | os.PathLike[str], create: bool = False):
        self.root = Path(root)
        if not (self.root / "versions").is_dir():
            if not create:
                raise RegistryError(f"model registry {str(root)!r} does not exist (train a model first: offers train)")
            (self.root / "versions").mkdir(parents=True, exist_ok=True)
        if not (self.root / "aliases.json").exists():
            with self._locked():
                if not (self.root / "aliases.json").exists():
                    self._write_aliases({"aliases": dict.fromkeys(ALIASES), "history": []})

    # -- internals ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read_aliases(self) -> dict[str, Any]:
        try:
            state = json.loads((self.root / "aliases.json").read_text())
        except FileNotFoundError:
            return {"aliases": dict.fromkeys(ALIASES), "history": []}
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{self.root / 'aliases.json'} is corrupt: {exc}") from exc
        return state if isinstance(state, dict) else {"aliases": dict.fromkeys(ALIASES), "history": []}

    def _write_aliases(self, state: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".aliases-", dir=self.root)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.root / "aliases.json")

    # -- versions ----------------------------------------------------------------------------
    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A scratch directory inside the registry to build an artifact in; removed afterwards."""
        path = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def register(self, staged: Path, now: dt.datetime | None = None) -> str:
        """Move a complete staged artifact into ``versions/`` under a new version id."""
        if not (staged / MODEL_FILE).is_file() or not (staged / METADATA_FILE).is_file():
            raise RegistryError(f"{staged} is not a complete model artifact")
        stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S")
        version = f"{stamp}-{sha256_file(staged / MODEL_FILE)[:6]}"
        meta = json.loads((staged / METADATA_FILE).read_text())
        meta["version"] = version
        (staged / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        target = self.root / "versions" / version
        if target.exists():
            raise RegistryError(f"version {version} already exists")
        os.rename(staged, target)
        return version

    def versions(self) -> list[str]:
        """Every registered version id, oldest first."""
        return sorted(p.name for p in (self.root / "versions").iterdir() if VERSION_RE.match(p.name))

    def resolve(self, ref: str = "champion") -> str:
        """The version id an alias or version id names; RegistryError when it names nothing."""
        if ref in ALIASES:
            target = self._read_aliases()["aliases"].get(ref)
            if not target:
                raise RegistryError(f"no model is {ref} yet in {self.root} (promote one: offers models promote)")
            return str(target)
        if ref == "latest":
            versions = self.versions()
            if not versions:
                raise RegistryError(f"registry {self.root} holds no model yet")
            return versions[-1]
        if ref not in self.versions():
            raise RegistryError(f"unknown model version {ref!r} in {self.root}")
        return ref

    def path(self, ref: str = "champion") -> Path:
        """Directory of the artifact an alias or version id names."""
        return self.root / "versions" / self.resolve(ref)

    def info(self, version: str) -> VersionInfo:
        """Metadata summary of one version."""
        meta = json.loads((self.root / "versions" / version / METADATA_FILE).read_text())
        aliases = self._read_aliases()["aliases"]
        return VersionInfo(version=version, created_at=str(meta.get("created_at", "")),
                           metrics=dict(meta.get("headline_metrics", {})),
                           aliases=tuple(a for a in ALIASES if aliases.get(a) == version),
                           train_end=meta.get("train_end"))

    def list(self) -> list[VersionInfo]:
        """Every version with its aliases, oldest first."""
        return [self.info(v) for v in self.versions()]

    def aliases(self) -> dict[str, str | None]:
        """Current alias targets."""
        return dict(self._read_aliases()["aliases"])

    def earlier(self, alias: str = "champion") -> builtins.list[str]:
        """The versions ``alias`` pointed at before its current target, most recent first, once each."""
        state = self._read_aliases()
        current = state["aliases"].get(alias)
        out: builtins.list[str] = []
        for entry in reversed(state.get("history", [])):
            if entry.get("alias") != alias:
                continue
            for version in (entry.get("to"), entry.get("from")):
                if version and version != current and version not in out and version in self.versions():
                    out.append(str(version))
        return out

    def challenger_share(self) -> float | None:
        """The share of members routed to the challenger set by :meth:`route`; None when the
        registry leaves it to the program's ``decisions.challenger.share``."""
        share = self._read_aliases().get("routing", {}).get("challenger_share")
        return None if share is None else float(share)

    def route(self, challenger_share: float | None) -> None:
        """Set (or with None, clear) the share of members whose decisions the challenger makes.

        Why here: every serving worker already watches aliases.json for promotions, so a new
        share reaches every worker within a second, without a restart. Recorded in the history.
        """
        if challenger_share is not None and not 0.0 <= challenger_share <= 1.0:
            raise RegistryError(f"the challenger share must lie in [0, 1], got {challenger_share}")
        with self._locked():
            state = self._read_aliases()
            previous = state.get("routing", {}).get("challenger_share")
            state["routing"] = {} if challenger_share is None else {"challenger_share": challenger_share}
            state["history"].append({"routing": "challenger_share", "from": previous, "to": challenger_share,
                                     "at": dt.datetime.now(dt.UTC).isoformat()})
            self._write_aliases(state)

    # -- aliases ----------------------------------------------------------------------------
    def verify(self, ref: str) -> str:
        """The version ``ref`` names, once its artifact is proven servable; RegistryError otherwise.

        Loads it as a server would (:meth:`models.model.PropensityModel.load`: checksum,
        structural check of the model text, a first load in a child process, features),
        so a corrupt model never becomes an alias, and this process never parses it
        before it is proven loadable.
        """
        from models.model import ArtifactError
        from models.uplift import load_serving_model

        version = self.resolve(ref)
        path = self.root / "versions" / version
        try:
            load_serving_model(path)  # a propensity or an uplift model, every booster checked
        except ArtifactError as exc:
            raise RegistryError(f"version {version} cannot be served, so it is not promoted: {exc}") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"version {version} cannot be served, so it is not promoted: "
                                f"unreadable metadata ({exc})") from exc
        return version

    def promote(self, ref: str, alias: str = "champion", check: bool = True) -> str:
        """Point ``alias`` at the version ``ref`` names, remembering the previous target.

        The version is first proven servable (:meth:`verify`); ``check=False`` skips that
        (tests use it to stage a champion that went bad after its promotion).
        """
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r}; expected one of {', '.join(ALIASES)}")
        if check:
            self.verify(ref)
        with self._locked():
            version = self.resolve(ref)
            state = self._read_aliases()
            previous = state["aliases"].get(alias)
            if previous == version:
                return version
            state["aliases"][alias] = version
            state["history"].append({"alias": alias, "from": previous, "to": version,
                                     "at": dt.datetime.now(dt.UTC).isoformat()})
            self._write_aliases(state)
        return version

    @staticmethod
    def _rollback_target(state: dict[str, Any], alias: str) -> str:
        """The version a rollback of ``alias`` would restore; RegistryError when there is none."""
        entries = [h for h in state["history"] if h.get("alias") == alias and not h.get("rolled_back")]
        if not entries:
            raise RegistryError(f"{alias} has no earlier version to roll back to")
        if not entries[-1]["from"]:
            raise RegistryError(f"{alias} had no version before {entries[-1]['to']}; nothing to roll back to")
        return str(entries[-1]["from"])

    def rollback(self, alias: str = "champion", check: bool = True) -> str:
        """Restore ``alias`` to the version it pointed at before its last promotion.

        Like :meth:`promote`, the version restored is first proven servable (an artifact can
        go bad on disk after it served); ``check=False`` skips that.
        """
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r}; expected one of {', '.join(ALIASES)}")
        if check:
            target = self._rollback_target(self._read_aliases(), alias)
            try:
                self.verify(target)
            except RegistryError as exc:
                raise RegistryError(f"{alias} is not rolled back: {exc}") from None
        with self._locked():
            state = self._read_aliases()
            entries = [i for i, h in enumerate(state["history"]) if h.get("alias") == alias and not h.get("rolled_back")]
            self._rollback_target(state, alias)
            last = state["history"][entries[-1]]
            state["aliases"][alias] = last["from"]
            last["rolled_back"] = True
            state["history"].append({"alias": alias, "from": last["to"], "to": last["from"], "rollback": True,
                                     "rolled_back": True, "at": dt.datetime.now(dt.UTC).isoformat()})
            self._write_aliases(state)
            return str(last["from"])
