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


def _cell(value: Any) -> str:
    """One table cell's text: integers with thousands separators, fractions to 4 digits."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _grid(rows: list[dict[str, Any]], columns: list[str], first: str) -> str:
    """An HTML table of ``rows`` (dicts) over ``columns``; ``first`` names the label column."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in [first, *columns])
    body = "".join("<tr><th>" + html.escape(str(r["_label"])) + "</th>"
                   + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _rows_table(rows: dict[str, Any]) -> str:
    """The training and test row counts (exposures) as a small table."""
    table = [{"_label": part, "exposures": rows.get(part), "redeemed": rows.get(f"{part}_positives"),
              "before sampling": rows.get(f"{part}_before_sampling")} for part in ("train", "test")
             if part in rows]
    return _grid(table, ["exposures", "redeemed", "before sampling"], "split")


SELECTION_COLUMNS = ["hit@1", "hit@3", "hit@5", "ndcg@5", "groups", "best_iteration"]


def _selection_tables(sel: dict[str, Any]) -> str:
    """The model-selection candidates (pooled over folds) and each fold, as tables."""
    pooled = [{"_label": name + (" (chosen)" if name == sel.get("chosen") else ""), **vals}
              for name, vals in sel.get("candidates", {}).items()]
    out = ["<p>Pooled over the expanding-window validation folds:</p>",
           _grid(pooled, SELECTION_COLUMNS, "candidate")]
    folds = sel.get("folds") or {}
    if folds:
        per_fold = [{"_label": f"{name}, fold {k + 1}", **fold} for name, items in folds.items()
                    for k, fold in enumerate(items)]
        out += ["<p>Per fold (each fits on the rows before its validation block):</p>",
                _grid(per_fold, ["validation_start", "fit_positives", "validation_positives",
                                 *SELECTION_COLUMNS], "candidate, fold")]
    return "".join(out)


def write_report(path: Path, metadata: dict[str, Any]) -> Path:
    """Render the report for a model's metadata (with its test metrics) to ``path``."""
    metrics = metadata.get("metrics", {})
    parts = [f"<h1>Propensity model {html.escape(str(metadata.get('version', '(new)')))}</h1>",
             f"<p>Trained on exposures before <b>{html.escape(str(metadata.get('train_end')))}</b>; "
             f"variant <b>{html.escape(str(metadata.get('variant')))}</b> chosen on the validation block; "
             f"data fingerprint {html.escape(str(metadata.get('data_fingerprint')))}.</p>",
             "<h2>Rows</h2>", _rows_table(metadata.get("rows") or {})]
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
                     f"{html.escape(str(sel.get('validation_start')))})</h2>" + _selection_tables(sel))
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
             "td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}th{text-align:left}"
             "table{margin:.5em 0 1em;font-variant-numeric:tabular-nums}.row img{margin-right:8px}")
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>Model report</title>"
                    f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    return path
