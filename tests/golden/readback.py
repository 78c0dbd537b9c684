"""How a golden run directory is read back: the one reading that make_golden.py stores as the expected
files and tests/test_golden.py compares with them.

Every edgebench name the golden tests use is imported here and nowhere else, so a refactor that moves
one of them changes this file, never the expected files.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

from edgebench.cli import main
from edgebench.compare.gate import GateReport, compare_rounds
from edgebench.compare.paired import SequentialPlan
from edgebench.compare.report import to_json
from edgebench.compare.stats import ALPHA
from edgebench.results.aggregate import run_rows
from edgebench.results.records import Sample
from edgebench.runner.testspec import parse_test

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"
RUNS = "runs"  # GOLDEN/runs/<kind>/: the run directories, as edgebench wrote them
EXPECTED = GOLDEN / "expected"

# every kind of run directory: the list, the two shards the merged run was made of, a real engine
# with default and with changed settings, and two written by edgebench at commit 2aee22c (older records:
# no system_info, no repack, no ab round)
KINDS = ("local", "ssh", "fleet", "ab", "shard-1", "shard-2", "merged", "resumed", "llama", "llama-tuned",
         "previous", "previous-llama")
SHOW_FORMATS = ("jsonl", "md", "csv")
# (base, candidate): equal runs, a previous version's run against this one's, runs with no cell in common,
# cells the candidate failed (with cells on one side only), cells the base failed, a shard against the
# whole, a resumed run, a real engine, and cells kept apart by every engine setting and by the engine build
COMPARE_PAIRS = (("local", "local"), ("previous", "local"), ("local", "ssh"), ("ssh", "fleet"), ("fleet", "fleet"),
                 ("shard-1", "merged"), ("resumed", "resumed"), ("llama", "llama"), ("llama", "llama-tuned"),
                 ("previous-llama", "llama"))
# what `compare --json` and `--markdown` write
COMPARE_FORMATS = ("json", "md")


@contextlib.contextmanager
def working_directory(path: Path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def quiet_cli(*args) -> tuple[int, str]:
    """edgebench's own entry point, with what it prints returned instead of shown."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in args])
    return code, out.getvalue()


def rows_text(run_dir: Path) -> str:
    # a text, not a list: key order and number spelling are part of the format
    return json.dumps(run_rows(run_dir), indent=1) + "\n"


def show_text(run_dir: Path, fmt: str, scratch: Path) -> str:
    out = scratch / f"show.{fmt}"
    code, printed = quiet_cli("show", run_dir, "--format", fmt, "-o", out)
    if code != 0:
        raise AssertionError(f"edgebench show {run_dir} --format {fmt} exited {code}: {printed}")
    return out.read_text()


def compare_texts(root: Path, base: str, cand: str, scratch: Path) -> tuple[int, dict[str, str]]:
    """`edgebench compare runs/BASE runs/CAND --json F --markdown F`, run in root so the reports name the
    runs the same wherever root is: the exit code and each report's text by format."""
    out = {fmt: scratch / f"{base}__{cand}.{fmt}" for fmt in COMPARE_FORMATS}
    for path in out.values():
        path.unlink(missing_ok=True)
    with working_directory(root):
        code, printed = quiet_cli("compare", f"{RUNS}/{base}", f"{RUNS}/{cand}", "--json", out["json"],
                                  "--markdown", out["md"])
    if not all(path.is_file() for path in out.values()):
        raise AssertionError(f"edgebench compare {base} {cand} did not write its reports (exit {code}): {printed}")
    return code, {fmt: path.read_text() for fmt, path in out.items()}


def compare_file(base: str, cand: str, fmt: str) -> Path:
    return EXPECTED / "compare" / f"{base}__{cand}.{fmt}"


def ab_gate_text(run_dir: Path) -> str:
    """The gate report of an `ab` run, judged again from what the run stored: B against A for each pair
    of cells, over their rounds in the order they were measured, as `ab --json` reports it (for an `ab`
    given no --threshold: the command line's thresholds are not stored)."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    thresholds = meta["ab"]["variants"]["B"].get("thresholds") or {}
    facts, finished = {}, {}
    for record in _jsonl(run_dir / "cells.jsonl"):
        facts.setdefault(record["cell"], record)  # the first record of a cell says what it is
        if record["state"] == "done":
            finished[record["cell"]] = record["attempt"]
    samples = {}
    for sample in _jsonl(run_dir / "samples.jsonl"):
        if finished.get(sample["cell"]) == sample.get("attempt", 1):
            samples.setdefault(sample["cell"], []).append(Sample.from_json(sample))
    # the k-th A and the k-th B cell of a round are one pair; a pair keeps its cells' ids without the round
    rounds: dict[int, dict[str, list[str]]] = {}
    for cell_id, fact in facts.items():  # in the order they were measured
        rounds.setdefault(fact["round"], {"A": [], "B": []})[fact["variant"]].append(cell_id)
    pairs: dict[tuple, dict[str, list[str]]] = {}
    for number in sorted(rounds):
        for a, b in zip(rounds[number]["A"], rounds[number]["B"]):
            pair = pairs.setdefault((a.split(":", 1)[1], b.split(":", 1)[1]), {"A": [], "B": []})
            pair["A"].append(a)
            pair["B"].append(b)
    report = GateReport(base="A", cand="B", alpha=ALPHA)
    plan = SequentialPlan(first=meta["ab"]["rounds"], last=max(meta["ab"]["rounds"], meta["ab"]["max_rounds"]))
    for cells in pairs.values():
        a, b = facts[cells["A"][0]], facts[cells["B"][0]]
        label = _pair_label(a, b)
        # round -> the round's timed sample, per variant: ab pairs the A and B of each round
        sides = [{facts[c]["round"]: samples[c][-1] for c in cells[v] if samples.get(c)} for v in ("A", "B")]
        # the rounds the run stopped at, judged as the run's last look (final): still open there is "not worse"
        # or inconclusive, as `ab` says at its end
        found = compare_rounds(label, parse_test(a["test"]), *sides, thresholds, plan, final=True) if sides[0] else []
        if found:
            report.comparisons.extend(found)
        else:
            report.base_unmeasured.append(label)
    report.device_codes = {name: report.exit_code() for name in meta["devices"]}
    return to_json(report, report.exit_code())


def _pair_label(a: dict, b: dict) -> str:
    def either(x, y) -> str:
        return x if x == y else f"{x} → {y}"

    models = either(a["model"], b["model"])
    threads = either(f"t{a['n_threads'] or 'auto'}", f"t{b['n_threads'] or 'auto'}")
    return f"{a['device']}/{a['test']} ({models}, {threads})"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
