"""Big.LITTLE clusters: cores grouped by core type (MIDR part from /proc/cpuinfo) and by what sysfs says of
each CPU's speed (`cpu_capacity`, the scheduler's relative speed, 1024 for the fastest core, and
`cpufreq/cpuinfo_max_freq`), so a profile can put its threads on the fastest cores.

Two clusters of one part at different speeds (a Snapdragon's 3+2 Cortex-A720s) stay apart; a CPU whose
sysfs value cannot be read keeps the "unavailable: ..." reason in its cluster instead of a guess.
"""

from __future__ import annotations

from typing import Any

from . import cpu_parts
from .base import denied, is_unavailable, unavailable

# the lines the cpu fact prints before /proc/cpuinfo: `sysfs cpu4 cpu_capacity 650`
SYSFS_PREFIX = "sysfs "
_SYSFS_KEYS = {"cpu_capacity": "capacity", "cpuinfo_max_freq": "max_khz"}


def split_sysfs(text: str) -> tuple[dict[int, dict[str, Any]], str]:
    """(CPU number -> {"capacity", "max_khz"}, the rest of the text) from the leading sysfs lines."""
    per_cpu: dict[int, dict[str, Any]] = {}
    lines = text.split("\n")
    taken = 0
    for line in lines:
        if not line.startswith(SYSFS_PREFIX):
            break
        taken += 1
        parts = line[len(SYSFS_PREFIX):].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("cpu") or not parts[0][3:].isdigit():
            raise ValueError(f"unreadable sysfs line {line[:80]!r}")
        key = _SYSFS_KEYS.get(parts[1])
        if key is not None:
            per_cpu.setdefault(int(parts[0][3:]), {})[key] = _sysfs_value(parts[2] if len(parts) > 2 else "")
    return per_cpu, "\n".join(lines[taken:])


def _sysfs_value(text: str) -> int | str:
    text = text.strip()
    if text.isdigit():
        return int(text)
    return unavailable("permission denied" if denied(text) else f"unreadable: {text[:80]}")


def group(processors: list[dict], sysfs: dict[int, dict[str, Any]]) -> list[dict] | None:
    """Cores grouped by core type and speed, in CPU order, the fastest marked; None where neither
    cpuinfo's part ids (x86 has none) nor sysfs tell the cores apart."""
    has_parts = "CPU part" in processors[0]
    if not has_parts and not sysfs:
        return None
    groups: dict[tuple, dict] = {}
    for index, p in enumerate(processors):
        cpu = _int(p.get("processor"))
        cpu = index if cpu is None else cpu
        speed = sysfs.get(cpu, {})
        capacity, max_khz = speed.get("capacity"), speed.get("max_khz")
        kind = _core_kind(p) if has_parts else {"part": None, "implementer": None, "name": None,
                                                  "description": None}
        key = (kind["part"], kind["implementer"], capacity, max_khz)
        cluster = groups.setdefault(key, {**kind, "count": 0, "cpus": []})
        cluster["count"] += 1
        cluster["cpus"].append(cpu)
        if sysfs:
            cluster.update(capacity=capacity, max_khz=max_khz)
    clusters = list(groups.values())
    if sysfs:
        _mark_fastest(clusters)
    return clusters


def _core_kind(p: dict) -> dict:
    implementer, part = _int(p.get("CPU implementer")), _int(p.get("CPU part"))
    if part is None:
        raise ValueError(f"unreadable CPU part {p.get('CPU part')!r}")
    return {"part": f"{part:#05x}", "implementer": f"{implementer:#04x}" if implementer is not None else None,
            "name": cpu_parts.core_name(implementer, part), "description": cpu_parts.describe(implementer, part)}


def _mark_fastest(clusters: list[dict]) -> None:
    """`fastest`: True for the cluster(s) of the highest capacity, or of the highest max frequency where the
    capacities do not differ (kernels without capacity-dmips say 1024 for every core). One cluster is the
    fastest by itself; where the speeds of several cannot be compared, each says None."""
    if len(clusters) == 1:
        clusters[0]["fastest"] = True
        return
    for key in ("capacity", "max_khz"):
        values = [c[key] for c in clusters]
        if all(isinstance(v, int) for v in values) and len(set(values)) > 1:
            for cluster in clusters:
                cluster["fastest"] = cluster[key] == max(values)
            return
    for cluster in clusters:
        cluster["fastest"] = None


def fastest_cpus(cpu: Any) -> list[int]:
    """The CPU numbers of the fastest cluster(s) in a probe's `cpu` fact; ValueError saying why where the
    probe cannot tell (a sentence fragment the caller puts in its message)."""
    if not isinstance(cpu, dict):
        reason = cpu[len("unavailable: "):] if is_unavailable(cpu) else "missing"
        raise ValueError(f"its probe has no CPU fact ({reason})")
    clusters = cpu.get("clusters")
    if not clusters or not any("fastest" in c for c in clusters):
        raise ValueError("its probe has no per-core speeds (no cpu_capacity or cpuinfo_max_freq in sysfs, "
                         "or a probe from before edgebench read them)")
    fastest = sorted(cpu_id for c in clusters if c.get("fastest") for cpu_id in c["cpus"])
    if not fastest:
        raise ValueError("its probe cannot rank its core clusters (their cpu_capacity and cpuinfo_max_freq "
                         "are unreadable)")
    return fastest


def _int(text: str | None) -> int | None:
    try:
        return int(text, 0) if text else None
    except ValueError:
        return None
