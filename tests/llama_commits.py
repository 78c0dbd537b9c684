"""A local llama.cpp git repository for the performance-CI tests: the vendored llama.cpp source as its first
commit, then a series of small commits written here, with fixed author and committer dates so that every
hash is the same on every machine and every run (the persistent build tree and the engine cache then serve
a second CI run without building).

    c0  import of the vendored source (less models/, docs/ and media/, which no build reads)
    c1  ggml-cpu: a comment                 c5  ggml-cpu: a syntax error (does not compile)
    c2  docs only (no build input)          c6  ggml-cpu: the syntax error fixed
    c3  ggml-cpu: a comment                 c7  ggml-cpu: extra work in every matrix multiplication (SLOW)
    c4  ggml-cpu: a comment                 c8, c9  ggml-cpu: comments

Every code change is in ggml/src/ggml-cpu/ggml-cpu.c, so an incremental build compiles one file and relinks.

    python tests/llama_commits.py build          # every commit for this machine, into the cache (.ci/run does it)
    python tests/llama_commits.py build --board  # the same for the emulated Arm board's CPU (cross-built)
    python tests/llama_commits.py SRC REPO       # only write the repository from the llama.cpp source SRC
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CPU_FILE = "ggml/src/ggml-cpu/ggml-cpu.c"
SKIPPED_DIRS = {"models", "docs", "media", ".git"}
ANCHOR = "static void ggml_compute_forward(struct ggml_compute_params * params, struct ggml_tensor * tensor) {\n"
GUARD = "    // extra_buffer op?\n"
SLOW = """    // extra work on every matrix multiplication, whichever kernel (repacked or not) then runs it
    if (tensor->op == GGML_OP_MUL_MAT) {
        volatile float sink = 0.0f;
        const int64_t n = ggml_nelements(tensor->src[0]) / 2;
        for (int64_t i = 0; i < n; i++) {
            sink += (float) i;
        }
    }

"""
# (subject, what it does to ggml-cpu.c or the docs); the index is the commit's number (c1 first)
SERIES = (
    ("ggml-cpu: say why the dispatcher checks extra buffers first", "comment"),
    ("docs: a note for the performance CI", "docs"),
    ("ggml-cpu: name the op that the switch dispatches", "comment"),
    ("ggml-cpu: note the empty-tensor shortcut", "comment"),
    ("ggml-cpu: a refactor that does not compile", "break"),
    ("ggml-cpu: fix the build", "unbreak"),
    ("ggml-cpu: extra work in every matrix multiplication", "slow"),
    ("ggml-cpu: a comment after the slowdown", "comment"),
    ("ggml-cpu: another comment after the slowdown", "comment"),
)
SLOW_INDEX = 7
BROKEN_INDEX = 5
DOCS_INDEX = 2


def _git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "edgebench tests", "GIT_AUTHOR_EMAIL": "tests@edgebench.invalid",
           "GIT_COMMITTER_NAME": "edgebench tests", "GIT_COMMITTER_EMAIL": "tests@edgebench.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True)
    return done.stdout.strip()


def _date(index: int) -> str:
    return f"2026-01-{index + 1:02d}T12:00:00+00:00"


def make_repo(vendored: Path, repo: Path) -> list[str]:
    """Write the repository at `repo` from the vendored source; returns the commits c0..c9, oldest first."""
    shutil.copytree(vendored, repo, ignore=lambda folder, names: [n for n in names if Path(folder) == vendored
                                                                    and n in SKIPPED_DIRS])
    _git(repo, "init", "-q", "-b", "master")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "import llama.cpp as vendored by llama-cpp-python", date=_date(0))
    commits = [_git(repo, "rev-parse", "HEAD")]
    cpu = repo / CPU_FILE
    original = cpu.read_text()
    assert ANCHOR + "    GGML_ASSERT(params);\n" in original and GUARD in original, "the vendored ggml-cpu.c changed"
    text = original
    for index, (subject, change) in enumerate(SERIES, start=1):
        if change == "docs":
            (repo / "docs").mkdir(exist_ok=True)
            (repo / "docs" / "performance-ci.md").write_text("Performance CI builds every commit it measures.\n")
        elif change == "comment":
            text = text.replace(ANCHOR, f"{ANCHOR}    // note {index}\n", 1)
        elif change == "break":
            text = text.replace(GUARD, "    this does not compile;\n" + GUARD, 1)
        elif change == "unbreak":
            text = text.replace("    this does not compile;\n", "", 1)
        elif change == "slow":
            text = text.replace(GUARD, SLOW + GUARD, 1)
        cpu.write_text(text)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", subject, date=_date(index))
        commits.append(_git(repo, "rev-parse", "HEAD"))
    return commits


def abbreviates(short: str, commit: str) -> bool:
    """Whether `short` names `commit` as llama-bench's build_commit does: git's --short, whose length (7 or
    more) git picks from the repository's object count, so two build trees may differ."""
    return len(short) >= 7 and commit.startswith(short)


def local_target():
    """This machine's build target, from the local device's probe (as install-engine -d reads it)."""
    from edgebench.config import find_device
    from edgebench.config.lookup import LOCAL
    from edgebench.facts.device_probe import probe_with
    from edgebench.toolchain.target import target_from_probe
    from edgebench.transport import open_transport

    with open_transport(find_device(LOCAL, None)) as transport:
        return target_from_probe(probe_with(transport)["facts"])


def board_target():
    """The emulated Arm board's build target, from its `-cpu max` probe (as install-engine -d reads it)."""
    from test_device_build import BOARD
    return BOARD


def build_all(target, log=print) -> None:
    """Build every commit of the series for `target` into the cache (the build tree, then the engine cache):
    .ci/run does it before the tests, as it builds the board's engine, since a cold tree takes longer than a
    test may. Cached builds cost nothing; a commit that does not compile is remembered."""
    import tempfile
    import time

    from edgebench.toolchain.build_tree import BuildFailed, build_commit
    from edgebench.toolchain.llama_cpp_source import vendored_llama_cpp

    with tempfile.TemporaryDirectory(prefix="edgebench-llama-commits-") as scratch:
        repo = Path(scratch) / "llama.cpp"
        for commit in make_repo(vendored_llama_cpp(), repo):
            started = time.monotonic()
            try:
                built = build_commit(str(repo), commit, target, log=log)
                what = f"built in {built.seconds:.0f} s" if built.built else "cached"
            except BuildFailed as failed:
                what = "does not build" + (" (remembered)" if failed.cached else "")
            log(f"{commit[:12]}: {what} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] in (["build"], ["build", "--board"]):
        target = board_target() if sys.argv[2:] else local_target()
        build_all(target, lambda text: print(text, file=sys.stderr))
    else:
        for commit in make_repo(Path(sys.argv[1]), Path(sys.argv[2])):
            print(commit)
