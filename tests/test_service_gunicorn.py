"""The service as it runs in production: a real gunicorn, real HTTP, and ``offers serve``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from offers_cli.main import cli
from tests.conftest import free_port
from tests.service_helpers import (
    ADMIN_KEY,
    ALL_KEYS,
    EVENTS_KEY,
    ROOT,
    gunicorn_args,
    service_env,
    start_process,
    stop_process,
    wait_until_healthy,
)

#: The service runs on OFFERS_CLOCK=TS (a fixed moment), so no test depends on today's date.
TS = datetime(2026, 5, 15, 12, tzinfo=UTC).isoformat()


def event(event_id: str) -> dict[str, str]:
    return {"event_id": event_id, "member_id": "m1", "type": "click", "offer_id": "o1", "ts": TS}


@pytest.fixture
def gunicorn_redis(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    env = service_env(tmp_path, REDIS_URL=redis_url, OFFERS_API_KEYS=ALL_KEYS, OFFERS_WORKERS="2",
                      OFFERS_CLOCK=TS,
                      OFFERS_MAX_BODY_BYTES="4096")
    log = tmp_path / "gunicorn.log"
    proc = start_process(gunicorn_args(port), env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, proc, log)
        yield base, proc, log
    finally:
        stop_process(proc)


@pytest.mark.slow
@pytest.mark.redis
def test_gunicorn_serves_the_api_over_http(gunicorn_redis: tuple[str, subprocess.Popen[bytes], Path]) -> None:
    base, proc, log = gunicorn_redis
    key = {"X-API-Key": EVENTS_KEY}
    first = requests.post(f"{base}/v1/events", json=[event("g1"), event("g2")], headers=key, timeout=10)
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 2
    # whichever worker answers, Redis de-duplicates
    for _ in range(4):
        again = requests.post(f"{base}/v1/events", json=event("g1"), headers=key, timeout=10)
        assert again.json()["duplicates"] == 1
    state = requests.get(f"{base}/v1/admin/members/m1/state", headers={"X-API-Key": ADMIN_KEY}, timeout=10)
    assert state.json()["state"]["counters"][0]["total"] == 2

    missing = requests.post(f"{base}/v1/events", json=event("g3"), timeout=10)
    assert missing.status_code == 401
    assert missing.headers["Content-Type"] == "application/problem+json"
    nowhere = requests.get(f"{base}/nowhere", headers={"X-Request-ID": "trace-1"}, timeout=10)
    assert nowhere.status_code == 404 and nowhere.json()["request_id"] == "trace-1"

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b"["
        for i in range(100):
            yield json.dumps(event(f"c{i}")).encode() + b","
        yield b"{}]"

    too_big = requests.post(f"{base}/v1/events", data=chunks(), timeout=10,
                            headers={**key, "Content-Type": "application/json"})
    assert too_big.status_code == 413 and too_big.json()["status"] == 413

    assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
    for _ in range(10):
        requests.get(f"{base}/healthz", timeout=10)
    metrics = requests.get(f"{base}/metrics", timeout=10).text
    # counts from both workers are merged (multiprocess mode)
    assert 'offers_events_total{status="accepted",type="click"} 2.0' in metrics
    assert 'offers_events_total{status="duplicate",type="click"} 4.0' in metrics
    healthz = [line for line in metrics.splitlines()
               if line.startswith("offers_http_request_duration_seconds_count{endpoint=\"/healthz\"")]
    assert healthz and float(healthz[0].rsplit(" ", 1)[1]) >= 10
    assert "/openapi.json" in requests.get(f"{base}/openapi.json", timeout=10).json()["paths"]

    assert stop_process(proc) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(r.get("path") == "/nowhere" and r.get("request_id") == "trace-1" for r in lines)
    assert any("Booting worker" in r.get("message", "") for r in lines)


@pytest.mark.slow
def test_offers_serve_starts_gunicorn(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    log = tmp_path / "serve.log"
    proc = start_process([sys.executable, "-m", "offers_cli.main", "serve", "--bind", f"127.0.0.1:{port}",
                          "--workers", "1", "--data", str(data)], service_env(tmp_path), log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, proc, log)
        assert requests.post(f"{base}/v1/events", json=event("s1"), timeout=10).status_code == 200
        assert requests.get(f"{base}/readyz", timeout=10).json()["checks"]["stores"]["ok"]
    finally:
        assert stop_process(proc) == 0
    assert "OFFERS_API_KEYS is empty" in log.read_text()


@pytest.mark.slow
def test_gunicorn_refuses_bad_settings_naming_the_variable(tmp_path: Path) -> None:
    env = service_env(tmp_path, OFFERS_MAX_BODY_BYTES="lots")
    result = subprocess.run(gunicorn_args(free_port()), env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "OFFERS_MAX_BODY_BYTES" in result.stderr + result.stdout


def test_gunicorn_config_sizes_workers_and_never_preloads(tmp_path: Path) -> None:
    probe = ("import json, os, service.gunicorn_conf as c; print(json.dumps({"
             "'workers': c.workers, 'preload': c.preload_app, 'omp': os.environ['OMP_NUM_THREADS'],"
             "'prom': os.path.isdir(os.environ['PROMETHEUS_MULTIPROC_DIR']), 'graceful': c.graceful_timeout,"
             "'default': [c.default_workers(n) for n in (1, 2, 4, 16)]}))")
    out = subprocess.run([sys.executable, "-c", probe], env=service_env(tmp_path), cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    conf = json.loads(out.splitlines()[-1])
    assert conf["preload"] is False and conf["omp"] == "1" and conf["prom"]
    assert conf["default"] == [2, 3, 5, 8] and conf["graceful"] > 0
    env = service_env(tmp_path, OFFERS_WORKERS="3")
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert json.loads(out.splitlines()[-1])["workers"] == 3


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """`offers serve` writes OFFERS_* into os.environ; restore it after the test."""
    for name in ("OFFERS_REGISTRY", "OFFERS_DATA", "OFFERS_PROGRAM", "OFFERS_BIND", "OFFERS_WORKERS",
                 "OFFERS_MAX_BODY_BYTES", "OFFERS_API_KEYS", "REDIS_URL", "OFFERS_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)


def test_serve_dry_run_prints_the_gunicorn_command(clean_env: None, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--dry-run", "--bind", "0.0.0.0:9000", "--workers", "2",
                                      "--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "-m gunicorn -c python:service.gunicorn_conf service.wsgi:app" in result.output


def test_serve_reports_bad_options_and_settings(clean_env: None, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["serve", "--dry-run", "--registry", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    monkeypatch.setenv("OFFERS_MAX_BODY_BYTES", "lots")
    bad = runner.invoke(cli, ["serve", "--dry-run"])
    assert bad.exit_code == 1 and "OFFERS_MAX_BODY_BYTES" in bad.output
    assert "Traceback" not in bad.output
