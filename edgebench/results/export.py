"""Output formats for `edgebench show`, a registry keyed by format name: each writes a run's CellResults
(results/model.py) through their llama-bench row (results/aggregate.py).

jsonl, json, csv and sqlite carry llama-bench's field names (and its sqlite
table layout), so llama.cpp's compare-llama-bench.py reads them; they hold
measured cells only. md is for people and also lists the cells that failed.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Callable, Sequence

from edgebench.results.aggregate import FIELDS, is_measured
from edgebench.results.model import CellResult

# format name -> the text of the cells in it
FORMATS: dict[str, Callable[[Sequence[CellResult]], str]] = {}
# list-valued fields are stored as JSON text where a format has no lists
_LIST_FIELDS = ("samples_ns", "samples_ts", "samples_ttft_ns")


def exporter(name):
    """Registers a writer of rows as the format of cells (their rows in order)."""
    def register(fn: Callable[[list[dict]], str]):
        FORMATS[name] = lambda cells: fn(rows_of(cells))
        return fn
    return register


def rows_of(cells: Sequence[CellResult]) -> list[dict]:
    return [cell.row() for cell in cells]


def _flat(row: dict) -> dict:
    """Lists as JSON text, booleans as 0/1 (as llama-bench's csv and sql printers write them)."""
    return {k: json.dumps(v) if k in _LIST_FIELDS else int(v) if isinstance(v, bool) else v
            for k, v in row.items()}


@exporter("jsonl")
def to_jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows if is_measured(r))


@exporter("json")
def to_json(rows):
    return json.dumps([r for r in rows if is_measured(r)], indent=2) + "\n"


@exporter("csv")
def to_csv(rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        if is_measured(row):
            writer.writerow(_flat(row))
    return out.getvalue()


def _sql_type(values) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int, bool}:
        return "INTEGER"
    if kinds <= {int, bool, float}:
        return "REAL"
    return "TEXT"


def write_sqlite(cells: Sequence[CellResult], path: Path) -> Path:
    """llama-bench's `llama_bench` table (its columns first), with edgebench's columns after; a table
    already in the file is replaced, so exporting a run twice does not double its rows."""
    measured = [_flat(r) for r in rows_of(cells) if is_measured(r)]
    columns = [(f, _sql_type(r[f] for r in measured)) for f in FIELDS]
    db = sqlite3.connect(path)
    try:
        with db:  # one transaction
            db.execute("DROP TABLE IF EXISTS llama_bench")
            db.execute("CREATE TABLE llama_bench (%s)" % ", ".join(f"{f} {t}" for f, t in columns))
            db.executemany("INSERT INTO llama_bench (%s) VALUES (%s)"
                           % (", ".join(FIELDS), ", ".join("?" * len(FIELDS))),
                           [tuple(r[f] for f in FIELDS) for r in measured])
    finally:
        db.close()
    return Path(path)


def _size(n_bytes):
    if n_bytes is None:
        return ""
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.2f} MiB"


def _params(n):
    if n is None:
        return ""
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def _pm(mean, sd, digits=2):
    if mean is None:
        return ""
    return f"{mean:.{digits}f} ± {sd or 0:.{digits}f}"


def _opt(value, fmt):
    return "" if value is None else format(value, fmt)


MD_COLUMNS = (
    ("device", lambda r: r["device"]),
    ("model", lambda r: r["model"]),
    ("size", lambda r: _size(r["model_size"])),
    ("params", lambda r: _params(r["model_n_params"])),
    ("backend", lambda r: r["backends"] or ""),
    ("threads", lambda r: str(r["n_threads"] or "")),
    ("test", lambda r: r["test"]),
    ("t/s", lambda r: _pm(r["avg_ts"], r["stddev_ts"])),
    ("TTFT ms", lambda r: _pm(r["ttft_ms"], r["stddev_ttft_ms"], 1)),
    ("peak RSS MiB", lambda r: _opt(r["peak_rss_mib"], ".0f")),
    ("max °C", lambda r: _opt(r["max_temp_c"], ".1f")),
    ("J/tok", lambda r: _opt(r["j_per_token"], ".3f")),
)


# quality tests' scores beside the speed and memory of the same model, in runs that measured any
QUALITY_COLUMNS = (
    ("PPL", lambda r: _pm(r["ppl"], r["ppl_stderr"], 3)),
    ("KLD", lambda r: _opt(r["kld_mean"], ".5f")),
    ("KLD 99.9%", lambda r: _opt(r["kld_p99_9"], ".5f")),
    ("same top %", lambda r: _opt(r["same_top_p"] and 100 * r["same_top_p"], ".2f")),
)


# an `ab` run's cells: two variants that differ only in a setting look alike in every other column
AB_COLUMNS = (
    ("variant", lambda r: r["variant"] or ""),
    ("round", lambda r: _opt(r["round"], "d")),
)


def table_cells(rows):
    """Header and string cells of the people-facing table (shared by md and the terminal)."""
    columns = MD_COLUMNS
    if any(r["variant"] for r in rows):
        columns = MD_COLUMNS[:1] + AB_COLUMNS + MD_COLUMNS[1:]
    if any(r["ppl"] is not None for r in rows):
        columns = columns + QUALITY_COLUMNS
    header = [name for name, _ in columns]
    body = [[cell(r) for _, cell in columns] for r in rows if is_measured(r)]
    return header, body


NUMERIC_COLUMNS = {"round", "size", "params", "threads", "t/s", "TTFT ms", "peak RSS MiB", "max °C", "J/tok",
                   *(name for name, _ in QUALITY_COLUMNS)}


def markdown_table(header, rows, numeric=()) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if h in numeric else "---" for h in header) + "|"]
    return lines + ["| " + " | ".join(_cell_text(c) for c in row) + " |" for row in rows]


def _cell_text(value) -> str:
    """A value as one table cell: a `|` of its own (llama.cpp's `AVX = 1 | AVX2 = 1`) would end the cell."""
    return str(value).replace("|", "\\|")


def _cell_name(row) -> list[str]:
    variant = [f"{row['variant']}{row['round'] or ''}"] if row["variant"] else []
    return [*variant, row["device"], row["model"], row["test"]]


def _partial(row) -> str:
    """A failed cell's repetitions that did finish (before a timeout, say): kept, but not a measurement."""
    n = row["n_samples"]
    return f" ({n} repetition{'s' if n > 1 else ''} measured before that, kept in samples.jsonl)" if n else ""


@exporter("md")
def to_markdown(rows):
    header, body = table_cells(rows)
    lines = markdown_table(header, body, NUMERIC_COLUMNS)
    failed = [r for r in rows if not is_measured(r)]
    if failed:
        lines += ["", "Failed cells:", ""]
        lines += [f"- {' / '.join(_cell_name(r))}: {r['error'] or r['status']}{_partial(r)}" for r in failed]
    return "\n".join(lines) + "\n"


