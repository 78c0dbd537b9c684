"""The persistent build tree (toolchain/build_tree.py) on a project that builds in seconds, in a git repository
of a few commits: the first build configures, the next compiles only what a commit changed, a commit that
does not compile is remembered, and a built commit is a cache hit that builds nothing. tests/test_perf_ci.py
does the same with llama.cpp itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from llama_commits import _git
from missing_parts import missing

from edgebench.toolchain.build_tree import BuildFailed, build_commit
from edgebench.toolchain.cross import controller_arch
from edgebench.toolchain.target import BuildTarget

PROJECT = """\
cmake_minimum_required(VERSION 3.14)
project(tools C)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
set(CMAKE_LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
add_library(work SHARED work.c)
set_target_properties(work PROPERTIES VERSION 0.1 SOVERSION 0)
foreach(tool llama-bench llama-perplexity llama-fit-params)
  add_executable(${tool} main.c)
  target_link_libraries(${tool} PRIVATE work)
endforeach()
"""
MAIN = "int work(void);\nint main(void) { return work(); }\n"


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def commit(repo: Path, files: dict[str, str], subject: str, day: int) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", subject, date=f"2026-02-{day:02d}T12:00:00+00:00")
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    commits = [commit(repo, {"CMakeLists.txt": PROJECT, "main.c": MAIN, "work.c": "int work(void) { return 0; }\n"},
                      "a project", 1)]
    commits.append(commit(repo, {"work.c": "int work(void) { volatile int zero = 0; return zero; }\n"},
                          "work: another way", 2))
    commits.append(commit(repo, {"work.c": "int work(void) { return undeclared; }\n"}, "work: broken", 3))
    return repo, commits


def here() -> BuildTarget:
    if controller_arch() != "x86_64":
        missing("an x86-64 controller (the tree is checked with this machine's own compiler)")
    return BuildTarget("x86_64", "linux", "glibc", None, ("avx", "avx2", "f16c", "fma", "sse4_2"))


def compiled(log: Path) -> list[str]:
    """The sources the build compiled (once per tool that compiles it), as Ninja names its steps."""
    return sorted({line.split()[-1].rsplit("/", 1)[-1] for line in log.read_text().splitlines()
                   if "Building C object" in line})


def test_the_tree_builds_once_then_only_what_a_commit_changed(repo, private_cache):
    source, commits = repo
    said: list[str] = []
    first = build_commit(str(source), commits[0], here(), log=said.append)
    assert first.built and first.build.manifest["incremental"] is False
    assert first.build.manifest["source"]["commit"] == commits[0]
    log = private_cache / "device-engines" / "logs" / f"{first.build.key}.log"
    assert compiled(log) == ["main.c.o", "work.c.o"]
    second = build_commit(str(source), commits[1], here(), log=said.append)
    assert second.built and second.build.manifest["incremental"] is True
    assert compiled(private_cache / "device-engines" / "logs" / f"{second.build.key}.log") == ["work.c.o"]
    assert second.build.files["libwork.so.0"] != first.build.files["libwork.so.0"]
    # each build is a copy of its own: the tree moved on, the first build's files did not
    assert subprocess.run([str(first.build.bin / "llama-bench")]).returncode == 0
    assert any("(cold," in line for line in said) and any("(incremental," in line for line in said)


def test_a_commit_that_does_not_compile_is_remembered_and_a_built_one_is_a_cache_hit(repo, private_cache):
    source, commits = repo
    with pytest.raises(BuildFailed) as raised:
        build_commit(str(source), commits[2], here(), log=lambda text: None)
    assert not raised.value.cached and "'undeclared' undeclared" in str(raised.value)
    logs = private_cache / "device-engines" / "logs"
    before = {path.name: path.stat().st_mtime_ns for path in logs.iterdir()}
    with pytest.raises(BuildFailed) as again:
        build_commit(str(source), commits[2], here(), log=lambda text: None)
    assert again.value.cached and str(again.value) == str(raised.value)
    built = build_commit(str(source), commits[0], here(), log=lambda text: None)
    assert built.built
    hit = build_commit(str(source), commits[0], here(), log=lambda text: None)
    assert not hit.built and hit.build == built.build
    assert before.items() <= {path.name: path.stat().st_mtime_ns for path in logs.iterdir()}.items()


def test_a_tree_fetches_commits_from_any_repository(repo, private_cache, tmp_path):
    source, commits = repo
    build_commit(str(source), commits[0], here(), log=lambda text: None)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(source), str(clone)], check=True, env={**os.environ,
                                                                                     "GIT_CONFIG_NOSYSTEM": "1"})
    built = build_commit(str(clone), commits[1], here(), log=lambda text: None)
    assert built.built and built.build.manifest["incremental"] is True
