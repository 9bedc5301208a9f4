"""The closed loop: the real service decides, planted truth responds, the logs measure.

One round (:func:`lift_round`): a fresh service app (in-process, its own decision and event
logs) decides for every member through ``POST /v1/decisions/batch`` under a program whose
holdout (``decisions.holdout``, treatment ``nothing``) is salted by the round's seed; each member
responds by :class:`offerdata.synthetic.truth.Truth` (the holdout shown nothing); the events go
back through ``POST /v1/events``; then :func:`training.lift.lift_report` measures the lift from
the logs. The truth of a round is the mean planted effect of the slates the treated members
were shown, overall and per segment.

:func:`ope_round` logs an exploring champion's decisions with their responses, estimates a
candidate model from that log (:func:`training.policy_eval.evaluate_policy`), then deploys the
candidate on the same members and computes its true first-slot value from the truth.

    python bench/closed_loop.py --members 3000 --seeds 40     # coverage over seeds; docs/BENCHMARKS.md

The test suite runs the same rounds on the shared 1,000-member environment
(tests/test_closed_loop.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from offerdata.synthetic.truth import Truth, make_truth  # noqa: E402

CLOCK = "2025-11-12T12:00:00+00:00"
RESPONSE_TS = "2025-11-12T15:00:00+00:00"
CHANNEL = "email"
METRICS = {"redemptions": 1.0, "visits": 1.0}  # truth multiplier per lift metric (spend: basket_minor)

#: Makes a started service app from (program path, working directory); returns (app, headers of
#: the decisions scope, headers of the events scope, log directory).
AppFactory = Callable[[Path, Path], tuple[Any, dict[str, str], dict[str, str], Path]]


def loop_program(base: Path, target: Path, salt: str, holdout: float = 0.3, exploration: float = 0.0) -> Path:
    """``base``'s program with a salted holdout that gets nothing and the given exploration share."""
    program = yaml.safe_load(base.read_text())
    decisions = program.setdefault("decisions", {})
    decisions["holdout"] = {"share": holdout, "salt": salt, "treatment": "nothing"}
    decisions["exploration"] = {"share": exploration, "method": "epsilon_greedy"}
    target.write_text(yaml.safe_dump(program))
    return target


def decide(client: Any, members: Sequence[str], headers: dict[str, str], key: str) -> list[dict[str, Any]]:
    """Every member's decision from the batch endpoint (NDJSON; the last line is the summary).

    Each request carries an ``Idempotency-Key`` derived from ``key``: the batch's id, and so its
    exploration seeds, follow from it, which makes a round reproducible."""
    out: list[dict[str, Any]] = []
    for lo in range(0, len(members), 1000):
        resp = client.post("/v1/decisions/batch", json={"member_ids": list(members[lo:lo + 1000]),
                                                        "channel": CHANNEL},
                           headers={**headers, "Idempotency-Key": f"{key}-{lo}"})
        assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
        out.extend(json.loads(line) for line in resp.get_data(as_text=True).splitlines()[:-1])
    return out


def send_events(client: Any, events: list[dict[str, Any]], headers: dict[str, str]) -> None:
    """Post ``events`` in requests of 500."""
    for lo in range(0, len(events), 500):
        resp = client.post("/v1/events", json={"events": events[lo:lo + 500]}, headers=headers)
        assert resp.status_code == 200, resp.get_data(as_text=True)[:500]


def respond(decisions: list[dict[str, Any]], truth: Truth, segments: dict[str, str], seed: int,
            tag: str) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every member's events by the truth, and each treated member's expected incremental redemptions."""
    rng = np.random.default_rng(seed)
    events: list[dict[str, Any]] = []
    expected: dict[str, float] = {}
    for d in decisions:
        member = d["member_id"]
        offers = [o["offer_id"] for o in d.get("offers", [])]
        segment = segments.get(member, "none")
        events.extend(truth.respond(member, segment, offers, rng, RESPONSE_TS, tag))
        if d.get("policy") != "holdout":
            expected[member] = truth.slate_effect(offers, segment)
    return events, expected


def serve_round(make_app: AppFactory, program: Path, workdir: Path, members: Sequence[str], key: str,
                respond_by: tuple[Truth, dict[str, str], int, str] | None = None
                ) -> tuple[list[dict[str, Any]], dict[str, float], Path]:
    """Start an app under ``program`` in ``workdir``, decide for ``members`` (batch key ``key``)
    and, given (truth, segments, seed, event tag), send their responses back as events; close
    the app. Returns the decisions, the treated members' expected effects and the log directory."""
    app, decide_headers, event_headers, log_dir = make_app(program, workdir)
    expected: dict[str, float] = {}
    try:
        client = app.test_client()
        decisions = decide(client, members, decide_headers, key)
        if respond_by is not None:
            truth, segments, seed, tag = respond_by
            events, expected = respond(decisions, truth, segments, seed, tag)
            send_events(client, events, event_headers)
    finally:
        app.extensions["offers"].close()
    return decisions, expected, log_dir


def lift_round(make_app: AppFactory, base_program: Path, data: Path, members: Sequence[str],
               segments: dict[str, str], offers: Sequence[str], seed: int, workdir: Path,
               confidence: float = 0.9) -> dict[str, Any]:
    """One closed-loop round: the lift ``offers lift`` measures and the planted truth, per metric and segment."""
    from training.lift import lift_report

    if workdir.exists():  # a round's logs must hold that round's decisions and events only
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    truth = make_truth(offers, sorted(set(segments.values())), seed)
    program = loop_program(base_program, workdir / "program.yaml", f"loop-{seed}")
    _, expected, log_dir = serve_round(make_app, program, workdir, members, f"lift-{seed}",
                                       (truth, segments, seed, f"s{seed}"))
    report = lift_report(log_dir, data, "UTC", 0.3, pd.Timestamp("2025-11-12"), pd.Timestamp("2025-11-13"),
                         confidence, seed)
    effects = pd.Series(expected)
    truths = {"all": float(effects.mean())}
    for seg in sorted(set(segments.values())):
        part = effects[[m for m in effects.index if segments.get(m) == seg]]
        if len(part):
            truths[f"segment={seg}"] = float(part.mean())
    rows = []
    for row in report.rows:
        if row.group not in truths:
            continue
        scale = truth.basket_minor if row.metric == "spend_minor" else METRICS.get(row.metric)
        if scale is None:
            continue
        true = truths[row.group] * scale
        rows.append({"group": row.group, "metric": row.metric, "lift": row.lift, "low": row.low, "high": row.high,
                     "truth": true, "covered": bool(row.low <= true <= row.high), "treated": row.treated,
                     "control": row.control})
    return {"seed": seed, "rows": rows, "srm_ok": report.sample_ratio.ok}


def first_slot_value(decisions: list[dict[str, Any]], truth: Truth, segments: dict[str, str]) -> float:
    """The true expected reward of the personalised decisions' first offers (redeemed or not)."""
    values = [truth.effect.get((d["offers"][0]["offer_id"], segments.get(d["member_id"], "none")), 0.0)
              for d in decisions if d.get("policy") == "personalised" and d.get("offers")]
    return float(np.mean(values)) if values else float("nan")


def ope_round(make_app: AppFactory, promote: Callable[[str], None], logging_version: str, candidate: str,
              base_program: Path, data: Path, registry: Path, members: Sequence[str], segments: dict[str, str],
              offers: Sequence[str], seed: int, workdir: Path, exploration: float = 0.3) -> dict[str, Any]:
    """Log an exploring ``logging_version`` with responses, estimate ``candidate`` off-policy, then
    deploy ``candidate`` (no exploration) on the same members: its true first-slot value."""
    from training.policy_eval import evaluate_policy

    truth = make_truth(offers, sorted(set(segments.values())), seed)
    promote(logging_version)
    if workdir.exists():  # a round's logs must hold that round's decisions and events only
        shutil.rmtree(workdir)
    logged = workdir / "logged"
    logged.mkdir(parents=True, exist_ok=True)
    decisions, _, log_dir = serve_round(
        make_app, loop_program(base_program, logged / "program.yaml", f"ope-{seed}", exploration=exploration), logged,
        members, f"ope-logged-{seed}", (truth, segments, seed, f"o{seed}"))
    estimate = evaluate_policy(log_dir, data, registry, candidate, "UTC", window_days=1, reps=200, seed=seed)
    logged_value = first_slot_value(decisions, truth, segments)
    promote(candidate)
    deployed_dir = workdir / "deployed"
    deployed_dir.mkdir(parents=True, exist_ok=True)
    deployed, _, _ = serve_round(
        make_app, loop_program(base_program, deployed_dir / "program.yaml", f"ope-{seed}", exploration=0.0),
        deployed_dir, members, f"ope-deployed-{seed}")
    promote(logging_version)
    value = first_slot_value(deployed, truth, segments)
    out = {"seed": seed, "deployed_value": value, "logged_true_value": logged_value,
           "decisions": estimate.result.decisions, "matches": estimate.result.matches,
           "rare_matches": estimate.rare_matches, "rare_rewards": estimate.rare_rewards}
    for e in estimate.result.estimates:
        out[e.estimator] = {"value": e.value, "low": e.low, "high": e.high,
                            "covered": bool(e.low <= value <= e.high) if e.estimator != "logged" else None}
    return out


# -- the benchmark ---------------------------------------------------------------------------------
def build_environment(workdir: Path, n_members: int) -> dict[str, Any]:
    """Synthetic data of ``n_members``, the synthetic example program, and two models: v1 trained
    to the data's end, v2 trained to 60 days earlier (a genuinely different candidate)."""
    from offerdata.synthetic import generate
    from training.train import train_propensity

    data, registry, program = workdir / "data", workdir / "registry", workdir / "program.yaml"
    marker = workdir / "versions.json"
    if marker.exists():
        versions = json.loads(marker.read_text())
    else:
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        program.write_text((ROOT / "examples" / "programs" / "synthetic.yaml").read_text())
        generate(data, n_members=n_members, seed=1)
        v1 = train_propensity(data, registry, config=program, bootstrap_reps=0, promote=True)
        meta = json.loads((v1.model_dir / "metadata.json").read_text())
        end = pd.Timestamp(meta["train_end"]) - pd.Timedelta(days=60)
        v2 = train_propensity(data, registry, train_end=end, config=program, bootstrap_reps=0, promote=False)
        versions = {"v1": v1.version, "v2": v2.version}
        marker.write_text(json.dumps(versions))
    return {"data": data, "registry": registry, "program": program, **versions}


def app_factory(env: dict[str, Any]) -> AppFactory:
    """Started service apps over the benchmark environment (embedded stores, fixed clock)."""
    from runtime.settings import settings_for
    from service.app import create_app

    keys = "bench-events-0123456789:events;bench-decide-0123456789:decisions"

    def make(program: Path, workdir: Path) -> tuple[Any, dict[str, str], dict[str, str], Path]:
        log_dir = workdir / "events"
        settings = settings_for(data=env["data"], program=program, registry=env["registry"], clock=CLOCK,
                                api_keys=keys, event_log=log_dir, redis_url=None)
        app = create_app(settings)
        decisions = app.extensions["offers"].decisions
        assert decisions.wait(600) and decisions.decider is not None, decisions.error
        return app, {"X-API-Key": "bench-decide-0123456789"}, {"X-API-Key": "bench-events-0123456789"}, log_dir
    return make


def coverage(rounds: list[dict[str, Any]]) -> pd.DataFrame:
    """Coverage of the truth per (group, metric) over rounds, with the mean estimate and truth."""
    rows = pd.DataFrame([r for rnd in rounds for r in rnd["rows"]])
    return rows.groupby(["group", "metric"]).agg(rounds=("covered", "size"), coverage=("covered", "mean"),
                                                 mean_lift=("lift", "mean"), mean_truth=("truth", "mean"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--ope-seeds", type=int, default=5)
    parser.add_argument("--exploration", type=float, default=0.3, help="epsilon of the logged champion (OPE)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/offers-bench/closed-loop"))
    args = parser.parse_args()
    from models.registry import Registry

    env = build_environment(args.workdir / f"env-m{args.members}", args.members)
    make = app_factory(env)
    members_frame = pd.read_parquet(env["data"] / "members.parquet")
    members = members_frame["member_id"].astype(str).tolist()
    segments = dict(zip(members, members_frame["segment"].astype(str), strict=True))
    offers = pd.read_parquet(env["data"] / "offers.parquet")["offer_id"].astype(str).tolist()
    t0 = time.perf_counter()
    rounds = [lift_round(make, env["program"], env["data"], members, segments, offers, seed,
                         args.workdir / "rounds" / f"lift-{seed}") for seed in range(args.seeds)]
    if rounds:
        print(f"{args.seeds} lift rounds of {len(members):,} members in {time.perf_counter() - t0:,.0f} s")
        print(coverage(rounds).to_string(float_format=lambda v: f"{v:,.3f}"))
        print(f"sample-ratio checks passed: {sum(r['srm_ok'] for r in rounds)} of {len(rounds)}")
    registry = Registry(env["registry"])

    def promote(version: str) -> None:
        registry.promote(version, check=False)

    for seed in range(args.ope_seeds):
        out = ope_round(make, promote, env["v1"], env["v2"], env["program"], env["data"], env["registry"],
                        members, segments, offers, 1000 + seed, args.workdir / "rounds" / f"ope-{seed}",
                        exploration=args.exploration)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
