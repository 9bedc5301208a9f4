"""``offers demo``: the README's main job, end to end on embedded defaults.

1. import The Complete Journey into ``<workdir>/data`` and validate it;
2. train a propensity model into ``<workdir>/registry`` (and make it the champion);
3. start the real service (``offers serve``: gunicorn, one worker, embedded stores, the
   clock on 30 Oct 2017 when the retailer's campaign 18 starts) on a free local port and
   wait for ``/readyz``;
4. ask it for a real decision for a household that received campaign 18, print it;
5. print the operator console's URL and a sign-in key, and stop the server (or, with
   ``--keep-running``, keep it running until Ctrl-C).

The server gets API keys made for this run (printed), so the console is open to them only.

Everything has a timeout and the server is always stopped (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

#: When campaign 18 (209 coupons, mailed to 1,133 households) starts, local time.
DEMO_CLOCK = "2017-10-30T09:00:00-05:00"
DEMO_CAMPAIGN = "18"
PROGRAM = Path(__file__).resolve().parents[1] / "examples" / "programs" / "completejourney.yaml"
READY_TIMEOUT = 300.0
REQUEST_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: dict[str, Any] | None = None,
         key: str | None = None) -> tuple[int, dict[str, Any]]:
    """One JSON request (stdlib only), with ``key`` as X-API-Key; returns (status, parsed body)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {})}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def demo_member(data_dir: Path) -> tuple[str, str | None]:
    """A household that received campaign 18 and later redeemed one of its coupons (the
    first such, by id), and that coupon; any recipient if none redeemed."""
    from offerdata.tables import read_table

    offers = read_table(data_dir, "offers", columns=["offer_id", "campaign_id"])
    campaign = set(offers.loc[offers["campaign_id"].astype(str) == DEMO_CAMPAIGN, "offer_id"].astype(str))
    exposures = read_table(data_dir, "exposures", columns=["member_id", "offer_id"])
    received = sorted(set(exposures.loc[exposures["offer_id"].astype(str).isin(campaign), "member_id"].astype(str)),
                      key=lambda m: (len(m), m))
    redemptions = read_table(data_dir, "redemptions", columns=["member_id", "offer_id"])
    used = redemptions[redemptions["offer_id"].astype(str).isin(campaign)
                       & redemptions["member_id"].astype(str).isin(received)]
    if len(used):
        first = used.assign(k=used["member_id"].astype(str).map(lambda m: (len(m), m))).sort_values("k").iloc[0]
        return str(first["member_id"]), str(first["offer_id"])
    if not received:
        raise click.ClickException(f"no household received campaign {DEMO_CAMPAIGN} in {data_dir}")
    return received[0], None


def demo_keys() -> dict[str, str]:
    """API keys made for one demo run: one for decisions and events, one admin (console)."""
    return {"decisions": "demo-decisions-" + secrets.token_hex(8), "admin": "demo-admin-" + secrets.token_hex(8)}


def start_server(workdir: Path, data_dir: Path, registry: Path, program: Path | None,
                 port: int, keys: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    """``offers serve`` in its own process group, logging to ``<workdir>/server.log``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OFFERS_") and k not in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")}
    env.update({"OFFERS_CLOCK": DEMO_CLOCK, "OFFERS_EVENT_LOG": str(workdir / "events"),
                "OFFERS_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
                "OFFERS_API_KEYS": f"{keys['decisions']}:decisions,events;{keys['admin']}:admin",
                "OFFERS_CONSOLE_SECRET": secrets.token_hex(32)})
    args = [sys.executable, "-m", "offers_cli.main", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1",
            "--data", str(data_dir), "--registry", str(registry)]
    if program is not None:
        args += ["--program", str(program)]
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log_path


def stop_on_signals() -> None:
    """Make Ctrl-C (SIGINT) and SIGTERM both end the demo's wait, so the server is stopped.

    Why: the server runs in a session of its own, so a signal that killed the demo outright
    would leave it running. And a process started as a background job of a non-interactive
    shell inherits SIGINT ignored, which Python keeps: without its own handler such a demo
    would never see the Ctrl-C it asks for.
    """
    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


@contextlib.contextmanager
def uninterruptible() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM inside the block, restoring them after.

    Why: once the demo is stopping its server, a second Ctrl-C (people press it again when a
    stop takes a second) would abort the stop half-way and leave the server to its own devices.
    The stop is bounded anyway (:func:`stop_server`: 30 s, then SIGKILL). Signal handlers can
    only be set from the main thread; elsewhere the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (gunicorn finishes requests in flight), SIGKILL if it does not stop."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_ready(base: str, proc: subprocess.Popen[bytes], log_path: Path) -> float:
    """Poll /readyz until it answers 200; fail with the server's log if it dies or times out."""
    started = time.monotonic()
    detail = ""
    while time.monotonic() - started < READY_TIMEOUT:
        if proc.poll() is not None:
            raise click.ClickException(f"the server exited ({proc.returncode}):\n{_tail(log_path)}")
        try:
            status, body = http("GET", base + "/readyz")
            if status == 200:
                return time.monotonic() - started
            detail = "; ".join(f"{k}: {v['detail']}" for k, v in body.get("checks", {}).items() if not v["ok"])
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise click.ClickException(f"the server was not ready after {READY_TIMEOUT:.0f}s ({detail}):\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _percent(p: float) -> str:
    return f"{100 * p:.1f}%"


def show(decision: dict[str, Any], redeemed: str | None) -> None:
    """Print a decision for people."""
    m = decision["member"]
    tier = m.get("tier", "?")
    line = f"member {m['member_id']}: {tier} tier, {m.get('metric_display', '?')} spent in the last 365 days"
    if m.get("next_tier"):
        line += f", {_percent(m['progress'])} of the way to {m['next_tier']}"
    click.echo("      " + line)
    click.echo(f"      decision {decision['decision_id']} as of {decision['as_of']} by model "
               f"{decision['model_version']} ({decision['policy']}, scores {decision['scores']}, "
               f"{decision['took_ms']:.1f} ms in the service)")
    click.echo(f"      {'#':>2}  {'offer':<16} {'propensity':>10}  {'coupon':<20} title")
    for o in decision["offers"]:
        mark = "  <- redeemed later in the data" if o["offer_id"] == redeemed else ""
        click.echo(f"      {o['rank']:>2}  {o['offer_id']:<16} {_percent(o['propensity']):>10}  "
                   f"{o.get('coupon_display', '-'):<20} {o['title']}{mark}")
        click.echo(f"          why: {', '.join(o['reasons'])}")
    reasons: dict[str, int] = {}
    for e in decision.get("excluded", []):
        reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
    click.echo("      not offered: " + (", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "none"))


@click.command()
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("demo"), show_default=True,
              help="Where the demo writes its data, model registry and server log.")
@click.option("--keep-running", is_flag=True,
              help="Keep the server running after the decision (for the console) until Ctrl-C.")
def demo(workdir: Path, keep_running: bool) -> None:
    """Import The Complete Journey, train a model, serve it, and ask it for a decision."""
    from offerdata.completejourney import DatasetUnavailable, write_completejourney
    from offerdata.validate import validate
    from training.train import TrainingError, train_propensity

    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir, registry = workdir / "data", workdir / "registry"
    click.echo(f"[1/5] importing The Complete Journey into {data_dir}")
    try:
        summary = write_completejourney(data_dir)
    except DatasetUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("      " + ", ".join(f"{k} {v:,}" for k, v in summary.rows.items()))
    click.echo(f"[2/5] validating {data_dir}")
    report = validate(data_dir)
    click.echo(report.render())
    if not report.ok:
        raise click.ClickException("the imported data failed validation")
    program = PROGRAM if PROGRAM.is_file() else None
    click.echo(f"[3/5] training a propensity model into {registry} (program {program or 'default'})")
    try:
        result = train_propensity(data_dir, registry, config=program, bootstrap_reps=0, progress=True, promote=True)
    except TrainingError as exc:
        raise click.ClickException(str(exc)) from exc
    heads = ", ".join(f"{k} {v:.3f}" for k, v in result.headline.items())
    click.echo(f"      version {result.version} (champion): {heads}")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    click.echo(f"[4/5] starting the service on {base} (gunicorn, embedded stores, clock {DEMO_CLOCK})")
    keys = demo_keys()
    proc, log_path = start_server(workdir, data_dir, registry, program, port, keys)
    try:
        ready = wait_ready(base, proc, log_path)
        click.echo(f"      ready in {ready:.1f}s (catalog loaded, members materialized, model warmed); "
                   f"log: {log_path}")
        member, redeemed = demo_member(data_dir)
        click.echo(f"[5/5] POST {base}/v1/decisions for household {member}, who received campaign "
                   f"{DEMO_CAMPAIGN}'s coupons on 30 Oct 2017"
                   + (f" and redeemed {redeemed} later" if redeemed else ""))
        request = {"member_id": member, "channel": "mail", "n": 5, "explain": True, "placement": "demo"}
        t0 = time.perf_counter()
        status, decision = http("POST", base + "/v1/decisions", request, keys["decisions"])
        first_ms = (time.perf_counter() - t0) * 1000
        if status != 200:
            raise click.ClickException(f"the decision failed ({status}): {json.dumps(decision)}")
        show(decision, redeemed)
        t0 = time.perf_counter()
        status, again = http("POST", base + "/v1/decisions", {**request, "explain": False}, keys["decisions"])
        click.echo(f"      round trip {first_ms:.0f} ms; a second decision (scores {again.get('scores')}) took "
                   f"{(time.perf_counter() - t0) * 1000:.0f} ms")
        click.echo(f"      operator console: {base}/console/ (sign in with the admin key {keys['admin']}); "
                   f"API key for decisions and events: {keys['decisions']}")
        if keep_running:
            stop_on_signals()
            click.echo(f"      the server keeps running (log: {log_path}); press Ctrl-C to stop it")
            with contextlib.suppress(KeyboardInterrupt):
                proc.wait()
    finally:
        with uninterruptible():
            if proc.poll() is None:
                click.echo("      stopping the server ...")
            stop_server(proc)
    click.echo(f"done in {time.monotonic() - started:.0f}s: the server is stopped. Run it yourself with\n"
               f"  offers serve --data {data_dir} --registry {registry}"
               + (f" --program {program}" if program else "") + f" --clock {DEMO_CLOCK}\n"
               "and see README.md for the endpoints.")
