"""The llama.cpp that `edgebench install-engine -d DEVICE` put on this device, beside the runner.

    <workdir>/engine -> engines/<key>        switched whole by each install (a symbolic link)
    <workdir>/engines/<key>/bin/             llama-bench, llama-perplexity, llama-fit-params, lib*.so
    <workdir>/engines/<key>/python/          llama-cpp-python's ctypes bindings, when they bind this build
    <workdir>/engines/<key>/build.json       what was built: source, commit, flags, target
    <workdir>/engines/commit-<hash> -> <key> a build of one llama.cpp commit (engine.ref), installed beside
                                             the current engine without switching it

The runner finds it from its own place, `<workdir>/runner/<sha256>/runner.pyz`, so every mode (a
run, the capabilities probe, the self-test) sees the same engine without the controller naming paths.
A binary a profile names (`llama_bench:`) still wins. For the in-process engine the installed build
wins over a llama-cpp-python the device's Python may have: it is the one that was asked for.
"""

from __future__ import annotations

import json
import os
from typing import Optional

# set by tests and by a runner run outside its zipapp
HOME_ENV = "EDGEBENCH_ENGINE_HOME"


def _workdir_of_zipapp() -> Optional[str]:
    marker = ".pyz" + os.sep
    here = os.path.abspath(__file__)
    if marker not in here:
        return None
    zipapp = here[:here.index(marker) + len(".pyz")]
    # <workdir>/runner/<sha256>/runner.pyz
    return os.path.dirname(os.path.dirname(os.path.dirname(zipapp)))


def commit_link(commit: str) -> str:
    """Where, under the workdir, the build of one llama.cpp commit is linked (engine_unpack installs it so)."""
    return os.path.join("engines", "commit-" + commit)


def home(commit: Optional[str] = None) -> Optional[str]:
    """The installed engine's folder (of `commit` when given), or None when nothing was installed."""
    folder = os.environ.get(HOME_ENV)
    if folder and commit:
        # beside the test's engine folder, as engines/commit-<hash> is beside <workdir>/engine
        folder = os.path.join(os.path.dirname(folder), commit_link(commit))
    if not folder:
        workdir = _workdir_of_zipapp()
        folder = os.path.join(workdir, commit_link(commit) if commit else "engine") if workdir else None
    if folder and os.path.isfile(os.path.join(folder, "build.json")):
        return os.path.realpath(folder)
    return None


def manifest(commit: Optional[str] = None) -> Optional[dict]:
    folder = home(commit)
    if folder is None:
        return None
    try:
        with open(os.path.join(folder, "build.json")) as f:
            found = json.load(f)
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def tool(name: str, commit: Optional[str] = None) -> Optional[str]:
    """An installed llama.cpp tool (llama-bench, llama-perplexity, ...), of `commit` when given, or None."""
    folder = home(commit)
    path = os.path.join(folder, "bin", name) if folder else None
    return path if path and os.access(path, os.X_OK) else None


def bindings() -> tuple:
    """(python folder, library folder) for llama-cpp-python's bindings of the installed build, or
    (None, reason) when the install has none (the source is not the version they bind)."""
    folder = home()
    if folder is None:
        return None, None
    python = os.path.join(folder, "python")
    if os.path.isdir(os.path.join(python, "llama_cpp")):
        return python, os.path.join(folder, "bin")
    return None, (manifest() or {}).get("in_process_unavailable") or "the installed engine has no Python bindings"


def build_fields(commit: Optional[str] = None) -> dict:
    """What rows record about the installed build (empty when none is installed)."""
    found = manifest(commit) or {}
    # the CPU's flags (GGML_CPU_ARM_ARCH, GGML_AVX2, ...), not the build's fixed ones (shared libraries, no curl)
    cpu_flags = [flag for flag in found.get("cmake_flags") or ()
                 if flag.startswith("-DGGML_") and not flag.startswith("-DGGML_CCACHE")]
    return {key: value for key, value in (("build_flags", " ".join(cpu_flags) or None),
                                          ("build_target", found.get("triple"))) if value}


def _cpu_features() -> Optional[set]:
    """The features every core reports (/proc/cpuinfo's `Features` on Arm, `flags` on x86); None elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return None
    common = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("Features", "flags"):
            found = set(value.split())
            common = found if common is None else common & found
    return common


def lacking_features(commit: Optional[str] = None) -> list:
    """The CPU features the installed build was compiled for that this CPU lacks: such a build dies
    with SIGILL in its first kernel, so the engines refuse it up front and name them."""
    target = (manifest(commit) or {}).get("target") or {}
    wanted = target.get("features") if isinstance(target, dict) else None
    have = _cpu_features()
    if not wanted or have is None:
        return []
    return sorted(set(wanted) - have)


def unusable(commit: Optional[str] = None) -> Optional[str]:
    """Why the installed build cannot run on this CPU, or None."""
    lacking = lacking_features(commit)
    if not lacking:
        return None
    return ("the installed engine was built for CPU features this CPU lacks (%s): run `edgebench "
            "install-engine -d DEVICE` again, which builds for what the device reports" % ", ".join(lacking))
