"""The two sides of a comparison, read from edgebench run directories or llama-bench output.

Each measured cell becomes a `MeasuredCell`: a key of everything that must be
equal for two cells to be comparable (device, model identity, test, threads,
engine settings) and one sample per timed repetition for each metric. A run
directory's cells are its result model's CellResults (results/model.py); a
side also says which machine each of its devices is (their probes), which two
runs must share to be compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.compare.metrics import metric_values
from edgebench.errors import ResultsError
from edgebench.results.model import CellResult, Machine, RunResults, load
from edgebench.runner import engines
from edgebench.runner.testspec import QUALITY_KINDS, TestSpec, parse_test

# the engine settings that make two cells one experiment are what each engine declares (its compare
# keys); a row of an engine edgebench does not know (an old or foreign file) is held to llama.cpp's
_FALLBACK_ENGINE = "llama.cpp"


class _Shown(str):
    """A list or mapping setting (providers, dims) made hashable for a key, shown as JSON writes it."""

    def __repr__(self) -> str:
        return str(self)


@dataclass(frozen=True)
class MeasuredCell:
    key: tuple
    label: str
    test: TestSpec
    status: str
    error: str | None
    values: dict[str, tuple[float, ...]] = field(hash=False)


@dataclass(frozen=True)
class Side:
    source: str
    cells: tuple[MeasuredCell, ...]
    # the thresholds of the profile the run used (empty for llama-bench files)
    thresholds: dict[str, float] = field(default_factory=dict, hash=False)
    # device name -> what its probe says the machine is (none for llama-bench files: they hold no probe)
    machines: dict[str, Machine] = field(default_factory=dict, hash=False)
    # the llama.cpp commit its rows name (build_commit), where they name exactly one
    commit: str | None = None


def one_commit(rows) -> str | None:
    """The build_commit every row with one names, cut to 8 digits as compare-llama-bench.py shows it; None
    when none or several (or "unknown")."""
    found = {str(row.get("build_commit"))[:8] for row in rows if row.get("build_commit") not in (None, "", "unknown")}
    return found.pop() if len(found) == 1 else None


def _engine_key(engine: str | None, found: dict) -> tuple:
    """(name, value) for each of the engine's compare keys, from `found` (row fields and settings)."""
    declared = engines.declared(engine or "") or engines.declared(_FALLBACK_ENGINE)
    return tuple((name, _hashable(found.get(name))) for name in declared.compare_keys)


def _cell_engine_key(cell: CellResult, row: dict, builds: dict) -> tuple:
    """A cell's engine key: its row's field of each name, else its setting (CellResult.settings), and the
    engine build seen on its device."""
    facts = cell.facts
    build = builds.get((facts.device, facts.engine), row["system_info"])
    return _engine_key(facts.engine, {**cell.settings, **row, "system_info": build})


def _hashable(value):
    return _Shown(json.dumps(value, sort_keys=True)) if isinstance(value, (list, tuple, dict)) else value


# compare keys that describe the engine's build, not its settings: history puts builds on its x-axis
_BUILD_KEYS = ("system_info",)


def history_settings(cell: CellResult, row: dict | None = None) -> dict:
    """The engine settings that key a history series: the engine's compare keys without its build, and the
    threads as configured (a series spans engine builds; a change of settings starts another series)."""
    row = cell.row() if row is None else row
    facts = cell.facts
    declared = engines.declared(facts.engine or "") or engines.declared(_FALLBACK_ENGINE)
    own = engines.declared(facts.engine or "")
    found = {**(own.defaults() if own else {}), **(facts.engine_options or {}), **row}
    settings = {name: found.get(name) for name in declared.compare_keys if name not in _BUILD_KEYS}
    return {**settings, "n_threads": facts.n_threads}


def _builds(cells) -> dict:
    """(device, engine) -> the engine build seen there: a cell that failed before its engine reported
    anything ran on that same build, and must still meet its twin in the other run."""
    return {(cell.facts.device, cell.facts.engine): build for cell in cells
            if (build := cell.engine_info.get("system_info"))}


def row_test(row: dict) -> TestSpec:
    if row.get("test") in QUALITY_KINDS:  # counted by its `quality:` block, not by the row's counts
        return parse_test(row["test"])
    return TestSpec(int(row.get("n_prompt") or 0), int(row.get("n_gen") or 0), int(row.get("n_depth") or 0),
                    int(row.get("batch") or 0))


def _edgebench_cells(run: RunResults) -> list[MeasuredCell]:
    builds = _builds(run.cells)
    return [_measured_cell(cell, builds) for cell in run.cells]


def _measured_cell(cell: CellResult, builds: dict) -> MeasuredCell:
    facts, row = cell.facts, cell.row()
    test = cell_test(cell)
    # a cell that did not finish (a timeout after one repetition, say) failed: its partial samples
    # are no measurement to hold the other side to
    values = metric_values(cell.samples) if row["status"] == "done" else {}
    model = cell.model_identity
    threads = facts.n_threads  # as configured: a failed cell never reports how many "auto" came to
    return MeasuredCell(
        key=(facts.device, model, test.name, threads, facts.engine, _cell_engine_key(cell, row, builds)),
        label=f"{facts.device}/{facts.model}/{test.name}/t{threads or 'auto'}",
        test=test, status=row["status"] or "unknown", error=row["error"], values=values)


def cell_test(cell: CellResult) -> TestSpec:
    facts = cell.facts
    if facts.test in QUALITY_KINDS:  # counted by its `quality:` block, not by its counts
        return parse_test(facts.test)
    return TestSpec(facts.n_prompt or 0, facts.n_gen or 0, facts.n_depth or 0, facts.batch or 0)


def _llama_bench_rows(path: Path) -> list[dict]:
    text = path.read_text()
    try:
        data = json.loads(text)
        rows = data if isinstance(data, list) else [data]
    except ValueError:
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise ResultsError(f"{path} is neither an edgebench run directory nor llama-bench json/jsonl "
                               f"output: {exc}") from exc
    if not rows or not all(isinstance(r, dict) and "samples_ts" in r for r in rows):
        raise ResultsError(f"{path}: not llama-bench output (`-o json` or `-o jsonl` rows with samples_ts)")
    return rows


def _llama_bench_cells(path: Path) -> list[MeasuredCell]:
    merged: dict[tuple, dict] = {}
    for row in _llama_bench_rows(path):
        test = row_test(row)
        model = (row.get("model_filename"), row.get("model_type"), row.get("model_size"))
        key = (row.get("cpu_info"), model, test.name, row.get("n_threads"), "llama-bench",
               _engine_key(row.get("engine"), row))
        cell = merged.setdefault(key, {"row": row, "test": test, "ts": []})
        # the same test run again (llama-bench invoked twice into one file) adds repetitions
        cell["ts"].extend(float(v) for v in row.get("samples_ts") or ())
    return [MeasuredCell(key=key, label=f"{Path(str(c['row'].get('model_filename'))).name}/{c['test'].name}"
                                        f"/t{c['row'].get('n_threads')}",
                         test=c["test"], status="done" if c["ts"] else "failed", error=None,
                         values={"ts": tuple(c["ts"])} if c["ts"] else {})
            for key, c in merged.items()]


def load_side(path: Path) -> Side:
    path = Path(path)
    if path.is_dir():
        run = load(path)
        return Side(str(path), tuple(_edgebench_cells(run)), dict((run.header.profile or {}).get("thresholds") or {}),
                    {probe.device: run.machine(probe.device) for probe in run.devices if run.machine(probe.device)},
                    one_commit(run.rows()))
    if not path.is_file():
        raise ResultsError(f"{path}: no such run directory or file")
    return Side(str(path), tuple(_llama_bench_cells(path)), commit=one_commit(_llama_bench_rows(path)))
