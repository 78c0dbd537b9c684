"""The llama.cpp source that a pinned llama-cpp-python vendors, fetched once as its sdist and unpacked in
the cache, so every llama.cpp edgebench builds (llama-bench here, engines for devices) is the one the
in-process engine runs.

    python -m edgebench.toolchain.llama_cpp_source [--version 0.3.36]   # print the llama.cpp source folder
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from edgebench.errors import EdgebenchError
from edgebench.outputs import replacing
from edgebench.paths import cache_root
from edgebench.toolchain.llama_cpp_wheel import LLAMA_CPP_PYTHON


def vendored_llama_cpp(version: str = LLAMA_CPP_PYTHON) -> Path:
    """The vendor/llama.cpp folder of llama-cpp-python `version`'s sdist, downloaded and unpacked first if
    it is not in the cache (`cache_root()/llama.cpp-VERSION/src`, where tests/perf/build_llama_bench.sh
    has always kept it)."""
    base = cache_root() / f"llama.cpp-{version}"
    src = base / "src"
    tree = src / "vendor" / "llama.cpp"
    if tree.is_dir():
        return tree
    sdist = _download(version, base / "sdist")
    # unpacked beside, then renamed: a half-unpacked tree is never taken for the source
    partial = base / "src.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tarfile.open(sdist) as archive:
        archive.extractall(partial, filter="data")
    unpacked = partial / f"llama_cpp_python-{version}"
    if not (unpacked / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        raise EdgebenchError(f"{sdist.name} holds no vendor/llama.cpp folder, so it cannot be built")
    with replacing(src) as whole:
        unpacked.rename(whole)
    shutil.rmtree(partial, ignore_errors=True)
    return tree


def _download(version: str, folder: Path) -> Path:
    sdist = folder / f"llama_cpp_python-{version}.tar.gz"
    if sdist.is_file():
        return sdist
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
            f"llama-cpp-python=={version}", "-d", str(folder)]
    done = subprocess.run(argv, stdout=sys.stderr)
    if done.returncode != 0 or not sdist.is_file():
        raise EdgebenchError(f"pip could not download the llama-cpp-python {version} sdist (exit "
                             f"{done.returncode}); its output above says why")
    return sdist


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", default=LLAMA_CPP_PYTHON, help="llama-cpp-python version (default: the pin)")
    args = parser.parse_args(argv)
    try:
        print(vendored_llama_cpp(args.version))
    except EdgebenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
