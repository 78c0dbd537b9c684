"""`edgebench ab`: two variants of a profile, interleaved on each device in one run, then gated.

Measuring A then B in separate runs adds a run-to-run offset and thermal drift
that no test removes. Here every round measures both variants back to back,
alternating the order (AB, BA, AB, ...), each round as its own runner process
with one timed repetition after the warm-up. A round is the unit of evidence:
its B against its A (compare/paired.py). The rounds are looked at after
`first` and then every `step` rounds; a pair stops as soon as it is settled
(different or same) and at the round budget at the latest. A round that steal
time or other runnable tasks disturbed (sweep/disturbance.py) is measured again after a cool-off. Every device of
a fleet runs its own A/B, up to `parallel` at a time, and gets its own verdict.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import yaml

from edgebench.compare.gate import GateReport, compare_rounds
from edgebench.compare.paired import SequentialPlan
from edgebench.config import parse_profile
from edgebench.config.engine import without_foreign_options
from edgebench.errors import ConfigError, ModelFileError
from edgebench.models.synth.spec import PREFIX as SYNTH_PREFIX
from edgebench.results.aggregate import attempt_rows
from edgebench.results.header import AbDesign
from edgebench.results.records import Sample
from edgebench.results.store import RunStore
from edgebench.sweep.cells import Cell
from edgebench.sweep.device_worker import DeviceWorker, Observer
from edgebench.sweep.disturbance import Disturbance
from edgebench.sweep.execute import SharedRun

VARIANTS = ("A", "B")
DEFAULT_PLAN = SequentialPlan()
DEFAULT_LIMITS = Disturbance()


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
    # round number -> variant -> the round's timed sample (of its latest, undisturbed-if-possible measurement)
    samples: dict[int, dict[str, Sample]] = field(default_factory=dict)
    flagged: list[str] = field(default_factory=list)  # every disturbed measurement of a round, and what followed

    def cell(self, variant: str, round_no: int) -> Cell:
        base = self.a if variant == "A" else self.b
        return Cell(base.device, base.model, base.test, base.threads, variant=variant, round=round_no)

    @property
    def label(self) -> str:
        """The pair as the gate names it: what differs between A and B shows as `A → B`."""
        def either(a, b) -> str:
            return a if a == b else f"{a} → {b}"

        models = either(self.a.model.name, self.b.model.name)
        threads = either(f"t{self.a.threads or 'auto'}", f"t{self.b.threads or 'auto'}")
        return f"{self.a.device.name}/{self.a.test.name} ({models}, {threads})"

    def side(self, variant: str) -> dict[int, Sample]:
        """Round -> sample of one variant."""
        return {r: by[variant] for r, by in self.samples.items() if variant in by}


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
    def __init__(self, profile, variants: dict, devices: list, results_root, thresholds: dict,
                 plan: SequentialPlan = DEFAULT_PLAN, disturbance: Disturbance = DEFAULT_LIMITS,
                 repeat_disturbed: int = 1, parallel: int = 1, observer: Observer | None = None,
                 wait_for_lock: bool = True):
        self.variants, self.devices, self.plan = variants, list(devices), plan
        self.disturbance, self.repeat_disturbed, self.parallel = disturbance, repeat_disturbed, max(1, parallel)
        self.thresholds = {**variants["B"].thresholds, **thresholds}
        self.pairs = {d.name: plan_pairs(variants["A"], variants["B"], d) for d in self.devices}
        design = AbDesign({k: v.to_dict() for k, v in variants.items()}, plan.first, plan.budget,
                          self.thresholds, plan.alpha)
        self.store = RunStore.create(results_root, profile=profile.to_dict(),
                                     devices={d.name: d.to_dict() for d in self.devices}, ab=design)
        self.run = SharedRun(variants["A"], self.store, observer or Observer(), wait_for_lock, {})
        self.run.variants = dict(variants)

    def execute(self) -> dict[str, GateReport]:
        """Each device's report, by device name."""
        status = "interrupted"
        try:
            with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="ab") as pool:
                futures = [pool.submit(self.run_device, device) for device in self.devices]
                try:
                    while not all(f.done() for f in futures):
                        wait(futures, timeout=0.5)  # short waits keep the main thread open to Ctrl-C
                except KeyboardInterrupt:
                    self.run.cancel.set()
                    wait(futures)
                    raise
                for future in futures:
                    future.result()
            status = "complete" if not self.run.failures else "failed"
        finally:
            self.store.finish(status, attempt_rows(self.store.records.attempts().values()))
        return {d.name: self.report(d.name) for d in self.devices}

    def run_device(self, device) -> None:
        worker = DeviceWorker(self.run, device, [])
        pairs = self.pairs[device.name]
        try:
            todo = list(pairs)
            for look in self.plan.looks:
                for round_no in range(todo[0].rounds + 1, look + 1):
                    for pair in todo:
                        self.measure_round(worker, pair, round_no)
                todo = [p for p in todo if self.unsettled(p)]
                if not todo:
                    break
        finally:
            worker.close()

    def measure_round(self, worker: DeviceWorker, pair: Pair, round_no: int) -> None:
        order = VARIANTS if round_no % 2 else VARIANTS[::-1]  # AB, BA, AB, ...: drift cancels out
        for repeat in range(self.repeat_disturbed + 1):
            got = {}
            for variant in order:
                cell = pair.cell(variant, round_no)
                # a model that cannot be placed fails this round's cell; the next round tries again
                placed = worker.place(cell.model, [cell], full_disk_stops=False)
                if placed is None:
                    continue
                model, remote = placed
                recorder = worker.measure(cell, model, remote, self.run.profile_for(cell).cooldown)
                if recorder and recorder.samples:
                    got[variant] = recorder.samples[-1]
            pair.samples[round_no] = got
            why = self.disturbance.why(got.values())
            if why is None:
                break
            # still disturbed after every repeat: the disturbance lasts, it is the device's state now, and the
            # pairing within the round is what protects the verdict from it
            again = repeat < self.repeat_disturbed
            wait = self.disturbance.cool_off_s
            then = (f"measured again after {wait:g} s" if wait else "measured again") if again else \
                "kept, still disturbed"
            pair.flagged.append(f"round {round_no} ({why}; {then})")
            # the burst that disturbed it may still be on: measured again at once, it would be disturbed again
            if again and self.run.cancel.wait(wait):
                break
        pair.rounds = round_no

    def comparisons(self, pair: Pair, final: bool | None = None):
        a, b = pair.side("A"), pair.side("B")
        return compare_rounds(pair.label, pair.a.test, a, b, self.thresholds, self.plan, final=final) if a else []

    def unsettled(self, pair: Pair) -> bool:
        found = self.comparisons(pair)
        return not found or any(c.verdict in ("unknown", "inconclusive") for c in found)

    def report(self, device: str) -> GateReport:
        report = GateReport(base="A", cand="B", alpha=self.plan.alpha)
        for pair in self.pairs[device]:
            # a pair stops at its budget, or short of it when rounds failed to measure or the device went down:
            # either way no more rounds come, so a metric still open is "not worse" or inconclusive now
            found = self.comparisons(pair, final=True)
            if found:
                report.comparisons.extend(found)
            else:
                report.base_unmeasured.append(pair.label)
            if pair.flagged:
                report.disturbed[pair.label] = list(pair.flagged)
        return report

