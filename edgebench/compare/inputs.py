"""The two sides of a comparison, read from edgebench run directories or llama-bench output.

Each measured cell becomes a `MeasuredCell`: a key of everything that must be
equal for two cells to be comparable (device, model identity, test, threads,
engine settings) and one sample per timed repetition for each metric.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.compare.metrics import metric_values
from edgebench.errors import ResultsError
from edgebench.results.aggregate import rows_with_attempts
from edgebench.results.header import RunHeader
from edgebench.results.store import read_header
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
    # the llama.cpp commit its rows name (build_commit), where they name exactly one
    commit: str | None = None


def one_commit(rows) -> str | None:
    """The build_commit every row with one names, cut to 8 digits as compare-llama-bench.py shows it; None
    when none or several (or "unknown")."""
    found = {str(row.get("build_commit"))[:8] for row in rows if row.get("build_commit") not in (None, "", "unknown")}
    return found.pop() if len(found) == 1 else None


def _engine_key(row: dict, builds: dict | None = None, settings: dict | None = None) -> tuple:
    """(name, value) for each of the engine's compare keys: the row's field of that name, else the setting
    (see _settings) where there is one."""
    declared = engines.declared(row.get("engine") or "") or engines.declared(_FALLBACK_ENGINE)
    row = {**row, "system_info": (builds or {}).get((row.get("device"), row.get("engine")), row.get("system_info"))}
    found = {**(settings or {}), **row}
    return tuple((name, _hashable(found.get(name))) for name in declared.compare_keys)


def _hashable(value):
    return _Shown(json.dumps(value, sort_keys=True)) if isinstance(value, (list, tuple, dict)) else value


def _settings(facts, header: RunHeader) -> dict:
    """A cell's engine settings: what the cell recorded, else what its run's profile said (a run written
    before the engine recorded the setting stored it there), else the engine's declared default."""
    declared = engines.declared(facts.engine or "")
    if declared is None:
        return {}
    profiles = {None: header.profile or {}, **(header.ab.variants if header.ab else {})}
    stored = (profiles.get(facts.variant) or {}).get("engine") or {}
    if stored.get("name") != declared.name:
        stored = {}
    return {**declared.defaults(), **stored, **(facts.engine_options or {})}


# compare keys that describe the engine's build, not its settings: history puts builds on its x-axis
_BUILD_KEYS = ("system_info",)


def history_settings(row: dict, attempt) -> dict:
    """The engine settings that key a history series: the engine's compare keys without its build, and the
    threads as configured (a series spans engine builds; a change of settings starts another series)."""
    declared = engines.declared(row.get("engine") or "") or engines.declared(_FALLBACK_ENGINE)
    facts = attempt.facts
    own = engines.declared(facts.engine or "")
    found = {**(own.defaults() if own else {}), **(facts.engine_options or {}), **row}
    settings = {name: found.get(name) for name in declared.compare_keys if name not in _BUILD_KEYS}
    return {**settings, "n_threads": facts.n_threads}


def _builds(rows) -> dict:
    """(device, engine) -> the engine build seen there: a cell that failed before its engine reported
    anything ran on that same build, and must still meet its twin in the other run."""
    return {(row.get("device"), row.get("engine")): row["system_info"] for row in rows if row.get("system_info")}


def row_test(row: dict) -> TestSpec:
    if row.get("test") in QUALITY_KINDS:  # counted by its `quality:` block, not by the row's counts
        return parse_test(row["test"])
    return TestSpec(int(row.get("n_prompt") or 0), int(row.get("n_gen") or 0), int(row.get("n_depth") or 0),
                    int(row.get("batch") or 0))


def _edgebench_cells(path: Path, header: RunHeader) -> list[MeasuredCell]:
    cells = []
    found = rows_with_attempts(path)
    builds = _builds(row for _, row in found)
    for attempt, row in found:
        test = row_test(row)
        # a cell that did not finish (a timeout after one repetition, say) failed: its partial samples
        # are no measurement to hold the other side to
        values = metric_values(attempt.samples) if row["status"] == "done" else {}
        model = row.get("model_sha256") or row.get("model")
        threads = attempt.facts.n_threads  # as configured: a failed cell never reports how many "auto" came to
        cells.append(MeasuredCell(
            key=(row.get("device"), model, test.name, threads, row.get("engine"),
                 _engine_key(row, builds, _settings(attempt.facts, header))),
            label=f"{row.get('device')}/{row.get('model')}/{test.name}/t{threads or 'auto'}",
            test=test, status=row.get("status") or "unknown", error=row.get("error"), values=values))
    return cells


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
        key = (row.get("cpu_info"), model, test.name, row.get("n_threads"), "llama-bench", _engine_key(row))
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
        header = read_header(path)
        return Side(str(path), tuple(_edgebench_cells(path, header)),
                    dict((header.profile or {}).get("thresholds") or {}),
                    one_commit(row for _, row in rows_with_attempts(path)))
    if not path.is_file():
        raise ResultsError(f"{path}: no such run directory or file")
    return Side(str(path), tuple(_llama_bench_cells(path)), commit=one_commit(_llama_bench_rows(path)))
