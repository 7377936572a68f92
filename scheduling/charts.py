"""Accessible SVG charts rendered on the server (no script, no CDN); a data table always sits beside them."""

from __future__ import annotations

from html import escape
from typing import Any

from app.i18n import translate

W, H = 720, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 48


def _nice_max(value: float) -> float:
    if value <= 0:
        return 10
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = step * magnitude
        if top >= value:
            return top
    return 10 * magnitude


def _legend_line(cls: str, x: float, y: float) -> str:
    return f'<line class="{cls}" x1="{x}" x2="{x + 30}" y1="{y}" y2="{y}"/>'


def series_chart(months: list[Any], locale: str) -> str:
    """Monthly count as bars, the target and the baseline as lines; the running month drawn lighter."""
    t = lambda key, **kw: translate(locale, key, **kw)  # noqa: E731
    if not months:
        return ""
    top = _nice_max(max(max(m.count, m.target, m.baseline) for m in months) * 1.05)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    slot = plot_w / len(months)
    bar_w = max(2.0, slot * 0.6)

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / top

    parts = [
        f'<svg class="chart indicator-chart" viewBox="0 0 {W} {H}" role="img" '
        f'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(t("ind.chart.title"))}</title>',
        f'<desc id="chart-desc">{escape(t("ind.chart.desc", first=months[0].month, last=months[-1].month))}'
        "</desc>",
    ]
    for i in range(5):
        value = top * i / 4
        parts.append(
            f'<line class="chart-grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
        )
        parts.append(
            f'<text class="chart-axis" x="{LEFT - 6}" y="{y(value) + 5:.1f}" text-anchor="end">'
            f"{int(value):,}</text>"
        )
    for i, m in enumerate(months):
        x = LEFT + slot * i + (slot - bar_w) / 2
        cls = "chart-bar" if m.closed else "chart-bar live"
        label = escape(t("ind.chart.bar", month=m.month, count=f"{m.count:,}"))
        parts.append(
            f'<rect class="{cls}" x="{x:.1f}" y="{y(m.count):.1f}" width="{bar_w:.1f}" '
            f'height="{max(0.0, TOP + plot_h - y(m.count)):.1f}"><title>{label}</title></rect>'
        )
        step = max(1, -(-len(months) // 6))  # at most about six month labels: they must not overlap
        if (len(months) - 1 - i) % step == 0:
            parts.append(
                f'<text class="chart-axis" x="{LEFT + slot * i + slot / 2:.1f}" y="{H - BOTTOM + 20}" '
                f'text-anchor="middle">{escape(m.month)}</text>'
            )
    for attr, cls in (("target", "chart-target"), ("baseline", "chart-baseline")):
        points = []
        for i, m in enumerate(months):
            points.append(f"{LEFT + slot * i:.1f},{y(getattr(m, attr)):.1f}")
            points.append(f"{LEFT + slot * (i + 1):.1f},{y(getattr(m, attr)):.1f}")
        parts.append(f'<polyline class="{cls}" fill="none" points="{" ".join(points)}"/>')
    legend_y = H - 10
    parts.append(f'<rect class="chart-bar" x="{LEFT}" y="{legend_y - 10}" width="14" height="10"/>')
    parts.append(
        f'<text class="chart-axis" x="{LEFT + 20}" y="{legend_y}">{escape(t("ind.col.count"))}</text>'
    )
    parts.append(_legend_line("chart-target", LEFT + 170, legend_y - 5))
    parts.append(
        f'<text class="chart-axis" x="{LEFT + 206}" y="{legend_y}">{escape(t("ind.col.target"))}</text>'
    )
    parts.append(_legend_line("chart-baseline", LEFT + 330, legend_y - 5))
    parts.append(
        f'<text class="chart-axis" x="{LEFT + 366}" y="{legend_y}">{escape(t("ind.col.baseline"))}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
