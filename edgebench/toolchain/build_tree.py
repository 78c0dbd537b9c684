"""llama.cpp at a commit, built incrementally: one persistent build tree per target, flags and compiler.

    <cache>/device-engines/trees/<tree key>/src/     a git repository, checked out at the commit being built
    <cache>/device-engines/trees/<tree key>/build/   its CMake (Ninja) build folder, kept between builds
    <cache>/device-engines/<key>/                    each finished build, keyed as toolchain/device_build.py keys
    <cache>/device-engines/failed/<key>.json         a commit that did not compile, so it is not compiled again

Building another commit fetches it into `src` (from any repository: the tree is not tied to one), checks it
out (git rewrites only the files that differ, so Ninja recompiles only what they feed) and rebuilds. A commit
already built, or known not to compile, is answered from the cache without touching the tree. A cold tree
costs a full build; a commit that changes one ggml-cpu file costs that file and the relinks.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import subprocess
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from edgebench.errors import EdgebenchError
from edgebench.outputs import replacing
from edgebench.toolchain.cross import Compiler, compiler_for
from edgebench.toolchain.device_build import (
    FORMAT,
    MANIFEST,
    TOOLS,
    EngineBuild,
    _manifest,
    build_argv,
    build_flags,
    build_key,
    c_compiler,
    collect,
    configure_argv,
    engines_root,
    load_build,
    run_logged,
)
from edgebench.toolchain.source_identity import SourceIdentity
from edgebench.toolchain.target import BuildTarget


class BuildFailed(EdgebenchError):
    """The commit does not compile (for this target): a bisect skips it. `cached`: known from an earlier try."""

    def __init__(self, message: str, cached: bool = False):
        super().__init__(message)
        self.cached = cached


@dataclass(frozen=True)
class CommitBuild:
    build: EngineBuild
    built: bool  # False: it came from the cache
    seconds: float


def tree_key(flags: tuple[str, ...], target: BuildTarget, compiler: Compiler) -> str:
    what = {"format": FORMAT, "flags": list(flags), "target": asdict(target), "toolchain": compiler.toolchain_text,
            "tools": list(TOOLS)}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def commit_identity(source: str, commit: str) -> SourceIdentity:
    """A commit's identity, as `identify` gives it for a clean checkout at that commit: the same cache key."""
    return SourceIdentity(Path(source), f"llama.cpp {commit[:12]} from {source}", f"git {commit} clean", commit,
                          False)


def failed_marker(key: str) -> Path:
    return engines_root() / "failed" / f"{key}.json"


def build_commit(source: str, commit: str, target: BuildTarget, *, toolchain_file=None,
                 log: Callable[[str], None] = print) -> CommitBuild:
    """The build of `commit` (a full hash) of the git repository `source` for `target`. Raises BuildFailed
    when it does not compile (remembered: the next call raises at once)."""
    compiler = compiler_for(target, toolchain_file)
    flags = build_flags(target)
    identity = commit_identity(source, commit)
    key = build_key(identity, flags, target, compiler.toolchain_text)
    final = engines_root() / key
    if (final / MANIFEST).is_file():
        return CommitBuild(load_build(final), False, 0.0)
    failed = failed_marker(key)
    if failed.is_file():
        raise BuildFailed(json.loads(failed.read_text())["error"], cached=True)
    tree = engines_root() / "trees" / tree_key(flags, target, compiler)
    with _locked(tree):
        if (final / MANIFEST).is_file():  # another process built it while this one waited
            return CommitBuild(load_build(final), False, 0.0)
        log_path = engines_root() / "logs" / f"{key}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        src, build_dir = tree / "src", tree / "build"
        cold = not (build_dir / "build.ninja").is_file() and not (build_dir / "Makefile").is_file()
        log(f"building llama.cpp {commit[:12]} for {target.describe()} ({'cold' if cold else 'incremental'}, "
            f"tree {tree}); log: {log_path}")
        with open(log_path, "w") as out:
            _checkout(src, source, commit, out)
            try:
                _compile(src, build_dir, tree, flags, compiler, out, configure=cold)
            except BuildFailed as error:
                out.flush()
                if _the_source_is_at_fault(Path(out.name).read_text()):
                    failed.parent.mkdir(parents=True, exist_ok=True)
                    failed.write_text(json.dumps({"commit": commit, "error": str(error)}) + "\n")
                raise
        # the tree's lock is held: no other build of this commit can take the name meanwhile
        with replacing(final) as out_dir:
            files = collect(build_dir, out_dir / "bin", c_compiler(build_dir, compiler), target.os)
            seconds = time.monotonic() - started
            manifest = _manifest(key, identity, None, flags, target, compiler, build_dir, out_dir / "bin", files,
                                 seconds)
            manifest["incremental"] = not cold
            (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"built {commit[:12]} in {seconds:.0f} s ({'cold' if cold else 'incremental'})")
    return CommitBuild(load_build(final), True, seconds)


def _the_source_is_at_fault(log_text: str) -> bool:
    """A compiler's error about the code, which the same commit will always give, not this machine's trouble
    (a compiler killed for memory, a full disk, a missing tool), which must not be remembered."""
    machine = re.compile(r"Killed signal|No space left|cannot allocate memory|No such file or directory: "
                         r"'(cmake|ninja)", re.IGNORECASE)
    errors = [line for line in log_text.splitlines() if re.search(r"\berror:", line, re.IGNORECASE)]
    return bool(errors) and not any(machine.search(line) for line in errors)


@contextmanager
def _locked(tree: Path):
    """One build at a time in a tree (another process waits)."""
    tree.mkdir(parents=True, exist_ok=True)
    with open(tree / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _checkout(src: Path, source: str, commit: str, out) -> None:
    if not (src / ".git").is_dir():
        src.mkdir(parents=True, exist_ok=True)
        _git(src, out, "init", "-q")
    if subprocess.run(["git", "-C", str(src), "cat-file", "-e", f"{commit}^{{commit}}"],
                      capture_output=True).returncode != 0:
        _git(src, out, "fetch", "-q", "--no-tags", source, commit)
    # --force: a previous build's generated files never block the checkout; clean: nothing of the last
    # commit stays behind (the build folder is outside the checkout)
    _git(src, out, "checkout", "-q", "--force", "--detach", commit)
    _git(src, out, "clean", "-q", "-fdx")


def _git(src: Path, out, *args: str) -> None:
    argv = ["git", "-C", str(src), *args]
    out.write(f"$ {' '.join(argv)}\n")
    out.flush()
    done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise EdgebenchError(f"git {args[0]} failed in the build tree {src} (log: {out.name})")


def _compile(src: Path, build_dir: Path, tree: Path, flags: tuple[str, ...], compiler: Compiler, out, *,
             configure: bool) -> None:
    if configure:
        run_logged(configure_argv(src, build_dir, flags, compiler, tree), out, "configuring llama.cpp", BuildFailed)
    # CMake re-runs its configure step by itself when a commit changes a CMakeLists.txt
    run_logged(build_argv(build_dir), out, "compiling llama.cpp", BuildFailed)
