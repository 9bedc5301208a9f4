"""Shared by every benchmark: machine facts and writing one section of docs/BENCHMARKS.md.

Each benchmark owns a section delimited by ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``; re-running it replaces only that section, so the
document keeps every benchmark's latest results side by side.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import resource
import shlex
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
HEADER = """# Benchmarks

Every figure here is written by a script under `bench/`, with the machine, the date and the
command that produced it. Where a ceiling applies, the figure stands next to a ceiling measured
in the same run on the same machine, as a ratio: absolute times drift between machines, ratios hold.
Re-run a script to refresh its section; the others are left as they are.
"""


def machine() -> str:
    """One line describing this machine: CPU model, cores, memory, Python."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, Python {platform.python_version()}"


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children) in MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def write_section(name: str, title: str, body: str, command: str | None = None) -> None:
    """Replace (or append) the ``name`` section of docs/BENCHMARKS.md with ``body``."""
    command = command or "python " + " ".join(shlex.quote(a) for a in sys.argv)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"<!-- bench:{name} -->\n## {title}\n\n- machine: {machine()}\n- date: {stamp}\n"
               f"- command: `{command}`\n\n{body.strip()}\n<!-- /bench:{name} -->")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _m: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)
