"""The report's GPU section: each device's peak VRAM per model against the card's size, and per cell
the GPU's temperature and clock (% of its maximum) over time, with the stretches its driver reported
as throttled shaded. A low clock alone is not shaded: an idle GPU clocks down without throttling."""

from __future__ import annotations

from edgebench.report import svg
from edgebench.report.parts import figure, peaks_chart
from edgebench.runner.telemetry.gpu import clock_ratio, gpu_temp, throttle_reasons, vram_total_mib

MAX_CELL_TRACES = 24


def card_mib(run, device: str) -> float | None:
    """The card's size: what the GPU source read on the device, else the profile's `gpu.vram_gb`."""
    read = [v for r in run.telemetry if r.cell.split("/")[0] == device for v in (vram_total_mib(r.readings),) if v]
    if read:
        return max(read)
    configured = ((run.header.devices or {}).get(device) or {}).get("gpu") or {}
    return configured["vram_gb"] * 1024 if configured.get("vram_gb") else None


def vram_plot(run) -> list[str]:
    rows = [r for r in run.rows if r.get("peak_vram_mib")]
    figures = []
    for device in sorted({r["device"] for r in rows}):
        card = card_mib(run, device)
        mine = [r for r in rows if r["device"] == device]
        figures.append(figure(peaks_chart(f"{device}: peak VRAM per model", mine, "peak_vram_mib", "peak VRAM",
                                          (card, f"GPU memory {card / 1024:.1f} GiB") if card else None)))
    return figures


def _gpu_throttled(record) -> bool:
    return bool(throttle_reasons(record.readings))


def gpu_traces(run) -> list[str]:
    by_cell: dict = {}
    for record in run.telemetry:
        if record.readings.get("gpu"):
            by_cell.setdefault(record.cell, []).append(record)
    figures = []
    for cell, records in list(by_cell.items())[:MAX_CELL_TRACES]:
        start = records[0].t
        series = {}
        temps = [(r.t - start, gpu_temp(r.readings)) for r in records if gpu_temp(r.readings) is not None]
        clocks = [(r.t - start, 100 * clock_ratio(r.readings)) for r in records if clock_ratio(r.readings) is not None]
        if temps:
            series["GPU °C"] = temps
        if clocks:
            series["GPU clock % of max"] = clocks
        if series:
            shaded = svg.spans_where(records, start, _gpu_throttled)
            figures.append(figure(svg.line_chart(f"{cell}: GPU temperature and clock", series, "seconds", "°C / %",
                                                  shaded=shaded, shade_label="throttled", y_min=0)))
    if len(by_cell) > MAX_CELL_TRACES:
        figures.append(f'<p class="note">{len(by_cell) - MAX_CELL_TRACES} more cells have GPU telemetry; '
                       f'see telemetry.jsonl</p>')
    return figures


def gpu_section(run) -> str:
    """The section's HTML, or "" for a run that saw no GPU (most edge runs: no empty heading)."""
    parts = vram_plot(run) + gpu_traces(run)
    return "<h3>GPU</h3>" + "".join(parts) if parts else ""
