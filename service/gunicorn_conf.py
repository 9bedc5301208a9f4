"""gunicorn configuration: ``gunicorn -c service/gunicorn_conf.py service.wsgi:app``
(or ``-c python:service.gunicorn_conf``).

* Workers: ``OFFERS_WORKERS``, else cores + 1, at most 8; sync workers, since scoring is
  CPU-bound and each worker runs LightGBM with one thread. One worker per core keeps the
  cores busy and the spare one covers a worker waiting on Redis; gunicorn's usual
  2 x cores + 1 (for I/O-bound apps) measured 12% fewer uncached and 25% fewer cached
  decisions per second on 2 cores (bench/bench_serving.py, docs/performance.md).
* No preload: LightGBM/OpenMP is not fork-safe, so every worker imports the app, and with
  it loads its model, after the fork. ``OMP_NUM_THREADS=1`` is set before any worker starts.
* Graceful shutdown: SIGTERM lets requests in flight finish for up to 20 s.
* Timeout: a sync worker cannot report its heartbeat while it answers, so a request may
  run ``OFFERS_WORKER_TIMEOUT`` seconds (120) before gunicorn restarts the worker; a
  streamed ``/v1/decisions/batch`` of 10,000 members must finish within it.
* Start-up: the app loads its catalog, members (without Redis) and model in a background
  thread; ``post_worker_init`` holds the worker's accept loop until that is done, telling
  the arbiter it is alive every second, so a worker never takes requests it would answer
  with 503 while loading, and a slow load is never mistaken for a hung worker.
* Metrics: ``PROMETHEUS_MULTIPROC_DIR`` is created (a temporary directory) when unset,
  wiped of stale files at start-up, and each dead worker is marked so its files stop
  counting as live.
* Logs: gunicorn's own log is JSON like the app's; the app writes one JSON access line per
  request, so gunicorn's access log is off.
* Settings are validated here, before any worker starts: a bad ``OFFERS_*`` variable
  stops the server with a message naming it.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
from typing import Any

from runtime.settings import SettingsError, default_workers, load_settings

try:
    _settings = load_settings()
except SettingsError as _exc:
    raise SystemExit(f"offers: invalid settings: {_exc}") from None

os.environ["OMP_NUM_THREADS"] = "1"  # read by OpenMP when a worker loads LightGBM

_OWN_PROM_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _OWN_PROM_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="offers-prometheus-")
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


bind = _settings.bind
workers = _settings.workers or default_workers()
worker_class = "sync"
preload_app = False
timeout = _settings.worker_timeout
graceful_timeout = 20
keepalive = 5
# gunicorn >= 25 opens a control socket at one path per user; several servers on one
# machine (tests, blue/green) would fight over it, and nothing here uses it.
control_socket_disable = True
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # heartbeat files off the (maybe slow) container disk

accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    # The root logger gets its JSON handler from the app (service.logconfig) in each worker.
    "root": {"level": _settings.log_level, "handlers": []},
    "formatters": {"json": {"()": "service.logconfig.json_formatter"}},
    "handlers": {"json_stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": "ext://sys.stderr"}},
    "loggers": {"gunicorn.error": {"level": _settings.log_level, "handlers": ["json_stderr"],
                                   "propagate": False}},
}


def on_starting(server: Any) -> None:
    """Wipe metric files a previous run left behind (prometheus-client requires it)."""
    for path in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(path)


def post_fork(server: Any, worker: Any) -> None:
    """In the new worker, before the app (and LightGBM) is imported."""
    os.environ["OMP_NUM_THREADS"] = "1"


def post_worker_init(worker: Any) -> None:
    """Wait for the app's background loading (see the module docstring) before serving."""
    log = logging.getLogger("gunicorn.error")
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", {})
    state = extensions.get("offers")
    service = state.decisions if state is not None else None
    if service is not None and service.configured:
        while not service.wait(1.0):
            worker.notify()
        if service.error is not None:
            log.error("worker %s: decisions failed to load: %s", worker.pid, service.error)
    log.info("worker %s loaded the app", worker.pid)


def child_exit(server: Any, worker: Any) -> None:
    """A worker died: its live metric files must stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _OWN_PROM_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
