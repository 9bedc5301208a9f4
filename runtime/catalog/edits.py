"""Changing the live catalog: create or replace, update (JSON merge patch), pause, resume, retire.

:class:`CatalogEditor` turns one request into one change-log line, checked under the log's
writers' lock against every change before it (:meth:`runtime.catalog.changelog.CatalogLog.append`):

* the offer's version (``expected``, the API's ``If-Match``) must still be its latest change's;
* a definition is validated by :func:`models.program.validate_offer`, exactly as the program
  file's loader validates an entry of ``offers:``;
* an offer defined by the data (the contract's ``offers`` table) has no YAML definition to
  patch: only its ``status`` changes, or a ``PUT`` replaces it with a whole definition.

Every line records who (the API key's public id, or the console's / CLI's operator), when
(the machine clock, UTC) and what (the request's body) besides the result, so the log is the
audit trail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from models.catalog import Catalog
from models.program import ProgramConfigError, validate_offer
from runtime.catalog.changelog import CatalogLog, ChangeRecord
from runtime.catalog.live import (
    ACTIVE,
    PAUSED,
    RETIRED,
    definition,
    latest_changes,
    offer_of,
    spec_json,
)
from runtime.errors import OffersRuntimeError

#: Statuses a request may set (``retired`` is set by retiring).
SETTABLE = (ACTIVE, PAUSED)


class OfferNotFound(OffersRuntimeError, LookupError):
    """No offer of this id in the catalog (data, program or live)."""


class VersionMismatch(OffersRuntimeError):
    """The offer changed since the version the request names (its If-Match)."""

    def __init__(self, offer_id: str, expected: int, current: int):
        super().__init__(f"offer {offer_id!r} is at version {current}, not {expected}: read it again and retry")
        self.current = current


class OfferRetired(OffersRuntimeError):
    """The offer is retired: only a whole new definition (PUT) brings it back."""


class InvalidChange(OffersRuntimeError, ValueError):
    """The request's offer is invalid; ``issues`` are (field path, message) pairs."""

    def __init__(self, issues: list[tuple[str, str]]):
        super().__init__("; ".join(f"{p}: {m}" for p, m in issues))
        self.issues = issues


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch: objects merge key by key, ``null`` removes a key, anything else replaces."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_patch(out[key], value)
        else:
            out[key] = value
    return out


class CatalogEditor:
    """Validates and appends changes to the change log of ``log`` over the start-up catalog ``base``."""

    def __init__(self, log: CatalogLog, base: Catalog, wall: Callable[[], float] = time.time):
        self.log = log
        self.base = base
        self._wall = wall

    def _now(self) -> str:
        return datetime.fromtimestamp(self._wall(), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _validated(self, offer_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body`` (offer keys) validated as an entry of the program's ``offers:``, as stored."""
        if "id" in body and body["id"] != offer_id:
            raise InvalidChange([("id", f"must be the path's offer id {offer_id!r} (or left out)")])
        try:
            spec = validate_offer(self.base.program, {**body, "id": offer_id})
            stored = spec_json(spec)
            offer_of(self.base, stored)  # it must also build into the catalog's arrays
        except ProgramConfigError as exc:
            raise InvalidChange([(path, msg) for path, _, msg in exc.issues]) from None
        return stored

    def _status(self, body: Mapping[str, Any], default: str) -> str:
        status = body.get("status", default)
        if status not in SETTABLE:
            raise InvalidChange([("status", f"must be one of {', '.join(SETTABLE)} (DELETE retires an offer)")])
        return str(status)

    def _check(self, latest: dict[str, ChangeRecord], offer_id: str, expected: int | None) -> ChangeRecord | None:
        found = latest.get(offer_id)
        current = found.version if found is not None else 0
        if expected is not None and expected != current:
            raise VersionMismatch(offer_id, expected, current)
        return found

    def _known(self, latest: dict[str, ChangeRecord], offer_id: str) -> bool:
        return offer_id in self.base.index or offer_id in latest

    def put(self, offer_id: str, body: Mapping[str, Any], who: str, expected: int | None = None) -> ChangeRecord:
        """Create the offer, or replace its whole definition (a retired offer comes back)."""
        fields = {k: v for k, v in body.items() if k != "status"}
        status = self._status(body, ACTIVE)
        offer = self._validated(offer_id, fields)

        def build(records: list[ChangeRecord], version: int) -> ChangeRecord:
            latest = latest_changes(records)
            self._check(latest, offer_id, expected)
            op = "replace" if self._known(latest, offer_id) else "create"
            return ChangeRecord(version, self._now(), who, op, offer_id, status, offer, dict(body))

        return self.log.append(build)

    def patch(self, offer_id: str, body: Mapping[str, Any], who: str, expected: int | None = None) -> ChangeRecord:
        """Change some keys (JSON merge patch) and/or the status (``paused``/``active``)."""
        if not body:
            raise InvalidChange([("<body>", "names nothing to change: send offer keys and/or status")])
        fields = {k: v for k, v in body.items() if k != "status"}

        def build(records: list[ChangeRecord], version: int) -> ChangeRecord:
            latest = latest_changes(records)
            found = self._check(latest, offer_id, expected)
            if not self._known(latest, offer_id):
                raise OfferNotFound(offer_id)
            current = found.status if found is not None else ACTIVE
            if current == RETIRED:
                raise OfferRetired(f"offer {offer_id!r} is retired; PUT a whole definition to bring it back")
            status = self._status(body, current)
            base = definition(self.base, latest, offer_id)
            if base is None and fields:
                raise InvalidChange([(sorted(fields)[0], "this offer is defined by the data's offers table: "
                                                         "PATCH only its status, or PUT a whole definition")])
            offer: dict[str, Any] | None
            if fields:
                assert base is not None
                offer, op = self._validated(offer_id, merge_patch(base, fields)), "update"
            else:  # a status change keeps the definition (the data's or program's stays theirs)
                offer = found.offer if found is not None else None
                op = ("pause" if status == PAUSED and current != PAUSED else
                      "resume" if status == ACTIVE and current != ACTIVE else "update")
            return ChangeRecord(version, self._now(), who, op, offer_id, status, offer, dict(body))

        return self.log.append(build)

    def retire(self, offer_id: str, who: str, expected: int | None = None) -> ChangeRecord:
        """Retire the offer: never issued again (kept in the log and the audit trail)."""
        def build(records: list[ChangeRecord], version: int) -> ChangeRecord:
            latest = latest_changes(records)
            found = self._check(latest, offer_id, expected)
            if not self._known(latest, offer_id):
                raise OfferNotFound(offer_id)
            if found is not None and found.status == RETIRED:
                raise OfferRetired(f"offer {offer_id!r} is already retired")
            offer = found.offer if found is not None else None
            return ChangeRecord(version, self._now(), who, "retire", offer_id, RETIRED, offer, {})

        return self.log.append(build)
