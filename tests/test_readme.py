"""The README's two opening commands are the ones that are really used."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def opening_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert block, "README must open with a code block of set-up commands"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_readme_opens_with_exactly_two_commands():
    first, second = opening_commands()
    assert "profiles/quickstart.yaml" in first and "edgebench run" in first
    assert "pytest" in second


def test_ci_runs_the_readme_test_command():
    _, test_command = opening_commands()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command.strip() in [line.strip() for line in ci]


def test_ci_installs_sshd_and_treats_no_tests_as_failure():
    ci = (REPO / ".ci" / "run").read_text()
    assert "openssh-server" in ci and '-eq 5' in ci


def test_ci_installs_postgresql_for_the_database_tests():
    ci = (REPO / ".ci" / "run").read_text()
    assert 'missing="$missing postgresql"' in ci and "pg_ctl" in ci


def test_the_github_actions_example_is_yaml_that_runs_ab_between_the_merge_base_and_the_head():
    import yaml

    text = (REPO / "README.md").read_text()
    block = re.search(r"```yaml\n(# \.github/workflows/llama-perf\.yml\n.*?)```", text, re.S)
    assert block, "the README's performance CI section has a GitHub Actions workflow"
    workflow = yaml.safe_load(block.group(1))
    steps = workflow["jobs"]["perf"]["steps"]
    script = next(step["run"] for step in steps if "run" in step)
    assert "git merge-base" in script and "edgebench ab" in script and "engine.ref=HEAD" in script
    assert '--markdown "$GITHUB_STEP_SUMMARY"' in script and "--junit llama-perf.xml" in script
    upload = next(step for step in steps if str(step.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "llama-perf.xml" and upload["if"] == "always()"
