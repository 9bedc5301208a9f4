"""Charts as inline SVG rendered on the server: no JavaScript, no CDN, readable by screen readers.

Each chart is a ``<svg role="img">`` with a ``<title>`` and one ``<title>`` per bar, and the
pages print the same figures in a table beside it, so nothing is only in the picture.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

ROW = 22
LABEL_WIDTH = 220
BAR_WIDTH = 300


def bar_chart(title: str, rows: Sequence[tuple[str, float, str]], maximum: float | None = None) -> Markup:
    """Horizontal bars: ``rows`` are (label, value, value text); bars scale to ``maximum``
    (the largest value when None). Values below zero draw as empty bars."""
    top = maximum if maximum is not None else max((v for _, v, _ in rows), default=0.0)
    height = ROW * max(len(rows), 1) + 4
    width = LABEL_WIDTH + BAR_WIDTH + 90
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, (label, value, text) in enumerate(rows):
        y = i * ROW + 2
        share = 0.0 if top <= 0 else min(max(value / top, 0.0), 1.0)
        bar = round(share * BAR_WIDTH, 1)
        parts.append(
            f'<g><title>{escape(label)}: {escape(text)}</title>'
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end">{escape(label[:34])}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{BAR_WIDTH}" height="{ROW - 6}" class="track"/>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{bar}" height="{ROW - 6}" class="bar"/>'
            f'<text x="{LABEL_WIDTH + BAR_WIDTH + 6}" y="{y + 15}">{escape(text)}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))
