"""`edgebench bisect`: which llama.cpp commit between a good and a bad one made a device slower (Pinpoint's way).

1. Confirm the ends: an A/B of bad (B) against good (A) on the device, with the paired gate. Unless bad is
   worse beyond the threshold there is nothing to look for (exit 3).
2. Bisect the first-parent history after good up to bad. A commit that changes no build input cannot be the
   culprit and is left out up front. Each midpoint is built (the persistent build tree: incremental), installed
   and measured paired against the good build: "regressed" makes it the new bad end; "same", "not worse" or
   "improved" the new good end. The gate already measures an unsettled pair more rounds, up to the cap; a pair
   still inconclusive there goes to the end its estimate is nearer (said in the output). A commit that does
   not compile is skipped, as `git bisect skip` does: the nearest buildable one is tried instead.
3. The first bad commit, or, where skipped commits leave a range, every candidate in it.

Resumable: every measurement is an `ab` run under the results root, with `bisect.json` beside its rows; a
later bisect over the same range finds it there and measures it again only with `--fresh`. Every build is in
the build cache (a commit that did not compile too), so a second bisect builds nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from edgebench.errors import EdgebenchError
from edgebench.sweep.engine_refs import (
    Commit,
    describe,
    first_parent_commits,
    install_commit,
    pinned,
    touches_build_inputs,
)
from edgebench.toolchain.build_tree import BuildFailed

STEP_FILE = "bisect.json"
BAD, GOOD, UNBUILT = "bad", "good", "does not build"
_TO_GOOD = ("same", "not worse", "improved")


@dataclass
class Step:
    """One commit measured against the good end."""

    commit: str
    verdict: str  # the gate's verdict of B (this commit) against A (good)
    side: str  # BAD or GOOD
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    rounds: int
    run: str  # the ab run's folder
    by_estimate: bool = False  # inconclusive at the cap: the side its estimate is nearer
    reused: bool = False


@dataclass
class Outcome:
    good: Commit
    bad: Commit
    confirmed: Step
    first_bad: Commit | None = None  # None: skips leave a range (candidates) or the ends were not confirmed
    effect: Step | None = None
    candidates: list[Commit] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    builds: int = 0  # compiled now (a failed compile included)
    cached_builds: int = 0
    unbuildable: list[Commit] = field(default_factory=list)
    no_build_input: list[Commit] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        """Rounds measured now (a reused measurement's are not)."""
        return sum(s.rounds for s in self.steps if not s.reused)

    def to_json(self) -> dict:
        def commit(c: Commit | None):
            return None if c is None else {"commit": c.commit, "subject": c.subject, "date": c.date}

        return {"schema_version": 1, "kind": "edgebench-bisect", "good": commit(self.good), "bad": commit(self.bad),
                "confirmed": asdict(self.confirmed), "first_bad": commit(self.first_bad),
                "effect": asdict(self.effect) if self.effect else None,
                "candidates": [commit(c) for c in self.candidates], "steps": [asdict(s) for s in self.steps],
                "builds": self.builds, "cached_builds": self.cached_builds, "rounds": self.rounds,
                "unbuildable": [commit(c) for c in self.unbuildable],
                "no_build_input": [commit(c) for c in self.no_build_input]}


class Bisect:
    def __init__(self, profile, device, good: Commit, bad: Commit, test, metric: str, thresholds: dict, plan,
                 disturbance, results_root: Path, *, stored: Callable[[Path], None] | None = None,
                 fresh: bool = False, log: Callable[[str], None] = print):
        """`stored`: called with each measurement's run directory once it is written (`--db` loads it)."""
        self.profile, self.device, self.good, self.bad = profile, device, good, bad
        self.test, self.metric, self.thresholds = test, metric, thresholds
        self.plan, self.disturbance, self.results_root = plan, disturbance, Path(results_root)
        self.stored, self.fresh, self.log = stored, fresh, log
        self.outcome: Outcome | None = None
        self._good_profile = None
        self._good_installed = False

    # -- building -----------------------------------------------------------------------------------------

    def _ready(self, commit: Commit) -> bool:
        """`commit` built and installed, or measured before (then it was built, and is cached: a bisect run
        again neither builds nor installs it); False when it does not compile."""
        if self._stored(self._key(commit)) is not None:
            self.outcome.cached_builds += 1
            return True
        return self._install(commit)

    def _install(self, commit: Commit) -> bool:
        """Build and install `commit`; False when it does not compile."""
        try:
            built = install_commit(self.device, commit, self.log)
        except BuildFailed as failed:
            # a commit known not to build is an answer from the cache too
            if failed.cached:
                self.outcome.cached_builds += 1
            else:
                self.outcome.builds += 1
            self.log(f"{commit.short} does not build, skipped: {failed}")
            return False
        if built.built:
            self.outcome.builds += 1
        else:
            self.outcome.cached_builds += 1
        self._good_installed |= commit.commit == self.good.commit
        return True

    # -- measuring ----------------------------------------------------------------------------------------

    def _variant(self, commit: Commit):
        """The profile at `commit`, cut to the one test judged, one timed repetition a round (as ab's variants)."""
        from edgebench.sweep.ab import variant_profile

        at = pinned(self.profile, commit)
        return variant_profile(at, "B", [f"tests=[{self.test.name}]"], None)

    def _key(self, commit: Commit) -> dict:
        return {"profile": self.profile.name, "device": self.device.name, "test": self.test.name,
                "metric": self.metric, "good": self.good.commit, "commit": commit.commit,
                "thresholds": dict(self.thresholds), "max_rounds": self.plan.budget}

    def _stored(self, key: dict) -> Step | None:
        if self.fresh or not self.results_root.is_dir():
            return None
        for path in sorted(self.results_root.glob(f"*/{STEP_FILE}")):
            try:
                found = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if found.get("key") == key:
                return Step(**{**found["step"], "reused": True})
        return None

    def measure(self, commit: Commit) -> Step:
        key = self._key(commit)
        stored = self._stored(key)
        if stored is not None:
            self.log(f"{commit.short}: {stored.verdict} (measured before: {stored.run})")
            return stored
        from edgebench.sweep.ab import AbRun

        if not self._good_installed:  # the ends were measured before, so not installed in this bisect
            install_commit(self.device, self.good, self.log)
            self._good_installed = True
        variants = {"A": self._good_variant(), "B": self._variant(commit)}
        ab = AbRun(self.profile, variants, [self.device], self.results_root, self.thresholds, plan=self.plan,
                   disturbance=self.disturbance)
        report = ab.execute()[self.device.name]
        found = [c for c in report.comparisons if c.metric == self.metric and c.test == self.test.name]
        if not found or found[0].decision is None:
            raise EdgebenchError(f"{commit.short} against {self.good.short}: {self.metric} of {self.test.name} was "
                                 f"not measured on {self.device.name} (see {ab.store.path})")
        decision = found[0].decision
        side = BAD if decision.verdict == "regressed" else GOOD if decision.verdict in _TO_GOOD else ""
        step = Step(commit.commit, decision.verdict, side, decision.ratio, decision.ci_low, decision.ci_high,
                    decision.rounds or 0, str(ab.store.path))
        (ab.store.path / STEP_FILE).write_text(json.dumps({"key": key, "step": asdict(step)}, indent=2) + "\n")
        if self.stored is not None:
            self.stored(ab.store.path)
        self.log(f"{commit.short}: {step.verdict}, ratio {step.ratio:.3f} [{step.ci_low:.3f}, {step.ci_high:.3f}] "
                 f"in {step.rounds} rounds ({ab.store.path})")
        return step

    def _good_variant(self):
        if self._good_profile is None:
            from edgebench.sweep.ab import variant_profile

            self._good_profile = variant_profile(pinned(self.profile, self.good), "A",
                                                 [f"tests=[{self.test.name}]"], None)
        return self._good_profile

    # -- the search ---------------------------------------------------------------------------------------

    def run(self) -> Outcome:
        self.outcome = outcome = Outcome(self.good, self.bad, confirmed=None)  # type: ignore[arg-type]
        if self._stored(self._key(self.bad)) is not None:
            outcome.cached_builds += 2  # measured before, both ends were built then: the confirmation is reused
        else:
            for end in (self.good, self.bad):
                if not self._install(end):
                    raise EdgebenchError(f"the {'good' if end is self.good else 'bad'} end {end.short} "
                                         f"({end.subject}) does not build: name ends that do")
        outcome.confirmed = confirmed = self.measure(self.bad)
        outcome.steps.append(confirmed)
        if confirmed.side != BAD:
            return outcome
        repo = self.good.source
        history = [describe(repo, c) for c in first_parent_commits(repo, self.good.commit, self.bad.commit)]
        if not history or history[-1].commit != self.bad.commit:
            raise EdgebenchError(f"{self.bad.short} does not descend from {self.good.short} along first parents")
        inner = []
        for commit in history[:-1]:
            (inner if touches_build_inputs(repo, commit.commit) else outcome.no_build_input).append(commit)
        line = [*inner, self.bad]
        lo, hi, skipped = -1, len(line) - 1, set()
        effects = {len(line) - 1: confirmed}
        while True:
            open_ = [i for i in range(lo + 1, hi) if i not in skipped]
            if not open_:
                break
            middle = (lo + hi) / 2
            index = min(open_, key=lambda i: (abs(i - middle), i))
            commit = line[index]
            if not self._ready(commit):
                skipped.add(index)
                outcome.unbuildable.append(commit)
                continue
            step = self.measure(commit)
            if not step.side:
                step.side, step.by_estimate = self._nearer(step, confirmed), True
                self.log(f"{commit.short}: inconclusive at {step.rounds} rounds; its estimate is nearer the "
                         f"{step.side} end")
            outcome.steps.append(step)
            effects[index] = step
            if step.side == BAD:
                hi = index
            else:
                lo = index
        in_range = line[lo + 1:hi + 1]
        if len(in_range) == 1:
            outcome.first_bad, outcome.effect = line[hi], effects[hi]
        else:
            outcome.candidates, outcome.effect = in_range, effects[hi]
        return outcome

    @staticmethod
    def _nearer(step: Step, bad: Step) -> str:
        if step.ratio is None or bad.ratio is None:
            return BAD
        here, there = math.log(step.ratio), math.log(bad.ratio)
        return BAD if abs(here - there) < abs(here) else GOOD


def build_bound(commits: int) -> int:
    """The builds a bisect of a range of `commits` commits (good excluded, bad included) should need at most:
    ceil(log2 N) midpoints and the 2 ends. Commits left out for changing no build input leave room for a skip."""
    return math.ceil(math.log2(max(commits, 1))) + 2
