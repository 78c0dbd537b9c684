#!/usr/bin/env bash
# Time a cold build of the engine's wheel as `edgebench install-engine` makes it (into a fresh, temporary
# edgebench cache; nothing is installed): the wall time, the CPU time of the build (user + sys of all its
# processes: the figure that other work on a shared machine does not change) and the load around it.
# The edgebench it times is the one Python imports: PYTHONPATH=/other/checkout times another version.
set -euo pipefail
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
echo "edgebench: $(python -c 'import edgebench, os; print(os.path.dirname(edgebench.__file__))')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
TIMEFORMAT='cold build: wall %R s, CPU %U s user + %S s sys'
time EDGEBENCH_CACHE="$cache" python -c \
  'from edgebench.toolchain.llama_cpp_wheel import build_wheel; print(build_wheel(log=lambda text: None).name)' \
  >/dev/null 2>"$cache/build.log" || { tail -20 "$cache/build.log" >&2; exit 1; }
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
