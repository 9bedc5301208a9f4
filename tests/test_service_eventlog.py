"""The durable event log: NDJSON segments, rotation by size and day, failures as 503."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from runtime.events.log import EventLog, read_segments
from service.app import create_app
from service.state import ServiceState
from tests.service_helpers import make_settings

DAY1 = datetime(2024, 6, 15, 23, 59, tzinfo=UTC).timestamp()
DAY2 = datetime(2024, 6, 16, 0, 1, tzinfo=UTC).timestamp()


def record(i: int, pad: int = 0) -> dict[str, object]:
    return {"v": 1, "event_id": f"e{i}", "member_id": "m1", "type": "click", "pad": "x" * pad}


def test_lines_are_json_and_segments_rotate_by_size(tmp_path: Path) -> None:
    log = EventLog(tmp_path, max_bytes=4096, clock=lambda: DAY1)
    for i in range(10):
        log.append([record(i, pad=900)])
    segments = log.segments()
    assert len(segments) >= 3
    assert all(p.stat().st_size <= 4096 for p in segments)
    assert all(p.name.startswith("events-20240615-") for p in segments)
    lines = [json.loads(line) for p in segments for line in p.read_text().splitlines()]
    assert [r["event_id"] for r in lines] == [f"e{i}" for i in range(10)]
    log.close()


def test_segments_rotate_by_day(tmp_path: Path) -> None:
    now = {"t": DAY1}
    log = EventLog(tmp_path, clock=lambda: now["t"])
    log.append([record(1)])
    now["t"] = DAY2
    log.append([record(2)])
    names = [p.name[:15] for p in log.segments()]
    assert names == ["events-20240615", "events-20240616"]
    log.close()


def test_a_new_log_object_never_appends_to_another_segment(tmp_path: Path) -> None:
    first = EventLog(tmp_path, clock=lambda: DAY1)
    first.append([record(1)])
    first.close()
    second = EventLog(tmp_path, clock=lambda: DAY1, fsync="none")
    second.append([record(2)])
    assert len(second.segments()) == 2 and second.current_path != first.current_path
    second.close()


class CountingLog(EventLog):
    """An event log that signals each fsync round of its background thread (the real fsync runs)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.flushed = threading.Event()

    def flush(self) -> None:
        dirty = self._dirty
        super().flush()
        if dirty:
            self.flushed.set()


def test_interval_fsync_runs_on_a_background_thread_and_close_syncs_the_rest(tmp_path: Path) -> None:
    """``interval``: an append returns with its line written (readable at once), its fsync runs on
    the log's own thread, and nothing is left unsynced after close."""
    log = CountingLog(tmp_path, clock=lambda: DAY1, fsync="interval", interval=0.05)
    assert log._flusher is None  # no thread until something is written
    log.append([record(1)])
    assert [r["event_id"] for r in read_segments(tmp_path)] == ["e1"]  # written before the answer
    assert log._flusher is not None and log._flusher.name == "events-log-fsync"
    assert log.flushed.wait(30), "the background thread never fsynced the appended line"
    assert log._dirty is False
    first = log._flusher
    first.join(30)  # nothing more to sync: the thread ends after an idle round
    assert not first.is_alive() and log._flusher is None
    log.append([record(2)])
    assert log._flusher is not None and log._flusher is not first and log._flusher.is_alive()
    log.close()
    assert log._dirty is False
    if log._flusher is not None:
        log._flusher.join(30)
        assert not log._flusher.is_alive()
    assert [r["event_id"] for r in read_segments(tmp_path)] == ["e1", "e2"]


def test_interval_rotation_syncs_the_segment_it_leaves(tmp_path: Path) -> None:
    log = EventLog(tmp_path, max_bytes=4096, clock=lambda: DAY1, fsync="interval", interval=3600)
    for i in range(6):
        log.append([record(i, pad=900)])  # the hour-long interval never fires: rotation syncs
    assert len(log.segments()) >= 2
    log.close()
    assert [r["event_id"] for r in read_segments(tmp_path)] == [f"e{i}" for i in range(6)]


def test_a_killed_writer_loses_no_appended_line_under_interval(tmp_path: Path) -> None:
    """The group commit only delays the fsync: a process killed right after its appends returned
    (SIGKILL, no clean-up) leaves every line in the segment, since the write came first."""
    script = (
        "import os, signal, sys\n"
        "from runtime.events.log import EventLog\n"
        f"log = EventLog({str(tmp_path)!r}, fsync='interval', interval=3600, kind='decisions')\n"
        "for i in range(200):\n"
        "    log.append([{'decision_id': f'd{i}', 'n': i}])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    got = read_segments(tmp_path, kind="decisions", key="decision_id")
    assert [r["n"] for r in got] == list(range(200))


def test_a_forked_child_fsyncs_with_its_own_thread(tmp_path: Path) -> None:
    """gunicorn forks workers: a child's first append starts the child's own fsync thread
    (the parent's does not exist in the child) in a new segment of its own."""
    # the parent's thread sleeps for an hour, so it holds no lock when the process forks
    log = CountingLog(tmp_path, clock=lambda: DAY1, fsync="interval", interval=3600)
    log.append([record(1)])
    parent_thread = log._flusher
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether its own thread synced its line, then leave at once
        ok = False
        try:
            log.interval, log.flushed = 0.05, threading.Event()
            log.append([record(2)])
            ok = (log._flusher is not parent_thread and log._flusher is not None
                  and log._flusher.is_alive() and log.flushed.wait(30))
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    log.close()
    assert answer == b"1"
    assert sorted(r["event_id"] for r in read_segments(tmp_path)) == ["e1", "e2"]
    assert len(log.segments()) == 2


def test_readers_drop_duplicates(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append([record(1), record(2)])
    log.append([record(1)])  # a retried request may log an event again
    assert [r["event_id"] for r in read_segments(tmp_path)] == ["e1", "e2"]
    log.close()


def test_an_unwritable_log_is_a_503_and_leaves_the_state_alone(tmp_path: Path) -> None:
    ts = datetime(2026, 5, 15, 12, tzinfo=UTC).isoformat()
    app = create_app(make_settings(tmp_path, clock=ts))
    state: ServiceState = app.extensions["offers"]
    client = app.test_client()
    event = {"event_id": "e1", "member_id": "m1", "type": "click", "offer_id": "o1", "ts": ts}
    assert client.post("/v1/events", json=event).status_code == 200
    state.event_log.close()
    shutil.rmtree(state.settings.event_log)
    state.settings.event_log.write_text("not a directory")  # the disk "breaks"
    resp = client.post("/v1/events", json={**event, "event_id": "e2"})
    assert resp.status_code == 503 and resp.mimetype == "application/problem+json"
    assert state.store.fetch_member("m1").state.counter("click", "o1").total == 1
    assert state.store.events_seen(["e2"]) == [False]  # a retry will apply it
    state.close()
