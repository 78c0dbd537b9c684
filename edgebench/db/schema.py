"""The database's tables (README, "Results database", documents them; keep the two the same).

    runs         one row per run directory: run_id, kind, created, finished, status, profile_name,
                 edgebench_version, header (run.json as JSON text)
    run_files    the run directory's files as they were (run.json and the jsonl records), so that a run
                 read back from the database is the run: compare and report rebuild it from these. A file
                 is its parts joined in order: `db load` writes each whole as part 0; `run --db` appends
                 the lines of each cell as the next part, and joins them into part 0 when the run ends
    llama_bench  one row per cell (its latest attempt), llama-bench's field names where they overlap;
                 row_json holds the whole row (`edgebench show --format json`), engine_settings the engine
                 settings that make two cells one experiment (the series key of `history`), as JSON
    samples      one row per timed repetition of those attempts: ts, t_ns, ttft_ns, the telemetry window
                 and the host reading (steal, load) as JSON
    baselines    name -> run_id, saved by `baseline save --db`

A run is loaded in one transaction that first removes what an earlier load of the same run_id wrote,
so loading a run twice (or a resumed run again) leaves exactly one copy.

Databases made before run_files had parts get the column when they are opened (`create_tables`).
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
    "run_files": ((("run_id", "TEXT"), ("name", "TEXT"), ("part", "INTEGER"), ("content", "TEXT")),
                  "run_id, name, part"),
    "llama_bench": (ROW_COLUMNS, "run_id, cell"),
    "samples": (SAMPLE_COLUMNS, "run_id, cell, attempt, rep"),
    "baselines": ((("name", "TEXT"), ("run_id", "TEXT")), "name"),
}
# the tables that hold one run's data, emptied of that run before it is loaded again
RUN_TABLES = ("runs", "run_files", "llama_bench", "samples")


def create_tables(db) -> None:
    for table in TABLES:
        db.execute(_create(table, table))
    _add_file_parts(db)
    db.execute("CREATE INDEX IF NOT EXISTS llama_bench_series ON llama_bench (device, model_sha256, test)")


def _create(table: str, name: str) -> str:
    columns, key = TABLES[table]
    body = ", ".join(f"{column} {kind}" for column, kind in columns)
    return f"CREATE TABLE IF NOT EXISTS {name} ({body}, PRIMARY KEY ({key}))"


def _add_file_parts(db) -> None:
    """run_files as databases made before parts hold it, one row per file: each file becomes its part 0.
    Copied into a new table (a key cannot be changed in place on SQLite), which then takes the name."""
    found = [d[0] for d in db.execute("SELECT * FROM run_files WHERE 1 = 0").description]
    if "part" in found:
        return
    db.execute(_create("run_files", "run_files_parts"))
    db.execute("INSERT INTO run_files_parts (run_id, name, part, content) SELECT run_id, name, 0, content "
               "FROM run_files")
    db.execute("DROP TABLE run_files")
    db.execute("ALTER TABLE run_files_parts RENAME TO run_files")


def insert(db, table: str, rows) -> None:
    names = [name for name, _ in TABLES[table][0]]
    db.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", rows)
