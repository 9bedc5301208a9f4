"""``offers train | evaluate | score | models ...``: the data scientist's commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import click

from models.errors import ArtifactError, RegistryError
from offerdata.errors import DataDirError
from offers_cli.cluster_options import cluster_options

USER_ERRORS: tuple[type[Exception], ...] = (DataDirError, RegistryError, ArtifactError)


def _user_errors() -> tuple[type[Exception], ...]:
    from runtime.distributed import ClusterError
    from training.train import TrainingError
    from training.uplift.train import UpliftTrainingError

    return (*USER_ERRORS, TrainingError, UpliftTrainingError, ClusterError)


def _print_metrics(metrics: dict) -> None:
    rows = [n for n in ("model", "product_spend", "member_redemption_rate", "popularity", "random") if n in metrics]
    if not rows:
        click.echo("no test block with redemptions: nothing to evaluate")
        return
    cols = ("roc_auc", "pr_auc", "hit@1", "hit@3", "hit@5", "ndcg@5")
    click.echo(f"{'scorer':<24}" + "".join(f"{c:>9}" for c in cols))
    for name in rows:
        click.echo(f"{name:<24}" + "".join(f"{metrics[name].get(c, float('nan')):>9.4f}" for c in cols))
    m = metrics["model"]
    click.echo(f"calibration: ECE {m['ece']:.5f}; log-loss {m['log_loss']:.5f} (prior {m['log_loss_prior']:.5f}); "
               f"Brier {m['brier']:.5f} (prior {m['brier_prior']:.5f})")
    ci = m.get("ci95", {})
    if ci:
        click.echo("model 95% intervals over members: " + ", ".join(f"{k} [{a:.3f}, {b:.3f}]" for k, (a, b) in ci.items()))
    if "member_campaign" in metrics:
        mc = metrics["member_campaign"]
        click.echo(f"member x campaign ROC-AUC {mc['roc_auc']:.4f} over {mc['groups']:,} groups (from the offer model)")
    if "member_campaign_model" in metrics:
        mm = metrics["member_campaign_model"]
        click.echo(f"member x campaign model ROC-AUC {mm['roc_auc']:.4f} (PR-AUC {mm['pr_auc']:.4f}, base rate {mm['base_rate']:.3f})")


def _moment_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a time option outside models.timerange's supported range (a usage error, exit 2)."""
    if value is None:
        return None
    from models.timerange import OutOfRange, parse_moment

    try:
        parse_moment(value)
    except OutOfRange as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _cluster_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--scheduler`` and ``--workers``: compute the features on a Dask cluster (training.distributed)."""
    return cluster_options("the features")(command)


def _client(scheduler: str | None, workers: int | None) -> AbstractContextManager[Any]:
    """The Dask client for the cluster options (None: in-process); see runtime.distributed.client_for."""
    from runtime.distributed import client_for

    return client_for(scheduler, workers)


@click.command()
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path), help="Contract data directory.")
@click.option("--registry", required=True, type=click.Path(path_type=Path), help="Model registry directory.")
@click.option("--train-end", default=None, callback=_moment_option,
              help="Train on exposures before this date (default: 75% of exposures).")
@click.option("--config", type=click.Path(path_type=Path), default=None,
              help="Program config YAML (default: DATA/program.yaml when present).")
@click.option("--bootstrap", "reps", type=click.IntRange(0, 10_000), default=200, show_default=True,
              help="Bootstrap resamples for confidence intervals (0 to skip).")
@click.option("--promote/--no-promote", default=None, help="Make the new version champion (default: only if none).")
@click.option("--censor-labels", is_flag=True, help="Count only redemptions known before --train-end as training labels.")
@click.option("--objective", type=click.Choice(["auto", "propensity", "uplift"]), default="auto", show_default=True,
              help="uplift: per-offer incremental effect (auto when the data has control arms).")
@_cluster_options
def train(data_dir: Path, registry: Path, train_end: str | None, config: Path | None, reps: int,
          promote: bool | None, censor_labels: bool, objective: str, scheduler: str | None,
          workers: int | None) -> None:
    """Train, evaluate and register a propensity or uplift model."""
    from offerdata.directory import default_program
    from training.train import train_propensity
    from training.uplift.data import has_control_arm

    try:
        if objective == "uplift" or (objective == "auto" and has_control_arm(data_dir)):
            if scheduler or workers:
                click.echo("note: uplift training runs in-process; --scheduler/--workers are ignored", err=True)
            _train_uplift(data_dir, registry, promote)
            return
        config = config or default_program(data_dir)
        with _client(scheduler, workers) as client:
            result = train_propensity(data_dir, registry, train_end=train_end, config=config, bootstrap_reps=reps,
                                      progress=True, promote=promote, censor_labels=censor_labels, client=client)
    except _user_errors() as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"version {result.version} ({result.metrics['selection']['chosen']}) -> {result.model_dir}")
    _print_metrics(result.metrics)
    click.echo("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    click.echo(f"report: {result.model_dir / 'report.html'}")


def _train_uplift(data_dir: Path, registry: Path, promote: bool | None) -> None:
    """Cross-validate, fit and register an uplift model; print the chosen learner per offer."""
    from training.uplift.train import train_uplift

    result = train_uplift(data_dir, registry, promote=promote)
    click.echo(f"version {result.version} (uplift) -> {result.model_dir}")
    for offer_id, sel in result.selection.items():
        c = sel["chosen"]
        policy = (f", policy net value {c['policy_net_value']:.2f} at share {c['policy_share']:.3f}"
                  if "policy_net_value" in c else "")
        click.echo(f"  {offer_id}: {c['method']} ({c['num_leaves']} leaves, {c['rounds']} rounds, "
                   f"{c.get('min_data_in_leaf', 200)} per leaf), cross-validated Qini {c['qini']:.5f}, "
                   f"uplift@30% {c['uplift@30%']:.4f}{policy}")


def _print_uplift(metrics: dict) -> None:
    """The held-out uplift metrics: ranking and policy tables per offer, then the multi-offer policy."""
    for offer_id, m in metrics["offers"].items():
        click.echo(f"{offer_id}: {m['units']:,} units ({m['treated']:,} treated), ATE {m['ate']:.4f}, "
                   f"value ${m['value']:.2f}, send cost ${m['cost']:.2f}")
        cols = ("qini", "auuc", "uplift@10%", "uplift@30%", "uplift@50%")
        click.echo(f"  {'ranking':<16}" + "".join(f"{c:>12}" for c in cols))
        for name, row in m["ranking"].items():
            click.echo(f"  {name:<16}" + "".join(f"{row[c]:>12.4f}" for c in cols))
        click.echo(f"  {'policy':<16}{'share':>12}{'IRR':>12}{'NIR':>12}{'net value':>12}")
        for name, row in m["policy"].items():
            click.echo(f"  {name:<16}{row['share']:>12.3f}{row['irr']:>12.4f}{row['nir']:>12.2f}{row['net_value']:>12.2f}")
        click.echo("  model 95% intervals: " + ", ".join(f"{k} [{a:.4f}, {b:.4f}]" for k, (a, b) in m["ci95"].items()))
    for name, row in metrics.get("multi_offer", {}).items():
        a, b = row["ci95"]
        click.echo(f"multi-offer policy {name}: ${row['value_per_member']:.4f} per member [{a:.4f}, {b:.4f}]")


@click.command()
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path))
@click.option("--registry", required=True, type=click.Path(path_type=Path))
@click.option("--version", "version", default="champion", show_default=True, help="Version id or alias.")
@click.option("--train-end", default=None, callback=_moment_option, help="Test on exposures from this date (default: the model's cut-off).")
@click.option("--bootstrap", "reps", type=click.IntRange(0, 10_000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print every metric as JSON.")
@click.option("--policy-log", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Decision log directory: estimate off-policy what VERSION's policy would have earned on "
                   "the logged decisions (IPS, SNIPS, DR) next to the logged policy's own value.")
@click.option("--program", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="With --policy-log: the program config for its time zone (default DATA/program.yaml).")
@click.option("--since", default=None, callback=_moment_option,
              help="With --policy-log: first decision time (program-local ISO date or time).")
@click.option("--until", default=None, callback=_moment_option, help="With --policy-log: end (exclusive).")
@click.option("--window", "window_days", type=click.IntRange(1, 365), default=14, show_default=True,
              help="With --policy-log: days after a decision in which a redemption of its offer counts.")
@click.option("--max-decisions", type=click.IntRange(1), default=50_000, show_default=True,
              help="With --policy-log: evaluate a seeded random sample of at most this many decisions.")
@_cluster_options
def evaluate(data_dir: Path, registry: Path, version: str, train_end: str | None, reps: int, as_json: bool,
             policy_log: Path | None, program: Path | None, since: str | None, until: str | None,
             window_days: int, max_decisions: int, scheduler: str | None, workers: int | None) -> None:
    """Evaluate a registered model against the baselines on a time split, or (--policy-log)
    estimate what its policy would have earned on logged traffic."""
    from models.registry import Registry
    from models.uplift import is_uplift
    from training.evaluate import evaluate_version
    from training.uplift.evaluate import evaluate_uplift

    if policy_log is not None:
        _evaluate_policy(policy_log, data_dir, registry, version, program, since, until, window_days, reps, as_json,
                         max_decisions)
        return
    try:
        if is_uplift(Registry(registry).path(version)):
            result = evaluate_uplift(data_dir, registry, version, reps)
            click.echo(json.dumps(result, indent=2, default=str) if as_json else "")
            if not as_json:
                _print_uplift(result)
            return
        with _client(scheduler, workers) as client:
            metrics = evaluate_version(data_dir, registry, version, train_end, reps, client=client)
    except _user_errors() as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(metrics, indent=2, default=str))
    else:
        click.echo(f"version {metrics['version']}, test block from {metrics['train_end']}: "
                   f"{metrics['rows']:,} exposures, {metrics['positives']:,} redemptions")
        _print_metrics(metrics)


def _evaluate_policy(log_dir: Path, data_dir: Path, registry: Path, version: str, program: Path | None,
                     since: str | None, until: str | None, window_days: int, reps: int, as_json: bool,
                     max_decisions: int) -> None:
    """``offers evaluate --policy-log``: print the off-policy estimates (training.policy_eval)."""
    import pandas as pd

    from models.program import load_program
    from offerdata.directory import default_program
    from training.policy_eval import evaluate_policy

    try:
        config_path = program or default_program(data_dir)
        zone = load_program(config_path).timezone if config_path is not None else "UTC"
        result = evaluate_policy(log_dir, data_dir, registry, version, zone,
                                 pd.Timestamp(since).tz_localize(None) if since else None,
                                 pd.Timestamp(until).tz_localize(None) if until else None,
                                 window_days, reps=max(reps, 1), max_decisions=max_decisions)
    except _user_errors() as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
        return
    r = result.result
    logged = ", ".join(f"{v} ({n:,})" for v, n in result.logged_versions.items()) or "none"
    click.echo(f"{r.decisions:,} personalised decisions logged by {logged}; {version} -> {result.version} "
               f"agrees on the first offer in {r.matches:,} (effective sample size {r.effective_sample_size:,.1f}); "
               f"reward: its first offer redeemed within {result.window_days} days; {result.rare_matches:,} "
               f"low-propensity matches with {result.rare_rewards:,.0f} reward(s)")
    for e in r.estimates:
        who = "logged policy" if e.estimator == "logged" else f"{result.version} {e.estimator}"
        click.echo(f"  {who:<32} {e.value:.4f} [{e.low:.4f}, {e.high:.4f}]")
    for note in result.notes:
        click.echo(f"warning: {note}", err=True)


@click.command()
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path))
@click.option("--registry", required=True, type=click.Path(path_type=Path))
@click.option("--pairs", default=None, type=click.Path(path_type=Path),
              help="Parquet/CSV with member_id, offer_id, as_of (and optionally channel); "
                   "default: every member x every offer at DATA/decision_moment.txt.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output Parquet or CSV.")
@click.option("--version", "version", default="champion", show_default=True)
@_cluster_options
def score(data_dir: Path, registry: Path, pairs: Path | None, out: Path, version: str, scheduler: str | None,
          workers: int | None) -> None:
    """Score (member, offer, as_of) pairs, or every member x offer; uplift models add an uplift column.

    On a Dask cluster (--workers/--scheduler) the workers read and score their own member
    partitions; an --out without a .parquet/.csv suffix is then a directory of part files.
    """
    from training.score import all_pairs, read_pairs, score_pairs, write_frame

    try:
        with _client(scheduler, workers) as client:
            if client is not None:
                from training.cluster_score import cluster_score

                rows, used = cluster_score(client, data_dir, registry, version, read_pairs(pairs) if pairs else None,
                                           out, progress=True)
                click.echo(f"scored {rows:,} pairs with {used} -> {out}")
                return
            frame = score_pairs(data_dir, registry, read_pairs(pairs) if pairs else all_pairs(data_dir), version,
                                progress=True)
    except _user_errors() as exc:
        raise click.ClickException(str(exc)) from exc
    write_frame(frame, out)
    click.echo(f"scored {len(frame):,} pairs with {frame['model_version'].iloc[0] if len(frame) else version} -> {out}")


@click.group()
def models() -> None:
    """List, inspect, promote and roll back registered models."""


def _registry(path: Path):
    from models.registry import Registry

    try:
        return Registry(path)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc


@models.command("list")
@click.option("--registry", required=True, type=click.Path(path_type=Path))
def list_cmd(registry: Path) -> None:
    """Every version, its aliases and headline metrics."""
    reg = _registry(registry)
    versions = reg.list()
    if not versions:
        click.echo("no models registered")
    for v in versions:
        tags = f" [{', '.join(v.aliases)}]" if v.aliases else ""
        metrics = " ".join(f"{k}={val}" for k, val in v.metrics.items())
        click.echo(f"{v.version}{tags} train_end={v.train_end} {metrics}")


@models.command("show")
@click.option("--registry", required=True, type=click.Path(path_type=Path))
@click.argument("version", default="champion")
def show_cmd(registry: Path, version: str) -> None:
    """A version's metadata (without the bulky metric tables)."""
    reg = _registry(registry)
    try:
        path = reg.path(version)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    meta = json.loads((path / "metadata.json").read_text())
    meta.pop("metrics", None)
    meta["path"] = str(path)
    click.echo(json.dumps(meta, indent=2))


@models.command("promote")
@click.option("--registry", required=True, type=click.Path(path_type=Path))
@click.option("--alias", type=click.Choice(["champion", "challenger"]), default="champion", show_default=True)
@click.argument("version")
def promote_cmd(registry: Path, alias: str, version: str) -> None:
    """Point an alias at a version (atomically), once its artifact is proven servable."""
    reg = _registry(registry)
    try:
        target = reg.promote(version, alias)  # never promotes an artifact that cannot serve
    except (RegistryError, ArtifactError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{alias} -> {target}")


@models.command("rollback")
@click.option("--registry", required=True, type=click.Path(path_type=Path))
@click.option("--alias", type=click.Choice(["champion", "challenger"]), default="champion", show_default=True)
def rollback_cmd(registry: Path, alias: str) -> None:
    """Restore an alias to its previous version (atomically)."""
    reg = _registry(registry)
    try:
        target = reg.rollback(alias)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{alias} -> {target}")


@models.command("route")
@click.option("--registry", required=True, type=click.Path(path_type=Path))
@click.option("--challenger-share", type=click.FloatRange(0.0, 1.0), default=None,
              help="Share of members (0 to 1) whose decisions the challenger makes.")
@click.option("--clear", is_flag=True, help="Remove the registry's share: the program's decisions.challenger.share applies.")
def route_cmd(registry: Path, challenger_share: float | None, clear: bool) -> None:
    """Route a deterministic share of members to the challenger, in every worker within a second.

    Members are assigned by a hash of the program's decisions.challenger.salt and their id, so a
    member keeps their model. Without the option, prints the current routing.
    """
    if clear and challenger_share is not None:
        raise click.UsageError("give either --challenger-share or --clear, not both")
    reg = _registry(registry)
    try:
        if clear or challenger_share is not None:
            reg.route(None if clear else challenger_share)
        share, aliases = reg.challenger_share(), reg.aliases()
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    where = "the program's decisions.challenger.share" if share is None else f"{share:g} of members"
    click.echo(f"challenger {aliases.get('challenger') or '(none)'} decides for {where}; "
               f"champion {aliases.get('champion') or '(none)'} for the rest")
