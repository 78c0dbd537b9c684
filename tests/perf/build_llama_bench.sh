#!/usr/bin/env bash
# Build llama-bench (and beside it llama-fit-params and llama-perplexity, the oracles for memory and
# quality) from the same llama.cpp that the installed llama-cpp-python vendors, with the
# same CMake flags (edgebench.toolchain.llama_cpp_wheel: portable on x86-64, $CMAKE_ARGS when set) and, like
# llama-cpp-python, as shared libraries, so edgebench and llama-bench are compared on identical
# kernels and the runner can read llama.cpp's system info from the libraries beside the binary.
# Prints the binary's path. The build is cached under $EDGEBENCH_CACHE (default ~/.cache/edgebench),
# one folder per version and flags. An argument names another tool of the same build, e.g.
# `build_llama_bench.sh llama-perplexity` for tests/perf/quality_fidelity.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(python -c "import importlib.metadata as m; print(m.version('llama_cpp_python'))")
flags=$(python -m edgebench.toolchain.llama_cpp_wheel --cmake-args)
key=$(python -m edgebench.toolchain.llama_cpp_wheel --key)
cache=${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}
build="$cache/llama.cpp-$version/build-$key"
target=${1:-llama-bench}
binary="$build/bin/$target"
tools="llama-bench llama-fit-params llama-perplexity"
built=yes
for tool in $tools $target; do [ -x "$build/bin/$tool" ] || built=no; done
if [ "$built" = yes ]; then echo "$binary"; exit 0; fi
# the sdist's vendored llama.cpp, fetched and unpacked once (the same folder device builds use)
src=$(python -m edgebench.toolchain.llama_cpp_source --version "$version")
# shellcheck disable=SC2086  # the flags are several words
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DBUILD_SHARED_LIBS=ON $flags >&2
# shellcheck disable=SC2086  # one target per word
cmake --build "$build" --target $tools "$target" -j "$(nproc)" >&2
echo "$binary"
