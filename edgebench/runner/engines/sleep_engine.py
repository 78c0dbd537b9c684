"""A test engine that sleeps instead of computing: every repetition takes
(n_prompt + n_gen) / simulate_ts seconds, with the first token after the
prompt's share. It measures the controller and the transport (scheduling,
locking, retries) without competing with them for the CPU.
"""

from __future__ import annotations

import time

from .base import Engine, Measurement
from .declaration import THREADS, EngineDeclaration, Option

DECLARATION = EngineDeclaration(
    name="sleep",
    doc="a test engine that only waits",
    options=(THREADS,
             Option("simulate_ts", "float", 1000.0, "the speed it pretends to run at, in tokens (items) per second",
                    above=0)),
    test_kinds=("pp", "tg", "pp+tg", "b"),
    facts=("simulate_ts",),
    compare_keys=("simulate_ts",),
)


class SleepEngine(Engine):
    declaration = DECLARATION

    @staticmethod
    def missing(options=None):
        return None

    def open(self, model_path, options):
        self.tokens_per_s = float(options.get("simulate_ts") or 1000.0)
        return {"engine_version": "sleep (test engine)", "model_type": "simulated", "n_threads": 1}

    def measure(self, test, repetitions, warmup, mark):
        def once():
            time.sleep(test.n_prompt / self.tokens_per_s)
            first = time.perf_counter_ns()
            time.sleep(test.n_gen / self.tokens_per_s)
            return first

        for _ in range(warmup):
            once()
        for rep in range(repetitions):
            mark()
            t0, start = time.monotonic(), time.perf_counter_ns()
            first = once()
            end = time.perf_counter_ns()
            mark()
            yield Measurement(rep=rep, t_ns=end - start, ttft_ns=first - start if test.n_prompt else None,
                              t0=t0, t1=time.monotonic())


ENGINE = SleepEngine
