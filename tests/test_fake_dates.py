"""No test depends on today's date (issue 12).

Two checks:

* the tests never read the wall clock themselves (``datetime.now()``, ``date.today()``,
  ``time.time()``): they pass fixed moments, and the service under test runs on a fixed
  ``OFFERS_CLOCK`` or an injected clock;
* the date-sensitive tests (the memory footprint, tiers, features, caps and their windows,
  coupon and cache expiry, spend months) pass in a child pytest run under Debian's
  ``faketime`` at moments that broke date-dependent code before: early in a month, New
  Year's Day and 29 February. ``.ci/run`` installs faketime; elsewhere the run is skipped
  when it is missing (``apt-get install faketime``).

The faked clock starts at the given moment and ticks (``@DATE``), so ``time.sleep`` and
deadline loops still work; the moments lie ahead of today, so no TTL is ever in the past.
The child runs copy this run's decision environment (tests/decisions_env.py, built once)
instead of generating and training it again each: training reads the data's dates, not the
clock, and the tests that use it run under the faked clock all the same.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.decisions_env import PREBUILT, build
from tests.service_helpers import ROOT

TESTS = Path(__file__).parent
#: The test files whose outcome could depend on the calendar.
DATE_SENSITIVE = [
    "test_service_redis_memory.py",
    "test_tiers.py",
    "test_features.py",
    "test_service_stores.py",
    "test_service_events.py",
    "test_service_coupons.py",
    "test_eligibility.py",
    "test_decisions_core.py",
    "test_online_records.py",
]
#: Early in a month, New Year's Day just after midnight, and 29 February.
MOMENTS = ["2027-03-02 10:00:00", "2027-01-01 00:05:00", "2028-02-29 12:00:00"]
WALL_CLOCK_READS = re.compile(r"datetime\.now\(|datetime\.today\(|date\.today\(|datetime\.utcnow\(|"
                              r"\btime\.time\(\)|Timestamp\.now\(|Timestamp\(\"now\"\)|Timestamp\(\"today\"\)")


def test_no_test_reads_the_wall_clock() -> None:
    offenders = [f"{path.name}:{n}: {line.strip()}"
                 for path in sorted(TESTS.glob("*.py")) if path.name != Path(__file__).name
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if WALL_CLOCK_READS.search(line)]
    assert not offenders, "tests must pass fixed moments, not read today's date:\n" + "\n".join(offenders)


def test_the_date_sensitive_files_exist() -> None:
    assert [name for name in DATE_SENSITIVE if not (TESTS / name).exists()] == []


@pytest.mark.slow
@pytest.mark.parametrize("moment", MOMENTS)
def test_date_sensitive_tests_pass_on_awkward_dates(moment: str, tmp_path: Path, redis_url: str,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    faketime = shutil.which("faketime")
    if faketime is None:
        if os.environ.get("CI"):
            pytest.fail("faketime is not installed (.ci/run installs Debian's faketime)")
        pytest.skip("faketime is not installed (apt-get install faketime)")
    # the store suite's Redis Cluster parameter is left out: a cluster's six redis-servers do not
    # run under faketime, its ports are the outer run's, and it adds no date logic of its own (the
    # same scripts run against the single Redis here)
    args = [faketime, "-m", "-f", f"@{moment}", sys.executable, "-m", "pytest", "-q", "-x",
            "-p", "no:cacheprovider", "-n", "0", "-m", "not slow", "-k", "not cluster", "--basetemp", str(tmp_path / "t"),
            *[str(TESTS / name) for name in DATE_SENSITIVE]]
    prebuilt = build(tmp_path_factory.mktemp("decisions")).pristine
    done = subprocess.run(args, cwd=ROOT, env={**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")},
                                           PREBUILT: str(prebuilt), "OFFERS_TEST_REDIS_URL": redis_url}, capture_output=True,
                          text=True, timeout=540)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert " passed" in out and " failed" not in out, out[-2000:]
