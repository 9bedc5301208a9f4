"""``offers monitor``: drift and data quality after the fact, from the decision and event logs.

What the service exports live (:mod:`runtime.drift`, ``offers_event_quality_total``), computed
over a whole window of the logs and written as a report:

* **score drift** per model version, overall and per day: the population stability index
  (:mod:`models.drift`) of the scores the decision log holds against the reference the
  version's artifact keeps (a version registered without one is reported as such);
* **feature drift** per model version, when the data directory is given: the features of a
  seeded sample of logged (decision, candidate) pairs, recomputed point-in-time from the data
  (:func:`models.features.feature_matrix`), against the same reference;
* **event data quality**: events by type, lines the log could not read, duplicates, events
  naming offers or products the data does not know, and events stamped more than five
  minutes after the service received them.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from models.drift import level, psi
from models.registry import Registry, RegistryError
from offerdata.decision_log import iter_decisions
from offerdata.events import FUTURE_TOLERANCE_SECONDS, read_log
from training.lift import in_window

#: Logged (decision, candidate) pairs whose features are recomputed per version at most.
FEATURE_SAMPLE = 2_000


@dataclass
class MonitorReport:
    """Drift per model version and event data quality over one window of the logs."""

    since: str | None
    until: str | None
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (NaN as null)."""
        return _finite({"since": self.since, "until": self.until, "versions": self.versions, "events": self.events,
                        "notes": self.notes})


def _finite(value: Any) -> Any:
    """``value`` with every NaN (nothing to compare) as None, through dicts and lists."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def logged_scores(log_dir: str | os.PathLike[str], timezone: str, since: pd.Timestamp | None,
                  until: pd.Timestamp | None) -> tuple[pd.DataFrame, int]:
    """One row per scored candidate of every logged decision in the window (decision_id,
    member_id, at in program-local time, channel, model_version, offer_id, score), and the
    number of unreadable decision lines."""
    records, _, rejected = iter_decisions(log_dir)
    rows = []
    for rec in records:
        scores, candidates = rec.get("scores"), rec.get("candidates")
        if not isinstance(scores, list) or not isinstance(candidates, list) or len(scores) != len(candidates):
            continue
        for offer, score in zip(candidates, scores, strict=True):
            if isinstance(score, int | float):
                rows.append((rec["decision_id"], rec["member_id"], rec["ts"], rec["channel"],
                             rec.get("model_version") or "none", offer, float(score)))
    frame = pd.DataFrame(rows, columns=["decision_id", "member_id", "ts", "channel", "model_version", "offer_id",
                                        "score"])
    frame["at"] = pd.to_datetime(frame["ts"], utc=True).dt.tz_convert(timezone).dt.tz_localize(None)
    return frame[in_window(frame["at"], since, until)].drop(columns="ts"), len(rejected)


def _reference(registry: Registry, version: str) -> dict[str, Any] | None:
    """The drift reference kept in ``version``'s metadata (None: none, or no such version)."""
    try:
        metadata = json.loads((registry.path(version) / "metadata.json").read_text(encoding="utf-8"))
    except (RegistryError, OSError, ValueError):
        return None
    reference = metadata.get("reference")
    return reference if isinstance(reference, dict) else None


def feature_drift(data_dir: str | os.PathLike[str], rows: pd.DataFrame, reference: dict[str, Any],
                  program: Any = None, seed: int = 0) -> dict[str, float]:
    """PSI per feature of a seeded sample of logged (member, offer, time, channel) rows,
    recomputed point-in-time from ``data_dir`` under the model's ``program``; offers the data
    does not know are left out."""
    from models.features import FEATURE_NAMES
    from training.dataset import load_dataset
    from training.score import pair_features

    ds = load_dataset(data_dir)
    rows = rows[ds.catalog.offer_index(rows["offer_id"]) >= 0]
    if rows.empty:
        return {}
    rows = rows.sample(min(len(rows), FEATURE_SAMPLE), random_state=seed)
    X = pair_features(ds, rows.rename(columns={"at": "as_of"}), program)
    features = reference.get("features", {})
    return {name: psi(features[name], X[:, j]) for j, name in enumerate(FEATURE_NAMES) if name in features}


def score_drift(scores: pd.DataFrame, registry: Registry, data_dir: str | os.PathLike[str] | None,
                notes: list[str]) -> dict[str, dict[str, Any]]:
    """Per model version: decisions, scored candidates, score PSI overall and per day, and
    (with ``data_dir``) feature PSI."""
    out: dict[str, dict[str, Any]] = {}
    for version, group in scores.groupby("model_version", sort=True):
        reference = _reference(registry, str(version))
        entry: dict[str, Any] = {"decisions": int(group["decision_id"].nunique()), "scored": len(group),
                                 "reference": reference is not None}
        if reference is None:
            notes.append(f"model {version} has no drift reference (registered before references, or not in "
                         "this registry): its drift is not measured")
            out[str(version)] = entry
            continue
        value = psi(reference["score"], group["score"].to_numpy())
        entry["score_psi"], entry["score_level"] = value, level(value)
        entry["days"] = {str(day): {"decisions": int(g["decision_id"].nunique()),
                                    "score_psi": psi(reference["score"], g["score"].to_numpy())}
                         for day, g in group.groupby(group["at"].dt.date)}
        if data_dir is not None:
            from models.model import PropensityModel

            program = PropensityModel.load(registry.path(str(version))).program
            features = feature_drift(data_dir, group, reference, program)
            entry["feature_psi"] = dict(sorted(features.items(), key=lambda kv: -(kv[1] if kv[1] == kv[1] else -1)))
        out[str(version)] = entry
    return out


def event_quality(log_dir: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None, timezone: str,
                  since: pd.Timestamp | None, until: pd.Timestamp | None) -> dict[str, Any]:
    """Counts of the event log's problems in the window (module docstring)."""
    if not any(Path(log_dir).glob("events-*.ndjson")):
        return {"events": 0, "by_type": {}, "rejected_lines": 0, "duplicates": 0}
    events, duplicates, rejected = read_log(log_dir)
    if events.empty:
        return {"events": 0, "by_type": {}, "rejected_lines": len(rejected), "duplicates": duplicates}
    ts = pd.to_datetime(events["ts"], utc=True, format="ISO8601")
    events = events[in_window(ts.dt.tz_convert(timezone).dt.tz_localize(None), since, until)]
    ts = ts[events.index]
    out: dict[str, Any] = {"events": len(events), "by_type": events["type"].value_counts().to_dict(),
                           "rejected_lines": len(rejected), "duplicates": duplicates,
                           "rejected_examples": rejected[:5]}
    if "received_at" in events:
        received = pd.to_datetime(events["received_at"], utc=True, format="ISO8601", errors="coerce")
        out["future_timestamp"] = int((ts > received + pd.Timedelta(seconds=FUTURE_TOLERANCE_SECONDS)).sum())
    if data_dir is not None:
        from offerdata.tables import read_table

        offers = set(read_table(data_dir, "offers", columns=["offer_id"])["offer_id"].astype(str))
        products = set(read_table(data_dir, "products", columns=["product_id"])["product_id"].astype(str))
        if "offer_id" in events:
            named = events["offer_id"].dropna().astype(str)
            out["unknown_offer"] = int((~named.isin(offers)).sum())
        if "product_id" in events:
            named = events["product_id"].dropna().astype(str)
            out["unknown_product"] = int((~named.isin(products)).sum())
    return out


def monitor_report(log_dir: str | os.PathLike[str], registry: str | os.PathLike[str],
                   data_dir: str | os.PathLike[str] | None, timezone: str, since: pd.Timestamp | None = None,
                   until: pd.Timestamp | None = None) -> MonitorReport:
    """Drift per model version and event data quality over the logs in ``log_dir``."""
    report = MonitorReport(None if since is None else since.isoformat(), None if until is None else until.isoformat())
    scores, unreadable = logged_scores(log_dir, timezone, since, until)
    if unreadable:
        report.notes.append(f"{unreadable} decision line(s) could not be read (offers data events names them)")
    if scores.empty:
        report.notes.append("no scored decision in the window")
    report.versions = score_drift(scores, Registry(registry), data_dir, report.notes)
    report.events = event_quality(log_dir, data_dir, timezone, since, until)
    return report


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.4f}"
    return html.escape(str(value))


def render_html(report: MonitorReport) -> str:
    """A self-contained HTML page of the report's tables."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>offers monitor</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}"
             ".major{background:#f8d0d0}.moderate{background:#fbeec2}</style></head><body>",
             f"<h1>Drift and data quality</h1><p>Window: {_fmt(report.since or 'start')} to "
             f"{_fmt(report.until or 'end')}. PSI under 0.1 is stable, 0.1 to 0.25 moderate, above 0.25 major.</p>"]
    for version, entry in report.versions.items():
        parts.append(f"<h2>Model {_fmt(version)}</h2><p>{entry['decisions']:,} decisions, "
                     f"{entry['scored']:,} scored candidates.</p>")
        if not entry["reference"]:
            parts.append("<p>No drift reference in this version's artifact.</p>")
            continue
        parts.append(f"<p class='{entry['score_level']}'>Score PSI {_fmt(entry['score_psi'])} "
                     f"({entry['score_level']}).</p><table><tr><th>day</th><th>decisions</th><th>score PSI</th></tr>")
        for day, d in entry["days"].items():
            parts.append(f"<tr class='{level(d['score_psi'])}'><td>{_fmt(day)}</td><td>{d['decisions']:,}</td>"
                         f"<td>{_fmt(d['score_psi'])}</td></tr>")
        parts.append("</table>")
        if "feature_psi" in entry:
            parts.append("<table><tr><th>feature</th><th>PSI</th></tr>")
            for name, value in entry["feature_psi"].items():
                parts.append(f"<tr class='{level(value)}'><td>{_fmt(name)}</td><td>{_fmt(value)}</td></tr>")
            parts.append("</table>")
    ev = report.events
    parts.append("<h2>Events</h2><table><tr><th>check</th><th>count</th></tr>")
    for key in ("events", "rejected_lines", "duplicates", "future_timestamp", "unknown_offer", "unknown_product"):
        if key in ev:
            parts.append(f"<tr><td>{key}</td><td>{ev[key]:,}</td></tr>")
    for kind, n in ev.get("by_type", {}).items():
        parts.append(f"<tr><td>type {_fmt(kind)}</td><td>{n:,}</td></tr>")
    parts.append("</table>")
    parts.extend(f"<p>Note: {_fmt(note)}</p>" for note in report.notes)
    parts.append("</body></html>")
    return "".join(parts)
