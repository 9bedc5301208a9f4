"""The live catalog's change log and follower without a service: numbering under concurrent
writers (separate processes), torn and corrupt lines, and a worker keeping its last good catalog."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from models.catalog import build_catalog
from models.program import load_program
from runtime.catalog.changelog import CatalogLog, CatalogLogError, ChangeRecord
from runtime.catalog.edits import CatalogEditor, InvalidChange, VersionMismatch
from runtime.catalog.follower import CatalogFollower
from runtime.catalog.live import apply_changes

PROGRAM = """
name: Test
tier_policy: {metric: spend, window: {type: rolling, days: 365}}
tiers: [{name: Member, threshold: 0}, {name: Gold, threshold: 500}]
offers:
  - {id: bday, kind: birthday, title: Happy birthday, value: 5}
"""


def editor(directory: Path) -> CatalogEditor:
    return CatalogEditor(CatalogLog(directory), build_catalog(load_program(PROGRAM)), wall=lambda: 1_800_000_000.0)


def _pause_many(directory: str, offer: str, n: int) -> None:
    ed = editor(Path(directory))
    for i in range(n):
        ed.patch(offer, {"status": "paused" if i % 2 == 0 else "active"}, f"proc:{offer}")


def test_concurrent_writers_in_separate_processes_get_consecutive_versions(tmp_path: Path) -> None:
    ed = editor(tmp_path)
    for offer in ("a1", "a2", "a3"):
        ed.put(offer, {"kind": "bonus_points", "title": offer, "value": 10}, "setup")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_pause_many, args=(str(tmp_path), offer, 20)) for offer in ("a1", "a2", "a3")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    records = CatalogLog(tmp_path).read()
    assert [r.version for r in records] == list(range(1, 64))
    live = apply_changes(ed.base, records)
    assert live.version == 63 and all(live.status(o) == "active" for o in ("a1", "a2", "a3"))  # 20 toggles each


def test_a_torn_last_line_is_ignored_then_cut_off_and_a_corrupt_line_is_an_error(tmp_path: Path) -> None:
    ed = editor(tmp_path)
    ed.patch("bday", {"status": "paused"}, "me")
    log = CatalogLog(tmp_path)
    with log.path.open("ab") as f:
        f.write(b'{"v":1,"version":2,"at":"x","who"')  # a writer died mid-line
    assert [r.version for r in log.read()] == [1]
    assert ed.patch("bday", {"status": "active"}, "me").version == 2
    assert [(r.version, r.status) for r in log.read()] == [(1, "paused"), (2, "active")]
    with log.path.open("ab") as f:
        f.write(b"not json\n")
    with pytest.raises(CatalogLogError, match="line 3 is not a catalog change"):
        log.read()


def test_refused_changes_write_nothing(tmp_path: Path) -> None:
    ed = editor(tmp_path)
    with pytest.raises(InvalidChange) as exc:
        ed.put("x", {"kind": "bonus_points", "title": "x", "tiers": ["Platinum"]}, "me")
    assert exc.value.issues == [("tiers[0]", "unknown tier 'Platinum'")]
    with pytest.raises(InvalidChange) as exc:  # beyond what the catalog's int64 arrays could hold
        ed.put("x", {"kind": "amount_off", "title": "x", "cost": 1e300}, "me")
    assert exc.value.issues[0][0] == "cost" and "less than or equal" in exc.value.issues[0][1]
    ed.put("x", {"kind": "bonus_points", "title": "x"}, "me")
    with pytest.raises(VersionMismatch):
        ed.patch("x", {"title": "y"}, "me", expected=0)
    assert [r.version for r in CatalogLog(tmp_path).read()] == [1]
    record: ChangeRecord = CatalogLog(tmp_path).read()[0]
    assert record.at == "2027-01-15T08:00:00.000Z" and record.who == "me" and record.op == "create"


def test_a_follower_applies_changes_and_keeps_its_last_good_catalog(tmp_path: Path) -> None:
    ed = editor(tmp_path)
    now = [0.0]
    seen = []
    follower = CatalogFollower(ed.log, ed.base, on_change=seen.append, clock=lambda: now[0])
    assert follower.current.version == 0 and "bday" in follower.current.catalog.index
    ed.put("new", {"kind": "bonus_points", "title": "New", "value": 5}, "me")
    assert follower.poll().version == 0  # checked at most once per interval
    now[0] += 1.0
    live = follower.poll()
    assert live.version == 1 and live.catalog["new"].source == "live" and [s.version for s in seen] == [1]
    with ed.log.path.open("ab") as f:
        f.write(b"garbage\n")
    now[0] += 1.0
    assert follower.poll() is live  # unreadable now: the last good catalog stays
    with pytest.raises(CatalogLogError):
        CatalogFollower(ed.log, ed.base)  # at start-up an unreadable log is an error
