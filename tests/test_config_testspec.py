"""llama-bench test names: pp<N>, tg<N>, pp<N>+tg<N>, optional @d<depth>."""

from __future__ import annotations

import pytest

from edgebench.config import TestSpec, parse_test


@pytest.mark.parametrize("text, spec, kind", [
    ("pp512", TestSpec(512, 0, 0), "pp"),
    ("tg128", TestSpec(0, 128, 0), "tg"),
    ("pp512+tg128", TestSpec(512, 128, 0), "pp+tg"),
    ("pp512@d4096", TestSpec(512, 0, 4096), "pp"),
    ("tg128@d4096", TestSpec(0, 128, 4096), "tg"),
    ("pp512+tg128@d4096", TestSpec(512, 128, 4096), "pp+tg"),
    ("tg1", TestSpec(0, 1, 0), "tg"),
])
def test_parse_and_round_trip(text, spec, kind):
    parsed = parse_test(text)
    assert parsed == spec
    assert parsed.name == text == str(parsed)
    assert parsed.kind == kind


@pytest.mark.parametrize("text", [
    "pp0", "tg0", "pp512+tg0", "pp512@d0", "pp0512", "pp", "tg", "pp-1", "pp512tg128", "tg128+pp512",
    "+tg128", "pp512+", "@d4096", "pp512@4096", "pp512@d", "PP512", "pp 512", "512", "", "junk", "pp1.5",
])
def test_rejects(text):
    with pytest.raises(ValueError, match="not a test"):
        parse_test(text)


def test_n_tokens_counts_depth():
    assert parse_test("pp512+tg128@d4096").n_tokens == 4736


def test_frozen_and_validated():
    with pytest.raises(AttributeError):
        parse_test("pp512").n_prompt = 1
    with pytest.raises(ValueError):
        TestSpec(0, 0, 0)
    with pytest.raises(ValueError):
        TestSpec(-1, 5, 0)
