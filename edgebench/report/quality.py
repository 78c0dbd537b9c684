"""Quality against speed, per device: one point per model (its quant), KLD (or PPL where no reference
was given) against the model's generation speed on that device, with the best choices marked: the
models no other beats on both speed and quality (the Pareto frontier)."""

from __future__ import annotations

from edgebench.compare.inputs import row_test
from edgebench.report import svg

# which speed a quant is chosen by, in order of preference: generation, then prompt processing
_SPEED_KINDS = ("tg", "pp+tg", "pp")


def frontier(points: list[tuple[float, float]]) -> list[bool]:
    """For each (speed, loss) point, whether no other point is at least as fast and at least as good,
    and better in one of the two."""
    return [not any(sx >= x and sy <= y and (sx, sy) != (x, y) for sx, sy in points) for x, y in points]


def _speed(rows: list[dict], device: str, model: str) -> tuple[float, str] | None:
    for kind in _SPEED_KINDS:
        found = [r for r in rows if r["device"] == device and r["model"] == model and row_test(r).kind == kind
                 and not r["n_depth"]]
        if found:
            best = sorted(found, key=lambda r: r["test"])[0]
            return best["avg_ts"], best["test"]
    return None


def quality_plots(rows: list[dict]) -> list[tuple[str, str]]:
    """(chart, caption) per device that measured quality and speed of the same models."""
    measured = [r for r in rows if r["status"] == "done" and r["avg_ts"]]
    charts = []
    for device in sorted({r["device"] for r in measured if r["ppl"] is not None}):
        scored = [r for r in measured if r["device"] == device and r["ppl"] is not None]
        by_kld = any(r["kld_mean"] is not None for r in scored)
        metric, label = ("kld_mean", "mean KLD against the reference") if by_kld else ("ppl", "perplexity")
        points, tests = [], set()
        for row in scored:
            speed = _speed(measured, device, row["model"])
            if row[metric] is None or speed is None:
                continue
            points.append((speed[0], row[metric], row["model"]))
            tests.add(speed[1])
        if not points:
            continue
        marked = frontier([(x, y) for x, y, _ in points])
        chart = svg.scatter_chart(f"{device}: quality against speed", [(x, y, name, m) for (x, y, name), m
                                                                      in zip(points, marked)],
                                  f"{'/'.join(sorted(tests))} tokens/s", f"{label} (lower is better)")
        best = ", ".join(name for (_, _, name), m in zip(points, marked) if m)
        charts.append((chart, f"best choices (nothing is both faster and closer to the reference): {best}"))
    return charts
