"""Small inline-SVG charts for the HTML report: grouped bars with error bars, and lines with shaded spans.

Hand-written SVG keeps the report one self-contained file that opens offline in any
browser, without a plotting library to install or a CDN to reach. Every chart has its
axes (`class="axis"`), tick labels and a legend (`class="legend"`), so a reader, and a
test, can tell a drawn chart from an empty box.

No text is cut short: a title, a legend entry or a bar's label too long for its room wraps onto
more lines (at a `/`, `@`, space, ... where it can), and the chart grows to hold them. What tells
two bars or two series apart is often at the end of a name (a quant's `_M`, a thread count).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH = 720
LEFT, RIGHT = 70, 170
PLOT_H = 214
TITLE_PX, TEXT_PX = 15, 11
# an average glyph is about half an em wide in a sans-serif font, a bold one a little more: 0.62 em
# errs on the wide side, so a wrapped line fits wherever the browser's font is a bit wider
GLYPH_EM = 0.62
# colour-blind-safe (Okabe-Ito)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def text_px(text: str, font_px: float) -> float:
    """About how wide `text` is drawn (see GLYPH_EM)."""
    return len(text) * font_px * GLYPH_EM


def wrap(text: str, width_px: float, font_px: float = TEXT_PX) -> list[str]:
    """`text` in lines that fit `width_px`, joined again `text` itself, every character kept. A line
    breaks between words or path parts where it can, else inside a name (after `@`, `_`, `.`, ...),
    else where it is full."""
    limit = max(3, int(width_px / (font_px * GLYPH_EM)))
    lines = []
    while len(text.rstrip()) > limit:
        cut = _break(text, limit)
        lines.append(text[:cut])
        text = text[cut:]
    return lines + [text]


def _break(text: str, limit: int) -> int:
    """Where the first line of `text` ends: the last good break within `limit` characters."""
    words = [i + 1 for i, ch in enumerate(text[:limit + 1]) if ch in " /,→"] + \
            [i for i, ch in enumerate(text[:limit]) if ch == "(" and i > 0]
    names = [i + 1 for i, ch in enumerate(text[:limit]) if ch in "@_-="]
    for found in (words, names):
        good = [i for i in found if limit * 0.4 <= i <= limit + (text[i - 1:i] == " ")]
        if good:
            return max(good)
    return limit


def _text(x: float, y: float, lines: list[str], font_px: float = TEXT_PX, attrs: str = "") -> str:
    """One <text> of several lines (tspans), the first at baseline y."""
    spans = "".join(f'<tspan x="{x:.1f}" dy="{0 if i == 0 else round(font_px * 1.2, 1)}">{escape(line)}</tspan>'
                    for i, line in enumerate(lines))
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{font_px}" {attrs}>{spans}</text>'


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


@dataclass(frozen=True)
class Legend:
    """A legend entry: its name and the colour (and opacity) of its swatch."""

    name: str
    colour: str
    opacity: float = 1.0


def legend_of(names, colours: dict[str, str] | None = None) -> list[Legend]:
    """Each series in its own colour: the one `colours` gives it, else the palette's next."""
    spare = iter(c for c in PALETTE * 2 if c not in (colours or {}).values())
    return [Legend(n, (colours or {}).get(n) or next(spare)) for n in names]


class Canvas:
    """A chart's room: the title's lines above the plot, the x labels' below it, the legend to its
    right; the chart is as tall as they need."""

    def __init__(self, title: str, legend: list[Legend], below: float = 0):
        self.title_lines = wrap(title, WIDTH - LEFT - 10, TITLE_PX)
        self.legend = [(entry, wrap(entry.name, RIGHT - 40)) for entry in legend]
        self.top = 18 + 19 * len(self.title_lines)
        self.plot_w, self.plot_h = WIDTH - LEFT - RIGHT, PLOT_H
        self.axis_y = self.top + PLOT_H
        legend_h = sum(6 + 13 * len(lines) for _, lines in self.legend)
        self.height = math.ceil(max(self.axis_y + max(70.0, below + 34), self.top + legend_h + 16))


def _frame(canvas: Canvas, title: str, x_label: str, y_label: str, y_ticks: list[float], y_of) -> list[str]:
    top, plot_w, plot_h, height = canvas.top, canvas.plot_w, canvas.plot_h, canvas.height
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
             f'font-family="system-ui, sans-serif">',
             f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
             _text(LEFT, 22, canvas.title_lines, TITLE_PX, 'font-weight="bold" class="title"'),
             '<g class="axis" stroke="#333" font-size="11">',
             f'<line x1="{LEFT}" y1="{top + plot_h}" x2="{LEFT + plot_w}" y2="{top + plot_h}"/>',
             f'<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{top + plot_h}"/>']
    for tick in y_ticks:
        y = y_of(tick)
        parts.append(f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 7}" y="{y + 4:.1f}" text-anchor="end" stroke="none">{_fmt(tick)}</text>')
    parts.append(f'<text class="x-label" x="{LEFT + plot_w / 2}" y="{height - 8}" text-anchor="middle" '
                 f'stroke="none">{escape(x_label)}</text>')
    y_lines = wrap(y_label, plot_h + 40)  # up the axis, from a little below its foot to above its top
    x = 16 if len(y_lines) == 1 else 11
    parts.append(_text(x, top + plot_h / 2, y_lines, attrs=f'class="y-label" text-anchor="middle" stroke="none" '
                                                          f'transform="rotate(-90 {x} {top + plot_h / 2})"') + "</g>")
    parts.append('<g class="legend" font-size="11">')
    y = top + 8
    for entry, lines in canvas.legend:
        parts.append(f'<rect x="{WIDTH - RIGHT + 14}" y="{y - 9}" width="12" height="12" fill="{entry.colour}"'
                     + (f' fill-opacity="{entry.opacity}"' if entry.opacity < 1 else "") + "/>")
        parts.append(_text(WIDTH - RIGHT + 32, y + 1, lines))
        y += 6 + 13 * len(lines)
    parts.append("</g>")
    return parts


def _category_labels(categories: list[str], group_w: float) -> tuple[list[list[str]], bool]:
    """Each bar group's label as lines under it, or, where the groups are too narrow for even a short
    word a line, the labels whole, to be drawn slanted."""
    if group_w < TEXT_PX * GLYPH_EM * 8:
        return [[c] for c in categories], True
    return [wrap(c, group_w - 6) for c in categories], False


def bar_chart(title: str, categories: list[str], series: dict[str, list[tuple[float, ...] | None]],
              y_label: str, x_label: str = "", hline: tuple[float, str] | None = None,
              value_label=None, colours: dict[str, str] | None = None) -> str:
    """Grouped bars: one group per category, one bar per series, each (value, error), (value, below, above)
    for an interval not centred on the value, or None;
    `hline` a labelled horizontal reference (e.g. the device's RAM), `value_label(value)` the text
    written over each bar, `colours` a series' colour (others take the palette's)."""
    values = [bar[0] + (bar[-1] or 0) for bars in series.values() for bar in bars if bar]
    headroom = 1.08 if value_label else 1.0  # room for the values written over the bars
    ticks = _nice_ticks(0, max([v * headroom for v in values] + ([hline[0]] if hline else []), default=1))
    top_tick = ticks[-1] or 1
    group_w = (WIDTH - LEFT - RIGHT) / max(1, len(categories))
    labels, slanted = _category_labels(categories, group_w)
    below = (max((text_px(c, TEXT_PX) for c in categories), default=0) * 0.71 + 10 if slanted
             else 13 * max((len(lines) for lines in labels), default=1) + 4)
    canvas = Canvas(title, legend_of(series, colours), below)

    def y_of(value):
        return canvas.axis_y - canvas.plot_h * value / top_tick
    parts = _frame(canvas, title, x_label, y_label, ticks, y_of)
    fills = {entry.name: entry.colour for entry, _ in canvas.legend}
    bar_w = group_w * 0.8 / max(1, len(series))
    for c, category in enumerate(categories):
        # the group's bars side by side in its middle: a series without a bar here leaves no gap
        drawn = [(name, bars[c]) for name, bars in series.items() if c < len(bars) and bars[c]]
        x0 = LEFT + c * group_w + (group_w - bar_w * len(drawn)) / 2
        for s, (name, bar) in enumerate(drawn):
            parts += _bar(x0 + s * bar_w, bar_w, bar, y_of, canvas.axis_y, fills[name], f"{name} {category}",
                          value_label)
        label_x = LEFT + c * group_w + group_w / 2
        if slanted:
            y = canvas.axis_y + 12
            parts.append(f'<text class="axis category" x="{label_x:.1f}" y="{y}" font-size="11" text-anchor="end" '
                         f'transform="rotate(-45 {label_x:.1f} {y})">{escape(category)}</text>')
        else:
            parts.append(_text(label_x, canvas.axis_y + 16, labels[c], attrs='class="axis category" '
                                                                            'text-anchor="middle"'))
    if hline:
        parts.append(_hline(canvas, y_of(hline[0]), hline[1]))
    parts.append("</svg>")
    return "".join(parts)


def _bar(x: float, bar_w: float, bar: tuple[float, ...], y_of, axis_y: float, fill: str, what: str,
         value_label) -> list[str]:
    value, below, above = (bar[0], bar[1] or 0, bar[1] or 0) if len(bar) == 2 else bar
    spread = f"± {above:.2g}" if below == above else f"[{value - below:.4g}, {value + above:.4g}]"
    parts = [f'<rect class="series" x="{x:.1f}" y="{y_of(value):.1f}" width="{bar_w * 0.92:.1f}" '
             f'height="{max(0.5, axis_y - y_of(value)):.1f}" fill="{fill}">'
             f'<title>{escape(what)}: {value:.4g} {spread}</title></rect>']
    mid = x + bar_w * 0.46
    if below or above:
        low, high = y_of(max(0.0, value - below)), y_of(value + above)  # a whisker stops at the axis
        parts.append(f'<path class="errorbar" d="M{mid:.1f} {low:.1f}V{high:.1f}'
                     f'M{mid - 3:.1f} {high:.1f}h6M{mid - 3:.1f} {low:.1f}h6" stroke="#222" fill="none"/>')
    if value_label:
        parts.append(f'<text class="value" x="{mid:.1f}" y="{y_of(value + above) - 4:.1f}" font-size="10" '
                     f'text-anchor="middle">{escape(value_label(value))}</text>')
    return parts


def _hline(canvas: Canvas, y: float, label: str) -> str:
    right = LEFT + canvas.plot_w
    return (f'<line class="reference" x1="{LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#000" '
            f'stroke-dasharray="6 4"/><text x="{right - 4}" y="{y - 5:.1f}" font-size="11" text-anchor="end" '
            f'stroke="#fff" stroke-width="3" paint-order="stroke">{escape(label)}</text>')


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], x_label: str, y_label: str,
               shaded: list[tuple[float, float]] = (), shade_label: str = "", hline: tuple[float, str] | None = None,
               y_min: float | None = None, marks: list[tuple[float, str]] = (), integer_x: bool = False,
               colours: dict[str, str] | None = None) -> str:
    """Lines through (x, y) points; `shaded` x-spans drawn behind them (e.g. throttled stretches);
    `hline` a labelled horizontal reference (e.g. the device's RAM); `marks` labelled vertical lines at x
    (e.g. a history's change points); `integer_x` ticks only at whole x (a count: runs, rounds)."""
    xs = [x for points in series.values() for x, _ in points]
    ys = [y for points in series.values() for _, y in points] + ([hline[0]] if hline else [])
    x_low, x_high = min(xs, default=0), max(xs, default=1)
    if x_high <= x_low:
        x_high = x_low + 1
    ticks = _nice_ticks(min(ys, default=0) if y_min is None else y_min, max(ys, default=1))
    legend = legend_of(series, colours)
    if shaded and shade_label:  # its legend entry, in the shading's own colour below the lines'
        legend.append(Legend(shade_label, "#D55E00", 0.3))
    canvas = Canvas(title, legend)
    span = (ticks[-1] - ticks[0]) or 1

    def y_of(value):
        return canvas.axis_y - canvas.plot_h * (value - ticks[0]) / span

    def x_of(value):
        return LEFT + canvas.plot_w * (value - x_low) / (x_high - x_low)
    parts = _frame(canvas, title, x_label, y_label, ticks, y_of)
    for a, b in shaded:
        parts.append(f'<rect class="throttled" x="{x_of(a):.1f}" y="{canvas.top}" '
                     f'width="{max(1.0, x_of(b) - x_of(a)):.1f}" height="{canvas.plot_h}" fill="#D55E00" '
                     f'fill-opacity="0.18"/>')
    for tick in _nice_ticks(x_low, x_high, 10 if integer_x else 5):
        if x_low <= tick <= x_high and (not integer_x or tick == int(tick)):
            parts.append(f'<text class="axis x-tick" x="{x_of(tick):.1f}" y="{canvas.axis_y + 16}" font-size="11" '
                         f'text-anchor="middle">{_fmt(tick)}</text>')
    if hline:
        parts.append(_hline(canvas, y_of(hline[0]), hline[1]))
    for x, label in marks:
        parts.append(f'<g class="change-point"><line x1="{x_of(x):.1f}" x2="{x_of(x):.1f}" y1="{canvas.top}" '
                     f'y2="{canvas.axis_y}" stroke="#CC3311" stroke-width="1.5" stroke-dasharray="5 3"/>'
                     f'<text x="{x_of(x) + 4:.1f}" y="{canvas.top + 12}" font-size="11" fill="#CC3311">'
                     f'{escape(label)}</text></g>')
    for entry, points in zip(legend, series.values()):
        path = " ".join(f"{'M' if i == 0 else 'L'}{x_of(x):.1f} {y_of(y):.1f}" for i, (x, y) in enumerate(points))
        parts.append(f'<path class="series" d="{path}" stroke="{entry.colour}" stroke-width="2" fill="none"/>')
        for x, y in points if len(points) < 40 else ():
            parts.append(f'<circle cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="3" fill="{entry.colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


def scatter_chart(title: str, points: list[tuple[float, float, str, bool]], x_label: str, y_label: str) -> str:
    """Labelled points (x, y, label, marked); the marked ones are joined by a line, in x order, and drawn
    filled (`class="frontier"`): e.g. the best choices of quality against speed."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_ticks = _nice_ticks(0, max(xs, default=1))
    y_ticks = _nice_ticks(0, max(ys, default=1))
    canvas = Canvas(title, legend_of(["best choices (frontier)", "dominated"]))

    def y_of(value):
        return canvas.axis_y - canvas.plot_h * value / (y_ticks[-1] or 1)

    def x_of(value):
        return LEFT + canvas.plot_w * value / (x_ticks[-1] or 1)
    parts = _frame(canvas, title, x_label, y_label, y_ticks, y_of)
    for tick in x_ticks:
        parts.append(f'<text class="axis" x="{x_of(tick):.1f}" y="{canvas.axis_y + 16}" font-size="11" '
                     f'text-anchor="middle">{_fmt(tick)}</text>')
    frontier = sorted((x, y) for x, y, _, marked in points if marked)
    if len(frontier) > 1:
        path = " ".join(f"{'M' if i == 0 else 'L'}{x_of(x):.1f} {y_of(y):.1f}" for i, (x, y) in enumerate(frontier))
        parts.append(f'<path class="frontier" d="{path}" stroke="{PALETTE[0]}" stroke-width="2" fill="none"/>')
    for x, y, label, marked in points:
        colour = PALETTE[0] if marked else PALETTE[1]
        # a label that would run past the plot into the legend is written to the left of its point
        left = x_of(x) + 7 + text_px(label, TEXT_PX) > LEFT + canvas.plot_w + 10
        label_x, anchor = (x_of(x) - 7, "end") if left else (x_of(x) + 7, "start")
        parts.append(f'<circle class="{"frontier" if marked else "dominated"}" cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" '
                     f'r="5" fill="{colour}"/><text class="point-label" x="{label_x:.1f}" y="{y_of(y) - 6:.1f}" '
                     f'font-size="11" text-anchor="{anchor}">{escape(label)}</text>')
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
