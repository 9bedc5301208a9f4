"""``offers batch``: the decisions for a whole audience, written to Parquet or CSV.

For campaign tools that want a file rather than an HTTP stream. The same inputs as the
service's decisions (:func:`~runtime.decisions.members.member_inputs` over the data
directory's histories, the champion's propensities for the offers valid at ``as_of``,
:func:`models.decision.decide_batch`), computed from the data directory alone: no online
store is read or written, so no coupon codes are issued and caps count only what the
data holds. Global budgets are consumed across the whole audience in file order.

Memory stays bounded by the audience's histories plus one chunk: members are decided
:data:`CHUNK` at a time and each chunk's rows are appended to the output at once (a
Parquet row group, or CSV lines); the file is written under a temporary name and moved
into place when complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.caps import BudgetState
from models.compiled import default_cache_dir
from models.decision import decide_batch, decisions_frame
from models.model import PropensityModel
from models.registry import Registry
from offerdata.validate import require_valid
from runtime.decisions.materialize import load_members
from runtime.decisions.members import member_inputs
from runtime.decisions.outcome_json import rfc3339
from runtime.decisions.scoring import expand, feature_rows, predict, subset
from runtime.decisions.setup import DecisionSetup

CHUNK = 1000
SCHEMA = pa.schema([
    ("member_id", pa.string()), ("rank", pa.int64()), ("offer_id", pa.string()), ("kind", pa.string()),
    ("text", pa.string()), ("priority", pa.float64()), ("propensity", pa.float64()),
    ("probability", pa.float64()), ("explored", pa.bool_()), ("tier_promo", pa.string()),
    ("fallback", pa.bool_()), ("holdout", pa.bool_()), ("policy", pa.string()), ("tier", pa.string()),
    ("model_version", pa.string()), ("as_of", pa.string()), ("channel", pa.string()),
])


class AudienceError(ValueError):
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


class _Writer:
    """Appends frames to a Parquet (row groups) or CSV file under a temporary name."""

    def __init__(self, out: Path):
        if out.suffix.lower() not in (".parquet", ".csv"):
            raise AudienceError(f"--out must end in .parquet or .csv (got {out.name})")
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
        chunk: int = CHUNK, progress: Callable[[int], None] | None = None) -> AudienceSummary:
    """Decide for every member of ``members_file`` and write the rows to ``out``.

    ``as_of`` takes the values of ``OFFERS_CLOCK`` (``wall``, ``data`` or a timestamp).
    """
    require_valid(data_dir)
    setup = DecisionSetup.load(data_dir, program, as_of)
    model = PropensityModel.load(Registry(registry).path(version))
    model.try_compile(default_cache_dir())  # same scores either way; compiled trees are faster
    wanted = read_members(members_file)
    hist, loaded = load_members(setup, data_dir, wanted)
    hist = hist.with_members(np.asarray(wanted, dtype=object))  # members the data lacks: cold starts
    unknown = hist.n_members - len(loaded)
    profiles = [*loaded, *[None] * unknown]
    position = hist.member_index(wanted)
    when = setup.clock.now()
    local = setup.local(when)
    universe = setup.universe(local)
    budgets = BudgetState(setup.catalog)
    writer = _Writer(Path(out))
    offers = 0
    try:
        for lo in range(0, len(wanted), chunk):
            idx = position[lo:lo + chunk]
            part = subset(hist, idx)
            inputs = member_inputs(setup, part, local, [profiles[i] for i in idx])
            props = np.full((len(idx), len(universe.offer_ids)), np.nan)
            known = np.flatnonzero([i.context.known_history for i in inputs])
            if len(known) and len(universe.scorable):
                X = feature_rows(setup, part, known, universe, local, channel, model.program)
                props[known] = expand(universe, predict(model, X, len(known)))
            decisions = decide_batch(setup.catalog, [i.context for i in inputs], list(universe.offer_ids), props,
                                     as_of=local, channel=channel, counters=[i.counters for i in inputs],
                                     budgets=budgets, seed=seed, max_offers=n)
            frame = decisions_frame(decisions)
            tiers = {i.context.member_id: i.context.tier.tier if i.context.tier else None for i in inputs}
            frame["tier"] = frame["member_id"].map(tiers)
            frame["model_version"], frame["as_of"], frame["channel"] = model.version, rfc3339(when), channel
            writer.write(frame)
            offers += len(frame)
            if progress is not None:
                progress(len(idx))
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return AudienceSummary(members=len(wanted), unknown=unknown, offers=offers,
                           model_version=model.version, as_of=rfc3339(when), out=Path(out))
