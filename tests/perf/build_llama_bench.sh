#!/usr/bin/env bash
# Build llama-bench from the same llama.cpp that the installed llama-cpp-python vendors,
# so edgebench and llama-bench are compared on identical kernels. Prints the binary's path.
# The build is cached under $EDGEBENCH_CACHE (default ~/.cache/edgebench).
set -euo pipefail
version=$(python -c "import importlib.metadata as m; print(m.version('llama_cpp_python'))")
cache=${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}
root="$cache/llama.cpp-$version"
binary="$root/build/bin/llama-bench"
if [ -x "$binary" ]; then echo "$binary"; exit 0; fi
mkdir -p "$root"
if [ ! -d "$root/src" ]; then
  pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$root/sdist" >&2
  tar -xzf "$root/sdist/llama_cpp_python-$version.tar.gz" -C "$root"
  mv "$root/llama_cpp_python-$version" "$root/src"
fi
# the wheel pip builds uses these same defaults: Release, native CPU, OpenMP
cmake -S "$root/src/vendor/llama.cpp" -B "$root/build" -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$root/build" --target llama-bench -j "$(nproc)" >&2
echo "$binary"
