"""The durable event log: NDJSON segments, rotation by size and day, failures as 503."""

from __future__ import annotations

import json
import shutil
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
