"""Engines at a llama.cpp commit: a profile's `engine.source` and `engine.ref` (or `ab --a/--b` overrides).

Before a run, each ref is resolved to its commit, built for each device's target in the persistent build tree
(toolchain/build_tree.py: once per commit and target, incrementally) and installed on the device beside its
current engine (`<workdir>/engines/commit-<hash>`, as `install-engine -d` installs). The profile then names
the full commit as its `ref`, which is what the runner looks up and what run.json keeps.

A source that is a URL is fetched into a bare mirror under the cache once, and updated on every resolve.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from typing import Callable

from edgebench.errors import ConfigError, EdgebenchError
from edgebench.paths import cache_root


@dataclass(frozen=True)
class Commit:
    source: str  # a local git repository (a URL's mirror)
    commit: str
    subject: str
    date: str  # author date, ISO 8601
    ref: str  # as the user gave it

    @property
    def short(self) -> str:
        return self.commit[:8]

    @property
    def name(self) -> str:
        """As compare-llama-bench.py names a commit: the ref when it is a name, else the 8-digit hash."""
        named = self.ref and not self.commit.startswith(self.ref.lower())
        return f"{self.ref} ({self.short})" if named else self.short


def _git(repo: str, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise EdgebenchError(f"git is needed to build llama.cpp at a commit: {exc}") from exc
    if done.returncode != 0:
        raise EdgebenchError(f"git {args[0]} in {repo}: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return done.stdout.strip()


def _is_url(source: str) -> bool:
    return "://" in source or (":" in source and not os.path.exists(source) and "@" in source.split(":")[0])


def repository(source: str) -> str:
    """A local git repository holding `source`'s commits: the checkout itself, or a URL's bare mirror."""
    if not _is_url(source):
        path = os.path.abspath(os.path.expanduser(source))
        if not os.path.isdir(path):
            raise EdgebenchError(f"engine.source {source}: no such folder (a llama.cpp git checkout or a URL)")
        if subprocess.run(["git", "-C", path, "rev-parse", "--git-dir"], capture_output=True).returncode != 0:
            raise EdgebenchError(f"engine.source {source} is not a git checkout: a commit of it cannot be named")
        return path
    mirror = cache_root() / "llama.cpp-sources" / hashlib.sha256(source.encode()).hexdigest()[:16]
    if not (mirror / "HEAD").is_file():
        mirror.parent.mkdir(parents=True, exist_ok=True)
        _git(str(mirror.parent), "clone", "-q", "--bare", source, mirror.name)
    else:
        _git(str(mirror), "fetch", "-q", "--tags", "--force", source, "+refs/heads/*:refs/heads/*")
    return str(mirror)


def resolve(source: str, ref: str | None) -> Commit:
    repo = repository(source)
    given = ref or "HEAD"
    try:
        commit = _git(repo, "rev-parse", "--verify", "--end-of-options", f"{given}^{{commit}}")
    except EdgebenchError:
        raise EdgebenchError(f"engine.ref {given}: no such commit, tag or branch in {source}") from None
    return describe(repo, commit, given)


def describe(repo: str, commit: str, ref: str = "") -> Commit:
    subject, date = _git(repo, "show", "-s", "--format=%s%x00%aI", commit).split("\0")
    return Commit(repo, commit, subject, date, ref or commit[:8])


def engine_commit(profile) -> tuple[str, str | None] | None:
    """(source, ref) when the profile's engine is llama.cpp at a commit, else None."""
    engine = profile.engine
    source, ref = engine.get("source"), engine.get("ref")
    if source is None and ref is None:
        return None
    if source is None:
        raise ConfigError(f"engine.ref {ref} needs engine.source: the llama.cpp git checkout or URL it is a commit "
                          "of", file=profile.source, key="engine.source")
    if engine.get("binary"):
        raise ConfigError("engine.binary and engine.source both name the llama-bench to run; give one of them",
                          file=profile.source, key="engine.binary")
    return source, ref


def pinned(profile, commit: Commit):
    """The profile with its ref resolved to the full commit (what the runner looks up, what run.json keeps)."""
    from edgebench.config import parse_profile

    data = {k: v for k, v in profile.to_dict().items() if k != "source"}
    data["engine"] = {**data["engine"], "source": commit.source, "ref": commit.commit}
    return parse_profile(json.dumps(data), file=profile.source)


def install_commit(device, commit: Commit, log: Callable[[str], None]):
    """Build `commit` for the device (cache, else the build tree) and install it there; the CommitBuild.
    Raises build_tree.BuildFailed when the commit does not compile."""
    from edgebench.facts.device_probe import probe_with
    from edgebench.runner.engines.installed import commit_link
    from edgebench.toolchain.build_tree import build_commit
    from edgebench.toolchain.libc_check import check_libc
    from edgebench.toolchain.target import target_from_probe
    from edgebench.transport import open_transport
    from edgebench.transport.engine_push import install_engine

    with open_transport(device) as transport:
        target = target_from_probe(probe_with(transport)["facts"])
        built = build_commit(commit.source, commit.commit, target, toolchain_file=device.toolchain_file, log=log)
        check_libc(target, built.build.manifest)
        install_engine(transport, built.build, link=commit_link(commit.commit))
    return built


def prepare(variants: dict, devices: list, log: Callable[[str], None]) -> tuple[dict, dict[str, Commit]]:
    """Variant profiles with every engine at a commit built and installed on every device and its ref
    pinned; and the commit of each such variant, by variant name."""
    commits: dict[str, Commit] = {}
    ready = dict(variants)
    for name, profile in variants.items():
        found = engine_commit(profile)
        if found is None:
            continue
        commit = resolve(*found)
        commits[name] = commit
        for device in devices:
            install_commit(device, commit, log)
        ready[name] = pinned(profile, commit)
    return ready, commits


def variant_name(name: str, commit: Commit | None) -> str:
    """How a report names a variant: `A`, or `A 51beffa3` (compare-llama-bench.py's naming of a commit)."""
    return f"{name} {commit.name}" if commit else name


def first_parent_commits(repo: str, good: str, bad: str) -> list[str]:
    """The first-parent history after `good` up to and including `bad`, oldest first."""
    found = _git(repo, "rev-list", "--first-parent", "--reverse", f"{good}..{bad}")
    return found.split() if found else []


# paths under a llama.cpp tree that no build of the engine reads (source_identity's, plus top-level docs)
def touches_build_inputs(repo: str, commit: str) -> bool:
    from edgebench.toolchain.source_identity import _NOT_BUILT

    changed = _git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "--first-parent", "-m", commit)
    for path in filter(None, changed.splitlines()):
        top = path.split("/")[0]
        if top in _NOT_BUILT or top.startswith(".") or ("/" not in path and not path.endswith(
                (".txt", ".cmake", ".c", ".cpp", ".h", ".hpp", ".in"))):
            continue
        return True
    return False
