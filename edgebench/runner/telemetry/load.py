"""System load averages from proc/loadavg (1, 5 and 15 minutes)."""

from __future__ import annotations

from .base import Context, Problems, Reader, read_text, register

KEYS = ("load1", "load5", "load15")


@register("load", order=40)
def discover(ctx: Context) -> Reader:
    path = ctx.path("proc", "loadavg")
    problems = Problems(ctx.root)
    try:
        _parse(read_text(path))
    except (OSError, ValueError) as exc:
        problems.add(exc, path)
        raise problems.unavailable("not present: proc/loadavg")

    def read() -> dict:
        try:
            return _parse(read_text(path))
        except (OSError, ValueError):
            return {}

    return Reader(read)


def _parse(text: str) -> dict:
    fields = text.split()
    if len(fields) < 3:
        raise ValueError("loadavg has fewer than 3 fields: %r" % text)
    return {key: float(value) for key, value in zip(KEYS, fields)}
