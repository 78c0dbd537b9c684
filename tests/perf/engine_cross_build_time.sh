#!/usr/bin/env bash
# Time a cold and then a warm (cached) cross-build of llama.cpp's tools for the emulated Arm board
# (aarch64 with its features: edgebench.toolchain.device_build) in a fresh, temporary edgebench cache. The
# pinned llama.cpp source is linked in from the usual cache, so its download is not timed. Prints the wall
# and CPU time (user + sys of all the build's processes) of each, and the load around them.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
src=$(python -m edgebench.toolchain.llama_cpp_source)  # .../llama.cpp-VERSION/src/vendor/llama.cpp
version_dir=$(dirname "$(dirname "$(dirname "$src")")")
ln -s "$version_dir" "$cache/$(basename "$version_dir")"
build='
from edgebench.toolchain.device_build import build_engine
from edgebench.toolchain.target import BuildTarget
board = BuildTarget("aarch64", "linux", "glibc", "2.36",
                    ("asimd", "asimddp", "asimdhp", "bf16", "fphp", "i8mm", "sve", "sve2"))
print(build_engine(board, log=lambda text: None).bin)'
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
TIMEFORMAT='cold cross-build: wall %R s, CPU %U s user + %S s sys'
time EDGEBENCH_CACHE="$cache" python -c "$build" >/dev/null
TIMEFORMAT='warm (cached) cross-build: wall %R s, CPU %U s user + %S s sys'
time EDGEBENCH_CACHE="$cache" python -c "$build" >/dev/null
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
