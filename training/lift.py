"""``offers lift``: what the engine earned, measured against its holdout.

The program's holdout (``decisions.holdout``: a seeded hash of the member id, stable across
workers and restarts) is a randomized control group: its members get the non-personalised
policy instead of the model's. The decision log says who was assigned where and when;
the data directory (and the event log) say what every member did afterwards. So:

* **assignment**: every member with a logged decision in ``[since, until)``; arm
  ``control`` when the decision's policy was ``holdout``, else ``treatment``; from the
  member's first logged decision in the window (their model version and channel are that
  decision's);
* **outcomes** per member, from that first decision to ``until``: spend (minor units),
  visits (distinct baskets) and redemptions, from the data's transactions and redemptions
  plus the event log's;
* **lift** per metric: the treated mean minus the control mean (and relative to the
  control mean), with a percentile bootstrap interval (members resampled within each arm,
  seeded, so a report is reproducible), overall and per model version, channel and
  segment (when the members table has one);
* **per offer**, for the offers with a randomized control group (``control_share`` in the
  program): members shown the offer against members held back from it (``OFFER_CONTROL`` in
  the decision log), from each member's first such decision, on the same metrics (group
  ``offer=<id>``; the held-back members got the next-best offers instead, so this is the
  offer's increment over what would replace it); offers with fewer than
  :data:`MIN_OFFER_ARM` members in an arm are left out;
* **sample-ratio check**: the control share against the configured holdout share, with a
  chi-square test; a p-value under 0.001 flags an assignment or logging problem, and the
  lift should not be trusted until it is explained.

"How much did the engine earn us last month?": the spend lift per member times the treated
members is the incremental spend of the period (``incremental_total`` in the report).

Everything here reads the documented log and table formats with the ``offerdata`` readers;
the training package never imports the runtime or the service.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from offerdata.events import read_log
from offerdata.tables import read_table, table_path
from training.train import TrainingError

METRICS = ("spend_minor", "visits", "redemptions")
#: members an arm needs before an offer's own lift is reported
MIN_OFFER_ARM = 20
#: a sample-ratio p-value below this flags the assignment
SRM_ALPHA = 1e-3


class LiftError(TrainingError):
    """The lift cannot be measured from these inputs (no decisions, no control group...)."""


@dataclass(frozen=True)
class LiftRow:
    """One metric's lift in one group of members."""

    group: str
    metric: str
    treated: int
    control: int
    treated_mean: float
    control_mean: float
    lift: float
    low: float
    high: float
    relative: float | None
    #: lift x treated members: the group's incremental total of the metric
    incremental_total: float


@dataclass(frozen=True)
class SampleRatio:
    """The control share observed against the configured holdout share."""

    expected_share: float | None
    observed_share: float
    p_value: float | None
    ok: bool


@dataclass
class LiftReport:
    """Everything ``offers lift`` prints, writes as JSON and renders as HTML."""

    since: str | None
    until: str
    decisions: int
    members: int
    rows: list[LiftRow]
    sample_ratio: SampleRatio
    confidence: float
    notes: list[str] = field(default_factory=list)
    #: per offer: decisions that issued it, its redemptions in the window, and their rate
    funnel: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {"since": self.since, "until": self.until, "decisions": self.decisions, "members": self.members,
                "confidence": self.confidence, "sample_ratio": asdict(self.sample_ratio),
                "rows": [asdict(r) for r in self.rows], "notes": self.notes, "funnel": self.funnel}


# -- inputs -------------------------------------------------------------------------------------
def read_assignments(log_dir: str | os.PathLike[str], timezone: str, since: pd.Timestamp | None,
                     until: pd.Timestamp | None) -> tuple[pd.DataFrame, int]:
    """Each member's first logged decision in the window: member_id, arm, at (local time),
    model_version, channel. Returns the frame and how many decisions the window held."""
    rows = []
    for path in sorted(Path(log_dir).glob("decisions-*.ndjson")):
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn line: offers data events reports it with its place
                if isinstance(rec, dict) and isinstance(rec.get("member_id"), str) and isinstance(rec.get("ts"), str):
                    rows.append((rec.get("decision_id"), rec["member_id"], rec["ts"], rec.get("policy"),
                                 rec.get("model_version") or "none", rec.get("channel") or "unknown"))
    frame = pd.DataFrame(rows, columns=["decision_id", "member_id", "ts", "policy", "model_version", "channel"])
    if frame.empty:
        return frame.assign(arm=[], at=[]), 0
    frame = frame.drop_duplicates("decision_id")
    frame["at"] = (pd.to_datetime(frame["ts"], utc=True, errors="coerce").dt.tz_convert(timezone)
                   .dt.tz_localize(None))
    frame = frame.dropna(subset=["at"])
    if since is not None:
        frame = frame[frame["at"] >= since]
    if until is not None:
        frame = frame[frame["at"] < until]
    decisions = len(frame)
    first = frame.sort_values("at").drop_duplicates("member_id", keep="first")
    first = first.assign(arm=np.where(first["policy"] == "holdout", "control", "treatment"))
    return first[["member_id", "arm", "at", "model_version", "channel"]].reset_index(drop=True), decisions


def in_window(at: pd.Series, since: pd.Timestamp | None, until: pd.Timestamp | None) -> pd.Series:
    """Which of the times ``at`` fall in ``[since, until)`` (an open bound when None)."""
    keep = pd.Series(True, index=at.index)
    if since is not None:
        keep &= at >= since
    if until is not None:
        keep &= at < until
    return keep


def offer_funnel(log_dir: str | os.PathLike[str], red: pd.DataFrame, timezone: str, since: pd.Timestamp | None,
                 until: pd.Timestamp) -> list[dict[str, Any]]:
    """Per offer: how many logged decisions in the window issued it (returned it to a member), how
    many redemptions of it the window holds (redeem events and the data's redemptions), and the
    rate; offers by issues, most first."""
    from offerdata.decision_log import iter_decisions

    issued: dict[str, int] = {}
    for rec in iter_decisions(log_dir)[0]:
        at = pd.Timestamp(rec["ts"]).tz_convert(timezone).tz_localize(None)
        if (since is not None and at < since) or at >= until:
            continue
        for shown in rec.get("shown") or []:
            if isinstance(shown, dict) and isinstance(shown.get("offer_id"), str):
                issued[shown["offer_id"]] = issued.get(shown["offer_id"], 0) + 1
    window = red[in_window(pd.to_datetime(red["at"]), since, until)] if len(red) else red
    redeemed = window.groupby("offer_id").size().to_dict() if len(window) else {}
    offers = sorted(set(issued) | {str(o) for o in redeemed}, key=lambda o: (-issued.get(o, 0), o))
    return [{"offer_id": o, "issued": issued.get(o, 0), "redeemed": int(redeemed.get(o, 0)),
             "rate": redeemed.get(o, 0) / issued[o] if issued.get(o) else None} for o in offers]


def read_offer_arms(log_dir: str | os.PathLike[str], timezone: str, since: pd.Timestamp | None,
                    until: pd.Timestamp | None) -> pd.DataFrame:
    """For every offer with a control group: each member's first decision in the window that
    showed it (arm ``treatment``) or held it back (arm ``control``): member_id, offer_id, arm, at."""
    from offerdata.decision_log import iter_decisions

    rows = []
    records, _, _ = iter_decisions(log_dir)
    for rec in records:
        shares = rec.get("control_shares") or {}
        if not shares:
            continue
        candidates = rec.get("candidates") or []
        shown = {s.get("offer_id") for s in rec.get("shown") or []}
        held = {candidates[j] for j in (rec.get("excluded") or {}).get("OFFER_CONTROL", []) if j < len(candidates)}
        for offer in shares:
            arm = "treatment" if offer in shown else "control" if offer in held else None
            if arm is not None:
                rows.append((rec["member_id"], offer, arm, rec["ts"]))
    frame = pd.DataFrame(rows, columns=["member_id", "offer_id", "arm", "ts"])
    frame["at"] = pd.to_datetime(frame["ts"], utc=True).dt.tz_convert(timezone).dt.tz_localize(None)
    frame = frame[in_window(frame["at"], since, until)].sort_values("at").drop_duplicates(["member_id", "offer_id"], keep="first")
    return frame.drop(columns="ts").reset_index(drop=True)


def offer_rows(arms: pd.DataFrame, tx: pd.DataFrame, red: pd.DataFrame, until: pd.Timestamp, confidence: float,
               seed: int) -> list[LiftRow]:
    """Each controlled offer's lift (module docstring), for offers with enough members in both arms."""
    rows: list[LiftRow] = []
    for offer, part in arms.groupby("offer_id", sort=True):
        counts = part["arm"].value_counts()
        if counts.get("treatment", 0) < MIN_OFFER_ARM or counts.get("control", 0) < MIN_OFFER_ARM:
            continue
        outcomes = member_outcomes(part[["member_id", "arm", "at"]].reset_index(drop=True), tx, red, until)
        rows.extend(row for metric in METRICS
                    if (row := lift_row(f"offer={offer}", metric, outcomes, confidence, seed)) is not None)
    return rows


def log_events(log_dir: str | os.PathLike[str] | None) -> pd.DataFrame:
    """The event log's usable events (empty without a log directory or segments)."""
    if log_dir is None or not any(Path(log_dir).glob("events-*.ndjson")):
        return pd.DataFrame()
    return read_log(log_dir)[0]


def _local(events: pd.DataFrame, timezone: str) -> pd.Series:
    """The events' ``ts`` in local program time (naive), as the data's tables keep it."""
    return pd.to_datetime(events["ts"], utc=True).dt.tz_convert(timezone).dt.tz_localize(None)


def read_redemptions(data_dir: str | os.PathLike[str], events: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Redemptions (member_id, offer_id, at in local program time): the data's table plus the
    ``redeem`` events among ``events`` (:func:`log_events`)."""
    red = (read_table(data_dir, "redemptions", columns=["member_id", "offer_id", "redeemed_at"])
           .rename(columns={"redeemed_at": "at"})
           if table_path(data_dir, "redemptions") is not None else pd.DataFrame(columns=["member_id", "offer_id", "at"]))
    if events.empty:
        return red
    offer = events.get("offer_id", pd.Series(None, index=events.index))
    live = pd.DataFrame({"member_id": events["member_id"], "offer_id": offer, "at": _local(events, timezone)})
    return pd.concat([red, live[events["type"] == "redeem"]], ignore_index=True)


def read_outcomes(data_dir: str | os.PathLike[str], log_dir: str | os.PathLike[str] | None,
                  timezone: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Purchase lines (member_id, at, basket_id, amount_minor) and redemptions (member_id,
    offer_id, at) from the data directory plus the event log, in local program time."""
    tx = read_table(data_dir, "transactions", columns=["member_id", "purchased_at", "basket_id", "amount_minor"])
    tx = tx.rename(columns={"purchased_at": "at"})
    events = log_events(log_dir)
    if not events.empty:
        amount = pd.to_numeric(events.get("amount_minor", pd.Series(0, index=events.index))).fillna(0)
        basket = events.get("basket_id", pd.Series(None, index=events.index)).fillna(events["event_id"])
        live_tx = pd.DataFrame({"member_id": events["member_id"], "at": _local(events, timezone), "basket_id": basket,
                                "amount_minor": amount})[events["type"] == "transaction"]
        tx = pd.concat([tx, live_tx], ignore_index=True)
    return tx, read_redemptions(data_dir, events, timezone)


def member_outcomes(assigned: pd.DataFrame, tx: pd.DataFrame, red: pd.DataFrame,
                    until: pd.Timestamp) -> pd.DataFrame:
    """``assigned`` plus each member's spend, visits and redemptions from their first decision to ``until``."""
    start = assigned.set_index("member_id")["at"]

    def after(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[frame["member_id"].isin(start.index)]
        t0 = frame["member_id"].map(start)
        return frame[(frame["at"] >= t0) & (frame["at"] < until)]

    t = after(tx)
    spend = t.groupby("member_id")["amount_minor"].sum()
    visits = t.groupby("member_id")["basket_id"].nunique()
    redemptions = after(red).groupby("member_id").size()
    out = assigned.copy()
    for name, series in (("spend_minor", spend), ("visits", visits), ("redemptions", redemptions)):
        out[name] = out["member_id"].map(series).fillna(0).astype(np.float64)
    return out


# -- estimates ------------------------------------------------------------------------------------
def bootstrap_interval(treated: np.ndarray, control: np.ndarray, confidence: float = 0.95,
                       resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(treated) - mean(control), each arm resampled on its own.

    Resamples are drawn in blocks, so memory stays bounded for a million members.
    """
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    block = max(1, 2_000_000 // max(len(treated) + len(control), 1))
    for lo in range(0, resamples, block):
        k = min(block, resamples - lo)
        t = treated[rng.integers(0, len(treated), (k, len(treated)))].mean(axis=1)
        c = control[rng.integers(0, len(control), (k, len(control)))].mean(axis=1)
        diffs[lo:lo + k] = t - c
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    return float(low), float(high)


def lift_row(group: str, metric: str, frame: pd.DataFrame, confidence: float, seed: int) -> LiftRow | None:
    """The lift of ``metric`` in ``frame`` (None when an arm is empty)."""
    t = frame.loc[frame["arm"] == "treatment", metric].to_numpy(dtype=np.float64)
    c = frame.loc[frame["arm"] == "control", metric].to_numpy(dtype=np.float64)
    if len(t) == 0 or len(c) == 0:
        return None
    lift = float(t.mean() - c.mean())
    low, high = bootstrap_interval(t, c, confidence, seed=seed)
    relative = lift / float(c.mean()) if c.mean() != 0 else None
    return LiftRow(group=group, metric=metric, treated=len(t), control=len(c), treated_mean=float(t.mean()),
                   control_mean=float(c.mean()), lift=lift, low=low, high=high, relative=relative,
                   incremental_total=lift * len(t))


def sample_ratio(frame: pd.DataFrame, expected_share: float | None) -> SampleRatio:
    """Chi-square test of the control count against the configured holdout share."""
    n = len(frame)
    control = int((frame["arm"] == "control").sum())
    observed = control / n if n else 0.0
    if expected_share is None or not 0 < expected_share < 1 or n == 0:
        return SampleRatio(expected_share, observed, None, True)
    expected = [n * expected_share, n * (1 - expected_share)]
    p = float(stats.chisquare([control, n - control], expected).pvalue)
    return SampleRatio(expected_share, observed, p, p >= SRM_ALPHA)


def measure(outcomes: pd.DataFrame, expected_share: float | None, confidence: float = 0.95, seed: int = 0,
            segments: pd.Series | None = None) -> tuple[list[LiftRow], SampleRatio]:
    """Lift rows overall and per model version, channel and segment, and the sample-ratio check."""
    frame = outcomes.copy()
    groups: list[tuple[str, pd.DataFrame]] = [("all", frame)]
    for column in ("model_version", "channel"):
        for value, part in frame.groupby(column):
            groups.append((f"{column}={value}", part))
    if segments is not None:
        frame["segment"] = frame["member_id"].map(segments).fillna("none")
        for value, part in frame.groupby("segment"):
            groups.append((f"segment={value}", part))
    rows = [row for name, part in groups for metric in METRICS
            if (row := lift_row(name, metric, part, confidence, seed)) is not None]
    return rows, sample_ratio(frame, expected_share)


def lift_report(log_dir: str | os.PathLike[str], data_dir: str | os.PathLike[str], timezone: str,
                expected_share: float | None, since: pd.Timestamp | None = None, until: pd.Timestamp | None = None,
                confidence: float = 0.95, seed: int = 0) -> LiftReport:
    """Read the decision log and the outcomes, and measure the lift (module docstring)."""
    assigned, decisions = read_assignments(log_dir, timezone, since, until)
    if assigned.empty:
        raise LiftError(f"no logged decisions in {log_dir} in the window: run decisions with the decision log "
                        "on (OFFERS_DECISION_LOG), or widen --since/--until")
    tx, red = read_outcomes(data_dir, log_dir, timezone)
    end = until if until is not None else max(tx["at"].max() if len(tx) else assigned["at"].max(),
                                               assigned["at"].max()) + pd.Timedelta(seconds=1)
    outcomes = member_outcomes(assigned, tx, red, end)
    notes = []
    if (outcomes["arm"] == "control").sum() == 0:
        raise LiftError("no member of the window is in the holdout: set decisions.holdout.share in the program "
                        "config to measure lift")
    members = read_table(data_dir, "members")
    segments = (members.set_index("member_id")["segment"].astype(str)
                if "segment" in members.columns and members["segment"].notna().any() else None)
    rows, srm = measure(outcomes, expected_share, confidence, seed, segments)
    rows.extend(offer_rows(read_offer_arms(log_dir, timezone, since, until), tx, red, end, confidence, seed))
    if not srm.ok:
        notes.append(f"sample ratio mismatch: {srm.observed_share:.2%} of members in control against "
                     f"{srm.expected_share:.2%} configured (p = {srm.p_value:.2g}); do not trust the lift until "
                     "the assignment or the logging is explained")
    return LiftReport(since=None if since is None else since.isoformat(), until=end.isoformat(),
                      decisions=decisions, members=len(outcomes), rows=rows, sample_ratio=srm,
                      confidence=confidence, notes=notes, funnel=offer_funnel(log_dir, red, timezone, since, end))


# -- rendering ------------------------------------------------------------------------------------
def _chart(rows: list[LiftRow]) -> str:
    """A PNG (base64) of each metric's overall lift with its interval, per model version."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r.group == "all" or r.group.startswith("model_version=")]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3))
    for ax, metric in zip(np.atleast_1d(axes), METRICS, strict=True):
        part = [r for r in shown if r.metric == metric]
        y = [r.lift for r in part]
        err = [[r.lift - r.low for r in part], [r.high - r.lift for r in part]]
        ax.bar(range(len(part)), y, yerr=err, capsize=4, color="#4c72b0")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(part)), [r.group for r in part], rotation=20, fontsize=7)
        ax.set_title(f"{metric} per member: treated - control", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def render_html(report: LiftReport) -> str:
    """A self-contained HTML page: the sample-ratio check, the chart and every row."""
    srm = report.sample_ratio
    cells = "".join(
        f"<tr><td>{html.escape(r.group)}</td><td>{r.metric}</td><td>{r.treated:,}</td><td>{r.control:,}</td>"
        f"<td>{r.treated_mean:,.3f}</td><td>{r.control_mean:,.3f}</td><td><b>{r.lift:,.3f}</b></td>"
        f"<td>[{r.low:,.3f}, {r.high:,.3f}]</td><td>{'' if r.relative is None else f'{r.relative:+.1%}'}</td>"
        f"<td>{r.incremental_total:,.0f}</td></tr>" for r in report.rows)
    notes = "".join(f"<p class='warn'>{html.escape(n)}</p>" for n in report.notes)
    expected = "not configured" if srm.expected_share is None else f"{srm.expected_share:.2%}"
    p_value = "" if srm.p_value is None else f", p = {srm.p_value:.3g}"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Offer lift</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .6em;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.warn{{color:#a00;font-weight:bold}}</style></head><body>
<h1>What the offers earned</h1>
<p>{report.decisions:,} logged decisions, {report.members:,} members, until {html.escape(report.until)};
intervals are {report.confidence:.0%} percentile bootstrap.</p>
<p>Control share: {srm.observed_share:.2%} observed, {expected} configured{p_value}
({'consistent' if srm.ok else 'MISMATCH'}).</p>{notes}
<img alt="lift per metric with intervals" src="data:image/png;base64,{_chart(report.rows)}">
<table><tr><th>group</th><th>metric</th><th>treated</th><th>control</th><th>treated mean</th>
<th>control mean</th><th>lift</th><th>interval</th><th>relative</th><th>incremental total</th></tr>{cells}</table>
</body></html>"""
