"""The engine interface the runner drives."""

from __future__ import annotations

import abc
from typing import Callable, Iterator, NamedTuple, Optional

from ..protocol import RunnerFailure
from ..testspec import TestSpec
from .declaration import EngineDeclaration


class Measurement(NamedTuple):
    """One timed repetition. `t0`/`t1` are time.monotonic() bounds of its window."""

    rep: int
    t_ns: int
    ttft_ns: Optional[int]
    t0: float
    t1: float


class Engine(abc.ABC):
    # what the engine takes, runs and records (declaration.py); its module's DECLARATION
    declaration: EngineDeclaration

    @staticmethod
    @abc.abstractmethod
    def missing(options: Optional[dict] = None) -> Optional[str]:
        """None when the engine can run here, else the reason it cannot. `options` are the job's
        engine options (or a probe's), for an engine whose presence depends on them."""

    @abc.abstractmethod
    def open(self, model_path: str, options: dict) -> dict:
        """Load what is needed; return model and build facts (llama-bench field names)."""

    @abc.abstractmethod
    def measure(self, test: TestSpec, repetitions: int, warmup: int,
                mark: Callable[[], None]) -> Iterator[Measurement]:
        """Yield one Measurement per repetition, as soon as each is taken.

        `mark()` takes a telemetry snapshot; engines that time in-process call it
        just outside each timed region so every window has readings at both ends.
        """

    def measure_quality(self, job: dict, test_kind: str, mark: Callable[[], None]) -> tuple:
        """(elapsed ns, tokens decoded, summary: quality/stats.py's fields) of a `ppl` or `kld` test's one
        pass over `job["quality"]`; only engines that declare those kinds run them."""
        raise RunnerFailure("job", "engine %s runs no quality tests" % self.declaration.name)

    def late_info(self) -> dict:
        """Facts learnt only while measuring (llama-bench reports its build with its results)."""
        return {}

    def engine_pid(self) -> Optional[int]:
        """The pid whose memory is the engine's; None means the runner's own."""
        return None

    def close(self) -> None:
        pass
