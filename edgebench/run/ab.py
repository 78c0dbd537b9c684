"""`edgebench ab`: two variants of a profile, interleaved on one device in one run, then gated.

Measuring A then B in separate runs adds a run-to-run offset and thermal drift
that no test removes. Here every round measures both variants back to back,
alternating the order (AB, BA, AB, ...), each round as its own runner process
with one timed repetition after the warm-up, so rounds are independent samples
taken under the same conditions. Pairs whose verdict is still inconclusive get
more rounds, up to a cap, before the final word.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import yaml

from edgebench.compare.gate import GateReport, compare_cell
from edgebench.compare.inputs import MeasuredCell
from edgebench.compare.metrics import metric_values
from edgebench.compare.stats import ALPHA
from edgebench.config import parse_profile
from edgebench.config.engine import without_foreign_options
from edgebench.errors import ConfigError, ModelFileError
from edgebench.models.synth.spec import PREFIX as SYNTH_PREFIX
from edgebench.results.aggregate import run_rows
from edgebench.results.header import AbDesign
from edgebench.results.records import Sample
from edgebench.results.store import RunStore
from edgebench.run.cells import Cell
from edgebench.run.device_worker import DeviceWorker, Observer
from edgebench.run.execute import SharedRun

VARIANTS = ("A", "B")
# rounds added at a time to a pair still inconclusive: one AB and one BA keeps the order balanced
EXTRA_ROUNDS = 2


def variant_profile(profile, name: str, overrides: list[str], model: str | None):
    """The profile with `key.path=value` overrides (values read as YAML) and, optionally, one model."""
    data = {k: v for k, v in profile.to_dict().items() if k != "source"}
    data["repetitions"] = 1  # one timed repetition per round: each round is one independent sample
    given = []
    for override in overrides:
        path, sep, text = override.partition("=")
        if not sep or not path.strip():
            raise ConfigError(f"--{name.lower()} takes KEY=VALUE, e.g. engine.threads=1; got {override!r}",
                              file=profile.source, key=override)
        node = data
        *parents, leaf = path.strip().split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--{name.lower()} {override}: {key!r} is not a section",
                                  file=profile.source, key=path)
        node[leaf] = yaml.safe_load(text)
        given.append(path.strip())
    if isinstance(data.get("engine"), dict):
        # a variant on another engine keeps the profile's settings that engine takes; those it was given
        # here are checked as given
        data["engine"] = without_foreign_options(data["engine"], keep=tuple(p[len("engine."):] for p in given
                                                              if p.startswith("engine.")))
    if model:
        data["models"] = [command_line_model(model, f"--{name.lower()}-model")]
    where = f"{profile.source} with variant {name} ({' '.join(overrides + ([f'model={model}'] if model else []))})"
    return parse_profile(json.dumps(data), file=where)


def command_line_model(model: str, option: str) -> str:
    """A model given on the command line: `synthetic:SPEC` as it is, a file relative to the current
    folder (not the profile's, as a path inside the profile would be) and checked before anything runs."""
    if model.strip().startswith(SYNTH_PREFIX):
        return model
    path = os.path.abspath(os.path.expanduser(model))
    if not os.path.isfile(path):
        raise ModelFileError(f"{option} {model}: no such file ({path}; a path on the command line is relative "
                             f"to the current folder)")
    return path


@dataclass
class Pair:
    a: Cell
    b: Cell
    rounds: int = 0

    def cell(self, variant: str, round_no: int) -> Cell:
        base = self.a if variant == "A" else self.b
        return Cell(base.device, base.model, base.test, base.threads, label=f"{variant}{round_no}")

    @property
    def label(self) -> str:
        """The pair as the gate names it: what differs between A and B shows as `A → B`."""
        def either(a, b) -> str:
            return a if a == b else f"{a} → {b}"

        models = either(self.a.model.name, self.b.model.name)
        threads = either(f"t{self.a.threads or 'auto'}", f"t{self.b.threads or 'auto'}")
        return f"{self.a.device.name}/{self.a.test.name} ({models}, {threads})"


def plan_pairs(a, b, device) -> list[Pair]:
    if len(a.models) != len(b.models):
        raise ConfigError(f"variants A and B have {len(a.models)} and {len(b.models)} models; they are paired "
                          f"in order, so give both the same number", file=b.source, key="models")
    threads_a, threads_b = a.engine.threads or (None,), b.engine.threads or (None,)
    if len(threads_a) != len(threads_b):
        raise ConfigError("variants A and B sweep different numbers of thread counts; they are paired in order",
                          file=b.source, key="engine.threads")
    return [Pair(Cell(device, ma, test, ta), Cell(device, mb, test, tb))
            for ma, mb in zip(a.models, b.models)
            for ta, tb in zip(threads_a, threads_b)
            for test in a.tests]


class AbRun:
    def __init__(self, profile, variants: dict, device, results_root, thresholds: dict,
                 rounds: int = 7, max_rounds: int = 15, observer: Observer | None = None,
                 wait_for_lock: bool = True):
        self.variants, self.device = variants, device
        self.rounds, self.max_rounds = rounds, max(rounds, max_rounds)
        self.thresholds = {**variants["B"].thresholds, **thresholds}
        self.pairs = plan_pairs(variants["A"], variants["B"], device)
        design = AbDesign({k: v.to_dict() for k, v in variants.items()}, rounds, self.max_rounds)
        self.store = RunStore.create(results_root, profile=profile.to_dict(), devices={device.name: device.to_dict()},
                                     ab=design)
        self.run = SharedRun(variants["A"], self.store, observer or Observer(), wait_for_lock, {})
        self.run.variants = dict(variants)
        self.samples: dict[tuple[int, str], list[Sample]] = {}

    def execute(self) -> GateReport:
        worker = DeviceWorker(self.run, self.device, [])
        status = "interrupted"
        try:
            todo = list(range(len(self.pairs)))
            target = self.rounds
            while todo:
                for round_no in range(self.pairs[todo[0]].rounds + 1, target + 1):
                    for index in todo:
                        self.measure_round(worker, index, round_no)
                todo = [i for i in todo if self.inconclusive(i)] if target < self.max_rounds else []
                target = min(target + EXTRA_ROUNDS, self.max_rounds)
            status = "complete" if not self.run.failures else "failed"
        finally:
            worker.disconnect()
            self.store.finish(status, run_rows(self.store.path))
        return self.report()

    def measure_round(self, worker: DeviceWorker, index: int, round_no: int) -> None:
        pair = self.pairs[index]
        order = VARIANTS if round_no % 2 else VARIANTS[::-1]  # AB, BA, AB, ...: drift cancels out
        for variant in order:
            cell = pair.cell(variant, round_no)
            # a model that cannot be placed fails this round's cell; the next round tries again
            placed = worker.place(cell.model, [cell], full_disk_stops=False)
            if placed is None:
                continue
            model, remote = placed
            recorder = worker.measure(cell, model, remote, self.run.profile_for(cell).cooldown)
            if recorder:
                self.samples.setdefault((index, variant), []).extend(recorder.samples)
        pair.rounds = round_no

    def measured(self, index: int, variant: str) -> MeasuredCell:
        pair = self.pairs[index]
        cell = pair.a if variant == "A" else pair.b
        samples = self.samples.get((index, variant), [])
        return MeasuredCell(key=(index,), label=pair.label, test=cell.test, status="done" if samples else "failed",
                            error=None, values=metric_values(samples))

    def comparisons(self, index: int):
        base, cand = self.measured(index, "A"), self.measured(index, "B")
        return compare_cell(base, cand, self.thresholds) if base.values else []

    def inconclusive(self, index: int) -> bool:
        return any(c.verdict == "inconclusive" for c in self.comparisons(index))

    def report(self) -> GateReport:
        report = GateReport(base="A", cand="B", alpha=ALPHA)
        for index in range(len(self.pairs)):
            found = self.comparisons(index)
            if found:
                report.comparisons.extend(found)
            else:
                report.base_unmeasured.append(self.measured(index, "A").label)
        return report
