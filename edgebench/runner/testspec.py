"""Benchmark tests in llama-bench's vocabulary: `pp512`, `tg128`, `pp512+tg128`, each optionally `@d4096`.

pp = prompt processing of n_prompt tokens, tg = generation of n_gen tokens, and the depth
is context filled (untimed) before the test, as llama-bench's `-p`, `-n`, `-pg` and `-d` mean.
`b8` is one forward pass of a generic (non-LLM) ONNX model at batch size 8.
`ppl` and `kld` measure quality as llama-perplexity does (the profile's `quality:` block says over
which text, chunk length and reference; runner/scoring/ scores them).

The one definition of a test: its name, kind and item count are read from here by the
controller (profiles, rows, thresholds) and by the runner (jobs, rates), so the two cannot
disagree. Hence stdlib only and Python 3.8, like the rest of the runner.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# leading zeros are refused so that every test has exactly one spelling: `.name` round-trips
_NUMBER = r"[1-9][0-9]*"
_TEST = re.compile(r"(?:pp(?P<pp>{n})(?:\+tg(?P<pg>{n}))?|tg(?P<tg>{n}))(?:@d(?P<depth>{n}))?|b(?P<batch>{n})"
                   r"|(?P<quality>ppl|kld)".format(n=_NUMBER))

EXAMPLES = ("pp<N>, tg<N> or pp<N>+tg<N>, optionally with @d<depth>, e.g. pp512+tg128@d4096; "
            "or b<N> for a generic model at batch size N; or ppl or kld for quality")
# the quality tests: perplexity of a text, and KL divergence against a reference
QUALITY_KINDS = ("ppl", "kld")
# what `TestSpec.kind` can be: what a threshold such as `tg: 3%` applies to
KINDS = ("pp", "tg", "pp+tg", "b") + QUALITY_KINDS


class _Counts(NamedTuple):
    n_prompt: int = 0
    n_gen: int = 0
    n_depth: int = 0
    # a generic model's forward pass at this batch size (then no prompt, generation or depth)
    batch: int = 0
    # a quality test (one of QUALITY_KINDS; then no prompt, generation, depth or batch)
    quality: str = ""


# A named tuple rather than a dataclass: immutable and ordered all the same, and `dataclasses` would
# import `inspect` into every runner process, whose own memory is part of what is measured.
class TestSpec(_Counts):
    __slots__ = ()
    __test__ = False  # not a pytest test class, despite the name

    def __new__(cls, n_prompt: int = 0, n_gen: int = 0, n_depth: int = 0, batch: int = 0,
                quality: str = "") -> "TestSpec":
        llm = n_prompt or n_gen
        what = [bool(llm), bool(batch), bool(quality)]
        if (min(n_prompt, n_gen, n_depth, batch) < 0 or sum(what) != 1 or ((batch or quality) and n_depth)
                or (quality and quality not in QUALITY_KINDS)):
            raise ValueError("invalid test: n_prompt=%s, n_gen=%s, n_depth=%s, batch=%s, quality=%r"
                             % (n_prompt, n_gen, n_depth, batch, quality))
        return super().__new__(cls, n_prompt, n_gen, n_depth, batch, quality)

    @property
    def kind(self) -> str:
        """`pp`, `tg`, `pp+tg`, `b`, `ppl` or `kld` (one of KINDS)."""
        if self.quality:
            return self.quality
        if self.batch:
            return "b"
        return "+".join(k for k, n in (("pp", self.n_prompt), ("tg", self.n_gen)) if n)

    @property
    def name(self) -> str:
        if self.quality:
            return self.quality
        if self.batch:
            return "b%d" % self.batch
        parts = ["%s%d" % (k, n) for k, n in (("pp", self.n_prompt), ("tg", self.n_gen)) if n]
        return "+".join(parts) + ("@d%d" % self.n_depth if self.n_depth else "")

    @property
    def n_tokens(self) -> int:
        """Context the test needs: depth plus everything it processes."""
        return self.n_depth + self.n_prompt + self.n_gen

    @property
    def n_items(self) -> int:
        """What one repetition processes, for a rate: tokens, or samples of a batch; a quality test's
        count depends on its `quality:` block, so the runner reports it (0 here)."""
        return self.batch or self.n_prompt + self.n_gen

    def __str__(self) -> str:
        return self.name


# the keys of a job's `test` object
FIELDS = TestSpec._fields


def parse_test(text: str) -> TestSpec:
    """Parse one test name; ValueError says what is accepted."""
    match = _TEST.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError("not a test: %r; expected %s (counts are positive integers)" % (text, EXAMPLES))
    return TestSpec(n_prompt=int(match["pp"] or 0), n_gen=int(match["pg"] or match["tg"] or 0),
                    n_depth=int(match["depth"] or 0), batch=int(match["batch"] or 0), quality=match["quality"] or "")
