"""llama-bench's CPU masks (`-C 0xF0`: bit n is CPU n) as text, as CPU numbers and as ggml's bool array.

Read as llama.cpp's common/parse_cpu_mask reads them: an optional 0x, then hex digits, the last digit
holding CPUs 0-3; "0x0" (the default) pins nothing. Stdlib only and Python 3.8, like the rest of the runner.
"""

from __future__ import annotations

import re
from typing import List

# parse_cpu_mask reads at most 128 digits (GGML_MAX_N_THREADS = 512 CPUs)
MAX_DIGITS = 128
NO_MASK = "0x0"
_MASK = re.compile(r"(0x)?[0-9a-fA-F]{1,%d}\Z" % MAX_DIGITS)


def is_mask(text: str) -> bool:
    return bool(_MASK.match(text))


def mask_cpus(mask: str) -> List[int]:
    """The CPU numbers a mask names, lowest first; ValueError for text that is not a mask."""
    if not is_mask(mask):
        raise ValueError("%r is not a hex CPU mask (like 0xF0)" % mask)
    bits = int(mask, 16)
    return [cpu for cpu in range(bits.bit_length()) if bits >> cpu & 1]


def cpus_mask(cpus) -> str:
    """The mask of these CPU numbers, as llama-bench is given one: "0xf0" for 4-7."""
    bits = 0
    for cpu in cpus:
        bits |= 1 << int(cpu)
    return "0x%x" % bits


def canonical(mask: str) -> str:
    """One spelling per mask ("F0", "0xF0" and "0x00f0" are one mask), for rows and comparisons."""
    return cpus_mask(mask_cpus(mask))
