"""From a run directory's records to one row per cell, in llama-bench's vocabulary.

Rows are always derived from the cell records and samples of each cell's latest
attempt, never from summary.json, so an interrupted run shows exactly what it measured.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Iterable

from edgebench.errors import with_cause
from edgebench.results.order_stats import quantile
from edgebench.results.records import FAILED, INTERRUPTED, CellAttempt, CellError, CellFacts, QualityScores
from edgebench.results.store import read_attempts
from edgebench.runner import engines
from edgebench.runner.crashes import main_cause
from edgebench.runner.telemetry import row_columns
from edgebench.runner.telemetry.columns import Windows

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


def _stdev(values):
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _failure(error: CellError | None) -> str | None:
    """A failed cell's message, ending with the engine's own line for why; records written before
    that line was kept apart have it only in their stderr tail."""
    if not error:
        return None
    cause = error.cause or main_cause(error.stderr_tail or "")
    return with_cause(error.message or error.kind or "failed", cause)


def _window_summary(attempt: CellAttempt) -> dict:
    """The telemetry columns: each declared column reduces the samples' windows (and the cell's end
    record, for the runner's own peak memory and the engine's GPU memory readings) to one value."""
    samples, end = attempt.samples, attempt.end
    windows = Windows([s.window for s in samples], sum(s.n_tokens for s in samples),
                      {"peak_rss_kb": end.peak_rss_kb if end else None,
                       "device_memory": (end.info or {}).get("device_memory") if end else None})
    return {column.name: column.reduce(windows) for column in row_columns()}


def engine_row_fields(facts: CellFacts) -> dict:
    """The row fields the cell's engine fills from the options recorded with it (its declared row fields).
    Records written before engines declared what they record hold llama.cpp's options whatever the
    engine, and their rows show them as they always did."""
    options = dict(facts.engine_options or {})
    declared = engines.declared(facts.engine or "")
    if declared is None or not set(options) <= set(declared.facts):
        declared = engines.declared("llama.cpp")
    return declared.row_fields(options)


def cell_row(attempt: CellAttempt) -> dict:
    facts, start, samples = attempt.facts, attempt.start, attempt.samples
    info = attempt.engine_info
    cooldown = start.cooldown if start else None
    row = dict(_LLAMA_BENCH_CONSTANTS)
    row.update({k: info[k] for k in LLAMA_BENCH_FIELDS if k in info})
    row.update(engine_row_fields(facts))
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
    ns = [s.t_ns for s in samples]
    ts = [s.ts for s in samples]
    ttft = [s.ttft_ns for s in samples if s.ttft_ns is not None]
    row.update({
        "n_samples": len(samples),
        "avg_ns": int(statistics.mean(ns)) if ns else None, "stddev_ns": int(_stdev(ns)) if ns else None,
        "avg_ts": statistics.mean(ts) if ts else None, "stddev_ts": _stdev(ts) if ts else None,
        "samples_ns": ns, "samples_ts": ts,
        **{f"latency_p{q}_ms": (quantile(sorted(ns), q / 100) / 1e6 if ns else None) for q in (50, 90, 99)},
        "ttft_ms": statistics.mean(ttft) / 1e6 if ttft else None,
        "stddev_ttft_ms": _stdev(ttft) / 1e6 if ttft else None, "samples_ttft_ns": ttft,
        **_window_summary(attempt),
        **_quality(attempt),
    })
    return {k: row.get(k) for k in FIELDS}


def _quality(attempt: CellAttempt) -> dict:
    scored = [s.quality for s in attempt.samples if s.quality is not None]
    return scored[-1].row() if scored else {}


def _status(attempt: CellAttempt) -> dict:
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
    return attempt_rows(read_attempts(path).values())


def attempt_rows(attempts: Iterable[CellAttempt]) -> list[dict]:
    """The rows of cells' latest attempts (a run in memory, results/run_records.py, gives its own)."""
    return [cell_row(attempt) for attempt in attempts]


def rows_with_attempts(path: Path) -> list[tuple[CellAttempt, dict]]:
    """Each cell's latest attempt (its facts as configured: `n_threads` None means auto; its samples with
    their telemetry windows) and its row."""
    return [(attempt, cell_row(attempt)) for attempt in read_attempts(path).values()]


def is_measured(row: dict) -> bool:
    return row["status"] == "done" and row["avg_ts"] is not None and not math.isnan(row["avg_ts"])
