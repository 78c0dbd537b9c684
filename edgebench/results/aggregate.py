"""The llama-bench row: a view of a CellResult (results/model.py) in llama-bench's vocabulary, one per cell,
with edgebench's fields after llama-bench's. Every export (results/export.py) writes it.

Rows are always derived from the cell records and samples of each cell's latest
attempt, never from summary.json, so an interrupted run shows exactly what it measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from edgebench.errors import with_cause
from edgebench.results.records import FAILED, INTERRUPTED, CellError, QualityScores
from edgebench.runner import engines
from edgebench.runner.telemetry import row_columns
from edgebench.runner.telemetry.columns import Windows

if TYPE_CHECKING:
    from edgebench.results.model import CellResult

# llama-bench's output fields, in its order (tools/llama-bench/llama-bench.cpp, get_fields)
LLAMA_BENCH_FIELDS = (
    "build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_filename", "model_type",
    "model_size", "model_n_params", "n_batch", "n_ubatch", "n_threads", "cpu_mask", "cpu_strict", "poll",
    "type_k", "type_v", "n_gpu_layers", "n_cpu_moe", "split_mode", "main_gpu", "no_kv_offload", "flash_attn",
    "devices", "tensor_split", "tensor_buft_overrides", "load_mode", "lazy_mode", "embeddings",
    "no_op_offload", "no_host", "repack", "fit_target", "fit_min_ctx", "n_prompt", "n_gen", "n_depth",
    "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts",
)
# the columns the telemetry summaries declare (memory, heat, throttling, energy), in their order
TELEMETRY_FIELDS = tuple(column.name for column in row_columns())
# a quality test's scores, under llama-perplexity's names where it has them (records.py's QualityScores)
QUALITY_FIELDS = QualityScores.ROW_FIELDS
# what edgebench adds: where it ran, latency, quality, then telemetry (last: a new source's columns are
# appended there, so existing exports keep their layout)
EDGEBENCH_FIELDS = (
    "device", "device_class", "place", "lab",
    "engine", "engine_version", "system_info", "build_flags", "build_target", "swa_full",
    "model", "model_sha256", "test",
    "variant", "round", "status", "error", "batch", "attempt", "cooldown_s", "start_temp_c", "n_samples",
    "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "ttft_ms", "stddev_ttft_ms", "samples_ttft_ns",
) + QUALITY_FIELDS + TELEMETRY_FIELDS
FIELDS = LLAMA_BENCH_FIELDS + EDGEBENCH_FIELDS

# values llama-bench prints for settings a CPU benchmark does not vary
_LLAMA_BENCH_CONSTANTS = {
    "gpu_info": "", "cpu_mask": "0x0", "cpu_strict": False, "poll": 50, "n_cpu_moe": 0, "split_mode": "layer",
    "main_gpu": 0, "no_kv_offload": False, "devices": "auto", "tensor_split": "0.00",
    "tensor_buft_overrides": "none", "lazy_mode": "auto", "embeddings": False, "no_op_offload": 0, "no_host": False,
    "fit_target": 0, "fit_min_ctx": 0, "build_number": 0, "build_commit": "unknown",
}
UNFINISHED_ERROR = ("never finished: the controller was stopped (interrupted or killed) while measuring it, "
                    "unless the run is still going; `edgebench run --resume` measures it again")


def _failure(error: CellError | None) -> str | None:
    """A failed cell's message, ending with the engine's own line for why."""
    if not error:
        return None
    return with_cause(error.message or error.kind or "failed", error.cause)


def _window_summary(attempt: CellResult) -> dict:
    """The telemetry columns: each declared column reduces the samples' windows (and the cell's end
    record, for the runner's own peak memory and the engine's GPU memory readings) to one value."""
    samples, end = attempt.samples, attempt.end
    windows = Windows([s.window for s in samples], sum(s.n_tokens for s in samples),
                      {"peak_rss_kb": end.peak_rss_kb if end else None,
                       "device_memory": (end.info or {}).get("device_memory") if end else None})
    return {column.name: column.reduce(windows) for column in row_columns()}


def engine_row_fields(cell: CellResult) -> dict:
    """The row fields the engine fills from the options recorded with the cell (its declared row fields;
    the loader says which engine's they are)."""
    return engines.declared(cell.row_engine).row_fields(dict(cell.row_options))


def cell_row(attempt: CellResult) -> dict:
    """The row of a cell's latest attempt: the same fields in the same order for every cell."""
    facts, start, samples = attempt.facts, attempt.start, attempt.samples
    info = attempt.engine_info
    cooldown = start.cooldown if start else None
    row = dict(_LLAMA_BENCH_CONSTANTS)
    row.update({k: info[k] for k in LLAMA_BENCH_FIELDS if k in info})
    row.update(engine_row_fields(attempt))
    row.update({
        "model_filename": start and start.model_filename,
        "n_prompt": facts.n_prompt, "n_gen": facts.n_gen, "n_depth": facts.n_depth,
        "test_time": start and start.started,
        "device": facts.device, "device_class": facts.device_class, "place": facts.place, "lab": facts.lab,
        "engine": facts.engine,
        "engine_version": info.get("engine_version"), "system_info": info.get("system_info"),
        # set when the engine is one `install-engine -d` built (runner/engines/installed.py)
        "build_flags": info.get("build_flags"), "build_target": info.get("build_target"),
        "model": facts.model,
        "model_sha256": start and start.model_sha256, "test": facts.test,
        "variant": facts.variant, "round": facts.round,
        **_status(attempt),
        "batch": facts.batch or 0, "attempt": attempt.attempt,
        "cooldown_s": cooldown and cooldown.waited_s,
        "start_temp_c": cooldown and cooldown.start_temp_c,
    })
    row.setdefault("n_threads", info.get("n_threads"))
    # engines that do not report the model's size (onnxruntime): the files the controller sent
    if row.get("model_size") is None:
        row["model_size"] = start and start.model_bytes
    ns, ttft = attempt.values("t_ns"), attempt.values("ttft_ns")
    row.update({
        "n_samples": len(samples),
        "avg_ns": _scaled(attempt.mean("t_ns"), int), "stddev_ns": _scaled(attempt.stdev("t_ns"), int),
        "avg_ts": attempt.mean("ts"), "stddev_ts": attempt.stdev("ts"),
        "samples_ns": list(ns), "samples_ts": list(attempt.values("ts")),
        **{f"latency_p{q}_ms": _scaled(attempt.percentile(q, "t_ns"), lambda v: v / 1e6) for q in (50, 90, 99)},
        "ttft_ms": _scaled(attempt.mean("ttft_ns"), lambda v: v / 1e6),
        "stddev_ttft_ms": _scaled(attempt.stdev("ttft_ns"), lambda v: v / 1e6), "samples_ttft_ns": list(ttft),
        **_window_summary(attempt),
        **_quality(attempt),
    })
    return {k: row.get(k) for k in FIELDS}


def _scaled(value, convert):
    return None if value is None else convert(value)


def _quality(attempt: CellResult) -> dict:
    scored = [s.quality for s in attempt.samples if s.quality is not None]
    return scored[-1].row() if scored else {}


def _status(attempt: CellResult) -> dict:
    """Only a cell that ended as done, with samples, is measured. A failed one (a timeout after some
    repetitions, say) keeps its partial samples in the row and the files, but stays failed."""
    end = attempt.end
    if end is None:
        return {"status": INTERRUPTED, "error": UNFINISHED_ERROR}
    error = _failure(attempt.error)
    if end.is_done and not attempt.samples:
        return {"status": FAILED, "error": error or "the engine finished without a single sample"}
    return {"status": end.outcome, "error": error}


def run_rows(path: Path) -> list[dict]:
    """The rows of a run directory, one per cell."""
    from edgebench.results.model import load

    return load(path).rows()


def attempt_rows(attempts: Iterable[CellResult]) -> list[dict]:
    """The rows of cells' latest attempts (a run in memory, results/run_records.py, gives its own)."""
    return [cell_row(attempt) for attempt in attempts]


def is_measured(row: dict) -> bool:
    return row["status"] == "done" and row["avg_ts"] is not None and row["avg_ts"] == row["avg_ts"]  # not NaN
