"""``offers batch``: the decisions for a whole audience, written to Parquet or CSV.

For campaign tools that want a file rather than an HTTP stream. The decisions are the
service's own: the audience's members are loaded from the data directory into an
in-process store (:class:`~runtime.stores.memory.MemoryStore`, exactly as a service
without Redis materializes ``OFFERS_DATA``), and every chunk of :data:`CHUNK` members goes
through :meth:`runtime.decisions.pipeline.DecisionPipeline.decide_many`, the one decision
path, with the pinned model version. The online store is never read or written, so no
coupon code leaves this job and caps count only what the data holds; reservations are made
in the in-process store, so global budgets and member caps hold across the whole audience
in file order. Member ``m`` explores with the seed ``seed_for(seed, m)``.

The champion may be a propensity or an uplift model (:func:`models.uplift.load_serving_model`);
either way each row carries the offer's expected net value and send cost, and a member the
engine sends nothing (every offer costs more than it earns, or none is eligible) has no row.

Memory stays bounded by the audience's histories plus one chunk's decisions: each chunk's
rows are appended to the output at once (a Parquet row group, or CSV lines); the file is
written under a temporary name and moved into place when complete.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.compiled import default_cache_dir
from models.model import PropensityModel
from models.policy import seed_for
from models.registry import Registry
from models.uplift import load_serving_model
from offerdata.validate import require_valid
from runtime.catalog.changelog import CatalogLog
from runtime.catalog.live import apply_changes
from runtime.decisions.decision_log import KIND as DECISION_LOG_KIND
from runtime.decisions.decision_log import DecisionLog
from runtime.decisions.materialize import load_members, materialize
from runtime.decisions.model_holder import FixedModel
from runtime.decisions.outcome import DecisionRequest, Outcome
from runtime.decisions.outcome_json import rfc3339
from runtime.decisions.pipeline import DecisionPipeline
from runtime.decisions.setup import DecisionSetup
from runtime.errors import OffersRuntimeError
from runtime.events.log import EventLog
from runtime.settings import settings_for
from runtime.stores import build_store

CHUNK = 1000
SCHEMA = pa.schema([
    ("member_id", pa.string()), ("rank", pa.int64()), ("offer_id", pa.string()), ("kind", pa.string()),
    ("text", pa.string()), ("priority", pa.float64()), ("propensity", pa.float64()),
    ("probability", pa.float64()), ("explored", pa.bool_()), ("tier_promo", pa.string()),
    ("fallback", pa.bool_()), ("holdout", pa.bool_()), ("policy", pa.string()), ("tier", pa.string()),
    ("uplift", pa.float64()), ("net_value", pa.float64()), ("send_cost", pa.float64()), ("reasons", pa.string()),
    ("model_version", pa.string()), ("as_of", pa.string()), ("channel", pa.string()),
])


def offer_rows(outcomes: list[Outcome], minor_units: int) -> pd.DataFrame:
    """One row per returned offer (its final rank after reservations), with the member's tier.

    ``net_value`` (the offer's priority: expected net value of the send) and ``send_cost`` are
    in major money units; ``uplift`` is the uplift model's score (null for propensity models);
    ``reasons`` are the decision's reason codes joined by ``|``.
    """
    rows = [{"member_id": o.member_id, "rank": issued.rank, "offer_id": issued.offer.offer_id,
             "kind": issued.offer.kind, "text": issued.offer.text, "priority": issued.offer.priority,
             "propensity": issued.offer.propensity, "probability": issued.offer.probability,
             "explored": issued.offer.explored, "tier_promo": issued.offer.tier_promo,
             "fallback": issued.offer.fallback, "holdout": o.decision.holdout, "policy": o.decision.policy,
             "tier": o.member.tier.tier if o.member.tier is not None else None,
             "uplift": issued.offer.uplift, "net_value": issued.offer.priority / minor_units,
             "send_cost": issued.offer.send_cost_minor / minor_units, "reasons": "|".join(issued.offer.reasons)}
            for o in outcomes for issued in o.offers]
    return pd.DataFrame(rows, columns=[n for n in SCHEMA.names if n not in ("model_version", "as_of", "channel")])


class AudienceError(OffersRuntimeError, ValueError):
    """The members file or the output path cannot be used."""


@dataclass(frozen=True)
class AudienceSummary:
    """What a run decided and wrote."""

    members: int
    unknown: int
    offers: int
    model_version: str
    as_of: str
    out: Path


def read_members(path: str | os.PathLike[str]) -> list[str]:
    """Member ids from a Parquet or CSV file with a ``member_id`` column, or a text file
    with one id per line; duplicates keep their first occurrence."""
    p = Path(path)
    if not p.is_file():
        raise AudienceError(f"members file {str(path)!r} does not exist")
    if p.suffix.lower() in (".parquet", ".csv"):
        frame = pd.read_parquet(p) if p.suffix.lower() == ".parquet" else pd.read_csv(p, dtype=str)
        if "member_id" not in frame.columns:
            raise AudienceError(f"{p.name} has no member_id column")
        ids = frame["member_id"].dropna().astype(str)
    else:
        ids = pd.Series([line.strip() for line in p.read_text().splitlines() if line.strip()], dtype=str)
    return list(dict.fromkeys(ids))


class AudienceWriter:
    """Appends frames to a Parquet (row groups) or CSV file under a temporary name."""

    def __init__(self, out: Path):
        if out.suffix.lower() not in (".parquet", ".csv"):
            raise AudienceError(f"--out must end in .parquet or .csv (got {out.name}; a directory of Parquet "
                                "part files needs --workers or --scheduler)")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.tmp = out.with_name(f".{out.name}.tmp")
        self.csv = out.suffix.lower() == ".csv"
        self._parquet = None if self.csv else pq.ParquetWriter(self.tmp, SCHEMA)
        self._header = True

    def write(self, frame: pd.DataFrame) -> None:
        frame = frame[SCHEMA.names]
        if self.csv:
            frame.to_csv(self.tmp, mode="w" if self._header else "a", header=self._header, index=False)
            self._header = False
        else:
            assert self._parquet is not None
            self._parquet.write_table(pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False))

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        elif self._header:  # nothing written: still a valid CSV with its header
            pd.DataFrame(columns=SCHEMA.names).to_csv(self.tmp, index=False)
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self.tmp.unlink(missing_ok=True)


def run(data_dir: str | os.PathLike[str], registry: str | os.PathLike[str], members_file: str | os.PathLike[str],
        out: str | os.PathLike[str], program: str | os.PathLike[str] | None = None, as_of: str = "wall",
        channel: str = "email", n: int | None = None, seed: int = 0, version: str = "champion",
        chunk: int = CHUNK, progress: Callable[[int], None] | None = None,
        decision_log: str | os.PathLike[str] | None = None,
        catalog_dir: str | os.PathLike[str] | None = None) -> AudienceSummary:
    """Decide for every member of ``members_file`` and write the rows to ``out``.

    With ``decision_log`` (a directory), every decision is also appended to a decision log
    there (:mod:`runtime.decisions.decision_log`, source ``offers_batch``), so an e-mail
    campaign sent from the file becomes exposures with their probabilities.

    ``as_of`` takes the values of ``OFFERS_CLOCK`` (``wall``, ``data`` or a timestamp).
    With ``catalog_dir``, the live catalog's changes there apply (runtime.catalog): offers created
    or changed through the admin API are decided as the service decides them, and paused or
    retired ones are never issued.
    """
    require_valid(data_dir)
    setup = DecisionSetup.load(data_dir, program, as_of)
    if catalog_dir is not None:
        live = apply_changes(setup.catalog, CatalogLog(catalog_dir).read())
        setup = setup.with_catalog(live.catalog, live.withheld, live.version)
    model = load_serving_model(Registry(registry).path(version))
    if isinstance(model, PropensityModel):
        model.try_compile(default_cache_dir())  # same scores either way; compiled trees are faster
    wanted = read_members(members_file)
    hist, loaded = load_members(setup, data_dir, wanted)
    store = build_store(settings_for(), clock=lambda: setup.clock.now().timestamp())
    materialize(store, setup, hist, loaded)
    unknown = len(wanted) - len(loaded)
    del hist, loaded  # the store holds the audience's records now
    logged = None
    if decision_log is not None:
        log_writer = EventLog(Path(decision_log), kind=DECISION_LOG_KIND)
        log_writer.check_writable()
        logged = DecisionLog(log_writer)
    pipeline = DecisionPipeline(setup, store, FixedModel(model, setup.clock.now), decision_log=logged)
    when = setup.clock.now()
    req = DecisionRequest(member_id="", channel=channel, n=n, placement="offers batch", as_of=when,
                          source="offers_batch")
    run_id = uuid.uuid4().hex[:12]
    writer = AudienceWriter(Path(out))
    offers = 0
    try:
        for lo in range(0, len(wanted), chunk):
            ids = wanted[lo:lo + chunk]
            outcomes = pipeline.decide_many(ids, req, [f"batch-{run_id}-{lo + i}" for i in range(len(ids))],
                                            [seed_for(seed, m) for m in ids])
            frame = offer_rows(outcomes, setup.program.currency.minor_units)
            frame["model_version"], frame["as_of"], frame["channel"] = model.version, rfc3339(when), channel
            writer.write(frame)
            offers += len(frame)
            if progress is not None:
                progress(len(ids))
    except BaseException:
        writer.abort()
        raise
    finally:
        if logged is not None:
            logged.close()
    writer.close()
    return AudienceSummary(members=len(wanted), unknown=unknown, offers=offers,
                           model_version=model.version, as_of=rfc3339(when), out=Path(out))
