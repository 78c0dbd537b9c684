"""Which stored runs calibrated a plan, what each told, and which were left out and why (text and JSON)."""

from __future__ import annotations

from collections import Counter

from edgebench.plan.calibrate import Calibration
from edgebench.plan.fit import DeviceBudget


def _ts(v: float) -> str:
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def calibration_lines(budgets: list[DeviceBudget]) -> list[str]:
    lines = []
    for b in budgets:
        cal = b.calibration
        if cal is None or not (cal.tg or cal.pp or cal.ignored):
            continue
        used = len(cal.tg) + len(cal.pp)
        lines.append(f"{b.name}: calibrated by {used} cell(s), the newest undisturbed one per model and test:" if used
                     else f"{b.name}: no stored cell calibrates it:")
        fit = cal.tg_fit
        for p in cal.tg:
            lines.append(f"  results/{p.run} {p.model} {p.test}: {_ts(p.ts)} t/s, {100 * p.reads_share:.0f}% of "
                         f"its cost reads -> {fit.role(p)}")
        for p in cal.pp:
            lines.append(f"  results/{p.run} {p.model} {p.test}: {_ts(p.ts)} t/s -> FLOPS")
        if fit is not None:
            lines.append(f"  tg: {fit.bandwidth / 1e9:.1f} GB/s, for reads and fixed work alike (the fixed work's "
                         f"constants were fitted so)")
        lines.extend(_ignored_lines(cal))
    return lines


def _ignored_lines(cal: Calibration) -> list[str]:
    superseded = [i for i in cal.ignored if i.reason.startswith("superseded")]
    lines = [f"  ignored results/{i.run} {i.model} {i.test}: {i.reason}" for i in cal.ignored if i not in superseded]
    if superseded:
        tests = Counter(f"{i.model} {i.test}" for i in superseded)
        lines.append(f"  ignored {len(superseded)} older cell(s) of a model and test measured again later: "
                     + ", ".join(f"{name} x{n}" for name, n in tests.items()))
    return lines


def calibration_json(cal: Calibration | None) -> dict | None:
    if cal is None:
        return None
    fit = cal.tg_fit
    return {
        "tg": [{"run": p.run, "model": p.model, "test": p.test, "ts": p.ts, "reads_bytes": p.reads,
                "fixed_work_bytes": p.fixed, "used": p in fit.used, "role": fit.role(p)}
               for p in cal.tg],
        "pp": [{"run": p.run, "model": p.model, "test": p.test, "ts": p.ts, "flops": p.flops} for p in cal.pp],
        "bandwidth_bytes_s": fit.bandwidth if fit else None,
        "fixed_work_bytes_s": fit.fixed_rate if fit else None,
        "ignored": [{"run": i.run, "model": i.model, "test": i.test, "reason": i.reason} for i in cal.ignored],
    }
