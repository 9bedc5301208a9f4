"""``offers simulate``: the CLI runs both configs on a sample through the real decision path, with
budgets binding across the sample, prints the comparison and writes an HTML report; nothing
reaches a store; mistakes are messages with exit code 1."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from offers_cli.main import cli

AS_OF = "2017-02-15T12:00:00+00:00"
CURRENT = """
name: Simulation test
timezone: UTC
currency: {name: points, earn_rate: 1}
tier_policy: {metric: spend, window: {type: lifetime}}
tiers:
  - {name: Base, threshold: 0}
  - {name: Gold, threshold: 10}
"""
NEW = CURRENT + """
offers:
  - {id: welcome5, kind: amount_off, title: $5 welcome, value: 5, cost: 5, budget: {count: 2}}
  - {id: gold_only, kind: amount_off, title: Gold treat, value: 2, cost: 2, tiers: [Gold]}
  - {id: paced, kind: amount_off, title: Paced, value: 1, cost: 1, budget: {count: 24, period: day, pacing: even}}
"""


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    current, new, sample = tmp_path / "current.yaml", tmp_path / "new.yaml", tmp_path / "sample.txt"
    current.write_text(CURRENT)
    new.write_text(NEW)
    sample.write_text("m1\nm2\nm3\n")
    return current, new, sample


def test_simulate_compares_two_configs_on_a_sample_with_budgets_binding(tiny_dir: Path, tmp_path: Path) -> None:
    current, new, sample = _files(tmp_path)
    report = tmp_path / "report.html"
    args = ["simulate", "--program", str(new), "--current", str(current), "--data", str(tiny_dir),
            "--members", str(sample), "--as-of", AS_OF, "--channel", "app"]
    result = CliRunner().invoke(cli, [*args, "--json", "--report", str(report)])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["members"] == 3
    offers = {row["offer_id"]: row for row in body["offers"]}
    # the budget of 2 binds across the sample: two members get the welcome offer, the third is refused
    assert offers["welcome5"]["current"] == 0 and offers["welcome5"]["new"] == 2
    assert body["excluded"]["new"]["BUDGET_EXHAUSTED"] == 1 and "BUDGET_EXHAUSTED" not in body["excluded"]["current"]
    budget, paced = (next(b for b in body["budgets"] if b["budget"] == key) for key in ("welcome5", "paced"))
    # at noon 13 of the day's 24 hourly slots have started: even pacing releases 13 of 24
    assert (paced["period"], paced["pacing"], paced["paced_count"], paced["new_count"]) == ("d2017-02-15", "even", 13, 3)
    assert (budget["budget"], budget["current_count"], budget["new_count"], budget["limit_count"]) == ("welcome5", 0, 2, 2)
    assert budget["new_minor"] == 1000 and budget["period"] == "total"
    # only m2 ($13.99 of spend) is Gold at $10; m1 ($6.48) and m3 ($0.99) are left out by tier
    assert offers["gold_only"]["new"] == 1 and body["excluded"]["new"]["TIER_NOT_ELIGIBLE"] == 2
    assert body["reached"]["new"] >= body["reached"]["current"]
    html = report.read_text()
    assert "<h1>What the new program would do</h1>" in html and "welcome5" in html and "<script" not in html

    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0, text.output
    assert "members reached: current" in text.output and "welcome5" in text.output


def test_simulate_reports_mistakes_as_messages(tiny_dir: Path, tmp_path: Path) -> None:
    current, new, sample = _files(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(NEW.replace("value: 5,", "value: -5,"))
    result = CliRunner().invoke(cli, ["simulate", "--program", str(bad), "--current", str(current), "--data",
                                      str(tiny_dir), "--members", str(sample), "--as-of", AS_OF])
    assert result.exit_code == 1 and "value" in result.output and "Traceback" not in result.output
    missing = CliRunner().invoke(cli, ["simulate", "--program", str(new), "--data", str(tiny_dir), "--members",
                                       str(tmp_path / "nope.txt"), "--as-of", AS_OF])
    assert missing.exit_code == 1 and "nope.txt" in missing.output
