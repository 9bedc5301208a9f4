"""The evaluation report: one self-contained HTML page of plots and tables per model.

A data scientist should rather look at it than read it: ROC and precision-recall curves
of the model against the baselines, the reliability diagram, decile lift and cumulative
gains, ranking metrics with bootstrap intervals, and feature importance. Plots are PNGs
embedded as base64, so the file opens anywhere without network access.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SCORERS = ("model", "product_spend", "member_redemption_rate", "popularity", "random")
COLORS = {"model": "#1f5fbf", "product_spend": "#d9822b", "member_redemption_rate": "#2e9e5b",
          "popularity": "#8e44ad", "random": "#999999"}


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _curves_plot(metrics: dict[str, Any], x: str, y: str, title: str, xlabel: str, ylabel: str,
                 diagonal: bool) -> str:
    fig, ax = plt.subplots(figsize=(5, 4))
    for name in SCORERS:
        c = metrics.get(name, {}).get("curves", {})
        if c.get(x):
            ax.plot(c[x], c[y], label=name, color=COLORS[name], lw=2 if name == "model" else 1.2)
    if diagonal:
        ax.plot([0, 1], [0, 1], ls=":", color="#bbb")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=8)
    return _png(fig)


def _reliability_plot(metrics: dict[str, Any]) -> str:
    rel = metrics.get("model", {}).get("reliability", {})
    fig, ax = plt.subplots(figsize=(5, 4))
    if rel:
        top = max(max(rel["mean_predicted"]), max(rel["observed_rate"])) * 1.05
        ax.plot([0, top], [0, top], ls=":", color="#bbb")
        ax.plot(rel["mean_predicted"], rel["observed_rate"], marker="o", color=COLORS["model"])
    ax.set(title=f"Reliability (ECE {metrics.get('model', {}).get('ece', float('nan')):.4f})",
           xlabel="mean predicted probability", ylabel="observed redemption rate")
    return _png(fig)


def _lift_plot(metrics: dict[str, Any]) -> str:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for name in SCORERS:
        lt = metrics.get(name, {}).get("lift_table")
        if lt:
            a1.plot(lt["decile"], lt["lift"], marker="o", label=name, color=COLORS[name])
            a2.plot([0, *lt["decile"]], [0, *lt["cumulative_gain"]], marker=".", label=name, color=COLORS[name])
    a2.plot([0, 10], [0, 1], ls=":", color="#bbb")
    a1.set(title="Decile lift", xlabel="decile (highest scores first)", ylabel="lift")
    a2.set(title="Cumulative gains", xlabel="deciles targeted", ylabel="share of redemptions")
    a1.legend(fontsize=8)
    return _png(fig)


def _importance_plot(importance: dict[str, float], top: int = 20) -> str:
    items = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(items) + 1))
    ax.barh([k for k, _ in items], [v for _, v in items], color=COLORS["model"])
    ax.set(title="Feature importance (total gain)")
    return _png(fig)


def _table(metrics: dict[str, Any]) -> str:
    cols = ["roc_auc", "pr_auc", "hit@1", "hit@3", "hit@5", "ndcg@5", "top_decile_lift", "log_loss", "brier", "ece"]
    head = "".join(f"<th>{c}</th>" for c in ["scorer", *cols])
    rows = []
    for name in SCORERS:
        m = metrics.get(name)
        if not m:
            continue
        cells = []
        for c in cols:
            v = m.get(c)
            ci = m.get("ci95", {}).get(c)
            text = "—" if v is None else f"{v:.4f}"
            if ci:
                text += f"<br><small>[{ci[0]:.3f}, {ci[1]:.3f}]</small>"
            cells.append(f"<td>{text}</td>")
        rows.append(f"<tr><th>{html.escape(name)}</th>{''.join(cells)}</tr>")
    model = metrics.get("model", {})
    prior = (f"<p>Prior-only model: log-loss {model['log_loss_prior']:.5f}, Brier {model['brier_prior']:.5f}.</p>"
             if "log_loss_prior" in model else "")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{prior}"


def write_report(path: Path, metadata: dict[str, Any]) -> Path:
    """Render the report for a model's metadata (with its test metrics) to ``path``."""
    metrics = metadata.get("metrics", {})
    parts = [f"<h1>Propensity model {html.escape(str(metadata.get('version', '(new)')))}</h1>",
             f"<p>Trained on exposures before <b>{html.escape(str(metadata.get('train_end')))}</b>; "
             f"variant <b>{html.escape(str(metadata.get('variant')))}</b> chosen on the validation block; "
             f"data fingerprint {html.escape(str(metadata.get('data_fingerprint')))}.</p>",
             f"<p>Rows: {html.escape(str(metadata.get('rows')))}</p>"]
    if metrics.get("model"):
        mc = metrics.get("member_campaign", {})
        parts += ["<h2>Test block: model against baselines (95% bootstrap intervals over members)</h2>",
                  _table(metrics),
                  f"<p>Member x campaign (redeemed anything from the campaign): ROC-AUC {mc.get('roc_auc', float('nan')):.4f} "
                  f"over {mc.get('groups', 0):,} groups.</p>",
                  '<div class="row">',
                  f'<img src="{_curves_plot(metrics, "roc_fpr", "roc_tpr", "ROC", "false positive rate", "true positive rate", True)}">',
                  f'<img src="{_curves_plot(metrics, "pr_recall", "pr_precision", "Precision-recall", "recall", "precision", False)}">',
                  f'<img src="{_reliability_plot(metrics)}">', "</div>",
                  f'<img src="{_lift_plot(metrics)}">']
    else:
        parts.append("<p>No test block with redemptions: nothing to evaluate.</p>")
    parts.append(f'<h2>Features</h2><img src="{_importance_plot(metadata.get("feature_importance", {}))}">')
    sel = metrics.get("selection")
    if sel:
        parts.append(f"<h2>Model selection (chosen: {html.escape(str(sel['chosen']))}; latest validation block from "
                     f"{html.escape(str(sel['validation_start']))})</h2>"
                     f"<p>Pooled over the expanding-window folds:</p><pre>{html.escape(str(sel['candidates']))}</pre>")
        if sel.get("folds"):
            parts.append(f"<p>Per fold:</p><pre>{html.escape(json.dumps(sel['folds'], indent=1, default=str))}</pre>")
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
             "td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}.row img{margin-right:8px}")
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>Model report</title>"
                    f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    return path
