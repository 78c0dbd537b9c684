"""`edgebench db load RUN_DIR...` and the load `run` does as it goes: a run directory into the database."""

from __future__ import annotations

import json
from pathlib import Path

from edgebench.compare.inputs import history_settings
from edgebench.db.schema import ROW_COLUMNS, RUN_TABLES, SAMPLE_COLUMNS, insert
from edgebench.errors import ResultsError
from edgebench.results.model import CellResult, load

# the files that make a run directory (what `merge` and `--resume` read); summary.json is derived from them
RUN_FILES = ("run.json", "devices.jsonl", "cells.jsonl", "samples.jsonl", "telemetry.jsonl")


def load_run(db, run_dir: Path) -> tuple[str, int]:
    """Load one run directory (replacing an earlier load of the same run); its run_id and how many cells."""
    run_dir = Path(run_dir)
    run = load(run_dir)
    header = run.header
    if not header.run_id:
        raise ResultsError(f"{run_dir}: its run.json has no run_id")
    run_id = header.run_id
    files = [(name, (run_dir / name).read_text()) for name in RUN_FILES if (run_dir / name).is_file()]
    with db.transaction():
        forget_run(db, run_id)
        insert(db, "runs", [run_row(header)])
        insert(db, "run_files", [(run_id, name, 0, text) for name, text in files])
        insert_cells(db, run_id, run.cells)
    return run_id, len(run.cells)


def forget_run(db, run_id: str) -> None:
    for table in RUN_TABLES:
        db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))


def forget_cells(db, run_id: str, cells: list[str]) -> None:
    """These cells' rows and samples, to be inserted again from their latest attempt."""
    for table in ("llama_bench", "samples"):
        db.executemany(f"DELETE FROM {table} WHERE run_id = ? AND cell = ?", [(run_id, cell) for cell in cells])


def run_row(header) -> tuple:
    """The `runs` row of a run's header."""
    return (header.run_id, "ab" if header.ab else "run", header.created, header.finished, header.status,
            (header.profile or {}).get("name"), header.edgebench_version,
            json.dumps(header.to_json(), sort_keys=True))


def insert_cells(db, run_id: str, cells) -> None:
    """Each cell's row and the samples of its latest attempt (CellResults)."""
    insert(db, "llama_bench", [_row(run_id, cell) for cell in cells])
    insert(db, "samples", [_sample(run_id, s) for cell in cells for s in cell.samples])


def _row(run_id: str, cell: CellResult) -> tuple:
    row = cell.row()
    derived = {"run_id": run_id, "cell": cell.cell,
               "engine_settings": json.dumps(history_settings(cell, row), sort_keys=True),
               "row_json": json.dumps(row, sort_keys=True, default=str)}
    return tuple(derived[name] if name in derived else _plain(row.get(name)) for name, _ in ROW_COLUMNS)


def _plain(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, float) and value != value:  # NaN: no value (PostgreSQL would keep it as NaN)
        return None
    return value


def _sample(run_id: str, sample) -> tuple:
    values = {"run_id": run_id, "cell": sample.cell, "attempt": sample.attempt, "rep": sample.rep,
              "n_tokens": sample.n_tokens, "t_ns": sample.t_ns, "ts": sample.ts, "ttft_ns": sample.ttft_ns,
              "sample_window": json.dumps(dict(sample.window)), "host": json.dumps(dict(sample.host))}
    return tuple(values[name] for name, _ in SAMPLE_COLUMNS)
