"""Benchmark tests in llama-bench's vocabulary: `pp512`, `tg128`, `pp512+tg128`, each optionally `@d4096`.

pp = prompt processing of n_prompt tokens, tg = generation of n_gen tokens, and the depth
is context filled (untimed) before the test, as llama-bench's `-p`, `-n`, `-pg` and `-d` mean.
`b8` is one forward pass of a generic (non-LLM) ONNX model at batch size 8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# leading zeros are refused so that every test has exactly one spelling: `.name` round-trips
_NUMBER = r"[1-9][0-9]*"
_TEST = re.compile(rf"(?:pp(?P<pp>{_NUMBER})(?:\+tg(?P<pg>{_NUMBER}))?|tg(?P<tg>{_NUMBER}))(?:@d(?P<depth>{_NUMBER}))?"
                   rf"|b(?P<batch>{_NUMBER})")

EXAMPLES = ("pp<N>, tg<N> or pp<N>+tg<N>, optionally with @d<depth>, e.g. pp512+tg128@d4096; "
            "or b<N> for a generic model at batch size N")


@dataclass(frozen=True, order=True)
class TestSpec:
    n_prompt: int = 0
    n_gen: int = 0
    n_depth: int = 0
    # a generic model's forward pass at this batch size (then no prompt, generation or depth)
    batch: int = 0

    __test__ = False  # not a pytest test class, despite the name

    def __post_init__(self) -> None:
        llm = self.n_prompt or self.n_gen
        if min(self.n_prompt, self.n_gen, self.n_depth, self.batch) < 0 or (not llm) == (not self.batch) \
                or (self.batch and self.n_depth):
            raise ValueError(f"invalid test: n_prompt={self.n_prompt}, n_gen={self.n_gen}, "
                             f"n_depth={self.n_depth}, batch={self.batch}")

    @property
    def kind(self) -> str:
        """`pp`, `tg`, `pp+tg` or `b`: what a threshold such as `tg: 3%` applies to."""
        if self.batch:
            return "b"
        return "+".join(k for k, n in (("pp", self.n_prompt), ("tg", self.n_gen)) if n)

    @property
    def name(self) -> str:
        if self.batch:
            return f"b{self.batch}"
        parts = [f"{k}{n}" for k, n in (("pp", self.n_prompt), ("tg", self.n_gen)) if n]
        return "+".join(parts) + (f"@d{self.n_depth}" if self.n_depth else "")

    @property
    def n_tokens(self) -> int:
        """Context the test needs: depth plus everything it processes."""
        return self.n_depth + self.n_prompt + self.n_gen

    @property
    def n_items(self) -> int:
        """What one repetition processes, for a rate: tokens, or samples of a batch."""
        return self.batch or self.n_prompt + self.n_gen

    def __str__(self) -> str:
        return self.name


def parse_test(text: str) -> TestSpec:
    """Parse one test name; ValueError says what is accepted."""
    match = _TEST.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"not a test: {text!r}; expected {EXAMPLES} (counts are positive integers)")
    return TestSpec(n_prompt=int(match["pp"] or 0), n_gen=int(match["pg"] or match["tg"] or 0),
                    n_depth=int(match["depth"] or 0), batch=int(match["batch"] or 0))
