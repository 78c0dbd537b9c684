"""The one rule for a part a test needs and this machine lacks: a skip here, a failure on CI (CI=true),
where .ci/run installs every part. The conftest and the fixture plugins all use it."""

from __future__ import annotations

import os

import pytest


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """Skip the current test because ``what`` is missing, or fail it on CI."""
    if on_ci():
        pytest.fail(f"{what} is missing; on CI a missing part is a failure (see .ci/run)")
    pytest.skip(f"{what} is missing")
