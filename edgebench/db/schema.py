"""The database's tables (README, "Results database", documents them; keep the two the same).

    runs         one row per run directory: run_id, kind, created, finished, status, profile_name,
                 edgebench_version, header (run.json as JSON text)
    run_files    the run directory's files as they were (run.json and the jsonl records), so that a run
                 read back from the database is the run: compare and report rebuild it from these
    llama_bench  one row per cell (its latest attempt), llama-bench's field names where they overlap;
                 row_json holds the whole row (`edgebench show --format json`), engine_settings the engine
                 settings that make two cells one experiment (the series key of `history`), as JSON
    samples      one row per timed repetition of those attempts: ts, t_ns, ttft_ns, the telemetry window
                 and the host reading (steal, load) as JSON
    baselines    name -> run_id, saved by `baseline save --db`

A run is loaded in one transaction that first removes what an earlier load of the same run_id wrote,
so loading a run twice (or a resumed run again) leaves exactly one copy.
"""

from __future__ import annotations

# (column, portable type); the first columns of llama_bench are the key, the rest keep llama-bench's names
ROW_COLUMNS = (
    ("run_id", "TEXT"), ("cell", "TEXT"), ("device", "TEXT"), ("engine", "TEXT"), ("engine_settings", "TEXT"),
    ("model", "TEXT"), ("model_filename", "TEXT"), ("model_sha256", "TEXT"), ("model_type", "TEXT"),
    ("model_size", "INTEGER"), ("test", "TEXT"), ("n_prompt", "INTEGER"), ("n_gen", "INTEGER"),
    ("n_depth", "INTEGER"), ("n_threads", "INTEGER"), ("n_batch", "INTEGER"), ("n_ubatch", "INTEGER"),
    ("n_gpu_layers", "INTEGER"), ("build_commit", "TEXT"), ("build_number", "INTEGER"), ("cpu_info", "TEXT"),
    ("test_time", "TEXT"), ("status", "TEXT"), ("variant", "TEXT"), ("round", "INTEGER"), ("avg_ns", "INTEGER"),
    ("stddev_ns", "INTEGER"), ("avg_ts", "REAL"), ("stddev_ts", "REAL"), ("row_json", "TEXT"),
)
SAMPLE_COLUMNS = (
    ("run_id", "TEXT"), ("cell", "TEXT"), ("attempt", "INTEGER"), ("rep", "INTEGER"), ("n_tokens", "INTEGER"),
    ("t_ns", "INTEGER"), ("ts", "REAL"), ("ttft_ns", "INTEGER"), ("sample_window", "TEXT"), ("host", "TEXT"),
)
RUN_COLUMNS = (
    ("run_id", "TEXT"), ("kind", "TEXT"), ("created", "TEXT"), ("finished", "TEXT"), ("status", "TEXT"),
    ("profile_name", "TEXT"), ("edgebench_version", "TEXT"), ("header", "TEXT"),
)
TABLES = {
    "runs": (RUN_COLUMNS, "run_id"),
    "run_files": ((("run_id", "TEXT"), ("name", "TEXT"), ("content", "TEXT")), "run_id, name"),
    "llama_bench": (ROW_COLUMNS, "run_id, cell"),
    "samples": (SAMPLE_COLUMNS, "run_id, cell, attempt, rep"),
    "baselines": ((("name", "TEXT"), ("run_id", "TEXT")), "name"),
}
# the tables that hold one run's data, emptied of that run before it is loaded again
RUN_TABLES = ("runs", "run_files", "llama_bench", "samples")


def create_tables(db) -> None:
    for table, (columns, key) in TABLES.items():
        body = ", ".join(f"{name} {kind}" for name, kind in columns)
        db.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body}, PRIMARY KEY ({key}))")
    db.execute("CREATE INDEX IF NOT EXISTS llama_bench_series ON llama_bench (device, model_sha256, test)")


def insert(db, table: str, rows) -> None:
    names = [name for name, _ in TABLES[table][0]]
    db.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", rows)
