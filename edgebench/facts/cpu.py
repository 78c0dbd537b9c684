"""The CPU: model, core counts, big.LITTLE clusters (cpu_clusters.py), SIMD features, max frequency per
policy."""

from __future__ import annotations

import re

from .base import denied, fact, key_values, unavailable
from .cpu_clusters import group, split_sysfs

# The SIMD features llama.cpp-style kernels dispatch on, and so the ones a build for the device switches
# on (edgebench/toolchain/target.py). `flags` is x86's line, `Features` arm64's; asimddp is the
# dot-product extension ("dotprod"). ggml's GGML_AVX512 needs all of f, cd, vl, dq and bw.
FEATURES_OF_INTEREST = {
    "flags": ("x86", ("sse4_2", "avx", "avx2", "bmi2", "fma", "f16c", "avx_vnni", "avx512f", "avx512cd",
                      "avx512vl", "avx512dq", "avx512bw", "avx512vbmi", "avx512_vnni", "avx512_bf16")),
    "Features": ("arm", ("asimd", "asimdhp", "asimddp", "fphp", "i8mm", "bf16", "sve", "sve2")),
}


# `root` is empty on a device; a test points it at a fixture tree (tests/fixtures/sysfs/). echo, not printf,
# for the sysfs lines: mksh has no printf builtin. A file that is absent prints nothing (not a core of that
# kind of kernel); one that cannot be read prints cat's complaint, which the parser turns into "unavailable".
@fact("cpu", """
n=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null)
printf 'nproc=%s\\n' "$n"
for d in "$root"/sys/devices/system/cpu/cpu[0-9]*; do
  [ -d "$d" ] || continue
  for f in "$d/cpu_capacity" "$d/cpufreq/cpuinfo_max_freq"; do
    [ -e "$f" ] && echo "sysfs ${d##*/} ${f##*/} $(cat "$f" 2>&1)"
  done
done
cat "$root"/proc/cpuinfo
""", argument="root")
def parse_cpu(stdout: str, exit_code: int) -> dict:
    first, _, rest = stdout.partition("\n")
    sysfs, cpuinfo = split_sysfs(rest)
    online = first.partition("=")[2].strip()
    blocks = _blocks(cpuinfo)
    processors = [b for b in blocks if "processor" in b]
    # Pi and older ARM kernels put board lines (Model, Hardware, Revision) in a trailing block
    board = {k: v for b in blocks if "processor" not in b for k, v in b.items()}
    if not processors:
        raise ValueError("no processor entries in /proc/cpuinfo")

    isa, features = _features(processors)
    clusters = group(processors, sysfs)
    return {
        "model": _model(processors, board, clusters),
        "isa": isa,
        "logical_cores": len(processors),
        "physical_cores": _physical_cores(processors),
        "online_cores": int(online) if online.isdigit() else None,
        "clusters": clusters,
        "features": features,
    }


def _blocks(cpuinfo: str) -> list[dict[str, str]]:
    return [key_values(block, ":") for block in re.split(r"\n\s*\n", cpuinfo) if block.strip()]


def _features(processors: list[dict]) -> tuple[str | None, dict[str, bool]]:
    for key, (isa, wanted) in FEATURES_OF_INTEREST.items():
        if key in processors[0]:
            # a thread may land on any core, so a feature counts only if every core has it
            common = set.intersection(*(set(p.get(key, "").split()) for p in processors))
            return isa, {name: name in common for name in wanted}
    return None, {}


def _model(processors: list[dict], board: dict, clusters: list[dict] | None) -> str | None:
    if clusters is None or clusters[0]["part"] is None:
        return processors[0].get("model name") or None
    # the board line wins (Pi: "Raspberry Pi 5 Model B Rev 1.0"), then the SoC name,
    # then what the part ids say
    named = board.get("Model") or board.get("Hardware")
    if named:
        return named
    return " + ".join(f"{c['count']}x {c['description']}" for c in clusters)


def _physical_cores(processors: list[dict]) -> int:
    if all("core id" in p for p in processors):
        return len({(p.get("physical id"), p["core id"]) for p in processors})
    return len(processors)  # ARM cores run one thread each


@fact("cpufreq_max_khz", """
for f in /sys/devices/system/cpu/cpufreq/policy*/cpuinfo_max_freq; do
  [ -e "$f" ] || continue
  p=${f%/*}
  printf '%s %s\\n' "${p##*/}" "$(cat "$f" 2>&1)"
done
""")
def parse_cpufreq_max(stdout: str, exit_code: int) -> dict[str, int | str]:
    """Policy name -> kHz, in policy order; an unreadable policy says why instead."""
    policies = {}
    for line in stdout.splitlines():
        policy, _, value = line.partition(" ")
        if not policy.startswith("policy"):
            continue
        value = value.strip()
        if value.isdigit():
            policies[policy] = int(value)
        else:
            policies[policy] = unavailable("permission denied" if denied(value) else f"unreadable: {value[:80]}")
    if not policies:
        raise ValueError("no policy lines")
    return dict(sorted(policies.items(), key=lambda item: int(item[0][len("policy"):] or 0)))
