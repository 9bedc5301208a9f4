"""The benchmark scripts start and explain themselves (no benchmark runs, nothing timed)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["bench_serving.py", "bench_events.py", "bench_batch.py", "bench_redis_memory.py", "bench_reservations.py",
           "profile_decisions.py", "closed_loop.py", "bench_rules.py", "bench_console.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help(script: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(ROOT))
    module = importlib.import_module(f"bench.{script.removesuffix('.py')}")
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as stopped:
        module.main()
    assert stopped.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_verdicts_and_metric_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(ROOT))
    from bench import harness
    from bench.bench_serving import verdict

    assert verdict(4.0, 5.0, at_most=True) == "holds"
    assert verdict(10.0, 5.0, at_most=True) == "MISSED by 2.0x"
    assert verdict(0.35, 0.70, at_most=False) == "MISSED by 2.0x"
    text = (b'# HELP x\noffers_score_cache_lookups_total{result="hit"} 3.0\n'
            b'offers_score_cache_lookups_total{result="miss"} 2.0\n'
            b'offers_score_cache_lookups_created{result="hit"} 1.7e9\n')
    monkeypatch.setattr(harness, "http", lambda *a, **k: (200, text))
    assert harness.metric_sum("http://x", "offers_score_cache_lookups_total", result="hit") == 3.0
    assert harness.metric_sum("http://x", "offers_score_cache_lookups_total") == 5.0


def test_the_rules_benchmark_program_has_twenty_comparisons(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from bench.bench_rules import rules_program
    from bench.program import PROGRAM
    from models.program import load_program

    program = load_program(rules_program(PROGRAM, tmp_path / "rules.yaml"))
    assert program.offer_defaults["amount_off"].caps.redemptions == 1  # the base program's settings kept
    assert program.offer_defaults["free_item"].rule is not None
