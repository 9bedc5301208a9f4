"""What every decision needs besides the member: the program, both catalogs, the clock.

:class:`DecisionSetup` is loaded once per process from a data directory (its
``products``, ``offers`` and ``offer_products`` tables, plus ``exposures`` and
``redemptions`` for offer popularity) and a program config. It holds:

* the decision :class:`~models.catalog.Catalog` (contract offers + the program's own),
  with each offer's observed response rate as the cold-start popularity;
* the :class:`~models.features.FeatureVocabulary` the model's features and the members'
  history records are defined against, and its fingerprint;
* the :class:`~runtime.decisions.clock.ServiceClock`.

:meth:`DecisionSetup.universe` gives the candidate offers at a moment: every offer
whose validity window contains it, in catalog order. Those are what a decision considers
and what scores are computed (and cached) for, because the model's within-campaign
features compare a member's offers of one campaign with each other, exactly as training
saw every offer of a campaign. Requests' ``exclude_offer_ids`` are removed afterwards.

Nothing here touches Flask or a store: the service, ``offers materialize`` and
``offers batch`` share it.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from models.catalog import Catalog, build_catalog
from models.features import FeatureVocabulary
from models.features.online import catalog_fingerprint
from models.moment import Moment, local_seconds
from models.program import Program, load_program
from offerdata.loader import load_catalog
from offerdata.tables import read_table, read_table_chunks
from runtime.decisions.clock import ServiceClock, aware

#: The program used when OFFERS_PROGRAM is not set: one tier, default decision settings.
DEFAULT_PROGRAM = """
name: Default program (OFFERS_PROGRAM not set)
timezone: UTC
tier_policy:
  metric: spend
  window: {type: rolling, days: 365}
tiers:
  - {name: Member, threshold: 0}
"""
#: An offer's response rate counts as its popularity only after this many exposures.
MIN_EXPOSURES = 20
_UNIVERSES_KEPT = 64


@dataclass(frozen=True)
class Universe:
    """The candidate offers of decisions at one moment (all offers valid then).

    ``feature_index`` gives each candidate's position in the feature catalog (-1 for the
    program's own offers, which the model cannot score); ``scorable`` lists the
    candidates that have one. ``digest`` names the candidate set in cache slots.
    """

    offer_ids: tuple[str, ...]
    feature_index: np.ndarray
    scorable: np.ndarray
    digest: str

    def slot(self, model_version: str, channel: str) -> str:
        """The score-cache field for this candidate set, model version and channel."""
        return f"{model_version}|{channel}|{self.digest}"


class DecisionSetup:
    """Program, catalogs and clock of one data directory; see the module docstring."""

    def __init__(self, program: Program, catalog: Catalog, features: FeatureVocabulary, clock: ServiceClock,
                 latest_transaction: datetime | None = None, data_dir: Path | None = None):
        self.program = program
        self.catalog = catalog
        self.features = features
        self.clock = clock
        self.latest_transaction = latest_transaction
        self.data_dir = data_dir
        self.zone = ZoneInfo(program.timezone)
        self.fingerprint = catalog_fingerprint(features)
        self._feature_pos = features.offer_index([o.offer_id for o in catalog.offers])
        self._universes: OrderedDict[bytes, Universe] = OrderedDict()
        self._lock = threading.Lock()  # a model swap thread may ask while a request does
        self.cap_windows = cap_windows(catalog)
        self.record_windows = {subject: self._by_feature_index(self.cap_windows[subject])
                               for subject in ("impression", "redeem")}
        #: paused or retired offers (id -> status): never issued (runtime.catalog)
        self.withheld: dict[str, str] = {}
        #: the live catalog's change-log version this setup decides with (0: the start-up catalog)
        self.catalog_version = 0

    def with_catalog(self, catalog: Catalog, withheld: dict[str, str], version: int) -> DecisionSetup:
        """This setup with another decision catalog (a live catalog change, runtime.catalog).

        Program, feature vocabulary, fingerprint and clock stay: histories and their records
        refer to the vocabulary, which a live change never touches.
        """
        out = DecisionSetup(self.program, catalog, self.features, self.clock, self.latest_transaction, self.data_dir)
        out.withheld, out.catalog_version = dict(withheld), version
        return out

    def _by_feature_index(self, windows: dict[str, int | None]) -> np.ndarray:
        """Cap windows (seconds; inf for lifetime; NaN when uncapped) by feature offer index."""
        out = np.full(self.features.n_offers, np.nan)
        index = self.features.offer_index(list(windows))
        for fi, window in zip(index.tolist(), windows.values(), strict=True):
            if fi >= 0:
                out[fi] = np.inf if window is None else window
        return out

    # -- loading --------------------------------------------------------------------
    @classmethod
    def load(cls, data_dir: str | os.PathLike[str], program: str | os.PathLike[str] | None = None,
             clock: str = "wall", wall: Callable[[], float] = time.time) -> DecisionSetup:
        """Load the catalogs of a (validated) data directory under a program config.

        ``clock`` is an ``OFFERS_CLOCK`` value; ``wall`` the machine clock it reads in
        ``wall`` mode (tests inject a fixed one).

        Popularity (the cold-start fallback) is each offer's redemptions per exposure,
        for offers whose validity ended before the clock's time at loading (complete
        outcomes only: a running campaign's rate would be biased low) and that were exposed
        at least :data:`MIN_EXPOSURES` times.
        """
        prog = load_program(Path(program)) if program is not None else load_program(DEFAULT_PROGRAM)
        zone = ZoneInfo(prog.timezone)
        last = last_purchase(data_dir)
        latest = aware(last, zone) if last is not None else None
        service_clock = ServiceClock(clock, zone, latest, wall=wall)
        features = load_catalog(data_dir)
        offers = read_table(data_dir, "offers")
        offer_products = read_table(data_dir, "offer_products")
        products = read_table(data_dir, "products", columns=["product_id", "category"])
        cutoff = local_time(service_clock.now(), zone)
        ended = offers.loc[offers["ends_at"] < cutoff, "offer_id"].astype(str)
        catalog = build_catalog(prog, offers, offer_products, products,
                                popularity=popularity(data_dir, set(ended)))
        return cls(prog, catalog, features, service_clock, latest, Path(data_dir))

    # -- time ---------------------------------------------------------------------------
    def moment(self, when: datetime | None = None) -> Moment:
        """``when`` (aware; default the clock's now) in every form a decision reads (models.moment)."""
        return Moment.at(when if when is not None else self.clock.now(), self.zone)

    def local(self, when: datetime) -> pd.Timestamp:
        """``when`` (aware) as naive local program time, the decision core's ``as_of``."""
        return local_time(when, self.zone)

    def seconds(self, local: pd.Timestamp) -> int:
        """Local program time as the int64 seconds history records and features use."""
        return local_seconds(local)  # floored, as to_seconds does

    def epoch(self, local: pd.Timestamp) -> int:
        """Local program time as UTC epoch seconds (the stores' clock)."""
        return int(aware(local, self.zone).timestamp())

    # -- candidates -------------------------------------------------------------------------
    def universe(self, as_of: pd.Timestamp) -> Universe:
        """The offers valid at ``as_of`` (naive local), memoised by the set they form."""
        now = pd.Timestamp(as_of).value
        valid = (self.catalog.starts <= now) & (now <= self.catalog.ends)
        key = np.packbits(valid).tobytes()
        with self._lock:
            found = self._universes.get(key)
            if found is not None:
                self._universes.move_to_end(key)
                return found
        positions = np.flatnonzero(valid)
        ids = tuple(self.catalog.offers[p].offer_id for p in positions)
        feature_index = self._feature_pos[positions]
        universe = Universe(offer_ids=ids, feature_index=feature_index,
                            scorable=np.flatnonzero(feature_index >= 0),
                            digest=hashlib.sha256("\x1f".join(ids).encode()).hexdigest()[:12])
        with self._lock:
            self._universes[key] = universe
            if len(self._universes) > _UNIVERSES_KEPT:
                self._universes.popitem(last=False)
        return universe


def cap_windows(catalog: Catalog) -> dict[str, dict[str, int | None]]:
    """Per counted subject (impression, issue, redeem), the offers capped on it and the
    cap's window in seconds (None: over the offer's life)."""
    out: dict[str, dict[str, int | None]] = {"impression": {}, "issue": {}, "redeem": {}}
    for offer in catalog.offers:
        caps = offer.caps
        window = None if caps.window_days is None else int(caps.window_days) * 86_400
        for subject, limit in (("impression", caps.impressions), ("issue", caps.issues),
                               ("redeem", caps.redemptions)):
            if limit:
                out[subject][offer.offer_id] = window
    return out


def local_time(when: datetime | pd.Timestamp, zone: ZoneInfo) -> pd.Timestamp:
    """An aware moment as naive local time in ``zone``."""
    ts = pd.Timestamp(when)
    if ts.tzinfo is None:
        ts = ts.tz_localize(UTC)
    return ts.tz_convert(zone).tz_localize(None)


#: Rows read at a time by the whole-table scans of :meth:`DecisionSetup.load` (a test makes it small).
SCAN_ROWS = 1_000_000


def last_purchase(data_dir: str | os.PathLike[str]) -> pd.Timestamp | None:
    """The latest ``purchased_at`` of the transactions (None when there is none), read a chunk
    at a time: the table grows with members, and a decision setup must not hold it."""
    latest = None
    for chunk in read_table_chunks(data_dir, "transactions", ["purchased_at"], SCAN_ROWS):
        top = chunk["purchased_at"].max()
        if pd.notna(top) and (latest is None or top > latest):
            latest = top
    return latest


def _counts(data_dir: str | os.PathLike[str], name: str, offers: set[str]) -> pd.Series:
    """How many rows of table ``name`` each of ``offers`` has, counted a chunk at a time."""
    total = pd.Series(dtype="int64")
    for chunk in read_table_chunks(data_dir, name, ["offer_id"], SCAN_ROWS):
        ids = chunk["offer_id"].astype(str)
        total = total.add(ids[ids.isin(offers)].value_counts(), fill_value=0)
    return total.astype("int64")


def popularity(data_dir: str | os.PathLike[str], offers: set[str]) -> dict[str, float]:
    """Offer id -> redemptions per exposure, for ``offers`` (those whose outcomes are complete)."""
    shown = _counts(data_dir, "exposures", offers)
    used = _counts(data_dir, "redemptions", offers)
    shown = shown[shown >= MIN_EXPOSURES]
    rate = used.reindex(shown.index, fill_value=0) / shown
    return {str(k): float(v) for k, v in rate.items()}
