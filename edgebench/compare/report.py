"""A gate report for people (terminal, pull-request markdown) and for machines (JUnit XML, JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict
from xml.etree import ElementTree as ET

from edgebench.compare.gate import GateReport
from edgebench.results.export import markdown_table

HEADER = ["cell", "metric", "base", "candidate", "ratio [95% CI]", "p", "threshold", "verdict"]
# every verdict, in the order the summary counts them
VERDICTS = ("regressed", "failed", "inconclusive", "improved", "same", "not worse")
_MARK = {"regressed": "❌ regressed", "failed": "❌ failed", "improved": "✅ improved", "same": "same",
         "not worse": "not worse",
         "inconclusive": "⚠️ inconclusive"}


def _num(value, digits=2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def header(report: GateReport) -> list[str]:
    """HEADER, with each side's column naming its llama.cpp commit where known (compare-llama-bench.py's
    `t/s 51beffa3` columns)."""
    base = f"base {report.base_commit}" if report.base_commit else "base"
    cand = f"candidate {report.cand_commit}" if report.cand_commit else "candidate"
    return [HEADER[0], HEADER[1], base, cand, *HEADER[4:]]


def sides(report: GateReport) -> str:
    """`base` → `candidate`, each with its commit where known and not already in its name."""
    def named(name: str, commit: str | None) -> str:
        return f"{name} ({commit})" if commit and commit not in name else name

    return f"`{named(report.base, report.base_commit)}` → `{named(report.cand, report.cand_commit)}`"


def table_rows(report: GateReport, marks: bool = False) -> list[list[str]]:
    rows = []
    for c in report.comparisons:
        d = c.decision
        ratio = f"{d.ratio:.3f} [{d.ci_low:.3f}, {d.ci_high:.3f}]" if d else ""
        rows.append([c.label, f"{c.metric} ({c.unit})", _num(c.base_median), _num(c.cand_median), ratio,
                     f"{d.p_value:.4f}" if d else "", f"{c.threshold:.0%}",
                     _MARK.get(c.verdict, c.verdict) if marks else c.verdict])
    return rows


def summary_line(report: GateReport) -> str:
    why = report.nothing_compared()
    if why:
        return f"0 comparisons: nothing was compared: {why}"
    counts = ", ".join(f"{report.count(v)} {v}" for v in VERDICTS
                       if report.count(v))
    return f"{len(report.comparisons)} comparisons: {counts or 'none'}"


def unmatched_lines(report: GateReport) -> list[str]:
    lines = [f"only in base (not run by the candidate): {label}" if label not in report.engine_differs else
             f"not the same experiment: {label}: {report.engine_differs[label]}" for label in report.only_base]
    lines += [f"only in candidate (no base to compare with): {label}" for label in report.only_cand]
    lines += [f"not compared (the base failed to measure it): {label}" for label in report.base_unmeasured]
    return lines


def device_lines(report: GateReport) -> list[str]:
    """An A/B run's disturbed rounds, then each device's own verdict (exit code) when there are several."""
    lines = [f"disturbed: {label}: {', '.join(rounds)}" for label, rounds in report.disturbed.items()]
    if len(report.device_codes) > 1:
        lines += [f"device {name}: exit {code} ({_DEVICE_VERDICT.get(code, 'error')})"
                  for name, code in report.device_codes.items()]
    return lines


_DEVICE_VERDICT = {0: "ok", 1: "regressed", 2: "inconclusive", 3: "not judged"}


def notes(report: GateReport) -> list[str]:
    """Why each inconclusive verdict is one, once per distinct reason."""
    seen = []
    for c in report.comparisons:
        if c.verdict == "inconclusive" and c.decision and c.decision.reason not in seen:
            seen.append(c.decision.reason)
    return seen


def to_markdown(report: GateReport) -> str:
    lines = ["### edgebench regression gate", "", f"{sides(report)}: {summary_line(report)}", ""]
    lines += markdown_table(header(report), table_rows(report, marks=True))
    extra = unmatched_lines(report) + [f"inconclusive: {n}" for n in notes(report)] + device_lines(report)
    if extra:
        lines += [""] + [f"- {line}" for line in extra]
    paired = any(c.decision and c.decision.method == "paired" for c in report.comparisons)
    lines += ["", f"Rule: one-sided Wilcoxon signed-rank test of each round's log(B/A), alpha {report.alpha} split "
                  f"over the looks, and a Hodges-Lehmann estimate of at least the threshold; same when a change "
                  f"of the threshold is ruled out both ways, not worse when only toward worse; ratio = B / A with "
                  f"a 95% bootstrap interval." if paired else
              f"Rule: one-sided exact Mann-Whitney p ≤ {report.alpha} and a Hodges-Lehmann shift of at least "
              f"the threshold; same when the 95% bootstrap interval of the ratio lies within the threshold both "
              f"ways, not worse when only on the worse side; ratio = candidate / base."]
    return "\n".join(lines) + "\n"


def to_junit(report: GateReport) -> str:
    suite = ET.Element("testsuite", name="edgebench.compare", tests=str(len(report.comparisons)),
                       failures=str(report.count("regressed") + report.count("failed")),
                       skipped=str(report.count("inconclusive")))
    if report.base_commit or report.cand_commit:
        properties = ET.SubElement(suite, "properties")
        for name, value in (("base_commit", report.base_commit), ("candidate_commit", report.cand_commit)):
            if value:
                ET.SubElement(properties, "property", name=name, value=value)
    why = report.nothing_compared()
    if why:  # a suite of no tests reads as a pass
        suite.set("tests", "1")
        suite.set("errors", "1")
        case = ET.SubElement(suite, "testcase", classname="edgebench.compare", name="nothing compared")
        ET.SubElement(case, "error", message=f"nothing was compared: {why}", type="nothing-compared")
    for c in report.comparisons:
        case = ET.SubElement(suite, "testcase", classname=c.label, name=c.metric)
        d = c.decision
        base, cand = header(report)[2:4]
        text = (f"{c.metric}: {base} {_num(c.base_median)} {c.unit}, {cand} {_num(c.cand_median)} {c.unit}"
                + (f", ratio {d.ratio:.3f} [{d.ci_low:.3f}, {d.ci_high:.3f}], p {d.p_value:.4f}: {d.reason}"
                   if d else ": the candidate has no samples"))
        if c.verdict in ("regressed", "failed"):
            ET.SubElement(case, "failure", message=f"{c.verdict}: {text}", type=c.verdict).text = text
        elif c.verdict == "inconclusive":
            ET.SubElement(case, "skipped", message=text)
        else:
            ET.SubElement(case, "system-out").text = f"{c.verdict}: {text}"
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def to_json(report: GateReport, exit_code: int) -> str:
    comparisons = []
    for c in report.comparisons:
        entry = asdict(c)
        entry["decision"] = asdict(c.decision) if c.decision else None
        comparisons.append(entry)
    return json.dumps({"schema_version": 1, "kind": "edgebench-compare", "base": report.base, "candidate": report.cand,
                       # the llama.cpp commits, where the sides name them (absent otherwise)
                       **{key: value for key, value in (("base_commit", report.base_commit),
                                                        ("candidate_commit", report.cand_commit)) if value},
                       "alpha": report.alpha, "exit_code": exit_code, "nothing_compared": report.nothing_compared(),
                       "comparisons": comparisons,
                       "only_base": report.only_base, "only_candidate": report.only_cand,
                       "base_unmeasured": report.base_unmeasured, "disturbed": report.disturbed,
                       "devices": report.device_codes}, indent=2) + "\n"
