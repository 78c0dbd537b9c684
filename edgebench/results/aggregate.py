"""From a run directory's records to one row per cell, in llama-bench's vocabulary.

Rows are always derived from samples.jsonl and cells.jsonl, never from
summary.json, so an interrupted run shows exactly what it measured.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from edgebench.errors import with_cause
from edgebench.results.order_stats import quantile
from edgebench.results.store import read_jsonl, read_meta
from edgebench.runner.crashes import main_cause
from edgebench.runner.engines.llama_settings import FLASH_ATTN
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
# what edgebench adds: where it ran, latency, then telemetry
EDGEBENCH_FIELDS = (
    "device", "device_class", "engine", "engine_version", "system_info", "model", "model_sha256", "test",
    "variant", "round", "status", "error", "batch", "attempt", "cooldown_s", "start_temp_c", "n_samples",
    "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "ttft_ms", "stddev_ttft_ms", "samples_ttft_ns",
) + TELEMETRY_FIELDS
FIELDS = LLAMA_BENCH_FIELDS + EDGEBENCH_FIELDS

# values llama-bench prints for settings a CPU benchmark does not vary
_LLAMA_BENCH_CONSTANTS = {
    "gpu_info": "", "cpu_mask": "0x0", "cpu_strict": False, "poll": 50, "n_cpu_moe": 0, "split_mode": "layer",
    "main_gpu": 0, "no_kv_offload": False, "devices": "auto", "tensor_split": "0.00",
    "tensor_buft_overrides": "none", "lazy_mode": "auto", "embeddings": False, "no_op_offload": 0, "no_host": False,
    "fit_target": 0, "fit_min_ctx": 0, "build_number": 0, "build_commit": "unknown",
}
# a cell whose latest record is one of these never reached its end: the controller was killed (or
# is still measuring it)
_UNFINISHED = ("started", "running")
UNFINISHED_ERROR = ("never finished: the controller was stopped (interrupted or killed) while measuring it, "
                    "unless the run is still going; `edgebench run --resume` measures it again")


def _stdev(values):
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _attempt(record) -> int:
    return record.get("attempt", 1)


def _merge_cells(records):
    """cells.jsonl holds a start and an end record per attempt at a cell; later facts refine earlier
    ones. A cell's row is its latest attempt: a retry or a resumed run supersedes what went before
    (which stays in the files)."""
    cells = {}
    for record in records:
        cell = cells.get(record["cell"])
        if cell is None or _attempt(record) > cell["attempt"]:
            cell = cells[record["cell"]] = {"info": {}, "attempt": _attempt(record)}
        elif _attempt(record) < cell["attempt"]:
            continue
        info = record.get("info") or {}
        cell.update({k: v for k, v in record.items() if k != "info"})
        cell["info"].update({k: v for k, v in info.items() if v is not None})
    return cells


def _failure(error: dict | None) -> str | None:
    """A failed cell's message, ending with the engine's own line for why; records written before
    that line was kept apart have it only in their stderr tail."""
    if not error:
        return None
    cause = error.get("cause") or main_cause(error.get("stderr_tail") or "")
    return with_cause(error.get("message") or error.get("kind") or "failed", cause)


def _window_summary(cell: dict, samples: list[dict]) -> dict:
    """The telemetry columns: each declared column reduces the samples' windows (and the cell's own
    record, for the runner's peak memory) to one value."""
    windows = Windows([s.get("window") or {} for s in samples], sum(s["n_tokens"] for s in samples), cell)
    return {column.name: column.reduce(windows) for column in row_columns()}


def cell_row(cell: dict, samples: list[dict]) -> dict:
    info, options = cell["info"], cell.get("engine_options") or {}
    row = dict(_LLAMA_BENCH_CONSTANTS)
    row.update({k: info[k] for k in LLAMA_BENCH_FIELDS if k in info})
    row.update({
        "model_filename": cell.get("model_filename"), "n_batch": options.get("n_batch"),
        "n_ubatch": options.get("n_ubatch"), "type_k": options.get("type_k"), "type_v": options.get("type_v"),
        "n_gpu_layers": options.get("n_gpu_layers"), "flash_attn": FLASH_ATTN.get(options.get("flash_attn"), -1),
        "load_mode": "auto" if options.get("use_mmap", True) else "none",
        "repack": bool(options.get("repack", True)),
        "n_prompt": cell["n_prompt"], "n_gen": cell["n_gen"], "n_depth": cell["n_depth"],
        "test_time": cell.get("started"),
        "device": cell.get("device"), "device_class": cell.get("device_class"), "engine": cell.get("engine"),
        "engine_version": info.get("engine_version"), "system_info": info.get("system_info"),
        "model": cell.get("model"),
        "model_sha256": cell.get("model_sha256"), "test": cell.get("test"),
        "variant": cell.get("variant"), "round": cell.get("round"),
        **_status(cell, samples),
        "batch": cell.get("batch") or 0, "attempt": cell["attempt"],
        "cooldown_s": (cell.get("cooldown") or {}).get("waited_s"),
        "start_temp_c": (cell.get("cooldown") or {}).get("start_temp_c"),
    })
    row.setdefault("n_threads", info.get("n_threads"))
    # engines that do not report the model's size (onnxruntime): the files the controller sent
    if row.get("model_size") is None:
        row["model_size"] = cell.get("model_bytes")
    ns = [s["t_ns"] for s in samples]
    ts = [s["ts"] for s in samples]
    ttft = [s["ttft_ns"] for s in samples if s.get("ttft_ns") is not None]
    row.update({
        "n_samples": len(samples),
        "avg_ns": int(statistics.mean(ns)) if ns else None, "stddev_ns": int(_stdev(ns)) if ns else None,
        "avg_ts": statistics.mean(ts) if ts else None, "stddev_ts": _stdev(ts) if ts else None,
        "samples_ns": ns, "samples_ts": ts,
        **{f"latency_p{q}_ms": (quantile(sorted(ns), q / 100) / 1e6 if ns else None) for q in (50, 90, 99)},
        "ttft_ms": statistics.mean(ttft) / 1e6 if ttft else None,
        "stddev_ttft_ms": _stdev(ttft) / 1e6 if ttft else None, "samples_ttft_ns": ttft,
        **_window_summary(cell, samples),
    })
    return {k: row.get(k) for k in FIELDS}


def _status(cell: dict, samples: list[dict]) -> dict:
    """Only a cell that ended as done, with samples, is measured. A failed one (a timeout after some
    repetitions, say) keeps its partial samples in the row and the files, but stays failed."""
    state = cell.get("state", "started")
    error = _failure(cell.get("error"))
    if state == "done" and not samples:
        return {"status": "failed", "error": error or "the engine finished without a single sample"}
    if state in _UNFINISHED:
        return {"status": "interrupted", "error": UNFINISHED_ERROR}
    return {"status": state, "error": error}


def _cells_and_samples(path: Path):
    path = Path(path)
    read_meta(path)
    cells = _merge_cells(read_jsonl(path / "cells.jsonl"))
    by_cell: dict[str, list[dict]] = {}
    for sample in read_jsonl(path / "samples.jsonl"):
        cell = cells.get(sample["cell"])
        if cell is not None and _attempt(sample) == cell["attempt"]:
            by_cell.setdefault(sample["cell"], []).append(sample)
    return cells, {cell_id: sorted(samples, key=lambda s: s["rep"]) for cell_id, samples in by_cell.items()}


def run_rows(path: Path) -> list[dict]:
    return [row for _cell, row, _samples in rows_with_samples(path)]


def rows_with_samples(path: Path) -> list[tuple[dict, dict, list[dict]]]:
    """Each cell's recorded facts (as configured: `n_threads` None means auto), its row, and the raw
    samples of its latest attempt (with their telemetry windows)."""
    cells, samples = _cells_and_samples(path)
    return [(cell, cell_row(cell, samples.get(cell_id, [])), samples.get(cell_id, []))
            for cell_id, cell in cells.items()]


def latest_attempts(path: Path) -> list[dict]:
    """Per recorded cell: its id, its latest attempt number and whether that attempt finished."""
    cells, samples = _cells_and_samples(path)
    return [{"cell": cell_id, "attempt": cell["attempt"],
             "finished": cell.get("state") == "done" and bool(samples.get(cell_id))}
            for cell_id, cell in cells.items()]


def is_measured(row: dict) -> bool:
    return row["status"] == "done" and row["avg_ts"] is not None and not math.isnan(row["avg_ts"])
