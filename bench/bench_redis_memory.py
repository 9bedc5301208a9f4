"""Redis memory per member, extrapolated to 1M members: online store and score cache.

Into a private, empty redis-server (so ``INFO memory`` counts only this), with the
service's own code and encoding:

1. ``materialize``: every member of the benchmark program (bench/program.py; synthetic,
   about a year of purchases, exposures and redemptions each) gets its history records
   (``PREFIX:h:<id>``, a zlib-compressed columnar base, ``models.features.online``) and profile
   (``PREFIX:m:<id>``, a hash), as ``offers materialize`` writes them;
2. ``warm_cache``: every member with history gets a cached score vector for the 100
   candidate offers (``PREFIX:c:<id>``, a hash field of 3-byte log-scale codes);
3. online activity: for a sample of members, a year of real-time events and
   reservations through the store (``runtime.stores.footprint.realistic_member``, profile
   ``active``: 24 purchases, impressions of 30 offers, clicks, issues, redemptions,
   dismissals), which fills the member state hash (``PREFIX:s:<id>``) and writes
   7-day event de-duplication keys (``PREFIX:e:<id>``).

Per step: ``used_memory`` before and after (all keys, TTL bookkeeping included) divided
by the members written, plus ``MEMORY USAGE`` of a sample of each key kind. The history
blobs are decoded to count their records (bytes per record) and compared with the
36-byte fixed-width records of the first layout.

    python bench/bench_redis_memory.py                 # about 1 minute; updates docs/BENCHMARKS.md
    python bench/bench_redis_memory.py --no-doc
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import RedisServer, load_average  # noqa: E402
from bench.program import DEFAULT_WORKDIR, materialize_into, prepare, warm_cache_into  # noqa: E402
from bench.report import write_section  # noqa: E402
from models.features.online import RECORD  # noqa: E402

TARGET_MB_PER_M = 300
PREFIX = "ofr"


def used(client: redis.Redis) -> int:
    """``used_memory`` after a purge of allocator caches."""
    with contextlib.suppress(redis.ResponseError):
        client.memory_purge()
    return int(client.info("memory")["used_memory"])


def sample_usage(client: redis.Redis, kind: str, members: list[str]) -> tuple[float, float, str]:
    """Mean MEMORY USAGE and mean value size (STRLEN or field bytes) of ``kind`` keys, and the encoding."""
    total = payload = 0
    encoding = "?"
    n = 0
    for m in members:
        key = f"{PREFIX}:{kind}:{m}"
        usage = client.memory_usage(key, samples=0)
        if usage is None:
            continue
        n += 1
        total += int(usage)
        encoding = client.object("encoding", key).decode()
        if client.type(key) == b"string":
            payload += int(client.strlen(key))
        else:
            payload += sum(len(k) + len(v) for k, v in client.hgetall(key).items())
    return (total / n, payload / n, encoding) if n else (0.0, 0.0, "absent")


TUNED = ("--hash-max-listpack-value", "512")  # docker-compose.yml's setting (docs/redis.md)


def run(args: argparse.Namespace, config: tuple[str, ...] = ()) -> dict[str, object]:
    """Everything in the module docstring, in a redis-server started with ``config``."""
    from models.features.online import history_from_records
    from runtime.stores.encoding import cache_field
    from runtime.stores.footprint import realistic_member
    from runtime.stores.keys import KeySpace
    from runtime.stores.redis_store import RedisStore

    bench = prepare(args.workdir, args.members, args.seed)
    data_dir = bench.variant(args.candidates)
    res: dict[str, object] = {"load": load_average()}
    with RedisServer(args.workdir, config=config) as server:
        client = redis.Redis.from_url(server.url())
        info = client.info("server")
        res["redis"] = f"Redis {info['redis_version']}, {client.info('memory').get('mem_allocator', '?')}"
        res["listpack_value"] = client.config_get("hash-max-listpack-value").get("hash-max-listpack-value", "?")
        base = used(client)
        members, secs = materialize_into(server.url(), data_dir, bench.program)
        after_store = used(client)
        n_all = int(client.dbsize()) // 2  # a history string and a profile hash per member
        res["materialize"] = {"members": n_all, "bytes": after_store - base, "seconds": secs}
        rng = random.Random(0)
        sample = rng.sample(members, min(args.sample, len(members)))
        res["h"] = sample_usage(client, "h", sample)
        res["m"] = sample_usage(client, "m", sample)
        blobs = [bytes(client.get(f"{PREFIX}:h:{m}") or b"") for m in sample]  # type: ignore[arg-type]
        stored = sum(len(b) for b in blobs)
        n_records = 0
        for m, b in zip(sample, blobs, strict=True):
            h = history_from_records(m, b)
            n_records += len(h.line_time) + len(h.exp_time) + len(h.red_time)
        res["records_per_member"] = n_records / len(blobs)
        res["bytes_per_record"] = stored / max(1, n_records)

        written, warm_secs = warm_cache_into(server.url(), data_dir, bench.program, bench.model_dir(), members)
        after_cache = used(client)
        res["cache"] = {"members": written, "bytes": after_cache - after_store, "seconds": warm_secs}
        res["c"] = sample_usage(client, "c", sample)

        store = RedisStore(client, keys=KeySpace(PREFIX))
        active = rng.sample(members, min(args.active, len(members)))
        started = time.perf_counter()
        before_events = used(client)
        for m in active:
            realistic_member(store, m, offers=1, profile="active")
            # realistic_member also caches a vector under a model version of its own: drop that field
            client.hdel(f"{PREFIX}:c:{m}", cache_field("model-2024-06-01"))
        seconds = time.perf_counter() - started
        with_ids = used(client)
        res["s"] = sample_usage(client, "s", active[:args.sample])
        event_keys = list(client.scan_iter(match=f"{PREFIX}:e:*", count=10000))
        res["e_each"] = sample_usage(client, "e", [k.decode().split(":", 2)[2] for k in event_keys[:args.sample]])
        for lo in range(0, len(event_keys), 10000):
            client.unlink(*event_keys[lo:lo + 10000])
        without_ids = used(client)
        res["activity"] = {"members": len(active), "state_bytes": without_ids - before_events,
                           "id_bytes": with_ids - without_ids, "event_keys": len(event_keys), "seconds": seconds}
        res["total_used"] = used(client) - base
    return res


def per_member(res: dict[str, object]) -> dict[str, float]:
    """Bytes per member of each part: ``store`` (history + profile), ``state``, ``ids``, ``cache``."""
    mat, cache, act = res["materialize"], res["cache"], res["activity"]
    assert isinstance(mat, dict) and isinstance(cache, dict) and isinstance(act, dict)
    per_id = act["id_bytes"] / max(1, act["event_keys"])
    events_each = act["event_keys"] / max(1, act["members"])
    return {"store": mat["bytes"] / mat["members"],
            # The state hash: its MEMORY USAGE plus the per-key bookkeeping MEMORY USAGE leaves out
            # (measured on the event ids). used_memory around the activity step also holds the main
            # and expires tables grown for the 130 ids per member (not shrunk right after deleting them).
            "state": res["s"][0] + max(0.0, per_id - res["e_each"][0]),  # type: ignore[index]
            # ids are remembered 7 days; the profile's events span a year
            "ids": per_id * events_each * 7 / 365,
            "cache": cache["bytes"] / max(1, cache["members"])}


def render(res: dict[str, object], args: argparse.Namespace, tuned: dict[str, object] | None = None) -> str:
    """The BENCHMARKS.md section body (``tuned``: the same run under docker-compose.yml's config)."""
    mat, cache, act = res["materialize"], res["cache"], res["activity"]
    assert isinstance(mat, dict) and isinstance(cache, dict) and isinstance(act, dict)
    parts = per_member(res)
    per_store, per_cache, per_state_only, dedup = parts["store"], parts["cache"], parts["state"], parts["ids"]
    events_each = act["event_keys"] / max(1, act["members"])
    per_id = act["id_bytes"] / max(1, act["event_keys"])
    h, m, c, s = res["h"], res["m"], res["c"], res["s"]

    def mb(per_member: float) -> str:
        """Bytes per member x 1M members, in MB (10^6 bytes): numerically the bytes per member."""
        return f"{per_member:,.0f} MB"

    store_total = per_store + per_state_only + dedup
    lines = [
        f"{res['redis']}, default `hash-max-listpack-value` ({res['listpack_value']}); a private, empty redis-server; "
        f"the service's own code and encoding (`materialize`, `warm_cache`, `runtime.stores.footprint`). "
        f"`used_memory` deltas, divided by the members written, include Redis' per-key overhead and TTL "
        f"bookkeeping; MEMORY USAGE of {args.sample:,} sampled keys per kind gives the breakdown. "
        f"Per 1M members = bytes per member x 10^6 (MB = 10^6 bytes).",
        "",
        "| what | members | bytes per member | per 1M members | sampled key: MEMORY USAGE / payload / encoding |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| history + profile (`materialize`; {res['records_per_member']:.0f} records per member, "
        f"{res['bytes_per_record']:.1f} B each compressed, 36 B in the first layout) | {mat['members']:,} | {per_store:,.0f} | {mb(per_store)} | h: {h[0]:,.0f} / {h[1]:,.0f} B / "  # type: ignore[index]
        f"{h[2]}; m: {m[0]:,.0f} / {m[1]:,.0f} B / {m[2]} |",  # type: ignore[index]
        f"| score cache, {args.candidates} candidates (`warm_cache`) | {cache['members']:,} | {per_cache:,.0f} | "
        f"{mb(per_cache)} | c: {c[0]:,.0f} / {c[1]:,.0f} B / {c[2]} |",  # type: ignore[index]
        f"| online state after a year of activity (profile `active`; MEMORY USAGE + key bookkeeping) "
        f"| {act['members']:,} | {per_state_only:,.0f} | "
        f"{mb(per_state_only)} | s: {s[0]:,.0f} / {s[1]:,.0f} B / {s[2]} |",  # type: ignore[index]
        f"| event de-duplication ids: {per_id:,.0f} B per id (used_memory), remembered 7 days; at this profile's "
        f"{events_each:.0f} events a year, {events_each * 7 / 365:.1f} ids per member at any time "
        f"| {act['members']:,} | {dedup:,.0f} | {mb(dedup)} | e: {res['e_each'][0]:,.0f} B each |",  # type: ignore[index]
        "",
        f"**Online store per 1M members: {mb(store_total)}** (history + profile + state + event ids); "
        f"**score cache: {mb(per_cache)}**; together **{mb(store_total + per_cache)}** "
        f"(target <= {TARGET_MB_PER_M} MB per 1M members: "
        + ("holds" if store_total + per_cache <= TARGET_MB_PER_M else
           f"MISSED by {(store_total + per_cache) / TARGET_MB_PER_M:.1f}x") + "). "
        f"Events append {RECORD.itemsize} B per history record (purchase line, exposure, redemption) "
        f"uncompressed until the next `offers materialize` folds them into the compressed base.",
    ]
    if tuned is not None:
        a, b = per_member(res), per_member(tuned)
        c = tuned["c"]
        lines += [
            "",
            f"The same run in a redis-server started with `{' '.join(TUNED)}` (as docker-compose.yml does; "
            f"[redis.md](redis.md)): a 100-offer score vector then stays a compact listpack "
            f"(c: {c[0]:,.0f} B, {c[2]}).",  # type: ignore[index]
            "",
            "| per 1M members | history + profile | state | event ids | score cache | total |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, v in (("default config", a), (f"`{' '.join(TUNED)}`", b)):
            total = sum(v.values())
            lines.append(f"| {name} | {mb(v['store'])} | {mb(v['state'])} | {mb(v['ids'])} | {mb(v['cache'])} | "
                         f"**{mb(total)}** ({total / TARGET_MB_PER_M:.1f}x the target) |")
    return "\n".join(lines)


def main() -> None:
    """Parse options, run, print, and (unless --no-doc) refresh the Redis memory section."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=20_000, help="synthetic members in the program")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--candidates", type=int, default=100, help="candidate offers (cached vector length)")
    parser.add_argument("--sample", type=int, default=1000, help="keys sampled per kind for MEMORY USAGE")
    parser.add_argument("--active", type=int, default=2000, help="members given a year of online activity")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/BENCHMARKS.md")
    parser.add_argument("--default-only", action="store_true",
                        help="skip the second run with docker-compose.yml's hash-max-listpack-value 512")
    args = parser.parse_args()
    res = run(args)
    tuned = None if args.default_only else run(args, TUNED)
    body = render(res, args, tuned)
    print(body)
    if not args.no_doc:
        write_section("redis_memory", "Redis memory per member", body)


if __name__ == "__main__":
    main()
