"""``offers catalog`` as a CLI (Click's runner), and ``offers batch`` honouring the live catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from offers_cli.main import cli
from tests.decisions_env import CHANNEL, CLOCK, FLASH, DecisionEnv, build


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


def run(env: DecisionEnv, catalog_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["catalog", *args, "--data", str(env.data), "--program", str(env.program),
                                      "--dir", str(catalog_dir)])
    return result.exit_code, result.output


def test_the_cli_pauses_lists_and_audits_and_offers_batch_skips_a_paused_offer(env: DecisionEnv,
                                                                               tmp_path: Path) -> None:
    catalog_dir = tmp_path / "catalog"
    code, out = run(env, catalog_dir, "pause", FLASH)
    assert code == 0 and f"{FLASH}: pause -> paused (catalog version 1, cli:" in out, out
    code, out = run(env, catalog_dir, "list")
    assert code == 0 and "catalog version 1" in out
    assert any(line.startswith(f"{FLASH}\tpaused\tv1\tprogram") for line in out.splitlines()), out
    code, out = run(env, catalog_dir, "history", FLASH)
    record = json.loads(out.splitlines()[0])
    assert code == 0 and record["op"] == "pause" and record["who"].startswith("cli:")

    env.promote(env.v1)
    members = pd.read_parquet(env.data / "members.parquet")["member_id"].astype(str).head(60).tolist()
    audience = tmp_path / "audience.csv"
    pd.DataFrame({"member_id": members}).to_csv(audience, index=False)
    decided = {}
    for name, extra in (("plain", []), ("live", ["--catalog-dir", str(catalog_dir)])):
        out_file = tmp_path / f"{name}.parquet"
        result = CliRunner().invoke(cli, ["batch", "--registry", str(env.registry), "--data", str(env.data),
                                          "--members", str(audience), "--out", str(out_file), "--program",
                                          str(env.program), "--as-of", CLOCK, "--channel", CHANNEL, "--n", "3",
                                          *extra])
        assert result.exit_code == 0, result.output
        decided[name] = pd.read_parquet(out_file)
    assert (decided["plain"]["offer_id"] == FLASH).sum() > 0  # without the change log it is issued
    assert (decided["live"]["offer_id"] == FLASH).sum() == 0

    code, out = run(env, catalog_dir, "resume", FLASH)
    assert code == 0 and "resume -> active (catalog version 2" in out


def test_the_cli_refuses_bad_offers_with_the_field_and_exit_1(env: DecisionEnv, tmp_path: Path) -> None:
    catalog_dir = tmp_path / "catalog"
    offer = tmp_path / "offer.yaml"
    offer.write_text("kind: bonus_points\ntitle: Weekend\nvalue: 300\ncaps: {issues: 0}\n")
    code, out = run(env, catalog_dir, "put", "weekend", "--file", str(offer))
    assert code == 1 and "caps.issues: Input should be greater than 0" in out, out
    code, out = run(env, catalog_dir, "pause", "no-such-offer")
    assert code == 1 and "no offer 'no-such-offer'" in out
    offer.write_text("kind: bonus_points\ntitle: Weekend\nvalue: 300\n")
    code, out = run(env, catalog_dir, "put", "weekend", "--file", str(offer))
    assert code == 0 and "weekend: create -> active (catalog version 1" in out
    code, out = run(env, catalog_dir, "retire", "weekend")
    assert code == 0 and "retire -> retired" in out
    code, out = run(env, catalog_dir, "retire", "weekend")
    assert code == 1 and "already retired" in out
