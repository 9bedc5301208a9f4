"""API keys and their scopes: parsing ``OFFERS_API_KEYS`` and matching a presented key.

Format of ``OFFERS_API_KEYS``::

    <key>:<scope>[,<scope>...][;<key>:<scope>[,<scope>...]...]

for example ``"k7Qd...x2:decisions,events;Zp9...4f:admin"``. Scopes are ``decisions``,
``events``, ``admin`` and ``support``; a scope grants exactly its endpoints (``admin`` does not
imply the others). ``support`` grants only the read-only operator console (:mod:`service.console`);
``admin`` grants the whole console as well as the admin endpoints. Keys are at least 16 characters of printable ASCII without
whitespace, ``:``, ``;`` or ``,``. Whitespace around entries is ignored, so the value can
be spread over lines.

Keys are kept only as SHA-256 digests; a presented key is hashed once and compared with
every configured digest by :func:`hmac.compare_digest`, so neither the comparison nor
the loop reveals which key, or how much of one, matched. This module is pure (no Flask).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Literal, get_args

Scope = Literal["decisions", "events", "admin", "support"]
SCOPES: tuple[str, ...] = get_args(Scope)
MIN_KEY_LENGTH = 16
_KEY_RE = re.compile(r"^[!-~]+$")


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its digest, a short public id for logs, and its scopes."""

    digest: bytes
    key_id: str
    scopes: frozenset[str]

    def __repr__(self) -> str:  # never print anything that could help guess the key
        return f"ApiKey(key_id={self.key_id!r}, scopes={sorted(self.scopes)!r})"


def digest(key: str) -> bytes:
    """SHA-256 of a key, the only form in which keys are kept."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def make_key(key: str, scopes: set[str] | frozenset[str] | tuple[str, ...]) -> ApiKey:
    """Build an :class:`ApiKey`, checking the key's form and the scope names."""
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"API keys must be at least {MIN_KEY_LENGTH} characters (one has {len(key)})")
    if not _KEY_RE.match(key) or any(c in key for c in ":;,"):
        raise ValueError("API keys are printable ASCII without whitespace, ':', ';' or ','")
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scope {sorted(unknown)[0]!r}; scopes are {', '.join(SCOPES)}")
    if not scopes:
        raise ValueError("every API key needs at least one scope")
    d = digest(key)
    return ApiKey(digest=d, key_id=d.hex()[:8], scopes=frozenset(scopes))


def parse_api_keys(text: str) -> tuple[ApiKey, ...]:
    """Parse the ``OFFERS_API_KEYS`` format; raise ValueError saying what is wrong."""
    keys: list[ApiKey] = []
    for n, entry in enumerate((e.strip() for e in text.split(";")), start=1):
        if not entry:
            continue
        key, sep, scope_text = entry.partition(":")
        if not sep:
            raise ValueError(f"entry {n} has no ':' between the key and its scopes")
        scopes = tuple(s.strip() for s in scope_text.split(",") if s.strip())
        try:
            keys.append(make_key(key.strip(), scopes))
        except ValueError as exc:
            raise ValueError(f"entry {n}: {exc}") from None
    if len({k.digest for k in keys}) != len(keys):
        raise ValueError("the same key is listed twice")
    return tuple(keys)


@dataclass(frozen=True)
class Keyring:
    """The configured keys; answers which key, if any, a request presented."""

    keys: tuple[ApiKey, ...] = ()

    @property
    def open(self) -> bool:
        """True when no key is configured: decisions and events need no key (local demo)."""
        return not self.keys

    @property
    def admin_enabled(self) -> bool:
        """True when some key carries the admin scope; otherwise admin endpoints refuse everyone."""
        return any("admin" in k.scopes for k in self.keys)

    @property
    def console_enabled(self) -> bool:
        """True when some key may sign in to the operator console (scope admin or support);
        otherwise the console is closed to everyone rather than open."""
        return any(k.scopes & {"admin", "support"} for k in self.keys)

    def find(self, key_id: str) -> ApiKey | None:
        """The configured key with this public id (a console session names its key so)."""
        return next((k for k in self.keys if k.key_id == key_id), None)

    def match(self, presented: str) -> ApiKey | None:
        """The configured key equal to ``presented``, compared in constant time; else None."""
        d = digest(presented)
        found: ApiKey | None = None
        for key in self.keys:  # no early exit: the time does not depend on which key matched
            if hmac.compare_digest(key.digest, d):
                found = key
        return found
