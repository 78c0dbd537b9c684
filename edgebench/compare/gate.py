"""Base against candidate: match cells, decide each metric, and say what the exit code is.

Verdicts: regressed, improved, same (equal within the threshold both ways), not worse (a change of the
threshold toward worse is ruled out, one toward better is not), inconclusive, and failed.

Exit codes: 0 no regression (improved, same, not worse); 1 a regression (or a cell the candidate failed to
measure where the base did); 2 inconclusive, unless told to count that as a
pass or a failure; 3 the gate could not run: nothing was compared (or, raised
elsewhere, the harness itself failed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgebench.compare.inputs import MeasuredCell, Side
from edgebench.compare.metrics import METRICS
from edgebench.compare.paired import SequentialPlan, decide_paired
from edgebench.compare.point import decide_point
from edgebench.compare.stats import ALPHA, Decision, decide
from edgebench.compare.thresholds import threshold_for
from edgebench.errors import ResultsError
from edgebench.results.order_stats import median

EXIT_PASS, EXIT_REGRESSED, EXIT_INCONCLUSIVE, EXIT_NOTHING_COMPARED = 0, 1, 2, 3
INCONCLUSIVE_POLICIES = {"exit2": EXIT_INCONCLUSIVE, "pass": EXIT_PASS, "fail": EXIT_REGRESSED}


@dataclass(frozen=True)
class Comparison:
    label: str
    test: str
    metric: str
    unit: str
    threshold: float
    base_median: float | None
    cand_median: float | None
    decision: Decision | None  # None when one side has no samples
    verdict: str  # the decision's verdict, or "failed" when the candidate did not measure the cell


@dataclass
class GateReport:
    base: str
    cand: str
    alpha: float
    comparisons: list[Comparison] = field(default_factory=list)
    only_base: list[str] = field(default_factory=list)
    only_cand: list[str] = field(default_factory=list)
    # matched, but the base has no samples to hold the candidate to (it failed there)
    base_unmeasured: list[str] = field(default_factory=list)
    # only_base label -> the engine settings or build that kept it from its candidate twin
    engine_differs: dict[str, str] = field(default_factory=dict)
    # ab: label -> "round 3 (steal 7.1% > 5%)", ... the rounds flagged as disturbed (repeated or left out)
    disturbed: dict[str, list[str]] = field(default_factory=dict)
    # ab over a fleet: device -> its own exit code
    device_codes: dict[str, int] = field(default_factory=dict)
    # the llama.cpp commits of the two sides, where known (8 hex digits, as compare-llama-bench.py names them)
    base_commit: str | None = None
    cand_commit: str | None = None

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.comparisons)

    def nothing_compared(self) -> str | None:
        """Why not a single metric was judged, or None when some were. A gate that compared nothing
        must not pass: in CI that is a green build with no measurement behind it."""
        if self.comparisons:
            return None
        if self.base_unmeasured:
            return (f"the base ({self.base}) has no samples for any of the {len(self.base_unmeasured)} cell(s) "
                    f"both sides ran: it failed to measure them")
        if self.only_base or self.only_cand:
            return (f"no cell of {self.cand} matches a cell of {self.base} (device, model, test, threads and "
                    f"engine settings must all be equal)")
        return f"neither {self.base} nor {self.cand} has a single cell"

    def exit_code(self, inconclusive: str = "exit2") -> int:
        if self.nothing_compared():
            return EXIT_NOTHING_COMPARED
        if self.count("regressed") or self.count("failed"):
            return EXIT_REGRESSED
        if self.count("inconclusive"):
            return INCONCLUSIVE_POLICIES[inconclusive]
        return EXIT_PASS


def compare_cell(base: MeasuredCell, cand: MeasuredCell, thresholds: dict, alpha: float = ALPHA,
                 seed: int = 0) -> list[Comparison]:
    found = []
    for name, metric in METRICS.items():
        a, b = base.values.get(name), cand.values.get(name)
        if not a:
            continue  # the base never had this metric (no sensor, other engine): nothing to hold to
        if base.test.quality and not metric.deterministic:
            continue  # a quality test's one timed pass is shown, not gated: its scores are what it measures
        threshold = threshold_for(thresholds, name, base.test.name, base.test.kind)
        if metric.deterministic:
            decision = decide_point(a[-1], b[-1], metric.higher_is_better, threshold) if b else None
        else:
            decision = decide(a, b, metric.higher_is_better, threshold, alpha=alpha, seed=seed) if b else None
        found.append(Comparison(base.label, base.test.name, name, metric.unit, threshold, median(a),
                                median(b or ()), decision, decision.verdict if decision else "failed"))
    return found


def compare_rounds(label: str, test, base_rounds: dict, cand_rounds: dict, thresholds: dict,
                   plan: SequentialPlan, seed: int = 0, final: bool | None = None) -> list[Comparison]:
    """Paired comparisons of an A/B pair: `base_rounds` and `cand_rounds` map a round number to its sample;
    a metric is judged over the rounds where both sides have it. `final`: no more rounds come (see
    decide_paired)."""
    found = []
    rounds = sorted(set(base_rounds) & set(cand_rounds))
    for name, metric in METRICS.items():
        pairs = [(metric.from_sample(base_rounds[r]), metric.from_sample(cand_rounds[r])) for r in rounds]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        if not pairs:
            continue
        a, b = [p[0] for p in pairs], [p[1] for p in pairs]
        threshold = threshold_for(thresholds, name, test.name, test.kind)
        decision = decide_paired(a, b, metric.higher_is_better, threshold, plan, seed=seed, final=final)
        found.append(Comparison(label, test.name, name, metric.unit, threshold, median(a), median(b), decision,
                                decision.verdict))
    return found


def fleet_exit_code(codes: dict[str, int]) -> int:
    """One exit code for a fleet's verdicts, one per device: 1 when any device regressed, else 3 when any
    could not be judged, else 2 when any was inconclusive, else 0."""
    for code in (EXIT_REGRESSED, EXIT_NOTHING_COMPARED, EXIT_INCONCLUSIVE):
        if code in codes.values():
            return code
    return EXIT_PASS


def different_machines(base: Side, cand: Side) -> list[str]:
    """Each device both sides name whose probes say it is another machine (CPU model, cores, RAM), with
    what differs. A side without probes (llama-bench output) has nothing to hold the other to."""
    found = []
    for device in sorted(set(base.machines) & set(cand.machines)):
        differs = base.machines[device].differences(cand.machines[device])
        if differs:
            found.append(f"{device}: {', '.join(differs)}")
    return found


def check_same_machines(base: Side, cand: Side) -> None:
    differs = different_machines(base, cand)
    if differs:
        raise ResultsError(f"{base.source} and {cand.source} ran on different machines under the same device "
                           f"name ({'; '.join(differs)}): the comparison would measure the machines, not the "
                           f"change; give --allow-different-devices to compare them anyway")


def compare_sides(base: Side, cand: Side, cli_thresholds: dict | None = None, alpha: float = ALPHA,
                  allow_different_devices: bool = False) -> GateReport:
    """The gate's report of cand against base; refused when a device is another machine on each side,
    unless allowed."""
    if not allow_different_devices:
        check_same_machines(base, cand)
    thresholds = {**cand.thresholds, **(cli_thresholds or {})}
    report = GateReport(base.source, cand.source, alpha, base_commit=base.commit, cand_commit=cand.commit)
    cand_by_key = {c.key: c for c in cand.cells}
    base_keys = {c.key for c in base.cells}
    for cell in base.cells:
        other = cand_by_key.get(cell.key)
        if other is None:
            report.only_base.append(cell.label)
        elif cell.values:
            report.comparisons.extend(compare_cell(cell, other, thresholds, alpha))
        else:
            report.base_unmeasured.append(cell.label)
    report.only_cand = [c.label for c in cand.cells if c.key not in base_keys]
    for cell in base.cells:
        if cell.label in report.only_base and (why := engine_difference(cell, cand.cells)):
            report.engine_differs[cell.label] = why
    return report


def engine_difference(cell: MeasuredCell, others) -> str | None:
    """Why a cell with a twin of the same device, model, test and threads is still not comparable:
    the engine settings or build that differ (a user sees "not matched" and must learn why)."""
    for other in others:
        if other.key[:-1] == cell.key[:-1] and other.key[-1] != cell.key[-1]:
            return "; ".join(f"{name} {a!r} vs {b!r}" for (name, a), (_, b) in zip(cell.key[-1], other.key[-1])
                             if a != b)
    return None
