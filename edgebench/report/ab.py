"""An `ab` run in the report: for each pair of cells, A against B round by round, and the pair's verdicts.

The run directory keeps every round (cells `A1:…`, `B1:…`) and what judged them (the thresholds and
alpha in run.json), not the verdicts, so they are judged again here as `ab` judged them: B against A
over the rounds both measured, a metric still open at the last round being inconclusive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from edgebench.compare.gate import Comparison, GateReport, compare_rounds
from edgebench.compare.paired import SequentialPlan
from edgebench.compare.report import header, table_rows
from edgebench.compare.stats import ALPHA
from edgebench.report import svg
from edgebench.report.parts import figure, ratio_chart, verdict_cell
from edgebench.results.model import CellResult
from edgebench.results.records import Sample
from edgebench.runner.testspec import parse_test

VARIANTS = ("A", "B")


@dataclass
class Pair:
    label: str
    test: str
    # round -> variant -> that round's timed sample; round -> the order its variants were measured in
    rounds: dict[int, dict[str, Sample]] = field(default_factory=dict)
    order: dict[int, str] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)

    def side(self, variant: str) -> dict[int, Sample]:
        return {r: by[variant] for r, by in sorted(self.rounds.items()) if variant in by}


def _pair_label(a, b) -> str:
    """As `ab` names the pair (from its cells' facts, threads as configured): what differs between A and
    B shows as `A → B`."""
    def either(x, y) -> str:
        return x if x == y else f"{x} → {y}"

    models = either(a.model, b.model)
    threads = either(f"t{a.n_threads or 'auto'}", f"t{b.n_threads or 'auto'}")
    return f"{a.device}/{a.test} ({models}, {threads})"


def read_pairs(cells: tuple[CellResult, ...], design) -> list[Pair]:
    """The run's pairs, their rounds, and their verdicts judged again. Within a device's round the k-th A
    cell and the k-th B cell are one pair (`ab` measures each pair's A and B back to back)."""
    rounds: dict[tuple, dict[str, list]] = {}
    for position, cell in enumerate(cells):
        facts = cell.facts
        if facts.variant in VARIANTS and facts.round:
            rounds.setdefault((facts.device, facts.round), {"A": [], "B": []})[facts.variant].append((position, cell))
    pairs: dict[tuple, Pair] = {}
    for (_device, number), sides in sorted(rounds.items(), key=lambda item: item[0][1]):
        for (pa, a), (pb, b) in zip(sides["A"], sides["B"]):
            key = (a.cell.split(":", 1)[1], b.cell.split(":", 1)[1])
            pair = pairs.setdefault(key, Pair(_pair_label(a.facts, b.facts), a.facts.test))
            pair.order[number] = "AB" if pa < pb else "BA"
            # a cell that ended otherwise than done keeps its partial samples, but measured nothing
            pair.rounds[number] = {v: cell.samples[-1] for v, cell in (("A", a), ("B", b))
                                   if cell.end is not None and cell.end.is_done and cell.samples}
    plan = SequentialPlan(first=design.rounds, last=max(design.rounds, design.max_rounds), alpha=design.alpha or ALPHA)
    thresholds = design.thresholds  # an older run's are its variant B's (the loader fills them in)
    for pair in pairs.values():
        a, b = pair.side("A"), pair.side("B")
        # the run is over: a metric still open is "not worse" or inconclusive, as `ab` said at its end
        pair.comparisons = compare_rounds(pair.label, parse_test(pair.test), a, b, thresholds, plan,
                                          final=True) if a else []
    return list(pairs.values())


def _flat(data, prefix: str = "") -> dict:
    if not isinstance(data, dict):
        return {prefix: data}
    return {k: v for key, value in data.items() for k, v in _flat(value, f"{prefix}{key}.").items()}


def variant_difference(variants: dict) -> list[tuple[str, object, object]]:
    """What B changes of A's profile: (key, A's value, B's value)."""
    a, b = _flat(variants.get("A") or {}), _flat(variants.get("B") or {})
    return [(key.rstrip("."), a.get(key), b.get(key)) for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key) and key != "source."]


def _rounds_chart(pair: Pair, changes: list) -> str:
    """A and B per round, each named by its values of what differs (`A (engine.threads=2)`)."""
    series = {}
    for index, variant in enumerate(VARIANTS):
        values = ", ".join(f"{key}={sides[index]}" for key, *sides in changes)
        name = f"{variant} ({values})" if values else variant
        series[name] = [(r, s.ts) for r, s in pair.side(variant).items() if s.ts]
    return svg.line_chart(f"{pair.label}: tokens/s of A and B per round", series, "round", "tokens/s",
                          y_min=0, integer_x=True)


def _verdict_line(comparison: Comparison) -> str:
    d = comparison.decision
    interval = f"B/A {d.ratio:.3f} [95% CI {d.ci_low:.3f}, {d.ci_high:.3f}], p {d.p_value:.4f}, " if d else ""
    return (f"<p>{escape(comparison.metric)}: {verdict_cell(comparison.verdict, 'span')} "
            f'<span class="note">{escape(interval)}{d.rounds if d and d.rounds else "?"} rounds; '
            f"{escape(d.reason if d else '')}</span></p>")


def _rounds_table(pair: Pair) -> str:
    rows = []
    for number, by in sorted(pair.rounds.items()):
        a, b = by.get("A"), by.get("B")
        ratio = f"{b.ts / a.ts:.3f}" if a and b and a.ts and b.ts else ""
        rows.append(f"<tr><td>{number}</td><td>{pair.order.get(number, '')}</td>"
                    f"<td>{'' if a is None else f'{a.ts:.2f}'}</td><td>{'' if b is None else f'{b.ts:.2f}'}</td>"
                    f"<td>{ratio}</td></tr>")
    return ('<table class="rounds"><tr><th>round</th><th>order</th><th>A tokens/s</th><th>B tokens/s</th>'
            f"<th>B/A</th></tr>{''.join(rows)}</table>")


def variant_commit(design, variant: str) -> str | None:
    """The llama.cpp commit a variant's engine was built at (engine.ref, pinned to the full hash), 8 digits."""
    ref = ((design.variants.get(variant) or {}).get("engine") or {}).get("ref")
    return str(ref)[:8] if ref else None


def ab_section(run) -> str:
    """The A/B part of an `ab` run's report: what B changes, the verdicts with their intervals, a chart
    of every pair's B/A, and per pair its rounds (chart and table)."""
    design = run.header.ab
    pairs = read_pairs(run.results.cells, design)
    comparisons = [c for p in pairs for c in p.comparisons]
    changes = variant_difference(design.variants)
    said = "; ".join(f"{key}: {a} → {b}" for key, a, b in changes)
    parts = ["<h3>A/B: B against A</h3>",
             f'<p class="note">B changes: {escape(said or "nothing (A and B are the same profile)")}. '
             f"Rounds interleaved (AB, BA, …), judged after {design.rounds} and then every 2 up to "
             f"{design.max_rounds}, alpha {design.alpha or ALPHA}.</p>"]
    if not comparisons:
        return "".join(parts) + '<p class="note">No pair has rounds measured by both A and B: no verdict.</p>'
    report = GateReport("A", "B", design.alpha or ALPHA, comparisons, base_commit=variant_commit(design, "A"),
                        cand_commit=variant_commit(design, "B"))
    body = "".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row[:-1]) + verdict_cell(row[-1]) + "</tr>"
                   for row in table_rows(report))
    parts.append("<table><tr>" + "".join(f"<th>{escape(h.replace('base', 'A').replace('candidate', 'B'))}</th>"
                                         for h in header(report)) + f"</tr>{body}</table>")
    unjudged = [p.label for p in pairs if not p.comparisons]
    if unjudged:
        parts.append(f'<p class="note">not judged (A measured no round of it): {escape(", ".join(unjudged))}</p>')
    chart = ratio_chart("t/s ratio B / A per pair, by verdict", [c for c in comparisons if c.metric == "ts"])
    if chart:
        parts.append(chart)
    for pair in pairs:
        parts.append(f'<div class="pair"><h4>{escape(pair.label)}</h4>' + figure(_rounds_chart(pair, changes)) +
                     "".join(_verdict_line(c) for c in pair.comparisons) + _rounds_table(pair) + "</div>")
    return "".join(parts)

