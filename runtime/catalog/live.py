"""The live catalog: the data's catalog (the initial load) with the change log applied on top.

:func:`apply_changes` folds the change log (:mod:`runtime.catalog.changelog`) into the
catalog a worker decides with. Per offer id the latest change wins:

* a change carrying a definition (``offer``: program YAML keys) replaces the offer of that id
  (a data or program offer) in its catalog position, or adds it after the start-up offers
  (in the order offers were first created, so every worker builds the same catalog);
* every change carries a status: ``paused`` and ``retired`` offers stay in the catalog (and in
  the candidates whose scores are computed and cached, so member histories and cached score
  vectors stay valid: see docs/catalog.md) but are *withheld*: the decision pipeline removes
  them from what may be issued and lists them in ``excluded`` as ``OFFER_PAUSED`` or
  ``OFFER_RETIRED``.

Histories refer to the feature vocabulary (the data's products and offers), never to this
catalog, so a live change leaves the catalog fingerprint unchanged (tested).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from models.catalog import Catalog, Offer, offer_from_spec
from models.program import OfferSpec, ProgramConfigError, validate_offer
from runtime.catalog.changelog import ChangeRecord

log = logging.getLogger(__name__)

ACTIVE, PAUSED, RETIRED = "active", "paused", "retired"
STATUSES = (ACTIVE, PAUSED, RETIRED)
#: The reason a withheld offer is listed with in a decision's ``excluded``.
REASONS = {PAUSED: "OFFER_PAUSED", RETIRED: "OFFER_RETIRED"}
#: ``source`` of an offer whose definition came from the change log.
LIVE = "live"


@dataclass(frozen=True)
class LiveCatalog:
    """The catalog at one change-log version.

    ``withheld`` maps each paused or retired offer id to its status; ``latest`` each changed
    offer id to its latest change; ``problems`` each offer whose stored definition no longer
    validates under the program (its start-up definition is kept, and the API shows why).
    """

    version: int
    catalog: Catalog
    withheld: dict[str, str]
    latest: dict[str, ChangeRecord]
    problems: dict[str, str]

    def status(self, offer_id: str) -> str:
        """``active``, ``paused`` or ``retired``."""
        return self.withheld.get(offer_id, ACTIVE)

    def offer_version(self, offer_id: str) -> int:
        """The version of the offer's latest change (0: never changed): its ETag."""
        found = self.latest.get(offer_id)
        return found.version if found is not None else 0


def latest_changes(records: Sequence[ChangeRecord]) -> dict[str, ChangeRecord]:
    """Each offer id's latest change, in the order the ids first appear in the log."""
    out: dict[str, ChangeRecord] = {}
    for record in records:
        out[record.offer_id] = record
    return out


def definition(base: Catalog, latest: dict[str, ChangeRecord], offer_id: str) -> dict[str, Any] | None:
    """The offer's definition in program YAML keys (JSON types): its latest live definition, else
    the program file's; None for an offer defined by the data (or unknown)."""
    found = latest.get(offer_id)
    if found is not None and found.offer is not None:
        return dict(found.offer)
    spec = next((s for s in base.program.offers if s.id == offer_id), None)
    return None if spec is None else spec_json(spec)


def spec_json(spec: OfferSpec) -> dict[str, Any]:
    """An offer spec as the JSON object the log stores and the API shows (defaults left out)."""
    out: dict[str, Any] = spec.model_dump(mode="json", exclude_defaults=True)
    out["id"] = spec.id
    return out


def offer_of(base: Catalog, definition_: dict[str, Any]) -> Offer:
    """A stored definition as a catalog offer, validated under the program as the YAML loader does,
    and proven to fit the catalog's arrays (money beyond int64 minor units is refused here, so one
    change can never make every worker's catalog fail to build).

    Raises ProgramConfigError naming the problem.
    """
    spec = validate_offer(base.program, definition_)
    offer = dataclasses.replace(offer_from_spec(base.program, spec), source=LIVE)
    try:
        Catalog(base.program, [offer])
    except (OverflowError, ValueError) as exc:
        raise ProgramConfigError([("<offer>", None, f"cannot be served: {exc}")], f"offer {spec.id!r}") from None
    return offer


def apply_changes(base: Catalog, records: Sequence[ChangeRecord]) -> LiveCatalog:
    """The catalog ``base`` (the start-up catalog) with every change of ``records`` applied."""
    latest = latest_changes(records)
    offers = list(base.offers)
    position = dict(base.index)
    problems: dict[str, str] = {}
    for offer_id, record in latest.items():
        if record.offer is None:
            if offer_id not in position:
                problems[offer_id] = "a status change of an offer the data no longer has"
            continue
        try:
            offer = offer_of(base, record.offer)
        except ProgramConfigError as exc:
            problems[offer_id] = str(exc)
            log.error("live offer %s (change %d) is not applied: %s", offer_id, record.version, exc)
            continue
        if offer_id in position:
            offers[position[offer_id]] = offer
        else:
            position[offer_id] = len(offers)
            offers.append(offer)
    withheld = {o: r.status for o, r in latest.items() if r.status != ACTIVE and o in position}
    version = records[-1].version if records else 0
    return LiveCatalog(version, Catalog(base.program, offers, base.popularity_map), withheld, latest, problems)
