"""Small inline-SVG charts for the HTML report: grouped bars with error bars, and lines with shaded spans.

Hand-written SVG keeps the report one self-contained file that opens offline in any
browser, without a plotting library to install or a CDN to reach. Every chart has its
axes (`class="axis"`), tick labels and a legend (`class="legend"`), so a reader, and a
test, can tell a drawn chart from an empty box.
"""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 720, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 170, 36, 70
# colour-blind-safe (Okabe-Ito)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.floor(low / step) * step
    ticks, value = [], start
    while not ticks or ticks[-1] < high - step * 1e-9:  # the last tick at or above the highest value
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:.3g}"


def _frame(title: str, x_label: str, y_label: str, y_ticks: list[float], y_of, legend: list[str]) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
             f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
             '<g class="axis" stroke="#333" font-size="11">',
             f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>']
    for tick in y_ticks:
        y = y_of(tick)
        parts.append(f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 7}" y="{y + 4:.1f}" text-anchor="end" stroke="none">{_fmt(tick)}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle" stroke="none">'
                 f'{escape(x_label)}</text>')
    parts.append(f'<text x="16" y="{TOP + plot_h / 2}" text-anchor="middle" stroke="none" '
                 f'transform="rotate(-90 16 {TOP + plot_h / 2})">{escape(y_label)}</text></g>')
    parts.append('<g class="legend" font-size="11">')
    for i, name in enumerate(legend):
        y = TOP + 8 + 18 * i
        parts.append(f'<rect x="{WIDTH - RIGHT + 14}" y="{y - 9}" width="12" height="12" '
                     f'fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 32}" y="{y + 1}">{escape(name[:22])}</text>')
    parts.append("</g>")
    return parts


def bar_chart(title: str, categories: list[str], series: dict[str, list[tuple[float, float] | None]],
              y_label: str, x_label: str = "", hline: tuple[float, str] | None = None) -> str:
    """Grouped bars: one group per category, one bar per series, each (value, error) or None;
    `hline` a labelled horizontal reference (e.g. the device's RAM)."""
    values = [v + (e or 0) for bars in series.values() for bar in bars if bar for v, e in [bar]]
    ticks = _nice_ticks(0, max(values + ([hline[0]] if hline else []), default=1))
    top = ticks[-1] or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def y_of(value):
        return TOP + plot_h - plot_h * value / top
    parts = _frame(title, x_label, y_label, ticks, y_of, list(series))
    group_w = plot_w / max(1, len(categories))
    bar_w = group_w * 0.8 / max(1, len(series))
    for c, category in enumerate(categories):
        x0 = LEFT + c * group_w + group_w * 0.1
        for s, (name, bars) in enumerate(series.items()):
            bar = bars[c] if c < len(bars) else None
            if not bar:
                continue
            value, error = bar
            x = x0 + s * bar_w
            parts.append(f'<rect class="series" x="{x:.1f}" y="{y_of(value):.1f}" width="{bar_w * 0.92:.1f}" '
                         f'height="{max(0.5, TOP + plot_h - y_of(value)):.1f}" fill="{PALETTE[s % len(PALETTE)]}">'
                         f'<title>{escape(name)} {escape(category)}: {value:.4g} ± {error or 0:.2g}</title></rect>')
            if error:
                mid = x + bar_w * 0.46
                parts.append(f'<path class="errorbar" d="M{mid:.1f} {y_of(value - error):.1f}V{y_of(value + error):.1f}'
                             f'M{mid - 3:.1f} {y_of(value + error):.1f}h6M{mid - 3:.1f} {y_of(value - error):.1f}h6" '
                             f'stroke="#222" fill="none"/>')
        label_x = LEFT + c * group_w + group_w / 2
        parts.append(f'<text class="axis" x="{label_x:.1f}" y="{TOP + plot_h + 16}" font-size="11" '
                     f'text-anchor="middle">{escape(category[:18])}</text>')
    if hline:
        parts.append(_hline(y_of(hline[0]), hline[1]))
    parts.append("</svg>")
    return "".join(parts)


def _hline(y: float, label: str) -> str:
    plot_w = WIDTH - LEFT - RIGHT
    return (f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#000" '
            f'stroke-dasharray="6 4"/><text x="{LEFT + plot_w - 4}" y="{y - 5:.1f}" font-size="11" '
            f'text-anchor="end">{escape(label)}</text>')


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], x_label: str, y_label: str,
               shaded: list[tuple[float, float]] = (), shade_label: str = "", hline: tuple[float, str] | None = None,
               y_min: float | None = None, marks: list[tuple[float, str]] = ()) -> str:
    """Lines through (x, y) points; `shaded` x-spans drawn behind them (e.g. throttled stretches);
    `hline` a labelled horizontal reference (e.g. the device's RAM); `marks` labelled vertical lines at x
    (e.g. a history's change points)."""
    xs = [x for points in series.values() for x, _ in points]
    ys = [y for points in series.values() for _, y in points] + ([hline[0]] if hline else [])
    x_low, x_high = min(xs, default=0), max(xs, default=1)
    if x_high <= x_low:
        x_high = x_low + 1
    ticks = _nice_ticks(min(ys, default=0) if y_min is None else y_min, max(ys, default=1))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = (ticks[-1] - ticks[0]) or 1

    def y_of(value):
        return TOP + plot_h - plot_h * (value - ticks[0]) / span

    def x_of(value):
        return LEFT + plot_w * (value - x_low) / (x_high - x_low)
    parts = _frame(title, x_label, y_label, ticks, y_of, list(series))
    for a, b in shaded:
        parts.append(f'<rect class="throttled" x="{x_of(a):.1f}" y="{TOP}" width="{max(1.0, x_of(b) - x_of(a)):.1f}" '
                     f'height="{plot_h}" fill="#D55E00" fill-opacity="0.18"/>')
    if shaded and shade_label:  # its legend entry, in the shading's own colour below the lines'
        y = TOP + 8 + 18 * len(series)
        parts.append(f'<g class="legend" font-size="11"><rect x="{WIDTH - RIGHT + 14}" y="{y - 9}" width="12" '
                     f'height="12" fill="#D55E00" fill-opacity="0.3"/><text x="{WIDTH - RIGHT + 32}" y="{y + 1}">'
                     f'{escape(shade_label)}</text></g>')
    for tick in _nice_ticks(x_low, x_high):
        if x_low <= tick <= x_high:
            parts.append(f'<text class="axis" x="{x_of(tick):.1f}" y="{TOP + plot_h + 16}" font-size="11" '
                         f'text-anchor="middle">{_fmt(tick)}</text>')
    if hline:
        parts.append(_hline(y_of(hline[0]), hline[1]))
    for x, label in marks:
        parts.append(f'<g class="change-point"><line x1="{x_of(x):.1f}" x2="{x_of(x):.1f}" y1="{TOP}" '
                     f'y2="{TOP + plot_h}" stroke="#CC3311" stroke-width="1.5" stroke-dasharray="5 3"/>'
                     f'<text x="{x_of(x) + 4:.1f}" y="{TOP + 12}" font-size="11" fill="#CC3311">{escape(label)}'
                     f'</text></g>')
    for s, points in enumerate(series.values()):
        colour = PALETTE[s % len(PALETTE)]
        path = " ".join(f"{'M' if i == 0 else 'L'}{x_of(x):.1f} {y_of(y):.1f}" for i, (x, y) in enumerate(points))
        parts.append(f'<path class="series" d="{path}" stroke="{colour}" stroke-width="2" fill="none"/>')
        for x, y in points if len(points) < 40 else ():
            parts.append(f'<circle cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="3" fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


def scatter_chart(title: str, points: list[tuple[float, float, str, bool]], x_label: str, y_label: str) -> str:
    """Labelled points (x, y, label, marked); the marked ones are joined by a line, in x order, and drawn
    filled (`class="frontier"`): e.g. the best choices of quality against speed."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_ticks = _nice_ticks(0, max(xs, default=1))
    y_ticks = _nice_ticks(0, max(ys, default=1))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def y_of(value):
        return TOP + plot_h - plot_h * value / (y_ticks[-1] or 1)

    def x_of(value):
        return LEFT + plot_w * value / (x_ticks[-1] or 1)
    parts = _frame(title, x_label, y_label, y_ticks, y_of, ["best choices (frontier)", "dominated"])
    for tick in x_ticks:
        parts.append(f'<text class="axis" x="{x_of(tick):.1f}" y="{TOP + plot_h + 16}" font-size="11" '
                     f'text-anchor="middle">{_fmt(tick)}</text>')
    frontier = sorted((x, y) for x, y, _, marked in points if marked)
    if len(frontier) > 1:
        path = " ".join(f"{'M' if i == 0 else 'L'}{x_of(x):.1f} {y_of(y):.1f}" for i, (x, y) in enumerate(frontier))
        parts.append(f'<path class="frontier" d="{path}" stroke="{PALETTE[0]}" stroke-width="2" fill="none"/>')
    for x, y, label, marked in points:
        colour = PALETTE[0] if marked else PALETTE[1]
        parts.append(f'<circle class="{"frontier" if marked else "dominated"}" cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" '
                     f'r="5" fill="{colour}"/><text class="point-label" x="{x_of(x) + 7:.1f}" y="{y_of(y) - 6:.1f}" '
                     f'font-size="11">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def spans_where(records, start: float, slow) -> list[tuple[float, float]]:
    """The x-spans (seconds from `start`) of consecutive telemetry records for which `slow(record)` holds,
    for a line chart to shade."""
    spans, begin = [], None
    for r in records:
        now_slow = slow(r)
        if now_slow and begin is None:
            begin = r.t - start
        elif not now_slow and begin is not None:
            spans.append((begin, r.t - start))
            begin = None
    if begin is not None:
        spans.append((begin, records[-1].t - start))
    return spans
