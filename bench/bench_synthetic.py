"""Benchmark ``offers data synthetic``: wall time and peak memory for N members, against an I/O ceiling.

The generator runs as a real ``python -m offers_cli.main data synthetic`` subprocess;
its peak resident memory comes from ``getrusage(RUSAGE_CHILDREN)`` read right after it
exits (before any other child runs). The ceiling, measured in the same run, writes the
same number of rows per table, with the same number of columns, as plain random
numpy int64 columns through ``pyarrow.parquet.ParquetWriter`` in the same number of
row groups: the cost of getting that many rows to disk with no generation work at all.
Values are uniform in [0, CEILING_VALUES), which makes the ceiling's files about as
large as the generator's; full-range random integers would not compress and would
make the ceiling write several times more bytes than the generator does.
The ratio generator / ceiling is what to compare between machines.

    python bench/bench_synthetic.py                    # 1,000,000 members, updates docs/BENCHMARKS.md
    python bench/bench_synthetic.py --members 100000 --no-doc
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import peak_rss_mib, write_section  # noqa: E402
from models.data_contract import TABLES  # noqa: E402
from offerdata.synthetic import CHUNK_MEMBERS, TABLE_ORDER  # noqa: E402

#: Distinct values per ceiling column (see the module docstring).
CEILING_VALUES = 1024


def run_generator(members: int, seed: int, out: Path) -> tuple[float, float]:
    """Run the CLI generator in a child process; return (wall seconds, child peak RSS MiB)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "offers_cli.main", "data", "synthetic", "--members", str(members),
                    "--seed", str(seed), "--out", str(out)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started, peak_rss_mib(children=True)


def row_counts(out: Path) -> dict[str, int]:
    """Rows per table, from the Parquet footers."""
    return {name: pq.ParquetFile(out / f"{name}.parquet").metadata.num_rows for name in TABLE_ORDER}


def io_ceiling(rows: dict[str, int], chunks: int, out: Path) -> float:
    """Seconds to write ``rows`` per table as random int64 columns, in ``chunks`` row groups."""
    gen = np.random.default_rng(0)
    started = time.perf_counter()
    for name, total in rows.items():
        width = len(TABLES[name].columns)
        schema = pa.schema([(f"c{i}", pa.int64()) for i in range(width)])
        with pq.ParquetWriter(out / f"{name}.parquet", schema, compression="snappy") as writer:
            per_chunk = -(-total // chunks)
            for first in range(0, total, per_chunk):
                n = min(per_chunk, total - first)
                columns = [pa.array(gen.integers(0, CEILING_VALUES, size=n)) for _ in range(width)]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema), row_group_size=1 << 20)
    return time.perf_counter() - started


def validate_seconds(out: Path) -> tuple[bool, float]:
    """Run ``offers data validate`` on the output; return (clean, seconds)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "offers_cli.main", "data", "validate", str(out)], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return done.returncode == 0, time.perf_counter() - started


def size_mib(path: Path) -> float:
    """Total size of the files in ``path``, MiB."""
    return sum(p.stat().st_size for p in path.iterdir()) / 2**20


def main() -> None:
    """Measure, print a JSON summary and (unless --no-doc) refresh the synthetic section."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="Where to write (default: a temp dir).")
    parser.add_argument("--no-validate", action="store_true", help="Skip validating the output.")
    parser.add_argument("--no-doc", action="store_true", help="Do not update docs/BENCHMARKS.md.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-synthetic-", dir=args.workdir) as tmp:
        out, ceiling_dir = Path(tmp) / "data", Path(tmp) / "ceiling"
        ceiling_dir.mkdir()
        seconds, peak = run_generator(args.members, args.seed, out)  # read peak before any other child
        rows = row_counts(out)
        chunks = -(-args.members // CHUNK_MEMBERS)
        ceiling = io_ceiling(rows, chunks, ceiling_dir)
        disk, ceiling_disk = size_mib(out), size_mib(ceiling_dir)
        valid, check_seconds = (None, None) if args.no_validate else validate_seconds(out)

    total = sum(rows.values())
    summary = {"members": args.members, "seconds": round(seconds, 1), "peak_rss_mib": round(peak),
               "rows": rows, "ceiling_seconds": round(ceiling, 1), "ratio": round(seconds / ceiling, 2),
               "disk_mib": round(disk), "valid": valid,
               "validate_seconds": None if check_seconds is None else round(check_seconds, 1)}
    print(json.dumps(summary, indent=2))
    if args.no_doc:
        return
    per_million = 1_000_000 / args.members
    lines = [
        f"`offers data synthetic --members {args.members:,} --seed {args.seed}` in a child process; "
        f"{chunks:,} chunk(s) of {CHUNK_MEMBERS:,} members.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| wall time | {seconds:.1f} s ({args.members / seconds:,.0f} members/s, {total / seconds / 1e6:.2f} M rows/s) |",
        f"| peak resident memory (generator process) | {peak:,.0f} MiB |",
        f"| rows written, all tables | {total:,} |",
        f"| Parquet on disk | {disk:,.0f} MiB |",
        f"| I/O ceiling: the same rows and column counts as random int64 columns (values in "
        f"[0, {CEILING_VALUES:,})), pyarrow ParquetWriter, {chunks:,} row-group batch(es) | "
        f"{ceiling:.1f} s ({ceiling_disk:,.0f} MiB on disk) |",
        f"| generator / ceiling | {seconds / ceiling:.2f}x |",
    ]
    if valid is not None:
        lines.append(f"| `offers data validate` on the output | {'OK' if valid else 'FAILED'} in {check_seconds:.1f} s |")
    lines += ["", "| table | rows | per 1M members |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {count:,} | {count * per_million:,.0f} |" if name not in ("products", "offers", "offer_products")
              else f"| {name} | {count:,} | (catalog, fixed) |" for name, count in rows.items()]
    write_section("synthetic", "Synthetic program generator", "\n".join(lines))


if __name__ == "__main__":
    main()
