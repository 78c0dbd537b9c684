"""`edgebench report`: one self-contained HTML file per set of runs, for people.

Sections: what ran (devices, models, engine builds, failures), then plots (t/s per
model per device with error bars, t/s against depth, quality (KLD or PPL) against speed per device
with the best choices marked, peak memory against the device's
RAM, temperature and CPU frequency over time per cell with throttled stretches shaded, on a
GPU its VRAM against the card and its temperature and clock over time (gpu_plots.py),
J/token where measured) and, for two runs, the gate's verdicts with their ratios; an `ab` run has
A against B per pair instead of t/s per model (ab.py).
Everything is inline (SVG, CSS): the file opens offline and can be mailed around.
"""

from __future__ import annotations

import datetime as _dt
from html import escape
from pathlib import Path
from statistics import median

from edgebench import __version__
from edgebench.compare.inputs import row_test
from edgebench.report import svg
from edgebench.report.ab import ab_section
from edgebench.report.gpu_plots import gpu_section
from edgebench.report.parts import figure as _figure
from edgebench.report.parts import peaks_chart, ratio_chart, verdict_cell
from edgebench.report.quality import quality_plots
from edgebench.results.model import load
from edgebench.results.records import Telemetry

# the sources' own readings of a telemetry record, so the plots judge it as the window summaries do
from edgebench.runner.telemetry.cpufreq import THROTTLE_RATIO, freq_ratio
from edgebench.runner.telemetry.thermal import hottest
from edgebench.runner.testspec import KINDS

MAX_CELL_TRACES = 24


def _cpu_throttled(record) -> bool:
    ratio = freq_ratio(record.readings)
    return ratio is not None and ratio < THROTTLE_RATIO

CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4}.failed{color:#b00}.figure{margin:12px 0}.note{color:#666;font-size:13px}
.verdict{font-weight:bold}h4{font-size:14px;margin:20px 0 4px}
"""


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape('' if c is None else str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class RunData:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.results = load(self.path, telemetry=True)
        self.header = self.results.header
        # the plots draw the rows, the cells' llama-bench view
        found = [(cell, cell.row()) for cell in self.results.cells]
        self.rows = [row for _, row in found]
        # the thread count each cell was given (None: auto), which a row, holding what the engine used, lacks
        self._threads = {id(row): cell.facts.n_threads for cell, row in found}
        self.devices = {probe.device: probe for probe in self.results.devices}
        self.telemetry = list(self.results.telemetry)

    @property
    def label(self) -> str:
        return f"{self.header.run_id} ({(self.header.profile or {}).get('name', '?')})"

    def where(self, row: dict, rows: list[dict]) -> str:
        """The row's device, and its thread count where `rows` measured that device at several."""
        counts = {self._threads.get(id(r)) for r in rows if r["device"] == row["device"]}
        threads = self._threads.get(id(row))
        return row["device"] if len(counts) < 2 else f"{row['device']} t{threads or 'auto'}"

    def facts(self, device: str) -> dict:
        """What the device's probe found (nothing where the probe failed)."""
        probe = self.devices.get(device)
        return (probe.facts if probe else None) or {}

    def ram_mib(self, device: str) -> float | None:
        total = (self.facts(device).get("memory") or {}).get("total_bytes")
        if total:
            return total / 2**20
        configured = ((self.header.devices or {}).get(device) or {}).get("facts") or {}
        return configured["ram_gb"] * 1024 if configured.get("ram_gb") else None


def overview(run: RunData) -> str:
    header = run.header
    devices = []
    for name in sorted(run.devices):
        facts = run.facts(name)
        cpu = facts.get("cpu") or {}
        ram = run.ram_mib(name)
        devices.append([name, facts.get("arch"), cpu.get("model"), cpu.get("physical_cores"),
                        f"{ram / 1024:.1f} GiB" if ram else "", (facts.get("os") or {}).get("name")])
    builds = sorted({(r["engine"], r["engine_version"], r["build_commit"]) for r in run.rows},
                    key=lambda b: tuple(str(v) for v in b))
    failures = [[r["device"], r["model"], r["test"], r["error"]] for r in run.rows if r["status"] != "done"]
    models = sorted({(r["model"], r["model_filename"], _mib(r["model_size"])) for r in run.rows},
                    key=lambda m: str(m[0]))
    parts = [f"<h2>Run {escape(run.label)}</h2>",
             f'<p class="note">status {escape(str(header.status))}, created {escape(str(header.created))}, '
             f'{len(run.rows)} cells, {len(failures)} failed</p>',
             "<h3>Devices</h3>", _table(["device", "arch", "CPU", "cores", "RAM", "OS"], devices),
             "<h3>Models</h3>", _table(["model", "file", "size MiB"], [list(m) for m in models]),
             "<h3>Engine builds</h3>", _table(["engine", "version", "build"], [list(b) for b in builds])]
    if failures:
        parts += ['<h3 class="failed">Failures</h3>', _table(["device", "model", "test", "reason"], failures)]
    return "".join(parts)


def _mib(value) -> str:
    return f"{value / 2**20:.1f}" if value else ""


def speed_plots(run: RunData) -> list[str]:
    figures = []
    measured = [r for r in run.rows if r["avg_ts"] and r["status"] == "done"]
    for kind in KINDS:
        rows = [r for r in measured if _kind(r) == kind and not r["n_depth"]]
        if not rows:
            continue
        for test in sorted({r["test"] for r in rows}):
            chosen = [r for r in rows if r["test"] == test]
            models = sorted({r["model"] for r in chosen})
            devices = sorted({run.where(r, chosen) for r in chosen})  # with the thread count, in a sweep
            series = {d: [next(((r["avg_ts"], r["stddev_ts"]) for r in chosen
                                if run.where(r, chosen) == d and r["model"] == m), None) for m in models]
                      for d in devices}
            unit = "items/s" if kind == "b" else "tokens/s"
            figures.append(_figure(svg.bar_chart(f"{test}: {unit} per model and device", models, series, unit,
                                                 "model (quant)"), "bars: mean; whiskers: ± one standard deviation"))
    deep = {}
    for r in measured:
        deep.setdefault((run.where(r, measured), r["model"], _kind(r)), []).append((r["n_depth"] or 0, r["avg_ts"]))
    lines = {f"{d} {m} {k}": sorted(points) for (d, m, k), points in deep.items()
             if len({x for x, _ in points}) > 1}
    if lines:
        figures.append(_figure(svg.line_chart("t/s against context depth", lines, "depth (tokens)", "tokens/s",
                                              y_min=0)))
    return figures


def _kind(row: dict) -> str:
    return row_test(row).kind


def memory_plot(run: RunData) -> list[str]:
    rows = [r for r in run.rows if r["peak_rss_mib"]]
    figures = []
    for device in sorted({r["device"] for r in rows}):
        ram = run.ram_mib(device)
        mine = [r for r in rows if r["device"] == device]
        figures.append(_figure(peaks_chart(f"{device}: peak memory per model", mine, "peak_rss_mib", "peak RSS",
                                           (ram, f"device RAM {ram / 1024:.1f} GiB") if ram else None)))
    return figures


def thermal_plots(run: RunData) -> list[str]:
    by_cell: dict[str, list[Telemetry]] = {}
    for record in run.telemetry:
        by_cell.setdefault(record.cell, []).append(record)
    figures = []
    for cell, records in list(by_cell.items())[:MAX_CELL_TRACES]:
        start = records[0].t
        temps = [(r.t - start, hottest(r.readings)) for r in records if hottest(r.readings) is not None]
        freqs = [(r.t - start, 100 * freq_ratio(r.readings)) for r in records if freq_ratio(r.readings) is not None]
        if not temps and not freqs:
            continue
        spans = svg.spans_where(records, start, _cpu_throttled)
        series = {}
        if temps:
            series["hottest zone °C"] = temps
        if freqs:
            series["CPU frequency % of max"] = freqs
        figures.append(_figure(svg.line_chart(f"{cell}: temperature and CPU frequency", series, "seconds",
                                              "°C / %", shaded=spans, shade_label="throttled", y_min=0)))
    if len(by_cell) > MAX_CELL_TRACES:
        figures.append(f'<p class="note">{len(by_cell) - MAX_CELL_TRACES} more cells have telemetry; '
                       f'see telemetry.jsonl</p>')
    return figures


def energy_plot(run: RunData) -> list[str]:
    rows = [r for r in run.rows if r["j_per_token"]]
    if not rows:
        return ['<p class="note">No power source was readable on these devices: no energy figures.</p>']
    def what(row) -> str:
        return f"{row['model']} {row['test']}"

    def where(row) -> str:  # an `ab` run's variants are series of their own, their rounds one bar (the median)
        return run.where(row, rows) + (f" {row['variant']}" if row.get("variant") else "")
    labels = sorted({what(r) for r in rows})
    series = {w: [(median(found), 0.0) if (found := [r["j_per_token"] for r in rows if where(r) == w
                                                     and what(r) == label]) else None for label in labels]
              for w in sorted({where(r) for r in rows})}
    return [_figure(svg.bar_chart("energy per token", labels, series, "J/token", "model and test"))]


def comparison(base: RunData, cand: RunData) -> str:
    from edgebench.compare.gate import compare_sides, different_machines
    from edgebench.compare.inputs import load_side
    from edgebench.compare.report import header, table_rows

    sides = load_side(base.path), load_side(cand.path)
    # a report shows both runs whatever they ran on, and says so where a device is another machine
    report = compare_sides(*sides, allow_different_devices=True)
    parts = [f"<h2>Comparison: {escape(cand.label)} against {escape(base.label)}</h2>"]
    parts += [f'<p class="failed">different machines under one device name: {escape(d)}</p>'
              for d in different_machines(*sides)]
    parts.append(ratio_chart("t/s ratio candidate / base, by verdict",
                             [c for c in report.comparisons if c.metric == "ts"]))
    body = "".join(f'<tr>{"".join(f"<td>{escape(str(v))}</td>" for v in row[:-1])}{verdict_cell(row[-1])}</tr>'
                   for row in table_rows(report))
    parts.append("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header(report)) + f"</tr>{body}</table>")
    return "".join(parts)


def _history_title(series, history) -> str:
    """The series' device, model, test and engine, and the settings in which it differs from another
    series of those (threads, say): what tells the charts apart. The caption has all its settings."""
    twins = [s for s in history if (s.device, s.model, s.test, s.engine) == (series.device, series.model,
                                                                          series.test, series.engine)]
    differ = [k for k, v in series.settings.items() if any(t.settings.get(k) != v for t in twins)]
    shown = ", ".join(f"{k}={series.settings[k]}" for k in differ)
    return f"{series.device} / {series.model} / {series.test} / {series.engine}" + (f" ({shown})" if shown else "")


def history_plots(history) -> list[str]:
    """Each history series (db/history.py's Series: points in time order, change points) as a line over its
    runs, numbered from 1, a dashed line where a new level begins, labelled with its magnitude and p-value."""
    figures = []
    for series in history:
        points = [(i + 1, p.value) for i, p in enumerate(series.points)]
        marks = [(c.index + 0.5, f"{c.magnitude:+.1%} p={c.p_value:.1g}") for c in series.changes]
        chart = svg.line_chart(_history_title(series, history), {series.metric.name: points},
                               f"run (by {series.x_axis})", f"{series.metric.name} ({series.metric.unit})",
                               marks=marks, integer_x=True)
        first, last = series.points[0], series.points[-1]
        settings = ", ".join(f"{k}={v}" for k, v in series.settings.items() if v is not None)
        figures.append(_figure(chart, f"{len(points)} runs from {first.x_label} to {last.x_label}; "
                                      f"{len(series.changes)} change point(s) (E-divisive, Apache Otava); "
                                      f"settings: {settings or 'none recorded'}"))
    return figures


def build_report(run_dirs: list[Path], history=()) -> str:
    runs = [RunData(p) for p in run_dirs]
    when = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>edgebench report: {escape(', '.join(r.label for r in runs))}</title>",
             f"<style>{CSS}</style></head><body>",
             f"<h1>edgebench report</h1><p class=\"note\">edgebench {__version__}, written {when}</p>"]
    for run in runs:
        parts.append(overview(run))
        parts.append(ab_section(run) if run.header.ab else "<h3>Speed</h3>" + "".join(speed_plots(run)))
        quality = quality_plots(run.rows)
        if quality:
            parts.append("<h3>Quality against speed</h3>" + "".join(_figure(c, note) for c, note in quality))
        parts.append("<h3>Memory</h3>" + "".join(memory_plot(run)))
        parts.append("<h3>Temperature and CPU frequency</h3>" + ("".join(thermal_plots(run)) or
                     '<p class="note">No thermal or cpufreq sensors were readable on these devices.</p>'))
        parts.append(gpu_section(run))
        parts.append("<h3>Energy</h3>" + "".join(energy_plot(run)))
    if len(runs) == 2:
        parts.append(comparison(runs[0], runs[1]))
    if history:
        parts.append("<h2>History</h2>" + "".join(history_plots(history)))
    parts.append("</body></html>")
    return "".join(parts)
