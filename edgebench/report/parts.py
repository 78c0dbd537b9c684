"""Pieces the report's sections share: a figure with its caption, a verdict in its colour, and the chart
of B/A (or candidate/base) ratios by verdict, each bar labelled with what tells it from the others."""

from __future__ import annotations

from html import escape

from edgebench.report import svg

# a verdict the gate adds later is drawn and listed in a colour of its own (svg.legend_of), never dropped
VERDICT_COLOURS = {"regressed": "#D55E00", "failed": "#CC79A7", "improved": "#009E73", "same": "#0072B2",
                   "inconclusive": "#E69F00"}


def figure(chart: str, caption: str = "") -> str:
    note = f'<div class="note">{escape(caption)}</div>' if caption else ""
    return f'<div class="figure">{chart}{note}</div>'


def verdict_cell(verdict: str, tag: str = "td") -> str:
    """A verdict in its colour; the class names it for styles and tests (`verdict-failed`: `failed` marks
    a run's failures elsewhere)."""
    name = "verdict-failed" if verdict == "failed" else "-".join(verdict.split())
    colour = VERDICT_COLOURS.get(verdict, "#444")
    return f'<{tag} class="verdict {escape(name)}" style="color:{colour}">{escape(verdict)}</{tag}>'


def distinct(labels: list[str], sep: str = "/") -> tuple[list[str], str]:
    """Each label cut down to the parts (between `sep`) that differ among them, and the parts they all
    share: bars labelled by what tells them apart, the rest said once. One label is kept whole."""
    split = [label.split(sep) for label in labels]
    if len(labels) < 2 or len({len(parts) for parts in split}) != 1:
        return list(labels), ""
    same = [len({parts[i] for parts in split}) == 1 for i in range(len(split[0]))]
    if all(same):
        return list(labels), ""
    shared = sep.join(part for part, s in zip(split[0], same) if s)
    return [sep.join(part for part, s in zip(parts, same) if not s) for parts in split], shared


def _verdict_order(verdicts) -> list[str]:
    known = [v for v in VERDICT_COLOURS if v in verdicts]
    return known + sorted(set(verdicts) - set(known))


def ratio_chart(title: str, comparisons: list) -> str:
    """The ratio of each comparison with its 95% interval as whiskers, one series per verdict; "" when
    none was decided."""
    decided = [c for c in comparisons if c.decision]
    if not decided:
        return ""
    labels, shared = distinct([c.label for c in decided])
    series = {verdict: [(c.decision.ratio, c.decision.ratio - c.decision.ci_low, c.decision.ci_high - c.decision.ratio)
                        if c.verdict == verdict else None for c in decided]
              for verdict in _verdict_order({c.verdict for c in decided})}
    chart = svg.bar_chart(title, labels, series, "ratio", "cell", colours=VERDICT_COLOURS,
                          hline=(1.0, "no change"))
    caption = "whiskers: the 95% interval" + (f"; every bar: {shared}" if shared else "")
    return figure(chart, caption)


def _mib_text(value: float) -> str:
    if value >= 10240:
        return f"{value / 1024:.1f} GiB"
    return f"{value:.0f} MiB" if value >= 100 else f"{value:.1f} MiB"


def peaks_chart(title: str, rows: list[dict], field: str, name: str, reference: tuple[float, str] | None) -> str:
    """Each model's largest `field` (MiB) as a bar with its value written over it, one series per variant
    of an `ab` run. The axis is the data's: a peak of 34 MiB against 23.5 GiB of RAM would be no bar at
    all, so the `reference` (size, name) is drawn as a line only where the peaks reach a quarter of it,
    and otherwise said under the axis."""
    models = sorted({r["model"] for r in rows})
    variants = sorted({r.get("variant") for r in rows}, key=str)
    series = {}
    for variant in variants:
        mine = [r for r in rows if r.get("variant") == variant]
        series[name if variant is None else f"{name} {variant}"] = [
            (max(r[field] for r in found), 0.0) if (found := [r for r in mine if r["model"] == m]) else None
            for m in models]
    top = max(v for bars in series.values() for bar in bars if bar for v in bar[:1])
    x_label = "model"
    if reference and top < reference[0] / 4:
        x_label = f"model ({reference[1]}: {reference[0] / top:.0f}× the largest peak, off this scale)"
        reference = None
    return svg.bar_chart(title, models, series, "MiB", x_label, hline=reference, value_label=_mib_text)
