"""The program the serving benchmarks decide for: synthetic data, a trained model, N candidates.

:func:`prepare` makes (once, then reuses from its work directory):

1. ``data/``: ``offers data synthetic --members M --seed S``;
2. ``registry/``: ``offers train --bootstrap 0 --config examples/programs/synthetic.yaml``
   (the champion; training is the slow step, minutes on 2 cores, so it is cached);

and :meth:`BenchProgram.variant` derives a data directory in which exactly N offers are
candidates at the decision moment: every table is a link to ``data/`` except
``offers.parquet``, where the N - 3 offers ending last (the program config adds 3 offers
of its own that are always valid) have their end moved to 30 days after the moment and
any other offer valid then ends just before it. Offer ids and their order do not change,
so the catalog fingerprint, the members' history records and the model stay valid for
every variant. The decision moment is the service's ``OFFERS_CLOCK=data``: one second
after the latest transaction.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "examples" / "programs" / "synthetic.yaml"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "offers-bench"
EXTENSION_DAYS = 30


def _run(argv: list[str], log: Path) -> None:
    with log.open("ab") as out:
        subprocess.run([sys.executable, "-m", "offers_cli.main", *argv], cwd=ROOT, check=True, stdout=out,
                       stderr=out)


@dataclass(frozen=True)
class BenchProgram:
    """A prepared benchmark program (see the module docstring)."""

    root: Path
    members: int
    seed: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def program(self) -> Path:
        return PROGRAM

    def champion(self) -> str:
        """The champion model version."""
        aliases = json.loads((self.registry / "aliases.json").read_text())
        return str(aliases["aliases"]["champion"])

    def model_dir(self) -> Path:
        return self.registry / "versions" / self.champion()

    def moment(self) -> pd.Timestamp:
        """The decision moment (naive program time): one second after the latest transaction."""
        purchased = pd.read_parquet(self.data / "transactions.parquet", columns=["purchased_at"])["purchased_at"]
        return pd.Timestamp(purchased.max()) + pd.Timedelta(seconds=1)

    def variant(self, candidates: int) -> Path:
        """A data directory with exactly ``candidates`` candidate offers at :meth:`moment`."""
        out = self.root / f"candidates-{candidates}"
        if (out / ".done").exists():
            return out
        from runtime.decisions.setup import DecisionSetup

        out.mkdir(parents=True, exist_ok=True)
        for table in self.data.iterdir():
            if table.suffix == ".parquet" and table.name != "offers.parquet":
                link = out / table.name
                if not link.exists():
                    link.symlink_to(table)
        base = DecisionSetup.load(self.data, self.program, "data")
        universe = base.universe(base.moment().local)
        own = int((universe.feature_index < 0).sum())
        wanted = candidates - own
        table = pq.read_table(self.data / "offers.parquet")  # pyarrow keeps every column's type
        offers = table.select(["starts_at", "ends_at"]).to_pandas()
        if not 0 < wanted <= len(offers):
            raise ValueError(f"cannot make {candidates} candidates from {len(offers)} offers + {own} of the program")
        at = self.moment()
        order = np.argsort(-offers["ends_at"].to_numpy().astype("datetime64[ns]").astype(np.int64), kind="stable")
        chosen = np.zeros(len(offers), dtype=bool)
        chosen[order[:wanted]] = True
        ends = offers["ends_at"].copy()
        later = at + pd.Timedelta(days=EXTENSION_DAYS)
        ends[chosen] = ends[chosen].where(ends[chosen] > later, later)
        valid_now = (offers["starts_at"] <= at) & (offers["ends_at"] >= at)
        ends[~chosen & valid_now] = at - pd.Timedelta(seconds=1)
        column = table.schema.get_field_index("ends_at")
        table = table.set_column(column, table.schema.field(column), pa.array(ends, type=table.schema.field(column).type))
        pq.write_table(table, out / "offers.parquet")
        setup = DecisionSetup.load(out, self.program, "data")
        got = len(setup.universe(setup.moment().local).offer_ids)
        if got != candidates:
            raise RuntimeError(f"variant has {got} candidates, wanted {candidates}")
        _run(["data", "validate", str(out)], self.root / "prepare.log")
        (out / ".done").write_text(str(candidates))
        return out


def prepare(workdir: Path = DEFAULT_WORKDIR, members: int = 20_000, seed: int = 1,
            say: object = print) -> BenchProgram:
    """Generate and train the benchmark program unless the work directory has it already."""
    bench = BenchProgram(workdir / f"program-m{members}-s{seed}", members, seed)
    bench.root.mkdir(parents=True, exist_ok=True)
    log = bench.root / "prepare.log"
    if not (bench.data / ".done").exists():
        say(f"generating {members:,} synthetic members into {bench.data} ...")
        _run(["data", "synthetic", "--members", str(members), "--seed", str(seed), "--out", str(bench.data)], log)
        (bench.data / ".done").write_text("ok")
    if not (bench.registry / "aliases.json").exists():
        say(f"training the model (once; minutes on 2 cores; log in {log}) ...")
        started = time.perf_counter()
        _run(["train", "--data", str(bench.data), "--registry", str(bench.registry), "--config", str(PROGRAM),
              "--bootstrap", "0"], log)
        say(f"trained in {time.perf_counter() - started:.0f} s")
    return bench


def materialize_into(redis_url: str, data_dir: Path, program: Path, members: list[str] | None = None,
                     prefix: str = "ofr") -> tuple[list[str], float]:
    """Write every member's history records and profile into Redis with the service's own code.

    Returns the ids of the members with purchase history before the decision moment
    (the ones a model scores) and the seconds it took.
    """
    from runtime.decisions.materialize import load_members, materialize, members_with_history
    from runtime.decisions.setup import DecisionSetup
    from runtime.settings import settings_for
    from runtime.stores import build_store

    started = time.perf_counter()
    setup = DecisionSetup.load(data_dir, program, "data")
    hist, profiles = load_members(setup, data_dir, members)
    store = build_store(settings_for(redis_url=redis_url, redis_prefix=prefix, redis_timeout_ms=5000,
                                     redis_connect_timeout_ms=2000))
    materialize(store, setup, hist, profiles)
    active = members_with_history(setup, hist, setup.moment().local)
    return [str(m) for m in hist.member_ids[active]], time.perf_counter() - started


def service_env(bench: BenchProgram, data_dir: Path, redis_url: str, event_log: Path,
                extra: dict[str, str] | None = None) -> dict[str, str]:
    """The ``OFFERS_*`` settings the benchmarked service runs with."""
    from bench.harness import API_KEY

    env = {"OFFERS_DATA": str(data_dir), "OFFERS_REGISTRY": str(bench.registry), "OFFERS_PROGRAM": str(bench.program),
           "OFFERS_CLOCK": "data", "OFFERS_REDIS_URL": redis_url, "OFFERS_EVENT_LOG": str(event_log),
           "OFFERS_API_KEYS": f"{API_KEY}:decisions,events"}
    env.update(extra or {})
    os.makedirs(event_log, exist_ok=True)
    return env


def warm_cache_into(redis_url: str, data_dir: Path, program: Path, model_dir: Path, members: list[str],
                    channel: str = "app", prefix: str = "ofr") -> tuple[int, float]:
    """Cache ``members``' score vectors the way ``offers materialize`` warms the cache.

    Returns (vectors written, seconds).
    """
    from models.model import PropensityModel
    from runtime.decisions.materialize import load_members, warm_cache
    from runtime.decisions.setup import DecisionSetup
    from runtime.settings import settings_for
    from runtime.stores import build_store

    started = time.perf_counter()
    setup = DecisionSetup.load(data_dir, program, "data")
    hist, _ = load_members(setup, data_dir, members)
    store = build_store(settings_for(redis_url=redis_url, redis_prefix=prefix, redis_timeout_ms=5000,
                                     redis_connect_timeout_ms=2000))
    written = warm_cache(store, setup, PropensityModel.load(model_dir), hist, setup.moment().local,
                         [channel])
    return written, time.perf_counter() - started


def drop_cache(redis_url: str, prefix: str = "ofr") -> int:
    """Delete every cached score vector (``PREFIX:c:*``); returns how many keys went."""
    import redis

    client = redis.Redis.from_url(redis_url)
    doomed = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:c:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            doomed += int(client.unlink(*batch))
            batch.clear()
    if batch:
        doomed += int(client.unlink(*batch))
    return doomed
