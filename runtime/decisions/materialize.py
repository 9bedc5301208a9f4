"""Loading a data directory into the online store, and warming the score cache.

:func:`materialize` writes, for every member of a validated data directory, the history
records (:mod:`models.features.online`) and the profile (catalog fingerprint, join
date, segment, birth month, channels) the service's features and eligibility read.
Writes go in pipelines of :data:`CHUNK` members, so memory and round trips stay bounded.
Re-running it replaces each member's history (events appended since are lost unless the
data holds them) and drops their cached scores. Last, it writes a new generation marker
(:meth:`Store.put_generation`): decisions read it with every member, and its absence tells
the service that the store lost its data (docs/redis.md, "Failures").

:func:`warm_cache` then scores each member with history against the offers valid at the
clock's time and caches the vectors under the model version's cache slot, so the first
real-time decisions are cache hits. ``offers materialize`` runs both; the service runs
:func:`materialize` into its in-process store at start-up when no Redis is configured.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.data_contract import split_list
from models.features import History
from models.features.online import catalog_ids, member_records
from models.model import PropensityModel
from models.units import NO_TIME
from offerdata.attributes import read_attributes
from offerdata.loader import load_history
from offerdata.tables import read_table
from runtime.decisions.scoring import feature_rows, predict
from runtime.decisions.setup import DecisionSetup
from runtime.stores import MemberProfile, MemberWrite, Store
from runtime.stores.interfaces import ScoreCache

CHUNK = 1000
Progress = Callable[[int], None]


@dataclass(frozen=True)
class MaterializeSummary:
    """What :func:`materialize` wrote."""

    members: int
    records: int
    bytes: int
    #: The generation marker written after the members
    generation: str = ""


def _opt_int(value: object) -> int | None:
    return None if value is None or pd.isna(value) else int(value)  # type: ignore[call-overload]


def _opt_str(value: object) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def profiles(setup: DecisionSetup, data_dir: str | os.PathLike[str], hist: History,
             only_these: bool = False) -> list[MemberProfile]:
    """Each member's profile from the ``members`` table, aligned with ``hist.member_ids``.

    ``only_these``: read only these members' rows (a Dask worker's partition), not the whole table.
    """
    wanted = hist.member_ids.astype(str).tolist() if only_these and hist.n_members else None
    frame = read_table(data_dir, "members", columns=["member_id", "birth_month", "segment", "channels"],
                       member_ids=wanted)
    frame = frame.set_index(frame["member_id"].astype(str)).reindex(hist.member_ids.astype(str))
    attributes = member_attributes(data_dir, hist.member_ids.astype(str))
    # plain object arrays, read by position: a pandas row per member (iterrows) cost more than
    # everything else here
    segments, births, channel_lists = (frame[c].to_numpy(dtype=object) for c in ("segment", "birth_month", "channels"))
    out = []
    for i, joined in enumerate(hist.joined_at.tolist()):
        channels = channel_lists[i]
        out.append(MemberProfile(
            fingerprint=setup.fingerprint, joined_at=None if joined == NO_TIME else int(joined),
            segment=_opt_str(segments[i]), birth_month=_opt_int(births[i]),
            channels=None if _opt_str(channels) is None else split_list(channels),
            attributes=None if attributes is None else attributes[i]))
    return out


def member_attributes(data_dir: str | os.PathLike[str], member_ids: np.ndarray
                      ) -> list[tuple[tuple[str, str | float], ...]] | None:
    """Each member's ``attr_*`` values as (name, value) pairs, aligned with ``member_ids``;
    None when the members table has no attribute column (nothing to store)."""
    frame = read_attributes(data_dir)
    names = [c for c in frame.columns if c != "member_id"]
    if not names:
        return None
    frame = frame.set_index(frame["member_id"].astype(str)).reindex(member_ids)
    columns = [(name, frame[name].to_numpy(dtype=object)) for name in names]
    out = []
    for i in range(len(frame)):
        pairs = []
        for name, values in columns:
            v = values[i]
            if v is None or (not isinstance(v, str) and pd.isna(v)):
                continue
            pairs.append((name, v if isinstance(v, str) else float(v)))
        out.append(tuple(pairs))
    return out


def load_members(setup: DecisionSetup, data_dir: str | os.PathLike[str],
                 members: Sequence[str] | None = None) -> tuple[History, list[MemberProfile]]:
    """Histories and profiles of every (or the listed) member of a validated data directory.

    Basket codes are the stable ones (hashes of the basket ids), so what a Dask worker loads
    for its partition writes the same bytes (:mod:`runtime.decisions.cluster_materialize`).
    """
    hist, _, _ = load_history(data_dir, setup.features, members, stable_baskets=True)
    return hist, profiles(setup, data_dir, hist)


def materialize(store: Store, setup: DecisionSetup, hist: History, member_profiles: Sequence[MemberProfile],
                chunk: int = CHUNK, progress: Progress | None = None) -> MaterializeSummary:
    """Write every member's records and profile, :data:`CHUNK` members per pipeline, then a new
    generation marker (only once every member is written, so an interrupted run leaves a wiped
    store flagged as such)."""
    store.put_catalog(setup.fingerprint, catalog_ids(setup.features))
    written = write_members(store, hist, member_profiles, chunk, progress)
    generation = new_generation(setup)
    store.put_generation(generation)
    return MaterializeSummary(members=written.members, records=written.records, bytes=written.bytes,
                              generation=generation)


def write_members(store: Store, hist: History, member_profiles: Sequence[MemberProfile], chunk: int = CHUNK,
                  progress: Progress | None = None) -> MaterializeSummary:
    """The member part of :func:`materialize`: records and profiles, :data:`CHUNK` members per
    pipeline, no catalog and no generation marker (a Dask worker writes its partition with this;
    the client writes those once)."""
    records = member_records(hist)
    ids = hist.member_ids.astype(str)
    total = 0
    for lo in range(0, hist.n_members, chunk):
        hi = min(lo + chunk, hist.n_members)
        store.put_members([MemberWrite(ids[i], records[i], member_profiles[i]) for i in range(lo, hi)])
        total += sum(len(records[i]) for i in range(lo, hi))
        if progress is not None:
            progress(hi - lo)
    n_records = len(hist.line_time) + len(hist.exp_time) + len(hist.red_time)
    return MaterializeSummary(members=hist.n_members, records=n_records, bytes=total)


def new_generation(setup: DecisionSetup) -> str:
    """A fresh generation marker for a materialization under ``setup``'s catalog."""
    return f"{setup.fingerprint}-{uuid.uuid4().hex[:12]}"


def members_with_history(setup: DecisionSetup, hist: History, as_of: pd.Timestamp) -> np.ndarray:
    """Indices of members with a purchase line before ``as_of`` (the ones a model scores)."""
    t = setup.seconds(as_of)
    lines = np.bincount(hist.line_member[(hist.line_time < t) & (hist.line_member >= 0)], minlength=hist.n_members)
    return np.flatnonzero(lines > 0)


def warm_cache(store: ScoreCache, setup: DecisionSetup, model: PropensityModel, hist: History,
               as_of: pd.Timestamp, channels: Sequence[str], chunk: int = 200,
               progress: Progress | None = None) -> int:
    """Cache every member-with-history's scores for the offers valid at ``as_of``.

    Vectors are written under the slot ``<model version>|<channel>|<candidates>`` that
    real-time decisions at a time with the same valid offers look up. Returns how many
    vectors were written.
    """
    universe = setup.universe(as_of)
    if not len(universe.scorable):
        return 0
    wanted = members_with_history(setup, hist, as_of)
    ids = hist.member_ids.astype(str)
    written = 0
    for channel in channels:
        slot = universe.slot(model.version, channel)
        for lo in range(0, len(wanted), chunk):
            part = wanted[lo:lo + chunk]
            X = feature_rows(setup, hist, part, universe, as_of, channel, model.program)
            scores = predict(model, X, len(part))
            store.put_scores_many(slot, {ids[m]: row.astype(np.float32) for m, row in zip(part, scores, strict=True)})
            written += len(part)
            if progress is not None:
                progress(len(part))
    return written


def default_channel(data_dir: str | os.PathLike[str]) -> str:
    """The channel most exposures went through (what warming scores for by default)."""
    channel = read_table(data_dir, "exposures", columns=["channel"])["channel"].dropna().astype(str)
    return str(channel.value_counts().index[0]) if len(channel) else "app"

